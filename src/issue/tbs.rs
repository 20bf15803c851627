//! The to-be-signed certificate: an RFC 5280 `TBSCertificate` whose fields we
//! own, built from a profile, a subject, a public key and the issuer.
//!
//! x509-cert keeps its TBS fields private, so certmint declares the same
//! ASN.1 structure here from x509-cert's public field types. The DER of this
//! struct is what the linter reads and what the CA key signs, byte for byte.

use const_oid::db::rfc5280::{ID_AD_CA_ISSUERS, ID_AD_OCSP, ID_QT_CPS, ID_QT_UNOTICE};
use const_oid::AssociatedOid;
use der::asn1::{
    Any, BitString, BmpString, Ia5String, Int, OctetString, PrintableString, Utf8StringRef,
};
use der::{DateTime, Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::certpolicy::{PolicyInformation, PolicyQualifierInfo};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CertificatePolicies, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, Extensions};
use x509_cert::name::{RdnSequence, RelativeDistinguishedName};

use super::validity::{self, Validity};
use super::IssueError;
use crate::profile::{PolicySpec, Profile, StringType, Subject, SubjectAttribute};
use crate::signer::{KeyType, SignatureAlgorithm};

/// RFC 5280 `TBSCertificate`.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct TbsCertificate {
    /// Always v3 for what certmint issues.
    #[asn1(context_specific = "0", default = "Default::default")]
    pub version: Version,
    /// Kept as a signed INTEGER so that the linter sees exactly what is encoded.
    pub serial_number: Int,
    /// Must equal the outer signatureAlgorithm.
    pub signature: AlgorithmIdentifierOwned,
    /// The issuing CA's subject.
    pub issuer: RdnSequence,
    /// notBefore / notAfter.
    pub validity: Validity,
    /// The certificate holder.
    pub subject: RdnSequence,
    /// The certified public key.
    pub subject_public_key_info: SubjectPublicKeyInfoOwned,
    /// Never set by certmint (RFC 5280 §4.1.2.8).
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub issuer_unique_id: Option<BitString>,
    /// Never set by certmint (RFC 5280 §4.1.2.8).
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", optional = "true")]
    pub subject_unique_id: Option<BitString>,
    /// The extensions.
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    pub extensions: Option<Extensions>,
}

/// What the TBS needs to know about its issuer. Derived once from the CA
/// certificate (or, for a root, from its own subject), not per certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerIdentity {
    /// The issuer's subject name, as encoded in its certificate.
    pub name: RdnSequence,
    /// The issuer's subjectKeyIdentifier; `None` for a self-signed root,
    /// whose certificate then carries no authorityKeyIdentifier.
    pub key_identifier: Option<Vec<u8>>,
    /// The issuer certificate's notAfter; `None` for a self-signed root.
    pub not_after: Option<DateTime>,
    /// The algorithm the issuer's key signs with.
    pub signature_algorithm: SignatureAlgorithm,
}

/// UserNotice with only an explicitText, as a BMPString (the Kamu SM form;
/// x509-cert's `DisplayText` has no BMPString variant).
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
pub struct BmpUserNotice {
    /// The notice text.
    pub explicit_text: BmpString,
}

fn encoding<E: std::fmt::Display>(e: E) -> IssueError {
    IssueError::Encoding(e.to_string())
}

/// The key identifier of a public key: SHA-1 of the subjectPublicKey bits
/// (RFC 5280 §4.2.1.2 method 1, as Kamu SM's certificates use).
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        spki.subject_public_key.raw_bytes(),
    );
    digest.as_ref().to_vec()
}

/// Encodes a subject's attributes, one per RDN, in order.
pub fn encode_name(attributes: &[SubjectAttribute]) -> Result<RdnSequence, IssueError> {
    let mut name = RdnSequence::default();
    for attribute in attributes {
        let value = match attribute.string_type {
            StringType::Printable => {
                Any::encode_from(&PrintableString::new(&attribute.value).map_err(|_| {
                    IssueError::Encoding(format!(
                        "{:?} cannot be a PrintableString (letters, digits and ' ()+,-./:=? only)",
                        attribute.value
                    ))
                })?)
            }
            StringType::Utf8 => {
                Any::encode_from(&Utf8StringRef::new(&attribute.value).map_err(encoding)?)
            }
        }
        .map_err(encoding)?;
        let rdn = RelativeDistinguishedName::try_from(vec![AttributeTypeAndValue {
            oid: attribute.oid,
            value,
        }])
        .map_err(encoding)?;
        name.push(rdn);
    }
    Ok(name)
}

fn extension<T: Encode + AssociatedOid>(
    value: &T,
    critical: bool,
) -> Result<Extension, IssueError> {
    Ok(Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der().map_err(encoding)?).map_err(encoding)?,
    })
}

fn uri(url: &str) -> Result<GeneralName, IssueError> {
    Ok(GeneralName::UniformResourceIdentifier(
        Ia5String::new(url).map_err(encoding)?,
    ))
}

fn policies(policy: &PolicySpec) -> Result<CertificatePolicies, IssueError> {
    let mut qualifiers = Vec::new();
    if let Some(cps) = &policy.cps_uri {
        qualifiers.push(PolicyQualifierInfo {
            policy_qualifier_id: ID_QT_CPS,
            qualifier: Some(
                Any::encode_from(&Ia5String::new(cps).map_err(encoding)?).map_err(encoding)?,
            ),
        });
    }
    if let Some(text) = &policy.user_notice {
        let notice = BmpUserNotice {
            explicit_text: BmpString::from_utf8(text).map_err(encoding)?,
        };
        qualifiers.push(PolicyQualifierInfo {
            policy_qualifier_id: ID_QT_UNOTICE,
            qualifier: Some(Any::encode_from(&notice).map_err(encoding)?),
        });
    }
    Ok(CertificatePolicies(vec![PolicyInformation {
        policy_identifier: policy.oid,
        policy_qualifiers: (!qualifiers.is_empty()).then_some(qualifiers),
    }]))
}

/// The extensions `profile` prescribes for a subject key of `key_type`.
pub fn extensions(
    profile: &Profile,
    key_type: KeyType,
    spki: &SubjectPublicKeyInfoOwned,
    issuer: &IssuerIdentity,
) -> Result<Extensions, IssueError> {
    let mut extensions = vec![
        extension(
            &BasicConstraints {
                ca: profile.ca.is_some(),
                path_len_constraint: profile.ca.flatten(),
            },
            true,
        )?,
        extension(&KeyUsage(profile.key_usage_for(key_type)), true)?,
    ];
    if !profile.extended_key_usage.is_empty() {
        extensions.push(extension(
            &ExtendedKeyUsage(profile.extended_key_usage.clone()),
            false,
        )?);
    }
    if let Some(policy) = &profile.policy {
        extensions.push(extension(&policies(policy)?, false)?);
    }
    extensions.push(extension(
        &SubjectKeyIdentifier(OctetString::new(key_identifier(spki)).map_err(encoding)?),
        false,
    )?);
    if let Some(issuer_key_id) = &issuer.key_identifier {
        extensions.push(extension(
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(issuer_key_id.clone()).map_err(encoding)?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
            false,
        )?);
    }
    if let Some(crl) = &profile.crl_url {
        extensions.push(extension(
            &CrlDistributionPoints(vec![DistributionPoint {
                distribution_point: Some(DistributionPointName::FullName(vec![uri(crl)?])),
                reasons: None,
                crl_issuer: None,
            }]),
            false,
        )?);
    }
    let mut access = Vec::new();
    if let Some(url) = &profile.ca_issuers_url {
        access.push(AccessDescription {
            access_method: ID_AD_CA_ISSUERS,
            access_location: uri(url)?,
        });
    }
    if let Some(url) = &profile.ocsp_url {
        access.push(AccessDescription {
            access_method: ID_AD_OCSP,
            access_location: uri(url)?,
        });
    }
    if !access.is_empty() {
        extensions.push(extension(&AuthorityInfoAccessSyntax(access), false)?);
    }
    Ok(extensions)
}

/// Builds the TBS certificate for `subject`'s key `spki_der` under `profile`.
/// The key must already be known to be acceptable (see `CertificateAuthority::prepare`).
pub fn build(
    profile: &Profile,
    subject: &Subject,
    spki_der: &[u8],
    key_type: KeyType,
    issuer: &IssuerIdentity,
    serial_number: Int,
    not_before: DateTime,
) -> Result<TbsCertificate, IssueError> {
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der).map_err(encoding)?;
    Ok(TbsCertificate {
        version: Version::V3,
        serial_number,
        signature: issuer.signature_algorithm.algorithm_identifier(),
        issuer: issuer.name.clone(),
        validity: validity::validity(not_before, profile.validity_years)?,
        subject: encode_name(&subject.attributes())?,
        extensions: Some(extensions(profile, key_type, &spki, issuer)?),
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
    })
}
