//! The CRL's lints (RFC 5280 §5 and the national profile for CRLs, "SİL"):
//! run before the CA key signs. The head and the CRL extensions are decoded
//! back from the bytes that will be signed and checked against the issuer
//! certificate; each entry is checked as it streams in, so that the checks
//! needing the whole list (strictly increasing serials, hence no duplicate)
//! keep only the previous serial.
//!
//! Hold and removeFromCRL need no lint: [`crate::revocation::RevocationReason`]
//! cannot hold them, so no entry can carry them.

use std::cmp::Ordering;

use der::asn1::AnyRef;
use der::{Decode, Reader, SliceReader, Tag, TagNumber, Tagged};
use spki::AlgorithmIdentifierOwned;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber};
use x509_cert::ext::{Extension, Extensions};
use x509_cert::time::Time;

use super::{encode, CrlError, CrlInfo, CrlIssuer};
use crate::issue::lint::{LintFinding, LintReport};
use crate::signer::{SignatureAlgorithm, VerifyingKey};

/// The most content octets of a cRLNumber (RFC 5280 §5.2.3).
pub const MAX_CRL_NUMBER_LEN: usize = 20;

struct Findings(Vec<LintFinding>);

impl Findings {
    fn add(&mut self, lint: &'static str, message: impl Into<String>) {
        self.0.push(LintFinding {
            lint,
            message: message.into(),
        });
    }

    fn into_result(self) -> Result<(), CrlError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(CrlError::Lint(LintReport(self.0)))
        }
    }
}

/// A serial an entry may carry: the content octets of a DER INTEGER that is
/// positive, minimal and at most 20 octets long (RFC 5280 §4.1.2.2).
pub fn serial(serial: &[u8]) -> Result<(), CrlError> {
    let problem = match serial {
        [] => Some("is empty"),
        s if s.len() > encode::MAX_SERIAL_LEN => Some("is longer than 20 octets"),
        [first, ..] if first & 0x80 != 0 => Some("is negative"),
        [0] => Some("is zero"),
        [0, second, ..] if second & 0x80 == 0 => Some("has a superfluous leading zero"),
        _ => None,
    };
    match problem {
        Some(problem) => Err(CrlError::lint(
            "crl.serial",
            format!(
                "entry serial {} {problem}",
                crate::pem::hex(&serial[..serial.len().min(encode::MAX_SERIAL_LEN + 1)])
            ),
        )),
        None => Ok(()),
    }
}

/// The order of two serials as integers: a longer minimal encoding is a
/// larger number; of equal length, the octets decide.
pub fn serial_order(a: &[u8], b: &[u8]) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Entries come in strictly increasing serial order: a serial equal to the
/// one before is a duplicate, a smaller one is out of order.
pub(crate) fn increasing(previous: &[u8], next: &[u8]) -> Result<(), CrlError> {
    let hex = crate::pem::hex;
    match serial_order(previous, next) {
        Ordering::Less => Ok(()),
        Ordering::Equal => Err(CrlError::lint(
            "crl.duplicate_serial",
            format!("serial {} is listed twice", hex(next)),
        )),
        Ordering::Greater => Err(CrlError::lint(
            "crl.entries_sorted",
            format!(
                "serial {} comes after {}: entries must be in increasing serial order",
                hex(next),
                hex(previous)
            ),
        )),
    }
}

/// Whether `time` is encoded as RFC 5280 §5.1.2.4 requires: UTCTime
/// through 2049, GeneralizedTime from 2050.
fn time_encoded_right(time: &Time) -> bool {
    match time {
        Time::UtcTime(t) => t.to_date_time().year() < 2050,
        Time::GeneralTime(t) => t.to_date_time().year() >= 2050,
    }
}

/// Lints the head (version through nextUpdate) as encoded in `head`.
pub(crate) fn head(head: &[u8], issuer: &CrlIssuer<'_>, info: &CrlInfo) -> Result<(), CrlError> {
    let mut findings = Findings(Vec::new());
    if let Err(e) = head_fields(head, issuer, &mut findings) {
        findings.add(
            "crl.structure",
            format!("the CRL head does not decode: {e}"),
        );
    }
    if info.next_update <= info.this_update {
        findings.add(
            "crl.next_update",
            format!(
                "nextUpdate {} is not after thisUpdate {}",
                info.next_update, info.this_update
            ),
        );
    }
    findings.into_result()
}

fn head_fields(head: &[u8], issuer: &CrlIssuer<'_>, findings: &mut Findings) -> der::Result<()> {
    let mut reader = SliceReader::new(head)?;
    let version = reader.decode::<u8>()?;
    if version != 1 {
        findings.add(
            "crl.version",
            format!("version is {}, not v2 (1)", u32::from(version) + 1),
        );
    }
    let algorithm = reader.decode::<AlgorithmIdentifierOwned>()?;
    match SignatureAlgorithm::from_algorithm_identifier(&algorithm) {
        Some(alg) if VerifyingKey::new(&issuer.certificate_spki, alg).is_ok() => {}
        Some(alg) => findings.add(
            "crl.signature_algorithm",
            format!("{alg} does not fit the issuer certificate's key"),
        ),
        None => findings.add(
            "crl.signature_algorithm",
            format!(
                "signature algorithm {} is not one certmint signs with",
                algorithm.oid
            ),
        ),
    }
    let position = usize::try_from(reader.position())?;
    let name = reader.decode::<AnyRef<'_>>()?;
    let name_end = position + usize::try_from(der::Encode::encoded_len(&name)?)?;
    if head.get(position..name_end) != Some(issuer.subject_der()) {
        findings.add(
            "crl.issuer_name",
            "the issuer name is not byte-identical to the CA certificate's subject",
        );
    }
    for what in ["thisUpdate", "nextUpdate"] {
        if reader.is_finished() {
            findings.add("crl.next_update", format!("{what} is missing"));
            break;
        }
        let time = reader.decode::<Time>()?;
        if !time_encoded_right(&time) {
            findings.add(
                "crl.time_encoding",
                format!("{what} {time} must be UTCTime through 2049 and GeneralizedTime after"),
            );
        }
    }
    reader.finish()
}

/// Lints the CRL extensions as encoded in `encoded` (`[0] EXPLICIT
/// Extensions`): authorityKeyIdentifier with the issuer's key identifier,
/// cRLNumber of `number` in at most 20 octets, both non-critical, each once.
pub(crate) fn extensions(
    encoded: &[u8],
    issuer: &CrlIssuer<'_>,
    number: u64,
) -> Result<(), CrlError> {
    let mut findings = Findings(Vec::new());
    match decode_extensions(encoded) {
        Err(e) => findings.add(
            "crl.structure",
            format!("the CRL extensions do not decode: {e}"),
        ),
        Ok(extensions) => check_extensions(&extensions, issuer, number, &mut findings),
    }
    findings.into_result()
}

fn decode_extensions(encoded: &[u8]) -> der::Result<Extensions> {
    let wrapper = AnyRef::from_der(encoded)?;
    let expected = Tag::ContextSpecific {
        constructed: true,
        number: TagNumber(0),
    };
    if wrapper.tag() != expected {
        return Err(wrapper.tag().unexpected_error(Some(expected)).into());
    }
    Extensions::from_der(wrapper.value())
}

fn check_extensions(
    extensions: &[Extension],
    issuer: &CrlIssuer<'_>,
    number: u64,
    findings: &mut Findings,
) {
    use const_oid::AssociatedOid;
    for (i, extension) in extensions.iter().enumerate() {
        if extensions[..i]
            .iter()
            .any(|e| e.extn_id == extension.extn_id)
        {
            findings.add(
                "crl.extensions",
                format!("extension {} appears twice", extension.extn_id),
            );
        }
    }
    let find = |oid| extensions.iter().find(|e| e.extn_id == oid);
    match find(AuthorityKeyIdentifier::OID) {
        None => findings.add(
            "crl.authority_key_identifier",
            "authorityKeyIdentifier is missing",
        ),
        Some(extension) => {
            let key_id = AuthorityKeyIdentifier::from_der(extension.extn_value.as_bytes())
                .ok()
                .and_then(|aki| aki.key_identifier);
            if extension.critical
                || key_id.as_ref().map(|k| k.as_bytes()) != Some(issuer.key_identifier())
            {
                findings.add(
                    "crl.authority_key_identifier",
                    "authorityKeyIdentifier must be non-critical and hold the issuer's subjectKeyIdentifier",
                );
            }
        }
    }
    match find(CrlNumber::OID) {
        None => findings.add("crl.crl_number", "cRLNumber is missing"),
        Some(extension) => match CrlNumber::from_der(extension.extn_value.as_bytes()) {
            Err(e) => findings.add("crl.crl_number", format!("cRLNumber does not decode: {e}")),
            Ok(crl_number) => {
                let octets = crl_number.0.as_bytes();
                if octets.len() > MAX_CRL_NUMBER_LEN {
                    findings.add(
                        "crl.crl_number",
                        format!("cRLNumber has {} octets, more than 20", octets.len()),
                    );
                }
                let value = octets
                    .iter()
                    .try_fold(0u64, |v, b| v.checked_mul(256).map(|v| v | u64::from(*b)));
                if extension.critical || value != Some(number) {
                    findings.add(
                        "crl.crl_number",
                        format!("cRLNumber must be non-critical and {number}"),
                    );
                }
            }
        },
    }
}
