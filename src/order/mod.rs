//! Orders: what a customer paid for. ÖKC orders carry the manufacturer's
//! serial list ([`serial_list`] reads it, streaming and untrusted); the
//! journal holds the order and its devices (see [`crate::journal`]).

pub mod serial_list;
