//! Where a subscriber's public key comes from: a PKCS#10 request (whose
//! self-signature must verify) or a bare SubjectPublicKeyInfo.

use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;
use x509_cert::request::CertReq;

use crate::pem::der_from_pem_or_der;

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

/// The DER SubjectPublicKeyInfo of a PKCS#10 request (PEM or DER) whose
/// self-signature verifies. `what` names the input in errors.
pub fn public_key_from_csr(bytes: &[u8], what: &str) -> Result<Vec<u8>, RequestError> {
    let not_a_request = |reason: String| RequestError::NotARequest {
        what: what.to_owned(),
        reason,
    };
    let der = der_from_pem_or_der(bytes, "CERTIFICATE REQUEST").map_err(not_a_request)?;
    let request = CertReq::from_der(&der).map_err(|e| not_a_request(e.to_string()))?;
    // OpenSSL checks the signature: it knows every algorithm a requester may
    // have used, not only the ones certmint signs with.
    let openssl_request =
        openssl::x509::X509Req::from_der(&der).map_err(|e| not_a_request(e.to_string()))?;
    let verified = openssl_request
        .public_key()
        .and_then(|key| openssl_request.verify(&key))
        .unwrap_or(false);
    if !verified {
        return Err(RequestError::BadRequestSignature {
            what: what.to_owned(),
        });
    }
    request
        .info
        .public_key
        .to_der()
        .map_err(|e| not_a_request(e.to_string()))
}

/// The DER SubjectPublicKeyInfo in `bytes` (PEM "PUBLIC KEY" or DER).
pub fn public_key_from_spki(bytes: &[u8], what: &str) -> Result<Vec<u8>, RequestError> {
    let not_a_key = |reason: String| RequestError::NotAPublicKey {
        what: what.to_owned(),
        reason,
    };
    let der = der_from_pem_or_der(bytes, "PUBLIC KEY").map_err(not_a_key)?;
    let spki = SubjectPublicKeyInfoOwned::from_der(&der).map_err(|e| not_a_key(e.to_string()))?;
    spki.to_der().map_err(|e| not_a_key(e.to_string()))
}
