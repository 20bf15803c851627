//! One journal, two databases: every test body here runs twice, on the
//! embedded SQLite file and on a PostgreSQL database of a real throwaway
//! server (`common::postgres`), through the `certmint` binary. What holds
//! for one must hold for the other: one certificate per device enforced by
//! the database itself, resumption after SIGKILL, revocation and CRLs, the
//! audit chain and its tamper evidence, the schema version.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::postgres;
use common::{import_args, produce_args, Run, Workspace};

/// Which database the journal of a test lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A workspace with a CA and a journal on `backend`.
struct Bench {
    ws: Workspace,
    backend: Backend,
    /// The journal's address: a file path or a postgresql:// URL.
    journal: String,
}

impl Bench {
    fn new(backend: Backend) -> Self {
        let ws = Workspace::with_ca(&["--key-type", "p256"]);
        let journal = match backend {
            Backend::Sqlite => ws.path("journal.sqlite").display().to_string(),
            Backend::Postgres => postgres::cluster().new_database(),
        };
        Self {
            ws,
            backend,
            journal,
        }
    }

    /// certmint on this journal, not yet run.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_certmint"));
        command
            .args(args)
            .env("CERTMINT_JOURNAL", &self.journal)
            .env("CERTMINT_OPERATOR", "test-operator")
            .env("CERTMINT_AUDIT_DIR", self.ws.path("audit"))
            .current_dir(self.ws.dir.path());
        command
    }

    fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run certmint"))
    }

    /// Runs SQL on the journal's database behind certmint's back.
    fn sql(&self, query: &str) -> Result<String, String> {
        match self.backend {
            Backend::Sqlite => {
                let conn = rusqlite::Connection::open(&self.journal).map_err(|e| e.to_string())?;
                conn.execute_batch(query).map_err(|e| e.to_string())?;
                Ok(String::new())
            }
            Backend::Postgres => {
                postgres::cluster().try_psql(postgres::database_of(&self.journal), query)
            }
        }
    }

    /// `devices` serials FU10000000… imported (manufacturer registered) as order 1.
    fn import(&self, devices: usize) {
        let list: String = (0..devices)
            .map(|i| format!("FU{:08}\n", 10_000_000 + i))
            .collect();
        self.ws.write("list.txt", list.as_bytes());
        common::ensure_manufacturer(|args| self.run(args));
        let path = self.ws.path("list.txt").display().to_string();
        self.run(&import_args("FU,JI", &path, &[])).ok();
    }

    /// The order's issued certificates, by `cert list --json`.
    fn issued(&self, order: &str) -> Vec<serde_json::Value> {
        let out = self.run(&["cert", "list", "--order", order, "--json"]).ok();
        out.stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|c| c["status"] == "issued")
            .collect()
    }

    fn audit_intact(&self) {
        let out = self.run(&["audit", "verify", "--json"]);
        let json: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|_| panic!("{}\n{}", out.stdout, out.stderr));
        assert_eq!(json["problems"].as_array().unwrap().len(), 0, "{json}");
        assert_eq!(out.code, 0);
    }

    /// `openssl verify` of every delivered certificate of order 1.
    fn openssl_verifies_all(&self, devices: usize) {
        let dir = self.ws.path("out/order-1/certs");
        let mut pems: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path().display().to_string())
            .filter(|p| p.ends_with(".pem"))
            .collect();
        pems.sort();
        assert_eq!(pems.len(), devices);
        for chunk in pems.chunks(250) {
            let mut args = vec![
                "verify",
                "-CAfile",
                "ca/root.pem",
                "-untrusted",
                "ca/okc-issuing.pem",
            ];
            args.extend(chunk.iter().map(String::as_str));
            let out = self.ws.openssl(&args).ok();
            assert_eq!(
                out.stdout.lines().filter(|l| l.ends_with(": OK")).count(),
                chunk.len(),
                "{}",
                out.stdout
            );
        }
    }
}

/// Runs the test body `$name` once per database.
macro_rules! on_both_journals {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn on_sqlite() {
                    super::$name(super::Backend::Sqlite);
                }
                #[test]
                fn on_postgresql() {
                    super::$name(super::Backend::Postgres);
                }
            }
        )*
    };
}

on_both_journals!(
    an_order_is_produced_once_per_device_and_a_rerun_issues_nothing,
    the_database_itself_refuses_a_second_certificate_in_force,
    a_producer_killed_at_random_points_resumes_without_a_second_certificate,
    a_revoked_certificate_is_on_the_next_crl,
    a_record_changed_behind_certmints_back_is_named,
    a_journal_of_a_newer_schema_is_refused,
    a_journal_of_the_schema_before_is_migrated_when_opened,
);

fn an_order_is_produced_once_per_device_and_a_rerun_issues_nothing(backend: Backend) {
    let bench = Bench::new(backend);
    bench.import(60);
    let unpaid = bench.run(&produce_args("1", &[]));
    assert_ne!(unpaid.code, 0);
    assert!(unpaid.stderr.contains("is not paid"), "{}", unpaid.stderr);
    bench.run(&["order", "pay", "--order", "1"]).ok();
    let produced = bench.run(&produce_args("1", &["--json"])).ok();
    let json: serde_json::Value = serde_json::from_str(&produced.stdout).unwrap();
    assert_eq!(json["produced_now"], 60, "{json}");
    bench.openssl_verifies_all(60);
    assert_eq!(bench.issued("1").len(), 60);
    let again = bench.run(&produce_args("1", &["--json"])).ok();
    let json: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(json["produced_now"], 0, "{json}");
    assert_eq!(json["already_done"], 60, "{json}");
    let status = bench
        .run(&["order", "status", "--order", "1", "--json"])
        .ok();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["state"], "delivered");
    assert_eq!(status["verified"], 60);
    bench.audit_intact();
}

fn the_database_itself_refuses_a_second_certificate_in_force(backend: Backend) {
    let bench = Bench::new(backend);
    bench.import(3);
    bench.run(&["order", "pay", "--order", "1"]).ok();
    bench.run(&produce_args("1", &[])).ok();
    // Whatever writes the database, a device never gets a second
    // certificate in force, and a serial never a second device.
    let refused = bench
        .sql(
            "INSERT INTO certificates (device_id, serial_hex, status, tbs, recorded_at) \
             SELECT id, 'ABCDEF', 'intent', tbs, 'now' FROM certificates WHERE status = 'issued' LIMIT 1",
        )
        .unwrap_err();
    assert!(
        refused.contains("UNIQUE") || refused.contains("unique"),
        "{refused}"
    );
    let refused = bench
        .sql(
            "INSERT INTO devices (order_id, serial, line_no, state) \
             SELECT order_id, serial, 99, 'planned' FROM devices LIMIT 1",
        )
        .unwrap_err();
    assert!(
        refused.contains("UNIQUE") || refused.contains("unique"),
        "{refused}"
    );
    bench.audit_intact();
}

fn a_producer_killed_at_random_points_resumes_without_a_second_certificate(backend: Backend) {
    let bench = Bench::new(backend);
    bench.import(300);
    bench.run(&["order", "pay", "--order", "1"]).ok();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    eprintln!("crash test seed {seed}");
    let mut x = seed;
    for _ in 0..5 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut child = bench
            .command(&produce_args("1", &[]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(60 + (x >> 33) % 500));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    bench.run(&produce_args("1", &[])).ok();
    let issued = bench.issued("1");
    assert_eq!(issued.len(), 300);
    let mut devices: Vec<&str> = issued
        .iter()
        .map(|c| c["device_serial"].as_str().unwrap())
        .collect();
    devices.sort();
    devices.dedup();
    assert_eq!(devices.len(), 300, "a device has two issued certificates");
    bench.openssl_verifies_all(300);
    bench.audit_intact();
}

fn a_revoked_certificate_is_on_the_next_crl(backend: Backend) {
    let bench = Bench::new(backend);
    bench.import(5);
    bench.run(&["order", "pay", "--order", "1"]).ok();
    bench.run(&produce_args("1", &[])).ok();
    let serial = bench.issued("1")[2]["serial"].as_str().unwrap().to_owned();
    bench
        .run(&["revoke", "--serial", &serial, "--reason", "key-compromise"])
        .ok();
    let again = bench
        .run(&["revoke", "--serial", &serial, "--reason", "key-compromise"])
        .ok();
    assert!(
        again.stdout.contains("1 revoked already"),
        "{}",
        again.stdout
    );
    bench
        .run(&["ca", "crl", "--ca", "ca", "--issuer", "okc"])
        .ok();
    let crl = std::fs::read_dir(bench.ws.path("ca/crl"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "crl"))
        .unwrap();
    let text = bench
        .ws
        .openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            crl.to_str().unwrap(),
            "-noout",
            "-text",
        ])
        .ok();
    assert!(text.stdout.contains(&serial), "{}", text.stdout);
    assert!(text.stdout.contains("Key Compromise"), "{}", text.stdout);
    bench.audit_intact();
}

fn a_record_changed_behind_certmints_back_is_named(backend: Backend) {
    let bench = Bench::new(backend);
    bench.import(4);
    bench.run(&["order", "pay", "--order", "1"]).ok();
    bench.run(&produce_args("1", &[])).ok();
    bench.audit_intact();
    bench
        .sql("UPDATE audit SET details = 'nothing happened' WHERE seq = 3")
        .unwrap();
    let broken = bench.run(&["audit", "verify"]);
    assert_eq!(broken.code, 6, "{}\n{}", broken.stdout, broken.stderr);
    assert!(
        broken
            .stderr
            .contains("record 3: was changed after it was written"),
        "{}",
        broken.stderr
    );
}

fn a_journal_of_a_newer_schema_is_refused(backend: Backend) {
    let bench = Bench::new(backend);
    bench.import(1);
    let newer = certmint::journal::SCHEMA_VERSION + 1;
    match backend {
        Backend::Sqlite => bench.sql(&format!("PRAGMA user_version = {newer}")),
        Backend::Postgres => bench.sql(&format!("UPDATE certmint_schema SET version = {newer}")),
    }
    .unwrap();
    let refused = bench.run(&["order", "list"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains(&format!(
            "its schema is version {newer}, newer than this certmint knows"
        )),
        "{}",
        refused.stderr
    );
}

fn a_journal_of_the_schema_before_is_migrated_when_opened(backend: Backend) {
    let bench = Bench::new(backend);
    bench.import(3);
    // Version 7, the first on PostgreSQL: no PID namespace kept with a
    // lease, no CA certificates on record.
    let downgrade = match backend {
        Backend::Sqlite => {
            "DROP TABLE ca_certificates; \
             ALTER TABLE station_leases DROP COLUMN pid_namespace; PRAGMA user_version = 7"
        }
        Backend::Postgres => {
            "DROP TABLE ca_certificates; \
             ALTER TABLE station_leases DROP COLUMN pid_namespace; \
             UPDATE certmint_schema SET version = 7"
        }
    };
    bench.sql(downgrade).unwrap();
    bench.run(&["order", "pay", "--order", "1"]).ok();
    bench.run(&produce_args("1", &[])).ok();
    let status = bench
        .run(&["order", "status", "--order", "1", "--json"])
        .ok();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let namespace = &status["stations"][0]["lease"]["holder"]["pid_namespace"];
    assert!(
        namespace.as_str().is_some_and(|n| n.starts_with("pid:[")),
        "{status}"
    );
    bench.audit_intact();
}

/// A journal that is not there is named, not made empty, by a command that
/// only reads; a database password in the address is refused unrepeated.
#[test]
fn a_missing_journal_and_a_password_in_the_address_are_refused_in_words() {
    let bench = Bench::new(Backend::Postgres);
    let missing = bench.run(&["order", "list"]);
    assert_eq!(missing.code, 8, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("no journal at"),
        "{}",
        missing.stderr
    );
    let with_password = Command::new(env!("CARGO_BIN_EXE_certmint"))
        .args([
            "order",
            "list",
            "--journal",
            "postgresql://certmint:s3cret@db.example/ca",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&with_password.stderr);
    assert_eq!(with_password.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("PGPASSWORD"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

// Several producers on one order: `okc produce` processes started at once
// share a soft order, each device claimed by one of them.
on_both_journals!(
    three_producers_share_a_soft_order_and_certify_each_device_once,
    a_producer_killed_ten_times_leaves_its_devices_to_the_others,
    a_producer_frozen_past_its_lease_never_replaces_the_key_file_of_the_one_that_took_over,
);

impl Bench {
    /// `okc produce` of order 1 as `operator`, started.
    fn spawn_producer(&self, operator: &str) -> std::process::Child {
        self.command(&produce_args("1", &[]))
            .env("CERTMINT_OPERATOR", operator)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Each device of order 1 has one issued certificate, and the delivery
    /// holds its files and nothing else: a certificate (PEM and DER) and a
    /// PKCS#12 per device, no file left half written.
    fn one_certificate_and_no_orphan_file_per_device(&self, devices: usize) {
        let issued = self.issued("1");
        let mut serials: Vec<String> = issued
            .iter()
            .map(|c| c["device_serial"].as_str().unwrap().to_owned())
            .collect();
        serials.sort();
        serials.dedup();
        assert_eq!(
            serials.len(),
            devices,
            "a device without, or with two, certificates"
        );
        assert_eq!(issued.len(), devices);
        for (folder, extensions) in [("certs", &["der", "pem"][..]), ("p12", &["p12"][..])] {
            let mut names: Vec<String> =
                std::fs::read_dir(self.ws.path(&format!("out/order-1/{folder}")))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect();
            names.sort();
            let mut expected: Vec<String> = serials
                .iter()
                .flat_map(|s| extensions.iter().map(move |e| format!("{s}.{e}")))
                .collect();
            expected.sort();
            assert_eq!(names, expected, "out/order-1/{folder}");
        }
    }

    /// The producers `order status` names, and the devices each produced.
    fn stations(&self) -> Vec<(String, u64)> {
        let status = self
            .run(&["order", "status", "--order", "1", "--json"])
            .ok();
        let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
        status["stations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["lease"]["holder"]["operator"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                    s["produced"].as_u64().unwrap(),
                )
            })
            .collect()
    }
}

fn three_producers_share_a_soft_order_and_certify_each_device_once(backend: Backend) {
    let bench = Bench::new(backend);
    bench.import(1500);
    bench.run(&["order", "pay", "--order", "1"]).ok();
    let producers: Vec<_> = ["alice", "bob", "carol"]
        .iter()
        .map(|operator| bench.spawn_producer(operator))
        .collect();
    let runs: Vec<Run> = producers
        .into_iter()
        .map(|child| Run::from(child.wait_with_output().unwrap()).ok())
        .collect();
    let delivered = runs
        .iter()
        .filter(|run| run.stdout.contains("Delivered to"))
        .count();
    assert_eq!(delivered, 1, "one producer delivers");
    bench.one_certificate_and_no_orphan_file_per_device(1500);
    bench.openssl_verifies_all(1500);
    let stations = bench.stations();
    assert_eq!(stations.len(), 3, "{stations:?}");
    assert_eq!(
        stations.iter().map(|(_, n)| n).sum::<u64>(),
        1500,
        "{stations:?}"
    );
    bench.audit_intact();
}

fn a_producer_killed_ten_times_leaves_its_devices_to_the_others(backend: Backend) {
    let bench = Bench::new(backend);
    bench.import(3000);
    bench.run(&["order", "pay", "--order", "1"]).ok();
    let survivors: Vec<_> = ["alice", "bob"]
        .iter()
        .map(|operator| bench.spawn_producer(operator))
        .collect();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    eprintln!("kill seed {seed}");
    let mut x = seed;
    for _ in 0..10 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut victim = bench.spawn_producer("mallory");
        std::thread::sleep(Duration::from_millis(50 + (x >> 33) % 350));
        let _ = victim.kill(); // SIGKILL
        let _ = victim.wait();
    }
    for child in survivors {
        Run::from(child.wait_with_output().unwrap()).ok();
    }
    // The survivors took the killed producer's devices over: the order is
    // complete and delivered, with one certificate per device.
    let status = bench
        .run(&["order", "status", "--order", "1", "--json"])
        .ok();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["state"], "delivered", "{status}");
    bench.one_certificate_and_no_orphan_file_per_device(3000);
    bench.openssl_verifies_all(3000);
    // Whatever a killed producer had signed and not stored is void on
    // record and revoked: nothing signed is unaccounted for.
    let all = bench.run(&["cert", "list", "--order", "1", "--json"]).ok();
    for line in all.stdout.lines() {
        let cert: serde_json::Value = serde_json::from_str(line).unwrap();
        if cert["status"] == "void" {
            assert!(cert["revocation"].is_object(), "{cert}");
        }
    }
    let produced: u64 = bench.stations().iter().map(|(_, n)| n).sum();
    assert_eq!(produced, 3000);
    bench.audit_intact();
}

fn a_producer_frozen_past_its_lease_never_replaces_the_key_file_of_the_one_that_took_over(
    backend: Backend,
) {
    // Enough chunks that the moment is caught even where fsync costs
    // nothing (a tmpfs).
    const DEVICES: usize = 2000;
    let bench = Bench::new(backend);
    bench.import(DEVICES);
    bench.run(&["order", "pay", "--order", "1"]).ok();
    // Mallory is frozen (SIGSTOP) while PKCS#12 files of its chunk wait
    // for their record: past its check of the lease, before the journal
    // records the devices (their certificates are intents still).
    let mut mallory = bench.spawn_producer("mallory");
    let p12 = bench.ws.path("out/order-1/p12");
    // (device serial, certificate serial) of each PKCS#12 file waiting.
    let pending = |dir: &std::path::Path| -> Vec<(String, String)> {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter_map(|name| {
                        let (device, serial) = name.strip_suffix(".p12.tmp")?.split_once('.')?;
                        Some((device.to_owned(), serial.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let intents = || -> Vec<(String, String)> {
        let all = bench.run(&["cert", "list", "--order", "1", "--json"]).ok();
        all.stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|c| c["status"] == "intent")
            .map(|c| {
                let text = |key: &str| c[key].as_str().unwrap().to_ascii_uppercase();
                (text("device_serial"), text("serial"))
            })
            .collect()
    };
    let pid = nix::unistd::Pid::from_raw(mallory.id() as i32);
    let started = std::time::Instant::now();
    let caught: Vec<String>;
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "mallory was never caught with key files waiting and no transaction open"
        );
        assert!(mallory.try_wait().unwrap().is_none(), "mallory ended early");
        if pending(&p12).is_empty() {
            continue;
        }
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
        // Stopped once waitpid says so, not when the signal is sent.
        let stopped =
            nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WUNTRACED)).unwrap();
        assert!(
            matches!(stopped, nix::sys::wait::WaitStatus::Stopped(..)),
            "{stopped:?}"
        );
        // Frozen in the middle of a journal write, it would hold the
        // writer's lock (until the server ends its session): let it go on.
        if bench.writer_is_free() {
            let intents = intents();
            let in_the_window = pending(&p12).into_iter().any(|(device, serial)| {
                intents.contains(&(device.to_ascii_uppercase(), serial.to_ascii_uppercase()))
            });
            if in_the_window {
                // Its chunk: key files written before it froze, and those
                // it writes when it wakes.
                caught = intents.into_iter().map(|(device, _)| device).collect();
                break;
            }
        }
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    // Seen from the others, mallory now runs on another host and let its
    // lease expire (on this host a stopped process is never taken over).
    bench
        .sql(
            "UPDATE station_leases SET host = 'station-elsewhere', expires_at_ms = 0 \
             WHERE operator = 'mallory'",
        )
        .unwrap();
    // Alice takes the order over and delivers it whole.
    let alice = Run::from(bench.spawn_producer("alice").wait_with_output().unwrap()).ok();
    assert!(alice.stdout.contains("Delivered to"), "{}", alice.stdout);
    // Mallory wakes: the journal refuses what it still holds, and it writes
    // over nothing.
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    let mallory = Run::from(mallory.wait_with_output().unwrap());
    assert_ne!(mallory.code, 0, "{}", mallory.stdout);
    assert!(mallory.stderr.contains("taken over"), "{}", mallory.stderr);
    bench.one_certificate_and_no_orphan_file_per_device(DEVICES);
    bench.openssl_verifies_all(DEVICES);
    // Every certificate mallory had signed and not recorded is void and
    // revoked; each device it had signed for when it froze was produced
    // again by alice, and its PKCS#12 holds alice's certificate,
    // the one on record.
    let all = bench.run(&["cert", "list", "--order", "1", "--json"]).ok();
    for line in all.stdout.lines() {
        let cert: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_ne!(cert["status"], "intent", "{cert}");
        if cert["status"] == "void" {
            assert!(cert["revocation"].is_object(), "{cert}");
        }
    }
    bench.pkcs12_holds_the_certificate_on_record(&caught);
    bench.audit_intact();
}

impl Bench {
    /// Whether no process holds the journal's write lock at this moment.
    fn writer_is_free(&self) -> bool {
        match self.backend {
            Backend::Sqlite => rusqlite::Connection::open(&self.journal)
                .and_then(|conn| {
                    conn.busy_timeout(Duration::ZERO)?;
                    conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK")
                })
                .is_ok(),
            Backend::Postgres => self
                .sql(
                    "BEGIN; SET LOCAL lock_timeout = '200ms'; \
                     SELECT id FROM journal_writer FOR UPDATE; ROLLBACK",
                )
                .is_ok(),
        }
    }

    /// The PKCS#12 of each of `devices` (order 1), opened with its
    /// password from the manifest, holds the certificate the journal
    /// recorded (the one in `certs/`, written from the journal).
    fn pkcs12_holds_the_certificate_on_record(&self, devices: &[String]) {
        let passwords = String::from_utf8(self.ws.read("out/order-1.passwords.csv")).unwrap();
        let folder = self.ws.path("out/order-1");
        let body = |pem: &str| -> String {
            let start = pem
                .find("-----BEGIN CERTIFICATE-----")
                .expect("a certificate");
            let end = pem[start..].find("-----END CERTIFICATE-----").unwrap() + start;
            pem[start..end].lines().skip(1).collect::<String>()
        };
        for device in devices {
            let password = passwords
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{device},p12/{device}.p12,")))
                .unwrap_or_else(|| panic!("{device}: no password"));
            let out = Command::new("openssl")
                .args([
                    "pkcs12",
                    "-in",
                    &format!("p12/{device}.p12"),
                    "-passin",
                    "env:P12_PASSWORD",
                    "-nokeys",
                    "-clcerts",
                ])
                .env("P12_PASSWORD", password)
                .current_dir(&folder)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{device}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let recorded =
                String::from_utf8(self.ws.read(&format!("out/order-1/certs/{device}.pem")))
                    .unwrap();
            assert_eq!(
                body(&String::from_utf8_lossy(&out.stdout)),
                body(&recorded),
                "{device}: the PKCS#12 holds another certificate than the one on record"
            );
        }
    }
}

/// A journal on a server across a network, over TLS (`sslmode=require`):
/// the server is verified against the roots given (`sslrootcert`), and its
/// name against the address; a server of an unknown issuer, or of another
/// name, is refused, saying why. (The test server refuses any connection
/// in the clear on its TCP port, so one that works is TLS.)
#[test]
fn a_journal_over_tls_verifies_the_server_and_refuses_one_it_cannot() {
    let tls = postgres::tls_cluster();
    let name = format!("tls_journal_{}", std::process::id());
    tls.cluster
        .psql("postgres", &format!("CREATE DATABASE {name}"));
    let ws = Workspace::new();
    let run = |journal: &str, args: &[&str]| {
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
    };
    let ca = tls.ca.display().to_string();
    let verified = tls.tcp_url(
        "localhost",
        &name,
        &format!("sslmode=require&sslrootcert={ca}"),
    );
    common::register_manufacturer(|args| run(&verified, args), "4540536920", "FU", true);
    let shown = run(&verified, &["manufacturer", "show", "--vkn", "4540536920"]).ok();
    assert!(shown.stdout.contains("4540536920"), "{}", shown.stdout);
    run(&verified, &["audit", "verify"]).ok();

    let in_the_clear = run(
        &tls.tcp_url("localhost", &name, "sslmode=disable"),
        &["order", "list"],
    );
    assert_ne!(in_the_clear.code, 0, "the server takes TLS only");
    let unknown_issuer = run(
        &tls.tcp_url("localhost", &name, "sslmode=require"),
        &["order", "list"],
    );
    assert_eq!(unknown_issuer.code, 1, "{}", unknown_issuer.stderr);
    assert!(
        unknown_issuer.stderr.contains("UnknownIssuer"),
        "{}",
        unknown_issuer.stderr
    );
    let other_name = run(
        &tls.tcp_url(
            "127.0.0.1",
            &name,
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        &["order", "list"],
    );
    assert_eq!(other_name.code, 1, "{}", other_name.stderr);
    assert!(
        other_name.stderr.contains("not valid for name"),
        "{}",
        other_name.stderr
    );
}
