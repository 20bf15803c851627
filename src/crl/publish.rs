//! Issuing a CA's CRL from the journal of record, in the order that keeps
//! every CRL Number unique and every CRL on record:
//!
//! 1. the folder's CRL lock is taken (two runs at once would rename their
//!    files over each other, and the lower number could end up published);
//! 2. the next CRL Number is allocated in the journal, durably and audited —
//!    a crash from here on leaves a gap, never a number used twice;
//! 3. the issuer's revocations stream from the journal into the builder,
//!    which lints each entry; the CRL is signed and verified;
//! 4. the CRL is recorded (number, times, entries, SHA-256), audited;
//! 5. DER and PEM are written atomically — over a CRL file only when it is
//!    one this journal recorded (an operator on the wrong journal would
//!    otherwise publish a CRL without the CA's revocations).

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use time::OffsetDateTime;

use super::{CrlBuilder, CrlError, CrlInfo, CrlIssuer, CrlPaths};
use crate::journal::{IssuedCrl, Journal, JournalError};

/// The lock file in a CRL folder.
const LOCK_FILE: &str = ".certmint-crl.lock";

/// The longest a CRL may stay current: a year. A relying party that
/// fetches a CRL trusts it until nextUpdate; a typo of days for hours must
/// not publish a CRL that hides revocations for decades.
pub const MAX_NEXT_UPDATE: Duration = Duration::from_secs(366 * 24 * 3600);
/// The shortest: an hour.
pub const MIN_NEXT_UPDATE: Duration = Duration::from_secs(3600);

/// Why a CRL was not issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The journal refused or failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The CRL was refused, or could not be signed or written.
    #[error(transparent)]
    Crl(#[from] CrlError),
    /// Another `ca crl` writes into the same folder now.
    #[error(
        "{folder}: another certmint is issuing a CRL into this folder; wait for it and run again"
    )]
    Busy {
        /// The folder.
        folder: PathBuf,
    },
    /// The folder or its lock file could not be used.
    #[error("{path}: {reason}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The CRL file in the way is none of the CRLs this journal issued:
    /// the command runs on another journal than the one that made it.
    #[error(
        "{path} is none of the CRLs this journal issued for this CA ({last}); a CRL made from \
         this journal could list fewer revocations than the one published. Is --journal the \
         CA's journal of record? If that file is stale, move it away and run again"
    )]
    ForeignCrl {
        /// The CRL file.
        path: PathBuf,
        /// What this journal last issued.
        last: String,
    },
    /// nextUpdate out of its bounds.
    #[error("the CRL's validity must be between 1 hour and 366 days (given {given_seconds} s)")]
    Validity {
        /// What was asked, in seconds.
        given_seconds: u64,
    },
}

impl PublishError {
    /// What kind of failure this is.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            PublishError::Journal(e) => e.kind(),
            PublishError::Crl(e) => e.kind(),
            PublishError::Busy { .. } => ErrorKind::Held,
            PublishError::ForeignCrl { .. } => ErrorKind::Conflict,
            PublishError::Validity { .. } => ErrorKind::Usage,
            PublishError::Io { .. } => ErrorKind::Failure,
        }
    }
}

/// A CRL to issue.
#[derive(Debug)]
pub struct CrlRequest<'a> {
    /// Where the files go.
    pub paths: &'a CrlPaths,
    /// thisUpdate: now.
    pub this_update: OffsetDateTime,
    /// How long it stays current: nextUpdate is `this_update + valid_for`.
    pub valid_for: Duration,
    /// Who issues it, for the audit log.
    pub operator: &'a str,
}

/// What was issued.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PublishedCrl {
    /// Its CRL Number.
    pub number: u64,
    /// How many certificates it lists.
    pub entries: u64,
    /// thisUpdate (RFC 3339).
    pub this_update: String,
    /// nextUpdate (RFC 3339).
    pub next_update: String,
    /// The DER file.
    pub der_path: PathBuf,
    /// The PEM file.
    pub pem_path: PathBuf,
    /// The DER's size in bytes.
    pub der_bytes: u64,
    /// SHA-256 of the DER, hex.
    pub sha256: String,
}

/// Issues `issuer`'s next CRL from `journal` (see the module comment for
/// the order of steps).
pub fn publish_crl(
    journal: &mut dyn Journal,
    issuer: &CrlIssuer<'_>,
    request: &CrlRequest<'_>,
) -> Result<PublishedCrl, PublishError> {
    if !(MIN_NEXT_UPDATE..=MAX_NEXT_UPDATE).contains(&request.valid_for) {
        return Err(PublishError::Validity {
            given_seconds: request.valid_for.as_secs(),
        });
    }
    let this_update = request
        .this_update
        .replace_nanosecond(0)
        .unwrap_or(request.this_update);
    let next_update = this_update + request.valid_for;
    let _lock = lock_folder(&request.paths.der)?;

    let key_id = issuer.key_identifier().to_vec();
    super::check_paths(request.paths)?;
    check_replaces_own_crl(journal, &key_id, &request.paths.der)?;
    let number = journal.allocate_crl_number(&key_id, request.operator)?;
    let info = CrlInfo {
        number,
        this_update,
        next_update,
    };
    let mut builder = CrlBuilder::start(issuer, info)?;
    let stopped = |refusal: &CrlError| JournalError::CrlNumber {
        issuer_key_id: crate::pem::hex(&key_id),
        number,
        reason: format!("stopped reading the revocations: {refusal}"),
    };
    builder
        .push_from(|each| journal.revoked_entries(&key_id, each), stopped)
        .map_err(|e| match e {
            super::BuildError::Crl(e) => PublishError::Crl(e),
            super::BuildError::Source(e) => PublishError::Journal(e),
        })?;
    let crl = builder.finish()?;
    // On record before it is published: a crash between the two leaves the
    // previous CRL in place, which the journal knows, so the next run
    // replaces it.
    let sha256 = crl.sha256_hex();
    journal.record_crl(
        &IssuedCrl {
            issuer_key_id: &key_id,
            number,
            this_update,
            next_update,
            entries: crl.entries(),
            sha256_hex: &sha256,
        },
        request.operator,
    )?;
    super::write_files(&crl, request.paths)?;
    Ok(PublishedCrl {
        number,
        entries: crl.entries(),
        this_update: crate::timestamp::format(this_update),
        next_update: crate::timestamp::format(next_update),
        der_path: request.paths.der.clone(),
        pem_path: request.paths.pem.clone(),
        der_bytes: crl.der().len() as u64,
        sha256,
    })
}

/// Refuses to replace a CRL file that is none of the CRLs this journal
/// recorded for the issuer: an operator on the wrong journal (another
/// folder's, a fresh one) would otherwise publish, under the CA's own key,
/// a CRL without the revocations the CA's journal of record holds. No file
/// is a first CRL.
fn check_replaces_own_crl(
    journal: &dyn Journal,
    issuer_key_id: &[u8],
    der_path: &Path,
) -> Result<(), PublishError> {
    let io = |e: std::io::Error| PublishError::Io {
        path: der_path.to_path_buf(),
        reason: e.to_string(),
    };
    let file = match std::fs::File::open(der_path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    let found = sha256_of(file).map_err(io)?;
    let recorded = journal.crls(issuer_key_id)?;
    if recorded
        .iter()
        .any(|crl| crl.sha256.eq_ignore_ascii_case(&found))
    {
        return Ok(());
    }
    Err(PublishError::ForeignCrl {
        path: der_path.to_path_buf(),
        last: match recorded.last() {
            Some(last) => format!("its last is number {} of {}", last.number, last.this_update),
            None => "it has issued none".into(),
        },
    })
}

/// SHA-256 of a file's contents, hex, read a block at a time.
fn sha256_of(mut file: std::fs::File) -> std::io::Result<String> {
    use std::io::Read;
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut block = vec![0u8; 1 << 16];
    loop {
        let read = file.read(&mut block)?;
        if read == 0 {
            break;
        }
        digest.update(&block[..read]);
    }
    Ok(crate::pem::hex(digest.finish().as_ref()))
}

/// Takes the CRL folder's lock (an exclusive `flock` on a lock file in the
/// folder of `der_path`), held until the returned value is dropped.
fn lock_folder(der_path: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, PublishError> {
    let folder = match der_path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let lock_path = folder.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&lock_path)
        .map_err(|e| PublishError::Io {
            path: lock_path.clone(),
            reason: e.to_string(),
        })?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(
        |(_, errno)| match errno {
            nix::errno::Errno::EWOULDBLOCK => PublishError::Busy { folder },
            other => PublishError::Io {
                path: lock_path,
                reason: other.to_string(),
            },
        },
    )
}

/// The CRL's file name from the URL its certificates name: the URL's last
/// path segment when it is a plain file name (`mmeshs-s1.crl`), so the
/// folder can be published as it is; otherwise `fallback`.
pub fn file_name_from_url(url: Option<&str>, fallback: &str) -> String {
    let segment = url
        .and_then(|url| url.split(['?', '#']).next())
        .and_then(|path| path.rsplit('/').next())
        .unwrap_or("");
    let plain = !segment.is_empty()
        && segment.len() <= 128
        && !segment.starts_with('.')
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if plain {
        segment.to_string()
    } else {
        fallback.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_named_as_the_url_names_it_or_falls_back() {
        let url = "http://depo.kamusm.gov.tr/kurumsal/mmeshs-s1.crl";
        assert_eq!(file_name_from_url(Some(url), "x.crl"), "mmeshs-s1.crl");
        assert_eq!(
            file_name_from_url(Some("http://h/a/okc.crl?x=1"), "x.crl"),
            "okc.crl"
        );
        for odd in [
            "http://h/",
            "http://h/..",
            "http://h/a b.crl",
            "http://h/.hidden",
        ] {
            assert_eq!(file_name_from_url(Some(odd), "x.crl"), "x.crl", "{odd}");
        }
        assert_eq!(file_name_from_url(None, "root.crl"), "root.crl");
    }
}
