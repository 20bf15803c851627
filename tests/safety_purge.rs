//! Delivery and purge of soft ÖKC orders never lose data and never lie:
//! the purge finds the delivery the journal recorded (from any directory),
//! refuses what is not where recorded, never follows a symbolic link,
//! records the real time, goes on past an order it cannot purge; delivery
//! refuses missing key files; the journal is private and keeps no password
//! in any of its files after a purge. Everything runs through the real
//! `certmint` binary.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use certmint::journal::{Journal, OrderId, SqlJournal};
use common::{import_and_pay, produce_args, spawn_on_journal, Run, Workspace};

/// certmint in `dir` with the workspace's journal (absolute) and an operator.
fn certmint_in(ws: &Workspace, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    Run::from(
        common::certmint_on_journal(ws, "test-operator")
            .args(args)
            .current_dir(dir)
            .env_remove("CERTMINT_TEST_NOW")
            .envs(env.iter().copied())
            .output()
            .expect("run certmint"),
    )
}

fn run(ws: &Workspace, args: &[&str]) -> Run {
    certmint_in(ws, ws.dir.path(), args, &[])
}

/// Imports, pays and produces a soft order of `devices` devices with serials
/// `prefix` + 8 digits (out/order-N, from the workspace directory).
fn soft_order(ws: &Workspace, order: i64, prefix: &str, devices: usize) -> Vec<String> {
    let serials: Vec<String> = (0..devices)
        .map(|i| format!("{prefix}{:08}", 10_000_000 + order as usize * 1000 + i))
        .collect();
    let list = format!("list-{order}.txt");
    ws.write(&list, (serials.join("\n") + "\n").as_bytes());
    let list = ws.path(&list).display().to_string();
    let id = order.to_string();
    import_and_pay(|args| run(ws, args), "FU,JI", &list, &id, &[]);
    run(ws, &produce_args(&id, &[])).ok();
    serials
}

fn status(ws: &Workspace, order: i64) -> serde_json::Value {
    let out = run(
        ws,
        &["order", "status", "--order", &order.to_string(), "--json"],
    )
    .ok()
    .stdout;
    serde_json::from_str(&out).unwrap()
}

/// A time at which every order produced now is due for its purge: the
/// start of the day after the latest deadline, in Turkey.
fn when_due(ws: &Workspace, orders: &[i64]) -> String {
    let latest = orders
        .iter()
        .map(|o| status(ws, *o)["purge_due"].as_str().unwrap().to_owned())
        .max()
        .unwrap();
    format!("{latest}T21:00:00Z")
}

/// A real purge judged at `now` (the debug builds' test clock), run in `dir`.
fn purge_in(ws: &Workspace, dir: &Path, now: &str, extra: &[&str]) -> Run {
    let mut args = vec!["okc", "purge"];
    args.extend_from_slice(extra);
    certmint_in(ws, dir, &args, &[("CERTMINT_TEST_NOW", now)])
}

fn purge(ws: &Workspace, now: &str) -> Run {
    purge_in(ws, ws.dir.path(), now, &[])
}

fn p12_files(ws: &Workspace, order: i64) -> usize {
    std::fs::read_dir(ws.path(&format!("out/order-{order}/p12")))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn journal(ws: &Workspace) -> SqlJournal {
    SqlJournal::open(&ws.path("journal.sqlite")).unwrap()
}

/// Changes the journal behind certmint's back (an older journal, a clock or
/// calendar problem, a crash at a chosen point).
fn tamper(ws: &Workspace, sql: &str) {
    rusqlite::Connection::open(ws.path("journal.sqlite"))
        .unwrap()
        .execute_batch(sql)
        .unwrap();
}

fn stored_passwords(ws: &Workspace, order: i64) -> usize {
    journal(ws)
        .passwords(OrderId(order), 0, 1000)
        .unwrap()
        .len()
}

/// The last audit record's details for `event`.
fn audit_details(ws: &Workspace, event: &str) -> String {
    rusqlite::Connection::open(ws.path("journal.sqlite"))
        .unwrap()
        .query_row(
            "SELECT details FROM audit WHERE event = ?1 ORDER BY seq DESC LIMIT 1",
            [event],
            |r| r.get(0),
        )
        .unwrap()
}

/// Run from another directory, the purge destroys the delivery the journal
/// recorded and nothing in the directory it runs in, even files laid out
/// exactly like a delivery (another journal's order 1); the audit record
/// names what was destroyed.
#[test]
fn purge_from_another_directory_destroys_the_recorded_delivery_and_nothing_else() {
    let ws = Workspace::with_ca(&[]);
    let serials = soft_order(&ws, 1, "FU", 3);
    let now = when_due(&ws, &[1]);
    let elsewhere = tempfile::tempdir().unwrap();
    let decoy = elsewhere.path().join("out/order-1/p12");
    std::fs::create_dir_all(&decoy).unwrap();
    for serial in &serials {
        std::fs::write(
            decoy.join(format!("{serial}.p12")),
            b"another journal's key",
        )
        .unwrap();
    }
    let decoy_passwords = elsewhere.path().join("out/order-1.passwords.csv");
    std::fs::write(&decoy_passwords, b"another journal's passwords").unwrap();

    let done = purge_in(&ws, elsewhere.path(), &now, &[]).ok();
    assert!(
        done.stdout
            .contains("purged: 4 file(s) overwritten and deleted"),
        "{}",
        done.stdout
    );
    assert_eq!(p12_files(&ws, 1), 0);
    assert!(!ws.exists("out/order-1.passwords.csv"));
    for serial in &serials {
        assert_eq!(
            std::fs::read(decoy.join(format!("{serial}.p12"))).unwrap(),
            b"another journal's key"
        );
    }
    assert_eq!(
        std::fs::read(&decoy_passwords).unwrap(),
        b"another journal's passwords"
    );
    assert_eq!(status(&ws, 1)["state"], "purged");
    let details = audit_details(&ws, "order.purged");
    assert!(
        details.contains("3 PKCS#12 file(s) of 3 and 1 password manifest(s)"),
        "{details}"
    );
}

/// An order whose key files are not where the journal recorded them (its
/// folder moved away; two of its PKCS#12 files gone) is reported and left
/// untouched (password manifest, stored passwords, state), the run exits 1,
/// and the other order is purged.
#[test]
fn an_order_whose_delivery_is_not_where_recorded_is_refused_and_the_others_purged() {
    let ws = Workspace::with_ca(&[]);
    soft_order(&ws, 1, "FU", 2);
    let gone = soft_order(&ws, 2, "JI", 3);
    soft_order(&ws, 3, "FU", 2);
    let now = when_due(&ws, &[1, 2, 3]);
    std::fs::rename(ws.path("out/order-1"), ws.path("moved-order-1")).unwrap();
    for serial in &gone[..2] {
        std::fs::remove_file(ws.path(&format!("out/order-2/p12/{serial}.p12"))).unwrap();
    }

    let run = purge(&ws, &now);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("Order 1:") && run.stdout.contains("NOT PURGED: delivery folder"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("NOT PURGED: 2 of the 3 PKCS#12 files the journal lists are not in"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("2 problem(s) in this purge run"),
        "{}",
        run.stderr
    );
    for order in [1, 2] {
        assert_eq!(status(&ws, order)["state"], "delivered");
        assert!(stored_passwords(&ws, order) > 0);
        assert!(ws.exists(&format!("out/order-{order}.passwords.csv")));
    }
    assert_eq!(
        std::fs::read_dir(ws.path("moved-order-1/p12"))
            .unwrap()
            .count(),
        2
    );
    assert_eq!(p12_files(&ws, 2), 1);
    assert_eq!(status(&ws, 3)["state"], "purged");
    assert_eq!(p12_files(&ws, 3), 0);
}

/// A journal that recorded a relative delivery folder (written before
/// folders were recorded absolute) has it resolved against the journal's own
/// folder, whatever the working directory; when it is not there, the order
/// is refused with what to do.
#[test]
fn a_relative_folder_of_an_older_journal_is_resolved_against_the_journals_folder() {
    let ws = Workspace::with_ca(&[]);
    soft_order(&ws, 1, "FU", 2);
    soft_order(&ws, 2, "JI", 2);
    let now = when_due(&ws, &[1, 2]);
    tamper(
        &ws,
        "UPDATE deliveries SET folder = 'out/order-1' WHERE order_id = 1;
         UPDATE deliveries SET folder = 'elsewhere/order-2' WHERE order_id = 2;
         DELETE FROM delivery_files;",
    );
    let other = tempfile::tempdir().unwrap();
    let run = purge_in(&ws, other.path(), &now, &[]);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("purged: 3 file(s) overwritten and deleted"),
        "{}",
        run.stdout
    );
    assert_eq!(p12_files(&ws, 1), 0);
    assert!(!ws.exists("out/order-1.passwords.csv"));
    assert!(
        run.stdout.contains("recorded as \"elsewhere/order-2\"")
            && run.stdout.contains("put the journal in that directory"),
        "{}",
        run.stdout
    );
    assert_eq!(status(&ws, 2)["state"], "delivered");
    assert_eq!(p12_files(&ws, 2), 2);
}

/// A symbolic link planted in `p12/` is removed (the link only) and
/// reported; the file it points to, outside the delivery, is untouched.
#[test]
fn a_symbolic_link_in_the_pkcs12_folder_is_removed_not_followed() {
    let ws = Workspace::with_ca(&[]);
    soft_order(&ws, 1, "FU", 2);
    let now = when_due(&ws, &[1]);
    ws.write("precious.txt", b"not key material");
    std::os::unix::fs::symlink(ws.path("precious.txt"), ws.path("out/order-1/p12/evil.p12"))
        .unwrap();

    let dry = certmint_in(
        &ws,
        ws.dir.path(),
        &["okc", "purge", "--dry-run", "--now", &now],
        &[],
    )
    .ok();
    assert!(
        dry.stdout
            .contains("evil.p12: would remove the link, not followed"),
        "{}",
        dry.stdout
    );
    let done = purge(&ws, &now).ok();
    assert!(
        done.stdout
            .contains("evil.p12: removed the link, not followed"),
        "{}",
        done.stdout
    );
    assert_eq!(ws.read("precious.txt"), b"not key material");
    assert!(std::fs::symlink_metadata(ws.path("out/order-1/p12/evil.p12")).is_err());
    assert_eq!(p12_files(&ws, 1), 0);
    assert!(audit_details(&ws, "order.purged").contains("1 symbolic link(s) removed, not followed"));
}

/// A copy of a key file in `p12/` that the journal does not list (a `.bak`
/// someone made) is not deleted (certmint never deletes what it did not
/// deliver) but fails the run: exit 1, the file named with what to do. The
/// listed key material is destroyed and the order recorded purged; the audit
/// record counts what was left. A dry run already says so and fails too.
#[test]
fn a_copy_left_in_the_pkcs12_folder_fails_the_run_and_is_named() {
    let ws = Workspace::with_ca(&[]);
    let serials = soft_order(&ws, 1, "FU", 2);
    let now = when_due(&ws, &[1]);
    let key = format!("out/order-1/p12/{}.p12", serials[0]);
    let copy = format!("{key}.bak");
    let kept = ws.read(&key);
    std::fs::copy(ws.path(&key), ws.path(&copy)).unwrap();
    let copy_name = format!("{}.p12.bak", serials[0]);

    let dry = certmint_in(
        &ws,
        ws.dir.path(),
        &["okc", "purge", "--dry-run", "--now", &now],
        &[],
    );
    assert_eq!(dry.code, 1, "{}\n{}", dry.stdout, dry.stderr);
    assert!(
        dry.stdout.contains(&copy_name) && dry.stdout.contains("would be left in"),
        "{}",
        dry.stdout
    );
    assert_eq!(p12_files(&ws, 1), 3);

    let run = purge(&ws, &now);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("purged: 3 file(s) overwritten and deleted"),
        "{}",
        run.stdout
    );
    let line = run
        .stdout
        .lines()
        .find(|l| l.contains("NOT COMPLETE"))
        .unwrap_or_else(|| panic!("no NOT COMPLETE line:\n{}", run.stdout));
    assert!(
        line.contains(&copy_name)
            && line.contains("1 file(s) not listed by the journal left in")
            && line.contains("inspect them and delete them by hand"),
        "{line}"
    );
    assert!(
        run.stderr.contains("1 problem(s) in this purge run"),
        "{}",
        run.stderr
    );
    assert_eq!(status(&ws, 1)["state"], "purged");
    assert_eq!(stored_passwords(&ws, 1), 0);
    assert_eq!(ws.read(&copy), kept, "the copy is left as it was");
    for serial in &serials {
        assert!(!ws.exists(&format!("out/order-1/p12/{serial}.p12")));
    }
    assert!(!ws.exists("out/order-1.passwords.csv"));
    assert_eq!(p12_files(&ws, 1), 1);
    let details = audit_details(&ws, "order.purged");
    assert!(
        details.contains("2 PKCS#12 file(s) of 2")
            && details.contains("1 file(s) not listed by the journal left in"),
        "{details}"
    );
}

/// Names in the delivery come from whoever wrote there: a file whose name
/// holds a newline and a forged report line, and a link whose name holds an
/// escape sequence, are shown escaped. No raw control byte reaches the
/// terminal and no line of the report can be forged.
#[test]
fn file_names_in_the_delivery_cannot_forge_report_lines_or_drive_the_terminal() {
    let ws = Workspace::with_ca(&[]);
    soft_order(&ws, 1, "FU", 1);
    let now = when_due(&ws, &[1]);
    ws.write(
        "out/order-1/p12/x\nOrder 1: all key material destroyed\x1b[2K",
        b"not key material",
    );
    ws.write("target.txt", b"elsewhere");
    std::os::unix::fs::symlink(ws.path("target.txt"), ws.path("out/order-1/p12/y\x1b[31m"))
        .unwrap();

    let dry = certmint_in(
        &ws,
        ws.dir.path(),
        &["okc", "purge", "--dry-run", "--now", &now],
        &[],
    );
    for (stream, text) in [("stdout", &dry.stdout), ("stderr", &dry.stderr)] {
        let raw: Vec<u8> = text
            .bytes()
            .filter(|b| (*b < 0x20 && *b != b'\n') || *b == 0x7f)
            .collect();
        assert!(
            raw.is_empty(),
            "raw control bytes {raw:?} in {stream}:\n{text}"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("Order 1: all key material destroyed")),
            "a forged line in {stream}:\n{text}"
        );
    }
    assert!(
        dry.stdout
            .contains("x\\u{a}Order 1: all key material destroyed\\u{1b}[2K")
            && dry.stdout.contains("y\\u{1b}[31m: would remove the link"),
        "{}",
        dry.stdout
    );
    assert_eq!(status(&ws, 1)["state"], "delivered");
}

/// The bytes of the key files that the next test moved or linked outside
/// the delivery: outside.p12, outside-hard-link.p12, then the files of
/// outside-p12/ and of outside-order-3/p12/.
fn outside_key_files(ws: &Workspace) -> Vec<Vec<u8>> {
    ["outside.p12", "outside-hard-link.p12"]
        .iter()
        .map(|f| ws.read(f))
        .chain(
            std::fs::read_dir(ws.path("outside-p12"))
                .unwrap()
                .map(|e| std::fs::read(e.unwrap().path()).unwrap()),
        )
        .chain(
            std::fs::read_dir(ws.path("outside-order-3/p12"))
                .unwrap()
                .map(|e| std::fs::read(e.unwrap().path()).unwrap()),
        )
        .collect()
}

/// A `p12` folder, an order folder, or a listed PKCS#12 file replaced by a
/// symbolic link refuses that order: nothing the link points to is zeroed.
/// So does a listed PKCS#12 file with a second name (a hard link) outside.
#[test]
fn a_linked_folder_or_key_file_refuses_the_order_and_zeroes_nothing() {
    let ws = Workspace::with_ca(&[]);
    soft_order(&ws, 1, "FU", 1);
    let second = soft_order(&ws, 2, "JI", 1);
    soft_order(&ws, 3, "FU", 1);
    let fourth = soft_order(&ws, 4, "JI", 1);
    let now = when_due(&ws, &[1, 2, 3, 4]);
    // Order 4: its key file has a second name outside the delivery.
    std::fs::hard_link(
        ws.path(&format!("out/order-4/p12/{}.p12", fourth[0])),
        ws.path("outside-hard-link.p12"),
    )
    .unwrap();
    // Order 1: its p12 folder moved out and linked back.
    std::fs::rename(ws.path("out/order-1/p12"), ws.path("outside-p12")).unwrap();
    std::os::unix::fs::symlink(ws.path("outside-p12"), ws.path("out/order-1/p12")).unwrap();
    // Order 2: its key file moved out and linked back.
    let key = format!("out/order-2/p12/{}.p12", second[0]);
    std::fs::rename(ws.path(&key), ws.path("outside.p12")).unwrap();
    std::os::unix::fs::symlink(ws.path("outside.p12"), ws.path(&key)).unwrap();
    // Order 3: the whole order folder moved out and linked back.
    std::fs::rename(ws.path("out/order-3"), ws.path("outside-order-3")).unwrap();
    std::os::unix::fs::symlink(ws.path("outside-order-3"), ws.path("out/order-3")).unwrap();
    let before = outside_key_files(&ws);

    let run = purge(&ws, &now);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout.matches("NOT PURGED").count(),
        4,
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("not followed"), "{}", run.stdout);
    assert!(
        run.stdout.contains("has 2 names (hard links)"),
        "{}",
        run.stdout
    );
    let after = outside_key_files(&ws);
    assert_eq!(before, after);
    assert!(after.iter().all(|bytes| bytes.iter().any(|b| *b != 0)));
    for order in [1, 2, 3, 4] {
        assert_eq!(status(&ws, order)["state"], "delivered");
        assert!(ws.exists(&format!("out/order-{order}.passwords.csv")));
    }
}

/// `--now` is only for dry runs; a real purge records the real time as
/// `purged_at`, not the simulated clock that judged the deadline.
#[test]
fn a_simulated_clock_is_for_dry_runs_and_a_purge_records_the_real_time() {
    let ws = Workspace::with_ca(&[]);
    soft_order(&ws, 1, "FU", 1);
    let now = when_due(&ws, &[1]);
    let refused = run(&ws, &["okc", "purge", "--now", &now]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--dry-run"), "{}", refused.stderr);
    assert_eq!(p12_files(&ws, 1), 1);
    assert_eq!(status(&ws, 1)["state"], "delivered");

    let before = time::OffsetDateTime::now_utc();
    purge(&ws, &now).ok();
    let after = time::OffsetDateTime::now_utc();
    let purged_at = status(&ws, 1)["purged_at"].as_str().unwrap().to_owned();
    let purged_at =
        time::OffsetDateTime::parse(&purged_at, &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert!(
        purged_at >= before - time::Duration::seconds(1) && purged_at <= after,
        "purged_at {purged_at} is not the real time ({before}..{after}); the simulated clock said {now}"
    );
}

/// An order whose deadline cannot be computed (uploaded past the end of
/// the calendar) is reported, the run exits 1, and the due order is purged.
#[test]
fn an_order_without_a_deadline_is_reported_and_the_others_purged() {
    let ws = Workspace::with_ca(&[]);
    soft_order(&ws, 1, "FU", 1);
    soft_order(&ws, 2, "JI", 1);
    let now = when_due(&ws, &[1, 2]);
    tamper(
        &ws,
        "UPDATE deliveries SET uploaded_at = '2099-06-01T10:00:00Z' WHERE order_id = 1;",
    );
    let run = purge(&ws, &now);
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("Order 1:")
            && run
                .stdout
                .contains("NOT PURGED: cannot compute the purge deadline"),
        "{}",
        run.stdout
    );
    assert_eq!(status(&ws, 1)["state"], "delivered");
    assert_eq!(status(&ws, 2)["state"], "purged");
    assert_eq!(p12_files(&ws, 2), 0);
}

/// PKCS#12 files that vanished before delivery: the delivery is refused,
/// naming the files and what to do, and the order is not recorded delivered
/// (no password manifest listing keys that do not exist). With the files
/// back, the next run delivers.
#[test]
fn delivery_refuses_missing_pkcs12_files_and_says_what_to_do() {
    let ws = Workspace::with_ca(&[]);
    let serials = soft_order(&ws, 1, "FU", 3);
    // Back to "produced, not delivered" (a run stopped before delivery).
    tamper(
        &ws,
        "UPDATE orders SET state = 'produced' WHERE id = 1;
         UPDATE devices SET state = 'verified' WHERE order_id = 1;
         DELETE FROM deliveries; DELETE FROM delivery_files;",
    );
    std::fs::remove_file(ws.path("out/order-1.passwords.csv")).unwrap();
    let vanished = format!("out/order-1/p12/{}.p12", serials[1]);
    let kept = ws.read(&vanished);
    std::fs::remove_file(ws.path(&vanished)).unwrap();

    let produce = produce_args("1", &[]);
    let refused = run(&ws, &produce);
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    assert!(!refused.stdout.contains("Delivered"), "{}", refused.stdout);
    assert!(
        refused.stderr.contains(&format!("{}.p12", serials[1]))
            && refused.stderr.contains("1 PKCS#12 file(s) are missing")
            && refused.stderr.contains("Restore the files from a backup"),
        "{}",
        refused.stderr
    );
    assert_eq!(status(&ws, 1)["state"], "produced");
    assert!(!ws.exists("out/order-1.passwords.csv"));

    ws.write(&vanished, &kept);
    run(&ws, &produce).ok();
    assert_eq!(status(&ws, 1)["state"], "delivered");
    let manifest = String::from_utf8(ws.read("out/order-1.passwords.csv")).unwrap();
    assert_eq!(manifest.lines().count(), 4);
}

const JOURNAL_FILES: [&str; 3] = ["journal.sqlite", "journal.sqlite-wal", "journal.sqlite-shm"];

/// Every journal file that exists has mode 0600; returns how many exist
/// (SQLite deletes `-wal` and `-shm` when the last connection closes).
fn assert_private(ws: &Workspace) -> usize {
    let mut present = 0;
    for name in JOURNAL_FILES {
        if let Ok(meta) = std::fs::metadata(ws.path(name)) {
            let mode = meta.permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name} has mode {mode:o}");
            present += 1;
        }
    }
    present
}

/// The journal is private whatever the umask (and an existing one readable
/// by others is made private, `-wal` and `-shm` included); after a purge,
/// while another connection holds the journal open, no password of the
/// order is left in the bytes of the journal, its `-wal` or its `-shm` file.
#[test]
fn the_journal_is_private_and_keeps_no_password_after_a_purge() {
    let ws = Workspace::with_ca(&[]);
    // Registering the manufacturer makes the journal, under a umask that
    // would leave it readable by everyone.
    let created = Command::new("sh")
        .arg("-c")
        .arg(r#"umask 000 && exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_certmint"))
        .args([
            "manufacturer",
            "register",
            "--vkn",
            "4540536920",
            "--name",
            common::MANUFACTURER,
            "--prefixes",
            "FU,JI",
            "--model-approval",
            "GIB-ONAY-2026/17",
            "--secure-area-audit",
            "2026-01-15",
        ])
        .current_dir(ws.dir.path())
        .env("CERTMINT_JOURNAL", ws.path("journal.sqlite"))
        .env("CERTMINT_OPERATOR", "test-operator")
        .output()
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    assert!(assert_private(&ws) >= 1);
    soft_order(&ws, 1, "FU", 5);

    let manifest = String::from_utf8(ws.read("out/order-1.passwords.csv")).unwrap();
    let passwords: Vec<String> = manifest
        .lines()
        .skip(1)
        .map(|line| line.rsplit(',').next().unwrap().to_owned())
        .collect();
    assert_eq!(passwords.len(), 5);
    let found = |ws: &Workspace| -> Vec<String> {
        let mut found = Vec::new();
        for name in JOURNAL_FILES {
            let bytes = std::fs::read(ws.path(name)).unwrap_or_default();
            for password in &passwords {
                if bytes
                    .windows(password.len())
                    .any(|w| w == password.as_bytes())
                {
                    found.push(format!("{name}: {password}"));
                }
            }
        }
        found
    };
    assert!(
        !found(&ws).is_empty(),
        "the scan finds passwords before the purge"
    );

    // Another connection, open (and having read) from here on. The scans
    // above and below read the files outside SQLite, which drops this
    // process's POSIX locks: the first runs before it opens, the second
    // after the purge.
    let other = rusqlite::Connection::open(ws.path("journal.sqlite")).unwrap();
    let orders: i64 = other
        .query_row("SELECT COUNT(*) FROM orders", [], |r| r.get(0))
        .unwrap();
    assert_eq!(orders, 1);
    for name in JOURNAL_FILES {
        std::fs::set_permissions(ws.path(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    run(&ws, &["order", "list"]).ok();
    assert_eq!(assert_private(&ws), 3);

    let now = when_due(&ws, &[1]);
    purge(&ws, &now).ok();
    assert_eq!(assert_private(&ws), 3);
    assert_eq!(found(&ws), Vec::<String>::new());
    drop(other);
    assert_eq!(found(&ws), Vec::<String>::new());
}

/// A purge interrupted after it began (some key files already destroyed)
/// is finished by the next run, which does not take the destroyed files
/// for lost ones.
#[test]
fn an_interrupted_purge_is_finished_by_the_next_run() {
    let ws = Workspace::with_ca(&[]);
    let serials = soft_order(&ws, 1, "FU", 3);
    let now = when_due(&ws, &[1]);
    // What a kill after two files leaves: the purge noted as begun, two files gone.
    tamper(
        &ws,
        "UPDATE delivery_files SET purge_started_at = '2026-01-01T00:00:00Z' WHERE order_id = 1;",
    );
    for serial in &serials[..2] {
        std::fs::remove_file(ws.path(&format!("out/order-1/p12/{serial}.p12"))).unwrap();
    }
    let done = purge(&ws, &now).ok();
    assert!(
        done.stdout
            .contains("purged: 2 file(s) overwritten and deleted"),
        "{}",
        done.stdout
    );
    assert_eq!(status(&ws, 1)["state"], "purged");
    assert_eq!(stored_passwords(&ws, 1), 0);
    let details = audit_details(&ws, "order.purged");
    assert!(
        details.contains("1 PKCS#12 file(s) of 3")
            && details.contains("an earlier, interrupted run deleted the rest"),
        "{details}"
    );
    let again = purge(&ws, &now).ok();
    assert!(again.stdout.contains("No soft delivery awaits purging."));
}

/// Another process in the middle of a read during the purge delays the
/// truncation of the journal's log (the purge waits for the reader) but
/// does not defeat it: once the reader is done, no password is left in the
/// journal's files.
#[test]
fn a_reader_during_the_purge_delays_the_erasure_but_does_not_defeat_it() {
    let ws = Workspace::with_ca(&[]);
    soft_order(&ws, 1, "FU", 3);
    let manifest = String::from_utf8(ws.read("out/order-1.passwords.csv")).unwrap();
    let passwords: Vec<String> = manifest
        .lines()
        .skip(1)
        .map(|line| line.rsplit(',').next().unwrap().to_owned())
        .collect();
    let now = when_due(&ws, &[1]);

    let reader = rusqlite::Connection::open(ws.path("journal.sqlite")).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let stored: i64 = reader
        .query_row(
            "SELECT COUNT(*) FROM devices WHERE p12_password IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, 3);
    let mut child = spawn_on_journal(
        &ws,
        "test-operator",
        &["okc", "purge"],
        &[("CERTMINT_TEST_NOW", &now)],
    );
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the purge waits for the reader"
    );
    reader.execute_batch("COMMIT").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the purge did not finish within 20 s of the reader's end");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let done = Run::from(child.wait_with_output().unwrap()).ok();
    assert!(done.stdout.contains("purged: 4 file(s)"), "{}", done.stdout);
    for name in JOURNAL_FILES {
        let bytes = std::fs::read(ws.path(name)).unwrap_or_default();
        for password in &passwords {
            assert!(
                !bytes
                    .windows(password.len())
                    .any(|w| w == password.as_bytes()),
                "{name} still holds a password"
            );
        }
    }
    drop(reader);
}
