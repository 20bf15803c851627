//! The embedded journal's database: one SQLite file in WAL mode with
//! `synchronous=FULL` (a commit is on disk when it returns), `foreign_keys`
//! and `secure_delete` on (erased passwords are overwritten, not left in
//! free pages). The settings are read back at start-up; a database that
//! does not take them is refused.
//!
//! The schema enforces what must never happen: a device serial appears in
//! one order only, a certificate serial once, and a device has at most one
//! certificate in force, an intent or an issued one (a partial unique index).
//!
//! The schema is versioned (`PRAGMA user_version`): [`MIGRATIONS`] lists
//! every step from an empty file, in order, and opening a journal applies
//! the steps it lacks in one immediate transaction. A journal of a newer
//! schema than this build knows is refused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode};

use super::db::{Cell, Database, DbError, Param, QueryError, Row};
use super::{newer_schema, REVOCATION_VERSION, SCHEMA_VERSION};
use crate::journal::JournalError;

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
"#;

/// The audit log's tables. Made again, empty, whenever the journal is
/// opened without them: a log dropped behind certmint's back is then
/// reported by `audit verify` as the records it no longer has, not as a
/// database error.
const AUDIT_SCHEMA: &str = r#"
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

/// Where a soft delivery's password manifest is, and whether its purge has
/// begun (an interrupted purge is finished by the next run, which must know
/// that missing key files were destroyed, not lost).
const DELIVERY_FILES_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS delivery_files (
    order_id         INTEGER PRIMARY KEY REFERENCES orders(id),
    passwords        TEXT,
    purge_started_at TEXT
);
"#;

/// The journal's files are private: they hold PKCS#12 passwords and card PINs
/// and PUKs until the purge.
const JOURNAL_MODE: u32 = 0o600;

/// `journal.sqlite` → `journal.sqlite-wal`, `journal.sqlite-shm`.
fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Makes the journal and its companions private (mode 0600), creating the
/// journal with that mode when it does not exist yet, whatever the umask:
/// SQLite gives the `-wal` and `-shm` files the mode of the database.
///
/// An existing journal is never opened here, only changed by path
/// (chmod): closing any descriptor of a file drops every POSIX lock the
/// process holds on it, SQLite's own included, and a journal whose locks
/// were dropped looks unused to other processes, which would then
/// checkpoint and delete the write-ahead log under it.
fn make_private(path: &Path) -> Result<(), JournalError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let failed = |file: &Path, e: std::io::Error| JournalError::Settings {
        path: file.display().to_string(),
        reason: format!("cannot make the journal private (mode 0600): {e}"),
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(JOURNAL_MODE)
        .open(path)
    {
        // A new, empty file: no connection of this process can have it open.
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(failed(path, e)),
    }
    for file in [
        path.to_path_buf(),
        companion(path, "-wal"),
        companion(path, "-shm"),
    ] {
        match std::fs::metadata(&file) {
            Ok(meta) if meta.permissions().mode() & 0o777 == JOURNAL_MODE => {}
            Ok(_) => std::fs::set_permissions(&file, std::fs::Permissions::from_mode(JOURNAL_MODE))
                .map_err(|e| failed(&file, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(&file, e)),
        }
    }
    Ok(())
}

/// One producer per order: the holder of each order's producer lease (see
/// [`super::lease`]). Kept apart from [`SCHEMA`]; created right after it.
const LEASE_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS producer_leases (
    order_id      INTEGER PRIMARY KEY REFERENCES orders(id),
    holder_id     TEXT NOT NULL,
    host          TEXT NOT NULL,
    boot_id       TEXT NOT NULL,
    start_time    INTEGER NOT NULL DEFAULT 0,
    pid           INTEGER NOT NULL,
    operator      TEXT NOT NULL,
    acquired_at   TEXT NOT NULL,
    renewed_at    TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
"#;

/// Superseded certificates, keys that come from outside and one-off
/// orders. Rebuilds `orders` (its key target may be `external`: the key
/// came in a CSR or a public key; `one_off` marks an order a command made
/// for one certificate) and `certificates` (status `superseded`, with what
/// superseded it, when and by whom; the one-certificate-per-device index
/// covers intents and issued certificates). Row ids are copied, so the
/// references between tables stay as they were; the audit log names
/// orders by number and certificates by serial, so it verifies unchanged.
const SUPERSEDED_SCHEMA: &str = r#"
CREATE TABLE orders_new (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('okc', 'mali-muhur')),
    manufacturer     TEXT NOT NULL,
    manufacturer_vkn TEXT NOT NULL,
    prefixes         TEXT NOT NULL,
    parent_order     INTEGER REFERENCES orders(id),
    target           TEXT NOT NULL CHECK (target IN ('soft', 'hsm', 'card', 'external')),
    key_type         TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('received', 'paid', 'producing', 'produced', 'delivered', 'purged')),
    source           TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    paid_at          TEXT,
    paid_by          TEXT,
    one_off          INTEGER NOT NULL DEFAULT 0 CHECK (one_off IN (0, 1))
);
INSERT INTO orders_new (id, kind, manufacturer, manufacturer_vkn, prefixes, parent_order, target, key_type, state, source, created_at, paid_at, paid_by)
    SELECT id, kind, manufacturer, manufacturer_vkn, prefixes, parent_order, target, key_type, state, source, created_at, paid_at, paid_by FROM orders;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;
CREATE INDEX orders_by_taxpayer ON orders(manufacturer_vkn, id);

CREATE TABLE certificates_new (
    id                  INTEGER PRIMARY KEY,
    device_id           INTEGER NOT NULL REFERENCES devices(id),
    serial_hex          TEXT NOT NULL UNIQUE,
    status              TEXT NOT NULL CHECK (status IN ('intent', 'issued', 'void', 'superseded')),
    tbs                 BLOB NOT NULL,
    der                 BLOB,
    sha256              TEXT,
    not_before          TEXT,
    not_after           TEXT,
    recorded_at         TEXT NOT NULL,
    void_reason         TEXT,
    superseded_by       TEXT,
    superseded_at       TEXT,
    superseded_operator TEXT,
    CHECK ((status IN ('issued', 'superseded')) = (der IS NOT NULL)),
    CHECK ((status = 'superseded') = (superseded_by IS NOT NULL))
);
INSERT INTO certificates_new (id, device_id, serial_hex, status, tbs, der, sha256, not_before, not_after, recorded_at, void_reason)
    SELECT id, device_id, serial_hex, status, tbs, der, sha256, not_before, not_after, recorded_at, void_reason FROM certificates;
DROP TABLE certificates;
ALTER TABLE certificates_new RENAME TO certificates;
-- At most one certificate in force per device. Also the index of a
-- device's certificates in force: queries by device repeat
-- `status IN ('intent', 'issued')` even where their own status test implies
-- it, because SQLite uses a partial index only when the query states its
-- condition.
CREATE UNIQUE INDEX one_active_certificate_per_device ON certificates(device_id) WHERE status IN ('intent', 'issued');
-- Every certificate of a device, superseded and void ones included (`cert show`).
CREATE INDEX certificates_by_device ON certificates(device_id, id);
"#;

/// The manufacturer register and cancelled orders. Rebuilds `orders` (its
/// state may be `cancelled`; row ids copied, so every reference stays);
/// `manufacturers` holds one entry per VKN; `cancelled_devices` keeps the
/// serials a cancelled order listed, so they are freed for another order
/// (`devices.serial` is unique) and still on record.
const MANUFACTURER_SCHEMA: &str = r#"
CREATE TABLE orders_new (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('okc', 'mali-muhur')),
    manufacturer     TEXT NOT NULL,
    manufacturer_vkn TEXT NOT NULL,
    prefixes         TEXT NOT NULL,
    parent_order     INTEGER REFERENCES orders(id),
    target           TEXT NOT NULL CHECK (target IN ('soft', 'hsm', 'card', 'external')),
    key_type         TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('received', 'paid', 'producing', 'produced', 'delivered', 'purged', 'cancelled')),
    source           TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    paid_at          TEXT,
    paid_by          TEXT,
    one_off          INTEGER NOT NULL DEFAULT 0 CHECK (one_off IN (0, 1))
);
INSERT INTO orders_new SELECT id, kind, manufacturer, manufacturer_vkn, prefixes, parent_order, target, key_type, state, source, created_at, paid_at, paid_by, one_off FROM orders;
DROP TABLE orders;
ALTER TABLE orders_new RENAME TO orders;
CREATE INDEX orders_by_taxpayer ON orders(manufacturer_vkn, id);

CREATE TABLE manufacturers (
    vkn               TEXT PRIMARY KEY,
    name              TEXT NOT NULL,
    prefixes          TEXT NOT NULL,
    model_approval    TEXT NOT NULL,
    secure_area_audit TEXT,
    registered_at     TEXT NOT NULL,
    changed_at        TEXT
);

CREATE TABLE cancelled_devices (
    order_id INTEGER NOT NULL REFERENCES orders(id),
    serial   TEXT NOT NULL,
    line_no  INTEGER NOT NULL
);
CREATE INDEX cancelled_devices_by_order ON cancelled_devices(order_id);
"#;

/// Revocations and CRLs. A revocation is keyed by its issuer's key
/// identifier (the certificate's authorityKeyIdentifier) and serial, so
/// one journal holds the certificates of several issuing CAs and the
/// revocations of issuing CA certificates (no certificate row: they are
/// nobody's device certificate). `crl_numbers` holds each issuer's last
/// allocated CRL Number, committed before the CRL is signed; `crls` the
/// CRLs written.
const REVOCATION_SCHEMA: &str = r#"
CREATE TABLE revocations (
    id              INTEGER PRIMARY KEY,
    serial_hex      TEXT NOT NULL,
    issuer_key_id   TEXT NOT NULL,
    certificate_id  INTEGER UNIQUE REFERENCES certificates(id),
    revoked_at      TEXT NOT NULL,
    reason          TEXT NOT NULL CHECK (reason IN ('unspecified', 'key-compromise', 'ca-compromise', 'affiliation-changed', 'superseded', 'cessation-of-operation', 'privilege-withdrawn', 'aa-compromise')),
    invalidity_date TEXT,
    operator        TEXT NOT NULL,
    UNIQUE (issuer_key_id, serial_hex)
);
-- An issuer's revocations in serial order: hex serials without leading
-- zeros compare as numbers when the shorter one comes first.
CREATE INDEX revocations_by_issuer ON revocations(issuer_key_id, length(serial_hex), serial_hex);
CREATE TABLE crl_numbers (
    issuer_key_id  TEXT PRIMARY KEY,
    last_allocated INTEGER NOT NULL CHECK (last_allocated > 0)
);
CREATE TABLE crls (
    issuer_key_id TEXT NOT NULL,
    number        INTEGER NOT NULL CHECK (number > 0),
    this_update   TEXT NOT NULL,
    next_update   TEXT NOT NULL,
    entries       INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    recorded_at   TEXT NOT NULL,
    operator      TEXT NOT NULL,
    PRIMARY KEY (issuer_key_id, number)
);
"#;

/// Card PINs and PUKs and the PIN letter manifests. A card's fresh PIN
/// and PUK are held under the certificate it carries (a card pulled after
/// they were set keeps its voided certificate, and so its secrets stay
/// findable) until the order's PIN letters are purged, when they are set
/// to NULL (`secure_delete` overwrites them).
const CARD_SECRETS_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS card_secrets (
    certificate_serial TEXT PRIMARY KEY,
    device_id          INTEGER NOT NULL REFERENCES devices(id),
    reader             TEXT NOT NULL,
    pin                TEXT,
    puk                TEXT,
    recorded_at        TEXT NOT NULL,
    CHECK ((pin IS NULL) = (puk IS NULL))
);
CREATE INDEX IF NOT EXISTS card_secrets_by_device ON card_secrets(device_id);
CREATE TABLE IF NOT EXISTS pin_letters (
    order_id    INTEGER PRIMARY KEY REFERENCES orders(id),
    manifest    TEXT NOT NULL,
    uploaded_at TEXT NOT NULL,
    purged_at   TEXT
);
"#;

/// A card's PIN and PUK change in two commands (PUK, then PIN), and a card
/// can leave between or during them: a row is recorded `pending`, with the
/// secrets the card had before (`old_pin`, `old_puk`), before the card is
/// changed, and becomes `set` (the old ones erased) once the card took and
/// verified the new ones. Rows written before this step are `set`.
const CARD_SECRETS_PENDING_SCHEMA: &str = r#"
ALTER TABLE card_secrets ADD COLUMN state TEXT NOT NULL DEFAULT 'set' CHECK (state IN ('pending', 'set'));
ALTER TABLE card_secrets ADD COLUMN old_pin TEXT;
ALTER TABLE card_secrets ADD COLUMN old_puk TEXT;
"#;

/// Several producers on one order (see [`crate::journal::lease`]): a
/// lease per producer (`station_leases`, shared or exclusive, kept once
/// released so that `order status` can say who produced what), the
/// producer that claimed each pending device (`devices.claimed_by`) and
/// the one that produced it (`devices.produced_by`). The one-producer
/// leases of the step before become exclusive ones. The partial index
/// finds an order's devices that nobody claimed, however many are done.
const STATIONS_SCHEMA: &str = r#"
CREATE TABLE station_leases (
    order_id      INTEGER NOT NULL REFERENCES orders(id),
    holder_id     TEXT NOT NULL,
    host          TEXT NOT NULL,
    boot_id       TEXT NOT NULL,
    start_time    INTEGER NOT NULL DEFAULT 0,
    pid           INTEGER NOT NULL,
    operator      TEXT NOT NULL,
    sharing       TEXT NOT NULL CHECK (sharing IN ('exclusive', 'shared')),
    acquired_at   TEXT NOT NULL,
    renewed_at    TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    released_at   TEXT,
    PRIMARY KEY (order_id, holder_id)
);
INSERT INTO station_leases (order_id, holder_id, host, boot_id, start_time, pid, operator, sharing, acquired_at, renewed_at, expires_at_ms)
    SELECT order_id, holder_id, host, boot_id, start_time, pid, operator, 'exclusive', acquired_at, renewed_at, expires_at_ms
    FROM producer_leases;
DROP TABLE producer_leases;
ALTER TABLE devices ADD COLUMN claimed_by TEXT;
ALTER TABLE devices ADD COLUMN produced_by TEXT;
CREATE INDEX devices_unclaimed ON devices(order_id, id)
    WHERE state NOT IN ('verified', 'delivered') AND claimed_by IS NULL;
CREATE INDEX devices_claimed ON devices(order_id, claimed_by) WHERE claimed_by IS NOT NULL;
"#;

/// The PID namespace of a lease's holder (see
/// [`crate::journal::LeaseHolder::pid_namespace`]): empty for the leases
/// taken before, whose holders are then judged by their expiry alone.
pub(super) const PID_NAMESPACE_SCHEMA: &str =
    "ALTER TABLE station_leases ADD COLUMN pid_namespace TEXT NOT NULL DEFAULT ''";

/// The CA certificates the root key signs (its own, the issuing CAs'):
/// the intent before it signs, the certificate after.
const CA_CERTIFICATES_SCHEMA: &str = r#"
CREATE TABLE ca_certificates (
    id            INTEGER PRIMARY KEY,
    serial_hex    TEXT NOT NULL UNIQUE,
    issuer_key_id TEXT NOT NULL,
    subject       TEXT NOT NULL,
    role          TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('intent', 'issued')),
    tbs           BLOB NOT NULL,
    der           BLOB,
    intended_at   TEXT NOT NULL,
    issued_at     TEXT,
    operator      TEXT NOT NULL
);
"#;

/// One step of the schema: applying its statements, in order, takes a
/// journal from `version - 1` to `version`.
pub(super) struct Migration {
    pub version: i64,
    sql: &'static [&'static str],
}

/// Every schema step, in order, from an empty file. A journal written
/// before the schema was versioned has version 0 and all of the first
/// step's tables (made with `IF NOT EXISTS`, so the step is a no-op on it).
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: &[SCHEMA, AUDIT_SCHEMA, DELIVERY_FILES_SCHEMA, LEASE_SCHEMA],
    },
    Migration {
        version: 2,
        sql: &[SUPERSEDED_SCHEMA],
    },
    Migration {
        version: 3,
        sql: &[MANUFACTURER_SCHEMA],
    },
    Migration {
        version: REVOCATION_VERSION,
        sql: &[REVOCATION_SCHEMA],
    },
    Migration {
        version: 5,
        sql: &[CARD_SECRETS_SCHEMA],
    },
    Migration {
        version: 6,
        sql: &[CARD_SECRETS_PENDING_SCHEMA],
    },
    Migration {
        version: 7,
        sql: &[STATIONS_SCHEMA],
    },
    Migration {
        version: 8,
        sql: &[PID_NAMESPACE_SCHEMA],
    },
    Migration {
        version: 9,
        sql: &[CA_CERTIFICATES_SCHEMA],
    },
];

/// How long a connection waits for another process's write transaction
/// before it reports the journal busy.
const BUSY_WAIT: Duration = Duration::from_secs(30);

/// The journal's SQLite file, open.
pub(crate) struct SqliteDb {
    conn: Connection,
    location: String,
    /// Whether a write transaction is open.
    in_write: bool,
}

/// Whether SQLite answered that another connection holds the lock.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn db_error(e: rusqlite::Error) -> DbError {
    if is_busy(&e) {
        DbError::Busy
    } else {
        DbError::Failed(e.to_string())
    }
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Param::Null => ValueRef::Null,
            Param::Int(value) => ValueRef::Integer(value),
            Param::Text(text) => ValueRef::Text(text.as_bytes()),
            Param::Blob(bytes) => ValueRef::Blob(bytes),
        }))
    }
}

fn cell(value: ValueRef<'_>) -> Cell {
    match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(value) => Cell::Int(value),
        // certmint stores no floating-point values: one read back is shown
        // as text, which no column of certmint's reads.
        ValueRef::Real(value) => Cell::Text(value.to_string()),
        ValueRef::Text(text) => Cell::Text(String::from_utf8_lossy(text).into_owned()),
        ValueRef::Blob(bytes) => Cell::Blob(bytes.to_vec()),
    }
}

/// The journal's schema version (`PRAGMA user_version`).
fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

impl SqliteDb {
    /// Opens (creating if needed) the journal file at `path` and checks its settings.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let location = path.display().to_string();
        let failed = |e: rusqlite::Error| {
            super::db::journal_error(&location, BUSY_WAIT.as_secs(), db_error(e))
        };
        make_private(path)?;
        let conn = Connection::open(path).map_err(failed)?;
        conn.busy_timeout(BUSY_WAIT).map_err(failed)?;
        // Switching a new journal to WAL needs it to itself, and SQLite
        // answers "busy" at once, without its busy wait, while another
        // process is creating the same journal: try again, within the wait.
        let started = std::time::Instant::now();
        let journal_mode: String = loop {
            match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
                Err(e) if is_busy(&e) && started.elapsed() < BUSY_WAIT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other.map_err(failed)?,
            }
        };
        conn.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA secure_delete = ON;",
        )
        .map_err(failed)?;
        let synchronous: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .map_err(failed)?;
        let foreign_keys: i64 = conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .map_err(failed)?;
        let settings = |reason: String| JournalError::Settings {
            path: location.clone(),
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
        Ok(Self {
            conn,
            location,
            in_write: false,
        })
    }

    /// Makes the journal's `-wal` and `-shm` files private once they exist
    /// (an older journal's may have been created readable by others).
    pub fn make_private(path: &Path) -> Result<(), JournalError> {
        make_private(path)
    }

    /// Brings the schema to [`SCHEMA_VERSION`]: the steps it lacks, in one
    /// write transaction taken at its start, so that a process creating or
    /// migrating the same journal is waited for and then finds nothing left
    /// to do. `fix_data` runs inside it, given the version migrated from, for
    /// the rows a step must change (a journal migrated to revocations has
    /// its voided certificates revoked). Foreign keys are off while tables
    /// are rebuilt (SQLite's procedure for changing a table's constraints)
    /// and checked before the commit.
    pub fn migrate(
        &mut self,
        fix_data: &mut dyn FnMut(&mut dyn Database, i64) -> Result<(), JournalError>,
    ) -> Result<(), JournalError> {
        let location = self.location.clone();
        let failed = |e: rusqlite::Error| {
            super::db::journal_error(&location, BUSY_WAIT.as_secs(), db_error(e))
        };
        let version = schema_version(&self.conn).map_err(failed)?;
        if version > SCHEMA_VERSION {
            return Err(newer_schema(&location, version));
        }
        if version == SCHEMA_VERSION {
            self.conn.execute_batch("BEGIN IMMEDIATE").map_err(failed)?;
            let made = self.conn.execute_batch(AUDIT_SCHEMA).map_err(failed);
            return self.end(made);
        }
        self.conn
            .execute_batch("PRAGMA foreign_keys = OFF")
            .map_err(failed)?;
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(failed)?;
        self.in_write = true;
        let migrated = (|| {
            // Read again under the write lock: another process may have migrated it.
            let version = schema_version(&self.conn).map_err(failed)?;
            if version > SCHEMA_VERSION {
                return Err(newer_schema(&location, version));
            }
            for step in MIGRATIONS.iter().filter(|m| m.version > version) {
                for sql in step.sql {
                    self.conn.execute_batch(sql).map_err(failed)?;
                }
            }
            fix_data(self, version)?;
            let broken: i64 = self
                .conn
                .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
                    r.get(0)
                })
                .map_err(failed)?;
            if broken > 0 {
                return Err(JournalError::Settings {
                    path: location.clone(),
                    reason: format!(
                        "{broken} row(s) refer to rows that do not exist; the schema was not migrated"
                    ),
                });
            }
            self.conn
                .pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(failed)
        })();
        let ended = self.end(migrated);
        self.conn
            .execute_batch("PRAGMA foreign_keys = ON")
            .map_err(failed)?;
        ended
    }

    /// Commits when `outcome` is success, rolls back otherwise.
    fn end(&mut self, outcome: Result<(), JournalError>) -> Result<(), JournalError> {
        self.in_write = false;
        match outcome {
            Ok(()) => self.conn.execute_batch("COMMIT").map_err(|e| {
                super::db::journal_error(&self.location, BUSY_WAIT.as_secs(), db_error(e))
            }),
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// The connection, for tests that change the file behind the journal.
    #[cfg(test)]
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl Database for SqliteDb {
    fn location(&self) -> &str {
        &self.location
    }

    fn busy_wait_secs(&self) -> u64 {
        BUSY_WAIT.as_secs()
    }

    fn execute_raw(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError> {
        let changed = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute(rusqlite::params_from_iter(params.iter())))
            .map_err(db_error)?;
        Ok(changed as u64)
    }

    fn query_raw(
        &mut self,
        sql: &str,
        params: &[Param<'_>],
        each: &mut dyn FnMut(Row) -> Result<(), JournalError>,
    ) -> Result<(), QueryError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(db_error)?;
        let columns = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(db_error)?;
        while let Some(row) = rows.next().map_err(db_error)? {
            let mut cells = Vec::with_capacity(columns);
            for index in 0..columns {
                cells.push(cell(row.get_ref(index).map_err(db_error)?));
            }
            each(Row(cells)).map_err(QueryError::Each)?;
        }
        Ok(())
    }

    fn begin_write(&mut self) -> Result<(), DbError> {
        // The write lock is taken at the start (BEGIN IMMEDIATE): a busy
        // journal is then waited for (up to BUSY_WAIT), where a read that
        // turns into a write would fail at once when another process wrote
        // in between.
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(db_error)?;
        self.in_write = true;
        Ok(())
    }

    fn begin_snapshot(&mut self) -> Result<(), DbError> {
        // A deferred transaction reads one snapshot of the write-ahead log
        // from its first read to its end.
        self.conn.execute_batch("BEGIN").map_err(db_error)
    }

    fn commit(&mut self) -> Result<(), DbError> {
        self.in_write = false;
        self.conn.execute_batch("COMMIT").map_err(|e| {
            let _ = self.conn.execute_batch("ROLLBACK");
            db_error(e)
        })
    }

    fn rollback(&mut self) -> Result<(), DbError> {
        self.in_write = false;
        self.conn.execute_batch("ROLLBACK").map_err(db_error)
    }

    fn erase_freed_secrets(&mut self) -> Result<(), JournalError> {
        // secure_delete has zeroed the erased passwords in the pages written
        // since; older page images stay in the write-ahead log until it is
        // copied back and truncated, which needs no other connection reading.
        let (busy, _log, _copied): (i64, i64, i64) = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(|e| {
                super::db::journal_error(&self.location, BUSY_WAIT.as_secs(), db_error(e))
            })?;
        if busy != 0 {
            return Err(JournalError::Database {
                path: self.location.clone(),
                reason: "another process is reading the journal, so its write-ahead log could not be truncated: \
                         erased passwords may remain in it until `certmint okc purge` runs again"
                    .into(),
            });
        }
        Ok(())
    }
}
