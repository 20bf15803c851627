//! Two card stations on one order, sharing one PostgreSQL journal (a real
//! throwaway server): two `certmint card station` processes, each serving
//! its own reader of the private pcscd (vpcd, virtual PIV cards), take the
//! order's devices between them: each device ends on exactly one card,
//! every certificate verifies with OpenSSL, and one of them delivers.
//!
//! Needs pcscd, vsmartcard-vpcd, opensc, openssl and PostgreSQL
//! (scripts/setup-debian.sh) and root (pcscd writes /run/pcscd/pcscd.pid).

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::pcsc::{require_program, PcscStack};
use common::postgres;
use common::Run;

const VKN: &str = "4540536920";
/// The virtual cards' management key (no factory default is accepted).
const CARD_KEY: &str = "00112233445566778899AABBCCDDEEFF0011223344556677";

/// certmint in the stack's folder, on `journal`, reaching its pcscd.
fn certmint(stack: &PcscStack, journal: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_certmint"));
    command
        .args(args)
        .envs(stack.env())
        .env("CERTMINT_JOURNAL", journal)
        .env("CERTMINT_OPERATOR", "card-operator")
        .env("CERTMINT_AUDIT_DIR", stack.path("audit"))
        .env("CARD_KEY", CARD_KEY)
        // The virtual cards' PIN; their PUK is the factory one, and each
        // card gets its own random PIN and PUK.
        .env("CARD_PIN", "24681357")
        .env("CARD_PUK", "12345678")
        .current_dir(stack.path(""));
    command
}

fn run(stack: &PcscStack, journal: &str, args: &[&str]) -> Run {
    Run::from(
        certmint(stack, journal, args)
            .output()
            .expect("run certmint"),
    )
}

/// A station serving `reader` only, started.
fn station(stack: &PcscStack, journal: &str, reader: &str) -> Child {
    certmint(
        stack,
        journal,
        &[
            "card",
            "station",
            "--order",
            "1",
            "--ca",
            "ca",
            "--reader",
            reader,
            "--mgmt-key-env",
            "CARD_KEY",
            "--pin-env",
            "CARD_PIN",
            "--card-puk-env",
            "CARD_PUK",
            "--out",
            "deliveries",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start a card station")
}

/// Waits for `child` at most three minutes (a station waits for cards
/// forever: a hang fails the test instead).
fn finish(mut child: Child) -> Run {
    let deadline = Instant::now() + Duration::from_secs(180);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "a station still ran after 3 minutes:\n{}",
                Run::from(child.wait_with_output().unwrap()).stderr
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Run::from(child.wait_with_output().unwrap())
}

#[test]
fn two_stations_with_their_own_readers_put_each_device_on_exactly_one_card() {
    require_program("openssl", "openssl");
    let mut stack = PcscStack::start();
    let journal = postgres::cluster().new_database();
    run(&stack, &journal, &["ca", "init", "--dir", "ca"]).ok();
    let serials = [
        "FU10000001",
        "FU10000002",
        "FU10000003",
        "FU10000004",
        "FU10000005",
        "FU10000006",
    ];
    std::fs::write(stack.path("serials.txt"), serials.join("\n") + "\n").unwrap();
    common::register_manufacturer(|args| run(&stack, &journal, args), VKN, "FU", false);
    run(
        &stack,
        &journal,
        &[
            "order",
            "import",
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
    run(&stack, &journal, &["order", "pay", "--order", "1"]).ok();
    // Each reader gets six blank cards in turn: enough for the whole order
    // should the other station take nothing.
    for slot in [0, 1] {
        stack.start_card(
            slot,
            &[
                "--mgmt-key",
                CARD_KEY,
                "--pin",
                "24681357",
                "--cards",
                "6",
                "--eject-on-reset",
                "--insert-pause-ms",
                "1500",
            ],
        );
    }
    let stations: Vec<Child> = [0, 1]
        .iter()
        .map(|slot| station(&stack, &journal, &stack.reader(*slot)))
        .collect();
    let runs: Vec<Run> = stations.into_iter().map(finish).collect();
    for run in &runs {
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    }
    let delivered = runs
        .iter()
        .filter(|run| run.stdout.contains("Delivered") || run.stdout.contains("delivered to"))
        .count();
    assert!(delivered <= 1, "two deliveries");

    // Each device is on exactly one card: one issued certificate each,
    // and the cards written (one "done" line per card) add up to six.
    let list = run(
        &stack,
        &journal,
        &["cert", "list", "--order", "1", "--json"],
    )
    .ok();
    let mut issued: Vec<String> = list
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|c| c["status"] == "issued")
        .map(|c| c["device_serial"].as_str().unwrap().to_owned())
        .collect();
    issued.sort();
    assert_eq!(issued, serials, "{}", list.stdout);
    let cards: usize = runs
        .iter()
        .map(|run| run.stderr.matches(": done, certificate").count())
        .sum();
    assert_eq!(cards, 6, "{}\n{}", runs[0].stderr, runs[1].stderr);
    for run in &runs {
        assert!(
            run.stderr.contains(": done, certificate"),
            "a station wrote no card:\n{}",
            run.stderr
        );
    }
    for serial in serials {
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
    let status = run(
        &stack,
        &journal,
        &["order", "status", "--order", "1", "--json"],
    )
    .ok();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["state"], "delivered", "{status}");
    let produced: u64 = status["stations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["produced"].as_u64().unwrap())
        .sum();
    assert_eq!(produced, 6, "{status}");
    run(&stack, &journal, &["audit", "verify"]).ok();
}
