//! Lints: RFC 5280 structure and profile conformance, checked on the DER of
//! the TBS certificate — the very bytes the CA key will sign — before any
//! signature is made.
//!
//! Every check decodes what was encoded and compares it with the profile; it
//! never re-runs the builder, so a builder bug cannot hide from it. Each
//! finding names its lint, so an operator (and a test) can tell which rule
//! refused the certificate.

use std::fmt;

use const_oid::db::rfc4519;
use const_oid::db::rfc5280::{ID_AD_CA_ISSUERS, ID_AD_OCSP, ID_QT_CPS, ID_QT_UNOTICE};
use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::{AnyRef, BitStringRef, Ia5String, IntRef, OctetStringRef};
use der::{Decode, Encode, Length, Reader, Sequence, SliceReader, Tag, Tagged, Writer};
use spki::{AlgorithmIdentifierRef, SubjectPublicKeyInfoRef};
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies,
    CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
};
use x509_cert::name::RdnSequence;
use x509_cert::time::Time;

use super::tbs::{key_identifier_of_bits, BmpUserNotice, IssuerIdentity};
use super::validity::{self, Validity};
use crate::ids::{DeviceSerial, IdMode, Tckn, Vkn};
use crate::profile::{Profile, ProfileName, StringType, UB_NAME};
use crate::signer::KeyType;

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintFinding {
    /// The rule's name, e.g. `profile.key_usage`.
    pub lint: &'static str,
    /// What is wrong, with the offending value.
    pub message: String,
}

/// Every rule a TBS certificate broke. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintReport(pub Vec<LintFinding>);

impl LintReport {
    /// True when `lint` is among the findings.
    pub fn has(&self, lint: &str) -> bool {
        self.0.iter().any(|f| f.lint == lint)
    }
}

impl fmt::Display for LintReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|x| format!("[{}] {}", x.lint, x.message))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

#[derive(Default)]
struct Findings(Vec<LintFinding>);

impl Findings {
    fn add(&mut self, lint: &'static str, message: impl Into<String>) {
        self.0.push(LintFinding {
            lint,
            message: message.into(),
        });
    }

    fn check(&mut self, ok: bool, lint: &'static str, message: impl FnOnce() -> String) {
        if !ok {
            self.add(lint, message());
        }
    }
}

/// A zero-copy view of a TBS certificate's DER: the ASN.1 of
/// [`TbsCertificate`](super::tbs::TbsCertificate), every field borrowed from the bytes, so that reading
/// a certificate allocates almost nothing. The der crate decodes strict DER
/// only, so a non-canonical encoding is refused here.
///
/// The fields compared byte for byte (signature algorithm, issuer) or
/// decoded on their own later (subject, key, each extension) are read as
/// whole TLVs first.
#[derive(Sequence)]
struct TbsView<'a> {
    #[asn1(context_specific = "0", default = "Default::default")]
    version: Version,
    serial_number: IntRef<'a>,
    signature: Tlv<'a>,
    issuer: Tlv<'a>,
    validity: Validity,
    subject: Tlv<'a>,
    subject_public_key_info: Tlv<'a>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    issuer_unique_id: Option<BitStringRef<'a>>,
    #[asn1(context_specific = "2", tag_mode = "IMPLICIT", optional = "true")]
    subject_unique_id: Option<BitStringRef<'a>>,
    /// The extensions' SEQUENCE, whole; [`extension_tlvs`] splits it into
    /// one TLV per extension, and one whose bytes are known conformant (see
    /// [`Conformant`]) is not decoded further.
    #[asn1(context_specific = "3", tag_mode = "EXPLICIT", optional = "true")]
    extensions: Option<AnyRef<'a>>,
}

/// Each extension of a TBS, as a whole TLV, in order.
fn extension_tlvs(extensions: Option<AnyRef<'_>>) -> der::Result<Vec<Tlv<'_>>> {
    let Some(sequence) = extensions else {
        return Ok(Vec::new());
    };
    sequence.tag().assert_eq(Tag::Sequence)?;
    let mut reader = SliceReader::new(sequence.value())?;
    let mut tlvs = Vec::with_capacity(16);
    while !reader.is_finished() {
        tlvs.push(reader.decode()?);
    }
    Ok(tlvs)
}

/// One whole TLV, header included, as it is in the DER: its header is
/// checked, its contents are not decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tlv<'a>(&'a [u8]);

impl<'a> Decode<'a> for Tlv<'a> {
    type Error = der::Error;

    fn decode<R: Reader<'a>>(reader: &mut R) -> der::Result<Self> {
        reader.tlv_bytes().map(Tlv)
    }
}

impl Encode for Tlv<'_> {
    fn encoded_len(&self) -> der::Result<Length> {
        Length::try_from(self.0.len())
    }

    fn encode(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write(self.0)
    }
}

/// RFC 5280 `Extension`, borrowed.
#[derive(Sequence)]
struct ExtensionView<'a> {
    extn_id: ObjectIdentifier,
    #[asn1(default = "Default::default")]
    critical: bool,
    extn_value: &'a OctetStringRef,
}

/// RFC 5280 `AttributeTypeAndValue`, borrowed.
#[derive(Sequence)]
struct AttributeView<'a> {
    oid: ObjectIdentifier,
    value: AnyRef<'a>,
}

/// Extension encodings found conformant in a TBS certificate that passed
/// every lint, for the next certificates of the same CA, profile and subject
/// key type: their extensions are the same bytes but for the subject key
/// identifier, and a rule's verdict on the same bytes, under the same
/// profile, issuer and key type, is the same. So [`lint_rules`] compares an
/// extension with these bytes and decodes and checks it only when it differs.
/// The subject key identifier, which depends on each key, is never
/// remembered.
#[derive(Debug, Clone, Default)]
pub struct Conformant {
    /// The profile and key type they were found conformant for.
    scope: Option<(ProfileName, KeyType)>,
    /// Each extension's identifier and its whole encoding.
    extensions: Vec<(ObjectIdentifier, Vec<u8>)>,
}

impl Conformant {
    /// Nothing known: every extension is decoded and checked.
    pub fn nothing() -> Self {
        Self::default()
    }

    /// Remembers the extensions of `tbs_der`, which must just have passed
    /// [`lint`] under `profile` (the caller's promise; nothing is checked
    /// here but the structure).
    pub fn remember(profile: &Profile, tbs_der: &[u8]) -> Result<Self, der::Error> {
        let tbs = TbsView::from_der(tbs_der)?;
        let key_type = KeyType::of_public_key(tbs.subject_public_key_info.0)
            .map_err(|_| der::Error::from(der::ErrorKind::Failed))?;
        let mut extensions = Vec::new();
        for Tlv(bytes) in extension_tlvs(tbs.extensions)? {
            let ext = ExtensionView::from_der(bytes)?;
            if ext.extn_id != SubjectKeyIdentifier::OID {
                extensions.push((ext.extn_id, bytes.to_vec()));
            }
        }
        Ok(Self {
            scope: Some((profile.name, key_type)),
            extensions,
        })
    }

    /// The identifier of `extension` when its bytes are known conformant
    /// for `profile` and `key_type`.
    fn known(
        &self,
        profile: ProfileName,
        key_type: Option<KeyType>,
        extension: Tlv<'_>,
    ) -> Option<ObjectIdentifier> {
        if self.scope != key_type.map(|k| (profile, k)) {
            return None;
        }
        self.extensions
            .iter()
            .find(|(_, bytes)| bytes.as_slice() == extension.0)
            .map(|(oid, _)| *oid)
    }
}

/// A name's attributes in order, and the size of every RDN that does not
/// hold exactly one (certmint names hold one per RDN). Flat, so that reading
/// a name allocates once.
struct NameView<'a> {
    attributes: Vec<AttributeView<'a>>,
    irregular_rdns: Vec<usize>,
}

fn decode_name(name: Tlv<'_>) -> der::Result<NameView<'_>> {
    let name = AnyRef::from_der(name.0)?;
    name.tag().assert_eq(Tag::Sequence)?;
    let mut rdns = SliceReader::new(name.value())?;
    let mut view = NameView {
        attributes: Vec::with_capacity(4),
        irregular_rdns: Vec::new(),
    };
    while !rdns.is_finished() {
        let rdn: AnyRef<'_> = rdns.decode()?;
        rdn.tag().assert_eq(Tag::Set)?;
        let mut attributes = SliceReader::new(rdn.value())?;
        let before = view.attributes.len();
        while !attributes.is_finished() {
            view.attributes.push(attributes.decode()?);
        }
        let size = view.attributes.len() - before;
        if size != 1 {
            view.irregular_rdns.push(size);
        }
    }
    Ok(view)
}

/// A name for a message.
fn display_name(name: &[u8]) -> String {
    RdnSequence::from_der(name)
        .map_or_else(|e| format!("(undecodable name: {e})"), |n| n.to_string())
}

/// Checks `tbs_der` against RFC 5280 and `profile`, for certificates issued
/// by `issuer`. `id_mode` says whether GİB test identifiers are acceptable.
///
/// Besides every rule, x509-cert decodes the TBS too: a second declaration
/// of the ASN.1 whose refusal is a finding of its own (`der.x509_cert`).
/// [`lint_rules`] is this without that second decoding.
pub fn lint(
    profile: &Profile,
    issuer: &IssuerIdentity,
    id_mode: IdMode,
    tbs_der: &[u8],
) -> Result<(), LintReport> {
    let rules = lint_rules(profile, issuer, id_mode, tbs_der, &Conformant::nothing());
    let second = x509_cert::TbsCertificate::from_der(tbs_der).err();
    let mut findings = match rules {
        Ok(()) => Vec::new(),
        Err(LintReport(findings)) => findings,
    };
    if let Some(refusal) = second {
        if !findings.iter().any(|f| f.lint == "der.structure") {
            findings.push(LintFinding {
                lint: "der.x509_cert",
                message: format!("x509-cert refuses the TBS: {refusal}"),
            });
        }
    }
    if findings.is_empty() {
        Ok(())
    } else {
        Err(LintReport(findings))
    }
}

/// Checks `tbs_der` against every rule of RFC 5280 and `profile`, reading it
/// through a zero-copy view; extensions byte-identical to `known` ones are
/// not decoded again. (The CA runs [`lint`] on the first certificate of each
/// template and this, with that certificate's extensions as `known`, on the
/// ones after: they differ from the first only in values that the rules
/// check, never in the structure the second decoding could disagree on.)
pub fn lint_rules(
    profile: &Profile,
    issuer: &IssuerIdentity,
    id_mode: IdMode,
    tbs_der: &[u8],
    known: &Conformant,
) -> Result<(), LintReport> {
    lint_rules_of_checked_key(profile, issuer, id_mode, tbs_der, known, None)
}

/// [`lint_rules`], for a TBS whose subject key may already have passed
/// [`KeyType::of_spki`]: when the TBS carries exactly `checked_key` (the
/// DER SubjectPublicKeyInfo that was checked), its key is not checked a
/// second time. [`crate::issue::CertificateAuthority::prepare`] checks
/// every key before it builds a TBS.
pub(crate) fn lint_rules_of_checked_key(
    profile: &Profile,
    issuer: &IssuerIdentity,
    id_mode: IdMode,
    tbs_der: &[u8],
    known: &Conformant,
    checked_key: Option<&[u8]>,
) -> Result<(), LintReport> {
    let mut f = Findings::default();
    let decoded = TbsView::from_der(tbs_der).and_then(|tbs| {
        let subject = decode_name(tbs.subject)?;
        let spki = SubjectPublicKeyInfoRef::from_der(tbs.subject_public_key_info.0)?;
        let extensions = extension_tlvs(tbs.extensions)?;
        Ok((tbs, subject, spki, extensions))
    });
    let (tbs, subject, spki, tlvs) = match decoded {
        Ok(decoded) => decoded,
        Err(e) => {
            f.add("der.structure", format!("not a DER TBSCertificate: {e}"));
            return Err(LintReport(f.0));
        }
    };

    f.check(tbs.version == Version::V3, "rfc5280.version", || {
        format!("version is {:?}, must be v3", tbs.version)
    });
    lint_serial(&mut f, tbs.serial_number.as_bytes());
    f.check(
        tbs.signature.0 == issuer.algorithm_der(),
        "rfc5280.signature_algorithm",
        || {
            format!(
                "TBS signature algorithm {} is not the issuer's {}",
                AlgorithmIdentifierRef::from_der(tbs.signature.0)
                    .map_or_else(|e| format!("(undecodable: {e})"), |a| a.oid.to_string()),
                issuer.signature_algorithm()
            )
        },
    );
    // The issuer field must be the CA's subject, byte for byte.
    f.check(
        tbs.issuer.0 == issuer.name_der() && !issuer.name().is_empty(),
        "rfc5280.issuer",
        || {
            format!(
                "issuer {} is not the CA's subject {}",
                display_name(tbs.issuer.0),
                issuer.name()
            )
        },
    );
    f.check(
        tbs.issuer_unique_id.is_none() && tbs.subject_unique_id.is_none(),
        "rfc5280.unique_ids",
        || "CAs must not generate unique identifiers".into(),
    );
    lint_validity(&mut f, profile, issuer, &tbs.validity);
    lint_subject(&mut f, profile, id_mode, &subject);

    let read_key = if checked_key == Some(tbs.subject_public_key_info.0) {
        KeyType::of_checked_spki(&spki)
    } else {
        KeyType::of_spki(&spki)
    };
    let key_type = match read_key {
        Ok(key_type) => Some(key_type),
        Err(e) => {
            f.add("profile.key", e.to_string());
            None
        }
    };
    if let Some(key_type) = key_type {
        f.check(profile.key_types.contains(&key_type), "profile.key", || {
            format!(
                "{key_type} key; profile {} accepts {}",
                profile.name,
                profile.key_types_text()
            )
        });
    }
    let mut extensions = Vec::with_capacity(tlvs.len());
    for tlv in tlvs {
        if let Some(oid) = known.known(profile.name, key_type, tlv) {
            extensions.push((oid, None));
            continue;
        }
        match ExtensionView::from_der(tlv.0) {
            Ok(ext) => extensions.push((ext.extn_id, Some(ext))),
            Err(e) => {
                f.add("der.structure", format!("not a DER Extension: {e}"));
                return Err(LintReport(f.0));
            }
        }
    }
    let spki_bits = spki.subject_public_key.raw_bytes();
    lint_extensions(&mut f, profile, issuer, &extensions, spki_bits, key_type);

    if f.0.is_empty() {
        Ok(())
    } else {
        Err(LintReport(f.0))
    }
}

fn lint_serial(f: &mut Findings, bytes: &[u8]) {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let zero = bytes.iter().all(|&b| b == 0);
    f.check(!negative && !zero, "rfc5280.serial.positive", || {
        "serial number must be positive".into()
    });
    f.check(bytes.len() <= 20, "rfc5280.serial.length", || {
        format!(
            "serial number has {} octets, at most 20 allowed",
            bytes.len()
        )
    });
    let significant = bytes.iter().skip_while(|&&b| b == 0).count();
    f.check(significant >= 8, "cabf.serial.entropy", || {
        format!("serial number has {significant} significant octets; at least 64 random bits are required")
    });
}

fn lint_validity(
    f: &mut Findings,
    profile: &Profile,
    issuer: &IssuerIdentity,
    validity: &Validity,
) {
    let not_before = validity.not_before.to_date_time();
    let not_after = validity.not_after.to_date_time();
    for (which, time) in [
        ("notBefore", validity.not_before),
        ("notAfter", validity.not_after),
    ] {
        let utc_required = time.to_date_time().year() < 2050;
        let is_utc = matches!(time, Time::UtcTime(_));
        f.check(utc_required == is_utc, "rfc5280.validity.encoding", || {
            format!(
                "{which} must be {} (RFC 5280 §4.1.2.5)",
                if utc_required {
                    "UTCTime"
                } else {
                    "GeneralizedTime"
                }
            )
        });
    }
    f.check(not_before < not_after, "rfc5280.validity.order", || {
        format!("notBefore {not_before} is not before notAfter {not_after}")
    });
    let expected = validity::not_after(not_before, profile.validity_years).ok();
    f.check(expected == Some(not_after), "profile.validity", || {
        format!(
            "notAfter {not_after} must be notBefore + {} years − 1 day ({})",
            profile.validity_years,
            expected
                .map(|e| e.to_string())
                .unwrap_or_else(|| "out of range".into())
        )
    });
    if let Some(issuer_not_before) = issuer.not_before() {
        f.check(
            not_before >= issuer_not_before,
            "rfc5280.validity.within_issuer",
            || {
                format!(
                    "notBefore {not_before} is before the issuing CA's notBefore {issuer_not_before}: the CA did not exist yet"
                )
            },
        );
    }
    if let Some(issuer_not_after) = issuer.not_after() {
        f.check(
            not_after <= issuer_not_after,
            "rfc5280.validity.within_issuer",
            || {
                format!(
                    "notAfter {not_after} is after the issuing CA's notAfter {issuer_not_after}"
                )
            },
        );
    }
}

fn string_type_of(tag: Tag) -> Option<StringType> {
    match tag {
        Tag::PrintableString => Some(StringType::Printable),
        Tag::Utf8String => Some(StringType::Utf8),
        _ => None,
    }
}

fn lint_subject(f: &mut Findings, profile: &Profile, id_mode: IdMode, subject: &NameView<'_>) {
    for size in &subject.irregular_rdns {
        f.add(
            "profile.subject.rdn",
            format!("an RDN holds {size} attributes; certmint names hold one per RDN"),
        );
    }
    let attributes = &subject.attributes;
    let mut values: Vec<(ObjectIdentifier, std::borrow::Cow<'_, str>)> =
        Vec::with_capacity(profile.subject_rules.len());
    let mut next = attributes.iter().peekable();
    for rule in &profile.subject_rules {
        match next.peek() {
            Some(attr) if attr.oid == rule.oid => {
                let Some(attr) = next.next() else { break };
                let tag = attr.value.tag();
                f.check(
                    string_type_of(tag) == Some(rule.string_type),
                    "profile.subject.string_type",
                    || {
                        format!(
                            "{} is encoded as {tag:?}, must be {:?}String",
                            attr.oid, rule.string_type
                        )
                    },
                );
                let value = String::from_utf8_lossy(attr.value.value());
                f.check(!value.trim().is_empty(), "profile.subject.value", || {
                    format!("{} is empty", attr.oid)
                });
                if rule.oid == rfc4519::CN || rule.oid == rfc4519::O {
                    f.check(
                        value.chars().count() <= UB_NAME,
                        "profile.subject.value",
                        || {
                            format!(
                                "{} has {} characters, at most {UB_NAME}",
                                attr.oid,
                                value.chars().count()
                            )
                        },
                    );
                }
                values.push((attr.oid, value));
            }
            _ => f.check(!rule.required, "profile.subject.missing", || {
                format!("subject lacks the required attribute {}", rule.oid)
            }),
        }
    }
    for extra in next {
        f.add(
            "profile.subject.unexpected",
            format!(
                "subject attribute {} is not in profile {}",
                extra.oid, profile.name
            ),
        );
    }
    let value_of = |oid| {
        values
            .iter()
            .find(|(o, _)| *o == oid)
            .map(|(_, v)| v.as_ref())
    };
    match profile.name {
        ProfileName::MaliMuhur => {
            if let Some(id) = value_of(rfc4519::SERIAL_NUMBER) {
                let valid = Vkn::parse(id, id_mode).is_ok() || id.parse::<Tckn>().is_ok();
                f.check(valid, "profile.subject.value", || {
                    format!("serialNumber {id:?} is not a valid VKN or TCKN")
                });
            }
        }
        ProfileName::OkcDevice => {
            if let Some(serial) = value_of(rfc4519::SERIAL_NUMBER) {
                if let Err(e) = DeviceSerial::parse(serial, &profile.approved_prefixes) {
                    f.add("profile.subject.value", e.to_string());
                }
                f.check(
                    value_of(rfc4519::CN) == Some(serial),
                    "profile.subject.value",
                    || "an ÖKC device's CN must repeat its serialNumber".into(),
                );
            }
        }
        ProfileName::RootCa | ProfileName::IssuingCa => {
            if let Some(c) = value_of(rfc4519::C) {
                f.check(
                    c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase()),
                    "profile.subject.value",
                    || format!("countryName {c:?} must be two capital letters"),
                );
            }
        }
    }
}

fn decode_extension<'a, T: Decode<'a>>(
    f: &mut Findings,
    lint: &'static str,
    ext: &ExtensionView<'a>,
) -> Option<T> {
    match T::from_der(ext.extn_value.as_bytes()) {
        Ok(value) => Some(value),
        Err(e) => {
            f.add(
                lint,
                format!("extension {} does not decode: {e}", ext.extn_id),
            );
            None
        }
    }
}

fn criticality(f: &mut Findings, lint: &'static str, ext: &ExtensionView<'_>, critical: bool) {
    f.check(ext.critical == critical, lint, || {
        format!(
            "extension {} must be {}",
            ext.extn_id,
            if critical { "critical" } else { "non-critical" }
        )
    });
}

fn uri_of(name: &GeneralName) -> Option<&str> {
    match name {
        GeneralName::UniformResourceIdentifier(uri) => Some(uri.as_str()),
        _ => None,
    }
}

/// The extension order of the real Kamu SM certificates (domain.md §8).
const EXTENSION_ORDER: [ObjectIdentifier; 8] = [
    AuthorityKeyIdentifier::OID,
    SubjectKeyIdentifier::OID,
    KeyUsage::OID,
    CertificatePolicies::OID,
    BasicConstraints::OID,
    ExtendedKeyUsage::OID,
    CrlDistributionPoints::OID,
    AuthorityInfoAccessSyntax::OID,
];

/// The Mali Mühür policy, checked when the program is compiled.
const MALI_MUHUR_POLICY: ObjectIdentifier =
    ObjectIdentifier::new_unwrap(crate::profile::MALI_MUHUR_POLICY_OID);

/// An ÖKC device certificate must let a relying party learn that the device
/// is revoked (a CRL distribution point and where the issuing CA
/// certificate is, to check the CRL's signature), and must assert the ÖKC
/// policy, not the Mali Mühür one: the two products have different relying
/// parties. The extensions' contents are checked against the profile
/// elsewhere; this checks that the profile asks for them.
fn lint_okc_revocation(f: &mut Findings, profile: &Profile, seen: &[ObjectIdentifier]) {
    let advice = "set it in [okc_device] of certmint-ca.toml (`certmint ca add-issuing --line okc` writes the ÖKC defaults)";
    f.check(
        profile.crl_url.is_some() && seen.contains(&CrlDistributionPoints::OID),
        "profile.okc.crl_distribution_point",
        || {
            format!(
                "an ÖKC device certificate needs a cRLDistributionPoints URL (crl_url): {advice}"
            )
        },
    );
    f.check(
        profile.ca_issuers_url.is_some() && seen.contains(&AuthorityInfoAccessSyntax::OID),
        "profile.okc.ca_issuers",
        || {
            format!(
                "an ÖKC device certificate needs an AIA caIssuers URL (ca_issuers_url): {advice}"
            )
        },
    );
    let mali_muhur_policy = MALI_MUHUR_POLICY;
    f.check(
        profile.policy.as_ref().is_some_and(|p| p.oid != mali_muhur_policy),
        "profile.okc.policy",
        || format!(
            "an ÖKC device certificate needs a policy of its own (policy_oid), not the Mali Mühür policy {mali_muhur_policy}: {advice}"
        ),
    );
}

/// Checks the extensions: each identifier, with its decoded extension unless
/// its bytes are known conformant.
fn lint_extensions(
    f: &mut Findings,
    profile: &Profile,
    issuer: &IssuerIdentity,
    extensions: &[(ObjectIdentifier, Option<ExtensionView<'_>>)],
    spki_bits: &[u8],
    key_type: Option<KeyType>,
) {
    let mut seen = Vec::with_capacity(extensions.len());
    for (oid, _) in extensions {
        let first = !seen.contains(oid);
        f.check(first, "rfc5280.extensions.unique", || {
            format!("extension {oid} appears more than once")
        });
        if first {
            seen.push(*oid);
        }
    }
    let mut expected = vec![
        BasicConstraints::OID,
        KeyUsage::OID,
        SubjectKeyIdentifier::OID,
    ];
    if !profile.extended_key_usage.is_empty() {
        expected.push(ExtendedKeyUsage::OID);
    }
    if profile.policy.is_some() {
        expected.push(CertificatePolicies::OID);
    }
    if !profile.is_self_signed() {
        expected.push(AuthorityKeyIdentifier::OID);
    }
    if profile.crl_url.is_some() {
        expected.push(CrlDistributionPoints::OID);
    }
    if profile.ca_issuers_url.is_some() || profile.ocsp_url.is_some() {
        expected.push(AuthorityInfoAccessSyntax::OID);
    }
    for oid in &expected {
        f.check(seen.contains(oid), "profile.extensions.missing", || {
            format!("profile {} requires extension {oid}", profile.name)
        });
    }
    let ranks: Vec<usize> = extensions
        .iter()
        .filter_map(|(oid, _)| EXTENSION_ORDER.iter().position(|o| o == oid))
        .collect();
    f.check(
        ranks.windows(2).all(|pair| pair[0] <= pair[1]),
        "profile.extensions.order",
        || {
            let order: Vec<String> = extensions.iter().map(|(oid, _)| oid.to_string()).collect();
            format!(
                "extensions in order {}, not authorityKeyIdentifier, subjectKeyIdentifier, keyUsage, certificatePolicies, basicConstraints, extKeyUsage, cRLDistributionPoints, authorityInfoAccess",
                order.join(", ")
            )
        },
    );
    if profile.name == ProfileName::OkcDevice {
        lint_okc_revocation(f, profile, &seen);
    }
    for oid in &seen {
        f.check(
            expected.contains(oid),
            "profile.extensions.unexpected",
            || format!("extension {oid} is not part of profile {}", profile.name),
        );
    }

    for ext in extensions.iter().filter_map(|(_, ext)| ext.as_ref()) {
        match ext.extn_id {
            BasicConstraints::OID => {
                criticality(f, "profile.basic_constraints", ext, true);
                if let Some(bc) =
                    decode_extension::<BasicConstraints>(f, "profile.basic_constraints", ext)
                {
                    f.check(
                        bc.ca == profile.ca.is_some() && bc.path_len_constraint == profile.ca.flatten(),
                        "profile.basic_constraints",
                        || format!("basicConstraints cA={} pathLen={:?}, profile wants cA={} pathLen={:?}",
                            bc.ca, bc.path_len_constraint, profile.ca.is_some(), profile.ca.flatten()),
                    );
                }
            }
            KeyUsage::OID => {
                criticality(f, "profile.key_usage", ext, true);
                if let (Some(ku), Some(key_type)) = (
                    decode_extension::<KeyUsage>(f, "profile.key_usage", ext),
                    key_type,
                ) {
                    let wanted = profile.key_usage_for(key_type);
                    f.check(ku.0 == wanted, "profile.key_usage", || {
                        format!("keyUsage {:?}, profile wants {:?}", ku.0, wanted)
                    });
                }
            }
            ExtendedKeyUsage::OID => {
                criticality(f, "profile.extended_key_usage", ext, false);
                if let Some(eku) =
                    decode_extension::<ExtendedKeyUsage>(f, "profile.extended_key_usage", ext)
                {
                    f.check(
                        eku.0 == profile.extended_key_usage,
                        "profile.extended_key_usage",
                        || {
                            format!(
                                "extKeyUsage {:?}, profile wants {:?}",
                                eku.0, profile.extended_key_usage
                            )
                        },
                    );
                }
            }
            CertificatePolicies::OID => {
                criticality(f, "profile.certificate_policies", ext, false);
                if let Some(cp) =
                    decode_extension::<CertificatePolicies>(f, "profile.certificate_policies", ext)
                {
                    lint_policies(f, profile, &cp);
                }
            }
            SubjectKeyIdentifier::OID => {
                criticality(f, "rfc5280.subject_key_identifier", ext, false);
                if let Some(ski) = decode_extension::<SubjectKeyIdentifier>(
                    f,
                    "rfc5280.subject_key_identifier",
                    ext,
                ) {
                    f.check(
                        ski.0.as_bytes() == key_identifier_of_bits(spki_bits).as_slice(),
                        "rfc5280.subject_key_identifier",
                        || "subjectKeyIdentifier is not the SHA-1 of the subject public key".into(),
                    );
                }
            }
            AuthorityKeyIdentifier::OID => {
                criticality(f, "rfc5280.authority_key_identifier", ext, false);
                if let Some(aki) = decode_extension::<AuthorityKeyIdentifier>(
                    f,
                    "rfc5280.authority_key_identifier",
                    ext,
                ) {
                    f.check(
                        aki.key_identifier.as_ref().map(|k| k.as_bytes())
                            == issuer.key_identifier(),
                        "rfc5280.authority_key_identifier",
                        || {
                            "authorityKeyIdentifier is not the issuing CA's subjectKeyIdentifier"
                                .into()
                        },
                    );
                }
            }
            CrlDistributionPoints::OID => {
                criticality(f, "profile.crl_distribution_points", ext, false);
                if let Some(dps) = decode_extension::<CrlDistributionPoints>(
                    f,
                    "profile.crl_distribution_points",
                    ext,
                ) {
                    let urls: Vec<Option<&str>> = dps
                        .0
                        .iter()
                        .map(|dp: &DistributionPoint| match &dp.distribution_point {
                            Some(DistributionPointName::FullName(names)) if names.len() == 1 => {
                                uri_of(&names[0])
                            }
                            _ => None,
                        })
                        .collect();
                    f.check(
                        urls == vec![profile.crl_url.as_deref()],
                        "profile.crl_distribution_points",
                        || {
                            format!(
                                "CRL distribution points {urls:?}, profile wants {:?}",
                                profile.crl_url
                            )
                        },
                    );
                }
            }
            AuthorityInfoAccessSyntax::OID => {
                criticality(f, "profile.authority_info_access", ext, false);
                if let Some(aia) = decode_extension::<AuthorityInfoAccessSyntax>(
                    f,
                    "profile.authority_info_access",
                    ext,
                ) {
                    let got: Vec<(ObjectIdentifier, Option<&str>)> = aia
                        .0
                        .iter()
                        .map(|ad| (ad.access_method, uri_of(&ad.access_location)))
                        .collect();
                    let mut want = Vec::new();
                    if let Some(url) = &profile.ca_issuers_url {
                        want.push((ID_AD_CA_ISSUERS, Some(url.as_str())));
                    }
                    if let Some(url) = &profile.ocsp_url {
                        want.push((ID_AD_OCSP, Some(url.as_str())));
                    }
                    f.check(got == want, "profile.authority_info_access", || {
                        format!("authorityInfoAccess {got:?}, profile wants {want:?}")
                    });
                }
            }
            _ => {}
        }
    }
}

fn lint_policies(f: &mut Findings, profile: &Profile, cp: &CertificatePolicies) {
    let Some(policy) = &profile.policy else {
        return;
    };
    let [info] = cp.0.as_slice() else {
        f.add(
            "profile.certificate_policies",
            format!("{} policies, profile wants exactly one", cp.0.len()),
        );
        return;
    };
    f.check(
        info.policy_identifier == policy.oid,
        "profile.certificate_policies",
        || {
            format!(
                "policy {}, profile wants {}",
                info.policy_identifier, policy.oid
            )
        },
    );
    let qualifiers = info.policy_qualifiers.as_deref().unwrap_or(&[]);
    let find = |id| {
        qualifiers
            .iter()
            .find(|q| q.policy_qualifier_id == id)
            .and_then(|q| q.qualifier.as_ref())
    };
    let cps = find(ID_QT_CPS).map(|any| any.decode_as::<Ia5String>().map(|s| s.to_string()));
    match (&policy.cps_uri, cps) {
        (Some(want), Some(Ok(got))) => {
            f.check(*want == got, "profile.certificate_policies", || {
                format!("CPS URI {got:?}, profile wants {want:?}")
            })
        }
        (None, None) => {}
        (want, got) => f.add(
            "profile.certificate_policies",
            format!("CPS qualifier {got:?}, profile wants {want:?}"),
        ),
    }
    let notice = find(ID_QT_UNOTICE).map(|any| any.decode_as::<BmpUserNotice>());
    match (&policy.user_notice, notice) {
        (Some(want), Some(Ok(got))) => {
            let text: String = got.explicit_text.chars().collect();
            f.check(*want == text, "profile.certificate_policies", || {
                format!("UserNotice {text:?}, profile wants {want:?}")
            })
        }
        (Some(_), Some(Err(_))) => f.add(
            "profile.certificate_policies",
            "UserNotice explicitText must be a BMPString",
        ),
        (None, None) => {}
        (want, got) => f.add(
            "profile.certificate_policies",
            format!(
                "UserNotice present: {}, profile wants {want:?}",
                got.is_some()
            ),
        ),
    }
    f.check(
        qualifiers.len()
            == usize::from(policy.cps_uri.is_some()) + usize::from(policy.user_notice.is_some()),
        "profile.certificate_policies",
        || {
            format!(
                "{} policy qualifiers, profile wants only CPS and UserNotice",
                qualifiers.len()
            )
        },
    );
}
