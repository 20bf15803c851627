//! A private PC/SC stack for tests: its own pcscd with one
//! `vsmartcard-vpcd` reader line (two slots), its own socket and ports, and
//! virtual cards run as `certmint card virtual` children. Never touches a
//! system pcscd; everything is stopped and removed on drop.
//!
//! Facts this rests on, checked with pcsc-lite 1.9.9 and vsmartcard-vpcd
//! 3.3 (Debian 12):
//! - one vpcd `DEVICENAME /dev/null:PORT` line makes two readers, "NAME 00
//!   00" and "NAME 00 01", listening on PORT and PORT + 1 (vpcd's
//!   `vicc_max_slots` is 2), on all interfaces;
//! - the pcscd daemon ignores `PCSCLITE_CSOCK_NAME` and always binds
//!   `/run/pcscd/pcscd.comm`, so a second daemon refuses to start; but it
//!   takes a listening socket from systemd socket activation (`LISTEN_FDS`,
//!   `LISTEN_PID`, fd 3), and clients (libpcsclite) do honour
//!   `PCSCLITE_CSOCK_NAME`. So the harness binds a private socket and hands
//!   it to pcscd as fd 3. pcscd still writes (and on exit removes)
//!   `/run/pcscd/pcscd.pid`, which only `pcscd --hotplug` reads;
//! - Debian's pcscd 1.9.9 is built without polkit (its feature list names
//!   none and it links no libpolkit); a pcscd that offers
//!   `--disable-polkit` gets it;
//! - libpcsclite reads `PCSCLITE_CSOCK_NAME` once per process and keeps
//!   it, so in-process PC/SC (the `pcsc` crate) can use one stack per test
//!   process only; child processes get the variable from [`PcscStack::env`].

use std::collections::hash_map::RandomState;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Run;

/// pcscd, as Debian installs it.
pub const PCSCD: &str = "/usr/sbin/pcscd";
/// The vpcd reader driver of Debian's vsmartcard-vpcd.
pub const VPCD_DRIVER: &str = "/usr/lib/pcsc/drivers/serial/libifdvpcd.so";
/// OpenSC's PKCS#11 module.
pub const OPENSC_PKCS11: &str = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";
/// The friendly name of the harness's reader line.
const READER: &str = "certmint vpcd";

/// Panics, telling how to install it, unless `path` exists.
pub fn require_file(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: install {package} with scripts/setup-debian.sh"
    );
}

/// Panics, telling how to install it, unless `program` runs.
pub fn require_program(program: &str, package: &str) {
    let found = Command::new(program)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        found,
        "{program} is missing: install {package} with scripts/setup-debian.sh"
    );
}

/// A running private pcscd with one vpcd reader line (two slots), and the
/// virtual cards started in it.
pub struct PcscStack {
    pub dir: tempfile::TempDir,
    pcscd: Child,
    /// pcscd's own log (its stdout and stderr).
    pcscd_log: PathBuf,
    socket: PathBuf,
    /// The port of slot 0; slot 1 listens on `port + 1`.
    pub port: u16,
    cards: Vec<Child>,
}

impl PcscStack {
    /// Starts pcscd; returns once both vpcd slots listen.
    pub fn start() -> Self {
        require_file(PCSCD, "pcscd");
        require_file(VPCD_DRIVER, "vsmartcard-vpcd");
        let dir = tempfile::tempdir().expect("temporary directory");
        for attempt in 0.. {
            let port = free_port_pair();
            match Self::try_start(&dir, port) {
                Ok((pcscd, socket, pcscd_log)) => {
                    return PcscStack {
                        dir,
                        pcscd,
                        pcscd_log,
                        socket,
                        port,
                        cards: Vec::new(),
                    }
                }
                // Another process took a port between the check and pcscd's
                // bind: try other ports.
                Err(log) if attempt < 5 => {
                    eprintln!("pcscd on port {port} failed, retrying:\n{log}")
                }
                Err(log) => {
                    panic!("pcscd did not start (it needs root, or a writable /run/pcscd):\n{log}")
                }
            }
        }
        unreachable!("the loop returns or panics")
    }

    fn try_start(dir: &tempfile::TempDir, port: u16) -> Result<(Child, PathBuf, PathBuf), String> {
        let conf = dir.path().join(format!("reader.conf.d-{port}"));
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(
            conf.join("vpcd"),
            format!(
                "FRIENDLYNAME \"{READER}\"\nDEVICENAME   /dev/null:{port}\nLIBPATH      {VPCD_DRIVER}\nCHANNELID    {port}\n"
            ),
        )
        .unwrap();
        let socket = dir.path().join(format!("pcscd-{port}.comm"));
        let _ = std::fs::remove_file(&socket);
        let listener = UnixListener::bind(&socket).expect("bind the pcscd socket");
        let fd: OwnedFd = listener.into();
        let log_path = dir.path().join(format!("pcscd-{port}.log"));
        let log = File::create(&log_path).unwrap();
        let mut options = String::from("--foreground --info");
        if help_mentions(PCSCD, "--disable-polkit") {
            options.push_str(" --disable-polkit");
        }
        // Socket activation as systemd does it: the listening socket is fd 3
        // and LISTEN_PID names the daemon, which the shell becomes by exec.
        let script = format!(
            "exec 3<&0 0</dev/null; export LISTEN_FDS=1 LISTEN_PID=$$; exec {PCSCD} {options} -c \"$1\""
        );
        let mut pcscd = Command::new("sh")
            .args(["-c", &script, "sh"])
            .arg(&conf)
            .stdin(Stdio::from(fd))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start pcscd");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let listening = [port, port + 1]
                .iter()
                .all(|p| text.contains(&format!("Waiting for virtual ICC on port {p}")));
            if text.contains("daemon ready") && listening {
                return Ok((pcscd, socket, log_path));
            }
            let failed = text.contains("Could not initialize")
                || text.contains("Error initializing")
                || pcscd.try_wait().ok().flatten().is_some();
            if failed || Instant::now() > deadline {
                let _ = pcscd.kill();
                let _ = pcscd.wait();
                return Err(text);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The variables a PC/SC client needs to reach this pcscd.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![(
            "PCSCLITE_CSOCK_NAME".to_owned(),
            self.socket.display().to_string(),
        )]
    }

    /// The name of reader slot `slot` (0 or 1).
    pub fn reader(&self, slot: u16) -> String {
        format!("{READER} 00 0{slot}")
    }

    /// Starts `certmint card virtual` on slot `slot` with `extra` arguments;
    /// returns its index for [`PcscStack::card_log`]. Waits until pcscd has
    /// seen the card.
    pub fn start_card(&mut self, slot: u16, extra: &[&str]) -> usize {
        self.start_card_until(slot, extra, "card 1: power on")
    }

    /// Starts `certmint card virtual` as [`PcscStack::start_card`] does, and
    /// waits until it has logged `ready` (a mute card is never powered on).
    pub fn start_card_until(&mut self, slot: u16, extra: &[&str], ready: &str) -> usize {
        let index = self.cards.len();
        let log = File::create(self.card_log_path(index)).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_certmint"))
            .args(["card", "virtual", "--port", &(self.port + slot).to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start certmint card virtual");
        self.cards.push(child);
        self.wait_for_log(index, ready, Duration::from_secs(20));
        index
    }

    fn card_log_path(&self, index: usize) -> PathBuf {
        self.dir.path().join(format!("card-{index}.log"))
    }

    /// What card `index` logged so far.
    pub fn card_log(&self, index: usize) -> String {
        std::fs::read_to_string(self.card_log_path(index)).unwrap_or_default()
    }

    /// Waits until card `index` has logged `text`; panics with the log after
    /// `timeout`.
    pub fn wait_for_log(&self, index: usize, text: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.card_log(index).contains(text) {
            assert!(
                Instant::now() < deadline,
                "card {index} did not log {text:?} in {timeout:?}:\n{}",
                self.card_log(index)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for card process `index` to exit; returns its exit code.
    pub fn wait_for_card_exit(&mut self, index: usize, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.cards[index].try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "card {index} still runs after {timeout:?}:\n{}",
                self.card_log(index)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `program` with this stack's environment in the stack's folder.
    pub fn run(&self, program: &str, args: &[&str]) -> Run {
        Run::from(
            Command::new(program)
                .args(args)
                .envs(self.env())
                .current_dir(self.dir.path())
                .output()
                .unwrap_or_else(|e| {
                    panic!("run {program}: {e}; install it with scripts/setup-debian.sh")
                }),
        )
    }

    /// A path inside the stack's folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for PcscStack {
    fn drop(&mut self) {
        // Cards first, so pcscd sees them leave, then pcscd itself.
        for card in &mut self.cards {
            let _ = card.kill();
            let _ = card.wait();
        }
        let _ = self.pcscd.kill();
        let _ = self.pcscd.wait();
        // A failed test shows what the reader and the cards saw, since the
        // folder holding their logs goes with the stack.
        if std::thread::panicking() {
            eprintln!(
                "---- pcscd log ----\n{}",
                std::fs::read_to_string(&self.pcscd_log).unwrap_or_default()
            );
            for index in 0..self.cards.len() {
                eprintln!("---- card {index} log ----\n{}", self.card_log(index));
            }
        }
    }
}

/// Whether `program --help` mentions `option`.
fn help_mentions(program: &str, option: &str) -> bool {
    Command::new(program)
        .arg("--help")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout).contains(option)
                || String::from_utf8_lossy(&o.stderr).contains(option)
        })
        .unwrap_or(false)
}

/// Two consecutive TCP ports free on all interfaces (vpcd binds 0.0.0.0),
/// chosen at random below the ephemeral range so parallel test processes
/// rarely collide; pcscd's own bind is the final check.
fn free_port_pair() -> u16 {
    loop {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        let port = 20_000 + (hasher.finish() % 10_000) as u16 * 2;
        let first = TcpListener::bind(("0.0.0.0", port));
        let second = TcpListener::bind(("0.0.0.0", port + 1));
        if first.is_ok() && second.is_ok() {
            return port;
        }
    }
}

impl PcscStack {
    /// Takes card `index` out of its reader for good: its process ends, its
    /// vpcd connection closes, and pcscd sees the card leave.
    pub fn remove_card(&mut self, index: usize) {
        let card = &mut self.cards[index];
        let _ = card.kill();
        let _ = card.wait();
    }
}
