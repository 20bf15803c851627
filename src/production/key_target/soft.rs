//! The soft target: device keys generated in memory, each delivered with
//! its certificate and the CA chain in a PKCS#12 file under a random
//! password, which goes to the journal and the separate password manifest.

use std::path::Path;
use zeroize::Zeroizing;

use super::pkcs12::{self, CaChain};
use super::{DeviceKey, KeyTarget, TargetRun};
use crate::issue::{IssueError, IssuedCertificate, SubjectKey};
use crate::journal::{Device, DeviceState, Target};
use crate::production::files::{destroy_key_file, io, sync_folder, write_synced};
use crate::production::pipeline::Record;
use crate::production::ProduceError;
use crate::signer::{KeyType, Signer, SignerError, SoftwareSigner};

/// Keys in memory, delivered as PKCS#12.
pub struct SoftTarget {
    /// The CA chain packed into every PKCS#12, parsed once for the run.
    chain: CaChain,
}

impl SoftTarget {
    /// A soft target whose PKCS#12 files carry `chain` (DER, issuing CA first).
    pub fn new(chain: &[Vec<u8>]) -> Result<Self, ProduceError> {
        let chain = CaChain::parse(chain).map_err(|reason| ProduceError::Io {
            path: "CA chain".into(),
            reason,
        })?;
        Ok(Self { chain })
    }
}

/// A key generated in memory, until it is packed in its PKCS#12.
pub struct SoftKey {
    key: SoftwareSigner,
}

impl DeviceKey for SoftKey {
    fn spki(&self) -> &[u8] {
        self.key.public_key_der()
    }

    fn subject_key(&self) -> Result<SubjectKey<'_>, SignerError> {
        // Generated here: valid by construction, not checked again.
        Ok(SubjectKey::generated(&self.key))
    }
}

/// A device's PKCS#12 file and its password.
pub struct Pkcs12File {
    bytes: Vec<u8>,
    password: Zeroizing<String>,
    /// The serial (hex) of the certificate it holds: names the file while
    /// it waits for the journal's record.
    certificate_serial: String,
}

/// The end of the name of a PKCS#12 file waiting for its device's record:
/// a key file certmint wrote, which delivery either renames into place
/// (the journal recorded its certificate) or shreds (it never will).
pub const PENDING_KEY_FILE_SUFFIX: &str = ".p12.tmp";

/// The name of `device`'s PKCS#12 holding the certificate
/// `certificate_serial` until the journal records it: one name per
/// certificate, so two producers of one device (one of them stale) never
/// write the same file.
pub fn pending_key_file_name(device: &str, certificate_serial: &str) -> String {
    format!("{device}.{certificate_serial}{PENDING_KEY_FILE_SUFFIX}")
}

/// The delivered name of `device`'s PKCS#12.
pub fn key_file_name(device: &str) -> String {
    format!("{device}.p12")
}

/// Where `written` waits for its device's record.
fn pending_path(folder: &Path, device: &Device, written: &Pkcs12File) -> std::path::PathBuf {
    folder.join("p12").join(pending_key_file_name(
        device.name.as_str(),
        &written.certificate_serial,
    ))
}

impl TargetRun for SoftTarget {
    fn kind(&self) -> Target {
        Target::Soft
    }

    fn delivers_key_files(&self) -> bool {
        true
    }

    fn delivery_folders(&self) -> &'static [&'static str] {
        &["p12"]
    }

    /// A key file under the device's delivered name while its intent is
    /// voided holds no recorded certificate's key (one written in place by
    /// an earlier certmint, or not certmint's at all): shredded. Nobody else
    /// writes that name now: it is taken only after the device's record,
    /// and this device has none. (A device certified before, whose reissue
    /// left the intent, keeps its file: it holds the certificate in force.)
    fn remove_unrecorded(&self, folder: &Path, device: &Device) -> Result<u64, ProduceError> {
        if matches!(device.state, DeviceState::Verified | DeviceState::Delivered) {
            return Ok(0);
        }
        destroy_key_file(&folder.join("p12").join(key_file_name(device.name.as_str())))?;
        Ok(0)
    }
}

impl KeyTarget for SoftTarget {
    type Key = SoftKey;
    type Written = Pkcs12File;

    fn key_note(&self) -> String {
        "software key generated in memory".into()
    }

    fn generate(
        &self,
        _record: &dyn Record,
        device: &Device,
        key_type: KeyType,
    ) -> Result<SoftKey, ProduceError> {
        SoftwareSigner::generate(key_type)
            .map(|key| SoftKey { key })
            .map_err(|error| ProduceError::Key {
                device: device.name.to_string(),
                error,
            })
    }

    fn write_back(
        &self,
        device: &Device,
        key: SoftKey,
        certificate: &IssuedCertificate,
    ) -> Result<Pkcs12File, ProduceError> {
        let key_err = |error: SignerError| ProduceError::Key {
            device: device.name.to_string(),
            error,
        };
        let password = pkcs12::random_password().map_err(|e| ProduceError::Issue {
            device: device.name.to_string(),
            error: IssueError::Entropy(e),
        })?;
        let pkcs8 = key.key.to_pkcs8_der().map_err(key_err)?;
        let key_id =
            crate::pkcs11::keys::key_id(key.spki()).map_err(|error| ProduceError::Token {
                device: device.name.to_string(),
                error,
            })?;
        let bytes = pkcs12::build(
            device.name.as_str(),
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
        Ok(Pkcs12File {
            bytes,
            password,
            certificate_serial: crate::pem::hex(certificate.serial()),
        })
    }

    /// The PKCS#12 is the only copy of the device key: each file is
    /// fsynced, and its name with one fsync of the `p12` folder per chunk.
    /// It is written under a name of its own certificate
    /// ([`pending_key_file_name`]) and takes the delivered name only once
    /// the journal recorded the device ([`KeyTarget::publish`]): a producer
    /// whose lease was taken over while it froze never writes over the file
    /// of the producer that took the device over.
    fn store(
        &self,
        folder: &Path,
        device: &Device,
        _certificate_der: &[u8],
        written: &Pkcs12File,
    ) -> Result<(), ProduceError> {
        write_synced(
            &pending_path(folder, device, written),
            &written.bytes,
            0o600,
        )
    }

    fn chunk_stored(&self, folder: &Path) -> Result<(), ProduceError> {
        sync_folder(&folder.join("p12"))
    }

    /// The rename is not synced here: the delivery finishes a rename a
    /// crash lost (the file under its pending name holds the recorded
    /// certificate) and syncs the file system before recording the upload.
    fn publish(
        &self,
        folder: &Path,
        device: &Device,
        written: &Pkcs12File,
    ) -> Result<(), ProduceError> {
        let pending = pending_path(folder, device, written);
        let delivered = folder.join("p12").join(key_file_name(device.name.as_str()));
        match std::fs::rename(&pending, &delivered) {
            // The delivery renamed it already: a producer frozen between
            // the record and here, whose order another finished meanwhile.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && std::fs::symlink_metadata(&delivered).is_ok_and(|m| m.is_file()) =>
            {
                Ok(())
            }
            renamed => renamed.map_err(io(&delivered)),
        }
    }

    fn discard(&self, folder: &Path, device: &Device, written: &Pkcs12File) {
        let pending = pending_path(folder, device, written);
        // Best effort: a file left behind is shredded by the delivery or
        // the purge, which know it by its name.
        if let Err(e) = destroy_key_file(&pending) {
            tracing::warn!("{}: not removed: {e}", pending.display());
        }
    }

    fn key_file_password<'w>(&self, written: &'w Pkcs12File) -> Option<&'w str> {
        Some(written.password.as_str())
    }
}
