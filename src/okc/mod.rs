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
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};

use der::Encode;
use serde::Serialize;

use crate::calendar::BusinessCalendar;
use crate::ids::{DeviceSerial, PrefixTable};
use crate::issue::{CertificateAuthority, IssueError};
use crate::journal::{
    Device, DeviceState, Journal, JournalError, OrderId, OrderState, OrderSummary,
    StoredCertificate,
};
use crate::pem::{self, hex, hex_colons};
use crate::pkcs11::keys::{
    destroy_objects, find_public_key, generate_key_pair, import_certificate, public_key_spki,
};
use crate::pkcs11::token::lock;
use crate::pkcs11::{Pkcs11Error, Token};
use crate::profile::{Profile, Subject};
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

/// Writes a device's certificate into the delivery folder, PEM and DER.
pub(crate) fn store_certificate_files(
    folder: &Path,
    device_serial: &str,
    certificate_der: &[u8],
) -> Result<(), ProduceError> {
    let certs = folder.join("certs");
    write_atomically(
        &certs.join(format!("{device_serial}.pem")),
        pem::certificate(certificate_der).as_bytes(),
        0o644,
    )?;
    write_atomically(
        &certs.join(format!("{device_serial}.der")),
        certificate_der,
        0o644,
    )
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
    /// Parallel workers.
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

impl Production<'_> {
    /// Produces (or resumes) the order, then delivers it.
    pub fn run(&self, journal: &Mutex<dyn Journal>) -> Result<ProductionReport, ProduceError> {
        let order = lock(journal).order(self.order)?;
        self.check_order(&order)?;
        let mut report = ProductionReport {
            order: self.order.0,
            devices: order.devices,
            already_done: order.verified,
            ..Default::default()
        };
        if matches!(order.state, OrderState::Delivered | OrderState::Purged) {
            return Ok(report);
        }
        if matches!(self.target, KeyTarget::Card) {
            return Err(ProduceError::Order {
                order: self.order,
                reason: "is for the card target: produce it with `certmint card station`".into(),
            });
        }
        if order.state != OrderState::Produced {
            self.start(journal, &mut report)?;
            self.produce_devices(journal, &order, &mut report)?;
        }
        self.finish(journal, &mut report)?;
        Ok(report)
    }

    /// Checks the order, moves it to producing and undoes what an
    /// interrupted run left half done. Returns the order as it stands.
    pub(crate) fn start(
        &self,
        journal: &Mutex<dyn Journal>,
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
        let refuse = |reason: String| ProduceError::Order {
            order: self.order,
            reason,
        };
        // The card station produces seal orders too; soft and HSM batches are ÖKC only.
        if order.kind != crate::journal::OrderKind::Okc && !matches!(self.target, KeyTarget::Card) {
            return Err(refuse("is not an ÖKC order".into()));
        }
        if order.state == OrderState::Received {
            return Err(refuse("is not paid: production refuses an unpaid order (record the payment with `certmint order pay`)".into()));
        }
        let expected = match self.target {
            KeyTarget::Soft => crate::journal::Target::Soft,
            KeyTarget::Hsm(_) => crate::journal::Target::Hsm,
            KeyTarget::Card => crate::journal::Target::Card,
        };
        if order.target != expected {
            return Err(refuse(format!(
                "was ordered for the {} target, not {}",
                order.target, expected
            )));
        }
        Ok(())
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
            .one_writer_at_a_time(|| {
                token.with_session(|s| {
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
        // The delivery folders, made once, not per device.
        let folder = delivery_folder(&self.out, self.order);
        let mut folders = vec![folder.join("certs")];
        if matches!(self.target, KeyTarget::Soft) {
            folders.push(folder.join("p12"));
        }
        for dir in &folders {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let produced = AtomicU64::new(0);
        let failure: Mutex<Option<ProduceError>> = Mutex::new(None);
        let halt = AtomicBool::new(false);
        let workers = self.workers.max(1);
        let (send, receive) = sync_channel::<Device>(workers * 4);
        let receive = Mutex::new(receive);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        let next = lock(&receive).recv();
                        let Ok(device) = next else { break };
                        if halt.load(Ordering::SeqCst) {
                            continue; // drain: the feeder stops soon
                        }
                        match self.produce_device(journal, order, key_type, &device) {
                            Ok(()) => {
                                produced.fetch_add(1, Ordering::SeqCst);
                                (self.on_device)();
                            }
                            Err(e) => {
                                halt.store(true, Ordering::SeqCst);
                                lock(&failure).get_or_insert(e);
                            }
                        }
                    }
                });
            }
            // The feeder pages through the journal: memory stays flat however
            // large the order.
            let mut after = 0;
            'feed: loop {
                let page = match lock(journal).pending_devices(self.order, after, 256) {
                    Ok(page) => page,
                    Err(e) => {
                        lock(&failure).get_or_insert(e.into());
                        break;
                    }
                };
                let Some(last) = page.last() else { break };
                after = last.id;
                for device in page {
                    if halt.load(Ordering::SeqCst) || self.stop.load(Ordering::SeqCst) {
                        break 'feed;
                    }
                    if send.send(device).is_err() {
                        break 'feed;
                    }
                }
            }
            drop(send);
        });
        report.produced_now = produced.load(Ordering::SeqCst);
        if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        report.stopped = self.stop.load(Ordering::SeqCst);
        Ok(())
    }

    fn produce_device(
        &self,
        journal: &Mutex<dyn Journal>,
        order: &OrderSummary,
        key_type: KeyType,
        device: &Device,
    ) -> Result<(), ProduceError> {
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
        // Validated at import against the manufacturer's prefixes.
        let serial = DeviceSerial::parse(&device.serial, &PrefixTable::any()).map_err(|e| {
            ProduceError::Order {
                order: self.order,
                reason: e.to_string(),
            }
        })?;
        let subject = Subject::OkcDevice {
            serial,
            manufacturer: Some(order.manufacturer.clone()),
        };

        // The key: in memory (soft), or in the token (recorded before use).
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
                        lock(journal).record_key(device, &hex(&pair.id), &self.operator)?;
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

        let prepared = self
            .ca
            .prepare(
                self.profile,
                &subject,
                &spki_der,
                crate::issue::validity::now().map_err(issue_err)?,
            )
            .map_err(issue_err)?;
        let serial_hex = hex(prepared.serial());
        lock(journal).record_intent(
            device,
            &serial_hex,
            prepared.tbs_der(),
            match &self.target {
                KeyTarget::Soft => "software key generated in memory",
                KeyTarget::Hsm(_) => "key in the token",
                KeyTarget::Card => "key on a PIV card",
            },
            &self.operator,
        )?;
        let certificate = self.ca.sign(prepared).map_err(issue_err)?;

        // Verify what was signed certifies this device's key.
        let parsed = <x509_cert::Certificate as der::Decode>::from_der(certificate.der())
            .map_err(|e| issue_err(IssueError::Encoding(e.to_string())))?;
        let tbs = parsed.tbs_certificate();
        let certified = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|e| issue_err(IssueError::Encoding(e.to_string())))?;
        if certified != spki_der {
            return Err(issue_err(IssueError::SignatureCheck(
                "the certificate does not certify the device key".into(),
            )));
        }
        let facts = CertificateFacts::of(&parsed, certificate.der());

        // Store.
        let folder = delivery_folder(&self.out, self.order);
        store_certificate_files(&folder, &device.serial, certificate.der())?;
        let password = match (&self.target, software_key) {
            (KeyTarget::Soft, Some(key)) => {
                let password =
                    pkcs12::random_password().map_err(|e| issue_err(IssueError::Entropy(e)))?;
                let pkcs8 = key.to_pkcs8_der().map_err(key_err)?;
                let key_id = crate::pkcs11::keys::key_id(&spki_der).map_err(token_err)?;
                let p12 = pkcs12::build(
                    &device.serial,
                    &pkcs8,
                    &key_id,
                    certificate.der(),
                    &self.chain,
                    &password,
                )
                .map_err(|e| {
                    key_err(SignerError::KeyUnreadable {
                        what: "PKCS#12".into(),
                        reason: e,
                    })
                })?;
                let p12_dir = folder.join("p12");
                write_atomically(&p12_dir.join(format!("{}.p12", device.serial)), &p12, 0o600)?;
                Some(password)
            }
            (KeyTarget::Hsm(token), _) => {
                let id = key_id.unwrap_or_default();
                token
                    .one_writer_at_a_time(|| {
                        token.with_session(|s| {
                            import_certificate(s, &device.serial, &id, certificate.der())
                        })
                    })
                    .map_err(token_err)?;
                None
            }
            (KeyTarget::Soft, None) | (KeyTarget::Card, _) => None,
        };

        lock(journal).record_verified(
            device,
            &StoredCertificate {
                serial_hex: &serial_hex,
                der: certificate.der(),
                sha256: &facts.sha256,
                not_before: &facts.not_before,
                not_after: &facts.not_after,
                p12_password: password.as_deref().map(String::as_str),
            },
            &self.operator,
        )?;
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
        let chain_pem: String = self.chain.iter().map(|der| pem::certificate(der)).collect();
        write_atomically(&folder.join("chain.pem"), chain_pem.as_bytes(), 0o644)?;

        // Streamed page by page from the journal: memory stays flat however large the order.
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

        let soft = matches!(self.target, KeyTarget::Soft);
        if soft {
            let path = password_manifest(&self.out, self.order);
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
        }
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
        lock(journal).record_delivery(
            self.order,
            &folder.display().to_string(),
            &uploaded_at,
            purge_due.as_deref(),
            &self.operator,
        )?;
        report.delivery = Some(folder.display().to_string());
        report.purge_due = purge_due;
        Ok(())
    }
}
