//! The journal's rules in SQL that SQLite and PostgreSQL both speak: every
//! state change a durable row written before the side effect it authorises,
//! in one write transaction with its hash-chained audit record.
//!
//! The database enforces what must never happen: a device serial appears in
//! one order only, a certificate serial once, and a device has at most one
//! certificate in force, an intent or an issued one (a partial unique index).
//! Each driver ([`super::sqlite`], [`super::postgres`]) keeps its schema
//! text, its settings and its connection; nothing here knows which it is.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use std::collections::HashMap;
use std::time::Duration;

use super::db::{params, BadRow, Database, Optional, Param, Row, WriteTx};
use crate::audit::checkpoint::{self, AuditKey, Checkpoint, CHECKPOINT_EVERY};
use crate::audit::tables::{AuditCheckpoints, AuditStorage, AuditedFact};
use crate::audit::{self, AuditRecord, GENESIS};
use crate::ids::{DeviceName, TaxpayerId};
use crate::journal::lease;
use crate::journal::{
    AuditEntry, CardSecrets, CertificateDetail, CertificateFilter, CertificateRecord,
    CertificateStatus, DeliveryRecord, Device, DeviceState, ImportOutcome, ImportStore, Intent,
    IssuedRecord, Journal, JournalError, Lease, LeaseHolder, NewOrder, OrderId, OrderKind,
    OrderState, OrderSummary, PinLetters, Placed, SoftDelivery, StoredCertificate, StoredParent,
    Target, VerifiedDevice,
};
use crate::journal::{
    CaCertificateIntent, CaCertificateRecord, CaCertificateRevocation, CrlRecord, DeviceClaim,
    IssuedCrl, RevocationRecord, RevocationRequest, RevokeOutcome, Sharing, Station,
};
use crate::journal::{HeldCardSecrets, RecordedKeyFile, StrayCardSecrets};
use crate::order::manufacturer::{Manufacturer, ManufacturerChange, ManufacturerError};
use crate::revocation::{RevocationReason, RevokedEntry};
use crate::signer::KeyType;

/// An order's issued certificates, a page in device order.
pub(super) const ISSUED_PAGE: &str =
    "SELECT d.id, d.serial, c.serial_hex, c.sha256, c.not_before, c.not_after, c.der FROM devices d
     JOIN certificates c ON c.device_id = d.id AND c.status IN ('intent', 'issued') AND c.status = 'issued'
     WHERE d.order_id = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3";

/// An order's intents that never became certificates.
pub(super) const DANGLING_INTENTS: &str =
    "SELECT c.serial_hex, d.id, d.order_id, d.serial, d.state, d.key_id FROM certificates c
     JOIN devices d ON c.device_id = d.id
     WHERE d.order_id = ?1 AND c.status IN ('intent', 'issued') AND c.status = 'intent'
       AND d.claimed_by IS NULL ORDER BY d.id";

/// The order and line of a serial already in the journal, and whether it was certified.
pub(super) const EARLIER_DEVICE: &str = "SELECT d.order_id, d.line_no,
            EXISTS (SELECT 1 FROM certificates c WHERE c.device_id = d.id AND c.status IN ('intent', 'issued') AND c.status = 'issued')
     FROM devices d WHERE d.serial = ?1";

/// A page of the audit records about an order (`audit show --order`).
pub(super) const AUDIT_OF_ORDER: &str = "SELECT a.seq, a.at, a.operator, a.event, a.subject, a.details FROM audit a
     WHERE a.seq > ?1 AND (a.subject = 'order ' || ?2
         OR (substr(a.subject, 1, 7) = 'device '
             AND EXISTS (SELECT 1 FROM devices d WHERE d.serial = substr(a.subject, 8) AND d.order_id = ?3))
         OR (substr(a.subject, 1, 12) = 'certificate '
             AND EXISTS (SELECT 1 FROM certificates c JOIN devices d ON c.device_id = d.id
                         WHERE c.serial_hex = substr(a.subject, 13) AND d.order_id = ?3)))
     ORDER BY a.seq LIMIT ?4";

/// Rows written by one statement at most: a chunk of devices is one
/// statement per table instead of one per device (a statement is a round
/// trip to a database server), within any database's limit on parameters.
const ROWS_PER_STATEMENT: usize = 64;

/// `(?1, ?2, …), (?k+1, …)`: `rows` tuples of `columns` parameters, each
/// followed by the SQL `literals` (`, 'intent'`), if any.
fn value_tuples(rows: usize, columns: usize, literals: &str) -> String {
    (0..rows)
        .map(|row| {
            let tuple: Vec<String> = (1..=columns)
                .map(|column| format!("?{}", row * columns + column))
                .collect();
            format!("({}{literals})", tuple.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `?first, ?first+1, …`: `count` parameters, for `IN (…)`.
fn parameter_list(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("?{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The columns [`device_from_row`] reads.
const DEVICE_COLUMNS: &str = "id, order_id, serial, state, key_id";

/// `state IN ('planned', …)`: the condition of every device state change
/// the journal writes. A device may be recorded in one of `to` from the
/// states [`DeviceState::may_become`] allows, or stay in it: the only legal
/// moves, written once.
fn moving_to(to: &[DeviceState]) -> String {
    let from: Vec<String> = DeviceState::ALL
        .iter()
        .filter(|from| to.iter().any(|to| *from == to || from.may_become(*to)))
        .map(|from| format!("'{}'", from.as_str()))
        .collect();
    format!("state IN ({})", from.join(", "))
}

/// The refusal of a move to `to` of one of `ids` whose state does not allow
/// it, named; `None` when every one of them may make it.
fn illegal_move(
    tx: &mut dyn Database,
    ids: &[i64],
    to: DeviceState,
) -> Result<Option<JournalError>, JournalError> {
    for group in ids.chunks(ROWS_PER_STATEMENT) {
        let values: Vec<Param<'_>> = group.iter().map(|id| Param::Int(*id)).collect();
        let found: Option<(String, String)> = tx.row(
            &format!(
                "SELECT serial, state FROM devices WHERE id IN ({}) AND NOT {} LIMIT 1",
                parameter_list(1, group.len()),
                moving_to(&[to])
            ),
            &values,
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if let Some((device, from)) = found {
            return Ok(Some(JournalError::DeviceMove { device, from, to }));
        }
    }
    Ok(None)
}

/// Refuses, naming the device, when fewer than `ids.len()` devices moved to
/// `to` (`moved`): one of them was in a state that does not allow it.
fn check_moved(
    tx: &mut dyn Database,
    ids: &[i64],
    to: DeviceState,
    moved: u64,
) -> Result<(), JournalError> {
    if usize::try_from(moved).ok() == Some(ids.len()) {
        return Ok(());
    }
    Err(
        illegal_move(tx, ids, to)?.unwrap_or_else(|| JournalError::Database {
            path: tx.location().to_owned(),
            reason: format!("{moved} of {} device(s) moved to {to}", ids.len()),
        }),
    )
}

/// The columns [`lease_from_row`] reads, the first eleven of a row.
pub(super) const LEASE_COLUMNS: &str = "s.holder_id, s.host, s.boot_id, s.pid, s.start_time, \
     s.operator, s.acquired_at, s.renewed_at, s.expires_at_ms, s.sharing, s.pid_namespace";

/// The columns [`manufacturer_from_row`] reads.
const MANUFACTURER_COLUMNS: &str = "vkn, name, prefixes, model_approval, secure_area_audit";

/// An order state change: allowed from `from`, audited as `event`.
struct Transition<'a> {
    /// The state the order moves to; which states it may come from is the
    /// order model's rule ([`OrderState::comes_from`]).
    to: OrderState,
    event: &'a str,
    details: &'a str,
    refused: &'a str,
}

/// The journal, in a SQLite file or on a PostgreSQL server.
pub struct SqlJournal {
    /// The connection. Reads borrow it through the cell (the journal's
    /// reads take `&self`); writes take it mutably.
    pub(super) db: RefCell<Box<dyn Database>>,
    /// Where this station keeps the audit chain's signed checkpoints and
    /// their key: beside a journal file, or a local file named after the
    /// server's journal. Never in the database: whoever can write the
    /// database must not be able to rewrite its anchor.
    anchor: PathBuf,
    /// Whether this process appended audit records (so a checkpoint is due
    /// when it is done with the journal).
    appended: bool,
    /// The last record this process signed a checkpoint for, or the head
    /// when it opened the journal: the periodic checkpoint counts from here.
    checkpointed_seq: i64,
    /// The audit key, once loaded.
    audit_key: Option<AuditKey>,
    /// The producer leases taken through this connection: order → holder id.
    /// Writes of an order's production check it is still theirs.
    leases: HashMap<OrderId, String>,
}

/// Signs a checkpoint for the records this process appended: an error here
/// cannot be reported, and leaves those records "not yet anchored", which
/// `audit verify` says.
impl Drop for SqlJournal {
    fn drop(&mut self) {
        if self.appended {
            let _ = self.checkpoint();
        }
    }
}

impl std::fmt::Debug for SqlJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.db.try_borrow() {
            Ok(db) => write!(f, "SqlJournal({})", db.location()),
            Err(_) => write!(f, "SqlJournal(in use)"),
        }
    }
}

/// The current time, as every recorded time is written ([`crate::timestamp`]).
pub fn now_rfc3339() -> String {
    crate::timestamp::now()
}

/// How an order's VKN or TCKN is stored: its digits, empty for none.
fn stored_taxpayer(id: &Option<TaxpayerId>) -> &str {
    id.as_ref().map_or("", TaxpayerId::as_str)
}

/// An order's VKN or TCKN as stored, read back: empty is none. It was
/// checked when the order was made, under the identifier mode of that
/// run (GİB's test identifiers only in test mode), so any well-formed one
/// is taken back here.
fn read_taxpayer(text: &str) -> Result<Option<TaxpayerId>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    TaxpayerId::parse(text, crate::ids::IdMode::Test)
        .map(Some)
        .map_err(|e| format!("stored VKN/TCKN {text:?}: {e}"))
}

pub(super) fn lease_from_row(row: &Row) -> Result<Lease, BadRow> {
    Ok(Lease {
        holder: LeaseHolder {
            holder_id: row.get(0)?,
            host: row.get(1)?,
            boot_id: row.get(2)?,
            pid_namespace: row.get(10)?,
            pid: row.get(3)?,
            start_time: u64::try_from(row.get::<i64>(4)?).unwrap_or(0),
            operator: row.get(5)?,
        },
        sharing: parse(row.get(9)?)?,
        acquired_at: row.get(6)?,
        renewed_at: row.get(7)?,
        expires_at_ms: row.get(8)?,
    })
}

/// The order's leases not released, in the order they were taken.
fn read_leases(db: &mut dyn Database, order: OrderId) -> Result<Vec<Lease>, JournalError> {
    db.rows(
        &format!(
            "SELECT {LEASE_COLUMNS} FROM station_leases s
             WHERE s.order_id = ?1 AND s.released_at IS NULL ORDER BY s.acquired_at, s.holder_id"
        ),
        params![order.0],
        lease_from_row,
    )
}

/// Takes over the leases `dead` (their holders are gone or let them
/// expire) for `holder` inside `tx`: released, their devices' claims
/// freed, each audited. Returns them.
fn take_over(
    tx: &mut dyn Database,
    order: OrderId,
    holder: &LeaseHolder,
    dead: &[(&Lease, lease::TakeOverReason)],
) -> Result<Vec<Lease>, JournalError> {
    let now = now_rfc3339();
    let mut taken = Vec::with_capacity(dead.len());
    for (lease, why) in dead {
        tx.execute(
            "UPDATE station_leases SET released_at = ?1 WHERE order_id = ?2 AND holder_id = ?3",
            params![now, order.0, lease.holder.holder_id],
        )?;
        let freed = tx.execute(
            "UPDATE devices SET claimed_by = NULL WHERE order_id = ?1 AND claimed_by = ?2",
            params![order.0, lease.holder.holder_id],
        )?;
        append_audit(
            tx,
            &holder.operator,
            "order.lease-taken-over",
            &format!("order {order}"),
            &format!(
                "{}; {freed} device(s) it had claimed are free again",
                lease::take_over_details(lease, holder, *why)
            ),
        )?;
        taken.push((*lease).clone());
    }
    Ok(taken)
}

/// Who holds `order` now that `holder_id`'s lease is gone: the producers
/// with live leases, named, or "nobody".
fn taker(tx: &mut dyn Database, order: OrderId, holder_id: &str) -> Result<String, JournalError> {
    let others: Vec<String> = read_leases(tx, order)?
        .into_iter()
        .filter(|l| l.holder.holder_id != holder_id)
        .map(|l| l.holder.to_string())
        .collect();
    Ok(if others.is_empty() {
        "nobody".to_owned()
    } else {
        others.join(", ")
    })
}

/// When a lease renewed at `now_ms` (the journal's clock) for `ttl` expires.
fn expiry(now_ms: i64, ttl: Duration) -> i64 {
    now_ms.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

/// The clock of the database behind `tx`, as a journal error.
fn clock(tx: &mut dyn Database) -> Result<i64, JournalError> {
    tx.now_ms()
        .map_err(|e| super::db::journal_error(tx.location(), tx.busy_wait_secs(), e))
}

/// The audit chain's head while records are appended in one transaction:
/// read once, advanced per record, written back once. Records appended in
/// one transaction (a batch of devices) chain exactly as if each had been
/// appended in its own. The write transaction holds the journal's one
/// writer lock, so no other station appends in between.
pub(super) struct AuditChain {
    seq: i64,
    hash: Vec<u8>,
}

impl AuditChain {
    pub(super) fn read(tx: &mut dyn Database) -> Result<Self, JournalError> {
        let (seq, hash) = tx
            .row(
                "SELECT seq, hash FROM audit_head WHERE id = 1",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .unwrap_or((0, GENESIS.to_vec()));
        Ok(Self { seq, hash })
    }

    pub(super) fn append(
        &mut self,
        tx: &mut dyn Database,
        at: &str,
        operator: &str,
        event: &str,
        subject: &str,
        details: &str,
    ) -> Result<(), JournalError> {
        self.append_all(
            tx,
            at,
            &[(operator, event, subject.to_owned(), details.to_owned())],
        )
    }

    /// Appends `records` (operator, event, subject, details), all written
    /// `at`, chained in their order, in as few statements as rows allow.
    pub(super) fn append_all(
        &mut self,
        tx: &mut dyn Database,
        at: &str,
        records: &[(&str, &str, String, String)],
    ) -> Result<(), JournalError> {
        for group in records.chunks(ROWS_PER_STATEMENT) {
            let mut rows: Vec<(i64, Vec<u8>, Vec<u8>)> = Vec::with_capacity(group.len());
            for (operator, event, subject, details) in group {
                let seq = self.seq + 1;
                let hash =
                    audit::record_hash(&self.hash, seq, at, operator, event, subject, details);
                rows.push((
                    seq,
                    std::mem::replace(&mut self.hash, hash.to_vec()),
                    hash.to_vec(),
                ));
                self.seq = seq;
            }
            let mut values: Vec<Param<'_>> = Vec::with_capacity(group.len() * 8);
            for ((operator, event, subject, details), (seq, prev_hash, hash)) in
                group.iter().zip(&rows)
            {
                values.extend([
                    Param::Int(*seq),
                    Param::Text(at),
                    Param::Text(operator),
                    Param::Text(event),
                    Param::Text(subject),
                    Param::Text(details),
                    Param::Blob(prev_hash),
                    Param::Blob(hash),
                ]);
            }
            tx.execute(
                &format!(
                    "INSERT INTO audit (seq, at, operator, event, subject, details, prev_hash, hash) VALUES {}",
                    value_tuples(group.len(), 8, "")
                ),
                &values,
            )?;
        }
        Ok(())
    }

    pub(super) fn write(&self, tx: &mut dyn Database) -> Result<(), JournalError> {
        tx.execute(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2) ON CONFLICT(id) DO UPDATE SET seq = ?1, hash = ?2",
            params![self.seq, &self.hash],
        )?;
        Ok(())
    }
}

fn append_audit(
    tx: &mut dyn Database,
    operator: &str,
    event: &str,
    subject: &str,
    details: &str,
) -> Result<(), JournalError> {
    append_audit_at(tx, &now_rfc3339(), operator, event, subject, details)
}

/// Appends one audit record written `at` to the chain, inside `tx`.
pub(super) fn append_audit_at(
    tx: &mut dyn Database,
    at: &str,
    operator: &str,
    event: &str,
    subject: &str,
    details: &str,
) -> Result<(), JournalError> {
    let mut chain = AuditChain::read(tx)?;
    chain.append(tx, at, operator, event, subject, details)?;
    chain.write(tx)
}

/// The key identifier of the CA a TBS certificate names as its signer:
/// its authorityKeyIdentifier's keyIdentifier (the issuing CA's
/// subjectKeyIdentifier). The CRL of that CA lists the certificate.
pub(crate) fn issuer_key_id_of_tbs(tbs: &[u8]) -> Result<Vec<u8>, String> {
    use der::Decode;
    use x509_cert::ext::pkix::AuthorityKeyIdentifier;
    let tbs = x509_cert::TbsCertificate::from_der(tbs)
        .map_err(|e| format!("its TBS certificate does not decode: {e}"))?;
    let (_, aki) = tbs
        .get_extension::<AuthorityKeyIdentifier>()
        .map_err(|e| format!("its authorityKeyIdentifier does not decode: {e}"))?
        .ok_or("its TBS certificate names no authorityKeyIdentifier")?;
    aki.key_identifier
        .map(|id| id.as_bytes().to_vec())
        .ok_or_else(|| "its authorityKeyIdentifier has no keyIdentifier".to_owned())
}

/// A revocation to record inside a transaction.
struct NewRevocation<'a> {
    serial_hex: &'a str,
    issuer_key_id_hex: &'a str,
    /// The certificate row; `None` for an issuing CA certificate.
    certificate_id: Option<i64>,
    reason: RevocationReason,
    invalidity_date: Option<String>,
    /// Why, in words, for the audit record.
    note: &'a str,
}

impl NewRevocation<'_> {
    /// The audit record's event and subject: the certificate, or the
    /// issuing CA certificate (no certificate row: its serial is of the
    /// root's numbering).
    fn audit_event_and_subject(&self) -> (&'static str, String) {
        match self.certificate_id {
            Some(_) => (
                "certificate.revoked",
                format!("certificate {}", self.serial_hex),
            ),
            None => (
                "ca-certificate.revoked",
                format!("ca-certificate {}", self.serial_hex),
            ),
        }
    }
}

/// The revocation of `serial_hex` by `issuer_key_id_hex`, if recorded.
fn read_revocation(
    db: &mut dyn Database,
    issuer_key_id_hex: &str,
    serial_hex: &str,
) -> Result<Option<RevocationRecord>, JournalError> {
    db.row(
        "SELECT revoked_at, reason, invalidity_date, operator FROM revocations
         WHERE issuer_key_id = ?1 AND serial_hex = ?2",
        params![issuer_key_id_hex, serial_hex],
        revocation_from_row,
    )
}

fn revocation_from_row(row: &Row) -> Result<RevocationRecord, BadRow> {
    revocation_at(row, 0)
}

/// A revocation (revoked at, reason, invalidity date, operator) from
/// column `first` on.
fn revocation_at(row: &Row, first: usize) -> Result<RevocationRecord, BadRow> {
    Ok(RevocationRecord {
        revoked_at: row.get(first)?,
        reason: row
            .get::<String>(first + 1)?
            .parse()
            .map_err(|e: crate::revocation::UnknownReason| BadRow(e.to_string()))?,
        invalidity_date: row.get(first + 2)?,
        operator: row.get(first + 3)?,
    })
}

/// Records `revocation` inside `tx` with its audit record (`certificate.revoked`
/// or `ca-certificate.revoked`); a certificate revoked already is left as it
/// is and reported.
fn insert_revocation(
    tx: &mut dyn Database,
    revocation: &NewRevocation<'_>,
    operator: &str,
) -> Result<RevokeOutcome, JournalError> {
    if let Some(earlier) = read_revocation(tx, revocation.issuer_key_id_hex, revocation.serial_hex)?
    {
        return Ok(RevokeOutcome::AlreadyRevoked {
            when: earlier.revoked_at,
            reason: earlier.reason,
        });
    }
    let now = now_rfc3339();
    tx.execute(
        "INSERT INTO revocations (serial_hex, issuer_key_id, certificate_id, revoked_at, reason, invalidity_date, operator)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            revocation.serial_hex,
            revocation.issuer_key_id_hex,
            revocation.certificate_id,
            &now,
            revocation.reason.name(),
            &revocation.invalidity_date,
            operator
        ],
    )?;
    let (event, subject) = revocation.audit_event_and_subject();
    let invalidity = revocation
        .invalidity_date
        .as_deref()
        .map_or(String::new(), |d| format!("; invalidity date {d}"));
    append_audit(
        tx,
        operator,
        event,
        &subject,
        &format!(
            "reason {}{invalidity}; revoked at {now}; issuer key id {}; {}",
            revocation.reason, revocation.issuer_key_id_hex, revocation.note
        ),
    )?;
    Ok(RevokeOutcome::Revoked { revoked_at: now })
}

/// Revokes the certificate row `certificate_id` (serial `serial_hex`, TBS
/// `tbs`) as superseded inside `tx`: it may have been signed and will never
/// be the device's certificate.
fn revoke_superseded(
    tx: &mut dyn Database,
    certificate_id: i64,
    serial_hex: &str,
    tbs: &[u8],
    note: &str,
    operator: &str,
) -> Result<(), JournalError> {
    let issuer = issuer_key_id_of_tbs(tbs).map_err(|reason| JournalError::Database {
        path: tx.location().to_owned(),
        reason: format!("certificate {serial_hex}: {reason}"),
    })?;
    insert_revocation(
        tx,
        &NewRevocation {
            serial_hex,
            issuer_key_id_hex: &crate::pem::hex(&issuer),
            certificate_id: Some(certificate_id),
            reason: RevocationReason::Superseded,
            invalidity_date: None,
            note,
        },
        operator,
    )?;
    Ok(())
}

/// Who the audit log names for what a schema migration records.
const MIGRATION_OPERATOR: &str = "certmint (journal schema migration)";

/// The rows a schema migration from `version` must change, inside the
/// migration's transaction: a journal migrated to revocations has every
/// certificate that may have been signed and will never be a device's
/// certificate revoked as superseded (voided intents, and certificates a
/// completed reissue superseded).
pub(super) fn fix_migrated_data(tx: &mut dyn Database, version: i64) -> Result<(), JournalError> {
    if version >= super::REVOCATION_VERSION {
        return Ok(());
    }
    let unaccounted: Vec<(i64, String, Vec<u8>, String)> = tx.rows(
        "SELECT c.id, c.serial_hex, c.tbs, c.status FROM certificates c
         WHERE (c.status = 'void'
                OR (c.status = 'superseded' AND EXISTS (SELECT 1 FROM certificates n
                    WHERE n.serial_hex = c.superseded_by AND n.status IN ('issued', 'superseded'))))
           AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.certificate_id = c.id)
         ORDER BY c.id",
        params![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )?;
    for (id, serial, tbs, status) in unaccounted {
        let note = if status == "void" {
            "its intent was voided: a signature, if made, never became a delivered certificate"
        } else {
            "a reissue superseded it"
        };
        revoke_superseded(tx, id, &serial, &tbs, note, MIGRATION_OPERATOR)?;
    }
    Ok(())
}

fn parse<T: std::str::FromStr<Err = String>>(value: String) -> Result<T, BadRow> {
    value.parse().map_err(BadRow)
}

fn manufacturer_from_row(row: &Row) -> Result<Manufacturer, BadRow> {
    let prefixes: String = row.get(2)?;
    Ok(Manufacturer {
        vkn: row.get(0)?,
        name: row.get(1)?,
        prefixes: prefixes.split(',').map(str::to_owned).collect(),
        model_approval: row.get(3)?,
        secure_area_audit: row.get(4)?,
    })
}

fn read_manufacturer(
    db: &mut dyn Database,
    vkn: &str,
) -> Result<Option<Manufacturer>, JournalError> {
    db.row(
        &format!("SELECT {MANUFACTURER_COLUMNS} FROM manufacturers WHERE vkn = ?1"),
        params![vkn],
        manufacturer_from_row,
    )
}

/// A device from [`DEVICE_COLUMNS`] starting at column `first`.
fn device_at(row: &Row, first: usize) -> Result<Device, BadRow> {
    Ok(Device {
        id: row.get(first)?,
        order: OrderId(row.get(first + 1)?),
        name: DeviceName::parse(&row.get::<String>(first + 2)?)
            .map_err(|e| BadRow(e.to_string()))?,
        state: parse(row.get(first + 3)?)?,
        key_id: row.get(first + 4)?,
    })
}

fn device_from_row(row: &Row) -> Result<Device, BadRow> {
    device_at(row, 0)
}

impl SqlJournal {
    /// Opens (creating if needed) the SQLite journal at `path`.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let mut db = super::sqlite::SqliteDb::open(path)?;
        db.migrate(&mut fix_migrated_data)?;
        // The -wal and -shm files exist now.
        super::sqlite::SqliteDb::make_private(path)?;
        Self::with(Box::new(db), path.to_path_buf())
    }

    /// The journal on `db`, its schema current, with its checkpoints at `anchor`.
    pub(super) fn with(db: Box<dyn Database>, anchor: PathBuf) -> Result<Self, JournalError> {
        let mut db = db;
        let checkpointed_seq = Self::head(db.as_mut())?.map_or(0, |(seq, _)| seq);
        Ok(Self {
            db: RefCell::new(db),
            anchor,
            appended: false,
            checkpointed_seq,
            audit_key: None,
            leases: HashMap::new(),
        })
    }

    /// Notes that audit records were appended through the journal's
    /// connection: a checkpoint is signed when the journal is dropped.
    pub(super) fn mark_appended(&mut self) {
        self.appended = true;
    }

    /// Where the journal is (a file, or a server address without its password).
    pub fn location(&self) -> String {
        match self.db.try_borrow() {
            Ok(db) => db.location().to_owned(),
            Err(_) => "the journal".to_owned(),
        }
    }

    /// The connection, for a read (the journal's reads take `&self`). A
    /// read started from inside another's callback is refused, not a panic.
    fn reader(&self) -> Result<std::cell::RefMut<'_, Box<dyn Database>>, JournalError> {
        self.db
            .try_borrow_mut()
            .map_err(|_| JournalError::Database {
                path: "the journal".to_owned(),
                reason: "a read of the journal was started while another was in progress"
                    .to_owned(),
            })
    }

    fn head(db: &mut dyn Database) -> Result<Option<(i64, Vec<u8>)>, JournalError> {
        db.row(
            "SELECT seq, hash FROM audit_head WHERE id = 1",
            params![],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// Signs a checkpoint of the audit chain's committed head with the
    /// journal's audit key (made on first use) and appends it to the
    /// checkpoint file beside the journal. Returns the record it covers,
    /// `None` when the log is empty.
    pub fn checkpoint(&mut self) -> Result<Option<i64>, JournalError> {
        let Some((seq, head)) = Self::head(self.db.get_mut().as_mut())? else {
            return Ok(None);
        };
        let key = match self.audit_key.take() {
            Some(key) => key,
            None => AuditKey::load_or_create(&self.anchor)?,
        };
        let written = checkpoint::append(
            &self.anchor,
            &key,
            &Checkpoint {
                seq,
                head,
                at: now_rfc3339(),
            },
        );
        self.audit_key = Some(key);
        written?;
        self.checkpointed_seq = seq;
        self.appended = false;
        Ok(Some(seq))
    }

    /// After a commit that appended audit records: a checkpoint every
    /// [`CHECKPOINT_EVERY`] records, the rest when the journal is dropped.
    fn audit_committed(&mut self) -> Result<(), JournalError> {
        self.appended = true;
        let seq = Self::head(self.db.get_mut().as_mut())?.map_or(0, |(seq, _)| seq);
        if seq - self.checkpointed_seq >= CHECKPOINT_EVERY {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Refuses a production write of `order` when this connection took a
    /// lease on the order and it was taken over since (another producer
    /// judged this one dead).
    fn check_own_lease(
        leases: &HashMap<OrderId, String>,
        tx: &mut dyn Database,
        order: OrderId,
    ) -> Result<(), JournalError> {
        let Some(mine) = leases.get(&order) else {
            return Ok(());
        };
        let live: Option<bool> = tx.row(
            "SELECT released_at IS NULL FROM station_leases WHERE order_id = ?1 AND holder_id = ?2",
            params![order.0, mine],
            |r| r.get(0),
        )?;
        if live == Some(true) {
            return Ok(());
        }
        let by = taker(tx, order, mine)?;
        Err(JournalError::LeaseLost { order, by })
    }

    /// Refuses a production write of `devices` when this connection took a
    /// lease on their order and it was taken over since, or one of them is
    /// not claimed by it (a producer that comes back after its lease was
    /// taken over never writes over another's work).
    fn check_claims(
        leases: &HashMap<OrderId, String>,
        tx: &mut dyn Database,
        devices: &[&Device],
    ) -> Result<(), JournalError> {
        let mut orders: Vec<OrderId> = devices.iter().map(|d| d.order).collect();
        orders.sort_unstable_by_key(|o| o.0);
        orders.dedup();
        for order in orders {
            Self::check_own_lease(leases, tx, order)?;
            let Some(mine) = leases.get(&order) else {
                continue;
            };
            let of_order: Vec<&&Device> = devices.iter().filter(|d| d.order == order).collect();
            for group in of_order.chunks(ROWS_PER_STATEMENT) {
                let mut values = vec![Param::Text(mine)];
                values.extend(group.iter().map(|d| Param::Int(d.id)));
                let claimed: i64 = tx.query_row(
                    &format!(
                        "SELECT COUNT(*) FROM devices WHERE claimed_by = ?1 AND id IN ({})",
                        parameter_list(2, group.len())
                    ),
                    &values,
                    |r| r.get(0),
                )?;
                if usize::try_from(claimed).ok() == Some(group.len()) {
                    continue;
                }
                // Which one: named in the refusal.
                for device in group {
                    let claimed_by: Option<String> = tx.query_row(
                        "SELECT claimed_by FROM devices WHERE id = ?1",
                        params![device.id],
                        |r| r.get(0),
                    )?;
                    if claimed_by.as_deref() != Some(mine.as_str()) {
                        return Err(JournalError::LeaseLost {
                            order,
                            by: format!(
                                "another producer (device {} is no longer claimed by this one)",
                                device.name
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn order_state(
        tx: &mut dyn Database,
        order: OrderId,
    ) -> Result<Option<OrderState>, JournalError> {
        tx.row(
            "SELECT state FROM orders WHERE id = ?1",
            params![order.0],
            |r| parse(r.get(0)?),
        )
    }

    fn set_order_state(
        &mut self,
        order: OrderId,
        change: Transition<'_>,
        operator: &str,
    ) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        Self::change_order_state(&mut *tx, order, change, operator)?;
        tx.commit()?;
        // Only marked, never a periodic checkpoint here: a failed checkpoint
        // must not turn a committed state change into a reported failure.
        self.appended = true;
        Ok(())
    }

    /// An order state change inside `tx`, for callers that write the rows
    /// that go with it in the same transaction.
    fn change_order_state(
        tx: &mut dyn Database,
        order: OrderId,
        change: Transition<'_>,
        operator: &str,
    ) -> Result<(), JournalError> {
        let Transition {
            to,
            event,
            details,
            refused,
        } = change;
        let state = Self::order_state(tx, order)?.ok_or(JournalError::NoOrder(order))?;
        if !state.may_become(to) {
            return Err(JournalError::WrongState {
                order,
                state,
                refused: refused.to_owned(),
            });
        }
        tx.execute(
            "UPDATE orders SET state = ?1 WHERE id = ?2",
            params![to.as_str(), order.0],
        )?;
        append_audit(tx, operator, event, &format!("order {order}"), details)
    }
}

/// What an import stores, inside its transaction (see
/// [`crate::order::import`] for its rules).
struct SqlImport<'a> {
    tx: &'a mut dyn Database,
}

impl ImportStore for SqlImport<'_> {
    fn parent(&mut self, order: OrderId) -> Result<Option<StoredParent>, JournalError> {
        let found: Option<(String, String)> = self.tx.row(
            "SELECT manufacturer_vkn, kind FROM orders WHERE id = ?1",
            params![order.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let Some((taxpayer, kind)) = found else {
            return Ok(None);
        };
        let bad = |reason: String| JournalError::Database {
            path: self.tx.location().to_owned(),
            reason: format!("order {order}: {reason}"),
        };
        Ok(Some(StoredParent {
            taxpayer: read_taxpayer(&taxpayer).map_err(bad)?,
            kind: kind.parse().map_err(bad)?,
        }))
    }

    fn insert_order(
        &mut self,
        order: &NewOrder,
        parent: Option<OrderId>,
    ) -> Result<OrderId, JournalError> {
        let prefixes = order.prefixes.join(",");
        let key_type = order.key_type.to_string();
        let now = now_rfc3339();
        self.tx
            .query_row(
                "INSERT INTO orders (kind, manufacturer, manufacturer_vkn, prefixes, parent_order, target, key_type, state, source, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'received', ?8, ?9) RETURNING id",
                params![
                    order.kind.as_str(),
                    &order.manufacturer,
                    stored_taxpayer(&order.manufacturer_vkn),
                    &prefixes,
                    parent.map(|p| p.0),
                    order.target.as_str(),
                    &key_type,
                    &order.source,
                    &now
                ],
                |r| r.get(0),
            )
            .map(OrderId)
            .map_err(JournalError::from)
    }

    fn place_device(
        &mut self,
        order: OrderId,
        serial: &str,
        line: usize,
    ) -> Result<Placed, JournalError> {
        // The serial may be a device already (devices.serial is unique):
        // nothing is inserted then, and the earlier device is reported.
        let inserted = self.tx.execute(
            "INSERT INTO devices (order_id, serial, line_no, state) VALUES (?1, ?2, ?3, 'planned')
             ON CONFLICT (serial) DO NOTHING",
            params![order.0, serial, i64::try_from(line).unwrap_or(i64::MAX)],
        )?;
        if inserted == 1 {
            return Ok(Placed::New);
        }
        let (other, other_line, certified): (i64, i64, bool) =
            self.tx.query_row(EARLIER_DEVICE, params![serial], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?;
        Ok(Placed::Taken {
            order: OrderId(other),
            line: usize::try_from(other_line).unwrap_or(usize::MAX),
            certified,
        })
    }
}

impl Journal for SqlJournal {
    fn in_import_transaction(
        &mut self,
        operator: &str,
        import: &mut dyn FnMut(&mut dyn ImportStore) -> Result<ImportOutcome, JournalError>,
    ) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        let outcome = import(&mut SqlImport { tx: &mut *tx })?;
        match outcome {
            ImportOutcome::Undo => {
                tx.rollback()?;
                Ok(())
            }
            ImportOutcome::Keep { order, details } => {
                append_audit(
                    &mut *tx,
                    operator,
                    "order.received",
                    &format!("order {order}"),
                    &details,
                )?;
                tx.commit()?;
                self.audit_committed()
            }
        }
    }
    fn cancel_order(&mut self, order: OrderId, operator: &str) -> Result<u64, JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        // A certificate on record holds its device: such an order is not
        // cancelled (its devices and their certificates stay on record).
        let certified: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM certificates c JOIN devices d ON c.device_id = d.id WHERE d.order_id = ?1",
                params![order.0],
                |r| r.get(0),
            )
            ?;
        if certified > 0 {
            let state = Self::order_state(&mut *tx, order)?.ok_or(JournalError::NoOrder(order))?;
            return Err(JournalError::WrongState {
                order,
                state,
                refused: format!(
                    "{certified} certificate(s) of its devices are on record, and a certificate on record is never deleted"
                ),
            });
        }
        let freed = tx.execute(
            "INSERT INTO cancelled_devices (order_id, serial, line_no)
                 SELECT order_id, serial, line_no FROM devices WHERE order_id = ?1 ORDER BY id",
            params![order.0],
        )?;
        let details = format!("{freed} serial(s) freed for another order");
        Self::change_order_state(
            &mut *tx,
            order,
            Transition {
                to: OrderState::Cancelled,
                event: "order.cancelled",
                details: &details,
                refused: "only an unpaid (received) order can be cancelled; after payment there is no cancellation or refund",
            },
            operator,
        )?;
        tx.execute("DELETE FROM devices WHERE order_id = ?1", params![order.0])?;
        tx.commit()?;
        self.audit_committed()?;
        Ok(freed)
    }

    fn register_manufacturer(
        &mut self,
        manufacturer: &Manufacturer,
        operator: &str,
    ) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        if let Some(registered) = read_manufacturer(&mut *tx, &manufacturer.vkn)? {
            return Err(ManufacturerError::AlreadyRegistered {
                vkn: registered.vkn,
                name: registered.name,
            }
            .into());
        }
        tx.execute(
            "INSERT INTO manufacturers (vkn, name, prefixes, model_approval, secure_area_audit, registered_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                manufacturer.vkn,
                manufacturer.name,
                manufacturer.prefixes.join(","),
                manufacturer.model_approval,
                manufacturer.secure_area_audit,
                now_rfc3339()
            ],
        )
        ?;
        append_audit(
            &mut *tx,
            operator,
            "manufacturer.registered",
            &format!("manufacturer {}", manufacturer.vkn),
            &manufacturer.describe(),
        )?;
        tx.commit()?;
        self.audit_committed()
    }

    fn manufacturer(&self, vkn: &str) -> Result<Option<Manufacturer>, JournalError> {
        read_manufacturer(self.reader()?.as_mut(), vkn)
    }

    fn manufacturers(&self) -> Result<Vec<Manufacturer>, JournalError> {
        self.reader()?.rows(
            "SELECT * FROM manufacturers ORDER BY vkn",
            params![],
            manufacturer_from_row,
        )
    }

    fn change_manufacturer(
        &mut self,
        vkn: &str,
        change: &ManufacturerChange,
        today: time::Date,
        operator: &str,
    ) -> Result<(Manufacturer, Manufacturer), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        let before =
            read_manufacturer(&mut *tx, vkn)?.ok_or_else(|| ManufacturerError::NotRegistered {
                vkn: vkn.to_owned(),
            })?;
        let after = before.changed(change, today)?;
        tx.execute(
            "UPDATE manufacturers SET name = ?2, prefixes = ?3, model_approval = ?4, secure_area_audit = ?5, changed_at = ?6
             WHERE vkn = ?1",
            params![
                vkn,
                after.name,
                after.prefixes.join(","),
                after.model_approval,
                after.secure_area_audit,
                now_rfc3339()
            ],
        )
        ?;
        append_audit(
            &mut *tx,
            operator,
            "manufacturer.changed",
            &format!("manufacturer {vkn}"),
            &before.describe_change(&after),
        )?;
        tx.commit()?;
        self.audit_committed()?;
        Ok((before, after))
    }

    fn mark_paid(&mut self, order: OrderId, operator: &str) -> Result<(), JournalError> {
        self.set_order_state(
            order,
            Transition {
                to: OrderState::Paid,
                event: "order.paid",
                details: "",
                refused: "only a received order can be marked paid",
            },
            operator,
        )?;
        let now = now_rfc3339();
        self.reader()?.execute(
            "UPDATE orders SET paid_at = ?1, paid_by = ?2 WHERE id = ?3",
            params![now, operator, order.0],
        )?;
        Ok(())
    }

    fn order(&self, order: OrderId) -> Result<OrderSummary, JournalError> {
        self.orders_where("WHERE o.id = ?1", params![order.0])?
            .pop()
            .ok_or(JournalError::NoOrder(order))
    }

    fn orders(&self) -> Result<Vec<OrderSummary>, JournalError> {
        self.orders_where("", params![])
    }

    fn start_production(&mut self, order: OrderId, operator: &str) -> Result<(), JournalError> {
        let state = Self::order_state(self.db.get_mut().as_mut(), order)?
            .ok_or(JournalError::NoOrder(order))?;
        match state {
            OrderState::Producing => {
                let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
                append_audit(&mut *tx, operator, "order.production-resumed", &format!("order {order}"), "")
                    .and_then(|()| tx.commit())
                    ?;
                self.audit_committed()
            }
            _ => self.set_order_state(
            order,
            Transition {
                to: OrderState::Producing,
                event: "order.production-started",
                details: "",
                refused: "production refuses an order that is not paid (certmint order pay records the payment)",
            },
            operator,
        ),
        }
    }

    fn pending_devices(
        &self,
        order: OrderId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Device>, JournalError> {
        self.reader()?.rows(
            "SELECT id, order_id, serial, state, key_id FROM devices
                 WHERE order_id = ?1 AND id > ?2 AND state NOT IN ('verified', 'delivered') ORDER BY id LIMIT ?3",
            params![order.0, after, i64::try_from(limit).unwrap_or(i64::MAX)], device_from_row,
        )
    }

    fn device_state(
        &self,
        order: OrderId,
        serial: &str,
    ) -> Result<Option<DeviceState>, JournalError> {
        self.reader()?.row(
            "SELECT state FROM devices WHERE order_id = ?1 AND serial = ?2",
            params![order.0, serial],
            |r| parse::<DeviceState>(r.get(0)?),
        )
    }

    fn device_order(&self, serial: &str) -> Result<Option<OrderId>, JournalError> {
        self.reader()?
            .query_row(
                "SELECT order_id FROM devices WHERE serial = ?1",
                params![serial],
                |r| Ok(OrderId(r.get(0)?)),
            )
            .optional()
    }

    fn dangling_intents(&self, order: OrderId) -> Result<Vec<(String, Device)>, JournalError> {
        self.reader()?
            .rows(DANGLING_INTENTS, params![order.0], |r| {
                Ok((r.get::<String>(0)?, device_at(r, 1)?))
            })
    }

    fn void_intent(
        &mut self,
        serial_hex: &str,
        operator: &str,
        reason: &str,
    ) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        let intent: Option<(i64, i64, Vec<u8>)> = tx.row(
            "SELECT id, device_id, tbs FROM certificates WHERE serial_hex = ?1 AND status = 'intent'",
            params![serial_hex],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let Some((id, device, tbs)) = intent else {
            // Voided already: another producer of the order, recovering the
            // same dead producer's work, was first. Anything else is not an
            // intent to void.
            let status: Option<String> = tx.row(
                "SELECT status FROM certificates WHERE serial_hex = ?1",
                params![serial_hex],
                |r| r.get(0),
            )?;
            return match status.as_deref() {
                Some("void") => Ok(()),
                _ => Err(JournalError::Database {
                    path: tx.location().to_owned(),
                    reason: format!("certificate {serial_hex} is not an intent in progress"),
                }),
            };
        };
        tx.execute(
            "UPDATE certificates SET status = 'void', void_reason = ?1 WHERE serial_hex = ?2",
            params![reason, serial_hex],
        )?;
        // A device certified before (a failed reissue) keeps its state: the
        // legal moves do not take it back.
        tx.execute(
            &format!(
                "UPDATE devices SET state = CASE WHEN key_id IS NULL THEN ?2 ELSE ?3 END
                 WHERE id = ?1 AND {}",
                moving_to(&[DeviceState::Planned, DeviceState::KeyGenerated])
            ),
            params![
                device,
                DeviceState::Planned.as_str(),
                DeviceState::KeyGenerated.as_str()
            ],
        )?;
        // A reissue that never became a certificate supersedes nothing: the
        // certificate it was to replace is in force again.
        let reinstated: Option<String> = tx
            .query_row(
                "SELECT serial_hex FROM certificates WHERE superseded_by = ?1 AND status = 'superseded'",
                params![serial_hex],
                |r| r.get(0),
            )
            .optional()
            ?;
        if reinstated.is_some() {
            tx.execute(
                "UPDATE certificates SET status = 'issued', superseded_by = NULL, superseded_at = NULL, superseded_operator = NULL
                 WHERE superseded_by = ?1 AND status = 'superseded'",
                params![serial_hex],
            )
            ?;
        }
        append_audit(
            &mut *tx,
            operator,
            "certificate.voided",
            &format!("certificate {serial_hex}"),
            reason,
        )?;
        // The CA may have signed it before the intent was voided: listed on
        // the next CRL, so that no signed certificate is left unaccounted for.
        revoke_superseded(
            &mut *tx,
            id,
            serial_hex,
            &tbs,
            "its intent was voided: a signature, if made, never became a delivered certificate",
            operator,
        )?;
        if let Some(old) = &reinstated {
            append_audit(
                &mut *tx,
                operator,
                "certificate.reinstated",
                &format!("certificate {old}"),
                &format!(
                    "its reissue {serial_hex} never became a certificate: it is in force again"
                ),
            )?;
        }
        tx.commit()?;
        self.audit_committed()
    }

    fn record_key(
        &mut self,
        device: &Device,
        key_id_hex: &str,
        operator: &str,
    ) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        Self::check_claims(&self.leases, &mut *tx, &[device])?;
        let to = DeviceState::KeyGenerated;
        let moved = tx.execute(
            &format!(
                "UPDATE devices SET state = ?3, key_id = ?1 WHERE id = ?2 AND {}",
                moving_to(&[to])
            ),
            params![key_id_hex, device.id, to.as_str()],
        )?;
        check_moved(&mut *tx, &[device.id], to, moved)?;
        append_audit(
            &mut *tx,
            operator,
            "device.key-generated",
            &format!("device {}", device.name),
            &format!("CKA_ID {key_id_hex}"),
        )?;
        tx.commit()?;
        self.audit_committed()
    }

    fn record_intents(
        &mut self,
        intents: &[Intent<'_>],
        operator: &str,
    ) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        let devices: Vec<&Device> = intents.iter().map(|i| i.device).collect();
        Self::check_claims(&self.leases, &mut *tx, &devices)?;
        let mut chain = AuditChain::read(&mut *tx)?;
        let now = now_rfc3339();
        for group in intents.chunks(ROWS_PER_STATEMENT) {
            let mut values: Vec<Param<'_>> = Vec::with_capacity(group.len() * 4);
            for intent in group {
                values.extend([
                    Param::Int(intent.device.id),
                    Param::Text(intent.serial_hex),
                    Param::Blob(intent.tbs),
                    Param::Text(&now),
                ]);
            }
            tx.execute(
                &format!(
                    "INSERT INTO certificates (device_id, serial_hex, tbs, recorded_at, status)
                     VALUES {}",
                    value_tuples(group.len(), 4, ", 'intent'")
                ),
                &values,
            )?;
            let to = DeviceState::IntentRecorded;
            let ids: Vec<i64> = group.iter().map(|i| i.device.id).collect();
            let mut values = vec![Param::Text(to.as_str())];
            values.extend(ids.iter().map(|id| Param::Int(*id)));
            let moved = tx.execute(
                &format!(
                    "UPDATE devices SET state = ?1 WHERE id IN ({}) AND {}",
                    parameter_list(2, ids.len()),
                    moving_to(&[to])
                ),
                &values,
            )?;
            check_moved(&mut *tx, &ids, to, moved)?;
        }
        let records: Vec<(&str, &str, String, String)> = intents
            .iter()
            .map(|intent| {
                (
                    operator,
                    "device.intent",
                    format!("device {}", intent.device.name),
                    format!(
                        "{}; certificate {} linted",
                        intent.key_note, intent.serial_hex
                    ),
                )
            })
            .collect();
        chain.append_all(&mut *tx, &now, &records)?;
        chain.write(&mut *tx)?;
        tx.commit()?;
        self.audit_committed()
    }

    fn record_verified_devices(
        &mut self,
        verified: &[VerifiedDevice<'_>],
        operator: &str,
    ) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        let devices: Vec<&Device> = verified.iter().map(|v| v.device).collect();
        Self::check_claims(&self.leases, &mut *tx, &devices)?;
        let mut chain = AuditChain::read(&mut *tx)?;
        let now = now_rfc3339();
        for VerifiedDevice {
            device,
            certificate: c,
        } in verified
        {
            let changed = tx.execute(
                "UPDATE certificates SET status = 'issued', der = ?1, sha256 = ?2, not_before = ?3, not_after = ?4
                     WHERE serial_hex = ?5 AND status = 'intent' AND device_id = ?6",
                params![
                        c.der,
                        c.sha256,
                        c.not_before,
                        c.not_after,
                        c.serial_hex,
                        device.id
                    ],
            )?;
            if changed != 1 {
                return Err(JournalError::Database {
                    path: tx.location().to_owned(),
                    reason: format!(
                        "certificate {} of device {} has no recorded intent",
                        c.serial_hex, device.name
                    ),
                });
            }
            let to = DeviceState::Verified;
            let moved = tx.execute(
                &format!(
                    "UPDATE devices SET state = ?4, p12_password = ?1, produced_by = ?3, claimed_by = NULL
                     WHERE id = ?2 AND {}",
                    moving_to(&[to])
                ),
                params![
                    c.p12_password,
                    device.id,
                    self.leases.get(&device.order),
                    to.as_str()
                ],
            )?;
            check_moved(&mut *tx, &[device.id], to, moved)?;
        }
        let records: Vec<(&str, &str, String, String)> = verified
            .iter()
            .map(|v| {
                (
                    operator,
                    "device.certificate-issued",
                    format!("device {}", v.device.name),
                    format!(
                        "certificate {} signed, verified, stored; SHA-256 {}",
                        v.certificate.serial_hex, v.certificate.sha256
                    ),
                )
            })
            .collect();
        chain.append_all(&mut *tx, &now, &records)?;
        chain.write(&mut *tx)?;
        tx.commit()?;
        self.audit_committed()
    }

    fn finish_production(&mut self, order: OrderId, operator: &str) -> Result<bool, JournalError> {
        let open: i64 = self.reader()?
            .query_row(
                "SELECT COUNT(*) FROM devices WHERE order_id = ?1 AND state NOT IN ('verified', 'delivered')",
                params![order.0],
                |r| r.get(0),
            )
            ?;
        if open > 0 {
            return Ok(false);
        }
        self.set_order_state(
            order,
            Transition {
                to: OrderState::Produced,
                event: "order.produced",
                details: "",
                refused: "only a producing order can finish",
            },
            operator,
        )?;
        Ok(true)
    }

    fn issued(
        &self,
        order: OrderId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, IssuedRecord)>, JournalError> {
        self.reader()?.rows(
            ISSUED_PAGE,
            params![order.0, after, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| {
                Ok((
                    r.get(0)?,
                    IssuedRecord {
                        device_serial: r.get(1)?,
                        certificate_serial: r.get(2)?,
                        sha256: r.get(3)?,
                        not_before: r.get(4)?,
                        not_after: r.get(5)?,
                        der: r.get(6)?,
                    },
                ))
            },
        )
    }

    fn passwords(
        &self,
        order: OrderId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String, String)>, JournalError> {
        self.reader()?.rows(
            "SELECT id, serial, p12_password FROM devices WHERE order_id = ?1 AND id > ?2 AND p12_password IS NOT NULL ORDER BY id LIMIT ?3",
            params![order.0, after, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            },
        )
    }

    fn record_delivery(
        &mut self,
        order: OrderId,
        delivery: &DeliveryRecord<'_>,
        operator: &str,
    ) -> Result<(), JournalError> {
        let details = format!(
            "folder {}, uploaded {}, purge due {}",
            delivery.folder,
            delivery.uploaded_at,
            delivery.purge_due.unwrap_or("never (not soft)")
        );
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        Self::change_order_state(
            &mut *tx,
            order,
            Transition {
                to: OrderState::Delivered,
                event: "order.delivered",
                details: &details,
                refused: "only a produced order can be delivered",
            },
            operator,
        )?;
        tx.execute(
            "INSERT INTO deliveries (order_id, folder, uploaded_at, purge_due) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(order_id) DO UPDATE SET folder = ?2, uploaded_at = ?3, purge_due = ?4",
            params![order.0, delivery.folder, delivery.uploaded_at, delivery.purge_due],
        )
        .and_then(|_| {
            tx.execute(
                "INSERT INTO delivery_files (order_id, passwords) VALUES (?1, ?2)
                 ON CONFLICT(order_id) DO UPDATE SET passwords = ?2, purge_started_at = NULL",
                params![order.0, delivery.passwords],
            )
        })
        ?;
        let to = DeviceState::Delivered;
        let left: Option<(String, String)> = tx.row(
            &format!(
                "SELECT serial, state FROM devices WHERE order_id = ?1 AND NOT {} LIMIT 1",
                moving_to(&[to])
            ),
            params![order.0],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if let Some((device, from)) = left {
            return Err(JournalError::DeviceMove { device, from, to });
        }
        tx.execute(
            "UPDATE devices SET state = ?2 WHERE order_id = ?1",
            params![order.0, to.as_str()],
        )?;
        tx.commit()?;
        self.appended = true;
        Ok(())
    }

    fn pkcs12_serials(
        &self,
        order: OrderId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, RecordedKeyFile)>, JournalError> {
        self.reader()?.rows(
            "SELECT d.id, d.serial, c.serial_hex FROM devices d
             LEFT JOIN certificates c ON c.device_id = d.id AND c.status IN ('intent', 'issued') AND c.status = 'issued'
             WHERE d.order_id = ?1 AND d.id > ?2 AND d.p12_password IS NOT NULL
             ORDER BY d.id LIMIT ?3",
            params![order.0, after, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok((r.get(0)?, RecordedKeyFile {
                    device_serial: r.get(1)?,
                    certificate_serial: r.get(2)?,
                }))
            },
        )
    }

    fn record_purge_started(&mut self, order: OrderId, operator: &str) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        let state = Self::order_state(&mut *tx, order)?.ok_or(JournalError::NoOrder(order))?;
        if state != OrderState::Delivered {
            return Err(JournalError::WrongState {
                order,
                state,
                refused: "only a delivered order can be purged".into(),
            });
        }
        tx.execute(
            "INSERT INTO delivery_files (order_id, purge_started_at) VALUES (?1, ?2)
             ON CONFLICT(order_id) DO UPDATE SET purge_started_at = COALESCE(purge_started_at, ?2)",
            params![order.0, now_rfc3339()],
        )?;
        append_audit(
            &mut *tx,
            operator,
            "order.purge-started",
            &format!("order {order}"),
            "key material is being overwritten and deleted",
        )?;
        tx.commit()?;
        self.appended = true;
        Ok(())
    }

    fn record_purge(
        &mut self,
        order: OrderId,
        purged_at: &str,
        details: &str,
        operator: &str,
    ) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        Self::change_order_state(
            &mut *tx,
            order,
            Transition {
                to: OrderState::Purged,
                event: "order.purged",
                details,
                refused: "only a delivered order can be purged",
            },
            operator,
        )?;
        tx.execute(
            "UPDATE deliveries SET purged_at = ?1 WHERE order_id = ?2",
            params![purged_at, order.0],
        )
        .and_then(|_| {
            tx.execute(
                "UPDATE devices SET p12_password = NULL WHERE order_id = ?1",
                params![order.0],
            )
        })?;
        tx.commit()?;
        self.appended = true;
        Ok(())
    }

    fn erase_freed_secrets(&mut self) -> Result<(), JournalError> {
        // secure_delete has zeroed the erased passwords in the pages written
        // since; older page images stay in the write-ahead log until it is
        // copied back and truncated, which needs no other connection reading.
        self.db.get_mut().erase_freed_secrets()
    }

    fn unpurged_soft_deliveries(&self) -> Result<Vec<SoftDelivery>, JournalError> {
        self.reader()?.rows(
            "SELECT o.id, d.folder, f.passwords, d.uploaded_at, f.purge_started_at IS NOT NULL
                 FROM orders o JOIN deliveries d ON d.order_id = o.id
                 LEFT JOIN delivery_files f ON f.order_id = o.id
                 WHERE o.target = 'soft' AND o.state = 'delivered' ORDER BY o.id",
            params![],
            |r| {
                Ok(SoftDelivery {
                    order: OrderId(r.get(0)?),
                    folder: r.get(1)?,
                    passwords: r.get(2)?,
                    uploaded_at: r.get(3)?,
                    purge_started: r.get(4)?,
                })
            },
        )
    }

    fn audit(
        &mut self,
        operator: &str,
        event: &str,
        subject: &str,
        details: &str,
    ) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        append_audit(&mut *tx, operator, event, subject, details)?;
        tx.commit()?;
        self.audit_committed()
    }

    fn certificate_by_serial(
        &self,
        serial_hex: &str,
    ) -> Result<Option<CertificateRecord>, JournalError> {
        self.reader()?
            .query_row(
                "SELECT d.order_id, d.serial, c.status FROM certificates c JOIN devices d ON c.device_id = d.id
                 WHERE c.serial_hex = ?1",
                params![serial_hex],
                |r| {
                    Ok(CertificateRecord {
                        order: OrderId(r.get(0)?),
                        device_serial: r.get(1)?,
                        status: r.get(2)?,
                    })
                },
            )
            .optional()
    }

    fn acquire_lease(
        &mut self,
        order: OrderId,
        holder: &LeaseHolder,
        ttl: Duration,
        sharing: Sharing,
    ) -> Result<Vec<Lease>, JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        if Self::order_state(&mut *tx, order)?.is_none() {
            return Err(JournalError::NoOrder(order));
        }
        let current = read_leases(&mut *tx, order)?;
        let now_ms = clock(&mut *tx)?;
        let decision = lease::join(&current, holder, sharing, now_ms);
        if let Some(lease) = decision.refused_by {
            return Err(JournalError::Held {
                order,
                lease: Box::new(lease.clone()),
            });
        }
        let taken_over = take_over(&mut *tx, order, holder, &decision.take_over)?;
        let now = now_rfc3339();
        tx.execute(
            "INSERT INTO station_leases (order_id, holder_id, host, boot_id, pid, operator, sharing, acquired_at, renewed_at, expires_at_ms, start_time, pid_namespace)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?10, ?11)
             ON CONFLICT(order_id, holder_id) DO UPDATE SET host = ?3, boot_id = ?4, pid = ?5,
                 operator = ?6, sharing = ?7, acquired_at = ?8, renewed_at = ?8, expires_at_ms = ?9,
                 start_time = ?10, pid_namespace = ?11, released_at = NULL",
            params![
                order.0,
                holder.holder_id,
                holder.host,
                holder.boot_id,
                holder.pid,
                holder.operator,
                sharing.as_str(),
                now,
                expiry(now_ms, ttl),
                i64::try_from(holder.start_time).unwrap_or(0),
                holder.pid_namespace
            ],
        )?;
        tx.commit()?;
        if !taken_over.is_empty() {
            self.appended = true;
        }
        self.leases.insert(order, holder.holder_id.clone());
        Ok(taken_over)
    }

    fn claim_devices(
        &mut self,
        order: OrderId,
        holder: &LeaseHolder,
        limit: usize,
    ) -> Result<DeviceClaim, JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        Self::check_own_lease(&self.leases, &mut *tx, order)?;
        let current = read_leases(&mut *tx, order)?;
        let now_ms = clock(&mut *tx)?;
        let decision = lease::join(&current, holder, Sharing::Shared, now_ms);
        let taken_over = take_over(&mut *tx, order, holder, &decision.take_over)?;
        let claim_sql = format!(
            "UPDATE devices SET claimed_by = ?3 WHERE id IN (
                 SELECT id FROM devices
                 WHERE order_id = ?1 AND state NOT IN ('verified', 'delivered') AND claimed_by IS NULL
                 ORDER BY id LIMIT ?2{})
             RETURNING {DEVICE_COLUMNS}",
            tx.skip_locked()
        );
        let mut devices = tx.rows(
            &claim_sql,
            params![
                order.0,
                i64::try_from(limit).unwrap_or(i64::MAX),
                holder.holder_id
            ],
            device_from_row,
        )?;
        devices.sort_by_key(|d| d.id);
        let held_by_others: i64 = tx.query_row(
            "SELECT COUNT(*) FROM devices
             WHERE order_id = ?1 AND claimed_by IS NOT NULL AND claimed_by <> ?2
               AND state NOT IN ('verified', 'delivered')",
            params![order.0, holder.holder_id],
            |r| r.get(0),
        )?;
        tx.commit()?;
        if !taken_over.is_empty() {
            self.appended = true;
        }
        Ok(DeviceClaim {
            devices,
            held_by_others: u64::try_from(held_by_others).unwrap_or(0),
        })
    }

    fn stations(&self, order: OrderId, here: &LeaseHolder) -> Result<Vec<Station>, JournalError> {
        let mut db = self.reader()?;
        let now_ms = clock(db.as_mut())?;
        let mut stations = db.rows(
            &format!(
                "SELECT {LEASE_COLUMNS}, s.released_at,
                        (SELECT COUNT(*) FROM devices d WHERE d.order_id = s.order_id AND d.produced_by = s.holder_id)
                 FROM station_leases s WHERE s.order_id = ?1 ORDER BY s.acquired_at, s.holder_id"
            ),
            params![order.0],
            |r| {
                let lease = lease_from_row(r)?;
                let released_at: Option<String> = r.get(11)?;
                Ok(Station {
                    live: released_at.is_none() && lease.is_live_at(here, now_ms),
                    lease,
                    released_at,
                    produced: u64::try_from(r.get::<i64>(12)?).unwrap_or(0),
                })
            },
        )?;
        stations.sort_by_key(|s| !s.live);
        Ok(stations)
    }

    fn renew_lease(
        &mut self,
        order: OrderId,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        let now_ms = clock(&mut *tx)?;
        let changed = tx.execute(
            "UPDATE station_leases SET renewed_at = ?1, expires_at_ms = ?2
             WHERE order_id = ?3 AND holder_id = ?4 AND released_at IS NULL",
            params![
                now_rfc3339(),
                expiry(now_ms, ttl),
                order.0,
                holder.holder_id
            ],
        )?;
        if changed != 1 {
            let by = taker(&mut *tx, order, &holder.holder_id)?;
            return Err(JournalError::LeaseLost { order, by });
        }
        tx.commit()
    }

    fn release_lease(&mut self, order: OrderId, holder: &LeaseHolder) -> Result<(), JournalError> {
        self.leases.remove(&order);
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        let released = tx.execute(
            "UPDATE station_leases SET released_at = ?1
             WHERE order_id = ?2 AND holder_id = ?3 AND released_at IS NULL",
            params![now_rfc3339(), order.0, holder.holder_id],
        )?;
        if released == 1 {
            tx.execute(
                "UPDATE devices SET claimed_by = NULL WHERE order_id = ?1 AND claimed_by = ?2",
                params![order.0, holder.holder_id],
            )?;
        }
        tx.commit()
    }

    fn confirm_lease(&self, order: OrderId) -> Result<(), JournalError> {
        Self::check_own_lease(&self.leases, self.reader()?.as_mut(), order)
    }

    fn leases(&self, order: OrderId) -> Result<Vec<Lease>, JournalError> {
        read_leases(self.reader()?.as_mut(), order)
    }

    fn clock_ms(&self) -> Result<i64, JournalError> {
        clock(self.reader()?.as_mut())
    }

    fn device_by_serial(&self, serial: &str) -> Result<Option<Device>, JournalError> {
        self.reader()?.row(
            &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE serial = ?1"),
            params![serial],
            device_from_row,
        )
    }

    fn certificate_in_force(
        &self,
        device: &Device,
    ) -> Result<Option<(String, CertificateStatus)>, JournalError> {
        self.reader()?.row(
            "SELECT serial_hex, status FROM certificates
             WHERE device_id = ?1 AND status IN ('intent', 'issued')",
            params![device.id],
            |r| Ok((r.get(0)?, parse(r.get(1)?)?)),
        )
    }

    fn record_one_off_order(
        &mut self,
        order: &NewOrder,
        serial: &str,
    ) -> Result<Device, JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        let now = now_rfc3339();
        let order_id = OrderId(tx.query_row(
            "INSERT INTO orders (kind, manufacturer, manufacturer_vkn, prefixes, target, key_type, state, source, created_at, paid_at, paid_by, one_off)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'paid', ?7, ?8, ?8, ?9, 1) RETURNING id",
            params![
                order.kind.as_str(),
                order.manufacturer,
                stored_taxpayer(&order.manufacturer_vkn),
                order.prefixes.join(","),
                order.target.as_str(),
                order.key_type.to_string(),
                order.source,
                now,
                order.operator
            ],
            |r| r.get(0),
        )?);
        let device_id: i64 = tx.query_row(
            "INSERT INTO devices (order_id, serial, line_no, state) VALUES (?1, ?2, 1, 'planned') RETURNING id",
            params![order_id.0, serial],
            |r| r.get(0),
        )?;
        let device = Device {
            id: device_id,
            order: order_id,
            name: DeviceName::parse(serial).map_err(|e| JournalError::Database {
                path: tx.location().to_owned(),
                reason: e.to_string(),
            })?,
            state: DeviceState::Planned,
            key_id: None,
        };
        let mut chain = AuditChain::read(&mut *tx)?;
        let subject = format!("order {order_id}");
        chain
            .append(
                &mut *tx,
                &now,
                &order.operator,
                "order.received",
                &subject,
                &format!(
                    "one-off {} order for {} ({}), 1 device {serial} from {}, target {}, key {}",
                    order.kind,
                    if order.manufacturer.is_empty() {
                        "a holder not named"
                    } else {
                        &order.manufacturer
                    },
                    order
                        .manufacturer_vkn
                        .as_ref()
                        .map_or("no VKN given", TaxpayerId::as_str),
                    order.source,
                    order.target,
                    order.key_type
                ),
            )
            .and_then(|()| {
                chain.append(
                    &mut *tx,
                    &now,
                    &order.operator,
                    "order.paid",
                    &subject,
                    "one-off order: paid at creation by its operator",
                )
            })
            .and_then(|()| chain.write(&mut *tx))?;
        tx.commit()?;
        self.audit_committed()?;
        Ok(device)
    }

    fn record_single_intent(
        &mut self,
        intent: &Intent<'_>,
        supersedes: Option<&str>,
        operator: &str,
    ) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        Self::check_own_lease(&self.leases, &mut *tx, intent.device.order)?;
        let mut chain = AuditChain::read(&mut *tx)?;
        let now = now_rfc3339();
        if let Some(old) = supersedes {
            let changed = tx
                .execute(
                    "UPDATE certificates SET status = 'superseded', superseded_by = ?1, superseded_at = ?2, superseded_operator = ?3
                     WHERE serial_hex = ?4 AND device_id = ?5 AND status = 'issued'",
                    params![intent.serial_hex, now, operator, old, intent.device.id],
                )
                ?;
            if changed != 1 {
                return Err(JournalError::NoCertificate(format!(
                    "issued certificate {old} of {}",
                    intent.device.name
                )));
            }
            chain.append(
                &mut *tx,
                &now,
                operator,
                "certificate.superseded",
                &format!("certificate {old}"),
                &format!(
                    "{} is reissued: superseded by certificate {}",
                    intent.device.name, intent.serial_hex
                ),
            )?;
        }
        tx.execute(
            "INSERT INTO certificates (device_id, serial_hex, status, tbs, recorded_at) VALUES (?1, ?2, 'intent', ?3, ?4)",
            params![intent.device.id, intent.serial_hex, intent.tbs, now],
        )
        ?;
        // A device certified before (a reissue) stays verified until the
        // new certificate supersedes the old.
        tx.execute(
            &format!(
                "UPDATE devices SET state = ?2 WHERE id = ?1 AND {}",
                moving_to(&[DeviceState::IntentRecorded])
            ),
            params![intent.device.id, DeviceState::IntentRecorded.as_str()],
        )?;
        chain
            .append(
                &mut *tx,
                &now,
                operator,
                "device.intent",
                &format!("device {}", intent.device.name),
                &format!(
                    "{}; certificate {} linted",
                    intent.key_note, intent.serial_hex
                ),
            )
            .and_then(|()| chain.write(&mut *tx))?;
        tx.commit()?;
        self.audit_committed()
    }

    fn record_single_issued(
        &mut self,
        device: &Device,
        certificate: &StoredCertificate<'_>,
        operator: &str,
    ) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        Self::check_own_lease(&self.leases, &mut *tx, device.order)?;
        let c = certificate;
        let changed = tx
            .execute(
                "UPDATE certificates SET status = 'issued', der = ?1, sha256 = ?2, not_before = ?3, not_after = ?4
                 WHERE serial_hex = ?5 AND status = 'intent' AND device_id = ?6",
                params![c.der, c.sha256, c.not_before, c.not_after, c.serial_hex, device.id],
            )
            ?;
        if changed != 1 {
            return Err(JournalError::Database {
                path: tx.location().to_owned(),
                reason: format!(
                    "certificate {} of {} has no recorded intent",
                    c.serial_hex, device.name
                ),
            });
        }
        // A delivered device (a reissue) stays delivered; any other state
        // must be one a device may be verified from.
        let to = DeviceState::Verified;
        let moved = tx.execute(
            &format!(
                "UPDATE devices SET state = ?2 WHERE id = ?1 AND {}",
                moving_to(&[to])
            ),
            params![device.id, to.as_str()],
        )?;
        if moved == 0 {
            let state: Option<String> = tx.row(
                "SELECT state FROM devices WHERE id = ?1",
                params![device.id],
                |r| r.get(0),
            )?;
            if state.as_deref() != Some(DeviceState::Delivered.as_str()) {
                check_moved(&mut *tx, &[device.id], to, moved)?;
            }
        }
        // A completed reissue: the certificate it supersedes is valid and
        // signed, and will never be the device's certificate again.
        let superseded: Vec<(i64, String, Vec<u8>)> = tx.rows(
            "SELECT id, serial_hex, tbs FROM certificates WHERE superseded_by = ?1 AND status = 'superseded'",
            params![c.serial_hex],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        append_audit(
            &mut *tx,
            operator,
            "device.certificate-issued",
            &format!("device {}", device.name),
            &format!(
                "certificate {} signed, verified, recorded; SHA-256 {}",
                c.serial_hex, c.sha256
            ),
        )?;
        for (id, old, tbs) in &superseded {
            revoke_superseded(
                &mut *tx,
                *id,
                old,
                tbs,
                &format!("superseded by certificate {} (a reissue)", c.serial_hex),
                operator,
            )?;
        }
        tx.commit()?;
        self.audit_committed()
    }

    fn certificates(
        &self,
        filter: &CertificateFilter,
        after: i64,
        limit: usize,
    ) -> Result<Vec<CertificateDetail>, JournalError> {
        // Only the filters given become conditions, so that SQLite picks
        // the index of the most selective one.
        let mut conditions = vec!["c.id > ?1".to_owned()];
        /// A filter's value, owned until the statement runs.
        enum Arg {
            Int(i64),
            Text(String),
        }
        let mut args: Vec<Arg> = vec![Arg::Int(after)];
        let mut add = |condition: &str, value: Arg| {
            args.push(value);
            conditions.push(condition.replace('?', &format!("?{}", args.len())));
        };
        if let Some(serial) = &filter.serial {
            add("c.serial_hex = ?", Arg::Text(serial.to_ascii_uppercase()));
        }
        if let Some(serial) = &filter.device_serial {
            add("d.serial = ? AND o.kind = 'okc'", Arg::Text(serial.clone()));
        }
        if let Some(label) = &filter.seal_label {
            add(
                "d.serial = ? AND o.kind = 'mali-muhur'",
                Arg::Text(label.clone()),
            );
        }
        if let Some(id) = &filter.taxpayer {
            add("o.manufacturer_vkn = ?", Arg::Text(id.clone()));
        }
        if let Some(order) = filter.order {
            add("d.order_id = ?", Arg::Int(order.0));
        }
        if filter.revoked {
            conditions.push("r.id IS NOT NULL".to_owned());
        }
        args.push(Arg::Int(i64::try_from(limit).unwrap_or(i64::MAX)));
        let params: Vec<Param<'_>> = args
            .iter()
            .map(|arg| match arg {
                Arg::Int(value) => Param::Int(*value),
                Arg::Text(text) => Param::Text(text),
            })
            .collect();
        let sql = format!(
            "SELECT c.id, c.serial_hex, c.status, d.order_id, o.kind, o.target, d.serial, o.manufacturer, o.manufacturer_vkn,
                    c.recorded_at, c.not_before, c.not_after, c.sha256, c.void_reason,
                    c.superseded_by, c.superseded_at, c.superseded_operator, c.der,
                    r.revoked_at, r.reason, r.invalidity_date, r.operator
             FROM certificates c JOIN devices d ON c.device_id = d.id JOIN orders o ON d.order_id = o.id
                  LEFT JOIN revocations r ON r.certificate_id = c.id
             WHERE {} ORDER BY c.id LIMIT ?{}",
            conditions.join(" AND "),
            args.len()
        );
        self.reader()?.rows(&sql, &params, |r| {
            let kind: OrderKind = parse(r.get(4)?)?;
            let device: String = r.get(6)?;
            let (device_serial, seal_label) = match kind {
                OrderKind::Okc => (Some(device), None),
                OrderKind::MaliMuhur => (None, Some(device)),
            };
            Ok(CertificateDetail {
                id: r.get(0)?,
                serial: r.get(1)?,
                status: parse(r.get(2)?)?,
                order: OrderId(r.get(3)?),
                kind,
                target: parse(r.get(5)?)?,
                device_serial,
                seal_label,
                holder: r.get(7)?,
                taxpayer: r.get(8)?,
                recorded_at: r.get(9)?,
                not_before: r.get(10)?,
                not_after: r.get(11)?,
                sha256: r.get(12)?,
                void_reason: r.get(13)?,
                superseded_by: r.get(14)?,
                superseded_at: r.get(15)?,
                superseded_operator: r.get(16)?,
                der: r.get(17)?,
                revocation: match r.get::<Option<String>>(18)? {
                    None => None,
                    Some(_) => Some(revocation_at(r, 18)?),
                },
            })
        })
    }

    fn audit_records(
        &self,
        order: Option<OrderId>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, JournalError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let entry = |r: &Row| {
            Ok(AuditEntry {
                seq: r.get(0)?,
                at: r.get(1)?,
                operator: r.get(2)?,
                event: r.get(3)?,
                subject: r.get(4)?,
                details: r.get(5)?,
            })
        };
        match order {
            None => self.reader()?.rows(
                "SELECT seq, at, operator, event, subject, details FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                params![after, limit],
                entry,
            ),
            // The records about an order name it, one of its devices, or one
            // of their certificates: each record's subject is looked up by
            // the unique indexes of serials, so a page costs the same
            // however large the order.
            Some(order) => self.reader()?.rows(
                AUDIT_OF_ORDER,
                params![after, order.0.to_string(), order.0, limit],
                entry,
            ),
        }
    }

    fn active_certificates_per_device(
        &self,
        order: OrderId,
    ) -> Result<Vec<(String, u64)>, JournalError> {
        self.reader()?.rows(
            "SELECT d.serial, (SELECT COUNT(*) FROM certificates c WHERE c.device_id = d.id AND c.status IN ('intent', 'issued'))
                 FROM devices d WHERE d.order_id = ?1 ORDER BY d.id",
            params![order.0], |r| Ok((r.get(0)?, r.get::<i64>(1)? as u64)),
        )
    }

    fn revoke(
        &mut self,
        request: &RevocationRequest,
        operator: &str,
    ) -> Result<RevokeOutcome, JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        let serial = request.serial_hex.as_str();
        let (id, status, tbs): (i64, String, Vec<u8>) = tx
            .query_row(
                "SELECT id, status, tbs FROM certificates WHERE serial_hex = ?1",
                params![serial],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?
            .ok_or_else(|| JournalError::NoCertificate(format!("serial {serial}")))?;
        let status: CertificateStatus = parse(status).map_err(|e| JournalError::Database {
            path: tx.location().to_owned(),
            reason: e.0,
        })?;
        if !status.may_be_revoked() {
            return Err(JournalError::NotRevocable {
                serial: serial.to_owned(),
                status,
            });
        }
        let issuer = issuer_key_id_of_tbs(&tbs).map_err(|reason| JournalError::Database {
            path: tx.location().to_owned(),
            reason: format!("certificate {serial}: {reason}"),
        })?;
        let outcome = insert_revocation(
            &mut *tx,
            &NewRevocation {
                serial_hex: serial,
                issuer_key_id_hex: &crate::pem::hex(&issuer),
                certificate_id: Some(id),
                reason: request.reason,
                invalidity_date: request.invalidity_date.map(crate::timestamp::format),
                note: "revoked by the operator",
            },
            operator,
        )?;
        tx.commit()?;
        if matches!(outcome, RevokeOutcome::Revoked { .. }) {
            self.audit_committed()?;
        }
        Ok(outcome)
    }

    fn record_ca_certificate_intent(
        &mut self,
        intent: &CaCertificateIntent<'_>,
        operator: &str,
    ) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        let issuer = crate::pem::hex(intent.issuer_key_id);
        tx.execute(
            "INSERT INTO ca_certificates (serial_hex, issuer_key_id, subject, role, status, tbs, intended_at, operator)
             VALUES (?1, ?2, ?3, ?4, 'intent', ?5, ?6, ?7)",
            params![
                intent.serial_hex,
                issuer,
                intent.subject,
                intent.role,
                intent.tbs,
                now_rfc3339(),
                operator
            ],
        )?;
        append_audit(
            &mut *tx,
            operator,
            "ca-certificate.intent",
            &format!("certificate {}", intent.serial_hex),
            &format!(
                "{} certificate {} about to be signed by the root key {issuer}",
                intent.role, intent.subject
            ),
        )?;
        tx.commit()?;
        self.appended = true;
        Ok(())
    }

    fn record_ca_certificate_issued(
        &mut self,
        serial_hex: &str,
        der: &[u8],
        operator: &str,
    ) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        let recorded: Option<(String, String)> = tx.row(
            "SELECT subject, role FROM ca_certificates WHERE serial_hex = ?1 AND status = 'intent'",
            params![serial_hex],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let Some((subject, role)) = recorded else {
            return Err(JournalError::NoCertificate(format!(
                "CA certificate {serial_hex} in progress"
            )));
        };
        tx.execute(
            "UPDATE ca_certificates SET status = 'issued', der = ?2, issued_at = ?3 WHERE serial_hex = ?1",
            params![serial_hex, der, now_rfc3339()],
        )?;
        let sha256 = crate::pem::hex_colons(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref(),
        );
        append_audit(
            &mut *tx,
            operator,
            "ca-certificate.issued",
            &format!("certificate {serial_hex}"),
            &format!("{role} certificate {subject} signed, SHA-256 {sha256}"),
        )?;
        tx.commit()?;
        self.appended = true;
        Ok(())
    }

    fn ca_certificates(&self) -> Result<Vec<CaCertificateRecord>, JournalError> {
        self.reader()?.rows(
            "SELECT serial_hex, issuer_key_id, subject, role, status, intended_at, issued_at, operator
             FROM ca_certificates ORDER BY id",
            params![],
            |r| {
                Ok(CaCertificateRecord {
                    serial: r.get(0)?,
                    issuer_key_id: r.get(1)?,
                    subject: r.get(2)?,
                    role: r.get(3)?,
                    status: r.get(4)?,
                    intended_at: r.get(5)?,
                    issued_at: r.get(6)?,
                    operator: r.get(7)?,
                })
            },
        )
    }

    fn revoke_ca_certificate(
        &mut self,
        revocation: &CaCertificateRevocation,
        operator: &str,
    ) -> Result<RevokeOutcome, JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        let note = format!("issuing CA certificate {}", revocation.subject);
        let outcome = insert_revocation(
            &mut *tx,
            &NewRevocation {
                serial_hex: &revocation.serial_hex,
                issuer_key_id_hex: &crate::pem::hex(&revocation.issuer_key_id),
                certificate_id: None,
                reason: revocation.reason,
                invalidity_date: revocation.invalidity_date.map(crate::timestamp::format),
                note: &note,
            },
            operator,
        )?;
        tx.commit()?;
        if matches!(outcome, RevokeOutcome::Revoked { .. }) {
            self.audit_committed()?;
        }
        Ok(outcome)
    }

    fn revocation(&self, serial_hex: &str) -> Result<Option<RevocationRecord>, JournalError> {
        self.reader()?.row(
            "SELECT r.revoked_at, r.reason, r.invalidity_date, r.operator FROM revocations r
             JOIN certificates c ON r.certificate_id = c.id WHERE c.serial_hex = ?1",
            params![serial_hex],
            revocation_from_row,
        )
    }

    fn revoked_entries(
        &self,
        issuer_key_id: &[u8],
        each: &mut dyn FnMut(RevokedEntry) -> Result<(), JournalError>,
    ) -> Result<u64, JournalError> {
        use time::format_description::well_known::Rfc3339;
        let mut db = self.reader()?;
        let location = db.location().to_owned();
        let bad = |serial: &str, what: &str| JournalError::Database {
            path: location.clone(),
            reason: format!(
                "revocation of {serial}: {what} does not read back (changed outside certmint?)"
            ),
        };
        let time = |text: &str| time::OffsetDateTime::parse(text, &Rfc3339).ok();
        let mut count = 0;
        db.each(
            "SELECT serial_hex, revoked_at, reason, invalidity_date FROM revocations
             WHERE issuer_key_id = ?1 ORDER BY length(serial_hex), serial_hex",
            params![crate::pem::hex(issuer_key_id)],
            &mut |row| {
                let column = |e: BadRow| JournalError::Database {
                    path: location.clone(),
                    reason: e.0,
                };
                let serial_hex: String = row.get(0).map_err(column)?;
                let revoked_at: String = row.get(1).map_err(column)?;
                let reason: String = row.get(2).map_err(column)?;
                let invalidity: Option<String> = row.get(3).map_err(column)?;
                let entry = RevokedEntry {
                    serial: crate::pem::parse_hex(&serial_hex)
                        .ok_or_else(|| bad(&serial_hex, "the serial"))?,
                    revoked_at: time(&revoked_at).ok_or_else(|| bad(&serial_hex, "its time"))?,
                    reason: reason.parse().map_err(|_| bad(&serial_hex, "its reason"))?,
                    invalidity_date: match invalidity {
                        None => None,
                        Some(text) => Some(
                            time(&text).ok_or_else(|| bad(&serial_hex, "its invalidity date"))?,
                        ),
                    },
                };
                each(entry)?;
                count += 1;
                Ok(())
            },
        )?;
        Ok(count)
    }

    fn allocate_crl_number(
        &mut self,
        issuer_key_id: &[u8],
        operator: &str,
    ) -> Result<u64, JournalError> {
        let issuer = crate::pem::hex(issuer_key_id);
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        let number: i64 = tx.query_row(
            "INSERT INTO crl_numbers (issuer_key_id, last_allocated) VALUES (?1, 1)
             ON CONFLICT(issuer_key_id) DO UPDATE SET last_allocated = crl_numbers.last_allocated + 1
             RETURNING last_allocated",
            params![&issuer],
            |r| r.get(0),
        )?;
        append_audit(
            &mut *tx,
            operator,
            "crl.number-allocated",
            &format!("crl {issuer}"),
            &format!("CRL number {number} allocated, before the CRL is signed"),
        )?;
        tx.commit()?;
        self.audit_committed()?;
        u64::try_from(number).map_err(|_| JournalError::CrlNumber {
            issuer_key_id: issuer,
            number: 0,
            reason: format!("the stored number {number} is not positive"),
        })
    }

    fn record_crl(&mut self, crl: &IssuedCrl<'_>, operator: &str) -> Result<(), JournalError> {
        let issuer = crate::pem::hex(crl.issuer_key_id);
        let refused = |reason: &str| JournalError::CrlNumber {
            issuer_key_id: issuer.clone(),
            number: crl.number,
            reason: reason.to_owned(),
        };
        let number = i64::try_from(crl.number).map_err(|_| refused("too large"))?;
        let entries = i64::try_from(crl.entries).map_err(|_| refused("too many entries"))?;
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        let allocated: Option<i64> = tx
            .query_row(
                "SELECT last_allocated FROM crl_numbers WHERE issuer_key_id = ?1",
                params![&issuer],
                |r| r.get(0),
            )
            .optional()?;
        if number < 1 || allocated.is_none_or(|last| number > last) {
            return Err(refused("was never allocated"));
        }
        let recorded: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM crls WHERE issuer_key_id = ?1 AND number = ?2)",
            params![issuer, number],
            |r| r.get(0),
        )?;
        if recorded {
            return Err(refused("is on record already"));
        }
        let this_update = crate::timestamp::format(crl.this_update);
        let next_update = crate::timestamp::format(crl.next_update);
        let now = now_rfc3339();
        tx.execute(
            "INSERT INTO crls (issuer_key_id, number, this_update, next_update, entries, sha256, recorded_at, operator)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![issuer, number, this_update, next_update, entries, crl.sha256_hex, now, operator],
        )
        ?;
        append_audit(
            &mut *tx,
            operator,
            "crl.issued",
            &format!("crl {issuer}"),
            &format!(
                "CRL number {number}: {entries} entries, thisUpdate {this_update}, nextUpdate {next_update}; SHA-256 {}",
                crl.sha256_hex
            ),
        )
        ?;
        tx.commit()?;
        self.audit_committed()
    }

    fn crls(&self, issuer_key_id: &[u8]) -> Result<Vec<CrlRecord>, JournalError> {
        self.crls_where(issuer_key_id, "ORDER BY number")
    }

    fn last_crl(&self, issuer_key_id: &[u8]) -> Result<Option<CrlRecord>, JournalError> {
        Ok(self
            .crls_where(issuer_key_id, "ORDER BY number DESC LIMIT 1")?
            .pop())
    }

    fn card_secrets_of_certificate(
        &self,
        certificate_serial: &str,
    ) -> Result<Option<CardSecrets>, JournalError> {
        self.reader()?.row(
            "SELECT d.serial, s.certificate_serial, s.reader, s.pin, s.puk FROM card_secrets s
             JOIN devices d ON d.id = s.device_id
             WHERE s.certificate_serial = ?1 AND s.pin IS NOT NULL",
            params![certificate_serial],
            card_secrets_from_row,
        )
    }

    fn card_secrets(
        &self,
        order: OrderId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, CardSecrets)>, JournalError> {
        self.reader()?.rows(
                "SELECT d.serial, s.certificate_serial, s.reader, s.pin, s.puk, d.id FROM devices d
                 JOIN certificates c ON c.device_id = d.id AND c.status IN ('intent', 'issued') AND c.status = 'issued'
                 JOIN card_secrets s ON s.certificate_serial = c.serial_hex AND s.pin IS NOT NULL
                 WHERE d.order_id = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3",
            params![order.0, after, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok((r.get::<i64>(5)?, card_secrets_from_row(r)?))
            },
        )
    }

    fn record_pin_letters(
        &mut self,
        order: OrderId,
        manifest: &str,
        uploaded_at: &str,
        operator: &str,
    ) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        tx.execute(
            "INSERT INTO pin_letters (order_id, manifest, uploaded_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(order_id) DO UPDATE SET manifest = ?2, uploaded_at = ?3, purged_at = NULL",
            params![order.0, manifest, uploaded_at],
        )?;
        append_audit(
            &mut *tx,
            operator,
            "order.pin-letters",
            &format!("order {order}"),
            &format!("PIN letter manifest {manifest} written {uploaded_at} (mode 0600)"),
        )?;
        tx.commit()?;
        self.appended = true;
        Ok(())
    }

    fn unpurged_pin_letters(&self) -> Result<Vec<PinLetters>, JournalError> {
        self.reader()?.rows(
            "SELECT order_id, manifest, uploaded_at FROM pin_letters WHERE purged_at IS NULL ORDER BY order_id",
            params![], |r| {
                Ok(PinLetters {
                    order: OrderId(r.get(0)?),
                    manifest: r.get(1)?,
                    uploaded_at: r.get(2)?,
                })
            },
        )
    }

    fn record_pin_letters_purged(
        &mut self,
        order: OrderId,
        purged_at: &str,
        details: &str,
        operator: &str,
    ) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        let changed = tx.execute(
            "UPDATE pin_letters SET purged_at = ?1 WHERE order_id = ?2 AND purged_at IS NULL",
            params![purged_at, order.0],
        )?;
        if changed == 0 {
            return Err(JournalError::Database {
                path: tx.location().to_owned(),
                reason: format!("order {order} has no PIN letters awaiting the purge"),
            });
        }
        tx.execute(
            "UPDATE card_secrets SET pin = NULL, puk = NULL, old_pin = NULL, old_puk = NULL
             WHERE device_id IN (SELECT id FROM devices WHERE order_id = ?1)",
            params![order.0],
        )?;
        append_audit(
            &mut *tx,
            operator,
            "order.pin-letters-purged",
            &format!("order {order}"),
            details,
        )?;
        tx.commit()?;
        self.appended = true;
        Ok(())
    }

    fn record_pending_card_secrets(
        &mut self,
        device: &Device,
        certificate_serial: &str,
        reader: &str,
        new: (&crate::pkcs11::pin::Pin, &crate::pkcs11::pin::Pin),
        old: (&crate::pkcs11::pin::Pin, &crate::pkcs11::pin::Pin),
        operator: &str,
    ) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        Self::check_claims(&self.leases, &mut *tx, &[device])?;
        tx.execute(
            "INSERT INTO card_secrets
                 (certificate_serial, device_id, reader, pin, puk, recorded_at, state, old_pin, old_puk)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7, ?8)",
            params![
                certificate_serial,
                device.id,
                reader,
                new.0.expose(),
                new.1.expose(),
                now_rfc3339(),
                old.0.expose(),
                old.1.expose()
            ],
        )?;
        append_audit(
            &mut *tx,
            operator,
            "card.secrets-recorded",
            &format!("certificate {certificate_serial}"),
            &format!(
                "device {}: a fresh random PIN and PUK for the card in reader {reader:?}, \
                 pending until the card took them, held until the order's PIN letters are purged",
                device.name
            ),
        )?;
        tx.commit()?;
        self.appended = true;
        Ok(())
    }

    fn card_secrets_held(
        &self,
        certificate_serial: &str,
    ) -> Result<Option<HeldCardSecrets>, JournalError> {
        self.reader()?.row(
            "SELECT d.serial, s.certificate_serial, s.reader, s.pin, s.puk, s.state, s.old_pin, s.old_puk
             FROM card_secrets s JOIN devices d ON d.id = s.device_id
             WHERE s.certificate_serial = ?1",
            params![certificate_serial],
            held_card_secrets_from_row,
        )
    }

    fn confirm_card_secrets(
        &mut self,
        certificate_serial: &str,
        operator: &str,
    ) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        let changed = tx.execute(
            "UPDATE card_secrets SET state = 'set', old_pin = NULL, old_puk = NULL
             WHERE certificate_serial = ?1 AND state = 'pending' AND pin IS NOT NULL",
            params![certificate_serial],
        )?;
        if changed == 0 {
            return Err(JournalError::Database {
                path: tx.location().to_owned(),
                reason: format!(
                    "certificate {certificate_serial} has no pending card PIN and PUK to confirm"
                ),
            });
        }
        append_audit(
            &mut *tx,
            operator,
            "card.secrets-set",
            &format!("certificate {certificate_serial}"),
            "the card took its fresh PIN and PUK and verified the PIN; the ones it had before are erased",
        )?;
        tx.commit()?;
        self.appended = true;
        Ok(())
    }

    fn stray_card_secrets(&self) -> Result<Vec<StrayCardSecrets>, JournalError> {
        self.reader()?.rows(
            "SELECT s.certificate_serial, d.serial, d.order_id, s.recorded_at
             FROM card_secrets s
             JOIN devices d ON d.id = s.device_id
             JOIN certificates c ON c.serial_hex = s.certificate_serial
             WHERE s.pin IS NOT NULL AND c.status <> 'issued'
             ORDER BY s.recorded_at, s.certificate_serial",
            params![],
            |r| {
                Ok(StrayCardSecrets {
                    certificate_serial: r.get(0)?,
                    device_serial: r.get(1)?,
                    order: OrderId(r.get(2)?),
                    recorded_at: r.get(3)?,
                })
            },
        )
    }

    fn erase_stray_card_secrets(
        &mut self,
        certificate_serial: &str,
        details: &str,
        operator: &str,
    ) -> Result<(), JournalError> {
        let mut tx = WriteTx::begin(self.db.get_mut().as_mut())?;
        let changed = tx.execute(
            "UPDATE card_secrets SET pin = NULL, puk = NULL, old_pin = NULL, old_puk = NULL
             WHERE certificate_serial = ?1 AND pin IS NOT NULL
             AND certificate_serial NOT IN (SELECT serial_hex FROM certificates WHERE status = 'issued')",
            params![certificate_serial],
        )?;
        if changed == 0 {
            return Err(JournalError::Database {
                path: tx.location().to_owned(),
                reason: format!(
                    "certificate {certificate_serial} has no PIN and PUK of a card without an issued certificate to erase"
                ),
            });
        }
        append_audit(
            &mut *tx,
            operator,
            "card.secrets-erased",
            &format!("certificate {certificate_serial}"),
            details,
        )?;
        tx.commit()?;
        self.appended = true;
        Ok(())
    }
}

impl SqlJournal {
    /// The issuer's CRLs, ordered and limited by `tail`.
    fn crls_where(&self, issuer_key_id: &[u8], tail: &str) -> Result<Vec<CrlRecord>, JournalError> {
        let sql = format!(
            "SELECT issuer_key_id, number, this_update, next_update, entries, sha256, recorded_at, operator
             FROM crls WHERE issuer_key_id = ?1 {tail}"
        );
        self.reader()?
            .rows(&sql, params![crate::pem::hex(issuer_key_id)], |r| {
                Ok(CrlRecord {
                    issuer_key_id: r.get(0)?,
                    number: r.get::<i64>(1)?.try_into().unwrap_or_default(),
                    this_update: r.get(2)?,
                    next_update: r.get(3)?,
                    entries: r.get::<i64>(4)?.try_into().unwrap_or_default(),
                    sha256: r.get(5)?,
                    recorded_at: r.get(6)?,
                    operator: r.get(7)?,
                })
            })
    }

    fn orders_where(
        &self,
        filter: &str,
        args: &[Param<'_>],
    ) -> Result<Vec<OrderSummary>, JournalError> {
        let sql = format!(
            "SELECT o.id, o.kind, o.state, o.manufacturer, o.manufacturer_vkn, o.prefixes, o.parent_order, o.target, o.key_type,
                    o.created_at, o.paid_at, o.paid_by,
                    (SELECT COUNT(*) FROM devices d WHERE d.order_id = o.id),
                    (SELECT COUNT(*) FROM devices d WHERE d.order_id = o.id AND d.state IN ('verified', 'delivered')),
                    dl.uploaded_at, dl.purge_due, dl.purged_at, o.one_off
             FROM orders o LEFT JOIN deliveries dl ON dl.order_id = o.id {filter} ORDER BY o.id"
        );
        self.reader()?.rows(&sql, args, |r| {
            let paid_at: Option<String> = r.get(10)?;
            let paid_by: Option<String> = r.get(11)?;
            let prefixes: String = r.get(5)?;
            Ok(OrderSummary {
                id: OrderId(r.get(0)?),
                kind: parse::<OrderKind>(r.get(1)?)?,
                state: parse::<OrderState>(r.get(2)?)?,
                manufacturer: r.get(3)?,
                manufacturer_vkn: read_taxpayer(&r.get::<String>(4)?).map_err(BadRow)?,
                prefixes: prefixes
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect(),
                parent: r.get::<Option<i64>>(6)?.map(OrderId),
                target: parse::<Target>(r.get(7)?)?,
                key_type: r
                    .get::<String>(8)?
                    .parse::<KeyType>()
                    .map_err(|e| BadRow(e.to_string()))?,
                created_at: r.get(9)?,
                paid: paid_at
                    .zip(paid_by)
                    .map(|(at, by)| crate::journal::Payment { at, by }),
                devices: u64::try_from(r.get::<i64>(12)?).unwrap_or(0),
                verified: u64::try_from(r.get::<i64>(13)?).unwrap_or(0),
                uploaded_at: r.get(14)?,
                purge_due: r.get(15)?,
                purged_at: r.get(16)?,
                one_off: r.get(17)?,
            })
        })
    }
}

impl AuditStorage for SqlJournal {
    fn audit_checkpoints(&self) -> Result<AuditCheckpoints, JournalError> {
        let key = AuditKey::load(&self.anchor)?;
        let lines = checkpoint::read(&self.anchor, key.as_ref())?;
        Ok(AuditCheckpoints {
            has_key: key.is_some(),
            lines,
        })
    }

    fn audit_head(&self) -> Result<Option<(i64, Vec<u8>)>, JournalError> {
        Self::head(self.reader()?.as_mut())
    }

    fn each_audit_record(&self, each: &mut dyn FnMut(AuditRecord)) -> Result<(), JournalError> {
        let mut db = self.reader()?;
        let location = db.location().to_owned();
        db.each(
            "SELECT seq, at, operator, event, subject, details, prev_hash, hash FROM audit ORDER BY seq",
            params![],
            &mut |r| {
                let record = (|| {
                    Ok::<_, BadRow>(AuditRecord {
                        seq: r.get(0)?,
                        at: r.get(1)?,
                        operator: r.get(2)?,
                        event: r.get(3)?,
                        subject: r.get(4)?,
                        details: r.get(5)?,
                        prev_hash: r.get(6)?,
                        hash: r.get(7)?,
                    })
                })()
                .map_err(|e| JournalError::Database {
                    path: location.clone(),
                    reason: e.0,
                })?;
                each(record);
                Ok(())
            },
        )
    }

    fn each_audited_fact(&self, each: &mut dyn FnMut(AuditedFact<'_>)) -> Result<(), JournalError> {
        each_audited_row(self.reader()?.as_mut(), each)
    }
}

/// The rows of every table the audit log describes, in the order
/// [`AuditStorage::each_audited_fact`] gives them, a row at a time.
fn each_audited_row(
    db: &mut dyn Database,
    each: &mut dyn FnMut(AuditedFact<'_>),
) -> Result<(), JournalError> {
    let location = db.location().to_owned();
    let bad = |e: BadRow| JournalError::Database {
        path: location.clone(),
        reason: e.0,
    };
    db.each(
        "SELECT vkn FROM manufacturers ORDER BY vkn",
        params![],
        &mut |r| {
            each(AuditedFact::Manufacturer {
                vkn: &r.get::<String>(0).map_err(bad)?,
            });
            Ok(())
        },
    )?;
    db.each("SELECT id FROM orders ORDER BY id", params![], &mut |r| {
        each(AuditedFact::Order {
            id: r.get(0).map_err(bad)?,
        });
        Ok(())
    })?;
    db.each(
        "SELECT serial_hex, status, sha256, der FROM certificates ORDER BY id",
        params![],
        &mut |row| {
            let serial: String = row.get(0).map_err(bad)?;
            let status: String = row.get(1).map_err(bad)?;
            let sha256: Option<String> = row.get(2).map_err(bad)?;
            let der: Option<Vec<u8>> = row.get(3).map_err(bad)?;
            each(AuditedFact::Certificate {
                serial: &serial,
                status: &status,
                sha256: sha256.as_deref(),
                der: der.as_deref(),
            });
            Ok(())
        },
    )?;
    db.each(
        "SELECT serial_hex, certificate_id IS NULL, revoked_at, reason, invalidity_date, issuer_key_id
         FROM revocations ORDER BY id",
        params![],
        &mut |row| {
            let serial: String = row.get(0).map_err(bad)?;
            let revoked_at: String = row.get(2).map_err(bad)?;
            let reason: String = row.get(3).map_err(bad)?;
            let invalidity_date: Option<String> = row.get(4).map_err(bad)?;
            let issuer_key_id: String = row.get(5).map_err(bad)?;
            each(AuditedFact::Revocation {
                serial: &serial,
                of_ca_certificate: row.get(1).map_err(bad)?,
                revoked_at: &revoked_at,
                reason: &reason,
                invalidity_date: invalidity_date.as_deref(),
                issuer_key_id: &issuer_key_id,
            });
            Ok(())
        },
    )?;
    db.each(
        "SELECT issuer_key_id, number FROM crls ORDER BY issuer_key_id, number",
        params![],
        &mut |row| {
            each(AuditedFact::Crl {
                issuer_key_id: &row.get::<String>(0).map_err(bad)?,
                number: row.get(1).map_err(bad)?,
            });
            Ok(())
        },
    )?;
    db.each(
        "SELECT issuer_key_id, last_allocated FROM crl_numbers ORDER BY issuer_key_id",
        params![],
        &mut |row| {
            each(AuditedFact::CrlNumber {
                issuer_key_id: &row.get::<String>(0).map_err(bad)?,
                last_allocated: row.get(1).map_err(bad)?,
            });
            Ok(())
        },
    )
}

/// A row of `card_secrets` joined with its device, with its state: (device
/// serial, certificate serial, reader, PIN, PUK, state, old PIN, old PUK).
/// An erased row (NULL PIN) is [`HeldCardSecrets::Erased`].
fn held_card_secrets_from_row(r: &Row) -> Result<HeldCardSecrets, BadRow> {
    if r.get::<Option<String>>(3)?.is_none() {
        return Ok(HeldCardSecrets::Erased);
    }
    let secrets = card_secrets_from_row(r)?;
    let state: String = r.get(5)?;
    match state.as_str() {
        "set" => Ok(HeldCardSecrets::Set(secrets)),
        "pending" => {
            let secret = |index: usize, what: &str| -> Result<crate::pkcs11::pin::Pin, BadRow> {
                let value: Option<String> = r.get(index)?;
                let value = value.ok_or_else(|| BadRow(format!("a pending {what} is missing")))?;
                crate::pkcs11::pin::Pin::new(value, what).map_err(|e| BadRow(e.to_string()))
            };
            Ok(HeldCardSecrets::Pending {
                old_pin: secret(6, "card's previous PIN")?,
                old_puk: secret(7, "card's previous PUK")?,
                new: secrets,
            })
        }
        other => Err(BadRow(format!("card secrets in state {other:?}"))),
    }
}

/// A row of `card_secrets` joined with its device: (device serial,
/// certificate serial, reader, PIN, PUK). A stored PIN that is not one
/// (empty) means the row was changed outside certmint.
fn card_secrets_from_row(r: &Row) -> Result<CardSecrets, BadRow> {
    let secret = |index: usize, what: &str| -> Result<crate::pkcs11::pin::Pin, BadRow> {
        let value: String = r.get(index)?;
        crate::pkcs11::pin::Pin::new(value, what).map_err(|e| BadRow(e.to_string()))
    };
    Ok(CardSecrets {
        device_serial: r.get(0)?,
        certificate_serial: r.get(1)?,
        reader: r.get(2)?,
        pin: secret(3, "stored card PIN")?,
        puk: secret(4, "stored card PUK")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::sql::sqlite::MIGRATIONS;
    use crate::journal::SCHEMA_VERSION;
    use crate::order::model::Application;
    use crate::order::serial_list::ListedSerial;
    use rusqlite::Connection;

    /// A second connection to the journal's file, to look at or change it
    /// behind the journal's back.
    fn raw(journal: &SqlJournal) -> Connection {
        Connection::open(journal.location()).unwrap()
    }

    fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
    }

    /// Each lookup of a device's certificate goes through an index: a scan
    /// of the certificates per device makes delivery and recovery O(n²).
    #[test]
    fn certificate_lookups_by_device_use_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let journal = SqlJournal::open(&dir.path().join("j.sqlite")).unwrap();
        for query in [
            ISSUED_PAGE,
            DANGLING_INTENTS,
            EARLIER_DEVICE,
            AUDIT_OF_ORDER,
        ] {
            let raw = raw(&journal);
            let mut explain = raw.prepare(&format!("EXPLAIN QUERY PLAN {query}")).unwrap();
            let parameters = rusqlite::params_from_iter(vec![1; explain.parameter_count()]);
            let plan: Vec<String> = explain
                .query_map(parameters, |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert!(
                !plan.iter().any(|step| step.starts_with("SCAN c")),
                "{query}\n{plan:#?}"
            );
        }
    }

    #[test]
    fn a_new_journal_has_the_latest_schema_and_a_newer_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let journal = SqlJournal::open(&path).unwrap();
        assert_eq!(schema_version(&raw(&journal)).unwrap(), SCHEMA_VERSION);
        assert_eq!(
            MIGRATIONS.last().map(|m| m.version),
            Some(SCHEMA_VERSION),
            "the last step is the version this build writes"
        );
        assert!(MIGRATIONS
            .windows(2)
            .all(|w| w[1].version == w[0].version + 1));
        raw(&journal)
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(journal);
        let refused = SqlJournal::open(&path).unwrap_err().to_string();
        assert!(
            refused.contains(&format!(
                "its schema is version {}, newer than this certmint knows ({SCHEMA_VERSION})",
                SCHEMA_VERSION + 1
            )),
            "{refused}"
        );
    }

    /// A journal with one soft order in `state`, two devices with passwords,
    /// and a trigger that makes the statement `fail_on` fail.
    fn journal_failing_on(state: &str, fail_on: &str) -> (tempfile::TempDir, SqlJournal) {
        let dir = tempfile::tempdir().unwrap();
        let journal = SqlJournal::open(&dir.path().join("j.sqlite")).unwrap();
        raw(&journal).execute_batch(&format!(
                "INSERT INTO orders (id, kind, manufacturer, manufacturer_vkn, prefixes, target, key_type, state, source, created_at)
                 VALUES (1, 'okc', 'M', '4540536920', 'FU', 'soft', 'p256', '{state}', 'list', '2026-01-01T00:00:00Z');
                 INSERT INTO devices (order_id, serial, line_no, state, p12_password) VALUES
                   (1, 'FU10000001', 1, 'verified', 'secret-one'), (1, 'FU10000002', 2, 'verified', 'secret-two');
                 INSERT INTO deliveries (order_id, folder, uploaded_at) SELECT 1, '/d/order-1', '2026-01-02T00:00:00Z' WHERE '{state}' = 'delivered';
                 CREATE TRIGGER injected_failure {fail_on} BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
            ))
            .unwrap();
        (dir, journal)
    }

    fn state_and_rows(journal: &SqlJournal) -> (String, i64, i64, i64) {
        raw(journal).query_row(
                "SELECT (SELECT state FROM orders WHERE id = 1),
                        (SELECT COUNT(*) FROM deliveries WHERE purged_at IS NULL),
                        (SELECT COUNT(*) FROM devices WHERE p12_password IS NOT NULL AND state = 'verified'),
                        (SELECT COUNT(*) FROM audit)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap()
    }

    fn delivery() -> DeliveryRecord<'static> {
        DeliveryRecord {
            folder: "/d/order-1",
            passwords: Some("/d/order-1.passwords.csv"),
            uploaded_at: "2026-01-02T00:00:00Z",
            purge_due: Some("2026-01-16"),
        }
    }

    /// The delivered state, the delivery row and the devices' state are one
    /// transaction: when a later statement fails, the order is still
    /// produced (the next run delivers it), with no row and no audit record.
    #[test]
    fn a_delivery_is_recorded_whole_or_not_at_all() {
        for fail_on in [
            "AFTER INSERT ON deliveries",
            "AFTER INSERT ON delivery_files",
            "AFTER UPDATE ON devices",
        ] {
            let (_dir, mut journal) = journal_failing_on("produced", fail_on);
            let failed = journal.record_delivery(OrderId(1), &delivery(), "op");
            assert!(failed.is_err(), "{fail_on}");
            assert_eq!(
                state_and_rows(&journal),
                ("produced".into(), 0, 2, 0),
                "{fail_on}"
            );
        }
        let (_dir, mut journal) = journal_failing_on("produced", "AFTER DELETE ON orders");
        journal
            .record_delivery(OrderId(1), &delivery(), "op")
            .unwrap();
        assert_eq!(
            journal.unpurged_soft_deliveries().unwrap(),
            vec![SoftDelivery {
                order: OrderId(1),
                folder: "/d/order-1".into(),
                passwords: Some("/d/order-1.passwords.csv".into()),
                uploaded_at: "2026-01-02T00:00:00Z".into(),
                purge_started: false,
            }]
        );
    }

    /// The purged state, `purged_at` and the erasure of the passwords are one
    /// transaction: when erasing fails, the order is still delivered with its
    /// passwords, so the next purge run finds it and finishes.
    #[test]
    fn a_purge_is_recorded_whole_or_not_at_all() {
        for fail_on in [
            "AFTER UPDATE ON deliveries",
            "AFTER UPDATE OF p12_password ON devices",
        ] {
            let (_dir, mut journal) = journal_failing_on("delivered", fail_on);
            let failed =
                journal.record_purge(OrderId(1), "2026-02-01T00:00:00Z", "2 deleted", "op");
            assert!(failed.is_err(), "{fail_on}");
            let (state, unpurged, passwords, _) = state_and_rows(&journal);
            assert_eq!(
                (state.as_str(), unpurged, passwords),
                ("delivered", 1, 2),
                "{fail_on}"
            );
            assert_eq!(journal.unpurged_soft_deliveries().unwrap().len(), 1);
        }
    }
    fn journal_with_an_order(dir: &Path) -> (SqlJournal, Device) {
        let mut journal = SqlJournal::open(&dir.join("j.sqlite")).unwrap();
        let order = NewOrder {
            kind: OrderKind::Okc,
            manufacturer: "M".into(),
            manufacturer_vkn: Some(TaxpayerId::Vkn(
                crate::ids::Vkn::parse("4540536920", crate::ids::IdMode::Production).unwrap(),
            )),
            prefixes: vec!["FU".into()],
            application: Application::Initial,
            target: Target::Soft,
            key_type: KeyType::EcP256,
            source: "test".into(),
            operator: "op".into(),
        };
        let serials = vec![Ok(ListedSerial {
            line: 1,
            serial: crate::ids::DeviceSerial::parse("FU12345678", &crate::ids::PrefixTable::any())
                .unwrap(),
        })];
        let report = crate::order::import::import_order(
            &mut journal,
            &order,
            &mut serials
                .into_iter()
                .map(|item| item.map(crate::order::import::Listed::from)),
            false,
        )
        .unwrap();
        let id = report.order.unwrap();
        journal.mark_paid(id, "op").unwrap();
        let device = journal.pending_devices(id, 0, 10).unwrap().remove(0);
        (journal, device)
    }

    fn holder(name: &str, host: &str) -> LeaseHolder {
        LeaseHolder {
            holder_id: format!("{name}-id"),
            host: host.into(),
            boot_id: "boot".into(),
            pid_namespace: "pid:[1]".into(),
            pid: 1,
            start_time: 0,
            operator: name.into(),
        }
    }

    /// An exclusive lease: a live holder's lease is refused to another
    /// (naming the holder), given back it can be taken, and an expired one
    /// is taken over (audited). A producer whose lease was taken over is
    /// refused its next production write.
    #[test]
    fn an_exclusive_lease_has_one_holder_and_a_taken_over_holder_writes_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let (mut first, device) = journal_with_an_order(dir.path());
        let mut second = SqlJournal::open(&dir.path().join("j.sqlite")).unwrap();
        let order = device.order;
        let (alice, bob) = (holder("alice", "station-1"), holder("bob", "station-2"));

        let exclusive = Sharing::Exclusive;
        assert_eq!(
            first
                .acquire_lease(order, &alice, Duration::from_secs(60), exclusive)
                .unwrap(),
            vec![]
        );
        assert_eq!(
            first
                .claim_devices(order, &alice, 10)
                .unwrap()
                .devices
                .len(),
            1
        );
        let refused = second
            .acquire_lease(order, &bob, Duration::from_secs(60), exclusive)
            .unwrap_err();
        let message = refused.to_string();
        assert!(matches!(refused, JournalError::Held { .. }), "{message}");
        assert!(
            message.contains("operator alice on host station-1 (pid 1)"),
            "{message}"
        );
        first
            .renew_lease(order, &alice, Duration::from_millis(1))
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));

        let taken = second
            .acquire_lease(order, &bob, Duration::from_secs(60), exclusive)
            .unwrap();
        assert_eq!(
            taken.into_iter().map(|l| l.holder).collect::<Vec<_>>(),
            vec![alice.clone()]
        );
        let lost = first
            .record_intent(&device, "01", b"tbs", "test", "alice")
            .unwrap_err();
        assert!(matches!(lost, JournalError::LeaseLost { .. }), "{lost}");
        assert!(matches!(
            first.renew_lease(order, &alice, Duration::from_secs(60)),
            Err(JournalError::LeaseLost { .. })
        ));
        // The device alice had claimed is free: bob takes it up.
        let claimed = second.claim_devices(order, &bob, 10).unwrap();
        assert_eq!(claimed.devices.len(), 1);
        second
            .record_intent(&device, "01", b"tbs", "test", "bob")
            .unwrap();
        // Giving back a lease one no longer holds leaves the holder's alone.
        first.release_lease(order, &alice).unwrap();
        let holders = |journal: &SqlJournal| -> Vec<LeaseHolder> {
            journal
                .leases(order)
                .unwrap()
                .into_iter()
                .map(|l| l.holder)
                .collect()
        };
        assert_eq!(holders(&second), vec![bob.clone()]);
        second.release_lease(order, &bob).unwrap();
        assert_eq!(holders(&second), vec![]);
        let audit = second.verify_audit().unwrap();
        assert!(audit.is_intact());
        let events: i64 = raw(&second)
            .query_row(
                "SELECT COUNT(*) FROM audit WHERE event = 'order.lease-taken-over'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(events, 1);
    }

    /// Shared leases: producers split an order's devices, each claimed by
    /// one; a producer that let its lease expire loses its claims to the
    /// others, and what it then writes of them is refused.
    #[test]
    fn shared_producers_claim_each_device_once_and_a_lapsed_one_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (mut first, device) = journal_with_an_order(dir.path());
        let mut second = SqlJournal::open(&dir.path().join("j.sqlite")).unwrap();
        let order = device.order;
        let (alice, bob) = (holder("alice", "station-1"), holder("bob", "station-2"));
        first
            .acquire_lease(order, &alice, Duration::from_secs(60), Sharing::Shared)
            .unwrap();
        second
            .acquire_lease(order, &bob, Duration::from_secs(60), Sharing::Shared)
            .unwrap();
        // An exclusive producer is kept out while shared ones work.
        let mut third = SqlJournal::open(&dir.path().join("j.sqlite")).unwrap();
        let carol = holder("carol", "station-3");
        assert!(matches!(
            third.acquire_lease(order, &carol, Duration::from_secs(60), Sharing::Exclusive),
            Err(JournalError::Held { .. })
        ));
        let mine = first.claim_devices(order, &alice, 10).unwrap();
        assert_eq!(mine.devices, vec![device.clone()]);
        first
            .renew_lease(order, &alice, Duration::from_millis(1))
            .unwrap();
        std::thread::sleep(Duration::from_millis(5));
        // Alice's lease lapsed (another host: only its expiry counts): bob
        // takes it over at his next claim and gets her device.
        let taken = second.claim_devices(order, &bob, 10).unwrap();
        assert_eq!(taken.devices, vec![device.clone()]);
        assert_eq!(taken.held_by_others, 0);
        let lost = first
            .record_intent(&device, "01", b"tbs", "test", "alice")
            .unwrap_err();
        assert!(matches!(lost, JournalError::LeaseLost { .. }), "{lost}");
        second
            .record_intent(&device, "01", b"tbs", "test", "bob")
            .unwrap();
        let stations = second.stations(order, &bob).unwrap();
        assert_eq!(stations.len(), 2);
        assert!(stations[0].live && stations[0].lease.holder == bob);
        assert!(!stations[1].live && stations[1].released_at.is_some());
        assert!(second.verify_audit().unwrap().is_intact());
    }

    /// A journal another process keeps locked past the bounded wait is
    /// reported as busy, in words, never as SQLite's raw "database is locked".
    #[test]
    fn a_journal_locked_past_the_wait_is_reported_busy_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let (first, device) = journal_with_an_order(dir.path());
        drop(first);
        let path = dir.path().join("j.sqlite");
        let db = crate::journal::sql::sqlite::SqliteDb::open(&path).unwrap();
        db.connection()
            .busy_timeout(Duration::from_millis(100))
            .unwrap();
        let mut journal = SqlJournal::with(Box::new(db), path).unwrap();
        let other = Connection::open(dir.path().join("j.sqlite")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let error = journal
            .record_intent(&device, "01", b"tbs", "test", "op")
            .unwrap_err();
        let message = error.to_string();
        assert!(matches!(error, JournalError::Busy { .. }), "{message}");
        assert!(!message.contains("database is locked"), "{message}");
        assert!(message.contains("is busy"), "{message}");
        other.execute_batch("ROLLBACK").unwrap();
        journal
            .record_intent(&device, "01", b"tbs", "test", "op")
            .unwrap();
    }

    /// A write transaction waits for another writer instead of failing at
    /// once: a transaction that read before another process committed
    /// cannot upgrade to a write (SQLITE_BUSY_SNAPSHOT, which no busy
    /// timeout retries), so writes take the lock first (BEGIN IMMEDIATE).
    #[test]
    fn a_write_waits_for_another_writer_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let (_journal, device) = journal_with_an_order(dir.path());
        let path = dir.path().join("j.sqlite");
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let path = path.clone();
                let device = device.clone();
                std::thread::spawn(move || {
                    let mut journal = SqlJournal::open(&path).unwrap();
                    for i in 0..50 {
                        journal
                            .audit("op", "test", &format!("writer {w}"), &format!("{i}"))
                            .unwrap();
                        journal
                            .record_key(&device, &format!("{w}{i}"), "op")
                            .unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
    }

    /// A TBS certificate (made by OpenSSL) whose authorityKeyIdentifier
    /// names the key [`TBS_ISSUER`].
    const TBS: &str = "30820113a003020102021422620ee5915459bbfe8a82b141f0c88fbb5aa15e300a06082a8648ce3d040302300c310a300806035504030c0174301e170d3236313230353233343930335a170d3236313230363233343930335a300c310a300806035504030c01743059301306072a8648ce3d020106082a8648ce3d03010703420004ba9e777ce160e87982532c5db7a4e88b6972a6ac276676a0767c56a46ec8c38aa523a09ac42558e0fad01706555b4e40c82d88a7515d3f78ee89341c9f4095e0a3533051300f0603551d130101ff040530030101ff301f0603551d230418301680147268870411497e28047d36c9d5d9ed78160703b1301d0603551d0e041604147268870411497e28047d36c9d5d9ed78160703b1";
    const TBS_ISSUER: &str = "7268870411497E28047D36C9D5D9ED78160703B1";

    fn revoked(journal: &SqlJournal) -> Vec<(String, RevocationReason)> {
        let mut entries = Vec::new();
        journal
            .revoked_entries(&crate::pem::unhex(TBS_ISSUER), &mut |e| {
                entries.push((crate::pem::hex(&e.serial), e.reason));
                Ok(())
            })
            .unwrap();
        entries
    }

    #[test]
    fn the_issuer_of_a_tbs_is_its_authority_key_identifier() {
        assert_eq!(
            crate::pem::hex(&issuer_key_id_of_tbs(&crate::pem::unhex(TBS)).unwrap()),
            TBS_ISSUER
        );
        assert!(issuer_key_id_of_tbs(b"tbs").is_err());
    }

    /// The card station's pulled card, a crash recovery and a one-off
    /// failure all void the intent through `void_intent`: the voided
    /// certificate is revoked as superseded in the same transaction.
    #[test]
    fn a_voided_intent_is_revoked_as_superseded_and_revoking_it_again_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, device) = journal_with_an_order(dir.path());
        let tbs = crate::pem::unhex(TBS);
        journal
            .record_intent(&device, "7F01", &tbs, "test", "op")
            .unwrap();
        let request = RevocationRequest {
            serial_hex: "7F01".into(),
            reason: RevocationReason::KeyCompromise,
            invalidity_date: None,
        };
        assert!(matches!(
            journal.revoke(&request, "op"),
            Err(JournalError::NotRevocable { .. })
        ));
        journal
            .void_intent(
                "7F01",
                "station",
                "card pulled after its certificate was written",
            )
            .unwrap();
        assert_eq!(
            revoked(&journal),
            [("7F01".to_owned(), RevocationReason::Superseded)]
        );
        assert_eq!(
            journal.revocation("7F01").unwrap().unwrap().operator,
            "station"
        );
        assert!(matches!(
            journal.revoke(&request, "op").unwrap(),
            RevokeOutcome::AlreadyRevoked {
                reason: RevocationReason::Superseded,
                ..
            }
        ));
        assert!(matches!(
            journal.revoke(
                &RevocationRequest {
                    serial_hex: "AB".into(),
                    ..request.clone()
                },
                "op"
            ),
            Err(JournalError::NoCertificate(_))
        ));
        let report = journal.verify_audit().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        // A revocation added behind the log's back is a break.
        raw(&journal).execute(
                "INSERT INTO revocations (serial_hex, issuer_key_id, revoked_at, reason, operator) VALUES ('01', 'AA', 'x', 'unspecified', 'x')",
                [],
            )
            .unwrap();
        let report = journal.verify_audit().unwrap();
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.problem.contains("ca-certificate 01 is revoked")),
            "{:?}",
            report.problems
        );
    }

    /// A reissue whose signature never became a certificate supersedes
    /// nothing: voiding its intent puts the certificate it was to replace
    /// back in force, and the audit log still verifies.
    #[test]
    fn a_failed_reissue_leaves_the_old_certificate_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, device) = journal_with_an_order(dir.path());
        let tbs = crate::pem::unhex(TBS);
        let intent = |serial| Intent {
            device: &device,
            serial_hex: serial,
            tbs: &tbs,
            key_note: "test",
        };
        journal
            .record_single_intent(&intent("01"), None, "op")
            .unwrap();
        let der = b"certificate".to_vec();
        let stored = StoredCertificate {
            serial_hex: "01",
            der: &der,
            sha256: &crate::pem::hex(
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der).as_ref(),
            ),
            not_before: "2026-12-05T00:00:00Z",
            not_after: "2027-12-04T00:00:00Z",
            p12_password: None,
        };
        journal
            .record_single_issued(&device, &stored, "op")
            .unwrap();
        journal
            .record_single_intent(&intent("02"), Some("01"), "op")
            .unwrap();
        assert_eq!(
            journal.certificate_by_serial("01").unwrap().unwrap().status,
            "superseded"
        );
        journal
            .void_intent("02", "op", "the CA key failed")
            .unwrap();
        assert_eq!(
            journal.certificate_by_serial("01").unwrap().unwrap().status,
            "issued"
        );
        assert_eq!(
            journal.certificate_by_serial("02").unwrap().unwrap().status,
            "void"
        );
        // The voided reissue is revoked; the certificate in force again is not.
        assert_eq!(
            revoked(&journal),
            [("02".to_owned(), RevocationReason::Superseded)]
        );
        let report = journal.verify_audit().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }

    /// The condition of every device state change is the typed rule: the
    /// states a device may move from, and the state itself.
    #[test]
    fn device_state_changes_follow_the_typed_rule() {
        use DeviceState::*;
        assert_eq!(
            moving_to(&[IntentRecorded]),
            "state IN ('planned', 'key-generated', 'intent-recorded')"
        );
        assert_eq!(
            moving_to(&[Verified]),
            "state IN ('intent-recorded', 'verified')"
        );
        assert_eq!(
            moving_to(&[Planned, KeyGenerated]),
            "state IN ('planned', 'key-generated', 'intent-recorded')"
        );
        assert_eq!(
            moving_to(&[Delivered]),
            "state IN ('verified', 'delivered')"
        );
    }

    /// A move the rule forbids is refused by the journal, naming the device
    /// and both states: a device without an intent is never recorded
    /// verified, and a verified one gets no key generated again.
    #[test]
    fn the_journal_refuses_a_device_move_the_rule_forbids() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, device) = journal_with_an_order(dir.path());
        let der = b"certificate".to_vec();
        let sha256 =
            crate::pem::hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der).as_ref());
        let stored = |serial| StoredCertificate {
            serial_hex: serial,
            der: &der,
            sha256: &sha256,
            not_before: "2026-12-05T00:00:00Z",
            not_after: "2027-12-04T00:00:00Z",
            p12_password: Some("pw"),
        };
        // Planned, no intent: never verified.
        let refused = journal
            .record_verified_devices(
                &[VerifiedDevice {
                    device: &device,
                    certificate: stored("01"),
                }],
                "op",
            )
            .unwrap_err();
        assert!(
            matches!(
                refused,
                JournalError::Database { .. } | JournalError::DeviceMove { .. }
            ),
            "{refused}"
        );
        let tbs = crate::pem::unhex(TBS);
        let intent = |serial| Intent {
            device: &device,
            serial_hex: serial,
            tbs: &tbs,
            key_note: "test",
        };
        journal.record_intents(&[intent("01")], "op").unwrap();
        journal
            .record_verified_devices(
                &[VerifiedDevice {
                    device: &device,
                    certificate: stored("01"),
                }],
                "op",
            )
            .unwrap();
        // Verified: no new intent in a production chunk (the database's
        // one-certificate-per-device index refuses it first), and no key
        // generated again, named.
        assert!(journal.record_intents(&[intent("02")], "op").is_err());
        let refused = journal.record_key(&device, "AB", "op").unwrap_err();
        assert!(
            matches!(
                &refused,
                JournalError::DeviceMove { device: name, from, to: DeviceState::KeyGenerated }
                    if name == "FU12345678" && from == "verified"
            ),
            "{refused}"
        );
        assert_eq!(
            refused.to_string(),
            "device FU12345678 is verified: it may not become key-generated"
        );
        let report = journal.verify_audit().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}
