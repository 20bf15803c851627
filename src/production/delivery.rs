//! The delivery of a finished order: the folder with every certificate
//! (checked against the journal's record and written where a crash lost
//! it), the
//! manifests, the CA chain, and for a target that delivers key files the
//! PKCS#12 check and the separate password manifest; then the upload is
//! recorded.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use der::DateTime;

use super::files::{
    destroy_key_file, io, sync_file_system, write_atomically, write_certificate_files, AtomicFile,
};
use super::key_target::soft::{key_file_name, pending_key_file_name, PENDING_KEY_FILE_SUFFIX};
use super::key_target::TargetRun;
use super::{ProduceError, Production, ProductionReport};
use crate::journal::{DeliveryRecord, Journal, OrderId};
use crate::okc::PURGE_AFTER_BUSINESS_DAYS;
use crate::pem::{self, hex_colons};
use crate::pkcs11::token::lock;

/// What the manifest says of a certificate.
pub struct CertificateFacts {
    /// SHA-256 of the DER, hex with colons.
    pub sha256: String,
    /// notBefore.
    pub not_before: String,
    /// notAfter.
    pub not_after: String,
}

impl CertificateFacts {
    /// The facts of the certificate `der` valid over `validity` (notBefore,
    /// notAfter), known without decoding it again.
    pub fn of_der(der: &[u8], validity: (DateTime, DateTime)) -> Self {
        CertificateFacts {
            sha256: hex_colons(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref()),
            not_before: validity.0.to_string(),
            not_after: validity.1.to_string(),
        }
    }
}

/// The folder of an order's delivery.
pub fn delivery_folder(out: &Path, order: OrderId) -> PathBuf {
    out.join(format!("order-{order}"))
}

/// The PIN letter manifest of a card delivery whose cards got their own
/// PINs and PUKs: the input of the order's PIN mailer.
pub fn pin_letter_manifest(out: &Path, order: OrderId) -> PathBuf {
    out.join(format!("order-{order}.pins.csv"))
}

/// The separate password manifest of a soft delivery.
pub fn password_manifest(out: &Path, order: OrderId) -> PathBuf {
    out.join(format!("order-{order}.passwords.csv"))
}
impl Production<'_> {
    /// Writes the delivery folder: manifest (CSV and JSON), CA chain, and for
    /// soft deliveries the separate password manifest; records the upload.
    pub(crate) fn deliver(
        &self,
        journal: &Mutex<dyn Journal>,
        target: &dyn TargetRun,
        report: &mut ProductionReport,
    ) -> Result<(), ProduceError> {
        let folder = delivery_folder(&self.out, self.order);
        std::fs::create_dir_all(&folder).map_err(io(&folder))?;
        // Recorded absolute and without symbolic links: the purge finds the
        // delivery from any working directory, and only there.
        let folder = std::fs::canonicalize(&folder).map_err(io(&folder))?;
        // A target that hands over key files (soft: PKCS#12) delivers them
        // with their passwords apart, and has them purged.
        let soft = target.delivers_key_files();
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
                write_certificate_files(&certs, &record.device_serial, &record.der)?;
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
                    let line = zeroize::Zeroizing::new(format!(
                        "{serial},p12/{},{password}\n",
                        key_file_name(&serial)
                    ));
                    passwords.write(line.as_bytes())?;
                }
            }
            passwords.commit()?;
            report.passwords = Some(path.display().to_string());
            passwords_path = Some(path.display().to_string());
        }
        // Any card of the order with its own PIN on record gets its letter,
        // whatever this run's PIN policy: a run resumed with the order's
        // one PIN must not strand the PINs an earlier run set.
        let pin_letters = if target.delivers_pin_letters()
            || !lock(journal).card_secrets(self.order, 0, 1)?.is_empty()
        {
            Some(self.write_pin_letters(journal)?)
        } else {
            None
        };
        // The certificate files (written without fsync) and the rest of the
        // folder are durable before the upload is recorded.
        sync_file_system(&folder)?;
        let uploaded = time::OffsetDateTime::now_utc();
        let uploaded_at = crate::timestamp::format(uploaded);
        let purge_due = if soft || pin_letters.is_some() {
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
        if let Some(manifest) = &pin_letters {
            // Before the delivery: a crash between the two leaves the order
            // produced, and the next run writes the manifest again.
            let manifest = manifest.display().to_string();
            lock(journal).record_pin_letters(
                self.order,
                &manifest,
                &uploaded_at,
                &self.operator,
            )?;
            report.pin_letters = Some(manifest);
        }
        lock(journal).record_delivery(
            self.order,
            &DeliveryRecord {
                folder: &folder_text,
                passwords: passwords_path.as_deref(),
                uploaded_at: &uploaded_at,
                purge_due: purge_due.as_deref().filter(|_| soft),
            },
            &self.operator,
        )?;
        report.delivery = Some(folder.display().to_string());
        report.purge_due = purge_due;
        Ok(())
    }

    /// Writes the PIN letter manifest beside the delivery folder; returns
    /// its absolute path.
    fn write_pin_letters(&self, journal: &Mutex<dyn Journal>) -> Result<PathBuf, ProduceError> {
        let root = std::fs::canonicalize(&self.out).map_err(io(&self.out))?;
        let path = pin_letter_manifest(&root, self.order);
        write_pin_letter_manifest(journal, self.order, &path)?;
        Ok(path)
    }

    /// Puts every recorded PKCS#12 file under its delivered name and
    /// refuses a soft delivery whose files are not all there as regular
    /// files: the password manifest would list keys the manufacturer never
    /// gets, and the journal would call it delivered.
    ///
    /// A file still under its pending name holding the recorded
    /// certificate (a crash came between the record and the rename) is
    /// renamed into place, over whatever the delivered name holds (a file
    /// of an intent voided since, or one that is not certmint's). Every
    /// other pending file holds a key whose certificate the journal never
    /// recorded (an intent voided, a producer whose lease was taken over):
    /// it is shredded, never delivered.
    fn check_pkcs12_files(
        &self,
        journal: &Mutex<dyn Journal>,
        folder: &Path,
    ) -> Result<(), ProduceError> {
        let p12_dir = folder.join("p12");
        let is_file =
            |path: &Path| std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_file());
        // Paged from the journal and only the first names kept: memory
        // stays flat however large the order.
        let (mut missing, mut shown) = (0usize, Vec::new());
        let mut after = 0;
        loop {
            let page = lock(journal).pkcs12_serials(self.order, after, 1000)?;
            let Some((last, _)) = page.last() else { break };
            after = *last;
            for (_, file) in page {
                let name = key_file_name(&file.device_serial);
                let delivered = p12_dir.join(&name);
                if let Some(serial) = &file.certificate_serial {
                    let pending = p12_dir.join(pending_key_file_name(&file.device_serial, serial));
                    if is_file(&pending) {
                        match std::fs::rename(&pending, &delivered) {
                            Ok(()) => continue,
                            // Its producer published it meanwhile.
                            Err(e)
                                if e.kind() == std::io::ErrorKind::NotFound
                                    && is_file(&delivered) => {}
                            Err(e) => return Err(io(&delivered)(e)),
                        }
                    }
                }
                if is_file(&delivered) {
                    continue;
                }
                missing += 1;
                if shown.len() < 10 {
                    shown.push(name);
                }
            }
        }
        if missing == 0 {
            return shred_unrecorded_key_files(&p12_dir);
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

/// Shreds the pending PKCS#12 files left in `p12_dir` once every recorded
/// one has its delivered name: their certificates are on no record, and
/// their keys must not travel with the delivery.
fn shred_unrecorded_key_files(p12_dir: &Path) -> Result<(), ProduceError> {
    let entries = match std::fs::read_dir(p12_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        entries => entries.map_err(io(p12_dir))?,
    };
    for entry in entries {
        let path = entry.map_err(io(p12_dir))?.path();
        let pending = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.ends_with(PENDING_KEY_FILE_SUFFIX));
        if pending {
            destroy_key_file(&path)?;
        }
    }
    Ok(())
}

/// Writes `order`'s PIN letter manifest at `path`, mode 0600 from its
/// creation and renamed into place whole: one line per card that carries
/// an issued certificate of the order and got its own PIN and PUK, paged
/// from the journal (memory stays flat however large the order).
fn write_pin_letter_manifest(
    journal: &Mutex<dyn Journal>,
    order: OrderId,
    path: &Path,
) -> Result<(), ProduceError> {
    let mut manifest = AtomicFile::create(path, 0o600)?;
    manifest.write(b"device_serial,certificate_serial,reader,pin,puk\n")?;
    let mut after = 0;
    loop {
        let page = lock(journal).card_secrets(order, after, 1000)?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (_, card) in page {
            let line = zeroize::Zeroizing::new(format!(
                "{},{},{},{},{}\n",
                card.device_serial,
                card.certificate_serial,
                csv_field(&card.reader),
                card.pin.expose(),
                card.puk.expose()
            ));
            manifest.write(line.as_bytes())?;
        }
    }
    manifest.commit()
}

/// Writes a card order's PIN letter manifest again, where the journal
/// recorded it, from the PINs and PUKs the journal holds: for a manifest
/// lost before the purge. An existing file is never overwritten, the purge
/// deadline stays as it was, and the rewrite is audited. Returns the path.
pub fn rewrite_pin_letters(
    journal: &Mutex<dyn Journal>,
    order: OrderId,
    operator: &str,
) -> Result<PathBuf, ProduceError> {
    let refuse = |reason: String| ProduceError::Order { order, reason };
    let recorded = lock(journal)
        .unpurged_pin_letters()?
        .into_iter()
        .find(|letters| letters.order == order)
        .ok_or_else(|| {
            refuse(
                "the journal holds no PIN letters of this order: it is not a delivered card order \
                 whose cards got their own PINs, or its PIN letters were purged"
                    .into(),
            )
        })?;
    let path = PathBuf::from(&recorded.manifest);
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err(refuse(format!(
            "{} exists; a PIN letter manifest is never overwritten (move it away to write it again)",
            path.display()
        )));
    }
    write_pin_letter_manifest(journal, order, &path)?;
    lock(journal).audit(
        operator,
        "order.pin-letters-rewritten",
        &format!("order {order}"),
        &format!(
            "PIN letter manifest {} written again from the journal (mode 0600)",
            path.display()
        ),
    )?;
    Ok(path)
}

/// A CSV field (RFC 4180): quoted, inner quotes doubled, when it holds a
/// separator, a quote or a line break (a reader name may).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}
