//! Bounds on what comes from outside: every file certmint reads whole is
//! read through [`read_capped`], so that a request, a key, a PIN file or a
//! configuration given as `/dev/zero` (or a multi-gigabyte file) ends in an
//! error after at most its cap plus one byte, and every count an operator
//! gives has a maximum. docs/limits.md lists them all.

use std::io::Read;
use std::path::{Path, PathBuf};

/// The most certmint reads of one input file: a CSR, a public key, a
/// certificate to inspect, a subject TOML, a CA configuration, a chain or
/// CA certificate, a closed-days list, a key file (1 MiB, far above any of
/// them: an RSA-4096 certificate chain is a few KiB).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The most certmint reads of an ÖKC serial list (`order import --serials`),
/// which is streamed line by line: 64 MiB, room for millions of serials.
pub const MAX_SERIAL_LIST_BYTES: u64 = 64 * 1024 * 1024;

/// The most seals one Mali Mühür order may ask for (`order import --seals`).
pub const MAX_SEALS: u32 = 10_000;

/// The most parallel workers (`okc produce --workers`, `bench --workers`).
pub const MAX_WORKERS: u64 = 256;

/// The most devices a bench batch makes (`bench --batch`).
pub const MAX_BENCH_BATCH: u64 = 1_000_000;

/// The longest one bench measurement runs (`bench --seconds`), in seconds.
pub const MAX_BENCH_SECONDS: f64 = 3600.0;

/// Why an input file was not read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {reason}", crate::text::quoted(&.path.display().to_string()))]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The system's reason.
        reason: String,
    },
    /// The file is larger than its cap; the rest was never read.
    #[error("{} is larger than {cap} bytes, the most certmint reads from such a file", crate::text::quoted(&.path.display().to_string()))]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The cap, in bytes.
        cap: u64,
    },
}

impl InputError {
    /// [`TooLarge`](Self::TooLarge) is invalid input; an unreadable file a failure.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            InputError::TooLarge { .. } => ErrorKind::InvalidInput,
            InputError::Unreadable { .. } => ErrorKind::Failure,
        }
    }
}

/// Reads `path` whole if it holds at most `cap` bytes: at most `cap + 1`
/// bytes are ever read, whatever the file is (a device, a pipe, a FIFO).
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, InputError> {
    let unreadable = |e: std::io::Error| InputError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > cap {
        return Err(InputError::TooLarge {
            path: path.to_path_buf(),
            cap,
        });
    }
    Ok(bytes)
}

/// [`read_capped`] with [`MAX_FILE_BYTES`].
pub fn read_file(path: &Path) -> Result<Vec<u8>, InputError> {
    read_capped(path, MAX_FILE_BYTES)
}

/// [`read_file`] for a text file, which must be UTF-8.
pub fn read_text_file(path: &Path) -> Result<String, InputError> {
    String::from_utf8(read_file(path)?).map_err(|_| InputError::Unreadable {
        path: path.to_path_buf(),
        reason: "not UTF-8 text".into(),
    })
}

/// The most certmint reads of a file holding a password (4 KiB).
pub const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// A password from a file (at most [`MAX_SECRET_FILE_BYTES`]), without its
/// trailing line ends; `what` names it in errors, which never show it. The
/// bytes read are wiped when dropped.
pub fn read_secret_file(path: &Path, what: &str) -> Result<String, InputError> {
    let bytes = zeroize::Zeroizing::new(read_capped(path, MAX_SECRET_FILE_BYTES)?);
    let text = std::str::from_utf8(&bytes).map_err(|_| InputError::Unreadable {
        path: path.to_path_buf(),
        reason: format!("{what} is not UTF-8 text"),
    })?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

/// A reader that fails with [`std::io::ErrorKind::InvalidData`] once its
/// source gives more than `cap` bytes, for input that is streamed rather
/// than read whole (an endless source ends in an error, not a hang).
#[derive(Debug)]
pub struct CappedReader<R> {
    inner: R,
    remaining: u64,
    cap: u64,
}

impl<R: Read> CappedReader<R> {
    /// Reads at most `cap` bytes of `inner`.
    pub fn new(inner: R, cap: u64) -> Self {
        Self {
            inner,
            remaining: cap,
            cap,
        }
    }
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            // One byte more means the source is over the cap.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "larger than {} bytes, the most certmint reads from such a file",
                        self.cap
                    ),
                )),
            };
        }
        let room = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let read = self.inner.read(&mut buf[..room])?;
        self.remaining -= read as u64;
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_up_to_the_cap_and_refuses_one_byte_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_capped(&path, 5).unwrap(), b"12345");
        assert!(matches!(
            read_capped(&path, 4),
            Err(InputError::TooLarge { cap: 4, .. })
        ));
    }

    #[test]
    fn a_capped_reader_passes_the_cap_and_fails_beyond() {
        let mut out = Vec::new();
        CappedReader::new(&b"12345"[..], 5)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"12345");
        let err = CappedReader::new(&b"123456"[..], 5)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }

    #[test]
    fn an_endless_device_ends_at_the_cap() {
        assert!(matches!(
            read_file(Path::new("/dev/zero")),
            Err(InputError::TooLarge { .. })
        ));
    }
}
