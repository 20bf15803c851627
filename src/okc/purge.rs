//! `okc purge`: soft ÖKC deliveries are irreversibly deleted by the CA once
//! 10 Turkish business days have passed since the upload (day 1 is the first
//! business day after it; the purge is due at the end of day 10).
//!
//! Deletion overwrites each PKCS#12 file and the password manifest with
//! zeros, syncs, then unlinks; the journal erases the stored passwords
//! (SQLite `secure_delete`) and records the purge. Overwriting in place
//! cannot reach copies a copy-on-write file system or an SSD's wear
//! levelling keeps: put deliveries on an encrypted volume as well.
//!
//! Idempotent: an interrupted purge is finished by the next run; a purged
//! order is never listed again. Safe to run from a timer.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use time::OffsetDateTime;

use super::{password_manifest, PURGE_AFTER_BUSINESS_DAYS};
use crate::calendar::{BusinessCalendar, TURKEY_UTC_OFFSET};
use crate::journal::{Journal, JournalError, OrderId};
use crate::pkcs11::token::lock;

/// Why a purge failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PurgeError {
    /// A journal problem.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A deadline could not be computed (e.g. past the holiday table's end).
    #[error("order {order}: {reason}")]
    Deadline {
        /// The order.
        order: OrderId,
        /// Why.
        reason: String,
    },
    /// A file could not be deleted.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// One soft delivery considered.
#[derive(Debug, Clone, Serialize)]
pub struct PurgeItem {
    /// The order.
    pub order: i64,
    /// When it was uploaded.
    pub uploaded_at: String,
    /// Its deadline: the end of this Turkish business day.
    pub due: String,
    /// Whether it is due now.
    pub is_due: bool,
    /// Files deleted (or that would be, in a dry run).
    pub files: u64,
}

/// What a purge did.
#[derive(Debug, Clone, Serialize)]
pub struct PurgeReport {
    /// The time the purge judged against.
    pub now: String,
    /// Whether nothing was deleted on purpose.
    pub dry_run: bool,
    /// Every unpurged soft delivery.
    pub deliveries: Vec<PurgeItem>,
}

fn key_material(folder: &Path, out: &Path, order: OrderId) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder.join("p12"))
        .map(|entries| entries.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let passwords = password_manifest(out, order);
    if passwords.exists() {
        files.push(passwords);
    }
    files
}

/// Overwrites a file with zeros, syncs it, and unlinks it.
pub fn shred(path: &Path) -> Result<(), PurgeError> {
    let failed = |e: std::io::Error| PurgeError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let len = std::fs::metadata(path).map_err(failed)?.len();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(failed)?;
    let zeros = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        file.write_all(&zeros[..n]).map_err(failed)?;
        left -= n as u64;
    }
    file.sync_all().map_err(failed)?;
    drop(file);
    std::fs::remove_file(path).map_err(failed)
}

/// Purges every soft delivery due at `now`. `out` is the delivery root the
/// password manifests sit in.
pub fn purge(
    journal: &Mutex<dyn Journal>,
    calendar: &BusinessCalendar,
    out: &Path,
    now: OffsetDateTime,
    dry_run: bool,
    operator: &str,
) -> Result<PurgeReport, PurgeError> {
    let deliveries = lock(journal).unpurged_soft_deliveries()?;
    let mut items = Vec::new();
    for (order, folder, uploaded_at) in deliveries {
        let deadline = |reason: String| PurgeError::Deadline { order, reason };
        let uploaded =
            OffsetDateTime::parse(&uploaded_at, &time::format_description::well_known::Rfc3339)
                .map_err(|e| deadline(format!("upload time {uploaded_at:?}: {e}")))?;
        let upload_day = calendar
            .upload_day(uploaded)
            .map_err(|e| deadline(e.to_string()))?;
        let due = calendar
            .purge_deadline(upload_day, PURGE_AFTER_BUSINESS_DAYS)
            .map_err(|e| deadline(e.to_string()))?;
        let is_due = calendar
            .is_purge_due(
                upload_day,
                PURGE_AFTER_BUSINESS_DAYS,
                now,
                TURKEY_UTC_OFFSET,
            )
            .map_err(|e| deadline(e.to_string()))?;
        let files = key_material(Path::new(&folder), out, order);
        if is_due && !dry_run {
            for file in &files {
                shred(file)?;
            }
            let _ = std::fs::remove_dir(Path::new(&folder).join("p12"));
            let at = now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            lock(journal).record_purge(order, &at, operator)?;
        }
        items.push(PurgeItem {
            order: order.0,
            uploaded_at,
            due: due.to_string(),
            is_due,
            files: files.len() as u64,
        });
    }
    Ok(PurgeReport {
        now: now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        dry_run,
        deliveries: items,
    })
}
