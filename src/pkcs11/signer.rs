//! A key inside a PKCS#11 token, behind the [`Signer`] trait.
//!
//! The mechanism is chosen once, from the token's list: the combined
//! mechanisms (CKM_ECDSA_SHA256/384, CKM_SHA256_RSA_PKCS) where the token has
//! them, otherwise hashing in software and CKM_ECDSA (SoftHSM2's case) or
//! CKM_RSA_PKCS over a DigestInfo. ECDSA's raw r‖s becomes DER. The key handle
//! is found once and cached; a stale handle is looked up again once.

use std::sync::{Arc, RwLock};

use aws_lc_rs::digest;
use cryptoki::error::Error as CkError;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use der::asn1::UintRef;
use der::Encode;
use der::Sequence;

use super::keys::{find_private_key, find_public_key, object_id, public_key_spki};
use super::pin::PinSource;
use super::token::Token;
use super::uri::Pkcs11Uri;
use super::{recovery, Pkcs11Error, Recovery};
use crate::signer::{KeyType, SignatureAlgorithm, Signer, SignerError};

/// DigestInfo prefix of SHA-256 for RSA PKCS#1 v1.5 (RFC 8017 §9.2 note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// How a signature is made on this token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignPlan {
    /// CKM_ECDSA_SHA256 / CKM_ECDSA_SHA384 over the message.
    EcdsaCombined,
    /// SHA-2 in software, CKM_ECDSA over the digest.
    EcdsaOverDigest,
    /// CKM_SHA256_RSA_PKCS over the message.
    RsaCombined,
    /// SHA-256 in software, CKM_RSA_PKCS over the DigestInfo.
    RsaOverDigestInfo,
}

/// RFC 3279 `Ecdsa-Sig-Value`.
#[derive(Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// Converts a PKCS#11 ECDSA signature (r‖s, each `half` octets) to DER.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, SignerError> {
    if raw.is_empty() || raw.len() % 2 != 0 {
        return Err(SignerError::SigningFailed(format!(
            "ECDSA signature of {} octets is not r||s",
            raw.len()
        )));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let encode = |e: der::Error| SignerError::SigningFailed(e.to_string());
    EcdsaSigValue {
        r: UintRef::new(r).map_err(encode)?,
        s: UintRef::new(s).map_err(encode)?,
    }
    .to_der()
    .map_err(encode)
}

/// A signing key in a token.
pub struct Pkcs11Signer {
    token: Arc<Token>,
    uri: Pkcs11Uri,
    key: RwLock<ObjectHandle>,
    key_type: KeyType,
    plan: SignPlan,
    public_key_der: Vec<u8>,
}

impl std::fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Pkcs11Signer({}, {}, {:?})",
            self.uri, self.key_type, self.plan
        )
    }
}

impl Pkcs11Signer {
    /// Opens the key the URI names (`object=` and/or `id=`), logging in to its
    /// token once per process.
    pub fn open(
        uri: &Pkcs11Uri,
        pin_source: &PinSource,
        sessions: Option<usize>,
    ) -> Result<Self, Pkcs11Error> {
        let uri = uri.clone().require_object()?;
        let token = Token::open(&uri, pin_source, sessions)?;
        Self::on_token(token, uri)
    }

    /// The key the URI names, on a token already open.
    pub fn on_token(token: Arc<Token>, uri: Pkcs11Uri) -> Result<Self, Pkcs11Error> {
        let label = token.label().to_owned();
        let (key, public_key_der) =
            token.with_session(|session| Ok(Self::find(session, &uri, &label)))??;
        let key_type =
            KeyType::of_public_key(&public_key_der).map_err(|e| Pkcs11Error::BadKey {
                token: label.clone(),
                reason: e.to_string(),
            })?;
        let mechanisms = token.mechanisms()?;
        let has = |m: MechanismType| mechanisms.contains(&m);
        let plan = match key_type {
            KeyType::EcP256 if has(MechanismType::ECDSA_SHA256) => SignPlan::EcdsaCombined,
            KeyType::EcP384 if has(MechanismType::ECDSA_SHA384) => SignPlan::EcdsaCombined,
            KeyType::EcP256 | KeyType::EcP384 if has(MechanismType::ECDSA) => {
                SignPlan::EcdsaOverDigest
            }
            KeyType::Rsa(_) if has(MechanismType::SHA256_RSA_PKCS) => SignPlan::RsaCombined,
            KeyType::Rsa(_) if has(MechanismType::RSA_PKCS) => SignPlan::RsaOverDigestInfo,
            _ => {
                return Err(Pkcs11Error::UnsupportedMechanism {
                    token: label,
                    mechanism: format!("any signing mechanism for a {key_type} key"),
                });
            }
        };
        Ok(Self {
            token,
            uri,
            key: RwLock::new(key),
            key_type,
            plan,
            public_key_der,
        })
    }

    fn find(
        session: &Session,
        uri: &Pkcs11Uri,
        token: &str,
    ) -> Result<(ObjectHandle, Vec<u8>), Pkcs11Error> {
        let keys = find_private_key(session, uri.object.as_deref(), uri.id.as_deref())
            .map_err(|e| Pkcs11Error::call(token, &e))?;
        let key = match keys.as_slice() {
            [key] => *key,
            [] => return Err(Pkcs11Error::KeyNotFound(uri.to_string())),
            more => {
                return Err(Pkcs11Error::AmbiguousKey {
                    uri: uri.to_string(),
                    count: more.len(),
                });
            }
        };
        let id = object_id(session, key).map_err(|e| Pkcs11Error::call(token, &e))?;
        let public = find_public_key(session, &id, uri.object.as_deref())
            .map_err(|e| Pkcs11Error::call(token, &e))?
            .ok_or_else(|| Pkcs11Error::NoPublicKey(uri.to_string()))?;
        Ok((key, public_key_spki(session, public, token)?))
    }

    /// The token the key is on.
    pub fn token(&self) -> &Arc<Token> {
        &self.token
    }

    /// How this key signs.
    pub fn plan(&self) -> SignPlan {
        self.plan
    }

    /// The key's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    fn mechanism_and_input(&self, message: &[u8]) -> (Mechanism<'static>, Vec<u8>) {
        let sha = |alg| digest::digest(alg, message).as_ref().to_vec();
        match (self.plan, self.key_type) {
            (SignPlan::EcdsaCombined, KeyType::EcP384) => {
                (Mechanism::EcdsaSha384, message.to_vec())
            }
            (SignPlan::EcdsaCombined, _) => (Mechanism::EcdsaSha256, message.to_vec()),
            (SignPlan::EcdsaOverDigest, KeyType::EcP384) => {
                (Mechanism::Ecdsa, sha(&digest::SHA384))
            }
            (SignPlan::EcdsaOverDigest, _) => (Mechanism::Ecdsa, sha(&digest::SHA256)),
            (SignPlan::RsaCombined, _) => (Mechanism::Sha256RsaPkcs, message.to_vec()),
            (SignPlan::RsaOverDigestInfo, _) => {
                let mut input = SHA256_DIGEST_INFO.to_vec();
                input.extend_from_slice(&sha(&digest::SHA256));
                (Mechanism::RsaPkcs, input)
            }
        }
    }

    fn sign_on(
        &self,
        session: &Session,
        mechanism: &Mechanism<'_>,
        input: &[u8],
    ) -> Result<Vec<u8>, CkError> {
        let key = *self.key.read().unwrap_or_else(|p| p.into_inner());
        match session.sign(mechanism, key, input) {
            Err(e) if recovery(&e) == Recovery::RefindKey => {
                let label = self.token.label().to_owned();
                let (fresh, _) = Self::find(session, &self.uri, &label).map_err(|_| e)?;
                *self.key.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                session.sign(mechanism, fresh, input)
            }
            other => other,
        }
    }
}

impl Signer for Pkcs11Signer {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.key_type.signature_algorithm()
    }

    fn public_key_der(&self) -> &[u8] {
        &self.public_key_der
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        let (mechanism, input) = self.mechanism_and_input(message);
        let raw = self
            .token
            .with_session(|session| self.sign_on(session, &mechanism, &input))
            .map_err(|e| SignerError::SigningFailed(e.to_string()))?;
        match self.key_type {
            KeyType::EcP256 | KeyType::EcP384 => ecdsa_raw_to_der(&raw),
            KeyType::Rsa(_) => Ok(raw),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ecdsa_signatures_become_der() {
        // r with its top bit set gains a 0x00; s with leading zeros loses them.
        let mut raw = vec![0x80; 32];
        raw.extend([0x00, 0x00, 0x01]);
        raw.extend(vec![0x02; 29]);
        let der = ecdsa_raw_to_der(&raw).unwrap();
        assert_eq!(&der[..5], &[0x30, 0x43, 0x02, 0x21, 0x00]); // 35 + 32 content octets
        assert_eq!(&der[37..40], &[0x02, 0x1e, 0x01]);
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_err());
    }
}
