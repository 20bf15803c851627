//! Writing a CRL: DER and PEM (`-----BEGIN X509 CRL-----`), each
//! atomically — a new temporary file beside it (created, never reused),
//! fsync, rename, fsync of the folder — so that a web server publishing the
//! folder serves the old CRL or the new one, never a part. A file in the way
//! that is not a CRL (or is a symbolic link) is refused, not replaced. The
//! PEM is written line by line from the DER, never held whole.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64ct::{Base64, Encoding};

use super::{CrlError, SignedCrl};

/// Where a CRL goes.
#[derive(Debug, Clone)]
pub struct CrlPaths {
    /// The DER file (what a CRL distribution point usually names).
    pub der: PathBuf,
    /// The PEM file.
    pub pem: PathBuf,
}

const PEM_BEGIN: &str = "-----BEGIN X509 CRL-----";
const PEM_END: &str = "-----END X509 CRL-----";

fn io(path: &Path) -> impl Fn(std::io::Error) -> CrlError + '_ {
    move |e| CrlError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Writes `crl` to both paths, DER first. Both files are world-readable
/// (0644): a CRL is public.
pub fn write_files(crl: &SignedCrl, paths: &CrlPaths) -> Result<(), CrlError> {
    write_atomically(&paths.der, Kind::Der, |out| out.write_all(crl.der()))?;
    write_atomically(&paths.pem, Kind::Pem, |out| write_pem(out, crl.der()))
}

/// Whether both files may be written: nothing in the way but CRLs (no
/// symbolic link, no other file). Asked before a CRL Number is spent, so a
/// file in the way refuses the run before anything is signed.
pub fn check_paths(paths: &CrlPaths) -> Result<(), CrlError> {
    check_replaceable(&paths.der, Kind::Der)?;
    check_replaceable(&paths.pem, Kind::Pem)
}

/// The PEM of `der`, 64 characters a line.
fn write_pem(out: &mut dyn Write, der: &[u8]) -> std::io::Result<()> {
    writeln!(out, "{PEM_BEGIN}")?;
    let mut line = [0u8; 64];
    for chunk in der.chunks(48) {
        let text = Base64::encode(chunk, &mut line).map_err(std::io::Error::other)?;
        writeln!(out, "{text}")?;
    }
    writeln!(out, "{PEM_END}")
}

#[derive(Clone, Copy)]
enum Kind {
    Der,
    Pem,
}

/// Whether an existing file at `path` may be replaced: a regular file
/// (not a link) that starts as a CRL of `kind` does — a PEM X509 CRL block,
/// or a DER CertificateList whose TBS starts with version v2 — or nothing
/// is there.
fn check_replaceable(path: &Path, kind: Kind) -> Result<(), CrlError> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(path)(e)),
    };
    let not_a_crl = || CrlError::NotACrl(path.display().to_string());
    if !metadata.is_file() {
        return Err(not_a_crl());
    }
    let mut start = [0u8; 32];
    let mut file = File::open(path).map_err(io(path))?;
    let mut read = 0;
    while read < start.len() {
        match file.read(&mut start[read..]).map_err(io(path))? {
            0 => break,
            n => read += n,
        }
    }
    let start = &start[..read];
    let is_crl = match kind {
        Kind::Pem => start.starts_with(PEM_BEGIN.as_bytes()),
        Kind::Der => der_looks_like_crl(start, metadata.len()),
    };
    if is_crl {
        Ok(())
    } else {
        Err(not_a_crl())
    }
}

/// A SEQUENCE as long as the file, holding a SEQUENCE that starts with
/// INTEGER 1 (v2): a CertificateList. A certificate starts its TBS with
/// `[0]`, a key with another structure.
fn der_looks_like_crl(start: &[u8], file_len: u64) -> bool {
    fn header(bytes: &[u8]) -> Option<(u8, u64, usize)> {
        let (&tag, rest) = bytes.split_first()?;
        let (&first, rest) = rest.split_first()?;
        if first < 0x80 {
            return Some((tag, u64::from(first), 2));
        }
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let length = rest
            .get(..count)?
            .iter()
            .fold(0u64, |v, b| (v << 8) | u64::from(*b));
        Some((tag, length, 2 + count))
    }
    let Some((0x30, length, outer)) = header(start) else {
        return false;
    };
    if length + outer as u64 != file_len {
        return false;
    }
    let Some((0x30, _, inner)) = header(&start[outer..]) else {
        return false;
    };
    start.get(outer + inner..outer + inner + 3) == Some(&[0x02, 0x01, 0x01])
}

fn write_atomically(
    path: &Path,
    kind: Kind,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), CrlError> {
    check_replaceable(path, kind)?;
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| CrlError::Io {
            path: path.display().to_string(),
            reason: "not a file name".into(),
        })?
        .to_string_lossy();
    let tmp = folder.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)
            .map_err(io(&tmp))?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        write(&mut out).map_err(io(&tmp))?;
        let file = out.into_inner().map_err(|e| io(&tmp)(e.into_error()))?;
        file.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))?;
        File::open(&folder)
            .and_then(|f| f.sync_all())
            .map_err(io(&folder))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
