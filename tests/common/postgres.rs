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
    /// Its port (the socket's name ends with it).
    pub port: u16,
    /// The watchdog, never waited for: it outlives this process to stop
    /// the server.
    _watchdog: std::process::Child,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static TLS_CLUSTER: OnceLock<TlsCluster> = OnceLock::new();

/// A cluster that also listens on a loopback TCP port and takes TLS there:
/// its certificate (for `localhost`) is signed by a CA made for it.
pub struct TlsCluster {
    pub cluster: Cluster,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    /// The CA that signed the server's certificate (PEM).
    pub ca: PathBuf,
}
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

/// A TCP port nobody listens on now (the kernel's pick).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free loopback port")
}

/// `openssl` with `args` in `dir`; must succeed.
fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn start() -> Cluster {
    start_with(None)
}

/// A cluster whose server also takes TLS connections on a loopback port.
fn start_tls() -> TlsCluster {
    let port = free_port();
    let certs = std::env::temp_dir().join(format!("certmint-pg-tls-{}", std::process::id()));
    std::fs::create_dir_all(&certs).unwrap();
    openssl(
        &certs,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=certmint test CA",
            "-days",
            "2",
        ],
    );
    openssl(
        &certs,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(certs.join("ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        &certs,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext",
        ],
    );
    let cluster = start_with(Some((port, certs.clone())));
    TlsCluster {
        cluster,
        port,
        ca: certs.join("ca.pem"),
    }
}

/// This test process's TLS cluster, started on first use.
pub fn tls_cluster() -> &'static TlsCluster {
    TLS_CLUSTER.get_or_init(start_tls)
}

impl TlsCluster {
    /// The URL of database `name` over TCP, with `options` (`sslmode=…`).
    pub fn tcp_url(&self, host: &str, name: &str, options: &str) -> String {
        format!(
            "postgresql://postgres@{host}:{}/{name}?{options}",
            self.port
        )
    }
}

fn start_with(tls: Option<(u16, PathBuf)>) -> Cluster {
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
    let mut options = format!(
        "-c unix_socket_directories={} -c max_connections=200",
        dir.display()
    );
    match &tls {
        None => options.push_str(" -c listen_addresses=''"),
        Some((port, certs)) => {
            // On the network, TLS or nothing: a connection in the clear is
            // refused by the server itself.
            let hba = data.join("pg_hba.conf");
            let rules = std::fs::read_to_string(&hba).unwrap();
            std::fs::write(
                &hba,
                format!("hostnossl all all 127.0.0.1/32 reject\n{rules}"),
            )
            .unwrap();
            // The server reads its key as its own user, from its folder.
            for file in ["server.pem", "server.key"] {
                std::fs::copy(certs.join(file), dir.join(file)).unwrap();
            }
            if is_root() {
                let status = Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(dir.join("server.pem"))
                    .arg(dir.join("server.key"))
                    .status()
                    .unwrap();
                assert!(status.success());
            }
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                dir.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
            options.push_str(&format!(
                " -c listen_addresses=127.0.0.1 -p {port} -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                dir.join("server.pem").display(),
                dir.join("server.key").display()
            ));
        }
    }
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
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runuser}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir} {certs}",
        pid = std::process::id(),
        runuser = if is_root() { "runuser -u postgres -- " } else { "" },
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
        certs = tls.as_ref().map_or(String::new(), |(_, certs)| certs.display().to_string()),
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
        port: tls.as_ref().map_or(5432, |(port, _)| *port),
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
        format!(
            "postgresql://postgres@/{name}?host={}&port={}",
            self.dir.display(),
            self.port
        )
    }

    /// Runs SQL on database `name` as the superuser, with psql.
    pub fn psql(&self, name: &str, sql: &str) -> String {
        let output = Command::new("psql")
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-p"])
            .arg(self.port.to_string())
            .arg("-h")
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
            .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-p"])
            .arg(self.port.to_string())
            .arg("-h")
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
