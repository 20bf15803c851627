//! `certmint ca init` and `certmint issue`, end to end through the binary,
//! with every certificate checked by OpenSSL's command line.

mod common;

use common::Workspace;

const UNVAN: &str = "Örnek Bilişim Anonim Şirketi";
const UNVAN_CAPITALS: &str = "ÖRNEK BİLİŞİM ANONİM ŞİRKETİ";
const USER_NOTICE: &str = "Bu sertifika ile ilgili sertifika uygulama esaslarını okumak için belirtilen web sitesini ziyaret ediniz.";

fn issue_mali_muhur(ws: &Workspace, key_flag: &str, key_file: &str, out: &str) {
    ws.certmint(&[
        "issue",
        "--ca",
        "ca",
        "--profile",
        "mali-muhur",
        key_flag,
        key_file,
        "--vkn",
        "4540536920",
        "--unvan",
        UNVAN,
        "--out",
        out,
    ])
    .ok();
}

#[test]
fn ca_init_writes_a_root_and_issuing_ca_that_openssl_accepts() {
    let ws = Workspace::with_ca(&[]);
    for f in [
        "certmint-ca.toml",
        "root.pem",
        "root-key.pem",
        "issuing.pem",
        "issuing-key.pem",
    ] {
        assert!(ws.exists(&format!("ca/{f}")), "{f}");
    }
    use std::os::unix::fs::PermissionsExt;
    for key in ["ca/root-key.pem", "ca/issuing-key.pem"] {
        let mode = std::fs::metadata(ws.path(key))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    ws.openssl(&["verify", "-CAfile", "ca/root.pem", "ca/issuing.pem"])
        .ok();
    let issuing = ws.openssl_text("ca/issuing.pem");
    assert!(
        issuing.contains("countryName               = PRINTABLESTRING:TR"),
        "{issuing}"
    );
    assert!(
        issuing.contains("commonName                = UTF8STRING:Mali Mühür Elektronik Sertifika Hizmet Sağlayıcısı - Sürüm 1"),
        "{issuing}"
    );
    assert!(
        issuing.contains("X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0"),
        "{issuing}"
    );
    assert!(
        issuing.contains("X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign"),
        "{issuing}"
    );
    assert!(issuing.contains("ecdsa-with-SHA384"), "{issuing}");
    let root = ws.openssl_text("ca/root.pem");
    assert!(
        !root.contains("Authority Key Identifier"),
        "a self-signed root carries no AKI:\n{root}"
    );
}

#[test]
fn ca_init_never_overwrites_an_existing_ca() {
    let ws = Workspace::with_ca(&[]);
    let before = ws.read("ca/issuing-key.pem");
    let run = ws.certmint(&["ca", "init", "--dir", "ca"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    assert_eq!(ws.read("ca/issuing-key.pem"), before);
}

#[test]
fn mali_muhur_certificate_matches_the_profile_field_by_field() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("company", "p384");
    issue_mali_muhur(&ws, "--csr", "company.csr", "mm.pem");
    assert_eq!(ws.verify_chain("mm.pem").ok().stdout.trim(), "mm.pem: OK");

    let text = ws.openssl_text("mm.pem");
    let expect = |needle: &str| assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    // Subject: serialNumber (PrintableString) then CN (UTF8String), nothing else.
    expect(&format!(
        "Subject:\n            serialNumber              = PRINTABLESTRING:4540536920\n            commonName                = UTF8STRING:{UNVAN_CAPITALS}\n        Subject Public Key Info"
    ));
    // Issuer: C (PrintableString), CN (UTF8String).
    expect("Issuer:\n            countryName               = PRINTABLESTRING:TR\n            commonName                = UTF8STRING:Mali Mühür Elektronik Sertifika Hizmet Sağlayıcısı - Sürüm 1\n");
    expect("Signature Algorithm: ecdsa-with-SHA384");
    expect("NIST CURVE: P-384");
    expect("X509v3 Key Usage: critical\n                Digital Signature\n");
    expect("X509v3 Basic Constraints: critical\n                CA:FALSE");
    expect("X509v3 Extended Key Usage: \n                2.16.792.1.2.1.1.5.7.50.1\n");
    expect(
        "Policy: 2.16.792.1.2.1.1.5.7.4.1\n                  CPS: http://depo.kamusm.gov.tr/ilke",
    );
    expect("X509v3 Subject Key Identifier");
    expect("X509v3 Authority Key Identifier");
    expect("URI:http://depo.kamusm.gov.tr/kurumsal/mmeshs-s1.crl");
    expect("CA Issuers - URI:http://depo.kamusm.gov.tr/kurumsal/mmeshs-s1.crt");
    expect("OCSP - URI:http://cisdupmms1.kurumsal.kamusm.gov.tr");
    assert!(
        !text.contains("qcStatements") && !text.contains("1.3.6.1.5.5.7.1.3"),
        "no QCStatements"
    );
    assert_eq!(
        text.matches("X509v3").count() + text.matches("Authority Information Access").count(),
        9,
        "{text}"
    );

    // Validity: 3 years − 1 day, same time of day.
    let dates = ws
        .openssl(&["x509", "-in", "mm.pem", "-noout", "-startdate", "-enddate"])
        .ok()
        .stdout;
    let field = |name: &str| {
        dates
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .to_owned()
    };
    let (start, end) = (field("notBefore="), field("notAfter="));
    // e.g. "Nov 21 22:15:44 2026 GMT" / "Nov 20 22:15:44 2029 GMT"
    let start_year: i32 = start.split_whitespace().nth(3).unwrap().parse().unwrap();
    let end_year: i32 = end.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(end_year - start_year, 3, "{dates}");
    assert_eq!(
        start.split_whitespace().nth(2),
        end.split_whitespace().nth(2),
        "same time of day: {dates}"
    );

    // The UserNotice explicitText is a BMPString holding the Kamu SM text.
    let policies = ws.openssl_extension_asn1("mm.pem", "X509v3 Certificate Policies");
    assert!(
        policies.contains("IA5STRING         :http://depo.kamusm.gov.tr/ilke"),
        "{policies}"
    );
    let bmp = policies
        .lines()
        .find(|l| l.contains("BMPSTRING"))
        .expect("a BMPString");
    let octets = USER_NOTICE.chars().count() * 2;
    assert!(
        bmp.contains(&format!("l= {octets} prim: BMPSTRING")),
        "{bmp}"
    );
}

#[test]
fn mali_muhur_with_pinned_start_time_ends_three_years_minus_one_day_later() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("company", "rsa2048");
    // A start the CA's validity covers: just after `ca init`, in whole seconds.
    let start = chrono_like_now_plus_minutes(5);
    ws.certmint(&[
        "issue",
        "--ca",
        "ca",
        "--profile",
        "mali-muhur",
        "--public-key",
        "company.pub",
        "--vkn",
        "3230512384",
        "--unvan",
        "Deneme Ltd. Şti.",
        "--not-before",
        &start,
        "--out",
        "mm.pem",
    ])
    .ok();
    let json = ws.certmint(&["inspect", "--json", "mm.pem"]).ok().stdout;
    let summary: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(summary["not_before"], start.as_str());
    let expected_end = format!(
        "{}{}",
        (start[..4].parse::<i32>().unwrap() + 3),
        previous_day_suffix(&start)
    );
    assert_eq!(summary["not_after"], expected_end.as_str());
    assert_eq!(summary["public_key"], "rsa2048");
    // Valid from `start`: check it an hour later.
    let epoch = std::process::Command::new("date")
        .args(["-u", "-d", &start, "+%s"])
        .output()
        .unwrap();
    let at: u64 = String::from_utf8(epoch.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let at = (at + 3600).to_string();
    ws.openssl(&[
        "verify",
        "-attime",
        &at,
        "-CAfile",
        "ca/root.pem",
        "-untrusted",
        "ca/issuing.pem",
        "mm.pem",
    ])
    .ok();
}

/// `YYYY-MM-DDTHH:MM:SSZ` a few minutes from now, from `date`.
fn chrono_like_now_plus_minutes(minutes: u32) -> String {
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("+{minutes} minutes"),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The `-MM-DDTHH:MM:SSZ` part of the day before `start` (in `start`'s year + 3), from `date`.
fn previous_day_suffix(start: &str) -> String {
    let three_years_later = format!("{}{}", start[..4].parse::<i32>().unwrap() + 3, &start[4..]);
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!(
                "{} - 1 day",
                three_years_later.replace('T', " ").replace('Z', " UTC")
            ),
            "+%m-%dT%H:%M:%SZ",
        ])
        .output()
        .unwrap();
    format!("-{}", String::from_utf8(out.stdout).unwrap().trim())
}

#[test]
fn okc_device_certificates_for_ec_and_rsa_keys() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("device", "p256");
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
        "--manufacturer",
        "Örnek Yazarkasa A.Ş.",
        "--out",
        "okc.pem",
    ])
    .ok();
    assert_eq!(ws.verify_okc_chain("okc.pem").code, 0);
    let text = ws.openssl_text("okc.pem");
    assert!(
        text.contains("serialNumber              = PRINTABLESTRING:FU00022547\n            commonName                = UTF8STRING:FU00022547\n            organizationName          = UTF8STRING:Örnek Yazarkasa A.Ş."),
        "{text}"
    );
    assert!(
        text.contains(
            "X509v3 Key Usage: critical\n                Digital Signature, Key Agreement"
        ),
        "{text}"
    );
    assert!(
        text.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
        "{text}"
    );

    ws.openssl_key("rsadevice", "rsa2048");
    ws.certmint(&[
        "issue",
        "--ca",
        "ca",
        "--profile",
        "okc-device",
        "--csr",
        "rsadevice.csr",
        "--device-serial",
        "JI1234567",
        "--out",
        "okc-rsa.pem",
    ])
    .ok();
    assert_eq!(ws.verify_okc_chain("okc-rsa.pem").code, 0);
    let text = ws.openssl_text("okc-rsa.pem");
    assert!(
        text.contains("X509v3 Key Usage: critical\n                Digital Signature\n"),
        "{text}"
    );
}

#[test]
fn rsa_and_p256_ca_keys_sign_with_their_own_algorithms() {
    for (key_type, algorithm) in [
        ("rsa2048", "sha256WithRSAEncryption"),
        ("p256", "ecdsa-with-SHA256"),
    ] {
        let ws = Workspace::with_ca(&["--key-type", key_type]);
        ws.openssl_key("company", "rsa2048");
        issue_mali_muhur(&ws, "--public-key", "company.pub", "mm.pem");
        assert_eq!(ws.verify_chain("mm.pem").code, 0, "{key_type}");
        let text = ws.openssl_text("mm.pem");
        assert!(
            text.contains(&format!("Signature Algorithm: {algorithm}")),
            "{key_type}: {text}"
        );
    }
}

#[test]
fn issue_prints_pem_to_stdout_without_out_and_json_on_request() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("company", "p384");
    let run = ws
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
        ])
        .ok();
    assert!(
        run.stdout.starts_with("-----BEGIN CERTIFICATE-----"),
        "{}",
        run.stdout
    );
    ws.write("stdout.pem", run.stdout.as_bytes());
    assert_eq!(ws.verify_chain("stdout.pem").code, 0);

    let run = ws
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
            "--json",
        ])
        .ok();
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["profile"], "mali-muhur");
    assert_eq!(
        json["certificate"]["subject"][0]["string_type"],
        "PrintableString"
    );
    assert_eq!(json["certificate"]["subject"][1]["value"], UNVAN_CAPITALS);
    assert_eq!(json["certificate"]["serial"].as_str().unwrap().len(), 32);
}

#[test]
fn subject_data_can_come_from_a_toml_file() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("company", "p384");
    ws.write(
        "subject.toml",
        "tckn = \"10000000146\"\nunvan = \"Ali Veli\"\n".as_bytes(),
    );
    ws.certmint(&[
        "issue",
        "--ca",
        "ca",
        "--profile",
        "mali-muhur",
        "--csr",
        "company.csr",
        "--subject",
        "subject.toml",
        "--out",
        "mm.pem",
    ])
    .ok();
    let text = ws.openssl_text("mm.pem");
    assert!(
        text.contains("serialNumber              = PRINTABLESTRING:10000000146"),
        "{text}"
    );
    assert!(
        text.contains("commonName                = UTF8STRING:ALİ VELİ"),
        "{text}"
    );
}

#[test]
fn gib_test_vkn_needs_test_mode() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("company", "p384");
    let args = [
        "issue",
        "--ca",
        "ca",
        "--profile",
        "mali-muhur",
        "--csr",
        "company.csr",
        "--vkn",
        "9999999999",
        "--unvan",
        UNVAN,
    ];
    let run = ws.certmint(&args);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("test mode"), "{}", run.stderr);
    let mut with_test_mode = args.to_vec();
    with_test_mode.extend(["--test-mode", "--out", "test.pem"]);
    ws.certmint(&with_test_mode).ok();
    assert_eq!(ws.verify_chain("test.pem").code, 0);
}

#[test]
fn inspect_shows_string_types_and_extensions() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("company", "p384");
    issue_mali_muhur(&ws, "--csr", "company.csr", "mm.pem");
    let text = ws.certmint(&["inspect", "mm.pem"]).ok().stdout;
    assert!(
        text.contains("serialNumber = 4540536920 (PrintableString)"),
        "{text}"
    );
    assert!(
        text.contains(&format!("CN = {UNVAN_CAPITALS} (UTF8String)")),
        "{text}"
    );
    assert!(text.contains("UserNotice (BMPString)"), "{text}");
    assert!(
        text.contains("2.16.792.1.2.1.1.5.7.50.1 (Mali Mühür)"),
        "{text}"
    );
    // The fingerprint agrees with OpenSSL's.
    let openssl_fp = ws
        .openssl(&["x509", "-in", "mm.pem", "-noout", "-fingerprint", "-sha256"])
        .ok()
        .stdout;
    let fp = openssl_fp.trim().split('=').nth(1).unwrap();
    assert!(text.contains(fp), "{text}\n{openssl_fp}");
}

fn fixture(path: &str) -> String {
    format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_lab_ca_uses_its_own_urls_oids_validity_and_prefixes() {
    let ws = Workspace::with_ca(&[
        "--config",
        &fixture("profiles/lab-ca.toml"),
        "--key-type",
        "p256",
    ]);
    ws.openssl_key("company", "rsa2048");
    ws.certmint(&[
        "issue",
        "--ca",
        "ca",
        "--profile",
        "mali-muhur",
        "--csr",
        "company.csr",
        "--subject",
        &fixture("subjects/mali-muhur.toml"),
        "--out",
        "mm.pem",
    ])
    .ok();
    assert_eq!(ws.verify_chain("mm.pem").code, 0);
    let text = ws.openssl_text("mm.pem");
    for needle in [
        "Policy: 1.3.6.1.4.1.99999.1.1",
        "CPS: http://pki.lab.example/cps",
        "URI:http://pki.lab.example/mm.crl",
        "CA Issuers - URI:http://pki.lab.example/mm.crt",
        "OCSP - URI:http://ocsp.lab.example",
    ] {
        assert!(text.contains(needle), "missing {needle:?}:\n{text}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&ws.certmint(&["inspect", "--json", "mm.pem"]).ok().stdout).unwrap();
    let years = |field: &str| {
        summary[field].as_str().unwrap()[..4]
            .parse::<i32>()
            .unwrap()
    };
    assert!(
        (1..=2).contains(&(years("not_after") - years("not_before"))),
        "2-year lab validity"
    );

    // Approved prefixes: FU and JI only.
    ws.openssl_key("device", "p256");
    ws.certmint(&[
        "issue",
        "--ca",
        "ca",
        "--profile",
        "okc-device",
        "--public-key",
        "device.pub",
        "--subject",
        &fixture("subjects/okc-device.toml"),
        "--out",
        "okc.pem",
    ])
    .ok();
    let run = ws.certmint(&[
        "issue",
        "--ca",
        "ca",
        "--profile",
        "okc-device",
        "--public-key",
        "device.pub",
        "--device-serial",
        "AB00022547",
    ]);
    assert_eq!(run.code, 3);
    assert!(
        run.stderr
            .contains("not among the approved prefixes FU, JI"),
        "{}",
        run.stderr
    );
}

#[test]
fn subject_files_with_unknown_fields_are_refused() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("company", "p384");
    let run = ws.certmint(&[
        "issue",
        "--ca",
        "ca",
        "--profile",
        "mali-muhur",
        "--csr",
        "company.csr",
        "--subject",
        &fixture("subjects/bad-unknown-field.toml"),
    ]);
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("unknown field `vergi_no`"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_sole_proprietors_subject_file() {
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
        "--subject",
        &fixture("subjects/sole-proprietor.toml"),
        "--out",
        "mm.pem",
    ])
    .ok();
    let text = ws.openssl_text("mm.pem");
    assert!(text.contains("PRINTABLESTRING:17291716060"), "{text}");
    assert!(text.contains("UTF8STRING:AYŞE YILMAZ BİLGİSAYAR"), "{text}");
}
