//! One issuing CA per product line under one root: `ca init` makes the
//! Mali Mühür and the ÖKC issuing CAs, ÖKC device certificates come from
//! the ÖKC one with revocation information and a policy of their own, Mali
//! Mühür certificates keep the Kamu SM extension order, and a CA directory
//! with only the Mali Mühür issuing CA keeps working and can gain an ÖKC CA.

mod common;

use common::{import_and_pay, produce_args, run_on_journal, Run, Workspace};
use const_oid::ObjectIdentifier;

const UNVAN: &str = "Örnek Bilişim Anonim Şirketi";
const MALI_MUHUR_POLICY: &str = "2.16.792.1.2.1.1.5.7.4.1";
const OKC_POLICY: &str = "2.16.792.1.2.1.1.5.7.60.1";
const ROOT_CRL: &str = "http://depo.kamusm.gov.tr/kurumsal/mmkshs-s1.crl";
const OKC_CRL: &str = "http://depo.kamusm.gov.tr/kurumsal/okcshs-s1.crl";
const OKC_CA_ISSUERS: &str = "http://depo.kamusm.gov.tr/kurumsal/okcshs-s1.crt";

fn run(ws: &Workspace, args: &[&str]) -> Run {
    run_on_journal(ws, args, &[])
}

/// The extension OIDs of the PEM certificate `file`, in certificate order.
fn extension_oids(ws: &Workspace, file: &str) -> Vec<String> {
    let pem = ws.read(file);
    let cert = x509_cert::Certificate::load_pem_chain(&pem).unwrap();
    cert[0]
        .tbs_certificate()
        .extensions()
        .into_iter()
        .flatten()
        .map(|e| e.extn_id.to_string())
        .collect()
}

/// The certificate policy OIDs of the PEM certificate `file`.
fn policy_oids(ws: &Workspace, file: &str) -> Vec<ObjectIdentifier> {
    let pem = ws.read(file);
    let cert = &x509_cert::Certificate::load_pem_chain(&pem).unwrap()[0];
    let (_, policies) = cert
        .tbs_certificate()
        .get_extension::<x509_cert::ext::pkix::CertificatePolicies>()
        .unwrap()
        .unwrap_or_else(|| panic!("{file} has no certificatePolicies"));
    policies.0.iter().map(|p| p.policy_identifier).collect()
}

/// The CRL distribution point URLs in OpenSSL's text of `file`.
fn crl_urls(text: &str) -> Vec<String> {
    let Some((_, after)) = text.split_once("X509v3 CRL Distribution Points:") else {
        return Vec::new();
    };
    after
        .lines()
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with("X509v3") && !l.contains("Authority"))
        .filter_map(|l| l.trim().strip_prefix("URI:").map(str::to_owned))
        .collect()
}

/// An ÖKC order of `serials` imported and paid as order 1.
fn paid_okc_order(ws: &Workspace, serials: &[&str]) {
    ws.write("list.txt", (serials.join("\n") + "\n").as_bytes());
    let list = ws.path("list.txt").display().to_string();
    import_and_pay(|args| run(ws, args), "FU,JI", &list, "1", &[]);
}

#[test]
fn ca_init_makes_both_issuing_cas_under_one_root() {
    let ws = Workspace::new();
    let init = ws.certmint(&["ca", "init", "--dir", "ca"]).ok();
    assert!(
        init.stdout
            .contains("mali-muhur issuing CA: C=TR, CN=Mali Mühür Elektronik Sertifika Hizmet Sağlayıcısı - Sürüm 1"),
        "{}",
        init.stdout
    );
    assert!(
        init.stdout.contains(
            "okc issuing CA: C=TR, CN=ÖKC Elektronik Sertifika Hizmet Sağlayıcısı - Sürüm 1"
        ),
        "{}",
        init.stdout
    );
    for file in ["okc-issuing.pem", "okc-issuing-key.pem"] {
        assert!(ws.exists(&format!("ca/{file}")), "{file}");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(ws.path("ca/okc-issuing-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    for (file, policy) in [
        ("ca/issuing.pem", MALI_MUHUR_POLICY),
        ("ca/okc-issuing.pem", OKC_POLICY),
    ] {
        let verified = ws.openssl(&["verify", "-CAfile", "ca/root.pem", file]).ok();
        assert_eq!(verified.stdout.trim(), format!("{file}: OK"));
        let text = ws.openssl_text(file);
        assert_eq!(crl_urls(&text), vec![ROOT_CRL.to_owned()], "{text}");
        assert_eq!(
            policy_oids(&ws, file),
            vec![ObjectIdentifier::new(policy).unwrap()],
            "{file}"
        );
        assert!(text.contains(&format!("Policy: {policy}")), "{text}");
    }
    let subject = |file: &str| {
        ws.openssl(&[
            "x509", "-in", file, "-noout", "-subject", "-nameopt", "utf8",
        ])
        .ok()
        .stdout
    };
    assert_ne!(subject("ca/issuing.pem"), subject("ca/okc-issuing.pem"));

    let shown = ws.certmint(&["ca", "show", "--ca", "ca"]).ok().stdout;
    for needle in [
        "mali-muhur issuing CA: C=TR, CN=Mali Mühür Elektronik Sertifika Hizmet Sağlayıcısı - Sürüm 1 (issuing.pem, key issuing-key.pem",
        "okc issuing CA: C=TR, CN=ÖKC Elektronik Sertifika Hizmet Sağlayıcısı - Sürüm 1 (okc-issuing.pem, key okc-issuing-key.pem",
        &format!("its certificates: policy {OKC_POLICY}, CRL {OKC_CRL}, caIssuers {OKC_CA_ISSUERS}, OCSP none"),
    ] {
        assert!(shown.contains(needle), "{needle}\n{shown}");
    }
    assert!(!shown.contains("shared"), "{shown}");
    // Two keys, not one.
    assert_ne!(
        ws.read("ca/issuing-key.pem"),
        ws.read("ca/okc-issuing-key.pem")
    );

    let json = ws
        .certmint(&["ca", "init", "--dir", "again", "--json"])
        .ok();
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let cn = |key: &str| {
        json[key]["subject"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["attribute"] == "CN")
            .map(|a| a["value"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_eq!(
        cn("issuing"),
        "Mali Mühür Elektronik Sertifika Hizmet Sağlayıcısı - Sürüm 1"
    );
    assert_eq!(
        cn("okc_issuing"),
        "ÖKC Elektronik Sertifika Hizmet Sağlayıcısı - Sürüm 1"
    );
}

#[test]
fn okc_device_certificates_come_from_the_okc_issuing_ca_with_revocation_info() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    paid_okc_order(&ws, &["FU00022547", "FU00022548"]);
    run(&ws, &produce_args("1", &[])).ok();
    let cert = "out/order-1/certs/FU00022547.pem";

    let verified = ws.verify_okc_chain(cert);
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    // The Mali Mühür issuing CA did not sign it.
    assert_ne!(ws.verify_chain(cert).code, 0);

    let text = ws.openssl_text(cert);
    assert!(
        text.contains("Issuer:\n            countryName               = PRINTABLESTRING:TR\n            commonName                = UTF8STRING:ÖKC Elektronik Sertifika Hizmet Sağlayıcısı - Sürüm 1"),
        "{text}"
    );
    assert_eq!(crl_urls(&text), vec![OKC_CRL.to_owned()], "{text}");
    assert!(
        text.contains(&format!("CA Issuers - URI:{OKC_CA_ISSUERS}")),
        "{text}"
    );
    assert!(!text.contains("OCSP - URI"), "no OCSP by default:\n{text}");
    assert!(text.contains(&format!("Policy: {OKC_POLICY}")), "{text}");
    assert!(!text.contains(MALI_MUHUR_POLICY), "{text}");
    assert_eq!(
        policy_oids(&ws, cert),
        vec![ObjectIdentifier::new(OKC_POLICY).unwrap()]
    );

    // The delivered chain carries the ÖKC issuing certificate, then the root.
    let chain = ws.read("out/order-1/chain.pem");
    let chain = x509_cert::Certificate::load_pem_chain(&chain).unwrap();
    let okc_issuing = ws.read("ca/okc-issuing.pem");
    let okc_issuing = &x509_cert::Certificate::load_pem_chain(&okc_issuing).unwrap()[0];
    assert_eq!(&chain[0], okc_issuing);
    assert_eq!(chain.len(), 2);
}

#[test]
fn issue_okc_device_uses_the_okc_issuing_ca_and_an_ocsp_url_when_configured() {
    let ws = Workspace::new();
    ws.certmint(&["ca", "init", "--dir", "ca"]).ok();
    let config = String::from_utf8(ws.read("ca/certmint-ca.toml")).unwrap();
    let section = config.find("[okc_device]").unwrap();
    let mut edited = config.clone();
    edited.insert_str(
        section + "[okc_device]\n".len(),
        "ocsp_url = \"http://ocsp.okc.example\"\n",
    );
    std::fs::write(ws.path("ca/certmint-ca.toml"), edited).unwrap();

    ws.openssl_key("device", "p256");
    ws.openssl(&["pkey", "-in", "device.key", "-pubout", "-out", "device.pub"])
        .ok();
    ws.certmint(&[
        "issue",
        "--ca",
        "ca",
        "--profile",
        "okc-device",
        "--public-key",
        "device.pub",
        "--device-serial",
        "FU00022547",
        "--out",
        "okc.pem",
    ])
    .ok();
    assert_eq!(ws.verify_okc_chain("okc.pem").code, 0);
    let text = ws.openssl_text("okc.pem");
    assert!(
        text.contains("OCSP - URI:http://ocsp.okc.example"),
        "{text}"
    );
    assert!(
        text.contains(&format!("CA Issuers - URI:{OKC_CA_ISSUERS}")),
        "{text}"
    );
}

#[test]
fn mali_muhur_extensions_are_in_the_kamu_sm_order() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("company", "p384");
    ws.certmint(&[
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
        UNVAN,
        "--out",
        "mm.pem",
    ])
    .ok();
    assert_eq!(ws.verify_chain("mm.pem").ok().stdout.trim(), "mm.pem: OK");
    assert_eq!(
        extension_oids(&ws, "mm.pem"),
        [
            "2.5.29.35",         // authorityKeyIdentifier
            "2.5.29.14",         // subjectKeyIdentifier
            "2.5.29.15",         // keyUsage
            "2.5.29.32",         // certificatePolicies
            "2.5.29.19",         // basicConstraints
            "2.5.29.37",         // extKeyUsage
            "2.5.29.31",         // cRLDistributionPoints
            "1.3.6.1.5.5.7.1.1", // authorityInfoAccess
        ]
    );
    // OpenSSL reads them in the same order.
    let text = ws.openssl_text("mm.pem");
    let names = [
        "X509v3 Authority Key Identifier",
        "X509v3 Subject Key Identifier",
        "X509v3 Key Usage",
        "X509v3 Certificate Policies",
        "X509v3 Basic Constraints",
        "X509v3 Extended Key Usage",
        "X509v3 CRL Distribution Points",
        "Authority Information Access",
    ];
    let positions: Vec<usize> = names
        .iter()
        .map(|n| text.find(n).unwrap_or_else(|| panic!("no {n} in\n{text}")))
        .collect();
    assert!(positions.windows(2).all(|p| p[0] < p[1]), "{text}");
}

/// A CA directory as `ca init` wrote it before it made an ÖKC issuing CA:
/// one issuing CA, no `[okc_ca]` or `[okc_issuing_ca]` section, and an
/// `[okc_device]` section with `okc_device`'s given fields.
fn old_layout_ca(ws: &Workspace, okc_device: &str) {
    ws.certmint(&["ca", "init", "--dir", "ca", "--key-type", "p256"])
        .ok();
    std::fs::remove_file(ws.path("ca/okc-issuing.pem")).unwrap();
    std::fs::remove_file(ws.path("ca/okc-issuing-key.pem")).unwrap();
    let config = String::from_utf8(ws.read("ca/certmint-ca.toml")).unwrap();
    let mut kept = String::new();
    let mut skipping = false;
    for line in config.lines() {
        if line.starts_with('[') {
            skipping = matches!(line, "[okc_ca]" | "[okc_issuing_ca]" | "[okc_device]");
        }
        if !skipping {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept.push_str("\n[okc_device]\n");
    kept.push_str(okc_device);
    std::fs::write(ws.path("ca/certmint-ca.toml"), kept).unwrap();
}

const OLD_OKC_DEVICE: &str = "validity_years = 5
key_types = [\"p256\", \"p384\", \"rsa2048\"]
extended_key_usage = [\"1.3.6.1.5.5.7.3.1\", \"1.3.6.1.5.5.7.3.2\"]
policy_oid = \"2.16.792.1.2.1.1.5.7.4.1\"
cps_uri = \"http://depo.kamusm.gov.tr/ilke\"
approved_prefixes = []
";

#[test]
fn an_old_layout_ca_keeps_producing_and_gains_an_okc_issuing_ca() {
    let ws = Workspace::new();
    // The ÖKC section brought up to the ÖKC rules by the operator: the
    // single issuing CA signs ÖKC certificates, with a warning.
    let brought_up = OLD_OKC_DEVICE.replace(MALI_MUHUR_POLICY, OKC_POLICY)
        + &format!("crl_url = \"{OKC_CRL}\"\nca_issuers_url = \"{OKC_CA_ISSUERS}\"\n");
    old_layout_ca(&ws, &brought_up);
    paid_okc_order(&ws, &["FU00022547"]);
    let produced = run(&ws, &produce_args("1", &[])).ok();
    assert!(
        produced.stderr.contains(
            "has no okc issuing CA of its own: its certificates come from the Mali Mühür issuing CA (issuing.pem); add one with `certmint ca add-issuing --ca ca --line okc`"
        ),
        "{}",
        produced.stderr
    );
    let old = "out/order-1/certs/FU00022547.pem";
    assert_eq!(ws.verify_chain(old).code, 0);
    // It names the CRL of the CA that signed it, which lists it if revoked.
    assert_eq!(
        crl_urls(&ws.openssl_text(old)),
        vec!["http://depo.kamusm.gov.tr/kurumsal/mmeshs-s1.crl".to_owned()]
    );
    let shown = ws.certmint(&["ca", "show", "--ca", "ca", "--json"]).ok();
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(shown["issuing"][1]["line"], "okc");
    assert_eq!(shown["issuing"][1]["shared_issuing_ca"], true);
    assert_eq!(shown["issuing"][1]["certificate_file"], "issuing.pem");
    assert_eq!(shown["issuing"][0]["shared_issuing_ca"], false);

    // Mali Mühür certificates are unaffected, and warn of nothing.
    ws.openssl_key("company", "p384");
    let seal = ws
        .certmint(&[
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
            UNVAN,
            "--out",
            "mm.pem",
        ])
        .ok();
    assert!(!seal.stderr.contains("warning"), "{}", seal.stderr);
    assert_eq!(ws.verify_chain("mm.pem").code, 0);

    let added = ws
        .certmint(&["ca", "add-issuing", "--ca", "ca", "--line", "okc"])
        .ok();
    assert!(
        added.stdout.contains(
            "okc issuing CA: C=TR, CN=ÖKC Elektronik Sertifika Hizmet Sağlayıcısı - Sürüm 1"
        ),
        "{}",
        added.stdout
    );
    let verified = ws
        .openssl(&["verify", "-CAfile", "ca/root.pem", "ca/okc-issuing.pem"])
        .ok();
    assert_eq!(verified.stdout.trim(), "ca/okc-issuing.pem: OK");
    assert_eq!(
        crl_urls(&ws.openssl_text("ca/okc-issuing.pem")),
        vec![ROOT_CRL.to_owned()]
    );
    let config = String::from_utf8(ws.read("ca/certmint-ca.toml")).unwrap();
    assert!(config.contains("[okc_ca]"), "{config}");

    // From now on ÖKC certificates come from the new CA, without a warning.
    ws.write("more.txt", b"FU00022548\n");
    let list = ws.path("more.txt").display().to_string();
    run(&ws, &common::import_args("FU,JI", &list, &[])).ok();
    run(&ws, &["order", "pay", "--order", "2"]).ok();
    let produced = run(&ws, &produce_args("2", &[])).ok();
    assert!(!produced.stderr.contains("warning"), "{}", produced.stderr);
    let new = "out/order-2/certs/FU00022548.pem";
    assert_eq!(ws.verify_okc_chain(new).code, 0);
    assert_ne!(ws.verify_chain(new).code, 0);

    // A second ÖKC CA, or a second Mali Mühür one, is refused.
    for line in ["okc", "mali-muhur"] {
        let again = ws.certmint(&["ca", "add-issuing", "--ca", "ca", "--line", line]);
        assert_eq!(again.code, 9, "{}", again.stderr);
        assert!(
            again.stderr.contains("issuing CA") && again.stderr.contains("never replaces"),
            "{}",
            again.stderr
        );
    }
    assert_eq!(ws.verify_okc_chain(new).code, 0);
}

#[test]
fn an_old_okc_section_with_the_mali_muhur_policy_is_refused_until_it_has_its_own() {
    let ws = Workspace::new();
    old_layout_ca(&ws, OLD_OKC_DEVICE);
    paid_okc_order(&ws, &["FU00022547"]);
    let refused = run(&ws, &produce_args("1", &[]));
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    // Its CRL and caIssuers URLs are the Mali Mühür issuing CA's, which
    // signs; the policy must be ÖKC's own.
    for needle in [
        "not the Mali Mühür policy 2.16.792.1.2.1.1.5.7.4.1",
        "ca add-issuing --line okc",
    ] {
        assert!(
            refused.stderr.contains(needle),
            "{needle}: {}",
            refused.stderr
        );
    }
    assert!(!ws.exists("out/order-1/certs/FU00022547.pem"));

    // add-issuing writes the ÖKC defaults into [okc_device]; production resumes.
    ws.certmint(&["ca", "add-issuing", "--ca", "ca", "--line", "okc"])
        .ok();
    run(&ws, &produce_args("1", &[])).ok();
    let cert = "out/order-1/certs/FU00022547.pem";
    assert_eq!(ws.verify_okc_chain(cert).code, 0);
    let text = ws.openssl_text(cert);
    assert!(text.contains(&format!("Policy: {OKC_POLICY}")), "{text}");
    assert_eq!(crl_urls(&text), vec![OKC_CRL.to_owned()], "{text}");
}
