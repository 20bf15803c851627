//! Soft ÖKC deliveries: a device key and its certificate chain in a PKCS#12
//! file protected with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) and an
//! HMAC-SHA256 MAC, under a random password per device.

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
    PrivateKeyChain,
};
use zeroize::Zeroizing;

/// PBKDF2 and MAC iterations: OpenSSL 3.0's default. The passwords are
/// random (100 bits), so the iteration count is not what protects them.
pub const ITERATIONS: u32 = 2048;

/// Letters of generated passwords: no 0/O, 1/I/L, so that they survive being read aloud.
const PASSWORD_ALPHABET: &[u8; 32] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789-";

/// A fresh 20-character password (100 random bits).
pub fn random_password() -> Result<Zeroizing<String>, String> {
    let mut bytes = Zeroizing::new([0u8; 20]);
    aws_lc_rs::rand::fill(bytes.as_mut()).map_err(|e| e.to_string())?;
    Ok(Zeroizing::new(
        bytes
            .iter()
            .map(|b| PASSWORD_ALPHABET[(b & 31) as usize] as char)
            .collect(),
    ))
}

/// The CA chain as PKCS#12 certificate entries, parsed once per production
/// run instead of once per device.
#[derive(Clone)]
pub struct CaChain(Vec<Certificate>);

impl CaChain {
    /// Parses the chain's certificates (DER), issuing CA first.
    pub fn parse(chain_der: &[Vec<u8>]) -> Result<Self, String> {
        chain_der
            .iter()
            .map(|der| Certificate::from_der(der).map_err(|e| format!("{e:?}")))
            .collect::<Result<_, _>>()
            .map(CaChain)
    }
}

/// Builds the PKCS#12 file: the PKCS#8 key, its certificate and the CA chain.
pub fn build(
    alias: &str,
    key_pkcs8_der: &[u8],
    key_id: &[u8],
    certificate_der: &[u8],
    chain: &CaChain,
    password: &str,
) -> Result<Vec<u8>, String> {
    let key = PrivateKey::from_der(key_pkcs8_der).map_err(|e| format!("{e:?}"))?;
    let mut certs = Vec::with_capacity(1 + chain.0.len());
    certs.push(Certificate::from_der(certificate_der).map_err(|e| format!("{e:?}"))?);
    certs.extend(chain.0.iter().cloned());
    let mut store = KeyStore::new();
    store.add_entry(
        alias,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(key_id.to_vec(), key, certs)),
    );
    store
        .writer(password)
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(MacAlgorithm::HmacSha256)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(|e| format!("{e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_random_and_readable() {
        let a = random_password().unwrap();
        let b = random_password().unwrap();
        assert_eq!(a.len(), 20);
        assert_ne!(*a, *b);
        assert!(a.bytes().all(|c| PASSWORD_ALPHABET.contains(&c)));
    }
}
