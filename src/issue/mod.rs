//! Issuance: prepare, then sign.
//!
//! [`CertificateAuthority::prepare`] builds the TBS certificate and lints its
//! DER; only a linted [`PreparedCertificate`] can be signed, and
//! [`CertificateAuthority::sign`] consumes it, signs exactly those bytes,
//! verifies the signature with the CA's public key and assembles the
//! certificate around the unchanged TBS bytes.

pub mod lint;
pub mod serial;
pub mod tbs;
pub mod validity;

use der::{DateTime, Decode, Encode};
use spki::SubjectPublicKeyInfoRef;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier};
use x509_cert::name::RdnSequence;

use crate::ids::IdMode;
use crate::profile::{Profile, ProfileName, Subject};
use crate::signer::{KeyType, Signer, SignerError, SoftwareSigner, VerifyingKey};
pub use lint::{LintFinding, LintReport};
pub use serial::{EntropySource, OsEntropy};
pub use tbs::{IssuerIdentity, TbsCertificate, TbsTemplate};

use std::sync::OnceLock;

/// Why a certificate was not issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The subject key is not one the profile accepts.
    #[error("{key_type} key is not accepted by profile {profile} (accepts {accepted})")]
    KeyNotAccepted {
        /// The key given.
        key_type: KeyType,
        /// The profile.
        profile: ProfileName,
        /// The accepted key types.
        accepted: String,
    },
    /// The TBS certificate broke at least one lint; nothing was signed.
    #[error("refused before signing: {0}")]
    Lint(LintReport),
    /// The random number generator failed; no serial was made.
    #[error("the random number generator failed, issuance stopped: {0}")]
    Entropy(String),
    /// A value could not be DER-encoded.
    #[error("encoding failed: {0}")]
    Encoding(String),
    /// A validity period could not be computed.
    #[error("validity: {0}")]
    Validity(String),
    /// A requested notBefore lies too far in the past.
    #[error("notBefore {requested} is more than {max_minutes} minutes before now ({now}): certmint does not backdate further")]
    Backdated {
        /// The requested start.
        requested: String,
        /// The time now.
        now: String,
        /// The most a start may lie before now, in minutes.
        max_minutes: u64,
    },
    /// The CA certificate cannot issue (not a CA, key mismatch, …).
    #[error("CA certificate: {0}")]
    CaCertificate(String),
    /// A key or signer problem.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// The CA's signature did not verify under its own certificate.
    #[error("the CA signature failed verification; certificate discarded: {0}")]
    SignatureCheck(String),
}

impl IssueError {
    /// A lint refusal, a key the profile does not take (invalid input), a
    /// signer's own kind; the CA's and the encoder's failures.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            IssueError::Lint(_) => ErrorKind::LintRefused,
            IssueError::KeyNotAccepted { .. } => ErrorKind::InvalidInput,
            // `--not-before` is an argument.
            IssueError::Backdated { .. } => ErrorKind::Usage,
            IssueError::Signer(e) => e.kind(),
            IssueError::Entropy(_)
            | IssueError::Encoding(_)
            | IssueError::Validity(_)
            | IssueError::CaCertificate(_)
            | IssueError::SignatureCheck(_) => ErrorKind::Failure,
        }
    }
}

/// A subject public key that may go into a certificate: any key from
/// outside (a request, a file, a token, a card) once [`KeyType::of_spki`]
/// accepted it, or the public key of a key certmint generated itself.
/// [`CertificateAuthority::prepare`] takes nothing else, so no path reaches
/// a TBS certificate with an unchecked key, and none checks a key twice.
#[derive(Debug, Clone, Copy)]
pub struct SubjectKey<'a> {
    der: &'a [u8],
    key_type: KeyType,
}

impl<'a> SubjectKey<'a> {
    /// A DER SubjectPublicKeyInfo from outside, checked: an EC point on its
    /// curve and not the point at infinity; an RSA key with an odd modulus
    /// free of small factors and an odd exponent of at least 65537.
    pub fn checked(der: &'a [u8]) -> Result<Self, SignerError> {
        Ok(Self {
            der,
            key_type: KeyType::of_public_key(der)?,
        })
    }

    /// The public key of a key certmint generated in memory (the soft
    /// target): aws-lc computed it from the private key, so it is valid by
    /// construction and is not checked again on the hot path.
    pub fn generated(key: &'a SoftwareSigner) -> Self {
        Self {
            der: key.public_key_der(),
            key_type: key.key_type(),
        }
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn der(&self) -> &'a [u8] {
        self.der
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }
}

/// A linted TBS certificate, ready to be signed once.
#[derive(Debug)]
pub struct PreparedCertificate {
    tbs_der: Vec<u8>,
    serial: Vec<u8>,
    profile: ProfileName,
    /// Known when certmint's own template encoded the TBS.
    layout: Option<Layout>,
}

/// What the encoder of a TBS knows of it without decoding it again: where
/// the subject's key is, and the validity.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    /// Where the subjectPublicKeyInfo's bytes are (in the TBS, then in the
    /// certificate).
    key_at: std::ops::Range<usize>,
    not_before: DateTime,
    not_after: DateTime,
}

impl PreparedCertificate {
    /// The DER of the TBS certificate that was linted and will be signed.
    pub fn tbs_der(&self) -> &[u8] {
        &self.tbs_der
    }

    /// The serial number's content octets.
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// The profile it was prepared for.
    pub fn profile(&self) -> ProfileName {
        self.profile
    }
}

/// A signed and verified certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    der: Vec<u8>,
    serial: Vec<u8>,
    layout: Option<Layout>,
}

impl IssuedCertificate {
    /// The certificate's DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate as PEM.
    pub fn to_pem(&self) -> String {
        crate::pem::certificate(&self.der)
    }

    /// The serial number's content octets.
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// The serial number in upper-case hex.
    pub fn serial_hex(&self) -> String {
        crate::pem::hex(&self.serial)
    }

    /// Checks that the certificate certifies `spki_der`, the key it was
    /// issued for: its subjectPublicKeyInfo's bytes are the key's. A
    /// certificate encoded from certmint's template knows where they are
    /// (the template's encoding is checked against the typed structure by a
    /// unit test, and the TBS passed the lints); any other is decoded.
    pub fn certifies(&self, spki_der: &[u8]) -> Result<(), IssueError> {
        let certified = match &self.layout {
            Some(layout) => self.der.get(layout.key_at.clone()) == Some(spki_der),
            None => return self.certifying(spki_der).map(|_| ()),
        };
        if !certified {
            return Err(IssueError::SignatureCheck(
                "the certificate does not certify the key it was issued for".into(),
            ));
        }
        Ok(())
    }

    /// notBefore and notAfter, without decoding the certificate when its
    /// encoder knew them.
    pub fn validity(&self) -> Result<(DateTime, DateTime), IssueError> {
        if let Some(layout) = &self.layout {
            return Ok((layout.not_before, layout.not_after));
        }
        let parsed = x509_cert::Certificate::from_der(&self.der)
            .map_err(|e| IssueError::Encoding(e.to_string()))?;
        let validity = parsed.tbs_certificate().validity();
        Ok((
            validity.not_before.to_date_time(),
            validity.not_after.to_date_time(),
        ))
    }

    /// Decodes the certificate and checks that it certifies `spki_der`, the
    /// key it was issued for (generated in memory, a token or a card);
    /// returns the decoded certificate for further use.
    pub fn certifying(&self, spki_der: &[u8]) -> Result<x509_cert::Certificate, IssueError> {
        let encoding = |e: der::Error| IssueError::Encoding(e.to_string());
        let parsed = x509_cert::Certificate::from_der(&self.der).map_err(encoding)?;
        let certified = parsed
            .tbs_certificate()
            .subject_public_key_info()
            .to_der()
            .map_err(encoding)?;
        if certified != spki_der {
            return Err(IssueError::SignatureCheck(
                "the certificate does not certify the key it was issued for".into(),
            ));
        }
        Ok(parsed)
    }
}

/// How many templates a CA keeps (profiles × subject key types in use).
const TEMPLATE_SLOTS: usize = 16;

/// A TBS template, and once a certificate made from it has passed every
/// lint (x509-cert's decoding included), what of it is known conformant
/// (see [`lint::lint_rules`]).
#[derive(Debug)]
struct Template {
    tbs: TbsTemplate,
    conformant: OnceLock<lint::Conformant>,
}

/// A CA key with its certificate: issues certificates by profile.
#[derive(Debug)]
pub struct CertificateAuthority {
    signer: Box<dyn Signer>,
    certificate_der: Vec<u8>,
    identity: IssuerIdentity,
    verifying_key: VerifyingKey,
    entropy: Box<dyn EntropySource>,
    id_mode: IdMode,
    /// One template per profile and subject key type issued so far, in
    /// slots filled once and then only read: workers on several cores share
    /// them, and a lock or a reference count would move between their
    /// caches on every certificate.
    templates: [OnceLock<Template>; TEMPLATE_SLOTS],
}

impl CertificateAuthority {
    /// A CA from its key and certificate. Checks that the key belongs to the
    /// certificate and that the certificate may sign certificates.
    pub fn new(signer: Box<dyn Signer>, certificate_der: Vec<u8>) -> Result<Self, IssueError> {
        let ca_err = |m: String| IssueError::CaCertificate(m);
        let cert = x509_cert::Certificate::from_der(&certificate_der)
            .map_err(|e| ca_err(format!("not a DER certificate: {e}")))?;
        let tbs = cert.tbs_certificate();
        let spki_der = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|e| ca_err(e.to_string()))?;
        if spki_der != signer.public_key_der() {
            return Err(ca_err(format!(
                "the CA key does not belong to the certificate of {}",
                tbs.subject()
            )));
        }
        let is_ca = matches!(tbs.get_extension::<BasicConstraints>(), Ok(Some((_, bc))) if bc.ca);
        let can_sign = matches!(tbs.get_extension::<KeyUsage>(), Ok(Some((_, ku))) if ku.0.contains(KeyUsages::KeyCertSign));
        if !is_ca || !can_sign {
            return Err(ca_err(format!(
                "{} is not a CA certificate with keyCertSign",
                tbs.subject()
            )));
        }
        let key_identifier = match tbs.get_extension::<SubjectKeyIdentifier>() {
            Ok(Some((_, ski))) => ski.0.as_bytes().to_vec(),
            _ => {
                return Err(ca_err(format!(
                    "{} has no subjectKeyIdentifier",
                    tbs.subject()
                )))
            }
        };
        let identity = IssuerIdentity::new(
            RdnSequence::from(tbs.subject().clone()),
            Some(key_identifier),
            Some(tbs.validity().not_after.to_date_time()),
            signer.algorithm(),
        )?
        .with_not_before(tbs.validity().not_before.to_date_time());
        let verifying_key = VerifyingKey::new(signer.public_key_der(), signer.algorithm())?;
        Ok(Self {
            signer,
            certificate_der,
            identity,
            verifying_key,
            entropy: Box::new(OsEntropy),
            id_mode: IdMode::Production,
            templates: Default::default(),
        })
    }

    /// Creates a self-signed root CA for `signer` under the root profile.
    pub fn create_root(
        signer: Box<dyn Signer>,
        profile: &Profile,
        subject: &Subject,
        not_before: DateTime,
    ) -> Result<Self, IssueError> {
        let root = Self::self_signing(signer, subject)?;
        let own_key = root.signer.public_key_der().to_vec();
        let certificate =
            root.issue(profile, subject, SubjectKey::checked(&own_key)?, not_before)?;
        root.with_certificate(certificate.der)
    }

    /// The root CA of `signer` named `subject` before it has a certificate:
    /// it prepares and signs its own, self-signed, and nothing else (its
    /// certificate carries no authorityKeyIdentifier). Then
    /// [`Self::with_certificate`] makes it a CA.
    pub fn self_signing(signer: Box<dyn Signer>, subject: &Subject) -> Result<Self, IssueError> {
        let identity = IssuerIdentity::new(
            tbs::encode_name(&subject.attributes())?,
            None,
            None,
            signer.algorithm(),
        )?;
        Ok(Self {
            verifying_key: VerifyingKey::new(signer.public_key_der(), signer.algorithm())?,
            signer,
            certificate_der: Vec::new(),
            identity,
            entropy: Box::new(OsEntropy),
            id_mode: IdMode::Production,
            templates: Default::default(),
        })
    }

    /// This CA's key with `certificate_der` as its certificate (a root's
    /// own, signed through [`Self::self_signing`]), checked as for
    /// [`Self::new`].
    pub fn with_certificate(self, certificate_der: Vec<u8>) -> Result<Self, IssueError> {
        Self::new(self.signer, certificate_der)
    }

    /// Uses `entropy` for serial numbers instead of the OS CSPRNG.
    pub fn with_entropy(mut self, entropy: Box<dyn EntropySource>) -> Self {
        self.entropy = entropy;
        self
    }

    /// Accepts GİB's test identifiers (test mode).
    pub fn with_id_mode(mut self, id_mode: IdMode) -> Self {
        self.id_mode = id_mode;
        self
    }

    /// The CA key.
    pub fn signer(&self) -> &dyn Signer {
        self.signer.as_ref()
    }

    /// Whether GİB's test identifiers are accepted in subjects.
    pub fn id_mode(&self) -> IdMode {
        self.id_mode
    }

    /// The CA certificate's DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// What certificates issued by this CA say about it.
    pub fn identity(&self) -> &IssuerIdentity {
        &self.identity
    }

    /// Builds and lints the TBS certificate for `subject`'s public key.
    pub fn prepare(
        &self,
        profile: &Profile,
        subject: &Subject,
        key: SubjectKey<'_>,
        not_before: DateTime,
    ) -> Result<PreparedCertificate, IssueError> {
        let public_key_der = key.der;
        let spki = SubjectPublicKeyInfoRef::from_der(public_key_der)
            .map_err(|e| SignerError::UnsupportedKey(format!("not a SubjectPublicKeyInfo: {e}")))?;
        let key_type = key.key_type;
        if !profile.key_types.contains(&key_type) {
            return Err(IssueError::KeyNotAccepted {
                key_type,
                profile: profile.name,
                accepted: profile.key_types_text(),
            });
        }
        self.with_template(profile, key_type, |template| {
            let serial = serial::new_serial(self.entropy.as_ref())?;
            let (tbs_der, key_at) =
                template
                    .tbs
                    .encode(subject, &spki, public_key_der, &serial, not_before)?;
            let layout = Layout {
                key_at,
                not_before,
                not_after: validity::not_after(not_before, profile.validity_years)?,
            };
            match template.conformant.get() {
                Some(known) => lint::lint_rules_of_checked_key(
                    profile,
                    &self.identity,
                    self.id_mode,
                    &tbs_der,
                    known,
                    Some(public_key_der),
                ),
                None => lint::lint(profile, &self.identity, self.id_mode, &tbs_der).inspect(|()| {
                    if let Ok(known) = lint::Conformant::remember(profile, &tbs_der) {
                        let _ = template.conformant.set(known);
                    }
                }),
            }
            .map_err(IssueError::Lint)?;
            Ok(PreparedCertificate {
                tbs_der,
                serial: serial.as_bytes().to_vec(),
                profile: profile.name,
                layout: Some(layout),
            })
        })
    }

    /// Runs `op` with the template for `profile` and `key_type`, made on
    /// first use (and made afresh each time once every slot is taken).
    fn with_template<T>(
        &self,
        profile: &Profile,
        key_type: KeyType,
        op: impl FnOnce(&Template) -> Result<T, IssueError>,
    ) -> Result<T, IssueError> {
        let make = || -> Result<Template, IssueError> {
            Ok(Template {
                tbs: TbsTemplate::new(profile, key_type, &self.identity)?,
                conformant: OnceLock::new(),
            })
        };
        for slot in &self.templates {
            let template = match slot.get() {
                Some(template) => template,
                // Another worker may fill this slot first, with another template.
                None => {
                    let made = make()?;
                    slot.get_or_init(|| made)
                }
            };
            if template.tbs.is_for(profile, key_type) {
                return op(template);
            }
        }
        op(&make()?)
    }

    /// Encodes and lints a TBS certificate built elsewhere.
    pub fn prepare_tbs(
        &self,
        profile: &Profile,
        tbs: &TbsCertificate,
    ) -> Result<PreparedCertificate, IssueError> {
        let tbs_der = tbs
            .to_der()
            .map_err(|e| IssueError::Encoding(e.to_string()))?;
        lint::lint(profile, &self.identity, self.id_mode, &tbs_der).map_err(IssueError::Lint)?;
        Ok(PreparedCertificate {
            tbs_der,
            serial: tbs.serial_number.as_bytes().to_vec(),
            profile: profile.name,
            layout: None,
        })
    }

    /// Signs a prepared certificate, verifies the signature and assembles it.
    pub fn sign(&self, prepared: PreparedCertificate) -> Result<IssuedCertificate, IssueError> {
        let signature = self.signer.sign(&prepared.tbs_der)?;
        self.assemble(prepared, &signature)
    }

    /// Signs prepared certificates together (one round trip to a key that
    /// is reached through one: see [`Signer::sign_all`]), then verifies and
    /// assembles each, in order. The outer error is the key's: nothing was
    /// signed; an inner one is that certificate's check.
    #[allow(clippy::type_complexity)]
    pub fn sign_all(
        &self,
        prepared: Vec<PreparedCertificate>,
    ) -> Result<Vec<Result<IssuedCertificate, IssueError>>, IssueError> {
        let messages: Vec<&[u8]> = prepared.iter().map(|p| p.tbs_der.as_slice()).collect();
        let signatures = self.signer.sign_all(&messages)?;
        if signatures.len() != prepared.len() {
            return Err(SignerError::SigningFailed(format!(
                "{} signatures for {} certificates",
                signatures.len(),
                prepared.len()
            ))
            .into());
        }
        drop(messages);
        Ok(prepared
            .into_iter()
            .zip(signatures)
            .map(|(prepared, signature)| self.assemble(prepared, &signature))
            .collect())
    }

    /// Verifies `signature` over a prepared certificate and assembles the two.
    fn assemble(
        &self,
        prepared: PreparedCertificate,
        signature: &[u8],
    ) -> Result<IssuedCertificate, IssueError> {
        self.verifying_key
            .verify(&prepared.tbs_der, signature)
            .map_err(|e| IssueError::SignatureCheck(e.to_string()))?;
        let der =
            tbs::certificate_der(&prepared.tbs_der, self.identity.algorithm_der(), signature)?;
        // The TBS follows the certificate's SEQUENCE header unchanged (were
        // it not found there, the certificate is decoded when asked).
        let tbs_at = match der.get(1) {
            Some(&length) if length & 0x80 != 0 => 2 + usize::from(length & 0x7f),
            _ => 2,
        };
        let tbs_in_place =
            der.get(tbs_at..tbs_at + prepared.tbs_der.len()) == Some(&prepared.tbs_der[..]);
        let layout = prepared
            .layout
            .filter(|_| tbs_in_place)
            .map(|layout| Layout {
                key_at: layout.key_at.start + tbs_at..layout.key_at.end + tbs_at,
                ..layout
            });
        Ok(IssuedCertificate {
            der,
            serial: prepared.serial,
            layout,
        })
    }

    /// Prepares and signs in one call.
    pub fn issue(
        &self,
        profile: &Profile,
        subject: &Subject,
        key: SubjectKey<'_>,
        not_before: DateTime,
    ) -> Result<IssuedCertificate, IssueError> {
        let prepared = self.prepare(profile, subject, key, not_before)?;
        self.sign(prepared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DeviceSerial, PrefixTable};
    use crate::profile::{CaConfig, SubjectInput};

    fn ca_and_profile() -> (CertificateAuthority, Profile, DateTime) {
        let config = CaConfig::kamu_sm_defaults();
        let root = Profile::from_config(ProfileName::RootCa, &config).unwrap();
        let subject = Subject::from_input(
            &root,
            &SubjectInput {
                common_name: Some("certmint test CA".into()),
                ..Default::default()
            },
            IdMode::Production,
        )
        .unwrap();
        let now = validity::now().unwrap();
        let key = SoftwareSigner::generate(KeyType::EcP256).unwrap();
        let ca = CertificateAuthority::create_root(Box::new(key), &root, &subject, now).unwrap();
        let profile = Profile::from_config(ProfileName::OkcDevice, &config).unwrap();
        (ca, profile, now)
    }

    fn device() -> Subject {
        Subject::OkcDevice {
            serial: DeviceSerial::parse("FU00022547", &PrefixTable::any()).unwrap(),
            manufacturer: Some("Örnek Yazarkasa A.Ş.".into()),
        }
    }

    /// The template's certificates know where their key and validity are;
    /// the answers equal what decoding the certificate gives, and another
    /// key is refused.
    #[test]
    fn an_issued_certificate_certifies_its_own_key_only_and_knows_its_validity() {
        let (ca, profile, now) = ca_and_profile();
        let key = SoftwareSigner::generate(KeyType::EcP256).unwrap();
        let other = SoftwareSigner::generate(KeyType::EcP256).unwrap();
        let issued = ca
            .issue(&profile, &device(), SubjectKey::generated(&key), now)
            .unwrap();
        assert!(issued.layout.is_some());
        issued.certifies(key.public_key_der()).unwrap();
        assert!(issued.certifies(other.public_key_der()).is_err());
        assert!(issued.certifying(other.public_key_der()).is_err());
        let decoded = x509_cert::Certificate::from_der(issued.der()).unwrap();
        let validity = decoded.tbs_certificate().validity();
        assert_eq!(
            issued.validity().unwrap(),
            (
                validity.not_before.to_date_time(),
                validity.not_after.to_date_time()
            )
        );
        assert_eq!(issued.validity().unwrap().0, now);

        // A TBS built elsewhere has no layout: the certificate is decoded.
        let tbs = tbs::build(
            &profile,
            &device(),
            key.public_key_der(),
            KeyType::EcP256,
            ca.identity(),
            der::asn1::Int::new(&[0x42; 16]).unwrap(),
            now,
        )
        .unwrap();
        let elsewhere = ca.sign(ca.prepare_tbs(&profile, &tbs).unwrap()).unwrap();
        assert!(elsewhere.layout.is_none());
        elsewhere.certifies(key.public_key_der()).unwrap();
        assert!(elsewhere.certifies(other.public_key_der()).is_err());
        assert_eq!(elsewhere.validity().unwrap().0, now);
    }
}
