//! The embedded journal: one SQLite file in WAL mode with `synchronous=FULL`
//! (a commit is on disk when it returns), `foreign_keys` and `secure_delete`
//! on (erased passwords are overwritten, not left in free pages). The settings
//! are read back at start-up; a database that does not take them is refused.
//!
//! The schema enforces what must never happen: a device serial appears in
//! one order only, a certificate serial once, and a device has at most one
//! certificate that is not void (a partial unique index).

use std::path::{Path, PathBuf};

use std::collections::HashMap;
use std::time::Duration;

use rusqlite::{
    params, Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior,
};

use super::lease::now_ms;
use super::{
    Application, CertificateRecord, Device, DeviceState, ImportProblem, ImportReport, Intent,
    IssuedRecord, Journal, JournalError, Lease, LeaseHolder, NewOrder, OrderId, OrderKind,
    OrderState, OrderSummary, Target, VerifiedDevice, MAX_REPORTED_PROBLEMS,
};
use crate::audit::{self, AuditRecord, AuditReport, GENESIS};
use crate::order::serial_list::{ListProblem, ListedSerial};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS orders (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('okc', 'mali-muhur')),
    manufacturer     TEXT NOT NULL,
    manufacturer_vkn TEXT NOT NULL,
    prefixes         TEXT NOT NULL,
    parent_order     INTEGER REFERENCES orders(id),
    target           TEXT NOT NULL CHECK (target IN ('soft', 'hsm', 'card')),
    key_type         TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('received', 'paid', 'producing', 'produced', 'delivered', 'purged')),
    source           TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    paid_at          TEXT,
    paid_by          TEXT
);
CREATE TABLE IF NOT EXISTS devices (
    id           INTEGER PRIMARY KEY,
    order_id     INTEGER NOT NULL REFERENCES orders(id),
    serial       TEXT NOT NULL UNIQUE,
    line_no      INTEGER NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('planned', 'key-generated', 'linted', 'intent-recorded', 'signed', 'stored', 'verified', 'delivered')),
    key_id       TEXT,
    p12_password TEXT
);
CREATE INDEX IF NOT EXISTS devices_by_order ON devices(order_id, id);
CREATE TABLE IF NOT EXISTS certificates (
    id          INTEGER PRIMARY KEY,
    device_id   INTEGER NOT NULL REFERENCES devices(id),
    serial_hex  TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL CHECK (status IN ('intent', 'issued', 'void')),
    tbs         BLOB NOT NULL,
    der         BLOB,
    sha256      TEXT,
    not_before  TEXT,
    not_after   TEXT,
    recorded_at TEXT NOT NULL,
    void_reason TEXT,
    CHECK ((status = 'issued') = (der IS NOT NULL))
);
-- At most one certificate per device that is not void. Also the index of a
-- device's certificates: queries by device repeat `status <> 'void'` even
-- where their own status test implies it, because SQLite uses a partial
-- index only when the query states its condition; without it every lookup
-- scans all certificates (O(n²) for an order's delivery or recovery).
CREATE UNIQUE INDEX IF NOT EXISTS one_active_certificate_per_device ON certificates(device_id) WHERE status <> 'void';
CREATE TABLE IF NOT EXISTS deliveries (
    order_id    INTEGER PRIMARY KEY REFERENCES orders(id),
    folder      TEXT NOT NULL,
    uploaded_at TEXT NOT NULL,
    purge_due   TEXT,
    purged_at   TEXT
);
CREATE TABLE IF NOT EXISTS audit (
    seq       INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    operator  TEXT NOT NULL,
    event     TEXT NOT NULL,
    subject   TEXT NOT NULL,
    details   TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash      BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB NOT NULL
);
"#;

/// One producer per order: the holder of each order's producer lease (see
/// [`super::lease`]). Kept apart from [`SCHEMA`]; created right after it.
const LEASE_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS producer_leases (
    order_id      INTEGER PRIMARY KEY REFERENCES orders(id),
    holder_id     TEXT NOT NULL,
    host          TEXT NOT NULL,
    boot_id       TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    operator      TEXT NOT NULL,
    acquired_at   TEXT NOT NULL,
    renewed_at    TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
"#;

/// Write transactions take the write lock at their start (`BEGIN
/// IMMEDIATE`): a busy journal is then waited for (up to [`BUSY_WAIT`]),
/// where a read that turns into a write would fail at once when another
/// process wrote in between.
const IMMEDIATE: TransactionBehavior = TransactionBehavior::Immediate;

/// How long a connection waits for another process's write transaction
/// before it reports the journal busy.
const BUSY_WAIT: Duration = Duration::from_secs(30);

/// An order's issued certificates, a page in device order.
const ISSUED_PAGE: &str =
    "SELECT d.id, d.serial, c.serial_hex, c.sha256, c.not_before, c.not_after, c.der FROM devices d
     JOIN certificates c ON c.device_id = d.id AND c.status <> 'void' AND c.status = 'issued'
     WHERE d.order_id = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3";

/// An order's intents that never became certificates.
const DANGLING_INTENTS: &str =
    "SELECT c.serial_hex, d.id, d.order_id, d.serial, d.state, d.key_id FROM certificates c
     JOIN devices d ON c.device_id = d.id
     WHERE d.order_id = ?1 AND c.status <> 'void' AND c.status = 'intent' ORDER BY d.id";

/// The order and line of a serial already in the journal, and whether it was certified.
const EARLIER_DEVICE: &str = "SELECT d.order_id, d.line_no,
            EXISTS (SELECT 1 FROM certificates c WHERE c.device_id = d.id AND c.status <> 'void' AND c.status = 'issued')
     FROM devices d WHERE d.serial = ?1";

/// An order state change: allowed from `from`, audited as `event`.
struct Transition<'a> {
    from: &'a [OrderState],
    to: OrderState,
    event: &'a str,
    details: &'a str,
    refused: &'a str,
}

/// The journal in one SQLite file.
pub struct SqliteJournal {
    conn: Connection,
    path: PathBuf,
    /// The producer leases taken through this connection: order → holder id.
    /// Writes of an order's production check it is still theirs.
    leases: HashMap<OrderId, String>,
}

impl std::fmt::Debug for SqliteJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteJournal({})", self.path.display())
    }
}

/// The current time as RFC 3339 UTC, to the millisecond.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let now = now
        .replace_nanosecond(now.millisecond() as u32 * 1_000_000)
        .unwrap_or(now);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Maps a database error to a journal error naming the file; a journal
/// that stayed locked past the bounded wait is reported as busy, in words.
fn database_error(path: &Path) -> impl Fn(rusqlite::Error) -> JournalError + Copy + '_ {
    move |e| match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => JournalError::Busy {
            path: path.display().to_string(),
            waited_secs: BUSY_WAIT.as_secs(),
        },
        _ => JournalError::Database {
            path: path.display().to_string(),
            reason: e.to_string(),
        },
    }
}

fn lease_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Lease> {
    Ok(Lease {
        holder: LeaseHolder {
            holder_id: row.get("holder_id")?,
            host: row.get("host")?,
            boot_id: row.get("boot_id")?,
            pid: row.get("pid")?,
            operator: row.get("operator")?,
        },
        acquired_at: row.get("acquired_at")?,
        renewed_at: row.get("renewed_at")?,
        expires_at_ms: row.get("expires_at_ms")?,
    })
}

fn read_lease(conn: &Connection, order: OrderId) -> rusqlite::Result<Option<Lease>> {
    conn.prepare_cached("SELECT * FROM producer_leases WHERE order_id = ?1")?
        .query_row([order.0], lease_from_row)
        .optional()
}

fn expiry(ttl: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

/// The audit chain's head while records are appended in one transaction:
/// read once, advanced per record, written back once. Records appended in
/// one transaction (a batch of devices) chain exactly as if each had been
/// appended in its own.
struct AuditChain {
    seq: i64,
    hash: Vec<u8>,
}

impl AuditChain {
    fn read(tx: &Transaction<'_>) -> rusqlite::Result<Self> {
        let (seq, hash) = tx
            .prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
            .unwrap_or((0, GENESIS.to_vec()));
        Ok(Self { seq, hash })
    }

    fn append(
        &mut self,
        tx: &Transaction<'_>,
        at: &str,
        operator: &str,
        event: &str,
        subject: &str,
        details: &str,
    ) -> rusqlite::Result<()> {
        let seq = self.seq + 1;
        let hash = audit::record_hash(&self.hash, seq, at, operator, event, subject, details);
        tx.prepare_cached(
            "INSERT INTO audit (seq, at, operator, event, subject, details, prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![seq, at, operator, event, subject, details, self.hash, hash.as_slice()])?;
        self.seq = seq;
        self.hash = hash.to_vec();
        Ok(())
    }

    fn write(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.prepare_cached(
            "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2) ON CONFLICT(id) DO UPDATE SET seq = ?1, hash = ?2",
        )?
        .execute(params![self.seq, self.hash])?;
        Ok(())
    }
}

fn append_audit(
    tx: &Transaction<'_>,
    operator: &str,
    event: &str,
    subject: &str,
    details: &str,
) -> rusqlite::Result<()> {
    let mut chain = AuditChain::read(tx)?;
    chain.append(tx, &now_rfc3339(), operator, event, subject, details)?;
    chain.write(tx)
}

fn parse<T: std::str::FromStr<Err = String>>(value: String) -> rusqlite::Result<T> {
    value.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

fn device_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        id: row.get("id")?,
        order: OrderId(row.get("order_id")?),
        serial: row.get("serial")?,
        state: parse(row.get("state")?)?,
        key_id: row.get("key_id")?,
    })
}

impl SqliteJournal {
    /// Opens (creating if needed) the journal at `path` and checks its settings.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let db = database_error(path);
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(BUSY_WAIT).map_err(db)?;
        let journal_mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(db)?;
        conn.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;",
        )
        .map_err(db)?;
        let synchronous: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .map_err(db)?;
        let foreign_keys: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .map_err(db)?;
        let settings = |reason: String| JournalError::Settings {
            path: path.display().to_string(),
            reason,
        };
        if journal_mode.to_lowercase() != "wal" {
            return Err(settings(format!(
                "journal_mode is {journal_mode}, certmint needs WAL"
            )));
        }
        if synchronous != 2 {
            return Err(settings(format!(
                "synchronous is {synchronous}, certmint needs FULL (2)"
            )));
        }
        if foreign_keys != 1 {
            return Err(settings("foreign keys cannot be enforced".into()));
        }
        conn.execute_batch(SCHEMA).map_err(db)?;
        conn.execute_batch(LEASE_SCHEMA).map_err(db)?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            leases: HashMap::new(),
        })
    }

    fn db(&self, e: rusqlite::Error) -> JournalError {
        database_error(&self.path)(e)
    }

    /// Refuses a production write of `order` when this connection took the
    /// order's lease and another holder has it now (it judged this one dead).
    fn check_lease(
        leases: &HashMap<OrderId, String>,
        path: &Path,
        tx: &Transaction<'_>,
        order: OrderId,
    ) -> Result<(), JournalError> {
        let Some(mine) = leases.get(&order) else {
            return Ok(());
        };
        let lease = read_lease(tx, order).map_err(database_error(path))?;
        match lease {
            Some(lease) if &lease.holder.holder_id == mine => Ok(()),
            other => Err(JournalError::LeaseLost {
                order,
                by: other.map_or_else(|| "nobody".into(), |l| l.holder.to_string()),
            }),
        }
    }

    fn order_state(tx: &Connection, order: OrderId) -> Result<Option<OrderState>, rusqlite::Error> {
        tx.query_row("SELECT state FROM orders WHERE id = ?1", [order.0], |r| {
            r.get::<_, String>(0)
        })
        .optional()?
        .map(parse)
        .transpose()
    }

    fn set_order_state(
        &mut self,
        order: OrderId,
        change: Transition<'_>,
        operator: &str,
    ) -> Result<(), JournalError> {
        let Transition {
            from,
            to,
            event,
            details,
            refused,
        } = change;
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        let state = Self::order_state(&tx, order)
            .map_err(db)?
            .ok_or(JournalError::NoOrder(order))?;
        if !from.contains(&state) {
            return Err(JournalError::WrongState {
                order,
                state,
                refused: refused.to_owned(),
            });
        }
        tx.execute(
            "UPDATE orders SET state = ?1 WHERE id = ?2",
            params![to.as_str(), order.0],
        )
        .map_err(db)?;
        append_audit(&tx, operator, event, &format!("order {order}"), details).map_err(db)?;
        tx.commit().map_err(db)
    }
}

impl Journal for SqliteJournal {
    fn import_order(
        &mut self,
        order: &NewOrder,
        serials: &mut dyn Iterator<Item = Result<ListedSerial, ListProblem>>,
        accept_good_lines: bool,
    ) -> Result<ImportReport, JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        let parent = match order.application {
            Application::Initial => None,
            Application::Additional { parent } => {
                let found: Option<(String, String)> = tx
                    .query_row(
                        "SELECT manufacturer_vkn, kind FROM orders WHERE id = ?1",
                        [parent.0],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
                    .map_err(db)?;
                match found {
                    None => {
                        return Err(JournalError::BadParent(format!(
                            "order {parent} does not exist"
                        )))
                    }
                    Some((vkn, _)) if vkn != order.manufacturer_vkn => {
                        return Err(JournalError::BadParent(format!(
                            "order {parent} belongs to VKN {vkn}, not {}",
                            order.manufacturer_vkn
                        )));
                    }
                    Some((_, kind)) if kind != order.kind.as_str() => {
                        return Err(JournalError::BadParent(format!(
                            "order {parent} is a {kind} order"
                        )));
                    }
                    Some(_) => Some(parent.0),
                }
            }
        };
        tx.execute(
            "INSERT INTO orders (kind, manufacturer, manufacturer_vkn, prefixes, parent_order, target, key_type, state, source, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'received', ?8, ?9)",
            params![
                order.kind.as_str(),
                order.manufacturer,
                order.manufacturer_vkn,
                order.prefixes.join(","),
                parent,
                order.target.as_str(),
                order.key_type,
                order.source,
                now_rfc3339()
            ],
        )
        .map_err(db)?;
        let order_id = tx.last_insert_rowid();
        let mut problems = Vec::new();
        let mut problem_count = 0;
        let mut accepted = 0u64;
        let mut note = |line: usize, message: String| {
            problem_count += 1;
            if problems.len() < MAX_REPORTED_PROBLEMS {
                problems.push(ImportProblem { line, message });
            }
        };
        {
            let mut insert = tx
                .prepare("INSERT INTO devices (order_id, serial, line_no, state) VALUES (?1, ?2, ?3, 'planned')")
                .map_err(db)?;
            let mut existing = tx.prepare(EARLIER_DEVICE).map_err(db)?;
            for item in serials {
                match item {
                    Err(problem) => note(problem.line, problem.to_string()),
                    Ok(listed) => match insert.execute(params![
                        order_id,
                        listed.serial.as_str(),
                        listed.line as i64
                    ]) {
                        Ok(_) => accepted += 1,
                        Err(rusqlite::Error::SqliteFailure(e, _))
                            if e.code == ErrorCode::ConstraintViolation =>
                        {
                            let (other_order, other_line, certified): (i64, i64, bool) = existing
                                .query_row([listed.serial.as_str()], |r| {
                                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                                })
                                .map_err(db)?;
                            let message = if other_order == order_id {
                                format!(
                                    "line {}: {} repeats line {other_line}",
                                    listed.line, listed.serial
                                )
                            } else if certified {
                                format!(
                                    "line {}: {} was already certified in order {other_order}",
                                    listed.line, listed.serial
                                )
                            } else {
                                format!(
                                    "line {}: {} is already in order {other_order}",
                                    listed.line, listed.serial
                                )
                            };
                            note(listed.line, message);
                        }
                        Err(e) => return Err(db(e)),
                    },
                }
            }
        }
        let refused = (problem_count > 0 && !accept_good_lines) || accepted == 0;
        if refused {
            tx.rollback().map_err(db)?;
            return Ok(ImportReport {
                order: None,
                accepted,
                problems,
                problem_count,
            });
        }
        append_audit(
            &tx,
            &order.operator,
            "order.received",
            &format!("order {order_id}"),
            &format!(
                "{} order for {} (VKN {}), {accepted} devices from {}, {problem_count} problem line(s) skipped, target {}, key {}",
                order.kind, order.manufacturer, order.manufacturer_vkn, order.source, order.target, order.key_type
            ),
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(ImportReport {
            order: Some(OrderId(order_id)),
            accepted,
            problems,
            problem_count,
        })
    }

    fn mark_paid(&mut self, order: OrderId, operator: &str) -> Result<(), JournalError> {
        self.set_order_state(
            order,
            Transition {
                from: &[OrderState::Received],
                to: OrderState::Paid,
                event: "order.paid",
                details: "",
                refused: "only a received order can be marked paid",
            },
            operator,
        )?;
        let now = now_rfc3339();
        self.conn
            .execute(
                "UPDATE orders SET paid_at = ?1, paid_by = ?2 WHERE id = ?3",
                params![now, operator, order.0],
            )
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    fn order(&self, order: OrderId) -> Result<OrderSummary, JournalError> {
        self.orders_where("WHERE o.id = ?1", &[&order.0])?
            .pop()
            .ok_or(JournalError::NoOrder(order))
    }

    fn orders(&self) -> Result<Vec<OrderSummary>, JournalError> {
        self.orders_where("", &[])
    }

    fn start_production(&mut self, order: OrderId, operator: &str) -> Result<(), JournalError> {
        let state = Self::order_state(&self.conn, order)
            .map_err(|e| self.db(e))?
            .ok_or(JournalError::NoOrder(order))?;
        match state {
            OrderState::Producing => {
                let db = database_error(&self.path);
                let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
                append_audit(&tx, operator, "order.production-resumed", &format!("order {order}"), "")
                    .and_then(|()| tx.commit())
                    .map_err(db)
            }
            _ => self.set_order_state(
            order,
            Transition {
                from: &[OrderState::Paid],
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
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, order_id, serial, state, key_id FROM devices
                 WHERE order_id = ?1 AND id > ?2 AND state NOT IN ('verified', 'delivered') ORDER BY id LIMIT ?3",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map(params![order.0, after, limit as i64], device_from_row)
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }

    fn device_state(
        &self,
        order: OrderId,
        serial: &str,
    ) -> Result<Option<DeviceState>, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT state FROM devices WHERE order_id = ?1 AND serial = ?2")
            .map_err(|e| self.db(e))?;
        stmt.query_row(params![order.0, serial], |r| r.get::<_, String>(0))
            .optional()
            .map_err(|e| self.db(e))?
            .map(|state| parse::<DeviceState>(state).map_err(|e| self.db(e)))
            .transpose()
    }

    fn device_order(&self, serial: &str) -> Result<Option<OrderId>, JournalError> {
        self.conn
            .query_row(
                "SELECT order_id FROM devices WHERE serial = ?1",
                [serial],
                |r| r.get(0).map(OrderId),
            )
            .optional()
            .map_err(|e| self.db(e))
    }

    fn dangling_intents(&self, order: OrderId) -> Result<Vec<(String, Device)>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(DANGLING_INTENTS)
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([order.0], |r| {
                Ok((r.get::<_, String>(0)?, device_from_row(r)?))
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }

    fn void_intent(
        &mut self,
        serial_hex: &str,
        operator: &str,
        reason: &str,
    ) -> Result<(), JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        let device: i64 = tx
            .query_row(
                "SELECT device_id FROM certificates WHERE serial_hex = ?1 AND status = 'intent'",
                [serial_hex],
                |r| r.get(0),
            )
            .map_err(db)?;
        tx.execute(
            "UPDATE certificates SET status = 'void', void_reason = ?1 WHERE serial_hex = ?2",
            params![reason, serial_hex],
        )
        .map_err(db)?;
        tx.execute(
            "UPDATE devices SET state = CASE WHEN key_id IS NULL THEN 'planned' ELSE 'key-generated' END WHERE id = ?1",
            [device],
        )
        .map_err(db)?;
        append_audit(
            &tx,
            operator,
            "certificate.voided",
            &format!("certificate {serial_hex}"),
            reason,
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }

    fn record_key(
        &mut self,
        device: &Device,
        key_id_hex: &str,
        operator: &str,
    ) -> Result<(), JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        Self::check_lease(&self.leases, &self.path, &tx, device.order)?;
        tx.execute(
            "UPDATE devices SET state = 'key-generated', key_id = ?1 WHERE id = ?2",
            params![key_id_hex, device.id],
        )
        .map_err(db)?;
        append_audit(
            &tx,
            operator,
            "device.key-generated",
            &format!("device {}", device.serial),
            &format!("CKA_ID {key_id_hex}"),
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }

    fn record_intents(
        &mut self,
        intents: &[Intent<'_>],
        operator: &str,
    ) -> Result<(), JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        let mut orders: Vec<OrderId> = intents.iter().map(|i| i.device.order).collect();
        orders.dedup();
        for order in orders {
            Self::check_lease(&self.leases, &self.path, &tx, order)?;
        }
        let mut chain = AuditChain::read(&tx).map_err(db)?;
        let now = now_rfc3339();
        for intent in intents {
            tx.prepare_cached(
                "INSERT INTO certificates (device_id, serial_hex, status, tbs, recorded_at) VALUES (?1, ?2, 'intent', ?3, ?4)",
            )
            .and_then(|mut insert| {
                insert.execute(params![intent.device.id, intent.serial_hex, intent.tbs, now])
            })
            .map_err(db)?;
            tx.prepare_cached("UPDATE devices SET state = 'intent-recorded' WHERE id = ?1")
                .and_then(|mut update| update.execute([intent.device.id]))
                .map_err(db)?;
            chain
                .append(
                    &tx,
                    &now,
                    operator,
                    "device.intent",
                    &format!("device {}", intent.device.serial),
                    &format!(
                        "{}; certificate {} linted",
                        intent.key_note, intent.serial_hex
                    ),
                )
                .map_err(db)?;
        }
        chain.write(&tx).map_err(db)?;
        tx.commit().map_err(db)
    }

    fn record_verified_devices(
        &mut self,
        verified: &[VerifiedDevice<'_>],
        operator: &str,
    ) -> Result<(), JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        let mut orders: Vec<OrderId> = verified.iter().map(|v| v.device.order).collect();
        orders.dedup();
        for order in orders {
            Self::check_lease(&self.leases, &self.path, &tx, order)?;
        }
        let mut chain = AuditChain::read(&tx).map_err(db)?;
        let now = now_rfc3339();
        for VerifiedDevice {
            device,
            certificate: c,
        } in verified
        {
            let changed = tx
                .prepare_cached(
                    "UPDATE certificates SET status = 'issued', der = ?1, sha256 = ?2, not_before = ?3, not_after = ?4
                     WHERE serial_hex = ?5 AND status = 'intent' AND device_id = ?6",
                )
                .and_then(|mut update| {
                    update.execute(params![
                        c.der,
                        c.sha256,
                        c.not_before,
                        c.not_after,
                        c.serial_hex,
                        device.id
                    ])
                })
                .map_err(db)?;
            if changed != 1 {
                return Err(JournalError::Database {
                    path: self.path.display().to_string(),
                    reason: format!(
                        "certificate {} of device {} has no recorded intent",
                        c.serial_hex, device.serial
                    ),
                });
            }
            tx.prepare_cached(
                "UPDATE devices SET state = 'verified', p12_password = ?1 WHERE id = ?2",
            )
            .and_then(|mut update| update.execute(params![c.p12_password, device.id]))
            .map_err(db)?;
            chain
                .append(
                    &tx,
                    &now,
                    operator,
                    "device.certificate-issued",
                    &format!("device {}", device.serial),
                    &format!(
                        "certificate {} signed, verified, stored; SHA-256 {}",
                        c.serial_hex, c.sha256
                    ),
                )
                .map_err(db)?;
        }
        chain.write(&tx).map_err(db)?;
        tx.commit().map_err(db)
    }

    fn finish_production(&mut self, order: OrderId, operator: &str) -> Result<bool, JournalError> {
        let open: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM devices WHERE order_id = ?1 AND state NOT IN ('verified', 'delivered')",
                [order.0],
                |r| r.get(0),
            )
            .map_err(|e| self.db(e))?;
        if open > 0 {
            return Ok(false);
        }
        self.set_order_state(
            order,
            Transition {
                from: &[OrderState::Producing],
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
        let mut stmt = self
            .conn
            .prepare_cached(ISSUED_PAGE)
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map(params![order.0, after, limit as i64], |r| {
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
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }

    fn passwords(
        &self,
        order: OrderId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String, String)>, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, serial, p12_password FROM devices WHERE order_id = ?1 AND id > ?2 AND p12_password IS NOT NULL ORDER BY id LIMIT ?3",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map(params![order.0, after, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }

    fn record_delivery(
        &mut self,
        order: OrderId,
        folder: &str,
        uploaded_at: &str,
        purge_due: Option<&str>,
        operator: &str,
    ) -> Result<(), JournalError> {
        let details = format!(
            "folder {folder}, uploaded {uploaded_at}, purge due {}",
            purge_due.unwrap_or("never (not soft)")
        );
        self.set_order_state(
            order,
            Transition {
                from: &[OrderState::Produced],
                to: OrderState::Delivered,
                event: "order.delivered",
                details: &details,
                refused: "only a produced order can be delivered",
            },
            operator,
        )?;
        self.conn
            .execute(
                "INSERT INTO deliveries (order_id, folder, uploaded_at, purge_due) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(order_id) DO UPDATE SET folder = ?2, uploaded_at = ?3, purge_due = ?4",
                params![order.0, folder, uploaded_at, purge_due],
            )
            .and_then(|_| self.conn.execute("UPDATE devices SET state = 'delivered' WHERE order_id = ?1", [order.0]))
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    fn record_purge(
        &mut self,
        order: OrderId,
        purged_at: &str,
        operator: &str,
    ) -> Result<(), JournalError> {
        self.set_order_state(
            order,
            Transition {
                from: &[OrderState::Delivered],
                to: OrderState::Purged,
                event: "order.purged",
                details: "PKCS#12 files and passwords deleted",
                refused: "only a delivered order can be purged",
            },
            operator,
        )?;
        self.conn
            .execute(
                "UPDATE deliveries SET purged_at = ?1 WHERE order_id = ?2",
                params![purged_at, order.0],
            )
            .and_then(|_| {
                self.conn.execute(
                    "UPDATE devices SET p12_password = NULL WHERE order_id = ?1",
                    [order.0],
                )
            })
            .map_err(|e| self.db(e))?;
        Ok(())
    }

    fn unpurged_soft_deliveries(&self) -> Result<Vec<(OrderId, String, String)>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT o.id, d.folder, d.uploaded_at FROM orders o JOIN deliveries d ON d.order_id = o.id
                 WHERE o.target = 'soft' AND o.state = 'delivered' ORDER BY o.id",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([], |r| Ok((OrderId(r.get(0)?), r.get(1)?, r.get(2)?)))
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }

    fn audit(
        &mut self,
        operator: &str,
        event: &str,
        subject: &str,
        details: &str,
    ) -> Result<(), JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        append_audit(&tx, operator, event, subject, details).map_err(db)?;
        tx.commit().map_err(db)
    }

    fn verify_audit(&self) -> Result<AuditReport, JournalError> {
        let head: Option<(i64, Vec<u8>)> = self
            .conn
            .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(|e| self.db(e))?;
        let mut stmt = self
            .conn
            .prepare("SELECT seq, at, operator, event, subject, details, prev_hash, hash FROM audit ORDER BY seq")
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(AuditRecord {
                    seq: r.get(0)?,
                    at: r.get(1)?,
                    operator: r.get(2)?,
                    event: r.get(3)?,
                    subject: r.get(4)?,
                    details: r.get(5)?,
                    prev_hash: r.get(6)?,
                    hash: r.get(7)?,
                })
            })
            .map_err(|e| self.db(e))?;
        let mut error = None;
        let records = rows.map_while(|r| match r {
            Ok(record) => Some(record),
            Err(e) => {
                error = Some(e);
                None
            }
        });
        let report = audit::verify(records, head);
        match error {
            Some(e) => Err(self.db(e)),
            None => Ok(report),
        }
    }

    fn certificate_by_serial(
        &self,
        serial_hex: &str,
    ) -> Result<Option<CertificateRecord>, JournalError> {
        self.conn
            .query_row(
                "SELECT d.order_id, d.serial, c.status FROM certificates c JOIN devices d ON c.device_id = d.id
                 WHERE c.serial_hex = ?1",
                [serial_hex],
                |r| {
                    Ok(CertificateRecord {
                        order: OrderId(r.get(0)?),
                        device_serial: r.get(1)?,
                        status: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.db(e))
    }

    fn acquire_lease(
        &mut self,
        order: OrderId,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<Option<Lease>, JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        if Self::order_state(&tx, order).map_err(db)?.is_none() {
            return Err(JournalError::NoOrder(order));
        }
        let previous = read_lease(&tx, order).map_err(db)?;
        let taken_over = match previous {
            None => None,
            Some(lease) if lease.holder.holder_id == holder.holder_id => None,
            Some(lease) => {
                if lease.is_live_as_seen_from(holder) {
                    return Err(JournalError::Held {
                        order,
                        lease: Box::new(lease),
                    });
                }
                let why = if lease.holder.is_gone_as_seen_from(holder) {
                    "its process is gone"
                } else {
                    "its lease expired unrenewed"
                };
                append_audit(
                    &tx,
                    &holder.operator,
                    "order.lease-taken-over",
                    &format!("order {order}"),
                    &format!(
                        "from {} (holder {}, since {}, last renewed {}): {why}; taken by {} (holder {})",
                        lease.holder,
                        lease.holder.holder_id,
                        lease.acquired_at,
                        lease.renewed_at,
                        holder,
                        holder.holder_id
                    ),
                )
                .map_err(db)?;
                Some(lease)
            }
        };
        let now = now_rfc3339();
        tx.execute(
            "INSERT INTO producer_leases (order_id, holder_id, host, boot_id, pid, operator, acquired_at, renewed_at, expires_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)
             ON CONFLICT(order_id) DO UPDATE SET holder_id = ?2, host = ?3, boot_id = ?4, pid = ?5,
                 operator = ?6, acquired_at = ?7, renewed_at = ?7, expires_at_ms = ?8",
            params![
                order.0,
                holder.holder_id,
                holder.host,
                holder.boot_id,
                holder.pid,
                holder.operator,
                now,
                expiry(ttl)
            ],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        self.leases.insert(order, holder.holder_id.clone());
        Ok(taken_over)
    }

    fn renew_lease(
        &mut self,
        order: OrderId,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<(), JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        let changed = tx
            .execute(
                "UPDATE producer_leases SET renewed_at = ?1, expires_at_ms = ?2 WHERE order_id = ?3 AND holder_id = ?4",
                params![now_rfc3339(), expiry(ttl), order.0, holder.holder_id],
            )
            .map_err(db)?;
        if changed != 1 {
            let by = read_lease(&tx, order)
                .map_err(db)?
                .map_or_else(|| "nobody".into(), |l| l.holder.to_string());
            return Err(JournalError::LeaseLost { order, by });
        }
        tx.commit().map_err(db)
    }

    fn release_lease(&mut self, order: OrderId, holder: &LeaseHolder) -> Result<(), JournalError> {
        let db = database_error(&self.path);
        self.leases.remove(&order);
        self.conn
            .execute(
                "DELETE FROM producer_leases WHERE order_id = ?1 AND holder_id = ?2",
                params![order.0, holder.holder_id],
            )
            .map_err(db)?;
        Ok(())
    }

    fn lease(&self, order: OrderId) -> Result<Option<Lease>, JournalError> {
        read_lease(&self.conn, order).map_err(|e| self.db(e))
    }

    fn active_certificates_per_device(
        &self,
        order: OrderId,
    ) -> Result<Vec<(String, u64)>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT d.serial, (SELECT COUNT(*) FROM certificates c WHERE c.device_id = d.id AND c.status <> 'void')
                 FROM devices d WHERE d.order_id = ?1 ORDER BY d.id",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([order.0], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }
}

impl SqliteJournal {
    fn orders_where(
        &self,
        filter: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<OrderSummary>, JournalError> {
        let sql = format!(
            "SELECT o.id, o.kind, o.state, o.manufacturer, o.manufacturer_vkn, o.prefixes, o.parent_order, o.target, o.key_type,
                    o.created_at, o.paid_at, o.paid_by,
                    (SELECT COUNT(*) FROM devices d WHERE d.order_id = o.id),
                    (SELECT COUNT(*) FROM devices d WHERE d.order_id = o.id AND d.state IN ('verified', 'delivered')),
                    dl.uploaded_at, dl.purge_due, dl.purged_at
             FROM orders o LEFT JOIN deliveries dl ON dl.order_id = o.id {filter} ORDER BY o.id"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map(args, |r| {
                let paid_at: Option<String> = r.get(10)?;
                let paid_by: Option<String> = r.get(11)?;
                let prefixes: String = r.get(5)?;
                Ok(OrderSummary {
                    id: OrderId(r.get(0)?),
                    kind: parse::<OrderKind>(r.get(1)?)?,
                    state: parse::<OrderState>(r.get(2)?)?,
                    manufacturer: r.get(3)?,
                    manufacturer_vkn: r.get(4)?,
                    prefixes: prefixes
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    parent: r.get::<_, Option<i64>>(6)?.map(OrderId),
                    target: parse::<Target>(r.get(7)?)?,
                    key_type: r.get(8)?,
                    created_at: r.get(9)?,
                    paid: paid_at.zip(paid_by),
                    devices: r.get::<_, i64>(12)? as u64,
                    verified: r.get::<_, i64>(13)? as u64,
                    uploaded_at: r.get(14)?,
                    purge_due: r.get(15)?,
                    purged_at: r.get(16)?,
                })
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each lookup of a device's certificate goes through an index: a scan
    /// of the certificates per device makes delivery and recovery O(n²).
    #[test]
    fn certificate_lookups_by_device_use_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let journal = SqliteJournal::open(&dir.path().join("j.sqlite")).unwrap();
        for query in [ISSUED_PAGE, DANGLING_INTENTS, EARLIER_DEVICE] {
            let mut explain = journal
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {query}"))
                .unwrap();
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
    fn journal_with_an_order(dir: &Path) -> (SqliteJournal, Device) {
        let mut journal = SqliteJournal::open(&dir.join("j.sqlite")).unwrap();
        let order = NewOrder {
            kind: OrderKind::Okc,
            manufacturer: "M".into(),
            manufacturer_vkn: "4540536920".into(),
            prefixes: vec!["FU".into()],
            application: Application::Initial,
            target: Target::Soft,
            key_type: "p256".into(),
            source: "test".into(),
            operator: "op".into(),
        };
        let serials = vec![Ok(ListedSerial {
            line: 1,
            serial: crate::ids::DeviceSerial::parse("FU12345678", &crate::ids::PrefixTable::any())
                .unwrap(),
        })];
        let report = journal
            .import_order(&order, &mut serials.into_iter(), false)
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
            pid: 1,
            operator: name.into(),
        }
    }

    /// One producer per order: a live holder's lease is refused to another
    /// (naming the holder), given back it can be taken, and an expired one
    /// is taken over (audited). A producer whose lease was taken over is
    /// refused its next production write.
    #[test]
    fn an_order_lease_has_one_holder_and_a_taken_over_holder_writes_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        let (mut first, device) = journal_with_an_order(dir.path());
        let mut second = SqliteJournal::open(&dir.path().join("j.sqlite")).unwrap();
        let order = device.order;
        let (alice, bob) = (holder("alice", "station-1"), holder("bob", "station-2"));

        assert_eq!(
            first
                .acquire_lease(order, &alice, Duration::from_secs(60))
                .unwrap(),
            None
        );
        let refused = second
            .acquire_lease(order, &bob, Duration::from_secs(60))
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
            .acquire_lease(order, &bob, Duration::from_secs(60))
            .unwrap();
        assert_eq!(taken.map(|l| l.holder), Some(alice.clone()));
        let lost = first
            .record_intent(&device, "01", b"tbs", "test", "alice")
            .unwrap_err();
        assert!(matches!(lost, JournalError::LeaseLost { .. }), "{lost}");
        assert!(matches!(
            first.renew_lease(order, &alice, Duration::from_secs(60)),
            Err(JournalError::LeaseLost { .. })
        ));
        second
            .record_intent(&device, "01", b"tbs", "test", "bob")
            .unwrap();
        // Giving back a lease one no longer holds leaves the holder's alone.
        first.release_lease(order, &alice).unwrap();
        assert_eq!(
            second.lease(order).unwrap().map(|l| l.holder),
            Some(bob.clone())
        );
        second.release_lease(order, &bob).unwrap();
        assert_eq!(second.lease(order).unwrap(), None);
        let audit = second.verify_audit().unwrap();
        assert!(audit.is_intact());
        let events: i64 = second
            .conn
            .query_row(
                "SELECT COUNT(*) FROM audit WHERE event = 'order.lease-taken-over'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(events, 1);
    }

    /// A journal another process keeps locked past the bounded wait is
    /// reported as busy, in words, never as SQLite's raw "database is locked".
    #[test]
    fn a_journal_locked_past_the_wait_is_reported_busy_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let (mut journal, device) = journal_with_an_order(dir.path());
        journal
            .conn
            .busy_timeout(Duration::from_millis(100))
            .unwrap();
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
                    let mut journal = SqliteJournal::open(&path).unwrap();
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
}
