//! Single-threaded signing throughput of candidate backends for a certificate issuer.
//!
//! Each case: 0.5 s warm-up, then a timed loop of MEASURE seconds; reports ops/s.
//! Message: 600 bytes (roughly a TBSCertificate); hashing is inside every timed op.
//!
//! Usage: backend-bench [FILTER ...]   (only run cases whose name contains a FILTER;
//!        a FILTER ending in '$' must equal the whole name)

use std::hint::black_box;
use std::time::{Duration, Instant};

const WARMUP: Duration = Duration::from_millis(500);
const MEASURE: Duration = Duration::from_millis(2500);
const MSG_LEN: usize = 600;

fn message() -> Vec<u8> {
    // Deterministic, non-trivial content.
    (0..MSG_LEN).map(|i| (i as u32).wrapping_mul(2654435761).wrapping_shr(13) as u8).collect()
}

struct Runner {
    filters: Vec<String>,
}

impl Runner {
    fn wanted(&self, name: &str) -> bool {
        // A filter ending in '$' must match the whole case name; otherwise substring match.
        self.filters.is_empty()
            || self.filters.iter().any(|f| match f.strip_suffix('$') {
                Some(exact) => name == exact,
                None => name.contains(f.as_str()),
            })
    }

    /// Whether any case under `prefix` (e.g. "openssl/") can be selected; skips key generation otherwise.
    fn wants_module(&self, prefix: &str) -> bool {
        self.filters.is_empty()
            || self.filters.iter().any(|f| {
                let f = f.trim_end_matches('$');
                f.starts_with(prefix) || prefix.contains(f)
            })
    }

    fn bench<F: FnMut()>(&self, name: &str, mut op: F) {
        if !self.wanted(name) {
            return;
        }
        let start = Instant::now();
        while start.elapsed() < WARMUP {
            op();
        }
        let start = Instant::now();
        let mut n: u64 = 0;
        let elapsed = loop {
            op();
            n += 1;
            let e = start.elapsed();
            if e >= MEASURE {
                break e;
            }
        };
        let secs = elapsed.as_secs_f64();
        println!(
            "{:<44} {:>9} ops in {:>6.3} s = {:>10.1} ops/s  ({:>8.2} us/op)",
            name,
            n,
            secs,
            n as f64 / secs,
            secs * 1e6 / n as f64
        );
    }
}

#[cfg(feature = "ossl")]
mod ossl {
    use super::*;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::{hash, MessageDigest};
    use openssl::md::Md;
    use openssl::nid::Nid;
    use openssl::pkey::{PKey, Private};
    use openssl::pkey_ctx::PkeyCtx;
    use openssl::rsa::{Padding, Rsa};
    use openssl::sign::{Signer, Verifier};

    fn ec_key(nid: Nid) -> PKey<Private> {
        let group = EcGroup::from_curve_name(nid).unwrap();
        PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
    }

    pub fn run(r: &Runner, msg: &[u8]) {
        if !r.wants_module("openssl/") {
            return;
        }
        println!("# openssl crate, {}", openssl::version::version());
        let cases: Vec<(&str, PKey<Private>, MessageDigest, &'static openssl::md::MdRef, bool)> = vec![
            ("p256-sha256", ec_key(Nid::X9_62_PRIME256V1), MessageDigest::sha256(), Md::sha256(), false),
            ("p384-sha384", ec_key(Nid::SECP384R1), MessageDigest::sha384(), Md::sha384(), false),
            (
                "rsa2048-pkcs1-sha256",
                PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap(),
                MessageDigest::sha256(),
                Md::sha256(),
                true,
            ),
        ];
        for (alg, pkey, md, md2, is_rsa) in &cases {
            let (md, md2, is_rsa) = (*md, *md2, *is_rsa);
            // Variant A: fresh Signer per signature (only the PKey is reused), update + sign_to_vec.
            r.bench(&format!("openssl/{alg}/signer-per-sig"), || {
                let mut s = Signer::new(md, pkey).unwrap();
                s.update(black_box(msg)).unwrap();
                black_box(s.sign_to_vec().unwrap());
            });
            // Variant B: fresh Signer per signature, one-shot EVP_DigestSign.
            r.bench(&format!("openssl/{alg}/signer-per-sig-oneshot"), || {
                let mut s = Signer::new(md, pkey).unwrap();
                black_box(s.sign_oneshot_to_vec(black_box(msg)).unwrap());
            });
            // Variant C (reference, reuses MORE than the PKey): one PkeyCtx initialised once,
            // hash computed per op with openssl::hash, then EVP_PKEY_sign. This is the shape
            // `openssl speed` uses (minus the hashing).
            let mut ctx = PkeyCtx::new(pkey).unwrap();
            ctx.sign_init().unwrap();
            if is_rsa {
                ctx.set_rsa_padding(Padding::PKCS1).unwrap();
            }
            ctx.set_signature_md(md2).unwrap();
            let mut out = Vec::with_capacity(512);
            r.bench(&format!("openssl/{alg}/reused-pkeyctx+hash"), || {
                let d = hash(md, black_box(msg)).unwrap();
                out.clear();
                ctx.sign_to_vec(&d, &mut out).unwrap();
                black_box(&out);
            });

            // sanity: signatures verify
            let mut s = Signer::new(md, pkey).unwrap();
            let sig = s.sign_oneshot_to_vec(msg).unwrap();
            let mut v = Verifier::new(md, pkey).unwrap();
            assert!(v.verify_oneshot(&sig, msg).unwrap());
            let d = hash(md, msg).unwrap();
            out.clear();
            ctx.sign_to_vec(&d, &mut out).unwrap();
            let mut v = Verifier::new(md, pkey).unwrap();
            assert!(v.verify_oneshot(&out, msg).unwrap(), "pkeyctx sig must verify");

            if *alg == "p256-sha256" || is_rsa {
                // Verification with a fresh Verifier per op (public key only).
                let pub_der = pkey.public_key_to_der().unwrap();
                let pubkey = PKey::public_key_from_der(&pub_der).unwrap();
                r.bench(&format!("openssl/{alg}/VERIFY-verifier-per-op"), || {
                    let mut v = Verifier::new(md, &pubkey).unwrap();
                    assert!(v.verify_oneshot(black_box(&sig), black_box(msg)).unwrap());
                });
            }
        }
    }
}

#[cfg(feature = "awslc")]
mod awslc {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{
        self, EcdsaKeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1_SIGNING,
        ECDSA_P384_SHA384_ASN1_SIGNING, RSA_PKCS1_SHA256,
    };

    pub fn run(r: &Runner, msg: &[u8]) {
        if !r.wants_module("aws-lc-rs/") {
            return;
        }
        println!("# aws-lc-rs");
        let rng = SystemRandom::new();
        for (alg, sa, va) in [
            ("p256-sha256", &ECDSA_P256_SHA256_ASN1_SIGNING, &signature::ECDSA_P256_SHA256_ASN1),
            ("p384-sha384", &ECDSA_P384_SHA384_ASN1_SIGNING, &signature::ECDSA_P384_SHA384_ASN1),
        ] {
            let kp = EcdsaKeyPair::generate(sa).unwrap();
            let sig = kp.sign(&rng, msg).unwrap();
            UnparsedPublicKey::new(va, kp.public_key().as_ref())
                .verify(msg, sig.as_ref())
                .unwrap();
            r.bench(&format!("aws-lc-rs/{alg}/sign"), || {
                black_box(kp.sign(&rng, black_box(msg)).unwrap());
            });
        }
        let kp = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let mut sig = vec![0u8; kp.public_modulus_len()];
        kp.sign(&RSA_PKCS1_SHA256, &rng, msg, &mut sig).unwrap();
        UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, kp.public_key().as_ref())
            .verify(msg, &sig)
            .unwrap();
        r.bench("aws-lc-rs/rsa2048-pkcs1-sha256/sign", || {
            kp.sign(&RSA_PKCS1_SHA256, &rng, black_box(msg), &mut sig).unwrap();
            black_box(&sig);
        });
    }
}

#[cfg(feature = "rustcrypto")]
mod rustcrypto {
    use super::*;
    use getrandom::rand_core::UnwrapErr;
    use getrandom::SysRng;
    use p256::elliptic_curve::Generate;

    pub fn run(r: &Runner, msg: &[u8]) {
        if !r.wants_module("rustcrypto/") {
            return;
        }
        println!("# RustCrypto (p256/p384 0.14, rsa 0.10.0-rc.20, sha2 0.11)");
        let mut rng = UnwrapErr(SysRng);
        {
            use p256::ecdsa::signature::{Signer, Verifier};
            use p256::ecdsa::{Signature, SigningKey};
            let sk = SigningKey::generate_from_rng(&mut rng);
            let sig: Signature = sk.sign(msg);
            sk.verifying_key().verify(msg, &sig).unwrap();
            r.bench("rustcrypto/p256-sha256/sign", || {
                let s: Signature = sk.sign(black_box(msg));
                black_box(s.to_der());
            });
        }
        {
            use p384::ecdsa::signature::{Signer, Verifier};
            use p384::ecdsa::{Signature, SigningKey};
            let sk = SigningKey::generate_from_rng(&mut rng);
            let sig: Signature = sk.sign(msg);
            sk.verifying_key().verify(msg, &sig).unwrap();
            r.bench("rustcrypto/p384-sha384/sign", || {
                let s: Signature = sk.sign(black_box(msg));
                black_box(s.to_der());
            });
        }
        {
            use rsa::pkcs1v15::{Signature, SigningKey};
            use rsa::signature::{Keypair, SignatureEncoding, Signer, Verifier};
            let sk = SigningKey::<sha2::Sha256>::random(&mut rng, 2048).unwrap();
            let sig: Signature = sk.sign(msg);
            sk.verifying_key().verify(msg, &sig).unwrap();
            r.bench("rustcrypto/rsa2048-pkcs1-sha256/sign", || {
                let s: Signature = sk.sign(black_box(msg));
                black_box(s.to_vec());
            });
        }
    }
}

fn main() {
    let r = Runner { filters: std::env::args().skip(1).collect() };
    let msg = message();
    assert_eq!(msg.len(), MSG_LEN);
    #[cfg(feature = "ossl")]
    ossl::run(&r, &msg);
    #[cfg(feature = "awslc")]
    awslc::run(&r, &msg);
    #[cfg(feature = "rustcrypto")]
    rustcrypto::run(&r, &msg);
    let _ = &r;
}
