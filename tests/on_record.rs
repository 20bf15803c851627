//! Every certificate the CA key signs is on record: `issue`, and `hsm
//! provision` and `card provision` without an order, go through one-off
//! orders (or the device's own order); a second certificate for a device
//! is refused unless reissued; `cert list|show` and `audit show` find what
//! was issued; a journal written before the schema was versioned is
//! migrated on open. Every certificate is also checked by `openssl verify`.

mod common;

use std::time::{Duration, Instant};

use common::pcsc::{require_program, PcscStack};
use common::{run_on_journal, Hsm, Run, Workspace};

const VKN: &str = "4540536920";
const UNVAN: &str = "Örnek Bilişim Anonim Şirketi";

fn journalled(ws: &Workspace) -> impl Fn(&[&str]) -> Run + '_ {
    move |args| run_on_journal(ws, args, &[])
}

/// The JSON objects of a `--json` listing, one per line.
fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// `openssl verify` of each certificate `cert show --pem` prints for
/// `filter`, against the workspace CA; returns how many were checked.
fn verify_shown(ws: &Workspace, filter: &[&str]) -> usize {
    verify_shown_with(ws, filter, "ca/okc-issuing.pem")
}

/// As [`verify_shown`], an ÖKC certificate against the root and
/// `okc_issuing`, a Mali Mühür one against the root and `ca/issuing.pem`.
fn verify_shown_with(ws: &Workspace, filter: &[&str], okc_issuing: &str) -> usize {
    let mut args = vec!["cert", "show", "--pem", "--json"];
    args.extend_from_slice(filter);
    let shown = run_on_journal(ws, &args, &[]).ok();
    let mut checked = 0;
    for (i, c) in json_lines(&shown.stdout).iter().enumerate() {
        let pem = c["pem"].as_str().unwrap_or_else(|| panic!("no PEM in {c}"));
        let name = format!("shown-{i}.pem");
        ws.write(&name, pem.as_bytes());
        let issuing = if c["kind"] == "okc" {
            okc_issuing
        } else {
            "ca/issuing.pem"
        };
        let verified = ws.openssl(&[
            "verify",
            "-CAfile",
            "ca/root.pem",
            "-untrusted",
            issuing,
            &name,
        ]);
        assert_eq!(verified.code, 0, "{c}\n{}", verified.stderr);
        checked += 1;
    }
    checked
}

fn device_key(ws: &Workspace) {
    ws.openssl_key("device", "p256");
}

fn issue_device(ws: &Workspace, serial: &str, extra: &[&str]) -> Run {
    let out = format!("{serial}-{}.pem", extra.len());
    let mut args = vec![
        "issue",
        "--ca",
        "ca",
        "--profile",
        "okc-device",
        "--public-key",
        "device.pub",
        "--device-serial",
        serial,
        "--json",
        "--out",
        &out,
    ];
    args.extend_from_slice(extra);
    run_on_journal(ws, &args, &[])
}

fn serial_of(issued: &Run) -> String {
    let json: serde_json::Value = serde_json::from_str(&issued.stdout).unwrap();
    json["certificate"]["serial"].as_str().unwrap().to_owned()
}

#[test]
fn a_second_certificate_for_a_device_is_refused_and_a_reissue_supersedes_the_first() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    device_key(&ws);
    let first = issue_device(&ws, "FU00022547", &[]).ok();
    let first_serial = serial_of(&first);

    let refused = issue_device(&ws, "FU00022547", &["--test-mode"]);
    assert_eq!(refused.code, 9, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(&format!(
            "FU00022547 already has certificate {first_serial} on record"
        )),
        "{}",
        refused.stderr
    );
    assert!(!ws.exists("FU00022547-1.pem"), "nothing written");

    let second = issue_device(&ws, "FU00022547", &["--reissue"]).ok();
    let second_serial = serial_of(&second);
    assert_ne!(first_serial, second_serial);
    let json: serde_json::Value = serde_json::from_str(&second.stdout).unwrap();
    assert_eq!(json["superseded"], first_serial.as_str());
    for file in ["FU00022547-0.pem", "FU00022547-1.pem"] {
        assert_eq!(ws.verify_okc_chain(file).code, 0, "{file}");
    }

    // Both are on record, the first superseded by the second.
    let run = journalled(&ws);
    let shown = run(&["cert", "show", "--device-serial", "FU00022547"]).ok();
    let first_at = shown
        .stdout
        .find(&format!("Certificate {first_serial}"))
        .expect("the first certificate is shown");
    let second_at = shown
        .stdout
        .find(&format!("Certificate {second_serial}"))
        .expect("the second certificate is shown");
    let first_block = &shown.stdout[first_at..second_at];
    assert!(
        first_block.contains("Status:        superseded"),
        "{first_block}"
    );
    assert!(
        first_block.contains(&format!("Superseded by: {second_serial} at ")),
        "{first_block}"
    );
    assert!(
        shown.stdout[second_at..].contains("Status:        issued"),
        "{}",
        shown.stdout
    );
    let shown = run(&["cert", "show", "--device-serial", "FU00022547", "--json"]).ok();
    let records = json_lines(&shown.stdout);
    assert_eq!(records.len(), 2, "{}", shown.stdout);
    assert_eq!(records[0]["serial"], first_serial.as_str());
    assert_eq!(records[0]["status"], "superseded");
    assert_eq!(records[0]["superseded_by"], second_serial.as_str());
    assert_eq!(records[0]["superseded_operator"], "test-operator");
    assert_eq!(records[1]["serial"], second_serial.as_str());
    assert_eq!(records[1]["status"], "issued");
    assert_eq!(records[1]["device_serial"], "FU00022547");
    assert_eq!(records[0]["order"], records[1]["order"]);
    assert_eq!(verify_shown(&ws, &["--device-serial", "FU00022547"]), 2);

    // The one-off order and the reissue are audited, and the chain holds.
    let audit = run(&["audit", "show", "--json"]).ok();
    let events: Vec<String> = json_lines(&audit.stdout)
        .iter()
        .map(|r| r["event"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        events.contains(&"certificate.superseded".to_owned()),
        "{events:?}"
    );
    let received = json_lines(&audit.stdout)
        .into_iter()
        .find(|r| r["event"] == "order.received")
        .unwrap();
    assert!(
        received["details"]
            .as_str()
            .unwrap()
            .contains("one-off okc order"),
        "{received}"
    );
    assert!(
        received["details"]
            .as_str()
            .unwrap()
            .contains("from certmint issue"),
        "{received}"
    );
    run(&["audit", "verify"]).ok();
}

#[test]
fn a_device_of_an_imported_order_gets_its_certificate_there_and_only_once() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    device_key(&ws);
    ws.write("list.txt", b"FU10000001\nFU10000002\n");
    let run = journalled(&ws);
    common::import_and_pay(&run, "FU", "list.txt", "1", &[]);
    // Issued from a public key, the certificate attaches to the order's device.
    let issued = issue_device(&ws, "FU10000001", &[]).ok();
    let json: serde_json::Value = serde_json::from_str(&issued.stdout).unwrap();
    assert_eq!(json["order"], 1);
    assert_eq!(json["one_off"], false);
    // Production then certifies only the other device.
    let produced = run(&common::produce_args("1", &["--json"])).ok();
    let report: serde_json::Value = serde_json::from_str(&produced.stdout).unwrap();
    assert_eq!(report["produced_now"], 1, "{report}");
    assert_eq!(report["already_done"], 1, "{report}");
    // And the production's device refuses a second certificate.
    let refused = issue_device(&ws, "FU10000002", &[]);
    assert_eq!(refused.code, 9, "{}", refused.stderr);
    assert_eq!(verify_shown(&ws, &["--order", "1"]), 2);
    run(&["audit", "verify"]).ok();
}

#[test]
fn cert_list_finds_certificates_by_each_filter() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    device_key(&ws);
    ws.openssl_key("company", "p384");
    let run = journalled(&ws);
    // Order 1: an imported ÖKC order of two devices, produced.
    ws.write("list.txt", b"FU10000001\nFU10000002\n");
    common::import_and_pay(&run, "FU", "list.txt", "1", &[]);
    run(&common::produce_args("1", &[])).ok();
    // Order 2: a one-off ÖKC device; orders 3 and 4: two seals of the
    // company, numbered SIGN0 and SIGN1; order 5: a sole proprietor's seal.
    issue_device(&ws, "JI00000001", &[]).ok();
    for out in ["seal-a.pem", "seal-b.pem"] {
        run(&[
            "issue",
            "--ca",
            "ca",
            "--profile",
            "mali-muhur",
            "--csr",
            "company.csr",
            "--vkn",
            VKN,
            "--unvan",
            UNVAN,
            "--out",
            out,
        ])
        .ok();
        assert_eq!(ws.verify_chain(out).code, 0, "{out}");
    }
    run(&[
        "issue",
        "--ca",
        "ca",
        "--profile",
        "mali-muhur",
        "--csr",
        "company.csr",
        "--subject",
        &format!(
            "{}/fixtures/subjects/sole-proprietor.toml",
            env!("CARGO_MANIFEST_DIR")
        ),
        "--out",
        "sole.pem",
    ])
    .ok();

    let list = |filter: &[&str]| -> Vec<serde_json::Value> {
        let mut args = vec!["cert", "list", "--json"];
        args.extend_from_slice(filter);
        json_lines(&run(&args).ok().stdout)
    };
    let all = list(&[]);
    assert_eq!(all.len(), 6, "{all:?}");
    let field = |records: &[serde_json::Value], name: &str| -> Vec<String> {
        records
            .iter()
            .map(|r| r[name].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(
        field(&list(&["--order", "1"]), "device_serial"),
        ["FU10000001", "FU10000002"]
    );
    assert_eq!(
        field(&list(&["--device-serial", "JI00000001"]), "device_serial"),
        ["JI00000001"]
    );
    // The company is also order 1's manufacturer: its VKN finds both.
    let company = list(&["--vkn", VKN]);
    assert_eq!(company.len(), 4, "{company:?}");
    let seals: Vec<serde_json::Value> = company
        .into_iter()
        .filter(|c| c["kind"] == "mali-muhur")
        .collect();
    assert_eq!(
        field(&seals, "seal_label"),
        [format!("{VKN}SIGN0"), format!("{VKN}SIGN1")],
        "seals are numbered on from every seal the company got"
    );
    let seal = list(&["--seal-label", &format!("{VKN}SIGN1")]);
    assert_eq!(seal.len(), 1);
    assert_eq!(seal[0]["kind"], "mali-muhur");
    assert_eq!(seal[0]["target"], "external");
    assert_eq!(seal[0]["status"], "issued");
    assert_eq!(
        field(&list(&["--tckn", "17291716060"]), "seal_label"),
        ["17291716060SIGN0"]
    );
    // By serial, in any case and with colons; the order of each filter matches.
    let serial = all[2]["serial"].as_str().unwrap().to_owned();
    let colons: String = serial
        .to_ascii_lowercase()
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let by_serial = list(&["--serial", &colons]);
    assert_eq!(by_serial.len(), 1);
    assert_eq!(by_serial[0]["serial"], serial.as_str());
    assert_eq!(by_serial[0]["device_serial"], "JI00000001");
    // Filters combine.
    assert!(list(&["--order", "1", "--device-serial", "JI00000001"]).is_empty());
    // The table names each certificate once.
    let table = run(&["cert", "list", "--vkn", VKN]).ok().stdout;
    assert_eq!(
        table.lines().count(),
        1 + 4,
        "a header and four lines: {table}"
    );
    assert!(table.contains(&format!("{VKN}SIGN1")), "{table}");
    // Nothing found: `cert show` exits 8 (not found).
    let none = run(&["cert", "show", "--serial", "00FF"]);
    assert_eq!(none.code, 8, "{}", none.stderr);
    assert!(none
        .stderr
        .contains("no certificate on record matches --serial 00FF"));
    let no_order = run(&["order", "status", "--order", "99"]);
    assert_eq!(no_order.code, 8, "{}", no_order.stderr);
    assert_eq!(verify_shown(&ws, &["--tckn", "17291716060"]), 1);
    assert_eq!(verify_shown(&ws, &["--order", "1"]), 2);
    assert_eq!(verify_shown(&ws, &["--device-serial", "JI00000001"]), 1);
    run(&["audit", "verify"]).ok();
}

#[test]
fn audit_show_prints_an_orders_records_in_sequence_as_json_lines() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    let run = journalled(&ws);
    ws.write("one.txt", b"FU10000001\nFU10000002\n");
    ws.write("two.txt", b"JI10000001\n");
    common::import_and_pay(&run, "FU", "one.txt", "1", &[]);
    run(&common::import_args("JI", "two.txt", &[])).ok();
    run(&common::produce_args("1", &[])).ok();

    let all = json_lines(&run(&["audit", "show", "--json"]).ok().stdout);
    let order = json_lines(
        &run(&["audit", "show", "--order", "1", "--json"])
            .ok()
            .stdout,
    );
    assert!(!order.is_empty() && order.len() < all.len());
    let seqs: Vec<i64> = order.iter().map(|r| r["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let mut certificates = 0;
    for record in &order {
        let subject = record["subject"].as_str().unwrap();
        assert!(
            subject == "order 1" || subject.starts_with("device FU1000000"),
            "{record}"
        );
        assert!(record["operator"].is_string() && record["at"].is_string());
        if record["event"] == "device.certificate-issued" {
            certificates += 1;
        }
    }
    assert_eq!(certificates, 2);
    assert!(order.iter().any(|r| r["event"] == "order.paid"));
    assert!(all.iter().any(|r| r["subject"] == "order 2"));

    // Time bounds are instants: the whole log lies between its first and last.
    let first = all.first().unwrap()["at"].as_str().unwrap().to_owned();
    let last = all.last().unwrap()["at"].as_str().unwrap().to_owned();
    let between = json_lines(
        &run(&[
            "audit", "show", "--json", "--since", &first, "--until", &last,
        ])
        .ok()
        .stdout,
    );
    assert_eq!(between.len(), all.len());
    let later = json_lines(
        &run(&[
            "audit",
            "show",
            "--json",
            "--since",
            "2999-01-01T00:00:00+03:00",
        ])
        .ok()
        .stdout,
    );
    assert!(later.is_empty());
    let bad = run(&["audit", "show", "--since", "yesterday"]);
    assert_ne!(bad.code, 0);
    assert!(
        bad.stderr.contains("is not an RFC 3339 time"),
        "{}",
        bad.stderr
    );
    // Human lines: one per record.
    let text = run(&["audit", "show", "--order", "1"]).ok().stdout;
    assert_eq!(text.lines().count(), order.len());
    assert_eq!(verify_shown(&ws, &["--order", "1"]), 2);
}

#[test]
fn a_journal_written_before_schema_versions_is_migrated_and_still_verifies() {
    let ws = Workspace::new();
    let fixture = format!("{}/fixtures/journals/v0", env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir(ws.path("ca")).unwrap();
    for (from, to) in [
        ("journal.sqlite", "journal.sqlite"),
        ("journal.sqlite.audit-key", "journal.sqlite.audit-key"),
        ("journal.sqlite.checkpoints", "journal.sqlite.checkpoints"),
        ("root.pem", "ca/root.pem"),
        ("issuing.pem", "ca/issuing.pem"),
    ] {
        std::fs::copy(format!("{fixture}/{from}"), ws.path(to)).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        ws.path("journal.sqlite.audit-key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let version = |ws: &Workspace| -> i64 {
        rusqlite::Connection::open(ws.path("journal.sqlite"))
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(version(&ws), 0);

    let run = journalled(&ws);
    let verified = run(&["audit", "verify"]).ok();
    assert!(
        verified.stdout.contains("Audit chain intact: 11 records"),
        "{}",
        verified.stdout
    );
    assert_eq!(version(&ws), certmint::journal::SCHEMA_VERSION);
    let listed = json_lines(&run(&["cert", "list", "--json"]).ok().stdout);
    let devices: Vec<&str> = listed
        .iter()
        .map(|c| c["device_serial"].as_str().unwrap())
        .collect();
    assert_eq!(devices, ["FU10000001", "FU10000002", "FU10000003"]);
    assert!(listed
        .iter()
        .all(|c| c["status"] == "issued" && c["order"] == 1));
    // The fixture's CA had a single issuing CA, which signed its ÖKC certificates.
    assert_eq!(
        verify_shown_with(&ws, &["--order", "1"], "ca/issuing.pem"),
        3
    );
    let status = run(&["order", "status", "--order", "1"]).ok();
    assert!(status.stdout.contains("delivered"), "{}", status.stdout);
    // The migrated journal takes new records, refuses a device it holds,
    // and its chain still holds.
    // The fixture's CA has no configuration file: one from a fresh CA, and
    // the order's manufacturer registered (one more audit record).
    ws.certmint(&["ca", "init", "--dir", "fresh"]).ok();
    std::fs::copy(
        ws.path("fresh/certmint-ca.toml"),
        ws.path("ca/certmint-ca.toml"),
    )
    .unwrap();
    common::ensure_manufacturer(&run);
    ws.write("more.txt", b"FU10000003\nFU10000004\n");
    let refused = run(&common::import_args("FU", "more.txt", &[]));
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("FU10000003 was already certified in order 1"),
        "{}",
        refused.stderr
    );
    run(&common::import_args(
        "FU",
        "more.txt",
        &["--accept-good-lines"],
    ))
    .ok();
    let verified = run(&["audit", "verify"]).ok();
    assert!(
        verified.stdout.contains("Audit chain intact: 13 records"),
        "{}",
        verified.stdout
    );
}

// --- Seals provisioned without an order.

fn hsm_run(ws: &Workspace, hsm: &Hsm, args: &[&str]) -> Run {
    let conf = hsm.conf();
    run_on_journal(ws, args, &[("SOFTHSM2_CONF", conf.as_str())])
}

#[test]
fn a_standalone_hsm_seal_counts_when_the_company_orders_more() {
    let ws = Workspace::with_ca(&[]);
    let hsm = Hsm::new(&ws, &["musteri"], "ALL");
    let token = hsm.uri("musteri", None);
    let standalone = hsm_run(
        &ws,
        &hsm,
        &[
            "hsm",
            "provision",
            "--ca",
            "ca",
            "--token",
            &token,
            "--vkn",
            VKN,
            "--unvan",
            UNVAN,
            "--out",
            "standalone.pem",
            "--json",
        ],
    )
    .ok();
    let report: serde_json::Value = serde_json::from_str(&standalone.stdout).unwrap();
    assert_eq!(report["label"], format!("{VKN}SIGN0"));
    assert_eq!(report["order"], 1);
    assert_eq!(ws.verify_chain("standalone.pem").code, 0);

    // The company's first seal order numbers its seal SIGN1 and provisions
    // without a label clash.
    hsm_run(
        &ws,
        &hsm,
        &[
            "order",
            "import",
            "--kind",
            "mali-muhur",
            "--vkn",
            VKN,
            "--unvan",
            UNVAN,
            "--target",
            "hsm",
        ],
    )
    .ok();
    hsm_run(&ws, &hsm, &["order", "pay", "--order", "2"]).ok();
    hsm_run(
        &ws,
        &hsm,
        &[
            "hsm",
            "provision",
            "--ca",
            "ca",
            "--order",
            "2",
            "--token",
            &token,
        ],
    )
    .ok();
    let labels: std::collections::BTreeSet<String> =
        hsm.objects("musteri").into_iter().map(|(_, l)| l).collect();
    assert_eq!(
        labels.into_iter().collect::<Vec<_>>(),
        [format!("{VKN}SIGN0"), format!("{VKN}SIGN1")]
    );
    assert_eq!(hsm.objects("musteri").len(), 6);
    let listed = json_lines(
        &hsm_run(&ws, &hsm, &["cert", "list", "--vkn", VKN, "--json"])
            .ok()
            .stdout,
    );
    let seals: Vec<(String, i64)> = listed
        .iter()
        .map(|c| {
            (
                c["seal_label"].as_str().unwrap().to_owned(),
                c["order"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seals,
        [(format!("{VKN}SIGN0"), 1), (format!("{VKN}SIGN1"), 2)]
    );
    assert!(listed
        .iter()
        .all(|c| c["target"] == "hsm" && c["status"] == "issued"));
    // The certificate on the token is the one on record.
    let from_token = hsm.certificate(&ws, "musteri", &format!("{VKN}SIGN0"), "token.der");
    ws.openssl(&[
        "x509",
        "-in",
        "standalone.pem",
        "-outform",
        "DER",
        "-out",
        "standalone.der",
    ])
    .ok();
    assert_eq!(from_token, ws.read("standalone.der"));
    assert_eq!(verify_shown(&ws, &["--vkn", VKN]), 2);
    hsm_run(&ws, &hsm, &["audit", "verify"]).ok();
}

#[test]
fn a_standalone_hsm_run_refused_before_signing_leaves_no_order() {
    let ws = Workspace::with_ca(&[]);
    let hsm = Hsm::new(&ws, &["musteri"], "ALL");
    // A seal made outside this journal holds SIGN0 on the token.
    let token = hsm.uri("musteri", None);
    let provision = |extra: &[&str]| {
        let mut args = vec![
            "hsm",
            "provision",
            "--ca",
            "ca",
            "--token",
            &token,
            "--vkn",
            VKN,
            "--unvan",
            UNVAN,
        ];
        args.extend_from_slice(extra);
        hsm_run(&ws, &hsm, &args)
    };
    provision(&["--journal", "elsewhere.sqlite"]).ok();
    let refused = provision(&[]);
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    let orders = hsm_run(&ws, &hsm, &["order", "list", "--json"]).ok();
    let orders: serde_json::Value = serde_json::from_str(&orders.stdout).unwrap();
    assert_eq!(orders["orders"].as_array().unwrap().len(), 0, "{orders}");
    assert!(json_lines(&hsm_run(&ws, &hsm, &["cert", "list", "--json"]).ok().stdout).is_empty());
    // The seal made on the other journal is on that journal's record.
    assert_eq!(
        verify_shown(&ws, &["--journal", "elsewhere.sqlite", "--vkn", VKN]),
        1
    );
}

/// certmint with the stack's PC/SC socket and the workspace's journal,
/// stopped if it runs too long (a card path waiting for a card).
fn card_run(stack: &PcscStack, args: &[&str], extra: &[(&str, &str)]) -> Run {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_certmint"))
        .args(args)
        .envs(stack.env())
        .env("CERTMINT_JOURNAL", stack.path("journal.sqlite"))
        .env("CERTMINT_OPERATOR", "card-operator")
        .envs(extra.iter().copied())
        .current_dir(stack.path(""))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run certmint");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("certmint {args:?} still ran after two minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Run::from(child.wait_with_output().unwrap())
}

#[test]
fn a_standalone_card_seal_is_on_record() {
    require_program("openssl", "openssl");
    let card_key = "00112233445566778899AABBCCDDEEFF0011223344556677";
    let mut stack = PcscStack::start();
    card_run(&stack, &["ca", "init", "--dir", "ca"], &[]).ok();
    stack.start_card(0, &["--mgmt-key", card_key, "--pin", "24681357"]);
    let reader = stack.reader(0);
    let provisioned = card_run(
        &stack,
        &[
            "card",
            "provision",
            "--ca",
            "ca",
            "--reader",
            &reader,
            "--vkn",
            VKN,
            "--unvan",
            UNVAN,
            "--mgmt-key-env",
            "CARD_KEY",
            "--pin-env",
            "CARD_PIN",
            "--out",
            "seal.pem",
        ],
        &[("CARD_KEY", card_key), ("CARD_PIN", "24681357")],
    )
    .ok();
    assert!(
        provisioned.stdout.contains("On record in one-off order 1."),
        "{}",
        provisioned.stdout
    );
    let listed = card_run(&stack, &["cert", "list", "--json"], &[]).ok();
    let listed = json_lines(&listed.stdout);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["seal_label"], format!("{VKN}SIGN0"));
    assert_eq!(listed[0]["target"], "card");
    assert_eq!(listed[0]["status"], "issued");
    // The certificate on record is the one written to the card and to --out.
    let shown = card_run(
        &stack,
        &[
            "cert",
            "show",
            "--seal-label",
            &format!("{VKN}SIGN0"),
            "--pem",
            "--json",
        ],
        &[],
    )
    .ok();
    let pem = json_lines(&shown.stdout)[0]["pem"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        pem.trim(),
        std::fs::read_to_string(stack.path("seal.pem"))
            .unwrap()
            .trim()
    );
    let verified = stack.run(
        "openssl",
        &[
            "verify",
            "-CAfile",
            "ca/root.pem",
            "-untrusted",
            "ca/issuing.pem",
            "seal.pem",
        ],
    );
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    card_run(&stack, &["audit", "verify"], &[]).ok();
}

#[test]
fn a_card_pulled_after_signing_leaves_a_void_certificate_and_the_next_card_takes_the_same_seal() {
    require_program("openssl", "openssl");
    let card_key = "00112233445566778899AABBCCDDEEFF0011223344556677";
    let mut stack = PcscStack::start();
    card_run(&stack, &["ca", "init", "--dir", "ca"], &[]).ok();
    // The first card leaves when the certificate is written to it (PUT
    // DATA); the second stays in.
    let card = stack.start_card(
        0,
        &[
            "--mgmt-key",
            card_key,
            "--pin",
            "24681357",
            "--cards",
            "2",
            "--eject-idle-ms",
            "20000",
            "--insert-pause-ms",
            "1500",
            "--remove-on-ins",
            "db",
        ],
    );
    let reader = stack.reader(0);
    let provision = |stack: &PcscStack| {
        card_run(
            stack,
            &[
                "card",
                "provision",
                "--ca",
                "ca",
                "--reader",
                &reader,
                "--vkn",
                VKN,
                "--unvan",
                UNVAN,
                "--mgmt-key-env",
                "CARD_KEY",
                "--pin-env",
                "CARD_PIN",
                "--out",
                "seal.pem",
            ],
            &[("CARD_KEY", card_key), ("CARD_PIN", "24681357")],
        )
    };
    let pulled = provision(&stack);
    assert_eq!(pulled.code, 1, "{}", pulled.stderr);
    let listed = json_lines(
        &card_run(&stack, &["cert", "list", "--json"], &[])
            .ok()
            .stdout,
    );
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["status"], "void");
    assert_eq!(listed[0]["seal_label"], format!("{VKN}SIGN0"));
    let void_serial = listed[0]["serial"].as_str().unwrap().to_owned();
    assert!(
        pulled.stderr.contains(&format!(
            "certificate {void_serial} may have been signed but is not on a proved card: it is recorded as void"
        )),
        "{}",
        pulled.stderr
    );

    // The next card takes up the same seal, in the same one-off order.
    stack.wait_for_log(card, "card 2: power on", Duration::from_secs(20));
    provision(&stack).ok();
    let listed = json_lines(
        &card_run(&stack, &["cert", "list", "--json"], &[])
            .ok()
            .stdout,
    );
    let seen: Vec<(String, String, i64)> = listed
        .iter()
        .map(|c| {
            (
                c["seal_label"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["order"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (format!("{VKN}SIGN0"), "void".to_owned(), 1),
            (format!("{VKN}SIGN0"), "issued".to_owned(), 1)
        ]
    );
    let verified = stack.run(
        "openssl",
        &[
            "verify",
            "-CAfile",
            "ca/root.pem",
            "-untrusted",
            "ca/issuing.pem",
            "seal.pem",
        ],
    );
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    let status = card_run(&stack, &["order", "status", "--order", "1", "--json"], &[]).ok();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["one_off"], true);
    assert_eq!(status["state"], "produced");
    card_run(&stack, &["audit", "verify"], &[]).ok();
}

#[test]
fn a_device_whose_order_a_live_producer_holds_is_left_to_it() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    device_key(&ws);
    ws.write("list.txt", b"FU10000001\n");
    let run = journalled(&ws);
    common::import_and_pay(&run, "FU", "list.txt", "1", &[]);
    // A producer on another station holds order 1, renewed a minute ahead.
    let hold = |expires_at_ms: i64| {
        let conn = rusqlite::Connection::open(ws.path("journal.sqlite")).unwrap();
        conn.execute(
            "INSERT INTO station_leases (order_id, holder_id, host, boot_id, pid, operator, sharing, acquired_at, renewed_at, expires_at_ms)
             VALUES (1, 'other', 'other-station', 'boot', 4242, 'ayse', 'shared', '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', ?1)
             ON CONFLICT(order_id, holder_id) DO UPDATE SET expires_at_ms = ?1",
            [expires_at_ms],
        )
        .unwrap();
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    hold(now_ms + 60_000);
    let held = issue_device(&ws, "FU10000001", &[]);
    assert_eq!(held.code, 7, "{}", held.stderr);
    assert!(
        held.stderr.contains(
            "order 1 is being produced by another producer: operator ayse on host other-station"
        ),
        "{}",
        held.stderr
    );
    assert!(json_lines(&run(&["cert", "list", "--json"]).ok().stdout).is_empty());
    // Once its lease has expired unrenewed, the device is free to certify.
    hold(now_ms - 1);
    let issued = issue_device(&ws, "FU10000001", &[]).ok();
    assert_eq!(ws.verify_okc_chain("FU10000001-0.pem").code, 0);
    let json: serde_json::Value = serde_json::from_str(&issued.stdout).unwrap();
    assert_eq!(json["order"], 1);
    run(&["audit", "verify"]).ok();
}

/// The certificates the root key signs in `ca init` (its own and the two
/// issuing CAs') are on record like any other: each intent before the key
/// signs, each certificate after, in the audit log with its serial.
#[test]
fn the_ca_certificates_the_root_key_signs_are_on_record() {
    let ws = Workspace::new();
    let on = ["--journal", "ca-journal.sqlite"];
    let mut init = vec!["ca", "init", "--dir", "ca", "--key-type", "p256"];
    init.extend(on);
    ws.certmint(&init).ok();
    let mut show = vec!["audit", "show", "--json"];
    show.extend(on);
    let records = json_lines(&ws.certmint(&show).ok().stdout);
    let of = |event: &str| -> Vec<String> {
        records
            .iter()
            .filter(|r| r["event"] == event)
            .map(|r| r["subject"].as_str().unwrap().to_owned())
            .collect()
    };
    let (intents, issued) = (of("ca-certificate.intent"), of("ca-certificate.issued"));
    assert_eq!(issued.len(), 3, "{records:?}");
    assert_eq!(intents, issued, "an intent before each certificate");
    // Each intent comes before its certificate.
    for subject in &issued {
        let at = |event: &str| {
            records
                .iter()
                .position(|r| r["event"] == event && r["subject"] == subject.as_str())
                .unwrap()
        };
        assert!(at("ca-certificate.intent") < at("ca-certificate.issued"));
    }
    let trimmed = |hex: &str| hex.trim_start_matches('0').to_ascii_uppercase();
    for pem in ["ca/root.pem", "ca/issuing.pem", "ca/okc-issuing.pem"] {
        let serial = ws
            .openssl(&["x509", "-in", pem, "-noout", "-serial"])
            .ok()
            .stdout;
        let serial = trimmed(serial.trim().trim_start_matches("serial="));
        assert!(
            issued
                .iter()
                .any(|s| trimmed(s.trim_start_matches("certificate ")) == serial),
            "{pem} (serial {serial}) is not on record: {issued:?}"
        );
    }
    let mut verify = vec!["audit", "verify"];
    verify.extend(on);
    ws.certmint(&verify).ok();

    // A CA directory in the way is refused before anything is signed or
    // recorded: no journal is even made.
    std::fs::create_dir(ws.path("taken")).unwrap();
    ws.write("taken/root.pem", b"not ours");
    let refused = ws.certmint(&[
        "ca",
        "init",
        "--dir",
        "taken",
        "--journal",
        "other-journal.sqlite",
    ]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("already exists"),
        "{}",
        refused.stderr
    );
    assert!(!ws.exists("other-journal.sqlite"));
}
