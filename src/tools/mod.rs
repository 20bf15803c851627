//! Tools around the engine, not part of it: nothing in certificate
//! production depends on them.
//!
//! - [`bench`](mod@bench): `certmint bench`, which measures a CA key and production's
//!   own pipeline ([`crate::production::Pipeline`]) around it;
//! - [`crl_bench`]: `certmint bench --crl N`, which builds, signs and writes
//!   a CRL of N synthetic entries and measures its time and memory;
//! - [`vcard`]: `certmint card virtual`, a virtual PIV card on a
//!   vsmartcard-vpcd reader, which the card tests and demos provision
//!   through a real pcscd instead of a physical card.

pub mod bench;
pub mod crl_bench;
pub mod vcard;
