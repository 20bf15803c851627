//! `certmint journal copy`: a station's journal moved into another (an
//! SQLite journal into the shared PostgreSQL one), in one write
//! transaction of the target.
//!
//! The source's audit chain must verify before anything is copied. Its
//! rows are added to the target's under new row ids: orders get the
//! target's next numbers (an order's audit records are renumbered with
//! it), devices, certificates and everything that refers to them follow.
//! Its audit records are appended to the target's chain in their order,
//! each with its own time, operator, event and details, and a last record
//! names the source, its chain's head and every order's new number, so the
//! copy can be traced back to the station's file. Records that would
//! conflict are refused before anything is written: a device serial or a
//! certificate serial in both, a revocation or a CRL number of one issuer
//! in both, a manufacturer registered differently, or a producer still at
//! work on the source.

use std::collections::HashMap;

use serde::Serialize;

use super::db::{params, Cell, Database, Param, Row, WriteTx};
use super::journal::{append_audit_at, lease_from_row, now_rfc3339, AuditChain, LEASE_COLUMNS};
use super::SqlJournal;
use crate::journal::{Journal, JournalError, LeaseHolder};

/// What a copy did.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// The source, as messages name it.
    pub from: String,
    /// The target, as messages name it.
    pub to: String,
    /// Each order's number in the source and in the target.
    pub orders: Vec<(i64, i64)>,
    /// Devices copied.
    pub devices: u64,
    /// Certificates copied (intents, issued, superseded, void).
    pub certificates: u64,
    /// Revocations copied.
    pub revocations: u64,
    /// CA certificates copied (the root's and the issuing CAs').
    pub ca_certificates: u64,
    /// Audit records appended to the target's chain.
    pub audit_records: u64,
    /// The target's audit chain after the copy: records, and whether it verifies.
    pub target_audit_records: u64,
}

/// Why a copy was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    /// The source's audit chain does not verify: it is not copied.
    #[error("the source journal's audit chain does not verify ({0} problem(s); run `certmint audit verify` on it): nothing was copied")]
    SourceBroken(usize),
    /// A record of the source conflicts with one of the target.
    #[error("{0}: nothing was copied")]
    Conflict(String),
    /// The target's audit chain does not verify after the copy.
    #[error("the target journal's audit chain does not verify after the copy ({0} problem(s)): run `certmint audit verify` on it")]
    TargetBroken(usize),
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl CopyError {
    /// What kind of failure this is (see [`crate::error`]).
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            CopyError::SourceBroken(_) | CopyError::TargetBroken(_) => ErrorKind::AuditBroken,
            CopyError::Conflict(_) => ErrorKind::Conflict,
            CopyError::Journal(e) => e.kind(),
        }
    }
}

/// A source row's value as a parameter of the target's statement.
fn param(cell: &Cell) -> Param<'_> {
    match cell {
        Cell::Null => Param::Null,
        Cell::Int(value) => Param::Int(*value),
        Cell::Text(text) => Param::Text(text),
        Cell::Blob(bytes) => Param::Blob(bytes),
    }
}

/// Every row of `sql` on `db`, whole (a station's journal: its rows fit in
/// memory table by table).
fn rows_of(db: &mut dyn Database, sql: &str) -> Result<Vec<Row>, JournalError> {
    let mut rows = Vec::new();
    db.each(sql, params![], &mut |row| {
        rows.push(row);
        Ok(())
    })?;
    Ok(rows)
}

fn int(row: &Row, index: usize) -> Result<i64, JournalError> {
    row.get(index).map_err(|e| JournalError::Database {
        path: "the source journal".into(),
        reason: e.0,
    })
}

fn text(row: &Row, index: usize) -> Result<String, JournalError> {
    row.get(index).map_err(|e| JournalError::Database {
        path: "the source journal".into(),
        reason: e.0,
    })
}

/// The source row's values from column `from` on, as parameters, the one
/// at `at` (counted from `from`) replaced by `value`: a row id in the
/// target's numbering.
fn params_of<'a>(
    row: &'a Row,
    from: usize,
    at: usize,
    value: Param<'a>,
) -> Result<Vec<Param<'a>>, JournalError> {
    let mut cells: Vec<Param<'a>> = row
        .0
        .get(from..)
        .unwrap_or_default()
        .iter()
        .map(param)
        .collect();
    let cell = cells.get_mut(at).ok_or_else(|| JournalError::Database {
        path: "the source journal".into(),
        reason: "a row has fewer columns than its query names".into(),
    })?;
    *cell = value;
    Ok(cells)
}

/// A row id mapped from the source's numbering to the target's.
fn mapped(map: &HashMap<i64, i64>, old: i64, what: &str) -> Result<i64, JournalError> {
    map.get(&old)
        .copied()
        .ok_or_else(|| JournalError::Database {
            path: "the source journal".into(),
            reason: format!("{what} {old} is referred to but not there"),
        })
}

/// Copies the journal `from` into `to` as `operator`.
pub fn copy_journal(
    from: &mut SqlJournal,
    to: &mut SqlJournal,
    operator: &str,
) -> Result<CopyReport, CopyError> {
    // One state of the source throughout: its chain verified and its rows
    // read in one read-only transaction.
    {
        let source = from.db.get_mut();
        source
            .begin_snapshot()
            .and_then(|()| source.allow_long_transaction())
            .map_err(|e| super::db::journal_error(source.location(), source.busy_wait_secs(), e))?;
    }
    let copied = copy_snapshot(from, to, operator);
    let source = from.db.get_mut();
    let _ = source.rollback();
    copied
}

/// [`copy_journal`], inside the source's snapshot.
fn copy_snapshot(
    from: &mut SqlJournal,
    to: &mut SqlJournal,
    operator: &str,
) -> Result<CopyReport, CopyError> {
    let audit = from.verify_audit()?;
    if !audit.is_intact() {
        return Err(CopyError::SourceBroken(audit.problems.len()));
    }
    let here = LeaseHolder::this_process(operator);
    let from_location = from.location();
    let to_location = to.location();
    let source = from.db.get_mut().as_mut();
    let source_now = source
        .now_ms()
        .map_err(|e| super::db::journal_error(source.location(), source.busy_wait_secs(), e))?;
    let at_work: Vec<String> = rows_of(
        source,
        &format!(
            "SELECT {LEASE_COLUMNS}, s.order_id FROM station_leases s WHERE s.released_at IS NULL"
        ),
    )?
    .iter()
    .filter_map(|row| live_producer(row, &here, source_now))
    .collect();
    if let Some(first) = at_work.first() {
        return Err(CopyError::Conflict(format!(
            "a producer is still at work on the source journal ({first}); copy it once it has finished"
        )));
    }
    let head = source.row(
        "SELECT seq, hash FROM audit_head WHERE id = 1",
        params![],
        |r| Ok((r.get::<i64>(0)?, r.get::<Vec<u8>>(1)?)),
    )?;

    // The copy holds the target's writer lock for its whole length: with
    // producers at work on the target, their writes would wait past the
    // bounded wait and fail.
    let target = to.db.get_mut().as_mut();
    let target_now = target
        .now_ms()
        .map_err(|e| super::db::journal_error(target.location(), target.busy_wait_secs(), e))?;
    let busy: Vec<String> = rows_of(
        target,
        &format!(
            "SELECT {LEASE_COLUMNS}, s.order_id FROM station_leases s WHERE s.released_at IS NULL"
        ),
    )?
    .iter()
    .filter_map(|row| live_producer(row, &here, target_now))
    .collect();
    if let Some(first) = busy.first() {
        return Err(CopyError::Conflict(format!(
            "a producer is at work on the target journal ({first}); copy into it while no order is being produced"
        )));
    }
    let mut tx = WriteTx::begin(to.db.get_mut().as_mut())?;
    tx.allow_long_transaction()
        .map_err(|e| super::db::journal_error(tx.location(), tx.busy_wait_secs(), e))?;
    refuse_conflicts(source, &mut *tx)?;
    let mut report = CopyReport {
        from: from_location.clone(),
        to: to_location,
        orders: Vec::new(),
        devices: 0,
        certificates: 0,
        revocations: 0,
        ca_certificates: 0,
        audit_records: 0,
        target_audit_records: 0,
    };

    // Manufacturers: one registered the same in both is the same.
    for row in rows_of(
        source,
        "SELECT vkn, name, prefixes, model_approval, secure_area_audit, registered_at, changed_at
         FROM manufacturers ORDER BY vkn",
    )? {
        let cells: Vec<Param<'_>> = row.0.iter().map(param).collect();
        tx.execute(
            "INSERT INTO manufacturers (vkn, name, prefixes, model_approval, secure_area_audit, registered_at, changed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (vkn) DO NOTHING",
            &cells,
        )?;
    }

    let mut orders: HashMap<i64, i64> = HashMap::new();
    for row in rows_of(
        source,
        "SELECT id, kind, manufacturer, manufacturer_vkn, prefixes, parent_order, target, key_type,
                state, source, created_at, paid_at, paid_by, one_off
         FROM orders ORDER BY id",
    )? {
        let old = int(&row, 0)?;
        let parent = match row.0.get(5) {
            Some(Cell::Int(parent)) => Param::Int(mapped(&orders, *parent, "order")?),
            _ => Param::Null,
        };
        let cells = params_of(&row, 1, 4, parent)?;
        let new: i64 = tx.query_row(
            "INSERT INTO orders (kind, manufacturer, manufacturer_vkn, prefixes, parent_order, target, key_type,
                                 state, source, created_at, paid_at, paid_by, one_off)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id",
            &cells,
            |r| r.get(0),
        )?;
        orders.insert(old, new);
        report.orders.push((old, new));
    }

    let mut devices: HashMap<i64, i64> = HashMap::new();
    for row in rows_of(
        source,
        "SELECT id, order_id, serial, line_no, state, key_id, p12_password, produced_by
         FROM devices ORDER BY id",
    )? {
        let old = int(&row, 0)?;
        let order = mapped(&orders, int(&row, 1)?, "order")?;
        let cells = params_of(&row, 1, 0, Param::Int(order))?;
        let new: i64 = tx.query_row(
            "INSERT INTO devices (order_id, serial, line_no, state, key_id, p12_password, produced_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
            &cells,
            |r| r.get(0),
        )?;
        devices.insert(old, new);
        report.devices += 1;
    }

    let mut certificates: HashMap<i64, i64> = HashMap::new();
    for row in rows_of(
        source,
        "SELECT id, device_id, serial_hex, status, tbs, der, sha256, not_before, not_after, recorded_at,
                void_reason, superseded_by, superseded_at, superseded_operator
         FROM certificates ORDER BY id",
    )? {
        let old = int(&row, 0)?;
        let device = mapped(&devices, int(&row, 1)?, "device")?;
        let cells = params_of(&row, 1, 0, Param::Int(device))?;
        let new: i64 = tx.query_row(
            "INSERT INTO certificates (device_id, serial_hex, status, tbs, der, sha256, not_before, not_after,
                                       recorded_at, void_reason, superseded_by, superseded_at, superseded_operator)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id",
            &cells,
            |r| r.get(0),
        )?;
        certificates.insert(old, new);
        report.certificates += 1;
    }

    // Rows of an order: the order's new number in their first column.
    for (select, insert) in [
        (
            "SELECT order_id, folder, uploaded_at, purge_due, purged_at FROM deliveries ORDER BY order_id",
            "INSERT INTO deliveries (order_id, folder, uploaded_at, purge_due, purged_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        ),
        (
            "SELECT order_id, passwords, purge_started_at FROM delivery_files ORDER BY order_id",
            "INSERT INTO delivery_files (order_id, passwords, purge_started_at) VALUES (?1, ?2, ?3)",
        ),
        (
            "SELECT order_id, serial, line_no FROM cancelled_devices ORDER BY order_id, line_no",
            "INSERT INTO cancelled_devices (order_id, serial, line_no) VALUES (?1, ?2, ?3)",
        ),
        (
            "SELECT order_id, manifest, uploaded_at, purged_at FROM pin_letters ORDER BY order_id",
            "INSERT INTO pin_letters (order_id, manifest, uploaded_at, purged_at) VALUES (?1, ?2, ?3, ?4)",
        ),
        (
            "SELECT order_id, holder_id, host, boot_id, start_time, pid, operator, sharing, acquired_at,
                    renewed_at, expires_at_ms, released_at, pid_namespace
             FROM station_leases ORDER BY order_id, acquired_at",
            "INSERT INTO station_leases (order_id, holder_id, host, boot_id, start_time, pid, operator, sharing,
                                         acquired_at, renewed_at, expires_at_ms, released_at, pid_namespace)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, COALESCE(?12, ?10), ?13)",
        ),
    ] {
        for row in rows_of(source, select)? {
            let order = mapped(&orders, int(&row, 0)?, "order")?;
            let cells = params_of(&row, 0, 0, Param::Int(order))?;
            tx.execute(insert, &cells)?;
        }
    }

    for row in rows_of(
        source,
        "SELECT certificate_serial, device_id, reader, pin, puk, recorded_at, state, old_pin, old_puk
         FROM card_secrets ORDER BY certificate_serial",
    )? {
        let device = mapped(&devices, int(&row, 1)?, "device")?;
        let cells = params_of(&row, 0, 1, Param::Int(device))?;
        tx.execute(
            "INSERT INTO card_secrets (certificate_serial, device_id, reader, pin, puk, recorded_at, state, old_pin, old_puk)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            &cells,
        )?;
    }

    for row in rows_of(
        source,
        "SELECT serial_hex, issuer_key_id, certificate_id, revoked_at, reason, invalidity_date, operator
         FROM revocations ORDER BY id",
    )? {
        let certificate = match row.0.get(2) {
            Some(Cell::Int(old)) => Param::Int(mapped(&certificates, *old, "certificate")?),
            _ => Param::Null,
        };
        let cells = params_of(&row, 0, 2, certificate)?;
        tx.execute(
            "INSERT INTO revocations (serial_hex, issuer_key_id, certificate_id, revoked_at, reason, invalidity_date, operator)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            &cells,
        )?;
        report.revocations += 1;
    }
    for (select, insert) in [
        (
            "SELECT issuer_key_id, last_allocated FROM crl_numbers ORDER BY issuer_key_id",
            "INSERT INTO crl_numbers (issuer_key_id, last_allocated) VALUES (?1, ?2)",
        ),
        (
            "SELECT issuer_key_id, number, this_update, next_update, entries, sha256, recorded_at, operator
             FROM crls ORDER BY issuer_key_id, number",
            "INSERT INTO crls (issuer_key_id, number, this_update, next_update, entries, sha256, recorded_at, operator)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        ),
    ] {
        for row in rows_of(source, select)? {
            let cells: Vec<Param<'_>> = row.0.iter().map(param).collect();
            tx.execute(insert, &cells)?;
        }
    }
    for row in rows_of(
        source,
        "SELECT serial_hex, issuer_key_id, subject, role, status, tbs, der, intended_at, issued_at, operator
         FROM ca_certificates ORDER BY id",
    )? {
        let cells: Vec<Param<'_>> = row.0.iter().map(param).collect();
        tx.execute(
            "INSERT INTO ca_certificates (serial_hex, issuer_key_id, subject, role, status, tbs, der, intended_at,
                                          issued_at, operator)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            &cells,
        )?;
        report.ca_certificates += 1;
    }

    // The audit records, appended in their order to the target's chain;
    // an order's records follow it to its new number.
    let mut chain = AuditChain::read(&mut *tx)?;
    source.each(
        "SELECT at, operator, event, subject, details FROM audit ORDER BY seq",
        params![],
        &mut |row| {
            let (at, who, event, subject, details) = (
                text(&row, 0)?,
                text(&row, 1)?,
                text(&row, 2)?,
                text(&row, 3)?,
                text(&row, 4)?,
            );
            let subject = match subject
                .strip_prefix("order ")
                .and_then(|n| n.parse::<i64>().ok())
            {
                Some(old) => format!("order {}", mapped(&orders, old, "order")?),
                None => subject,
            };
            chain.append(&mut *tx, &at, &who, &event, &subject, &details)?;
            report.audit_records += 1;
            Ok(())
        },
    )?;
    chain.write(&mut *tx)?;
    let renumbered: Vec<String> = report
        .orders
        .iter()
        .map(|(old, new)| format!("order {old} → order {new}"))
        .collect();
    let (head_seq, head_hash) = head.unwrap_or((0, Vec::new()));
    append_audit_at(
        &mut *tx,
        &now_rfc3339(),
        operator,
        "journal.copied",
        "journal",
        &format!(
            "from {from_location}: {} order(s) ({}), {} device(s), {} certificate(s), {} revocation(s); \
             its {} audit record(s) appended above (its chain's head: record {head_seq}, hash {})",
            report.orders.len(),
            renumbered.join(", "),
            report.devices,
            report.certificates,
            report.revocations,
            report.audit_records,
            crate::pem::hex(&head_hash)
        ),
    )?;
    tx.commit()?;
    to.mark_appended();
    let after = to.verify_audit()?;
    report.target_audit_records = after.records;
    if !after.is_intact() {
        return Err(CopyError::TargetBroken(after.problems.len()));
    }
    Ok(report)
}

/// A lease row ([`LEASE_COLUMNS`], then the order) whose holder may still
/// be at work, as seen from `here`, named; `None` for one that is gone.
fn live_producer(row: &Row, here: &LeaseHolder, now_ms: i64) -> Option<String> {
    let lease = lease_from_row(row).ok()?;
    lease.is_live_at(here, now_ms).then(|| {
        format!(
            "order {}: {}",
            row.get::<i64>(11).unwrap_or(0),
            lease.holder
        )
    })
}

/// Refuses a copy that would put a record in the target twice.
fn refuse_conflicts(source: &mut dyn Database, target: &mut dyn Database) -> Result<(), CopyError> {
    for row in rows_of(source, "SELECT serial, order_id FROM devices ORDER BY id")? {
        let serial = text(&row, 0)?;
        let order: Option<i64> = target.row(
            "SELECT order_id FROM devices WHERE serial = ?1",
            params![serial],
            |r| r.get(0),
        )?;
        if let Some(order) = order {
            return Err(CopyError::Conflict(format!(
                "device {serial} is in both journals (order {} in the source, order {order} in the target)",
                int(&row, 1)?
            )));
        }
    }
    for row in rows_of(source, "SELECT serial_hex FROM certificates ORDER BY id")? {
        let serial = text(&row, 0)?;
        let found: Option<i64> = target.row(
            "SELECT id FROM certificates WHERE serial_hex = ?1",
            params![serial],
            |r| r.get(0),
        )?;
        if found.is_some() {
            return Err(CopyError::Conflict(format!(
                "certificate {serial} is in both journals"
            )));
        }
    }
    for row in rows_of(
        source,
        "SELECT issuer_key_id, serial_hex FROM revocations ORDER BY id",
    )? {
        let (issuer, serial) = (text(&row, 0)?, text(&row, 1)?);
        let found: Option<i64> = target.row(
            "SELECT id FROM revocations WHERE issuer_key_id = ?1 AND serial_hex = ?2",
            params![issuer, serial],
            |r| r.get(0),
        )?;
        if found.is_some() {
            return Err(CopyError::Conflict(format!(
                "the revocation of {serial} (issuer {issuer}) is in both journals"
            )));
        }
    }
    for row in rows_of(
        source,
        "SELECT issuer_key_id FROM crl_numbers ORDER BY issuer_key_id",
    )? {
        let issuer = text(&row, 0)?;
        let found: Option<i64> = target.row(
            "SELECT last_allocated FROM crl_numbers WHERE issuer_key_id = ?1",
            params![issuer],
            |r| r.get(0),
        )?;
        if found.is_some() {
            return Err(CopyError::Conflict(format!(
                "both journals numbered CRLs of issuer {issuer}: one CA's CRL numbers come from one journal"
            )));
        }
    }
    for row in rows_of(
        source,
        "SELECT vkn, name, prefixes, model_approval, secure_area_audit FROM manufacturers ORDER BY vkn",
    )? {
        let vkn = text(&row, 0)?;
        let there: Option<Row> = {
            let mut found = None;
            target.each(
                "SELECT vkn, name, prefixes, model_approval, secure_area_audit FROM manufacturers WHERE vkn = ?1",
                params![vkn],
                &mut |r| {
                    found = Some(r);
                    Ok(())
                },
            )?;
            found
        };
        if there.is_some_and(|there| there.0 != row.0) {
            return Err(CopyError::Conflict(format!(
                "manufacturer {vkn} is registered differently in the two journals"
            )));
        }
    }
    for row in rows_of(source, "SELECT serial_hex FROM ca_certificates ORDER BY id")? {
        let serial = text(&row, 0)?;
        let found: Option<i64> = target.row(
            "SELECT id FROM ca_certificates WHERE serial_hex = ?1",
            params![serial],
            |r| r.get(0),
        )?;
        if found.is_some() {
            return Err(CopyError::Conflict(format!(
                "CA certificate {serial} is in both journals (a CA directory's certificates are on record in the journal its `ca init` wrote)"
            )));
        }
    }
    Ok(())
}
