//! Signed checkpoints of the audit chain, kept outside the journal database.
//!
//! The hash chain alone proves nothing to someone who can write the
//! database: they can delete or rewrite records and recompute every hash
//! and the head. A checkpoint — the head's sequence number and hash, and the
//! time — signed with the journal's audit key (ECDSA P-256, a PKCS#8 file
//! beside the journal, mode 0600) and appended to a file beside the journal
//! (one line per checkpoint) fixes the chain up to that record: a database
//! rewritten without the key no longer matches it.
//!
//! Files, for the journal `J`: `J.audit-key` (the private key) and
//! `J.checkpoints` (the checkpoint lines, append-only).

use std::ffi::OsString;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1,
    ECDSA_P256_SHA256_ASN1_SIGNING,
};
use zeroize::Zeroizing;

/// Records appended by one process between two checkpoints while it keeps
/// appending (a production run); a command that appended records also signs
/// one at its end. One checkpoint costs a signature and an fsync of the
/// checkpoint file, so the hot path pays them once per this many records,
/// not per device.
pub const CHECKPOINT_EVERY: i64 = 1000;

/// What each signed line starts with; also what is signed, with the fields.
const TAG: &str = "certmint-audit-checkpoint-v1";

/// A checkpoint file or the audit key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Reading or writing a file failed.
    #[error("audit checkpoint file {path}: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The audit key file is not a P-256 PKCS#8 key.
    #[error("audit key {0} is not a P-256 PKCS#8 private key")]
    BadKey(PathBuf),
    /// The key could not be made or could not sign.
    #[error("audit key {0}: signing failed")]
    Signing(PathBuf),
}

impl CheckpointError {
    /// Always a failure: the checkpoint file or the audit key.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Failure
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CheckpointError + '_ {
    move |e| CheckpointError::Io {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn beside(journal: &Path, suffix: &str) -> PathBuf {
    let mut name = OsString::from(journal.as_os_str());
    name.push(suffix);
    PathBuf::from(name)
}

/// The audit key file of the journal at `journal`.
pub fn key_path(journal: &Path) -> PathBuf {
    beside(journal, ".audit-key")
}

/// The checkpoint file of the journal at `journal`.
pub fn checkpoints_path(journal: &Path) -> PathBuf {
    beside(journal, ".checkpoints")
}

/// The key that signs checkpoints.
pub struct AuditKey {
    path: PathBuf,
    pair: EcdsaKeyPair,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey({})", self.path.display())
    }
}

impl AuditKey {
    /// The journal's key, or `None` when it has none yet.
    pub fn load(journal: &Path) -> Result<Option<Self>, CheckpointError> {
        let path = key_path(journal);
        let der = match std::fs::read(&path) {
            Ok(der) => Zeroizing::new(der),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &der)
            .map_err(|_| CheckpointError::BadKey(path.clone()))?;
        Ok(Some(Self { path, pair }))
    }

    /// The journal's key, made (mode 0600) if it has none.
    pub fn load_or_create(journal: &Path) -> Result<Self, CheckpointError> {
        if let Some(key) = Self::load(journal)? {
            return Ok(key);
        }
        let path = key_path(journal);
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &SystemRandom::new())
                .map_err(|_| CheckpointError::Signing(path.clone()))?;
        // create_new: two processes making the key at once keep the first.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(mut file) => {
                file.write_all(pkcs8.as_ref())
                    .and_then(|()| file.sync_all())
                    .map_err(io(&path))?;
                sync_directory(&path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(&path)(e)),
        }
        Self::load(journal)?.ok_or(CheckpointError::BadKey(path))
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CheckpointError> {
        self.pair
            .sign(&SystemRandom::new(), message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| CheckpointError::Signing(self.path.clone()))
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, self.pair.public_key().as_ref())
            .verify(message, signature)
            .is_ok()
    }
}

/// Makes a new file's directory entry durable; best effort (the file itself
/// is already synced, and a lost entry only loses what a re-run recreates).
fn sync_directory(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
}

/// The chain's head at one moment, as signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last record's sequence number.
    pub seq: i64,
    /// Its hash.
    pub head: Vec<u8>,
    /// When the checkpoint was signed (RFC 3339 UTC).
    pub at: String,
}

impl Checkpoint {
    fn message(&self) -> String {
        format!(
            "{TAG} {} {} {}",
            self.seq,
            crate::pem::hex(&self.head),
            self.at
        )
    }
}

/// Signs `checkpoint` and appends it to the journal's checkpoint file,
/// synced before this returns.
pub fn append(
    journal: &Path,
    key: &AuditKey,
    checkpoint: &Checkpoint,
) -> Result<(), CheckpointError> {
    let message = checkpoint.message();
    let signature = key.sign(message.as_bytes())?;
    let line = format!("{message} {}\n", crate::pem::hex(&signature));
    let path = checkpoints_path(journal);
    let created = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(&path)
        .map_err(io(&path))?;
    // One write of one line: appends of concurrent processes do not interleave.
    file.write_all(line.as_bytes())
        .and_then(|()| file.sync_data())
        .map_err(io(&path))?;
    if created {
        sync_directory(&path);
    }
    tracing::debug!(checkpoint = %message, "signed a checkpoint of the audit chain");
    Ok(())
}

/// One line of a checkpoint file, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointLine {
    /// A checkpoint the audit key signed.
    Signed(Checkpoint),
    /// The last line, without its newline and not a valid checkpoint: a
    /// crash (power loss) while it was written. Cutting it off entirely
    /// would only leave its records "not yet anchored", so it is not a break.
    Unfinished {
        /// 1-based line number.
        line: usize,
    },
    /// A line that is not one (forged, changed or damaged).
    Bad {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// The checkpoint file's lines, each checked against `key`; `None` when the
/// journal has no checkpoint file.
pub fn read(
    journal: &Path,
    key: Option<&AuditKey>,
) -> Result<Option<Vec<CheckpointLine>>, CheckpointError> {
    let path = checkpoints_path(journal);
    let text = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    let complete = text.ends_with(b"\n");
    let text = String::from_utf8_lossy(&text);
    let count = text.lines().count();
    Ok(Some(
        text.lines()
            .enumerate()
            .map(|(i, line)| match parse_line(i + 1, line, key) {
                CheckpointLine::Bad { line, .. } if !complete && line == count => {
                    CheckpointLine::Unfinished { line }
                }
                parsed => parsed,
            })
            .collect(),
    ))
}

fn parse_line(line_no: usize, line: &str, key: Option<&AuditKey>) -> CheckpointLine {
    let bad = |reason: &str| CheckpointLine::Bad {
        line: line_no,
        reason: reason.to_owned(),
    };
    let Some((message, signature)) = line.rsplit_once(' ') else {
        return bad("not a checkpoint line");
    };
    let fields: Vec<&str> = message.split(' ').collect();
    let [TAG, seq, head, at] = fields.as_slice() else {
        return bad("not a checkpoint line");
    };
    let (Ok(seq), Some(head), Some(signature)) =
        (seq.parse::<i64>(), from_hex(head), from_hex(signature))
    else {
        return bad("not a checkpoint line");
    };
    let Some(key) = key else {
        return bad("the audit key that signed it is missing");
    };
    if !key.verifies(message.as_bytes(), &signature) {
        return bad("its signature is not the audit key's (forged or changed)");
    }
    CheckpointLine::Signed(Checkpoint {
        seq,
        head,
        at: (*at).to_owned(),
    })
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_checkpoint_reads_back_and_a_changed_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("j.sqlite");
        assert!(read(&journal, None).unwrap().is_none());
        let key = AuditKey::load_or_create(&journal).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(key_path(&journal)).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        let checkpoint = Checkpoint {
            seq: 7,
            head: vec![0xab; 32],
            at: "2026-12-05T10:00:00.000Z".into(),
        };
        append(&journal, &key, &checkpoint).unwrap();
        let key = AuditKey::load(&journal).unwrap().unwrap();
        assert_eq!(
            read(&journal, Some(&key)).unwrap().unwrap(),
            vec![CheckpointLine::Signed(checkpoint)]
        );
        let text = std::fs::read_to_string(checkpoints_path(&journal)).unwrap();
        std::fs::write(checkpoints_path(&journal), text.replacen(" 7 ", " 9 ", 1)).unwrap();
        assert!(matches!(
            read(&journal, Some(&key)).unwrap().unwrap().as_slice(),
            [CheckpointLine::Bad { line: 1, .. }]
        ));
        // A last line cut short by a crash is unfinished, not forged.
        std::fs::write(checkpoints_path(&journal), &text[..text.len() - 9]).unwrap();
        assert!(matches!(
            read(&journal, Some(&key)).unwrap().unwrap().as_slice(),
            [CheckpointLine::Unfinished { line: 1 }]
        ));
    }
}
