//! A CA directory: the CA configuration, the root and issuing certificates
//! and the issuing key reference, as `certmint ca init` lays them out.
//!
//! ```text
//! ca/
//!   certmint-ca.toml   configuration (profiles, URLs, key reference)
//!   root.pem           self-signed root certificate
//!   root-key.pem       root key, PKCS#8, mode 0600 (move it offline)
//!   issuing.pem        issuing CA certificate, signed by the root
//!   issuing-key.pem    issuing key, PKCS#8, mode 0600
//! ```

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use der::DateTime;
use zeroize::Zeroizing;

use crate::ids::IdMode;
use crate::issue::{CertificateAuthority, IssueError};
use crate::keyref::{KeyRef, KeyRefError, Unlock};
use crate::pem::{self, der_from_pem_or_der};
use crate::profile::{CaConfig, Profile, ProfileError, ProfileName, Subject, SubjectInput};
use crate::signer::{KeyType, Signer, SignerError, SoftwareSigner};

/// The configuration file's name inside a CA directory.
pub const CONFIG_FILE: &str = "certmint-ca.toml";
/// The root key file's name inside a CA directory.
pub const ROOT_KEY_FILE: &str = "root-key.pem";

/// Why a CA directory could not be created or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// `ca init` would overwrite a file.
    #[error("{0} already exists; certmint never overwrites CA files")]
    AlreadyExists(PathBuf),
    /// A file could not be read or written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The reason.
        reason: String,
    },
    /// A certificate file is not a certificate.
    #[error("{path} is not a certificate: {reason}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// The reason.
        reason: String,
    },
    /// A profile or subject problem.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// Issuance failed.
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// A key reference problem.
    #[error(transparent)]
    KeyRef(#[from] KeyRefError),
    /// A key problem.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// An input file is unreadable or over its cap.
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
}

impl CaError {
    /// What kind of failure this is: a wrapped error's own kind.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            CaError::Profile(e) => e.kind(),
            CaError::Issue(e) => e.kind(),
            CaError::KeyRef(e) => e.kind(),
            CaError::Signer(e) => e.kind(),
            CaError::Input(e) => e.kind(),
            CaError::AlreadyExists(_) | CaError::Io { .. } | CaError::Certificate { .. } => {
                ErrorKind::Failure
            }
        }
    }
}

/// Where a CA key comes from at `ca init`.
#[derive(Debug, Clone)]
pub enum CaKey {
    /// Generate a software key of this type (written as PKCS#8, mode 0600).
    Generate(KeyType),
    /// Use an existing key, by reference (e.g. a `pkcs11:` URI of a key made
    /// by `certmint hsm keygen`); the reference text goes into the configuration.
    Existing(String),
}

/// What `ca init` creates.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The root key.
    pub root_key: CaKey,
    /// The issuing key.
    pub issuing_key: CaKey,
    /// How to unlock existing keys.
    pub unlock: Unlock,
    /// The root's subject (common_name, organization, country).
    pub root_subject: SubjectInput,
    /// The issuing CA's subject.
    pub issuing_subject: SubjectInput,
    /// The configuration to write (profiles, URLs).
    pub config: CaConfig,
    /// When both certificates start.
    pub not_before: DateTime,
}

impl InitOptions {
    /// A Mali Mühür-style CA: P-384 keys, the Kamu SM issuer name and profiles.
    pub fn kamu_sm_defaults(not_before: DateTime) -> Self {
        Self {
            root_key: CaKey::Generate(KeyType::EcP384),
            issuing_key: CaKey::Generate(KeyType::EcP384),
            unlock: Unlock::default(),
            root_subject: SubjectInput {
                common_name: Some("Mali Mühür Kök Sertifika Hizmet Sağlayıcısı - Sürüm 1".into()),
                ..Default::default()
            },
            issuing_subject: SubjectInput {
                common_name: Some(crate::profile::MALI_MUHUR_ISSUER_CN.into()),
                ..Default::default()
            },
            config: CaConfig::kamu_sm_defaults(),
            not_before,
        }
    }
}

/// The files `ca init` wrote.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// Every file written, in order.
    pub files: Vec<PathBuf>,
    /// The root certificate's DER.
    pub root_der: Vec<u8>,
    /// The issuing certificate's DER.
    pub issuing_der: Vec<u8>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> CaError + '_ {
    move |e| CaError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// Writes a new file with `mode`; never replaces an existing one.
pub fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => CaError::AlreadyExists(path.to_path_buf()),
            _ => CaError::Io {
                path: path.to_path_buf(),
                reason: e.to_string(),
            },
        })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io_error(path))
}

/// The PKCS#8 PEM of a key generated at `ca init`, to be written with mode 0600.
type KeyFile = Zeroizing<Vec<u8>>;

/// A CA key ready to sign, and its key file when it was generated here.
fn ca_key(key: &CaKey, unlock: &Unlock) -> Result<(Box<dyn Signer>, Option<KeyFile>), CaError> {
    match key {
        CaKey::Generate(key_type) => {
            let signer = SoftwareSigner::generate(*key_type)?;
            let pem = signer.to_pkcs8_pem()?;
            Ok((Box::new(signer), Some(pem)))
        }
        CaKey::Existing(reference) => Ok((
            KeyRef::parse(reference, Path::new("."))?.open(unlock)?,
            None,
        )),
    }
}

/// Creates a root and an issuing CA in `dir`. Everything is generated in
/// memory (or in the token) first; files are written only when all of it
/// succeeded, and a failed write removes what this call wrote.
pub fn init(dir: &Path, options: &InitOptions) -> Result<InitReport, CaError> {
    if dir.join(CONFIG_FILE).exists() {
        return Err(CaError::AlreadyExists(dir.join(CONFIG_FILE)));
    }
    let mut config = options.config.clone();
    if let CaKey::Existing(reference) = &options.issuing_key {
        config.ca.issuing_key = reference.clone();
    }
    let config = &config;
    let root_profile = Profile::from_config(ProfileName::RootCa, config)?;
    let issuing_profile = Profile::from_config(ProfileName::IssuingCa, config)?;
    let root_subject =
        Subject::from_input(&root_profile, &options.root_subject, IdMode::Production)?;
    let issuing_subject = Subject::from_input(
        &issuing_profile,
        &options.issuing_subject,
        IdMode::Production,
    )?;

    // (path, contents, mode) of every file, decided before anything is written.
    let mut files: Vec<(PathBuf, Zeroizing<Vec<u8>>, u32)> = Vec::new();
    let (root_signer, root_key_pem) = ca_key(&options.root_key, &options.unlock)?;
    let root = CertificateAuthority::create_root(
        root_signer,
        &root_profile,
        &root_subject,
        options.not_before,
    )?;
    let (issuing_signer, issuing_key_pem) = ca_key(&options.issuing_key, &options.unlock)?;
    let issuing = root.issue(
        &issuing_profile,
        &issuing_subject,
        crate::issue::SubjectKey::checked(issuing_signer.public_key_der())?,
        options.not_before,
    )?;
    // The issuing certificate must work as a CA before anything is written.
    CertificateAuthority::new(issuing_signer, issuing.der().to_vec())?;

    let text = |s: String| Zeroizing::new(s.into_bytes());
    files.push((dir.join(CONFIG_FILE), text(config.to_toml()), 0o644));
    files.push((
        dir.join(&config.ca.root_certificate),
        text(pem::certificate(root.certificate_der())),
        0o644,
    ));
    if let Some(key) = root_key_pem {
        files.push((dir.join(ROOT_KEY_FILE), key, 0o600));
    }
    files.push((
        dir.join(&config.ca.issuing_certificate),
        text(issuing.to_pem()),
        0o644,
    ));
    if let Some(key) = issuing_key_pem {
        files.push((dir.join(&config.ca.issuing_key), key, 0o600));
    }
    if let Some((existing, _, _)) = files.iter().find(|(p, _, _)| p.exists()) {
        return Err(CaError::AlreadyExists(existing.clone()));
    }
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut written = Vec::new();
    for (path, bytes, mode) in &files {
        if let Err(e) = write_new_file(path, bytes, *mode) {
            for done in &written {
                let _ = std::fs::remove_file(done);
            }
            return Err(e);
        }
        written.push(path.clone());
    }
    Ok(InitReport {
        files: written,
        root_der: root.certificate_der().to_vec(),
        issuing_der: issuing.der().to_vec(),
    })
}

/// A CA directory opened for issuance.
#[derive(Debug)]
pub struct CaDirectory {
    /// The directory.
    pub dir: PathBuf,
    /// Its configuration.
    pub config: CaConfig,
    /// The issuing CA, key opened.
    pub ca: CertificateAuthority,
    /// The root certificate's DER.
    pub root_der: Vec<u8>,
}

/// Reads a certificate file (PEM or DER) and returns its DER.
pub fn read_certificate(path: &Path) -> Result<Vec<u8>, CaError> {
    let bytes = crate::input::read_file(path)?;
    let der =
        der_from_pem_or_der(&bytes, "CERTIFICATE").map_err(|reason| CaError::Certificate {
            path: path.to_path_buf(),
            reason,
        })?;
    use der::Decode;
    x509_cert::Certificate::from_der(&der).map_err(|e| CaError::Certificate {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Ok(der)
}

impl CaDirectory {
    /// Opens `dir`: reads the configuration and certificates, parses the key
    /// reference (`key_override` replaces the configured one) and opens the
    /// key, unlocking a token key with `unlock`.
    pub fn open(dir: &Path, key_override: Option<&str>, unlock: &Unlock) -> Result<Self, CaError> {
        let config = CaConfig::load(&dir.join(CONFIG_FILE))?;
        // A configured key path is relative to the CA directory; one the
        // operator types is relative to where they typed it.
        let key_ref = match key_override {
            Some(reference) => KeyRef::parse(reference, Path::new("."))?,
            None => KeyRef::parse(&config.ca.issuing_key, dir)?,
        };
        let issuing_der = read_certificate(&dir.join(&config.ca.issuing_certificate))?;
        let root_der = read_certificate(&dir.join(&config.ca.root_certificate))?;
        let ca = CertificateAuthority::new(key_ref.open(unlock)?, issuing_der)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            ca,
            root_der,
        })
    }

    /// The issuing and root certificates as one PEM chain.
    pub fn chain_pem(&self) -> String {
        pem::certificate(self.ca.certificate_der()) + &pem::certificate(&self.root_der)
    }
}
