//! One test per exit code, through the real binary: each failure exits with
//! the code its error's kind documents (README, `certmint --help`,
//! `certmint::error::KINDS`) and its message names the problem.
//!
//! Exit 130 (Ctrl-C) is tested where a large production runs anyway:
//! `ctrl_c_stops_a_running_production_promptly_and_a_rerun_completes` in
//! `tests/safety_concurrency.rs`. Exit 9 (a certificate already on record
//! for the device) is raised by the certificate records; its test sits with
//! them.

mod common;

use std::time::Duration;

use certmint::error::{ErrorKind, KINDS};
use certmint::journal::{Journal, LeaseHolder, OrderId, Sharing, SqlJournal};
use common::{import_and_pay, run_on_journal, Hsm, Run, Workspace};

const UNVAN: &str = "Örnek Bilişim Anonim Şirketi";

/// The documented code of `kind`, read from the table the binary uses.
fn code_of(kind: ErrorKind) -> i32 {
    let row = KINDS.iter().find(|row| row.kind == kind).unwrap();
    i32::from(row.code)
}

/// Asserts that `run` failed with `kind`'s code and that its one error line
/// says `says`.
fn assert_fails(run: &Run, kind: ErrorKind, says: &str) {
    assert_eq!(
        run.code,
        code_of(kind),
        "{kind} expected\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    assert!(
        run.stderr.starts_with("error: ") || run.stderr.contains("\nerror: "),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(says),
        "expected {says:?} in\n{}",
        run.stderr
    );
}

/// A CA and an ÖKC order 1 of `devices` devices for `target`, imported
/// and paid, on the workspace's journal.
fn paid_order(target: &str, devices: usize) -> Workspace {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    let list: String = (0..devices)
        .map(|i| format!("FU{:08}\n", 10_000_000 + i))
        .collect();
    ws.write("list.txt", list.as_bytes());
    let list = ws.path("list.txt").display().to_string();
    import_and_pay(
        |args| run_on_journal(&ws, args, &[]),
        "FU,JI",
        &list,
        "1",
        &["--target", target],
    );
    ws
}

fn issue_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "issue",
        "--ca",
        "ca",
        "--profile",
        "mali-muhur",
        "--csr",
        "company.csr",
        "--unvan",
        UNVAN,
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn every_code_is_in_the_help_text_as_in_the_table() {
    let ws = Workspace::new();
    let help = ws.certmint(&["--help"]).ok().stdout;
    assert!(help.contains("Exit codes:\n  0  success"), "{help}");
    for row in &KINDS {
        let first_words: String = row
            .meaning
            .replace('`', "")
            .split(' ')
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        let line = format!("{:>3}  {first_words}", row.code);
        assert!(help.contains(&line), "{line:?} in\n{help}");
    }
}

#[test]
fn exit_0_on_success() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("company", "p384");
    let run = ws.certmint(&issue_args(&["--vkn", "4540536920", "--out", "mm.pem"]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert_eq!(ws.verify_chain("mm.pem").stdout.trim(), "mm.pem: OK");
}

#[test]
fn exit_1_for_a_ca_directory_that_cannot_be_read() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("company", "p384");
    let run = ws.certmint(&[
        "issue",
        "--ca",
        "no-such-ca",
        "--profile",
        "mali-muhur",
        "--csr",
        "company.csr",
        "--vkn",
        "4540536920",
        "--unvan",
        UNVAN,
    ]);
    assert_fails(&run, ErrorKind::Failure, "no-such-ca/certmint-ca.toml");
}

#[test]
fn exit_2_for_an_hsm_order_produced_without_its_token() {
    let ws = paid_order("hsm", 2);
    let run = run_on_journal(&ws, &["okc", "produce", "--order", "1", "--ca", "ca"], &[]);
    assert_fails(
        &run,
        ErrorKind::Usage,
        "order 1 is for the hsm target: give the manufacturer's token with --token",
    );
    // A soft order given a token is the same mistake the other way round.
    let ws = paid_order("soft", 2);
    let run = run_on_journal(
        &ws,
        &[
            "okc",
            "produce",
            "--order",
            "1",
            "--ca",
            "ca",
            "--token",
            "pkcs11:token=manufacturer",
        ],
        &[],
    );
    assert_fails(
        &run,
        ErrorKind::Usage,
        "order 1 is for the soft target: leave out --token",
    );
}

#[test]
fn exit_2_for_an_order_given_to_the_command_of_another_kind() {
    let ws = Workspace::with_ca(&[]);
    for args in [
        vec![
            "order",
            "import",
            "--kind",
            "mali-muhur",
            "--vkn",
            "4540536920",
            "--unvan",
            UNVAN,
            "--target",
            "hsm",
        ],
        vec!["order", "pay", "--order", "1"],
    ] {
        run_on_journal(&ws, &args, &[]).ok();
    }
    let run = run_on_journal(
        &ws,
        &[
            "okc",
            "produce",
            "--order",
            "1",
            "--ca",
            "ca",
            "--token",
            "pkcs11:token=musteri",
        ],
        &[],
    );
    assert_fails(
        &run,
        ErrorKind::Usage,
        "order 1: is a Mali Mühür order: produce it with `certmint hsm provision --order 1",
    );
}

#[test]
fn exit_2_for_flags_that_conflict() {
    let ws = Workspace::with_ca(&[]);
    // With --order the company comes from the order.
    let run = ws.certmint(&[
        "hsm",
        "provision",
        "--ca",
        "ca",
        "--order",
        "1",
        "--token",
        "pkcs11:token=musteri",
        "--vkn",
        "4540536920",
    ]);
    assert_fails(
        &run,
        ErrorKind::Usage,
        "with --order the company, the key type and the labels come from the order",
    );
    // --now only with --dry-run (clap's own check).
    let run = ws.certmint(&["okc", "purge", "--now", "2026-12-15T09:00:00Z"]);
    assert_eq!(run.code, code_of(ErrorKind::Usage), "{}", run.stderr);
    assert!(run.stderr.contains("--dry-run"), "{}", run.stderr);
    // --now that is not a time.
    let run = ws.certmint(&["okc", "purge", "--dry-run", "--now", "next monday"]);
    assert_fails(
        &run,
        ErrorKind::Usage,
        "--now \"next monday\" is not an RFC 3339 time",
    );
    // Order-import flags of the other kind of order.
    let run = ws.certmint(&[
        "order",
        "import",
        "--kind",
        "mali-muhur",
        "--vkn",
        "4540536920",
        "--unvan",
        UNVAN,
        "--target",
        "soft",
    ]);
    assert_fails(
        &run,
        ErrorKind::Usage,
        "Mali Mühür seals are produced on a card or in the company's HSM",
    );
    // A profile `issue` does not make.
    let run = ws.certmint(&[
        "issue",
        "--ca",
        "ca",
        "--profile",
        "root-ca",
        "--public-key",
        "x.pub",
    ]);
    assert_fails(
        &run,
        ErrorKind::Usage,
        "profile root-ca is made by `certmint ca init`, not by `issue`",
    );
}

#[test]
fn exit_2_for_a_count_out_of_range() {
    let ws = Workspace::new();
    for (args, says) in [
        (
            vec!["order", "import", "--kind", "mali-muhur", "--seals", "0"],
            "--seals",
        ),
        (vec!["bench", "--workers", "0"], "--workers"),
        (vec!["bench", "--batch", "1000001"], "--batch"),
        (
            vec!["card", "virtual", "--cards", "3"],
            "--cards 3 needs --eject-on-reset or --eject-idle-ms",
        ),
    ] {
        let run = ws.certmint(&args);
        assert_eq!(
            run.code,
            code_of(ErrorKind::Usage),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
}

#[test]
fn exit_2_for_card_provisioning_without_a_management_key() {
    // Refused before any reader is asked: no pcscd is needed.
    let ws = Workspace::with_ca(&[]);
    let provision = |extra: &[&str]| {
        let mut args = vec![
            "card",
            "provision",
            "--ca",
            "ca",
            "--vkn",
            "4540536920",
            "--unvan",
            UNVAN,
        ];
        args.extend_from_slice(extra);
        ws.certmint_env(&args, &[("CARD_PIN", "123456")])
    };
    assert_fails(
        &provision(&["--card-pin-env", "CARD_PIN"]),
        ErrorKind::Usage,
        "give the cards' management key with --mgmt-key-file or --mgmt-key-env",
    );
    assert_fails(
        &provision(&["--mgmt-key-env", "NO_SUCH_VARIABLE"]),
        ErrorKind::Usage,
        "environment variable NO_SUCH_VARIABLE (named by --mgmt-key-env) is not set",
    );
    assert_fails(
        &provision(&["--allow-factory-defaults"]),
        ErrorKind::Usage,
        "no PIN for the cards: name the variable holding it with --card-pin-env",
    );
    // A key type no PIV card holds.
    assert_fails(
        &provision(&["--key-type", "rsa3072", "--allow-factory-defaults"]),
        ErrorKind::Usage,
        "rsa3072 keys cannot be generated on PIV cards",
    );
    // Without --unvan.
    let run = ws.certmint(&["card", "provision", "--ca", "ca", "--vkn", "4540536920"]);
    assert_fails(
        &run,
        ErrorKind::Usage,
        "name the company's trade name with --unvan",
    );
}

#[test]
fn exit_2_for_a_malformed_token_uri_or_no_pin_source() {
    let (ws, hsm) = {
        let ws = Workspace::new();
        let hsm = Hsm::new(&ws, &["musteri"], "ALL");
        (ws, hsm)
    };
    let conf = hsm.conf();
    let env = [("SOFTHSM2_CONF", conf.as_str())];
    let run = ws.certmint_env(&["hsm", "probe", "--token", "token=musteri"], &env);
    assert_fails(
        &run,
        ErrorKind::Usage,
        "\"token=musteri\" is not a pkcs11: URI",
    );
    let module = common::softhsm_module();
    let uri = format!("pkcs11:token=musteri?module-path={module}");
    let run = ws.certmint_env(
        &["hsm", "probe", "--token", &uri, "--vkn", "4540536920"],
        &env,
    );
    assert_fails(
        &run,
        ErrorKind::Usage,
        "give pin-source=file:PATH in the URI, or --token-pin-env VAR",
    );
}

#[test]
fn exit_3_for_an_invalid_vkn_and_a_hostile_key() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("company", "p384");
    let run = ws.certmint(&issue_args(&["--vkn", "4540536921"]));
    assert_fails(
        &run,
        ErrorKind::InvalidInput,
        "VKN \"4540536921\" has a wrong check digit",
    );
    let weak = format!(
        "{}/fixtures/keys/rsa1024.pub.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    let run = ws.certmint(&[
        "issue",
        "--ca",
        "ca",
        "--profile",
        "okc-device",
        "--public-key",
        &weak,
        "--device-serial",
        "FU00022547",
    ]);
    assert_fails(&run, ErrorKind::InvalidInput, "rsa1024");
    // The serial list of an order: every line bad, nothing imported.
    ws.write("bad.txt", b"FU-1\nXX\n");
    let list = ws.path("bad.txt").display().to_string();
    common::ensure_manufacturer(|args| run_on_journal(&ws, args, &[]));
    let run = run_on_journal(&ws, &common::import_args("FU", &list, &[]), &[]);
    assert_fails(
        &run,
        ErrorKind::InvalidInput,
        "order refused: 2 problem(s) in the serial list; nothing was imported",
    );
}

#[test]
fn exit_4_for_a_lint_refusal() {
    // An issuing CA valid for one year cannot sign a three-year seal: the
    // validity lint refuses it before the CA key signs.
    let ws = Workspace::new();
    let config = std::fs::read_to_string(format!(
        "{}/fixtures/profiles/lab-ca.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace(
        "[issuing_ca]\nvalidity_years = 8",
        "[issuing_ca]\nvalidity_years = 1",
    )
    .replace(
        "[mali_muhur]\nvalidity_years = 2",
        "[mali_muhur]\nvalidity_years = 3",
    );
    ws.write("short-ca.toml", config.as_bytes());
    ws.certmint(&["ca", "init", "--dir", "ca", "--config", "short-ca.toml"])
        .ok();
    ws.openssl_key("company", "p384");
    let run = ws.certmint(&issue_args(&["--vkn", "4540536920", "--out", "mm.pem"]));
    assert_fails(&run, ErrorKind::LintRefused, "refused before signing");
    assert!(
        run.stderr.contains("rfc5280.validity.within_issuer"),
        "{}",
        run.stderr
    );
    assert!(!ws.exists("mm.pem"));
}

#[test]
fn exit_5_for_a_wrong_pin_on_a_softhsm2_token() {
    let ws = Workspace::new();
    let hsm = Hsm::new(&ws, &["ca"], "ALL");
    ws.write("wrong.pin", b"00000000\n");
    let key = format!(
        "pkcs11:token=ca;object=issuing-2026?module-path={}&pin-source=file:{}",
        common::softhsm_module(),
        ws.path("wrong.pin").display()
    );
    let conf = hsm.conf();
    let run = ws.certmint_env(
        &["hsm", "keygen", "--key", &key],
        &[("SOFTHSM2_CONF", conf.as_str())],
    );
    assert_fails(
        &run,
        ErrorKind::TokenRefused,
        "wrong PIN for token \"ca\" (C_Login: CKR_PIN_INCORRECT)",
    );
    assert!(!run.stderr.contains("00000000"), "the PIN never appears");
    assert_eq!(hsm.objects("ca"), vec![]);
}

#[test]
fn exit_6_for_a_tampered_audit_log() {
    let ws = paid_order("soft", 3);
    run_on_journal(
        &ws,
        &[
            "okc",
            "produce",
            "--order",
            "1",
            "--ca",
            "ca",
            "--workers",
            "1",
        ],
        &[],
    )
    .ok();
    run_on_journal(&ws, &["audit", "verify"], &[]).ok();
    let conn = rusqlite::Connection::open(ws.path("journal.sqlite")).unwrap();
    conn.execute("UPDATE audit SET operator = 'mallory' WHERE seq = 2", [])
        .unwrap();
    drop(conn);
    let run = run_on_journal(&ws, &["audit", "verify"], &[]);
    assert_fails(&run, ErrorKind::AuditBroken, "the audit chain is broken");
    assert!(run.stderr.contains("record 2"), "{}", run.stderr);
}

#[test]
fn exit_7_for_an_order_another_producer_holds() {
    let ws = paid_order("soft", 3);
    let station = LeaseHolder {
        host: "station-2".into(),
        operator: "alice".into(),
        ..LeaseHolder::this_process("alice")
    };
    SqlJournal::open(&ws.path("journal.sqlite"))
        .unwrap()
        .acquire_lease(
            OrderId(1),
            &station,
            Duration::from_secs(600),
            Sharing::Exclusive,
        )
        .unwrap();
    let run = run_on_journal(&ws, &["okc", "produce", "--order", "1", "--ca", "ca"], &[]);
    assert_fails(
        &run,
        ErrorKind::Held,
        "order 1 is being produced by another producer: operator alice on host station-2",
    );
}

#[test]
fn exit_8_for_an_order_that_does_not_exist() {
    let ws = paid_order("soft", 2);
    for args in [
        vec!["order", "pay", "--order", "999"],
        vec!["order", "status", "--order", "999"],
        vec!["okc", "produce", "--order", "999", "--ca", "ca"],
    ] {
        let run = run_on_journal(&ws, &args, &[]);
        assert_fails(&run, ErrorKind::NotFound, "no order 999");
    }
}

/// The old spelling of each renamed flag still works, and `--help` shows
/// only the new one.
#[test]
fn old_flag_spellings_are_hidden_aliases() {
    let ws = Workspace::new();
    for (command, new, old) in [
        (vec!["issue"], "--ca-pin-env", "--pin-env"),
        (vec!["ca", "init"], "--ca-pin-env", "--pin-env"),
        (vec!["bench"], "--ca-pin-env", "--pin-env"),
        (vec!["bench"], "--ca-key", "--key"),
        (vec!["hsm", "keygen"], "--token-pin-env", "--pin-env"),
        (vec!["hsm", "probe"], "--token-pin-env", "--pin-env"),
        (vec!["hsm", "provision"], "--token-pin-env", "--pin-env"),
        (vec!["okc", "produce"], "--token-pin-env", "--pin-env"),
        (vec!["okc", "produce"], "--deliveries", "--out"),
        (vec!["okc", "purge"], "--deliveries", "--out"),
        (vec!["card", "station"], "--deliveries", "--out"),
        (vec!["card", "station"], "--card-pin-env", "--pin-env"),
        (vec!["card", "provision"], "--card-pin-env", "--pin-env"),
        (vec!["card", "provision"], "--card-puk-env", "--puk-env"),
    ] {
        let mut args = command.clone();
        args.push("--help");
        let help = ws.certmint(&args).ok().stdout;
        assert!(help.contains(new), "{command:?} shows {new}:\n{help}");
        // The old spelling is not shown as a word of its own.
        let shown = help
            .split(|c: char| c.is_whitespace() || ",.()[]<>".contains(c))
            .any(|word| word == old);
        assert!(!shown, "{command:?} hides {old}:\n{help}");
    }
    // And the old spellings parse: a wrong value reaches the command, not clap.
    let run = ws.certmint(&["okc", "purge", "--out", "deliveries", "--dry-run"]);
    assert_ne!(run.code, code_of(ErrorKind::Usage), "{}", run.stderr);
    let run = ws.certmint(&[
        "bench",
        "--key",
        "no-such-key.pem",
        "--pin-env",
        "X",
        "--sign-only",
    ]);
    assert_fails(&run, ErrorKind::Failure, "no-such-key.pem");
}
