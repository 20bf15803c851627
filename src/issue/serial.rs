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
///
/// Small requests (a serial's 16 octets) are served from a per-thread pool
/// of DRBG output drawn 512 octets at a time: one DRBG call (which re-keys
/// its AES state, ~2,300 instructions and a cold code path) per 32 serials
/// instead of one each. The octets are the same DRBG output, handed out once
/// each and wiped as they go. certmint never forks without exec, so no
/// second process can inherit a pool and hand out the same octets.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsEntropy;

/// Octets drawn from the DRBG per refill of a thread's pool.
const POOL_LEN: usize = 512;

struct Pool {
    octets: [u8; POOL_LEN],
    /// Octets from the front already handed out (and wiped).
    taken: usize,
}

thread_local! {
    static POOL: std::cell::RefCell<Pool> = const {
        std::cell::RefCell::new(Pool { octets: [0; POOL_LEN], taken: POOL_LEN })
    };
}

impl EntropySource for OsEntropy {
    fn fill(&self, buf: &mut [u8]) -> Result<(), String> {
        if buf.len() > POOL_LEN / 8 {
            return aws_lc_rs::rand::fill(buf).map_err(|e| e.to_string());
        }
        POOL.with_borrow_mut(|pool| {
            if POOL_LEN - pool.taken < buf.len() {
                aws_lc_rs::rand::fill(&mut pool.octets).map_err(|e| e.to_string())?;
                pool.taken = 0;
            }
            let octets = &mut pool.octets[pool.taken..pool.taken + buf.len()];
            buf.copy_from_slice(octets);
            octets.fill(0);
            pool.taken += buf.len();
            Ok(())
        })
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
    fn pooled_octets_are_handed_out_once() {
        // 100 serials span several refills of the pool; no two are equal,
        // and no serial repeats a slice of another (no octets reused).
        let serials: Vec<Vec<u8>> = (0..100)
            .map(|_| new_serial(&OsEntropy).unwrap().as_bytes().to_vec())
            .collect();
        let distinct: std::collections::HashSet<&[u8]> = serials.iter().map(|s| &s[1..]).collect();
        assert_eq!(distinct.len(), serials.len());
        // A large request bypasses the pool and is still filled.
        let mut big = [0u8; POOL_LEN];
        OsEntropy.fill(&mut big).unwrap();
        assert!(big.iter().any(|&b| b != 0));
    }

    #[test]
    fn a_failing_rng_aborts() {
        let err = new_serial(&BrokenRng).unwrap_err();
        assert!(err.to_string().contains("DRBG not seeded"), "{err}");
    }
}
