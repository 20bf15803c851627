//! The PKCS#11 backend end to end, through the `certmint` binary and the
//! real SoftHSM2 module, each test with its own token directory. What lands
//! on a token is read back with OpenSC's pkcs11-tool; certificates are
//! checked with `openssl verify`; PKCS#11 calls are counted with OpenSC's
//! pkcs11-spy.

mod common;

use common::{Hsm, Workspace, SPY_MODULE};

const UNVAN: &str = "Örnek Bilişim Anonim Şirketi";

fn setup(tokens: &[&str]) -> (Workspace, Hsm) {
    setup_with(tokens, "ALL")
}

fn setup_with(tokens: &[&str], mechanisms: &str) -> (Workspace, Hsm) {
    let ws = Workspace::new();
    let hsm = Hsm::new(&ws, tokens, mechanisms);
    (ws, hsm)
}

fn run(ws: &Workspace, hsm: &Hsm, args: &[&str]) -> common::Run {
    let conf = hsm.conf();
    ws.certmint_env(args, &[("SOFTHSM2_CONF", conf.as_str())])
}

/// A CA whose issuing key was made in the `ca` token by `hsm keygen`.
fn hsm_ca(ws: &Workspace, hsm: &Hsm, key_type: &str) {
    let key = hsm.uri("ca", Some("issuing-2026"));
    run(
        ws,
        hsm,
        &["hsm", "keygen", "--key", &key, "--key-type", key_type],
    )
    .ok();
    run(
        ws,
        hsm,
        &["ca", "init", "--dir", "ca", "--issuing-key", &key],
    )
    .ok();
    assert!(
        !ws.exists("ca/issuing-key.pem"),
        "no software issuing key is written"
    );
}

#[test]
fn a_ca_key_in_the_hsm_issues_certificates_openssl_accepts() {
    for (key_type, algorithm) in [
        ("p384", "ecdsa-with-SHA384"),
        ("p256", "ecdsa-with-SHA256"),
        ("rsa2048", "sha256WithRSAEncryption"),
    ] {
        let (ws, hsm) = setup(&["ca"]);
        hsm_ca(&ws, &hsm, key_type);
        ws.openssl_key("company", "p384");
        run(
            &ws,
            &hsm,
            &[
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
            ],
        )
        .ok();
        assert_eq!(
            ws.verify_chain("mm.pem").stdout.trim(),
            "mm.pem: OK",
            "{key_type}"
        );
        let text = ws.openssl_text("mm.pem");
        assert!(
            text.contains(&format!("Signature Algorithm: {algorithm}")),
            "{key_type}: {text}"
        );
        // The key stayed in the token: two objects (private + public), nothing else.
        let objects = hsm.objects("ca");
        assert_eq!(objects.len(), 2, "{objects:?}");
    }
}

#[test]
fn the_key_ceremony_refuses_a_label_in_use_and_writes_nothing() {
    let (ws, hsm) = setup(&["ca"]);
    let key = hsm.uri("ca", Some("issuing-2026"));
    run(&ws, &hsm, &["hsm", "keygen", "--key", &key]).ok();
    let before = hsm.objects("ca");
    let again = run(
        &ws,
        &hsm,
        &["hsm", "keygen", "--key", &key, "--key-type", "rsa2048"],
    );
    assert_eq!(again.code, 5, "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains("already holds objects labelled \"issuing-2026\"; nothing was written"),
        "{}",
        again.stderr
    );
    assert_eq!(hsm.objects("ca"), before);
}

#[test]
fn generated_keys_are_sensitive_and_never_extractable() {
    let (ws, hsm) = setup(&["ca"]);
    run(
        &ws,
        &hsm,
        &[
            "hsm",
            "keygen",
            "--key",
            &hsm.uri("ca", Some("k")),
            "--key-type",
            "p256",
        ],
    )
    .ok();
    let listing = hsm
        .pkcs11_tool("ca", &["--list-objects", "--type", "privkey"])
        .stdout;
    assert!(
        listing.contains("Access:     sensitive, always sensitive, never extractable, local"),
        "{listing}"
    );
    assert!(
        listing.contains("Usage:      sign\n"),
        "a signing key does nothing else: {listing}"
    );
    // Reading the key's value is refused by the token: see tests/pkcs11_pool.rs,
    // which asks for CKA_VALUE directly (pkcs11-tool cannot even try).
}

fn provision(ws: &Workspace, hsm: &Hsm, key_type: &str, extra: &[&str]) -> common::Run {
    let token = hsm.uri("musteri", None);
    let mut args = vec![
        "hsm",
        "provision",
        "--ca",
        "ca",
        "--token",
        &token,
        "--vkn",
        "4540536920",
        "--unvan",
        UNVAN,
        "--key-type",
        key_type,
    ];
    args.extend_from_slice(extra);
    run(ws, hsm, &args)
}

#[test]
fn provisioning_end_to_end_with_a_software_ca() {
    for key_type in ["p384", "rsa2048"] {
        let (ws, hsm) = setup(&["musteri"]);
        ws.certmint(&["ca", "init", "--dir", "ca"]).ok();
        let report = provision(&ws, &hsm, key_type, &["--out", "cert.pem", "--json"]).ok();
        let json: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
        assert_eq!(json["label"], "4540536920SIGN0");
        assert_eq!(json["checks"].as_array().unwrap().len(), 5, "{json}");

        // Exactly one private key, one public key and one certificate, all labelled {VKN}SIGN0.
        let label = "4540536920SIGN0".to_owned();
        let objects = hsm.objects("musteri");
        assert_eq!(
            objects,
            vec![
                ("Certificate Object".to_owned(), label.clone()),
                ("Private Key Object".to_owned(), label.clone()),
                ("Public Key Object".to_owned(), label.clone()),
            ],
            "{key_type}"
        );
        // The certificate on the token is the one issued, and OpenSSL accepts it.
        let from_token = hsm.certificate(&ws, "musteri", &label, "from-token.der");
        ws.openssl(&[
            "x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der",
        ])
        .ok();
        assert_eq!(from_token, ws.read("cert.der"), "{key_type}");
        assert_eq!(ws.verify_chain("cert.pem").code, 0, "{key_type}");
        // CKA_ID is the certificate's subject key identifier.
        let id = json["id"].as_str().unwrap().to_owned();
        let ski = ws
            .openssl(&[
                "x509",
                "-in",
                "cert.pem",
                "-noout",
                "-ext",
                "subjectKeyIdentifier",
            ])
            .ok()
            .stdout;
        let ski: String = ski.lines().nth(1).unwrap().trim().replace(':', "");
        assert_eq!(ski, id, "{key_type}");
    }
}

#[test]
fn a_signature_made_through_opensc_verifies_under_the_provisioned_certificate() {
    let (ws, hsm) = setup(&["musteri"]);
    ws.certmint(&["ca", "init", "--dir", "ca"]).ok();
    provision(&ws, &hsm, "rsa2048", &["--out", "cert.pem"]).ok();
    ws.write("data.txt", b"Mali Muhur test belgesi");
    hsm.pkcs11_tool(
        "musteri",
        &[
            "--sign",
            "--mechanism",
            "SHA256-RSA-PKCS",
            "--label",
            "4540536920SIGN0",
            "--input-file",
            "data.txt",
            "--output-file",
            "data.sig",
        ],
    )
    .ok();
    ws.openssl(&[
        "x509", "-in", "cert.pem", "-pubkey", "-noout", "-out", "cert.pub",
    ])
    .ok();
    let verified = ws
        .openssl(&[
            "dgst",
            "-sha256",
            "-verify",
            "cert.pub",
            "-signature",
            "data.sig",
            "data.txt",
        ])
        .ok();
    assert_eq!(verified.stdout.trim(), "Verified OK");
}

#[test]
fn provisioning_with_a_ca_key_that_is_itself_in_an_hsm() {
    let (ws, hsm) = setup(&["ca", "musteri"]);
    hsm_ca(&ws, &hsm, "p384");
    provision(&ws, &hsm, "p384", &["--out", "cert.pem"]).ok();
    assert_eq!(ws.verify_chain("cert.pem").code, 0);
    assert_eq!(hsm.objects("musteri").len(), 3);
}

#[test]
fn an_existing_label_is_refused_unless_replace_is_asked_for() {
    let (ws, hsm) = setup(&["musteri"]);
    ws.certmint(&["ca", "init", "--dir", "ca"]).ok();
    provision(&ws, &hsm, "p384", &["--out", "first.pem"]).ok();
    let before = hsm.pkcs11_tool("musteri", &["--list-objects"]).stdout;

    // The seal is numbered on from the journal's record, so a second run on
    // the same journal would take SIGN1: the label is taken only for a
    // journal that does not know the first seal (one kept elsewhere).
    let elsewhere = ["--journal", "elsewhere.sqlite"];
    let refused = provision(&ws, &hsm, "p384", &elsewhere);
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("already holds objects labelled \"4540536920SIGN0\"; nothing was written"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        hsm.pkcs11_tool("musteri", &["--list-objects"]).stdout,
        before,
        "the token is unchanged"
    );

    let replaced = provision(
        &ws,
        &hsm,
        "rsa2048",
        &[
            "--replace",
            "--out",
            "second.pem",
            "--journal",
            "elsewhere.sqlite",
        ],
    )
    .ok();
    assert!(
        replaced.stdout.contains("Replaced 3 object(s)"),
        "{}",
        replaced.stdout
    );
    assert_eq!(hsm.objects("musteri").len(), 3);
    let listing = hsm.pkcs11_tool("musteri", &["--list-objects"]).stdout;
    assert!(listing.contains("Private Key Object; RSA"), "{listing}");
    assert_ne!(ws.read("first.pem"), ws.read("second.pem"));
}

#[test]
fn a_failed_issuance_leaves_no_key_behind() {
    let (ws, hsm) = setup(&["musteri"]);
    // An issuing CA that expires in one year cannot sign a 3-year certificate:
    // the lint refuses it after the key was generated in the token.
    let mut config = std::fs::read_to_string(format!(
        "{}/fixtures/profiles/lab-ca.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    config = config.replace(
        "[issuing_ca]\nvalidity_years = 8",
        "[issuing_ca]\nvalidity_years = 1",
    );
    config = config.replace(
        "[mali_muhur]\nvalidity_years = 2",
        "[mali_muhur]\nvalidity_years = 3",
    );
    ws.write("short-ca.toml", config.as_bytes());
    ws.certmint(&["ca", "init", "--dir", "ca", "--config", "short-ca.toml"])
        .ok();
    let failed = provision(&ws, &hsm, "p384", &[]);
    assert_eq!(failed.code, 4, "{}", failed.stderr);
    assert!(
        failed.stderr.contains("rfc5280.validity.within_issuer"),
        "{}",
        failed.stderr
    );
    assert!(
        failed
            .stderr
            .contains("the key generated for it was removed from the token"),
        "{}",
        failed.stderr
    );
    assert_eq!(hsm.objects("musteri"), vec![], "no orphaned key");
}

#[test]
fn an_unsupported_mechanism_is_refused_before_anything_is_written() {
    let (ws, hsm) = setup_with(
        &["musteri"],
        "CKM_RSA_PKCS_KEY_PAIR_GEN,CKM_SHA256_RSA_PKCS,CKM_RSA_PKCS,CKM_ECDSA",
    );
    ws.certmint(&["ca", "init", "--dir", "ca"]).ok();
    let probe = run(
        &ws,
        &hsm,
        &["hsm", "probe", "--token", &hsm.uri("musteri", None)],
    );
    assert_eq!(
        probe.code, 10,
        "not ready has its own exit code: {}",
        probe.stderr
    );
    assert!(
        probe
            .stdout
            .contains("p384      NO   generate CKM_EC_KEY_PAIR_GEN MISSING"),
        "{}",
        probe.stdout
    );
    assert!(probe.stdout.contains("NOT ready"), "{}", probe.stdout);
    let refused = provision(&ws, &hsm, "p384", &[]);
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("does not support CKM_EC_KEY_PAIR_GEN; nothing was written"),
        "{}",
        refused.stderr
    );
    assert_eq!(hsm.objects("musteri"), vec![]);
}

#[test]
fn a_missing_token_is_named_with_the_tokens_present() {
    let (ws, hsm) = setup(&["musteri"]);
    let uri = hsm.uri("baska", None);
    let run = run(&ws, &hsm, &["hsm", "probe", "--token", &uri]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no token matches pkcs11:token=baska; tokens present: musteri"),
        "{}",
        run.stderr
    );
}

#[test]
fn probe_reports_mechanisms_limits_and_taken_labels() {
    let (ws, hsm) = setup(&["musteri"]);
    ws.certmint(&["ca", "init", "--dir", "ca"]).ok();
    let uri = hsm.uri("musteri", None);
    let free = run(
        &ws,
        &hsm,
        &[
            "hsm",
            "probe",
            "--token",
            &uri,
            "--vkn",
            "4540536920",
            "--json",
        ],
    )
    .ok();
    let json: serde_json::Value = serde_json::from_str(&free.stdout).unwrap();
    assert_eq!(json["ready"], true, "{json}");
    assert_eq!(json["token"]["label"], "musteri");
    assert_eq!(
        json["mechanisms"][1]["sign"], "CKM_ECDSA (hash in software)",
        "{json}"
    );
    assert_eq!(json["labels"][0]["existing_objects"], 0);

    provision(&ws, &hsm, "p384", &[]).ok();
    let taken = run(
        &ws,
        &hsm,
        &["hsm", "probe", "--token", &uri, "--vkn", "4540536920"],
    );
    assert_eq!(taken.code, 10, "{}", taken.stderr);
    assert!(
        taken
            .stdout
            .contains("Label \"4540536920SIGN0\": TAKEN by 3 object(s)"),
        "{}",
        taken.stdout
    );
    assert!(taken.stdout.contains("NOT ready"), "{}", taken.stdout);
}

/// A URI through OpenSC's pkcs11-spy, which logs every call to $PKCS11SPY_OUTPUT.
fn spy_uri(token: &str, object: Option<&str>, pin_file: &str) -> String {
    let object = object.map(|o| format!(";object={o}")).unwrap_or_default();
    format!("pkcs11:token={token}{object}?module-path={SPY_MODULE}&pin-source=file:{pin_file}")
}

#[test]
fn a_wrong_pin_is_tried_exactly_once_and_reported() {
    let (ws, hsm) = setup(&["ca", "musteri"]);
    hsm_ca(&ws, &hsm, "p384");
    ws.write("wrong.pin", b"00000000\n");
    ws.openssl_key("company", "p384");
    let conf = hsm.conf();
    let spy_env = |log: &str| {
        vec![
            ("SOFTHSM2_CONF".to_owned(), conf.clone()),
            ("PKCS11SPY".to_owned(), common::softhsm_module()),
            (
                "PKCS11SPY_OUTPUT".to_owned(),
                ws.path(log).display().to_string(),
            ),
        ]
    };
    let wrong = ws.path("wrong.pin").display().to_string();

    // The CA's token refuses the PIN: issuance stops after one C_Login.
    let ca_key = spy_uri("ca", Some("issuing-2026"), &wrong);
    let env = spy_env("issue-spy.log");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let refused = ws.certmint_env(
        &[
            "issue",
            "--ca",
            "ca",
            "--ca-key",
            &ca_key,
            "--profile",
            "mali-muhur",
            "--csr",
            "company.csr",
            "--vkn",
            "4540536920",
            "--unvan",
            UNVAN,
            "--out",
            "x.pem",
        ],
        &env,
    );
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("wrong PIN for token \"ca\" (C_Login: CKR_PIN_INCORRECT)"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("stopped after this one attempt"),
        "{}",
        refused.stderr
    );
    assert!(
        !refused.stderr.contains("00000000"),
        "the PIN never appears"
    );
    let log = String::from_utf8_lossy(&ws.read("issue-spy.log")).into_owned();
    assert_eq!(
        log.matches("C_Login").count(),
        1,
        "exactly one C_Login:\n{log}"
    );
    assert!(!ws.exists("x.pem"));

    // The customer's token refuses the PIN: provisioning stops after one C_Login, nothing written.
    let token = spy_uri("musteri", None, &wrong);
    let env = spy_env("provision-spy.log");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let refused = ws.certmint_env(
        &[
            "hsm",
            "provision",
            "--ca",
            "ca",
            "--token",
            &token,
            "--vkn",
            "4540536920",
            "--unvan",
            UNVAN,
        ],
        &env,
    );
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("wrong PIN for token \"musteri\""),
        "{}",
        refused.stderr
    );
    let log = String::from_utf8_lossy(&ws.read("provision-spy.log")).into_owned();
    // The spy sits only in front of the customer's token (the CA's URI names
    // SoftHSM directly): one C_Login there, never a second try.
    assert_eq!(log.matches("C_Login").count(), 1, "{log}");
    assert_eq!(hsm.objects("musteri"), vec![]);
}

#[test]
fn a_pin_from_an_environment_variable_never_appears_in_output() {
    let (ws, hsm) = setup(&["musteri"]);
    ws.certmint(&["ca", "init", "--dir", "ca"]).ok();
    let uri = format!(
        "pkcs11:token=musteri?module-path={}",
        common::softhsm_module()
    );
    let pin = hsm.pin();
    let conf = hsm.conf();
    let ok = ws
        .certmint_env(
            &[
                "hsm",
                "provision",
                "--ca",
                "ca",
                "--token",
                &uri,
                "--pin-env",
                "MUSTERI_PIN",
                "--vkn",
                "4540536920",
                "--unvan",
                UNVAN,
                "--json",
            ],
            &[
                ("SOFTHSM2_CONF", conf.as_str()),
                ("MUSTERI_PIN", pin.as_str()),
            ],
        )
        .ok();
    assert!(!ok.stdout.contains(&pin) && !ok.stderr.contains(&pin));
    // Without any PIN source and no terminal, the error says what to do.
    let no_pin = ws.certmint_env(
        &["hsm", "probe", "--token", &uri, "--vkn", "4540536920"],
        &[("SOFTHSM2_CONF", conf.as_str())],
    );
    assert_ne!(no_pin.code, 0);
    assert!(
        no_pin
            .stderr
            .contains("give pin-source=file:PATH in the URI, or --token-pin-env VAR"),
        "{}",
        no_pin.stderr
    );
}

#[test]
fn a_pin_in_the_uri_is_refused() {
    let (ws, hsm) = setup(&["musteri"]);
    let run = run(
        &ws,
        &hsm,
        &[
            "hsm",
            "probe",
            "--token",
            "pkcs11:token=musteri?pin-value=1234",
        ],
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("pin-value is refused"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("1234"));
}

// --- Mali Mühür orders for the hsm target: `hsm provision --order N`.

/// Runs certmint with the token configuration and the workspace's journal.
fn run_journalled(ws: &Workspace, hsm: &Hsm, args: &[&str]) -> common::Run {
    let conf = hsm.conf();
    let journal = ws.path("journal.sqlite").display().to_string();
    ws.certmint_env(
        args,
        &[
            ("SOFTHSM2_CONF", conf.as_str()),
            ("CERTMINT_JOURNAL", journal.as_str()),
            ("CERTMINT_OPERATOR", "on-site engineer"),
        ],
    )
}

fn import_seal_order(ws: &Workspace, hsm: &Hsm, seals: &str) {
    run_journalled(
        ws,
        hsm,
        &[
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
            "--seals",
            seals,
        ],
    )
    .ok();
}

/// `hsm provision --order 1` into the `musteri` token.
fn provision_order(ws: &Workspace, hsm: &Hsm, extra: &[&str]) -> common::Run {
    let token = hsm.uri("musteri", None);
    let mut args = vec![
        "hsm",
        "provision",
        "--ca",
        "ca",
        "--order",
        "1",
        "--token",
        &token,
    ];
    args.extend_from_slice(extra);
    run_journalled(ws, hsm, &args)
}

#[test]
fn a_paid_mali_muhur_order_is_provisioned_in_the_company_hsm_once() {
    let (ws, hsm) = setup(&["musteri"]);
    ws.certmint(&["ca", "init", "--dir", "ca"]).ok();
    import_seal_order(&ws, &hsm, "2");
    let token = hsm.uri("musteri", None);
    let provision_order = |extra: &[&str]| provision_order(&ws, &hsm, extra);

    // Unpaid: refused before the token is touched.
    let unpaid = provision_order(&[]);
    assert_eq!(unpaid.code, 1, "{}", unpaid.stderr);
    assert!(unpaid.stderr.contains("is not paid"), "{}", unpaid.stderr);
    assert_eq!(hsm.objects("musteri"), vec![]);
    run_journalled(&ws, &hsm, &["order", "pay", "--order", "1"]).ok();

    // The company and the key type come from the order, not the command line.
    let mixed = provision_order(&["--vkn", "4540536920"]);
    assert_ne!(mixed.code, 0);
    assert!(
        mixed.stderr.contains("come from the order"),
        "{}",
        mixed.stderr
    );
    // `okc produce` is for ÖKC orders and says which command to use.
    let wrong = run_journalled(
        &ws,
        &hsm,
        &[
            "okc", "produce", "--order", "1", "--ca", "ca", "--token", &token,
        ],
    );
    assert_ne!(wrong.code, 0);
    assert!(
        wrong.stderr.contains("certmint hsm provision --order 1"),
        "{}",
        wrong.stderr
    );
    assert_eq!(hsm.objects("musteri"), vec![]);

    let done = provision_order(&["--json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&done.stdout).unwrap();
    assert_eq!(report["produced_now"], 2, "{report}");
    assert_eq!(report["devices"], 2, "{report}");

    // Exactly one key pair and one certificate per seal, labelled {VKN}SIGN0 and SIGN1.
    let mut expected = Vec::new();
    for label in ["4540536920SIGN0", "4540536920SIGN1"] {
        for kind in [
            "Certificate Object",
            "Private Key Object",
            "Public Key Object",
        ] {
            expected.push((kind.to_owned(), label.to_owned()));
        }
    }
    expected.sort();
    assert_eq!(hsm.objects("musteri"), expected);

    for label in ["4540536920SIGN0", "4540536920SIGN1"] {
        let delivered = format!("deliveries/order-1/certs/{label}.pem");
        assert_eq!(ws.verify_chain(&delivered).code, 0, "{label}");
        let text = ws.openssl_text(&delivered);
        assert!(text.contains("4540536920"), "{text}");
        assert!(text.contains("Digital Signature"), "{text}");
        // The certificate in the token is the one delivered.
        let from_token = hsm.certificate(&ws, "musteri", label, &format!("{label}-token.der"));
        assert_eq!(
            from_token,
            ws.read(&format!("deliveries/order-1/certs/{label}.der")),
            "{label}"
        );
    }

    // A re-run provisions nothing and touches nothing.
    let again = provision_order(&["--json"]).ok();
    let report: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(report["produced_now"], 0, "{report}");
    assert_eq!(hsm.objects("musteri"), expected);
    let status = run_journalled(&ws, &hsm, &["order", "status", "--order", "1"]).ok();
    assert!(status.stdout.contains("delivered"), "{}", status.stdout);
}

#[test]
fn the_companys_own_unlabelled_objects_are_never_touched() {
    let (ws, hsm) = setup(&["musteri"]);
    ws.certmint(&["ca", "init", "--dir", "ca"]).ok();
    // An object of the company's own, without a label (as some software makes them).
    ws.write("company-data.bin", b"not certmint's");
    hsm.pkcs11_tool(
        "musteri",
        &[
            "--write-object",
            "company-data.bin",
            "--type",
            "data",
            "--private",
        ],
    )
    .ok();
    let data_objects = || {
        hsm.pkcs11_tool("musteri", &["--list-objects", "--type", "data"])
            .stdout
            .matches("Data object")
            .count()
    };
    assert_eq!(data_objects(), 1);
    import_seal_order(&ws, &hsm, "1");
    run_journalled(&ws, &hsm, &["order", "pay", "--order", "1"]).ok();
    provision_order(&ws, &hsm, &[]).ok();
    // A re-run changes nothing either.
    provision_order(&ws, &hsm, &[]).ok();
    assert_eq!(data_objects(), 1, "the company's object is still there");
    assert_eq!(
        hsm.objects("musteri").len(),
        3,
        "one seal: key pair and certificate"
    );
}

#[test]
fn an_order_never_takes_over_a_seal_provisioned_outside_it() {
    let (ws, hsm) = setup(&["musteri"]);
    ws.certmint(&["ca", "init", "--dir", "ca"]).ok();
    // A seal made by hand (not journalled) holds the label the order will want.
    provision(&ws, &hsm, "p384", &[]).ok();
    let before = hsm.objects("musteri");
    assert_eq!(before.len(), 3);
    import_seal_order(&ws, &hsm, "1");
    run_journalled(&ws, &hsm, &["order", "pay", "--order", "1"]).ok();
    let refused = provision_order(&ws, &hsm, &[]);
    assert_eq!(refused.code, 5, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("already holds objects labelled \"4540536920SIGN0\""),
        "{}",
        refused.stderr
    );
    assert_eq!(hsm.objects("musteri"), before, "nothing removed or added");
}
