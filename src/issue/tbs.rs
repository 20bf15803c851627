//! The to-be-signed certificate: an RFC 5280 `TBSCertificate` whose fields we
//! own, built from a profile, a subject, a public key and the issuer.
//!
//! x509-cert keeps its TBS fields private, so certmint declares the same
//! ASN.1 structure here from x509-cert's public field types.
//!
//! Certificates are encoded through a [`TbsTemplate`]: what one CA's
//! certificates of one profile and key type share (the signature algorithm,
//! the issuer, every extension but the subject key identifier) is built from
//! the typed structures below and DER-encoded once; each certificate then
//! encodes only its serial, validity, subject, key and key identifier, and
//! the parts are joined. The joined DER is what the linter reads and what the
//! CA key signs, byte for byte.

use const_oid::db::rfc5280::{ID_AD_CA_ISSUERS, ID_AD_OCSP, ID_QT_CPS, ID_QT_UNOTICE};
use const_oid::AssociatedOid;
use der::asn1::{Any, BitString, BmpString, Ia5String, Int, OctetString, PrintableStringRef};
use der::{DateTime, Decode, Encode, Sequence, Tag, TagNumber};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned, SubjectPublicKeyInfoRef};
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::certpolicy::{PolicyInformation, PolicyQualifierInfo};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints,
    CertificatePolicies, CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
};
use x509_cert::ext::{Extension, Extensions};
use x509_cert::name::RdnSequence;

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
///
/// The fields are read through methods: the two encodings are made once from
/// the name and the algorithm, and must stay theirs.
pub struct IssuerIdentity {
    name: RdnSequence,
    name_der: Vec<u8>,
    algorithm_der: Vec<u8>,
    key_identifier: Option<Vec<u8>>,
    not_after: Option<DateTime>,
    not_before: Option<DateTime>,
    signature_algorithm: SignatureAlgorithm,
}

impl IssuerIdentity {
    /// An issuer's identity. `key_identifier` and `not_after` are `None` for
    /// a self-signed root (whose certificate then carries no
    /// authorityKeyIdentifier).
    pub fn new(
        name: RdnSequence,
        key_identifier: Option<Vec<u8>>,
        not_after: Option<DateTime>,
        signature_algorithm: SignatureAlgorithm,
    ) -> Result<Self, IssueError> {
        Ok(Self {
            name_der: name.to_der().map_err(encoding)?,
            algorithm_der: signature_algorithm
                .algorithm_identifier()
                .to_der()
                .map_err(encoding)?,
            name,
            key_identifier,
            not_after,
            not_before: None,
            signature_algorithm,
        })
    }

    /// The issuer certificate's notBefore: nothing it signs may start
    /// earlier, before the CA existed.
    pub fn with_not_before(mut self, not_before: DateTime) -> Self {
        self.not_before = Some(not_before);
        self
    }

    /// The issuer certificate's notBefore, when known; `None` for a
    /// self-signed root.
    pub fn not_before(&self) -> Option<DateTime> {
        self.not_before
    }

    /// The issuer's subject name, as encoded in its certificate.
    pub fn name(&self) -> &RdnSequence {
        &self.name
    }

    /// The DER of [`IssuerIdentity::name`]: what the issuer field of its
    /// certificates holds.
    pub fn name_der(&self) -> &[u8] {
        &self.name_der
    }

    /// The DER of the signature algorithm's AlgorithmIdentifier.
    pub fn algorithm_der(&self) -> &[u8] {
        &self.algorithm_der
    }

    /// The issuer's subjectKeyIdentifier; `None` for a self-signed root.
    pub fn key_identifier(&self) -> Option<&[u8]> {
        self.key_identifier.as_deref()
    }

    /// The issuer certificate's notAfter; `None` for a self-signed root.
    pub fn not_after(&self) -> Option<DateTime> {
        self.not_after
    }

    /// The algorithm the issuer's key signs with.
    pub fn signature_algorithm(&self) -> SignatureAlgorithm {
        self.signature_algorithm
    }
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
    key_identifier_of_bits(spki.subject_public_key.raw_bytes())
}

/// The key identifier of the subjectPublicKey bits `bits`.
pub fn key_identifier_of_bits(bits: &[u8]) -> Vec<u8> {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, bits);
    digest.as_ref().to_vec()
}

/// Appends the header of a `tag` TLV of `length` content octets: the tag's
/// one identifier octet (every tag certmint writes has a number below 31),
/// then the DER length — short form below 128, else 0x80 + the count of
/// big-endian octets that follow, no leading zero. Written here rather than
/// through der's generic `Header` encoder because it runs ~20 times per
/// certificate on the hot path; the template test checks its output byte
/// for byte against der's encoding of the whole certificate.
fn put_header(out: &mut Vec<u8>, tag: Tag, length: usize) -> Result<(), IssueError> {
    let number = tag.number().value();
    if number >= 31 {
        return Err(encoding(format!(
            "tag {tag} needs the long identifier form"
        )));
    }
    out.push(tag.class() as u8 | (u8::from(tag.is_constructed()) << 5) | number as u8);
    if length < 0x80 {
        out.push(length as u8);
    } else {
        let octets = length.to_be_bytes();
        let skip = octets.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (octets.len() - skip) as u8);
        out.extend_from_slice(&octets[skip..]);
    }
    Ok(())
}

/// The size of a whole TLV of `length` content octets (one identifier
/// octet, as [`put_header`] writes).
fn tlv_len(length: usize) -> usize {
    let length_octets = if length < 0x80 {
        1
    } else {
        1 + (usize::BITS - length.leading_zeros()).div_ceil(8) as usize
    };
    1 + length_octets + length
}

/// The DER of a name holding `attributes`, one per RDN, in order: for each,
/// SET { SEQUENCE { type, value } }.
pub fn encode_name_der(attributes: &[SubjectAttribute]) -> Result<Vec<u8>, IssueError> {
    let value_tag = |attribute: &SubjectAttribute| match attribute.string_type {
        StringType::Printable => PrintableStringRef::new(attribute.value)
            .map(|_| Tag::PrintableString)
            .map_err(|_| {
                IssueError::Encoding(format!(
                    "{:?} cannot be a PrintableString (letters, digits and ' ()+,-./:=? only)",
                    attribute.value
                ))
            }),
        StringType::Utf8 => Ok(Tag::Utf8String),
    };
    let mut rdns = Vec::with_capacity(attributes.len() * 32);
    for attribute in attributes {
        let tag = value_tag(attribute)?;
        let oid = attribute.oid.as_bytes();
        let value = attribute.value.as_bytes();
        let type_and_value = tlv_len(oid.len()) + tlv_len(value.len());
        put_header(&mut rdns, Tag::Set, tlv_len(type_and_value))?;
        put_header(&mut rdns, Tag::Sequence, type_and_value)?;
        put_header(&mut rdns, Tag::ObjectIdentifier, oid.len())?;
        rdns.extend_from_slice(oid);
        put_header(&mut rdns, tag, value.len())?;
        rdns.extend_from_slice(value);
    }
    let mut out = Vec::with_capacity(tlv_len(rdns.len()));
    put_header(&mut out, Tag::Sequence, rdns.len())?;
    out.extend_from_slice(&rdns);
    Ok(out)
}

/// Encodes a subject's attributes, one per RDN, in order.
pub fn encode_name(attributes: &[SubjectAttribute]) -> Result<RdnSequence, IssueError> {
    RdnSequence::from_der(&encode_name_der(attributes)?).map_err(encoding)
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

fn subject_key_identifier(key_id: &[u8]) -> Result<Extension, IssueError> {
    extension(
        &SubjectKeyIdentifier(OctetString::new(key_id).map_err(encoding)?),
        false,
    )
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
    extensions_with_key_id(profile, key_type, &key_identifier(spki), issuer)
}

/// The extensions `profile` prescribes, with `key_id` as the subject key
/// identifier, in the order of the real Kamu SM certificates (domain.md §8):
/// authorityKeyIdentifier, subjectKeyIdentifier, keyUsage,
/// certificatePolicies, basicConstraints, extKeyUsage,
/// cRLDistributionPoints, authorityInfoAccess. Every profile uses the one
/// order; an extension a profile has no use for is left out in place.
fn extensions_with_key_id(
    profile: &Profile,
    key_type: KeyType,
    key_id: &[u8],
    issuer: &IssuerIdentity,
) -> Result<Extensions, IssueError> {
    let mut extensions = Vec::with_capacity(8);
    if let Some(issuer_key_id) = issuer.key_identifier() {
        extensions.push(extension(
            &AuthorityKeyIdentifier {
                key_identifier: Some(OctetString::new(issuer_key_id).map_err(encoding)?),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
            false,
        )?);
    }
    extensions.push(subject_key_identifier(key_id)?);
    extensions.push(extension(&KeyUsage(profile.key_usage_for(key_type)), true)?);
    if let Some(policy) = &profile.policy {
        extensions.push(extension(&policies(policy)?, false)?);
    }
    extensions.push(extension(
        &BasicConstraints {
            ca: profile.ca.is_some(),
            path_len_constraint: profile.ca.flatten(),
        },
        true,
    )?);
    if !profile.extended_key_usage.is_empty() {
        extensions.push(extension(
            &ExtendedKeyUsage(profile.extended_key_usage.clone()),
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

/// What the certificates of one CA, profile and subject key type share,
/// DER-encoded once (see the module documentation).
#[derive(Debug)]
pub struct TbsTemplate {
    profile: Profile,
    key_type: KeyType,
    signature: Vec<u8>,
    issuer: Vec<u8>,
    /// The extensions before and after the subject key identifier, encoded.
    extensions_before_key_id: Vec<u8>,
    extensions_after_key_id: Vec<u8>,
    /// The subject key identifier extension up to its last 20 octets: each
    /// certificate's SHA-1 identifier follows.
    key_id_extension_head: Vec<u8>,
}

/// The version field of every certificate certmint issues: `[0] EXPLICIT
/// INTEGER 2`, v3 (the template test compares it with der's encoding).
const VERSION_3: [u8; 5] = [0xa0, 0x03, 0x02, 0x01, 0x02];

/// The octets of a key identifier (SHA-1).
const KEY_ID_LEN: usize = 20;

impl TbsTemplate {
    /// Encodes what certificates of `profile` for `key_type` keys issued by
    /// `issuer` share.
    pub fn new(
        profile: &Profile,
        key_type: KeyType,
        issuer: &IssuerIdentity,
    ) -> Result<Self, IssueError> {
        // The real identifier is put in per certificate, in place of this one.
        let placeholder = [0x5a_u8; KEY_ID_LEN];
        let mut before = Vec::new();
        let mut after = Vec::new();
        let mut key_id_extension = Vec::new();
        for ext in extensions_with_key_id(profile, key_type, &placeholder, issuer)? {
            if ext.extn_id == SubjectKeyIdentifier::OID {
                ext.encode_to_vec(&mut key_id_extension).map_err(encoding)?;
            } else if !key_id_extension.is_empty() {
                ext.encode_to_vec(&mut after).map_err(encoding)?;
            } else {
                ext.encode_to_vec(&mut before).map_err(encoding)?;
            }
        }
        let Some(key_id_extension_head) = key_id_extension.strip_suffix(&placeholder) else {
            return Err(IssueError::Encoding(
                "the subject key identifier extension does not end with the identifier".into(),
            ));
        };
        Ok(Self {
            key_id_extension_head: key_id_extension_head.to_vec(),
            profile: profile.clone(),
            key_type,
            signature: issuer.algorithm_der().to_vec(),
            issuer: issuer.name_der().to_vec(),
            extensions_before_key_id: before,
            extensions_after_key_id: after,
        })
    }

    /// Whether this template is the one for `profile` and `key_type`.
    pub fn is_for(&self, profile: &Profile, key_type: KeyType) -> bool {
        self.key_type == key_type && self.profile == *profile
    }

    /// The DER of the TBS certificate for `subject`'s key `spki_der`. The key
    /// must already be known to be acceptable (see `CertificateAuthority::prepare`).
    ///
    /// `spki` is `spki_der` decoded. Decoding is strict DER, so the key's
    /// bytes are what encoding the decoded key would give: they are copied
    /// as they are. Returns the DER and where in it the key's bytes are.
    pub fn encode(
        &self,
        subject: &Subject,
        spki: &SubjectPublicKeyInfoRef<'_>,
        spki_der: &[u8],
        serial_number: &Int,
        not_before: DateTime,
    ) -> Result<(Vec<u8>, std::ops::Range<usize>), IssueError> {
        let key_id = key_identifier_of_bits(spki.subject_public_key.raw_bytes());
        let serial = serial_number.to_der().map_err(encoding)?;
        let validity = validity::validity_der(not_before, self.profile.validity_years)?;
        let subject = encode_name_der(&subject.attributes())?;

        let extensions_len = self.extensions_before_key_id.len()
            + self.key_id_extension_head.len()
            + key_id.len()
            + self.extensions_after_key_id.len();
        let extensions_tag = Tag::ContextSpecific {
            constructed: true,
            number: TagNumber(3),
        };
        let explicit_len = tlv_len(extensions_len);
        let fields: [&[u8]; 7] = [
            &VERSION_3,
            &serial,
            &self.signature,
            &self.issuer,
            &validity,
            &subject,
            spki_der,
        ];
        let content = fields.iter().map(|f| f.len()).sum::<usize>() + tlv_len(explicit_len);
        let mut out = Vec::with_capacity(tlv_len(content));
        put_header(&mut out, Tag::Sequence, content)?;
        for field in fields {
            out.extend_from_slice(field);
        }
        // The key is the last of the fields.
        let key_at = out.len() - spki_der.len()..out.len();
        put_header(&mut out, extensions_tag, explicit_len)?;
        put_header(&mut out, Tag::Sequence, extensions_len)?;
        out.extend_from_slice(&self.extensions_before_key_id);
        out.extend_from_slice(&self.key_id_extension_head);
        out.extend_from_slice(&key_id);
        out.extend_from_slice(&self.extensions_after_key_id);
        Ok((out, key_at))
    }
}

/// The DER of a certificate: its TBS bytes as they are, the signature
/// algorithm (`algorithm_der`, encoded) and the signature.
pub fn certificate_der(
    tbs_der: &[u8],
    algorithm_der: &[u8],
    signature: &[u8],
) -> Result<Vec<u8>, IssueError> {
    // BIT STRING: an octet of unused bits (none), then the signature.
    let bit_string_len = tlv_len(1 + signature.len());
    let content = tbs_der.len() + algorithm_der.len() + bit_string_len;
    let mut out = Vec::with_capacity(tlv_len(content));
    put_header(&mut out, Tag::Sequence, content)?;
    out.extend_from_slice(tbs_der);
    out.extend_from_slice(algorithm_der);
    put_header(&mut out, Tag::BitString, 1 + signature.len())?;
    out.push(0);
    out.extend_from_slice(signature);
    Ok(out)
}

/// Builds the TBS certificate for `subject`'s key `spki_der` under `profile`,
/// through a one-off [`TbsTemplate`] (for tools and tests that change fields).
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
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der).map_err(encoding)?;
    let (der, _key_at) = TbsTemplate::new(profile, key_type, issuer)?.encode(
        subject,
        &spki,
        spki_der,
        &serial_number,
        not_before,
    )?;
    TbsCertificate::from_der(&der).map_err(encoding)
}

#[cfg(test)]
mod tests {
    use der::asn1::{PrintableString, Utf8StringRef};
    use x509_cert::attr::AttributeTypeAndValue;
    use x509_cert::name::RelativeDistinguishedName;

    use super::*;
    use crate::ids::IdMode;
    use crate::profile::{CaConfig, ProfileName, SubjectInput};
    use crate::signer::{Signer, SoftwareSigner};

    #[test]
    fn extensions_follow_the_kamu_sm_order_in_every_profile() {
        use const_oid::db::rfc5280 as oids;
        let config = CaConfig::kamu_sm_defaults();
        let issuer = IssuerIdentity::new(
            RdnSequence::default(),
            Some(vec![7; 20]),
            None,
            SignatureAlgorithm::EcdsaP384Sha384,
        )
        .unwrap();
        let order = |name: ProfileName| -> Vec<const_oid::ObjectIdentifier> {
            let profile = Profile::from_config(name, &config).unwrap();
            extensions_with_key_id(&profile, KeyType::EcP256, &[1; 20], &issuer)
                .unwrap()
                .iter()
                .map(|e| e.extn_id)
                .collect()
        };
        let kamu_sm = vec![
            AuthorityKeyIdentifier::OID,
            SubjectKeyIdentifier::OID,
            KeyUsage::OID,
            CertificatePolicies::OID,
            BasicConstraints::OID,
            ExtendedKeyUsage::OID,
            CrlDistributionPoints::OID,
            oids::ID_PE_AUTHORITY_INFO_ACCESS,
        ];
        assert_eq!(order(ProfileName::MaliMuhur), kamu_sm);
        assert_eq!(order(ProfileName::OkcDevice), kamu_sm);
        // An issuing CA: no extKeyUsage, the rest in the same order.
        let without_eku: Vec<_> = kamu_sm
            .iter()
            .copied()
            .filter(|o| *o != ExtendedKeyUsage::OID)
            .collect();
        assert_eq!(order(ProfileName::IssuingCa), without_eku);
    }

    #[test]
    fn headers_are_written_as_der_writes_them() {
        let tags = [
            Tag::Sequence,
            Tag::Set,
            Tag::BitString,
            Tag::Utf8String,
            Tag::ContextSpecific {
                constructed: true,
                number: TagNumber(3),
            },
        ];
        for tag in tags {
            for length in [0, 1, 127, 128, 255, 256, 65_535, 65_536, 16_777_216] {
                let mut ours = Vec::new();
                put_header(&mut ours, tag, length).unwrap();
                let theirs = der::Header::new(tag, der::Length::try_from(length).unwrap())
                    .to_der()
                    .unwrap();
                assert_eq!(ours, theirs, "{tag} {length}");
                assert_eq!(tlv_len(length), theirs.len() + length, "{length}");
            }
        }
        let high = Tag::ContextSpecific {
            constructed: false,
            number: TagNumber(31),
        };
        assert!(put_header(&mut Vec::new(), high, 1).is_err());
    }

    /// The name built from x509-cert's typed structures, as der encodes them.
    fn typed_name(attributes: &[SubjectAttribute]) -> RdnSequence {
        let mut name = RdnSequence::default();
        for attribute in attributes {
            let value = match attribute.string_type {
                StringType::Printable => {
                    Any::encode_from(&PrintableString::new(&attribute.value).unwrap())
                }
                StringType::Utf8 => {
                    Any::encode_from(&Utf8StringRef::new(&attribute.value).unwrap())
                }
            }
            .unwrap();
            name.push(
                RelativeDistinguishedName::try_from(vec![AttributeTypeAndValue {
                    oid: attribute.oid,
                    value,
                }])
                .unwrap(),
            );
        }
        name
    }

    #[test]
    fn a_template_encodes_byte_for_byte_what_der_encodes_from_the_typed_structure() {
        let config = CaConfig::kamu_sm_defaults();
        let now = crate::issue::validity::now().unwrap();
        let issuer_name = typed_name(&[SubjectAttribute {
            oid: const_oid::db::rfc4519::CN,
            value: "Test Issuing CA",
            string_type: StringType::Utf8,
        }]);
        let issuer = IssuerIdentity::new(
            issuer_name,
            Some(vec![0x11; 20]),
            None,
            SignatureAlgorithm::EcdsaP384Sha384,
        )
        .unwrap();
        let cases = [
            (ProfileName::OkcDevice, KeyType::EcP256),
            (ProfileName::OkcDevice, KeyType::Rsa(2048)),
            (ProfileName::MaliMuhur, KeyType::EcP384),
            (ProfileName::MaliMuhur, KeyType::Rsa(2048)),
            (ProfileName::IssuingCa, KeyType::EcP384),
        ];
        for (profile_name, key_type) in cases {
            let profile = Profile::from_config(profile_name, &config).unwrap();
            let input = match profile_name {
                ProfileName::OkcDevice => SubjectInput {
                    device_serial: Some("FU00022547".into()),
                    manufacturer: Some("Örnek Yazarkasa A.Ş.".into()),
                    ..Default::default()
                },
                ProfileName::MaliMuhur => SubjectInput {
                    vkn: Some("4540536920".into()),
                    unvan: Some("ÖRNEK BİLİŞİM ANONİM ŞİRKETİ".into()),
                    ..Default::default()
                },
                _ => SubjectInput {
                    common_name: Some("Test Issuing CA 2".into()),
                    ..Default::default()
                },
            };
            let subject = Subject::from_input(&profile, &input, IdMode::Production).unwrap();
            let key = SoftwareSigner::generate(key_type).unwrap();
            let spki_der = key.public_key_der();
            let spki = SubjectPublicKeyInfoOwned::from_der(spki_der).unwrap();
            let serial = Int::new(&[0x4f; 16]).unwrap();

            let typed = TbsCertificate {
                version: Version::V3,
                serial_number: serial.clone(),
                signature: issuer.signature_algorithm().algorithm_identifier(),
                issuer: issuer.name().clone(),
                validity: validity::validity(now, profile.validity_years).unwrap(),
                subject: typed_name(&subject.attributes()),
                extensions: Some(extensions(&profile, key_type, &spki, &issuer).unwrap()),
                subject_public_key_info: spki,
                issuer_unique_id: None,
                subject_unique_id: None,
            }
            .to_der()
            .unwrap();
            let template = TbsTemplate::new(&profile, key_type, &issuer).unwrap();
            let spki_ref = SubjectPublicKeyInfoRef::from_der(spki_der).unwrap();
            let (joined, key_at) = template
                .encode(&subject, &spki_ref, spki_der, &serial, now)
                .unwrap();
            assert_eq!(joined, typed, "{profile_name} with a {key_type} key");
            assert_eq!(
                &joined[key_at], spki_der,
                "{profile_name} with a {key_type} key"
            );
            assert!(x509_cert::TbsCertificate::from_der(&joined).is_ok());
        }
    }
}
