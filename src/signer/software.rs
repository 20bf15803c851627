//! A software key, for labs, tests and soft deliveries.
//!
//! Backed by aws-lc-rs: measured on this machine it signs P-256 faster than
//! `openssl speed`, P-384 about seven times faster than the system OpenSSL
//! 3.0, and RSA-2048 on par (README, Performance). The pure-Rust curves were
//! two to three times slower still.

use std::fmt;
use std::path::Path;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING,
    ECDSA_P384_SHA384_ASN1_SIGNING, RSA_PKCS1_SHA256,
};
use der::pem::{self, LineEnding};
use zeroize::Zeroizing;

use super::{KeyType, SignatureAlgorithm, Signer, SignerError, RSA_SIZES};

enum PrivateKey {
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// A private key held in this process's memory.
pub struct SoftwareSigner {
    key: PrivateKey,
    key_type: KeyType,
    public_key_der: Vec<u8>,
    rng: SystemRandom,
}

impl fmt::Debug for SoftwareSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key itself: only what it is.
        write!(f, "SoftwareSigner({})", self.key_type)
    }
}

fn ecdsa_algorithm(key_type: KeyType) -> &'static EcdsaSigningAlgorithm {
    if key_type == KeyType::EcP256 {
        &ECDSA_P256_SHA256_ASN1_SIGNING
    } else {
        &ECDSA_P384_SHA384_ASN1_SIGNING
    }
}

impl SoftwareSigner {
    /// Generates a fresh key of `key_type` from the system CSPRNG.
    pub fn generate(key_type: KeyType) -> Result<Self, SignerError> {
        let failed = |e: aws_lc_rs::error::Unspecified| {
            SignerError::KeyGeneration(format!("{key_type}: {e}"))
        };
        let key = match key_type {
            KeyType::Rsa(bits) => {
                let size = match bits {
                    2048 => KeySize::Rsa2048,
                    3072 => KeySize::Rsa3072,
                    4096 => KeySize::Rsa4096,
                    _ => {
                        return Err(SignerError::UnsupportedKey(format!(
                            "RSA-{bits} (certmint generates RSA-2048, -3072 or -4096)"
                        )));
                    }
                };
                PrivateKey::Rsa(RsaKeyPair::generate(size).map_err(failed)?)
            }
            KeyType::EcP256 | KeyType::EcP384 => PrivateKey::Ecdsa(
                EcdsaKeyPair::generate(ecdsa_algorithm(key_type)).map_err(failed)?,
            ),
        };
        Self::from_key(key, "generated key")
    }

    /// Reads a private key from a PEM or DER file (PKCS#8, or the traditional
    /// RSA / EC encodings).
    pub fn load(path: &Path) -> Result<Self, SignerError> {
        let what = path.display().to_string();
        let bytes = Zeroizing::new(crate::input::read_file(path).map_err(|e| {
            SignerError::KeyUnreadable {
                what: what.clone(),
                reason: match e {
                    crate::input::InputError::Unreadable { reason, .. } => reason,
                    too_large => too_large.to_string(),
                },
            }
        })?);
        Self::from_bytes(&bytes, &what)
    }

    /// Reads a private key from PEM or DER bytes; `what` names it in errors.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self, SignerError> {
        let unreadable = || SignerError::KeyUnreadable {
            what: what.to_owned(),
            reason: "not a supported private key (unencrypted PKCS#8, or traditional RSA/EC PEM; \
                     RSA 2048-4096 bits or EC P-256/P-384)"
                .to_owned(),
        };
        let (label, der) = if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
            let (label, der) =
                pem::decode_vec(bytes.trim_ascii_start()).map_err(|_| unreadable())?;
            (label.to_owned(), Zeroizing::new(der))
        } else {
            ("PRIVATE KEY".to_owned(), Zeroizing::new(bytes.to_vec()))
        };
        let ecdsa = |alg| {
            EcdsaKeyPair::from_pkcs8(alg, &der)
                .or_else(|_| EcdsaKeyPair::from_private_key_der(alg, &der))
                .ok()
                .map(PrivateKey::Ecdsa)
        };
        let key = match label.as_str() {
            "PRIVATE KEY" => ecdsa(&ECDSA_P256_SHA256_ASN1_SIGNING)
                .or_else(|| ecdsa(&ECDSA_P384_SHA384_ASN1_SIGNING))
                .or_else(|| RsaKeyPair::from_pkcs8(&der).ok().map(PrivateKey::Rsa)),
            "EC PRIVATE KEY" => ecdsa(&ECDSA_P256_SHA256_ASN1_SIGNING)
                .or_else(|| ecdsa(&ECDSA_P384_SHA384_ASN1_SIGNING)),
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der).ok().map(PrivateKey::Rsa),
            _ => None,
        }
        .ok_or_else(unreadable)?;
        Self::from_key(key, what)
    }

    fn from_key(key: PrivateKey, what: &str) -> Result<Self, SignerError> {
        let public = match &key {
            PrivateKey::Ecdsa(k) => k.public_key().as_der().map(|d| d.as_ref().to_vec()),
            PrivateKey::Rsa(k) => k.public_key().as_der().map(|d| d.as_ref().to_vec()),
        };
        let public_key_der = public.map_err(|e| SignerError::KeyUnreadable {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
        // aws-lc derived this public key from a private key it generated
        // or parsed (parsing checks the key pair): valid by construction.
        let spki = <spki::SubjectPublicKeyInfoRef<'_> as der::Decode>::from_der(&public_key_der)
            .map_err(|e| SignerError::KeyUnreadable {
                what: what.to_owned(),
                reason: e.to_string(),
            })?;
        let key_type = KeyType::of_checked_spki(&spki)?;
        if let KeyType::Rsa(bits) = key_type {
            if !RSA_SIZES.contains(&bits) {
                return Err(SignerError::UnsupportedKey(format!(
                    "{what} is RSA-{bits}; certmint signs with RSA-2048, -3072 or -4096"
                )));
            }
        }
        Ok(Self {
            key,
            key_type,
            public_key_der,
            rng: SystemRandom::new(),
        })
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The key as unencrypted PKCS#8 DER, in memory that is wiped on drop.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, SignerError> {
        let failed = |e: aws_lc_rs::error::Unspecified| SignerError::KeyUnreadable {
            what: "PKCS#8 export".into(),
            reason: e.to_string(),
        };
        Ok(Zeroizing::new(match &self.key {
            PrivateKey::Ecdsa(k) => k.to_pkcs8v1().map_err(failed)?.as_ref().to_vec(),
            PrivateKey::Rsa(k) => AsDer::<Pkcs8V1Der>::as_der(k)
                .map_err(failed)?
                .as_ref()
                .to_vec(),
        }))
    }

    /// The key as unencrypted PKCS#8 PEM, in memory that is wiped on drop.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<Vec<u8>>, SignerError> {
        let der = self.to_pkcs8_der()?;
        let pem = pem::encode_string("PRIVATE KEY", LineEnding::LF, &der).map_err(|e| {
            SignerError::KeyUnreadable {
                what: "PKCS#8 export".into(),
                reason: e.to_string(),
            }
        })?;
        Ok(Zeroizing::new(pem.into_bytes()))
    }
}

impl Signer for SoftwareSigner {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.key_type.signature_algorithm()
    }

    fn public_key_der(&self) -> &[u8] {
        &self.public_key_der
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        let failed = |e: aws_lc_rs::error::Unspecified| SignerError::SigningFailed(e.to_string());
        match &self.key {
            PrivateKey::Ecdsa(k) => Ok(k
                .sign(&self.rng, message)
                .map_err(failed)?
                .as_ref()
                .to_vec()),
            PrivateKey::Rsa(k) => {
                let mut signature = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
                    .map_err(failed)?;
                Ok(signature)
            }
        }
    }
}
