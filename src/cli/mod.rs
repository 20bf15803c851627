//! Command groups of the `certmint` binary that have grown beyond a few
//! lines each. Parsing and reporting only: the work is in the library.

pub mod bench;
pub mod card;
pub mod orders;
pub mod vcard;
