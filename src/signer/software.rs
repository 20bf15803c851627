//! A software key, for labs, tests and soft deliveries. Backed by the system
//! OpenSSL: on this machine it signs as fast as `openssl speed` (measured;
//! see the README's Performance section), several times faster than the
//! pure-Rust curves.

use std::fmt;
use std::path::Path;

use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use zeroize::Zeroizing;

use super::{KeyType, SignatureAlgorithm, Signer, SignerError};

/// A private key held in this process's memory.
pub struct SoftwareSigner {
    key: PKey<Private>,
    key_type: KeyType,
    public_key_der: Vec<u8>,
}

impl fmt::Debug for SoftwareSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key itself: only what it is.
        write!(f, "SoftwareSigner({})", self.key_type)
    }
}

impl SoftwareSigner {
    /// Generates a fresh key of `key_type` with OpenSSL's CSPRNG.
    pub fn generate(key_type: KeyType) -> Result<Self, SignerError> {
        let generation_error =
            |e: openssl::error::ErrorStack| SignerError::KeyGeneration(format!("{key_type}: {e}"));
        let key = match key_type {
            KeyType::Rsa(bits) => PKey::from_rsa(Rsa::generate(bits).map_err(generation_error)?),
            KeyType::EcP256 | KeyType::EcP384 => {
                let nid = if key_type == KeyType::EcP256 {
                    Nid::X9_62_PRIME256V1
                } else {
                    Nid::SECP384R1
                };
                let group = EcGroup::from_curve_name(nid).map_err(generation_error)?;
                PKey::from_ec_key(EcKey::generate(&group).map_err(generation_error)?)
            }
        }
        .map_err(generation_error)?;
        Self::from_pkey(key, "generated key")
    }

    /// Reads a private key from a PEM or DER file (PKCS#8, or the traditional
    /// RSA / EC encodings).
    pub fn load(path: &Path) -> Result<Self, SignerError> {
        let what = path.display().to_string();
        let bytes =
            Zeroizing::new(std::fs::read(path).map_err(|e| SignerError::KeyUnreadable {
                what: what.clone(),
                reason: e.to_string(),
            })?);
        Self::from_bytes(&bytes, &what)
    }

    /// Reads a private key from PEM or DER bytes; `what` names it in errors.
    pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Self, SignerError> {
        let parsed =
            if bytes.starts_with(b"-----") || bytes.trim_ascii_start().starts_with(b"-----") {
                PKey::private_key_from_pem(bytes)
            } else {
                PKey::private_key_from_der(bytes)
            };
        let key = parsed.map_err(|_| SignerError::KeyUnreadable {
            what: what.to_owned(),
            reason: "not an unencrypted PKCS#8, RSA or EC private key".to_owned(),
        })?;
        Self::from_pkey(key, what)
    }

    fn from_pkey(key: PKey<Private>, what: &str) -> Result<Self, SignerError> {
        let key_type = KeyType::of_pkey(&key)?;
        if let KeyType::Rsa(bits) = key_type {
            if !super::RSA_SIZES.contains(&bits) {
                return Err(SignerError::UnsupportedKey(format!(
                    "{what} is RSA-{bits}; certmint signs with RSA-2048, -3072 or -4096"
                )));
            }
        }
        let public_key_der = key
            .public_key_to_der()
            .map_err(|e| SignerError::KeyUnreadable {
                what: what.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            key,
            key_type,
            public_key_der,
        })
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The key as unencrypted PKCS#8 PEM, in memory that is wiped on drop.
    pub fn to_pkcs8_pem(&self) -> Result<Zeroizing<Vec<u8>>, SignerError> {
        Ok(Zeroizing::new(self.key.private_key_to_pem_pkcs8()?))
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
        let digest = self.algorithm().digest();
        let mut signer = openssl::sign::Signer::new(digest, &self.key)?;
        Ok(signer.sign_oneshot_to_vec(message)?)
    }
}
