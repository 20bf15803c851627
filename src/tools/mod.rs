//! Tools around the engine, not part of it: nothing in certificate
//! production depends on them.
//!
//! - [`bench`](mod@bench): `certmint bench`, which measures a CA key and production's
//!   own pipeline ([`crate::production::Pipeline`]) around it;
//! - [`vcard`]: `certmint card virtual`, a virtual PIV card on a
//!   vsmartcard-vpcd reader, which the card tests and demos provision
//!   through a real pcscd instead of a physical card.

pub mod bench;
pub mod vcard;
