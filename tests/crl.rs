//! CRLs end to end: built with the library (or `certmint bench --crl`) for
//! a CA that `certmint ca init` made, and checked by OpenSSL — the
//! signature under the CA certificate (`openssl crl -verify`), the entries
//! and extensions it shows (`openssl crl -text`), and a certificate chain
//! checked against them (`openssl verify -crl_check`, `-crl_check_all`).

mod common;

use std::process::Command;

use certmint::ca::{self, CaDirectory};
use certmint::crl::{self, CrlError, CrlInfo, CrlIssuer, CrlPaths, SignedCrl};
use certmint::keyref::{KeyRef, Unlock};
use certmint::revocation::{RevocationReason, RevokedEntry};
use certmint::signer::Signer;
use common::{Hsm, Workspace};
use time::macros::datetime;
use time::OffsetDateTime;

const UNVAN: &str = "Örnek Bilişim Anonim Şirketi";

fn open_ca(ws: &Workspace) -> CaDirectory {
    CaDirectory::open(
        &ws.path("ca"),
        certmint::profile::ProductLine::MaliMuhur,
        None,
        &Unlock::default(),
    )
    .unwrap()
}

fn info(number: u64) -> CrlInfo {
    let now = OffsetDateTime::now_utc();
    CrlInfo {
        number,
        this_update: now,
        next_update: now + time::Duration::days(7),
    }
}

fn entry(serial: &[u8], reason: RevocationReason) -> RevokedEntry {
    RevokedEntry {
        serial: serial.to_vec(),
        revoked_at: OffsetDateTime::now_utc() - time::Duration::hours(1),
        reason,
        invalidity_date: None,
    }
}

/// Builds a CRL of `entries` signed by `certificate_der`'s key `signer`.
fn crl_of(
    certificate_der: &[u8],
    signer: &dyn Signer,
    info: CrlInfo,
    entries: &[RevokedEntry],
) -> Result<SignedCrl, CrlError> {
    let issuer = CrlIssuer::new(certificate_der, signer)?;
    let mut builder = crl::CrlBuilder::start(&issuer, info)?;
    for entry in entries {
        builder.push(entry)?;
    }
    builder.finish()
}

/// Writes `crl` as `name` (DER) and `name.pem` in the workspace.
fn write(ws: &Workspace, crl: &SignedCrl, name: &str) {
    let paths = CrlPaths {
        der: ws.path(name),
        pem: ws.path(&format!("{name}.pem")),
    };
    crl::write_files(crl, &paths).unwrap();
}

/// `openssl crl -verify` of the DER file `crl` with the CA certificate `ca_pem`.
fn openssl_verifies(ws: &Workspace, crl: &str, ca_pem: &str) {
    let run = ws
        .openssl(&[
            "crl", "-inform", "DER", "-in", crl, "-CAfile", ca_pem, "-verify", "-noout",
        ])
        .ok();
    assert!(
        format!("{}{}", run.stdout, run.stderr).contains("verify OK"),
        "{} {}",
        run.stdout,
        run.stderr
    );
}

/// A certificate's serial as its DER INTEGER content octets, from OpenSSL.
fn serial_of(ws: &Workspace, cert: &str) -> Vec<u8> {
    let run = ws.openssl(&["x509", "-in", cert, "-noout", "-serial"]).ok();
    let hex = run
        .stdout
        .trim()
        .strip_prefix("serial=")
        .unwrap()
        .to_owned();
    let mut bytes = certmint::pem::parse_hex(&hex).unwrap();
    if bytes[0] & 0x80 != 0 {
        bytes.insert(0, 0);
    }
    bytes
}

fn issue_seal(ws: &Workspace, vkn: &str, key: &str, out: &str) {
    ws.openssl_key(key, "p384");
    ws.certmint(&[
        "issue",
        "--ca",
        "ca",
        "--profile",
        "mali-muhur",
        "--public-key",
        &format!("{key}.pub"),
        "--vkn",
        vkn,
        "--unvan",
        UNVAN,
        "--out",
        out,
    ])
    .ok();
}

#[test]
fn openssl_verifies_the_issuing_cas_crl_and_shows_reasons_dates_number_and_aki() {
    let ws = Workspace::with_ca(&[]);
    let ca = open_ca(&ws);
    let mut compromised = entry(&[0x41, 0x02], RevocationReason::KeyCompromise);
    compromised.invalidity_date = Some(datetime!(2026-10-01 12:00:00 UTC));
    let entries = [
        entry(&[0x41, 0x01], RevocationReason::Unspecified),
        compromised,
        entry(&[0x41, 0x03], RevocationReason::Superseded),
        entry(&[0x41, 0x04], RevocationReason::CessationOfOperation),
    ];
    let crl = crl_of(ca.ca.certificate_der(), ca.ca.signer(), info(7), &entries).unwrap();
    write(&ws, &crl, "issuing.crl");
    openssl_verifies(&ws, "issuing.crl", "ca/issuing.pem");
    // The root did not sign it.
    let wrong = ws.openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        "issuing.crl",
        "-CAfile",
        "ca/root.pem",
        "-verify",
        "-noout",
    ]);
    assert!(!format!("{}{}", wrong.stdout, wrong.stderr).contains("verify OK"));

    let text = ws
        .openssl(&["crl", "-in", "issuing.crl.pem", "-text", "-noout"])
        .ok()
        .stdout;
    assert!(text.contains("Version 2 (0x1)"), "{text}");
    assert!(
        text.contains("Signature Algorithm: ecdsa-with-SHA384"),
        "{text}"
    );
    assert!(
        text.contains("X509v3 CRL Number: \n                7"),
        "{text}"
    );
    let ski = ws
        .openssl(&[
            "x509",
            "-in",
            "ca/issuing.pem",
            "-noout",
            "-ext",
            "subjectKeyIdentifier",
        ])
        .ok()
        .stdout;
    let ski = ski.lines().nth(1).unwrap().trim().to_owned();
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    assert!(text.contains(&ski), "AKI {ski} in {text}");
    assert!(text.contains("Key Compromise"), "{text}");
    assert!(text.contains("Superseded"), "{text}");
    assert!(text.contains("Cessation Of Operation"), "{text}");
    assert!(
        text.contains("Invalidity Date: \n                Oct  1 12:00:00 2026 GMT"),
        "{text}"
    );
    // Four entries, three reason codes: `unspecified` carries none.
    assert_eq!(text.matches("Serial Number:").count(), 4, "{text}");
    assert_eq!(text.matches("X509v3 CRL Reason Code").count(), 3, "{text}");
    let first = text.split("Serial Number: 4101").nth(1).unwrap();
    let first = first.split("Serial Number:").next().unwrap();
    assert!(!first.contains("Reason Code"), "{first}");
    // The issuer is the issuing CA's subject.
    let issuer = ws
        .openssl(&[
            "x509",
            "-in",
            "ca/issuing.pem",
            "-noout",
            "-subject",
            "-nameopt",
            "RFC2253",
        ])
        .ok()
        .stdout;
    let crl_issuer = ws
        .openssl(&[
            "crl",
            "-in",
            "issuing.crl.pem",
            "-noout",
            "-issuer",
            "-nameopt",
            "RFC2253",
        ])
        .ok()
        .stdout;
    assert_eq!(
        issuer.trim().strip_prefix("subject=").unwrap(),
        crl_issuer.trim().strip_prefix("issuer=").unwrap()
    );
}

#[test]
fn openssl_verify_rejects_a_revoked_certificate_and_a_certificate_under_a_revoked_issuing_ca() {
    let ws = Workspace::with_ca(&[]);
    issue_seal(&ws, "4540536920", "revoked", "revoked.pem");
    issue_seal(&ws, "3230512384", "sibling", "sibling.pem");
    let ca = open_ca(&ws);
    let revoked = serial_of(&ws, "revoked.pem");
    let issuing_crl = crl_of(
        ca.ca.certificate_der(),
        ca.ca.signer(),
        info(1),
        &[entry(&revoked, RevocationReason::KeyCompromise)],
    )
    .unwrap();
    write(&ws, &issuing_crl, "issuing.crl");
    let verify = |cert: &str, extra: &[&str]| {
        let mut args = vec![
            "verify",
            "-CAfile",
            "ca/root.pem",
            "-untrusted",
            "ca/issuing.pem",
        ];
        args.extend_from_slice(extra);
        args.push(cert);
        ws.openssl(&args)
    };
    let check = ["-crl_check", "-CRLfile", "issuing.crl.pem"];
    let run = verify("revoked.pem", &check);
    assert_ne!(run.code, 0);
    assert!(
        format!("{}{}", run.stdout, run.stderr).contains("certificate revoked"),
        "{}",
        run.stderr
    );
    verify("sibling.pem", &check).ok();

    // The root's CRL (ARL): empty, the chain passes -crl_check_all; listing
    // the issuing CA, every certificate under it is refused.
    let root_key = KeyRef::parse(ca::ROOT_KEY_FILE, &ws.path("ca"))
        .unwrap()
        .open(&Unlock::default())
        .unwrap();
    let empty_arl = crl_of(&ca.root_der, root_key.as_ref(), info(1), &[]).unwrap();
    write(&ws, &empty_arl, "root.crl");
    openssl_verifies(&ws, "root.crl", "ca/root.pem");
    let all = [
        "-crl_check_all",
        "-CRLfile",
        "issuing.crl.pem",
        "-CRLfile",
        "root.crl.pem",
    ];
    verify("sibling.pem", &all).ok();
    let issuing_serial = serial_of(&ws, "ca/issuing.pem");
    let arl = crl_of(
        &ca.root_der,
        root_key.as_ref(),
        info(2),
        &[entry(&issuing_serial, RevocationReason::CaCompromise)],
    )
    .unwrap();
    write(&ws, &arl, "root.crl");
    let run = verify("sibling.pem", &all);
    assert_ne!(run.code, 0);
    assert!(
        format!("{}{}", run.stdout, run.stderr).contains("certificate revoked"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_crl_signed_by_a_softhsm_key_verifies_with_openssl() {
    let ws = Workspace::new();
    let hsm = Hsm::new(&ws, &["ca"], "ALL");
    let conf = hsm.conf();
    let env = [("SOFTHSM2_CONF", conf.as_str())];
    let key = hsm.uri("ca", Some("issuing-2026"));
    ws.certmint_env(
        &["hsm", "keygen", "--key", &key, "--key-type", "p384"],
        &env,
    )
    .ok();
    // bench --crl signs as the ÖKC issuing CA: its key is the token's.
    ws.certmint_env(
        &["ca", "init", "--dir", "ca", "--okc-issuing-key", &key],
        &env,
    )
    .ok();
    let run = ws
        .certmint_env(
            &[
                "bench",
                "--crl",
                "50",
                "--ca",
                "ca",
                "--crl-out",
                "out",
                "--json",
            ],
            &env,
        )
        .ok();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["key"], key.as_str(), "{report}");
    assert_eq!(report["crl"]["entries"], 50, "{report}");
    openssl_verifies(&ws, "out/bench.crl", "ca/okc-issuing.pem");
    let text = ws
        .openssl(&["crl", "-in", "out/bench.crl.pem", "-text", "-noout"])
        .ok()
        .stdout;
    assert_eq!(text.matches("Serial Number:").count(), 50);
}

#[test]
fn bench_crl_writes_a_crl_openssl_accepts_and_reports_its_size() {
    let ws = Workspace::new();
    let run = ws
        .certmint(&["bench", "--crl", "1000", "--crl-out", "out", "--json"])
        .ok();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["schema"], "certmint.bench.crl/1");
    let crl = &report["crl"];
    assert_eq!(crl["entries"], 1000, "{report}");
    let der_len = std::fs::metadata(ws.path("out/bench.crl")).unwrap().len();
    assert_eq!(crl["der_bytes"], der_len, "{report}");
    assert!(crl["peak_growth_kib"].is_u64(), "{report}");
    openssl_verifies(&ws, "out/bench.crl", "out/ca/okc-issuing.pem");
    let text = ws
        .openssl(&["crl", "-in", "out/bench.crl.pem", "-text", "-noout"])
        .ok()
        .stdout;
    assert_eq!(text.matches("Serial Number:").count(), 1000);
}

#[test]
fn an_empty_crl_has_no_revoked_certificates_and_verifies() {
    let ws = Workspace::with_ca(&[]);
    let ca = open_ca(&ws);
    let crl = crl_of(ca.ca.certificate_der(), ca.ca.signer(), info(1), &[]).unwrap();
    write(&ws, &crl, "empty.crl");
    openssl_verifies(&ws, "empty.crl", "ca/issuing.pem");
    let text = ws
        .openssl(&["crl", "-in", "empty.crl.pem", "-text", "-noout"])
        .ok()
        .stdout;
    assert!(text.contains("No Revoked Certificates."), "{text}");
}

#[test]
fn unsorted_or_duplicate_entries_are_a_lint_refusal_exit_4() {
    let ws = Workspace::with_ca(&[]);
    let ca = open_ca(&ws);
    for (entries, lint) in [
        (
            [
                entry(&[0x41, 0x02], RevocationReason::Superseded),
                entry(&[0x41, 0x01], RevocationReason::Superseded),
            ],
            "crl.entries_sorted",
        ),
        (
            [
                entry(&[0x41, 0x02], RevocationReason::Superseded),
                entry(&[0x41, 0x02], RevocationReason::KeyCompromise),
            ],
            "crl.duplicate_serial",
        ),
    ] {
        let error = crl_of(ca.ca.certificate_der(), ca.ca.signer(), info(1), &entries).unwrap_err();
        assert_eq!(certmint::error::kind_of(&error).exit_code(), 4, "{error}");
        assert!(
            matches!(&error, CrlError::Lint(report) if report.has(lint)),
            "{error}"
        );
    }
}

#[test]
fn times_after_2049_are_generalized_time_and_openssl_reads_them() {
    let ws = Workspace::with_ca(&[]);
    let ca = open_ca(&ws);
    let late = CrlInfo {
        number: 3,
        this_update: datetime!(2050-01-02 03:04:05 UTC),
        next_update: datetime!(2050-01-09 03:04:05 UTC),
    };
    let mut revoked = entry(&[0x41], RevocationReason::Superseded);
    revoked.revoked_at = datetime!(2050-01-01 00:00:00 UTC);
    let crl = crl_of(ca.ca.certificate_der(), ca.ca.signer(), late, &[revoked]).unwrap();
    write(&ws, &crl, "late.crl");
    openssl_verifies(&ws, "late.crl", "ca/issuing.pem");
    let asn1 = ws
        .openssl(&["asn1parse", "-inform", "DER", "-in", "late.crl"])
        .ok()
        .stdout;
    assert_eq!(asn1.matches("GENERALIZEDTIME").count(), 3, "{asn1}");
    assert!(!asn1.contains("UTCTIME"), "{asn1}");
    let text = ws
        .openssl(&["crl", "-in", "late.crl.pem", "-text", "-noout"])
        .ok()
        .stdout;
    assert!(
        text.contains("Last Update: Jan  2 03:04:05 2050 GMT"),
        "{text}"
    );
}

/// Peak resident memory (GNU time, a tool we did not write) of `bench
/// --crl entries`, and the CRL's size.
fn peak_rss_and_size(entries: usize) -> (u64, u64) {
    let ws = Workspace::new();
    let out = Command::new("/usr/bin/time")
        .args([
            "-f",
            "peak_rss_kib=%M",
            env!("CARGO_BIN_EXE_certmint"),
            "bench",
            "--crl",
        ])
        .arg(entries.to_string())
        .args(["--crl-out", "out"])
        .current_dir(ws.dir.path())
        .output()
        .expect("GNU time (apt-get install time)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let peak = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kib="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {stderr}"));
    (
        peak,
        std::fs::metadata(ws.path("out/bench.crl")).unwrap().len(),
    )
}

/// A CRL of 200,000 entries: the peak memory grows by about the CRL's own
/// size over a CRL of 2,000, not more (the entries are streamed into the
/// output, not collected). A memory bound, not a timing.
#[test]
fn peak_memory_of_a_crl_grows_only_by_its_own_size() {
    let (small_rss, small_size) = peak_rss_and_size(2_000);
    let (large_rss, large_size) = peak_rss_and_size(200_000);
    let growth_kib = large_rss.saturating_sub(small_rss);
    let output_kib = (large_size - small_size) / 1024;
    eprintln!("peak RSS: 2,000 entries {small_rss} KiB, 200,000 entries {large_rss} KiB; CRL grew {output_kib} KiB");
    assert!(
        output_kib > 9_000,
        "a 200,000-entry CRL is ~10 MB: {output_kib} KiB"
    );
    assert!(
        growth_kib * 4 <= output_kib * 5 + 4 * 1024,
        "memory grew {growth_kib} KiB for {output_kib} KiB more CRL: more than 1.25× its size"
    );
}
