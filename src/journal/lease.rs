//! The producers of an order: each holds a lease on it.
//!
//! Every producer of an order (`okc produce`, `hsm provision --order`, the
//! card station) holds a lease on the order while it works: taken in one
//! write transaction before recovery, renewed while it runs, released at
//! the end. A lease is [`Sharing::Shared`] (stations that split the order's
//! devices between them, each claiming chunks of devices: soft keys and
//! cards) or [`Sharing::Exclusive`] (one producer at a time: keys in one
//! HSM token, whose clean-up after a crash must know nobody else writes
//! it). A producer that may not join is refused at once with the holder's
//! name, or waits. A holder that died is taken over (and audited): its
//! process is gone from this same host and boot, or its lease expired
//! unrenewed; the devices it had claimed are free again.
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
    /// The PID namespace the process runs in (`/proc/self/ns/pid`, e.g.
    /// `pid:[4026531836]`); empty when unknown (a lease written before
    /// certmint kept it). Two containers may share a host name and a
    /// kernel, but a pid means something only within its namespace.
    pub pid_namespace: String,
    /// The process id.
    pub pid: u32,
    /// When the process started, in clock ticks since boot (field 22 of
    /// `/proc/PID/stat`); 0 when unknown. With the host, the boot id and the
    /// pid it names one process: a reused pid has another start time.
    pub start_time: u64,
    /// The operator running it.
    pub operator: String,
}

/// Whether other producers may work on an order beside a lease's holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sharing {
    /// One producer at a time.
    Exclusive,
    /// Any number of shared producers, each on the devices it claimed.
    Shared,
}

impl Sharing {
    /// How the journal stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Sharing::Exclusive => "exclusive",
            Sharing::Shared => "shared",
        }
    }
}

impl std::str::FromStr for Sharing {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "exclusive" => Ok(Sharing::Exclusive),
            "shared" => Ok(Sharing::Shared),
            other => Err(format!("unknown lease sharing {other:?}")),
        }
    }
}

/// An order's lease as the journal holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// Who holds it.
    pub holder: LeaseHolder,
    /// Whether others may produce the order beside it.
    pub sharing: Sharing,
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
            pid_namespace: std::fs::read_link("/proc/self/ns/pid")
                .ok()
                .and_then(|link| link.into_os_string().into_string().ok())
                .unwrap_or_default(),
            pid: std::process::id(),
            start_time: process_start_time(std::process::id()).unwrap_or(0),
            operator: operator.to_owned(),
        }
    }

    /// Whether this holder is known to be gone, as seen from `here`: the
    /// same host, and either another boot or no process with its pid in
    /// the same PID namespace. A holder on another host, or in another
    /// namespace (another container), is never judged here: only its
    /// expiry counts. A holder's namespace unknown is taken as the same (a
    /// lease written before namespaces were kept keeps the rule it was
    /// written under); this process's unknown, as another.
    pub fn is_gone_as_seen_from(&self, here: &LeaseHolder) -> bool {
        self.is_gone_given(here, &process_runs)
    }

    /// [`Self::is_gone_as_seen_from`], with `runs` telling whether a
    /// process of this host (pid, start time) runs.
    fn is_gone_given(&self, here: &LeaseHolder, runs: &dyn Fn(u32, u64) -> bool) -> bool {
        if self.host != here.host || self.boot_id.is_empty() || here.boot_id.is_empty() {
            return false;
        }
        if self.boot_id != here.boot_id {
            return true;
        }
        !self.in_another_pid_namespace_than(here) && !runs(self.pid, self.start_time)
    }

    /// Whether this holder's pid may mean nothing at `here`: its PID
    /// namespace differs from this one, or this one is unknown. A holder
    /// whose namespace is unknown (a lease taken before they were kept) is
    /// taken as this one's: it keeps the rule it was taken under.
    fn in_another_pid_namespace_than(&self, here: &LeaseHolder) -> bool {
        !self.pid_namespace.is_empty() && self.pid_namespace != here.pid_namespace
    }

    /// Whether this holder ran on the same host in the same boot and PID
    /// namespace as `here`, so that its process can be asked after.
    fn is_local_to(&self, here: &LeaseHolder) -> bool {
        self.host == here.host
            && !self.boot_id.is_empty()
            && self.boot_id == here.boot_id
            && !self.in_another_pid_namespace_than(here)
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
        self.is_live_at(here, now_ms())
    }

    /// [`Self::is_live_as_seen_from`] with the time `now_ms` taken from the
    /// journal's clock ([`super::Journal::clock_ms`]), which every station
    /// shares: a lease written by a host whose clock runs ahead or behind
    /// is judged by the same clock that wrote its expiry.
    pub fn is_live_at(&self, here: &LeaseHolder, now_ms: i64) -> bool {
        self.is_live_given(here, now_ms, &process_runs)
    }

    /// [`Self::is_live_as_seen_from`] at `now_ms`, with `runs` telling
    /// whether a process of this host runs.
    fn is_live_given(
        &self,
        here: &LeaseHolder,
        now_ms: i64,
        runs: &dyn Fn(u32, u64) -> bool,
    ) -> bool {
        if self.holder.is_local_to(here) {
            return !self.holder.is_gone_given(here, runs);
        }
        self.expires_at_ms >= now_ms
    }
}

/// What a request for an order's lease comes to. The rule is the same for
/// every journal backend: the backend reads the lease row, asks
/// [`decide`], and writes the row (or refuses) in the same transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseDecision {
    /// Nobody holds the lease: take it.
    Take,
    /// The requester holds it already: take it afresh, expiry renewed.
    Renew,
    /// Its holder is gone or let it expire: take it over, audited.
    TakeOver(TakeOverReason),
    /// A live holder has it: refuse ([`super::JournalError::Held`]).
    Refuse,
}

/// Why a lease may be taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeOverReason {
    /// Its holder ran on this host and its process is gone (or the host
    /// rebooted since).
    HolderGone,
    /// Its holder cannot be asked after and did not renew it in time.
    Expired,
}

impl fmt::Display for TakeOverReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TakeOverReason::HolderGone => "its process is gone",
            TakeOverReason::Expired => "its lease expired unrenewed",
        })
    }
}

/// Who may take `current` (the order's lease row, if any) for `requester`
/// at `now_ms`, as seen from the requester's host.
pub fn decide(current: Option<&Lease>, requester: &LeaseHolder, now_ms: i64) -> LeaseDecision {
    decide_given(current, requester, now_ms, &process_runs)
}

/// [`decide`], with `runs` telling whether a process of this host (pid,
/// start time) runs: pure, so that every case is tested.
fn decide_given(
    current: Option<&Lease>,
    requester: &LeaseHolder,
    now_ms: i64,
    runs: &dyn Fn(u32, u64) -> bool,
) -> LeaseDecision {
    let Some(lease) = current else {
        return LeaseDecision::Take;
    };
    if lease.holder.holder_id == requester.holder_id {
        return LeaseDecision::Renew;
    }
    if lease.is_live_given(requester, now_ms, runs) {
        return LeaseDecision::Refuse;
    }
    LeaseDecision::TakeOver(if lease.holder.is_gone_given(requester, runs) {
        TakeOverReason::HolderGone
    } else {
        TakeOverReason::Expired
    })
}

/// What joining an order as one of its producers comes to, given every
/// lease on it that is not released. The rule is the same for every
/// journal backend: the backend reads the rows, asks [`join`], and writes
/// (or refuses) in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinDecision<'a> {
    /// A live lease that keeps the requester out (an exclusive holder, or
    /// any holder when the requester asks for the order alone).
    pub refused_by: Option<&'a Lease>,
    /// Leases whose holders are gone or let them expire: released, their
    /// devices' claims freed, audited.
    pub take_over: Vec<(&'a Lease, TakeOverReason)>,
}

/// Who may join `current` (the order's unreleased leases) as `requester`,
/// sharing as `sharing`, at `now_ms`, as seen from the requester's host.
pub fn join<'a>(
    current: &'a [Lease],
    requester: &LeaseHolder,
    sharing: Sharing,
    now_ms: i64,
) -> JoinDecision<'a> {
    join_given(current, requester, sharing, now_ms, &process_runs)
}

/// [`join`], with `runs` telling whether a process of this host runs.
fn join_given<'a>(
    current: &'a [Lease],
    requester: &LeaseHolder,
    sharing: Sharing,
    now_ms: i64,
    runs: &dyn Fn(u32, u64) -> bool,
) -> JoinDecision<'a> {
    let mut decision = JoinDecision {
        refused_by: None,
        take_over: Vec::new(),
    };
    for lease in current {
        match decide_given(Some(lease), requester, now_ms, runs) {
            LeaseDecision::TakeOver(why) => decision.take_over.push((lease, why)),
            LeaseDecision::Refuse
                if sharing == Sharing::Exclusive || lease.sharing == Sharing::Exclusive =>
            {
                decision.refused_by.get_or_insert(lease);
            }
            // A live shared holder beside a shared requester, or the
            // requester's own lease.
            _ => {}
        }
    }
    decision
}

/// The details of the `order.lease-taken-over` audit record.
pub fn take_over_details(previous: &Lease, requester: &LeaseHolder, why: TakeOverReason) -> String {
    format!(
        "from {} (holder {}, since {}, last renewed {}): {why}; taken by {} (holder {})",
        previous.holder,
        previous.holder.holder_id,
        previous.acquired_at,
        previous.renewed_at,
        requester,
        requester.holder_id
    )
}

/// Whether the holder `holder_id` still holds `current`; if not, who does
/// (for [`super::JournalError::LeaseLost`]).
pub fn held_by(current: Option<&Lease>, holder_id: &str) -> Result<(), String> {
    match current {
        Some(lease) if lease.holder.holder_id == holder_id => Ok(()),
        other => Err(other.map_or_else(|| "nobody".into(), |l| l.holder.to_string())),
    }
}

/// Whether process `pid` runs on this host and, when `start_time` is known
/// (not 0), is the one that started then. A pid that cannot be asked after
/// counts as running: only what is known gone is taken over.
fn process_runs(pid: u32, start_time: u64) -> bool {
    let Ok(signed) = i32::try_from(pid) else {
        return true;
    };
    // Signal 0 checks existence only. EPERM means it exists (another user's).
    if matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(signed), None),
        Err(nix::errno::Errno::ESRCH)
    ) {
        return false;
    }
    // A process with that pid that started at another time reused it.
    !(start_time != 0 && process_start_time(pid).is_some_and(|started| started != start_time))
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
        // Another container on this kernel: its pid means nothing here.
        assert!(here.pid_namespace.starts_with("pid:["), "{here:?}");
        let other_container = LeaseHolder {
            pid_namespace: "pid:[1]".into(),
            pid,
            ..here.clone()
        };
        assert!(!other_container.is_gone_as_seen_from(&here));
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
            sharing: Sharing::Exclusive,
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

    /// Where the lease's holder ran, relative to the requester.
    #[derive(Debug, Clone, Copy)]
    enum Place {
        SameBoot,
        OtherBoot,
        HolderBootUnknown,
        RequesterBootUnknown,
        /// The same host and boot, another container's PID namespace.
        OtherPidNamespace,
        HolderPidNamespaceUnknown,
        RequesterPidNamespaceUnknown,
        OtherHost,
    }

    /// Every lease row a requester can meet, decided by the rule with the
    /// process table given, against the rule stated case by case.
    #[test]
    fn every_lease_case_is_decided_by_the_rule() {
        let now = 1_000_000;
        let requester = LeaseHolder {
            holder_id: "requester".into(),
            host: "station-1".into(),
            boot_id: "boot-a".into(),
            pid_namespace: "pid:[4026531836]".into(),
            pid: 100,
            start_time: 7,
            operator: "op".into(),
        };
        assert_eq!(
            decide_given(None, &requester, now, &|_, _| true),
            LeaseDecision::Take
        );
        use LeaseDecision::*;
        use TakeOverReason::*;
        for own in [true, false] {
            for place in [
                Place::SameBoot,
                Place::OtherBoot,
                Place::HolderBootUnknown,
                Place::RequesterBootUnknown,
                Place::OtherPidNamespace,
                Place::HolderPidNamespaceUnknown,
                Place::RequesterPidNamespaceUnknown,
                Place::OtherHost,
            ] {
                for runs in [true, false] {
                    for expired in [true, false] {
                        let mut here = requester.clone();
                        let mut holder = LeaseHolder {
                            holder_id: if own { "requester" } else { "holder" }.into(),
                            pid: 200,
                            start_time: 9,
                            ..requester.clone()
                        };
                        match place {
                            Place::SameBoot => {}
                            Place::OtherBoot => holder.boot_id = "boot-b".into(),
                            Place::HolderBootUnknown => holder.boot_id = String::new(),
                            Place::RequesterBootUnknown => here.boot_id = String::new(),
                            Place::OtherPidNamespace => {
                                holder.pid_namespace = "pid:[4026532999]".into()
                            }
                            Place::HolderPidNamespaceUnknown => {
                                holder.pid_namespace = String::new()
                            }
                            Place::RequesterPidNamespaceUnknown => {
                                here.pid_namespace = String::new()
                            }
                            Place::OtherHost => holder.host = "station-2".into(),
                        }
                        let lease = Lease {
                            holder,
                            sharing: Sharing::Exclusive,
                            acquired_at: String::new(),
                            renewed_at: String::new(),
                            expires_at_ms: if expired { now - 1 } else { now },
                        };
                        let asked = std::cell::Cell::new(false);
                        let table = |pid: u32, start_time: u64| {
                            assert_eq!(
                                (pid, start_time),
                                (200, 9),
                                "the holder's process is asked after"
                            );
                            asked.set(true);
                            runs
                        };
                        let decided = decide_given(Some(&lease), &here, now, &table);
                        // A namespace not known (a lease written before
                        // they were kept) is taken as this one.
                        let asked_after =
                            matches!(place, Place::SameBoot | Place::HolderPidNamespaceUnknown);
                        let expected = match (own, place, runs, expired) {
                            (true, ..) => Renew,
                            // Its process can be asked after: only that counts.
                            (false, _, true, _) if asked_after => Refuse,
                            (false, _, false, _) if asked_after => TakeOver(HolderGone),
                            // Another boot: the process is gone, but the
                            // lease is kept until it expires.
                            (false, Place::OtherBoot, _, false) => Refuse,
                            (false, Place::OtherBoot, _, true) => TakeOver(HolderGone),
                            // Cannot be asked after: only the expiry counts.
                            (false, _, _, false) => Refuse,
                            (false, _, _, true) => TakeOver(Expired),
                        };
                        assert_eq!(
                            decided, expected,
                            "own {own}, {place:?}, process runs {runs}, expired {expired}"
                        );
                        assert_eq!(
                            asked.get(),
                            !own && asked_after,
                            "the process table is asked only about a holder of this host, boot and PID namespace"
                        );
                    }
                }
            }
        }
    }

    /// A lease is live up to its expiry instant, included.
    #[test]
    fn a_remote_lease_is_live_until_its_expiry_included() {
        let here = LeaseHolder::this_process("op");
        let lease = Lease {
            holder: LeaseHolder {
                holder_id: "other".into(),
                host: "station-2".into(),
                ..here.clone()
            },
            sharing: Sharing::Exclusive,
            acquired_at: String::new(),
            renewed_at: String::new(),
            expires_at_ms: 5_000,
        };
        let runs = |_: u32, _: u64| true;
        assert_eq!(
            decide_given(Some(&lease), &here, 5_000, &runs),
            LeaseDecision::Refuse
        );
        assert_eq!(
            decide_given(Some(&lease), &here, 5_001, &runs),
            LeaseDecision::TakeOver(TakeOverReason::Expired)
        );
    }

    #[test]
    fn a_lease_is_held_by_its_holder_only_and_a_lost_one_names_who_has_it() {
        let here = LeaseHolder::this_process("op");
        let lease = Lease {
            holder: here.clone(),
            sharing: Sharing::Exclusive,
            acquired_at: String::new(),
            renewed_at: String::new(),
            expires_at_ms: 0,
        };
        assert_eq!(held_by(Some(&lease), &here.holder_id), Ok(()));
        assert_eq!(held_by(Some(&lease), "someone-else"), Err(here.to_string()));
        assert_eq!(held_by(None, &here.holder_id), Err("nobody".into()));
    }

    #[test]
    fn a_take_over_names_both_holders_and_why() {
        let here = LeaseHolder::this_process("op");
        let previous = Lease {
            holder: LeaseHolder {
                holder_id: "old-holder".into(),
                host: "station-2".into(),
                ..here.clone()
            },
            sharing: Sharing::Exclusive,
            acquired_at: "2026-01-01T00:00:00Z".into(),
            renewed_at: "2026-01-01T00:00:10Z".into(),
            expires_at_ms: 0,
        };
        let details = take_over_details(&previous, &here, TakeOverReason::Expired);
        assert!(
            details.starts_with("from operator op on host station-2"),
            "{details}"
        );
        assert!(details.contains("(holder old-holder, since 2026-01-01T00:00:00Z, last renewed 2026-01-01T00:00:10Z)"), "{details}");
        assert!(
            details.contains(": its lease expired unrenewed; taken by"),
            "{details}"
        );
        assert!(
            details.ends_with(&format!("(holder {})", here.holder_id)),
            "{details}"
        );
    }

    /// Shared producers join each other; an exclusive one keeps everyone
    /// out and is kept out; the dead are taken over whatever they shared.
    #[test]
    fn shared_producers_join_each_other_and_an_exclusive_one_is_alone() {
        let here = LeaseHolder::this_process("op");
        let other = |id: &str, sharing: Sharing, expires_at_ms: i64| Lease {
            holder: LeaseHolder {
                holder_id: id.into(),
                host: "station-2".into(),
                ..here.clone()
            },
            sharing,
            acquired_at: String::new(),
            renewed_at: String::new(),
            expires_at_ms,
        };
        let runs = |_: u32, _: u64| true;
        let live_shared = [
            other("a", Sharing::Shared, 2_000),
            other("b", Sharing::Shared, 2_000),
        ];
        let joined = join_given(&live_shared, &here, Sharing::Shared, 1_000, &runs);
        assert_eq!(joined.refused_by, None);
        assert!(joined.take_over.is_empty());
        let alone = join_given(&live_shared, &here, Sharing::Exclusive, 1_000, &runs);
        assert_eq!(alone.refused_by, Some(&live_shared[0]));
        let live_exclusive = [other("a", Sharing::Exclusive, 2_000)];
        let kept_out = join_given(&live_exclusive, &here, Sharing::Shared, 1_000, &runs);
        assert_eq!(kept_out.refused_by, Some(&live_exclusive[0]));
        let dead = [
            other("a", Sharing::Exclusive, 500),
            other("b", Sharing::Shared, 2_000),
        ];
        let after_expiry = join_given(&dead, &here, Sharing::Shared, 1_000, &runs);
        assert_eq!(after_expiry.refused_by, None);
        assert_eq!(
            after_expiry.take_over,
            vec![(&dead[0], TakeOverReason::Expired)]
        );
        let mine = [Lease {
            holder: here.clone(),
            ..other("x", Sharing::Exclusive, 500)
        }];
        let renewed = join_given(&mine, &here, Sharing::Exclusive, 1_000, &runs);
        assert_eq!(renewed.refused_by, None);
        assert!(renewed.take_over.is_empty());
    }
}
