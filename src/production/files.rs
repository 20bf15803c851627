//! The file side of production: writes that refuse symbolic links
//! (`O_NOFOLLOW`), atomic replacement (temporary file, fsync, rename), and
//! the fsyncs shared by a chunk or a whole delivery.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::ProduceError;
use crate::pem;

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> ProduceError + '_ {
    move |e| ProduceError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// `name.ext` → `name.ext.tmp` (not `name.tmp`: `manifest.csv` and
/// `manifest.json` must not share a temporary file).
fn temporary(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Writes `bytes` to `path` atomically: a temporary file, fsync, rename.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ProduceError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = temporary(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// Opens `path` to write it whole: created with `mode`, or truncated and
/// given `mode` if it exists (a file left with a wider mode does not keep
/// it). A symbolic link planted at `path` is refused (`O_NOFOLLOW`), never
/// followed out of the delivery folder.
fn open_to_write(path: &Path, mode: u32) -> Result<std::fs::File, ProduceError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(io(path))?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(io(path))?;
    Ok(file)
}

/// Writes `bytes` to `path` (created or truncated), leaving durability to a
/// later sync.
pub(crate) fn write_unsynced(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ProduceError> {
    open_to_write(path, mode)?
        .write_all(bytes)
        .map_err(io(path))
}

/// Writes `bytes` to `path` (created or truncated) and fsyncs it. Its name
/// in the folder is durable only after [`sync_folder`].
pub(crate) fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ProduceError> {
    let mut file = open_to_write(path, mode)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io(path))
}

/// Makes the names of the files created in `folder` durable (fsync of the
/// folder): one call for a whole chunk of files.
pub(crate) fn sync_folder(folder: &Path) -> Result<(), ProduceError> {
    std::fs::File::open(folder)
        .and_then(|dir| dir.sync_all())
        .map_err(io(folder))
}

/// Makes everything written to the file system holding `path` durable
/// (syncfs(2)): one call for an order's thousands of certificate files
/// instead of an fsync each.
pub(crate) fn sync_file_system(path: &Path) -> Result<(), ProduceError> {
    std::fs::File::open(path)
        .and_then(|dir| nix::unistd::syncfs(&dir).map_err(std::io::Error::from))
        .map_err(io(path))
}

/// A file written under a temporary name and renamed into place only when
/// complete and synced, so a reader never sees half a manifest.
pub(crate) struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
}

impl AtomicFile {
    pub(crate) fn create(path: &Path, mode: u32) -> Result<Self, ProduceError> {
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = temporary(path);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io(&tmp))?;
        Ok(Self {
            path: path.to_path_buf(),
            out: std::io::BufWriter::new(file),
            tmp,
        })
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), ProduceError> {
        self.out.write_all(bytes).map_err(io(&self.tmp))
    }

    pub(crate) fn commit(self) -> Result<(), ProduceError> {
        let file = self.out.into_inner().map_err(|e| ProduceError::Io {
            path: self.tmp.display().to_string(),
            reason: e.to_string(),
        })?;
        file.sync_all().map_err(io(&self.tmp))?;
        std::fs::rename(&self.tmp, &self.path).map_err(io(&self.path))
    }
}

/// After the journal recorded the device verified: writes its certificate
/// files, without fsync (the journal holds the DER; the delivery writes
/// again any file a crash lost or tore, and syncs). A file that exists is
/// left alone: the delivery wrote it meanwhile, from the same record, or
/// an earlier certmint left it, which the delivery checks against the
/// record. Written only after the record, never by a producer whose lease
/// was taken over: the journal refuses its record.
pub(crate) fn write_new_certificate_files(
    certs: &Path,
    device_serial: &str,
    certificate_der: &[u8],
) -> Result<(), ProduceError> {
    use std::os::unix::fs::OpenOptionsExt;
    for (path, bytes) in [
        (
            certs.join(format!("{device_serial}.pem")),
            pem::certificate(certificate_der).into_bytes(),
        ),
        (
            certs.join(format!("{device_serial}.der")),
            certificate_der.to_vec(),
        ),
    ] {
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&path);
        match created {
            Ok(mut file) => file.write_all(&bytes).map_err(io(&path))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(&path)(e)),
        }
    }
    Ok(())
}

/// Writes a device's certificate files (PEM and DER) from the journal's
/// DER, without fsync (the delivery syncs the file system once, before it
/// records the upload), leaving alone one already identical (a delivery
/// resumed after a crash, which may have lost or torn any).
pub(crate) fn write_certificate_files(
    certs: &Path,
    device_serial: &str,
    certificate_der: &[u8],
) -> Result<(), ProduceError> {
    let pem = pem::certificate(certificate_der);
    for (path, bytes) in [
        (certs.join(format!("{device_serial}.pem")), pem.as_bytes()),
        (certs.join(format!("{device_serial}.der")), certificate_der),
    ] {
        if crate::input::read_file(&path).ok().as_deref() != Some(bytes) {
            write_unsynced(&path, bytes, 0o644)?;
        }
    }
    Ok(())
}

/// Destroys a key file certmint wrote and no record names: a regular file
/// is shredded (overwritten, synced, unlinked); a symbolic link there is
/// not certmint's, and only the link is removed, never what it names. A
/// name already gone (its producer discarded it meanwhile) is done.
pub(crate) fn destroy_key_file(path: &Path) -> Result<(), ProduceError> {
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        meta => meta.map_err(io(path))?,
    };
    if meta.file_type().is_symlink() {
        return std::fs::remove_file(path).map_err(io(path));
    }
    if !meta.is_file() {
        return Ok(());
    }
    match crate::okc::purge::shred(path) {
        // Gone meanwhile is done.
        Err(_) if std::fs::symlink_metadata(path).is_err() => Ok(()),
        shredded => shredded.map_err(|e| ProduceError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        }),
    }
}
