//! Every lint, shown by a TBS certificate that breaks it. Each bad TBS is
//! refused by `prepare_tbs`, and the CA key — wrapped in a counter — has
//! made no signature at all.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use certmint::ids::IdMode;
use certmint::issue::lint::{lint_rules, Conformant};
use certmint::issue::tbs::{self, TbsCertificate};
use certmint::issue::validity;
use certmint::issue::{CertificateAuthority, EntropySource, IssueError, LintReport, SubjectKey};
use certmint::profile::{
    CaConfig, Profile, ProfileName, StringType, Subject, SubjectAttribute, SubjectInput,
};
use certmint::signer::{KeyType, SignatureAlgorithm, Signer, SignerError, SoftwareSigner};
use const_oid::db::{rfc4519, rfc5280 as oids};
use const_oid::{AssociatedOid, ObjectIdentifier};
use der::asn1::{Any, Int, OctetString, Utf8StringRef};
use der::{DateTime, Decode, Encode};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::certpolicy::{
    DisplayText, PolicyInformation, PolicyQualifierInfo, UserNotice,
};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, CertificatePolicies, CrlDistributionPoints,
    ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::Extension;
use x509_cert::name::{RdnSequence, RelativeDistinguishedName};
use x509_cert::time::Time;

/// A CA key that counts its signatures.
#[derive(Debug)]
struct CountingSigner {
    inner: SoftwareSigner,
    signatures: Arc<AtomicUsize>,
}

impl Signer for CountingSigner {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.inner.algorithm()
    }
    fn public_key_der(&self) -> &[u8] {
        self.inner.public_key_der()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        self.signatures.fetch_add(1, Ordering::SeqCst);
        self.inner.sign(message)
    }
}

struct Fixture {
    ca: CertificateAuthority,
    signatures: Arc<AtomicUsize>,
    profile: Profile,
    subject: Subject,
    subject_key: Vec<u8>,
    now: DateTime,
}

fn fixture(profile_name: ProfileName) -> Fixture {
    let config = CaConfig::kamu_sm_defaults();
    let now = validity::now().unwrap();
    let root_profile = Profile::from_config(ProfileName::RootCa, &config).unwrap();
    let issuing_profile = Profile::from_config(ProfileName::IssuingCa, &config).unwrap();
    let ca_subject = |cn: &str, profile: &Profile| {
        let input = SubjectInput {
            common_name: Some(cn.into()),
            ..Default::default()
        };
        Subject::from_input(profile, &input, IdMode::Production).unwrap()
    };
    let root = CertificateAuthority::create_root(
        Box::new(SoftwareSigner::generate(KeyType::EcP384).unwrap()),
        &root_profile,
        &ca_subject("Test Root", &root_profile),
        now,
    )
    .unwrap();
    let issuing_key = SoftwareSigner::generate(KeyType::EcP384).unwrap();
    let issuing_cert = root
        .issue(
            &issuing_profile,
            &ca_subject("Test Issuing", &issuing_profile),
            SubjectKey::checked(issuing_key.public_key_der()).unwrap(),
            now,
        )
        .unwrap();
    let signatures = Arc::new(AtomicUsize::new(0));
    let counting = CountingSigner {
        inner: issuing_key,
        signatures: signatures.clone(),
    };
    let ca = CertificateAuthority::new(Box::new(counting), issuing_cert.der().to_vec()).unwrap();

    let profile = Profile::from_config(profile_name, &config).unwrap();
    let (input, key_type) = match profile_name {
        ProfileName::MaliMuhur => (
            SubjectInput {
                vkn: Some("4540536920".into()),
                unvan: Some("ÖRNEK BİLİŞİM ANONİM ŞİRKETİ".into()),
                ..Default::default()
            },
            KeyType::EcP384,
        ),
        _ => (
            SubjectInput {
                device_serial: Some("FU00022547".into()),
                ..Default::default()
            },
            KeyType::EcP256,
        ),
    };
    let subject = Subject::from_input(&profile, &input, IdMode::Production).unwrap();
    let subject_key = SoftwareSigner::generate(key_type)
        .unwrap()
        .public_key_der()
        .to_vec();
    Fixture {
        ca,
        signatures,
        profile,
        subject,
        subject_key,
        now,
    }
}

impl Fixture {
    fn good_tbs(&self) -> TbsCertificate {
        let key_type = KeyType::of_public_key(&self.subject_key).unwrap();
        tbs::build(
            &self.profile,
            &self.subject,
            &self.subject_key,
            key_type,
            self.ca.identity(),
            Int::new(&[0x40; 16]).unwrap(),
            self.now,
        )
        .unwrap()
    }

    /// Lints `tbs`, expects refusal by `lint`, and checks no signature was
    /// made. Also checks that the CA's shortcut for the certificates after a
    /// template's first (extensions byte-identical to a conforming
    /// certificate's are not decoded again) reaches the same verdict.
    fn refused(&self, tbs: &TbsCertificate, lint: &str) -> LintReport {
        match self.ca.prepare_tbs(&self.profile, tbs) {
            Err(IssueError::Lint(report)) => {
                assert!(report.has(lint), "expected lint {lint}, got: {report}");
                assert_eq!(
                    self.signatures.load(Ordering::SeqCst),
                    0,
                    "no signature may be made"
                );
                let der = tbs.to_der().unwrap();
                let good = self.good_tbs().to_der().unwrap();
                let known = Conformant::remember(&self.profile, &good).unwrap();
                let rules = |known: &Conformant| {
                    lint_rules(
                        &self.profile,
                        self.ca.identity(),
                        IdMode::Production,
                        &der,
                        known,
                    )
                };
                let every_extension_decoded = rules(&Conformant::nothing());
                assert_eq!(
                    rules(&known),
                    every_extension_decoded,
                    "known-conformant extensions changed the verdict"
                );
                let mut without_second_decoding = report.clone();
                without_second_decoding
                    .0
                    .retain(|f| f.lint != "der.x509_cert");
                match every_extension_decoded {
                    Err(rules_report) => assert_eq!(rules_report, without_second_decoding),
                    Ok(()) => assert!(without_second_decoding.0.is_empty(), "{report}"),
                }
                report
            }
            Err(other) => panic!("expected lint {lint}, got error {other}"),
            Ok(_) => panic!("expected lint {lint}, but the TBS passed"),
        }
    }

    fn refused_with(&self, lint: &str, change: impl FnOnce(&mut TbsCertificate)) -> LintReport {
        let mut tbs = self.good_tbs();
        change(&mut tbs);
        self.refused(&tbs, lint)
    }
}

fn extension<T: Encode + AssociatedOid>(value: &T, critical: bool) -> Extension {
    Extension {
        extn_id: T::OID,
        critical,
        extn_value: OctetString::new(value.to_der().unwrap()).unwrap(),
    }
}

fn replace_extension(tbs: &mut TbsCertificate, new: Extension) {
    let extensions = tbs.extensions.as_mut().unwrap();
    let at = extensions
        .iter()
        .position(|e| e.extn_id == new.extn_id)
        .expect("extension present");
    extensions[at] = new;
}

fn remove_extension(tbs: &mut TbsCertificate, oid: ObjectIdentifier) {
    tbs.extensions
        .as_mut()
        .unwrap()
        .retain(|e| e.extn_id != oid);
}

fn name(attributes: &[(ObjectIdentifier, &str, StringType)]) -> RdnSequence {
    let attrs: Vec<SubjectAttribute> = attributes
        .iter()
        .map(|(oid, value, string_type)| SubjectAttribute {
            oid: *oid,
            value,
            string_type: *string_type,
        })
        .collect();
    tbs::encode_name(&attrs).unwrap()
}

// --- the good case first: what the lints accept is signed exactly as linted.

#[test]
fn a_conforming_tbs_passes_and_is_signed_byte_for_byte() {
    for profile in [ProfileName::MaliMuhur, ProfileName::OkcDevice] {
        let fx = fixture(profile);
        let prepared = fx.ca.prepare_tbs(&fx.profile, &fx.good_tbs()).unwrap();
        let tbs_der = prepared.tbs_der().to_vec();
        let certificate = fx.ca.sign(prepared).unwrap();
        assert_eq!(fx.signatures.load(Ordering::SeqCst), 1);
        let der = certificate.der();
        let at = der
            .windows(tbs_der.len())
            .position(|w| w == tbs_der.as_slice());
        assert_eq!(
            at,
            Some(4),
            "the certificate embeds the linted TBS unchanged"
        );
        let parsed = x509_cert::Certificate::from_der(der).unwrap();
        assert_eq!(parsed.tbs_certificate().to_der().unwrap(), tbs_der);
    }
}

#[test]
fn extensions_known_conformant_apply_only_to_their_profile_and_key_type() {
    // An ÖKC device's extensions are not a Mali Mühür seal's: knowing the
    // first conformant must not let them through under the second profile.
    let okc = fixture(ProfileName::OkcDevice);
    let seal = fixture(ProfileName::MaliMuhur);
    let okc_der = okc.good_tbs().to_der().unwrap();
    let known = Conformant::remember(&okc.profile, &okc_der).unwrap();
    let report = lint_rules(
        &seal.profile,
        okc.ca.identity(),
        IdMode::Production,
        &okc_der,
        &known,
    )
    .unwrap_err();
    assert!(report.has("profile.key_usage"), "{report}");
    assert_eq!(
        Err(report),
        lint_rules(
            &seal.profile,
            okc.ca.identity(),
            IdMode::Production,
            &okc_der,
            &Conformant::nothing()
        )
    );
}

#[test]
fn prepare_builds_tbs_that_pass_every_lint() {
    for profile in [ProfileName::MaliMuhur, ProfileName::OkcDevice] {
        let fx = fixture(profile);
        for _ in 0..20 {
            fx.ca
                .prepare(
                    &fx.profile,
                    &fx.subject,
                    SubjectKey::checked(&fx.subject_key).unwrap(),
                    fx.now,
                )
                .unwrap();
        }
        assert_eq!(
            fx.signatures.load(Ordering::SeqCst),
            0,
            "prepare never signs"
        );
    }
}

#[test]
fn a_failing_rng_aborts_issuance_before_any_signature() {
    #[derive(Debug)]
    struct BrokenRng;
    impl EntropySource for BrokenRng {
        fn fill(&self, _: &mut [u8]) -> Result<(), String> {
            Err("entropy pool unavailable".into())
        }
    }
    let fx = fixture(ProfileName::MaliMuhur);
    let Fixture {
        ca,
        signatures,
        profile,
        subject,
        subject_key,
        now,
    } = fx;
    let ca = ca.with_entropy(Box::new(BrokenRng));
    let key = SubjectKey::checked(&subject_key).unwrap();
    let err = ca.issue(&profile, &subject, key, now).unwrap_err();
    assert!(matches!(err, IssueError::Entropy(_)), "{err}");
    assert_eq!(signatures.load(Ordering::SeqCst), 0);
}

// --- DER structure

#[test]
fn der_structure() {
    let fx = fixture(ProfileName::MaliMuhur);
    let report = certmint::issue::lint::lint(
        &fx.profile,
        fx.ca.identity(),
        IdMode::Production,
        b"\x30\x03\x02\x01",
    )
    .unwrap_err();
    assert!(report.has("der.structure"), "{report}");
    // A non-minimal length encoding is not DER either.
    let good = fx.good_tbs().to_der().unwrap();
    assert_eq!(good[1], 0x82, "long-form length");
    let mut padded = vec![0x30, 0x83, 0x00];
    padded.extend_from_slice(&good[2..]);
    let report =
        certmint::issue::lint::lint(&fx.profile, fx.ca.identity(), IdMode::Production, &padded)
            .unwrap_err();
    assert!(report.has("der.structure"), "{report}");
}

#[test]
fn der_x509_cert_parser_agrees() {
    let fx = fixture(ProfileName::MaliMuhur);
    fx.refused_with("der.x509_cert", |t| {
        t.serial_number = Int::new(&[0x11; 22]).unwrap()
    });
}

// --- RFC 5280 structure

#[test]
fn rfc5280_version() {
    fixture(ProfileName::MaliMuhur).refused_with("rfc5280.version", |t| t.version = Version::V2);
}

#[test]
fn rfc5280_serial_positive() {
    let fx = fixture(ProfileName::MaliMuhur);
    fx.refused_with("rfc5280.serial.positive", |t| {
        t.serial_number = Int::new(&[0x80; 16]).unwrap()
    });
    fx.refused_with("rfc5280.serial.positive", |t| {
        t.serial_number = Int::new(&[0x00]).unwrap()
    });
}

#[test]
fn rfc5280_serial_length() {
    fixture(ProfileName::MaliMuhur).refused_with("rfc5280.serial.length", |t| {
        t.serial_number = Int::new(&[0x11; 21]).unwrap()
    });
}

#[test]
fn cabf_serial_entropy() {
    fixture(ProfileName::MaliMuhur).refused_with("cabf.serial.entropy", |t| {
        t.serial_number = Int::new(&[0x01, 0x02, 0x03, 0x04]).unwrap()
    });
}

#[test]
fn rfc5280_signature_algorithm() {
    fixture(ProfileName::MaliMuhur).refused_with("rfc5280.signature_algorithm", |t| {
        t.signature = SignatureAlgorithm::RsaPkcs1Sha256.algorithm_identifier()
    });
}

#[test]
fn rfc5280_issuer() {
    let fx = fixture(ProfileName::MaliMuhur);
    fx.refused_with("rfc5280.issuer", |t| t.issuer = t.subject.clone());
    fx.refused_with("rfc5280.issuer", |t| t.issuer = RdnSequence::default());
}

#[test]
fn rfc5280_unique_ids() {
    fixture(ProfileName::MaliMuhur).refused_with("rfc5280.unique_ids", |t| {
        t.subject_unique_id = Some(der::asn1::BitString::from_bytes(&[1]).unwrap())
    });
}

#[test]
fn rfc5280_validity_encoding() {
    fixture(ProfileName::MaliMuhur).refused_with("rfc5280.validity.encoding", |t| {
        let start = t.validity.not_before.to_date_time();
        t.validity.not_before =
            Time::GeneralTime(der::asn1::GeneralizedTime::from_date_time(start));
    });
}

#[test]
fn rfc5280_validity_order() {
    fixture(ProfileName::MaliMuhur).refused_with("rfc5280.validity.order", |t| {
        std::mem::swap(&mut t.validity.not_before, &mut t.validity.not_after);
    });
}

#[test]
fn rfc5280_validity_within_issuer() {
    let fx = fixture(ProfileName::MaliMuhur);
    let eleven_years = std::time::Duration::from_secs(11 * 366 * 86_400);
    let late_start = DateTime::from_unix_duration(fx.now.unix_duration() + eleven_years).unwrap();
    fx.refused_with("rfc5280.validity.within_issuer", |t| {
        t.validity = validity::validity(late_start, 3).unwrap();
    });
}

/// Nothing starts before the issuing CA's own notBefore.
#[test]
fn rfc5280_validity_within_issuer_starts_no_earlier_than_the_issuer() {
    let fx = fixture(ProfileName::MaliMuhur);
    let one_day = std::time::Duration::from_secs(86_400);
    let early_start = DateTime::from_unix_duration(fx.now.unix_duration() - one_day).unwrap();
    fx.refused_with("rfc5280.validity.within_issuer", |t| {
        t.validity = validity::validity(early_start, 3).unwrap();
    });
}

#[test]
fn profile_validity() {
    fixture(ProfileName::MaliMuhur).refused_with("profile.validity", |t| {
        // Three whole years: one day too long.
        let start = t.validity.not_before.to_date_time();
        let end = validity::not_after(start, 3).unwrap();
        let one_day_more = DateTime::from_unix_duration(
            end.unix_duration() + std::time::Duration::from_secs(86_400),
        )
        .unwrap();
        t.validity.not_after = validity::rfc5280_time(one_day_more).unwrap();
    });
}

// --- subject name

#[test]
fn profile_subject_rdn() {
    fixture(ProfileName::MaliMuhur).refused_with("profile.subject.rdn", |t| {
        let attr = |oid, value: &str| AttributeTypeAndValue {
            oid,
            value: Any::encode_from(&Utf8StringRef::new(value).unwrap()).unwrap(),
        };
        let both = RelativeDistinguishedName::try_from(vec![
            attr(rfc4519::SERIAL_NUMBER, "4540536920"),
            attr(rfc4519::CN, "ÖRNEK"),
        ])
        .unwrap();
        let mut name = RdnSequence::default();
        name.push(both);
        t.subject = name;
    });
}

#[test]
fn profile_subject_string_type() {
    let fx = fixture(ProfileName::MaliMuhur);
    fx.refused_with("profile.subject.string_type", |t| {
        t.subject = name(&[
            (rfc4519::SERIAL_NUMBER, "4540536920", StringType::Printable),
            (rfc4519::CN, "ORNEK BILISIM", StringType::Printable),
        ])
    });
    fx.refused_with("profile.subject.string_type", |t| {
        t.subject = name(&[
            (rfc4519::SERIAL_NUMBER, "4540536920", StringType::Utf8),
            (rfc4519::CN, "ORNEK BILISIM", StringType::Utf8),
        ])
    });
}

#[test]
fn profile_subject_value() {
    let fx = fixture(ProfileName::MaliMuhur);
    fx.refused_with("profile.subject.value", |t| {
        t.subject = name(&[
            (rfc4519::SERIAL_NUMBER, "1234567891", StringType::Printable),
            (rfc4519::CN, "ÖRNEK", StringType::Utf8),
        ])
    });
    fx.refused_with("profile.subject.value", |t| {
        let long = "A".repeat(65);
        t.subject = name(&[
            (rfc4519::SERIAL_NUMBER, "4540536920", StringType::Printable),
            (rfc4519::CN, &long, StringType::Utf8),
        ])
    });
    // The GİB test VKN is a value error outside test mode.
    fx.refused_with("profile.subject.value", |t| {
        t.subject = name(&[
            (rfc4519::SERIAL_NUMBER, "9999999999", StringType::Printable),
            (rfc4519::CN, "ÖRNEK", StringType::Utf8),
        ])
    });
    // ÖKC: the CN must repeat the device serial.
    let okc = fixture(ProfileName::OkcDevice);
    okc.refused_with("profile.subject.value", |t| {
        t.subject = name(&[
            (rfc4519::SERIAL_NUMBER, "FU00022547", StringType::Printable),
            (rfc4519::CN, "FU00022548", StringType::Utf8),
        ])
    });
}

#[test]
fn profile_subject_missing() {
    fixture(ProfileName::MaliMuhur).refused_with("profile.subject.missing", |t| {
        t.subject = name(&[(rfc4519::SERIAL_NUMBER, "4540536920", StringType::Printable)])
    });
}

#[test]
fn profile_subject_unexpected() {
    fixture(ProfileName::MaliMuhur).refused_with("profile.subject.unexpected", |t| {
        t.subject = name(&[
            (rfc4519::SERIAL_NUMBER, "4540536920", StringType::Printable),
            (rfc4519::CN, "ÖRNEK", StringType::Utf8),
            (rfc4519::C, "TR", StringType::Printable),
        ])
    });
}

// --- key

#[test]
fn profile_key() {
    let fx = fixture(ProfileName::MaliMuhur);
    let pem = include_str!("../fixtures/keys/rsa1024.pub.pem");
    let spki = certmint::pem::der_from_pem_or_der(pem.as_bytes(), "PUBLIC KEY").unwrap();
    let report = fx.refused_with("profile.key", |t| {
        t.subject_public_key_info = spki::SubjectPublicKeyInfoOwned::from_der(&spki).unwrap();
    });
    assert!(
        report
            .to_string()
            .contains("rsa1024 key; profile mali-muhur accepts rsa2048, p384"),
        "{report}"
    );
    let p256 = SoftwareSigner::generate(KeyType::EcP256).unwrap();
    fx.refused_with("profile.key", |t| {
        t.subject_public_key_info =
            spki::SubjectPublicKeyInfoOwned::from_der(p256.public_key_der()).unwrap();
    });
}

// --- extensions

#[test]
fn rfc5280_extensions_unique() {
    fixture(ProfileName::MaliMuhur).refused_with("rfc5280.extensions.unique", |t| {
        let ku = t
            .extensions
            .as_ref()
            .unwrap()
            .iter()
            .find(|e| e.extn_id == KeyUsage::OID)
            .unwrap()
            .clone();
        t.extensions.as_mut().unwrap().push(ku);
    });
}

#[test]
fn profile_extensions_missing() {
    let fx = fixture(ProfileName::MaliMuhur);
    for oid in [
        BasicConstraints::OID,
        KeyUsage::OID,
        ExtendedKeyUsage::OID,
        CertificatePolicies::OID,
        SubjectKeyIdentifier::OID,
        AuthorityKeyIdentifier::OID,
        CrlDistributionPoints::OID,
        oids::ID_PE_AUTHORITY_INFO_ACCESS,
    ] {
        fx.refused_with("profile.extensions.missing", |t| remove_extension(t, oid));
    }
}

#[test]
fn profile_extensions_order() {
    // subjectKeyIdentifier before authorityKeyIdentifier: not the Kamu SM order.
    fixture(ProfileName::MaliMuhur).refused_with("profile.extensions.order", |t| {
        t.extensions.as_mut().unwrap().swap(0, 1);
    });
    // basicConstraints first, as an X.509 builder's usual order has it.
    fixture(ProfileName::OkcDevice).refused_with("profile.extensions.order", |t| {
        let extensions = t.extensions.as_mut().unwrap();
        let at = extensions
            .iter()
            .position(|e| e.extn_id == BasicConstraints::OID)
            .unwrap();
        let bc = extensions.remove(at);
        extensions.insert(0, bc);
    });
}

#[test]
fn profile_okc_revocation_information_and_policy() {
    // An [okc_device] section without a CRL URL, a caIssuers URL, or with
    // the Mali Mühür policy: the certificate matches its profile, and the
    // ÖKC rules refuse the profile's certificate all the same.
    let mut fx = fixture(ProfileName::OkcDevice);
    fx.profile.crl_url = None;
    let report = fx.refused_with("profile.okc.crl_distribution_point", |_| {});
    assert!(
        report.to_string().contains("ca add-issuing --line okc"),
        "{report}"
    );

    let mut fx = fixture(ProfileName::OkcDevice);
    fx.profile.ca_issuers_url = None;
    fx.profile.ocsp_url = Some("http://ocsp.example".into());
    fx.refused_with("profile.okc.ca_issuers", |_| {});

    let mut fx = fixture(ProfileName::OkcDevice);
    fx.profile.policy.as_mut().unwrap().oid =
        ObjectIdentifier::new_unwrap(certmint::profile::MALI_MUHUR_POLICY_OID);
    fx.refused_with("profile.okc.policy", |_| {});

    // The Mali Mühür profile is not held to the ÖKC rules.
    let mut fx = fixture(ProfileName::MaliMuhur);
    fx.profile.crl_url = None;
    let tbs = fx.good_tbs();
    fx.ca.prepare_tbs(&fx.profile, &tbs).unwrap();
}

#[test]
fn profile_extensions_unexpected() {
    // Mali Mühür is not a qualified certificate: QCStatements must not appear.
    fixture(ProfileName::MaliMuhur).refused_with("profile.extensions.unexpected", |t| {
        t.extensions.as_mut().unwrap().push(Extension {
            extn_id: ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.3"),
            critical: false,
            extn_value: OctetString::new(vec![0x30, 0x00]).unwrap(),
        });
    });
}

#[test]
fn profile_basic_constraints() {
    let fx = fixture(ProfileName::MaliMuhur);
    fx.refused_with("profile.basic_constraints", |t| {
        replace_extension(
            t,
            extension(
                &BasicConstraints {
                    ca: false,
                    path_len_constraint: None,
                },
                false,
            ),
        )
    });
    fx.refused_with("profile.basic_constraints", |t| {
        replace_extension(
            t,
            extension(
                &BasicConstraints {
                    ca: true,
                    path_len_constraint: None,
                },
                true,
            ),
        )
    });
}

#[test]
fn profile_key_usage() {
    let fx = fixture(ProfileName::MaliMuhur);
    fx.refused_with("profile.key_usage", |t| {
        replace_extension(
            t,
            extension(
                &KeyUsage(KeyUsages::DigitalSignature | KeyUsages::KeyEncipherment),
                true,
            ),
        )
    });
    fx.refused_with("profile.key_usage", |t| {
        replace_extension(
            t,
            extension(&KeyUsage(KeyUsages::DigitalSignature.into()), false),
        )
    });
    // ÖKC with an EC key must also allow keyAgreement.
    fixture(ProfileName::OkcDevice).refused_with("profile.key_usage", |t| {
        replace_extension(
            t,
            extension(&KeyUsage(KeyUsages::DigitalSignature.into()), true),
        )
    });
}

#[test]
fn profile_extended_key_usage() {
    let fx = fixture(ProfileName::MaliMuhur);
    fx.refused_with("profile.extended_key_usage", |t| {
        replace_extension(
            t,
            extension(
                &ExtendedKeyUsage(vec![ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.1")]),
                false,
            ),
        )
    });
    fx.refused_with("profile.extended_key_usage", |t| {
        replace_extension(
            t,
            extension(
                &ExtendedKeyUsage(vec![ObjectIdentifier::new_unwrap(
                    certmint::profile::MALI_MUHUR_EKU_OID,
                )]),
                true,
            ),
        )
    });
}

fn policies_with_notice(notice: Any) -> CertificatePolicies {
    CertificatePolicies(vec![PolicyInformation {
        policy_identifier: ObjectIdentifier::new_unwrap(certmint::profile::MALI_MUHUR_POLICY_OID),
        policy_qualifiers: Some(vec![
            PolicyQualifierInfo {
                policy_qualifier_id: oids::ID_QT_CPS,
                qualifier: Some(
                    Any::encode_from(
                        &der::asn1::Ia5String::new(certmint::profile::KAMU_SM_CPS_URI).unwrap(),
                    )
                    .unwrap(),
                ),
            },
            PolicyQualifierInfo {
                policy_qualifier_id: oids::ID_QT_UNOTICE,
                qualifier: Some(notice),
            },
        ]),
    }])
}

#[test]
fn profile_certificate_policies() {
    let fx = fixture(ProfileName::MaliMuhur);
    // The same text as a UTF8String instead of a BMPString.
    let utf8_notice = UserNotice {
        notice_ref: None,
        explicit_text: Some(DisplayText::Utf8String(
            certmint::profile::KAMU_SM_USER_NOTICE.parse().unwrap(),
        )),
    };
    let report = fx.refused_with("profile.certificate_policies", |t| {
        replace_extension(
            t,
            extension(
                &policies_with_notice(Any::encode_from(&utf8_notice).unwrap()),
                false,
            ),
        )
    });
    assert!(report.to_string().contains("BMPString"), "{report}");
    // Another policy OID.
    fx.refused_with("profile.certificate_policies", |t| {
        replace_extension(
            t,
            extension(
                &CertificatePolicies(vec![PolicyInformation {
                    policy_identifier: ObjectIdentifier::new_unwrap("2.5.29.32.0"),
                    policy_qualifiers: None,
                }]),
                false,
            ),
        )
    });
}

#[test]
fn rfc5280_subject_key_identifier() {
    fixture(ProfileName::MaliMuhur).refused_with("rfc5280.subject_key_identifier", |t| {
        replace_extension(
            t,
            extension(
                &SubjectKeyIdentifier(OctetString::new(vec![0xAB; 20]).unwrap()),
                false,
            ),
        )
    });
}

#[test]
fn rfc5280_authority_key_identifier() {
    fixture(ProfileName::MaliMuhur).refused_with("rfc5280.authority_key_identifier", |t| {
        replace_extension(
            t,
            extension(
                &AuthorityKeyIdentifier {
                    key_identifier: Some(OctetString::new(vec![0xCD; 20]).unwrap()),
                    authority_cert_issuer: None,
                    authority_cert_serial_number: None,
                },
                false,
            ),
        )
    });
}

#[test]
fn profile_crl_distribution_points() {
    let mut other = CaConfig::kamu_sm_defaults();
    other.mali_muhur.crl_url = Some("http://example.test/other.crl".into());
    let other_profile = Profile::from_config(ProfileName::MaliMuhur, &other).unwrap();
    let fx = fixture(ProfileName::MaliMuhur);
    let key_type = KeyType::of_public_key(&fx.subject_key).unwrap();
    let spki = spki::SubjectPublicKeyInfoOwned::from_der(&fx.subject_key).unwrap();
    let wrong = tbs::extensions(&other_profile, key_type, &spki, fx.ca.identity()).unwrap();
    let wrong_dp = wrong
        .into_iter()
        .find(|e| e.extn_id == CrlDistributionPoints::OID)
        .unwrap();
    fx.refused_with("profile.crl_distribution_points", |t| {
        replace_extension(t, wrong_dp)
    });
}

#[test]
fn profile_authority_info_access() {
    let mut other = CaConfig::kamu_sm_defaults();
    other.mali_muhur.ocsp_url = None;
    let other_profile = Profile::from_config(ProfileName::MaliMuhur, &other).unwrap();
    let fx = fixture(ProfileName::MaliMuhur);
    let key_type = KeyType::of_public_key(&fx.subject_key).unwrap();
    let spki = spki::SubjectPublicKeyInfoOwned::from_der(&fx.subject_key).unwrap();
    let wrong = tbs::extensions(&other_profile, key_type, &spki, fx.ca.identity()).unwrap();
    let wrong_aia = wrong
        .into_iter()
        .find(|e| e.extn_id == oids::ID_PE_AUTHORITY_INFO_ACCESS)
        .unwrap();
    fx.refused_with("profile.authority_info_access", |t| {
        replace_extension(t, wrong_aia)
    });
}

#[test]
fn every_lint_named_in_the_linter_has_a_test_here() {
    let linter = include_str!("../src/issue/lint.rs");
    let tests = include_str!("lints.rs");
    let mut names: Vec<&str> = linter
        .split('"')
        .filter(|s| {
            (s.starts_with("rfc5280.")
                || s.starts_with("profile.")
                || s.starts_with("der.")
                || s.starts_with("cabf."))
                && !s.contains(' ')
        })
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 25, "{names:?}");
    for name in names {
        let as_test = format!("\"{name}\"");
        assert!(
            tests.contains(&as_test),
            "lint {name} has no test that expects it"
        );
    }
}
