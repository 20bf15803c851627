//! The journal in SQL: its rules written once ([`journal`]) over a small
//! database interface ([`db`]), with a driver for SQLite, the embedded
//! default for one station ([`sqlite`]), and one for PostgreSQL, shared by
//! several stations ([`postgres`]).

pub mod copy;
pub(crate) mod db;
mod journal;
mod postgres;
mod sqlite;

use crate::journal::address::ServerAddress;
use crate::journal::JournalError;

pub use journal::SqlJournal;

/// The schema version this build writes, for both databases.
pub const SCHEMA_VERSION: i64 = 9;

/// The schema step that brings revocations: a journal migrated to it has
/// its voided and superseded certificates revoked.
const REVOCATION_VERSION: i64 = 4;

/// A journal whose schema is newer than this build knows.
fn newer_schema(location: &str, version: i64) -> crate::journal::JournalError {
    crate::journal::JournalError::Settings {
        path: location.to_owned(),
        reason: format!(
            "its schema is version {version}, newer than this certmint knows ({SCHEMA_VERSION}): \
             use the certmint that wrote it, or a newer one"
        ),
    }
}

impl SqlJournal {
    /// Opens (creating its schema if needed) the journal in a PostgreSQL
    /// database; this station's checkpoints of its audit chain are kept at
    /// [`ServerAddress::anchor`], in a private folder made if missing.
    pub(crate) fn open_server(server: &ServerAddress) -> Result<Self, JournalError> {
        let anchor = server.anchor();
        if let Some(dir) = anchor.parent() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| JournalError::Settings {
                    path: server.shown().to_owned(),
                    reason: format!(
                        "cannot make {} for this station's audit checkpoints: {e}",
                        dir.display()
                    ),
                })?;
        }
        let db = postgres::PostgresDb::open(server)?;
        Self::with(Box::new(db), anchor)
    }
}

/// Whether the PostgreSQL database at `server` holds a journal.
pub(crate) fn has_server_journal(server: &ServerAddress) -> Result<bool, JournalError> {
    postgres::PostgresDb::has_journal(server)
}
