//! The journal: the single source of truth of production. Every state change
//! of an order and of each device is a durable row written *before* the side
//! effect it authorises, together with its hash-chained audit record.
//!
//! [`Journal`] is the boundary; [`SqlJournal`] its implementation, on an
//! embedded SQLite file (one station) or a PostgreSQL server (several
//! stations sharing one record).

pub mod address;
pub mod lease;
mod sql;
mod tls;

pub use address::JournalAddress;
pub use lease::{Lease, LeaseHolder, Sharing};
pub use sql::copy::{copy_journal, CopyError, CopyReport};
pub use sql::{SqlJournal, SCHEMA_VERSION};

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::audit::AuditReport;
use crate::order::manufacturer::{Manufacturer, ManufacturerChange};
use crate::revocation::{RevocationReason, RevokedEntry};

/// Why a journal operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The database failed.
    #[error("journal {path}: {reason}")]
    Database {
        /// The database file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The database is not set up as certmint requires.
    #[error("journal {path}: {reason}")]
    Settings {
        /// The database file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// No such order.
    #[error("no order {0}")]
    NoOrder(OrderId),
    /// No journal at this path (a command that only reads does not make one).
    #[error("no journal at {0}: give --journal PATH or set CERTMINT_JOURNAL, or run where the journal is")]
    NoJournal(String),
    /// A device state change the device's state does not allow
    /// ([`DeviceState::may_become`]): the record and the request disagree.
    #[error("device {device} is {from}: it may not become {to}")]
    DeviceMove {
        /// The device.
        device: String,
        /// Its state on record.
        from: String,
        /// The state asked for.
        to: DeviceState,
    },
    /// A state change the order's state does not allow.
    #[error("order {order} is {state}: {refused}")]
    WrongState {
        /// The order.
        order: OrderId,
        /// Its state.
        state: OrderState,
        /// What was refused.
        refused: String,
    },
    /// The parent of an additional application is not usable.
    #[error("additional application: {0}")]
    BadParent(String),
    /// A signed checkpoint of the audit chain could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] crate::audit::checkpoint::CheckpointError),
    /// Another producer holds a lease on the order that keeps this one out
    /// (an exclusive producer, or a shared one when this one asks for the
    /// order alone).
    #[error(
        "order {order} is being produced by another producer: {} since {} (last seen {}); \
         run again once it has finished, or wait for it with --wait SECONDS",
        lease.holder, lease.acquired_at, lease.renewed_at
    )]
    Held {
        /// The order.
        order: OrderId,
        /// The lease its holder holds.
        lease: Box<Lease>,
    },
    /// This producer's lease on the order was taken over (it was judged
    /// dead): it must stop before it writes anything more.
    #[error("order {order}: this producer's lease was taken over by {by}; stopped without writing more (the other producer carries on)")]
    LeaseLost {
        /// The order.
        order: OrderId,
        /// Who holds it now, if anyone.
        by: String,
    },
    /// The device serial or seal label already has an issued certificate:
    /// a second one is refused unless the operator asks for a reissue.
    #[error("{subject} already has certificate {serial} on record; a second certificate is refused (pass --reissue to supersede it)")]
    AlreadyCertified {
        /// The device serial or seal label.
        subject: String,
        /// The serial of its certificate, hex.
        serial: String,
    },
    /// The device serial or seal label has a certificate intent that never
    /// became a certificate (an interrupted run of its order).
    #[error("{subject} has certificate {serial} in progress in order {order}; finish or resume that order first")]
    InProgress {
        /// The device serial or seal label.
        subject: String,
        /// The serial of the intent, hex.
        serial: String,
        /// The order it belongs to.
        order: OrderId,
    },
    /// No certificate matches.
    #[error("no certificate on record matches {0}")]
    NoCertificate(String),
    /// The certificate cannot be revoked in its status: an intent the CA
    /// may be signing right now is finished (or voided, which revokes it)
    /// first.
    #[error("certificate {serial} is {status}: only an issued, superseded or void certificate can be revoked (finish or resume its order first)")]
    NotRevocable {
        /// The certificate serial, hex.
        serial: String,
        /// Its status.
        status: CertificateStatus,
    },
    /// The issuing CA's own certificate is revoked on record: it signs no
    /// more certificates.
    #[error("the issuing CA {subject} (certificate {serial}) was revoked at {revoked_at} ({reason}): it signs nothing more; give its product line a new issuing CA")]
    IssuingCaRevoked {
        /// The issuing CA's subject.
        subject: String,
        /// Its certificate's serial, hex.
        serial: String,
        /// When it was revoked (RFC 3339).
        revoked_at: String,
        /// Why.
        reason: crate::revocation::RevocationReason,
    },
    /// A CRL number that was never allocated, or a CRL recorded twice.
    #[error("CRL number {number} of issuer {issuer_key_id}: {reason}")]
    CrlNumber {
        /// The issuer's key identifier, hex.
        issuer_key_id: String,
        /// The number.
        number: u64,
        /// What is wrong.
        reason: String,
    },
    /// The manufacturer register refused: an unregistered or a registered
    /// VKN, or a change that changes nothing.
    #[error(transparent)]
    Manufacturer(#[from] crate::order::manufacturer::ManufacturerError),
    /// Another process kept the journal locked longer than the bounded wait.
    #[error("journal {path} is busy: another certmint process kept it locked for more than {waited_secs} s; try again once it is done")]
    Busy {
        /// The database file.
        path: String,
        /// How long this process waited.
        waited_secs: u64,
    },
}

impl JournalError {
    /// What kind of failure this is (see [`crate::error`]).
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            JournalError::NoOrder(_)
            | JournalError::NoCertificate(_)
            | JournalError::NoJournal(_) => ErrorKind::NotFound,
            // A certificate on record (or in progress) for the device or
            // seal label already: the request conflicts with the record.
            // The order's state refuses the request (a paid order is not
            // cancelled, an undelivered one not purged): that too conflicts
            // with the record.
            JournalError::AlreadyCertified { .. }
            | JournalError::InProgress { .. }
            | JournalError::NotRevocable { .. }
            | JournalError::WrongState { .. }
            | JournalError::DeviceMove { .. }
            | JournalError::IssuingCaRevoked { .. } => ErrorKind::Conflict,
            JournalError::Held { .. } => ErrorKind::Held,
            // The --additional-to order does not exist, belongs to another
            // company or is of another kind: the import's data is wrong.
            JournalError::BadParent(_) => ErrorKind::InvalidInput,
            JournalError::Checkpoint(e) => e.kind(),
            JournalError::Manufacturer(e) => e.kind(),
            JournalError::Database { .. }
            | JournalError::Settings { .. }
            | JournalError::LeaseLost { .. }
            | JournalError::Busy { .. }
            | JournalError::CrlNumber { .. } => ErrorKind::Failure,
        }
    }
}

pub use crate::order::model::{
    Application, CertificateStatus, Device, DeviceState, ImportProblem, ImportReport, NewOrder,
    OrderId, OrderKind, OrderState, OrderSummary, Payment, Target, MAX_REPORTED_PROBLEMS,
};

/// A certificate the journal holds as issued.
#[derive(Debug, Clone, Serialize)]
pub struct IssuedRecord {
    /// The device serial.
    pub device_serial: String,
    /// The certificate serial, hex.
    pub certificate_serial: String,
    /// SHA-256 of the DER, hex with colons.
    pub sha256: String,
    /// notBefore, RFC 3339.
    pub not_before: String,
    /// notAfter, RFC 3339.
    pub not_after: String,
    /// The certificate (not in manifests: the delivery checks the
    /// certificate files against it).
    #[serde(skip)]
    pub der: Vec<u8>,
}

/// A device whose key the journal knows to be in a PKCS#12 file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedKeyFile {
    /// The device serial: the file's delivered name without `.p12`.
    pub device_serial: String,
    /// The serial (hex) of the device's issued certificate, which the file
    /// holds; `None` while none is (a reissue in progress).
    pub certificate_serial: Option<String>,
}

/// A certificate's status in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateRecord {
    /// The order of its device.
    pub order: OrderId,
    /// The device serial.
    pub device_serial: String,
    /// `intent`, `issued` or `void`.
    pub status: String,
}

/// What gets recorded when a device's certificate is stored and verified.
#[derive(Debug, Clone)]
pub struct StoredCertificate<'a> {
    /// The certificate serial, hex.
    pub serial_hex: &'a str,
    /// The certificate.
    pub der: &'a [u8],
    /// SHA-256 fingerprint.
    pub sha256: &'a str,
    /// notBefore.
    pub not_before: &'a str,
    /// notAfter.
    pub not_after: &'a str,
    /// The PKCS#12 password (soft target), kept until the purge.
    pub p12_password: Option<&'a str>,
}

/// A device's intent: the certificate serial and the linted TBS the CA is
/// about to sign.
#[derive(Debug, Clone)]
pub struct Intent<'a> {
    /// The device.
    pub device: &'a Device,
    /// The certificate serial, hex.
    pub serial_hex: &'a str,
    /// The linted TBS certificate, DER.
    pub tbs: &'a [u8],
    /// Where the key came from (for the audit record).
    pub key_note: &'a str,
}

/// A device whose certificate was signed, verified and stored.
#[derive(Debug, Clone)]
pub struct VerifiedDevice<'a> {
    /// The device.
    pub device: &'a Device,
    /// What gets recorded.
    pub certificate: StoredCertificate<'a>,
}

/// What a delivery recorded: where its files are and when it was uploaded.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryRecord<'a> {
    /// The delivery folder, an absolute path without symbolic links.
    pub folder: &'a str,
    /// The password manifest (soft target), an absolute path.
    pub passwords: Option<&'a str>,
    /// When it was uploaded (RFC 3339).
    pub uploaded_at: &'a str,
    /// The purge deadline (soft target): the end of this Turkish business day.
    pub purge_due: Option<&'a str>,
}

/// A delivered soft order that awaits its purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoftDelivery {
    /// The order.
    pub order: OrderId,
    /// The delivery folder as recorded (relative in journals written before
    /// folders were recorded absolute).
    pub folder: String,
    /// The password manifest as recorded; `None` when the journal predates
    /// its recording (it is then next to the folder).
    pub passwords: Option<String>,
    /// When it was uploaded (RFC 3339).
    pub uploaded_at: String,
    /// Whether a purge has begun (and was interrupted).
    pub purge_started: bool,
}

/// A card's own PIN and PUK, held by the journal from before they are set
/// on the card until the purge of the order's PIN letters.
#[derive(Clone)]
pub struct CardSecrets {
    /// The device serial.
    pub device_serial: String,
    /// The certificate the card carries, hex.
    pub certificate_serial: String,
    /// The reader the card was in, as the station names it.
    pub reader: String,
    /// The card's PIN.
    pub pin: crate::pkcs11::pin::Pin,
    /// The card's PUK.
    pub puk: crate::pkcs11::pin::Pin,
}

impl std::fmt::Debug for CardSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardSecrets")
            .field("device_serial", &self.device_serial)
            .field("certificate_serial", &self.certificate_serial)
            .field("reader", &self.reader)
            .finish_non_exhaustive()
    }
}

/// What the journal holds for the card that carries a certificate.
#[derive(Debug, Clone)]
pub enum HeldCardSecrets {
    /// The card took this PIN and PUK and verified the PIN.
    Set(CardSecrets),
    /// Recorded before the card was changed, which may have stopped before,
    /// between or during the PUK's and the PIN's change: the card has the
    /// old or the new PUK, and the old PIN (with either PUK) or the new PIN
    /// (with the new PUK).
    Pending {
        /// The PIN and PUK the card is to take.
        new: CardSecrets,
        /// The PIN the card had before.
        old_pin: crate::pkcs11::pin::Pin,
        /// The PUK the card had before.
        old_puk: crate::pkcs11::pin::Pin,
    },
    /// Erased by the purge: the journal no longer knows this card's PIN.
    Erased,
}

/// A card's PIN and PUK held for a certificate that is not issued (the card
/// left the station without a delivered certificate): the purge erases
/// them once due, counted from `recorded_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrayCardSecrets {
    /// The certificate the card carries, hex.
    pub certificate_serial: String,
    /// Its device serial.
    pub device_serial: String,
    /// Its device's order.
    pub order: OrderId,
    /// When they were recorded (RFC 3339).
    pub recorded_at: String,
}

/// A card order's PIN letter manifest that awaits its purge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinLetters {
    /// The order.
    pub order: OrderId,
    /// The manifest as recorded, an absolute path.
    pub manifest: String,
    /// When it was written (RFC 3339): the purge deadline counts from here.
    pub uploaded_at: String,
}

/// Which certificates `cert list` and `cert show` ask for; every filter
/// given must match.
#[derive(Debug, Clone, Default)]
pub struct CertificateFilter {
    /// The certificate serial, hex (any case).
    pub serial: Option<String>,
    /// An ÖKC device serial.
    pub device_serial: Option<String>,
    /// A Mali Mühür seal label (`{VKN}SIGN{n}`).
    pub seal_label: Option<String>,
    /// The company's or manufacturer's VKN or TCKN.
    pub taxpayer: Option<String>,
    /// The order.
    pub order: Option<OrderId>,
    /// Only revoked certificates.
    pub revoked: bool,
}

/// A certificate on record, with its order and device.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateDetail {
    /// Row id (stable order for paging).
    #[serde(skip)]
    pub id: i64,
    /// The certificate serial, hex.
    pub serial: String,
    /// Its status.
    pub status: CertificateStatus,
    /// Its order.
    pub order: OrderId,
    /// What the order produces.
    pub kind: OrderKind,
    /// Where the key is.
    pub target: Target,
    /// The ÖKC device serial (ÖKC orders).
    pub device_serial: Option<String>,
    /// The seal label (Mali Mühür orders).
    pub seal_label: Option<String>,
    /// The company or manufacturer.
    pub holder: String,
    /// Its VKN or TCKN (empty when the order does not name it).
    pub taxpayer: String,
    /// When the intent was recorded (RFC 3339).
    pub recorded_at: String,
    /// notBefore, once issued.
    pub not_before: Option<String>,
    /// notAfter, once issued.
    pub not_after: Option<String>,
    /// SHA-256 of the DER, once issued.
    pub sha256: Option<String>,
    /// Why an intent was voided.
    pub void_reason: Option<String>,
    /// The serial of the certificate that superseded it.
    pub superseded_by: Option<String>,
    /// When it was superseded.
    pub superseded_at: Option<String>,
    /// Who superseded it.
    pub superseded_operator: Option<String>,
    /// Its revocation, if it is revoked.
    pub revocation: Option<RevocationRecord>,
    /// The certificate, once issued.
    #[serde(skip)]
    pub der: Option<Vec<u8>>,
}

/// A revocation on record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevocationRecord {
    /// When it was revoked (RFC 3339): the CRL entry's revocationDate.
    pub revoked_at: String,
    /// Why.
    pub reason: RevocationReason,
    /// Since when the key is known or suspected to be unfit (RFC 3339), if given.
    pub invalidity_date: Option<String>,
    /// Who revoked it.
    pub operator: String,
}

/// One certificate to revoke, by its serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationRequest {
    /// The certificate serial, upper-case hex as the journal stores it.
    pub serial_hex: String,
    /// Why.
    pub reason: RevocationReason,
    /// Since when the key is known or suspected to be unfit, if known.
    pub invalidity_date: Option<OffsetDateTime>,
}

/// A CA certificate the root key is about to sign (the root's own, or an
/// issuing CA's): recorded before it signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaCertificateIntent<'a> {
    /// Its serial, upper-case hex.
    pub serial_hex: &'a str,
    /// The key identifier of the root that signs it.
    pub issuer_key_id: &'a [u8],
    /// Its subject, as shown.
    pub subject: &'a str,
    /// What it is: `root`, or `issuing LINE`.
    pub role: &'a str,
    /// The TBSCertificate the root key is about to sign.
    pub tbs: &'a [u8],
}

/// A CA certificate as the journal holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaCertificateRecord {
    /// Its serial, upper-case hex.
    pub serial: String,
    /// The signing root's key identifier, hex.
    pub issuer_key_id: String,
    /// Its subject.
    pub subject: String,
    /// `root`, or `issuing LINE`.
    pub role: String,
    /// `intent` (the root key was about to sign it; no file ever held it)
    /// or `issued`.
    pub status: String,
    /// When the intent was recorded (RFC 3339).
    pub intended_at: String,
    /// When the certificate was recorded (RFC 3339), once issued.
    pub issued_at: Option<String>,
    /// Who made it.
    pub operator: String,
}

/// An issuing CA certificate to revoke (it is no device's certificate, so
/// the journal has no certificate row for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCertificateRevocation {
    /// Its serial, upper-case hex.
    pub serial_hex: String,
    /// The key identifier of the root that signed it (the root's
    /// subjectKeyIdentifier): the root's CRL lists it.
    pub issuer_key_id: Vec<u8>,
    /// Its subject, for the audit record.
    pub subject: String,
    /// Why.
    pub reason: RevocationReason,
    /// Since when its key is known or suspected to be unfit, if known.
    pub invalidity_date: Option<OffsetDateTime>,
}

/// What a revocation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum RevokeOutcome {
    /// Revoked now.
    Revoked {
        /// When (RFC 3339).
        revoked_at: String,
    },
    /// It was revoked already; nothing changed (revocation is irreversible,
    /// and the first reason and date stand).
    AlreadyRevoked {
        /// When it was revoked (RFC 3339).
        when: String,
        /// Why it was revoked.
        reason: RevocationReason,
    },
}

/// A CRL on record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CrlRecord {
    /// The issuer's key identifier, hex.
    pub issuer_key_id: String,
    /// Its CRL Number.
    pub number: u64,
    /// thisUpdate (RFC 3339).
    pub this_update: String,
    /// nextUpdate (RFC 3339).
    pub next_update: String,
    /// How many entries it lists.
    pub entries: u64,
    /// SHA-256 of its DER, hex.
    pub sha256: String,
    /// When it was recorded (RFC 3339).
    pub recorded_at: String,
    /// Who issued it.
    pub operator: String,
}

/// What gets recorded when a CRL was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IssuedCrl<'a> {
    /// The issuer's key identifier (its subjectKeyIdentifier).
    pub issuer_key_id: &'a [u8],
    /// The CRL Number, as [`Journal::allocate_crl_number`] handed it out.
    pub number: u64,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
    /// How many entries it lists.
    pub entries: u64,
    /// SHA-256 of its DER, hex.
    pub sha256_hex: &'a str,
}

/// One record of the audit log, as `audit show` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// Its place in the chain.
    pub seq: i64,
    /// When (RFC 3339).
    pub at: String,
    /// Who.
    pub operator: String,
    /// What happened.
    pub event: String,
    /// To what (`order N`, `device SERIAL`, `certificate SERIAL`).
    pub subject: String,
    /// Details.
    pub details: String,
}

/// What a claim of devices got.
#[derive(Debug, Clone, Default)]
pub struct DeviceClaim {
    /// The devices claimed now, in device order.
    pub devices: Vec<Device>,
    /// Pending devices that live producers have claimed.
    pub held_by_others: u64,
}

/// One producer of an order, as `order status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Station {
    /// Its lease.
    pub lease: Lease,
    /// When it gave the lease back or it was taken over (RFC 3339), if so.
    pub released_at: Option<String>,
    /// Whether it may still be working, as seen from the asking host.
    pub live: bool,
    /// How many of the order's devices it produced.
    pub produced: u64,
}

/// Where a listed device went when an import tried to store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Stored as a new device of the order.
    New,
    /// The serial is a device already: of this order (a repeat in the list)
    /// or of another.
    Taken {
        /// The order holding it.
        order: OrderId,
        /// Its line in that order's list.
        line: usize,
        /// Whether it has an issued certificate.
        certified: bool,
    },
}

/// An earlier order, as an additional application names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredParent {
    /// Its manufacturer's (or company's) VKN or TCKN.
    pub taxpayer: Option<crate::ids::TaxpayerId>,
    /// What it produces.
    pub kind: OrderKind,
}

/// What an import stores, inside the journal's one transaction for it.
pub trait ImportStore {
    /// The earlier order `order`, if it exists.
    fn parent(&mut self, order: OrderId) -> Result<Option<StoredParent>, JournalError>;
    /// Stores the order (state `received`).
    fn insert_order(
        &mut self,
        order: &NewOrder,
        parent: Option<OrderId>,
    ) -> Result<OrderId, JournalError>;
    /// Stores `serial` (list line `line`) as a device of `order`, unless a
    /// device of that serial exists already.
    fn place_device(
        &mut self,
        order: OrderId,
        serial: &str,
        line: usize,
    ) -> Result<Placed, JournalError>;
}

/// What an import decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    /// Keep the order, with these details in its audit record.
    Keep {
        /// The order.
        order: OrderId,
        /// What the audit record says of it.
        details: String,
    },
    /// Undo everything the import stored.
    Undo,
}

/// The journal boundary.
pub trait Journal: Send + crate::audit::tables::AuditStorage {
    /// Runs `import` in one write transaction over an [`ImportStore`]: the
    /// order and its devices are kept, with an `order.received` audit
    /// record by `operator`, when it returns [`ImportOutcome::Keep`], and
    /// none of it when it returns [`ImportOutcome::Undo`] or fails. The
    /// rules of an import are `import`'s (see [`crate::order::import`]);
    /// the journal only stores.
    fn in_import_transaction(
        &mut self,
        operator: &str,
        import: &mut dyn FnMut(&mut dyn ImportStore) -> Result<ImportOutcome, JournalError>,
    ) -> Result<(), JournalError>;

    /// Cancels an unpaid order (received → cancelled), audited: its serials
    /// move to the cancelled order's record and are free for another order.
    /// Returns how many were freed. A paid order is refused.
    fn cancel_order(&mut self, order: OrderId, operator: &str) -> Result<u64, JournalError>;

    /// Adds a manufacturer to the register, audited; a VKN registered
    /// already is refused.
    fn register_manufacturer(
        &mut self,
        manufacturer: &Manufacturer,
        operator: &str,
    ) -> Result<(), JournalError>;

    /// The registered manufacturer of `vkn`, if any.
    fn manufacturer(&self, vkn: &str) -> Result<Option<Manufacturer>, JournalError>;

    /// Every registered manufacturer, by VKN.
    fn manufacturers(&self) -> Result<Vec<Manufacturer>, JournalError>;

    /// Applies `change` to the entry of `vkn` in one transaction (the
    /// entry as it is then, checked by [`Manufacturer::changed`]), with an
    /// audit record naming the old and new values. Returns the entry
    /// before and after.
    fn change_manufacturer(
        &mut self,
        vkn: &str,
        change: &ManufacturerChange,
        today: time::Date,
        operator: &str,
    ) -> Result<(Manufacturer, Manufacturer), JournalError>;

    /// Records payment (received → paid), who and when.
    fn mark_paid(&mut self, order: OrderId, operator: &str) -> Result<(), JournalError>;

    /// One order with its progress.
    fn order(&self, order: OrderId) -> Result<OrderSummary, JournalError>;

    /// All orders.
    fn orders(&self) -> Result<Vec<OrderSummary>, JournalError>;

    /// paid → producing (or stays producing when resuming); refuses unpaid orders.
    fn start_production(&mut self, order: OrderId, operator: &str) -> Result<(), JournalError>;

    /// Devices of `order` not yet verified, with id > `after`, at most `limit`.
    fn pending_devices(
        &self,
        order: OrderId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Device>, JournalError>;

    /// The state of the device of `order` with this serial, if it belongs to it.
    fn device_state(
        &self,
        order: OrderId,
        serial: &str,
    ) -> Result<Option<DeviceState>, JournalError>;

    /// The order holding the device with this serial, in any order.
    fn device_order(&self, serial: &str) -> Result<Option<OrderId>, JournalError>;

    /// A device's certificate intents that never became certificates (a crash
    /// between intent and store): (certificate serial, device).
    fn dangling_intents(&self, order: OrderId) -> Result<Vec<(String, Device)>, JournalError>;

    /// Voids a dangling intent (its signature, if made, was never stored or
    /// delivered); the device goes back to `Planned` or `KeyGenerated`. An
    /// intent voided already (by another producer of the order) is left as
    /// it is.
    fn void_intent(
        &mut self,
        serial_hex: &str,
        operator: &str,
        reason: &str,
    ) -> Result<(), JournalError>;

    /// The device's key now exists in a token (HSM target).
    fn record_key(
        &mut self,
        device: &Device,
        key_id_hex: &str,
        operator: &str,
    ) -> Result<(), JournalError>;

    /// The intents of several devices, in one transaction: when this returns,
    /// every one is durable (one commit, one fsync for the lot), so the CA may
    /// sign them all; when it fails, none is recorded.
    fn record_intents(
        &mut self,
        intents: &[Intent<'_>],
        operator: &str,
    ) -> Result<(), JournalError>;

    /// The intent of one device: serial and linted TBS, durable before the CA
    /// signs. `key_note` says where the key came from (for the audit record).
    fn record_intent(
        &mut self,
        device: &Device,
        serial_hex: &str,
        tbs: &[u8],
        key_note: &str,
        operator: &str,
    ) -> Result<(), JournalError> {
        self.record_intents(
            &[Intent {
                device,
                serial_hex,
                tbs,
                key_note,
            }],
            operator,
        )
    }

    /// Several devices' certificates signed, verified and stored, in one
    /// transaction (one fsync for the lot); when it fails, none is recorded.
    fn record_verified_devices(
        &mut self,
        verified: &[VerifiedDevice<'_>],
        operator: &str,
    ) -> Result<(), JournalError>;

    /// producing → produced, when every device is verified; returns whether it moved.
    fn finish_production(&mut self, order: OrderId, operator: &str) -> Result<bool, JournalError>;

    /// Issued certificates of an order, in device order, `limit` from row `after`.
    fn issued(
        &self,
        order: OrderId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, IssuedRecord)>, JournalError>;

    /// PKCS#12 passwords of an order, in device order (device serial, password).
    fn passwords(
        &self,
        order: OrderId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, String, String)>, JournalError>;

    /// produced → delivered, with the delivery, in one transaction with the
    /// devices' state: a crash leaves the order produced (delivered again
    /// by the next run) or delivered with its files recorded, never between.
    fn record_delivery(
        &mut self,
        order: OrderId,
        delivery: &DeliveryRecord<'_>,
        operator: &str,
    ) -> Result<(), JournalError>;

    /// The devices of an order that have a PKCS#12 file (a password is
    /// stored), in device order: the files a soft delivery must hold. A
    /// page of at most `limit` devices after device id `after`, with their
    /// ids, so that memory stays flat however large the order.
    fn pkcs12_serials(
        &self,
        order: OrderId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, RecordedKeyFile)>, JournalError>;

    /// Notes that the purge of a delivered order has begun: from now on a
    /// key file found missing was destroyed by an earlier, interrupted run.
    fn record_purge_started(&mut self, order: OrderId, operator: &str) -> Result<(), JournalError>;

    /// delivered → purged: key material deleted; stored passwords erased, in
    /// one transaction. `details` (for the audit record) names what was destroyed.
    fn record_purge(
        &mut self,
        order: OrderId,
        purged_at: &str,
        details: &str,
        operator: &str,
    ) -> Result<(), JournalError>;

    /// Makes erased secrets unreadable in the journal's files: the write-ahead
    /// log is checkpointed and truncated. Fails when another connection's read
    /// keeps the log in use; the next call tries again.
    fn erase_freed_secrets(&mut self) -> Result<(), JournalError>;

    /// Delivered soft orders not purged yet, in order.
    fn unpurged_soft_deliveries(&self) -> Result<Vec<SoftDelivery>, JournalError>;

    /// Appends an audit record (used for events outside the methods above).
    fn audit(
        &mut self,
        operator: &str,
        event: &str,
        subject: &str,
        details: &str,
    ) -> Result<(), JournalError>;

    /// Checks the audit chain, its checkpoints and the tables against it
    /// ([`crate::audit::tables`]): the rules are the same for every backend,
    /// which only streams what it stores.
    fn verify_audit(&self) -> Result<AuditReport, JournalError> {
        crate::audit::tables::verify_journal(self)
    }

    /// The journal's record of the certificate with this serial, if it has one.
    fn certificate_by_serial(
        &self,
        serial_hex: &str,
    ) -> Result<Option<CertificateRecord>, JournalError>;

    /// Joins `order` as one of its producers: a lease for `holder`, for
    /// `ttl` unless renewed, shared with other producers or not as
    /// `sharing` says, in one write transaction. Who may join is
    /// [`lease::join`]'s rule, asked with the rows read in that
    /// transaction: leases of holders that are gone or expired are taken
    /// over (released, their devices' claims freed, audited with
    /// [`lease::take_over_details`]) and returned. A live holder that keeps
    /// the requester out is refused with [`JournalError::Held`]. Until it is
    /// released, this journal refuses to record keys, intents or
    /// certificates of the order once the lease was taken over, or of a
    /// device this holder has not claimed ([`JournalError::LeaseLost`]).
    fn acquire_lease(
        &mut self,
        order: OrderId,
        holder: &LeaseHolder,
        ttl: Duration,
        sharing: Sharing,
    ) -> Result<Vec<Lease>, JournalError>;

    /// Claims up to `limit` of the order's pending devices that nobody has
    /// claimed, for `holder` (whose lease this journal took), in device
    /// order, in one write transaction; leases of holders that died are
    /// taken over first, so their devices are free. A claimed device may
    /// carry an intent its dead claimer left: the producer voids it first
    /// (see [`Journal::certificate_in_force`]). Also says how many pending
    /// devices live producers have claimed.
    fn claim_devices(
        &mut self,
        order: OrderId,
        holder: &LeaseHolder,
        limit: usize,
    ) -> Result<DeviceClaim, JournalError>;

    /// The order's producers, past and present, with how many devices each
    /// produced; live ones first, as seen from `here`.
    fn stations(&self, order: OrderId, here: &LeaseHolder) -> Result<Vec<Station>, JournalError>;

    /// Extends `holder`'s lease by `ttl` from now; [`JournalError::LeaseLost`]
    /// when it was taken over.
    fn renew_lease(
        &mut self,
        order: OrderId,
        holder: &LeaseHolder,
        ttl: Duration,
    ) -> Result<(), JournalError>;

    /// Gives `holder`'s lease back, and the claims of its devices not yet
    /// verified (nothing when it was taken over).
    fn release_lease(&mut self, order: OrderId, holder: &LeaseHolder) -> Result<(), JournalError>;

    /// Refuses ([`JournalError::LeaseLost`]) when this connection took a
    /// lease on `order` and it was taken over since. A producer asks just
    /// before the CA signs a chunk and before it writes a chunk's files, so
    /// that a producer judged dead signs and writes nothing more.
    fn confirm_lease(&self, order: OrderId) -> Result<(), JournalError>;

    /// The order's leases not released, in the order they were taken.
    fn leases(&self, order: OrderId) -> Result<Vec<Lease>, JournalError>;

    /// The journal's clock (Unix time, milliseconds): a server journal's
    /// is the server's, so that stations judge a lease's expiry by the
    /// clock that wrote it ([`Lease::is_live_at`]).
    fn clock_ms(&self) -> Result<i64, JournalError>;

    /// The device with this serial (an ÖKC device serial or a seal label),
    /// in whichever order holds it.
    fn device_by_serial(&self, serial: &str) -> Result<Option<Device>, JournalError>;

    /// The device's certificate in force (an intent or an issued
    /// certificate), if it has one: its serial and status.
    fn certificate_in_force(
        &self,
        device: &Device,
    ) -> Result<Option<(String, CertificateStatus)>, JournalError>;

    /// A one-off order with its one device (serial or seal label), in one
    /// transaction: received and marked paid by `order.operator` at once
    /// (the operator is the one asking for the certificate), audited as
    /// one-off. Returns the device.
    fn record_one_off_order(
        &mut self,
        order: &NewOrder,
        serial: &str,
    ) -> Result<Device, JournalError>;

    /// One certificate's intent outside a production run. With
    /// `supersedes`, the device's issued certificate with that serial is
    /// recorded as superseded by this one (when, by whom) in the same
    /// transaction, each with its audit record.
    fn record_single_intent(
        &mut self,
        intent: &Intent<'_>,
        supersedes: Option<&str>,
        operator: &str,
    ) -> Result<(), JournalError>;

    /// One certificate signed and verified outside a production run:
    /// intent → issued, with its audit record. A device not yet certified
    /// becomes verified; a delivered device keeps its state.
    fn record_single_issued(
        &mut self,
        device: &Device,
        certificate: &StoredCertificate<'_>,
        operator: &str,
    ) -> Result<(), JournalError>;

    /// Certificates matching `filter`, in the order they were recorded:
    /// a page of at most `limit` after row id `after`.
    fn certificates(
        &self,
        filter: &CertificateFilter,
        after: i64,
        limit: usize,
    ) -> Result<Vec<CertificateDetail>, JournalError>;

    /// Audit records after `after` (a sequence number), at most `limit`, in
    /// sequence order; with `order`, only those about the order, its
    /// devices and their certificates.
    fn audit_records(
        &self,
        order: Option<OrderId>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, JournalError>;

    /// Certificates in force (intents and issued ones) per device, as (device serial, count), for checks.
    fn active_certificates_per_device(
        &self,
        order: OrderId,
    ) -> Result<Vec<(String, u64)>, JournalError>;

    /// Revokes the certificate with `request.serial_hex`, with its
    /// `certificate.revoked` audit record, in one transaction. An issued,
    /// superseded or void certificate (a voided intent's signature may
    /// exist) can be revoked; an intent is refused
    /// ([`JournalError::NotRevocable`]), an unknown serial is
    /// [`JournalError::NoCertificate`]. A certificate revoked already is
    /// reported as such and left as it is.
    fn revoke(
        &mut self,
        request: &RevocationRequest,
        operator: &str,
    ) -> Result<RevokeOutcome, JournalError>;

    /// Records that the root key is about to sign a CA certificate, with a
    /// `ca-certificate.intent` audit record, in one transaction. A serial
    /// on record already is refused.
    fn record_ca_certificate_intent(
        &mut self,
        intent: &CaCertificateIntent<'_>,
        operator: &str,
    ) -> Result<(), JournalError>;

    /// Records the CA certificate signed for the intent of its serial, with
    /// a `ca-certificate.issued` audit record, in one transaction.
    fn record_ca_certificate_issued(
        &mut self,
        serial_hex: &str,
        der: &[u8],
        operator: &str,
    ) -> Result<(), JournalError>;

    /// Every CA certificate on record, in the order they were intended.
    fn ca_certificates(&self) -> Result<Vec<CaCertificateRecord>, JournalError>;

    /// Revokes an issuing CA certificate (listed by the root's CRL), with
    /// its `ca-certificate.revoked` audit record, in one transaction.
    fn revoke_ca_certificate(
        &mut self,
        revocation: &CaCertificateRevocation,
        operator: &str,
    ) -> Result<RevokeOutcome, JournalError>;

    /// The revocation of the certificate with this serial, if it is revoked.
    fn revocation(&self, serial_hex: &str) -> Result<Option<RevocationRecord>, JournalError>;

    /// Calls `each` with every revocation of the issuer whose key
    /// identifier is `issuer_key_id`, in ascending serial order, a row at a
    /// time from the database (nothing is collected, so a CRL of millions
    /// of entries holds one entry at a time). Returns how many.
    fn revoked_entries(
        &self,
        issuer_key_id: &[u8],
        each: &mut dyn FnMut(RevokedEntry) -> Result<(), JournalError>,
    ) -> Result<u64, JournalError>;

    /// The issuer's next CRL Number (1, 2, 3, …), durable and audited
    /// (`crl.number-allocated`) when this returns: allocated before the
    /// CRL is signed, so a crash during issuance never reuses a number.
    fn allocate_crl_number(
        &mut self,
        issuer_key_id: &[u8],
        operator: &str,
    ) -> Result<u64, JournalError>;

    /// Records a CRL once written (`crl.issued`, audited); its number must
    /// have been allocated and not recorded before.
    fn record_crl(&mut self, crl: &IssuedCrl<'_>, operator: &str) -> Result<(), JournalError>;

    /// The issuer's CRLs on record, by number.
    fn crls(&self, issuer_key_id: &[u8]) -> Result<Vec<CrlRecord>, JournalError>;

    /// The issuer's CRL with the highest number, if any.
    fn last_crl(&self, issuer_key_id: &[u8]) -> Result<Option<CrlRecord>, JournalError>;

    /// The PIN and PUK held for the card carrying `certificate_serial`,
    /// while not purged.
    fn card_secrets_of_certificate(
        &self,
        certificate_serial: &str,
    ) -> Result<Option<CardSecrets>, JournalError>;

    /// The PINs and PUKs of an order's cards that carry an issued
    /// certificate, in device order: a page of at most `limit` after device
    /// id `after`, with the device ids.
    fn card_secrets(
        &self,
        order: OrderId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, CardSecrets)>, JournalError>;

    /// Records where a card order's PIN letter manifest was written and
    /// when: its purge deadline counts from then.
    fn record_pin_letters(
        &mut self,
        order: OrderId,
        manifest: &str,
        uploaded_at: &str,
        operator: &str,
    ) -> Result<(), JournalError>;

    /// PIN letter manifests not purged yet, in order.
    fn unpurged_pin_letters(&self) -> Result<Vec<PinLetters>, JournalError>;

    /// The order's PIN letters are purged: every PIN and PUK the journal
    /// holds for its cards erased, in one transaction with the audit
    /// record (`details` names what was destroyed).
    fn record_pin_letters_purged(
        &mut self,
        order: OrderId,
        purged_at: &str,
        details: &str,
        operator: &str,
    ) -> Result<(), JournalError>;

    /// Holds a card's fresh PIN and PUK (`new`: PIN, PUK) as pending under
    /// the certificate it is to carry, with the PIN and PUK it has now
    /// (`old`), before the certificate is written and the secrets are
    /// changed: wherever the card leaves, the journal knows every PIN and
    /// PUK it can have. Audited without the secrets.
    fn record_pending_card_secrets(
        &mut self,
        device: &Device,
        certificate_serial: &str,
        reader: &str,
        new: (&crate::pkcs11::pin::Pin, &crate::pkcs11::pin::Pin),
        old: (&crate::pkcs11::pin::Pin, &crate::pkcs11::pin::Pin),
        operator: &str,
    ) -> Result<(), JournalError>;

    /// What the journal holds for the card carrying `certificate_serial`,
    /// in whatever state (`None`: nothing was ever recorded for it).
    fn card_secrets_held(
        &self,
        certificate_serial: &str,
    ) -> Result<Option<HeldCardSecrets>, JournalError>;

    /// The card carrying `certificate_serial` took its pending PIN and PUK:
    /// they are set, and the old ones erased. Audited.
    fn confirm_card_secrets(
        &mut self,
        certificate_serial: &str,
        operator: &str,
    ) -> Result<(), JournalError>;

    /// The PINs and PUKs held (not erased) for certificates that are not
    /// issued, oldest first.
    fn stray_card_secrets(&self) -> Result<Vec<StrayCardSecrets>, JournalError>;

    /// Erases the PIN and PUK (and any old ones) held for
    /// `certificate_serial`, which must not be issued, with the audit record
    /// (`details` says why).
    fn erase_stray_card_secrets(
        &mut self,
        certificate_serial: &str,
        details: &str,
        operator: &str,
    ) -> Result<(), JournalError>;
}
