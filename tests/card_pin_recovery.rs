//! A card that leaves the station in the middle of its PIN and PUK change
//! is never opened blindly: the journal holds its new PIN and PUK as
//! pending, with the ones it had, before the certificate goes on the card;
//! when the card comes back the station reads the PIN's retry counter, tries
//! only PINs the journal holds while a wrong one cannot block it, finishes
//! the change and confirms it. A card it cannot bring to a known state is
//! refused with a message naming the reader and what to do. The PINs of
//! cards that never got a delivered certificate are erased by the purge
//! after the soft rule's deadline, whatever the order's state; a card that
//! comes back after that is refused without a try.
//!
//! Through the real stack: a private pcscd with vsmartcard-vpcd and virtual
//! PIV cards (`certmint card virtual`) that lose contact at a chosen
//! CHANGE REFERENCE DATA; the cards' PIN and PUK are checked with
//! yubico-piv-tool.
//!
//! Needs pcscd, vsmartcard-vpcd, yubico-piv-tool and openssl
//! (scripts/setup-debian.sh) and root (pcscd writes /run/pcscd/pcscd.pid).

mod common;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use certmint::journal::{HeldCardSecrets, Journal, OrderId, SqlJournal};
use common::pcsc::{require_program, PcscStack};
use common::Run;

const VKN: &str = "4540536920";
/// The management key the virtual cards are made with.
const CARD_KEY: &str = "00112233445566778899AABBCCDDEEFF0011223344556677";
/// The PIN every card comes with.
const ORDER_PIN: &str = "24681357";
/// The virtual cards' PUK (the PIV factory PUK).
const CARD_PUK: &str = "12345678";
/// How long one certmint run may take before the test fails instead of
/// hanging (a station waits for cards forever).
const RUN_LIMIT: Duration = Duration::from_secs(180);

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

/// Asks `child` to stop as Ctrl-C does and waits for it.
fn interrupt(stack: &PcscStack, child: Child, name: &str) -> Run {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    finish(stack, child, name)
}

/// Waits until the run `name` wrote `text` to standard error.
fn wait_for_stderr(stack: &PcscStack, name: &str, text: &str) -> Run {
    let deadline = Instant::now() + RUN_LIMIT;
    loop {
        let run = output(stack, name, -1);
        if run.stderr.contains(text) {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "certmint {name} did not say {text:?}:\n{}",
            run.stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn certmint(stack: &PcscStack, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_certmint"));
    command
        .args(args)
        .envs(stack.env())
        .env("CERTMINT_JOURNAL", stack.path("journal.sqlite"))
        .env("CERTMINT_OPERATOR", "card-operator")
        .current_dir(stack.path(""));
    for (name, value) in env {
        command.env(name, value);
    }
    Run::from(command.output().unwrap())
}

fn said(run: &Run) -> String {
    format!("{}{}", run.stdout, run.stderr)
}

/// A CA and a paid card-target ÖKC order of `serials` (order 1).
fn stack_with_card_order(serials: &[&str]) -> PcscStack {
    require_program("yubico-piv-tool", "yubico-piv-tool");
    require_program("openssl", "openssl");
    let stack = PcscStack::start();
    certmint(&stack, &["ca", "init", "--dir", "ca"], &[]).ok();
    std::fs::write(stack.path("serials.txt"), serials.join("\n") + "\n").unwrap();
    common::register_manufacturer(|args| certmint(&stack, args, &[]), VKN, "FU", false);
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
        &[],
    )
    .ok();
    certmint(&stack, &["order", "pay", "--order", "1"], &[]).ok();
    stack
}

/// `card station` over order 1 on the first reader, a PIN per card, with
/// the most logging (-vvv).
fn station_args(stack: &PcscStack) -> Vec<String> {
    [
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
        "--card-puk-env",
        "CARD_PUK",
        "--deliveries",
        "deliveries",
        "--reader",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([stack.reader(0)])
    .collect()
}

fn spawn_station(stack: &PcscStack, name: &str) -> Child {
    let args = station_args(stack);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn(stack, &args, name)
}

/// A virtual card in the first reader with the order's PIN and the factory
/// PUK that loses contact right after answering its `count`th command with
/// instruction `ins` (hex) and comes back as it is, then stays; then `extra`.
fn start_card_losing_contact(
    stack: &mut PcscStack,
    ins: &str,
    count: &str,
    extra: &[&str],
) -> usize {
    let mut args = vec![
        "--mgmt-key",
        CARD_KEY,
        "--pin",
        ORDER_PIN,
        "--puk",
        CARD_PUK,
        "--insert-pause-ms",
        "1500",
        "--remove-on-ins",
        ins,
        "--remove-on-count",
        count,
        "--lose-contact",
    ];
    args.extend_from_slice(extra);
    stack.start_card(0, &args)
}

fn journal(stack: &PcscStack) -> SqlJournal {
    SqlJournal::open(&stack.path("journal.sqlite")).unwrap()
}

/// The serial of the certificate the run voided for the pulled card.
fn voided_serial(run: &Run) -> String {
    run.stderr
        .lines()
        .find_map(|l| l.split("; certificate ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .expect("the voided serial is named")
        .to_owned()
}

/// `yubico-piv-tool` on the card in the first reader. The station may
/// still hold the card for a moment: a run that could not reach the card
/// (no secret was tried) is repeated; one the card answered is not.
fn piv_tool(stack: &PcscStack, args: &[&str]) -> Run {
    let reader = stack.reader(0);
    let mut all = vec!["-r", reader.as_str()];
    all.extend_from_slice(args);
    let mut attempts = 0;
    loop {
        let run = stack.run("yubico-piv-tool", &all);
        let said = format!("{}{}", run.stdout, run.stderr).to_lowercase();
        // yubico-piv-tool reports a card it could not reach mid-command
        // as a failed verification "Error in PCSC call": nothing was tried.
        let unreached = said.contains("error in pcsc call");
        let tried = !unreached
            && (run.code == 0
                || said.contains("tries left")
                || said.contains("verification failed")
                || said.contains("wrong")
                || said.contains("blocked"));
        attempts += 1;
        if tried || attempts == 50 {
            return run;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// VERIFY commands with a PIN (not counter reads) the card refused.
fn wrong_pins_tried(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("VERIFY (8 data octets) -> 63 C"))
        .count()
}

/// The issue's weak spot: the card loses contact right after it took its
/// new PUK, before its new PIN. It comes back with the old PIN and the new
/// PUK while the journal's row for it is pending. The station opens it
/// with the old PIN (no wrong PIN tried), finds out its PUK (one PUK try,
/// given back by the right one), finishes the change, confirms it, and
/// gives the card the device. Its final PIN and PUK, the journal's, work on
/// the card (yubico-piv-tool); the order is delivered with that PIN letter.
#[test]
fn a_card_pulled_between_its_new_puk_and_its_new_pin_is_finished_and_takes_the_device() {
    let mut stack = stack_with_card_order(&["FU81000001"]);
    // The first CHANGE REFERENCE DATA of the card is its PUK's.
    let card = start_card_losing_contact(&mut stack, "24", "1", &[]);
    let station = spawn_station(&stack, "station");
    let deadline = Instant::now() + RUN_LIMIT;
    while journal(&stack).order(OrderId(1)).unwrap().verified < 1 {
        assert!(
            Instant::now() < deadline,
            "the card did not take the device:\n{}",
            output(&stack, "station", -1).stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = stack.card_log(card);
    assert!(
        log.contains(
            "lost contact by fault injection after answering CHANGE REFERENCE DATA (24) #1"
        ),
        "{log}"
    );
    assert_eq!(log.matches("card 1 of 1: inserted").count(), 2, "{log}");
    assert_eq!(wrong_pins_tried(&log), 0, "no wrong PIN was tried:\n{log}");
    // The old PUK refused once (the card had the new one), then the new
    // PUK accepted, which gives the try back.
    let puk_changes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("00 24 00 81 CHANGE REFERENCE DATA"))
        .collect();
    assert!(puk_changes.len() >= 3, "{log}");
    assert!(puk_changes[1].contains("-> 63 C2"), "{log}");
    assert!(puk_changes[2].contains("-> 90 00"), "{log}");
    let so_far = output(&stack, "station", -1);
    assert!(
        so_far
            .stderr
            .contains("finishing an interrupted PIN and PUK change"),
        "{}",
        so_far.stderr
    );
    let voided = voided_serial(&so_far);
    let journal_now = journal(&stack);
    let Some(HeldCardSecrets::Set(finished)) = journal_now.card_secrets_held(&voided).unwrap()
    else {
        panic!("the interrupted change is confirmed in the journal");
    };
    let (_, last) = journal_now
        .card_secrets(OrderId(1), 0, 10)
        .unwrap()
        .pop()
        .expect("the delivered certificate's PIN is held");
    assert_ne!(last.certificate_serial, voided);
    assert_ne!(last.pin.expose(), finished.pin.expose());
    drop(journal_now);

    // The card has exactly the journal's PIN and PUK.
    let verify = piv_tool(&stack, &["-a", "verify-pin", "-P", last.pin.expose()]);
    assert_eq!(verify.code, 0, "{}", said(&verify));
    let puk = piv_tool(
        &stack,
        &[
            "-a",
            "change-puk",
            "-P",
            last.puk.expose(),
            "-N",
            last.puk.expose(),
        ],
    );
    assert_eq!(puk.code, 0, "{}", said(&puk));

    stack.remove_card(card);
    let run = finish(&stack, station, "station");
    assert_eq!(run.code, 0, "{}", said(&run));
    let manifest = std::fs::read_to_string(stack.path("deliveries/order-1.pins.csv")).unwrap();
    assert_eq!(manifest.lines().count(), 2, "{manifest}");
    assert!(
        manifest.contains(last.pin.expose()),
        "the letter has the card's PIN"
    );
    for secret in [finished.pin.expose(), last.pin.expose(), last.puk.expose()] {
        assert!(!said(&run).contains(secret), "no PIN in the output");
    }
    assert!(journal(&stack).verify_audit().unwrap().is_intact());
}

/// The card loses contact while its certificate is read back: the journal
/// recorded its new PIN and PUK as pending before the certificate was
/// written, and neither was set. It comes back carrying the new (voided)
/// certificate with its old PIN and PUK; the station opens it with the old
/// PIN and sets the new secrets with no PIN or PUK refused, and the card
/// takes the device.
#[test]
fn a_card_pulled_after_its_certificate_was_written_is_opened_with_its_old_pin() {
    let mut stack = stack_with_card_order(&["FU83000001"]);
    // GET DATA of the slot: looked at before the PIN, inspected once the
    // card is open, then read back after it was written.
    let card = start_card_losing_contact(&mut stack, "cb", "3", &[]);
    let station = spawn_station(&stack, "station");
    let deadline = Instant::now() + RUN_LIMIT;
    while journal(&stack).order(OrderId(1)).unwrap().verified < 1 {
        assert!(
            Instant::now() < deadline,
            "the card did not take the device:\n{}\n{}",
            output(&stack, "station", -1).stderr,
            stack.card_log(card)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = stack.card_log(card);
    assert!(
        log.contains("lost contact by fault injection after answering GET DATA (CB) #3"),
        "{log}"
    );
    assert_eq!(wrong_pins_tried(&log), 0, "no wrong PIN was tried:\n{log}");
    assert!(
        !log.contains("CHANGE REFERENCE DATA (16 data octets) -> 63 C"),
        "no wrong PUK was tried:\n{log}"
    );
    let so_far = output(&stack, "station", -1);
    assert!(
        so_far
            .stderr
            .contains("card pulled (or lost contact) while reading the certificate back"),
        "{}",
        so_far.stderr
    );
    assert!(
        so_far
            .stderr
            .contains("finishing an interrupted PIN and PUK change"),
        "{}",
        so_far.stderr
    );
    let voided = voided_serial(&so_far);
    assert!(matches!(
        journal(&stack).card_secrets_held(&voided).unwrap(),
        Some(HeldCardSecrets::Set(_))
    ));
    stack.remove_card(card);
    let run = finish(&stack, station, "station");
    assert_eq!(run.code, 0, "{}", said(&run));
    assert!(journal(&stack).verify_audit().unwrap().is_intact());
}

/// A card that took its new PIN (and so its new PUK) and lost contact
/// before the journal confirmed it, whose PIN allows only two tries: the
/// station tries the old PIN (wrong; one try left) and then refuses the
/// card rather than try a PIN that could block it, naming the reader and
/// what the operator must do; the order goes on without it. The card is not
/// blocked: its new PIN, the journal's, still opens it. The order is never
/// finished: once the soft rule's deadline has passed (10 Turkish business
/// days after recording), `okc purge` erases the PIN and PUK of the card
/// that never got a delivered certificate, audited; the card, when it is
/// put in again, is refused without a single PIN try.
#[test]
fn a_card_that_cannot_be_brought_to_a_known_state_is_refused_and_its_pins_are_purged_later() {
    let mut stack = stack_with_card_order(&["FU82000001"]);
    // The second CHANGE REFERENCE DATA of the card is its PIN's.
    let card = start_card_losing_contact(&mut stack, "24", "2", &["--pin-tries", "2"]);
    let station = spawn_station(&stack, "station");
    let so_far = wait_for_stderr(&stack, "station", "card refused");
    let reader = stack.reader(0);
    let refusal = so_far
        .stderr
        .lines()
        .find(|l| l.contains("card refused"))
        .unwrap()
        .to_owned();
    assert!(refusal.contains(&format!("reader {reader:?}")), "{refusal}");
    assert!(
        refusal.contains("left in the middle of its PIN and PUK change"),
        "{refusal}"
    );
    assert!(refusal.contains("1 try left"), "{refusal}");
    assert!(
        refusal.contains("Take it out and set it aside"),
        "{refusal}"
    );
    let log = stack.card_log(card);
    assert_eq!(
        wrong_pins_tried(&log),
        1,
        "the old PIN only, then nothing:\n{log}"
    );
    let voided = voided_serial(&so_far);
    let Some(HeldCardSecrets::Pending { new, .. }) =
        journal(&stack).card_secrets_held(&voided).unwrap()
    else {
        panic!("the change stays pending");
    };
    let stopped = interrupt(&stack, station, "station");
    assert_eq!(stopped.code, 130, "{}", said(&stopped));
    // Not blocked, and in the state the journal knows: the new PIN opens it.
    let verify = piv_tool(&stack, &["-a", "verify-pin", "-P", new.pin.expose()]);
    assert_eq!(verify.code, 0, "{}", said(&verify));

    // Not due yet: kept.
    let early = certmint(&stack, &["okc", "purge"], &[]).ok();
    assert!(
        early
            .stdout
            .contains(&format!("Card without a delivered certificate {voided}")),
        "{}",
        early.stdout
    );
    assert!(early.stdout.contains("not due yet"), "{}", early.stdout);
    assert!(matches!(
        journal(&stack).card_secrets_held(&voided).unwrap(),
        Some(HeldCardSecrets::Pending { .. })
    ));
    // Past the deadline (a debug build's clock hook), the order still not delivered.
    let late = certmint(
        &stack,
        &["okc", "purge"],
        &[("CERTMINT_TEST_NOW", "2027-02-15T12:00:00Z")],
    )
    .ok();
    assert!(
        late.stdout
            .contains("erased: its PIN and PUK are gone from the journal"),
        "{}",
        late.stdout
    );
    assert!(matches!(
        journal(&stack).card_secrets_held(&voided).unwrap(),
        Some(HeldCardSecrets::Erased)
    ));
    let again = certmint(
        &stack,
        &["okc", "purge"],
        &[("CERTMINT_TEST_NOW", "2027-02-15T12:00:00Z")],
    )
    .ok();
    assert!(!again.stdout.contains(&voided), "{}", again.stdout);
    let audit = certmint(&stack, &["audit", "show"], &[]);
    assert!(
        said(&audit).contains("card.secrets-erased"),
        "{}",
        said(&audit)
    );
    assert!(journal(&stack).verify_audit().unwrap().is_intact());

    // The card comes back to a station: refused, no PIN tried.
    let tried_before = wrong_pins_tried(&stack.card_log(card))
        + stack
            .card_log(card)
            .matches("VERIFY (8 data octets) -> 90 00")
            .count();
    let station = spawn_station(&stack, "again");
    let so_far = wait_for_stderr(&stack, "again", "card refused");
    assert!(
        so_far.stderr.contains("the purge erased its PIN and PUK"),
        "{}",
        so_far.stderr
    );
    let log = stack.card_log(card);
    let tried_after =
        wrong_pins_tried(&log) + log.matches("VERIFY (8 data octets) -> 90 00").count();
    assert_eq!(tried_after, tried_before, "no PIN was tried:\n{log}");
    let stopped = interrupt(&stack, station, "again");
    assert_eq!(stopped.code, 130, "{}", said(&stopped));
}
