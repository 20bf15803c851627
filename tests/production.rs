//! The production room's library entry for one card: the next seal of a
//! card order produced on the card in a named reader, through the same
//! pipeline as the station, without waiting for a card to come or go.
//! Real parts: a private pcscd with the vpcd driver, a virtual PIV card,
//! yubico-piv-tool and OpenSSL as independent checkers.
//!
//! Needs pcscd, vsmartcard-vpcd, yubico-piv-tool and openssl
//! (scripts/setup-debian.sh) and root (pcscd writes /run/pcscd/pcscd.pid).

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use certmint::ca::CaDirectory;
use certmint::calendar::BusinessCalendar;
use certmint::card::provision::{CardCredentials, CardError};
use certmint::card::station::{PinPolicy, Station, StationError};
use certmint::journal::{Journal, OrderId, OrderState, SqlJournal};
use certmint::keyref::Unlock;
use certmint::piv::mgmt::{ManagementKey, MgmtAlgorithm};
use certmint::piv::Slot;
use certmint::pkcs11::pin::Pin;
use certmint::production::Production;
use certmint::profile::{ProductLine, Profile, ProfileName};
use common::pcsc::{require_program, PcscStack};
use common::Run;

const VKN: &str = "4540536920";
const UNVAN: &str = "Örnek Bilişim A.Ş.";
const CARD_KEY: &str = "00112233445566778899AABBCCDDEEFF0011223344556677";
const CARD_PIN: &str = "24681357";
const CARD_PUK: &str = "87654321";

/// certmint in the stack's folder, reaching its pcscd and journal.
fn certmint(stack: &PcscStack, args: &[&str]) -> Run {
    Run::from(
        std::process::Command::new(env!("CARGO_BIN_EXE_certmint"))
            .args(args)
            .envs(stack.env())
            .env("CERTMINT_JOURNAL", stack.path("journal.sqlite"))
            .env("CERTMINT_OPERATOR", "card-operator")
            .current_dir(stack.path(""))
            .output()
            .expect("run certmint"),
    )
}

/// Imports and pays a one-seal Mali Mühür order for the card target;
/// returns its number.
fn one_seal_order(stack: &PcscStack) -> OrderId {
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
            "1",
        ],
    )
    .ok();
    let journal = SqlJournal::open(&stack.path("journal.sqlite")).unwrap();
    let order = journal.orders().unwrap().last().unwrap().id;
    certmint(stack, &["order", "pay", "--order", &order.to_string()]).ok();
    order
}

/// Provisions `order`'s next seal on the card in reader slot 0 through the
/// library, the card's PIN being `pin`, with a PIN letter at `letter`.
fn provision_in_reader(
    stack: &PcscStack,
    order: OrderId,
    pin: &str,
    letter: Option<&Path>,
) -> Result<certmint::production::ProductionReport, StationError> {
    let directory = CaDirectory::open(
        &stack.path("ca"),
        ProductLine::MaliMuhur,
        None,
        &Unlock::default(),
    )
    .unwrap();
    let profile = Profile::from_config(ProfileName::MaliMuhur, &directory.config).unwrap();
    let journal: Mutex<SqlJournal> =
        Mutex::new(SqlJournal::open(&stack.path("journal.sqlite")).unwrap());
    let calendar = BusinessCalendar::turkey();
    let station = Station {
        production: Production {
            order,
            ca: &directory.ca,
            profile: &profile,
            chain: vec![
                directory.ca.certificate_der().to_vec(),
                directory.root_der.clone(),
            ],
            out: stack.path("deliveries"),
            workers: 1,
            operator: "card-operator".into(),
            stop: Arc::new(AtomicBool::new(false)),
            on_device: &|| {},
            calendar: &calendar,
            lease_wait: std::time::Duration::ZERO,
        },
        readers: vec![stack.reader(0)],
        slot: Slot::Signature,
        credentials: CardCredentials {
            management_key: ManagementKey::from_hex(MgmtAlgorithm::TripleDes, CARD_KEY).unwrap(),
            pin: Pin::new(pin.into(), "PIN").unwrap(),
            puk: Some(Pin::new(CARD_PUK.into(), "PUK").unwrap()),
            allow_factory_defaults: false,
        },
        pin_policy: PinPolicy::Keep,
        on_event: &|reader, event| eprintln!("[{reader}] {event}"),
    };
    station.provision_card_in(&journal, &stack.reader(0), letter)
}

#[test]
fn a_seal_goes_onto_the_card_in_a_reader_through_the_pipeline_and_a_second_is_refused() {
    require_program("yubico-piv-tool", "yubico-piv-tool");
    require_program("openssl", "openssl");
    let mut stack = PcscStack::start();
    // The library's PC/SC client reaches this stack's pcscd (one test in this
    // file, so no other thread reads the environment meanwhile).
    for (name, value) in stack.env() {
        std::env::set_var(name, value);
    }
    certmint(&stack, &["ca", "init", "--dir", "ca"]).ok();
    stack.start_card(
        0,
        &["--mgmt-key", CARD_KEY, "--pin", CARD_PIN, "--puk", CARD_PUK],
    );

    let order = one_seal_order(&stack);
    let letter = stack.path("letter.txt");
    let report = provision_in_reader(&stack, order, CARD_PIN, Some(&letter)).unwrap();
    assert_eq!(report.produced_now, 1, "{report:?}");
    assert!(!report.stopped, "{report:?}");
    let folder = report.delivery.clone().expect("delivered");

    // On record: one valid certificate for the seal, the order delivered,
    // the audit chain intact.
    let journal = SqlJournal::open(&stack.path("journal.sqlite")).unwrap();
    let active = journal.active_certificates_per_device(order).unwrap();
    assert_eq!(active.len(), 1, "{active:?}");
    let seal = active[0].0.clone();
    assert!(seal.starts_with(&format!("{VKN}SIGN")), "{seal}");
    assert_eq!(journal.order(order).unwrap().state, OrderState::Delivered);
    assert!(journal.verify_audit().unwrap().is_intact());

    // The card's slot holds the delivered certificate, which OpenSSL
    // verifies under the CA chain.
    let delivered = std::fs::read_to_string(Path::new(&folder).join(format!("certs/{seal}.pem")))
        .expect("the delivered certificate");
    let reader = stack.reader(0);
    let read = stack
        .run(
            "yubico-piv-tool",
            &["-r", &reader, "-a", "read-certificate", "-s", "9c"],
        )
        .ok();
    assert_eq!(read.stdout.trim(), delivered.trim());
    let chain = Path::new(&folder).join("chain.pem");
    let verified = stack
        .run(
            "openssl",
            &[
                "verify",
                "-partial_chain",
                "-CAfile",
                &chain.display().to_string(),
                &Path::new(&folder)
                    .join(format!("certs/{seal}.pem"))
                    .display()
                    .to_string(),
            ],
        )
        .ok();
    assert!(verified.stdout.contains(": OK"), "{}", verified.stdout);

    // The card left with the PIN letter's fresh PIN (0600), which it accepts.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&letter).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&letter).unwrap();
    let new_pin = text
        .lines()
        .find_map(|l| l.strip_prefix("PIN:"))
        .expect("a PIN in the letter")
        .trim()
        .to_owned();
    assert_ne!(new_pin, CARD_PIN);
    stack
        .run(
            "yubico-piv-tool",
            &["-r", &reader, "-a", "verify-pin", "-P", &new_pin],
        )
        .ok();

    // A second seal order on the same card: the card carries a certificate
    // valid in the journal, so it is refused, naming it, before a key is
    // generated or anything signed; the order stays unproduced.
    let second = one_seal_order(&stack);
    let refused = provision_in_reader(&stack, second, &new_pin, None)
        .expect_err("a card carrying a valid certificate is refused");
    let serial = journal
        .issued(order, 0, 10)
        .unwrap()
        .into_iter()
        .map(|(_, record)| record.certificate_serial)
        .next()
        .unwrap();
    match &refused {
        StationError::Card {
            error: CardError::Refused(why),
            ..
        } => assert!(why.contains(&serial), "{why}"),
        other => panic!("{other}"),
    }
    let journal = SqlJournal::open(&stack.path("journal.sqlite")).unwrap();
    assert_eq!(journal.order(second).unwrap().verified, 0);
    assert!(journal.dangling_intents(second).unwrap().is_empty());
    assert_eq!(
        stack
            .run(
                "yubico-piv-tool",
                &["-r", &reader, "-a", "read-certificate", "-s", "9c"],
            )
            .ok()
            .stdout
            .trim(),
        delivered.trim()
    );
}
