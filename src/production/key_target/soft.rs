//! The soft target: device keys generated in memory, each delivered with
//! its certificate and the CA chain in a PKCS#12 file under a random
//! password, which goes to the journal and the separate password manifest.

use std::path::Path;
use zeroize::Zeroizing;

use super::pkcs12::{self, CaChain};
use super::{DeviceKey, KeyTarget, TargetRun};
use crate::issue::{IssueError, IssuedCertificate, SubjectKey};
use crate::journal::{Device, Target};
use crate::production::files::{sync_folder, write_synced};
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
        Ok(Pkcs12File { bytes, password })
    }

    /// The PKCS#12 is the only copy of the device key: each file is
    /// fsynced, and its name with one fsync of the `p12` folder per chunk.
    fn store(
        &self,
        folder: &Path,
        device: &Device,
        _certificate_der: &[u8],
        written: &Pkcs12File,
    ) -> Result<(), ProduceError> {
        // Written in place, not renamed: until this device is recorded
        // verified, a crash leaves it to be produced again, and the new
        // file replaces whatever this one became.
        write_synced(
            &folder.join("p12").join(format!("{}.p12", device.name)),
            &written.bytes,
            0o600,
        )
    }

    fn chunk_stored(&self, folder: &Path) -> Result<(), ProduceError> {
        sync_folder(&folder.join("p12"))
    }

    fn key_file_password<'w>(&self, written: &'w Pkcs12File) -> Option<&'w str> {
        Some(written.password.as_str())
    }
}
