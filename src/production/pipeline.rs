//! The one pipeline every certificate of an order goes through, a chunk of
//! devices at a time:
//!
//! ```text
//! key target: generate ─► prepare + lint ─► intents (one durable record)
//!   ─► lease confirmed ─► CA signs ─► verify ─► key target: write back
//!   ─► key target: store ─► journal: verified
//!   ─► key target: publish ─► certificate files
//! ```
//!
//! [`Pipeline::sign_chunk`] runs up to the write-back, [`Pipeline::store_chunk`]
//! the rest. `okc produce` and `hsm provision --order` run them threaded
//! ([`Production::run`]: a feeder, N workers, one storer), the card station
//! runs them for one device per card, and `certmint bench` measures
//! `sign_chunk` with its intents kept in memory.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};

use super::delivery::CertificateFacts;
use super::files::{io, write_new_certificate_files};
use super::key_target::{DeviceKey, KeyTarget};
use super::{Certified, ProduceError, Production, ProductionReport};
use der::DateTime;

use super::recovery::void_left_intents;
use crate::issue::{CertificateAuthority, IssueError, PreparedCertificate};
use crate::journal::{
    Device, Intent, Journal, JournalError, LeaseHolder, OrderId, StoredCertificate, VerifiedDevice,
};
use crate::pem::hex;
use crate::pkcs11::token::lock;
use crate::profile::Profile;
use crate::signer::KeyType;

/// Devices a worker takes at a time. Their intents are recorded in one
/// transaction and their certificates in another: two journal fsyncs per
/// chunk instead of two per device. A crash leaves at most the chunks in
/// flight as intents, which the next run voids. (`certmint bench` measures
/// the pipeline in chunks of this size too.)
pub const CHUNK: usize = 32;

/// How long a producer with nothing left to claim waits before it looks
/// again, while other producers still hold devices of the order.
pub const CLAIM_AGAIN_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// Where the pipeline's durable steps before signing go: the journal in
/// production ([`JournalRecord`]); memory in the bench.
pub trait Record: Sync {
    /// A device's key now exists on its target (hsm), before it is used.
    fn record_key(&self, device: &Device, key_id_hex: &str) -> Result<(), ProduceError>;

    /// A chunk's intents, durable together before any is signed.
    fn record_intents(&self, intents: &[Intent<'_>]) -> Result<(), ProduceError>;

    /// Refuses when this producer no longer holds the order's lease.
    fn confirm_lease(&self) -> Result<(), ProduceError>;
}

/// The journal as the pipeline's record, for one order and operator.
pub struct JournalRecord<'a> {
    /// The journal.
    pub journal: &'a Mutex<dyn Journal>,
    /// The order produced.
    pub order: OrderId,
    /// Who runs it.
    pub operator: &'a str,
}

impl Record for JournalRecord<'_> {
    fn record_key(&self, device: &Device, key_id_hex: &str) -> Result<(), ProduceError> {
        Ok(lock(self.journal).record_key(device, key_id_hex, self.operator)?)
    }

    fn record_intents(&self, intents: &[Intent<'_>]) -> Result<(), ProduceError> {
        Ok(lock(self.journal).record_intents(intents, self.operator)?)
    }

    fn confirm_lease(&self) -> Result<(), ProduceError> {
        Ok(lock(self.journal).confirm_lease(self.order)?)
    }
}

/// What the pipeline needs to know of an order to certify its devices.
pub struct Pipeline<'a> {
    /// The order.
    pub order: OrderId,
    /// The issuing CA.
    pub ca: &'a CertificateAuthority,
    /// The order's profile.
    pub profile: &'a Profile,
    /// Who the certificates certify.
    pub certified: &'a Certified,
    /// The devices' key type.
    pub key_type: KeyType,
}

/// A device whose certificate is signed, checked and written back: ready
/// to store.
pub struct SignedDevice<W> {
    /// The device.
    pub device: Device,
    /// The certificate serial, hex.
    pub serial_hex: String,
    /// The certificate, DER.
    pub certificate_der: Vec<u8>,
    /// Its notBefore and notAfter, for the manifest and the record.
    pub validity: (DateTime, DateTime),
    /// What the key target's write-back left for its store.
    pub written: W,
}

/// A chunk that failed, and the intents it had recorded by then (their
/// certificates were never stored: a caller that retries a device in the
/// same run voids them; a run that stops leaves them to recovery).
pub struct ChunkFailure {
    /// What failed (boxed: a chunk's failure travels through every step's result).
    pub error: Box<ProduceError>,
    /// The certificate serials (hex) whose intents were recorded.
    pub intents: Vec<String>,
}

impl From<ProduceError> for ChunkFailure {
    fn from(error: ProduceError) -> Self {
        Self {
            error: Box::new(error),
            intents: Vec::new(),
        }
    }
}

/// A device with its key and its linted TBS certificate: ready for its intent.
struct PreparedDevice<K> {
    device: Device,
    key: K,
    serial_hex: String,
    certificate: PreparedCertificate,
}

impl Pipeline<'_> {
    /// A chunk of devices up to their written-back certificates: keys and
    /// linted TBS for all, their intents in one durable record, then
    /// signing, verifying and write-back. Nothing is signed before every
    /// intent of the chunk is durable.
    pub fn sign_chunk<T: KeyTarget + ?Sized>(
        &self,
        record: &dyn Record,
        target: &T,
        devices: Vec<Device>,
    ) -> Result<Vec<SignedDevice<T::Written>>, ChunkFailure> {
        let prepared = devices
            .into_iter()
            .map(|device| self.prepare_device(record, target, device))
            .collect::<Result<Vec<_>, _>>()?;
        let key_note = target.key_note();
        let intents: Vec<Intent<'_>> = prepared
            .iter()
            .map(|p| Intent {
                device: &p.device,
                serial_hex: &p.serial_hex,
                tbs: p.certificate.tbs_der(),
                key_note: &key_note,
            })
            .collect();
        record.record_intents(&intents)?;
        drop(intents);
        let recorded: Vec<String> = prepared.iter().map(|p| p.serial_hex.clone()).collect();
        let failed = |error: ProduceError| ChunkFailure {
            error: Box::new(error),
            intents: recorded.clone(),
        };
        let mut keyed = Vec::with_capacity(prepared.len());
        let mut certificates = Vec::with_capacity(prepared.len());
        for p in prepared {
            keyed.push((p.device, p.key, p.serial_hex));
            certificates.push(p.certificate);
        }
        let Some((first, _, _)) = keyed.first() else {
            return Ok(Vec::new());
        };
        // Still this producer's order: one taken over while this one was
        // stopped between its intents and here gets no signatures from it.
        record.confirm_lease().map_err(&failed)?;
        // The key signed none of them: the chunk stops at its first device.
        let signed = self.ca.sign_all(certificates).map_err(|error| {
            failed(ProduceError::Issue {
                device: first.name.to_string(),
                error,
            })
        })?;
        keyed
            .into_iter()
            .zip(signed)
            .map(|((device, key, serial_hex), certificate)| {
                let issue_err = |error: IssueError| ProduceError::Issue {
                    device: device.name.to_string(),
                    error,
                };
                let certificate = certificate.map_err(issue_err)?;
                // Verify what was signed certifies this device's key.
                certificate.certifies(key.spki()).map_err(issue_err)?;
                let validity = certificate.validity().map_err(issue_err)?;
                let written = target.write_back(&device, key, &certificate)?;
                Ok(SignedDevice {
                    device,
                    serial_hex,
                    certificate_der: certificate.der().to_vec(),
                    validity,
                    written,
                })
            })
            .collect::<Result<Vec<_>, ProduceError>>()
            .map_err(failed)
    }

    /// A device's key on its target and its linted TBS certificate.
    fn prepare_device<T: KeyTarget + ?Sized>(
        &self,
        record: &dyn Record,
        target: &T,
        device: Device,
    ) -> Result<PreparedDevice<T::Key>, ProduceError> {
        let issue_err = |error: IssueError| ProduceError::Issue {
            device: device.name.to_string(),
            error,
        };
        let subject = self.certified.subject(self.order, &device.name)?;
        let key = target.generate(record, &device, self.key_type)?;
        let subject_key = key.subject_key().map_err(|error| ProduceError::Key {
            device: device.name.to_string(),
            error,
        })?;
        let certificate = self
            .ca
            .prepare(
                self.profile,
                &subject,
                subject_key,
                crate::issue::validity::now().map_err(issue_err)?,
            )
            .map_err(issue_err)?;
        let serial_hex = hex(certificate.serial());
        Ok(PreparedDevice {
            device,
            key,
            serial_hex,
            certificate,
        })
    }

    /// Stores a chunk of signed devices, then records them verified in one
    /// transaction, then publishes them. What must be durable before that
    /// record is what the key target's store makes durable (soft: the
    /// PKCS#12, the only copy of the device key, under a name of its own
    /// certificate; hsm: the certificate object in the token).
    ///
    /// Nothing takes a delivered name before the record: a producer whose
    /// lease was taken over while it stored (it froze past the lease's
    /// expiry) is refused by the journal, and the device's files stay those
    /// of the producer that took it over. The certificate files are written
    /// after the record, without fsync: the journal's verified record holds
    /// the same DER, and the delivery writes again any file a crash lost or
    /// tore, and syncs the file system before recording the upload.
    pub fn store_chunk<T: KeyTarget + ?Sized>(
        &self,
        journal: &Mutex<dyn Journal>,
        target: &T,
        folder: &Path,
        operator: &str,
        signed: &[SignedDevice<T::Written>],
    ) -> Result<(), ProduceError> {
        // Still this producer's order: no key file is written for one
        // taken over meanwhile.
        lock(journal).confirm_lease(self.order)?;
        for device in signed {
            target.store(
                folder,
                &device.device,
                &device.certificate_der,
                &device.written,
            )?;
        }
        target.chunk_stored(folder)?;
        // What the record and the manifest say of each certificate: made
        // here, on the storer's thread, beside the journal write it is for.
        let facts: Vec<CertificateFacts> = signed
            .iter()
            .map(|d| CertificateFacts::of_der(&d.certificate_der, d.validity))
            .collect();
        let verified: Vec<VerifiedDevice<'_>> = signed
            .iter()
            .zip(&facts)
            .map(|(d, facts)| VerifiedDevice {
                device: &d.device,
                certificate: StoredCertificate {
                    serial_hex: &d.serial_hex,
                    der: &d.certificate_der,
                    sha256: &facts.sha256,
                    not_before: &facts.not_before,
                    not_after: &facts.not_after,
                    p12_password: target.key_file_password(&d.written),
                },
            })
            .collect();
        let recorded = lock(journal).record_verified_devices(&verified, operator);
        if let Err(error) = recorded {
            // Only a refusal is known to have written nothing: after any
            // other failure the record may have committed, and what was
            // stored may be the only copy of a recorded key.
            if matches!(error, JournalError::LeaseLost { .. }) {
                for device in signed {
                    target.discard(folder, &device.device, &device.written);
                }
            }
            return Err(error.into());
        }
        let certs = folder.join("certs");
        for device in signed {
            target.publish(folder, &device.device, &device.written)?;
            write_new_certificate_files(
                &certs,
                device.device.name.as_str(),
                &device.certificate_der,
            )?;
        }
        Ok(())
    }
}

/// Keeps the first failure of a run; every thread stops at its next step.
fn keep_first_failure(failure: &Mutex<Option<ProduceError>>, error: ProduceError) {
    lock(failure).get_or_insert(error);
}

impl Production<'_> {
    /// The order's pending devices through the pipeline: a feeder pages
    /// them from the journal in chunks, workers sign chunks, one storer
    /// stores them. Both queues are bounded: memory stays flat however
    /// large the order.
    pub(crate) fn produce_devices<T>(
        &self,
        journal: &Mutex<dyn Journal>,
        pipeline: &Pipeline<'_>,
        target: &T,
        report: &mut ProductionReport,
    ) -> Result<(), ProduceError>
    where
        T: KeyTarget + Sync,
        T::Written: Send,
    {
        let folder = super::delivery_folder(&self.out, self.order);
        // The delivery folders, made once, not per device.
        for dir in std::iter::once("certs").chain(target.delivery_folders().iter().copied()) {
            let dir = folder.join(dir);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        let record = JournalRecord {
            journal,
            order: self.order,
            operator: &self.operator,
        };
        let produced = AtomicU64::new(0);
        let voided_now = AtomicU64::new(0);
        let failure: Mutex<Option<ProduceError>> = Mutex::new(None);
        // Two threads per session process, when the CA key signs in them.
        let threads = crate::signer::pipeline_threads(self.workers, self.ca.signer());
        // Feeder → workers (chunks of devices) → storer (chunks signed).
        let (send_devices, receive_devices) = sync_channel::<Vec<Device>>(threads * 2);
        // Owned by the workers alone: when the last one leaves (the storer
        // failed, or every worker did), the receiver goes with it and the
        // feeder's blocked send fails instead of waiting forever.
        let receive_devices = Arc::new(Mutex::new(receive_devices));
        let (send_signed, receive_signed) =
            sync_channel::<Vec<SignedDevice<T::Written>>>(threads * 2);
        std::thread::scope(|scope| {
            // The storer: files and token imports, then the verified records.
            // Its waits on fsync overlap the workers' signing.
            scope.spawn(|| {
                for signed in receive_signed {
                    if let Err(e) =
                        pipeline.store_chunk(journal, target, &folder, &self.operator, &signed)
                    {
                        keep_first_failure(&failure, e);
                        break; // the workers' next send fails: they stop
                    }
                    produced.fetch_add(signed.len() as u64, Ordering::SeqCst);
                    for _ in &signed {
                        (self.on_device)();
                    }
                }
            });
            for _ in 0..threads {
                let send_signed = send_signed.clone();
                let receive_devices = Arc::clone(&receive_devices);
                let (failure, record) = (&failure, &record);
                scope.spawn(move || loop {
                    let next = lock(&receive_devices).recv();
                    let Ok(devices) = next else { break };
                    if lock(failure).is_some() || self.stop.load(Ordering::SeqCst) {
                        // Drain without work: the feeder stops soon. A queued
                        // chunk has no intents yet, so skipping it is safe.
                        continue;
                    }
                    match pipeline.sign_chunk(record, target, devices) {
                        Ok(signed) => {
                            if send_signed.send(signed).is_err() {
                                break;
                            }
                        }
                        // Intents recorded are voided by the next run's recovery.
                        Err(e) => keep_first_failure(failure, *e.error),
                    }
                });
            }
            drop(send_signed);
            drop(receive_devices);
            // The feeder claims the order's pending devices a chunk at a
            // time: other producers may share the order, each device is
            // claimed by one. With nothing left to claim while others hold
            // devices, it waits: a producer that dies lets its devices go
            // when its lease is taken over, and this one takes them up.
            let holder = LeaseHolder::this_process(&self.operator);
            loop {
                if lock(&failure).is_some() || self.stop.load(Ordering::SeqCst) {
                    break;
                }
                // The journal's lock is given back before the intents are voided.
                let claim = lock(journal).claim_devices(self.order, &holder, CHUNK);
                let claimed = claim.map_err(ProduceError::from).and_then(|claim| {
                    let held_by_others = claim.held_by_others;
                    void_left_intents(journal, target, &folder, &self.operator, claim.devices)
                        .map(|(devices, voided)| (devices, voided, held_by_others))
                });
                let (chunk, voided, held_by_others) = match claimed {
                    Ok(claimed) => claimed,
                    Err(e) => {
                        keep_first_failure(&failure, e);
                        break;
                    }
                };
                voided_now.fetch_add(voided, Ordering::SeqCst);
                if chunk.is_empty() {
                    if held_by_others == 0 {
                        break;
                    }
                    std::thread::sleep(CLAIM_AGAIN_AFTER);
                    continue;
                }
                if send_devices.send(chunk).is_err() {
                    break;
                }
            }
            drop(send_devices);
        });
        report.produced_now = produced.load(Ordering::SeqCst);
        report.voided_intents += voided_now.load(Ordering::SeqCst);
        if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        report.stopped = self.stop.load(Ordering::SeqCst);
        Ok(())
    }
}
