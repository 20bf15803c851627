//! A seal provisioned without an order and a seal of an imported order go
//! through the same pipeline: their certificates differ only where two
//! certificates must (serial, validity, key and its identifier).

mod common;

use common::{run_on_journal, Hsm, Run, Workspace};

const VKN: &str = "4540536920";
const UNVAN: &str = "Örnek Bilişim Anonim Şirketi";

fn hsm_run(ws: &Workspace, hsm: &Hsm, args: &[&str]) -> Run {
    let conf = hsm.conf();
    run_on_journal(ws, args, &[("SOFTHSM2_CONF", conf.as_str())])
}

/// What OpenSSL prints of a certificate, without the lines that differ
/// between any two certificates of one profile: serial, validity, public
/// key, subject key identifier, signature value.
fn profile_of(ws: &Workspace, pem: &str) -> Vec<String> {
    let text = ws.openssl_text(pem);
    let mut kept = Vec::new();
    let mut skip_hex = false;
    let mut skip_next = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("Signature Value") {
            break;
        }
        if std::mem::take(&mut skip_next) {
            continue;
        }
        let hex = trimmed.chars().all(|c| c.is_ascii_hexdigit() || c == ':');
        if skip_hex && hex {
            continue;
        }
        skip_hex = false;
        if trimmed.starts_with("Not Before") || trimmed.starts_with("Not After") {
            continue;
        }
        skip_next = trimmed.starts_with("X509v3 Subject Key Identifier");
        skip_hex = trimmed.starts_with("pub:") || trimmed.starts_with("Serial Number:");
        kept.push(trimmed.to_owned());
    }
    kept
}

#[test]
fn a_standalone_seal_and_an_orders_seal_have_the_same_profile() {
    let ws = Workspace::with_ca(&[]);
    let hsm = Hsm::new(&ws, &["musteri"], "ALL");
    let token = hsm.uri("musteri", None);
    hsm_run(
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
        ],
    )
    .ok();
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
    hsm.certificate(&ws, "musteri", &format!("{VKN}SIGN1"), "ordered.der");
    ws.openssl(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        "ordered.der",
        "-out",
        "ordered.pem",
    ])
    .ok();
    assert_eq!(ws.verify_chain("standalone.pem").code, 0);
    assert_eq!(ws.verify_chain("ordered.pem").code, 0);
    let (standalone, ordered) = (
        profile_of(&ws, "standalone.pem"),
        profile_of(&ws, "ordered.pem"),
    );
    // The comparison means something: the extensions are there.
    assert!(
        standalone.iter().any(|l| l.starts_with("X509v3 Key Usage")),
        "{standalone:#?}"
    );
    assert!(
        standalone
            .iter()
            .any(|l| l.starts_with("X509v3 Certificate Policies")),
        "{standalone:#?}"
    );
    assert_eq!(standalone, ordered);
    // The two serials and keys differ: two certificates, not one read twice.
    assert_ne!(
        ws.openssl_text("standalone.pem"),
        ws.openssl_text("ordered.pem")
    );
}

#[test]
fn a_seal_refused_by_a_lint_leaves_no_order_and_no_key() {
    // An issuing CA that expires in one year cannot sign a 3-year seal: the
    // lint refuses it after the key was generated in the token, before the
    // intent (and so before the one-off order).
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
    let hsm = Hsm::new(&ws, &["musteri"], "ALL");
    let token = hsm.uri("musteri", None);
    let refused = hsm_run(
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
        ],
    );
    assert_eq!(refused.code, 4, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("rfc5280.validity.within_issuer")
            && refused
                .stderr
                .contains("the key generated for it was removed from the token"),
        "{}",
        refused.stderr
    );
    assert_eq!(hsm.objects("musteri"), vec![]);
    let orders = hsm_run(&ws, &hsm, &["order", "list", "--json"]).ok();
    let orders: serde_json::Value = serde_json::from_str(&orders.stdout).unwrap();
    assert_eq!(orders["orders"].as_array().unwrap().len(), 0, "{orders}");
    let certificates = hsm_run(&ws, &hsm, &["cert", "list", "--json"]).ok();
    assert!(
        certificates.stdout.trim().is_empty(),
        "{}",
        certificates.stdout
    );
}
