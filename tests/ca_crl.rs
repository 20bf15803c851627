//! `certmint ca crl` end to end: the revocations on record become a CRL
//! signed by the issuer's key (a software key or a SoftHSM2 token key),
//! which OpenSSL accepts (`openssl crl -verify`) and uses to reject a
//! revoked certificate while accepting its sibling (`openssl verify
//! -crl_check`); the root's CRL rejects a chain under a revoked issuing CA
//! (`-crl_check_all`); CRL Numbers go n, n+1 and a failed run never hands
//! its number out again; two runs on one folder do not interleave.

mod common;

use common::{run_on_journal, Hsm, Run, Workspace};

fn run(ws: &Workspace, args: &[&str]) -> Run {
    run_on_journal(ws, args, &[])
}

/// A workspace with a CA and an empty journal of record.
fn with_ca_and_journal() -> Workspace {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    drop(certmint::journal::SqlJournal::open(&ws.path("journal.sqlite")).unwrap());
    ws
}

/// Issues an ÖKC device certificate for `device` into `{device}.pem`, from a
/// fresh P-256 key.
fn device_certificate(ws: &Workspace, device: &str) {
    issue_device(ws, device, &[]).ok();
}

/// `issue` of an ÖKC device certificate for `device` into `{device}.pem`,
/// from a fresh P-256 key, with `env` variables: what it did.
fn issue_device(ws: &Workspace, device: &str, env: &[(&str, &str)]) -> Run {
    ws.openssl_key(device, "p256");
    let public_key = format!("{device}.pub");
    let out = format!("{device}.pem");
    run_on_journal(
        ws,
        &[
            "issue",
            "--ca",
            "ca",
            "--profile",
            "okc-device",
            "--public-key",
            &public_key,
            "--device-serial",
            device,
            "--manufacturer",
            "Örnek Yazarkasa",
            "--out",
            &out,
        ],
        env,
    )
}

/// `ca crl --json` for `issuer`, with `extra` arguments: its report.
fn crl(ws: &Workspace, issuer: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["ca", "crl", "--ca", "ca", "--issuer", issuer, "--json"];
    args.extend_from_slice(extra);
    let out = run(ws, &args).ok();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["schema"], "certmint.ca.crl/1", "{report}");
    report
}

/// `openssl crl -text` of a PEM CRL.
fn crl_text(ws: &Workspace, pem: &str) -> String {
    ws.openssl(&["crl", "-in", pem, "-text", "-noout"])
        .ok()
        .stdout
}

/// `openssl crl -verify` of a DER CRL under `ca_certificate`.
fn openssl_accepts(ws: &Workspace, der: &str, ca_certificate: &str) {
    let out = ws.openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        der,
        "-CAfile",
        ca_certificate,
        "-verify",
        "-noout",
    ]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        format!("{}{}", out.stdout, out.stderr).contains("verify OK"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
}

/// `openssl verify` of `cert` under the root, the ÖKC issuing CA and `crls`,
/// with `check` (`-crl_check` or `-crl_check_all`).
fn verify_with_crls(ws: &Workspace, cert: &str, crls: &[&str], check: &str) -> Run {
    let bundle: Vec<u8> = crls.iter().flat_map(|crl| ws.read(crl)).collect();
    ws.write("crls.pem", &bundle);
    ws.openssl(&[
        "verify",
        check,
        "-CRLfile",
        "crls.pem",
        "-CAfile",
        "ca/root.pem",
        "-untrusted",
        "ca/okc-issuing.pem",
        cert,
    ])
}

fn serial_of(ws: &Workspace, cert: &str) -> String {
    let out = ws
        .openssl(&["x509", "-in", cert, "-noout", "-serial"])
        .ok()
        .stdout;
    out.trim().trim_start_matches("serial=").to_owned()
}

fn audit_intact(ws: &Workspace) {
    let verified = run(ws, &["audit", "verify"]);
    assert_eq!(verified.code, 0, "{}\n{}", verified.stdout, verified.stderr);
}

#[test]
fn a_revoked_device_is_rejected_under_the_next_crl_and_its_sibling_accepted() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    device_certificate(&ws, "FU00000001");
    device_certificate(&ws, "FU00000002");

    // Before any revocation: an empty CRL, number 1, both certificates good.
    let empty = crl(&ws, "okc", &[]);
    assert_eq!(
        (empty["number"].as_u64(), empty["entries"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(empty["der_path"], "ca/crl/okcshs-s1.crl", "{empty}");
    openssl_accepts(&ws, "ca/crl/okcshs-s1.crl", "ca/okc-issuing.pem");
    let good = verify_with_crls(
        &ws,
        "FU00000001.pem",
        &["ca/crl/okcshs-s1.crl.pem"],
        "-crl_check",
    );
    assert_eq!(good.code, 0, "{}\n{}", good.stdout, good.stderr);

    run(
        &ws,
        &[
            "revoke",
            "--device-serial",
            "FU00000001",
            "--reason",
            "key-compromise",
            "--invalidity-date",
            &certmint::timestamp::now(),
        ],
    )
    .ok();
    let next = crl(&ws, "okc", &["--valid-for", "48h"]);
    assert_eq!(
        (next["number"].as_u64(), next["entries"].as_u64()),
        (Some(2), Some(1))
    );
    openssl_accepts(&ws, "ca/crl/okcshs-s1.crl", "ca/okc-issuing.pem");
    let text = crl_text(&ws, "ca/crl/okcshs-s1.crl.pem");
    let revoked_serial = serial_of(&ws, "FU00000001.pem");
    for expected in [
        "Version 2",
        "X509v3 CRL Number",
        "X509v3 Authority Key Identifier",
        "Key Compromise",
        "Invalidity Date",
        revoked_serial.as_str(),
    ] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }
    assert!(!text.contains(&serial_of(&ws, "FU00000002.pem")), "{text}");

    let revoked = verify_with_crls(
        &ws,
        "FU00000001.pem",
        &["ca/crl/okcshs-s1.crl.pem"],
        "-crl_check",
    );
    assert_ne!(revoked.code, 0);
    assert!(
        format!("{}{}", revoked.stdout, revoked.stderr).contains("certificate revoked"),
        "{}\n{}",
        revoked.stdout,
        revoked.stderr
    );
    let sibling = verify_with_crls(
        &ws,
        "FU00000002.pem",
        &["ca/crl/okcshs-s1.crl.pem"],
        "-crl_check",
    );
    assert_eq!(sibling.code, 0, "{}\n{}", sibling.stdout, sibling.stderr);

    // The Mali Mühür issuing CA keeps its own CRL and numbers.
    let seals = crl(&ws, "mali-muhur", &[]);
    assert_eq!(
        (seals["number"].as_u64(), seals["entries"].as_u64()),
        (Some(1), Some(0))
    );
    openssl_accepts(&ws, "ca/crl/mmeshs-s1.crl", "ca/issuing.pem");
    audit_intact(&ws);
}

#[test]
fn the_roots_crl_rejects_every_chain_under_a_revoked_issuing_ca() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    device_certificate(&ws, "FU00000001");
    crl(&ws, "okc", &[]);
    let first = crl(&ws, "root", &[]);
    assert_eq!(first["der_path"], "ca/crl/mmkshs-s1.crl", "{first}");
    openssl_accepts(&ws, "ca/crl/mmkshs-s1.crl", "ca/root.pem");
    let crls = ["ca/crl/okcshs-s1.crl.pem", "ca/crl/mmkshs-s1.crl.pem"];
    let before = verify_with_crls(&ws, "FU00000001.pem", &crls, "-crl_check_all");
    assert_eq!(before.code, 0, "{}\n{}", before.stdout, before.stderr);

    run(
        &ws,
        &[
            "revoke",
            "--ca-certificate",
            "ca/okc-issuing.pem",
            "--ca",
            "ca",
            "--reason",
            "ca-compromise",
        ],
    )
    .ok();
    let arl = crl(&ws, "root", &[]);
    assert_eq!(
        (arl["number"].as_u64(), arl["entries"].as_u64()),
        (Some(2), Some(1))
    );
    openssl_accepts(&ws, "ca/crl/mmkshs-s1.crl", "ca/root.pem");
    assert!(crl_text(&ws, "ca/crl/mmkshs-s1.crl.pem").contains("CA Compromise"));
    let after = verify_with_crls(&ws, "FU00000001.pem", &crls, "-crl_check_all");
    assert_ne!(after.code, 0);
    assert!(
        after.stderr.contains("certificate revoked")
            || after.stdout.contains("certificate revoked"),
        "{}\n{}",
        after.stdout,
        after.stderr
    );
    // A revoked issuing CA signs nothing more.
    let refused = issue_device(&ws, "FU00000002", &[]);
    assert_eq!(refused.code, 9, "{}\n{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("was revoked"), "{}", refused.stderr);
    assert!(!ws.exists("FU00000002.pem"));
    // The ARL is valid for 90 days unless told otherwise.
    let this_update = time::OffsetDateTime::parse(
        arl["this_update"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let next_update = time::OffsetDateTime::parse(
        arl["next_update"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(next_update - this_update, time::Duration::days(90));
    audit_intact(&ws);
}

#[test]
fn a_crl_signed_by_a_softhsm_issuing_key_verifies_with_openssl() {
    let ws = Workspace::new();
    let hsm = Hsm::new(&ws, &["ca"], "ALL");
    let conf = hsm.conf();
    let env = [("SOFTHSM2_CONF", conf.as_str())];
    let key = hsm.uri("ca", Some("okc-issuing-2026"));
    ws.certmint_env(
        &["hsm", "keygen", "--key", &key, "--key-type", "p384"],
        &env,
    )
    .ok();
    ws.certmint_env(
        &["ca", "init", "--dir", "ca", "--okc-issuing-key", &key],
        &env,
    )
    .ok();
    issue_device(&ws, "FU00000001", &env).ok();
    issue_device(&ws, "FU00000002", &env).ok();
    run(
        &ws,
        &[
            "revoke",
            "--device-serial",
            "FU00000002",
            "--reason",
            "cessation-of-operation",
        ],
    )
    .ok();
    let out = run_on_journal(
        &ws,
        &["ca", "crl", "--ca", "ca", "--issuer", "okc", "--json"],
        &env,
    )
    .ok();
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["entries"], 1, "{report}");
    openssl_accepts(&ws, "ca/crl/okcshs-s1.crl", "ca/okc-issuing.pem");
    let text = crl_text(&ws, "ca/crl/okcshs-s1.crl.pem");
    assert!(text.contains("ecdsa-with-SHA384"), "{text}");
    assert!(text.contains("Cessation Of Operation"), "{text}");
    let revoked = verify_with_crls(
        &ws,
        "FU00000002.pem",
        &["ca/crl/okcshs-s1.crl.pem"],
        "-crl_check",
    );
    assert_ne!(revoked.code, 0, "{}", revoked.stdout);
    let sibling = verify_with_crls(
        &ws,
        "FU00000001.pem",
        &["ca/crl/okcshs-s1.crl.pem"],
        "-crl_check",
    );
    assert_eq!(sibling.code, 0, "{}\n{}", sibling.stdout, sibling.stderr);
}

/// A run killed after its number was allocated, while it streams the
/// revocations, leaves the number spent: the next CRL gets the one after,
/// and the journal records only CRLs that were signed. (A file in the way
/// is refused before a number is allocated.)
#[test]
fn a_crl_run_killed_midway_never_hands_its_number_out_again() {
    let ws = with_ca_and_journal();
    device_certificate(&ws, "FU00000001");
    assert_eq!(crl(&ws, "okc", &["--out-dir", "out"])["number"], 1);

    // Half a million revocations, written straight into the journal, make
    // the next run long enough to be killed in the middle.
    let key_id = certmint::pem::hex(&ws.key_id_of("ca/okc-issuing.pem"));
    {
        let mut conn = rusqlite::Connection::open(ws.path("journal.sqlite")).unwrap();
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO revocations (serial_hex, issuer_key_id, revoked_at, reason, operator)
                     VALUES (?1, ?2, '2026-12-01T00:00:00Z', 'key-compromise', 'test')",
                )
                .unwrap();
            for i in 0..500_000u64 {
                insert
                    .execute(rusqlite::params![format!("4{i:031X}"), key_id])
                    .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let allocated = || -> i64 {
        rusqlite::Connection::open(ws.path("journal.sqlite"))
            .and_then(|conn| {
                conn.query_row(
                    "SELECT last_allocated FROM crl_numbers WHERE issuer_key_id = ?1",
                    [&key_id],
                    |r| r.get(0),
                )
            })
            .unwrap_or(0)
    };
    let mut child = common::certmint_on_journal(&ws, "test-operator")
        .args([
            "ca",
            "crl",
            "--ca",
            "ca",
            "--issuer",
            "okc",
            "--out-dir",
            "out",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while allocated() < 2 && started.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(allocated(), 2, "the killed run had allocated its number");

    let next = crl(&ws, "okc", &["--out-dir", "out"]);
    assert_eq!(next["number"], 3, "{next}");
    assert_eq!(next["entries"], 500_000, "{next}");
    let journal = certmint::journal::SqlJournal::open(&ws.path("journal.sqlite")).unwrap();
    use certmint::journal::Journal;
    let numbers: Vec<u64> = journal
        .crls(&ws.key_id_of("ca/okc-issuing.pem"))
        .unwrap()
        .iter()
        .map(|crl| crl.number)
        .collect();
    assert_eq!(
        numbers,
        [1, 3],
        "the killed run was stopped before it signed"
    );
}

#[test]
fn a_file_in_the_way_is_refused_before_a_number_is_spent() {
    let ws = with_ca_and_journal();
    std::fs::create_dir_all(ws.path("out/okcshs-s1.crl.pem")).unwrap();
    let refused = run(
        &ws,
        &[
            "ca",
            "crl",
            "--ca",
            "ca",
            "--issuer",
            "okc",
            "--out-dir",
            "out",
        ],
    );
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("okcshs-s1.crl.pem"),
        "{}",
        refused.stderr
    );
    assert!(!ws.exists("out/okcshs-s1.crl"), "nothing written");
    std::fs::remove_dir(ws.path("out/okcshs-s1.crl.pem")).unwrap();
    assert_eq!(crl(&ws, "okc", &["--out-dir", "out"])["number"], 1);
}

/// An operator on the wrong journal (a fresh one, another folder's) would
/// sign an empty CRL over the published one, taking every revocation back:
/// a CRL file that none of the journal's recorded CRLs is, is not replaced.
#[test]
fn a_crl_from_another_journal_never_replaces_the_published_one() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    device_certificate(&ws, "FU00000001");
    run(
        &ws,
        &[
            "revoke",
            "--device-serial",
            "FU00000001",
            "--reason",
            "key-compromise",
        ],
    )
    .ok();
    assert_eq!(crl(&ws, "okc", &[])["entries"], 1);
    let published = ws.read("ca/crl/okcshs-s1.crl");

    let other = ws.path("other.sqlite");
    let on_other = || {
        run_on_journal(
            &ws,
            &["ca", "crl", "--ca", "ca", "--issuer", "okc"],
            &[("CERTMINT_JOURNAL", other.to_str().unwrap())],
        )
    };
    // No journal there: nothing is made, nothing signed.
    let missing = on_other();
    assert_eq!(missing.code, 8, "{}\n{}", missing.stdout, missing.stderr);
    assert!(!other.exists());
    // Another, empty journal.
    drop(certmint::journal::SqlJournal::open(&other).unwrap());
    let wrong = on_other();
    assert_eq!(wrong.code, 9, "{}\n{}", wrong.stdout, wrong.stderr);
    assert!(
        wrong
            .stderr
            .contains("none of the CRLs this journal issued"),
        "{}",
        wrong.stderr
    );
    assert_eq!(ws.read("ca/crl/okcshs-s1.crl"), published);
    // The journal of record replaces its own CRL.
    assert_eq!(crl(&ws, "okc", &[])["number"], 2);
}

#[test]
fn a_second_crl_run_on_the_same_folder_waits_its_turn() {
    let ws = with_ca_and_journal();
    std::fs::create_dir(ws.path("out")).unwrap();
    let lock = std::fs::File::create(ws.path("out/.certmint-crl.lock")).unwrap();
    let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusiveNonblock).unwrap();
    let busy = run(
        &ws,
        &[
            "ca",
            "crl",
            "--ca",
            "ca",
            "--issuer",
            "okc",
            "--out-dir",
            "out",
        ],
    );
    assert_eq!(busy.code, 7, "{}\n{}", busy.stdout, busy.stderr);
    assert!(busy.stderr.contains("another certmint"), "{}", busy.stderr);
    drop(held);
    // Refused before a number was allocated: the first CRL is number 1.
    assert_eq!(crl(&ws, "okc", &["--out-dir", "out"])["number"], 1);
}

#[test]
fn bad_crl_requests_are_refused_with_their_exit_codes() {
    let ws = with_ca_and_journal();
    let refused = |args: &[&str], code: i32, says: &str| {
        let mut all = vec!["ca", "crl", "--ca", "ca"];
        all.extend_from_slice(args);
        let out = run(&ws, &all);
        assert_eq!(out.code, code, "{args:?}\n{}\n{}", out.stdout, out.stderr);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    };
    refused(&["--issuer", "bogus"], 2, "use okc, mali-muhur or root");
    refused(
        &["--issuer", "okc", "--valid-for", "400d"],
        2,
        "between 1 hour and 366 days",
    );
    refused(
        &["--issuer", "okc", "--valid-for", "30m"],
        2,
        "hours or days",
    );
    refused(
        &["--issuer", "okc", "--root-key", "k.pem"],
        2,
        "--issuer root only",
    );
    // None of them allocated a number or wrote a file.
    assert!(!ws.exists("ca/crl/okcshs-s1.crl"));
    assert_eq!(crl(&ws, "okc", &[])["number"], 1);

    // A directory made before the ÖKC issuing CA existed has no ÖKC CRL:
    // its ÖKC certificates are on the Mali Mühür issuing CA's.
    let old = with_ca_and_journal();
    let config = String::from_utf8(old.read("ca/certmint-ca.toml")).unwrap();
    assert!(config.contains("[okc_ca]"), "{config}");
    let mut without = String::new();
    let mut skipping = false;
    for line in config.lines() {
        if line.starts_with('[') {
            skipping = line == "[okc_ca]";
        }
        if !skipping {
            without.push_str(line);
            without.push('\n');
        }
    }
    old.write("ca/certmint-ca.toml", without.as_bytes());
    let out = run(&old, &["ca", "crl", "--ca", "ca", "--issuer", "okc"]);
    assert_eq!(out.code, 8, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("--issuer mali-muhur"), "{}", out.stderr);
}

/// A CA certificate whose serial no CRL can carry (zero) is refused at
/// `revoke`: recorded, it would make every later root CRL a lint refusal.
#[test]
fn a_ca_certificate_no_crl_can_list_is_not_recorded() {
    let ws = with_ca_and_journal();
    ws.openssl_key("rogue", "p256");
    ws.write(
        "ca.ext",
        b"[v3]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n",
    );
    ws.openssl(&[
        "x509",
        "-req",
        "-in",
        "rogue.csr",
        "-CA",
        "ca/root.pem",
        "-CAkey",
        "ca/root-key.pem",
        "-set_serial",
        "0",
        "-days",
        "30",
        "-extfile",
        "ca.ext",
        "-extensions",
        "v3",
        "-out",
        "zero.pem",
    ])
    .ok();
    let refused = run(
        &ws,
        &[
            "revoke",
            "--ca-certificate",
            "zero.pem",
            "--ca",
            "ca",
            "--reason",
            "ca-compromise",
        ],
    );
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("cannot be listed in a CRL"),
        "{}",
        refused.stderr
    );
    assert_eq!(crl(&ws, "root", &[])["entries"], 0);
}
