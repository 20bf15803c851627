//! The PIV card management key (key reference 9B): the symmetric key that
//! authorises key generation and writes to data objects. It authenticates
//! by challenge–response with GENERAL AUTHENTICATE, one block at a time in
//! ECB, with Triple-DES or AES (SP 800-78-4 Table 6-1).

use std::fmt;

use aes::{Aes128, Aes192, Aes256};
use des::cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
use des::TdesEde3;
use zeroize::Zeroizing;

/// The management key algorithms PIV cards accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MgmtAlgorithm {
    /// Three-key Triple-DES (algorithm identifier 03).
    TripleDes,
    /// AES-128 (08).
    Aes128,
    /// AES-192 (0A).
    Aes192,
    /// AES-256 (0C).
    Aes256,
}

impl MgmtAlgorithm {
    /// Every algorithm, for help texts and parsing.
    pub const ALL: [MgmtAlgorithm; 4] = [
        MgmtAlgorithm::TripleDes,
        MgmtAlgorithm::Aes128,
        MgmtAlgorithm::Aes192,
        MgmtAlgorithm::Aes256,
    ];

    /// The algorithm identifier used as P1 of GENERAL AUTHENTICATE.
    pub fn id(self) -> u8 {
        match self {
            MgmtAlgorithm::TripleDes => 0x03,
            MgmtAlgorithm::Aes128 => 0x08,
            MgmtAlgorithm::Aes192 => 0x0A,
            MgmtAlgorithm::Aes256 => 0x0C,
        }
    }

    /// The algorithm with identifier `id`.
    pub fn from_id(id: u8) -> Option<Self> {
        MgmtAlgorithm::ALL.into_iter().find(|a| a.id() == id)
    }

    /// The name used on the command line: `3des`, `aes128`, `aes192`, `aes256`.
    pub fn name(self) -> &'static str {
        match self {
            MgmtAlgorithm::TripleDes => "3des",
            MgmtAlgorithm::Aes128 => "aes128",
            MgmtAlgorithm::Aes192 => "aes192",
            MgmtAlgorithm::Aes256 => "aes256",
        }
    }

    /// The algorithm named `name` (see [`MgmtAlgorithm::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        MgmtAlgorithm::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// Key length in octets.
    pub fn key_len(self) -> usize {
        match self {
            MgmtAlgorithm::TripleDes | MgmtAlgorithm::Aes192 => 24,
            MgmtAlgorithm::Aes128 => 16,
            MgmtAlgorithm::Aes256 => 32,
        }
    }

    /// Block length in octets: the length of witnesses and challenges.
    pub fn block_len(self) -> usize {
        match self {
            MgmtAlgorithm::TripleDes => 8,
            _ => 16,
        }
    }
}

impl fmt::Display for MgmtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The well-known factory management key value (`01 02 … 08` three times),
/// shipped as 3DES by most cards and as AES-192 by recent YubiKeys.
pub const FACTORY_KEY: [u8; 24] = [
    1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8,
];

/// A management key. The key octets are wiped on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ManagementKey {
    algorithm: MgmtAlgorithm,
    key: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for ManagementKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ManagementKey({}, <redacted>)", self.algorithm)
    }
}

/// A management key of the wrong length or encoding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MgmtKeyError {
    /// The key is not as long as the algorithm needs.
    #[error("a {algorithm} management key is {expected} octets, this one is {actual}")]
    Length {
        /// The algorithm.
        algorithm: MgmtAlgorithm,
        /// Octets needed.
        expected: usize,
        /// Octets given.
        actual: usize,
    },
    /// The text is not hexadecimal. The text itself is not repeated.
    #[error("a management key is written in hexadecimal digits")]
    NotHex,
}

impl MgmtKeyError {
    /// Always invalid input: the management key the operator gave.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::InvalidInput
    }
}

impl ManagementKey {
    /// A key of `algorithm` with the given octets.
    pub fn new(algorithm: MgmtAlgorithm, key: &[u8]) -> Result<Self, MgmtKeyError> {
        if key.len() != algorithm.key_len() {
            return Err(MgmtKeyError::Length {
                algorithm,
                expected: algorithm.key_len(),
                actual: key.len(),
            });
        }
        Ok(ManagementKey {
            algorithm,
            key: Zeroizing::new(key.to_vec()),
        })
    }

    /// A key read from hexadecimal text (spaces and colons ignored), as kept
    /// in a key file.
    pub fn from_hex(algorithm: MgmtAlgorithm, text: &str) -> Result<Self, MgmtKeyError> {
        let digits: Zeroizing<String> = Zeroizing::new(
            text.chars()
                .filter(|c| !c.is_whitespace() && *c != ':')
                .collect(),
        );
        let octets = Zeroizing::new(crate::pem::parse_hex(&digits).ok_or(MgmtKeyError::NotHex)?);
        ManagementKey::new(algorithm, &octets)
    }

    /// The factory key as a card of `algorithm` ships it.
    pub fn factory(algorithm: MgmtAlgorithm) -> Self {
        ManagementKey {
            algorithm,
            key: Zeroizing::new(FACTORY_KEY[..algorithm.key_len()].to_vec()),
        }
    }

    /// A fresh random key of `algorithm`.
    pub fn random(algorithm: MgmtAlgorithm) -> Result<Self, aws_lc_rs::error::Unspecified> {
        let mut key = Zeroizing::new(vec![0u8; algorithm.key_len()]);
        aws_lc_rs::rand::fill(&mut key)?;
        Ok(ManagementKey { algorithm, key })
    }

    /// Whether this is the well-known factory value, which production must
    /// not rely on.
    pub fn is_factory_default(&self) -> bool {
        self.key[..] == FACTORY_KEY[..self.key.len().min(FACTORY_KEY.len())]
    }

    /// The algorithm.
    pub fn algorithm(&self) -> MgmtAlgorithm {
        self.algorithm
    }

    /// The key octets, for writing a new key to a card or a key file.
    pub fn expose_octets(&self) -> &[u8] {
        &self.key
    }

    /// Encrypts one block (ECB), as the challenge–response requires.
    pub fn encrypt_block(&self, block: &[u8]) -> Result<Vec<u8>, MgmtKeyError> {
        self.apply_block(block, true)
    }

    /// Decrypts one block (ECB).
    pub fn decrypt_block(&self, block: &[u8]) -> Result<Vec<u8>, MgmtKeyError> {
        self.apply_block(block, false)
    }

    fn apply_block(&self, block: &[u8], encrypt: bool) -> Result<Vec<u8>, MgmtKeyError> {
        let wrong_length = || MgmtKeyError::Length {
            algorithm: self.algorithm,
            expected: self.algorithm.block_len(),
            actual: block.len(),
        };
        // Key lengths were checked at construction, so `new_from_slice`
        // cannot fail here; the error path is kept rather than unwrapped.
        let bad_key = || MgmtKeyError::Length {
            algorithm: self.algorithm,
            expected: self.algorithm.key_len(),
            actual: self.key.len(),
        };
        macro_rules! run {
            ($cipher:ty) => {{
                let cipher = <$cipher>::new_from_slice(&self.key).map_err(|_| bad_key())?;
                let mut buffer = Array::try_from(block).map_err(|_| wrong_length())?;
                if encrypt {
                    cipher.encrypt_block(&mut buffer);
                } else {
                    cipher.decrypt_block(&mut buffer);
                }
                Ok(buffer.to_vec())
            }};
        }
        match self.algorithm {
            MgmtAlgorithm::TripleDes => run!(TdesEde3),
            MgmtAlgorithm::Aes128 => run!(Aes128),
            MgmtAlgorithm::Aes192 => run!(Aes192),
            MgmtAlgorithm::Aes256 => run!(Aes256),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triple_des_matches_the_nist_known_answer() {
        // NIST SP 800-67 / FIPS 46-3 style known answer: TDEA with
        // K1 = K2 = K3 = 0123456789ABCDEF reduces to single DES, whose
        // encryption of "Now is t" is 3FA40E8A984D4815.
        let key = ManagementKey::from_hex(
            MgmtAlgorithm::TripleDes,
            "0123456789ABCDEF 0123456789ABCDEF 0123456789ABCDEF",
        )
        .unwrap();
        let cipher = key.encrypt_block(b"Now is t").unwrap();
        assert_eq!(crate::pem::hex(&cipher), "3FA40E8A984D4815");
        assert_eq!(key.decrypt_block(&cipher).unwrap(), b"Now is t");
    }

    #[test]
    fn aes_matches_the_fips_197_known_answers() {
        let plain = crate::pem::unhex("00112233445566778899aabbccddeeff");
        let cases = [
            (
                MgmtAlgorithm::Aes128,
                "000102030405060708090a0b0c0d0e0f",
                "69C4E0D86A7B0430D8CDB78070B4C55A",
            ),
            (
                MgmtAlgorithm::Aes192,
                "000102030405060708090a0b0c0d0e0f1011121314151617",
                "DDA97CA4864CDFE06EAF70A0EC0D7191",
            ),
            (
                MgmtAlgorithm::Aes256,
                "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
                "8EA2B7CA516745BFEAFC49904B496089",
            ),
        ];
        for (algorithm, key, expected) in cases {
            let key = ManagementKey::from_hex(algorithm, key).unwrap();
            let cipher = key.encrypt_block(&plain).unwrap();
            assert_eq!(crate::pem::hex(&cipher), expected, "{algorithm}");
            assert_eq!(key.decrypt_block(&cipher).unwrap(), plain);
        }
    }

    #[test]
    fn lengths_are_checked_and_the_factory_key_is_recognised() {
        assert!(matches!(
            ManagementKey::new(MgmtAlgorithm::Aes256, &[0; 24]),
            Err(MgmtKeyError::Length {
                expected: 32,
                actual: 24,
                ..
            })
        ));
        assert_eq!(
            ManagementKey::from_hex(MgmtAlgorithm::Aes128, "zz"),
            Err(MgmtKeyError::NotHex)
        );
        let factory = ManagementKey::factory(MgmtAlgorithm::TripleDes);
        assert!(factory.is_factory_default());
        assert!(ManagementKey::factory(MgmtAlgorithm::Aes192).is_factory_default());
        let random = ManagementKey::random(MgmtAlgorithm::Aes256).unwrap();
        assert!(!random.is_factory_default());
        assert!(
            factory.encrypt_block(&[0; 16]).is_err(),
            "3DES blocks are 8 octets"
        );
        for algorithm in MgmtAlgorithm::ALL {
            assert_eq!(MgmtAlgorithm::from_id(algorithm.id()), Some(algorithm));
            assert_eq!(MgmtAlgorithm::from_name(algorithm.name()), Some(algorithm));
        }
    }

    #[test]
    fn debug_output_hides_the_key() {
        let key = ManagementKey::factory(MgmtAlgorithm::TripleDes);
        assert_eq!(format!("{key:?}"), "ManagementKey(3des, <redacted>)");
    }
}
