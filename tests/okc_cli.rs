//! ÖKC batch production end to end through the `certmint` binary: orders
//! from serial lists, payment, production on the soft and SoftHSM2 targets,
//! crashes (SIGKILL) and resumption, delivery, purge, and the audit chain.
//! Certificates are checked with `openssl verify`, PKCS#12 files with
//! `openssl pkcs12`, tokens with OpenSC's pkcs11-tool.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use certmint::journal::{Journal, OrderId, SqlJournal};
use common::{
    ensure_manufacturer, import_and_pay, import_args, produce_args, session_processes_of,
    spawn_on_journal, Hsm, Run, Workspace, SPY_MODULE,
};

fn fixture(path: &str) -> String {
    format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// certmint with this workspace's journal and an operator name.
fn run(ws: &Workspace, args: &[&str]) -> Run {
    run_with(ws, args, &[])
}

fn run_with(ws: &Workspace, args: &[&str], extra: &[(&str, &str)]) -> Run {
    common::run_on_journal(ws, args, extra)
}

/// `n` distinct serials with `prefix`, one per line.
fn serial_list(ws: &Workspace, name: &str, prefix: &str, n: usize, seed: u64) -> Vec<String> {
    let mut x = seed;
    let mut serials = std::collections::BTreeSet::new();
    while serials.len() < n {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        serials.insert(format!(
            "{prefix}{:08}",
            10_000_000 + (x >> 33) % 90_000_000
        ));
    }
    let serials: Vec<String> = serials.into_iter().collect();
    ws.write(name, (serials.join("\n") + "\n").as_bytes());
    serials
}

fn import(ws: &Workspace, list: &str, extra: &[&str]) -> Run {
    let list = ws.path(list).display().to_string();
    ensure_manufacturer(|args| run(ws, args));
    run(ws, &import_args("FU,JI", &list, extra))
}

/// `devices` serials with `prefix` (from `seed`) in list.txt, imported with
/// `extra` arguments as order 1, and paid.
fn paid_order(ws: &Workspace, prefix: &str, devices: usize, seed: u64, extra: &[&str]) {
    serial_list(ws, "list.txt", prefix, devices, seed);
    let list = ws.path("list.txt").display().to_string();
    import_and_pay(|args| run(ws, args), "FU,JI", &list, "1", extra);
}

fn produce(ws: &Workspace, order: &str, extra: &[&str]) -> Run {
    run(ws, &produce_args(order, extra))
}

fn journal(ws: &Workspace) -> SqlJournal {
    SqlJournal::open(&ws.path("journal.sqlite")).unwrap()
}

/// Every device of the order has exactly one certificate that is not void.
fn assert_one_certificate_per_device(ws: &Workspace, order: i64, devices: usize) {
    let counts = journal(ws)
        .active_certificates_per_device(OrderId(order))
        .unwrap();
    assert_eq!(counts.len(), devices);
    let wrong: Vec<_> = counts.iter().filter(|(_, n)| *n != 1).collect();
    assert!(
        wrong.is_empty(),
        "devices without exactly one valid certificate: {wrong:?}"
    );
}

/// `openssl verify` of every certificate in the delivery.
fn assert_openssl_verifies_all(ws: &Workspace, order: i64, devices: usize) {
    let dir = ws.path(&format!("out/order-{order}/certs"));
    let mut pems: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".pem"))
        .collect();
    pems.sort();
    assert_eq!(pems.len(), devices);
    for chunk in pems.chunks(250) {
        let mut args = vec![
            "verify",
            "-CAfile",
            "ca/root.pem",
            "-untrusted",
            "ca/okc-issuing.pem",
        ];
        args.extend(chunk.iter().map(String::as_str));
        let out = ws.openssl(&args).ok();
        assert_eq!(
            out.stdout.lines().filter(|l| l.ends_with(": OK")).count(),
            chunk.len(),
            "{}",
            out.stdout
        );
    }
}

/// The manifest rows by device serial.
fn manifest(ws: &Workspace, order: i64) -> HashMap<String, Vec<String>> {
    let text = String::from_utf8(ws.read(&format!("out/order-{order}/manifest.csv"))).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("device_serial,certificate_serial,sha256,not_before,not_after")
    );
    lines
        .map(|l| {
            (
                l.split(',').next().unwrap().to_owned(),
                l.split(',').map(str::to_owned).collect(),
            )
        })
        .collect()
}

/// Every PKCS#12 opens with `openssl pkcs12` and the manifest password, and
/// its key is the key of the delivered certificate.
fn assert_pkcs12_files_open_and_match(ws: &Workspace, order: i64, devices: usize) {
    let passwords =
        String::from_utf8(ws.read(&format!("out/order-{order}.passwords.csv"))).unwrap();
    let rows: Vec<(String, String, String)> = passwords
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0].to_owned(), f[1].to_owned(), f[2].to_owned())
        })
        .collect();
    assert_eq!(rows.len(), devices);
    let folder = ws.path(&format!("out/order-{order}"));
    std::thread::scope(|s| {
        for part in rows.chunks(rows.len().div_ceil(4)) {
            let folder = folder.clone();
            s.spawn(move || {
                for (serial, file, password) in part {
                    let out = Command::new("openssl")
                        .args([
                            "pkcs12",
                            "-in",
                            file,
                            "-passin",
                            "env:P12_PASSWORD",
                            "-nodes",
                        ])
                        .env("P12_PASSWORD", password)
                        .current_dir(&folder)
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "{serial}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let pem = String::from_utf8_lossy(&out.stdout).into_owned();
                    let key_start = pem
                        .find("-----BEGIN PRIVATE KEY-----")
                        .expect("a private key");
                    let key = certmint::signer::SoftwareSigner::from_bytes(
                        &pem.as_bytes()[key_start..],
                        serial,
                    )
                    .unwrap();
                    let cert_der =
                        std::fs::read(folder.join(format!("certs/{serial}.der"))).unwrap();
                    let cert =
                        <x509_cert::Certificate as der::Decode>::from_der(&cert_der).unwrap();
                    let spki =
                        der::Encode::to_der(cert.tbs_certificate().subject_public_key_info())
                            .unwrap();
                    assert_eq!(
                        certmint::signer::Signer::public_key_der(&key),
                        spki.as_slice(),
                        "{serial}: key and certificate differ"
                    );
                    assert!(
                        pem.matches("BEGIN CERTIFICATE").count() >= 3,
                        "{serial}: certificate and CA chain"
                    );
                }
            });
        }
    });
}

fn audit_intact(ws: &Workspace) -> u64 {
    let out = run(ws, &["audit", "verify", "--json"]).ok();
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["problems"].as_array().unwrap().len(), 0, "{json}");
    json["records"].as_u64().unwrap()
}

#[test]
fn a_1000_device_soft_order_checks_out_and_a_rerun_issues_nothing() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    serial_list(&ws, "list.txt", "FU", 1000, 1);
    let imported = import(&ws, "list.txt", &[]).ok();
    assert!(
        imported.stdout.contains("Imported order 1: 1000 devices"),
        "{}",
        imported.stdout
    );
    run(&ws, &["order", "pay", "--order", "1"]).ok();
    let report = produce(&ws, "1", &["--json"]).ok();
    let json: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(json["produced_now"], 1000);

    assert_one_certificate_per_device(&ws, 1, 1000);
    assert_openssl_verifies_all(&ws, 1, 1000);
    assert_pkcs12_files_open_and_match(&ws, 1, 1000);
    let manifest = manifest(&ws, 1);
    assert_eq!(manifest.len(), 1000);
    // The manifest's fingerprint is the delivered certificate's.
    let (serial, row) = manifest.iter().next().unwrap();
    let fp = ws
        .openssl(&[
            "x509",
            "-in",
            &format!("out/order-1/certs/{serial}.pem"),
            "-noout",
            "-fingerprint",
            "-sha256",
        ])
        .ok();
    assert!(
        fp.stdout.trim().ends_with(&row[2]),
        "{} vs {}",
        fp.stdout,
        row[2]
    );
    let records = audit_intact(&ws);

    // A re-run issues nothing and writes nothing.
    let manifest_before = ws.read("out/order-1/manifest.csv");
    let again = produce(&ws, "1", &["--json"]).ok();
    let json: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(json["produced_now"], 0);
    assert_eq!(json["already_done"], 1000);
    assert_eq!(ws.read("out/order-1/manifest.csv"), manifest_before);
    assert_eq!(audit_intact(&ws), records);
    let status = run(&ws, &["order", "status", "--order", "1", "--json"]).ok();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["state"], "delivered");
    assert_eq!(status["verified"], 1000);
    assert!(status["purge_due"].as_str().is_some());
}

#[test]
fn production_refuses_an_unpaid_order() {
    let ws = Workspace::with_ca(&[]);
    serial_list(&ws, "list.txt", "FU", 5, 2);
    import(&ws, "list.txt", &[]).ok();
    let refused = produce(&ws, "1", &[]);
    assert_ne!(refused.code, 0);
    assert!(
        refused
            .stderr
            .contains("is not paid: production refuses an unpaid order"),
        "{}",
        refused.stderr
    );
    assert!(!ws.exists("out/order-1"));
    assert_eq!(journal(&ws).issued(OrderId(1), 0, 10).unwrap().len(), 0);
}

/// Imports `file` and expects refusal with these problem lines, and no order.
fn refused_list(file: &str, expected: &[&str]) {
    let ws = Workspace::with_ca(&[]);
    ensure_manufacturer(|args| run(&ws, args));
    let run_out = run(&ws, &import_args("FU,JI", &fixture(file), &[]));
    assert_eq!(run_out.code, 3, "{file}: {}", run_out.stderr);
    for line in expected {
        assert!(
            run_out.stderr.contains(line),
            "{file}: expected {line:?} in\n{}",
            run_out.stderr
        );
    }
    assert!(
        run_out.stderr.contains("nothing was imported"),
        "{}",
        run_out.stderr
    );
    let list = run(&ws, &["order", "list", "--json"]).ok();
    let list: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(list["orders"], serde_json::json!([]), "{file}");
}

#[test]
fn bad_serial_lists_are_reported_precisely_and_nothing_is_imported() {
    refused_list(
        "bad/malformed-lines.txt",
        &[
            "line 2: \"FU-0002254\" must be 2-3 capital letters followed by 7-8 digits",
            "line 3: \"fu00022548\"",
            "line 4: \"FU002254\"",
            "line 5: \"FU123456789\"",
            "line 6: \"FU 0022549\"",
        ],
    );
    refused_list(
        "bad/wrong-prefix.txt",
        &["line 2: \"AB00022548\" has prefix \"AB\", which is not among the approved prefixes FU, JI", "line 4: \"XYZ12345678\""],
    );
    refused_list(
        "bad/duplicates.txt",
        &[
            "line 3: FU00022547 repeats line 1",
            "line 5: FU00022548 repeats line 2",
        ],
    );
    refused_list(
        "bad/empty.txt",
        &[
            "file: the list contains no device serials",
            "(no usable serial in it)",
        ],
    );
    refused_list("bad/huge-line.txt", &["line 2:"]);
    refused_list("bad/binary.bin", &["binary"]);
    refused_list("bad/no-serial-column.csv", &["Sira", "Model", "Tarih"]);
}

#[test]
fn the_demo_list_is_a_semicolon_csv_with_a_bom_and_crlf() {
    let ws = Workspace::with_ca(&[]);
    ensure_manufacturer(|args| run(&ws, args));
    let out = run(
        &ws,
        &import_args("FU,JI", &fixture("orders/demo-okc-3000.csv"), &["--json"]),
    )
    .ok();
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["accepted"], 3000);
    assert_eq!(json["problem_count"], 0);
}

#[test]
fn serials_of_an_earlier_order_are_reported_and_good_lines_can_be_accepted() {
    let ws = Workspace::with_ca(&[]);
    let first = serial_list(&ws, "first.txt", "FU", 6, 3);
    import(&ws, "first.txt", &[]).ok();
    run(&ws, &["order", "pay", "--order", "1"]).ok();
    produce(&ws, "1", &[]).ok();
    // A new list repeating two certified serials of order 1.
    let list = format!("{}\nJI1234567\n{}\nJI7654321\n", first[0], first[1]);
    ws.write("second.txt", list.as_bytes());
    let refused = import(&ws, "second.txt", &[]);
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused.stderr.contains(&format!(
            "line 1: {} was already certified in order 1",
            first[0]
        )),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains(&format!(
            "line 3: {} was already certified in order 1",
            first[1]
        )),
        "{}",
        refused.stderr
    );
    let accepted = import(
        &ws,
        "second.txt",
        &["--accept-good-lines", "--additional-to", "1"],
    )
    .ok();
    assert!(
        accepted
            .stdout
            .contains("Imported order 2: 2 devices (2 problem line(s) skipped)"),
        "{}",
        accepted.stdout
    );
    let status: serde_json::Value = serde_json::from_str(
        &run(&ws, &["order", "status", "--order", "2", "--json"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(status["parent"], 1);
}

#[test]
fn an_additional_application_must_refer_to_the_same_manufacturer() {
    let ws = Workspace::with_ca(&[]);
    serial_list(&ws, "a.txt", "FU", 3, 4);
    import(&ws, "a.txt", &[]).ok();
    serial_list(&ws, "b.txt", "JI", 3, 5);
    run(
        &ws,
        &[
            "manufacturer",
            "register",
            "--vkn",
            "3230512384",
            "--name",
            "Başka A.Ş.",
            "--prefixes",
            "JI",
            "--model-approval",
            "GIB-ONAY-2026/18",
            "--secure-area-audit",
            "2026-02-01",
        ],
    )
    .ok();
    let other = run(
        &ws,
        &[
            "order",
            "import",
            "--manufacturer",
            "Başka A.Ş.",
            "--manufacturer-vkn",
            "3230512384",
            "--ca",
            "ca",
            "--prefixes",
            "JI",
            "--serials",
            &ws.path("b.txt").display().to_string(),
            "--additional-to",
            "1",
        ],
    );
    assert_ne!(other.code, 0);
    assert!(
        other
            .stderr
            .contains("order 1 belongs to VKN 4540536920, not 3230512384"),
        "{}",
        other.stderr
    );
}

/// `okc purge` judged at `now`: `--now` for a dry run, the debug builds'
/// test clock for a real one (a real purge takes no `--now`).
fn purge(ws: &Workspace, now: &str, extra: &[&str]) -> Run {
    let mut args = vec!["okc", "purge", "--out", "out"];
    args.extend_from_slice(extra);
    if extra.contains(&"--dry-run") {
        args.extend_from_slice(&["--now", now]);
        run(ws, &args)
    } else {
        run_with(ws, &args, &[("CERTMINT_TEST_NOW", now)])
    }
}

#[test]
fn purge_deletes_soft_key_material_after_ten_business_days_and_only_then() {
    let ws = Workspace::with_ca(&[]);
    paid_order(&ws, "FU", 4, 6, &[]);
    produce(&ws, "1", &[]).ok();
    let status: serde_json::Value = serde_json::from_str(
        &run(&ws, &["order", "status", "--order", "1", "--json"])
            .ok()
            .stdout,
    )
    .unwrap();
    let due = status["purge_due"].as_str().unwrap().to_owned(); // YYYY-MM-DD, end of that Turkish business day
    let p12_count = || {
        std::fs::read_dir(ws.path("out/order-1/p12"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(p12_count(), 4);

    // 23:59 in Turkey on the deadline day: not yet.
    let not_yet = purge(&ws, &format!("{due}T20:59:00Z"), &[]).ok();
    assert!(not_yet.stdout.contains("not due yet"), "{}", not_yet.stdout);
    assert_eq!(p12_count(), 4);
    // 00:00 the next day in Turkey: due. A dry run deletes nothing.
    let dry = purge(&ws, &format!("{due}T21:00:00Z"), &["--dry-run"]).ok();
    assert!(
        dry.stdout.contains("due: would delete 5 file(s)"),
        "{}",
        dry.stdout
    );
    assert_eq!(p12_count(), 4);
    assert!(ws.exists("out/order-1.passwords.csv"));

    let done = purge(&ws, &format!("{due}T21:00:00Z"), &[]).ok();
    assert!(
        done.stdout
            .contains("purged: 5 file(s) overwritten and deleted"),
        "{}",
        done.stdout
    );
    assert_eq!(p12_count(), 0);
    assert!(!ws.exists("out/order-1.passwords.csv"));
    assert!(
        ws.exists("out/order-1/certs"),
        "certificates are public and stay"
    );
    let status: serde_json::Value = serde_json::from_str(
        &run(&ws, &["order", "status", "--order", "1", "--json"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(status["state"], "purged");
    assert!(
        journal(&ws)
            .passwords(OrderId(1), 0, 10)
            .unwrap()
            .is_empty(),
        "stored passwords are erased"
    );

    // Idempotent.
    let again = purge(&ws, &format!("{due}T22:00:00Z"), &[]).ok();
    assert!(
        again.stdout.contains("No soft delivery awaits purging."),
        "{}",
        again.stdout
    );
    audit_intact(&ws);
}

#[test]
fn the_audit_chain_names_a_changed_a_deleted_and_a_reordered_record() {
    let ws = Workspace::with_ca(&[]);
    paid_order(&ws, "FU", 3, 7, &[]);
    produce(&ws, "1", &[]).ok();
    audit_intact(&ws);
    let original = ws.read("journal.sqlite");
    let tamper = |sql: &str| {
        ws.write("journal.sqlite", &original);
        let conn = rusqlite::Connection::open(ws.path("journal.sqlite")).unwrap();
        conn.execute_batch(sql).unwrap();
        drop(conn);
        run(&ws, &["audit", "verify"])
    };
    let changed = tamper("UPDATE audit SET operator = 'mallory' WHERE seq = 5;");
    assert_eq!(changed.code, 6, "{}", changed.stderr);
    assert!(
        changed
            .stderr
            .contains("record 5: was changed after it was written"),
        "{}",
        changed.stderr
    );

    let deleted = tamper("DELETE FROM audit WHERE seq = 4;");
    assert_eq!(deleted.code, 6);
    assert!(
        deleted
            .stderr
            .contains("record 4: records 4 to 4 are missing"),
        "{}",
        deleted.stderr
    );

    let reordered = tamper(
        "UPDATE audit SET seq = -1 WHERE seq = 6; UPDATE audit SET seq = 6 WHERE seq = 7; UPDATE audit SET seq = 7 WHERE seq = -1;",
    );
    assert_eq!(reordered.code, 6);
    assert!(
        reordered.stderr.contains("record 6:"),
        "{}",
        reordered.stderr
    );

    let cut = tamper("DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit);");
    assert_eq!(cut.code, 6);
    assert!(cut.stderr.contains("cut off the end"), "{}", cut.stderr);
}

/// The seed of a crash test: `CERTMINT_CRASH_SEED` replays a printed one;
/// otherwise the clock picks a new one each run.
fn crash_seed() -> u64 {
    match std::env::var("CERTMINT_CRASH_SEED") {
        Ok(seed) => seed.parse().expect("CERTMINT_CRASH_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

/// Kills `okc produce` with SIGKILL after random delays, `kills` times, then
/// lets it finish. The seed is printed so a failure can be replayed (the
/// kill points also depend on the machine's speed, so a replay is close, not exact).
fn produce_with_crashes(
    ws: &Workspace,
    order: &str,
    extra: &[&str],
    kills: usize,
    seed: u64,
    env: &[(&str, &str)],
) {
    eprintln!("crash test seed {seed}");
    let mut x = seed;
    let args = produce_args(order, extra);
    for _ in 0..kills {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(40 + (x >> 33) % 400);
        let mut child = common::certmint_on_journal(ws, "crash-test")
            .args(&args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    run_with(ws, &args, env).ok();
}

#[test]
fn sigkill_at_random_points_then_resume_soft_target() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    paid_order(&ws, "FU", 400, 8, &[]);
    let seed = crash_seed();
    produce_with_crashes(&ws, "1", &[], 6, seed, &[]);

    assert_one_certificate_per_device(&ws, 1, 400);
    assert_openssl_verifies_all(&ws, 1, 400);
    assert_pkcs12_files_open_and_match(&ws, 1, 400);
    // Every delivered certificate file is the one the journal issued.
    for (serial, row) in manifest(&ws, 1) {
        let der = ws.read(&format!("out/order-1/certs/{serial}.der"));
        let fp = certmint::pem::hex_colons(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der).as_ref(),
        );
        assert_eq!(fp, row[2], "{serial}");
    }
    audit_intact(&ws);
}

#[test]
fn sigkill_at_random_points_then_resume_softhsm_target() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    let hsm = Hsm::new(&ws, &["uretici"], "ALL");
    paid_order(&ws, "FU", 120, 9, &["--target", "hsm"]);
    let uri = hsm.uri("uretici", None);
    let conf = hsm.conf();
    let seed = crash_seed();
    produce_with_crashes(
        &ws,
        "1",
        &["--token", &uri],
        5,
        seed,
        &[("SOFTHSM2_CONF", conf.as_str())],
    );

    assert_one_certificate_per_device(&ws, 1, 120);
    assert_openssl_verifies_all(&ws, 1, 120);
    audit_intact(&ws);
    // The token holds exactly one private key, one public key and one certificate per device.
    let objects = hsm.objects("uretici");
    let mut per_label: HashMap<String, Vec<String>> = HashMap::new();
    for (kind, label) in objects {
        per_label.entry(label).or_default().push(kind);
    }
    let strays: Vec<_> = per_label
        .iter()
        .filter(|(_, kinds)| kinds.len() != 3)
        .collect();
    assert_eq!(
        per_label.len(),
        120,
        "one label per device, no orphans; odd labels: {strays:?}"
    );
    for (label, kinds) in per_label {
        assert_eq!(
            kinds,
            vec![
                "Certificate Object",
                "Private Key Object",
                "Public Key Object"
            ],
            "{label}"
        );
    }
}

#[test]
fn a_1000_device_softhsm_order_leaves_one_key_pair_and_certificate_per_device() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    let hsm = Hsm::new(&ws, &["uretici"], "ALL");
    paid_order(&ws, "JI", 1000, 10, &["--target", "hsm"]);
    let uri = hsm.uri("uretici", None);
    let conf = hsm.conf();
    let env = [("SOFTHSM2_CONF", conf.as_str())];
    let report = run_with(&ws, &produce_args("1", &["--token", &uri, "--json"]), &env).ok();
    let json: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(json["produced_now"], 1000);
    assert!(json["passwords"].is_null(), "no PKCS#12 for token keys");

    assert_one_certificate_per_device(&ws, 1, 1000);
    assert_openssl_verifies_all(&ws, 1, 1000);
    let mut per_label: HashMap<String, Vec<String>> = HashMap::new();
    for (kind, label) in hsm.objects("uretici") {
        per_label.entry(label).or_default().push(kind);
    }
    assert_eq!(per_label.len(), 1000);
    assert!(per_label.values().all(|kinds| kinds
        == &[
            "Certificate Object",
            "Private Key Object",
            "Public Key Object"
        ]));
    // A re-run issues nothing.
    let again = run_with(
        &ws,
        &[
            "okc", "produce", "--order", "1", "--ca", "ca", "--out", "out", "--token", &uri,
            "--json",
        ],
        &env,
    )
    .ok();
    let json: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(json["produced_now"], 0);
    assert_eq!(hsm.objects("uretici").len(), 3000);
    audit_intact(&ws);
}

/// A CA whose issuing key (P-256) was made in the `ca` token, and an order of
/// `devices` soft devices, paid. Returns the token and its environment.
fn order_for_a_ca_in_an_hsm(ws: &Workspace, devices: usize) -> (Hsm, String) {
    let hsm = Hsm::new(ws, &["ca"], "ALL");
    let conf = hsm.conf();
    let env = [("SOFTHSM2_CONF", conf.as_str())];
    let key = hsm.uri("ca", Some("issuing-2026"));
    run_with(
        ws,
        &["hsm", "keygen", "--key", &key, "--key-type", "p256"],
        &env,
    )
    .ok();
    run_with(
        ws,
        &["ca", "init", "--dir", "ca", "--okc-issuing-key", &key],
        &env,
    )
    .ok();
    paid_order(ws, "FU", devices, 21, &[]);
    (hsm, conf)
}

/// `okc produce` of order 1 started, its output piped.
fn spawn_produce(ws: &Workspace, extra: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    spawn_on_journal(ws, "test-operator", &produce_args("1", extra), env)
}

#[test]
fn a_ca_key_in_an_hsm_signs_a_batch_in_one_session_process_per_worker() {
    let ws = Workspace::new();
    let (_hsm, conf) = order_for_a_ca_in_an_hsm(&ws, 300);
    let env = [("SOFTHSM2_CONF", conf.as_str())];
    let child = spawn_produce(&ws, &["--json"], &env);
    // Both workers' sessions are processes of their own while the batch runs.
    let started = std::time::Instant::now();
    let mut seen = Vec::new();
    while seen.len() < 2 && started.elapsed() < Duration::from_secs(30) {
        seen = session_processes_of(child.id());
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = Run::from(child.wait_with_output().unwrap()).ok();
    assert_eq!(seen.len(), 2, "two session processes: {seen:?}");
    let json: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["produced_now"], 300);
    assert_one_certificate_per_device(&ws, 1, 300);
    assert_openssl_verifies_all(&ws, 1, 300);
    // Once the run is over, none of them is left behind.
    for pid in &seen {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "session process {pid} outlived the run"
        );
    }
    audit_intact(&ws);
}

#[test]
fn a_session_process_killed_mid_batch_stops_the_run_resumably() {
    let ws = Workspace::new();
    // Enough devices that signing lasts well beyond the first certificate
    // on a fast machine (3,000 can all be signed before a kill lands).
    let devices = 10_000;
    let (_hsm, conf) = order_for_a_ca_in_an_hsm(&ws, devices);
    let env = [("SOFTHSM2_CONF", conf.as_str())];
    let child = spawn_produce(&ws, &[], &env);
    let started = std::time::Instant::now();
    let sessions = loop {
        let sessions = session_processes_of(child.id());
        if sessions.len() == 2 || started.elapsed() > Duration::from_secs(30) {
            break sessions;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(sessions.len(), 2, "two session processes: {sessions:?}");
    // Some certificates are signed first; then one session's process dies,
    // as soon as the journal shows the first of them (a fixed pause could
    // outlast the whole order on a fast machine, or be too short on a slow one).
    let journal_path = ws.path("journal.sqlite");
    let started = std::time::Instant::now();
    loop {
        let issued: i64 = rusqlite::Connection::open_with_flags(
            &journal_path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM certificates WHERE status = 'issued'",
                [],
                |r| r.get(0),
            )
        })
        .unwrap_or(0);
        if issued > 0 || started.elapsed() > Duration::from_secs(60) {
            assert!(issued > 0, "no certificate issued within 60 s");
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let status = Command::new("kill")
        .args(["-KILL", &sessions[0].to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = Run::from(child.wait_with_output().unwrap());
    assert_ne!(out.code, 0, "the run stops: {}", out.stdout);
    assert!(
        out.stderr.contains("session process") && out.stderr.contains("can be resumed"),
        "{}",
        out.stderr
    );

    // The same command again finishes the order (the kill came before its
    // end): one certificate per device.
    let again = run_with(&ws, &produce_args("1", &["--json"]), &env).ok();
    let json: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    let produced_now = json["produced_now"].as_u64().unwrap();
    assert!(
        produced_now > 0 && produced_now <= devices as u64,
        "{}",
        again.stdout
    );
    assert_one_certificate_per_device(&ws, 1, devices);
    assert_openssl_verifies_all(&ws, 1, devices);
    audit_intact(&ws);
}

#[test]
fn a_wrong_ca_pin_with_two_workers_is_tried_once_and_nothing_is_produced() {
    let ws = Workspace::new();
    let hsm = Hsm::new(&ws, &["ca"], "ALL");
    let conf = hsm.conf();
    let module = common::softhsm_module();
    let spy_log = ws.path("spy.log").display().to_string();
    let env = [
        ("SOFTHSM2_CONF", conf.as_str()),
        ("PKCS11SPY", module.as_str()),
        ("PKCS11SPY_OUTPUT", spy_log.as_str()),
    ];
    // The CA key is reached through OpenSC's pkcs11-spy, which logs every call.
    ws.write("ca.pin", hsm.pin().as_bytes());
    let key = format!(
        "pkcs11:token=ca;object=issuing-2026?module-path={SPY_MODULE}&pin-source=file:{}",
        ws.path("ca.pin").display()
    );
    run_with(
        &ws,
        &["hsm", "keygen", "--key", &key, "--key-type", "p256"],
        &env,
    )
    .ok();
    run_with(
        &ws,
        &["ca", "init", "--dir", "ca", "--okc-issuing-key", &key],
        &env,
    )
    .ok();
    paid_order(&ws, "FU", 40, 22, &[]);

    // The PIN file now holds a wrong PIN; two workers would mean two session
    // processes, but the first one's C_Login is the only try.
    ws.write("ca.pin", b"00000000\n");
    std::fs::remove_file(&spy_log).unwrap();
    let refused = run_with(&ws, &produce_args("1", &[]), &env);
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("wrong PIN for token \"ca\"")
            && refused.stderr.contains("stopped after this one attempt"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("00000000"),
        "the PIN never appears"
    );
    let log = String::from_utf8_lossy(&ws.read("spy.log")).into_owned();
    assert_eq!(
        log.matches("C_Login").count(),
        1,
        "exactly one C_Login:\n{log}"
    );
    let counts = journal(&ws)
        .active_certificates_per_device(OrderId(1))
        .unwrap();
    assert!(counts.iter().all(|(_, n)| *n == 0), "{counts:?}");
}
