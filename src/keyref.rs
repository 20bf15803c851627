//! Key references: one syntax for every place a key can live, parsed once,
//! up front, into a typed value before any work starts.
//!
//! - a file path: a PKCS#8 (or traditional RSA/EC) private key, PEM or DER;
//! - an RFC 7512 URI: `pkcs11:token=ca;object=issuing-2026?module-path=…&pin-source=file:…`.

use std::path::{Path, PathBuf};

use crate::pkcs11::{PinSource, Pkcs11Error, Pkcs11Signer, Pkcs11Uri, SessionProcesses, UriError};
use crate::signer::{Signer, SignerError, SoftwareSigner};

/// Why a key reference was refused or its key could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyRefError {
    /// An empty reference.
    #[error("empty key reference")]
    Empty,
    /// A malformed `pkcs11:` URI.
    #[error(transparent)]
    Uri(#[from] UriError),
    /// A software key could not be opened.
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// A token key could not be opened.
    #[error(transparent)]
    Pkcs11(#[from] Pkcs11Error),
}

impl KeyRefError {
    /// A malformed or empty reference is a usage error; opening the key
    /// has the kind of what failed.
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            KeyRefError::Empty => crate::error::ErrorKind::Usage,
            KeyRefError::Uri(e) => e.kind(),
            KeyRefError::Signer(e) => e.kind(),
            KeyRefError::Pkcs11(e) => e.kind(),
        }
    }
}

/// Where a signing key lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// A private key file.
    File(PathBuf),
    /// A key in a PKCS#11 token.
    Pkcs11(Pkcs11Uri),
}

/// How to unlock a key: where its PIN comes from when the URI has no
/// `pin-source`, and how many token sessions to pool.
#[derive(Debug, Clone, Default)]
pub struct Unlock {
    /// An environment variable holding the CA token's PIN (`--ca-pin-env`).
    pub pin_env: Option<String>,
    /// The session pool size (default: the number of cores).
    pub sessions: Option<usize>,
    /// The program that runs one PKCS#11 session in a process of its own:
    /// the `certmint` binary (its hidden `pkcs11-session` command). With it,
    /// more than one session means as many processes, which share no lock
    /// of the module (see [`crate::pkcs11::session_process`]); without it,
    /// the sessions are threads of this process.
    pub session_program: Option<PathBuf>,
}

impl KeyRef {
    /// Parses a reference; relative file paths are taken from `base`.
    pub fn parse(reference: &str, base: &Path) -> Result<Self, KeyRefError> {
        if reference.trim().is_empty() {
            return Err(KeyRefError::Empty);
        }
        if reference.starts_with("pkcs11:") {
            return Ok(KeyRef::Pkcs11(
                Pkcs11Uri::parse(reference)?.require_object()?,
            ));
        }
        let path = Path::new(reference);
        Ok(KeyRef::File(if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.join(path)
        }))
    }

    /// Opens the key as a signer.
    pub fn open(&self, unlock: &Unlock) -> Result<Box<dyn Signer>, KeyRefError> {
        match self {
            KeyRef::File(path) => Ok(Box::new(SoftwareSigner::load(path)?)),
            KeyRef::Pkcs11(uri) => {
                let pins = PinSource::choose(uri.pin_source.clone(), unlock.pin_env.as_deref());
                let sessions = unlock
                    .sessions
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
                match &unlock.session_program {
                    Some(program) if sessions > 1 => Ok(Box::new(SessionProcesses::open(
                        program, uri, &pins, sessions,
                    )?)),
                    _ => Ok(Box::new(Pkcs11Signer::open(uri, &pins, Some(sessions))?)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_taken_from_the_base() {
        let r = KeyRef::parse("issuing-key.pem", Path::new("/ca")).unwrap();
        assert_eq!(r, KeyRef::File(PathBuf::from("/ca/issuing-key.pem")));
        let r = KeyRef::parse("/keys/k.pem", Path::new("/ca")).unwrap();
        assert_eq!(r, KeyRef::File(PathBuf::from("/keys/k.pem")));
    }

    #[test]
    fn pkcs11_uris_must_name_a_key_and_carry_no_pin() {
        let r =
            KeyRef::parse("pkcs11:token=ca;object=k?module-path=/m.so", Path::new(".")).unwrap();
        assert!(matches!(r, KeyRef::Pkcs11(ref u) if u.object.as_deref() == Some("k")));
        assert!(matches!(
            KeyRef::parse("pkcs11:token=ca", Path::new(".")),
            Err(KeyRefError::Uri(UriError::NoObject))
        ));
        assert!(matches!(
            KeyRef::parse("pkcs11:token=ca;object=k?pin-value=1", Path::new(".")),
            Err(KeyRefError::Uri(UriError::PinInUri))
        ));
        assert!(matches!(
            KeyRef::parse(" ", Path::new(".")),
            Err(KeyRefError::Empty)
        ));
    }
}
