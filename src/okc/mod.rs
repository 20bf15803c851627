//! ÖKC batch production: an order's devices produced by N workers, exactly
//! one certificate per device serial, even across crashes and re-runs.
//!
//! Per device, every durable step comes before the side effect it allows:
//!
//! ```text
//! (hsm: key generated in the token ─► journal: key-generated)
//! prepare + lint ─► journal: intent (serial, TBS) ─► CA signs ─► verify
//!   ─► write certificate (and PKCS#12) ─► (hsm: import certificate) ─► journal: verified
//! ```
//!
//! Workers take devices a chunk at a time and record the chunk's intents in
//! one transaction (two worker threads per session process when the CA key
//! signs in them, so that one chunk is signed while another is verified); a
//! storer thread writes what they signed and records the
//! chunk verified in another. The steps are the same, and in the same order,
//! for every device: only their fsyncs are shared. Certificate files are not
//! synced one by one: the journal's DER is their durable copy, and the
//! delivery checks and rewrites them, then syncs the file system.
//!
//! A restart voids intents that never became certificates (whatever was
//! signed was neither stored nor delivered), removes token objects the
//! journal does not know, and carries on; devices already verified are
//! never touched again. When every device is verified, the delivery folder
//! is written and its upload time recorded.

pub mod pkcs12;
pub mod purge;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use zeroize::Zeroizing;

use crate::calendar::BusinessCalendar;
use crate::ids::{DeviceSerial, IdMode, PrefixTable};
use crate::issue::{
    CertificateAuthority, IssueError, IssuedCertificate, PreparedCertificate, SubjectKey,
};
use crate::journal::lease::{LEASE_RENEW_EVERY, LEASE_TTL};
use crate::journal::{
    DeliveryRecord, Device, DeviceState, Intent, Journal, JournalError, LeaseHolder, OrderId,
    OrderKind, OrderState, OrderSummary, StoredCertificate, Target, VerifiedDevice,
};
use crate::pem::{self, hex, hex_colons};
use crate::pkcs11::keys::{
    destroy_objects, find_public_key, generate_key_pair, import_certificate, public_key_spki,
};
use crate::pkcs11::token::lock;
use crate::pkcs11::{Pkcs11Error, Token};
use crate::profile::{Profile, ProfileName, Subject, SubjectInput};
use crate::signer::{KeyType, Signer, SignerError, SoftwareSigner};

/// Business days after upload until soft key material is purged.
pub const PURGE_AFTER_BUSINESS_DAYS: u32 = 10;

/// Why production stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// A journal problem (the order's state is as the journal says).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The order is produced by another command, or on another target,
    /// than the one asked (the reason names the right one).
    #[error("order {order}: {reason}")]
    WrongCommand {
        /// The order.
        order: OrderId,
        /// Why, and which command produces it.
        reason: String,
    },
    /// The order cannot be produced here.
    #[error("order {order}: {reason}")]
    Order {
        /// The order.
        order: OrderId,
        /// Why.
        reason: String,
    },
    /// Issuance failed for a device.
    #[error("device {device}: {error}")]
    Issue {
        /// The device serial.
        device: String,
        /// The failure.
        error: IssueError,
    },
    /// A token failed; the work stopped and can be resumed.
    #[error("device {device}: {error}")]
    Token {
        /// The device serial.
        device: String,
        /// The failure.
        error: Pkcs11Error,
    },
    /// A key failed.
    #[error("device {device}: {error}")]
    Key {
        /// The device serial.
        device: String,
        /// The failure.
        error: SignerError,
    },
    /// Files could not be written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl ProduceError {
    /// What kind of failure this is: a wrapped error's own kind.
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            ProduceError::Journal(e) => e.kind(),
            ProduceError::Issue { error, .. } => error.kind(),
            ProduceError::Token { error, .. } => error.kind(),
            ProduceError::Key { error, .. } => error.kind(),
            ProduceError::WrongCommand { .. } => crate::error::ErrorKind::Usage,
            // Not producible yet (unpaid), or its delivery is incomplete:
            // the order's state, not the command.
            ProduceError::Order { .. } | ProduceError::Io { .. } => {
                crate::error::ErrorKind::Failure
            }
        }
    }
}

/// Where device keys are made.
#[derive(Debug, Clone)]
pub enum KeyTarget {
    /// Software keys, delivered as PKCS#12.
    Soft,
    /// Keys generated in the manufacturer's token, certificates imported beside them.
    Hsm(Arc<Token>),
    /// Keys generated on PIV cards by the card station ([`crate::card::station`]).
    Card,
}

/// What the manifest says of a certificate.
pub(crate) struct CertificateFacts {
    /// SHA-256 of the DER, hex with colons.
    pub(crate) sha256: String,
    /// notBefore.
    pub(crate) not_before: String,
    /// notAfter.
    pub(crate) not_after: String,
}

impl CertificateFacts {
    pub(crate) fn of(parsed: &x509_cert::Certificate, der: &[u8]) -> Self {
        let validity = parsed.tbs_certificate().validity();
        CertificateFacts {
            sha256: hex_colons(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref()),
            not_before: validity.not_before.to_date_time().to_string(),
            not_after: validity.not_after.to_date_time().to_string(),
        }
    }
}

/// Writes a device's certificate into the delivery folder, PEM and DER,
/// without fsync: the journal holds the same DER, and the delivery checks
/// every certificate file against it, rewrites any that a crash lost or
/// tore, and syncs the file system before it records the upload.
pub(crate) fn store_certificate_files(
    folder: &Path,
    device_serial: &str,
    certificate_der: &[u8],
) -> Result<(), ProduceError> {
    let certs = folder.join("certs");
    write_unsynced(
        &certs.join(format!("{device_serial}.pem")),
        pem::certificate(certificate_der).as_bytes(),
        0o644,
    )?;
    write_unsynced(
        &certs.join(format!("{device_serial}.der")),
        certificate_der,
        0o644,
    )
}

/// Checks a device's certificate files against the journal's DER and
/// rewrites any that is missing or different (a crash can lose or tear
/// them: they are written without fsync).
fn restore_certificate_files(
    certs: &Path,
    device_serial: &str,
    certificate_der: &[u8],
) -> Result<(), ProduceError> {
    let pem = pem::certificate(certificate_der);
    for (path, bytes) in [
        (certs.join(format!("{device_serial}.pem")), pem.as_bytes()),
        (certs.join(format!("{device_serial}.der")), certificate_der),
    ] {
        if crate::input::read_file(&path).ok().as_deref() != Some(bytes) {
            write_unsynced(&path, bytes, 0o644)?;
        }
    }
    Ok(())
}

/// Devices a worker takes at a time. Their intents are recorded in one
/// transaction and their certificates in another: two journal fsyncs per
/// chunk instead of two per device. A crash leaves at most the chunks in
/// flight as intents, which the next run voids. (`certmint bench` measures
/// its pipeline in chunks of this size too.)
pub const CHUNK: usize = 32;

/// A device whose key exists and whose TBS certificate is linted: ready for
/// its intent.
struct PreparedDevice {
    keyed: KeyedDevice,
    certificate: PreparedCertificate,
}

/// A device and its key, and the serial number its certificate carries.
struct KeyedDevice {
    device: Device,
    /// The soft target's key, in memory until it is packed in the PKCS#12.
    software_key: Option<SoftwareSigner>,
    spki_der: Vec<u8>,
    /// The token key's CKA_ID (hsm target).
    key_id: Option<Vec<u8>>,
    serial_hex: String,
}

/// A device whose certificate is signed and checked (and, soft target,
/// packed in its PKCS#12): ready to store.
struct SignedDevice {
    device: Device,
    serial_hex: String,
    certificate_der: Vec<u8>,
    facts: CertificateFacts,
    /// The token key's CKA_ID (hsm target).
    key_id: Option<Vec<u8>>,
    /// The soft target's PKCS#12 file and its password.
    pkcs12: Option<(Vec<u8>, Zeroizing<String>)>,
}

/// Keeps the first failure of a run; every thread stops at its next step.
fn keep_first_failure(failure: &Mutex<Option<ProduceError>>, error: ProduceError) {
    lock(failure).get_or_insert(error);
}

/// One production run of one order.
pub struct Production<'a> {
    /// The order.
    pub order: OrderId,
    /// The issuing CA.
    pub ca: &'a CertificateAuthority,
    /// The okc-device profile.
    pub profile: &'a Profile,
    /// The CA chain (issuing, root) as DER, included in deliveries.
    pub chain: Vec<Vec<u8>>,
    /// Where delivery folders go: `out/order-N/`.
    pub out: PathBuf,
    /// Parallel workers: one signing session each. A CA key that signs in
    /// session processes gets two threads per session (see
    /// [`crate::signer::pipeline_threads`]).
    pub workers: usize,
    /// Key target.
    pub target: KeyTarget,
    /// Who runs it.
    pub operator: String,
    /// Set to stop after the devices in flight.
    pub stop: Arc<AtomicBool>,
    /// Called after each device is verified.
    pub on_device: &'a (dyn Fn() + Sync),
    /// For the purge deadline.
    pub calendar: &'a BusinessCalendar,
    /// How long to wait for another producer of the order to finish
    /// (zero: refuse at once, naming it).
    pub lease_wait: Duration,
}

/// Proof that the order's producer lease is held: [`Production::start`]
/// takes one, so nothing recovers or produces an order without it.
pub(crate) struct HeldLease {
    holder: LeaseHolder,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProductionReport {
    /// The order.
    pub order: i64,
    /// Devices in the order.
    pub devices: u64,
    /// Devices certified in this run.
    pub produced_now: u64,
    /// Devices already certified before this run.
    pub already_done: u64,
    /// Intents voided at start (left by an interrupted run).
    pub voided_intents: u64,
    /// Token objects removed at start (left by an interrupted run).
    pub removed_token_objects: u64,
    /// Whether the run was stopped (Ctrl-C) before finishing.
    pub stopped: bool,
    /// The delivery folder, once delivered.
    pub delivery: Option<String>,
    /// The password manifest (soft target).
    pub passwords: Option<String>,
    /// Purge deadline (soft target): the end of this Turkish business day.
    pub purge_due: Option<String>,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ProduceError + '_ {
    move |e| ProduceError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// `name.ext` → `name.ext.tmp` (not `name.tmp`: `manifest.csv` and
/// `manifest.json` must not share a temporary file).
fn temporary(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Writes `bytes` to `path` atomically: a temporary file, fsync, rename.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ProduceError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = temporary(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Opens `path` to write it whole: created with `mode`, or truncated and
/// given `mode` if it exists (a file left with a wider mode does not keep
/// it). A symbolic link planted at `path` is refused (`O_NOFOLLOW`), never
/// followed out of the delivery folder.
fn open_to_write(path: &Path, mode: u32) -> Result<std::fs::File, ProduceError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(io(path))?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io(path))?;
    Ok(file)
}

/// Writes `bytes` to `path` (created or truncated), leaving durability to a
/// later sync.
fn write_unsynced(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ProduceError> {
    open_to_write(path, mode)?
        .write_all(bytes)
        .map_err(io(path))
}

/// Writes `bytes` to `path` (created or truncated) and fsyncs it. Its name
/// in the folder is durable only after [`sync_folder`].
fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ProduceError> {
    let mut file = open_to_write(path, mode)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(path))
}

/// Makes the names of the files created in `folder` durable (fsync of the
/// folder): one call for a whole chunk of files.
fn sync_folder(folder: &Path) -> Result<(), ProduceError> {
    std::fs::File::open(folder)
        .and_then(|dir| dir.sync_all())
        .map_err(io(folder))
}

/// Makes everything written to the file system holding `path` durable
/// (syncfs(2)): one call for an order's thousands of certificate files
/// instead of an fsync each.
fn sync_file_system(path: &Path) -> Result<(), ProduceError> {
    std::fs::File::open(path)
        .and_then(|dir| nix::unistd::syncfs(&dir).map_err(std::io::Error::from))
        .map_err(io(path))
}

/// A file written under a temporary name and renamed into place only when
/// complete and synced, so a reader never sees half a manifest.
struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
}

impl AtomicFile {
    fn create(path: &Path, mode: u32) -> Result<Self, ProduceError> {
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = temporary(path);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io(&tmp))?;
        Ok(Self {
            path: path.to_path_buf(),
            out: std::io::BufWriter::new(file),
            tmp,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), ProduceError> {
        self.out.write_all(bytes).map_err(io(&self.tmp))
    }

    fn commit(self) -> Result<(), ProduceError> {
        let file = self.out.into_inner().map_err(|e| ProduceError::Io {
            path: self.tmp.display().to_string(),
            reason: e.to_string(),
        })?;
        file.sync_all().map_err(io(&self.tmp))?;
        std::fs::rename(&self.tmp, &self.path).map_err(io(&self.path))
    }
}

/// The folder of an order's delivery.
pub fn delivery_folder(out: &Path, order: OrderId) -> PathBuf {
    out.join(format!("order-{order}"))
}

/// The separate password manifest of a soft delivery.
pub fn password_manifest(out: &Path, order: OrderId) -> PathBuf {
    out.join(format!("order-{order}.passwords.csv"))
}

/// Refuses an order that cannot be produced under `profile` with its keys
/// on `target`: a kind certified under another profile (each names the
/// command that produces it), an unpaid order, another target. Callers check
/// this before any token or card is touched; [`Production`] checks it again.
pub fn check_producible(
    order: &OrderSummary,
    profile: ProfileName,
    target: Target,
) -> Result<(), ProduceError> {
    let refuse = |reason: String| ProduceError::Order {
        order: order.id,
        reason,
    };
    let wrong_command = |reason: String| ProduceError::WrongCommand {
        order: order.id,
        reason,
    };
    // Each kind is certified under its own profile: ÖKC devices with
    // `okc produce` (or the card station), Mali Mühür seals with
    // `hsm provision --order` (or the card station).
    match (order.kind, profile) {
        (OrderKind::Okc, ProfileName::OkcDevice)
        | (OrderKind::MaliMuhur, ProfileName::MaliMuhur) => {}
        (OrderKind::MaliMuhur, _) => {
            return Err(wrong_command(format!(
                "is a Mali Mühür order: produce it with `certmint hsm provision --order {} --token …` (hsm target) or `certmint card station --order {}` (card target)",
                order.id, order.id
            )))
        }
        (OrderKind::Okc, _) => {
            return Err(wrong_command(format!(
                "is an ÖKC order: produce it with `certmint okc produce --order {}`",
                order.id
            )))
        }
    }
    if order.kind == OrderKind::MaliMuhur && target == Target::Soft {
        return Err(wrong_command(
            "is a Mali Mühür order: its seals live on a card or in the company's HSM, never in a file".into(),
        ));
    }
    if order.state == OrderState::Received {
        return Err(refuse("is not paid: production refuses an unpaid order (record the payment with `certmint order pay`)".into()));
    }
    if order.target != target {
        let hint = if order.target == Target::Card {
            format!(
                "; produce it with `certmint card station --order {}`",
                order.id
            )
        } else {
            String::new()
        };
        return Err(wrong_command(format!(
            "was ordered for the {} target, not {target}{hint}",
            order.target
        )));
    }
    Ok(())
}

/// An order claimed by this process: its producer lease, taken before the
/// producer opens a token, asks for a PIN or unlocks a key, so that a second
/// producer is refused (or waits) before it touches anything — two
/// processes opening one SoftHSM2 token at the same moment can make either
/// fail. [`Production::run`] in the same process holds the same lease (one
/// holder per process) while it works and renews it; the claim gives it
/// back when dropped, whatever happened in between.
pub struct OrderClaim<'a> {
    journal: &'a Mutex<dyn Journal>,
    order: OrderId,
    holder: LeaseHolder,
}

impl<'a> OrderClaim<'a> {
    /// Takes `order`'s lease for this process, waiting up to `wait` for a
    /// live holder (and no longer once `stop` is set).
    pub fn take(
        journal: &'a Mutex<dyn Journal>,
        order: OrderId,
        operator: &str,
        wait: Duration,
        stop: &AtomicBool,
    ) -> Result<Self, ProduceError> {
        let holder = LeaseHolder::this_process(operator);
        acquire_lease_waiting(journal, order, &holder, wait, stop)?;
        Ok(Self {
            journal,
            order,
            holder,
        })
    }
}

impl Drop for OrderClaim<'_> {
    fn drop(&mut self) {
        // A lease that cannot be given back (the journal failed) is taken
        // over as soon as this process is gone.
        let _ = lock(self.journal).release_lease(self.order, &self.holder);
    }
}

/// Takes `order`'s lease for `holder`, trying again every 250 ms while a
/// live producer holds it, for up to `wait` (a wait too long to represent
/// is a wait without end) and until `stop` is set; then the holder is named
/// in the error.
fn acquire_lease_waiting(
    journal: &Mutex<dyn Journal>,
    order: OrderId,
    holder: &LeaseHolder,
    wait: Duration,
    stop: &AtomicBool,
) -> Result<(), ProduceError> {
    let deadline = Instant::now().checked_add(wait);
    loop {
        let attempt = lock(journal).acquire_lease(order, holder, LEASE_TTL);
        let left = deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        });
        match attempt {
            Ok(_) => return Ok(()),
            Err(JournalError::Held { .. }) if !left.is_zero() && !stop.load(Ordering::SeqCst) => {
                std::thread::sleep(left.min(Duration::from_millis(250)));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Who an order's certificates certify.
pub(crate) enum Certified {
    /// ÖKC: each device by its serial, with the manufacturer's name.
    Devices { manufacturer: String },
    /// Mali Mühür: every seal of the order certifies the company.
    Company(Subject),
}

impl Certified {
    /// What `order` certifies; a company's identifier is checked under
    /// `profile` and `id_mode` (GİB test identifiers only in test mode).
    pub(crate) fn of(
        order: &OrderSummary,
        profile: &Profile,
        id_mode: IdMode,
    ) -> Result<Self, ProduceError> {
        match order.kind {
            OrderKind::Okc => Ok(Certified::Devices {
                manufacturer: order.manufacturer.clone(),
            }),
            OrderKind::MaliMuhur => {
                // The order holds a VKN (10 digits) or a TCKN (11).
                let id = order.manufacturer_vkn.clone();
                let (vkn, tckn) = if id.len() == 11 {
                    (None, Some(id))
                } else {
                    (Some(id), None)
                };
                let input = SubjectInput {
                    vkn,
                    tckn,
                    unvan: Some(order.manufacturer.clone()),
                    ..Default::default()
                };
                Subject::from_input(profile, &input, id_mode)
                    .map(Certified::Company)
                    .map_err(|e| ProduceError::Order {
                        order: order.id,
                        reason: e.to_string(),
                    })
            }
        }
    }

    /// The subject of the certificate for `device` (an ÖKC serial, or a
    /// seal's label).
    pub(crate) fn subject(&self, order: OrderId, device: &str) -> Result<Subject, ProduceError> {
        match self {
            Certified::Devices { manufacturer } => Ok(Subject::OkcDevice {
                // Validated at import against the manufacturer's prefixes.
                serial: DeviceSerial::parse(device, &PrefixTable::any()).map_err(|e| {
                    ProduceError::Order {
                        order,
                        reason: e.to_string(),
                    }
                })?,
                manufacturer: Some(manufacturer.clone()),
            }),
            Certified::Company(subject) => Ok(subject.clone()),
        }
    }
}

impl Production<'_> {
    /// Produces (or resumes) the order, then delivers it.
    pub fn run(&self, journal: &Mutex<dyn Journal>) -> Result<ProductionReport, ProduceError> {
        let order = lock(journal).order(self.order)?;
        self.check_order(&order)?;
        if matches!(order.state, OrderState::Delivered | OrderState::Purged) {
            return Ok(ProductionReport {
                order: self.order.0,
                devices: order.devices,
                already_done: order.verified,
                ..Default::default()
            });
        }
        if matches!(self.target, KeyTarget::Card) {
            return Err(ProduceError::Order {
                order: self.order,
                reason: "is for the card target: produce it with `certmint card station`".into(),
            });
        }
        self.holding_lease(journal, |lease| {
            let mut report = ProductionReport::default();
            // As it stands now: another producer may have finished it while this one waited.
            let order = self.start(journal, lease, &mut report)?;
            if matches!(order.state, OrderState::Paid | OrderState::Producing) {
                self.produce_devices(journal, &order, &mut report)?;
            }
            self.finish(journal, &mut report)?;
            Ok(report)
        })
    }

    /// Runs `work` holding the order's producer lease: one producer per
    /// order at a time. The lease is taken (waiting up to
    /// [`Production::lease_wait`] for a live holder), renewed every
    /// [`LEASE_RENEW_EVERY`] while `work` runs, and given back when it ends,
    /// whether it succeeded or not.
    pub(crate) fn holding_lease<T, E: From<ProduceError>>(
        &self,
        journal: &Mutex<dyn Journal>,
        work: impl FnOnce(&HeldLease) -> Result<T, E>,
    ) -> Result<T, E> {
        let lease = HeldLease {
            holder: LeaseHolder::this_process(&self.operator),
        };
        acquire_lease_waiting(
            journal,
            self.order,
            &lease.holder,
            self.lease_wait,
            &self.stop,
        )?;
        let (done, renewals) = channel::<()>();
        let result = std::thread::scope(|scope| {
            let lease = &lease;
            // Renews until the work ends (the sender is dropped).
            scope.spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = renewals.recv_timeout(LEASE_RENEW_EVERY)
                {
                    let renewed = lock(journal).renew_lease(self.order, &lease.holder, LEASE_TTL);
                    // A lost lease stops the work at its next journal write
                    // (the journal refuses it); a busy journal is tried
                    // again at the next tick, well within the TTL.
                    if let Err(JournalError::LeaseLost { .. }) = renewed {
                        break;
                    }
                }
            });
            let result = work(lease);
            drop(done);
            result
        });
        // A lease that cannot be given back (the journal failed) is taken
        // over as soon as this process is gone: the work's outcome stands.
        let _ = lock(journal).release_lease(self.order, &lease.holder);
        result
    }

    /// Checks the order, moves it to producing and undoes what an
    /// interrupted run left half done. Returns the order as it stands.
    pub(crate) fn start(
        &self,
        journal: &Mutex<dyn Journal>,
        _lease: &HeldLease,
        report: &mut ProductionReport,
    ) -> Result<OrderSummary, ProduceError> {
        let order = lock(journal).order(self.order)?;
        self.check_order(&order)?;
        report.order = self.order.0;
        report.devices = order.devices;
        report.already_done = order.verified;
        if order.state == OrderState::Producing || order.state == OrderState::Paid {
            lock(journal).start_production(self.order, &self.operator)?;
            self.recover(journal, report)?;
        }
        Ok(order)
    }

    /// When every device is verified: producing → produced, then the
    /// delivery. Marks the report stopped when devices remain.
    pub(crate) fn finish(
        &self,
        journal: &Mutex<dyn Journal>,
        report: &mut ProductionReport,
    ) -> Result<(), ProduceError> {
        let order = lock(journal).order(self.order)?;
        if matches!(order.state, OrderState::Delivered | OrderState::Purged) {
            return Ok(());
        }
        if order.state != OrderState::Produced
            && (report.stopped || !lock(journal).finish_production(self.order, &self.operator)?)
        {
            report.stopped = true;
            return Ok(());
        }
        self.deliver(journal, report)
    }

    fn check_order(&self, order: &OrderSummary) -> Result<(), ProduceError> {
        let target = match self.target {
            KeyTarget::Soft => Target::Soft,
            KeyTarget::Hsm(_) => Target::Hsm,
            KeyTarget::Card => Target::Card,
        };
        check_producible(order, self.profile.name, target)
    }

    fn key_type(&self, order: &OrderSummary) -> Result<KeyType, ProduceError> {
        order
            .key_type
            .parse::<KeyType>()
            .map_err(|e| ProduceError::Order {
                order: self.order,
                reason: e.to_string(),
            })
    }

    /// Undoes what an interrupted run left half done.
    fn recover(
        &self,
        journal: &Mutex<dyn Journal>,
        report: &mut ProductionReport,
    ) -> Result<(), ProduceError> {
        let dangling = lock(journal).dangling_intents(self.order)?;
        for (serial_hex, device) in dangling {
            if let KeyTarget::Hsm(token) = &self.target {
                // A certificate imported but not recorded goes with its intent.
                report.removed_token_objects += self.remove_certificate_objects(token, &device)?;
            }
            lock(journal).void_intent(
                &serial_hex,
                &self.operator,
                &format!("device {}: production was interrupted between intent and storage; never delivered", device.serial),
            )?;
            report.voided_intents += 1;
        }
        if let KeyTarget::Hsm(token) = &self.target {
            let (debris, orphans) = self.clean_token(journal, token)?;
            if debris + orphans > 0 {
                lock(journal).audit(
                    &self.operator,
                    "token.cleaned",
                    &format!("token {}", token.label()),
                    &format!(
                        "{debris} unlabelled object(s) left by an interrupted write, \
                         {orphans} object(s) of devices whose key was never recorded"
                    ),
                )?;
            }
            report.removed_token_objects += debris + orphans;
        }
        Ok(())
    }

    /// One pass over the token's objects, removing what an interrupted run
    /// left: unlabelled (or unreadable) objects — every object certmint
    /// creates carries a label in its template, so these were never completed
    /// (SoftHSM2's file store writes attributes one by one) — and objects
    /// labelled with the serial of a device still `planned` in this order
    /// (a crash right after C_GenerateKeyPair). The journal is asked per label
    /// (an indexed lookup), so memory stays flat and the token is scanned once.
    /// In a company's token (Mali Mühür seals) unlabelled objects are left
    /// alone: they may be the company's own.
    fn clean_token(
        &self,
        journal: &Mutex<dyn Journal>,
        token: &Token,
    ) -> Result<(u64, u64), ProduceError> {
        use cryptoki::error::{Error as CkError, RvError};
        use cryptoki::object::{Attribute, AttributeType};
        let token_err = |error| ProduceError::Token {
            device: "(recovery)".into(),
            error,
        };
        token
            .with_session_changing_objects(|s| {
                let company_token = self.profile.name == ProfileName::MaliMuhur;
                let (mut debris, mut orphans) = (0, 0);
                // Every object: a half-written one may lack CKA_LABEL
                // entirely, which no search template matches.
                for o in s.find_objects(&[])? {
                    let label = match s.get_attributes(o, &[AttributeType::Label]) {
                        Ok(attrs) => attrs.into_iter().find_map(|a| match a {
                            Attribute::Label(l) if !l.is_empty() => Some(l),
                            _ => None,
                        }),
                        // A label that cannot even be read marks a half-written object.
                        Err(CkError::Pkcs11(
                            RvError::AttributeValueInvalid | RvError::AttributeTypeInvalid,
                            _,
                        )) => None,
                        Err(other) => return Err(other),
                    };
                    let remove = match &label {
                        // An ÖKC manufacturer's token is given over to
                        // the order; a company's HSM holds the company's
                        // own objects too, and one without a label is not
                        // ours to judge: it is never touched.
                        None if company_token => false,
                        None => {
                            debris += 1;
                            true
                        }
                        Some(label) => {
                            let serial = String::from_utf8_lossy(label);
                            match lock(journal).device_state(self.order, &serial) {
                                Ok(Some(DeviceState::Planned)) => {
                                    orphans += 1;
                                    true
                                }
                                Ok(_) => false,
                                Err(e) => return Ok(Err(e)),
                            }
                        }
                    };
                    if remove {
                        s.destroy_object(o)?;
                    }
                }
                Ok(Ok((debris, orphans)))
            })
            .map_err(token_err)?
            .map_err(ProduceError::from)
    }

    fn remove_certificate_objects(
        &self,
        token: &Token,
        device: &Device,
    ) -> Result<u64, ProduceError> {
        destroy_objects(
            token,
            &[
                cryptoki::object::Attribute::Class(cryptoki::object::ObjectClass::CERTIFICATE),
                cryptoki::object::Attribute::Label(device.serial.as_bytes().to_vec()),
            ],
        )
        .map_err(|error| ProduceError::Token {
            device: device.serial.clone(),
            error,
        })
    }

    fn produce_devices(
        &self,
        journal: &Mutex<dyn Journal>,
        order: &OrderSummary,
        report: &mut ProductionReport,
    ) -> Result<(), ProduceError> {
        let key_type = self.key_type(order)?;
        let certified = &Certified::of(order, self.profile, self.ca.id_mode())?;
        // The delivery folders, made once, not per device.
        let folder = delivery_folder(&self.out, self.order);
        let mut folders = vec![folder.join("certs")];
        if matches!(self.target, KeyTarget::Soft) {
            folders.push(folder.join("p12"));
        }
        for dir in &folders {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        // Parsed once for every PKCS#12 of the run.
        let chain = pkcs12::CaChain::parse(&self.chain).map_err(|reason| ProduceError::Order {
            order: self.order,
            reason: format!("CA chain: {reason}"),
        })?;
        let produced = AtomicU64::new(0);
        let failure: Mutex<Option<ProduceError>> = Mutex::new(None);
        // Two threads per session process, when the CA key signs in them.
        let threads = crate::signer::pipeline_threads(self.workers, self.ca.signer());
        // Feeder → workers (chunks of devices) → storer (chunks signed).
        // Both queues are bounded: memory stays flat however large the order.
        let (send_devices, receive_devices) = sync_channel::<Vec<Device>>(threads * 2);
        // Owned by the workers alone: when the last one leaves (the storer
        // failed, or every worker did), the receiver goes with it and the
        // feeder's blocked send fails instead of waiting forever.
        let receive_devices = Arc::new(Mutex::new(receive_devices));
        let (send_signed, receive_signed) = sync_channel::<Vec<SignedDevice>>(threads * 2);
        std::thread::scope(|scope| {
            // The storer: files and token imports, then the verified records.
            // Its waits on fsync overlap the workers' signing.
            scope.spawn(|| {
                for signed in receive_signed {
                    if let Err(e) = self.store_chunk(journal, &signed) {
                        keep_first_failure(&failure, e);
                        break; // the workers' next send fails: they stop
                    }
                    produced.fetch_add(signed.len() as u64, Ordering::SeqCst);
                }
            });
            for _ in 0..threads {
                let send_signed = send_signed.clone();
                let receive_devices = Arc::clone(&receive_devices);
                let (chain, failure) = (&chain, &failure);
                scope.spawn(move || loop {
                    let next = lock(&receive_devices).recv();
                    let Ok(devices) = next else { break };
                    if lock(failure).is_some() || self.stop.load(Ordering::SeqCst) {
                        // Drain without work: the feeder stops soon. A queued
                        // chunk has no intents yet, so skipping it is safe.
                        continue;
                    }
                    match self.sign_chunk(journal, certified, key_type, chain, devices) {
                        Ok(signed) => {
                            if send_signed.send(signed).is_err() {
                                break;
                            }
                        }
                        Err(e) => keep_first_failure(failure, e),
                    }
                });
            }
            drop(send_signed);
            drop(receive_devices);
            // The feeder pages through the journal.
            let mut after = 0;
            'feed: loop {
                let page = match lock(journal).pending_devices(self.order, after, 256) {
                    Ok(page) => page,
                    Err(e) => {
                        keep_first_failure(&failure, e.into());
                        break;
                    }
                };
                let Some(last) = page.last() else { break };
                after = last.id;
                let mut devices = page.into_iter().peekable();
                while devices.peek().is_some() {
                    if lock(&failure).is_some() || self.stop.load(Ordering::SeqCst) {
                        break 'feed;
                    }
                    let chunk: Vec<Device> = devices.by_ref().take(CHUNK).collect();
                    if send_devices.send(chunk).is_err() {
                        break 'feed;
                    }
                }
            }
            drop(send_devices);
        });
        report.produced_now = produced.load(Ordering::SeqCst);
        if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        report.stopped = self.stop.load(Ordering::SeqCst);
        Ok(())
    }

    /// A chunk of devices up to their signed certificates: keys and linted
    /// TBS for all, their intents in one durable transaction, then signing.
    /// Nothing is signed before every intent of the chunk is durable.
    fn sign_chunk(
        &self,
        journal: &Mutex<dyn Journal>,
        certified: &Certified,
        key_type: KeyType,
        chain: &pkcs12::CaChain,
        devices: Vec<Device>,
    ) -> Result<Vec<SignedDevice>, ProduceError> {
        let prepared = devices
            .into_iter()
            .map(|device| self.prepare_device(journal, certified, key_type, device))
            .collect::<Result<Vec<_>, _>>()?;
        let key_note = match &self.target {
            KeyTarget::Soft => "software key generated in memory",
            KeyTarget::Hsm(_) => "key in the token",
            KeyTarget::Card => "key on a PIV card",
        };
        let intents: Vec<Intent<'_>> = prepared
            .iter()
            .map(|p| Intent {
                device: &p.keyed.device,
                serial_hex: &p.keyed.serial_hex,
                tbs: p.certificate.tbs_der(),
                key_note,
            })
            .collect();
        lock(journal).record_intents(&intents, &self.operator)?;
        drop(intents);
        let (devices, certificates): (Vec<_>, Vec<_>) = prepared
            .into_iter()
            .map(|p| (p.keyed, p.certificate))
            .unzip();
        let Some(first) = devices.first() else {
            return Ok(Vec::new());
        };
        // Still this producer's order: one taken over while this one was
        // stopped between its intents and here gets no signatures from it.
        lock(journal).confirm_lease(self.order)?;
        // The key signed none of them: the chunk stops at its first device.
        let signed = self
            .ca
            .sign_all(certificates)
            .map_err(|error| ProduceError::Issue {
                device: first.device.serial.clone(),
                error,
            })?;
        devices
            .into_iter()
            .zip(signed)
            .map(|(device, certificate)| self.finish_device(device, certificate, chain))
            .collect()
    }

    /// A device's key (in memory, or in the token and recorded before use)
    /// and its linted TBS certificate.
    fn prepare_device(
        &self,
        journal: &Mutex<dyn Journal>,
        certified: &Certified,
        key_type: KeyType,
        device: Device,
    ) -> Result<PreparedDevice, ProduceError> {
        let issue_err = |error: IssueError| ProduceError::Issue {
            device: device.serial.clone(),
            error,
        };
        let token_err = |error: Pkcs11Error| ProduceError::Token {
            device: device.serial.clone(),
            error,
        };
        let key_err = |error: SignerError| ProduceError::Key {
            device: device.serial.clone(),
            error,
        };
        let subject = certified.subject(self.order, &device.serial)?;

        let (software_key, spki_der, key_id) = match &self.target {
            KeyTarget::Soft => {
                let key = SoftwareSigner::generate(key_type).map_err(key_err)?;
                let spki = key.public_key_der().to_vec();
                (Some(key), spki, None)
            }
            KeyTarget::Hsm(token) => {
                let (spki, id) = match &device.key_id {
                    Some(id_hex) => {
                        let id = pem::unhex(id_hex);
                        let spki = token
                            .with_session(|s| match find_public_key(s, &id, None)? {
                                Some(public) => Ok(public_key_spki(s, public, token.label())),
                                None => Ok(Err(Pkcs11Error::NoPublicKey(format!(
                                    "device {} (CKA_ID {id_hex})",
                                    device.serial
                                )))),
                            })
                            .map_err(token_err)?
                            .map_err(token_err)?;
                        (spki, id)
                    }
                    None => {
                        // No label check: recovery removed every object labelled with a
                        // planned device's serial, and a search per device is O(n) on
                        // tokens that scan all objects (SoftHSM2): O(n²) per order.
                        let pair = generate_key_pair(token, key_type, &device.serial, true)
                            .map_err(token_err)?;
                        lock(journal).record_key(&device, &hex(&pair.id), &self.operator)?;
                        (pair.spki_der, pair.id)
                    }
                };
                (None, spki, Some(id))
            }
            KeyTarget::Card => {
                return Err(ProduceError::Order {
                    order: self.order,
                    reason: "is for the card target: produce it with `certmint card station`"
                        .into(),
                })
            }
        };

        // A key generated here is valid by construction; a token's is checked.
        let key = match &software_key {
            Some(generated) => SubjectKey::generated(generated),
            None => SubjectKey::checked(&spki_der).map_err(key_err)?,
        };
        let certificate = self
            .ca
            .prepare(
                self.profile,
                &subject,
                key,
                crate::issue::validity::now().map_err(issue_err)?,
            )
            .map_err(issue_err)?;
        let serial_hex = hex(certificate.serial());
        Ok(PreparedDevice {
            keyed: KeyedDevice {
                device,
                software_key,
                spki_der,
                key_id,
                serial_hex,
            },
            certificate,
        })
    }

    /// Checks that a device's signed certificate certifies the device's key,
    /// and (soft target) packs the PKCS#12.
    fn finish_device(
        &self,
        keyed: KeyedDevice,
        certificate: Result<IssuedCertificate, IssueError>,
        chain: &pkcs12::CaChain,
    ) -> Result<SignedDevice, ProduceError> {
        let KeyedDevice {
            device,
            software_key,
            spki_der,
            key_id,
            serial_hex,
        } = keyed;
        let issue_err = |error: IssueError| ProduceError::Issue {
            device: device.serial.clone(),
            error,
        };
        let key_err = |error: SignerError| ProduceError::Key {
            device: device.serial.clone(),
            error,
        };
        let certificate = certificate.map_err(issue_err)?;

        // Verify what was signed certifies this device's key.
        let parsed = certificate.certifying(&spki_der).map_err(issue_err)?;
        let facts = CertificateFacts::of(&parsed, certificate.der());

        let pkcs12 = match software_key {
            Some(key) => {
                let password =
                    pkcs12::random_password().map_err(|e| issue_err(IssueError::Entropy(e)))?;
                let pkcs8 = key.to_pkcs8_der().map_err(key_err)?;
                let key_id = crate::pkcs11::keys::key_id(&spki_der).map_err(|error| {
                    ProduceError::Token {
                        device: device.serial.clone(),
                        error,
                    }
                })?;
                let p12 = pkcs12::build(
                    &device.serial,
                    &pkcs8,
                    &key_id,
                    certificate.der(),
                    chain,
                    &password,
                )
                .map_err(|e| {
                    key_err(SignerError::KeyUnreadable {
                        what: "PKCS#12".into(),
                        reason: e,
                    })
                })?;
                Some((p12, password))
            }
            None => None,
        };
        Ok(SignedDevice {
            device,
            serial_hex,
            certificate_der: certificate.der().to_vec(),
            facts,
            key_id,
            pkcs12,
        })
    }

    /// Stores a chunk of signed devices, then records them verified in one
    /// transaction. What must be durable before that record is:
    ///
    /// - soft: the PKCS#12, the only copy of the device key: each file is
    ///   fsynced, and its name with one fsync of the `p12` folder per chunk;
    /// - hsm: the certificate object, imported into the token.
    ///
    /// The certificate files are written without fsync: the journal's
    /// verified record holds the same DER, and the delivery checks every
    /// certificate file against it, rewrites any that a crash lost, and syncs
    /// the file system before recording the upload.
    fn store_chunk(
        &self,
        journal: &Mutex<dyn Journal>,
        signed: &[SignedDevice],
    ) -> Result<(), ProduceError> {
        // Still this producer's order: files of one taken over meanwhile
        // are the new holder's, and are not written over.
        lock(journal).confirm_lease(self.order)?;
        let folder = delivery_folder(&self.out, self.order);
        let p12_dir = folder.join("p12");
        for device in signed {
            store_certificate_files(&folder, &device.device.serial, &device.certificate_der)?;
            match (&self.target, &device.pkcs12) {
                (KeyTarget::Soft, Some((p12, _))) => {
                    // Written in place, not renamed: until this device is recorded
                    // verified, a crash leaves it to be produced again, and the new
                    // file replaces whatever this one became.
                    write_synced(
                        &p12_dir.join(format!("{}.p12", device.device.serial)),
                        p12,
                        0o600,
                    )?;
                }
                (KeyTarget::Hsm(token), _) => {
                    let id = device.key_id.clone().unwrap_or_default();
                    token
                        .with_session_changing_objects(|s| {
                            import_certificate(
                                s,
                                &device.device.serial,
                                &id,
                                &device.certificate_der,
                            )
                        })
                        .map_err(|error| ProduceError::Token {
                            device: device.device.serial.clone(),
                            error,
                        })?;
                }
                (KeyTarget::Soft, None) | (KeyTarget::Card, _) => {}
            }
        }
        if matches!(self.target, KeyTarget::Soft) {
            sync_folder(&p12_dir)?;
        }
        let verified: Vec<VerifiedDevice<'_>> = signed
            .iter()
            .map(|d| VerifiedDevice {
                device: &d.device,
                certificate: StoredCertificate {
                    serial_hex: &d.serial_hex,
                    der: &d.certificate_der,
                    sha256: &d.facts.sha256,
                    not_before: &d.facts.not_before,
                    not_after: &d.facts.not_after,
                    p12_password: d.pkcs12.as_ref().map(|(_, password)| password.as_str()),
                },
            })
            .collect();
        lock(journal).record_verified_devices(&verified, &self.operator)?;
        for _ in signed {
            (self.on_device)();
        }
        Ok(())
    }

    /// Writes the delivery folder: manifest (CSV and JSON), CA chain, and for
    /// soft deliveries the separate password manifest; records the upload.
    fn deliver(
        &self,
        journal: &Mutex<dyn Journal>,
        report: &mut ProductionReport,
    ) -> Result<(), ProduceError> {
        let folder = delivery_folder(&self.out, self.order);
        std::fs::create_dir_all(&folder).map_err(io(&folder))?;
        // Recorded absolute and without symbolic links: the purge finds the
        // delivery from any working directory, and only there.
        let folder = std::fs::canonicalize(&folder).map_err(io(&folder))?;
        let soft = matches!(self.target, KeyTarget::Soft);
        if soft {
            self.check_pkcs12_files(journal, &folder)?;
        }
        let chain_pem: String = self.chain.iter().map(|der| pem::certificate(der)).collect();
        write_atomically(&folder.join("chain.pem"), chain_pem.as_bytes(), 0o644)?;

        // Streamed page by page from the journal: memory stays flat however large the order.
        let certs = folder.join("certs");
        std::fs::create_dir_all(&certs).map_err(io(&certs))?;
        let csv_path = folder.join("manifest.csv");
        let json_path = folder.join("manifest.json");
        let mut csv = AtomicFile::create(&csv_path, 0o644)?;
        let mut json = AtomicFile::create(&json_path, 0o644)?;
        csv.write(b"device_serial,certificate_serial,sha256,not_before,not_after\n")?;
        json.write(b"[")?;
        let mut after = 0;
        let mut first = true;
        loop {
            let page = lock(journal).issued(self.order, after, 1000)?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            for (_, record) in page {
                restore_certificate_files(&certs, &record.device_serial, &record.der)?;
                let line = format!(
                    "{},{},{},{},{}\n",
                    record.device_serial,
                    record.certificate_serial,
                    record.sha256,
                    record.not_before,
                    record.not_after
                );
                csv.write(line.as_bytes())?;
                let object = serde_json::to_string(&record).map_err(|e| ProduceError::Io {
                    path: json_path.display().to_string(),
                    reason: e.to_string(),
                })?;
                json.write(if first { b"\n  " } else { b",\n  " })?;
                json.write(object.as_bytes())?;
                first = false;
            }
        }
        json.write(b"\n]\n")?;
        csv.commit()?;
        json.commit()?;

        let mut passwords_path = None;
        if soft {
            let root = std::fs::canonicalize(&self.out).map_err(io(&self.out))?;
            let path = password_manifest(&root, self.order);
            let mut passwords = AtomicFile::create(&path, 0o600)?;
            passwords.write(b"device_serial,p12_file,password\n")?;
            let mut after = 0;
            loop {
                let page = lock(journal).passwords(self.order, after, 1000)?;
                let Some((last, _, _)) = page.last() else {
                    break;
                };
                after = *last;
                for (_, serial, password) in page {
                    let line =
                        zeroize::Zeroizing::new(format!("{serial},p12/{serial}.p12,{password}\n"));
                    passwords.write(line.as_bytes())?;
                }
            }
            passwords.commit()?;
            report.passwords = Some(path.display().to_string());
            passwords_path = Some(path.display().to_string());
        }
        // The certificate files (written without fsync) and the rest of the
        // folder are durable before the upload is recorded.
        sync_file_system(&folder)?;
        let uploaded = time::OffsetDateTime::now_utc();
        let uploaded_at = uploaded
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let purge_due = if soft {
            let due = self
                .calendar
                .purge_deadline_for_upload(uploaded, PURGE_AFTER_BUSINESS_DAYS)
                .map_err(|e| ProduceError::Order {
                    order: self.order,
                    reason: format!("cannot compute the purge deadline: {e}"),
                })?;
            Some(due.to_string())
        } else {
            None
        };
        let folder_text = folder.display().to_string();
        lock(journal).record_delivery(
            self.order,
            &DeliveryRecord {
                folder: &folder_text,
                passwords: passwords_path.as_deref(),
                uploaded_at: &uploaded_at,
                purge_due: purge_due.as_deref(),
            },
            &self.operator,
        )?;
        report.delivery = Some(folder.display().to_string());
        report.purge_due = purge_due;
        Ok(())
    }

    /// Refuses a soft delivery whose PKCS#12 files are not all in the
    /// folder as regular files: the password manifest would list keys the
    /// manufacturer never gets, and the journal would call it delivered.
    fn check_pkcs12_files(
        &self,
        journal: &Mutex<dyn Journal>,
        folder: &Path,
    ) -> Result<(), ProduceError> {
        let p12_dir = folder.join("p12");
        // Paged from the journal and only the first names kept: memory
        // stays flat however large the order.
        let (mut missing, mut shown) = (0usize, Vec::new());
        let mut after = 0;
        loop {
            let page = lock(journal).pkcs12_serials(self.order, after, 1000)?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            for (_, serial) in page {
                let name = format!("{serial}.p12");
                if !std::fs::symlink_metadata(p12_dir.join(&name)).is_ok_and(|meta| meta.is_file())
                {
                    missing += 1;
                    if shown.len() < 10 {
                        shown.push(name);
                    }
                }
            }
        }
        if missing == 0 {
            return Ok(());
        }
        let names = crate::text::some_of(&shown, missing);
        Err(ProduceError::Order {
            order: self.order,
            reason: format!(
                "not delivered: {} PKCS#12 file(s) are missing from {} or are not regular files ({names}). \
                 Their private keys exist nowhere else. Restore the files from a backup into that folder \
                 and run `certmint okc produce --order {}` again to deliver; if they are lost, the \
                 certificates of these devices must be revoked and the devices certified in a new order",
                missing,
                p12_dir.display(),
                self.order
            ),
        })
    }
}
