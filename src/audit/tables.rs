//! The audit log checked against the journal's tables: every manufacturer,
//! order, certificate (intent, issue, voiding, superseding), revocation,
//! CRL and CRL number the tables hold has the audit record that says so,
//! and every such record names a row the tables still hold. A row deleted
//! or added behind the log's back, or a log emptied where certificates
//! exist, is a break.
//!
//! The rules live here, above the journal's storage; a backend only streams
//! what it stores through [`AuditStorage`], so that a log of any length is
//! read once, in order, without being collected.

use std::collections::{HashMap, HashSet};

use super::checkpoint::CheckpointLine;
use super::{AuditProblem, AuditRecord, AuditReport, ChainCheck};
use crate::journal::JournalError;

/// The signed checkpoints kept for a journal.
#[derive(Debug)]
pub struct AuditCheckpoints {
    /// Whether the journal has an audit key (so checkpoints were being
    /// signed).
    pub has_key: bool,
    /// The checkpoint file's lines, `None` when there is no file.
    pub lines: Option<Vec<CheckpointLine>>,
}

/// One row of a table the audit log describes, as stored.
#[derive(Debug, Clone, Copy)]
pub enum AuditedFact<'a> {
    /// A registered manufacturer.
    Manufacturer {
        /// Its VKN or TCKN.
        vkn: &'a str,
    },
    /// A received order.
    Order {
        /// Its number.
        id: i64,
    },
    /// A certificate row: an intent, an issued, superseded or void one.
    Certificate {
        /// Its serial, hex.
        serial: &'a str,
        /// Its stored status (`intent`, `issued`, `superseded`, `void`).
        status: &'a str,
        /// The SHA-256 stored beside it, if any.
        sha256: Option<&'a str>,
        /// The certificate itself, if signed.
        der: Option<&'a [u8]>,
    },
    /// A revocation.
    Revocation {
        /// The revoked certificate's serial, hex.
        serial: &'a str,
        /// Whether it revokes a CA certificate (no certificate row of ours).
        of_ca_certificate: bool,
        /// When (RFC 3339): the CRL entry's revocationDate.
        revoked_at: &'a str,
        /// Why (the reason's name).
        reason: &'a str,
        /// Its invalidity date (RFC 3339), if any.
        invalidity_date: Option<&'a str>,
        /// The issuer's key identifier, hex: whose CRL lists it.
        issuer_key_id: &'a str,
    },
    /// A recorded CRL.
    Crl {
        /// Its issuer's key identifier, hex.
        issuer_key_id: &'a str,
        /// Its CRL number.
        number: i64,
    },
    /// The last CRL number allocated to an issuer.
    CrlNumber {
        /// The issuer's key identifier, hex.
        issuer_key_id: &'a str,
        /// The last number allocated.
        last_allocated: i64,
    },
}

/// What `audit verify` reads from a journal's storage. Every method only
/// reads; none judges.
pub trait AuditStorage {
    /// The audit key's presence and the signed checkpoints kept for the
    /// journal.
    fn audit_checkpoints(&self) -> Result<AuditCheckpoints, JournalError>;

    /// The journal's audit head (last sequence number and its hash), if
    /// it has one.
    fn audit_head(&self) -> Result<Option<(i64, Vec<u8>)>, JournalError>;

    /// Calls `each` with every audit record, in `seq` order.
    fn each_audit_record(&self, each: &mut dyn FnMut(AuditRecord)) -> Result<(), JournalError>;

    /// Calls `each` with every row of the tables the log describes:
    /// manufacturers by VKN, orders by number, certificates, revocations
    /// and CRLs in the order they were recorded, then the CRL numbers by
    /// issuer. The order only decides the order of the problems reported.
    fn each_audited_fact(&self, each: &mut dyn FnMut(AuditedFact<'_>)) -> Result<(), JournalError>;
}

/// Checks a journal's audit log: the chain, its end against the head, the
/// signed checkpoints, and the tables against the records.
pub fn verify_journal<S: AuditStorage + ?Sized>(storage: &S) -> Result<AuditReport, JournalError> {
    let checkpoints = storage.audit_checkpoints()?;
    let wanted: HashSet<i64> = checkpoints
        .lines
        .as_deref()
        .map(|l| super::checkpointed_seqs(l).collect())
        .unwrap_or_default();
    let head = storage.audit_head()?;
    let mut hashes = HashMap::new();
    let mut described = Described::default();
    let mut chain = ChainCheck::default();
    storage.each_audit_record(&mut |record| {
        if wanted.contains(&record.seq) {
            hashes.insert(record.seq, record.hash.clone());
        }
        described.note(&record);
        chain.add(record);
    })?;
    let mut report = chain.finish(head.clone());
    if head.is_none() && report.records > 0 {
        report.problems.push(AuditProblem {
            seq: report.records as i64,
            problem: "the journal's head record is missing: the log's end cannot be checked".into(),
        });
    }
    super::check_checkpoints(
        &mut report,
        checkpoints.lines.as_deref(),
        checkpoints.has_key,
        &hashes,
    );
    storage.each_audited_fact(&mut |fact| described.check(fact, &mut report.problems))?;
    described.finish(&mut report.problems);
    Ok(report)
}

/// What the audit records say exists: manufacturers registered, orders
/// received, certificate intents, issued certificates (with their SHA-256)
/// and voided intents, each with the record that says so.
#[derive(Default)]
struct Described {
    manufacturers: HashMap<String, (i64, bool)>,
    orders: HashMap<i64, (i64, bool)>,
    intents: HashMap<String, (i64, bool)>,
    issued: HashMap<String, (i64, String, bool)>,
    voided: HashMap<String, (i64, bool)>,
    superseded: HashMap<String, (i64, bool)>,
    /// Revocations by audit subject (`certificate S`, `ca-certificate S`),
    /// with the details their record gives.
    revoked: HashMap<String, (i64, String, bool)>,
    /// CRLs recorded, by (audit subject `crl ISSUER`, number).
    crls: HashMap<(String, i64), (i64, bool)>,
    /// The highest CRL number allocated per audit subject `crl ISSUER`.
    allocated: HashMap<String, (i64, i64, bool)>,
}

/// What a revocation row says, to hold against the details of its audit
/// record: `reason R[; invalidity date D][; revoked at T]; issuer key id K; …`
/// (records written before the time was part of them lack `revoked at`).
struct RevocationFacts<'a> {
    revoked_at: &'a str,
    reason: &'a str,
    invalidity_date: Option<&'a str>,
    issuer_key_id: &'a str,
}

impl RevocationFacts<'_> {
    /// The first field the row and the record disagree on, if any.
    fn differs_from(&self, details: &str) -> Option<&'static str> {
        let mut reason = None;
        let mut invalidity = None;
        let mut revoked_at = None;
        let mut issuer = None;
        for part in details.split("; ") {
            if let Some(value) = part.strip_prefix("reason ") {
                reason.get_or_insert(value);
            } else if let Some(value) = part.strip_prefix("invalidity date ") {
                invalidity.get_or_insert(value);
            } else if let Some(value) = part.strip_prefix("revoked at ") {
                revoked_at.get_or_insert(value);
            } else if let Some(value) = part.strip_prefix("issuer key id ") {
                issuer = Some(value);
                // The note follows; it may contain anything.
                break;
            }
        }
        if reason != Some(self.reason) {
            return Some("reason");
        }
        if invalidity != self.invalidity_date {
            return Some("invalidity date");
        }
        if revoked_at.is_some_and(|at| at != self.revoked_at) {
            return Some("revocation time");
        }
        if issuer != Some(self.issuer_key_id) {
            return Some("issuer");
        }
        None
    }
}

/// The number in an audit record's details that begin `CRL number N`.
fn crl_number_in(details: &str) -> Option<i64> {
    details
        .strip_prefix("CRL number ")?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// A problem of the log as a whole (no one record shows it).
fn journal_problem(problems: &mut Vec<AuditProblem>, problem: String) {
    problems.push(AuditProblem { seq: 0, problem });
}

impl Described {
    fn note(&mut self, record: &AuditRecord) {
        let seq = record.seq;
        match record.event.as_str() {
            "manufacturer.registered" => {
                if let Some(vkn) = record.subject.strip_prefix("manufacturer ") {
                    self.manufacturers.insert(vkn.to_owned(), (seq, false));
                }
            }
            "order.received" => {
                if let Some(order) = record
                    .subject
                    .strip_prefix("order ")
                    .and_then(|o| o.parse().ok())
                {
                    self.orders.insert(order, (seq, false));
                }
            }
            "device.intent" => {
                if let Some(serial) = record
                    .details
                    .rsplit_once("; certificate ")
                    .and_then(|(_, rest)| rest.strip_suffix(" linted"))
                {
                    self.intents.insert(serial.to_owned(), (seq, false));
                }
            }
            "device.certificate-issued" => {
                let serial = record
                    .details
                    .strip_prefix("certificate ")
                    .and_then(|rest| rest.split_once(' '))
                    .map(|(serial, _)| serial);
                let sha256 = record.details.rsplit_once("SHA-256 ").map(|(_, h)| h);
                if let (Some(serial), Some(sha256)) = (serial, sha256) {
                    self.issued
                        .insert(serial.to_owned(), (seq, sha256.to_owned(), false));
                }
            }
            "certificate.voided" => {
                if let Some(serial) = record.subject.strip_prefix("certificate ") {
                    self.voided.insert(serial.to_owned(), (seq, false));
                }
            }
            "certificate.superseded" => {
                if let Some(serial) = record.subject.strip_prefix("certificate ") {
                    self.superseded.insert(serial.to_owned(), (seq, false));
                }
            }
            "certificate.revoked" | "ca-certificate.revoked" => {
                self.revoked
                    .insert(record.subject.clone(), (seq, record.details.clone(), false));
            }
            "crl.issued" => {
                if let Some(number) = crl_number_in(&record.details) {
                    self.crls
                        .insert((record.subject.clone(), number), (seq, false));
                }
            }
            "crl.number-allocated" => {
                if let Some(number) = crl_number_in(&record.details) {
                    let highest = self
                        .allocated
                        .entry(record.subject.clone())
                        .or_insert((seq, number, false));
                    if number >= highest.1 {
                        *highest = (seq, number, false);
                    }
                }
            }
            // A failed reissue: the certificate it was to supersede is in
            // force again, superseded no more.
            "certificate.reinstated" => {
                if let Some(serial) = record.subject.strip_prefix("certificate ") {
                    self.superseded.remove(serial);
                }
            }
            _ => {}
        }
    }

    /// Checks one stored row against the records noted.
    fn check(&mut self, fact: AuditedFact<'_>, problems: &mut Vec<AuditProblem>) {
        match fact {
            AuditedFact::Manufacturer { vkn } => match self.manufacturers.get_mut(vkn) {
                Some((_, seen)) => *seen = true,
                None => journal_problem(problems, format!(
                    "manufacturer {vkn} has no audit record of its registration (added, or its record deleted)"
                )),
            },
            AuditedFact::Order { id } => match self.orders.get_mut(&id) {
                Some((_, seen)) => *seen = true,
                None => journal_problem(problems, format!(
                    "order {id} has no audit record of its receipt (added, or its record deleted)"
                )),
            },
            AuditedFact::Certificate {
                serial,
                status,
                sha256,
                der,
            } => self.check_certificate(serial, status, sha256, der, problems),
            AuditedFact::Revocation {
                serial,
                of_ca_certificate,
                revoked_at,
                reason,
                invalidity_date,
                issuer_key_id,
            } => {
                let subject = if of_ca_certificate {
                    format!("ca-certificate {serial}")
                } else {
                    format!("certificate {serial}")
                };
                match self.revoked.get_mut(&subject) {
                    Some((seq, details, seen)) => {
                        *seen = true;
                        let stored = RevocationFacts {
                            revoked_at,
                            reason,
                            invalidity_date,
                            issuer_key_id,
                        };
                        if let Some(what) = stored.differs_from(details) {
                            problems.push(AuditProblem {
                                seq: *seq,
                                problem: format!(
                                    "{subject}: the revocation on record differs from its audit record ({what}): changed outside certmint"
                                ),
                            });
                        }
                    }
                    None => journal_problem(problems, format!(
                        "{subject} is revoked but has no audit record of its revocation (added, or its record deleted)"
                    )),
                }
            }
            AuditedFact::Crl {
                issuer_key_id: issuer,
                number,
            } => match self.crls.get_mut(&(format!("crl {issuer}"), number)) {
                Some((_, seen)) => *seen = true,
                None => journal_problem(problems, format!(
                    "CRL number {number} of issuer {issuer} has no audit record of its issue (added, or its record deleted)"
                )),
            },
            AuditedFact::CrlNumber {
                issuer_key_id: issuer,
                last_allocated: last,
            } => match self.allocated.get_mut(&format!("crl {issuer}")) {
                Some((_, recorded, seen)) if *recorded == last => *seen = true,
                Some((seq, recorded, seen)) => {
                    *seen = true;
                    journal_problem(problems, format!(
                        "issuer {issuer}'s last allocated CRL number is {last}, but audit record {seq} allocated {recorded} last (changed behind the log's back)"
                    ));
                }
                None => journal_problem(problems, format!(
                    "issuer {issuer} has CRL numbers allocated but no audit record of an allocation"
                )),
            },
        }
    }

    /// Checks a certificate row: its intent, and by its status its
    /// superseding, its issue (the very certificate the record names by
    /// SHA-256) or its voiding.
    fn check_certificate(
        &mut self,
        serial: &str,
        status: &str,
        sha256: Option<&str>,
        der: Option<&[u8]>,
        problems: &mut Vec<AuditProblem>,
    ) {
        match self.intents.get_mut(serial) {
            Some((_, seen)) => *seen = true,
            None => journal_problem(problems, format!(
                "certificate {serial} has no audit record of its intent (added, or its record deleted)"
            )),
        }
        if status == "superseded" {
            match self.superseded.get_mut(serial) {
                Some((_, seen)) => *seen = true,
                None => journal_problem(
                    problems,
                    format!(
                    "certificate {serial} is superseded but has no audit record of its superseding"
                ),
                ),
            }
        }
        match status {
            "issued" | "superseded" => {
                let actual = der.map(|der| {
                    crate::pem::hex(
                        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref(),
                    )
                });
                match self.issued.get_mut(serial) {
                    None => journal_problem(problems, format!(
                        "certificate {serial} is issued but has no audit record of its issue (added, or its record deleted)"
                    )),
                    Some((seq, recorded, seen)) => {
                        *seen = true;
                        // Written with or without colons between the bytes.
                        let plain = |h: &str| h.replace(':', "").to_ascii_uppercase();
                        let recorded_plain = plain(recorded);
                        let matches =
                            |h: Option<&str>| h.is_some_and(|h| plain(h) == recorded_plain);
                        if !matches(sha256) || !matches(actual.as_deref()) {
                            journal_problem(problems, format!(
                                "certificate {serial} is not the certificate audit record {seq} says was issued (SHA-256 {recorded})"
                            ));
                        }
                    }
                }
            }
            "void" => match self.voided.get_mut(serial) {
                Some((_, seen)) => *seen = true,
                None => journal_problem(
                    problems,
                    format!("certificate {serial} is void but has no audit record of its voiding"),
                ),
            },
            _ => {}
        }
    }

    /// Reports every record whose row the tables no longer hold, and sorts
    /// the problems by the record that shows them.
    fn finish(self, problems: &mut Vec<AuditProblem>) {
        let mut missing = |kind: &str, what: &str, seq: i64| {
            problems.push(AuditProblem {
                seq,
                problem: format!(
                    "records the {kind} of {what}, which the journal no longer has (deleted)"
                ),
            })
        };
        for (vkn, (seq, seen)) in &self.manufacturers {
            if !seen {
                missing("registration", &format!("manufacturer {vkn}"), *seq);
            }
        }
        for (order, (seq, seen)) in &self.orders {
            if !seen {
                missing("receipt", &format!("order {order}"), *seq);
            }
        }
        for (serial, (seq, seen)) in &self.intents {
            if !seen {
                missing("intent", &format!("certificate {serial}"), *seq);
            }
        }
        for (serial, (seq, _, seen)) in &self.issued {
            if !seen {
                missing("issue", &format!("certificate {serial}"), *seq);
            }
        }
        for (serial, (seq, seen)) in &self.voided {
            if !seen {
                missing("voiding", &format!("certificate {serial}"), *seq);
            }
        }
        for (serial, (seq, seen)) in &self.superseded {
            if !seen {
                missing("superseding", &format!("certificate {serial}"), *seq);
            }
        }
        for (subject, (seq, _, seen)) in &self.revoked {
            if !seen {
                missing("revocation", subject, *seq);
            }
        }
        for ((subject, number), (seq, seen)) in &self.crls {
            if !seen {
                missing("issue", &format!("CRL number {number} ({subject})"), *seq);
            }
        }
        for (subject, (seq, _, seen)) in &self.allocated {
            if !seen {
                missing("CRL number allocation", subject, *seq);
            }
        }
        problems.sort_by_key(|p| p.seq);
    }
}
