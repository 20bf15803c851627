//! The card commands as an operator meets them: what their help names
//! exists, listing cards leaves them alone, and the cards' PIN, PUK and
//! management key can come from files. Through the real stack: a private
//! pcscd with vsmartcard-vpcd and virtual PIV cards (`certmint card
//! virtual`); the card is checked with yubico-piv-tool and the certificate
//! with OpenSSL.
//!
//! Needs pcscd, vsmartcard-vpcd, yubico-piv-tool and openssl
//! (scripts/setup-debian.sh) and root (pcscd writes /run/pcscd/pcscd.pid).

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::pcsc::{require_program, PcscStack};
use common::Run;

const VKN: &str = "4540536920";
const UNVAN: &str = "Örnek Bilişim A.Ş.";
/// The management key the virtual cards are made with.
const CARD_KEY: &str = "00112233445566778899AABBCCDDEEFF0011223344556677";

/// certmint in the stack's folder, reaching its pcscd, with `extra` in its
/// environment.
fn certmint(stack: &PcscStack, args: &[&str], extra: &[(&str, &str)]) -> Run {
    Run::from(
        Command::new(env!("CARGO_BIN_EXE_certmint"))
            .args(args)
            .envs(stack.env())
            .env("CERTMINT_JOURNAL", stack.path("journal.sqlite"))
            .env("CERTMINT_OPERATOR", "card-operator")
            .envs(extra.iter().copied())
            .current_dir(stack.path(""))
            .output()
            .expect("run certmint"),
    )
}

fn said(run: &Run) -> String {
    format!("{}{}", run.stdout, run.stderr)
}

/// The long options a help text defines (its options list) and the ones it
/// mentions anywhere (descriptions, examples, notes).
fn defined_and_mentioned(help: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let flags_in = |text: &str| -> BTreeSet<String> {
        let mut flags = BTreeSet::new();
        let mut rest = text;
        while let Some(at) = rest.find("--") {
            let after = &rest[at + 2..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let starts_word = at == 0 || !rest[..at].ends_with(|c: char| c.is_alphanumeric());
            if starts_word && name.starts_with(|c: char| c.is_ascii_lowercase()) {
                flags.insert(format!("--{name}"));
            }
            rest = &after[name.len()..];
        }
        flags
    };
    let defined = help
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let line = line
                .strip_prefix('-')
                .and_then(|l| l.get(1..).and_then(|l| l.strip_prefix(", ")))
                .unwrap_or(line);
            line.starts_with("--")
                .then(|| flags_in(line.split(' ').next().unwrap_or_default()))
        })
        .flatten()
        .collect();
    (defined, flags_in(help))
}

/// Every `--flag` that the help of a card command names is an option of
/// that command: the help is what an operator types from.
#[test]
fn card_help_names_only_options_that_exist() {
    for command in ["list", "provision", "station", "virtual"] {
        let run = Command::new(env!("CARGO_BIN_EXE_certmint"))
            .args(["card", command, "--help"])
            .output()
            .expect("run certmint");
        let help = String::from_utf8(run.stdout).unwrap();
        assert!(run.status.success(), "card {command} --help: {help}");
        let (defined, mentioned) = defined_and_mentioned(&help);
        assert!(defined.contains("--help"), "no options list in:\n{help}");
        let unknown: Vec<&String> = mentioned.difference(&defined).collect();
        assert!(
            unknown.is_empty(),
            "card {command} --help names {unknown:?}, which it does not take:\n{help}"
        );
    }
    // The checker itself sees a flag the help does not define.
    let (defined, mentioned) =
        defined_and_mentioned("Options:\n      --pin-env <V>  x\n  -h, --help\nUse --puk-env.");
    assert_eq!(
        mentioned.difference(&defined).collect::<Vec<_>>(),
        ["--puk-env"]
    );
}

/// The PUK's new spelling is an option of `card provision`; the old one is
/// still accepted but not shown.
#[test]
fn the_puk_option_is_card_puk_env_and_puk_env_stays_a_hidden_alias() {
    let help = Command::new(env!("CARGO_BIN_EXE_certmint"))
        .args(["card", "provision", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("--card-puk-env <CARD_PUK_ENV>"), "{help}");
    assert!(help.contains("--card-puk-file <CARD_PUK_FILE>"), "{help}");
    assert!(!help.contains(" --puk-env"), "{help}");
    // Both spellings parse: each run stops only at the missing --ca.
    for spelling in ["--card-puk-env", "--puk-env"] {
        let run = Command::new(env!("CARGO_BIN_EXE_certmint"))
            .args(["card", "provision", spelling, "X"])
            .output()
            .unwrap();
        let stderr = String::from_utf8(run.stderr).unwrap();
        assert!(!stderr.contains("unexpected argument"), "{stderr}");
        assert!(stderr.contains("--ca"), "{stderr}");
    }
}

fn tools() {
    require_program("yubico-piv-tool", "yubico-piv-tool");
    require_program("openssl", "openssl");
}

/// `card list` asks each card for PIV and leaves it as it was: a virtual
/// card that leaves the reader when reset is still there after two lists.
/// The control at the end: a client that resets the card (yubico-piv-tool)
/// does make it leave, so the first part could fail.
#[test]
fn card_list_leaves_the_cards_it_lists_in_the_reader() {
    tools();
    let mut stack = PcscStack::start();
    let reader = stack.reader(0);
    let card = stack.start_card(0, &["--mgmt-key", CARD_KEY, "--eject-on-reset"]);
    for _ in 0..2 {
        let run = certmint(&stack, &["card", "list", "--json"], &[]);
        assert_eq!(run.code, 0, "{}", said(&run));
        let readers: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let listed = readers["readers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["reader"] == reader.as_str())
            .unwrap_or_else(|| panic!("{reader} missing in {readers}"))
            .clone();
        assert_eq!(listed["card_present"], true, "{readers}");
        assert_eq!(listed["piv"], true, "{readers}");
        // pcscd notices a removal at its next poll (every 0.4 s).
        std::thread::sleep(Duration::from_millis(1500));
    }
    let log = stack.card_log(card);
    assert!(log.contains(" -> "), "the card was never asked:\n{log}");
    assert!(!log.contains("removed"), "{log}");

    let status = stack.run("yubico-piv-tool", &["-r", &reader, "-a", "status"]);
    assert_eq!(status.code, 0, "{}", said(&status));
    stack.wait_for_log(
        card,
        "removed after the reader reset it",
        Duration::from_secs(10),
    );
}

/// The card's PIN, current PUK and management key read from files (as
/// token PINs can be): the card is provisioned, its new PIN from the PIN
/// letter verifies on the card (yubico-piv-tool), the certificate verifies
/// under the CA (OpenSSL), and no secret from the files reaches the output.
#[test]
fn card_provision_reads_the_pin_puk_and_management_key_from_files() {
    tools();
    let mut stack = PcscStack::start();
    let init = certmint(&stack, &["ca", "init", "--dir", "ca"], &[]);
    assert_eq!(init.code, 0, "{}", said(&init));
    stack.start_card(0, &["--mgmt-key", CARD_KEY]);
    let reader = stack.reader(0);
    std::fs::write(stack.path("card.pin"), "123456\n").unwrap();
    std::fs::write(stack.path("card.puk"), "12345678\n").unwrap();
    std::fs::write(stack.path("card.key"), format!("{CARD_KEY}\n")).unwrap();
    let args = [
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
        "--mgmt-key-file",
        "card.key",
        "--card-pin-file",
        "card.pin",
        "--card-puk-file",
        "card.puk",
        "--pin-letter",
        "letter.txt",
        "--out",
        "seal.pem",
    ];
    let run = certmint(&stack, &args, &[]);
    assert_eq!(run.code, 0, "{}", said(&run));
    assert!(
        run.stdout
            .contains("test signature made by the card verifies"),
        "{}",
        run.stdout
    );
    for secret in ["123456", "12345678", CARD_KEY] {
        assert!(!said(&run).contains(secret), "{}", said(&run));
    }

    let letter = std::fs::read_to_string(stack.path("letter.txt")).unwrap();
    let pin = letter
        .lines()
        .find_map(|l| l.strip_prefix("PIN:"))
        .unwrap_or_else(|| panic!("no PIN in the letter"))
        .trim()
        .to_owned();
    assert_ne!(pin, "123456");
    let verify = stack.run(
        "yubico-piv-tool",
        &["-r", &reader, "-a", "verify-pin", "-P", &pin],
    );
    assert_eq!(verify.code, 0, "{}", said(&verify));
    let chain = stack.run(
        "openssl",
        &[
            "verify",
            "-CAfile",
            "ca/root.pem",
            "-untrusted",
            "ca/issuing.pem",
            "seal.pem",
        ],
    );
    assert!(chain.stdout.contains("seal.pem: OK"), "{}", said(&chain));
}

/// A PIN file that holds more than a PIN is refused before any card is
/// touched; a PIN file and a PIN variable together are refused as usage.
#[test]
fn a_card_pin_file_is_bounded_and_exclusive_with_the_variable() {
    tools();
    let stack = PcscStack::start();
    let init = certmint(&stack, &["ca", "init", "--dir", "ca"], &[]);
    assert_eq!(init.code, 0, "{}", said(&init));
    std::fs::write(stack.path("card.key"), CARD_KEY).unwrap();
    std::fs::write(stack.path("big.pin"), "1".repeat(10_000)).unwrap();
    let base = [
        "card",
        "provision",
        "--ca",
        "ca",
        "--vkn",
        VKN,
        "--unvan",
        UNVAN,
        "--mgmt-key-file",
        "card.key",
    ];
    let mut too_long = base.to_vec();
    too_long.extend(["--card-pin-file", "big.pin"]);
    let run = certmint(&stack, &too_long, &[]);
    assert_ne!(run.code, 0, "{}", said(&run));
    assert!(run.stderr.contains("PIN"), "{}", run.stderr);
    assert!(!run.stderr.contains("1111111111"), "{}", run.stderr);
    let mut both = base.to_vec();
    both.extend(["--card-pin-file", "big.pin", "--card-pin-env", "CARD_PIN"]);
    let run = certmint(&stack, &both, &[]);
    assert_eq!(run.code, 2, "{}", said(&run));
    assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
}
