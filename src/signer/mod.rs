//! The signer boundary: every key that can sign a certificate — a software
//! key, an HSM key, a card key — sits behind [`Signer`], so the certificate
//! builder never knows where the key lives.
//!
//! Algorithms are typed values ([`KeyType`], [`SignatureAlgorithm`]) with
//! `Display`/`FromStr` round trips; public keys are inspected with
//! [`KeyType::of_public_key`] and signatures checked with [`verify_signature`].

mod software;

pub use software::SoftwareSigner;

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::signature::{self as lc, ParsedPublicKey, VerificationAlgorithm};
use const_oid::db::rfc5912;
use const_oid::ObjectIdentifier;
use der::asn1::{Null, UintRef};
use der::{Any, Decode, Encode, Sequence};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoRef};

/// Why a signer could not be loaded, or a key or signature was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignerError {
    /// The key type is not one certmint signs with or certifies.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    /// A key file or key encoding could not be read.
    #[error("cannot read key {what}: {reason}")]
    KeyUnreadable {
        /// Which key (usually a path).
        what: String,
        /// The underlying reason.
        reason: String,
    },
    /// The cryptographic backend refused to sign.
    #[error("signing failed: {0}")]
    SigningFailed(String),
    /// A signature did not verify.
    #[error("signature does not verify: {0}")]
    BadSignature(String),
    /// A key could not be generated.
    #[error("key generation failed: {0}")]
    KeyGeneration(String),
    /// A public key of a supported type that no certificate may carry: an
    /// EC point off its curve, an RSA modulus or exponent that breaks
    /// [`KeyType::of_spki`]'s rules.
    #[error("invalid public key: {0}")]
    InvalidKey(String),
}

impl SignerError {
    /// A key of a type certmint does not take, or an invalid public key, is
    /// invalid input; reading, signing and generating keys are failures.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            SignerError::UnsupportedKey(_) | SignerError::InvalidKey(_) => ErrorKind::InvalidInput,
            SignerError::KeyUnreadable { .. }
            | SignerError::SigningFailed(_)
            | SignerError::BadSignature(_)
            | SignerError::KeyGeneration(_) => ErrorKind::Failure,
        }
    }
}

/// A key that signs certificates. Implementations hold the private key
/// wherever it lives and never hand it out.
pub trait Signer: fmt::Debug + Send + Sync {
    /// The signature algorithm this key produces.
    fn algorithm(&self) -> SignatureAlgorithm;

    /// The DER SubjectPublicKeyInfo of the key.
    fn public_key_der(&self) -> &[u8];

    /// Signs `message` (hashing included) and returns the signature as it
    /// goes into a certificate's BIT STRING: DER `Ecdsa-Sig-Value` for ECDSA,
    /// the raw PKCS#1 v1.5 block for RSA.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError>;

    /// Signs each of `messages`, in order, as [`Signer::sign`] does; a key
    /// reached through a round trip (a session process) makes one for all.
    /// Stops at the first failure.
    fn sign_all(&self, messages: &[&[u8]]) -> Result<Vec<Vec<u8>>, SignerError> {
        messages.iter().map(|message| self.sign(message)).collect()
    }

    /// How many threads calling [`Signer::sign_all`] at once keep this key
    /// signing without a pause. A key that signs on its caller's thread
    /// needs no more than its callers (1); a key that signs elsewhere (a
    /// session process) sits idle while its caller verifies and prepares,
    /// unless a second caller's chunk is waiting.
    fn callers_to_keep_busy(&self) -> usize {
        1
    }
}

/// A shared key signs as the key itself: every method forwards, so that a
/// key shared between a CA and its caller (the bench) keeps what it says of
/// itself, such as [`Signer::callers_to_keep_busy`].
impl<S: Signer + ?Sized> Signer for std::sync::Arc<S> {
    fn algorithm(&self) -> SignatureAlgorithm {
        (**self).algorithm()
    }
    fn public_key_der(&self) -> &[u8] {
        (**self).public_key_der()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        (**self).sign(message)
    }
    fn sign_all(&self, messages: &[&[u8]]) -> Result<Vec<Vec<u8>>, SignerError> {
        (**self).sign_all(messages)
    }
    fn callers_to_keep_busy(&self) -> usize {
        (**self).callers_to_keep_busy()
    }
}

/// How many threads a pipeline of `workers` workers runs on `signer`: one
/// per worker, or as many as the key needs to be kept busy, if more (two
/// per session process: one whose chunk is being signed while the other
/// verifies the last chunk's signatures and prepares the next).
pub fn pipeline_threads(workers: usize, signer: &dyn Signer) -> usize {
    workers.max(signer.callers_to_keep_busy()).max(1)
}

/// RFC 8017 `RSAPublicKey`: read to learn a key's size, written to build an
/// SPKI from a token's modulus and exponent.
#[derive(Sequence)]
pub(crate) struct RsaPublicKey<'a> {
    pub(crate) modulus: UintRef<'a>,
    pub(crate) public_exponent: UintRef<'a>,
}

/// The SubjectPublicKeyInfo of an EC public key given as an uncompressed
/// point on the curve `curve` (an OID such as secp384r1). The result is
/// checked to be a key certmint can certify.
pub fn spki_from_ec_point(curve: ObjectIdentifier, point: &[u8]) -> Result<Vec<u8>, SignerError> {
    let encoding = |e: der::Error| SignerError::UnsupportedKey(e.to_string());
    let spki = spki::SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: rfc5912::ID_EC_PUBLIC_KEY,
            parameters: Some(Any::encode_from(&curve).map_err(encoding)?),
        },
        subject_public_key: der::asn1::BitString::from_bytes(point).map_err(encoding)?,
    };
    let der = spki.to_der().map_err(encoding)?;
    KeyType::of_public_key(&der)?;
    Ok(der)
}

/// The SubjectPublicKeyInfo of an RSA public key given as big-endian
/// modulus and public exponent, checked like [`spki_from_ec_point`].
pub fn spki_from_rsa_parts(modulus: &[u8], exponent: &[u8]) -> Result<Vec<u8>, SignerError> {
    let encoding = |e: der::Error| SignerError::UnsupportedKey(e.to_string());
    let key = RsaPublicKey {
        modulus: UintRef::new(modulus).map_err(encoding)?,
        public_exponent: UintRef::new(exponent).map_err(encoding)?,
    }
    .to_der()
    .map_err(encoding)?;
    let spki = spki::SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: rfc5912::RSA_ENCRYPTION,
            parameters: Some(Any::from(Null)),
        },
        subject_public_key: der::asn1::BitString::from_bytes(&key).map_err(encoding)?,
    };
    let der = spki.to_der().map_err(encoding)?;
    KeyType::of_public_key(&der)?;
    Ok(der)
}

/// The parts of a public key as cards and tokens carry them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKeyParts {
    /// An uncompressed EC point on a P-256 or P-384 curve.
    Ec {
        /// P-256 or P-384.
        key_type: KeyType,
        /// `04 || X || Y`.
        point: Vec<u8>,
    },
    /// An RSA modulus and exponent, big-endian without leading zeros.
    Rsa {
        /// n.
        modulus: Vec<u8>,
        /// e.
        exponent: Vec<u8>,
    },
}

/// Splits a SubjectPublicKeyInfo into the parts a card or token carries.
pub fn public_key_parts(spki_der: &[u8]) -> Result<PublicKeyParts, SignerError> {
    let key_type = KeyType::of_public_key(spki_der)?;
    let unsupported = |e: der::Error| SignerError::UnsupportedKey(e.to_string());
    let spki = SubjectPublicKeyInfoRef::from_der(spki_der).map_err(unsupported)?;
    let bits = spki.subject_public_key.raw_bytes();
    Ok(match key_type {
        KeyType::Rsa(_) => {
            let key = RsaPublicKey::from_der(bits).map_err(unsupported)?;
            PublicKeyParts::Rsa {
                modulus: key.modulus.as_bytes().to_vec(),
                exponent: key.public_exponent.as_bytes().to_vec(),
            }
        }
        KeyType::EcP256 | KeyType::EcP384 => PublicKeyParts::Ec {
            key_type,
            point: bits.to_vec(),
        },
    })
}

/// The kinds of key certmint generates, signs with and certifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyType {
    /// RSA with the given modulus size in bits.
    Rsa(u32),
    /// EC on NIST P-256 (prime256v1).
    EcP256,
    /// EC on NIST P-384 (secp384r1).
    EcP384,
}

/// The RSA sizes certmint generates and accepts for signing.
pub const RSA_SIZES: [u32; 3] = [2048, 3072, 4096];

impl KeyType {
    /// The signature algorithm a key of this type signs with.
    pub fn signature_algorithm(self) -> SignatureAlgorithm {
        match self {
            KeyType::Rsa(_) => SignatureAlgorithm::RsaPkcs1Sha256,
            KeyType::EcP256 => SignatureAlgorithm::EcdsaP256Sha256,
            KeyType::EcP384 => SignatureAlgorithm::EcdsaP384Sha384,
        }
    }

    /// Reads the type of a DER SubjectPublicKeyInfo and checks that the key
    /// is one a certificate may carry. RSA keys of any size from 512 bits are
    /// reported (so that a lint can name a too-small key), but the modulus
    /// must be odd with no prime factor below [`SMALL_PRIME_BOUND`] and the
    /// exponent odd in `65537..2^256` (CA/Browser Forum BR 6.1.6); EC keys
    /// must be uncompressed points on P-256 or P-384, on the curve and not
    /// the point at infinity (checked by aws-lc).
    pub fn of_public_key(spki_der: &[u8]) -> Result<Self, SignerError> {
        let spki = SubjectPublicKeyInfoRef::from_der(spki_der)
            .map_err(|e| SignerError::UnsupportedKey(format!("not a SubjectPublicKeyInfo: {e}")))?;
        Self::of_spki(&spki)
    }

    /// The type of a decoded SubjectPublicKeyInfo, checked as
    /// [`KeyType::of_public_key`] says. Every subject key reaches a TBS
    /// certificate through here ([`crate::issue::CertificateAuthority::prepare`]),
    /// as do keys read from requests, tokens and cards.
    pub fn of_spki(spki: &SubjectPublicKeyInfoRef<'_>) -> Result<Self, SignerError> {
        Self::read_spki(spki, KeyCheck::Validate)
    }

    /// The type of a SubjectPublicKeyInfo whose key is valid by
    /// construction or was already checked: a key aws-lc derived from a
    /// private key it generated or parsed, or the very bytes
    /// [`KeyType::of_spki`] accepted a moment before. Only the structure is
    /// read (the curve check costs about as much as the rest of a
    /// certificate's lint).
    pub(crate) fn of_checked_spki(spki: &SubjectPublicKeyInfoRef<'_>) -> Result<Self, SignerError> {
        Self::read_spki(spki, KeyCheck::AlreadyChecked)
    }

    fn read_spki(spki: &SubjectPublicKeyInfoRef<'_>, check: KeyCheck) -> Result<Self, SignerError> {
        let unsupported = |m: String| SignerError::UnsupportedKey(m);
        let key_bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| unsupported("public key BIT STRING has unused bits".into()))?;
        match spki.algorithm.oid {
            rfc5912::RSA_ENCRYPTION => {
                let key = RsaPublicKey::from_der(key_bits)
                    .map_err(|e| unsupported(format!("malformed RSA public key: {e}")))?;
                let modulus = key.modulus.as_bytes();
                let bits = match modulus.first() {
                    Some(&top) => (modulus.len() as u32 - 1) * 8 + (8 - top.leading_zeros()),
                    None => 0,
                };
                if key.public_exponent.as_bytes().is_empty() || bits < 512 {
                    return Err(unsupported("malformed RSA public key".into()));
                }
                if check == KeyCheck::Validate {
                    check_rsa_key(modulus, key.public_exponent.as_bytes())?;
                }
                Ok(KeyType::Rsa(bits))
            }
            rfc5912::ID_EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters
                    .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
                    .ok_or_else(|| unsupported("EC key without a named curve".into()))?;
                let (key_type, point_len) = match curve {
                    rfc5912::SECP_256_R_1 => (KeyType::EcP256, 65),
                    rfc5912::SECP_384_R_1 => (KeyType::EcP384, 97),
                    other => {
                        return Err(unsupported(format!(
                            "EC curve {other} (only P-256 and P-384)"
                        )));
                    }
                };
                if key_bits.len() != point_len || key_bits[0] != 0x04 {
                    return Err(unsupported(format!(
                        "{key_type} key is not an uncompressed point"
                    )));
                }
                if check == KeyCheck::Validate {
                    check_ec_point(key_type, key_bits)?;
                }
                Ok(key_type)
            }
            other => Err(unsupported(format!(
                "key algorithm {other} (only RSA and EC)"
            ))),
        }
    }
}

/// Whether reading a public key also checks that it is a key a
/// certificate may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyCheck {
    Validate,
    AlreadyChecked,
}

/// RSA moduli are refused when divisible by a prime below this bound: the
/// same trial division as Boulder's goodkey and zlint (primes < 752).
pub const SMALL_PRIME_BOUND: u32 = 752;

/// The smallest RSA public exponent accepted (2^16 + 1, the CA/Browser Forum
/// floor); the exponent must also be odd and below 2^256.
pub const MIN_RSA_EXPONENT: u32 = 65537;

/// Checks an RSA modulus and exponent (big-endian, no leading zeros).
fn check_rsa_key(modulus: &[u8], exponent: &[u8]) -> Result<(), SignerError> {
    let invalid = |m: String| Err(SignerError::InvalidKey(m));
    if modulus.last().is_none_or(|low| low & 1 == 0) {
        return invalid("the RSA modulus is even".into());
    }
    if exponent.last().is_none_or(|low| low & 1 == 0) {
        return invalid("the RSA public exponent is even".into());
    }
    if exponent.len() > 32 {
        return invalid("the RSA public exponent is 2^256 or more".into());
    }
    if exponent.len() <= 4 {
        let e = exponent.iter().fold(0u32, |e, b| (e << 8) | u32::from(*b));
        if e < MIN_RSA_EXPONENT {
            return invalid(format!(
                "the RSA public exponent {e} is below {MIN_RSA_EXPONENT}"
            ));
        }
    }
    for (product, primes) in small_prime_groups() {
        // One pass over the modulus per group: n mod p = (n mod product) mod p.
        let rest = remainder(modulus, *product);
        if let Some(p) = primes.iter().find(|&&p| rest % p == 0) {
            return invalid(format!("the RSA modulus is divisible by {p}"));
        }
    }
    Ok(())
}

/// The primes below [`SMALL_PRIME_BOUND`], found once by trial division
/// (no table to keep in step with the bound).
fn small_primes() -> impl Iterator<Item = u32> {
    (2..SMALL_PRIME_BOUND).filter(|&n| (2..n).take_while(|d| d * d <= n).all(|d| n % d != 0))
}

/// The small primes in groups whose product fits in 32 bits, each with
/// its product, made once: a 2048-bit modulus is divided some 40 times
/// instead of 133.
fn small_prime_groups() -> &'static [(u32, Vec<u32>)] {
    static GROUPS: std::sync::OnceLock<Vec<(u32, Vec<u32>)>> = std::sync::OnceLock::new();
    GROUPS.get_or_init(|| {
        let mut groups: Vec<(u32, Vec<u32>)> = Vec::new();
        for p in small_primes() {
            match groups.last_mut() {
                Some((product, primes)) if product.checked_mul(p).is_some() => {
                    *product *= p;
                    primes.push(p);
                }
                _ => groups.push((p, vec![p])),
            }
        }
        groups
    })
}

/// `number` (big-endian) modulo `divisor`, 32 bits at a time.
fn remainder(number: &[u8], divisor: u32) -> u32 {
    let divisor = u64::from(divisor);
    let (head, words) = number.split_at(number.len() % 4);
    let mut rest = head.iter().fold(0u64, |r, b| (r << 8) | u64::from(*b)) % divisor;
    for word in words.chunks_exact(4) {
        let word = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        rest = ((rest << 32) | u64::from(word)) % divisor;
    }
    // The remainder is below `divisor`, a u32.
    rest as u32
}

/// Checks that an uncompressed EC point lies on its curve and is not the
/// point at infinity: aws-lc's key parser runs `EC_KEY_check_key`.
fn check_ec_point(key_type: KeyType, point: &[u8]) -> Result<(), SignerError> {
    let algorithm: &'static dyn VerificationAlgorithm = match key_type {
        KeyType::EcP256 => &lc::ECDSA_P256_SHA256_ASN1,
        KeyType::EcP384 => &lc::ECDSA_P384_SHA384_ASN1,
        KeyType::Rsa(_) => return Ok(()),
    };
    ParsedPublicKey::new(algorithm, point)
        .map(|_| ())
        .map_err(|_| {
            SignerError::InvalidKey(format!(
                "the {key_type} point is not on the curve (or is the point at infinity)"
            ))
        })
}

impl KeyType {
    /// The named-curve OID of an EC key type; `None` for RSA.
    pub fn curve_oid(self) -> Option<ObjectIdentifier> {
        match self {
            KeyType::EcP256 => Some(rfc5912::SECP_256_R_1),
            KeyType::EcP384 => Some(rfc5912::SECP_384_R_1),
            KeyType::Rsa(_) => None,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyType::Rsa(bits) => write!(f, "rsa{bits}"),
            KeyType::EcP256 => f.write_str("p256"),
            KeyType::EcP384 => f.write_str("p384"),
        }
    }
}

impl serde::Serialize for KeyType {
    /// As its name (`p256`, `rsa2048`, …).
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl FromStr for KeyType {
    type Err = SignerError;
    /// `rsa2048`, `rsa3072`, `rsa4096`, `p256`, `p384`.
    fn from_str(s: &str) -> Result<Self, SignerError> {
        match s {
            "p256" | "ec-p256" | "P-256" => Ok(KeyType::EcP256),
            "p384" | "ec-p384" | "P-384" => Ok(KeyType::EcP384),
            _ => s
                .strip_prefix("rsa")
                .and_then(|bits| bits.parse::<u32>().ok())
                .filter(|bits| RSA_SIZES.contains(bits))
                .map(KeyType::Rsa)
                .ok_or_else(|| {
                    SignerError::UnsupportedKey(format!(
                        "key type {s:?} (use rsa2048, rsa3072, rsa4096, p256 or p384)"
                    ))
                }),
        }
    }
}

/// The certificate signature algorithms certmint produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// ecdsa-with-SHA256 with a P-256 key.
    EcdsaP256Sha256,
    /// ecdsa-with-SHA384 with a P-384 key.
    EcdsaP384Sha384,
    /// sha256WithRSAEncryption (PKCS#1 v1.5).
    RsaPkcs1Sha256,
}

impl SignatureAlgorithm {
    /// The algorithm's OID.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            SignatureAlgorithm::EcdsaP256Sha256 => rfc5912::ECDSA_WITH_SHA_256,
            SignatureAlgorithm::EcdsaP384Sha384 => rfc5912::ECDSA_WITH_SHA_384,
            SignatureAlgorithm::RsaPkcs1Sha256 => rfc5912::SHA_256_WITH_RSA_ENCRYPTION,
        }
    }

    /// The AlgorithmIdentifier as RFC 5758 / RFC 4055 want it: parameters
    /// absent for ECDSA, NULL for RSA.
    pub fn algorithm_identifier(self) -> AlgorithmIdentifierOwned {
        let parameters = match self {
            SignatureAlgorithm::RsaPkcs1Sha256 => Some(Any::from(Null)),
            _ => None,
        };
        AlgorithmIdentifierOwned {
            oid: self.oid(),
            parameters,
        }
    }

    /// The algorithm named by a certificate's AlgorithmIdentifier, if certmint knows it.
    pub fn from_algorithm_identifier(id: &AlgorithmIdentifierOwned) -> Option<Self> {
        [
            SignatureAlgorithm::EcdsaP256Sha256,
            SignatureAlgorithm::EcdsaP384Sha384,
            SignatureAlgorithm::RsaPkcs1Sha256,
        ]
        .into_iter()
        .find(|alg| alg.algorithm_identifier().to_der().ok() == id.to_der().ok())
    }

    /// The aws-lc-rs verification algorithm for this signature algorithm
    /// with a key of `key_type`, if the two fit.
    fn verification(self, key_type: KeyType) -> Option<&'static dyn VerificationAlgorithm> {
        match (self, key_type) {
            (SignatureAlgorithm::EcdsaP256Sha256, KeyType::EcP256) => {
                Some(&lc::ECDSA_P256_SHA256_ASN1)
            }
            (SignatureAlgorithm::EcdsaP384Sha384, KeyType::EcP384) => {
                Some(&lc::ECDSA_P384_SHA384_ASN1)
            }
            (SignatureAlgorithm::RsaPkcs1Sha256, KeyType::Rsa(_)) => {
                Some(&lc::RSA_PKCS1_2048_8192_SHA256)
            }
            _ => None,
        }
    }
}

impl fmt::Display for SignatureAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureAlgorithm::EcdsaP256Sha256 => "ecdsa-with-SHA256",
            SignatureAlgorithm::EcdsaP384Sha384 => "ecdsa-with-SHA384",
            SignatureAlgorithm::RsaPkcs1Sha256 => "sha256WithRSAEncryption",
        })
    }
}

/// A public key parsed once, ready to verify many signatures (the CA's key
/// on the issuance hot path).
pub struct VerifyingKey {
    key: ParsedPublicKey,
    key_type: KeyType,
    algorithm: SignatureAlgorithm,
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({}, {})", self.key_type, self.algorithm)
    }
}

impl VerifyingKey {
    /// Parses a DER SubjectPublicKeyInfo for checking `algorithm` signatures.
    pub fn new(spki_der: &[u8], algorithm: SignatureAlgorithm) -> Result<Self, SignerError> {
        let key_type = KeyType::of_public_key(spki_der)?;
        let verification = algorithm.verification(key_type).ok_or_else(|| {
            SignerError::UnsupportedKey(format!("{algorithm} does not fit a {key_type} key"))
        })?;
        let key = ParsedPublicKey::new(verification, spki_der)
            .map_err(|e| SignerError::UnsupportedKey(format!("{key_type} key rejected: {e}")))?;
        Ok(Self {
            key,
            key_type,
            algorithm,
        })
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// Checks `signature` over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignerError> {
        self.key.verify_sig(message, signature).map_err(|_| {
            SignerError::BadSignature(format!(
                "{} signature does not match the {} key",
                self.algorithm, self.key_type
            ))
        })
    }
}

/// Checks `signature` over `message` under the DER SubjectPublicKeyInfo `spki_der`.
pub fn verify_signature(
    spki_der: &[u8],
    algorithm: SignatureAlgorithm,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignerError> {
    VerifyingKey::new(spki_der, algorithm)?.verify(message, signature)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trial division covers the 133 primes below 752, 2 and 751 included.
    #[test]
    fn small_primes_are_the_primes_below_the_bound() {
        let primes: Vec<u32> = small_primes().collect();
        assert_eq!(primes.len(), 133);
        assert_eq!(primes[..5], [2, 3, 5, 7, 11]);
        assert_eq!(primes.last(), Some(&751));
        let grouped: Vec<u32> = small_prime_groups()
            .iter()
            .flat_map(|(product, group)| {
                assert_eq!(group.iter().product::<u32>(), *product);
                group.clone()
            })
            .collect();
        assert_eq!(grouped, primes);
    }

    /// Keys read back from tokens and cards arrive as an EC point or an RSA
    /// modulus and exponent; the SPKI built from them is checked like any
    /// other, so an off-curve point or a bad RSA key from a token is refused.
    #[test]
    fn keys_read_back_from_tokens_and_cards_are_validated() {
        let good = SoftwareSigner::generate(KeyType::EcP256).unwrap();
        let PublicKeyParts::Ec { point, .. } = public_key_parts(good.public_key_der()).unwrap()
        else {
            panic!("an EC key")
        };
        assert!(spki_from_ec_point(rfc5912::SECP_256_R_1, &point).is_ok());
        let mut off_curve = point.clone();
        off_curve[64] ^= 1;
        let mut zero = vec![0u8; 65];
        zero[0] = 4;
        for bad in [off_curve, zero] {
            assert!(matches!(
                spki_from_ec_point(rfc5912::SECP_256_R_1, &bad),
                Err(SignerError::InvalidKey(_))
            ));
        }

        let rsa = SoftwareSigner::generate(KeyType::Rsa(2048)).unwrap();
        let PublicKeyParts::Rsa { modulus, exponent } =
            public_key_parts(rsa.public_key_der()).unwrap()
        else {
            panic!("an RSA key")
        };
        assert!(spki_from_rsa_parts(&modulus, &exponent).is_ok());
        let mut even = modulus.clone();
        *even.last_mut().unwrap() &= 0xfe;
        for (n, e) in [(&modulus, &[1u8][..]), (&modulus, &[3]), (&even, &exponent)] {
            assert!(matches!(
                spki_from_rsa_parts(n, e),
                Err(SignerError::InvalidKey(_))
            ));
        }
    }

    /// The remainder of a multi-word number, against u128 arithmetic.
    #[test]
    fn remainder_of_a_big_endian_number() {
        let n: u128 = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;
        let bytes = n.to_be_bytes();
        for p in [2u32, 3, 7, 251, 751] {
            for skip in 0..16 {
                let tail = &bytes[skip..];
                let value = tail.iter().fold(0u128, |v, b| (v << 8) | u128::from(*b));
                assert_eq!(u128::from(remainder(tail, p)), value % u128::from(p));
            }
        }
    }

    /// A key signing elsewhere that needs `callers` threads to stay busy.
    #[derive(Debug)]
    struct Remote {
        key: SoftwareSigner,
        callers: usize,
    }

    impl Signer for Remote {
        fn algorithm(&self) -> SignatureAlgorithm {
            self.key.algorithm()
        }
        fn public_key_der(&self) -> &[u8] {
            self.key.public_key_der()
        }
        fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
            self.key.sign(message)
        }
        fn callers_to_keep_busy(&self) -> usize {
            self.callers
        }
    }

    #[test]
    fn a_pipeline_runs_a_thread_per_worker_or_as_many_as_its_key_needs() {
        let software = SoftwareSigner::generate(KeyType::EcP256).unwrap();
        assert_eq!(pipeline_threads(3, &software), 3);
        assert_eq!(pipeline_threads(0, &software), 1);
        let remote = Remote {
            key: software,
            callers: 4,
        };
        assert_eq!(pipeline_threads(2, &remote), 4);
        assert_eq!(pipeline_threads(6, &remote), 6);
        // Shared, the key still says what it needs.
        assert_eq!(pipeline_threads(2, &std::sync::Arc::new(remote)), 4);
    }

    #[test]
    fn key_type_names_round_trip() {
        for t in [
            KeyType::Rsa(2048),
            KeyType::Rsa(3072),
            KeyType::Rsa(4096),
            KeyType::EcP256,
            KeyType::EcP384,
        ] {
            assert_eq!(t.to_string().parse::<KeyType>().unwrap(), t);
        }
        assert!("rsa1024".parse::<KeyType>().is_err());
        assert!("ed25519".parse::<KeyType>().is_err());
    }

    #[test]
    fn algorithm_identifiers_round_trip() {
        for alg in [
            SignatureAlgorithm::EcdsaP256Sha256,
            SignatureAlgorithm::EcdsaP384Sha384,
            SignatureAlgorithm::RsaPkcs1Sha256,
        ] {
            let id = alg.algorithm_identifier();
            assert_eq!(
                SignatureAlgorithm::from_algorithm_identifier(&id),
                Some(alg)
            );
        }
    }

    #[test]
    fn rsa_algorithm_identifier_has_null_parameters_and_ecdsa_none() {
        let rsa = SignatureAlgorithm::RsaPkcs1Sha256.algorithm_identifier();
        assert_eq!(rsa.to_der().unwrap(), hex("300d06092a864886f70d01010b0500"));
        let ec = SignatureAlgorithm::EcdsaP256Sha256.algorithm_identifier();
        assert_eq!(ec.to_der().unwrap(), hex("300a06082a8648ce3d040302"));
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn software_signatures_verify_and_tampering_is_caught() {
        for key_type in [KeyType::EcP256, KeyType::EcP384, KeyType::Rsa(2048)] {
            let signer = SoftwareSigner::generate(key_type).unwrap();
            let message = b"to be signed";
            let signature = signer.sign(message).unwrap();
            verify_signature(
                signer.public_key_der(),
                signer.algorithm(),
                message,
                &signature,
            )
            .unwrap();
            let tampered = verify_signature(
                signer.public_key_der(),
                signer.algorithm(),
                b"to be signeD",
                &signature,
            );
            assert!(matches!(tampered, Err(SignerError::BadSignature(_))));
        }
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let signer = SoftwareSigner::generate(KeyType::EcP256).unwrap();
        let pem = signer.to_pkcs8_pem().unwrap();
        let debug = format!("{signer:?}");
        assert!(debug.contains("p256"));
        let body: String = String::from_utf8_lossy(&pem)
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert!(!debug.contains(&body[..20]));
    }
}
