//! PKCS#11: CA keys in an HSM, and keys and certificates provisioned into a
//! customer's token. FFI stays inside the `cryptoki` crate.
//!
//! - [`uri`]: RFC 7512 key references; [`pin`]: where PINs come from.
//! - [`token`]: one module context and one login per token per process, a
//!   session pool that heals (replaces dead sessions, re-logs in once).
//! - [`keys`]: finding keys, reading public keys, generating key pairs,
//!   importing certificates.
//! - [`signer`]: a token key behind the [`crate::signer::Signer`] trait.
//! - [`probe`]: the on-site HSM session's preflight; [`proof`]: a seal
//!   read back and test-signed in its token.

pub mod keys;
pub mod list;
pub mod pin;
pub mod probe;
pub mod proof;
pub mod recovery;
pub mod registry;
pub mod session_process;
pub mod signer;
pub mod token;
pub mod uri;

pub use pin::{Pin, PinError, PinSource};
pub use session_process::SessionProcesses;
pub use signer::Pkcs11Signer;
pub use token::Token;
pub use uri::{Pkcs11Uri, UriError};

use cryptoki::error::{Error as CkError, RvError};

/// A PKCS#11 return code as the standard names it, e.g. `CKR_PIN_INCORRECT`.
pub fn ckr_name(rv: &RvError) -> String {
    let debug = format!("{rv:?}");
    let mut name = String::from("CKR_");
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

/// Why a PKCS#11 operation failed. Messages name the token, the PKCS#11
/// function and its CKR code; never a PIN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs11Error {
    /// A bad `pkcs11:` URI.
    #[error(transparent)]
    Uri(#[from] UriError),
    /// No PIN could be read.
    #[error(transparent)]
    Pin(#[from] PinError),
    /// The module could not be loaded or initialised.
    #[error("PKCS#11 module {}: {}", crate::text::quoted(.path), crate::text::escaped(.reason))]
    Module {
        /// The module path.
        path: String,
        /// What failed.
        reason: String,
    },
    /// No module named, and p11-kit's proxy, the default, is not installed.
    #[error("no PKCS#11 module named: give module-path=/path/to/lib.so or module-name=NAME in the URI (registered with p11-kit here: {registered}), or set CERTMINT_PKCS11_MODULE; p11-kit's proxy ({proxy}, package p11-kit-modules), the default, is not installed")]
    NoModule {
        /// The names p11-kit has registered, or "none".
        registered: String,
        /// Where the proxy would be.
        proxy: String,
    },
    /// No token matches the URI.
    #[error("no token matches {wanted}; tokens present: {}", crate::text::escaped(.present))]
    TokenNotFound {
        /// The URI.
        wanted: String,
        /// Labels of the tokens that are present.
        present: String,
    },
    /// More than one token matches.
    #[error("{count} tokens match {wanted}; name it by serial=")]
    AmbiguousToken {
        /// The URI.
        wanted: String,
        /// How many matched.
        count: usize,
    },
    /// The PIN was refused. No further login is attempted in this process.
    #[error("wrong PIN for token {} (C_Login: {ckr}); stopped after this one attempt so as not to use up the token's retry counter", crate::text::quoted(.token))]
    WrongPin {
        /// The token label.
        token: String,
        /// The return code.
        ckr: String,
    },
    /// The PIN is locked.
    #[error("the user PIN of token {} is locked (C_Login: CKR_PIN_LOCKED)", crate::text::quoted(.token))]
    PinLocked {
        /// The token label.
        token: String,
    },
    /// No key matches the URI.
    #[error("no private key matches {0}")]
    KeyNotFound(String),
    /// More than one key matches.
    #[error("{count} private keys match {uri}; name it by object= and id=")]
    AmbiguousKey {
        /// The URI.
        uri: String,
        /// How many matched.
        count: usize,
    },
    /// A private key without a public key object beside it.
    #[error("private key {0} has no public key object with the same CKA_ID; certmint needs it to check signatures")]
    NoPublicKey(String),
    /// A label we would write is already taken.
    #[error("token {} already holds objects labelled {}; nothing was written", crate::text::quoted(.token), crate::text::quoted(.label))]
    LabelExists {
        /// The token label.
        token: String,
        /// The taken label.
        label: String,
    },
    /// The token lacks a mechanism the operation needs.
    #[error("token {} does not support {mechanism}; nothing was written", crate::text::quoted(.token))]
    UnsupportedMechanism {
        /// The token label.
        token: String,
        /// The missing mechanism.
        mechanism: String,
    },
    /// The token or device went away: stop cleanly, resume later.
    #[error(
        "token {} is gone ({function}: {ckr}); the work stopped cleanly and can be resumed",
        crate::text::quoted(.token)
    )]
    TokenGone {
        /// The token label.
        token: String,
        /// The function that saw it.
        function: String,
        /// The return code.
        ckr: String,
    },
    /// Any other failed call.
    #[error("token {}: {function} failed: {ckr}", crate::text::quoted(.token))]
    Call {
        /// The token label.
        token: String,
        /// The PKCS#11 function.
        function: String,
        /// The return code (or the binding's error).
        ckr: String,
    },
    /// A key the token holds is not one certmint can use.
    #[error("token {}: {reason}", crate::text::quoted(.token))]
    BadKey {
        /// The token label.
        token: String,
        /// What is wrong.
        reason: String,
    },
    /// A session process (see [`session_process`]) could not be started or
    /// stopped answering.
    #[error("{uri}: {reason}")]
    SessionProcess {
        /// The key's URI.
        uri: String,
        /// What happened.
        reason: String,
    },
    /// Provisioning proved something wrong after writing; see the message.
    #[error("verification of the provisioned objects failed: {0}")]
    Verification(String),
}

impl Pkcs11Error {
    /// What the token refused is [`TokenRefused`](crate::error::ErrorKind::TokenRefused);
    /// a module, a token or a key that is not there or not usable is a failure.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            Pkcs11Error::Uri(e) => e.kind(),
            Pkcs11Error::Pin(e) => e.kind(),
            // The module is named by an argument (or its absence).
            Pkcs11Error::NoModule { .. } => ErrorKind::Usage,
            Pkcs11Error::WrongPin { .. }
            | Pkcs11Error::PinLocked { .. }
            | Pkcs11Error::TokenGone { .. }
            | Pkcs11Error::LabelExists { .. }
            | Pkcs11Error::UnsupportedMechanism { .. } => ErrorKind::TokenRefused,
            Pkcs11Error::Module { .. }
            | Pkcs11Error::TokenNotFound { .. }
            | Pkcs11Error::AmbiguousToken { .. }
            | Pkcs11Error::KeyNotFound(_)
            | Pkcs11Error::AmbiguousKey { .. }
            | Pkcs11Error::NoPublicKey(_)
            | Pkcs11Error::Call { .. }
            | Pkcs11Error::BadKey { .. }
            | Pkcs11Error::SessionProcess { .. }
            | Pkcs11Error::Verification(_) => ErrorKind::Failure,
        }
    }
}

impl Pkcs11Error {
    /// Wraps a cryptoki error from a call on `token`.
    pub(crate) fn call(token: &str, error: &CkError) -> Self {
        match error {
            CkError::Pkcs11(rv, function) => {
                let (ckr, function) = (ckr_name(rv), format!("{function:?}"));
                match recovery(error) {
                    Recovery::Stop => Pkcs11Error::TokenGone {
                        token: token.to_owned(),
                        function,
                        ckr,
                    },
                    _ => Pkcs11Error::Call {
                        token: token.to_owned(),
                        function,
                        ckr,
                    },
                }
            }
            other => Pkcs11Error::Call {
                token: token.to_owned(),
                function: "cryptoki".into(),
                ckr: other.to_string(),
            },
        }
    }
}

/// What to do after a failed call on a pooled session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The session is dead: drop it and open a new one.
    ReplaceSession,
    /// The login was lost: log in again, once.
    Relogin,
    /// The key handle went stale: look the key up again, once.
    RefindKey,
    /// The token or device is gone: stop, leaving resumable state.
    Stop,
    /// Anything else: report it.
    Fail,
}

/// The recovery for an error, by its CKR code.
pub fn recovery(error: &CkError) -> Recovery {
    match error {
        CkError::Pkcs11(rv, _) => match rv {
            RvError::SessionHandleInvalid | RvError::SessionClosed => Recovery::ReplaceSession,
            RvError::UserNotLoggedIn => Recovery::Relogin,
            RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid => Recovery::RefindKey,
            RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::DeviceError
            | RvError::TokenNotRecognized => Recovery::Stop,
            _ => Recovery::Fail,
        },
        _ => Recovery::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki::context::Function;

    fn err(rv: RvError) -> CkError {
        CkError::Pkcs11(rv, Function::Sign)
    }

    #[test]
    fn ckr_names_follow_the_standard() {
        assert_eq!(ckr_name(&RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(
            ckr_name(&RvError::UserNotLoggedIn),
            "CKR_USER_NOT_LOGGED_IN"
        );
        assert_eq!(
            ckr_name(&RvError::SessionHandleInvalid),
            "CKR_SESSION_HANDLE_INVALID"
        );
    }

    #[test]
    fn every_healing_code_maps_to_its_recovery() {
        assert_eq!(
            recovery(&err(RvError::SessionHandleInvalid)),
            Recovery::ReplaceSession
        );
        assert_eq!(
            recovery(&err(RvError::SessionClosed)),
            Recovery::ReplaceSession
        );
        assert_eq!(recovery(&err(RvError::UserNotLoggedIn)), Recovery::Relogin);
        assert_eq!(
            recovery(&err(RvError::KeyHandleInvalid)),
            Recovery::RefindKey
        );
        assert_eq!(
            recovery(&err(RvError::ObjectHandleInvalid)),
            Recovery::RefindKey
        );
        assert_eq!(recovery(&err(RvError::DeviceRemoved)), Recovery::Stop);
        assert_eq!(recovery(&err(RvError::TokenNotPresent)), Recovery::Stop);
        assert_eq!(recovery(&err(RvError::DeviceError)), Recovery::Stop);
        assert_eq!(recovery(&err(RvError::PinIncorrect)), Recovery::Fail);
        assert_eq!(recovery(&err(RvError::MechanismInvalid)), Recovery::Fail);
    }

    #[test]
    fn a_removed_token_is_reported_as_resumable() {
        let e = Pkcs11Error::call("ca", &err(RvError::DeviceRemoved));
        assert!(matches!(e, Pkcs11Error::TokenGone { .. }));
        assert!(e.to_string().contains("can be resumed"), "{e}");
        assert!(e.to_string().contains("CKR_DEVICE_REMOVED"), "{e}");
    }
}
