//! Where a subscriber's public key comes from: a PKCS#10 request (whose
//! self-signature must verify) or a bare SubjectPublicKeyInfo.

use aws_lc_rs::signature::{UnparsedPublicKey, VerificationAlgorithm};
use const_oid::db::rfc5912;
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::request::CertReq;

use crate::pem::der_from_pem_or_der;
use crate::signer::{KeyType, SignerError};

/// Why a request or public key was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// Not a PKCS#10 request.
    #[error("{what} is not a PKCS#10 certificate request: {reason}")]
    NotARequest {
        /// The input's name.
        what: String,
        /// The decoder's reason.
        reason: String,
    },
    /// The request's self-signature does not verify.
    #[error("{what}: the request's signature does not verify with its own public key")]
    BadRequestSignature {
        /// The input's name.
        what: String,
    },
    /// The request is signed with an algorithm certmint does not check.
    #[error(
        "{what}: request signature algorithm {algorithm} with a {key_type} key is not supported"
    )]
    UnsupportedSignature {
        /// The input's name.
        what: String,
        /// The signature algorithm's OID.
        algorithm: String,
        /// The request's key type.
        key_type: KeyType,
    },
    /// The request's key is not one certmint can certify.
    #[error(transparent)]
    Key(#[from] SignerError),
    /// The key (of a request or bare) is of a supported type but invalid:
    /// checked before a request's signature, so the message names the key's fault.
    #[error("{what}: {error}")]
    InvalidKey {
        /// The input's name.
        what: String,
        /// What is wrong with the key.
        error: SignerError,
    },
    /// Not a SubjectPublicKeyInfo.
    #[error(
        "{what} is not a public key (PEM \"PUBLIC KEY\" or DER SubjectPublicKeyInfo): {reason}"
    )]
    NotAPublicKey {
        /// The input's name.
        what: String,
        /// The decoder's reason.
        reason: String,
    },
}

impl RequestError {
    /// Always invalid input: a request or public key from a customer.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::InvalidInput
    }
}

/// The DER SubjectPublicKeyInfo of a PKCS#10 request (PEM or DER) whose
/// self-signature verifies. `what` names the input in errors.
pub fn public_key_from_csr(bytes: &[u8], what: &str) -> Result<Vec<u8>, RequestError> {
    let not_a_request = |reason: String| RequestError::NotARequest {
        what: what.to_owned(),
        reason,
    };
    let der = der_from_pem_or_der(bytes, "CERTIFICATE REQUEST").map_err(not_a_request)?;
    let request = CertReq::from_der(&der).map_err(|e| not_a_request(e.to_string()))?;
    let encoding = |e: der::Error| not_a_request(e.to_string());
    let spki_der = request.info.public_key.to_der().map_err(encoding)?;
    // Strict DER decoding means re-encoding yields the bytes that were signed.
    let signed = request.info.to_der().map_err(encoding)?;
    let signature = request
        .signature
        .as_bytes()
        .ok_or_else(|| not_a_request("signature BIT STRING has unused bits".into()))?;
    let key_type = checked_key_type(&spki_der, what)?;
    let algorithm = verification_algorithm(request.algorithm.oid, key_type).ok_or_else(|| {
        RequestError::UnsupportedSignature {
            what: what.to_owned(),
            algorithm: request.algorithm.oid.to_string(),
            key_type,
        }
    })?;
    UnparsedPublicKey::new(algorithm, &spki_der)
        .verify(&signed, signature)
        .map_err(|_| RequestError::BadRequestSignature {
            what: what.to_owned(),
        })?;
    Ok(spki_der)
}

/// How to check a request signed with `oid` by a `key_type` key. RSA keys
/// below 2048 bits are verified too, so that the profile, not the request
/// check, says why such a key is refused.
fn verification_algorithm(
    oid: ObjectIdentifier,
    key_type: KeyType,
) -> Option<&'static dyn VerificationAlgorithm> {
    use aws_lc_rs::signature as lc;
    match (oid, key_type) {
        (rfc5912::ECDSA_WITH_SHA_256, KeyType::EcP256) => Some(&lc::ECDSA_P256_SHA256_ASN1),
        (rfc5912::ECDSA_WITH_SHA_384, KeyType::EcP256) => Some(&lc::ECDSA_P256_SHA384_ASN1),
        (rfc5912::ECDSA_WITH_SHA_256, KeyType::EcP384) => Some(&lc::ECDSA_P384_SHA256_ASN1),
        (rfc5912::ECDSA_WITH_SHA_384, KeyType::EcP384) => Some(&lc::ECDSA_P384_SHA384_ASN1),
        (rfc5912::SHA_256_WITH_RSA_ENCRYPTION, KeyType::Rsa(_)) => {
            Some(&lc::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY)
        }
        (rfc5912::SHA_384_WITH_RSA_ENCRYPTION, KeyType::Rsa(_)) => {
            Some(&lc::RSA_PKCS1_2048_8192_SHA384)
        }
        (rfc5912::SHA_512_WITH_RSA_ENCRYPTION, KeyType::Rsa(_)) => {
            Some(&lc::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY)
        }
        _ => None,
    }
}

/// The DER SubjectPublicKeyInfo in `bytes` (PEM "PUBLIC KEY" or DER).
pub fn public_key_from_spki(bytes: &[u8], what: &str) -> Result<Vec<u8>, RequestError> {
    let not_a_key = |reason: String| RequestError::NotAPublicKey {
        what: what.to_owned(),
        reason,
    };
    let der = der_from_pem_or_der(bytes, "PUBLIC KEY").map_err(not_a_key)?;
    let spki = SubjectPublicKeyInfoOwned::from_der(&der).map_err(|e| not_a_key(e.to_string()))?;
    let spki_der = spki.to_der().map_err(|e| not_a_key(e.to_string()))?;
    checked_key_type(&spki_der, what)?;
    Ok(spki_der)
}

/// The key's type, once [`KeyType::of_public_key`] has checked the key;
/// an invalid key is reported with the input's name.
fn checked_key_type(spki_der: &[u8], what: &str) -> Result<KeyType, RequestError> {
    KeyType::of_public_key(spki_der).map_err(|error| match error {
        SignerError::InvalidKey(_) => RequestError::InvalidKey {
            what: what.to_owned(),
            error,
        },
        other => RequestError::Key(other),
    })
}
