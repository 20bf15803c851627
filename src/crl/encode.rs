//! The CRL's DER, written by hand around `der`'s encoders: x509-cert's
//! `TbsCertList` holds its entries in a `Vec`, which would keep every entry
//! in memory twice (the list and its encoding). Here each entry is encoded
//! straight into the output buffer and forgotten; the headers whose lengths
//! depend on the whole list are written into room kept for them
//! ([`super::CrlBuilder::finish`]). Values (times, algorithm identifiers,
//! extensions of the CRL itself) go through `der` and x509-cert; only the
//! TLV headers and the two per-entry extensions are laid out here, and the
//! unit tests decode the result with x509-cert.

use const_oid::db::rfc5280::{
    ID_CE_AUTHORITY_KEY_IDENTIFIER, ID_CE_CRL_NUMBER, ID_CE_CRL_REASONS, ID_CE_INVALIDITY_DATE,
};
use der::asn1::{BitString, GeneralizedTime, OctetString};
use der::{DateTime, Encode, Tag};
use time::OffsetDateTime;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, CrlNumber};
use x509_cert::ext::Extension;

use super::{encoding, CrlError, CrlInfo, CrlIssuer};
use crate::revocation::{RevocationReason, RevokedEntry};
use crate::signer::SignatureAlgorithm;

/// The most content octets of a serial (RFC 5280 §4.1.2.2).
pub(crate) const MAX_SERIAL_LEN: usize = 20;

/// The header of a `tag` TLV of `length` content octets: one identifier
/// octet (every tag here has a number below 31), then the DER length —
/// short form below 128, else 0x80 + the count of big-endian octets, no
/// leading zero. Lengths of 4 GiB and more are refused, so a header is at
/// most 6 octets.
pub(crate) fn header(tag: Tag, length: usize) -> Result<Vec<u8>, CrlError> {
    let length = u32::try_from(length)
        .map_err(|_| CrlError::Encoding(format!("{length} octets: a CRL stays below 4 GiB")))?;
    let identifier =
        tag.class() as u8 | (u8::from(tag.is_constructed()) << 5) | tag.number().value() as u8;
    let mut out = vec![identifier];
    if length < 0x80 {
        out.push(length as u8);
    } else {
        let octets = length.to_be_bytes();
        let skip = octets.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (octets.len() - skip) as u8);
        out.extend_from_slice(&octets[skip..]);
    }
    Ok(out)
}

/// Appends a `tag` TLV whose content `content` appends, when that content
/// is shorter than 128 octets (one length octet, patched afterwards): every
/// entry and its parts are.
fn small(
    out: &mut Vec<u8>,
    tag: u8,
    content: impl FnOnce(&mut Vec<u8>) -> Result<(), CrlError>,
) -> Result<(), CrlError> {
    out.push(tag);
    let length_at = out.len();
    out.push(0);
    content(out)?;
    let length = out.len() - length_at - 1;
    out[length_at] = u8::try_from(length)
        .ok()
        .filter(|l| *l < 0x80)
        .ok_or_else(|| CrlError::Encoding(format!("an entry part of {length} octets")))?;
    Ok(())
}

const SEQUENCE: u8 = 0x30;
const OCTET_STRING: u8 = 0x04;
const INTEGER: u8 = 0x02;
const ENUMERATED: u8 = 0x0a;

/// A time as der's `DateTime`, whole seconds (a CRL's times carry no
/// fractions); times before 1970 or after 9999 are refused by the lint.
pub(crate) fn date_time(at: OffsetDateTime, what: &str) -> Result<DateTime, CrlError> {
    u64::try_from(at.unix_timestamp())
        .ok()
        .and_then(|seconds| {
            DateTime::from_unix_duration(std::time::Duration::from_secs(seconds)).ok()
        })
        .ok_or_else(|| {
            CrlError::lint(
                "crl.time_range",
                format!("{what} {at} is outside 1970–9999"),
            )
        })
}

/// Appends a Time: UTCTime through 2049, GeneralizedTime from 2050
/// (RFC 5280 §5.1.2.4, as for certificates).
fn time(out: &mut Vec<u8>, at: OffsetDateTime, what: &str) -> Result<(), CrlError> {
    let at = date_time(at, what)?;
    crate::issue::validity::rfc5280_time(at)
        .map_err(encoding)?
        .encode_to_vec(out)
        .map_err(encoding)?;
    Ok(())
}

/// Appends version (v2), signature, issuer, thisUpdate and nextUpdate.
pub(crate) fn head(
    out: &mut Vec<u8>,
    issuer: &CrlIssuer<'_>,
    info: &CrlInfo,
) -> Result<(), CrlError> {
    // Version ::= INTEGER { v1(0), v2(1) }: v2.
    out.extend_from_slice(&[INTEGER, 1, 1]);
    issuer
        .signer
        .algorithm()
        .algorithm_identifier()
        .encode_to_vec(out)
        .map_err(encoding)?;
    out.extend_from_slice(issuer.subject_der());
    time(out, info.this_update, "thisUpdate")?;
    time(out, info.next_update, "nextUpdate")?;
    Ok(())
}

/// Appends one revokedCertificates entry: serial, revocationDate, and the
/// entry extensions reasonCode (left out for `unspecified`, RFC 5280
/// §5.3.1) and invalidityDate (always GeneralizedTime, §5.3.2) where known.
/// The serial was checked by the lint (1 to 20 octets, minimal, positive).
pub(crate) fn entry(out: &mut Vec<u8>, entry: &RevokedEntry) -> Result<(), CrlError> {
    small(out, SEQUENCE, |out| {
        small(out, INTEGER, |out| {
            out.extend_from_slice(&entry.serial);
            Ok(())
        })?;
        time(out, entry.revoked_at, "revocationDate")?;
        let reason = (entry.reason != RevocationReason::Unspecified).then_some(entry.reason);
        if reason.is_none() && entry.invalidity_date.is_none() {
            return Ok(());
        }
        small(out, SEQUENCE, |out| {
            if let Some(reason) = reason {
                small(out, SEQUENCE, |out| {
                    ID_CE_CRL_REASONS.encode_to_vec(out).map_err(encoding)?;
                    small(out, OCTET_STRING, |out| {
                        out.extend_from_slice(&[ENUMERATED, 1, reason.code()]);
                        Ok(())
                    })
                })?;
            }
            if let Some(invalid_since) = entry.invalidity_date {
                let at = date_time(invalid_since, "invalidityDate")?;
                small(out, SEQUENCE, |out| {
                    ID_CE_INVALIDITY_DATE.encode_to_vec(out).map_err(encoding)?;
                    small(out, OCTET_STRING, |out| {
                        GeneralizedTime::from_date_time(at)
                            .encode_to_vec(out)
                            .map_err(encoding)?;
                        Ok(())
                    })
                })?;
            }
            Ok(())
        })
    })
}

/// The CRL extensions, in this order: authorityKeyIdentifier (the issuer's
/// subjectKeyIdentifier), cRLNumber; both non-critical (RFC 5280 §5.2.1,
/// §5.2.3).
fn extension_list(issuer: &CrlIssuer<'_>, number: u64) -> Result<Vec<Extension>, der::Error> {
    let aki = AuthorityKeyIdentifier {
        key_identifier: Some(OctetString::new(issuer.key_identifier())?),
        authority_cert_issuer: None,
        authority_cert_serial_number: None,
    };
    Ok(vec![
        Extension {
            extn_id: ID_CE_AUTHORITY_KEY_IDENTIFIER,
            critical: false,
            extn_value: OctetString::new(aki.to_der()?)?,
        },
        Extension {
            extn_id: ID_CE_CRL_NUMBER,
            critical: false,
            extn_value: OctetString::new(CrlNumber::try_from(number)?.to_der()?)?,
        },
    ])
}

/// Appends `[0] EXPLICIT Extensions` with the CRL's extensions.
pub(crate) fn crl_extensions(
    out: &mut Vec<u8>,
    issuer: &CrlIssuer<'_>,
    number: u64,
) -> Result<(), CrlError> {
    let list = extension_list(issuer, number)
        .and_then(|list| list.to_der())
        .map_err(encoding)?;
    out.extend_from_slice(&header(
        Tag::ContextSpecific {
            constructed: true,
            number: der::TagNumber(0),
        },
        list.len(),
    )?);
    out.extend_from_slice(&list);
    Ok(())
}

/// Appends signatureAlgorithm and signatureValue.
pub(crate) fn signature(
    out: &mut Vec<u8>,
    algorithm: SignatureAlgorithm,
    signature: &[u8],
) -> Result<(), CrlError> {
    algorithm
        .algorithm_identifier()
        .encode_to_vec(out)
        .map_err(encoding)?;
    BitString::from_bytes(signature)
        .and_then(|bits| bits.encode_to_vec(out))
        .map_err(encoding)?;
    Ok(())
}
