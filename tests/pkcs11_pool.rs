//! The token session pool against the real SoftHSM2 module, in-process:
//! workers share one login, a lost login is restored with exactly one more
//! C_Login, and a generated private key's value never comes out.
//!
//! SoftHSM reads its configuration at C_Initialize, once per process, so all
//! tokens of this test binary are made up front in one directory.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use certmint::pkcs11::keys::generate_key_pair;
use certmint::pkcs11::{PinSource, Pkcs11Signer, Pkcs11Uri, Token};
use certmint::signer::{verify_signature, KeyType, Signer};
use cryptoki::object::{Attribute, AttributeType};

struct Tokens {
    _dir: tempfile::TempDir,
    pin_file: PathBuf,
}

fn tokens() -> &'static Tokens {
    static TOKENS: OnceLock<Tokens> = OnceLock::new();
    TOKENS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let hsm = dir.path().join("hsm");
        let script = format!("{}/softhsm/new-token.sh", env!("CARGO_MANIFEST_DIR"));
        for label in ["pool", "secrets", "busy"] {
            let out = Command::new("bash")
                .args([script.as_str(), hsm.to_str().unwrap(), label])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // Set before any thread loads the module; every test calls tokens() first.
        // SAFETY of intent: no other thread reads the environment before this OnceLock completes.
        unsafe { std::env::set_var("SOFTHSM2_CONF", hsm.join("softhsm2.conf")) };
        Tokens {
            pin_file: hsm.join("user.pin"),
            _dir: dir,
        }
    })
}

/// The PKCS#11 module under test: $CERTMINT_PKCS11_MODULE, else Debian's SoftHSM2.
fn softhsm_module() -> String {
    std::env::var("CERTMINT_PKCS11_MODULE")
        .unwrap_or_else(|_| "/usr/lib/softhsm/libsofthsm2.so".into())
}

fn uri(token: &str, object: Option<&str>) -> Pkcs11Uri {
    let object = object.map(|o| format!(";object={o}")).unwrap_or_default();
    Pkcs11Uri::parse(&format!(
        "pkcs11:token={token}{object}?module-path={}&pin-source=file:{}",
        softhsm_module(),
        tokens().pin_file.display()
    ))
    .unwrap()
}

#[test]
fn workers_share_one_login_and_a_lost_login_is_restored_once() {
    let token_uri = uri("pool", None);
    let pins = PinSource::choose(token_uri.pin_source.clone(), None);
    let token = Token::open(&token_uri, &pins, Some(2)).unwrap();
    assert_eq!(token.max_sessions(), 2);
    generate_key_pair(&token, KeyType::EcP256, "worker-key", false).unwrap();
    let signer =
        Arc::new(Pkcs11Signer::open(&uri("pool", Some("worker-key")), &pins, Some(2)).unwrap());
    assert!(
        Arc::ptr_eq(signer.token(), &token),
        "one Token per token per process"
    );

    let sign_from_threads = |signer: &Arc<Pkcs11Signer>| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let signer = signer.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let message = format!("worker {w} message {i}");
                        let signature = signer.sign(message.as_bytes()).unwrap();
                        verify_signature(
                            signer.public_key_der(),
                            signer.algorithm(),
                            message.as_bytes(),
                            &signature,
                        )
                        .unwrap();
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    };
    sign_from_threads(&signer);
    assert_eq!(
        token.login_count(),
        1,
        "100 signatures from 4 workers, one C_Login"
    );

    // Logging out any session logs the whole application out (PKCS#11 §5.6):
    // every pooled session now answers CKR_USER_NOT_LOGGED_IN.
    token.with_session(|s| s.logout()).unwrap();
    sign_from_threads(&signer);
    assert_eq!(
        token.login_count(),
        2,
        "the lost login was restored exactly once"
    );
}

#[test]
fn a_generated_private_key_value_never_comes_out() {
    let token_uri = uri("secrets", None);
    let pins = PinSource::choose(token_uri.pin_source.clone(), None);
    let token = Token::open(&token_uri, &pins, Some(1)).unwrap();
    for (label, key_type) in [("ec", KeyType::EcP384), ("rsa", KeyType::Rsa(2048))] {
        let pair = generate_key_pair(&token, key_type, label, false).unwrap();
        let read = token.with_session(|s| {
            Ok(s.get_attributes(
                pair.private,
                &[AttributeType::Value, AttributeType::PrivateExponent],
            ))
        });
        match read.unwrap() {
            Err(e) => assert!(e.to_string().contains("sensitive") || format!("{e:?}").contains("AttributeSensitive"), "{e:?}"),
            Ok(attributes) => assert!(
                !attributes
                    .iter()
                    .any(|a| matches!(a, Attribute::Value(v) | Attribute::PrivateExponent(v) if !v.is_empty())),
                "{label}: private key material came out"
            ),
        }
    }
}

/// SoftHSM2's file store re-reads its directory on every object access, and a
/// re-read racing a creation in another thread drops the new object
/// (C_GenerateKeyPair then fails with CKR_GENERAL_ERROR, or a half-stored
/// object stays behind). A resumed order reads keys back while the other
/// worker generates, so reads must never overlap a creation on the token.
#[test]
fn keys_generated_while_another_worker_reads_the_token_are_all_kept() {
    let token_uri = uri("busy", None);
    let pins = PinSource::choose(token_uri.pin_source.clone(), None);
    let token = Token::open(&token_uri, &pins, Some(2)).unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let first = generate_key_pair(&token, KeyType::EcP256, "busy-0", false);
    let reader = {
        let (token, done) = (token.clone(), done.clone());
        std::thread::spawn(move || {
            let mut reads = 0u32;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                // What a resumed order does for a device whose key exists.
                token
                    .with_session(|s| {
                        for o in s.find_objects(&[Attribute::Label(b"busy-0".to_vec())])? {
                            s.get_attributes(o, &[AttributeType::Id])?;
                        }
                        Ok(())
                    })
                    .unwrap();
                reads += 1;
                // A worker does other work between token calls; a tight loop
                // would only measure how fairly SoftHSM2's own mutexes hand over.
                std::thread::sleep(std::time::Duration::from_micros(500));
            }
            reads
        })
    };
    let generated: Vec<_> = std::iter::once(first)
        .chain(
            (1..100)
                .map(|i| generate_key_pair(&token, KeyType::EcP256, &format!("busy-{i}"), false)),
        )
        .collect();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let reads = reader.join().unwrap();
    assert!(reads > 0, "the reader ran");
    for (i, pair) in generated.into_iter().enumerate() {
        let pair = pair.unwrap_or_else(|e| panic!("key busy-{i}: {e}"));
        let stored = token
            .with_session(|s| {
                s.find_objects(&[
                    Attribute::Label(format!("busy-{i}").into_bytes()),
                    Attribute::Id(pair.id.clone()),
                ])
            })
            .unwrap();
        assert_eq!(stored.len(), 2, "busy-{i}: a public and a private key");
    }
}
