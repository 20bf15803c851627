//! Production ends, and ends right, when something fails or when two
//! producers meet: a failed stage ends the run promptly with its first error
//! and a resumable state; an order has one producer at a time (a second is
//! refused at once, naming the holder, or waits when told to); a dead holder
//! is taken over. Every scenario ends with exactly one certificate per device.
//! Children run with a deadline: a hang fails the test within its deadline.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use certmint::journal::{Journal, LeaseHolder, OrderId, Sharing, SqlJournal};
use common::{import_and_pay, spawn_on_journal, Hsm, Run, Workspace};

/// Text no output of certmint may show: SQLite's own words.
const RAW_ERRORS: &[&str] = &[
    "database is locked",
    "UNIQUE constraint",
    "constraint failed",
    "SQLITE",
];

fn journal(ws: &Workspace) -> SqlJournal {
    SqlJournal::open(&ws.path("journal.sqlite")).unwrap()
}

/// certmint run by `operator` on this workspace's journal, not yet waited for.
fn spawn(ws: &Workspace, operator: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
    spawn_on_journal(ws, operator, args, env)
}

/// Waits for `child` at most `deadline`; kills it and fails the test when it
/// is still running then.
fn finish_within(child: Child, deadline: Duration, what: &str) -> Run {
    let mut child = child;
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{what} still running after {deadline:?}: killed\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Run::from(child.wait_with_output().unwrap())
}

fn run(ws: &Workspace, operator: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    finish_within(
        spawn(ws, operator, args, env),
        Duration::from_secs(300),
        &args.join(" "),
    )
}

fn assert_no_raw_errors(run: &Run) {
    for raw in RAW_ERRORS {
        assert!(
            !run.stdout.contains(raw) && !run.stderr.contains(raw),
            "raw database text {raw:?} shown\nstdout:\n{}\nstderr:\n{}",
            run.stdout,
            run.stderr
        );
    }
}

/// `n` distinct serials with `prefix` in `name`, one per line, in list order.
fn serial_list(ws: &Workspace, name: &str, prefix: &str, n: usize, first: u64) -> Vec<String> {
    let serials: Vec<String> = (0..n as u64)
        .map(|i| format!("{prefix}{:08}", 10_000_000 + first + i * 7))
        .collect();
    ws.write(name, (serials.join("\n") + "\n").as_bytes());
    serials
}

fn import_args<'a>(list: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    common::import_args("FU,JI", list, extra)
}

/// A CA (P-256) and order 1 of `devices` devices for `target`, paid.
fn paid_order(target: &str, devices: usize) -> (Workspace, Vec<String>) {
    let ws = Workspace::with_ca(&["--key-type", "p256"]);
    let serials = serial_list(&ws, "list.txt", "FU", devices, 0);
    let list = ws.path("list.txt").display().to_string();
    let extra = ["--target", target];
    import_and_pay(
        |args| run(&ws, "op", args, &[]),
        "FU,JI",
        &list,
        "1",
        &extra,
    );
    (ws, serials)
}

/// `okc produce` of order 1 (see `common::produce_args`), then `extra`.
fn produce_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    common::produce_args("1", extra)
}

/// Order 1's lease taken by operator alice on host station-2 (another
/// host) for `duration`.
fn lease_held_on_station_2(ws: &Workspace, duration: Duration) {
    let station = LeaseHolder {
        host: "station-2".into(),
        operator: "alice".into(),
        ..LeaseHolder::this_process("alice")
    };
    journal(ws)
        .acquire_lease(OrderId(1), &station, duration, Sharing::Exclusive)
        .unwrap();
}

/// Every device of order 1 has exactly one certificate that is not void,
/// and its certificate files are in the delivery.
fn assert_one_certificate_per_device(ws: &Workspace, serials: &[String]) {
    let counts = journal(ws)
        .active_certificates_per_device(OrderId(1))
        .unwrap();
    assert_eq!(counts.len(), serials.len());
    let wrong: Vec<_> = counts.iter().filter(|(_, n)| *n != 1).collect();
    assert!(
        wrong.is_empty(),
        "devices without one certificate: {wrong:?}"
    );
    let order = journal(ws).order(OrderId(1)).unwrap();
    assert_eq!(order.verified, serials.len() as u64);
    assert_eq!(order.state.as_str(), "delivered");
    for serial in serials {
        assert!(
            ws.exists(&format!("out/order-1/certs/{serial}.der")),
            "{serial}"
        );
    }
    assert_eq!(
        run(ws, "op", &["audit", "verify"], &[]).ok().code,
        0,
        "audit chain"
    );
}

/// Waits until `verified` devices of order 1 are done.
fn wait_for_progress(ws: &Workspace, verified: u64, deadline: Duration) {
    let start = Instant::now();
    loop {
        if journal(ws).order(OrderId(1)).unwrap().verified >= verified {
            return;
        }
        assert!(
            start.elapsed() < deadline,
            "no progress within {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}

/// A storer that cannot write a device's certificate (a directory stands
/// where its file must go) ends the run promptly with that first error,
/// however many chunks the feeder still has to give; the workers' chunks in
/// flight stay resumable. With the obstacle gone, a re-run completes the
/// order with exactly one certificate per device.
#[test]
fn a_failed_storer_ends_the_run_promptly_and_a_rerun_completes_the_order() {
    let (ws, serials) = paid_order("soft", 2000);
    // The fifth device: the storer fails on the very first chunk, while the
    // feeder still has most of the order to queue.
    let obstacle = format!("out/order-1/certs/{}.pem", serials[4]);
    std::fs::create_dir_all(ws.path(&obstacle)).unwrap();
    std::fs::write(ws.path(&obstacle).join("planted"), b"x").unwrap();

    let failed = finish_within(
        spawn(&ws, "op", &produce_args(&[]), &[]),
        Duration::from_secs(60),
        "okc produce with a failing storer",
    );
    assert_eq!(failed.code, 1, "{}", failed.stderr);
    assert!(
        failed.stderr.contains(&format!("{}.pem", serials[4])),
        "the first error names the file: {}",
        failed.stderr
    );
    assert_no_raw_errors(&failed);
    assert!(
        journal(&ws).leases(OrderId(1)).unwrap().is_empty(),
        "lease given back"
    );

    std::fs::remove_dir_all(ws.path(&obstacle)).unwrap();
    let rerun = run(&ws, "op", &produce_args(&["--json"]), &[]).ok();
    assert_no_raw_errors(&rerun);
    assert_one_certificate_per_device(&ws, &serials);
}

/// Ctrl-C in the middle of a run stops it promptly after the devices in
/// flight (exit 130), and a re-run completes the order.
#[test]
fn ctrl_c_stops_a_running_production_promptly_and_a_rerun_completes() {
    let (ws, serials) = paid_order("soft", 3000);
    let child = spawn(&ws, "op", &produce_args(&[]), &[]);
    wait_for_progress(&ws, 64, Duration::from_secs(120));
    signal(&child, nix::sys::signal::Signal::SIGINT);
    let stopped = finish_within(child, Duration::from_secs(10), "okc produce after Ctrl-C");
    assert_eq!(stopped.code, 130, "{}", stopped.stderr);
    run(&ws, "op", &produce_args(&[]), &[]).ok();
    assert_one_certificate_per_device(&ws, &serials);
}

/// A producer waiting for another one's lease (`--wait`) leaves promptly on
/// Ctrl-C, naming the holder, and has touched nothing.
#[test]
fn ctrl_c_while_waiting_for_the_lease_leaves_promptly() {
    let (ws, _) = paid_order("soft", 10);
    lease_held_on_station_2(&ws, Duration::from_secs(600));
    let child = spawn(&ws, "bob", &produce_args(&["--wait", "600"]), &[]);
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, nix::sys::signal::Signal::SIGINT);
    let left = finish_within(
        child,
        Duration::from_secs(5),
        "okc produce --wait after Ctrl-C",
    );
    assert_eq!(left.code, 7, "{}", left.stderr);
    assert!(
        left.stderr.contains("alice on host station-2"),
        "{}",
        left.stderr
    );
    assert_eq!(
        journal(&ws).order(OrderId(1)).unwrap().state.as_str(),
        "paid"
    );
}

/// Two `okc produce` of one soft order share it: the second joins the
/// first, each certifies the devices it claimed, both end well, one of
/// them delivers the order, one certificate per device, and `order status`
/// counts what each produced; neither shows raw database text.
#[test]
fn a_second_producer_of_a_soft_order_joins_the_first_and_each_device_is_certified_once() {
    let (ws, serials) = paid_order("soft", 3000);
    let first = spawn(&ws, "alice", &produce_args(&[]), &[]);
    wait_for_progress(&ws, 1, Duration::from_secs(120));
    let second = spawn(&ws, "bob", &produce_args(&[]), &[]);
    let second = finish_within(second, Duration::from_secs(300), "the second producer").ok();
    let first = finish_within(first, Duration::from_secs(300), "the first producer").ok();
    assert_no_raw_errors(&first);
    assert_no_raw_errors(&second);
    let delivered = [&first, &second]
        .iter()
        .filter(|run| run.stdout.contains("Delivered to"))
        .count();
    assert_eq!(delivered, 1, "{}\n{}", first.stdout, second.stdout);
    assert_one_certificate_per_device(&ws, &serials);
    let status = run(
        &ws,
        "op",
        &["order", "status", "--order", "1", "--json"],
        &[],
    )
    .ok();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let stations = status["stations"].as_array().unwrap();
    assert_eq!(stations.len(), 2, "{status}");
    let produced: u64 = stations
        .iter()
        .map(|s| s["produced"].as_u64().unwrap())
        .sum();
    assert_eq!(produced, 3000, "{status}");
    assert!(
        stations.iter().all(|s| s["lease"]["sharing"] == "shared"),
        "{status}"
    );
}

/// The same on a SoftHSM2 token: the second producer generates no key, so
/// the token ends with one key pair and one certificate per device.
#[test]
fn a_second_producer_of_an_hsm_order_is_refused_and_the_token_has_one_key_per_device() {
    let (ws, serials) = paid_order("hsm", 600);
    let hsm = Hsm::new(&ws, &["uretici"], "ALL");
    let uri = hsm.uri("uretici", None);
    let conf = hsm.conf();
    let env = [("SOFTHSM2_CONF", conf.as_str())];
    let first = spawn(&ws, "alice", &produce_args(&["--token", &uri]), &env);
    wait_for_progress(&ws, 1, Duration::from_secs(120));
    let second = finish_within(
        spawn(&ws, "bob", &produce_args(&["--token", &uri]), &env),
        Duration::from_secs(30),
        "the second producer",
    );
    assert_eq!(second.code, 7, "{}", second.stderr);
    assert!(
        second.stderr.contains("operator alice"),
        "{}",
        second.stderr
    );
    assert_no_raw_errors(&second);
    let first = finish_within(first, Duration::from_secs(300), "the first producer").ok();
    assert_no_raw_errors(&first);
    assert_one_certificate_per_device(&ws, &serials);
    let objects = hsm.objects("uretici");
    let private = objects
        .iter()
        .filter(|(kind, _)| kind == "Private Key Object")
        .count();
    assert_eq!(private, serials.len(), "private keys on the token");
    assert_eq!(objects.len(), 3 * serials.len());
}

/// A holder killed mid-run (SIGKILL: no release) is detected (its process
/// is gone from this host) and taken over at once, audited; recovery runs
/// and the order completes with one certificate per device.
#[test]
fn a_dead_holder_is_taken_over_and_the_order_completes() {
    let (ws, serials) = paid_order("soft", 2000);
    let first = spawn(&ws, "alice", &produce_args(&[]), &[]);
    wait_for_progress(&ws, 64, Duration::from_secs(120));
    signal(&first, nix::sys::signal::Signal::SIGKILL);
    finish_within(first, Duration::from_secs(10), "the killed producer");
    assert!(
        !journal(&ws).leases(OrderId(1)).unwrap().is_empty(),
        "left behind"
    );

    let second = run(&ws, "bob", &produce_args(&[]), &[]).ok();
    assert_no_raw_errors(&second);
    assert_one_certificate_per_device(&ws, &serials);
    let audit = std::fs::read(ws.path("journal.sqlite")).unwrap();
    assert!(
        audit
            .windows(b"order.lease-taken-over".len())
            .any(|w| w == b"order.lease-taken-over"),
        "the take-over is audited"
    );
}

/// A lease held on another host is respected until it expires unrenewed;
/// `--wait` waits for it and then takes it over.
#[test]
fn another_hosts_lease_is_respected_until_it_expires_and_wait_takes_it_then() {
    let (ws, serials) = paid_order("soft", 50);
    lease_held_on_station_2(&ws, Duration::from_secs(3));
    let refused = run(&ws, "bob", &produce_args(&[]), &[]);
    assert_eq!(refused.code, 7, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("operator alice on host station-2"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("--wait"), "{}", refused.stderr);

    let waited = run(&ws, "bob", &produce_args(&["--wait", "60"]), &[]).ok();
    assert_no_raw_errors(&waited);
    assert_one_certificate_per_device(&ws, &serials);
}

/// Concurrent imports of overlapping lists: one order gets the serials, the
/// other import is refused in words (exit 3, the serials of an earlier
/// order), never with raw database text; two registrations of one
/// manufacturer, made while both create the journal at the same moment,
/// refuse the second in words (exit 9).
#[test]
fn concurrent_imports_of_overlapping_lists_refuse_the_loser_in_words() {
    // Each round on a new journal: both registrations also create it at once.
    for _ in 0..4 {
        let ws = Workspace::with_ca(&["--key-type", "p256"]);
        let register = [
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
        ];
        let registrations = [
            finish_within(
                spawn(&ws, "alice", &register, &[]),
                Duration::from_secs(120),
                "register a",
            ),
            finish_within(
                spawn(&ws, "bob", &register, &[]),
                Duration::from_secs(120),
                "register b",
            ),
        ];
        let mut codes: Vec<i32> = registrations.iter().map(|r| r.code).collect();
        codes.sort();
        assert_eq!(codes, [0, 9], "one registration wins");
        for r in &registrations {
            assert_no_raw_errors(r);
        }
        assert!(
            registrations
                .iter()
                .any(|r| r.stderr.contains("is registered already")),
            "the second registration is refused in words"
        );
        serial_list(&ws, "a.txt", "FU", 20_000, 0);
        serial_list(&ws, "b.txt", "FU", 20_000, 7 * 10_000);
        let (a, b) = (
            ws.path("a.txt").display().to_string(),
            ws.path("b.txt").display().to_string(),
        );
        let first = spawn(&ws, "alice", &import_args(&a, &[]), &[]);
        let second = spawn(&ws, "bob", &import_args(&b, &[]), &[]);
        let runs = [
            finish_within(first, Duration::from_secs(120), "import a"),
            finish_within(second, Duration::from_secs(120), "import b"),
        ];
        let codes: Vec<i32> = runs.iter().map(|r| r.code).collect();
        let mut sorted = codes.clone();
        sorted.sort();
        let said: Vec<&str> = runs.iter().map(|r| r.stderr.as_str()).collect();
        assert_eq!(sorted, [0, 3], "one import wins: {codes:?} {said:?}");
        for r in &runs {
            assert_no_raw_errors(r);
        }
        assert_eq!(journal(&ws).orders().unwrap().len(), 1);
    }
}

/// A manufacturer token that will not open while another producer holds
/// the order (SoftHSM2 can refuse a token another process is writing)
/// reports the holder, exit 7, rather than the token's error.
#[test]
fn a_token_that_will_not_open_while_the_order_is_held_reports_the_holder() {
    let (ws, _) = paid_order("hsm", 10);
    let hsm = Hsm::new(&ws, &["uretici"], "ALL");
    let conf = hsm.conf();
    let env = [("SOFTHSM2_CONF", conf.as_str())];
    lease_held_on_station_2(&ws, Duration::from_secs(600));
    // --wait skips the early check, so the token is opened: it is absent.
    let absent = hsm.uri("absent", None);
    let refused = run(
        &ws,
        "bob",
        &produce_args(&["--token", &absent, "--wait", "1"]),
        &env,
    );
    assert_eq!(refused.code, 7, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("alice on host station-2"),
        "{}",
        refused.stderr
    );
}

/// SQLite's locks are all that tells one process that another still has
/// the journal open: other certmint processes that open and close the
/// journal (`order status`) while a producer runs must leave the
/// producer's write-ahead log in place (a log deleted under a live
/// connection takes the producer's later writes, its lease renewals
/// among them, out of every other process's sight, and corrupts the
/// journal when they are copied back).
#[test]
fn another_process_closing_the_journal_leaves_a_running_producers_log_in_place() {
    let (ws, _) = paid_order("soft", 20_000);
    let mut producer = spawn(&ws, "op", &produce_args(&[]), &[]);
    let started = Instant::now();
    while !ws.path("journal.sqlite-wal").exists() || started.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..3 {
        let status = run(&ws, "op", &["order", "status", "--order", "1"], &[]);
        assert_eq!(status.code, 0, "{}", status.stderr);
    }
    let deleted: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", producer.id()))
        .map(|fds| {
            fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
                .map(|target| target.display().to_string())
                .filter(|target| target.contains("journal.sqlite") && target.ends_with("(deleted)"))
                .collect()
        })
        .unwrap_or_default();
    let _ = producer.kill();
    let _ = producer.wait();
    assert!(
        deleted.is_empty(),
        "the producer's journal files were deleted under it: {deleted:?}"
    );
}
