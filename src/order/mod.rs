//! Orders: what a customer paid for. ÖKC orders carry the manufacturer's
//! serial list ([`serial_list`] reads it, streaming and untrusted); the
//! journal holds the order and its devices (see [`crate::journal`]).
//! Certificates signed outside an imported order go on record through a
//! one-off order ([`one_off`]).

pub mod one_off;
pub mod serial_list;
