//! certmint: a certificate production engine for a certification authority.
//!
//! The library holds all behaviour; the `certmint` binary only parses
//! arguments and reports. The flow of one certificate:
//!
//! ```text
//! subject data ─► Subject (validated ids) ─┐
//! CSR / SPKI ──► public key (verified) ────┼─► TBS ─► lint ─► CA signer ─► verify ─► DER
//! CA config ───► Profile (data) ───────────┘
//! ```
//!
//! Modules: [`ids`] (VKN, TCKN, MERSİS, device serials), [`profile`]
//! (certificate profiles and CA configuration), [`issue`] (prepare, lint,
//! sign), [`signer`] (the signer boundary), [`keyref`] (key references),
//! [`request`] (CSR and public-key input), [`ca`] (CA directories),
//! [`inspect`] (certificate summaries), [`input`] (caps on what is read),
//! [`text`] (outside values in messages).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod ca;
pub mod calendar;
pub mod card;
pub mod hardening;
pub mod ids;
pub mod input;
pub mod inspect;
pub mod issue;
pub mod journal;
pub mod keyref;
pub mod okc;
pub mod order;
pub mod pem;
pub mod piv;
pub mod pkcs11;
pub mod production;
pub mod profile;
pub mod request;
pub mod signer;
pub mod text;
pub mod tools;
