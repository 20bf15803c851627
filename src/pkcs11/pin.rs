//! Where a PIN comes from: a file (`pin-source=file:` in the URI), an
//! environment variable the operator names (`--token-pin-env VAR`,
//! `--ca-pin-env VAR`), or an
//! interactive prompt on the terminal — never argv. A [`Pin`] never shows
//! itself in `Debug` output or messages.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;

use secrecy::{ExposeSecret, SecretString};

/// Why no PIN could be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// The PIN file could not be read.
    #[error("cannot read the PIN file {}: {reason}", crate::text::quoted(&.path.display().to_string()))]
    File {
        /// The file.
        path: PathBuf,
        /// The reason (never the content).
        reason: String,
    },
    /// The named environment variable is not set.
    #[error("environment variable {0}, named to hold the PIN, is not set")]
    EnvMissing(String),
    /// No source was given and there is no terminal to ask on.
    #[error("no PIN source for {0}: give pin-source=file:PATH in the URI, or --token-pin-env VAR (--ca-pin-env VAR for the CA key); there is no terminal to prompt on")]
    NoSource(String),
    /// The PIN is empty.
    #[error("the PIN for {0} is empty")]
    Empty(String),
    /// The PIN (or its file) is longer than any PIN the token takes; it was
    /// never offered to the token, so no retry was spent.
    #[error("the PIN for {what} is longer than {max} bytes, the longest it takes; not tried")]
    TooLong {
        /// The token.
        what: String,
        /// The longest PIN accepted, in bytes.
        max: usize,
    },
}

impl PinError {
    /// No PIN source, or a named variable that is not set, is a usage
    /// error (what the operator must give is missing); a PIN no token takes
    /// is invalid input; an unreadable PIN file a failure.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            PinError::NoSource(_) | PinError::EnvMissing(_) => ErrorKind::Usage,
            PinError::TooLong { .. } | PinError::Empty(_) => ErrorKind::InvalidInput,
            PinError::File { .. } => ErrorKind::Failure,
        }
    }
}

/// The longest PIN certmint offers to any token (PKCS#11's `ulMaxPinLen`
/// of SoftHSM2 and most HSMs is at most 255; PIV PINs are 8). A longer
/// one is refused before `C_Login`, where a wrong PIN spends a retry.
pub const MAX_PIN_BYTES: usize = 255;

/// A PIN or password, wiped from memory on drop and never printed.
#[derive(Clone)]
pub struct Pin(SecretString);

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(***)")
    }
}

impl Pin {
    /// Wraps a secret; refuses an empty one and one longer than [`MAX_PIN_BYTES`].
    pub fn new(value: String, what: &str) -> Result<Self, PinError> {
        if value.is_empty() {
            return Err(PinError::Empty(what.to_owned()));
        }
        if value.len() > MAX_PIN_BYTES {
            // Wiped like any PIN, though it cannot be one.
            drop(zeroize::Zeroizing::new(value));
            return Err(PinError::TooLong {
                what: what.to_owned(),
                max: MAX_PIN_BYTES,
            });
        }
        Ok(Self(SecretString::from(value)))
    }

    /// The secret, for handing to the token.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    pub(crate) fn as_secret(&self) -> &SecretString {
        &self.0
    }
}

/// Where the PIN for one token comes from, decided before any work starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    /// A file holding the PIN (a trailing newline is ignored).
    File(PathBuf),
    /// An environment variable, named by the operator.
    Env(String),
    /// Ask on the terminal.
    Prompt,
}

impl PinSource {
    /// The URI's `pin-source` if it has one, else the variable named by
    /// `pin_env` (`--token-pin-env`, `--ca-pin-env`), else the prompt.
    /// A variable named by `pin_env` is marked secret even when the URI's
    /// file wins: the operator said it holds a PIN.
    pub fn choose(uri_source: Option<PathBuf>, pin_env: Option<&str>) -> Self {
        if let Some(var) = pin_env {
            mark_secret_variable(var);
        }
        match (uri_source, pin_env) {
            (Some(path), _) => PinSource::File(path),
            (None, Some(var)) => PinSource::Env(var.to_owned()),
            (None, None) => PinSource::Prompt,
        }
    }

    /// Reads the PIN; `what` names the token in the prompt and in errors.
    pub fn read(&self, what: &str) -> Result<Pin, PinError> {
        match self {
            PinSource::File(path) => {
                // Room for the PIN and a line ending; a longer file holds no PIN.
                let cap = (MAX_PIN_BYTES + 2) as u64;
                let bytes =
                    zeroize::Zeroizing::new(crate::input::read_capped(path, cap).map_err(|e| {
                        match e {
                            crate::input::InputError::TooLarge { .. } => PinError::TooLong {
                                what: what.to_owned(),
                                max: MAX_PIN_BYTES,
                            },
                            crate::input::InputError::Unreadable { reason, .. } => PinError::File {
                                path: path.clone(),
                                reason,
                            },
                        }
                    })?);
                let text = std::str::from_utf8(&bytes).map_err(|_| PinError::File {
                    path: path.clone(),
                    reason: "not UTF-8 text".into(),
                })?;
                Pin::new(text.trim_end_matches(['\n', '\r']).to_owned(), what)
            }
            PinSource::Env(var) => {
                mark_secret_variable(var);
                let value = std::env::var(var).map_err(|_| PinError::EnvMissing(var.clone()))?;
                Pin::new(value, what)
            }
            PinSource::Prompt => {
                let value = rpassword::prompt_password(format!("PIN for {what}: "))
                    .map_err(|_| PinError::NoSource(what.to_owned()))?;
                Pin::new(value, what)
            }
        }
    }
}

/// The names of the environment variables the operator named as holding a
/// secret (`--token-pin-env`, `--ca-pin-env`, a card's PIN, PUK or
/// management key).
/// Kept for the whole process so that every child certmint starts leaves
/// them out of its environment: a child's environment is readable in
/// `/proc/<pid>/environ` and copied into its core files, and it is
/// inherited again by anything the child starts (a PKCS#11 module's helpers).
static SECRET_VARIABLES: Mutex<BTreeSet<OsString>> = Mutex::new(BTreeSet::new());

/// Records that the environment variable `name` holds a secret, so that no
/// child process inherits it (see [`secret_variables`]).
pub fn mark_secret_variable(name: &str) {
    // A poisoned set is still a set of names: a thread that panicked while
    // inserting left it whole or without that one name.
    let mut names = SECRET_VARIABLES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    names.insert(OsString::from(name));
}

/// The variables to leave out of a child's environment: every one marked
/// with [`mark_secret_variable`], and every one whose value is `secret`
/// (which catches a PIN the operator also keeps in a variable certmint was
/// not told about).
pub fn secret_variables(secret: Option<&Pin>) -> Vec<OsString> {
    let mut names = SECRET_VARIABLES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if let Some(pin) = secret {
        let value = std::ffi::OsStr::new(pin.expose());
        names.extend(
            std::env::vars_os()
                .filter(|(_, v)| v.as_os_str() == value)
                .map(|(k, _)| k),
        );
    }
    names.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_pin() {
        let pin = Pin::new("123456".into(), "t").unwrap();
        assert_eq!(format!("{pin:?}"), "Pin(***)");
        assert!(!format!("{:?}", PinSource::File("/p".into())).contains("123456"));
    }

    #[test]
    fn file_source_strips_the_newline_and_errors_hide_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        std::fs::write(&path, "98765\n").unwrap();
        assert_eq!(
            PinSource::File(path.clone()).read("t").unwrap().expose(),
            "98765"
        );
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            PinSource::File(path).read("t"),
            Err(PinError::Empty(_))
        ));
        let err = PinSource::File(dir.path().join("missing"))
            .read("t")
            .unwrap_err();
        assert!(
            err.to_string().contains("cannot read the PIN file"),
            "{err}"
        );
    }

    /// A variable the operator did not name is still left out of a child's
    /// environment when it holds the PIN. (Read-only: any variable of this
    /// process stands in for one holding a PIN.)
    #[test]
    fn a_variable_holding_the_pin_is_secret_whatever_its_name() {
        let Some((name, value)) = std::env::vars().find(|(_, v)| !v.is_empty()) else {
            return;
        };
        let pin = Pin::new(value, "t").unwrap();
        assert!(secret_variables(Some(&pin)).contains(&OsString::from(&name)));
    }

    #[test]
    fn choice_order() {
        assert_eq!(
            PinSource::choose(Some("/f".into()), Some("V")),
            PinSource::File("/f".into())
        );
        assert_eq!(
            PinSource::choose(None, Some("V")),
            PinSource::Env("V".into())
        );
        assert_eq!(PinSource::choose(None, None), PinSource::Prompt);
        assert!(secret_variables(None).contains(&OsString::from("V")));
        assert!(matches!(
            PinSource::Env("CERTMINT_NO_SUCH_VAR".into()).read("t"),
            Err(PinError::EnvMissing(_))
        ));
    }
}
