//! Revocation on record: `certmint revoke` by each selector, twice, unknown,
//! dry run, lists, JSON; a certificate that may have been signed but will
//! never be the device's (a crash after signing, a reissue, a voided intent)
//! is revoked on its own as superseded; `cert show|list` show revocations;
//! a journal of the previous schema version migrates.

mod common;

use std::time::{Duration, Instant};

use certmint::journal::{IssuedCrl, Journal, SqlJournal};
use certmint::revocation::RevocationReason;
use common::{run_on_journal, Run, Workspace};

fn journalled(ws: &Workspace) -> impl Fn(&[&str]) -> Run + '_ {
    move |args| run_on_journal(ws, args, &[])
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// A workspace with a CA and order 1 of `devices` ÖKC devices (FU10000001…),
/// produced (soft target).
fn produced(devices: usize) -> Workspace {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    let list: String = (1..=devices).map(|i| format!("FU1{i:07}\n")).collect();
    ws.write("list.txt", list.as_bytes());
    {
        let run = journalled(&ws);
        common::import_and_pay(&run, "FU", "list.txt", "1", &[]);
        run(&common::produce_args("1", &[])).ok();
    }
    ws
}

/// The certificate of device `serial` as `cert show --json` prints it.
fn shown(ws: &Workspace, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["cert", "show", "--json"];
    all.extend_from_slice(args);
    json_lines(&run_on_journal(ws, &all, &[]).ok().stdout)
}

fn serial_of_device(ws: &Workspace, device: &str) -> String {
    shown(ws, &["--device-serial", device])[0]["serial"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The ÖKC issuing CA's key identifier: the issuer of every device
/// certificate here.
fn issuing_key_id(ws: &Workspace) -> Vec<u8> {
    ws.key_id_of("ca/okc-issuing.pem")
}

/// Every revocation of the ÖKC issuing CA, as the CRL builder reads them.
fn revoked_serials(ws: &Workspace) -> Vec<(String, RevocationReason)> {
    let journal = SqlJournal::open(&ws.path("journal.sqlite")).unwrap();
    let mut entries = Vec::new();
    let count = journal
        .revoked_entries(&issuing_key_id(ws), &mut |entry| {
            entries.push((certmint::pem::hex(&entry.serial), entry.reason));
            Ok(())
        })
        .unwrap();
    assert_eq!(count as usize, entries.len());
    entries
}

/// Issues the ÖKC issuing CA's next CRL in `dir` (`run` runs certmint
/// there) and returns what `openssl crl -text` shows of it.
fn next_okc_crl_text(run: impl Fn(&[&str]) -> Run, dir: &std::path::Path) -> String {
    run(&["ca", "crl", "--ca", "ca", "--issuer", "okc"]).ok();
    let out = std::process::Command::new("openssl")
        .args(["crl", "-in", "ca/crl/okcshs-s1.crl.pem", "-text", "-noout"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn audit_intact(ws: &Workspace) {
    let verified = run_on_journal(ws, &["audit", "verify"], &[]);
    assert_eq!(verified.code, 0, "{}\n{}", verified.stdout, verified.stderr);
}

#[test]
fn revoke_by_serial_device_and_order_twice_reported_and_shown() {
    let ws = produced(4);
    let run = journalled(&ws);
    let first = serial_of_device(&ws, "FU10000001");

    // By certificate serial (lower case with colons is the same serial).
    let colons: Vec<String> = first
        .to_ascii_lowercase()
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8(pair.to_vec()).unwrap())
        .collect();
    let revoked = run(&[
        "revoke",
        "--serial",
        &colons.join(":"),
        "--reason",
        "key-compromise",
        "--invalidity-date",
        &certmint::timestamp::now(),
    ])
    .ok();
    assert!(
        revoked
            .stdout
            .contains(&format!("certificate {first}: revoked at")),
        "{}",
        revoked.stdout
    );
    let detail = &shown(&ws, &["--serial", &first])[0];
    assert_eq!(detail["status"], "issued");
    assert_eq!(detail["revocation"]["reason"], "key-compromise");
    assert_eq!(detail["revocation"]["operator"], "test-operator");
    assert!(detail["revocation"]["invalidity_date"].is_string());
    let text = run(&["cert", "show", "--serial", &first]).ok().stdout;
    assert!(
        text.contains("Revoked:") && text.contains("key-compromise"),
        "{text}"
    );

    // Twice: reported, not an error; the first reason stands.
    let again = run(&[
        "revoke",
        "--serial",
        &first,
        "--reason",
        "superseded",
        "--json",
    ])
    .ok();
    let lines = json_lines(&again.stdout);
    assert_eq!(lines[0]["schema"], "certmint.revoke.item/1");
    assert_eq!(lines[0]["outcome"], "already-revoked");
    assert_eq!(lines[0]["reason"], "key-compromise");
    assert_eq!(lines[1]["schema"], "certmint.revoke.summary/1");
    assert_eq!(lines[1]["already_revoked"], 1);
    assert_eq!(lines[1]["revoked"], 0);

    // By device serial.
    let second = serial_of_device(&ws, "FU10000002");
    run(&[
        "revoke",
        "--device-serial",
        "FU10000002",
        "--reason",
        "cessation-of-operation",
    ])
    .ok();
    assert_eq!(
        shown(&ws, &["--serial", &second])[0]["revocation"]["reason"],
        "cessation-of-operation"
    );

    // The whole order: two revoked now, two already.
    let order = run(&["revoke", "--order", "1", "--json"]).ok();
    let lines = json_lines(&order.stdout);
    let summary = lines.last().unwrap();
    assert_eq!(summary["selected"], 4);
    assert_eq!(summary["revoked"], 2);
    assert_eq!(summary["already_revoked"], 2);

    // cert list --revoked lists all four; the CRL reads them in serial order.
    let listed = json_lines(&run(&["cert", "list", "--revoked", "--json"]).ok().stdout);
    assert_eq!(listed.len(), 4);
    let entries = revoked_serials(&ws);
    assert_eq!(entries.len(), 4);
    let serials: Vec<&String> = entries.iter().map(|(s, _)| s).collect();
    let mut sorted = serials.clone();
    sorted.sort_by_key(|s| (s.len(), (*s).clone()));
    assert_eq!(serials, sorted);
    assert!(entries.contains(&(first.clone(), RevocationReason::KeyCompromise)));
    let table = run(&["cert", "list"]).ok().stdout;
    assert!(
        table.lines().next().unwrap().ends_with("REVOKED"),
        "{table}"
    );
    audit_intact(&ws);
    let audit = run(&["audit", "show", "--json"]).ok().stdout;
    assert_eq!(
        json_lines(&audit)
            .iter()
            .filter(|r| r["event"] == "certificate.revoked")
            .count(),
        4
    );
}

#[test]
fn unknown_serials_bad_reasons_and_bad_dates_are_refused_with_their_exit_codes() {
    let ws = produced(1);
    let run = journalled(&ws);
    let serial = serial_of_device(&ws, "FU10000001");

    let unknown = run(&["revoke", "--serial", "0102030405"]);
    assert_eq!(unknown.code, 8, "{}", unknown.stderr);
    assert!(unknown.stdout.contains("not found"), "{}", unknown.stdout);
    let no_device = run(&["revoke", "--device-serial", "FU19999999"]);
    assert_eq!(no_device.code, 8, "{}", no_device.stderr);

    let hold = run(&[
        "revoke",
        "--serial",
        &serial,
        "--reason",
        "certificate-hold",
    ]);
    assert_eq!(hold.code, 2, "{}", hold.stderr);
    assert!(hold.stderr.contains("irreversible"), "{}", hold.stderr);
    let nothing = run(&["revoke", "--reason", "key-compromise"]);
    assert_eq!(nothing.code, 2, "{}", nothing.stderr);

    let future = run(&[
        "revoke",
        "--serial",
        &serial,
        "--invalidity-date",
        "2999-01-01T00:00:00Z",
    ]);
    assert_eq!(future.code, 3, "{}", future.stderr);
    assert!(future.stderr.contains("future"), "{}", future.stderr);
    let not_a_date = run(&[
        "revoke",
        "--serial",
        &serial,
        "--invalidity-date",
        "yesterday",
    ]);
    assert_eq!(not_a_date.code, 3, "{}", not_a_date.stderr);
    let before = run(&[
        "revoke",
        "--serial",
        &serial,
        "--invalidity-date",
        "2000-01-01T00:00:00Z",
    ]);
    assert_eq!(before.code, 3, "{}", before.stderr);
    assert!(before.stdout.contains("notBefore"), "{}", before.stdout);

    // None of these revoked anything.
    assert!(shown(&ws, &["--serial", &serial])[0]["revocation"].is_null());
    assert!(revoked_serials(&ws).is_empty());
    audit_intact(&ws);
}

#[test]
fn a_dry_run_changes_nothing_and_a_device_list_reports_each_device() {
    let ws = produced(3);
    let run = journalled(&ws);
    run(&["revoke", "--device-serial", "FU10000001"]).ok();
    let audit_before = run(&["audit", "show", "--json"]).ok().stdout;

    let dry = run(&["revoke", "--order", "1", "--dry-run", "--json"]).ok();
    let lines = json_lines(&dry.stdout);
    let summary = lines.last().unwrap();
    assert_eq!(summary["would_revoke"], 2);
    assert_eq!(summary["already_revoked"], 1);
    assert_eq!(run(&["audit", "show", "--json"]).ok().stdout, audit_before);
    assert_eq!(revoked_serials(&ws).len(), 1);

    // A list with a device revoked already, one to revoke, one unknown:
    // each reported, the unknown one makes the exit status 8.
    ws.write(
        "recalled.txt",
        b"# recalled batch\nFU10000001\n\nFU10000002\nFU17777777\n",
    );
    let listed = run(&[
        "revoke",
        "--device-list",
        "recalled.txt",
        "--reason",
        "key-compromise",
    ]);
    assert_eq!(listed.code, 8, "{}\n{}", listed.stdout, listed.stderr);
    assert!(
        listed.stdout.contains("FU10000001 (certificate")
            && listed.stdout.contains("revoked already"),
        "{}",
        listed.stdout
    );
    assert!(
        listed.stdout.contains("FU17777777: not found"),
        "{}",
        listed.stdout
    );
    assert!(
        listed
            .stdout
            .contains("1 revoked, 1 revoked already, 1 not found, 0 refused."),
        "{}",
        listed.stdout
    );
    assert_eq!(revoked_serials(&ws).len(), 2);

    // A list with a bad line is refused whole: nothing revoked.
    ws.write("bad.txt", b"FU10000003\nnot a serial!\n");
    let bad = run(&["revoke", "--device-list", "bad.txt"]);
    assert_eq!(bad.code, 3, "{}", bad.stderr);
    assert!(bad.stderr.contains("nothing was revoked"), "{}", bad.stderr);
    assert_eq!(revoked_serials(&ws).len(), 2);
    audit_intact(&ws);
}

#[test]
fn a_reissue_revokes_the_certificate_it_supersedes() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    ws.openssl_key("device", "p256");
    let issue = |extra: &[&str], out: &str| {
        let mut args = vec![
            "issue",
            "--ca",
            "ca",
            "--profile",
            "okc-device",
            "--public-key",
            "device.pub",
            "--device-serial",
            "FU00022547",
            "--json",
            "--out",
            out,
        ];
        args.extend_from_slice(extra);
        run_on_journal(&ws, &args, &[]).ok()
    };
    let serial = |run: &Run| -> String {
        let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        json["certificate"]["serial"].as_str().unwrap().to_owned()
    };
    let old = serial(&issue(&[], "first.pem"));
    let new = serial(&issue(&["--reissue"], "second.pem"));
    let detail = &shown(&ws, &["--serial", &old])[0];
    assert_eq!(detail["status"], "superseded");
    assert_eq!(detail["revocation"]["reason"], "superseded");
    assert!(shown(&ws, &["--serial", &new])[0]["revocation"].is_null());
    assert_eq!(
        revoked_serials(&ws),
        vec![(old, RevocationReason::Superseded)]
    );
    audit_intact(&ws);
}

/// A crash while the CA signs: `okc produce` is killed (SIGKILL) as soon as
/// the journal holds intents; the next run voids them, and each voided
/// intent is revoked as superseded.
#[test]
fn a_crash_after_signing_leaves_the_voided_certificates_revoked() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    let list: String = (1..=300).map(|i| format!("FU1{i:07}\n")).collect();
    ws.write("list.txt", list.as_bytes());
    let run = journalled(&ws);
    common::import_and_pay(&run, "FU", "list.txt", "1", &[]);
    let intents = || -> Vec<String> {
        let Ok(conn) = rusqlite::Connection::open(ws.path("journal.sqlite")) else {
            return Vec::new();
        };
        let Ok(mut stmt) =
            conn.prepare("SELECT serial_hex FROM certificates WHERE status = 'intent'")
        else {
            return Vec::new();
        };
        stmt.query_map([], |r| r.get(0))
            .map(|rows| rows.filter_map(Result::ok).collect())
            .unwrap_or_default()
    };
    let mut caught = Vec::new();
    for _ in 0..20 {
        let mut child = common::certmint_on_journal(&ws, "crash-test")
            .args(common::produce_args("1", &[]))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            caught = intents();
            if !caught.is_empty() || child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        caught = intents();
        if !caught.is_empty() {
            break;
        }
    }
    assert!(
        !caught.is_empty(),
        "no run was caught with intents in flight"
    );
    run(&common::produce_args("1", &[])).ok();
    let revoked = revoked_serials(&ws);
    for serial in &caught {
        let detail = &shown(&ws, &["--serial", serial])[0];
        assert_eq!(detail["status"], "void", "{detail}");
        assert_eq!(detail["revocation"]["reason"], "superseded", "{detail}");
        assert!(revoked.contains(&(serial.clone(), RevocationReason::Superseded)));
    }
    // Nothing but the voided intents is revoked; every device has its certificate.
    assert_eq!(revoked.len(), caught.len());
    // The next CRL lists each of them as superseded.
    let text = next_okc_crl_text(&run, ws.dir.path());
    for serial in &caught {
        assert!(
            text.contains(&format!("Serial Number: {serial}")),
            "{serial} not in\n{text}"
        );
    }
    assert_eq!(text.matches("Superseded").count(), caught.len(), "{text}");
    audit_intact(&ws);
}

/// Two CRLs in a row get numbers n and n+1; a number allocated by a run
/// that crashed before recording its CRL is never handed out again.
#[test]
fn crl_numbers_increase_and_are_never_reused() {
    let ws = produced(1);
    let key_id = issuing_key_id(&ws);
    let mut journal = SqlJournal::open(&ws.path("journal.sqlite")).unwrap();
    let first = journal.allocate_crl_number(&key_id, "op").unwrap();
    let now = time::OffsetDateTime::now_utc();
    let crl = |number| IssuedCrl {
        issuer_key_id: &key_id,
        number,
        this_update: now,
        next_update: now + time::Duration::days(7),
        entries: 0,
        sha256_hex: "00",
    };
    journal.record_crl(&crl(first), "op").unwrap();
    // Allocated, then "crashed" before signing: the number is spent.
    let spent = journal.allocate_crl_number(&key_id, "op").unwrap();
    drop(journal);
    let mut journal = SqlJournal::open(&ws.path("journal.sqlite")).unwrap();
    let next = journal.allocate_crl_number(&key_id, "op").unwrap();
    assert_eq!((first, spent, next), (1, 2, 3));
    journal.record_crl(&crl(next), "op").unwrap();
    assert!(
        journal.record_crl(&crl(next), "op").is_err(),
        "recorded twice"
    );
    assert!(
        journal.record_crl(&crl(9), "op").is_err(),
        "never allocated"
    );
    let numbers: Vec<u64> = journal
        .crls(&key_id)
        .unwrap()
        .iter()
        .map(|c| c.number)
        .collect();
    assert_eq!(numbers, [1, 3]);
    assert_eq!(journal.last_crl(&key_id).unwrap().unwrap().number, 3);
    // Another issuer counts on its own.
    assert_eq!(journal.allocate_crl_number(b"other", "op").unwrap(), 1);
    drop(journal);
    audit_intact(&ws);
}

/// A journal of the previous schema (version 3: no revocations) is
/// migrated on open; a certificate a reissue superseded there is revoked
/// by the migration, and the audit chain holds.
#[test]
fn a_journal_of_the_previous_schema_migrates_and_revokes_what_was_superseded() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    ws.openssl_key("device", "p256");
    let issue = |extra: &[&str], out: &str| {
        let mut args = vec![
            "issue",
            "--ca",
            "ca",
            "--profile",
            "okc-device",
            "--public-key",
            "device.pub",
            "--device-serial",
            "FU00022547",
            "--json",
            "--out",
            out,
        ];
        args.extend_from_slice(extra);
        let issued = run_on_journal(&ws, &args, &[]).ok();
        let json: serde_json::Value = serde_json::from_str(&issued.stdout).unwrap();
        json["certificate"]["serial"].as_str().unwrap().to_owned()
    };
    let old = issue(&[], "first.pem");
    issue(&["--reissue"], "second.pem");
    // Back to version 3: the revocation, card PIN and CA certificate tables
    // did not exist then, nor the stations' leases and claims (one
    // producer per order).
    {
        let conn = rusqlite::Connection::open(ws.path("journal.sqlite")).unwrap();
        conn.execute_batch(
            "DROP TABLE ca_certificates; DROP TABLE revocations; DROP TABLE crls; DROP TABLE crl_numbers;
             DROP TABLE card_secrets; DROP TABLE pin_letters;
             DROP INDEX devices_unclaimed; DROP INDEX devices_claimed;
             ALTER TABLE devices DROP COLUMN claimed_by; ALTER TABLE devices DROP COLUMN produced_by;
             DROP TABLE station_leases;
             CREATE TABLE producer_leases (
                 order_id INTEGER PRIMARY KEY REFERENCES orders(id), holder_id TEXT NOT NULL,
                 host TEXT NOT NULL, boot_id TEXT NOT NULL, start_time INTEGER NOT NULL DEFAULT 0,
                 pid INTEGER NOT NULL, operator TEXT NOT NULL, acquired_at TEXT NOT NULL,
                 renewed_at TEXT NOT NULL, expires_at_ms INTEGER NOT NULL);
             PRAGMA user_version = 3;",
        )
        .unwrap();
    }
    let detail = &shown(&ws, &["--serial", &old])[0];
    assert_eq!(detail["status"], "superseded");
    assert_eq!(detail["revocation"]["reason"], "superseded");
    assert_eq!(
        detail["revocation"]["operator"],
        "certmint (journal schema migration)"
    );
    let version: i64 = rusqlite::Connection::open(ws.path("journal.sqlite"))
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, certmint::journal::SCHEMA_VERSION);
    audit_intact(&ws);
}

#[test]
fn a_seal_is_revoked_by_its_label() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    ws.openssl_key("company", "p384");
    let run = journalled(&ws);
    run(&[
        "issue",
        "--ca",
        "ca",
        "--profile",
        "mali-muhur",
        "--csr",
        "company.csr",
        "--vkn",
        "4540536920",
        "--unvan",
        "Örnek Bilişim Anonim Şirketi",
        "--out",
        "seal.pem",
    ])
    .ok();
    let revoked = run(&[
        "revoke",
        "--seal-label",
        "4540536920SIGN0",
        "--reason",
        "affiliation-changed",
        "--json",
    ])
    .ok();
    let lines = json_lines(&revoked.stdout);
    assert_eq!(lines[0]["selected"], "4540536920SIGN0");
    assert_eq!(lines[0]["outcome"], "revoked");
    let serial = lines[0]["serial"].as_str().unwrap();
    let detail = &shown(&ws, &["--seal-label", "4540536920SIGN0"])[0];
    assert_eq!(detail["serial"], serial);
    assert_eq!(detail["revocation"]["reason"], "affiliation-changed");
    // A seal label is not an ÖKC device serial.
    let wrong_kind = run(&["revoke", "--device-serial", "4540536920SIGN0"]);
    assert_eq!(wrong_kind.code, 8, "{}", wrong_kind.stderr);
    let none = run(&["revoke", "--seal-label", "4540536920SIGN1"]);
    assert_eq!(none.code, 8, "{}", none.stderr);
    audit_intact(&ws);
}

/// An issuing CA certificate is revoked on record under the root's key
/// identifier (the root's CRL lists it), once its signature verifies under
/// the CA directory's root key; anything else is refused.
#[test]
fn an_issuing_ca_certificate_is_revoked_under_its_root() {
    let ws = produced(1);
    let run = journalled(&ws);
    ws.certmint(&["ca", "init", "--dir", "other", "--key-type", "p256"])
        .ok();
    let foreign = run(&[
        "revoke",
        "--ca-certificate",
        "other/issuing.pem",
        "--ca",
        "ca",
    ]);
    assert_eq!(foreign.code, 3, "{}", foreign.stderr);
    assert!(
        foreign.stderr.contains("not signed by the root"),
        "{}",
        foreign.stderr
    );
    let root = run(&["revoke", "--ca-certificate", "ca/root.pem", "--ca", "ca"]);
    assert_eq!(root.code, 3, "{}", root.stderr);
    ws.write(
        "device.pem",
        shown(&ws, &["--device-serial", "FU10000001", "--pem"])[0]["pem"]
            .as_str()
            .unwrap()
            .as_bytes(),
    );
    let device = run(&["revoke", "--ca-certificate", "device.pem", "--ca", "ca"]);
    assert_eq!(device.code, 3, "{}", device.stderr);
    let alone = run(&["revoke", "--ca-certificate", "ca/issuing.pem"]);
    assert_eq!(alone.code, 2, "{}", alone.stderr);

    let dry = run(&[
        "revoke",
        "--ca-certificate",
        "ca/issuing.pem",
        "--ca",
        "ca",
        "--dry-run",
        "--json",
    ])
    .ok();
    let report: serde_json::Value = serde_json::from_str(&dry.stdout).unwrap();
    assert_eq!(report["outcome"], "would-revoke");
    let done = run(&[
        "revoke",
        "--ca-certificate",
        "ca/issuing.pem",
        "--ca",
        "ca",
        "--reason",
        "ca-compromise",
        "--json",
    ])
    .ok();
    let report: serde_json::Value = serde_json::from_str(&done.stdout).unwrap();
    assert_eq!(report["schema"], "certmint.revoke.ca-certificate/1");
    assert_eq!(report["outcome"], "revoked");
    let again = run(&["revoke", "--ca-certificate", "ca/issuing.pem", "--ca", "ca"]).ok();
    assert!(again.stdout.contains("revoked already"), "{}", again.stdout);

    // Listed under the root's key identifier, with the issuing CA's serial
    // as OpenSSL reads it; the issuing CA's own list is untouched.
    use der::DecodePem;
    let root = x509_cert::Certificate::from_pem(ws.read("ca/root.pem")).unwrap();
    let (_, root_ski) = root
        .tbs_certificate()
        .get_extension::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
        .unwrap()
        .unwrap();
    let journal = SqlJournal::open(&ws.path("journal.sqlite")).unwrap();
    let mut listed = Vec::new();
    journal
        .revoked_entries(root_ski.0.as_bytes(), &mut |entry| {
            listed.push((certmint::pem::hex(&entry.serial), entry.reason));
            Ok(())
        })
        .unwrap();
    let openssl_serial = ws
        .openssl(&["x509", "-in", "ca/issuing.pem", "-noout", "-serial"])
        .ok()
        .stdout;
    let openssl_serial = openssl_serial
        .trim()
        .trim_start_matches("serial=")
        .to_owned();
    assert_eq!(listed, [(openssl_serial, RevocationReason::CaCompromise)]);
    assert!(revoked_serials(&ws).is_empty());
    drop(journal);
    audit_intact(&ws);
    let audit = run(&["audit", "show", "--json"]).ok().stdout;
    assert!(json_lines(&audit)
        .iter()
        .any(|r| r["event"] == "ca-certificate.revoked"));
}

/// Ctrl-C during a long list stops after the revocation in flight: every
/// revocation done is on record, and running it again finishes the rest.
#[test]
fn ctrl_c_leaves_every_done_revocation_on_record() {
    let ws = produced(400);
    let child = common::spawn_on_journal(&ws, "test-operator", &["revoke", "--order", "1"], &[]);
    // Wait for the first revocations, then interrupt.
    let started = Instant::now();
    loop {
        let count: i64 = rusqlite::Connection::open(ws.path("journal.sqlite"))
            .and_then(|c| c.query_row("SELECT COUNT(*) FROM revocations", [], |r| r.get(0)))
            .unwrap_or(0);
        if count > 0 || started.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let done = stdout
        .lines()
        .filter(|l| l.contains(": revoked at"))
        .count();
    let on_record = revoked_serials(&ws).len();
    eprintln!(
        "interrupted after {on_record} of 400 (exit {:?})",
        output.status.code()
    );
    if output.status.code() == Some(0) {
        // It finished before the signal arrived: everything is revoked.
        assert_eq!(on_record, 400);
    } else {
        assert_eq!(output.status.code(), Some(130), "{stdout}");
        assert!(stdout.contains("stopped by Ctrl-C"), "{stdout}");
        assert_eq!(done, on_record, "every reported revocation is on record");
        assert!(on_record < 400);
    }
    let rest = run_on_journal(&ws, &["revoke", "--order", "1", "--json"], &[]).ok();
    let summary = json_lines(&rest.stdout).pop().unwrap();
    assert_eq!(
        summary["already_revoked"].as_u64().unwrap() as usize,
        on_record
    );
    assert_eq!(
        summary["revoked"].as_u64().unwrap() as usize,
        400 - on_record
    );
    audit_intact(&ws);
}

/// certmint in a PC/SC stack's folder, reaching its pcscd, on its journal,
/// with the virtual cards' management key and PIN in the environment.
fn card_certmint(stack: &common::pcsc::PcscStack, args: &[&str]) -> Run {
    const RUN_LIMIT: Duration = Duration::from_secs(180);
    let (out, err) = (stack.path("run.stdout"), stack.path("run.stderr"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_certmint"))
        .args(args)
        .envs(stack.env())
        .env("CERTMINT_JOURNAL", stack.path("journal.sqlite"))
        .env("CERTMINT_OPERATOR", "card-operator")
        .env("CARD_KEY", CARD_KEY)
        .env("CARD_PIN", "24681357")
        .current_dir(stack.path(""))
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("run certmint");
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("certmint {args:?} still ran after {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out).unwrap(),
        stderr: std::fs::read_to_string(&err).unwrap(),
    }
}

/// The management key the virtual cards are made with.
const CARD_KEY: &str = "00112233445566778899AABBCCDDEEFF0011223344556677";

/// The card station's pulled card: the first card is pulled while its
/// certificate is written (the certificate was signed); the station voids
/// the intent, and the voided certificate is revoked as superseded, so the
/// next CRL lists it. The device's certificate on the next card is not.
#[test]
fn a_card_pulled_after_its_certificate_was_written_leaves_it_revoked() {
    use common::pcsc::{require_file, require_program, PcscStack, OPENSC_PKCS11};
    require_program("pkcs11-tool", "opensc");
    require_program("yubico-piv-tool", "yubico-piv-tool");
    require_program("openssl", "openssl");
    require_file(OPENSC_PKCS11, "opensc-pkcs11");
    let mut stack = PcscStack::start();
    let run = |args: &[&str]| card_certmint(&stack, args);
    run(&["ca", "init", "--dir", "ca"]).ok();
    std::fs::write(stack.path("serials.txt"), "FU20000001\n").unwrap();
    common::register_manufacturer(run, "4540536920", "FU", false);
    run(&[
        "order",
        "import",
        "--manufacturer",
        "Örnek Yazarkasa A.Ş.",
        "--manufacturer-vkn",
        "4540536920",
        "--ca",
        "ca",
        "--prefixes",
        "FU",
        "--serials",
        "serials.txt",
        "--target",
        "card",
        "--key-type",
        "p256",
    ])
    .ok();
    run(&["order", "pay", "--order", "1"]).ok();
    // Two cards in turn; the first is pulled at its first PUT DATA (the
    // certificate being written).
    stack.start_card(
        0,
        &[
            "--mgmt-key",
            CARD_KEY,
            "--pin",
            "24681357",
            "--cards",
            "2",
            "--eject-on-reset",
            "--insert-pause-ms",
            "1500",
            "--remove-on-ins",
            "db",
            "--remove-on-count",
            "1",
        ],
    );
    let run = |args: &[&str]| card_certmint(&stack, args);
    let produced = run(&[
        "card",
        "station",
        "--order",
        "1",
        "--ca",
        "ca",
        "--mgmt-key-env",
        "CARD_KEY",
        "--pin-env",
        "CARD_PIN",
        "--keep-card-pin",
        "--out",
        "deliveries",
    ])
    .ok();
    let voided = produced
        .stderr
        .lines()
        .find_map(|l| l.split("; certificate ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("the voided serial is named: {}", produced.stderr))
        .to_owned();
    let listed = json_lines(
        &run(&["cert", "show", "--device-serial", "FU20000001", "--json"])
            .ok()
            .stdout,
    );
    assert_eq!(listed.len(), 2, "{listed:?}");
    for certificate in &listed {
        if certificate["serial"] == voided.as_str() {
            assert_eq!(certificate["status"], "void");
            assert_eq!(certificate["revocation"]["reason"], "superseded");
        } else {
            assert_eq!(certificate["status"], "issued");
            assert!(certificate["revocation"].is_null(), "{certificate}");
        }
    }
    // The next CRL lists the pulled card's certificate, and only it.
    let text = next_okc_crl_text(run, &stack.path(""));
    assert!(text.contains(&format!("Serial Number: {voided}")), "{text}");
    assert_eq!(text.matches("Serial Number:").count(), 1, "{text}");
    let verified = run(&["audit", "verify"]);
    assert_eq!(verified.code, 0, "{}", verified.stdout);
}

/// The resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// A CRL of a million entries is read from the journal a row at a time:
/// in ascending serial order (as numbers: a shorter serial first), with
/// memory that does not grow with the entries.
#[test]
fn a_million_revocations_stream_in_serial_order_in_flat_memory() {
    const ENTRIES: u64 = 1_000_000;
    let ws = Workspace::new();
    let path = ws.path("journal.sqlite");
    drop(SqlJournal::open(&path).unwrap());
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        let tx = conn.transaction().unwrap();
        let mut insert = tx
            .prepare(
                "INSERT INTO revocations (serial_hex, issuer_key_id, revoked_at, reason, operator)
                 VALUES (?1, 'AA01', '2026-12-05T21:45:13Z', 'key-compromise', 'op')",
            )
            .unwrap();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..ENTRIES {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly 16-octet serials as certmint makes them; every tenth shorter.
            let serial = if i % 10 == 0 {
                format!("{:08X}", 0x1000_0000 + i)
            } else {
                format!("{:016X}{:016X}", (x & !(1 << 63)) | (1 << 62), i)
            };
            insert.execute([serial]).unwrap();
        }
        drop(insert);
        tx.commit().unwrap();
    }
    let journal = SqlJournal::open(&path).unwrap();
    let before = rss_kib();
    let mut peak = before;
    let mut previous: Vec<u8> = Vec::new();
    let started = Instant::now();
    let mut seen = 0u64;
    let count = journal
        .revoked_entries(&[0xAA, 0x01], &mut |entry| {
            assert!(
                (entry.serial.len(), &entry.serial) > (previous.len(), &previous),
                "out of order"
            );
            assert_eq!(entry.reason, RevocationReason::KeyCompromise);
            previous = entry.serial;
            seen += 1;
            if seen % 50_000 == 0 {
                peak = peak.max(rss_kib());
            }
            Ok(())
        })
        .unwrap();
    let took = started.elapsed();
    eprintln!(
        "{count} revocations streamed in {took:?}; resident memory {before} KiB before, at most {peak} KiB while streaming"
    );
    assert_eq!(count, ENTRIES);
    // SQLite's page cache is bounded (2 MiB by default); a collected list
    // of a million entries would take well over 64 MiB.
    assert!(
        peak - before < 32 * 1024,
        "memory grew by {} KiB while streaming",
        peak - before
    );
}

/// A recall revokes every certificate of the order that may be valid: an
/// intent left by a crash (signed, perhaps) is reported as refused — the
/// order is to be resumed first — never skipped in silence.
#[test]
fn a_recalled_order_reports_an_intent_in_progress_instead_of_skipping_it() {
    let ws = produced(3);
    let run = journalled(&ws);
    let in_progress = serial_of_device(&ws, "FU10000002");
    {
        let conn = rusqlite::Connection::open(ws.path("journal.sqlite")).unwrap();
        // As a crash between signing and storing leaves it.
        conn.execute(
            "UPDATE certificates SET status = 'intent', der = NULL WHERE serial_hex = ?1",
            [&in_progress],
        )
        .unwrap();
    }
    let recall = run(&[
        "revoke",
        "--order",
        "1",
        "--reason",
        "key-compromise",
        "--json",
    ]);
    assert_eq!(recall.code, 9, "{}\n{}", recall.stdout, recall.stderr);
    let lines = json_lines(&recall.stdout);
    let summary = lines.last().unwrap();
    assert_eq!(summary["revoked"], 2, "{summary}");
    assert_eq!(summary["refused"], 1, "{summary}");
    assert!(
        lines
            .iter()
            .any(|l| l["serial"] == in_progress.as_str() && l["outcome"] == "refused"),
        "{lines:?}"
    );
}

/// Someone who can write the database changes what a revocation says (its
/// reason, its time): `audit verify` names the difference from the audit
/// record, and a CRL would otherwise publish the altered entry.
#[test]
fn a_revocation_changed_behind_certmints_back_breaks_the_audit() {
    let ws = produced(1);
    let run = journalled(&ws);
    run(&[
        "revoke",
        "--device-serial",
        "FU10000001",
        "--reason",
        "key-compromise",
    ])
    .ok();
    audit_intact(&ws);
    for (column, value, named) in [
        ("reason", "unspecified", "reason"),
        ("revoked_at", "2030-01-01T00:00:00Z", "revocation time"),
        ("invalidity_date", "2026-01-01T00:00:00Z", "invalidity date"),
    ] {
        let copy = ws.path("tampered.sqlite");
        std::fs::copy(ws.path("journal.sqlite"), &copy).unwrap();
        let _ = std::fs::remove_file(ws.path("tampered.sqlite-wal"));
        if ws.exists("journal.sqlite-wal") {
            std::fs::copy(
                ws.path("journal.sqlite-wal"),
                ws.path("tampered.sqlite-wal"),
            )
            .unwrap();
        }
        let conn = rusqlite::Connection::open(&copy).unwrap();
        conn.execute(&format!("UPDATE revocations SET {column} = ?1"), [value])
            .unwrap();
        drop(conn);
        let verified = run_on_journal(
            &ws,
            &["audit", "verify", "--journal", copy.to_str().unwrap()],
            &[],
        );
        assert_eq!(
            verified.code, 6,
            "{column}: {}\n{}",
            verified.stdout, verified.stderr
        );
        let said = format!("{}{}", verified.stdout, verified.stderr);
        assert!(
            said.contains("differs from its audit record") && said.contains(named),
            "{column}: {said}"
        );
    }
}
