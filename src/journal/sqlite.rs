//! The embedded journal: one SQLite file in WAL mode with `synchronous=FULL`
//! (a commit is on disk when it returns), `foreign_keys` and `secure_delete`
//! on (erased passwords are overwritten, not left in free pages). The settings
//! are read back at start-up; a database that does not take them is refused.
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

use std::collections::HashMap;
use std::time::Duration;

use rusqlite::{
    params, Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior,
};

use super::lease::{self, now_ms, LeaseDecision};
use super::{
    AuditEntry, CardSecrets, CertificateDetail, CertificateFilter, CertificateRecord,
    CertificateStatus, DeliveryRecord, Device, DeviceState, ImportOutcome, ImportStore, Intent,
    IssuedRecord, Journal, JournalError, Lease, LeaseHolder, NewOrder, OrderId, OrderKind,
    OrderState, OrderSummary, PinLetters, Placed, SoftDelivery, StoredCertificate, StoredParent,
    Target, VerifiedDevice,
};
use super::{
    CaCertificateRevocation, CrlRecord, IssuedCrl, RevocationRecord, RevocationRequest,
    RevokeOutcome,
};
use super::{HeldCardSecrets, StrayCardSecrets};
use crate::audit::checkpoint::{self, AuditKey, Checkpoint, CHECKPOINT_EVERY};
use crate::audit::tables::{AuditCheckpoints, AuditStorage, AuditedFact};
use crate::audit::{self, AuditRecord, GENESIS};
use crate::ids::{DeviceName, TaxpayerId};
use crate::order::manufacturer::{Manufacturer, ManufacturerChange, ManufacturerError};
use crate::revocation::{RevocationReason, RevokedEntry};
use crate::signer::KeyType;

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

/// One step of the schema: applying its statements, in order, takes a
/// journal from `version - 1` to `version`.
struct Migration {
    version: i64,
    sql: &'static [&'static str],
}

/// Every schema step, in order, from an empty file. A journal written
/// before the schema was versioned has version 0 and all of the first
/// step's tables (made with `IF NOT EXISTS`, so the step is a no-op on it).
const MIGRATIONS: &[Migration] = &[
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
];

/// The schema step that brings revocations: a journal migrated to it has
/// its voided and superseded certificates revoked.
const REVOCATION_VERSION: i64 = 4;

/// The schema version this build writes: the last step's.
pub const SCHEMA_VERSION: i64 = 6;

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
     JOIN certificates c ON c.device_id = d.id AND c.status IN ('intent', 'issued') AND c.status = 'issued'
     WHERE d.order_id = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3";

/// An order's intents that never became certificates.
const DANGLING_INTENTS: &str =
    "SELECT c.serial_hex, d.id, d.order_id, d.serial, d.state, d.key_id FROM certificates c
     JOIN devices d ON c.device_id = d.id
     WHERE d.order_id = ?1 AND c.status IN ('intent', 'issued') AND c.status = 'intent' ORDER BY d.id";

/// The order and line of a serial already in the journal, and whether it was certified.
const EARLIER_DEVICE: &str = "SELECT d.order_id, d.line_no,
            EXISTS (SELECT 1 FROM certificates c WHERE c.device_id = d.id AND c.status IN ('intent', 'issued') AND c.status = 'issued')
     FROM devices d WHERE d.serial = ?1";

/// A page of the audit records about an order (`audit show --order`).
const AUDIT_OF_ORDER: &str = "SELECT a.seq, a.at, a.operator, a.event, a.subject, a.details FROM audit a
     WHERE a.seq > ?1 AND (a.subject = 'order ' || ?2
         OR (substr(a.subject, 1, 7) = 'device '
             AND EXISTS (SELECT 1 FROM devices d WHERE d.serial = substr(a.subject, 8) AND d.order_id = ?2))
         OR (substr(a.subject, 1, 12) = 'certificate '
             AND EXISTS (SELECT 1 FROM certificates c JOIN devices d ON c.device_id = d.id
                         WHERE c.serial_hex = substr(a.subject, 13) AND d.order_id = ?2)))
     ORDER BY a.seq LIMIT ?3";

/// An order state change: allowed from `from`, audited as `event`.
struct Transition<'a> {
    /// The state the order moves to; which states it may come from is the
    /// order model's rule ([`OrderState::comes_from`]).
    to: OrderState,
    event: &'a str,
    details: &'a str,
    refused: &'a str,
}

/// The journal in one SQLite file.
pub struct SqliteJournal {
    conn: Connection,
    path: PathBuf,
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
impl Drop for SqliteJournal {
    fn drop(&mut self) {
        if self.appended {
            let _ = self.checkpoint();
        }
    }
}

impl std::fmt::Debug for SqliteJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SqliteJournal({})", self.path.display())
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

/// Whether SQLite answered that another connection holds the lock.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Maps a database error to a journal error naming the file; a journal
/// that stayed locked past the bounded wait is reported as busy, in words.
fn database_error(path: &Path) -> impl Fn(rusqlite::Error) -> JournalError + Copy + '_ {
    move |e| {
        if is_busy(&e) {
            JournalError::Busy {
                path: path.display().to_string(),
                waited_secs: BUSY_WAIT.as_secs(),
            }
        } else {
            JournalError::Database {
                path: path.display().to_string(),
                reason: e.to_string(),
            }
        }
    }
}

fn lease_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Lease> {
    Ok(Lease {
        holder: LeaseHolder {
            holder_id: row.get("holder_id")?,
            host: row.get("host")?,
            boot_id: row.get("boot_id")?,
            pid: row.get("pid")?,
            start_time: u64::try_from(row.get::<_, i64>("start_time")?).unwrap_or(0),
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
    conn: &Connection,
    issuer_key_id_hex: &str,
    serial_hex: &str,
) -> rusqlite::Result<Option<RevocationRecord>> {
    conn.prepare_cached(
        "SELECT revoked_at, reason, invalidity_date, operator FROM revocations
         WHERE issuer_key_id = ?1 AND serial_hex = ?2",
    )?
    .query_row([issuer_key_id_hex, serial_hex], revocation_from_row)
    .optional()
}

fn revocation_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RevocationRecord> {
    Ok(RevocationRecord {
        revoked_at: row.get(0)?,
        reason: row
            .get::<_, String>(1)?
            .parse()
            .map_err(|e: crate::revocation::UnknownReason| bad_row(e.to_string()))?,
        invalidity_date: row.get(2)?,
        operator: row.get(3)?,
    })
}

/// Records `revocation` inside `tx` with its audit record (`certificate.revoked`
/// or `ca-certificate.revoked`); a certificate revoked already is left as it
/// is and reported.
fn insert_revocation(
    tx: &Transaction<'_>,
    revocation: &NewRevocation<'_>,
    operator: &str,
) -> rusqlite::Result<RevokeOutcome> {
    if let Some(earlier) = read_revocation(tx, revocation.issuer_key_id_hex, revocation.serial_hex)?
    {
        return Ok(RevokeOutcome::AlreadyRevoked {
            when: earlier.revoked_at,
            reason: earlier.reason,
        });
    }
    let now = now_rfc3339();
    tx.prepare_cached(
        "INSERT INTO revocations (serial_hex, issuer_key_id, certificate_id, revoked_at, reason, invalidity_date, operator)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        revocation.serial_hex,
        revocation.issuer_key_id_hex,
        revocation.certificate_id,
        now,
        revocation.reason.name(),
        revocation.invalidity_date,
        operator
    ])?;
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
    tx: &Transaction<'_>,
    path: &Path,
    certificate_id: i64,
    serial_hex: &str,
    tbs: &[u8],
    note: &str,
    operator: &str,
) -> Result<(), JournalError> {
    let issuer = issuer_key_id_of_tbs(tbs).map_err(|reason| JournalError::Database {
        path: path.display().to_string(),
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
    )
    .map_err(database_error(path))?;
    Ok(())
}

/// Who the audit log names for what a schema migration records.
const MIGRATION_OPERATOR: &str = "certmint (journal schema migration)";

/// Revokes, as superseded, every certificate a journal of an older schema
/// holds that may have been signed and will never be a device's
/// certificate: voided intents, and certificates a completed reissue
/// superseded. Run inside the migration's transaction.
fn revoke_unaccounted(tx: &Transaction<'_>, path: &Path) -> Result<(), JournalError> {
    let db = database_error(path);
    let mut stmt = tx
        .prepare(
            "SELECT c.id, c.serial_hex, c.tbs, c.status FROM certificates c
             WHERE (c.status = 'void'
                    OR (c.status = 'superseded' AND EXISTS (SELECT 1 FROM certificates n
                        WHERE n.serial_hex = c.superseded_by AND n.status IN ('issued', 'superseded'))))
               AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.certificate_id = c.id)
             ORDER BY c.id",
        )
        .map_err(db)?;
    let mut rows = stmt.query([]).map_err(db)?;
    while let Some(row) = rows.next().map_err(db)? {
        let id: i64 = row.get(0).map_err(db)?;
        let serial: String = row.get(1).map_err(db)?;
        let tbs: Vec<u8> = row.get(2).map_err(db)?;
        let status: String = row.get(3).map_err(db)?;
        let note = if status == "void" {
            "its intent was voided: a signature, if made, never became a delivered certificate"
        } else {
            "a reissue superseded it"
        };
        revoke_superseded(tx, path, id, &serial, &tbs, note, MIGRATION_OPERATOR)?;
    }
    Ok(())
}

fn parse<T: std::str::FromStr<Err = String>>(value: String) -> rusqlite::Result<T> {
    value.parse().map_err(bad_row)
}

/// A stored value that does not read back as its type: the row was
/// changed outside certmint.
fn bad_row(reason: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, reason.into())
}

fn manufacturer_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Manufacturer> {
    let prefixes: String = row.get("prefixes")?;
    Ok(Manufacturer {
        vkn: row.get("vkn")?,
        name: row.get("name")?,
        prefixes: prefixes.split(',').map(str::to_owned).collect(),
        model_approval: row.get("model_approval")?,
        secure_area_audit: row.get("secure_area_audit")?,
    })
}

fn read_manufacturer(conn: &Connection, vkn: &str) -> rusqlite::Result<Option<Manufacturer>> {
    conn.prepare_cached("SELECT * FROM manufacturers WHERE vkn = ?1")?
        .query_row([vkn], manufacturer_from_row)
        .optional()
}

fn device_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        id: row.get("id")?,
        order: OrderId(row.get("order_id")?),
        name: DeviceName::parse(&row.get::<_, String>("serial")?)
            .map_err(|e| bad_row(e.to_string()))?,
        state: parse(row.get("state")?)?,
        key_id: row.get("key_id")?,
    })
}

/// The journal's schema version (`PRAGMA user_version`).
fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Brings the journal's schema to [`SCHEMA_VERSION`]: the steps it lacks,
/// in one write transaction taken at its start, so that a process creating
/// or migrating the same journal is waited for and then finds nothing left
/// to do. Foreign keys are off while tables are rebuilt (SQLite's procedure
/// for changing a table's constraints) and checked before the commit.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), JournalError> {
    let db = database_error(path);
    let newer = |version: i64| JournalError::Settings {
        path: path.display().to_string(),
        reason: format!(
            "its schema is version {version}, newer than this certmint knows ({SCHEMA_VERSION}): \
             use the certmint that wrote it, or a newer one"
        ),
    };
    let version = schema_version(conn).map_err(db)?;
    if version > SCHEMA_VERSION {
        return Err(newer(version));
    }
    if version == SCHEMA_VERSION {
        let tx = conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        tx.execute_batch(AUDIT_SCHEMA).map_err(db)?;
        return tx.commit().map_err(db);
    }
    conn.execute_batch("PRAGMA foreign_keys = OFF")
        .map_err(db)?;
    let migrated = (|| {
        let tx = conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        // Read again under the write lock: another process may have migrated it.
        let version = schema_version(&tx).map_err(db)?;
        if version > SCHEMA_VERSION {
            return Err(newer(version));
        }
        for step in MIGRATIONS.iter().filter(|m| m.version > version) {
            for sql in step.sql {
                tx.execute_batch(sql).map_err(db)?;
            }
        }
        if version < REVOCATION_VERSION {
            revoke_unaccounted(&tx, path)?;
        }
        let broken: i64 = tx
            .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .map_err(db)?;
        if broken > 0 {
            return Err(JournalError::Settings {
                path: path.display().to_string(),
                reason: format!(
                    "{broken} row(s) refer to rows that do not exist; the schema was not migrated"
                ),
            });
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(db)?;
        tx.commit().map_err(db)
    })();
    conn.execute_batch("PRAGMA foreign_keys = ON").map_err(db)?;
    migrated
}

impl SqliteJournal {
    /// Opens (creating if needed) the journal at `path` and checks its settings.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let db = database_error(path);
        make_private(path)?;
        let mut conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(BUSY_WAIT).map_err(db)?;
        // Switching a new journal to WAL needs it to itself, and SQLite
        // answers "busy" at once, without its busy wait, while another
        // process is creating the same journal: try again, within the wait.
        let started = std::time::Instant::now();
        let journal_mode: String = loop {
            match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
                Err(e) if is_busy(&e) && started.elapsed() < BUSY_WAIT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => break other.map_err(db)?,
            }
        };
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
        migrate(&mut conn, path)?;
        // The -wal and -shm files exist now; an older journal's may have been
        // created readable by others.
        make_private(path)?;
        let checkpointed_seq = Self::head(&conn).map_err(db)?.map_or(0, |(seq, _)| seq);
        Ok(Self {
            conn,
            path: path.to_path_buf(),
            appended: false,
            checkpointed_seq,
            audit_key: None,
            leases: HashMap::new(),
        })
    }

    fn head(conn: &Connection) -> rusqlite::Result<Option<(i64, Vec<u8>)>> {
        conn.query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
    }

    /// Signs a checkpoint of the audit chain's committed head with the
    /// journal's audit key (made on first use) and appends it to the
    /// checkpoint file beside the journal. Returns the record it covers,
    /// `None` when the log is empty.
    pub fn checkpoint(&mut self) -> Result<Option<i64>, JournalError> {
        let Some((seq, head)) = Self::head(&self.conn).map_err(|e| self.db(e))? else {
            return Ok(None);
        };
        let key = match self.audit_key.take() {
            Some(key) => key,
            None => AuditKey::load_or_create(&self.path)?,
        };
        let written = checkpoint::append(
            &self.path,
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
        let seq = Self::head(&self.conn)
            .map_err(|e| self.db(e))?
            .map_or(0, |(seq, _)| seq);
        if seq - self.checkpointed_seq >= CHECKPOINT_EVERY {
            self.checkpoint()?;
        }
        Ok(())
    }

    fn db(&self, e: rusqlite::Error) -> JournalError {
        database_error(&self.path)(e)
    }

    /// Refuses a production write of `order` when this connection took the
    /// order's lease and another holder has it now (it judged this one dead).
    fn check_lease(
        leases: &HashMap<OrderId, String>,
        path: &Path,
        tx: &Connection,
        order: OrderId,
    ) -> Result<(), JournalError> {
        let Some(mine) = leases.get(&order) else {
            return Ok(());
        };
        let current = read_lease(tx, order).map_err(database_error(path))?;
        lease::held_by(current.as_ref(), mine).map_err(|by| JournalError::LeaseLost { order, by })
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
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        Self::change_order_state(&tx, &self.path, order, change, operator)?;
        tx.commit().map_err(db)?;
        // Only marked, never a periodic checkpoint here: a failed checkpoint
        // must not turn a committed state change into a reported failure.
        self.appended = true;
        Ok(())
    }

    /// An order state change inside `tx`, for callers that write the rows
    /// that go with it in the same transaction.
    fn change_order_state(
        tx: &Transaction<'_>,
        path: &Path,
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
        let db = database_error(path);
        let state = Self::order_state(tx, order)
            .map_err(db)?
            .ok_or(JournalError::NoOrder(order))?;
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
        )
        .map_err(db)?;
        append_audit(tx, operator, event, &format!("order {order}"), details).map_err(db)
    }
}

/// What an import stores, inside its transaction (see
/// [`crate::order::import`] for its rules).
struct SqliteImport<'a> {
    tx: &'a Transaction<'a>,
    path: &'a Path,
}

impl ImportStore for SqliteImport<'_> {
    fn parent(&mut self, order: OrderId) -> Result<Option<StoredParent>, JournalError> {
        let db = database_error(self.path);
        let found: Option<(String, String)> = self
            .tx
            .query_row(
                "SELECT manufacturer_vkn, kind FROM orders WHERE id = ?1",
                [order.0],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)?;
        let Some((taxpayer, kind)) = found else {
            return Ok(None);
        };
        let bad = |reason: String| JournalError::Database {
            path: self.path.display().to_string(),
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
        self.tx
            .execute(
                "INSERT INTO orders (kind, manufacturer, manufacturer_vkn, prefixes, parent_order, target, key_type, state, source, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'received', ?8, ?9)",
                params![
                    order.kind.as_str(),
                    order.manufacturer,
                    stored_taxpayer(&order.manufacturer_vkn),
                    order.prefixes.join(","),
                    parent.map(|p| p.0),
                    order.target.as_str(),
                    order.key_type.to_string(),
                    order.source,
                    now_rfc3339()
                ],
            )
            .map_err(database_error(self.path))?;
        Ok(OrderId(self.tx.last_insert_rowid()))
    }

    fn place_device(
        &mut self,
        order: OrderId,
        serial: &str,
        line: usize,
    ) -> Result<Placed, JournalError> {
        let db = database_error(self.path);
        let inserted = self
            .tx
            .prepare_cached(
                "INSERT INTO devices (order_id, serial, line_no, state) VALUES (?1, ?2, ?3, 'planned')",
            )
            .map_err(db)?
            .execute(params![order.0, serial, line as i64]);
        match inserted {
            Ok(_) => Ok(Placed::New),
            // The serial is a device already (devices.serial is unique).
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::ConstraintViolation =>
            {
                let (other, other_line, certified): (i64, i64, bool) = self
                    .tx
                    .prepare_cached(EARLIER_DEVICE)
                    .map_err(db)?
                    .query_row([serial], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(db)?;
                Ok(Placed::Taken {
                    order: OrderId(other),
                    line: other_line as usize,
                    certified,
                })
            }
            Err(e) => Err(db(e)),
        }
    }
}

impl Journal for SqliteJournal {
    fn in_import_transaction(
        &mut self,
        operator: &str,
        import: &mut dyn FnMut(&mut dyn ImportStore) -> Result<ImportOutcome, JournalError>,
    ) -> Result<(), JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        let outcome = import(&mut SqliteImport {
            tx: &tx,
            path: &self.path,
        })?;
        match outcome {
            ImportOutcome::Undo => {
                tx.rollback().map_err(db)?;
                Ok(())
            }
            ImportOutcome::Keep { order, details } => {
                append_audit(
                    &tx,
                    operator,
                    "order.received",
                    &format!("order {order}"),
                    &details,
                )
                .map_err(db)?;
                tx.commit().map_err(db)?;
                self.audit_committed()
            }
        }
    }
    fn cancel_order(&mut self, order: OrderId, operator: &str) -> Result<u64, JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        // A certificate on record holds its device: such an order is not
        // cancelled (its devices and their certificates stay on record).
        let certified: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM certificates c JOIN devices d ON c.device_id = d.id WHERE d.order_id = ?1",
                [order.0],
                |r| r.get(0),
            )
            .map_err(db)?;
        if certified > 0 {
            let state = Self::order_state(&tx, order)
                .map_err(db)?
                .ok_or(JournalError::NoOrder(order))?;
            return Err(JournalError::WrongState {
                order,
                state,
                refused: format!(
                    "{certified} certificate(s) of its devices are on record, and a certificate on record is never deleted"
                ),
            });
        }
        let freed = tx
            .execute(
                "INSERT INTO cancelled_devices (order_id, serial, line_no)
                 SELECT order_id, serial, line_no FROM devices WHERE order_id = ?1 ORDER BY id",
                [order.0],
            )
            .map_err(db)?;
        let details = format!("{freed} serial(s) freed for another order");
        Self::change_order_state(
            &tx,
            &self.path,
            order,
            Transition {
                to: OrderState::Cancelled,
                event: "order.cancelled",
                details: &details,
                refused: "only an unpaid (received) order can be cancelled; after payment there is no cancellation or refund",
            },
            operator,
        )?;
        tx.execute("DELETE FROM devices WHERE order_id = ?1", [order.0])
            .map_err(db)?;
        tx.commit().map_err(db)?;
        self.audit_committed()?;
        Ok(freed as u64)
    }

    fn register_manufacturer(
        &mut self,
        manufacturer: &Manufacturer,
        operator: &str,
    ) -> Result<(), JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        if let Some(registered) = read_manufacturer(&tx, &manufacturer.vkn).map_err(db)? {
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
        .map_err(db)?;
        append_audit(
            &tx,
            operator,
            "manufacturer.registered",
            &format!("manufacturer {}", manufacturer.vkn),
            &manufacturer.describe(),
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        self.audit_committed()
    }

    fn manufacturer(&self, vkn: &str) -> Result<Option<Manufacturer>, JournalError> {
        read_manufacturer(&self.conn, vkn).map_err(|e| self.db(e))
    }

    fn manufacturers(&self) -> Result<Vec<Manufacturer>, JournalError> {
        let mut stmt = self
            .conn
            .prepare("SELECT * FROM manufacturers ORDER BY vkn")
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([], manufacturer_from_row)
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }

    fn change_manufacturer(
        &mut self,
        vkn: &str,
        change: &ManufacturerChange,
        today: time::Date,
        operator: &str,
    ) -> Result<(Manufacturer, Manufacturer), JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        let before = read_manufacturer(&tx, vkn).map_err(db)?.ok_or_else(|| {
            ManufacturerError::NotRegistered {
                vkn: vkn.to_owned(),
            }
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
        .map_err(db)?;
        append_audit(
            &tx,
            operator,
            "manufacturer.changed",
            &format!("manufacturer {vkn}"),
            &before.describe_change(&after),
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
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
                    .map_err(db)?;
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
        let (id, device, tbs): (i64, i64, Vec<u8>) = tx
            .query_row(
                "SELECT id, device_id, tbs FROM certificates WHERE serial_hex = ?1 AND status = 'intent'",
                [serial_hex],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(db)?;
        tx.execute(
            "UPDATE certificates SET status = 'void', void_reason = ?1 WHERE serial_hex = ?2",
            params![reason, serial_hex],
        )
        .map_err(db)?;
        // A device certified before (a failed reissue) keeps its state.
        tx.execute(
            "UPDATE devices SET state = CASE WHEN key_id IS NULL THEN 'planned' ELSE 'key-generated' END
             WHERE id = ?1 AND state NOT IN ('verified', 'delivered')",
            [device],
        )
        .map_err(db)?;
        // A reissue that never became a certificate supersedes nothing: the
        // certificate it was to replace is in force again.
        let reinstated: Option<String> = tx
            .query_row(
                "SELECT serial_hex FROM certificates WHERE superseded_by = ?1 AND status = 'superseded'",
                [serial_hex],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        if reinstated.is_some() {
            tx.execute(
                "UPDATE certificates SET status = 'issued', superseded_by = NULL, superseded_at = NULL, superseded_operator = NULL
                 WHERE superseded_by = ?1 AND status = 'superseded'",
                [serial_hex],
            )
            .map_err(db)?;
        }
        append_audit(
            &tx,
            operator,
            "certificate.voided",
            &format!("certificate {serial_hex}"),
            reason,
        )
        .map_err(db)?;
        // The CA may have signed it before the intent was voided: listed on
        // the next CRL, so that no signed certificate is left unaccounted for.
        revoke_superseded(
            &tx,
            &self.path,
            id,
            serial_hex,
            &tbs,
            "its intent was voided: a signature, if made, never became a delivered certificate",
            operator,
        )?;
        if let Some(old) = &reinstated {
            append_audit(
                &tx,
                operator,
                "certificate.reinstated",
                &format!("certificate {old}"),
                &format!(
                    "its reissue {serial_hex} never became a certificate: it is in force again"
                ),
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        self.audit_committed()
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
            &format!("device {}", device.name),
            &format!("CKA_ID {key_id_hex}"),
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        self.audit_committed()
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
                    &format!("device {}", intent.device.name),
                    &format!(
                        "{}; certificate {} linted",
                        intent.key_note, intent.serial_hex
                    ),
                )
                .map_err(db)?;
        }
        chain.write(&tx).map_err(db)?;
        tx.commit().map_err(db)?;
        self.audit_committed()
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
                        c.serial_hex, device.name
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
                    &format!("device {}", device.name),
                    &format!(
                        "certificate {} signed, verified, stored; SHA-256 {}",
                        c.serial_hex, c.sha256
                    ),
                )
                .map_err(db)?;
        }
        chain.write(&tx).map_err(db)?;
        tx.commit().map_err(db)?;
        self.audit_committed()
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
        delivery: &DeliveryRecord<'_>,
        operator: &str,
    ) -> Result<(), JournalError> {
        let details = format!(
            "folder {}, uploaded {}, purge due {}",
            delivery.folder,
            delivery.uploaded_at,
            delivery.purge_due.unwrap_or("never (not soft)")
        );
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        Self::change_order_state(
            &tx,
            &self.path,
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
        .and_then(|_| {
            tx.execute(
                "UPDATE devices SET state = 'delivered' WHERE order_id = ?1",
                [order.0],
            )
        })
        .map_err(db)?;
        tx.commit().map_err(db)?;
        self.appended = true;
        Ok(())
    }

    fn pkcs12_serials(
        &self,
        order: OrderId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String)>, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, serial FROM devices WHERE order_id = ?1 AND id > ?2 AND p12_password IS NOT NULL
                 ORDER BY id LIMIT ?3",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map(params![order.0, after, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }

    fn record_purge_started(&mut self, order: OrderId, operator: &str) -> Result<(), JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        let state = Self::order_state(&tx, order)
            .map_err(db)?
            .ok_or(JournalError::NoOrder(order))?;
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
        )
        .map_err(db)?;
        append_audit(
            &tx,
            operator,
            "order.purge-started",
            &format!("order {order}"),
            "key material is being overwritten and deleted",
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
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
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        Self::change_order_state(
            &tx,
            &self.path,
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
                [order.0],
            )
        })
        .map_err(db)?;
        tx.commit().map_err(db)?;
        self.appended = true;
        Ok(())
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
            .map_err(|e| self.db(e))?;
        if busy != 0 {
            return Err(JournalError::Database {
                path: self.path.display().to_string(),
                reason: "another process is reading the journal, so its write-ahead log could not be truncated: \
                         erased passwords may remain in it until `certmint okc purge` runs again"
                    .into(),
            });
        }
        Ok(())
    }

    fn unpurged_soft_deliveries(&self) -> Result<Vec<SoftDelivery>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT o.id, d.folder, f.passwords, d.uploaded_at, f.purge_started_at IS NOT NULL
                 FROM orders o JOIN deliveries d ON d.order_id = o.id
                 LEFT JOIN delivery_files f ON f.order_id = o.id
                 WHERE o.target = 'soft' AND o.state = 'delivered' ORDER BY o.id",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SoftDelivery {
                    order: OrderId(r.get(0)?),
                    folder: r.get(1)?,
                    passwords: r.get(2)?,
                    uploaded_at: r.get(3)?,
                    purge_started: r.get(4)?,
                })
            })
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
        tx.commit().map_err(db)?;
        self.audit_committed()
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
        let decision = lease::decide(previous.as_ref(), holder, now_ms());
        let taken_over = match (decision, previous) {
            (LeaseDecision::Refuse, Some(lease)) => {
                return Err(JournalError::Held {
                    order,
                    lease: Box::new(lease),
                })
            }
            (LeaseDecision::TakeOver(why), Some(lease)) => {
                append_audit(
                    &tx,
                    &holder.operator,
                    "order.lease-taken-over",
                    &format!("order {order}"),
                    &lease::take_over_details(&lease, holder, why),
                )
                .map_err(db)?;
                Some(lease)
            }
            // Take and Renew (a refusal or take-over always has a row).
            _ => None,
        };
        let now = now_rfc3339();
        tx.execute(
            "INSERT INTO producer_leases (order_id, holder_id, host, boot_id, pid, operator, acquired_at, renewed_at, expires_at_ms, start_time)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9)
             ON CONFLICT(order_id) DO UPDATE SET holder_id = ?2, host = ?3, boot_id = ?4, pid = ?5,
                 operator = ?6, acquired_at = ?7, renewed_at = ?7, expires_at_ms = ?8, start_time = ?9",
            params![
                order.0,
                holder.holder_id,
                holder.host,
                holder.boot_id,
                holder.pid,
                holder.operator,
                now,
                expiry(ttl),
                i64::try_from(holder.start_time).unwrap_or(0)
            ],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        if taken_over.is_some() {
            self.appended = true;
        }
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

    fn confirm_lease(&self, order: OrderId) -> Result<(), JournalError> {
        Self::check_lease(&self.leases, &self.path, &self.conn, order)
    }

    fn lease(&self, order: OrderId) -> Result<Option<Lease>, JournalError> {
        read_lease(&self.conn, order).map_err(|e| self.db(e))
    }

    fn device_by_serial(&self, serial: &str) -> Result<Option<Device>, JournalError> {
        self.conn
            .prepare_cached(
                "SELECT id, order_id, serial, state, key_id FROM devices WHERE serial = ?1",
            )
            .and_then(|mut stmt| stmt.query_row([serial], device_from_row).optional())
            .map_err(|e| self.db(e))
    }

    fn certificate_in_force(
        &self,
        device: &Device,
    ) -> Result<Option<(String, CertificateStatus)>, JournalError> {
        let found: Option<(String, String)> = self
            .conn
            .prepare_cached(
                "SELECT serial_hex, status FROM certificates
                 WHERE device_id = ?1 AND status IN ('intent', 'issued')",
            )
            .and_then(|mut stmt| {
                stmt.query_row([device.id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.db(e))?;
        found
            .map(|(serial, status)| Ok((serial, parse(status).map_err(|e| self.db(e))?)))
            .transpose()
    }

    fn record_one_off_order(
        &mut self,
        order: &NewOrder,
        serial: &str,
    ) -> Result<Device, JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        let now = now_rfc3339();
        tx.execute(
            "INSERT INTO orders (kind, manufacturer, manufacturer_vkn, prefixes, target, key_type, state, source, created_at, paid_at, paid_by, one_off)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'paid', ?7, ?8, ?8, ?9, 1)",
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
        )
        .map_err(db)?;
        let order_id = OrderId(tx.last_insert_rowid());
        tx.execute(
            "INSERT INTO devices (order_id, serial, line_no, state) VALUES (?1, ?2, 1, 'planned')",
            params![order_id.0, serial],
        )
        .map_err(db)?;
        let device = Device {
            id: tx.last_insert_rowid(),
            order: order_id,
            name: DeviceName::parse(serial).map_err(|e| JournalError::Database {
                path: self.path.display().to_string(),
                reason: e.to_string(),
            })?,
            state: DeviceState::Planned,
            key_id: None,
        };
        let mut chain = AuditChain::read(&tx).map_err(db)?;
        let subject = format!("order {order_id}");
        chain
            .append(
                &tx,
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
                    &tx,
                    &now,
                    &order.operator,
                    "order.paid",
                    &subject,
                    "one-off order: paid at creation by its operator",
                )
            })
            .and_then(|()| chain.write(&tx))
            .map_err(db)?;
        tx.commit().map_err(db)?;
        self.audit_committed()?;
        Ok(device)
    }

    fn record_single_intent(
        &mut self,
        intent: &Intent<'_>,
        supersedes: Option<&str>,
        operator: &str,
    ) -> Result<(), JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        Self::check_lease(&self.leases, &self.path, &tx, intent.device.order)?;
        let mut chain = AuditChain::read(&tx).map_err(db)?;
        let now = now_rfc3339();
        if let Some(old) = supersedes {
            let changed = tx
                .execute(
                    "UPDATE certificates SET status = 'superseded', superseded_by = ?1, superseded_at = ?2, superseded_operator = ?3
                     WHERE serial_hex = ?4 AND device_id = ?5 AND status = 'issued'",
                    params![intent.serial_hex, now, operator, old, intent.device.id],
                )
                .map_err(db)?;
            if changed != 1 {
                return Err(JournalError::NoCertificate(format!(
                    "issued certificate {old} of {}",
                    intent.device.name
                )));
            }
            chain
                .append(
                    &tx,
                    &now,
                    operator,
                    "certificate.superseded",
                    &format!("certificate {old}"),
                    &format!(
                        "{} is reissued: superseded by certificate {}",
                        intent.device.name, intent.serial_hex
                    ),
                )
                .map_err(db)?;
        }
        tx.execute(
            "INSERT INTO certificates (device_id, serial_hex, status, tbs, recorded_at) VALUES (?1, ?2, 'intent', ?3, ?4)",
            params![intent.device.id, intent.serial_hex, intent.tbs, now],
        )
        .map_err(db)?;
        tx.execute(
            "UPDATE devices SET state = 'intent-recorded' WHERE id = ?1 AND state IN ('planned', 'key-generated')",
            [intent.device.id],
        )
        .map_err(db)?;
        chain
            .append(
                &tx,
                &now,
                operator,
                "device.intent",
                &format!("device {}", intent.device.name),
                &format!(
                    "{}; certificate {} linted",
                    intent.key_note, intent.serial_hex
                ),
            )
            .and_then(|()| chain.write(&tx))
            .map_err(db)?;
        tx.commit().map_err(db)?;
        self.audit_committed()
    }

    fn record_single_issued(
        &mut self,
        device: &Device,
        certificate: &StoredCertificate<'_>,
        operator: &str,
    ) -> Result<(), JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        Self::check_lease(&self.leases, &self.path, &tx, device.order)?;
        let c = certificate;
        let changed = tx
            .execute(
                "UPDATE certificates SET status = 'issued', der = ?1, sha256 = ?2, not_before = ?3, not_after = ?4
                 WHERE serial_hex = ?5 AND status = 'intent' AND device_id = ?6",
                params![c.der, c.sha256, c.not_before, c.not_after, c.serial_hex, device.id],
            )
            .map_err(db)?;
        if changed != 1 {
            return Err(JournalError::Database {
                path: self.path.display().to_string(),
                reason: format!(
                    "certificate {} of {} has no recorded intent",
                    c.serial_hex, device.name
                ),
            });
        }
        tx.execute(
            "UPDATE devices SET state = 'verified' WHERE id = ?1 AND state NOT IN ('verified', 'delivered')",
            [device.id],
        )
        .map_err(db)?;
        // A completed reissue: the certificate it supersedes is valid and
        // signed, and will never be the device's certificate again.
        let superseded: Vec<(i64, String, Vec<u8>)> = tx
            .prepare_cached(
                "SELECT id, serial_hex, tbs FROM certificates WHERE superseded_by = ?1 AND status = 'superseded'",
            )
            .and_then(|mut stmt| {
                stmt.query_map([c.serial_hex], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect()
            })
            .map_err(db)?;
        append_audit(
            &tx,
            operator,
            "device.certificate-issued",
            &format!("device {}", device.name),
            &format!(
                "certificate {} signed, verified, recorded; SHA-256 {}",
                c.serial_hex, c.sha256
            ),
        )
        .map_err(db)?;
        for (id, old, tbs) in &superseded {
            revoke_superseded(
                &tx,
                &self.path,
                *id,
                old,
                tbs,
                &format!("superseded by certificate {} (a reissue)", c.serial_hex),
                operator,
            )?;
        }
        tx.commit().map_err(db)?;
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
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = vec![Box::new(after)];
        let mut add = |condition: &str, value: Box<dyn rusqlite::ToSql>| {
            args.push(value);
            conditions.push(condition.replace('?', &format!("?{}", args.len())));
        };
        if let Some(serial) = &filter.serial {
            add("c.serial_hex = ?", Box::new(serial.to_ascii_uppercase()));
        }
        if let Some(serial) = &filter.device_serial {
            add("d.serial = ? AND o.kind = 'okc'", Box::new(serial.clone()));
        }
        if let Some(label) = &filter.seal_label {
            add(
                "d.serial = ? AND o.kind = 'mali-muhur'",
                Box::new(label.clone()),
            );
        }
        if let Some(id) = &filter.taxpayer {
            add("o.manufacturer_vkn = ?", Box::new(id.clone()));
        }
        if let Some(order) = filter.order {
            add("d.order_id = ?", Box::new(order.0));
        }
        if filter.revoked {
            conditions.push("r.id IS NOT NULL".to_owned());
        }
        args.push(Box::new(i64::try_from(limit).unwrap_or(i64::MAX)));
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
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
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
                    revocation: match r.get::<_, Option<String>>(18)? {
                        None => None,
                        Some(revoked_at) => Some(RevocationRecord {
                            revoked_at,
                            reason: r.get::<_, String>(19)?.parse().map_err(
                                |e: crate::revocation::UnknownReason| bad_row(e.to_string()),
                            )?,
                            invalidity_date: r.get(20)?,
                            operator: r.get(21)?,
                        }),
                    },
                })
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }

    fn audit_records(
        &self,
        order: Option<OrderId>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, JournalError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let entry = |r: &rusqlite::Row<'_>| {
            Ok(AuditEntry {
                seq: r.get(0)?,
                at: r.get(1)?,
                operator: r.get(2)?,
                event: r.get(3)?,
                subject: r.get(4)?,
                details: r.get(5)?,
            })
        };
        let rows = match order {
            None => self
                .conn
                .prepare_cached(
                    "SELECT seq, at, operator, event, subject, details FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                )
                .and_then(|mut stmt| {
                    stmt.query_map(params![after, limit], entry)?
                        .collect::<Result<Vec<_>, _>>()
                }),
            // The records about an order name it, one of its devices, or one
            // of their certificates: each record's subject is looked up by
            // the unique indexes of serials, so a page costs the same
            // however large the order.
            Some(order) => self
                .conn
                .prepare_cached(AUDIT_OF_ORDER)
                .and_then(|mut stmt| {
                    stmt.query_map(params![after, order.0, limit], entry)?
                        .collect::<Result<Vec<_>, _>>()
                }),
        };
        rows.map_err(|e| self.db(e))
    }

    fn active_certificates_per_device(
        &self,
        order: OrderId,
    ) -> Result<Vec<(String, u64)>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT d.serial, (SELECT COUNT(*) FROM certificates c WHERE c.device_id = d.id AND c.status IN ('intent', 'issued'))
                 FROM devices d WHERE d.order_id = ?1 ORDER BY d.id",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([order.0], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }

    fn revoke(
        &mut self,
        request: &RevocationRequest,
        operator: &str,
    ) -> Result<RevokeOutcome, JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        let serial = request.serial_hex.as_str();
        let (id, status, tbs): (i64, String, Vec<u8>) = tx
            .query_row(
                "SELECT id, status, tbs FROM certificates WHERE serial_hex = ?1",
                [serial],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(db)?
            .ok_or_else(|| JournalError::NoCertificate(format!("serial {serial}")))?;
        let status: CertificateStatus = parse(status).map_err(db)?;
        if !status.may_be_revoked() {
            return Err(JournalError::NotRevocable {
                serial: serial.to_owned(),
                status,
            });
        }
        let issuer = issuer_key_id_of_tbs(&tbs).map_err(|reason| JournalError::Database {
            path: self.path.display().to_string(),
            reason: format!("certificate {serial}: {reason}"),
        })?;
        let outcome = insert_revocation(
            &tx,
            &NewRevocation {
                serial_hex: serial,
                issuer_key_id_hex: &crate::pem::hex(&issuer),
                certificate_id: Some(id),
                reason: request.reason,
                invalidity_date: request.invalidity_date.map(crate::timestamp::format),
                note: "revoked by the operator",
            },
            operator,
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        if matches!(outcome, RevokeOutcome::Revoked { .. }) {
            self.audit_committed()?;
        }
        Ok(outcome)
    }

    fn revoke_ca_certificate(
        &mut self,
        revocation: &CaCertificateRevocation,
        operator: &str,
    ) -> Result<RevokeOutcome, JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        let note = format!("issuing CA certificate {}", revocation.subject);
        let outcome = insert_revocation(
            &tx,
            &NewRevocation {
                serial_hex: &revocation.serial_hex,
                issuer_key_id_hex: &crate::pem::hex(&revocation.issuer_key_id),
                certificate_id: None,
                reason: revocation.reason,
                invalidity_date: revocation.invalidity_date.map(crate::timestamp::format),
                note: &note,
            },
            operator,
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        if matches!(outcome, RevokeOutcome::Revoked { .. }) {
            self.audit_committed()?;
        }
        Ok(outcome)
    }

    fn revocation(&self, serial_hex: &str) -> Result<Option<RevocationRecord>, JournalError> {
        self.conn
            .prepare_cached(
                "SELECT r.revoked_at, r.reason, r.invalidity_date, r.operator FROM revocations r
                 JOIN certificates c ON r.certificate_id = c.id WHERE c.serial_hex = ?1",
            )
            .and_then(|mut stmt| stmt.query_row([serial_hex], revocation_from_row).optional())
            .map_err(|e| self.db(e))
    }

    fn revoked_entries(
        &self,
        issuer_key_id: &[u8],
        each: &mut dyn FnMut(RevokedEntry) -> Result<(), JournalError>,
    ) -> Result<u64, JournalError> {
        use time::format_description::well_known::Rfc3339;
        let db = database_error(&self.path);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT serial_hex, revoked_at, reason, invalidity_date FROM revocations
                 WHERE issuer_key_id = ?1 ORDER BY length(serial_hex), serial_hex",
            )
            .map_err(db)?;
        let mut rows = stmt.query([crate::pem::hex(issuer_key_id)]).map_err(db)?;
        let bad = |serial: &str, what: &str| JournalError::Database {
            path: self.path.display().to_string(),
            reason: format!(
                "revocation of {serial}: {what} does not read back (changed outside certmint?)"
            ),
        };
        let time = |text: &str| time::OffsetDateTime::parse(text, &Rfc3339).ok();
        let mut count = 0;
        while let Some(row) = rows.next().map_err(db)? {
            let serial_hex: String = row.get(0).map_err(db)?;
            let revoked_at: String = row.get(1).map_err(db)?;
            let reason: String = row.get(2).map_err(db)?;
            let invalidity: Option<String> = row.get(3).map_err(db)?;
            let entry = RevokedEntry {
                serial: crate::pem::parse_hex(&serial_hex)
                    .ok_or_else(|| bad(&serial_hex, "the serial"))?,
                revoked_at: time(&revoked_at).ok_or_else(|| bad(&serial_hex, "its time"))?,
                reason: reason.parse().map_err(|_| bad(&serial_hex, "its reason"))?,
                invalidity_date: match invalidity {
                    None => None,
                    Some(text) => {
                        Some(time(&text).ok_or_else(|| bad(&serial_hex, "its invalidity date"))?)
                    }
                },
            };
            each(entry)?;
            count += 1;
        }
        Ok(count)
    }

    fn allocate_crl_number(
        &mut self,
        issuer_key_id: &[u8],
        operator: &str,
    ) -> Result<u64, JournalError> {
        let db = database_error(&self.path);
        let issuer = crate::pem::hex(issuer_key_id);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        tx.execute(
            "INSERT INTO crl_numbers (issuer_key_id, last_allocated) VALUES (?1, 1)
             ON CONFLICT(issuer_key_id) DO UPDATE SET last_allocated = last_allocated + 1",
            [&issuer],
        )
        .map_err(db)?;
        let number: i64 = tx
            .query_row(
                "SELECT last_allocated FROM crl_numbers WHERE issuer_key_id = ?1",
                [&issuer],
                |r| r.get(0),
            )
            .map_err(db)?;
        append_audit(
            &tx,
            operator,
            "crl.number-allocated",
            &format!("crl {issuer}"),
            &format!("CRL number {number} allocated, before the CRL is signed"),
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        self.audit_committed()?;
        u64::try_from(number).map_err(|_| JournalError::CrlNumber {
            issuer_key_id: issuer,
            number: 0,
            reason: format!("the stored number {number} is not positive"),
        })
    }

    fn record_crl(&mut self, crl: &IssuedCrl<'_>, operator: &str) -> Result<(), JournalError> {
        let db = database_error(&self.path);
        let issuer = crate::pem::hex(crl.issuer_key_id);
        let refused = |reason: &str| JournalError::CrlNumber {
            issuer_key_id: issuer.clone(),
            number: crl.number,
            reason: reason.to_owned(),
        };
        let number = i64::try_from(crl.number).map_err(|_| refused("too large"))?;
        let entries = i64::try_from(crl.entries).map_err(|_| refused("too many entries"))?;
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        let allocated: Option<i64> = tx
            .query_row(
                "SELECT last_allocated FROM crl_numbers WHERE issuer_key_id = ?1",
                [&issuer],
                |r| r.get(0),
            )
            .optional()
            .map_err(db)?;
        if number < 1 || allocated.is_none_or(|last| number > last) {
            return Err(refused("was never allocated"));
        }
        let recorded: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM crls WHERE issuer_key_id = ?1 AND number = ?2)",
                params![issuer, number],
                |r| r.get(0),
            )
            .map_err(db)?;
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
        .map_err(db)?;
        append_audit(
            &tx,
            operator,
            "crl.issued",
            &format!("crl {issuer}"),
            &format!(
                "CRL number {number}: {entries} entries, thisUpdate {this_update}, nextUpdate {next_update}; SHA-256 {}",
                crl.sha256_hex
            ),
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
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

    fn record_card_secrets(
        &mut self,
        device: &Device,
        certificate_serial: &str,
        reader: &str,
        pin: &crate::pkcs11::pin::Pin,
        puk: &crate::pkcs11::pin::Pin,
        operator: &str,
    ) -> Result<(), JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        Self::check_lease(&self.leases, &self.path, &tx, device.order)?;
        tx.execute(
            "INSERT INTO card_secrets (certificate_serial, device_id, reader, pin, puk, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                certificate_serial,
                device.id,
                reader,
                pin.expose(),
                puk.expose(),
                now_rfc3339()
            ],
        )
        .map_err(db)?;
        append_audit(
            &tx,
            operator,
            "card.secrets-recorded",
            &format!("certificate {certificate_serial}"),
            &format!(
                "device {}: a fresh random PIN and PUK for the card in reader {reader:?}, \
                 held until the order's PIN letters are purged",
                device.name
            ),
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        self.appended = true;
        Ok(())
    }

    fn card_secrets_of_certificate(
        &self,
        certificate_serial: &str,
    ) -> Result<Option<CardSecrets>, JournalError> {
        self.conn
            .prepare_cached(
                "SELECT d.serial, s.certificate_serial, s.reader, s.pin, s.puk FROM card_secrets s
                 JOIN devices d ON d.id = s.device_id
                 WHERE s.certificate_serial = ?1 AND s.pin IS NOT NULL",
            )
            .and_then(|mut stmt| {
                stmt.query_row([certificate_serial], card_secrets_from_row)
                    .optional()
            })
            .map_err(|e| self.db(e))
    }

    fn card_secrets(
        &self,
        order: OrderId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, CardSecrets)>, JournalError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT d.serial, s.certificate_serial, s.reader, s.pin, s.puk, d.id FROM devices d
                 JOIN certificates c ON c.device_id = d.id AND c.status IN ('intent', 'issued') AND c.status = 'issued'
                 JOIN card_secrets s ON s.certificate_serial = c.serial_hex AND s.pin IS NOT NULL
                 WHERE d.order_id = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map(params![order.0, after, limit as i64], |r| {
                Ok((r.get::<_, i64>(5)?, card_secrets_from_row(r)?))
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }

    fn record_pin_letters(
        &mut self,
        order: OrderId,
        manifest: &str,
        uploaded_at: &str,
        operator: &str,
    ) -> Result<(), JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        tx.execute(
            "INSERT INTO pin_letters (order_id, manifest, uploaded_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(order_id) DO UPDATE SET manifest = ?2, uploaded_at = ?3, purged_at = NULL",
            params![order.0, manifest, uploaded_at],
        )
        .map_err(db)?;
        append_audit(
            &tx,
            operator,
            "order.pin-letters",
            &format!("order {order}"),
            &format!("PIN letter manifest {manifest} written {uploaded_at} (mode 0600)"),
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        self.appended = true;
        Ok(())
    }

    fn unpurged_pin_letters(&self) -> Result<Vec<PinLetters>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT order_id, manifest, uploaded_at FROM pin_letters WHERE purged_at IS NULL ORDER BY order_id",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(PinLetters {
                    order: OrderId(r.get(0)?),
                    manifest: r.get(1)?,
                    uploaded_at: r.get(2)?,
                })
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }

    fn record_pin_letters_purged(
        &mut self,
        order: OrderId,
        purged_at: &str,
        details: &str,
        operator: &str,
    ) -> Result<(), JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        let changed = tx
            .execute(
                "UPDATE pin_letters SET purged_at = ?1 WHERE order_id = ?2 AND purged_at IS NULL",
                params![purged_at, order.0],
            )
            .map_err(db)?;
        if changed == 0 {
            return Err(JournalError::Database {
                path: self.path.display().to_string(),
                reason: format!("order {order} has no PIN letters awaiting the purge"),
            });
        }
        tx.execute(
            "UPDATE card_secrets SET pin = NULL, puk = NULL, old_pin = NULL, old_puk = NULL
             WHERE device_id IN (SELECT id FROM devices WHERE order_id = ?1)",
            [order.0],
        )
        .map_err(db)?;
        append_audit(
            &tx,
            operator,
            "order.pin-letters-purged",
            &format!("order {order}"),
            details,
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
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
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        Self::check_lease(&self.leases, &self.path, &tx, device.order)?;
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
        )
        .map_err(db)?;
        append_audit(
            &tx,
            operator,
            "card.secrets-recorded",
            &format!("certificate {certificate_serial}"),
            &format!(
                "device {}: a fresh random PIN and PUK for the card in reader {reader:?}, \
                 pending until the card took them, held until the order's PIN letters are purged",
                device.name
            ),
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        self.appended = true;
        Ok(())
    }

    fn card_secrets_held(
        &self,
        certificate_serial: &str,
    ) -> Result<Option<HeldCardSecrets>, JournalError> {
        self.conn
            .prepare_cached(
                "SELECT d.serial, s.certificate_serial, s.reader, s.pin, s.puk, s.state, s.old_pin, s.old_puk
                 FROM card_secrets s JOIN devices d ON d.id = s.device_id
                 WHERE s.certificate_serial = ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_row([certificate_serial], held_card_secrets_from_row)
                    .optional()
            })
            .map_err(|e| self.db(e))
    }

    fn confirm_card_secrets(
        &mut self,
        certificate_serial: &str,
        operator: &str,
    ) -> Result<(), JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        let changed = tx
            .execute(
                "UPDATE card_secrets SET state = 'set', old_pin = NULL, old_puk = NULL
                 WHERE certificate_serial = ?1 AND state = 'pending' AND pin IS NOT NULL",
                [certificate_serial],
            )
            .map_err(db)?;
        if changed == 0 {
            return Err(JournalError::Database {
                path: self.path.display().to_string(),
                reason: format!(
                    "certificate {certificate_serial} has no pending card PIN and PUK to confirm"
                ),
            });
        }
        append_audit(
            &tx,
            operator,
            "card.secrets-set",
            &format!("certificate {certificate_serial}"),
            "the card took its fresh PIN and PUK and verified the PIN; the ones it had before are erased",
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        self.appended = true;
        Ok(())
    }

    fn stray_card_secrets(&self) -> Result<Vec<StrayCardSecrets>, JournalError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT s.certificate_serial, d.serial, d.order_id, s.recorded_at
                 FROM card_secrets s
                 JOIN devices d ON d.id = s.device_id
                 JOIN certificates c ON c.serial_hex = s.certificate_serial
                 WHERE s.pin IS NOT NULL AND c.status <> 'issued'
                 ORDER BY s.recorded_at, s.certificate_serial",
            )
            .map_err(|e| self.db(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(StrayCardSecrets {
                    certificate_serial: r.get(0)?,
                    device_serial: r.get(1)?,
                    order: OrderId(r.get(2)?),
                    recorded_at: r.get(3)?,
                })
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }

    fn erase_stray_card_secrets(
        &mut self,
        certificate_serial: &str,
        details: &str,
        operator: &str,
    ) -> Result<(), JournalError> {
        let db = database_error(&self.path);
        let tx = self.conn.transaction_with_behavior(IMMEDIATE).map_err(db)?;
        let changed = tx
            .execute(
                "UPDATE card_secrets SET pin = NULL, puk = NULL, old_pin = NULL, old_puk = NULL
                 WHERE certificate_serial = ?1 AND pin IS NOT NULL
                 AND certificate_serial NOT IN (SELECT serial_hex FROM certificates WHERE status = 'issued')",
                [certificate_serial],
            )
            .map_err(db)?;
        if changed == 0 {
            return Err(JournalError::Database {
                path: self.path.display().to_string(),
                reason: format!(
                    "certificate {certificate_serial} has no PIN and PUK of a card without an issued certificate to erase"
                ),
            });
        }
        append_audit(
            &tx,
            operator,
            "card.secrets-erased",
            &format!("certificate {certificate_serial}"),
            details,
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        self.appended = true;
        Ok(())
    }
}

impl SqliteJournal {
    /// The issuer's CRLs, ordered and limited by `tail`.
    fn crls_where(&self, issuer_key_id: &[u8], tail: &str) -> Result<Vec<CrlRecord>, JournalError> {
        let sql = format!(
            "SELECT issuer_key_id, number, this_update, next_update, entries, sha256, recorded_at, operator
             FROM crls WHERE issuer_key_id = ?1 {tail}"
        );
        self.conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| {
                stmt.query_map([crate::pem::hex(issuer_key_id)], |r| {
                    Ok(CrlRecord {
                        issuer_key_id: r.get(0)?,
                        number: r.get::<_, i64>(1)?.try_into().unwrap_or_default(),
                        this_update: r.get(2)?,
                        next_update: r.get(3)?,
                        entries: r.get::<_, i64>(4)?.try_into().unwrap_or_default(),
                        sha256: r.get(5)?,
                        recorded_at: r.get(6)?,
                        operator: r.get(7)?,
                    })
                })?
                .collect()
            })
            .map_err(|e| self.db(e))
    }
}

impl AuditStorage for SqliteJournal {
    fn audit_checkpoints(&self) -> Result<AuditCheckpoints, JournalError> {
        let key = AuditKey::load(&self.path)?;
        let lines = checkpoint::read(&self.path, key.as_ref())?;
        Ok(AuditCheckpoints {
            has_key: key.is_some(),
            lines,
        })
    }

    fn audit_head(&self) -> Result<Option<(i64, Vec<u8>)>, JournalError> {
        Self::head(&self.conn).map_err(|e| self.db(e))
    }

    fn each_audit_record(&self, each: &mut dyn FnMut(AuditRecord)) -> Result<(), JournalError> {
        let db = database_error(&self.path);
        let mut stmt = self
            .conn
            .prepare("SELECT seq, at, operator, event, subject, details, prev_hash, hash FROM audit ORDER BY seq")
            .map_err(db)?;
        let mut rows = stmt.query([]).map_err(db)?;
        while let Some(r) = rows.next().map_err(db)? {
            each(AuditRecord {
                seq: r.get(0).map_err(db)?,
                at: r.get(1).map_err(db)?,
                operator: r.get(2).map_err(db)?,
                event: r.get(3).map_err(db)?,
                subject: r.get(4).map_err(db)?,
                details: r.get(5).map_err(db)?,
                prev_hash: r.get(6).map_err(db)?,
                hash: r.get(7).map_err(db)?,
            });
        }
        Ok(())
    }

    fn each_audited_fact(&self, each: &mut dyn FnMut(AuditedFact<'_>)) -> Result<(), JournalError> {
        each_audited_row(&self.conn, each).map_err(|e| self.db(e))
    }
}

/// The rows of every table the audit log describes, in the order
/// [`AuditStorage::each_audited_fact`] gives them.
fn each_audited_row(
    conn: &Connection,
    each: &mut dyn FnMut(AuditedFact<'_>),
) -> rusqlite::Result<()> {
    let mut manufacturers = conn.prepare("SELECT vkn FROM manufacturers ORDER BY vkn")?;
    for vkn in manufacturers.query_map([], |r| r.get::<_, String>(0))? {
        each(AuditedFact::Manufacturer { vkn: &vkn? });
    }
    let mut orders = conn.prepare("SELECT id FROM orders ORDER BY id")?;
    for id in orders.query_map([], |r| r.get::<_, i64>(0))? {
        each(AuditedFact::Order { id: id? });
    }
    let mut certificates =
        conn.prepare("SELECT serial_hex, status, sha256, der FROM certificates ORDER BY id")?;
    let mut rows = certificates.query([])?;
    while let Some(row) = rows.next()? {
        let serial: String = row.get(0)?;
        let status: String = row.get(1)?;
        let sha256: Option<String> = row.get(2)?;
        let der: Option<Vec<u8>> = row.get(3)?;
        each(AuditedFact::Certificate {
            serial: &serial,
            status: &status,
            sha256: sha256.as_deref(),
            der: der.as_deref(),
        });
    }
    let mut revocations = conn.prepare(
        "SELECT serial_hex, certificate_id IS NULL, revoked_at, reason, invalidity_date, issuer_key_id
         FROM revocations ORDER BY id",
    )?;
    let mut rows = revocations.query([])?;
    while let Some(row) = rows.next()? {
        let serial: String = row.get(0)?;
        let revoked_at: String = row.get(2)?;
        let reason: String = row.get(3)?;
        let invalidity_date: Option<String> = row.get(4)?;
        let issuer_key_id: String = row.get(5)?;
        each(AuditedFact::Revocation {
            serial: &serial,
            of_ca_certificate: row.get(1)?,
            revoked_at: &revoked_at,
            reason: &reason,
            invalidity_date: invalidity_date.as_deref(),
            issuer_key_id: &issuer_key_id,
        });
    }
    let mut crls =
        conn.prepare("SELECT issuer_key_id, number FROM crls ORDER BY issuer_key_id, number")?;
    for row in crls.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (issuer, number) = row?;
        each(AuditedFact::Crl {
            issuer_key_id: &issuer,
            number,
        });
    }
    let mut numbers = conn
        .prepare("SELECT issuer_key_id, last_allocated FROM crl_numbers ORDER BY issuer_key_id")?;
    for row in numbers.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
        let (issuer, last_allocated) = row?;
        each(AuditedFact::CrlNumber {
            issuer_key_id: &issuer,
            last_allocated,
        });
    }
    Ok(())
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
                    dl.uploaded_at, dl.purge_due, dl.purged_at, o.one_off
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
                    manufacturer_vkn: read_taxpayer(&r.get::<_, String>(4)?).map_err(bad_row)?,
                    prefixes: prefixes
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    parent: r.get::<_, Option<i64>>(6)?.map(OrderId),
                    target: parse::<Target>(r.get(7)?)?,
                    key_type: r
                        .get::<_, String>(8)?
                        .parse::<KeyType>()
                        .map_err(|e| bad_row(e.to_string()))?,
                    created_at: r.get(9)?,
                    paid: paid_at
                        .zip(paid_by)
                        .map(|(at, by)| super::Payment { at, by }),
                    devices: r.get::<_, i64>(12)? as u64,
                    verified: r.get::<_, i64>(13)? as u64,
                    uploaded_at: r.get(14)?,
                    purge_due: r.get(15)?,
                    purged_at: r.get(16)?,
                    one_off: r.get(17)?,
                })
            })
            .map_err(|e| self.db(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db(e))
    }
}

/// A row of `card_secrets` joined with its device, with its state: (device
/// serial, certificate serial, reader, PIN, PUK, state, old PIN, old PUK).
/// An erased row (NULL PIN) is [`HeldCardSecrets::Erased`].
fn held_card_secrets_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HeldCardSecrets> {
    if r.get::<_, Option<String>>(3)?.is_none() {
        return Ok(HeldCardSecrets::Erased);
    }
    let secrets = card_secrets_from_row(r)?;
    let state: String = r.get(5)?;
    match state.as_str() {
        "set" => Ok(HeldCardSecrets::Set(secrets)),
        "pending" => {
            let secret = |index: usize, what: &str| -> rusqlite::Result<crate::pkcs11::pin::Pin> {
                let value: Option<String> = r.get(index)?;
                let value = value.ok_or_else(|| bad_row(format!("a pending {what} is missing")))?;
                crate::pkcs11::pin::Pin::new(value, what).map_err(|e| bad_row(e.to_string()))
            };
            Ok(HeldCardSecrets::Pending {
                old_pin: secret(6, "card's previous PIN")?,
                old_puk: secret(7, "card's previous PUK")?,
                new: secrets,
            })
        }
        other => Err(bad_row(format!("card secrets in state {other:?}"))),
    }
}

/// A row of `card_secrets` joined with its device: (device serial,
/// certificate serial, reader, PIN, PUK). A stored PIN that is not one
/// (empty) means the row was changed outside certmint.
fn card_secrets_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CardSecrets> {
    let secret = |index: usize, what: &str| -> rusqlite::Result<crate::pkcs11::pin::Pin> {
        let value: String = r.get(index)?;
        crate::pkcs11::pin::Pin::new(value, what).map_err(|e| bad_row(e.to_string()))
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
    use crate::order::model::Application;
    use crate::order::serial_list::ListedSerial;

    /// Each lookup of a device's certificate goes through an index: a scan
    /// of the certificates per device makes delivery and recovery O(n²).
    #[test]
    fn certificate_lookups_by_device_use_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let journal = SqliteJournal::open(&dir.path().join("j.sqlite")).unwrap();
        for query in [
            ISSUED_PAGE,
            DANGLING_INTENTS,
            EARLIER_DEVICE,
            AUDIT_OF_ORDER,
        ] {
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

    #[test]
    fn a_new_journal_has_the_latest_schema_and_a_newer_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.sqlite");
        let journal = SqliteJournal::open(&path).unwrap();
        assert_eq!(schema_version(&journal.conn).unwrap(), SCHEMA_VERSION);
        assert_eq!(
            MIGRATIONS.last().map(|m| m.version),
            Some(SCHEMA_VERSION),
            "the last step is the version this build writes"
        );
        assert!(MIGRATIONS
            .windows(2)
            .all(|w| w[1].version == w[0].version + 1));
        journal
            .conn
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(journal);
        let refused = SqliteJournal::open(&path).unwrap_err().to_string();
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
    fn journal_failing_on(state: &str, fail_on: &str) -> (tempfile::TempDir, SqliteJournal) {
        let dir = tempfile::tempdir().unwrap();
        let journal = SqliteJournal::open(&dir.path().join("j.sqlite")).unwrap();
        journal
            .conn
            .execute_batch(&format!(
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

    fn state_and_rows(journal: &SqliteJournal) -> (String, i64, i64, i64) {
        journal
            .conn
            .query_row(
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
    fn journal_with_an_order(dir: &Path) -> (SqliteJournal, Device) {
        let mut journal = SqliteJournal::open(&dir.join("j.sqlite")).unwrap();
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
            pid: 1,
            start_time: 0,
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

    /// A TBS certificate (made by OpenSSL) whose authorityKeyIdentifier
    /// names the key [`TBS_ISSUER`].
    const TBS: &str = "30820113a003020102021422620ee5915459bbfe8a82b141f0c88fbb5aa15e300a06082a8648ce3d040302300c310a300806035504030c0174301e170d3236313230353233343930335a170d3236313230363233343930335a300c310a300806035504030c01743059301306072a8648ce3d020106082a8648ce3d03010703420004ba9e777ce160e87982532c5db7a4e88b6972a6ac276676a0767c56a46ec8c38aa523a09ac42558e0fad01706555b4e40c82d88a7515d3f78ee89341c9f4095e0a3533051300f0603551d130101ff040530030101ff301f0603551d230418301680147268870411497e28047d36c9d5d9ed78160703b1301d0603551d0e041604147268870411497e28047d36c9d5d9ed78160703b1";
    const TBS_ISSUER: &str = "7268870411497E28047D36C9D5D9ED78160703B1";

    fn revoked(journal: &SqliteJournal) -> Vec<(String, RevocationReason)> {
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
        journal
            .conn
            .execute(
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
}
