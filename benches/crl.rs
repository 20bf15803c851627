//! Criterion benches of a CRL of 10,000 entries, with x509-cert's own
//! encoder as the baseline in the same run:
//!
//! - `crl/stream-10000`: [`certmint::crl::CrlBuilder`] — each entry linted
//!   and encoded straight into the output, then the CRL extensions, the
//!   P-256 signature and its verification;
//! - `crl/x509-cert-10000`: the same entries collected into x509-cert's
//!   `TbsCertList` and DER-encoded, unsigned (what the streaming encoder
//!   replaces: it holds every entry twice, once as values and once encoded).
//!
//! Run: `cargo bench --bench crl`. Their ratio is the streaming encoder's
//! cost against x509-cert's; `certmint bench --crl N` measures whole CRLs
//! with their memory (docs/performance.md).

use std::hint::black_box;

use certmint::crl::{CrlBuilder, CrlInfo, CrlIssuer};
use certmint::issue::CertificateAuthority;
use certmint::profile::{CaConfig, Profile, ProfileName, Subject, SubjectInput};
use certmint::revocation::RevocationReason;
use certmint::signer::{KeyType, SoftwareSigner};
use certmint::tools::crl_bench::synthetic_entry;
use criterion::{criterion_group, criterion_main, Criterion};
use der::asn1::{GeneralizedTime, OctetString};
use der::Encode;
use x509_cert::crl::{RevokedCert, TbsCertList};
use x509_cert::ext::pkix::CrlReason;
use x509_cert::ext::{Extension, ToExtension};
use x509_cert::serial_number::SerialNumber;

const ENTRIES: u64 = 10_000;

fn root() -> CertificateAuthority {
    let config = CaConfig::kamu_sm_defaults();
    let profile = Profile::from_config(ProfileName::RootCa, &config).unwrap();
    let subject = Subject::from_input(
        &profile,
        &SubjectInput {
            common_name: Some("bench CA".into()),
            ..Default::default()
        },
        certmint::ids::IdMode::Production,
    )
    .unwrap();
    let now = certmint::issue::validity::now().unwrap();
    let key = SoftwareSigner::generate(KeyType::EcP256).unwrap();
    CertificateAuthority::create_root(Box::new(key), &profile, &subject, now).unwrap()
}

fn x509_cert_entries(this_update: time::OffsetDateTime) -> Vec<RevokedCert> {
    let time = |at: time::OffsetDateTime| {
        let at = der::DateTime::from_unix_duration(std::time::Duration::from_secs(
            at.unix_timestamp() as u64,
        ))
        .unwrap();
        certmint::issue::validity::rfc5280_time(at).unwrap()
    };
    let name = x509_cert::name::Name::default();
    (0..ENTRIES)
        .map(|i| {
            let entry = synthetic_entry(i, ENTRIES, this_update);
            let mut extensions: Vec<Extension> = Vec::new();
            if entry.reason != RevocationReason::Unspecified {
                let reason = match entry.reason {
                    RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
                    RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
                    _ => CrlReason::Superseded,
                };
                extensions.push(reason.to_extension(&name, &[]).unwrap());
            }
            if let Some(at) = entry.invalidity_date {
                let at = der::DateTime::from_unix_duration(std::time::Duration::from_secs(
                    at.unix_timestamp() as u64,
                ))
                .unwrap();
                extensions.push(Extension {
                    extn_id: const_oid::db::rfc5280::ID_CE_INVALIDITY_DATE,
                    critical: false,
                    extn_value: OctetString::new(
                        GeneralizedTime::from_date_time(at).to_der().unwrap(),
                    )
                    .unwrap(),
                });
            }
            RevokedCert {
                serial_number: SerialNumber::new(&entry.serial).unwrap(),
                revocation_date: time(entry.revoked_at),
                crl_entry_extensions: (!extensions.is_empty()).then_some(extensions),
            }
        })
        .collect()
}

fn crl(c: &mut Criterion) {
    let ca = root();
    let issuer = CrlIssuer::new(ca.certificate_der(), ca.signer()).unwrap();
    let this_update = time::OffsetDateTime::now_utc();
    let info = CrlInfo {
        number: 1,
        this_update,
        next_update: this_update + time::Duration::days(7),
    };
    let mut group = c.benchmark_group("crl");
    group.sample_size(20);
    group.bench_function("stream-10000", |b| {
        b.iter(|| {
            let mut builder = CrlBuilder::start(&issuer, info).unwrap();
            for i in 0..ENTRIES {
                builder
                    .push(&synthetic_entry(i, ENTRIES, this_update))
                    .unwrap();
            }
            black_box(builder.finish().unwrap())
        })
    });
    group.bench_function("x509-cert-10000", |b| {
        b.iter(|| {
            let tbs = TbsCertList::<x509_cert::certificate::Rfc5280> {
                version: x509_cert::Version::V2,
                signature: ca.signer().algorithm().algorithm_identifier(),
                issuer: x509_cert::name::Name::default(),
                this_update: x509_cert::time::Time::now().unwrap(),
                next_update: None,
                revoked_certificates: Some(x509_cert_entries(this_update)),
                crl_extensions: None,
            };
            black_box(tbs.to_der().unwrap())
        })
    });
    group.finish();
}

criterion_group!(benches, crl);
criterion_main!(benches);
