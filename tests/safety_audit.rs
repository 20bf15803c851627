//! Secrets in processes and the audit log's resistance to someone who can
//! write the journal database, through the real `certmint` binary:
//! a PIN given in an environment variable never reaches a child's
//! environment, certmint processes cannot dump core, and `audit verify`
//! reports every kind of tampering with the log (truncation, deleted rows,
//! dropped tables, a rewritten and recomputed chain, certificates without
//! their audit record) as broken with exit code 6.

mod common;

use std::os::unix::fs::MetadataExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    import_and_pay, produce_args, session_processes_of, spawn_on_journal, Hsm, Run, Workspace,
};

/// certmint with this workspace's journal, an operator name and `extra` variables.
fn run_with(ws: &Workspace, args: &[&str], extra: &[(&str, &str)]) -> Run {
    common::run_on_journal(ws, args, extra)
}

fn run(ws: &Workspace, args: &[&str]) -> Run {
    run_with(ws, args, &[])
}

/// An order of `devices` ÖKC devices (serials FU1000000, FU1000001, …), imported and paid.
fn paid_order(ws: &Workspace, devices: usize) {
    let list: String = (0..devices)
        .map(|i| format!("FU{:08}\n", 10_000_000 + i))
        .collect();
    ws.write("list.txt", list.as_bytes());
    let list = ws.path("list.txt").display().to_string();
    import_and_pay(|args| run(ws, args), "FU", &list, "1", &[]);
}

/// The soft and hard core file size limits of process `pid`, as /proc shows them.
fn core_limits(pid: u32) -> Option<(String, String)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))?;
    let mut fields = line["Max core file size".len()..].split_whitespace();
    Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
}

/// The real user id of process `pid` ("self" for this one).
fn real_uid(pid: &str) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
        .unwrap()
}

/// A CA PIN given through `--ca-pin-env` reaches the `pkcs11-session`
/// children over their pipe only: the variable that holds it is not in
/// their environment (nor is its value under any other name), while the
/// rest of the environment (SOFTHSM2_CONF, which the module needs) is. The
/// children also run with a core size limit of 0.
#[test]
fn session_children_never_inherit_the_variable_holding_the_ca_pin() {
    let ws = Workspace::new();
    let hsm = Hsm::new(&ws, &["ca"], "ALL");
    let (conf, pin) = (hsm.conf(), hsm.pin());
    let env = [
        ("SOFTHSM2_CONF", conf.as_str()),
        ("CERTMINT_TEST_CA_PIN", pin.as_str()),
    ];
    // No pin-source in the URI: the PIN comes from the variable only.
    let key = format!(
        "pkcs11:token=ca;object=issuing-2026?module-path={}",
        common::softhsm_module()
    );
    let pin_env = ["--pin-env", "CERTMINT_TEST_CA_PIN"];
    let mut keygen = vec!["hsm", "keygen", "--key", &key, "--key-type", "p256"];
    keygen.extend_from_slice(&pin_env);
    run_with(&ws, &keygen, &env).ok();
    let mut init = vec!["ca", "init", "--dir", "ca", "--okc-issuing-key", &key];
    init.extend_from_slice(&pin_env);
    run_with(&ws, &init, &env).ok();
    paid_order(&ws, 300);

    let child = spawn_on_journal(
        &ws,
        "test-operator",
        &produce_args("1", &["--ca-pin-env", "CERTMINT_TEST_CA_PIN"]),
        &env,
    );
    let started = Instant::now();
    // (pid, its environment, its core size limits) of each session process.
    type Seen = (u32, Vec<u8>, Option<(String, String)>);
    let mut seen: Vec<Seen> = Vec::new();
    while seen.len() < 2 && started.elapsed() < Duration::from_secs(30) {
        for pid in session_processes_of(child.id()) {
            if seen.iter().any(|(p, _, _)| *p == pid) {
                continue;
            }
            if let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) {
                seen.push((pid, environ, core_limits(pid)));
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Run::from(child.wait_with_output().unwrap()).ok();
    assert_eq!(seen.len(), 2, "two session processes seen");
    for (pid, environ, limits) in &seen {
        let variables: Vec<String> = environ
            .split(|b| *b == 0)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect();
        assert!(
            variables.iter().any(|v| v.starts_with("SOFTHSM2_CONF=")),
            "session {pid}: the environment was read: {variables:?}"
        );
        assert!(
            !variables
                .iter()
                .any(|v| v.starts_with("CERTMINT_TEST_CA_PIN=") || v.ends_with(&format!("={pin}"))),
            "session {pid} inherited the CA PIN: {variables:?}"
        );
        assert_eq!(
            limits.as_ref().map(|(s, h)| (s.as_str(), h.as_str())),
            Some(("0", "0")),
            "session {pid}: core size limit"
        );
    }
}

/// Every certmint process (here the blocking `pkcs11-session` command, as a
/// session child runs it) makes itself non-dumpable and sets its core size
/// limit to 0 as it starts, even when started with an unlimited one. The
/// observable of "non-dumpable": the kernel gives the /proc files of a
/// non-dumpable process to root, so the process runs as a user other than
/// root (`nobody`, through setpriv, when the tests run as root).
#[test]
fn a_certmint_process_cannot_dump_core() {
    let mut command = Command::new("prlimit");
    command.arg("--core=unlimited:unlimited").arg("--");
    if real_uid("self") == 0 {
        command.args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
        ]);
    }
    let mut child = command
        .arg(env!("CARGO_BIN_EXE_certmint"))
        .arg("pkcs11-session")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // prlimit and setpriv exec what they run: the pid becomes certmint's.
    let started = Instant::now();
    let observed = loop {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let owner = std::fs::metadata(format!("/proc/{pid}/status")).map(|m| m.uid());
        let observed = (owner, core_limits(pid));
        let is_certmint = String::from_utf8_lossy(&cmdline).contains("pkcs11-session");
        if is_certmint
            && matches!(&observed, (Ok(0), Some((soft, hard))) if soft == "0" && hard == "0")
            || started.elapsed() > Duration::from_secs(3)
        {
            break (is_certmint, real_uid(&pid.to_string()), observed);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // Closing its stdin ends the session command.
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
    let (is_certmint, uid, (owner, limits)) = observed;
    assert!(is_certmint, "certmint pkcs11-session was started");
    assert_ne!(uid, 0, "certmint runs as a user other than root");
    assert_eq!(
        owner.unwrap(),
        0,
        "/proc/{pid}/status belongs to root: the process is not dumpable"
    );
    assert_eq!(
        limits,
        Some(("0".to_owned(), "0".to_owned())),
        "core size limit (soft, hard)"
    );
}

/// SHA-256 of an audit record exactly as `src/audit.rs` computes it: what
/// someone who can write the database can compute too.
fn record_hash(prev: &[u8], seq: i64, fields: [&str; 5]) -> Vec<u8> {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(b"certmint-audit-v1");
    ctx.update(prev);
    ctx.update(&seq.to_be_bytes());
    for field in fields {
        ctx.update(&(field.len() as u64).to_be_bytes());
        ctx.update(field.as_bytes());
    }
    ctx.finish().as_ref().to_vec()
}

/// Renumbers the audit records 1, 2, 3, … and recomputes every hash and
/// the head: the chain is whole again, as far as the database can tell.
fn rechain(conn: &rusqlite::Connection) {
    type Row = (String, String, String, String, String);
    let rows: Vec<Row> = conn
        .prepare("SELECT at, operator, event, subject, details FROM audit ORDER BY seq")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    conn.execute_batch("DELETE FROM audit; DELETE FROM audit_head;")
        .unwrap();
    let mut prev = vec![0u8; 32];
    let mut seq = 0i64;
    for (at, operator, event, subject, details) in &rows {
        seq += 1;
        let hash = record_hash(&prev, seq, [at, operator, event, subject, details]);
        conn.execute(
            "INSERT INTO audit (seq, at, operator, event, subject, details, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            rusqlite::params![seq, at, operator, event, subject, details, prev, hash],
        )
        .unwrap();
        prev = hash;
    }
    if seq > 0 {
        conn.execute(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2)",
            rusqlite::params![seq, prev],
        )
        .unwrap();
    }
}

/// A produced order of 3 soft devices whose audit log verifies; returns the
/// journal's bytes, to restore before each tampering.
fn produced_journal(ws: &Workspace) -> Vec<u8> {
    paid_order(ws, 3);
    run(
        ws,
        &[
            "okc",
            "produce",
            "--order",
            "1",
            "--ca",
            "ca",
            "--out",
            "out",
            "--workers",
            "1",
        ],
    )
    .ok();
    let intact = run(ws, &["audit", "verify"]);
    assert_eq!(intact.code, 0, "{}", intact.stderr);
    ws.read("journal.sqlite")
}

/// `audit verify` after `tamper` ran on a fresh copy of `original`.
fn verify_after(
    ws: &Workspace,
    original: &[u8],
    tamper: impl FnOnce(&rusqlite::Connection),
) -> Run {
    ws.write("journal.sqlite", original);
    let conn = rusqlite::Connection::open(ws.path("journal.sqlite")).unwrap();
    tamper(&conn);
    drop(conn);
    run(ws, &["audit", "verify"])
}

fn assert_broken(what: &str, out: &Run, says: &str) {
    assert_eq!(
        out.code, 6,
        "{what}: exit code\n{}{}",
        out.stdout, out.stderr
    );
    assert!(
        out.stderr.contains(says),
        "{what}: expected {says:?} in\n{}",
        out.stderr
    );
}

/// Someone who can write the journal database, but not use the audit key
/// beside it, cannot make `audit verify` pass over a log they changed:
/// cutting off the last records together with the head, deleting the head,
/// deleting every record, dropping both audit tables, or rewriting a
/// record and recomputing the whole chain is reported broken (exit 6),
/// against the signed checkpoints. An untouched journal verifies intact
/// (exit 0) and fully anchored.
#[test]
fn tampering_by_a_database_writer_is_caught_by_the_signed_checkpoints() {
    let ws = Workspace::with_ca(&[]);
    let original = produced_journal(&ws);
    let intact = verify_after(&ws, &original, |_| {});
    assert_eq!(intact.code, 0, "{}", intact.stderr);
    assert!(
        intact.stdout.contains("Audit chain intact")
            && intact
                .stdout
                .contains("0 record(s) after it not yet anchored"),
        "{}",
        intact.stdout
    );

    let cut = verify_after(&ws, &original, |conn| {
        conn.execute_batch(
            "DELETE FROM audit WHERE seq > (SELECT MAX(seq) - 3 FROM audit);
             UPDATE audit_head SET seq = (SELECT MAX(seq) FROM audit),
                                   hash = (SELECT hash FROM audit ORDER BY seq DESC LIMIT 1);",
        )
        .unwrap();
    });
    assert_broken(
        "last rows and head cut",
        &cut,
        "but the log has no such record",
    );

    let no_head = verify_after(&ws, &original, |conn| {
        conn.execute_batch("DELETE FROM audit_head;").unwrap();
    });
    assert_broken("head row deleted", &no_head, "head record is missing");

    let emptied = verify_after(&ws, &original, |conn| {
        conn.execute_batch("DELETE FROM audit; DELETE FROM audit_head;")
            .unwrap();
    });
    assert_broken(
        "every row deleted",
        &emptied,
        "but the log has no such record",
    );

    let dropped = verify_after(&ws, &original, |conn| {
        conn.execute_batch("DROP TABLE audit; DROP TABLE audit_head;")
            .unwrap();
    });
    assert_broken(
        "both tables dropped",
        &dropped,
        "but the log has no such record",
    );

    let rewritten = verify_after(&ws, &original, |conn| {
        conn.execute_batch("UPDATE audit SET operator = 'mallory' WHERE seq = 2;")
            .unwrap();
        rechain(conn);
    });
    assert_broken(
        "a record rewritten, chain recomputed",
        &rewritten,
        "the log up to here was rewritten",
    );
}

/// The log is compared with what it describes: a certificate whose audit
/// record was deleted (the chain renumbered and recomputed, so it is whole
/// in itself), or a certificate row deleted behind the log's back, is
/// reported broken (exit 6) and named.
#[test]
fn certificates_and_their_audit_records_must_match() {
    let ws = Workspace::with_ca(&[]);
    let original = produced_journal(&ws);
    let serial = |conn: &rusqlite::Connection| -> String {
        conn.query_row(
            "SELECT serial_hex FROM certificates ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };

    let mut victim = String::new();
    let record_deleted = verify_after(&ws, &original, |conn| {
        victim = serial(conn);
        conn.execute(
            "DELETE FROM audit WHERE event = 'device.certificate-issued' AND details LIKE ?1",
            [format!("certificate {victim} %")],
        )
        .unwrap();
        rechain(conn);
    });
    assert_broken(
        "a certificate's audit record deleted",
        &record_deleted,
        &format!("certificate {victim} is issued but has no audit record of its issue"),
    );

    let row_deleted = verify_after(&ws, &original, |conn| {
        victim = serial(conn);
        conn.execute("DELETE FROM certificates WHERE serial_hex = ?1", [&victim])
            .unwrap();
    });
    assert_broken(
        "a certificate row deleted",
        &row_deleted,
        &format!("records the issue of certificate {victim}, which the journal no longer has"),
    );
}

/// What `audit verify` says about the checkpoints themselves: records after
/// the last checkpoint (a run stopped before it signed one) are "not yet
/// anchored", not broken; a journal with neither checkpoint file nor audit
/// key (written before checkpoints existed) verifies with a plain note; a
/// deleted checkpoint file beside an existing audit key, or a checkpoint
/// line changed without the key, is broken.
#[test]
fn what_verify_says_about_the_checkpoints() {
    let ws = Workspace::with_ca(&[]);
    let original = produced_journal(&ws);
    let checkpoints = ws.path("journal.sqlite.checkpoints");
    let key = ws.path("journal.sqlite.audit-key");
    let lines = String::from_utf8(ws.read("journal.sqlite.checkpoints")).unwrap();
    assert_eq!(
        std::fs::metadata(&key).unwrap().mode() & 0o777,
        0o600,
        "the audit key is readable by its owner only"
    );

    // The last checkpoint never written: the produce run's records are unanchored.
    let mut earlier: Vec<&str> = lines.lines().collect();
    earlier.pop();
    std::fs::write(&checkpoints, earlier.join("\n") + "\n").unwrap();
    let unanchored = verify_after(&ws, &original, |_| {});
    assert_eq!(unanchored.code, 0, "{}", unanchored.stderr);
    assert!(
        unanchored
            .stdout
            .contains("record(s) after it not yet anchored")
            && !unanchored.stdout.contains(" 0 record(s) after it"),
        "{}",
        unanchored.stdout
    );

    // A forged line: the record number changed, the signature kept.
    let forged = lines.replacen(" 1 ", " 2 ", 1);
    std::fs::write(&checkpoints, &forged).unwrap();
    let out = verify_after(&ws, &original, |_| {});
    assert_broken(
        "a checkpoint line changed",
        &out,
        "its signature is not the audit key's",
    );

    // The checkpoint file deleted, the key still there.
    std::fs::remove_file(&checkpoints).unwrap();
    let out = verify_after(&ws, &original, |_| {});
    assert_broken(
        "the checkpoint file deleted",
        &out,
        "the checkpoint file is missing",
    );

    // Neither file: a journal from before checkpoints.
    std::fs::remove_file(&key).unwrap();
    let legacy = verify_after(&ws, &original, |_| {});
    assert_eq!(legacy.code, 0, "{}", legacy.stderr);
    assert!(
        legacy.stdout.contains("no checkpoint file yet"),
        "{}",
        legacy.stdout
    );
}

/// A long production run anchors its records as it goes, not only at its
/// end, and not per device: 600 devices (about 1,200 records) give a
/// checkpoint after the first 1,000 records and one at the end of the run,
/// and the whole log verifies fully anchored.
#[test]
fn a_production_run_signs_checkpoints_as_it_goes_not_per_device() {
    let ws = Workspace::with_ca(&[]);
    paid_order(&ws, 600);
    let before = String::from_utf8(ws.read("journal.sqlite.checkpoints"))
        .unwrap()
        .lines()
        .count();
    run(&ws, &produce_args("1", &[])).ok();
    let lines = String::from_utf8(ws.read("journal.sqlite.checkpoints")).unwrap();
    let during_run: Vec<u64> = lines
        .lines()
        .skip(before)
        .map(|l| l.split(' ').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        during_run.len(),
        2,
        "checkpoints of the run: {during_run:?}"
    );
    assert!(
        during_run[0] >= 1000 + 2 && during_run[0] < during_run[1],
        "{during_run:?}"
    );
    let verified = run(&ws, &["audit", "verify"]).ok();
    assert!(
        verified.stdout.contains(&format!(
            "up to record {}; 0 record(s) after it not yet anchored",
            during_run[1]
        )),
        "{}",
        verified.stdout
    );
}
