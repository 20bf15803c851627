//! Finding what was issued: the certificates on record and the audit log,
//! read page by page so that memory stays flat however large the journal
//! (`certmint cert list|show`, `certmint audit show`).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::journal::{
    AuditEntry, CertificateDetail, CertificateFilter, Journal, JournalError, OrderId,
};

/// How many rows one page reads.
const PAGE: usize = 256;

/// Why the records could not be read or shown.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordsError {
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A time bound is not RFC 3339.
    #[error("{what} {value:?} is not an RFC 3339 time such as 2026-12-15T09:00:00Z")]
    BadTime {
        /// Which bound.
        what: &'static str,
        /// What was given.
        value: String,
    },
    /// The audit log holds a time that is not RFC 3339 (written by hand?).
    #[error("audit record {seq} has the time {at:?}, which is not RFC 3339")]
    BadRecordTime {
        /// The record.
        seq: i64,
        /// Its time.
        at: String,
    },
    /// Showing a record failed (the output went away, …).
    #[error("{0}")]
    Output(String),
}

impl RecordsError {
    /// The journal's kind; a time bound that is not a time is a usage
    /// error; the rest are failures.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            RecordsError::Journal(e) => e.kind(),
            RecordsError::BadTime { .. } => ErrorKind::Usage,
            RecordsError::BadRecordTime { .. } | RecordsError::Output(_) => ErrorKind::Failure,
        }
    }
}

/// A certificate serial as operators write it (any case, with or without
/// colons) as the journal stores it: upper-case hex without separators.
pub fn normalize_serial(text: &str) -> String {
    text.trim()
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_uppercase()
}

/// Calls `each` with every certificate matching `filter`, in the order they
/// were recorded; returns how many matched.
pub fn each_certificate(
    journal: &dyn Journal,
    filter: &CertificateFilter,
    mut each: impl FnMut(&CertificateDetail) -> Result<(), RecordsError>,
) -> Result<u64, RecordsError> {
    let filter = CertificateFilter {
        serial: filter.serial.as_deref().map(normalize_serial),
        ..filter.clone()
    };
    let mut after = 0;
    let mut count = 0;
    loop {
        let page = journal.certificates(&filter, after, PAGE)?;
        let Some(last) = page.last() else {
            return Ok(count);
        };
        after = last.id;
        for certificate in &page {
            each(certificate)?;
            count += 1;
        }
    }
}

/// Which audit records `audit show` prints.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only those about this order, its devices and their certificates.
    pub order: Option<OrderId>,
    /// Only those at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only those at or before this time (RFC 3339).
    pub until: Option<String>,
}

fn parse_bound(
    what: &'static str,
    value: &Option<String>,
) -> Result<Option<OffsetDateTime>, RecordsError> {
    value
        .as_deref()
        .map(|text| {
            OffsetDateTime::parse(text.trim(), &Rfc3339).map_err(|_| RecordsError::BadTime {
                what,
                value: text.to_owned(),
            })
        })
        .transpose()
}

/// Calls `each` with every audit record `filter` selects, in sequence
/// order; returns how many. Times are compared as instants, not as text
/// (the log writes them with as many fraction digits as they need).
pub fn each_audit_record(
    journal: &dyn Journal,
    filter: &AuditFilter,
    mut each: impl FnMut(&AuditEntry) -> Result<(), RecordsError>,
) -> Result<u64, RecordsError> {
    let since = parse_bound("--since", &filter.since)?;
    let until = parse_bound("--until", &filter.until)?;
    let mut after = 0;
    let mut count = 0;
    loop {
        let page = journal.audit_records(filter.order, after, PAGE)?;
        let Some(last) = page.last() else {
            return Ok(count);
        };
        after = last.seq;
        for record in &page {
            if since.is_some() || until.is_some() {
                let at = OffsetDateTime::parse(&record.at, &Rfc3339).map_err(|_| {
                    RecordsError::BadRecordTime {
                        seq: record.seq,
                        at: record.at.clone(),
                    }
                })?;
                if since.is_some_and(|s| at < s) || until.is_some_and(|u| at > u) {
                    continue;
                }
            }
            each(record)?;
            count += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_matched_whatever_their_case_and_colons() {
        assert_eq!(normalize_serial(" 6c:a3:1D "), "6CA31D");
        assert_eq!(normalize_serial("6CA31D"), "6CA31D");
    }
}
