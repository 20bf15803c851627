//! Criterion benches of each stage of one issuance, with the raw signature
//! and verification of the same key as the baseline in the same run:
//!
//! - `tbs/encode`: the TBS of an ÖKC device certificate, DER-encoded from
//!   its profile's template;
//! - `tbs/lint`: every lint rule on those bytes; `tbs/lint-known-extensions`
//!   the same with the extensions known conformant from an earlier
//!   certificate (what the CA does after a template's first certificate);
//!   `tbs/lint+x509-cert` adds x509-cert's decoding (the first certificate);
//! - `tbs/prepare`: both, with a fresh serial (`CertificateAuthority::prepare`);
//! - `sign/{p256,p384,rsa2048}`: the software CA key alone (aws-lc-rs);
//! - `verify/{p256,…}`: verification with the CA's parsed public key;
//! - `issue/{p256,…}`: the whole `CertificateAuthority::issue` call;
//! - `softhsm/sign/{p256,rsa2048}`: a SoftHSM2 key, when the module and
//!   `softhsm2-util` are present (skipped with a message otherwise).
//!
//! Run: `cargo bench --bench issuance`. Compare `issue/X` with
//! `sign/X` + `verify/X`: their ratio is the pipeline efficiency.

use std::hint::black_box;
use std::sync::Arc;

use certmint::ids::{DeviceSerial, IdMode, PrefixTable};
use certmint::issue::lint::{lint, lint_rules, Conformant};
use certmint::issue::{tbs, CertificateAuthority, SubjectKey};
use certmint::profile::{CaConfig, Profile, ProfileName, Subject, SubjectInput};
use certmint::signer::{KeyType, Signer, SoftwareSigner, VerifyingKey};
use criterion::{criterion_group, criterion_main, Criterion};
use der::Decode;

struct Setup {
    ca: CertificateAuthority,
    profile: Profile,
    subject: Subject,
    device_key: Vec<u8>,
    now: der::DateTime,
}

fn setup(ca_key: KeyType) -> (Setup, Arc<SoftwareSigner>) {
    let config = CaConfig::kamu_sm_defaults();
    let root_profile = Profile::from_config(ProfileName::RootCa, &config).unwrap();
    let profile = Profile::from_config(ProfileName::OkcDevice, &config).unwrap();
    let ca_subject = Subject::from_input(
        &root_profile,
        &SubjectInput {
            common_name: Some("bench CA".into()),
            ..Default::default()
        },
        IdMode::Production,
    )
    .unwrap();
    let now = certmint::issue::validity::now().unwrap();
    let key = Arc::new(SoftwareSigner::generate(ca_key).unwrap());
    let ca_signer = SoftwareSigner::from_bytes(&key.to_pkcs8_pem().unwrap(), "bench").unwrap();
    let ca =
        CertificateAuthority::create_root(Box::new(ca_signer), &root_profile, &ca_subject, now)
            .unwrap();
    let subject = Subject::OkcDevice {
        serial: DeviceSerial::parse("FU00022547", &PrefixTable::any()).unwrap(),
        manufacturer: Some("Örnek Yazarkasa A.Ş.".into()),
    };
    let device_key = SoftwareSigner::generate(KeyType::EcP256)
        .unwrap()
        .public_key_der()
        .to_vec();
    (
        Setup {
            ca,
            profile,
            subject,
            device_key,
            now,
        },
        key,
    )
}

fn stages(c: &mut Criterion) {
    let (s, _) = setup(KeyType::EcP256);
    let serial = der::asn1::Int::new(&[0x40; 16]).unwrap();
    let template = tbs::TbsTemplate::new(&s.profile, KeyType::EcP256, s.ca.identity()).unwrap();
    let spki = spki::SubjectPublicKeyInfoRef::from_der(&s.device_key).unwrap();
    c.bench_function("tbs/encode", |b| {
        b.iter(|| {
            template
                .encode(&s.subject, &spki, black_box(&s.device_key), &serial, s.now)
                .unwrap()
        })
    });
    let (tbs_der, _key_at) = template
        .encode(&s.subject, &spki, &s.device_key, &serial, s.now)
        .unwrap();
    let nothing = Conformant::nothing();
    let known = Conformant::remember(&s.profile, &tbs_der).unwrap();
    for (name, known) in [
        ("tbs/lint", &nothing),
        ("tbs/lint-known-extensions", &known),
    ] {
        c.bench_function(name, |b| {
            b.iter(|| {
                lint_rules(
                    &s.profile,
                    s.ca.identity(),
                    IdMode::Production,
                    black_box(&tbs_der),
                    known,
                )
                .unwrap()
            })
        });
    }
    c.bench_function("tbs/lint+x509-cert", |b| {
        b.iter(|| {
            lint(
                &s.profile,
                s.ca.identity(),
                IdMode::Production,
                black_box(&tbs_der),
            )
            .unwrap()
        })
    });
    let device_key = SubjectKey::checked(&s.device_key).unwrap();
    c.bench_function("tbs/prepare", |b| {
        b.iter(|| {
            s.ca.prepare(&s.profile, &s.subject, black_box(device_key), s.now)
                .unwrap()
        })
    });

    for (name, key_type) in [
        ("p256", KeyType::EcP256),
        ("p384", KeyType::EcP384),
        ("rsa2048", KeyType::Rsa(2048)),
    ] {
        let (s, key) = setup(key_type);
        let message = vec![0x5a_u8; 600];
        let signature = key.sign(&message).unwrap();
        let verifying = VerifyingKey::new(key.public_key_der(), key.algorithm()).unwrap();
        c.bench_function(&format!("sign/{name}"), |b| {
            b.iter(|| key.sign(black_box(&message)).unwrap())
        });
        c.bench_function(&format!("verify/{name}"), |b| {
            b.iter(|| verifying.verify(black_box(&message), &signature).unwrap())
        });
        let device_key = SubjectKey::checked(&s.device_key).unwrap();
        c.bench_function(&format!("issue/{name}"), |b| {
            b.iter(|| {
                s.ca.issue(&s.profile, &s.subject, black_box(device_key), s.now)
                    .unwrap()
            })
        });
    }
}

/// SoftHSM2 signing, when its module and tools are installed.
fn softhsm(c: &mut Criterion) {
    use certmint::pkcs11::{PinSource, Pkcs11Signer, Pkcs11Uri, Token};
    let module = std::env::var("CERTMINT_PKCS11_MODULE")
        .unwrap_or_else(|_| "/usr/lib/softhsm/libsofthsm2.so".into());
    if !std::path::Path::new(&module).exists() {
        eprintln!("softhsm benches skipped: no PKCS#11 module at {module}");
        return;
    }
    let dir = std::env::temp_dir().join(format!("certmint-bench-hsm-{}", std::process::id()));
    let script = format!("{}/softhsm/new-token.sh", env!("CARGO_MANIFEST_DIR"));
    let made = std::process::Command::new("bash")
        .args([script.as_str(), dir.to_str().unwrap_or("."), "bench"])
        .output();
    if !made.map(|o| o.status.success()).unwrap_or(false) {
        eprintln!("softhsm benches skipped: softhsm2-util could not make a token");
        return;
    }
    // SAFETY of intent: set before the module is loaded, nothing else runs yet.
    unsafe { std::env::set_var("SOFTHSM2_CONF", dir.join("softhsm2.conf")) };
    let pin = format!("file:{}", dir.join("user.pin").display());
    let token_uri = Pkcs11Uri::parse(&format!(
        "pkcs11:token=bench?module-path={module}&pin-source={pin}"
    ))
    .unwrap();
    let pins = PinSource::choose(token_uri.pin_source.clone(), None);
    let token = Token::open(&token_uri, &pins, Some(2)).unwrap();
    for (name, key_type) in [("p256", KeyType::EcP256), ("rsa2048", KeyType::Rsa(2048))] {
        certmint::pkcs11::keys::generate_key_pair(&token, key_type, name, false).unwrap();
        let uri = Pkcs11Uri::parse(&format!(
            "pkcs11:token=bench;object={name}?module-path={module}&pin-source={pin}"
        ))
        .unwrap();
        let signer = Pkcs11Signer::open(&uri, &pins, Some(2)).unwrap();
        let message = vec![0x5a_u8; 600];
        c.bench_function(&format!("softhsm/sign/{name}"), |b| {
            b.iter(|| signer.sign(black_box(&message)).unwrap())
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, stages, softhsm);
criterion_main!(benches);
