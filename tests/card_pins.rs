//! Each card of a station run gets its own random PIN and PUK: held by the
//! journal before the card takes them, listed in the order's PIN letter
//! manifest (mode 0600) at delivery, purged with the journal's copy by the
//! soft rule (`card pin-letters` writes a lost one again before that);
//! `--keep-card-pin` keeps one known PIN for the order. Through
//! the real stack: a private pcscd with vsmartcard-vpcd and virtual PIV
//! cards (`certmint card virtual`); the PINs are checked on the cards with
//! yubico-piv-tool.
//!
//! Needs pcscd, vsmartcard-vpcd, yubico-piv-tool and openssl
//! (scripts/setup-debian.sh) and root (pcscd writes /run/pcscd/pcscd.pid).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use certmint::journal::{CardSecrets, Journal, OrderId, SqlJournal};
use common::pcsc::{require_program, PcscStack};
use common::{Run, Workspace};

const VKN: &str = "4540536920";
/// The management key the virtual cards are made with.
const CARD_KEY: &str = "00112233445566778899AABBCCDDEEFF0011223344556677";
/// The PIN every card comes with: the order's one known PIN.
const ORDER_PIN: &str = "24681357";
/// The virtual cards' PUK (the PIV factory PUK).
const CARD_PUK: &str = "12345678";
/// How long one certmint run may take before the test fails instead of
/// hanging (a station waits for cards forever).
const RUN_LIMIT: Duration = Duration::from_secs(180);

fn tools() {
    require_program("yubico-piv-tool", "yubico-piv-tool");
    require_program("openssl", "openssl");
}

/// certmint in the stack's folder, reaching its pcscd, with the card
/// secrets in its environment (never in arguments), its output to files.
fn spawn(stack: &PcscStack, args: &[&str], name: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_certmint"))
        .args(args)
        .envs(stack.env())
        .env("CERTMINT_JOURNAL", stack.path("journal.sqlite"))
        .env("CERTMINT_OPERATOR", "card-operator")
        .env("CARD_KEY", CARD_KEY)
        .env("CARD_PIN", ORDER_PIN)
        .env("CARD_PUK", CARD_PUK)
        .current_dir(stack.path(""))
        .stdout(std::fs::File::create(stack.path(&format!("{name}.stdout"))).unwrap())
        .stderr(std::fs::File::create(stack.path(&format!("{name}.stderr"))).unwrap())
        .spawn()
        .expect("run certmint")
}

/// What the run `name` wrote so far.
fn output(stack: &PcscStack, name: &str, code: i32) -> Run {
    Run {
        code,
        stdout: std::fs::read_to_string(stack.path(&format!("{name}.stdout"))).unwrap(),
        stderr: std::fs::read_to_string(stack.path(&format!("{name}.stderr"))).unwrap(),
    }
}

/// Waits for `child` (the run `name`) to end, at most [`RUN_LIMIT`].
fn finish(stack: &PcscStack, mut child: Child, name: &str) -> Run {
    let deadline = Instant::now() + RUN_LIMIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return output(stack, name, status.code().unwrap_or(-1));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "certmint {name} still ran after {RUN_LIMIT:?}:\n{}",
                output(stack, name, -1).stderr
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn certmint(stack: &PcscStack, args: &[&str]) -> Run {
    let child = spawn(stack, args, "run");
    finish(stack, child, "run")
}

fn said(run: &Run) -> String {
    format!("{}{}", run.stdout, run.stderr)
}

/// A CA and a paid card-target ÖKC order of `serials` (order 1).
fn stack_with_card_order(serials: &[&str]) -> PcscStack {
    tools();
    let stack = PcscStack::start();
    certmint(&stack, &["ca", "init", "--dir", "ca"]).ok();
    std::fs::write(stack.path("serials.txt"), serials.join("\n") + "\n").unwrap();
    common::register_manufacturer(|args| certmint(&stack, args), VKN, "FU", false);
    certmint(
        &stack,
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
    )
    .ok();
    certmint(&stack, &["order", "pay", "--order", "1"]).ok();
    stack
}

/// `card station` over order 1 with the most logging (-vvv), the cards' PIN and PUK
/// from variables, then `extra`.
fn station_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "-vvv",
        "card",
        "station",
        "--order",
        "1",
        "--ca",
        "ca",
        "--mgmt-key-env",
        "CARD_KEY",
        "--card-pin-env",
        "CARD_PIN",
        "--deliveries",
        "deliveries",
    ];
    args.extend_from_slice(extra);
    args
}

fn journal(stack: &PcscStack) -> SqlJournal {
    SqlJournal::open(&stack.path("journal.sqlite")).unwrap()
}

/// The PINs and PUKs the journal holds for order 1's cards.
fn held(stack: &PcscStack) -> Vec<CardSecrets> {
    journal(stack)
        .card_secrets(OrderId(1), 0, 100)
        .unwrap()
        .into_iter()
        .map(|(_, secrets)| secrets)
        .collect()
}

/// `yubico-piv-tool verify-pin` on the card in `reader`. The station may
/// still hold the card for a moment after recording it: a run that could
/// not reach the card (no PIN was tried, so no retry is spent) is repeated;
/// a PIN the card refused is not.
fn verify_pin(stack: &PcscStack, reader: &str, pin: &str) -> Run {
    let mut attempts = 0;
    loop {
        let run = stack.run(
            "yubico-piv-tool",
            &["-r", reader, "-a", "verify-pin", "-P", pin],
        );
        let said = format!("{}{}", run.stdout, run.stderr).to_lowercase();
        let pin_tried = run.code == 0
            || said.contains("tries left")
            || said.contains("verification failed")
            || said.contains("blocked");
        attempts += 1;
        if pin_tried || attempts == 50 {
            return run;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Two cards in two readers, one station run: each card gets its own
/// random PIN and PUK, held by the journal while the card is still in the
/// reader; each PIN verifies on its own card (yubico-piv-tool) and the
/// order's PIN no longer does. At delivery the PIN letter manifest (mode
/// 0600) lists every device with its certificate, reader, PIN and PUK, as
/// the journal holds them. No PIN or PUK reaches the -vvv output or a
/// Debug rendering. The purge
/// leaves them until the deadline, then deletes the manifest and erases the
/// journal's copy, and the audit chain verifies.
#[test]
fn each_card_gets_its_own_pin_held_by_the_journal_listed_privately_and_purged() {
    let serials = ["FU30000001", "FU30000002"];
    let mut stack = stack_with_card_order(&serials);
    let card_args = [
        "--mgmt-key",
        CARD_KEY,
        "--pin",
        ORDER_PIN,
        "--puk",
        CARD_PUK,
    ];
    let cards = [
        stack.start_card(0, &card_args),
        stack.start_card(1, &card_args),
    ];
    let station = spawn(
        &stack,
        &station_args(&["--card-puk-env", "CARD_PUK"]),
        "station",
    );

    // The cards stay in their readers until the test takes them out: the
    // station produces both, then waits for them to leave.
    let deadline = Instant::now() + RUN_LIMIT;
    while journal(&stack).order(OrderId(1)).unwrap().verified < 2 {
        assert!(
            Instant::now() < deadline,
            "the station did not produce both cards:\n{}",
            output(&stack, "station", -1).stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let secrets = held(&stack);
    assert_eq!(secrets.len(), 2, "{secrets:?}");
    let mut readers: Vec<&str> = secrets.iter().map(|s| s.reader.as_str()).collect();
    readers.sort();
    assert_eq!(readers, [stack.reader(0), stack.reader(1)]);
    assert_ne!(secrets[0].pin.expose(), secrets[1].pin.expose());
    assert_ne!(secrets[0].puk.expose(), secrets[1].puk.expose());
    for card in &secrets {
        for secret in [card.pin.expose(), card.puk.expose()] {
            assert_eq!(secret.len(), 8, "{card:?}");
            assert!(secret.bytes().all(|b| b.is_ascii_digit()), "{card:?}");
        }
        let own = verify_pin(&stack, &card.reader, card.pin.expose());
        assert_eq!(own.code, 0, "{}", said(&own));
        let order_pin = verify_pin(&stack, &card.reader, ORDER_PIN);
        assert_ne!(order_pin.code, 0, "{}", said(&order_pin));
    }
    let manifest = stack.path("deliveries/order-1.pins.csv");
    assert!(!manifest.exists(), "no manifest before the order is done");

    for card in cards {
        stack.remove_card(card);
    }
    let run = finish(&stack, station, "station");
    assert_eq!(run.code, 0, "{}", said(&run));
    assert!(run.stdout.contains("PIN letters: "), "{}", run.stdout);
    assert_eq!(mode(&manifest), 0o600);
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("device_serial,certificate_serial,reader,pin,puk")
    );
    let mut listed: Vec<String> = lines.map(str::to_owned).collect();
    listed.sort();
    let mut expected: Vec<String> = secrets
        .iter()
        .map(|s| {
            format!(
                "{},{},{},{},{}",
                s.device_serial,
                s.certificate_serial,
                s.reader,
                s.pin.expose(),
                s.puk.expose()
            )
        })
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    let mut devices: Vec<&str> = secrets.iter().map(|s| s.device_serial.as_str()).collect();
    devices.sort();
    assert_eq!(devices, serials);
    for card in &secrets {
        for secret in [card.pin.expose(), card.puk.expose()] {
            assert!(!said(&run).contains(secret), "{}", said(&run));
            assert!(!format!("{card:?}").contains(secret));
        }
    }
    assert!(run.stderr.contains("done, certificate"), "{}", run.stderr);

    // A manifest lost before the purge is written again from the journal,
    // the same and as private; an existing one is never overwritten.
    std::fs::remove_file(&manifest).unwrap();
    let rewritten = certmint(&stack, &["card", "pin-letters", "--order", "1"]).ok();
    assert!(
        rewritten.stdout.contains("order-1.pins.csv"),
        "{}",
        rewritten.stdout
    );
    assert_eq!(std::fs::read_to_string(&manifest).unwrap(), text);
    assert_eq!(mode(&manifest), 0o600);
    let again = certmint(&stack, &["card", "pin-letters", "--order", "1"]);
    assert_ne!(again.code, 0, "{}", said(&again));
    assert!(
        again.stderr.contains("never overwritten"),
        "{}",
        again.stderr
    );

    // Not due yet: nothing is deleted.
    let early = certmint(&stack, &["okc", "purge"]).ok();
    assert!(early.stdout.contains("not due yet"), "{}", early.stdout);
    assert!(manifest.exists());
    assert_eq!(held(&stack).len(), 2);

    // Past the deadline (a debug build's clock hook).
    let child = Command::new(env!("CARGO_BIN_EXE_certmint"))
        .args(["okc", "purge"])
        .env("CERTMINT_JOURNAL", stack.path("journal.sqlite"))
        .env("CERTMINT_OPERATOR", "card-operator")
        .env("CERTMINT_TEST_NOW", "2027-02-15T12:00:00Z")
        .current_dir(stack.path(""))
        .output()
        .unwrap();
    let purged = Run::from(child).ok();
    assert!(
        purged
            .stdout
            .contains("purged: manifest overwritten and deleted, the journal's PINs erased"),
        "{}",
        purged.stdout
    );
    assert!(!manifest.exists());
    assert!(held(&stack).is_empty());
    for card in &secrets {
        assert!(journal(&stack)
            .card_secrets_of_certificate(&card.certificate_serial)
            .unwrap()
            .is_none());
    }
    let audit = certmint(&stack, &["audit", "verify"]);
    assert_eq!(audit.code, 0, "{}", said(&audit));
    // Purged once: the next run has nothing left to do.
    let again = certmint(&stack, &["okc", "purge"]).ok();
    assert!(!again.stdout.contains("PIN letters"), "{}", again.stdout);
}

/// The card loses contact right after it took its new PIN: the journal
/// already held that PIN and PUK (under the certificate the card carries,
/// voided since), so when the same card is re-seated the station opens it
/// with them instead of spending a try of the order's PIN, and it takes
/// the device.
#[test]
fn a_card_that_leaves_with_its_new_pin_comes_back_and_is_opened_with_the_journals() {
    let serials = ["FU40000001", "FU40000002"];
    let mut stack = stack_with_card_order(&serials);
    let card = stack.start_card(
        0,
        &[
            "--mgmt-key",
            CARD_KEY,
            "--pin",
            ORDER_PIN,
            "--puk",
            CARD_PUK,
            "--cards",
            "3",
            "--eject-on-reset",
            "--insert-pause-ms",
            "1500",
            // The second CHANGE REFERENCE DATA of the card is its PIN's.
            "--remove-on-ins",
            "24",
            "--remove-on-count",
            "2",
            "--lose-contact",
        ],
    );
    // The PUK from a file works as well as from a variable.
    std::fs::write(stack.path("card.puk"), format!("{CARD_PUK}\n")).unwrap();
    let run = certmint(
        &stack,
        &station_args(&["--card-puk-file", "card.puk", "--reader", &stack.reader(0)]),
    );
    assert_eq!(run.code, 0, "{}", said(&run));
    let log = stack.card_log(card);
    assert!(
        log.contains(
            "lost contact by fault injection after answering CHANGE REFERENCE DATA (24) #2"
        ),
        "{log}"
    );
    assert!(
        run.stderr.contains(
            "card pulled (or lost contact) while setting the new PIN and PUK; certificate"
        ),
        "{}",
        run.stderr
    );
    // The same card came back and took the device.
    assert_eq!(log.matches("card 1 of 3: inserted").count(), 2, "{log}");
    let voided = run
        .stderr
        .lines()
        .find_map(|l| l.split("; certificate ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .expect("the voided serial is named");
    let journal = journal(&stack);
    let record = journal.certificate_by_serial(voided).unwrap().unwrap();
    assert_eq!(record.status, "void");
    let left_with = journal
        .card_secrets_of_certificate(voided)
        .unwrap()
        .expect("the journal held the PIN the card left with");
    assert_eq!(left_with.device_serial, "FU40000001");
    let active = journal.active_certificates_per_device(OrderId(1)).unwrap();
    assert_eq!(
        active,
        serials
            .iter()
            .map(|s| (s.to_string(), 1))
            .collect::<Vec<_>>()
    );
    let manifest = std::fs::read_to_string(stack.path("deliveries/order-1.pins.csv")).unwrap();
    assert_eq!(manifest.lines().count(), 3, "{manifest}");
    assert!(!manifest.contains(voided), "{manifest}");
    assert!(!manifest.contains(left_with.pin.expose()), "{manifest}");
    assert!(journal.verify_audit().unwrap().is_intact());
}

/// With --keep-card-pin every card keeps the order's one known PIN: no
/// CHANGE REFERENCE DATA reaches the card, the journal holds no PIN and no
/// manifest is written.
#[test]
fn keep_card_pin_leaves_every_card_with_the_orders_pin() {
    let mut stack = stack_with_card_order(&["FU50000001"]);
    let card = stack.start_card(
        0,
        &[
            "--mgmt-key",
            CARD_KEY,
            "--pin",
            ORDER_PIN,
            "--cards",
            "1",
            "--eject-on-reset",
        ],
    );
    let run = certmint(&stack, &station_args(&["--keep-card-pin"]));
    assert_eq!(run.code, 0, "{}", said(&run));
    assert!(
        run.stdout.contains("1 card(s) produced now"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("PIN letters"), "{}", run.stdout);
    assert!(!stack.card_log(card).contains("CHANGE REFERENCE DATA"));
    assert!(held(&stack).is_empty());
    assert!(!stack.path("deliveries/order-1.pins.csv").exists());
}

/// Random PINs need the cards' current PUK: without one the station
/// refuses as usage before any card is touched, naming both ways out; the
/// PUK and --keep-card-pin together are refused.
#[test]
fn a_station_without_the_cards_puk_is_refused_as_usage() {
    let ws = Workspace::with_ca(&[]);
    ws.write("serials.txt", b"FU60000001\n");
    common::import_and_pay(
        |args| ws.certmint(args),
        "FU",
        "serials.txt",
        "1",
        &["--target", "card", "--key-type", "p256"],
    );
    let base = [
        "card",
        "station",
        "--order",
        "1",
        "--ca",
        "ca",
        "--mgmt-key-env",
        "CARD_KEY",
        "--card-pin-env",
        "CARD_PIN",
    ];
    let run = ws.certmint(&base);
    assert_eq!(run.code, 2, "{}", said(&run));
    assert!(run.stderr.contains("--card-puk-file"), "{}", run.stderr);
    assert!(run.stderr.contains("--keep-card-pin"), "{}", run.stderr);
    let mut both = base.to_vec();
    both.extend(["--keep-card-pin", "--card-puk-env", "CARD_PUK"]);
    let run = ws.certmint(&both);
    assert_eq!(run.code, 2, "{}", said(&run));
    assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
}

/// A run stopped after its first card, resumed with the order's one PIN
/// (`--keep-card-pin`): the card that got its own PIN still gets its PIN
/// letter at delivery, and the purge rule covers it; the PIN is never
/// stranded in the journal.
#[test]
fn a_run_resumed_with_the_orders_pin_still_delivers_the_pin_letters_of_earlier_cards() {
    let mut stack = stack_with_card_order(&["FU70000001", "FU70000002"]);
    let card_args = [
        "--mgmt-key",
        CARD_KEY,
        "--pin",
        ORDER_PIN,
        "--puk",
        CARD_PUK,
        "--cards",
        "1",
        "--eject-on-reset",
    ];
    stack.start_card(0, &card_args);
    let first = spawn(
        &stack,
        &station_args(&["--card-puk-env", "CARD_PUK"]),
        "first",
    );
    let deadline = Instant::now() + RUN_LIMIT;
    while journal(&stack).order(OrderId(1)).unwrap().verified < 1 {
        assert!(
            Instant::now() < deadline,
            "the first card was not produced:\n{}",
            output(&stack, "first", -1).stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let stopped = finish(&stack, first, "first");
    assert_eq!(stopped.code, 130, "{}", said(&stopped));
    let secrets = held(&stack);
    assert_eq!(secrets.len(), 1, "{secrets:?}");

    stack.start_card(1, &card_args);
    let resumed = certmint(&stack, &station_args(&["--keep-card-pin"]));
    assert_eq!(resumed.code, 0, "{}", said(&resumed));
    let manifest = stack.path("deliveries/order-1.pins.csv");
    assert!(manifest.exists(), "{}", said(&resumed));
    assert_eq!(mode(&manifest), 0o600);
    let listed = std::fs::read_to_string(&manifest).unwrap();
    assert!(listed.contains("FU70000001"), "{listed}");
    assert!(
        listed.contains(secrets[0].pin.expose()),
        "the first card's PIN is in its letter"
    );
    assert!(
        !listed.contains("FU70000002"),
        "the second card kept the order's PIN:\n{listed}"
    );
    let letters = journal(&stack).unpurged_pin_letters().unwrap();
    assert_eq!(letters.len(), 1, "the purge rule covers it");
}
