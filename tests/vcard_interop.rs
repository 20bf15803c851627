//! The virtual PIV card through the real stack — a private pcscd, the
//! vsmartcard-vpcd reader driver, `certmint card virtual` — used only by
//! independent clients: OpenSC (opensc-tool, pkcs11-tool with OpenSC's
//! PKCS#11 module), yubico-piv-tool, and OpenSSL to check what they made.
//! If these work, the card follows SP 800-73-4 as others read it, not only
//! as certmint's own client does.
//!
//! Needs pcscd, vsmartcard-vpcd, opensc, yubico-piv-tool and openssl
//! (scripts/setup-debian.sh) and root (pcscd writes /run/pcscd/pcscd.pid).

mod common;

use std::time::Duration;

use common::pcsc::{require_program, PcscStack, OPENSC_PKCS11};
use common::Run;

/// The factory management key, as yubico-piv-tool takes it.
const MGMT_KEY: &str = "--key=010203040506070801020304050607080102030405060708";

fn tools() {
    require_program("opensc-tool", "opensc");
    require_program("pkcs11-tool", "opensc");
    require_program("yubico-piv-tool", "yubico-piv-tool");
    require_program("openssl", "openssl");
    common::pcsc::require_file(OPENSC_PKCS11, "opensc-pkcs11");
}

/// A stack with one virtual card (started with `extra`) in slot 0.
fn stack_with_card(extra: &[&str]) -> (PcscStack, usize) {
    tools();
    let mut stack = PcscStack::start();
    let card = stack.start_card(0, extra);
    (stack, card)
}

/// yubico-piv-tool on the card in slot 0.
fn piv_tool(stack: &PcscStack, args: &[&str]) -> Run {
    let reader = stack.reader(0);
    let mut all = vec!["-r", reader.as_str()];
    all.extend_from_slice(args);
    stack.run("yubico-piv-tool", &all)
}

/// Both streams, for tools that report on either.
fn said(run: &Run) -> String {
    format!("{}{}", run.stdout, run.stderr)
}

fn pkcs11_tool(stack: &PcscStack, args: &[&str]) -> Run {
    let mut all = vec!["--module", OPENSC_PKCS11];
    all.extend_from_slice(args);
    stack.run("pkcs11-tool", &all)
}

/// A throwaway CA made by OpenSSL, in the stack's folder.
fn openssl_ca(stack: &PcscStack) {
    stack
        .run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=Rehearsal CA",
                "-days",
                "2",
            ],
        )
        .ok();
}

/// A certificate issued by the OpenSSL CA for the public key in
/// `public_key` (PEM), written to `out`. yubico-piv-tool 2.2.0 cannot
/// self-sign with OpenSSL 3 (its issue #388, real YubiKeys included), so
/// the certificate comes from OpenSSL, as a CA would deliver it.
fn certificate_for(stack: &PcscStack, public_key: &str, subject: &str, out: &str) {
    stack
        .run(
            "openssl",
            &[
                "req",
                "-new",
                "-key",
                "ca.key",
                "-subj",
                subject,
                "-out",
                "request.csr",
            ],
        )
        .ok();
    stack
        .run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                "request.csr",
                "-force_pubkey",
                public_key,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                out,
            ],
        )
        .ok();
}

/// Generates a key in `slot` with yubico-piv-tool and imports a certificate
/// for it; returns the certificate's file name.
fn provision_slot(stack: &PcscStack, slot: &str, algorithm: &str) -> String {
    let public_key = format!("public-{slot}.pem");
    let certificate = format!("certificate-{slot}.pem");
    let run = piv_tool(
        stack,
        &[
            "-a",
            "generate",
            "-s",
            slot,
            "-A",
            algorithm,
            MGMT_KEY,
            "-o",
            &public_key,
        ],
    );
    assert!(
        said(&run).contains("Successfully generated"),
        "{}",
        said(&run)
    );
    certificate_for(
        stack,
        &public_key,
        &format!("/CN=slot {slot}"),
        &certificate,
    );
    let run = piv_tool(
        stack,
        &[
            "-a",
            "import-certificate",
            "-s",
            slot,
            "-i",
            &certificate,
            MGMT_KEY,
        ],
    );
    assert!(
        said(&run).contains("Successfully imported"),
        "{}",
        said(&run)
    );
    certificate
}

/// Signs `data.txt` with pkcs11-tool and key `id`, then checks the
/// signature with OpenSSL under the public key of `certificate`.
fn pkcs11_signature_verifies(
    stack: &PcscStack,
    id: &str,
    mechanism: &str,
    certificate: &str,
    digest: &str,
) {
    let signature = format!("signature-{id}.bin");
    let mut args = vec![
        "--login",
        "--pin",
        "123456",
        "--sign",
        "--id",
        id,
        "--mechanism",
        mechanism,
        "--input-file",
        "data.txt",
        "--output-file",
        &signature,
    ];
    if mechanism.starts_with("ECDSA") {
        args.extend_from_slice(&["--signature-format", "openssl"]);
    }
    pkcs11_tool(stack, &args).ok();
    let public_key = format!("verify-{id}.pem");
    stack
        .run(
            "openssl",
            &[
                "x509",
                "-in",
                certificate,
                "-pubkey",
                "-noout",
                "-out",
                &public_key,
            ],
        )
        .ok();
    let run = stack
        .run(
            "openssl",
            &[
                "dgst",
                digest,
                "-verify",
                &public_key,
                "-signature",
                &signature,
                "data.txt",
            ],
        )
        .ok();
    assert!(
        run.stdout.contains("Verified OK"),
        "{mechanism}: {}",
        run.stdout
    );
}

#[test]
fn opensc_sees_the_card_and_identifies_it_as_piv() {
    let (stack, _) = stack_with_card(&[]);
    let readers = stack.run("opensc-tool", &["--list-readers"]).ok().stdout;
    let line = |reader: &str| {
        readers
            .lines()
            .find(|l| l.ends_with(reader))
            .unwrap_or_else(|| panic!("no {reader} in\n{readers}"))
            .to_owned()
    };
    assert!(line(&stack.reader(0)).contains("Yes"), "{readers}");
    assert!(line(&stack.reader(1)).contains("No"), "{readers}");

    let atr = stack.run("opensc-tool", &["-r", "0", "--atr"]).ok().stdout;
    let expected: Vec<String> = certmint::tools::vcard::atr()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(atr.trim(), expected.join(":"));

    let name = stack.run("opensc-tool", &["-r", "0", "--name"]).ok().stdout;
    assert!(
        name.contains("Personal Identity Verification Card"),
        "{name}"
    );
}

#[test]
fn yubico_piv_tool_generates_imports_reads_and_signs() {
    let (stack, card) = stack_with_card(&[]);
    openssl_ca(&stack);
    let status = said(&piv_tool(&stack, &["-a", "status"]).ok());
    assert!(status.contains("PIN tries left:\t3"), "{status}");
    assert!(
        status.contains("CHUID:\t3019"),
        "a CHUID with a FASC-N: {status}"
    );
    assert!(status.contains("CCC:\tf015"), "{status}");

    let p256 = provision_slot(&stack, "9c", "ECCP256");
    let read = piv_tool(
        &stack,
        &["-a", "read-certificate", "-s", "9c", "-o", "read-9c.pem"],
    )
    .ok();
    assert_eq!(
        std::fs::read(stack.path("read-9c.pem")).unwrap(),
        std::fs::read(stack.path(&p256)).unwrap(),
        "{}",
        said(&read)
    );
    let run = piv_tool(
        &stack,
        &[
            "-a",
            "verify-pin",
            "-P",
            "123456",
            "-a",
            "test-signature",
            "-s",
            "9c",
            "-i",
            &p256,
        ],
    );
    assert!(
        said(&run).contains("Successful ECDSA verification"),
        "{}",
        said(&run)
    );

    // RSA-2048: the public key template is longer than one response (61 xx,
    // GET RESPONSE) and the certificate longer than one command (chaining).
    let rsa = provision_slot(&stack, "9a", "RSA2048");
    assert!(std::fs::read(stack.path(&rsa)).unwrap().len() > 600);
    let log = stack.card_log(card);
    assert!(
        log.contains("00 47 00 9A GENERATE ASYMMETRIC KEY PAIR (5 data octets) -> 61 "),
        "{log}"
    );
    assert!(log.contains("00 C0 00 00 GET RESPONSE"), "{log}");
    assert!(
        log.contains("10 DB 3F FF PUT DATA (255 data octets) -> 90 00"),
        "{log}"
    );
    let run = piv_tool(
        &stack,
        &[
            "-a",
            "verify-pin",
            "-P",
            "123456",
            "-a",
            "test-signature",
            "-s",
            "9a",
            "-i",
            &rsa,
        ],
    );
    assert!(
        said(&run).contains("Successful RSA verification"),
        "{}",
        said(&run)
    );

    let status = said(&piv_tool(&stack, &["-a", "status"]).ok());
    assert!(
        status.contains("Slot 9c:") && status.contains("Slot 9a:"),
        "{status}"
    );
    assert!(
        !log.contains("123456") && !log.contains("313233343536"),
        "the log holds no PIN"
    );
}

#[test]
fn yubico_piv_tool_counts_pin_tries_and_reports_a_blocked_pin() {
    let (stack, _) = stack_with_card(&[]);
    for tries_left in [2, 1] {
        let run = piv_tool(&stack, &["-a", "verify-pin", "-P", "000000"]);
        assert_ne!(run.code, 0);
        assert!(
            said(&run).contains(&format!("{tries_left} tries left")),
            "{}",
            said(&run)
        );
        let status = said(&piv_tool(&stack, &["-a", "status"]).ok());
        assert!(
            status.contains(&format!("PIN tries left:\t{tries_left}")),
            "{status}"
        );
    }
    let run = piv_tool(&stack, &["-a", "verify-pin", "-P", "000000"]);
    assert!(said(&run).contains("blocked"), "{}", said(&run));
    let status = said(&piv_tool(&stack, &["-a", "status"]).ok());
    assert!(status.contains("PIN tries left:\t0"), "{status}");
    // Blocked means blocked, even for the right PIN.
    let run = piv_tool(&stack, &["-a", "verify-pin", "-P", "123456"]);
    assert!(said(&run).contains("blocked"), "{}", said(&run));
    // The PUK unblocks it.
    let run = piv_tool(
        &stack,
        &["-a", "unblock-pin", "-P", "12345678", "-N", "24681357"],
    );
    assert!(
        said(&run).contains("Successfully unblocked"),
        "{}",
        said(&run)
    );
    let run = piv_tool(&stack, &["-a", "verify-pin", "-P", "24681357"]).ok();
    assert!(
        said(&run).contains("Successfully verified"),
        "{}",
        said(&run)
    );
}

#[test]
fn pkcs11_signatures_with_opensc_verify_with_openssl() {
    let (stack, _) = stack_with_card(&[]);
    openssl_ca(&stack);
    let p256 = provision_slot(&stack, "9c", "ECCP256");
    let rsa = provision_slot(&stack, "9a", "RSA2048");
    let p384 = provision_slot(&stack, "9e", "ECCP384");
    std::fs::write(stack.path("data.txt"), b"a Mali Muhur rehearsal\n").unwrap();

    let slots = pkcs11_tool(&stack, &["--list-slots"]).ok().stdout;
    assert!(slots.contains(&stack.reader(0)), "{slots}");
    let objects = pkcs11_tool(&stack, &["--list-objects"]).ok().stdout;
    for expected in [
        "Certificate for Digital Signature",
        "Certificate for PIV Authentication",
        "Certificate for Card Authentication",
        "CN=slot 9c",
        "CN=slot 9a",
        "CN=slot 9e",
    ] {
        assert!(objects.contains(expected), "{expected}:\n{objects}");
    }

    // OpenSC numbers the PIV keys 01 (9A), 02 (9C), 03 (9D), 04 (9E). The
    // 9C key needs the PIN again for each signature, which pkcs11-tool
    // gives as a context-specific login.
    pkcs11_signature_verifies(&stack, "02", "ECDSA-SHA256", &p256, "-sha256");
    pkcs11_signature_verifies(&stack, "01", "SHA256-RSA-PKCS", &rsa, "-sha256");
    pkcs11_signature_verifies(&stack, "04", "ECDSA-SHA384", &p384, "-sha384");
    // Raw ECDSA over a hash made outside the card.
    stack
        .run(
            "openssl",
            &["dgst", "-sha256", "-binary", "-out", "hash.bin", "data.txt"],
        )
        .ok();
    pkcs11_tool(
        &stack,
        &[
            "--login",
            "--pin",
            "123456",
            "--sign",
            "--id",
            "02",
            "--mechanism",
            "ECDSA",
            "--signature-format",
            "openssl",
            "--input-file",
            "hash.bin",
            "--output-file",
            "raw.sig",
        ],
    )
    .ok();
    stack
        .run(
            "openssl",
            &[
                "x509", "-in", &p256, "-pubkey", "-noout", "-out", "p256.pem",
            ],
        )
        .ok();
    let run = stack
        .run(
            "openssl",
            &[
                "dgst",
                "-sha256",
                "-verify",
                "p256.pem",
                "-signature",
                "raw.sig",
                "data.txt",
            ],
        )
        .ok();
    assert!(run.stdout.contains("Verified OK"));
    // A wrong PIN is refused through PKCS#11 as well.
    let run = pkcs11_tool(&stack, &["--login", "--pin", "000000", "--list-objects"]);
    assert!(said(&run).contains("CKR_PIN_INCORRECT"), "{}", said(&run));
}

// Here the card is driven by OpenSC and yubico-piv-tool, one program run
// per step, so it leaves when idle. The idle times are several times what
// the test takes between two steps, so that a pause of a busy host does not
// pull a card early (the station tests' 600 ms did, in CI).
#[test]
fn a_station_run_presents_a_fresh_card_after_each_idle_removal() {
    let (mut stack, card) = stack_with_card(&["--cards", "2", "--eject-idle-ms", "4000"]);
    openssl_ca(&stack);
    let first_status = said(&piv_tool(&stack, &["-a", "status"]).ok());
    provision_slot(&stack, "9e", "ECCP256");
    stack.wait_for_log(
        card,
        "card 1: removed after 4000 ms idle",
        Duration::from_secs(20),
    );
    stack.wait_for_log(card, "card 2 of 2: inserted", Duration::from_secs(20));
    stack.wait_for_log(card, "card 2: power on", Duration::from_secs(20));
    // The second card is blank: another CHUID, no certificate.
    let second_status = said(&piv_tool(&stack, &["-a", "status"]).ok());
    let chuid = |status: &str| {
        status
            .lines()
            .find(|l| l.starts_with("CHUID:"))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    assert_ne!(chuid(&first_status), chuid(&second_status));
    assert!(!second_status.contains("Slot 9e:"), "{second_status}");
    // After the last card leaves, the program ends by itself.
    assert_eq!(stack.wait_for_card_exit(card, Duration::from_secs(20)), 0);
    assert!(stack
        .card_log(card)
        .contains("card 2: removed after 4000 ms idle"));
}

#[test]
fn a_card_pulled_during_put_data_fails_the_write_and_the_next_card_is_blank() {
    let (stack, card) = stack_with_card(&[
        "--cards",
        "2",
        "--eject-idle-ms",
        "6000",
        "--remove-on-ins",
        "db",
    ]);
    openssl_ca(&stack);
    let run = piv_tool(
        &stack,
        &[
            "-a",
            "generate",
            "-s",
            "9c",
            "-A",
            "ECCP256",
            MGMT_KEY,
            "-o",
            "public-9c.pem",
        ],
    );
    assert!(
        said(&run).contains("Successfully generated"),
        "{}",
        said(&run)
    );
    certificate_for(&stack, "public-9c.pem", "/CN=pulled", "pulled.pem");
    let run = piv_tool(
        &stack,
        &[
            "-a",
            "import-certificate",
            "-s",
            "9c",
            "-i",
            "pulled.pem",
            MGMT_KEY,
        ],
    );
    assert_ne!(run.code, 0, "the write cannot succeed: {}", said(&run));
    assert!(
        !said(&run).contains("Successfully imported"),
        "{}",
        said(&run)
    );
    stack.wait_for_log(
        card,
        "card 1: removed by fault injection at PUT DATA (DB) #1, before answering",
        Duration::from_secs(10),
    );
    let log = stack.card_log(card);
    assert!(
        !log.contains("DB 3F FF PUT DATA"),
        "no PUT DATA was answered: {log}"
    );
    stack.wait_for_log(card, "card 2: power on", Duration::from_secs(20));
    let run = piv_tool(&stack, &["-a", "read-certificate", "-s", "9c"]);
    assert_ne!(
        run.code,
        0,
        "the new card has no certificate: {}",
        said(&run)
    );
    let status = said(&piv_tool(&stack, &["-a", "status"]).ok());
    assert!(status.contains("PIN tries left:\t3"), "{status}");
}
