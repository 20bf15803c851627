//! One producer per order: the producer lease.
//!
//! Every producer of an order (`okc produce`, `hsm provision --order`, the
//! card station) holds the order's lease while it works: taken in one write
//! transaction before recovery, renewed while it runs, released at the end.
//! A second producer is refused at once with the holder's name, or waits
//! for it. A holder that died is taken over (and audited): its process is
//! gone from this same host and boot, or its lease expired unrenewed.
//!
//! A lease is a journal row, not a file lock, so that a journal shared by
//! several stations (a server database) keeps the same rule.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// Who holds (or asks for) an order's lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseHolder {
    /// Random, one per process: a recycled pid never passes for the
    /// holder, and every part of one process (its early claim, its
    /// production run) holds the lease as the same holder.
    pub holder_id: String,
    /// The host name.
    pub host: String,
    /// The kernel's boot id: a pid means something only within one boot.
    pub boot_id: String,
    /// The process id.
    pub pid: u32,
    /// When the process started, in clock ticks since boot (field 22 of
    /// `/proc/PID/stat`); 0 when unknown. With the host, the boot id and the
    /// pid it names one process: a reused pid has another start time.
    pub start_time: u64,
    /// The operator running it.
    pub operator: String,
}

/// An order's lease as the journal holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// Who holds it.
    pub holder: LeaseHolder,
    /// When it was taken (RFC 3339, UTC).
    pub acquired_at: String,
    /// When it was last renewed (RFC 3339, UTC).
    pub renewed_at: String,
    /// When it expires unless renewed (Unix time, milliseconds).
    pub expires_at_ms: i64,
}

/// How long a lease lasts without renewal: a holder on another host that
/// died is taken over after this.
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// How often a running producer renews its lease (well within [`LEASE_TTL`]).
pub const LEASE_RENEW_EVERY: Duration = Duration::from_secs(10);

impl LeaseHolder {
    /// This process, run by `operator`, with the process's random holder id.
    pub fn this_process(operator: &str) -> Self {
        static HOLDER_ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let id = HOLDER_ID.get_or_init(|| {
            let mut random = [0u8; 8];
            // Without entropy the pid and the time still tell processes apart.
            match aws_lc_rs::rand::fill(&mut random) {
                Ok(()) => crate::pem::hex(&random),
                Err(_) => format!("{}-{}", std::process::id(), now_ms()),
            }
        });
        LeaseHolder {
            holder_id: id.clone(),
            host: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "unknown-host".into()),
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            pid: std::process::id(),
            start_time: process_start_time(std::process::id()).unwrap_or(0),
            operator: operator.to_owned(),
        }
    }

    /// Whether this holder is known to be gone, as seen from `here`: the
    /// same host, and either another boot or no process with its pid. A
    /// holder on another host is never judged here: only its expiry counts.
    pub fn is_gone_as_seen_from(&self, here: &LeaseHolder) -> bool {
        if self.host != here.host || self.boot_id.is_empty() || here.boot_id.is_empty() {
            return false;
        }
        if self.boot_id != here.boot_id {
            return true;
        }
        let Ok(pid) = i32::try_from(self.pid) else {
            return false;
        };
        // Signal 0 checks existence only. EPERM means it exists (another user's).
        if matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
            Err(nix::errno::Errno::ESRCH)
        ) {
            return true;
        }
        // A process with that pid that started at another time reused it.
        self.start_time != 0
            && process_start_time(self.pid).is_some_and(|started| started != self.start_time)
    }

    /// Whether this holder ran on the same host in the same boot as `here`,
    /// so that its process can be asked after.
    fn is_local_to(&self, here: &LeaseHolder) -> bool {
        self.host == here.host && !self.boot_id.is_empty() && self.boot_id == here.boot_id
    }
}

impl Lease {
    /// Whether its holder may still be working, as seen from `here`. On the
    /// same host and boot, as long as its process lives, renewed or not: a
    /// producer stopped with Ctrl-Z, or waiting at a PIN prompt, still holds
    /// signed work in its memory and must not be taken over. A holder on
    /// another host cannot be asked after: its lease must have been renewed
    /// within its time.
    pub fn is_live_as_seen_from(&self, here: &LeaseHolder) -> bool {
        if self.holder.is_local_to(here) {
            return !self.holder.is_gone_as_seen_from(here);
        }
        self.expires_at_ms >= now_ms()
    }
}

impl fmt::Display for LeaseHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "operator {} on host {} (pid {})",
            self.operator, self.host, self.pid
        )
    }
}

/// When process `pid` started, in clock ticks since boot: field 22 of
/// `/proc/PID/stat`, counted after the command name in parentheses (which
/// may itself hold spaces and parentheses).
fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields 3 onwards: state is field 3, so starttime (22) is the 20th.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// The time now, Unix milliseconds.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_process_on_this_host_is_not_gone_and_a_dead_one_is() {
        let here = LeaseHolder::this_process("op");
        assert!(!here.is_gone_as_seen_from(&here));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = LeaseHolder {
            pid,
            ..here.clone()
        };
        assert!(dead.is_gone_as_seen_from(&here));
        let rebooted = LeaseHolder {
            boot_id: "another-boot".into(),
            ..here.clone()
        };
        assert!(rebooted.is_gone_as_seen_from(&here));
        let elsewhere = LeaseHolder {
            host: "elsewhere".into(),
            pid,
            ..here.clone()
        };
        assert!(!elsewhere.is_gone_as_seen_from(&here));
    }

    /// A pid that another process reused does not pass for the holder: the
    /// holder's recorded start time differs from the process's.
    #[test]
    fn a_reused_pid_is_not_the_holder() {
        let here = LeaseHolder::this_process("op");
        assert_ne!(here.start_time, 0, "this process's start time is read");
        let reused = LeaseHolder {
            start_time: here.start_time + 1,
            ..here.clone()
        };
        assert!(reused.is_gone_as_seen_from(&here));
    }

    /// On this host a live holder keeps its lease however long it went
    /// unrenewed (stopped with Ctrl-Z, or at a PIN prompt); a holder on
    /// another host keeps it only until it expires.
    #[test]
    fn a_live_local_holder_keeps_an_expired_lease_and_a_remote_one_does_not() {
        let here = LeaseHolder::this_process("op");
        let expired = |holder: LeaseHolder| Lease {
            holder,
            acquired_at: String::new(),
            renewed_at: String::new(),
            expires_at_ms: now_ms() - 3_600_000,
        };
        assert!(expired(here.clone()).is_live_as_seen_from(&here));
        let remote = LeaseHolder {
            host: "station-2".into(),
            ..here.clone()
        };
        assert!(!expired(remote).is_live_as_seen_from(&here));
    }
}
