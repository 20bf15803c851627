//! Smart cards end to end through the real stack: a private pcscd with the
//! vsmartcard-vpcd reader driver, virtual PIV cards (`certmint card
//! virtual`), and certmint's `card list|provision|station` talking to them
//! through the `pcsc` crate. What certmint wrote is read back by OpenSC and
//! yubico-piv-tool, and checked with OpenSSL.
//!
//! Needs pcscd, vsmartcard-vpcd, opensc, yubico-piv-tool and openssl
//! (scripts/setup-debian.sh) and root (pcscd writes /run/pcscd/pcscd.pid).

mod common;

use std::time::{Duration, Instant};

use certmint::journal::{Journal, OrderId, SqlJournal};
use common::pcsc::{require_program, PcscStack, OPENSC_PKCS11};
use common::Run;

const VKN: &str = "4540536920";
const UNVAN: &str = "Örnek Bilişim A.Ş.";
/// A card-specific management key the virtual cards are made with, so the
/// runs need no factory-default override.
const CARD_KEY: &str = "00112233445566778899AABBCCDDEEFF0011223344556677";

fn tools() {
    require_program("pkcs11-tool", "opensc");
    require_program("yubico-piv-tool", "yubico-piv-tool");
    require_program("openssl", "openssl");
    common::pcsc::require_file(OPENSC_PKCS11, "opensc-pkcs11");
}

/// How long one certmint run may take before the test fails instead of
/// hanging (a station waits for cards forever).
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// certmint in the stack's folder, reaching its pcscd, with a journal and
/// the card secrets in the environment (never in arguments).
fn certmint(stack: &PcscStack, args: &[&str], extra: &[(&str, &str)]) -> Run {
    let journal = stack.path("journal.sqlite").display().to_string();
    let (out, err) = (stack.path("run.stdout"), stack.path("run.stderr"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_certmint"))
        .args(args)
        .envs(stack.env())
        .env("CERTMINT_JOURNAL", journal)
        .env("CERTMINT_OPERATOR", "card-operator")
        .env("CARD_KEY", CARD_KEY)
        .envs(extra.iter().copied())
        .current_dir(stack.path(""))
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("run certmint");
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "certmint {args:?} still ran after {RUN_LIMIT:?}:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(&out).unwrap(),
        stderr: std::fs::read_to_string(&err).unwrap(),
    }
}

fn said(run: &Run) -> String {
    format!("{}{}", run.stdout, run.stderr)
}

fn stack_with_ca() -> PcscStack {
    tools();
    let stack = PcscStack::start();
    certmint(&stack, &["ca", "init", "--dir", "ca"], &[]).ok();
    stack
}

/// `card virtual` arguments for a card with the test management key.
///
/// Cards that a station should see come and go get `--eject-on-reset`:
/// the card leaves when the station, through with it, resets it — as an
/// operator takes the card out when told. Leaving when idle instead would
/// pull a card whenever the host paused longer than the idle time between
/// two commands (a slow fsync of the journal on a busy CI host did, with
/// 600 ms).
fn card_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--mgmt-key", CARD_KEY];
    args.extend_from_slice(extra);
    args
}

/// `card virtual` arguments for `cards` station cards with the test PIN,
/// each leaving when the station resets it, then `extra`.
fn station_cards<'a>(cards: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = card_args(&[
        "--pin",
        "24681357",
        "--cards",
        cards,
        "--eject-on-reset",
        "--insert-pause-ms",
        "1500",
    ]);
    args.extend_from_slice(extra);
    args
}

fn provision_args<'a>(reader: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "card",
        "provision",
        "--ca",
        "ca",
        "--reader",
        reader,
        "--vkn",
        VKN,
        "--unvan",
        UNVAN,
        "--mgmt-key-env",
        "CARD_KEY",
        "--pin-env",
        "CARD_PIN",
    ];
    args.extend_from_slice(extra);
    args
}

fn piv_tool(stack: &PcscStack, slot: u16, args: &[&str]) -> Run {
    let reader = stack.reader(slot);
    let mut all = vec!["-r", reader.as_str()];
    all.extend_from_slice(args);
    stack.run("yubico-piv-tool", &all)
}

fn pin_tries(stack: &PcscStack) -> String {
    let status = said(&piv_tool(stack, 0, &["-a", "status"]));
    status
        .lines()
        .find(|l| l.starts_with("PIN tries left:"))
        .map(|l| l.trim().to_owned())
        .unwrap_or_else(|| panic!("no PIN tries in:\n{status}"))
}

/// How many VERIFY commands with a PIN (not the empty status query) card
/// `index` received. The card logs each command's header and data length.
fn pin_verifies(stack: &PcscStack, index: usize) -> usize {
    stack
        .card_log(index)
        .lines()
        .filter(|l| l.contains("00 20 00 80") && !l.contains("0 data octets"))
        .count()
}

#[test]
fn card_list_shows_readers_atr_and_piv() {
    tools();
    let mut stack = PcscStack::start();
    stack.start_card(0, &card_args(&[]));
    let run = certmint(&stack, &["card", "list", "--json"], &[]).ok();
    let readers: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(readers["schema"], "certmint.card.list/1");
    let find = |slot: u16| {
        readers["readers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["reader"] == stack.reader(slot))
            .unwrap_or_else(|| panic!("reader {slot} missing in {readers}"))
            .clone()
    };
    let with_card = find(0);
    assert_eq!(with_card["card_present"], true);
    assert_eq!(with_card["piv"], true);
    assert!(with_card["atr"].as_str().unwrap().starts_with("3B"));
    let empty = find(1);
    assert_eq!(empty["card_present"], false);
    assert!(empty["piv"].is_null());
    let text = certmint(&stack, &["card", "list"], &[]).ok().stdout;
    assert!(text.contains(", PIV"), "{text}");
    assert!(text.contains("no card"), "{text}");
}

#[test]
fn a_provisioned_card_is_read_back_and_signs_through_opensc() {
    let mut stack = stack_with_ca();
    stack.start_card(0, &card_args(&[]));
    let reader = stack.reader(0);
    let run = certmint(
        &stack,
        &provision_args(
            &reader,
            &[
                "--key-type",
                "p384",
                "--puk-env",
                "CARD_PUK",
                "--pin-letter",
                "letter.txt",
                "--out",
                "seal.pem",
            ],
        ),
        &[("CARD_PIN", "123456"), ("CARD_PUK", "12345678")],
    )
    .ok();
    assert!(
        run.stdout
            .contains("test signature made by the card verifies"),
        "{}",
        run.stdout
    );
    // No secret reached the output.
    assert!(!said(&run).contains("123456") && !said(&run).contains(CARD_KEY));

    // The PIN letter (0600) holds the card's new PIN and PUK.
    let letter = std::fs::read_to_string(stack.path("letter.txt")).unwrap();
    let field = |name: &str| {
        letter
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in the letter"))
            .trim()
            .to_owned()
    };
    let (pin, puk) = (field("PIN:"), field("PUK:"));
    assert_eq!((pin.len(), puk.len()), (8, 8));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(stack.path("letter.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // yubico-piv-tool reads back exactly the certificate certmint wrote.
    let read = piv_tool(&stack, 0, &["-a", "read-certificate", "-s", "9c"]).ok();
    let written = std::fs::read_to_string(stack.path("seal.pem")).unwrap();
    assert_eq!(read.stdout.trim(), written.trim());

    // OpenSSL: the chain verifies, the subject is the company's.
    let subject = stack
        .run(
            "openssl",
            &[
                "x509", "-in", "seal.pem", "-noout", "-subject", "-nameopt", "RFC2253",
            ],
        )
        .ok()
        .stdout;
    assert!(subject.contains(VKN), "{subject}");
    let verify = stack
        .run(
            "openssl",
            &[
                "verify",
                "-CAfile",
                "ca/root.pem",
                "-untrusted",
                "ca/issuing.pem",
                "seal.pem",
            ],
        )
        .ok();
    assert!(verify.stdout.contains("seal.pem: OK"), "{}", verify.stdout);

    // OpenSC's PIV driver: the certificate object equals ours, and a
    // signature made with the card's key (new PIN from the letter) verifies
    // under the certificate.
    std::fs::write(stack.path("data.txt"), b"signed through OpenSC").unwrap();
    stack
        .run(
            "pkcs11-tool",
            &[
                "--module",
                OPENSC_PKCS11,
                "--read-object",
                "--type",
                "cert",
                "--id",
                "02",
                "--output-file",
                "opensc.der",
            ],
        )
        .ok();
    let der = stack
        .run(
            "openssl",
            &[
                "x509", "-in", "seal.pem", "-outform", "DER", "-out", "seal.der",
            ],
        )
        .ok();
    drop(der);
    assert_eq!(
        std::fs::read(stack.path("opensc.der")).unwrap(),
        std::fs::read(stack.path("seal.der")).unwrap()
    );
    stack
        .run(
            "pkcs11-tool",
            &[
                "--module",
                OPENSC_PKCS11,
                "--login",
                "--pin",
                &pin,
                "--sign",
                "--id",
                "02",
                "--mechanism",
                "ECDSA-SHA384",
                "--signature-format",
                "openssl",
                "--input-file",
                "data.txt",
                "--output-file",
                "data.sig",
            ],
        )
        .ok();
    stack
        .run(
            "openssl",
            &[
                "x509", "-in", "seal.pem", "-pubkey", "-noout", "-out", "seal.pub",
            ],
        )
        .ok();
    let checked = stack
        .run(
            "openssl",
            &[
                "dgst",
                "-sha384",
                "-verify",
                "seal.pub",
                "-signature",
                "data.sig",
                "data.txt",
            ],
        )
        .ok();
    assert!(checked.stdout.contains("Verified OK"), "{}", checked.stdout);

    // The slot is taken now: a second run is refused and changes nothing.
    let again = certmint(
        &stack,
        &provision_args(&reader, &["--allow-factory-defaults"]),
        &[("CARD_PIN", &pin)],
    );
    assert_eq!(again.code, 5, "{}", said(&again));
    assert!(
        again.stderr.contains("already holds a certificate"),
        "{}",
        again.stderr
    );
    let read = piv_tool(&stack, 0, &["-a", "read-certificate", "-s", "9c"]).ok();
    assert_eq!(read.stdout.trim(), written.trim());
}

#[test]
fn rsa_2048_on_a_card_with_an_aes_management_key() {
    let mut stack = stack_with_ca();
    let aes_key = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";
    stack.start_card(
        0,
        &[
            "--mgmt-algorithm",
            "aes256",
            "--mgmt-key",
            aes_key,
            "--pin",
            "24681357",
        ],
    );
    let reader = stack.reader(0);
    let run = certmint(
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
            "--key-type",
            "rsa2048",
            "--mgmt-algorithm",
            "aes256",
            "--mgmt-key-env",
            "AES_KEY",
            "--pin-env",
            "CARD_PIN",
            "--out",
            "rsa.pem",
        ],
        &[("AES_KEY", aes_key), ("CARD_PIN", "24681357")],
    )
    .ok();
    assert!(run.stdout.contains("rsa2048 key"), "{}", run.stdout);
    let read = piv_tool(&stack, 0, &["-a", "read-certificate", "-s", "9c"]).ok();
    let written = std::fs::read_to_string(stack.path("rsa.pem")).unwrap();
    assert_eq!(read.stdout.trim(), written.trim());
}

#[test]
fn factory_secrets_are_refused_without_the_override() {
    let mut stack = stack_with_ca();
    let card = stack.start_card(0, &[]);
    let reader = stack.reader(0);
    let mut args = provision_args(&reader, &[]);
    let key_env = args.iter().position(|a| *a == "--mgmt-key-env").unwrap();
    args.drain(key_env..key_env + 2);
    let run = certmint(&stack, &args, &[("CARD_PIN", "123456")]);
    assert_eq!(run.code, 2, "{}", said(&run));
    assert!(
        run.stderr.contains("--allow-factory-defaults"),
        "{}",
        run.stderr
    );
    // The factory PIN staying on the card is refused too.
    let run = certmint(
        &stack,
        &provision_args(&reader, &[]),
        &[
            ("CARD_PIN", "123456"),
            (
                "CARD_KEY",
                "010203040506070801020304050607080102030405060708",
            ),
        ],
    );
    assert_eq!(run.code, 5, "{}", said(&run));
    assert!(run.stderr.contains("factory"), "{}", run.stderr);
    assert_eq!(pin_verifies(&stack, card), 0, "the card was not touched");
}

#[test]
fn a_wrong_pin_spends_one_try_and_stops() {
    let mut stack = stack_with_ca();
    let card = stack.start_card(0, &card_args(&["--pin", "24681357"]));
    let reader = stack.reader(0);
    assert_eq!(pin_tries(&stack), "PIN tries left:\t3");
    let run = certmint(
        &stack,
        &provision_args(&reader, &[]),
        &[("CARD_PIN", "11112222")],
    );
    assert_eq!(run.code, 5, "{}", said(&run));
    assert!(
        run.stderr.contains("wrong PIN: 2 tries left"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("11112222"));
    assert_eq!(
        pin_verifies(&stack, card),
        1,
        "exactly one VERIFY with a PIN"
    );
    assert_eq!(pin_tries(&stack), "PIN tries left:\t2");
    // Nothing was generated or written.
    let slot = piv_tool(&stack, 0, &["-a", "read-certificate", "-s", "9c"]);
    assert_ne!(slot.code, 0);
    assert!(!stack.card_log(card).contains("00 47 00 9C"), "no GENERATE");
}

#[test]
fn a_blocked_pin_is_reported_without_spending_a_try() {
    let mut stack = stack_with_ca();
    let card = stack.start_card(0, &card_args(&["--pin", "24681357", "--pin-tries", "1"]));
    let reader = stack.reader(0);
    let blocked = piv_tool(&stack, 0, &["-a", "verify-pin", "-P", "99999999"]);
    assert_ne!(blocked.code, 0);
    let before = pin_verifies(&stack, card);
    let run = certmint(
        &stack,
        &provision_args(&reader, &[]),
        &[("CARD_PIN", "24681357")],
    );
    assert_eq!(run.code, 5, "{}", said(&run));
    assert!(run.stderr.contains("the PIN is blocked"), "{}", run.stderr);
    assert_eq!(
        pin_verifies(&stack, card),
        before,
        "no VERIFY sent to a blocked PIN"
    );
}

/// Imports and pays a card-target ÖKC order of `serials`; returns its number.
fn card_order(stack: &PcscStack, serials: &[&str]) -> String {
    std::fs::write(stack.path("serials.txt"), serials.join("\n") + "\n").unwrap();
    common::register_manufacturer(|args| certmint(stack, args, &[]), VKN, "FU", false);
    certmint(
        stack,
        &[
            "order",
            "import",
            "--manufacturer",
            "Örnek Yazarkasa A.Ş.",
            "--manufacturer-vkn",
            VKN,
            "--ca",
            "ca",
            "--prefixes",
            "FU",
            "--serials",
            "serials.txt",
            "--target",
            "card",
            "--key-type",
            "p256",
        ],
        &[],
    )
    .ok();
    certmint(stack, &["order", "pay", "--order", "1"], &[]).ok();
    "1".into()
}

fn station(stack: &PcscStack, order: &str) -> Run {
    certmint(
        stack,
        &[
            "card",
            "station",
            "--order",
            order,
            "--ca",
            "ca",
            "--mgmt-key-env",
            "CARD_KEY",
            "--pin-env",
            "CARD_PIN",
            "--card-puk-env",
            "CARD_PUK",
            "--out",
            "deliveries",
        ],
        // The virtual cards' PUK is the factory one: each card gets its own.
        &[("CARD_PIN", "24681357"), ("CARD_PUK", "12345678")],
    )
}

fn journal(stack: &PcscStack) -> SqlJournal {
    SqlJournal::open(&stack.path("journal.sqlite")).unwrap()
}

/// Checks that the station `run` produced a card for each of `serials` (order
/// 1), that each device has exactly one valid certificate, and that the
/// audit chain is intact; returns the journal for more checks.
fn produced_one_certificate_each(stack: &PcscStack, run: &Run, serials: &[&str]) -> SqlJournal {
    assert!(
        run.stdout
            .contains(&format!("{} card(s) produced now", serials.len())),
        "{}",
        said(run)
    );
    let journal = journal(stack);
    let active = journal.active_certificates_per_device(OrderId(1)).unwrap();
    let expected: Vec<(String, _)> = serials.iter().map(|s| (s.to_string(), 1)).collect();
    assert_eq!(active, expected);
    assert!(journal.verify_audit().unwrap().is_intact());
    journal
}

#[test]
fn a_station_serves_two_readers_in_parallel() {
    let mut stack = stack_with_ca();
    let serials = [
        "FU10000001",
        "FU10000002",
        "FU10000003",
        "FU10000004",
        "FU10000005",
        "FU10000006",
    ];
    let order = card_order(&stack, &serials);
    for slot in [0, 1] {
        stack.start_card(slot, &station_cards("3", &[]));
    }
    let run = station(&stack, &order).ok();
    assert!(
        run.stdout.contains("6 card(s) produced now"),
        "{}",
        said(&run)
    );
    for slot in [0, 1] {
        let reader = stack.reader(slot);
        let done = run
            .stderr
            .lines()
            .filter(|l| l.starts_with(&format!("[{reader}]")) && l.contains(": done, certificate"))
            .count();
        assert!(
            done >= 1,
            "reader {reader} produced nothing:\n{}",
            run.stderr
        );
    }
    let journal = journal(&stack);
    let summary = journal.order(OrderId(1)).unwrap();
    assert_eq!(summary.verified, 6);
    assert_eq!(summary.state.to_string(), "delivered");
    for (serial, active) in journal.active_certificates_per_device(OrderId(1)).unwrap() {
        assert_eq!(active, 1, "{serial}");
        let cert = format!("deliveries/order-1/certs/{serial}.pem");
        let verify = stack
            .run(
                "openssl",
                &[
                    "verify",
                    "-CAfile",
                    "ca/root.pem",
                    "-untrusted",
                    "ca/okc-issuing.pem",
                    &cert,
                ],
            )
            .ok();
        assert!(verify.stdout.contains(": OK"), "{}", verify.stdout);
    }
    assert!(journal.verify_audit().unwrap().is_intact());
}

#[test]
fn a_card_pulled_mid_write_is_reported_and_its_device_goes_to_the_next_card() {
    let log = card_lost_mid_write_goes_to_the_next_card(false);
    assert_eq!(log.matches("card 1 of 3: inserted").count(), 1, "{log}");
}

/// A card whose contact breaks mid-exchange (pcsc-lite answers
/// SCARD_E_NOT_TRANSACTED, not "removed") is a lost card like a pulled one,
/// not a reader failure that stops the station; re-seated, the same card
/// takes the device.
#[test]
fn a_card_that_loses_contact_mid_write_is_handled_as_pulled() {
    let log = card_lost_mid_write_goes_to_the_next_card(true);
    assert_eq!(log.matches("card 1 of 3: inserted").count(), 2, "{log}");
}

/// Three cards in turn; the first PUT DATA pulls the first card, or (with
/// `lose_contact`) breaks its contact once answered. Returns the virtual
/// card's log.
fn card_lost_mid_write_goes_to_the_next_card(lose_contact: bool) -> String {
    let mut stack = stack_with_ca();
    let order = card_order(&stack, &["FU20000001", "FU20000002"]);
    let mut fault = vec!["--remove-on-ins", "db", "--remove-on-count", "1"];
    let removal = if lose_contact {
        fault.push("--lose-contact");
        "card 1: lost contact by fault injection after answering PUT DATA (DB) #1"
    } else {
        "card 1: removed by fault injection at PUT DATA (DB) #1"
    };
    let card = stack.start_card(0, &station_cards("3", &fault));
    let run = station(&stack, &order).ok();
    assert!(
        stack.card_log(card).contains(removal),
        "{}",
        stack.card_log(card)
    );
    assert!(
        run.stderr.contains(
            "FU20000001: card pulled (or lost contact) while writing the certificate; certificate"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("voided; the device goes to the next card"),
        "{}",
        run.stderr
    );
    let journal = produced_one_certificate_each(&stack, &run, &["FU20000001", "FU20000002"]);
    // The voided certificate is on record as void, for the same device.
    let voided = run
        .stderr
        .lines()
        .find_map(|l| l.split("; certificate ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .expect("the voided serial is named");
    let record = journal.certificate_by_serial(voided).unwrap().unwrap();
    assert_eq!(
        (record.status.as_str(), record.device_serial.as_str()),
        ("void", "FU20000001")
    );
    stack.card_log(card)
}

#[test]
fn card_provision_with_the_card_pulled_mid_write_names_the_lost_certificate_and_can_run_again() {
    let mut stack = stack_with_ca();
    // The fault takes the first card out; the second must stay in after
    // `card provision` resets it, for piv-tool to read it back, so it leaves
    // only when idle for longer than this test runs.
    let card = stack.start_card(
        0,
        &card_args(&[
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
        ]),
    );
    let reader = stack.reader(0);
    let run = certmint(
        &stack,
        &provision_args(&reader, &["--out", "seal.pem"]),
        &[("CARD_PIN", "24681357")],
    );
    assert_eq!(run.code, 1, "{}", said(&run));
    assert!(
        run.stderr
            .contains("writing the certificate: the card was removed from the reader"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("may have been signed but is not on a proved card"),
        "{}",
        run.stderr
    );
    assert!(!stack.path("seal.pem").exists(), "nothing written");
    // The next card takes the same request.
    stack.wait_for_log(card, "card 2: power on", std::time::Duration::from_secs(20));
    let run = certmint(
        &stack,
        &provision_args(&reader, &["--out", "seal.pem"]),
        &[("CARD_PIN", "24681357")],
    )
    .ok();
    assert!(
        run.stdout
            .contains("test signature made by the card verifies"),
        "{}",
        run.stdout
    );
    let read = piv_tool(&stack, 0, &["-a", "read-certificate", "-s", "9c"]).ok();
    assert_eq!(
        read.stdout.trim(),
        std::fs::read_to_string(stack.path("seal.pem"))
            .unwrap()
            .trim()
    );
}

#[test]
fn a_mali_muhur_order_of_two_seals_is_produced_at_the_station() {
    let mut stack = stack_with_ca();
    let import = |stack: &PcscStack, seals: &str| {
        certmint(
            stack,
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
                "card",
                "--seals",
                seals,
            ],
            &[],
        )
    };
    // A seal is a card or an HSM key, never a software file.
    let soft = certmint(
        &stack,
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
            "soft",
        ],
        &[],
    );
    assert_ne!(soft.code, 0);
    assert!(
        soft.stderr.contains("--target card or --target hsm"),
        "{}",
        soft.stderr
    );
    import(&stack, "2").ok();
    // Unpaid: the station refuses.
    stack.start_card(0, &station_cards("2", &[]));
    let unpaid = station(&stack, "1");
    assert_ne!(unpaid.code, 0);
    assert!(unpaid.stderr.contains("is not paid"), "{}", unpaid.stderr);
    certmint(&stack, &["order", "pay", "--order", "1"], &[]).ok();
    let run = station(&stack, "1").ok();
    assert!(
        run.stdout.contains("2 card(s) produced now"),
        "{}",
        said(&run)
    );
    for label in ["4540536920SIGN0", "4540536920SIGN1"] {
        let cert = format!("deliveries/order-1/certs/{label}.pem");
        let verify = stack
            .run(
                "openssl",
                &[
                    "verify",
                    "-CAfile",
                    "ca/root.pem",
                    "-untrusted",
                    "ca/issuing.pem",
                    &cert,
                ],
            )
            .ok();
        assert!(verify.stdout.contains(": OK"), "{}", verify.stdout);
        let subject = stack
            .run(
                "openssl",
                &[
                    "x509",
                    "-in",
                    &cert,
                    "-noout",
                    "-subject",
                    "-nameopt",
                    "RFC2253,-esc_msb",
                ],
            )
            .ok()
            .stdout;
        assert!(
            subject.contains("serialNumber=4540536920")
                && subject.contains("CN=ÖRNEK BİLİŞİM A.Ş."),
            "{subject}"
        );
    }
    // The company's next order numbers its seals on.
    import(&stack, "1").ok();
    let journal = journal(&stack);
    assert_eq!(
        journal.device_order("4540536920SIGN2").unwrap(),
        Some(OrderId(2))
    );
    assert_eq!(
        journal.order(OrderId(1)).unwrap().state.to_string(),
        "delivered"
    );
}

/// A mute card: pcscd sees a card in the reader but cannot power it up
/// (the virtual card answers the reset with an ATR no reader takes, as a
/// damaged chip does). The station says so, and the device goes to the next
/// card; nothing was recorded for the mute card.
#[test]
fn a_mute_card_at_the_station_is_refused_and_its_device_goes_to_the_next_card() {
    let mut stack = stack_with_ca();
    let order = card_order(&stack, &["FU30000001", "FU30000002"]);
    let card = stack.start_card_until(
        0,
        &station_cards("3", &["--mute-cards", "1"]),
        "card 1 of 3: inserted",
    );
    let run = station(&stack, &order).ok();
    assert!(
        stack.card_log(card).contains("card 1: mute card removed"),
        "{}",
        stack.card_log(card)
    );
    let refused = run
        .stderr
        .lines()
        .find(|l| l.contains("card refused"))
        .unwrap_or_else(|| panic!("no card refused:\n{}", run.stderr));
    assert!(
        refused.contains("the card does not answer the reader")
            && refused.ends_with("the device goes to the next card"),
        "{refused}"
    );
    let journal = produced_one_certificate_each(&stack, &run, &["FU30000001", "FU30000002"]);
    assert_eq!(
        journal.order(OrderId(1)).unwrap().state.to_string(),
        "delivered"
    );
}

/// `card provision` with a mute card in the reader stops with a message the
/// operator can act on, exit code 5, and no certificate issued.
#[test]
fn card_provision_with_a_mute_card_says_the_card_does_not_answer() {
    let mut stack = stack_with_ca();
    let card = stack.start_card_until(
        0,
        &card_args(&["--mute-cards", "1"]),
        "card 1 of 1: inserted",
    );
    // pcscd notices the card at its next poll (every 0.4 s).
    let reader = stack.reader(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !certmint(&stack, &["card", "list"], &[])
        .stdout
        .contains(&format!("{reader}: card"))
    {
        assert!(Instant::now() < deadline, "pcscd never saw the mute card");
        std::thread::sleep(Duration::from_millis(100));
    }
    let run = certmint(
        &stack,
        &provision_args(&reader, &[]),
        &[("CARD_PIN", "24681357")],
    );
    assert_eq!(run.code, 5, "{}", said(&run));
    assert_eq!(
        run.stderr.trim(),
        "error: selecting the PIV application: the card does not answer the reader: it cannot be \
         powered up or does not answer the reset (a damaged chip or contacts, or the card is the \
         wrong way round); try another card"
    );
    // The card got no command: nothing was generated, issued or written.
    assert!(
        !stack.card_log(card).contains(" -> "),
        "{}",
        stack.card_log(card)
    );
}
