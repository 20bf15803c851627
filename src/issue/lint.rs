//! Lints: RFC 5280 structure and profile conformance, checked on the DER of
//! the TBS certificate — the very bytes the CA key will sign — before any
//! signature is made.
//!
//! Every check decodes what was encoded and compares it with the profile; it
//! never re-runs the builder, so a builder bug cannot hide from it. Each
//! finding names its lint, so an operator (and a test) can tell which rule
//! refused the certificate.

use std::collections::BTreeSet;
use std::fmt;

use const_oid::db::rfc4519;
use const_oid::db::rfc5280::{ID_AD_CA_ISSUERS, ID_AD_OCSP, ID_QT_CPS, ID_QT_UNOTICE};
use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::Ia5String;
use der::{Decode, Encode, Tag, Tagged};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies,
    CrlDistributionPoints, ExtendedKeyUsage, KeyUsage, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::RdnSequence;
use x509_cert::time::Time;

use super::tbs::{key_identifier, BmpUserNotice, IssuerIdentity, TbsCertificate};
use super::validity;
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

/// What the checks read of a decoded TBS certificate, from whichever
/// decoder read it.
struct Fields<'a> {
    version: Version,
    serial: &'a [u8],
    signature: &'a AlgorithmIdentifierOwned,
    issuer: &'a RdnSequence,
    not_before: Time,
    not_after: Time,
    subject: &'a RdnSequence,
    spki: &'a SubjectPublicKeyInfoOwned,
    /// Whether either unique identifier is present.
    unique_ids: bool,
    extensions: &'a [Extension],
}

impl<'a> Fields<'a> {
    fn of_x509(tbs: &'a x509_cert::TbsCertificate) -> Self {
        Self {
            version: tbs.version(),
            serial: tbs.serial_number().as_bytes(),
            signature: tbs.signature(),
            issuer: tbs.issuer().as_ref(),
            not_before: tbs.validity().not_before,
            not_after: tbs.validity().not_after,
            subject: tbs.subject().as_ref(),
            spki: tbs.subject_public_key_info(),
            unique_ids: tbs.issuer_unique_id().is_some() || tbs.subject_unique_id().is_some(),
            extensions: tbs.extensions().map_or(&[], |e| e.as_slice()),
        }
    }

    fn of_own(tbs: &'a TbsCertificate) -> Self {
        Self {
            version: tbs.version,
            serial: tbs.serial_number.as_bytes(),
            signature: &tbs.signature,
            issuer: &tbs.issuer,
            not_before: tbs.validity.not_before,
            not_after: tbs.validity.not_after,
            subject: &tbs.subject,
            spki: &tbs.subject_public_key_info,
            unique_ids: tbs.issuer_unique_id.is_some() || tbs.subject_unique_id.is_some(),
            extensions: tbs.extensions.as_deref().unwrap_or(&[]),
        }
    }
}

/// Checks `tbs_der` against RFC 5280 and `profile`, for certificates issued
/// by `issuer`. `id_mode` says whether GİB test identifiers are acceptable.
pub fn lint(
    profile: &Profile,
    issuer: &IssuerIdentity,
    id_mode: IdMode,
    tbs_der: &[u8],
) -> Result<(), LintReport> {
    let mut f = Findings::default();
    // x509-cert decodes the TBS (a second parser's opinion of it) and the
    // checks read what it decoded. Only when it refuses is certmint's own
    // TbsCertificate decoded, so that every other finding is still
    // reported. The der crate decodes strict DER only, so a non-canonical
    // encoding fails both. Decoding is most of a lint's cost: once, not
    // twice, for every certificate that passes.
    let x509 = x509_cert::TbsCertificate::from_der(tbs_der);
    let own: TbsCertificate;
    let tbs = match &x509 {
        Ok(tbs) => Fields::of_x509(tbs),
        Err(refusal) => {
            own = match TbsCertificate::from_der(tbs_der) {
                Ok(tbs) => tbs,
                Err(e) => {
                    f.add("der.structure", format!("not a DER TBSCertificate: {e}"));
                    return Err(LintReport(f.0));
                }
            };
            f.add(
                "der.x509_cert",
                format!("x509-cert refuses the TBS: {refusal}"),
            );
            Fields::of_own(&own)
        }
    };

    f.check(tbs.version == Version::V3, "rfc5280.version", || {
        format!("version is {:?}, must be v3", tbs.version)
    });
    lint_serial(&mut f, tbs.serial);
    f.check(
        *tbs.signature == issuer.signature_algorithm.algorithm_identifier(),
        "rfc5280.signature_algorithm",
        || {
            format!(
                "TBS signature algorithm {} is not the issuer's {}",
                tbs.signature.oid, issuer.signature_algorithm
            )
        },
    );
    // Both names are DER-decoded (or built in canonical order), so they are
    // equal exactly when their encodings are.
    f.check(
        !tbs.issuer.is_empty() && *tbs.issuer == issuer.name,
        "rfc5280.issuer",
        || {
            format!(
                "issuer {} is not the CA's subject {}",
                tbs.issuer, issuer.name
            )
        },
    );
    f.check(!tbs.unique_ids, "rfc5280.unique_ids", || {
        "CAs must not generate unique identifiers".into()
    });
    lint_validity(&mut f, profile, issuer, &tbs);
    lint_subject(&mut f, profile, id_mode, tbs.subject);

    let key_type = match tbs.spki.to_der().map(|d| KeyType::of_public_key(&d)) {
        Ok(Ok(key_type)) => Some(key_type),
        Ok(Err(e)) => {
            f.add("profile.key", e.to_string());
            None
        }
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
    lint_extensions(&mut f, profile, issuer, &tbs, key_type);

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

fn lint_validity(f: &mut Findings, profile: &Profile, issuer: &IssuerIdentity, tbs: &Fields<'_>) {
    let not_before = tbs.not_before.to_date_time();
    let not_after = tbs.not_after.to_date_time();
    for (which, time) in [("notBefore", tbs.not_before), ("notAfter", tbs.not_after)] {
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
    if let Some(issuer_not_after) = issuer.not_after {
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

fn lint_subject(f: &mut Findings, profile: &Profile, id_mode: IdMode, subject: &RdnSequence) {
    let mut attributes = Vec::new();
    for rdn in subject.iter() {
        f.check(rdn.len() == 1, "profile.subject.rdn", || {
            format!(
                "an RDN holds {} attributes; certmint names hold one per RDN",
                rdn.len()
            )
        });
        attributes.extend(rdn.iter());
    }
    let mut values: Vec<(ObjectIdentifier, String)> = Vec::new();
    let mut next = attributes.iter().peekable();
    for rule in &profile.subject_rules {
        match next.peek() {
            Some(attr) if attr.oid == rule.oid => {
                let attr = next.next().copied();
                let Some(attr) = attr else { break };
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
                let value = String::from_utf8_lossy(attr.value.value()).into_owned();
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
            .map(|(_, v)| v.as_str())
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
    ext: &'a Extension,
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

fn criticality(f: &mut Findings, lint: &'static str, ext: &Extension, critical: bool) {
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

fn lint_extensions(
    f: &mut Findings,
    profile: &Profile,
    issuer: &IssuerIdentity,
    tbs: &Fields<'_>,
    key_type: Option<KeyType>,
) {
    let extensions = tbs.extensions;
    let mut seen = BTreeSet::new();
    for ext in extensions {
        f.check(
            seen.insert(ext.extn_id),
            "rfc5280.extensions.unique",
            || format!("extension {} appears more than once", ext.extn_id),
        );
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
    for oid in &seen {
        f.check(
            expected.contains(oid),
            "profile.extensions.unexpected",
            || format!("extension {oid} is not part of profile {}", profile.name),
        );
    }

    for ext in extensions {
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
                        ski.0.as_bytes() == key_identifier(tbs.spki).as_slice(),
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
                            == issuer.key_identifier.as_deref(),
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
