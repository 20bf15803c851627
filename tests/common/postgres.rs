//! A throwaway PostgreSQL server for tests: one cluster per test process,
//! made with `initdb` in a temporary folder and started with `pg_ctl` on a
//! private Unix socket (no TCP port to collide with anything), with trust
//! authentication. A watchdog stops it and removes its folder when the test
//! process exits, however it exits. Each test gets a database of its own.
//!
//! As root, the server runs as Debian's `postgres` user (PostgreSQL refuses
//! to run as root).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The running cluster of this test process.
pub struct Cluster {
    /// The folder of its data and its socket.
    pub dir: PathBuf,
    /// The watchdog, never waited for: it outlives this process to stop
    /// the server.
    _watchdog: std::process::Child,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// The newest PostgreSQL server programs Debian's `postgresql` package installed.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is missing: install it with scripts/setup-debian.sh")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no PostgreSQL server under /usr/lib/postgresql: run scripts/setup-debian.sh")
        .1
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program` with `args`, as the `postgres` user when this process is root.
fn as_server_user(program: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(program)
            .args(args);
        command
    } else {
        let mut command = Command::new(program);
        command.args(args);
        command
    }
}

fn start() -> Cluster {
    let bin = bin_dir();
    let dir = std::env::temp_dir().join(format!(
        "certmint-pg-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir(&dir).unwrap();
    if is_root() {
        let status = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success(), "chown {}", dir.display());
    }
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    let output = as_server_user(
        &bin.join("initdb"),
        &[
            "-D",
            data_arg,
            "--auth=trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-locale",
        ],
    )
    .output()
    .expect("run initdb");
    assert!(
        output.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let options = format!(
        "-c listen_addresses='' -c unix_socket_directories={} -c max_connections=200",
        dir.display()
    );
    let log = dir.join("server.log");
    let output = as_server_user(
        &bin.join("pg_ctl"),
        &[
            "-D",
            data_arg,
            "-o",
            &options,
            "-l",
            log.to_str().unwrap(),
            "-w",
            "start",
        ],
    )
    .output()
    .expect("run pg_ctl");
    assert!(
        output.status.success(),
        "pg_ctl start failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    // The watchdog: once this test process is gone, stop the server and
    // remove its folder.
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runuser}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        runuser = if is_root() { "runuser -u postgres -- " } else { "" },
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    let watchdog = Command::new("sh")
        .args(["-c", &stop])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the cluster's watchdog");
    Cluster {
        dir,
        _watchdog: watchdog,
    }
}

/// This test process's cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(start)
}

impl Cluster {
    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgresql://postgres@/{name}?host={}", self.dir.display())
    }

    /// Runs SQL on database `name` as the superuser, with psql.
    pub fn psql(&self, name: &str, sql: &str) -> String {
        let output = Command::new("psql")
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args(["-U", "postgres", "-d", name, "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Like [`Cluster::psql`], but returns the error instead of panicking.
    pub fn try_psql(&self, name: &str, sql: &str) -> Result<String, String> {
        let output = Command::new("psql")
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.dir)
            .args(["-U", "postgres", "-d", name, "-c", sql])
            .output()
            .expect("run psql");
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// A new, empty database; returns its URL.
    pub fn new_database(&self) -> String {
        let name = format!(
            "journal_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::SeqCst)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }
}

/// The database name of a URL made by [`Cluster::url`].
pub fn database_of(url: &str) -> &str {
    url.trim_start_matches("postgresql://postgres@/")
        .split('?')
        .next()
        .unwrap_or_default()
}
