//! Certificate serial numbers: 126 random bits from a CSPRNG, always
//! positive and always 16 octets (CA/B Forum: at least 64 bits of output
//! from a CSPRNG; RFC 5280: positive, at most 20 octets).

use std::fmt;

use der::asn1::Int;

use super::IssueError;

/// Octets in every serial certmint issues.
pub const SERIAL_LEN: usize = 16;

/// A source of cryptographically secure random bytes. Issuance stops when it
/// fails; a serial is never made from anything weaker.
pub trait EntropySource: fmt::Debug + Send + Sync {
    /// Fills `buf` entirely, or reports why it could not.
    fn fill(&self, buf: &mut [u8]) -> Result<(), String>;
}

/// AWS-LC's DRBG, seeded by the kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

impl EntropySource for OsEntropy {
    fn fill(&self, buf: &mut [u8]) -> Result<(), String> {
        aws_lc_rs::rand::fill(buf).map_err(|e| e.to_string())
    }
}

/// A fresh serial number from `entropy`.
pub fn new_serial(entropy: &dyn EntropySource) -> Result<Int, IssueError> {
    let mut bytes = [0u8; SERIAL_LEN];
    entropy.fill(&mut bytes).map_err(IssueError::Entropy)?;
    // Top bit clear keeps the INTEGER positive without a padding octet; the
    // next bit set keeps the length at exactly SERIAL_LEN octets.
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Int::new(&bytes).map_err(|e| IssueError::Encoding(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct BrokenRng;
    impl EntropySource for BrokenRng {
        fn fill(&self, _: &mut [u8]) -> Result<(), String> {
            Err("DRBG not seeded".into())
        }
    }

    #[test]
    fn serials_are_positive_sixteen_octets_and_distinct() {
        let a = new_serial(&OsEntropy).unwrap();
        let b = new_serial(&OsEntropy).unwrap();
        for s in [&a, &b] {
            assert_eq!(s.as_bytes().len(), SERIAL_LEN);
            assert_eq!(s.as_bytes()[0] & 0xc0, 0x40);
        }
        assert_ne!(a, b);
    }

    #[test]
    fn a_failing_rng_aborts() {
        let err = new_serial(&BrokenRng).unwrap_err();
        assert!(err.to_string().contains("DRBG not seeded"), "{err}");
    }
}
