//! The audit log: append-only records (time, operator, event, subject,
//! details), each holding the SHA-256 of its predecessor, so that a changed,
//! deleted or reordered record breaks the chain at a place that can be named.
//!
//! The journal stores the records and a head (last sequence number and hash)
//! in the same transaction as the state change they describe; the head
//! catches records cut off the end. Neither stops someone who can write the
//! database from rewriting the whole chain: [`checkpoint`]s, signed with a
//! key outside the database and kept outside it, do (see docs/audit.md).

pub mod checkpoint;
pub mod tables;

use std::collections::HashMap;

use serde::Serialize;

use checkpoint::CheckpointLine;

/// The `prev_hash` of the first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// One audit record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// 1, 2, 3, … without gaps.
    pub seq: i64,
    /// RFC 3339 UTC time.
    pub at: String,
    /// Who.
    pub operator: String,
    /// What happened (`order.paid`, `device.signed`, …).
    pub event: String,
    /// What it happened to (`order 3`, `device FU00022547`, …).
    pub subject: String,
    /// More, as text.
    pub details: String,
    /// The previous record's hash.
    pub prev_hash: Vec<u8>,
    /// This record's hash.
    pub hash: Vec<u8>,
}

/// The hash of a record: SHA-256 over the previous hash and every field,
/// each field length-prefixed so that no two records hash alike by shifting
/// text between fields.
pub fn record_hash(
    prev_hash: &[u8],
    seq: i64,
    at: &str,
    operator: &str,
    event: &str,
    subject: &str,
    details: &str,
) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(b"certmint-audit-v1");
    ctx.update(prev_hash);
    ctx.update(&seq.to_be_bytes());
    for field in [at, operator, event, subject, details] {
        ctx.update(&(field.len() as u64).to_be_bytes());
        ctx.update(field.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// One break in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditProblem {
    /// The record where it shows; 0 for a problem of the log as a whole (a
    /// certificate or order without its record, a bad checkpoint line).
    pub seq: i64,
    /// What is wrong.
    pub problem: String,
}

/// The result of checking the chain.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    /// Records read.
    pub records: u64,
    /// The last record's hash, hex.
    pub head: String,
    /// Every break found; empty when the chain is whole.
    pub problems: Vec<AuditProblem>,
    /// Signed checkpoints read from the checkpoint file.
    pub checkpoints: u64,
    /// The last record a signed checkpoint covers (0: none).
    pub anchored_up_to: i64,
    /// Records after the last checkpoint: checked against each other only,
    /// not yet against anything outside the database.
    pub not_yet_anchored: u64,
    /// What the operator should know that is not a break.
    pub notes: Vec<String>,
}

impl AuditReport {
    /// True when no problem was found.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// `audit verify` found the audit log broken, in this many places.
#[derive(Debug, thiserror::Error)]
#[error("the audit chain is broken in {0} place(s)")]
pub struct AuditBroken(pub usize);

impl AuditBroken {
    /// Always [`AuditBroken`](crate::error::ErrorKind::AuditBroken).
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::AuditBroken
    }
}

/// Checks records in `seq` order against each other and against the
/// journal's head (`head_seq`, `head_hash`).
pub fn verify(
    records: impl Iterator<Item = AuditRecord>,
    head: Option<(i64, Vec<u8>)>,
) -> AuditReport {
    let mut chain = ChainCheck::default();
    for record in records {
        chain.add(record);
    }
    chain.finish(head)
}

/// The chain checked one record at a time, in `seq` order, so that a log of
/// any length is read as a stream: [`verify`] in steps.
#[derive(Debug)]
pub struct ChainCheck {
    problems: Vec<AuditProblem>,
    expected_seq: i64,
    prev: Vec<u8>,
    count: u64,
}

impl Default for ChainCheck {
    fn default() -> Self {
        ChainCheck {
            problems: Vec::new(),
            expected_seq: 1,
            prev: GENESIS.to_vec(),
            count: 0,
        }
    }
}

impl ChainCheck {
    /// Checks the next record against the one before it.
    pub fn add(&mut self, record: AuditRecord) {
        let expected_seq = self.expected_seq;
        self.count += 1;
        if record.seq != expected_seq {
            self.problems.push(AuditProblem {
                seq: expected_seq,
                problem: if record.seq > expected_seq {
                    format!(
                        "records {expected_seq} to {} are missing (deleted)",
                        record.seq - 1
                    )
                } else {
                    format!("record {} appears out of order", record.seq)
                },
            });
        }
        if record.prev_hash != self.prev {
            self.problems.push(AuditProblem {
                seq: record.seq,
                problem: "does not follow the record before it (a record was deleted, changed or reordered)".into(),
            });
        }
        let hash = record_hash(
            &record.prev_hash,
            record.seq,
            &record.at,
            &record.operator,
            &record.event,
            &record.subject,
            &record.details,
        );
        if hash.as_slice() != record.hash.as_slice() {
            self.problems.push(AuditProblem {
                seq: record.seq,
                problem: format!(
                    "was changed after it was written ({} {} {})",
                    record.event, record.subject, record.at
                ),
            });
        }
        self.prev = record.hash;
        self.expected_seq = record.seq + 1;
    }

    /// Checks the chain's end against the journal's head and reports.
    pub fn finish(mut self, head: Option<(i64, Vec<u8>)>) -> AuditReport {
        let expected_seq = self.expected_seq;
        if let Some((head_seq, head_hash)) = head {
            if head_seq != expected_seq - 1 || head_hash != self.prev {
                self.problems.push(AuditProblem {
                    seq: head_seq,
                    problem: format!("the journal's head is record {head_seq} but the chain ends at record {}: records were cut off the end", expected_seq - 1),
                });
            }
        }
        AuditReport {
            records: self.count,
            head: crate::pem::hex(&self.prev),
            problems: self.problems,
            checkpoints: 0,
            anchored_up_to: 0,
            not_yet_anchored: self.count,
            notes: Vec::new(),
        }
    }
}

/// The sequence numbers whose stored hashes [`check_checkpoints`] needs.
pub fn checkpointed_seqs(lines: &[CheckpointLine]) -> impl Iterator<Item = i64> + '_ {
    lines.iter().filter_map(|l| match l {
        CheckpointLine::Signed(c) => Some(c.seq),
        CheckpointLine::Unfinished { .. } | CheckpointLine::Bad { .. } => None,
    })
}

/// Checks a verified chain (`report`) against the signed checkpoints:
/// every checkpoint must name a record of the chain with the hash it
/// signed. `lines` is `None` when there is no checkpoint file;
/// `has_key` says whether the journal has an audit key (so checkpoints
/// were being signed); `hashes` holds the stored hash of each record a
/// checkpoint names.
pub fn check_checkpoints(
    report: &mut AuditReport,
    lines: Option<&[CheckpointLine]>,
    has_key: bool,
    hashes: &HashMap<i64, Vec<u8>>,
) {
    let last_seq = report.records as i64;
    let Some(lines) = lines else {
        if has_key {
            report.problems.push(AuditProblem {
                seq: 0,
                problem: "the checkpoint file is missing, but the journal has an audit key: its signed checkpoints were deleted".into(),
            });
        } else if report.records > 0 {
            report.notes.push(format!(
                "no checkpoint file yet (the journal was written before signed checkpoints): its {} record(s) are checked against each other only; the next command that records something anchors them",
                report.records
            ));
        }
        return;
    };
    for line in lines {
        match line {
            CheckpointLine::Unfinished { line } => report.notes.push(format!(
                "the checkpoint file's last line ({line}) is unfinished (a crash while it was written); it is ignored"
            )),
            CheckpointLine::Bad { line, reason } => report.problems.push(AuditProblem {
                seq: 0,
                problem: format!("checkpoint file line {line}: {reason}"),
            }),
            CheckpointLine::Signed(checkpoint) => {
                report.checkpoints += 1;
                report.anchored_up_to = report.anchored_up_to.max(checkpoint.seq);
                match hashes.get(&checkpoint.seq) {
                    None => report.problems.push(AuditProblem {
                        seq: checkpoint.seq,
                        problem: format!(
                            "the checkpoint signed at {} names record {} but the log has no such record: records were deleted or cut off the end",
                            checkpoint.at, checkpoint.seq
                        ),
                    }),
                    Some(hash) if *hash != checkpoint.head => report.problems.push(AuditProblem {
                        seq: checkpoint.seq,
                        problem: format!(
                            "does not match the checkpoint signed at {}: the log up to here was rewritten",
                            checkpoint.at
                        ),
                    }),
                    Some(_) => {}
                }
            }
        }
    }
    if report.checkpoints == 0 && report.records > 0 {
        report.problems.push(AuditProblem {
            seq: 0,
            problem: "the checkpoint file holds no signed checkpoint, but the log has records: it was emptied".into(),
        });
    }
    report.not_yet_anchored = last_seq.saturating_sub(report.anchored_up_to).max(0) as u64;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRecord> {
        let mut prev = GENESIS.to_vec();
        (1..=n)
            .map(|seq| {
                let (at, event, subject) = (
                    format!("2026-11-21T10:00:{seq:02}Z"),
                    "device.signed",
                    format!("device FU{seq:08}"),
                );
                let hash = record_hash(&prev, seq, &at, "op", event, &subject, "");
                let record = AuditRecord {
                    seq,
                    at,
                    operator: "op".into(),
                    event: event.into(),
                    subject,
                    details: String::new(),
                    prev_hash: prev.clone(),
                    hash: hash.to_vec(),
                };
                prev = hash.to_vec();
                record
            })
            .collect()
    }

    fn head(records: &[AuditRecord]) -> Option<(i64, Vec<u8>)> {
        records.last().map(|r| (r.seq, r.hash.clone()))
    }

    #[test]
    fn an_intact_chain_verifies() {
        let records = chain(5);
        let report = verify(records.clone().into_iter(), head(&records));
        assert!(report.is_intact(), "{:?}", report.problems);
        assert_eq!(report.records, 5);
    }

    #[test]
    fn a_changed_record_is_named() {
        let records = chain(5);
        let h = head(&records);
        let mut changed = records;
        changed[2].operator = "mallory".into();
        let report = verify(changed.into_iter(), h);
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert_eq!(report.problems[0].seq, 3);
        assert!(report.problems[0].problem.contains("was changed"));
    }

    #[test]
    fn a_deleted_record_is_named() {
        let records = chain(5);
        let h = head(&records);
        let mut deleted = records;
        deleted.remove(1);
        let report = verify(deleted.into_iter(), h);
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.seq == 2 && p.problem.contains("records 2 to 2 are missing")),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn reordered_records_are_named() {
        let records = chain(5);
        let h = head(&records);
        let mut reordered = records;
        reordered.swap(1, 3);
        let report = verify(reordered.into_iter(), h);
        assert!(
            report.problems.iter().any(|p| p.seq == 4),
            "{:?}",
            report.problems
        );
    }

    #[test]
    fn records_cut_off_the_end_are_caught_by_the_head() {
        let records = chain(5);
        let h = head(&records);
        let report = verify(records.into_iter().take(3), h);
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.problem.contains("cut off the end")),
            "{:?}",
            report.problems
        );
    }
}
