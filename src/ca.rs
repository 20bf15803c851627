//! A CA directory: the CA configuration, the root certificate and one
//! issuing CA per product line (certificate and key reference), as
//! `certmint ca init` lays them out.
//!
//! ```text
//! ca/
//!   certmint-ca.toml      configuration (profiles, URLs, key references)
//!   root.pem              self-signed root certificate
//!   root-key.pem          root key, PKCS#8, mode 0600 (move it offline)
//!   issuing.pem           Mali Mühür issuing CA certificate, signed by the root
//!   issuing-key.pem       Mali Mühür issuing key, PKCS#8, mode 0600
//!   okc-issuing.pem       ÖKC issuing CA certificate, signed by the root
//!   okc-issuing-key.pem   ÖKC issuing key, PKCS#8, mode 0600
//! ```
//!
//! A directory without the ÖKC issuing CA (no `[okc_ca]` section) still
//! opens: its ÖKC certificates come from the Mali Mühür issuing CA, and
//! [`CaDirectory::shared_issuing_ca`] says so, until `certmint ca add-issuing
//! --line okc` adds one.

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
use crate::profile::{
    CaConfig, IssuingCaFiles, ProductLine, Profile, ProfileError, ProfileName, Subject,
    SubjectInput,
};
use crate::signer::{KeyType, Signer, SignerError, SoftwareSigner};

/// The configuration file's name inside a CA directory.
pub const CONFIG_FILE: &str = "certmint-ca.toml";
/// The root key file's name inside a CA directory.
pub const ROOT_KEY_FILE: &str = "root-key.pem";
/// Where `ca crl` writes CRLs inside a CA directory unless told otherwise.
pub const DEFAULT_CRL_FOLDER: &str = "crl";

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
    /// `ca add-issuing` for a product line that already has its issuing CA.
    #[error("{dir} already has a {line} issuing CA ({certificate}); certmint never replaces one")]
    IssuingCaExists {
        /// The CA directory.
        dir: PathBuf,
        /// The product line.
        line: ProductLine,
        /// Its certificate file.
        certificate: String,
    },
    /// `ca add-issuing --replace` for an issuing CA that is still in force.
    #[error("the {line} issuing CA of {dir} ({certificate}, serial {serial}) is neither revoked on record nor expired: certmint replaces only a retired CA. Revoke it first (`certmint revoke --ca-certificate {dir}/{certificate} --ca {dir} --reason …`)")]
    IssuingCaInForce {
        /// The CA directory.
        dir: PathBuf,
        /// The product line.
        line: ProductLine,
        /// Its certificate file.
        certificate: String,
        /// Its serial, hex.
        serial: String,
    },
    /// `ca add-issuing --replace` for a line with no issuing CA of its own.
    #[error("{dir} has no {line} issuing CA of its own to replace: add one with `certmint ca add-issuing --ca {dir} --line {line}` (without --replace)")]
    NothingToReplace {
        /// The CA directory.
        dir: PathBuf,
        /// The product line.
        line: ProductLine,
    },
    /// The journal could not be read or written.
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    /// A CRL was asked of a product line without an issuing CA of its own.
    #[error("{dir} has no {line} issuing CA of its own: its certificates come from the Mali Mühür issuing CA, whose CRL (--issuer mali-muhur) lists them")]
    NoIssuingCa {
        /// The CA directory.
        dir: PathBuf,
        /// The product line.
        line: ProductLine,
    },
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
            CaError::Journal(e) => e.kind(),
            CaError::IssuingCaExists { .. } | CaError::IssuingCaInForce { .. } => {
                ErrorKind::Conflict
            }
            CaError::NothingToReplace { .. } => ErrorKind::NotFound,
            CaError::NoIssuingCa { .. } => ErrorKind::NotFound,
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

/// One issuing CA to create: its key and its subject.
#[derive(Debug, Clone)]
pub struct IssuingCaOptions {
    /// The issuing key.
    pub key: CaKey,
    /// The issuing CA's subject (its name is the issuer name of every
    /// certificate it signs).
    pub subject: SubjectInput,
}

impl IssuingCaOptions {
    /// The shipped default name of `line`'s issuing CA, with a key of `key_type`.
    pub fn kamu_sm_defaults(line: ProductLine, key_type: KeyType) -> Self {
        let common_name = match line {
            ProductLine::MaliMuhur => crate::profile::MALI_MUHUR_ISSUER_CN,
            ProductLine::Okc => crate::profile::OKC_ISSUER_CN,
        };
        Self {
            key: CaKey::Generate(key_type),
            subject: SubjectInput {
                common_name: Some(common_name.into()),
                ..Default::default()
            },
        }
    }
}

/// What `ca init` creates.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The root key.
    pub root_key: CaKey,
    /// The Mali Mühür issuing CA.
    pub mali_muhur: IssuingCaOptions,
    /// The ÖKC issuing CA.
    pub okc: IssuingCaOptions,
    /// How to unlock existing keys.
    pub unlock: Unlock,
    /// The root's subject (common_name, organization, country).
    pub root_subject: SubjectInput,
    /// The configuration to write (profiles, URLs).
    pub config: CaConfig,
    /// When all three certificates start.
    pub not_before: DateTime,
}

impl InitOptions {
    /// A Kamu SM-style CA: P-384 keys, the Kamu SM root and issuer names and profiles.
    pub fn kamu_sm_defaults(not_before: DateTime) -> Self {
        Self {
            root_key: CaKey::Generate(KeyType::EcP384),
            mali_muhur: IssuingCaOptions::kamu_sm_defaults(ProductLine::MaliMuhur, KeyType::EcP384),
            okc: IssuingCaOptions::kamu_sm_defaults(ProductLine::Okc, KeyType::EcP384),
            unlock: Unlock::default(),
            root_subject: SubjectInput {
                common_name: Some("Mali Mühür Kök Sertifika Hizmet Sağlayıcısı - Sürüm 1".into()),
                ..Default::default()
            },
            config: CaConfig::kamu_sm_defaults(),
            not_before,
        }
    }
}

/// The files `ca init` or `ca add-issuing` wrote.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// Every file written, in order.
    pub files: Vec<PathBuf>,
    /// The root certificate's DER.
    pub root_der: Vec<u8>,
    /// Each issuing CA certificate made, with its product line.
    pub issuing: Vec<(ProductLine, Vec<u8>)>,
    /// Settings `ca add-issuing` gave the line's certificate profile, as
    /// `field = value`.
    pub filled_settings: Vec<String>,
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

/// A file to write: (path, contents, mode).
type PlannedFile = (PathBuf, Zeroizing<Vec<u8>>, u32);

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

/// The configured files of `line`'s issuing CA; `None` when the
/// configuration has none for ÖKC.
fn issuing_files(config: &CaConfig, line: ProductLine) -> Option<IssuingCaFiles> {
    match line {
        ProductLine::MaliMuhur => Some(IssuingCaFiles {
            certificate: config.ca.issuing_certificate.clone(),
            key: config.ca.issuing_key.clone(),
        }),
        ProductLine::Okc => config.okc_ca.clone(),
    }
}

/// The files of the issuing CA that signs `line`'s certificates, and
/// whether they are the Mali Mühür issuing CA's standing in for a line
/// without one of its own. The one place that decides which issuing CA a
/// product line uses.
fn issuing_files_or_shared(config: &CaConfig, line: ProductLine) -> (IssuingCaFiles, bool) {
    match issuing_files(config, line) {
        Some(files) => (files, false),
        None => (
            IssuingCaFiles {
                certificate: config.ca.issuing_certificate.clone(),
                key: config.ca.issuing_key.clone(),
            },
            true,
        ),
    }
}

/// Records `files` as `line`'s issuing CA files in `config`.
fn set_issuing_files(config: &mut CaConfig, line: ProductLine, files: IssuingCaFiles) {
    match line {
        ProductLine::MaliMuhur => {
            config.ca.issuing_certificate = files.certificate;
            config.ca.issuing_key = files.key;
        }
        ProductLine::Okc => config.okc_ca = Some(files),
    }
}

/// Where the CA certificates the root key signs go on record: the intent
/// before the key signs, the certificate after, and only then a file. A
/// certificate whose intent is on record but not the certificate never
/// reached a file (everything is made in memory first).
pub struct CaLedger<'a> {
    /// The journal.
    pub journal: &'a mut dyn crate::journal::Journal,
    /// Who is doing this, for the audit log.
    pub operator: &'a str,
}

impl CaLedger<'_> {
    /// Records the intent of `prepared` (`role`: `root`, or `issuing LINE`),
    /// has `signer_ca` sign it, and records the certificate.
    fn sign(
        &mut self,
        signer_ca: &CertificateAuthority,
        prepared: crate::issue::PreparedCertificate,
        role: &str,
    ) -> Result<crate::issue::IssuedCertificate, CaError> {
        use der::Decode;
        let subject = x509_cert::TbsCertificate::from_der(prepared.tbs_der())
            .map(|tbs| tbs.subject().to_string())
            .map_err(|e| IssueError::Encoding(e.to_string()))?;
        let issuer_key_id = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(
            signer_ca.signer().public_key_der(),
        )
        .map(|spki| crate::issue::tbs::key_identifier(&spki))
        .map_err(|e| IssueError::Encoding(e.to_string()))?;
        let serial_hex = pem::hex(prepared.serial());
        self.journal.record_ca_certificate_intent(
            &crate::journal::CaCertificateIntent {
                serial_hex: &serial_hex,
                issuer_key_id: &issuer_key_id,
                subject: &subject,
                role,
                tbs: prepared.tbs_der(),
            },
            self.operator,
        )?;
        let issued = signer_ca.sign(prepared)?;
        self.journal
            .record_ca_certificate_issued(&serial_hex, issued.der(), self.operator)?;
        Ok(issued)
    }
}

/// The names of `line`'s issuing CA files in `config` (the ÖKC defaults
/// for a line without any yet), its key's taken from `options` when it
/// names an existing key.
fn issuing_names(
    config: &CaConfig,
    line: ProductLine,
    options: &IssuingCaOptions,
) -> IssuingCaFiles {
    let mut names = issuing_files(config, line).unwrap_or_else(IssuingCaFiles::okc_defaults);
    if let CaKey::Existing(reference) = &options.key {
        names.key = reference.clone();
    }
    names
}

/// The files a new issuing CA of `line` writes into `dir`: its certificate,
/// and its key when generated here.
fn issuing_paths(
    config: &CaConfig,
    line: ProductLine,
    options: &IssuingCaOptions,
    dir: &Path,
) -> Vec<PathBuf> {
    let names = issuing_names(config, line, options);
    let mut paths = vec![dir.join(&names.certificate)];
    if matches!(options.key, CaKey::Generate(_)) {
        paths.push(dir.join(&names.key));
    }
    paths
}

/// Refuses when one of `paths` exists: certmint never overwrites CA files.
fn refuse_existing_paths(paths: &[PathBuf]) -> Result<(), CaError> {
    match paths
        .iter()
        .find(|path| std::fs::symlink_metadata(path).is_ok())
    {
        Some(existing) => Err(CaError::AlreadyExists(existing.clone())),
        None => Ok(()),
    }
}

/// A product line's issuing CA before the root signs its certificate: its
/// file names, profile, subject and key, every one checked, so that
/// nothing the root key signs fails for them afterwards.
struct IssuingCaPlan {
    line: ProductLine,
    names: IssuingCaFiles,
    profile: Profile,
    subject: Subject,
    signer: Box<dyn Signer>,
    key_pem: Option<KeyFile>,
}

impl IssuingCaPlan {
    /// Plans `line`'s issuing CA; the key reference of an existing key goes
    /// into `config`.
    fn new(
        config: &mut CaConfig,
        line: ProductLine,
        options: &IssuingCaOptions,
        unlock: &Unlock,
    ) -> Result<Self, CaError> {
        let names = issuing_names(config, line, options);
        set_issuing_files(config, line, names.clone());
        let profile = Profile::new(ProfileName::IssuingCa, &line.issuing_ca_config(config))?;
        let subject = Subject::from_input(&profile, &options.subject, IdMode::Production)?;
        let (signer, key_pem) = ca_key(&options.key, unlock)?;
        Ok(Self {
            line,
            names,
            profile,
            subject,
            signer,
            key_pem,
        })
    }

    /// Has `root` sign the certificate, on record through `ledger`, checks
    /// that it works as a CA, and returns it with the files to write into
    /// `dir`.
    fn sign(
        self,
        root: &CertificateAuthority,
        ledger: &mut CaLedger<'_>,
        not_before: DateTime,
        dir: &Path,
    ) -> Result<(Vec<u8>, Vec<PlannedFile>), CaError> {
        let prepared = root.prepare(
            &self.profile,
            &self.subject,
            crate::issue::SubjectKey::checked(self.signer.public_key_der())?,
            not_before,
        )?;
        let issued = ledger.sign(root, prepared, &format!("issuing {}", self.line))?;
        // The issuing certificate must work as a CA before anything is written.
        CertificateAuthority::new(self.signer, issued.der().to_vec())?;
        let mut files = vec![(
            dir.join(&self.names.certificate),
            Zeroizing::new(issued.to_pem().into_bytes()),
            0o644,
        )];
        if let Some(key) = self.key_pem {
            files.push((dir.join(&self.names.key), key, 0o600));
        }
        Ok((issued.der().to_vec(), files))
    }
}

/// Refuses `ca init` of `dir` when a file it would write exists already:
/// before any key is opened, any journal record made, anything signed.
pub fn refuse_existing(dir: &Path, options: &InitOptions) -> Result<(), CaError> {
    let config = &options.config;
    let mut paths = vec![dir.join(CONFIG_FILE), dir.join(&config.ca.root_certificate)];
    if matches!(options.root_key, CaKey::Generate(_)) {
        paths.push(dir.join(ROOT_KEY_FILE));
    }
    for (line, ca_options) in [
        (ProductLine::MaliMuhur, &options.mali_muhur),
        (ProductLine::Okc, &options.okc),
    ] {
        paths.extend(issuing_paths(config, line, ca_options, dir));
    }
    refuse_existing_paths(&paths)
}

/// Writes every planned file, none of which may exist; a failed write
/// removes what this call wrote.
fn write_all_new(dir: &Path, files: &[PlannedFile]) -> Result<Vec<PathBuf>, CaError> {
    if let Some((existing, _, _)) = files.iter().find(|(p, _, _)| p.exists()) {
        return Err(CaError::AlreadyExists(existing.clone()));
    }
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut written = Vec::new();
    for (path, bytes, mode) in files {
        if let Err(e) = write_new_file(path, bytes, *mode) {
            for done in &written {
                let _ = std::fs::remove_file(done);
            }
            return Err(e);
        }
        written.push(path.clone());
    }
    Ok(written)
}

/// Creates a root and one issuing CA per product line in `dir`. Everything
/// is generated in memory (or in the token) first; files are written only
/// when all of it succeeded, and a failed write removes what this call wrote.
pub fn init(
    dir: &Path,
    options: &InitOptions,
    ledger: &mut CaLedger<'_>,
) -> Result<InitReport, CaError> {
    refuse_existing(dir, options)?;
    let mut config = options.config.clone();
    let root_profile = Profile::from_config(ProfileName::RootCa, &config)?;
    let root_subject =
        Subject::from_input(&root_profile, &options.root_subject, IdMode::Production)?;
    let (root_signer, root_key_pem) = ca_key(&options.root_key, &options.unlock)?;
    // Every key opened and every subject checked before the root key signs.
    let mut plans = Vec::new();
    for (line, ca_options) in [
        (ProductLine::MaliMuhur, &options.mali_muhur),
        (ProductLine::Okc, &options.okc),
    ] {
        plans.push(IssuingCaPlan::new(
            &mut config,
            line,
            ca_options,
            &options.unlock,
        )?);
    }

    let mut files: Vec<PlannedFile> = Vec::new();
    let self_signing = CertificateAuthority::self_signing(root_signer, &root_subject)?;
    let own_key = self_signing.signer().public_key_der().to_vec();
    let prepared = self_signing.prepare(
        &root_profile,
        &root_subject,
        crate::issue::SubjectKey::checked(&own_key)?,
        options.not_before,
    )?;
    let root_certificate = ledger.sign(&self_signing, prepared, "root")?;
    let root = self_signing.with_certificate(root_certificate.der().to_vec())?;
    files.push((
        dir.join(&config.ca.root_certificate),
        Zeroizing::new(pem::certificate(root.certificate_der()).into_bytes()),
        0o644,
    ));
    if let Some(key) = root_key_pem {
        files.push((dir.join(ROOT_KEY_FILE), key, 0o600));
    }
    let mut issuing = Vec::new();
    for plan in plans {
        let line = plan.line;
        let (der, ca_files) = plan.sign(&root, ledger, options.not_before, dir)?;
        files.extend(ca_files);
        issuing.push((line, der));
    }
    files.insert(
        0,
        (
            dir.join(CONFIG_FILE),
            Zeroizing::new(config.to_toml().into_bytes()),
            0o644,
        ),
    );
    let written = write_all_new(dir, &files)?;
    Ok(InitReport {
        files: written,
        root_der: root.certificate_der().to_vec(),
        issuing,
        filled_settings: Vec::new(),
    })
}

/// What `ca add-issuing` creates.
#[derive(Debug, Clone)]
pub struct AddIssuingOptions {
    /// The product line of the new issuing CA.
    pub line: ProductLine,
    /// Its key and subject.
    pub issuing: IssuingCaOptions,
    /// The root key: a file path or `pkcs11:` URI; `None` takes the
    /// directory's `root-key.pem`.
    pub root_key: Option<String>,
    /// How to unlock token keys.
    pub unlock: Unlock,
    /// When the new certificate starts.
    pub not_before: DateTime,
}

/// Adds `options.line`'s issuing CA, signed by the root, to the existing CA
/// directory `dir`, and records it in the configuration. Refuses when the
/// line already has an issuing CA of its own. The new files are written
/// first, then the configuration is replaced in one rename, so an
/// interrupted run leaves the directory as it was (plus unused new files).
pub fn add_issuing(
    dir: &Path,
    options: &AddIssuingOptions,
    ledger: &mut CaLedger<'_>,
) -> Result<InitReport, CaError> {
    let config_path = dir.join(CONFIG_FILE);
    let mut config = CaConfig::load(&config_path)?;
    if let Some(existing) = issuing_files(&config, options.line) {
        return Err(CaError::IssuingCaExists {
            dir: dir.to_path_buf(),
            line: options.line,
            certificate: existing.certificate,
        });
    }
    let root_der = read_certificate(&dir.join(&config.ca.root_certificate))?;
    let root_key = match &options.root_key {
        Some(reference) => KeyRef::parse(reference, Path::new("."))?,
        None => KeyRef::parse(ROOT_KEY_FILE, dir)?,
    };
    let root = CertificateAuthority::new(root_key.open(&options.unlock)?, root_der.clone())?;
    let filled = match options.line {
        ProductLine::Okc => fill_okc_device_defaults(&mut config),
        ProductLine::MaliMuhur => Vec::new(),
    };
    // Checked before the root key signs: its files are free, its key opens.
    refuse_existing_paths(&issuing_paths(&config, options.line, &options.issuing, dir))?;
    let plan = IssuingCaPlan::new(&mut config, options.line, &options.issuing, &options.unlock)?;
    let (der, files) = plan.sign(&root, ledger, options.not_before, dir)?;
    let mut written = write_all_new(dir, &files)?;
    if let Err(e) = replace_file(&config_path, config.to_toml().as_bytes()) {
        for done in &written {
            let _ = std::fs::remove_file(done);
        }
        return Err(e);
    }
    written.push(config_path);
    Ok(InitReport {
        files: written,
        root_der,
        issuing: vec![(options.line, der)],
        filled_settings: filled,
    })
}

/// Why a retired issuing CA could be replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retirement {
    /// Its certificate is revoked on record (the root's CRL lists it).
    Revoked {
        /// When (RFC 3339).
        revoked_at: String,
        /// Why.
        reason: crate::revocation::RevocationReason,
    },
    /// Its certificate has expired.
    Expired {
        /// Its notAfter.
        not_after: String,
    },
}

impl std::fmt::Display for Retirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Retirement::Revoked { revoked_at, reason } => {
                write!(f, "revoked at {revoked_at} ({reason})")
            }
            Retirement::Expired { not_after } => write!(f, "expired at {not_after}"),
        }
    }
}

/// What `ca add-issuing --replace` did.
#[derive(Debug, Clone)]
pub struct ReplaceReport {
    /// The new issuing CA, as `ca add-issuing` reports it.
    pub added: InitReport,
    /// The retired certificate's serial, hex.
    pub retired_serial: String,
    /// Why it could be replaced.
    pub retirement: Retirement,
    /// The retired files: (old name, retired name) — the certificate, its
    /// key file, then its last CRL in `ca crl`'s default folder.
    pub retired_files: Vec<(PathBuf, PathBuf)>,
    /// The retired key when it is not a file (a `pkcs11:` URI): it stays
    /// in its token, untouched.
    pub retired_key_elsewhere: Option<String>,
}

/// Replaces `options.line`'s issuing CA, which must be retired — its
/// certificate revoked on record in `journal` (`certmint revoke
/// --ca-certificate`) or expired at `now` — with a new one signed by the
/// root, written under the line's file names. The retired certificate and
/// key files are kept, renamed `NAME.retired-SERIAL.pem` (never deleted; a
/// key in a token stays there); the root's CRL keeps listing the revoked
/// certificate, which is on record. Files are linked to their retired names
/// first (never over an existing file), then the new files written, then
/// the configuration replaced in one rename; a failure puts the retired
/// files back. Audited (`ca.issuing-replaced`).
pub fn replace_issuing(
    dir: &Path,
    options: &AddIssuingOptions,
    journal: &mut dyn crate::journal::Journal,
    operator: &str,
) -> Result<ReplaceReport, CaError> {
    use der::Decode;
    let config_path = dir.join(CONFIG_FILE);
    let mut config = CaConfig::load(&config_path)?;
    let Some(existing) = issuing_files(&config, options.line) else {
        return Err(CaError::NothingToReplace {
            dir: dir.to_path_buf(),
            line: options.line,
        });
    };
    let certificate_path = dir.join(&existing.certificate);
    let old_der = read_certificate(&certificate_path)?;
    let old = x509_cert::Certificate::from_der(&old_der).map_err(|e| CaError::Certificate {
        path: certificate_path.clone(),
        reason: e.to_string(),
    })?;
    let old_serial = crate::pem::hex(old.tbs_certificate().serial_number().as_bytes());
    let not_after = old.tbs_certificate().validity().not_after.to_date_time();
    let retirement = match crate::revocation::check_issuing_ca_in_force(&*journal, &old_der) {
        Err(crate::journal::JournalError::IssuingCaRevoked {
            revoked_at, reason, ..
        }) => Retirement::Revoked { revoked_at, reason },
        Err(other) => return Err(other.into()),
        Ok(()) if not_after < options.not_before => Retirement::Expired {
            not_after: not_after.to_string(),
        },
        Ok(()) => {
            return Err(CaError::IssuingCaInForce {
                dir: dir.to_path_buf(),
                line: options.line,
                certificate: existing.certificate,
                serial: old_serial,
            })
        }
    };
    // The new CA takes the line's file names: the certificate's, and the
    // key's when the old key was a file (a token key's reference names no
    // file, so a generated key gets the line's default name).
    let defaults = match options.line {
        ProductLine::MaliMuhur => IssuingCaFiles {
            certificate: crate::profile::CaFiles::default().issuing_certificate,
            key: crate::profile::CaFiles::default().issuing_key,
        },
        ProductLine::Okc => IssuingCaFiles::okc_defaults(),
    };
    let old_key = KeyRef::parse(&existing.key, dir)?;
    let new_names = IssuingCaFiles {
        certificate: existing.certificate.clone(),
        key: match &old_key {
            KeyRef::File(_) => existing.key.clone(),
            KeyRef::Pkcs11(_) => defaults.key,
        },
    };
    set_issuing_files(&mut config, options.line, new_names);
    let root_der = read_certificate(&dir.join(&config.ca.root_certificate))?;
    let root_key = match &options.root_key {
        Some(reference) => KeyRef::parse(reference, Path::new("."))?,
        None => KeyRef::parse(ROOT_KEY_FILE, dir)?,
    };
    let root = CertificateAuthority::new(root_key.open(&options.unlock)?, root_der.clone())?;
    let plan = IssuingCaPlan::new(&mut config, options.line, &options.issuing, &options.unlock)?;

    let mut to_retire = vec![certificate_path];
    let mut retired_key_elsewhere = None;
    match old_key {
        KeyRef::File(path) => to_retire.push(path),
        KeyRef::Pkcs11(_) => retired_key_elsewhere = Some(existing.key.clone()),
    }
    // The retired CA's last CRL in `ca crl`'s default folder: the new CA's
    // goes to the same file (the line's CRL URL), and `ca crl` writes only
    // over a CRL of the CA it signs for.
    let crl_url = match options.line {
        ProductLine::MaliMuhur => config.mali_muhur.crl_url.as_deref(),
        ProductLine::Okc => config.okc_device.crl_url.as_deref(),
    };
    let crl_name =
        crate::crl::publish::file_name_from_url(crl_url, &format!("{}.crl", options.line));
    for name in [crl_name.clone(), format!("{crl_name}.pem")] {
        let path = dir.join(DEFAULT_CRL_FOLDER).join(name);
        if std::fs::symlink_metadata(&path).is_ok() {
            to_retire.push(path);
        }
    }
    let retired_files: Vec<(PathBuf, PathBuf)> = to_retire
        .into_iter()
        .map(|path| {
            let retired = retired_name(&path, &old_serial);
            (path, retired)
        })
        .collect();
    retire_files(&retired_files)?;
    let restore = || {
        for (path, retired) in &retired_files {
            let _ = std::fs::rename(retired, path);
        }
    };
    // Signed once the retired files are out of the way: nothing that can
    // fail before the files are written comes after the root key signs.
    let mut ledger = CaLedger {
        journal: &mut *journal,
        operator,
    };
    let (der, files) = match plan.sign(&root, &mut ledger, options.not_before, dir) {
        Ok(signed) => signed,
        Err(e) => {
            restore();
            return Err(e);
        }
    };
    let mut written = match write_all_new(dir, &files) {
        Ok(written) => written,
        Err(e) => {
            restore();
            return Err(e);
        }
    };
    if let Err(e) = replace_file(&config_path, config.to_toml().as_bytes()) {
        for done in &written {
            let _ = std::fs::remove_file(done);
        }
        restore();
        return Err(e);
    }
    written.push(config_path);
    let new_serial = x509_cert::Certificate::from_der(&der)
        .map(|c| crate::pem::hex(c.tbs_certificate().serial_number().as_bytes()))
        .unwrap_or_default();
    let moved: Vec<String> = retired_files
        .iter()
        .map(|(path, retired)| format!("{} -> {}", path.display(), retired.display()))
        .collect();
    journal.audit(
        operator,
        "ca.issuing-replaced",
        &format!("{} issuing CA", options.line),
        &format!(
            "certificate {old_serial} ({retirement}) retired, its files kept as {}{}; \
             new certificate {new_serial} signed by the root",
            moved.join(", "),
            retired_key_elsewhere
                .as_deref()
                .map(|key| format!("; its key stays in its token ({key})"))
                .unwrap_or_default()
        ),
    )?;
    Ok(ReplaceReport {
        added: InitReport {
            files: written,
            root_der,
            issuing: vec![(options.line, der)],
            filled_settings: Vec::new(),
        },
        retired_serial: old_serial,
        retirement,
        retired_files,
        retired_key_elsewhere,
    })
}

/// `issuing.pem` of certificate serial `ABC` retired: `issuing.retired-ABC.pem`.
fn retired_name(path: &Path, serial: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let extension = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    path.with_file_name(format!("{stem}.retired-{serial}{extension}"))
}

/// Moves each (path, retired) file to its retired name: linked there first
/// (which fails rather than replace an existing file), then unlinked from
/// its name; a failure puts back what was moved.
fn retire_files(files: &[(PathBuf, PathBuf)]) -> Result<(), CaError> {
    let put_back = |moved: &[(PathBuf, PathBuf)]| {
        for (path, retired) in moved {
            let _ = std::fs::rename(retired, path);
        }
    };
    for (index, (path, retired)) in files.iter().enumerate() {
        if let Err(e) = std::fs::hard_link(path, retired) {
            put_back(&files[..index]);
            return Err(match e.kind() {
                std::io::ErrorKind::AlreadyExists => CaError::AlreadyExists(retired.clone()),
                _ => CaError::Io {
                    path: retired.clone(),
                    reason: e.to_string(),
                },
            });
        }
        if let Err(e) = std::fs::remove_file(path) {
            // Only the link just made goes; the file keeps its name.
            let _ = std::fs::remove_file(retired);
            put_back(&files[..index]);
            return Err(io_error(path)(e));
        }
    }
    if let Some(parent) = files.first().and_then(|(path, _)| path.parent()) {
        if let Ok(folder) = std::fs::File::open(parent) {
            let _ = folder.sync_all();
        }
    }
    Ok(())
}

/// Gives the `[okc_device]` section what the ÖKC lint requires and it
/// lacks — a policy of its own (in place of none or the Mali Mühür one),
/// a CRL URL, a caIssuers URL — from the shipped ÖKC defaults; every other
/// setting stays. Returns the fields set, as `field = value`.
fn fill_okc_device_defaults(config: &mut CaConfig) -> Vec<String> {
    let defaults = crate::profile::ProfileConfig::okc_device_defaults();
    let section = &mut config.okc_device;
    let mut filled = Vec::new();
    let mut fill = |field: &str, slot: &mut Option<String>, value: &Option<String>| {
        if let Some(value) = value {
            *slot = Some(value.clone());
            filled.push(format!("{field} = {value}"));
        }
    };
    if section
        .policy_oid
        .as_deref()
        .is_none_or(|oid| oid == crate::profile::MALI_MUHUR_POLICY_OID)
    {
        fill("policy_oid", &mut section.policy_oid, &defaults.policy_oid);
    }
    if section.crl_url.is_none() {
        fill("crl_url", &mut section.crl_url, &defaults.crl_url);
    }
    if section.ca_issuers_url.is_none() {
        fill(
            "ca_issuers_url",
            &mut section.ca_issuers_url,
            &defaults.ca_issuers_url,
        );
    }
    filled
}

/// Replaces `path` with `bytes` in one rename, keeping its permission bits.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), CaError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(io_error(path))?
        .permissions()
        .mode()
        & 0o777;
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = PathBuf::from(temporary);
    let _ = std::fs::remove_file(&temporary);
    write_new_file(&temporary, bytes, mode)?;
    std::fs::rename(&temporary, path).map_err(io_error(path))?;
    if let Some(parent) = path.parent() {
        if let Ok(folder) = std::fs::File::open(parent) {
            let _ = folder.sync_all();
        }
    }
    Ok(())
}

/// A CA directory opened for issuance of one product line.
#[derive(Debug)]
pub struct CaDirectory {
    /// The directory.
    pub dir: PathBuf,
    /// Its configuration.
    pub config: CaConfig,
    /// The product line it was opened for.
    pub line: ProductLine,
    /// The line's issuing CA, key opened.
    pub ca: CertificateAuthority,
    /// The root certificate's DER.
    pub root_der: Vec<u8>,
    /// True when the line has no issuing CA of its own and `ca` is the Mali
    /// Mühür issuing CA (a directory made before it had an ÖKC CA).
    pub shared_issuing_ca: bool,
}

/// One product line's issuing CA as the configuration names it.
#[derive(Debug, Clone)]
pub struct IssuingCaOverview {
    /// The product line.
    pub line: ProductLine,
    /// Its certificate file, relative to the CA directory.
    pub certificate_file: String,
    /// Its key reference (a file path or a `pkcs11:` URI, never a PIN).
    pub key: String,
    /// Its certificate's DER.
    pub certificate_der: Vec<u8>,
    /// True when the line has no issuing CA of its own and these are the
    /// Mali Mühür issuing CA's.
    pub shared_issuing_ca: bool,
}

/// What `ca show` reports: the root and each product line's issuing CA.
#[derive(Debug, Clone)]
pub struct CaOverview {
    /// The configuration.
    pub config: CaConfig,
    /// The root certificate's DER.
    pub root_der: Vec<u8>,
    /// The issuing CAs, Mali Mühür first.
    pub issuing: Vec<IssuingCaOverview>,
}

/// Reads `dir`'s configuration and certificates, opening no key.
pub fn overview(dir: &Path) -> Result<CaOverview, CaError> {
    let config = CaConfig::load(&dir.join(CONFIG_FILE))?;
    let root_der = read_certificate(&dir.join(&config.ca.root_certificate))?;
    let mut issuing = Vec::new();
    for line in [ProductLine::MaliMuhur, ProductLine::Okc] {
        let (files, shared_issuing_ca) = issuing_files_or_shared(&config, line);
        issuing.push(IssuingCaOverview {
            line,
            certificate_der: read_certificate(&dir.join(&files.certificate))?,
            certificate_file: files.certificate,
            key: files.key,
            shared_issuing_ca,
        });
    }
    Ok(CaOverview {
        config,
        root_der,
        issuing,
    })
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
    /// Opens `dir` for issuing certificates of `line`: reads the
    /// configuration and certificates, parses the line's issuing key
    /// reference (`key_override` replaces the configured one) and opens
    /// only that key, unlocking a token key with `unlock`.
    ///
    /// This is the one place that decides which issuing CA signs a product
    /// line's certificates. A directory without an ÖKC issuing CA opens for
    /// ÖKC with the Mali Mühür issuing CA and `shared_issuing_ca` set, so a
    /// directory made before the ÖKC CA existed keeps producing; the caller
    /// warns the operator (see [`CaDirectory::shared_issuing_ca_warning`]).
    pub fn open(
        dir: &Path,
        line: ProductLine,
        key_override: Option<&str>,
        unlock: &Unlock,
    ) -> Result<Self, CaError> {
        let mut config = CaConfig::load(&dir.join(CONFIG_FILE))?;
        let (files, shared_issuing_ca) = issuing_files_or_shared(&config, line);
        if shared_issuing_ca && line == ProductLine::Okc {
            // A certificate names the CRL and the certificate of the CA that
            // signs it: the Mali Mühür issuing CA lists these ÖKC
            // certificates in its CRL, so they point there, not at an ÖKC
            // CRL that CA does not sign.
            config.okc_device.crl_url = config.mali_muhur.crl_url.clone();
            config.okc_device.ca_issuers_url = config.mali_muhur.ca_issuers_url.clone();
            config.okc_device.ocsp_url = config.mali_muhur.ocsp_url.clone();
        }
        // A configured key path is relative to the CA directory; one the
        // operator types is relative to where they typed it.
        let key_ref = match key_override {
            Some(reference) => KeyRef::parse(reference, Path::new("."))?,
            None => KeyRef::parse(&files.key, dir)?,
        };
        let issuing_der = read_certificate(&dir.join(&files.certificate))?;
        let root_der = read_certificate(&dir.join(&config.ca.root_certificate))?;
        let ca = CertificateAuthority::new(key_ref.open(unlock)?, issuing_der)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            line,
            ca,
            root_der,
            shared_issuing_ca,
        })
    }

    /// The opener for the issuing CA of `profile`'s certificates.
    pub fn open_for_profile(
        dir: &Path,
        profile: ProfileName,
        key_override: Option<&str>,
        unlock: &Unlock,
    ) -> Result<Self, CaError> {
        // Root and issuing CA certificates are made by `ca init` and
        // `ca add-issuing`, not through an opened directory; a request for
        // them opens the Mali Mühür issuing CA, whose lint then refuses.
        let line = ProductLine::of_profile(profile).unwrap_or(ProductLine::MaliMuhur);
        Self::open(dir, line, key_override, unlock)
    }

    /// The operator's warning when the line has no issuing CA of its own.
    pub fn shared_issuing_ca_warning(&self) -> Option<String> {
        self.shared_issuing_ca.then(|| {
            format!(
                "{} has no {} issuing CA of its own: its certificates come from the Mali Mühür issuing CA ({}); add one with `certmint ca add-issuing --ca {} --line {}`",
                self.dir.display(),
                self.line,
                self.config.ca.issuing_certificate,
                self.dir.display(),
                self.line
            )
        })
    }

    /// The issuing and root certificates as one PEM chain.
    pub fn chain_pem(&self) -> String {
        pem::certificate(self.ca.certificate_der()) + &pem::certificate(&self.root_der)
    }
}

/// A CA whose CRL certmint issues: an issuing CA (its CRL lists the
/// certificates it signed) or the root (its CRL, the ARL, lists revoked
/// issuing CAs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlAuthority {
    /// A product line's issuing CA.
    Issuing(ProductLine),
    /// The root.
    Root,
}

impl std::fmt::Display for CrlAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CrlAuthority::Issuing(line) => write!(f, "{line}"),
            CrlAuthority::Root => f.write_str("root"),
        }
    }
}

impl std::str::FromStr for CrlAuthority {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "root" => Ok(CrlAuthority::Root),
            line => line
                .parse()
                .map(CrlAuthority::Issuing)
                .map_err(|_| format!("unknown CRL issuer {text:?} (use okc, mali-muhur or root)")),
        }
    }
}

/// A CA opened to sign its CRL: its certificate, its key, and the URL its
/// CRL is published at (what the certificates it signed name in their CRL
/// distribution point).
#[derive(Debug)]
pub struct CrlSigningCa {
    /// The CA certificate's DER.
    pub certificate_der: Vec<u8>,
    /// The CA key.
    pub signer: Box<dyn Signer>,
    /// The CRL's URL, if the configuration names one.
    pub crl_url: Option<String>,
}

/// Opens `authority`'s certificate and key in the CA directory `dir` to sign
/// its CRL. An issuing CA's key is its configured one; the root's is
/// `root_key` or `root-key.pem` in the directory. A product line without an
/// issuing CA of its own is refused: its certificates come from the Mali
/// Mühür issuing CA, whose CRL lists them.
pub fn open_crl_signer(
    dir: &Path,
    authority: CrlAuthority,
    root_key: Option<&str>,
    unlock: &Unlock,
) -> Result<CrlSigningCa, CaError> {
    let config = CaConfig::load(&dir.join(CONFIG_FILE))?;
    let (certificate_file, key_ref, crl_url) = match authority {
        CrlAuthority::Root => {
            let key_ref = match root_key {
                Some(reference) => KeyRef::parse(reference, Path::new("."))?,
                None => KeyRef::parse(ROOT_KEY_FILE, dir)?,
            };
            // The issuing CA certificates name the root's CRL.
            let crl_url = config.issuing_ca.crl_url.clone();
            (config.ca.root_certificate.clone(), key_ref, crl_url)
        }
        CrlAuthority::Issuing(line) => {
            let Some(files) = issuing_files(&config, line) else {
                return Err(CaError::NoIssuingCa {
                    dir: dir.to_path_buf(),
                    line,
                });
            };
            let crl_url = match line {
                ProductLine::MaliMuhur => config.mali_muhur.crl_url.clone(),
                ProductLine::Okc => config.okc_device.crl_url.clone(),
            };
            (files.certificate, KeyRef::parse(&files.key, dir)?, crl_url)
        }
    };
    let certificate_der = read_certificate(&dir.join(certificate_file))?;
    Ok(CrlSigningCa {
        certificate_der,
        signer: key_ref.open(unlock)?,
        crl_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p256_options() -> InitOptions {
        let now = crate::issue::validity::now().unwrap();
        let mut options = InitOptions::kamu_sm_defaults(now);
        options.root_key = CaKey::Generate(KeyType::EcP256);
        options.mali_muhur.key = CaKey::Generate(KeyType::EcP256);
        options.okc.key = CaKey::Generate(KeyType::EcP256);
        options
    }

    /// A journal in `dir` for the CA certificates a test makes.
    fn journal_in(dir: &Path) -> crate::journal::SqlJournal {
        crate::journal::SqlJournal::open_at(&crate::journal::JournalAddress::File(
            dir.join("journal.sqlite"),
        ))
        .unwrap()
    }

    fn issuer_of(directory: &CaDirectory) -> String {
        use der::Decode;
        let cert = x509_cert::Certificate::from_der(directory.ca.certificate_der()).unwrap();
        cert.tbs_certificate().subject().to_string()
    }

    #[test]
    fn each_product_line_opens_its_own_issuing_ca() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = journal_in(dir.path());
        let mut ledger = CaLedger {
            journal: &mut journal,
            operator: "op",
        };
        let report = init(dir.path(), &p256_options(), &mut ledger).unwrap();
        let lines: Vec<ProductLine> = report.issuing.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [ProductLine::MaliMuhur, ProductLine::Okc]);
        // The three certificates the root key signed are on record, issued.
        let serial_of = |der: &[u8]| {
            use der::Decode;
            let cert = x509_cert::Certificate::from_der(der).unwrap();
            crate::pem::hex(cert.tbs_certificate().serial_number().as_bytes())
        };
        let on_record: Vec<(String, String, String)> =
            crate::journal::Journal::ca_certificates(&journal)
                .unwrap()
                .into_iter()
                .map(|c| (c.role, c.status, c.serial))
                .collect();
        assert_eq!(
            on_record,
            [
                ("root".into(), "issued".into(), serial_of(&report.root_der)),
                (
                    "issuing mali-muhur".into(),
                    "issued".into(),
                    serial_of(&report.issuing[0].1)
                ),
                (
                    "issuing okc".into(),
                    "issued".into(),
                    serial_of(&report.issuing[1].1)
                ),
            ]
        );

        let unlock = Unlock::default();
        let mali_muhur =
            CaDirectory::open(dir.path(), ProductLine::MaliMuhur, None, &unlock).unwrap();
        let okc = CaDirectory::open(dir.path(), ProductLine::Okc, None, &unlock).unwrap();
        assert!(!mali_muhur.shared_issuing_ca && !okc.shared_issuing_ca);
        assert!(okc.shared_issuing_ca_warning().is_none());
        assert!(issuer_of(&mali_muhur).contains("Mali Mühür Elektronik"));
        assert!(issuer_of(&okc).contains("ÖKC Elektronik"));
        assert_eq!(okc.root_der, mali_muhur.root_der);
        let by_profile =
            CaDirectory::open_for_profile(dir.path(), ProfileName::OkcDevice, None, &unlock)
                .unwrap();
        assert_eq!(by_profile.ca.certificate_der(), okc.ca.certificate_der());
    }

    #[test]
    fn without_an_okc_ca_okc_shares_the_mali_muhur_one_until_one_is_added() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = journal_in(dir.path());
        let mut ledger = CaLedger {
            journal: &mut journal,
            operator: "op",
        };
        init(dir.path(), &p256_options(), &mut ledger).unwrap();
        // Make it a directory with one issuing CA.
        let config_path = dir.path().join(CONFIG_FILE);
        let mut config = CaConfig::load(&config_path).unwrap();
        config.okc_ca = None;
        std::fs::write(&config_path, config.to_toml()).unwrap();
        std::fs::remove_file(dir.path().join("okc-issuing.pem")).unwrap();
        std::fs::remove_file(dir.path().join("okc-issuing-key.pem")).unwrap();

        let unlock = Unlock::default();
        let shared = CaDirectory::open(dir.path(), ProductLine::Okc, None, &unlock).unwrap();
        assert!(shared.shared_issuing_ca);
        assert!(issuer_of(&shared).contains("Mali Mühür Elektronik"));
        let warning = shared.shared_issuing_ca_warning().unwrap();
        assert!(warning.contains("ca add-issuing"), "{warning}");

        let options = AddIssuingOptions {
            line: ProductLine::Okc,
            issuing: IssuingCaOptions::kamu_sm_defaults(ProductLine::Okc, KeyType::EcP256),
            root_key: None,
            unlock: Unlock::default(),
            not_before: crate::issue::validity::now().unwrap(),
        };
        let added = add_issuing(dir.path(), &options, &mut ledger).unwrap();
        assert_eq!(added.files.last(), Some(&config_path));
        // The defaults already satisfy the ÖKC rules: nothing to fill.
        assert!(
            added.filled_settings.is_empty(),
            "{:?}",
            added.filled_settings
        );
        let own = CaDirectory::open(dir.path(), ProductLine::Okc, None, &unlock).unwrap();
        assert!(!own.shared_issuing_ca);
        assert!(issuer_of(&own).contains("ÖKC Elektronik"));

        let again = add_issuing(dir.path(), &options, &mut ledger).unwrap_err();
        assert!(matches!(again, CaError::IssuingCaExists { .. }), "{again}");
        assert_eq!(again.kind(), crate::error::ErrorKind::Conflict);
    }

    #[test]
    fn add_issuing_fills_only_what_the_okc_rules_need() {
        let mut config = CaConfig::kamu_sm_defaults();
        config.okc_device.policy_oid = Some(crate::profile::MALI_MUHUR_POLICY_OID.into());
        config.okc_device.crl_url = None;
        config.okc_device.ca_issuers_url = Some("http://pki.lab.example/okc.crt".into());
        config.okc_device.validity_years = 4;
        let filled = fill_okc_device_defaults(&mut config);
        assert_eq!(
            filled,
            [
                format!("policy_oid = {}", crate::profile::OKC_POLICY_OID),
                format!("crl_url = {}", crate::profile::OKC_CRL_URL),
            ]
        );
        assert_eq!(
            config.okc_device.ca_issuers_url.as_deref(),
            Some("http://pki.lab.example/okc.crt")
        );
        assert_eq!(config.okc_device.validity_years, 4);
        assert!(fill_okc_device_defaults(&mut config).is_empty());
    }
}
