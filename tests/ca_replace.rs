//! `certmint ca add-issuing --replace`: a product line whose issuing CA was
//! revoked (`certmint revoke --ca-certificate`) gets a new one, signed by
//! the root; the retired certificate, key and CRL files are kept under
//! names that say so, the line signs again, and the root's CRL still lists
//! the old CA. OpenSSL checks the new chain, the CRLs and the rejection of
//! the old chain.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{run_on_journal, Run, Workspace};

fn run(ws: &Workspace, args: &[&str]) -> Run {
    run_on_journal(ws, args, &[])
}

/// `issue` of an ÖKC device certificate for `device` into `{device}.pem`,
/// from a fresh P-256 key: what it did.
fn issue_device(ws: &Workspace, device: &str) -> Run {
    ws.openssl_key(device, "p256");
    let public_key = format!("{device}.pub");
    let out = format!("{device}.pem");
    run(
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
    )
}

/// `ca crl --json` for `issuer`: its report.
fn crl(ws: &Workspace, issuer: &str) -> serde_json::Value {
    let out = run(
        ws,
        &["ca", "crl", "--ca", "ca", "--issuer", issuer, "--json"],
    )
    .ok();
    serde_json::from_str(&out.stdout).unwrap()
}

/// The serial OpenSSL reads from `cert`, upper-case hex without leading zeros.
fn serial_of(ws: &Workspace, cert: &str) -> String {
    let out = ws
        .openssl(&["x509", "-in", cert, "-noout", "-serial"])
        .ok()
        .stdout;
    out.trim()
        .trim_start_matches("serial=")
        .trim_start_matches('0')
        .to_uppercase()
}

/// `openssl verify -crl_check_all` of `cert` under the root, `issuing` and
/// the CRLs `crls` (PEM files).
fn verify_with_crls(ws: &Workspace, cert: &str, issuing: &str, crls: &[&str]) -> Run {
    let bundle: Vec<u8> = crls.iter().flat_map(|crl| ws.read(crl)).collect();
    ws.write("crls.pem", &bundle);
    ws.openssl(&[
        "verify",
        "-crl_check_all",
        "-CRLfile",
        "crls.pem",
        "-CAfile",
        "ca/root.pem",
        "-untrusted",
        issuing,
        cert,
    ])
}

fn said(run: &Run) -> String {
    format!("{}{}", run.stdout, run.stderr)
}

fn replace_okc(ws: &Workspace) -> Run {
    run(
        ws,
        &[
            "ca",
            "add-issuing",
            "--ca",
            "ca",
            "--line",
            "okc",
            "--replace",
            "--json",
        ],
    )
}

/// The ÖKC issuing CA in force is never replaced (exit 9, nothing
/// changed); once revoked, `--replace` retires it — certificate, key (still
/// mode 0600, unchanged) and its last CRL kept under `.retired-SERIAL`
/// names — and writes a new one signed by the root under the line's names.
/// The line, refused while its CA was revoked, signs again: the new device
/// certificate verifies with the new CA's CRL and the root's, which still
/// lists the old CA and so rejects the old chain ("certificate revoked").
/// Audited; the audit chain verifies.
#[test]
fn a_revoked_issuing_ca_is_replaced_and_the_line_signs_again() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    issue_device(&ws, "FU00000001").ok();
    crl(&ws, "okc");
    let old_certificate = ws.read("ca/okc-issuing.pem");
    let old_key = ws.read("ca/okc-issuing-key.pem");
    let old_crl = ws.read("ca/crl/okcshs-s1.crl");
    let old_serial = serial_of(&ws, "ca/okc-issuing.pem");

    let in_force = replace_okc(&ws);
    assert_eq!(in_force.code, 9, "{}", said(&in_force));
    assert!(
        in_force
            .stderr
            .contains("neither revoked on record nor expired"),
        "{}",
        in_force.stderr
    );
    assert!(in_force.stderr.contains("certmint revoke --ca-certificate"));
    assert_eq!(ws.read("ca/okc-issuing.pem"), old_certificate);
    assert!(!ws.exists(&format!("ca/okc-issuing.retired-{old_serial}.pem")));

    run(
        &ws,
        &[
            "revoke",
            "--ca-certificate",
            "ca/okc-issuing.pem",
            "--ca",
            "ca",
            "--reason",
            "key-compromise",
        ],
    )
    .ok();
    let refused = issue_device(&ws, "FU00000002");
    assert_eq!(refused.code, 9, "{}", said(&refused));

    let replaced = replace_okc(&ws).ok();
    let report: serde_json::Value = serde_json::from_str(&replaced.stdout).unwrap();
    assert_eq!(report["retired"]["serial"], old_serial.as_str(), "{report}");
    assert!(
        report["retired"]["why"]
            .as_str()
            .unwrap()
            .contains("key-compromise"),
        "{report}"
    );
    let retired_certificate = format!("ca/okc-issuing.retired-{old_serial}.pem");
    let retired_key = format!("ca/okc-issuing-key.retired-{old_serial}.pem");
    assert_eq!(ws.read(&retired_certificate), old_certificate);
    assert_eq!(ws.read(&retired_key), old_key);
    let mode = std::fs::metadata(ws.path(&retired_key))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        ws.read(&format!("ca/crl/okcshs-s1.retired-{old_serial}.crl")),
        old_crl
    );
    assert_ne!(ws.read("ca/okc-issuing.pem"), old_certificate);
    assert_ne!(ws.read("ca/okc-issuing-key.pem"), old_key);
    let chained = ws.openssl(&["verify", "-CAfile", "ca/root.pem", "ca/okc-issuing.pem"]);
    assert_eq!(chained.code, 0, "{}", said(&chained));
    assert_ne!(serial_of(&ws, "ca/okc-issuing.pem"), old_serial);

    // The line signs again, under the new CA.
    issue_device(&ws, "FU00000002").ok();
    crl(&ws, "okc");
    let arl = crl(&ws, "root");
    assert_eq!(arl["entries"], 1, "{arl}");
    let arl_text = ws
        .openssl(&["crl", "-in", "ca/crl/mmkshs-s1.crl.pem", "-text", "-noout"])
        .ok()
        .stdout;
    assert!(
        arl_text.contains(&format!("Serial Number: {old_serial}")),
        "{arl_text}"
    );
    let new_chain = verify_with_crls(
        &ws,
        "FU00000002.pem",
        "ca/okc-issuing.pem",
        &["ca/crl/okcshs-s1.crl.pem", "ca/crl/mmkshs-s1.crl.pem"],
    );
    assert_eq!(new_chain.code, 0, "{}", said(&new_chain));
    let old_chain = verify_with_crls(
        &ws,
        "FU00000001.pem",
        &retired_certificate,
        &[
            &format!("ca/crl/okcshs-s1.crl.retired-{old_serial}.pem"),
            "ca/crl/mmkshs-s1.crl.pem",
        ],
    );
    assert_ne!(old_chain.code, 0, "{}", said(&old_chain));
    assert!(
        said(&old_chain).contains("certificate revoked"),
        "{}",
        said(&old_chain)
    );

    // Replaced once: the new CA is in force, so a second replacement is refused.
    let again = replace_okc(&ws);
    assert_eq!(again.code, 9, "{}", said(&again));
    let audit = run(&ws, &["audit", "show"]).ok();
    assert!(
        audit.stdout.contains("ca.issuing-replaced"),
        "{}",
        audit.stdout
    );
    let verified = run(&ws, &["audit", "verify"]);
    assert_eq!(verified.code, 0, "{}", said(&verified));
}

/// The Mali Mühür line has no "add" — only a replacement, and only of a
/// retired CA; a line without an issuing CA of its own has nothing to
/// replace and is told to add one.
#[test]
fn only_a_retired_issuing_ca_of_the_line_is_replaced() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    let args = [
        "ca",
        "add-issuing",
        "--ca",
        "ca",
        "--line",
        "mali-muhur",
        "--replace",
    ];
    let in_force = run(&ws, &args);
    assert_eq!(in_force.code, 9, "{}", said(&in_force));
    let issuing = ws.read("ca/issuing.pem");
    run(
        &ws,
        &[
            "revoke",
            "--ca-certificate",
            "ca/issuing.pem",
            "--ca",
            "ca",
            "--reason",
            "cessation-of-operation",
        ],
    )
    .ok();
    let replaced = run(&ws, &args).ok();
    assert!(
        replaced
            .stdout
            .contains("Retired the mali-muhur issuing CA"),
        "{}",
        replaced.stdout
    );
    assert_ne!(ws.read("ca/issuing.pem"), issuing);
    let serial = serial_of(&ws, "ca/issuing.pem");
    assert!(!serial.is_empty());

    // A CA directory whose ÖKC certificates come from the Mali Mühür CA.
    let config = String::from_utf8(ws.read("ca/certmint-ca.toml")).unwrap();
    let shared: String = config
        .split("\n[")
        .filter(|section| !section.starts_with("okc_ca]"))
        .collect::<Vec<_>>()
        .join("\n[");
    ws.write("ca/certmint-ca.toml", shared.as_bytes());
    let nothing = run(
        &ws,
        &[
            "ca",
            "add-issuing",
            "--ca",
            "ca",
            "--line",
            "okc",
            "--replace",
        ],
    );
    assert_eq!(nothing.code, 8, "{}", said(&nothing));
    assert!(
        nothing.stderr.contains("(without --replace)"),
        "{}",
        nothing.stderr
    );
}
