//! Key references: one syntax for every place a key can live, parsed once,
//! up front, into a typed value before any work starts.

use std::path::{Path, PathBuf};

use crate::signer::{Signer, SignerError, SoftwareSigner};

/// Why a key reference was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyRefError {
    /// An empty reference.
    #[error("empty key reference")]
    Empty,
    /// A scheme certmint does not support yet.
    #[error("key reference {reference:?}: {reason}")]
    Unsupported {
        /// The reference as given.
        reference: String,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// The key could not be opened.
    #[error(transparent)]
    Signer(#[from] SignerError),
}

/// Where a signing key lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// A PKCS#8 (or traditional RSA/EC) private key file, PEM or DER.
    File(PathBuf),
}

impl KeyRef {
    /// Parses a reference; relative paths are taken from `base`.
    pub fn parse(reference: &str, base: &Path) -> Result<Self, KeyRefError> {
        if reference.trim().is_empty() {
            return Err(KeyRefError::Empty);
        }
        if reference.starts_with("pkcs11:") {
            return Err(KeyRefError::Unsupported {
                reference: reference.to_owned(),
                reason:
                    "PKCS#11 keys are not supported by this build yet (software key files only)",
            });
        }
        let path = Path::new(reference);
        Ok(KeyRef::File(if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.join(path)
        }))
    }

    /// Opens the key as a signer.
    pub fn open(&self) -> Result<Box<dyn Signer>, KeyRefError> {
        match self {
            KeyRef::File(path) => Ok(Box::new(SoftwareSigner::load(path)?)),
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
    fn pkcs11_uris_are_refused_clearly_until_supported() {
        let err = KeyRef::parse("pkcs11:token=ca;object=k", Path::new(".")).unwrap_err();
        assert!(err.to_string().contains("PKCS#11"), "{err}");
        assert!(matches!(
            KeyRef::parse(" ", Path::new(".")),
            Err(KeyRefError::Empty)
        ));
    }
}
