//! Orders: what a customer paid for. ÖKC orders carry the manufacturer's
//! serial list ([`serial_list`] reads it, streaming and untrusted); the
//! [`model`] is what an order and its devices are and the only moves
//! between their states; the journal holds them (see [`crate::journal`]).
//! Certificates signed outside an imported order go on record through a
//! one-off order ([`one_off`]).

pub mod import;
pub mod manufacturer;
pub mod model;
pub mod one_off;
pub mod serial_list;

pub use model::{Device, DeviceState, OrderId, OrderKind, OrderState, OrderSummary, Target};

/// An order import that found problems and imported nothing.
#[derive(Debug)]
pub struct ImportRefused {
    /// Problems found.
    pub problems: usize,
    /// Whether any line was good (so `--accept-good-lines` would help).
    pub any_good: bool,
}

impl std::fmt::Display for ImportRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "order refused: {} problem(s) in the serial list; nothing was imported",
            self.problems
        )?;
        if self.any_good {
            f.write_str(" (fix the list, or pass --accept-good-lines)")?;
        } else {
            f.write_str(" (no usable serial in it)")?;
        }
        Ok(())
    }
}

impl std::error::Error for ImportRefused {}

impl ImportRefused {
    /// Always invalid input: the serial list.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::InvalidInput
    }
}
