//! What only ÖKC orders have: soft deliveries purged ten Turkish business
//! days after upload. ÖKC orders are produced by [`crate::production`].

pub mod purge;

/// Business days after upload until soft key material is purged.
pub const PURGE_AFTER_BUSINESS_DAYS: u32 = 10;
