//! Certificate revocation lists: a v2 CRL (RFC 5280 §5) for any CA
//! certificate and its key — the issuing CAs' CRLs, and the root's ARL
//! listing revoked issuing CAs — built streaming, linted, signed through the
//! [`Signer`] boundary, verified, and written atomically as DER and PEM.
//!
//! ```text
//! CrlIssuer (CA certificate + key) ─► CrlBuilder::start ─► push(entry)… ─► finish ─► SignedCrl ─► write_files
//!                                       head linted         each entry        extensions linted,
//!                                                           linted, encoded   signed, verified
//! ```
//!
//! The journal is not used here: entries come from whatever streams them in
//! serial order (the journal's `revoked_entries`), one [`CrlBuilder::push`]
//! each, and go straight into the one output buffer. Nothing is kept per
//! entry: memory is the output itself plus a constant.

mod encode;
mod files;
pub mod lint;
pub mod publish;

pub use files::{check_paths, write_files, CrlPaths};

use der::asn1::AnyRef;
use der::{Decode, Encode, Reader, SliceReader, Tag, Tagged};
use time::OffsetDateTime;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages, SubjectKeyIdentifier};

use crate::issue::lint::{LintFinding, LintReport};
use crate::revocation::RevokedEntry;
use crate::signer::{Signer, SignerError, VerifyingKey};

/// The most entries one CRL may list: ten million, ten times the largest
/// ÖKC population certmint plans for; a bound on every input.
pub const MAX_ENTRIES: u64 = 10_000_000;

/// Why a CRL was not made or not written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CrlError {
    /// The certificate given as the issuer cannot sign CRLs (not a CA, no
    /// cRLSign, no subjectKeyIdentifier, not the signer's key).
    #[error("CRL issuer: {0}")]
    Issuer(String),
    /// The CRL broke at least one lint; nothing was signed.
    #[error("CRL refused before signing: {0}")]
    Lint(LintReport),
    /// A value could not be DER-encoded, or the CRL would be too large.
    #[error("CRL encoding failed: {0}")]
    Encoding(String),
    /// The key could not sign, or its signature did not verify.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// The CA's signature did not verify under the issuer certificate's key;
    /// nothing was written.
    #[error(
        "the CRL signature failed verification under the CA certificate; nothing written: {0}"
    )]
    SignatureCheck(String),
    /// A file could not be written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// The reason.
        reason: String,
    },
    /// A file is in the way that is not a CRL; it is left as it is.
    #[error("{0} exists and is not a CRL; certmint replaces only CRL files")]
    NotACrl(String),
}

impl CrlError {
    /// A lint refusal; a signer's own kind; everything else is a failure.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            CrlError::Lint(_) => ErrorKind::LintRefused,
            CrlError::Signer(e) => e.kind(),
            CrlError::Issuer(_)
            | CrlError::Encoding(_)
            | CrlError::SignatureCheck(_)
            | CrlError::Io { .. }
            | CrlError::NotACrl(_) => ErrorKind::Failure,
        }
    }

    fn lint(lint: &'static str, message: String) -> Self {
        CrlError::Lint(LintReport(vec![LintFinding { lint, message }]))
    }
}

pub(crate) fn encoding(e: impl std::fmt::Display) -> CrlError {
    CrlError::Encoding(e.to_string())
}

/// A CA that signs a CRL: its certificate's subject (the DER bytes,
/// copied), its subjectKeyIdentifier, its public key, and its key. Any CA
/// certificate with cRLSign: an issuing CA, or the root for its ARL.
#[derive(Debug)]
pub struct CrlIssuer<'a> {
    signer: &'a dyn Signer,
    subject_der: Vec<u8>,
    key_identifier: Vec<u8>,
    /// The issuer certificate's SubjectPublicKeyInfo.
    certificate_spki: Vec<u8>,
    /// The key of the CA certificate (not the signer's word for it): the
    /// lint checks the algorithm against it and the signature is verified
    /// with it.
    certificate_key: VerifyingKey,
}

impl<'a> CrlIssuer<'a> {
    /// The issuer `certificate_der` with its key `signer`. Refuses a
    /// certificate that is not a CA with cRLSign and a subjectKeyIdentifier,
    /// and a key that is not the certificate's.
    pub fn new(certificate_der: &[u8], signer: &'a dyn Signer) -> Result<Self, CrlError> {
        let issuer = |m: String| CrlError::Issuer(m);
        let certificate = x509_cert::Certificate::from_der(certificate_der)
            .map_err(|e| issuer(format!("not a DER certificate: {e}")))?;
        let tbs = certificate.tbs_certificate();
        let spki_der = tbs
            .subject_public_key_info()
            .to_der()
            .map_err(|e| issuer(e.to_string()))?;
        if spki_der != signer.public_key_der() {
            return Err(issuer(format!(
                "the key does not belong to the certificate of {}",
                tbs.subject()
            )));
        }
        let is_ca = matches!(tbs.get_extension::<BasicConstraints>(), Ok(Some((_, bc))) if bc.ca);
        let can_sign_crls = matches!(tbs.get_extension::<KeyUsage>(), Ok(Some((_, ku))) if ku.0.contains(KeyUsages::CRLSign));
        if !is_ca || !can_sign_crls {
            return Err(issuer(format!(
                "{} is not a CA certificate with cRLSign",
                tbs.subject()
            )));
        }
        let key_identifier = match tbs.get_extension::<SubjectKeyIdentifier>() {
            Ok(Some((_, ski))) => ski.0.as_bytes().to_vec(),
            _ => {
                return Err(issuer(format!(
                    "{} has no subjectKeyIdentifier",
                    tbs.subject()
                )))
            }
        };
        let subject_der = subject_der(certificate_der)
            .map_err(|e| issuer(format!("cannot find the subject: {e}")))?
            .to_vec();
        let certificate_key = VerifyingKey::new(&spki_der, signer.algorithm())?;
        Ok(Self {
            signer,
            subject_der,
            key_identifier,
            certificate_spki: spki_der,
            certificate_key,
        })
    }

    /// The DER of the issuer certificate's subject, as it is in the
    /// certificate: the CRL's issuer field holds these bytes.
    pub fn subject_der(&self) -> &[u8] {
        &self.subject_der
    }

    /// The issuer certificate's subjectKeyIdentifier: the CRL's
    /// authorityKeyIdentifier, and how the journal names the issuer.
    pub fn key_identifier(&self) -> &[u8] {
        &self.key_identifier
    }
}

/// The subject field of a DER certificate, its bytes as they are: the
/// sixth field of the TBSCertificate (the fifth without a version).
fn subject_der(certificate_der: &[u8]) -> der::Result<&[u8]> {
    let certificate = AnyRef::from_der(certificate_der)?;
    let tbs = SliceReader::new(certificate.value())?.decode::<AnyRef<'_>>()?;
    let fields = tbs.value();
    let mut reader = SliceReader::new(fields)?;
    let first = reader.decode::<AnyRef<'_>>()?;
    // serial, signature, issuer, validity — with a version, serial is next.
    let version = Tag::ContextSpecific {
        constructed: true,
        number: der::TagNumber(0),
    };
    let skip = if first.tag() == version { 4 } else { 3 };
    for _ in 0..skip {
        reader.decode::<AnyRef<'_>>()?;
    }
    let start = usize::try_from(reader.position())?;
    let subject = reader.decode::<AnyRef<'_>>()?;
    let end = start + usize::try_from(subject.encoded_len()?)?;
    fields
        .get(start..end)
        .ok_or_else(|| der::Tag::Sequence.length_error().into())
}

/// What a CRL says besides its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlInfo {
    /// The cRLNumber, from the journal (allocated, durably, before signing).
    pub number: u64,
    /// When this CRL is issued.
    pub this_update: OffsetDateTime,
    /// By when the next CRL will be issued; after `this_update`.
    pub next_update: OffsetDateTime,
}

/// Room kept at the front of the output for the CertificateList's and the
/// TBSCertList's headers (each at most 6 octets: a CRL stays below 4 GiB).
const FRONT_ROOM: usize = 12;
/// Room kept after the head for the revokedCertificates header.
const LIST_ROOM: usize = 6;

/// A CRL being built: its head encoded and linted, its entries appended one
/// by one, in strictly increasing serial order.
#[derive(Debug)]
pub struct CrlBuilder<'i, 'a> {
    issuer: &'i CrlIssuer<'a>,
    info: CrlInfo,
    out: Vec<u8>,
    head_len: usize,
    /// The previous entry's serial (a DER INTEGER's content octets, at
    /// most 20): what the next must exceed.
    last_serial: ([u8; encode::MAX_SERIAL_LEN], usize),
    entries: u64,
}

impl<'i, 'a> CrlBuilder<'i, 'a> {
    /// Starts a CRL of `issuer`: encodes version, signature algorithm,
    /// issuer, thisUpdate and nextUpdate, and lints them.
    pub fn start(issuer: &'i CrlIssuer<'a>, info: CrlInfo) -> Result<Self, CrlError> {
        let mut out = vec![0u8; FRONT_ROOM];
        encode::head(&mut out, issuer, &info)?;
        let head_len = out.len() - FRONT_ROOM;
        lint::head(&out[FRONT_ROOM..], issuer, &info)?;
        out.resize(out.len() + LIST_ROOM, 0);
        Ok(Self {
            issuer,
            info,
            out,
            head_len,
            last_serial: ([0; encode::MAX_SERIAL_LEN], 0),
            entries: 0,
        })
    }

    /// Appends one entry. Refuses (a lint) an entry whose serial is not
    /// greater than the one before — out of order, or a duplicate — or
    /// is not a valid serial, and an entry beyond [`MAX_ENTRIES`].
    pub fn push(&mut self, entry: &RevokedEntry) -> Result<(), CrlError> {
        let serial = entry.serial.as_slice();
        lint::serial(serial)?;
        let (last, last_len) = &self.last_serial;
        if self.entries > 0 {
            lint::increasing(&last[..*last_len], serial)?;
        }
        if self.entries >= MAX_ENTRIES {
            return Err(CrlError::lint(
                "crl.entry_count",
                format!("more than {MAX_ENTRIES} entries"),
            ));
        }
        encode::entry(&mut self.out, entry)?;
        self.last_serial.0[..serial.len()].copy_from_slice(serial);
        self.last_serial.1 = serial.len();
        self.entries += 1;
        Ok(())
    }

    /// Pushes every entry a callback-style source hands over — the shape
    /// of the journal's `revoked_entries`, which calls `each` once per row
    /// in serial order and returns how many rows it gave. On the first
    /// refused entry the source is stopped with `stop(&refusal)` (an error
    /// of its own type) and the refusal is returned, not the source's
    /// error. A count that differs from the entries received is refused.
    pub fn push_from<E>(
        &mut self,
        source: impl FnOnce(&mut dyn FnMut(RevokedEntry) -> Result<(), E>) -> Result<u64, E>,
        stop: impl Fn(&CrlError) -> E,
    ) -> Result<u64, BuildError<E>> {
        let before = self.entries;
        let mut refusal = None;
        let given = source(&mut |entry| {
            self.push(&entry).map_err(|error| {
                let stopped = stop(&error);
                refusal = Some(error);
                stopped
            })
        });
        if let Some(refusal) = refusal {
            return Err(BuildError::Crl(refusal));
        }
        let given = given.map_err(BuildError::Source)?;
        let received = self.entries - before;
        if given != received {
            return Err(BuildError::Crl(CrlError::Encoding(format!(
                "the source reported {given} entries but handed over {received}"
            ))));
        }
        Ok(received)
    }

    /// How many entries were pushed.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Closes the list, adds and lints the CRL extensions, signs the
    /// TBSCertList with the issuer's key and verifies the signature with
    /// the issuer certificate's key.
    pub fn finish(self) -> Result<SignedCrl, CrlError> {
        let CrlBuilder {
            issuer,
            info,
            mut out,
            head_len,
            entries,
            ..
        } = self;
        let head_start = FRONT_ROOM;
        let list_start = head_start + head_len + LIST_ROOM;
        // revokedCertificates is left out entirely when empty (RFC 5280 §5.1.2.6).
        let list_header = if entries == 0 {
            Vec::new()
        } else {
            encode::header(Tag::Sequence, out.len() - list_start)?
        };
        // The list header goes right before the entries, the head right
        // before it: the gap left is at the front, and the TBS is one slice.
        let header_start = list_start - list_header.len();
        out[header_start..list_start].copy_from_slice(&list_header);
        let tbs_content_start = header_start - head_len;
        out.copy_within(head_start..head_start + head_len, tbs_content_start);
        let extensions_start = out.len();
        encode::crl_extensions(&mut out, issuer, info.number)?;
        lint::extensions(&out[extensions_start..], issuer, info.number)?;

        let tbs_header = encode::header(Tag::Sequence, out.len() - tbs_content_start)?;
        let tbs_start = tbs_content_start - tbs_header.len();
        out[tbs_start..tbs_content_start].copy_from_slice(&tbs_header);
        let tbs_end = out.len();

        let signature = issuer.signer.sign(&out[tbs_start..tbs_end])?;
        issuer
            .certificate_key
            .verify(&out[tbs_start..tbs_end], &signature)
            .map_err(|e| CrlError::SignatureCheck(e.to_string()))?;
        encode::signature(&mut out, issuer.signer.algorithm(), &signature)?;

        let outer_header = encode::header(Tag::Sequence, out.len() - tbs_start)?;
        let start = tbs_start
            .checked_sub(outer_header.len())
            .ok_or_else(|| CrlError::Encoding("the CRL outgrew the room for its headers".into()))?;
        out[start..tbs_start].copy_from_slice(&outer_header);
        Ok(SignedCrl {
            out,
            start,
            entries,
            number: info.number,
        })
    }
}

/// Builds a whole CRL from `entries`, in serial order: [`CrlBuilder`]
/// start, push each, finish. An entry source's own error stops the build
/// as [`BuildError::Source`].
pub fn build<E>(
    issuer: &CrlIssuer<'_>,
    info: CrlInfo,
    entries: impl IntoIterator<Item = Result<RevokedEntry, E>>,
) -> Result<SignedCrl, BuildError<E>> {
    let mut builder = CrlBuilder::start(issuer, info)?;
    for entry in entries {
        builder.push(&entry.map_err(BuildError::Source)?)?;
    }
    Ok(builder.finish()?)
}

/// Why [`build`] stopped: the CRL's own refusal, or its entry source's error.
#[derive(Debug, thiserror::Error)]
pub enum BuildError<E> {
    /// The CRL was refused or could not be signed.
    #[error(transparent)]
    Crl(#[from] CrlError),
    /// The entries could not be read.
    #[error("reading the revoked entries: {0}")]
    Source(E),
}

/// A signed, verified CRL.
#[derive(Debug)]
pub struct SignedCrl {
    /// The output buffer; the CRL starts at `start` (the room kept for
    /// headers before it is not copied away).
    out: Vec<u8>,
    start: usize,
    entries: u64,
    number: u64,
}

impl SignedCrl {
    /// The DER CertificateList.
    pub fn der(&self) -> &[u8] {
        &self.out[self.start..]
    }

    /// How many certificates it lists.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Its cRLNumber.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// SHA-256 of the DER, lower-case hex (what the journal records).
    pub fn sha256_hex(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.der());
        digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests;
