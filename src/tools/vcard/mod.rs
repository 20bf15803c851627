//! A virtual PIV smart card, for rehearsing card provisioning without
//! cards: the PIV card application of SP 800-73-4 ([`VirtualCard`]) and the
//! client of the `vsmartcard-vpcd` reader driver ([`vpcd`]) that puts it in
//! a PC/SC reader, where independent tools (yubico-piv-tool, OpenSC) and
//! certmint's own [`crate::piv::client::PivClient`] use it like a card.
//!
//! Tests use the card in-process through [`InMemory`], a
//! [`crate::piv::client::Transport`] without PC/SC.
//!
//! The card's PIN, PUK and management key are factory settings for
//! rehearsal ([`CardConfig`]); a virtual card never holds a real secret.

pub mod applet;
pub mod objects;
pub mod vpcd;

pub use applet::{CardConfig, VirtualCard};

use crate::piv::client::{PivError, Transport};
use crate::piv::PinFormatError;

/// Why a virtual card could not be made or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VcardError {
    /// The configured PIN cannot be a PIV PIN.
    #[error("the virtual card's PIN: {0}")]
    Pin(PinFormatError),
    /// A PIV PIN is made of digits (SP 800-73-4 Part 2 §2.4.3).
    #[error("the virtual card's PIN must be 6 to 8 digits")]
    PinNotDigits,
    /// The configured PUK cannot be encoded.
    #[error("the virtual card's PUK: {0}")]
    Puk(PinFormatError),
    /// Retry counters are reported in four bits (`63 Cx`).
    #[error("retry counts are 1 to 15, not {0}")]
    Tries(u8),
    /// The system random number generator failed.
    #[error("the random number generator failed")]
    Random,
    /// Options that do not fit together.
    #[error("{0}")]
    Options(String),
    /// The connection to the reader driver failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl VcardError {
    /// The virtual card's settings come from its command line: options that
    /// do not fit and counts out of range are usage errors, a PIN or PUK of
    /// the wrong form invalid input.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            VcardError::Options(_) | VcardError::Tries(_) => ErrorKind::Usage,
            VcardError::Pin(_) | VcardError::PinNotDigits | VcardError::Puk(_) => {
                ErrorKind::InvalidInput
            }
            VcardError::Random | VcardError::Io { .. } => ErrorKind::Failure,
        }
    }
}

/// The card's Answer To Reset: T=1 only (TD1 81, TD2 31 with IFSC 254),
/// historical bytes in compact-TLV (ISO 7816-4 §8.1.1): card capabilities
/// (selection by full and partial AID, command chaining, no extended
/// lengths) and the issuer data "certmint", then the check byte TCK.
///
/// No middleware knows this ATR, so OpenSC recognises the card by its PIV
/// application (SELECT), not by a vendor table.
pub fn atr() -> Vec<u8> {
    let historical: &[u8] = &[
        0x80, // category: compact-TLV objects follow
        0x73, 0xC0, 0x01, 0x80, // card capabilities
        0x58, b'c', b'e', b'r', b't', b'm', b'i', b'n', b't', // issuer data
    ];
    let mut atr = vec![
        0x3B,                          // TS: direct convention
        0x80 | historical.len() as u8, // T0: TD1 follows, K historical bytes
        0x81,                          // TD1: TD2 follows, T=1
        0x31,                          // TD2: TA3 and TB3 follow, T=1
        0xFE,                          // TA3: IFSC 254
        0x15,                          // TB3: BWI 1, CWI 5
    ];
    atr.extend_from_slice(historical);
    // TCK makes the exclusive-or of T0 to TCK zero (ISO 7816-3 §8.2.5).
    let tck = atr[1..].iter().fold(0u8, |acc, b| acc ^ b);
    atr.push(tck);
    atr
}

/// A [`Transport`] straight into a [`VirtualCard`] in this process: no
/// PC/SC, no reader, for tests of [`crate::piv::client::PivClient`].
#[derive(Debug)]
pub struct InMemory {
    /// The card.
    pub card: VirtualCard,
}

impl InMemory {
    /// A factory-fresh card with `config`, already powered.
    pub fn new(config: &CardConfig) -> Result<Self, VcardError> {
        Ok(InMemory {
            card: VirtualCard::new(config)?,
        })
    }
}

impl Transport for InMemory {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, PivError> {
        Ok(self.card.process(apdu))
    }
}

/// Borrowed, so a test can keep the card and make a client per step.
impl Transport for &mut InMemory {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, PivError> {
        Ok(self.card.process(apdu))
    }
}

#[cfg(test)]
mod tests;
