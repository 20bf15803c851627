//! `certmint journal copy`: a station's SQLite journal moved into the
//! shared PostgreSQL journal (a real throwaway server, `common::postgres`).
//! The copy gives the same `cert list`, its orders renumbered after the
//! target's own; the target's audit chain verifies; a second copy of the
//! same journal, a source whose chain is broken and a source a producer is
//! still at work on are refused, copying nothing.

mod common;

use std::process::Command;

use common::postgres;
use common::{import_args, produce_args, Run, Workspace};

/// certmint in `ws` on the journal at `journal`.
fn certmint(ws: &Workspace, journal: &str, args: &[&str]) -> Run {
    Run::from(
        Command::new(env!("CARGO_BIN_EXE_certmint"))
            .args(args)
            .env("CERTMINT_JOURNAL", journal)
            .env("CERTMINT_OPERATOR", "test-operator")
            .env("CERTMINT_AUDIT_DIR", ws.path("audit"))
            .current_dir(ws.dir.path())
            .output()
            .expect("run certmint"),
    )
}

/// An order of `devices` serials from `first`, imported, paid and produced
/// on `journal` (its number there is `order`).
fn produced_order(ws: &Workspace, journal: &str, first: u64, devices: u64, order: &str) {
    let list: String = (first..first + devices)
        .map(|n| format!("FU{n:08}\n"))
        .collect();
    let name = format!("list-{first}.txt");
    ws.write(&name, list.as_bytes());
    common::ensure_manufacturer(|args| certmint(ws, journal, args));
    let path = ws.path(&name).display().to_string();
    certmint(ws, journal, &import_args("FU,JI", &path, &[])).ok();
    certmint(ws, journal, &["order", "pay", "--order", order]).ok();
    certmint(ws, journal, &produce_args(order, &[])).ok();
}

/// `cert list --json` of `journal`, each certificate without its row id
/// and order number (which a copy renumbers), by serial.
fn certificates(ws: &Workspace, journal: &str) -> Vec<serde_json::Value> {
    let out = certmint(ws, journal, &["cert", "list", "--json"]).ok();
    let mut certs: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| {
            let mut cert: serde_json::Value = serde_json::from_str(l).unwrap();
            let object = cert.as_object_mut().unwrap();
            object.remove("id");
            object.remove("order");
            cert
        })
        .collect();
    certs.sort_by_key(|c| c["serial"].as_str().unwrap().to_owned());
    certs
}

#[test]
fn a_station_journal_copied_into_the_shared_one_gives_the_same_certificates() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    let station = ws.path("station.sqlite").display().to_string();
    let shared = postgres::cluster().new_database();
    // The shared journal has an order of its own: the station's order 1
    // becomes its order 2.
    produced_order(&ws, &shared, 10_000_000, 20, "1");
    produced_order(&ws, &station, 20_000_000, 30, "1");
    let serial = certificates(&ws, &station)[4]["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    certmint(
        &ws,
        &station,
        &["revoke", "--serial", &serial, "--reason", "key-compromise"],
    )
    .ok();
    let before = certificates(&ws, &station);

    let copied = certmint(
        &ws,
        &shared,
        &[
            "journal", "copy", "--from", &station, "--to", &shared, "--json",
        ],
    )
    .ok();
    let report: serde_json::Value = serde_json::from_str(&copied.stdout).unwrap();
    assert_eq!(report["orders"], serde_json::json!([[1, 2]]), "{report}");
    assert_eq!(report["certificates"], 30);
    assert_eq!(report["revocations"], 1);

    let after: Vec<serde_json::Value> = certificates(&ws, &shared)
        .into_iter()
        .filter(|c| {
            c["device_serial"]
                .as_str()
                .is_some_and(|s| s.starts_with("FU2"))
        })
        .collect();
    assert_eq!(after, before);
    let order_2 = certmint(&ws, &shared, &["cert", "list", "--order", "2", "--json"]).ok();
    assert_eq!(order_2.stdout.lines().count(), 30);
    let verified = certmint(&ws, &shared, &["audit", "verify", "--json"]).ok();
    let verified: serde_json::Value = serde_json::from_str(&verified.stdout).unwrap();
    assert_eq!(
        verified["problems"].as_array().unwrap().len(),
        0,
        "{verified}"
    );
    // The copy is on record, naming the source and the renumbering.
    let log = certmint(&ws, &shared, &["audit", "show", "--json"]).ok();
    let last: serde_json::Value = serde_json::from_str(log.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "journal.copied", "{last}");
    assert!(
        last["details"]
            .as_str()
            .unwrap()
            .contains("order 1 → order 2"),
        "{last}"
    );

    // The same journal again: every device would be in both.
    let again = certmint(
        &ws,
        &shared,
        &["journal", "copy", "--from", &station, "--to", &shared],
    );
    assert_eq!(again.code, 9, "{}", again.stderr);
    assert!(
        again.stderr.contains("is in both journals") && again.stderr.contains("nothing was copied"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_broken_source_and_a_password_in_an_address_are_refused() {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    let station = ws.path("station.sqlite").display().to_string();
    let shared = postgres::cluster().new_database();
    produced_order(&ws, &station, 30_000_000, 3, "1");
    let conn = rusqlite::Connection::open(&station).unwrap();
    conn.execute("UPDATE audit SET details = 'x' WHERE seq = 2", [])
        .unwrap();
    drop(conn);
    let refused = certmint(
        &ws,
        &shared,
        &["journal", "copy", "--from", &station, "--to", &shared],
    );
    assert_eq!(refused.code, 6, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("nothing was copied"),
        "{}",
        refused.stderr
    );
    let leaked = certmint(
        &ws,
        &shared,
        &[
            "journal",
            "copy",
            "--from",
            &station,
            "--to",
            "postgresql://certmint:s3cret@db.example/ca",
        ],
    );
    assert_eq!(leaked.code, 2, "{}", leaked.stderr);
    assert!(!leaked.stderr.contains("s3cret"), "{}", leaked.stderr);
}

/// A copy holds the target's writer lock for its whole length: into a
/// journal a producer is at work on, it is refused, copying nothing.
#[test]
fn a_copy_into_a_journal_a_producer_is_at_work_on_is_refused() {
    use certmint::journal::{Journal, JournalAddress, LeaseHolder, OrderId, Sharing, SqlJournal};
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    let station = ws.path("station.sqlite").display().to_string();
    let shared = postgres::cluster().new_database();
    produced_order(&ws, &station, 40_000_000, 3, "1");
    // The shared journal has a paid order, which a station elsewhere produces.
    let list: String = (50_000_000..50_000_003)
        .map(|n| format!("FU{n:08}\n"))
        .collect();
    ws.write("shared.txt", list.as_bytes());
    common::ensure_manufacturer(|args| certmint(&ws, &shared, args));
    let path = ws.path("shared.txt").display().to_string();
    certmint(&ws, &shared, &import_args("FU,JI", &path, &[])).ok();
    certmint(&ws, &shared, &["order", "pay", "--order", "1"]).ok();
    std::env::set_var("CERTMINT_AUDIT_DIR", ws.path("audit"));
    let mut journal = SqlJournal::open_at(&JournalAddress::parse(&shared).unwrap()).unwrap();
    let elsewhere = LeaseHolder {
        host: "station-9".into(),
        operator: "deniz".into(),
        ..LeaseHolder::this_process("deniz")
    };
    journal
        .acquire_lease(
            OrderId(1),
            &elsewhere,
            std::time::Duration::from_secs(600),
            Sharing::Shared,
        )
        .unwrap();
    let refused = certmint(
        &ws,
        &shared,
        &["journal", "copy", "--from", &station, "--to", &shared],
    );
    assert_eq!(refused.code, 9, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("a producer is at work on the target journal")
            && refused.stderr.contains("operator deniz on host station-9"),
        "{}",
        refused.stderr
    );
    let orders = certmint(&ws, &shared, &["order", "list", "--json"]).ok();
    let orders: serde_json::Value = serde_json::from_str(&orders.stdout).unwrap();
    assert_eq!(orders["orders"].as_array().unwrap().len(), 1, "{orders}");
}
