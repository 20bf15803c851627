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
//! and of an order's devices, each exactly once:
//!
//! ```text
//! serial list ─► order ─► journal ─► production: pipeline ─► key target (soft, hsm, card)
//!                                       prepare → lint → intent → sign → verify → store
//! ```
//!
//! Modules of the engine: [`ids`] (VKN, TCKN, MERSİS, device serials),
//! [`profile`] (certificate profiles and CA configuration), [`issue`]
//! (prepare, lint, sign), [`signer`] (the signer boundary), [`keyref`] (key
//! references), [`request`] (CSR and public-key input), [`ca`] (CA
//! directories), [`order`] (orders, the serial list reader), [`journal`]
//! (the durable record), [`audit`] (the audit chain), [`production`] (an
//! order's devices through one pipeline onto their key targets), [`okc`]
//! (what only ÖKC orders have: the purge), [`pkcs11`] (tokens), [`piv`]
//! and [`card`] (PIV cards through PC/SC, the card station), [`calendar`]
//! (Turkish business days), [`inspect`] (certificate summaries), [`input`]
//! (caps on what is read), [`text`] (outside values in messages),
//! [`records`] (finding what was issued), [`crl`] (revocation lists), [`error`] (error kinds and their
//! exit codes), [`timestamp`] (the one form of every time recorded or
//! reported), [`hardening`], [`pem`].
//!
//! Around the engine, in [`tools`]: the bench and the virtual PIV card.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod audit;
pub mod ca;
pub mod calendar;
pub mod card;
pub mod crl;
pub mod error;
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
pub mod records;
pub mod request;
pub mod revocation;
pub mod signer;
pub mod text;
pub mod timestamp;
pub mod tools;
