//! The card operations of provisioning, which the card key target
//! ([`crate::production::key_target::card`]) runs inside the pipeline:
//! opening a card (one PIN try, management-key authentication), writing a
//! certificate beside its key, reading it back and verifying a test
//! signature made by the card; optionally a fresh random PIN and PUK,
//! written to a PIN letter for the customer. Everything runs inside the
//! caller's PC/SC transaction.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::issue::{IssueError, IssuedCertificate};
use crate::piv::client::{PivClient, PivError, RetryState, Transport};
use crate::piv::mgmt::ManagementKey;
use crate::piv::{key_reference, signing_input, Algorithm, Slot};
use crate::pkcs11::pin::Pin;
use crate::signer::verify_signature;

/// The factory PIN of PIV cards.
pub const FACTORY_PIN: &str = "123456";
/// The factory PUK of PIV cards.
pub const FACTORY_PUK: &str = "12345678";

/// The steps of provisioning one card, in order (for progress and errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// SELECT the PIV application, check the PIN (one VERIFY).
    Select,
    /// Management key authentication.
    Authenticate,
    /// Read what the slot holds already.
    Inspect,
    /// GENERATE ASYMMETRIC KEY PAIR on the card.
    GenerateKey,
    /// Build, lint, record the intent, sign.
    Issue,
    /// PUT DATA of the certificate.
    WriteCertificate,
    /// GET DATA, compared with what was written.
    ReadBack,
    /// VERIFY PIN and a test signature verified under the certificate.
    TestSignature,
    /// Fresh PIN and PUK, PIN letter.
    Credentials,
    /// Finishing a PIN and PUK change that a card left in the middle of.
    FinishSecrets,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Select => "selecting the PIV application",
            Step::Authenticate => "authenticating the management key",
            Step::Inspect => "reading the slot",
            Step::GenerateKey => "generating the key on the card",
            Step::Issue => "issuing the certificate",
            Step::WriteCertificate => "writing the certificate",
            Step::ReadBack => "reading the certificate back",
            Step::TestSignature => "making the test signature",
            Step::Credentials => "setting the new PIN and PUK",
            Step::FinishSecrets => "finishing an interrupted PIN and PUK change",
        })
    }
}

/// Why a card could not be provisioned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CardError {
    /// The card failed or left at `step`. (The message carries the error;
    /// it is not also a `source`, which `{:#}` would print a second time.)
    #[error("{step}: {error}")]
    Card {
        /// Where it happened.
        step: Step,
        /// What happened.
        error: PivError,
    },
    /// The CA refused or failed.
    #[error("{step}: {error}")]
    Issue {
        /// Where it happened.
        step: Step,
        /// What happened.
        error: IssueError,
    },
    /// Refused before the card was changed.
    #[error("{0}")]
    Refused(String),
    /// The profile does not accept the key type; the card was not touched.
    #[error("the {profile} profile does not accept {key_type} keys (accepted: {accepted})")]
    KeyNotAccepted {
        /// The profile.
        profile: crate::profile::ProfileName,
        /// The key type asked for.
        key_type: crate::signer::KeyType,
        /// The key types it accepts.
        accepted: String,
    },
    /// A PIN letter needs the card's current PUK, and none was named; the
    /// card was not touched.
    #[error("a PIN letter sets a new PUK too: give the card's current PUK (--card-puk-file or --card-puk-env)")]
    NoPuk,
    /// The PIN letter's file exists; the card was not touched.
    #[error("{} already exists; a PIN letter is never overwritten", .0.display())]
    LetterExists(PathBuf),
    /// What was written did not prove itself.
    #[error("check failed: {0}")]
    Check(String),
    /// The journal or the PIN letter could not be written.
    #[error("{0}")]
    Record(String),
}

impl CardError {
    /// What kind of failure this is: a wrapped error's own kind; a refusal
    /// before the card was changed is the card's refusal.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            CardError::Card { error, .. } => error.kind(),
            CardError::Issue { error, .. } => error.kind(),
            CardError::Refused(_) => ErrorKind::TokenRefused,
            CardError::KeyNotAccepted { .. } => ErrorKind::InvalidInput,
            CardError::NoPuk => ErrorKind::Usage,
            CardError::LetterExists(_) => ErrorKind::Failure,
            CardError::Check(_) | CardError::Record(_) => ErrorKind::Failure,
        }
    }
}

impl CardError {
    /// Whether the card left the reader (the device can be retried on another card).
    pub fn card_removed(&self) -> bool {
        matches!(
            self,
            CardError::Card {
                error: PivError::CardRemoved,
                ..
            }
        )
    }
}

/// How to talk to the cards of a run.
#[derive(Clone)]
pub struct CardCredentials {
    /// The cards' management key.
    pub management_key: ManagementKey,
    /// The cards' current PIN (needed for the test signature).
    pub pin: Pin,
    /// The cards' current PUK, needed only to set a new one.
    pub puk: Option<Pin>,
    /// The operator accepts the well-known factory management key and PIN.
    pub allow_factory_defaults: bool,
}

impl fmt::Debug for CardCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardCredentials")
            .field("management_key", &self.management_key)
            .field("allow_factory_defaults", &self.allow_factory_defaults)
            .finish_non_exhaustive()
    }
}

impl CardCredentials {
    /// Refuses factory secrets that would stay on the card, unless the
    /// operator overrode. A factory PIN that is replaced by a PIN letter is
    /// only used once, to change it, and is accepted.
    pub fn check_factory_defaults(&self, new_pin_letter: bool) -> Result<(), CardError> {
        if self.allow_factory_defaults {
            return Ok(());
        }
        if self.management_key.is_factory_default() {
            return Err(CardError::Refused(
                "the management key is the well-known factory key; set a card-specific key first, \
                 or pass --allow-factory-defaults for a test card"
                    .into(),
            ));
        }
        if !new_pin_letter && self.pin.expose() == FACTORY_PIN {
            return Err(CardError::Refused(
                "the PIN is the well-known factory PIN 123456 and would stay on the card; \
                 ask for a PIN letter (--pin-letter) or pass --allow-factory-defaults for a test card"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Opens the card for provisioning: SELECT, the PIN checked usable and
/// verified (one try, before anything is changed), the management key
/// authenticated. `step` hears each step as it starts.
pub fn open_card<T: Transport>(
    client: &mut PivClient<T>,
    credentials: &CardCredentials,
    step: &mut dyn FnMut(Step),
) -> Result<(), CardError> {
    let card = |step: Step| move |error: PivError| CardError::Card { step, error };
    client.select().map_err(card(Step::Select))?;
    // The PIN must be usable before anything is changed: a blocked PIN would
    // only show at the test signature, after the key was replaced.
    match client
        .retry_state(key_reference::PIN)
        .map_err(card(Step::Select))?
    {
        RetryState::Blocked => {
            return Err(CardError::Card {
                step: Step::Select,
                error: PivError::Blocked { what: "PIN" },
            })
        }
        RetryState::TriesLeft(_) | RetryState::Verified => {}
    }
    // A wrong PIN is found here, before the card is changed, at the cost of
    // one try; nothing more is tried.
    client
        .verify_pin(&credentials.pin)
        .map_err(card(Step::Select))?;

    step(Step::Authenticate);
    client
        .authenticate_management_key(&credentials.management_key)
        .map_err(card(Step::Authenticate))
}

/// Writes `certificate` to `slot`, reads it back, and has the card sign a
/// test message that must verify under the certificate's key (`spki`).
/// Returns the checks that passed.
pub fn write_and_prove<T: Transport>(
    client: &mut PivClient<T>,
    credentials: &CardCredentials,
    slot: Slot,
    algorithm: Algorithm,
    spki: &[u8],
    certificate: &IssuedCertificate,
    step: &mut dyn FnMut(Step),
) -> Result<Vec<String>, CardError> {
    let card = |step: Step| move |error: PivError| CardError::Card { step, error };
    let key_type = algorithm.key_type();
    let mut checks = Vec::new();
    step(Step::WriteCertificate);
    client
        .put_certificate(slot, certificate.der())
        .map_err(card(Step::WriteCertificate))?;

    step(Step::ReadBack);
    let read_back = client.get_certificate(slot).map_err(card(Step::ReadBack))?;
    if read_back.as_deref() != Some(certificate.der()) {
        return Err(CardError::Check(
            "the certificate read back from the card differs from the one written".into(),
        ));
    }
    checks.push("certificate read back from the card equals the one written".into());

    step(Step::TestSignature);
    let message = test_message(certificate);
    // The signature key is "PIN always" (SP 800-73-4 Part 1 Table 4b): one
    // VERIFY right before each signature.
    client
        .verify_pin(&credentials.pin)
        .map_err(card(Step::TestSignature))?;
    let signature = client
        .sign(slot, algorithm, &signing_input(algorithm, &message))
        .map_err(card(Step::TestSignature))?;
    verify_signature(spki, key_type.signature_algorithm(), &message, &signature)
        .map_err(|e| CardError::Check(format!("the card's test signature does not verify: {e}")))?;
    checks.push(format!(
        "test signature made by the card verifies under the certificate ({})",
        key_type.signature_algorithm()
    ));
    Ok(checks)
}

/// The message of the test signature: names the certificate, so a
/// signature cannot be replayed from another card.
fn test_message(certificate: &IssuedCertificate) -> Vec<u8> {
    format!(
        "certmint card test signature for certificate {}",
        certificate.serial_hex()
    )
    .into_bytes()
}

/// A random string of `len` decimal digits (PIV PINs are digits on most cards).
fn random_digits(len: usize) -> Result<String, CardError> {
    let mut digits = String::with_capacity(len);
    while digits.len() < len {
        let mut byte = [0u8; 1];
        aws_lc_rs::rand::fill(&mut byte)
            .map_err(|_| CardError::Record("the random number generator failed".into()))?;
        // 250 is the largest multiple of 10 below 256: reject above it so
        // every digit is equally likely.
        if byte[0] < 250 {
            digits.push(char::from(b'0' + byte[0] % 10));
        }
    }
    Ok(digits)
}

/// The length of the PINs and PUKs certmint draws: PIV takes a PIN of 6 to
/// 8 digits and a PUK of 8; the longest PIN is the hardest to guess.
pub const FRESH_SECRET_DIGITS: usize = 8;

/// A fresh random PIN and PUK for one card, from the operating system's
/// random number generator (through aws-lc-rs).
pub fn random_card_secrets() -> Result<(Pin, Pin), CardError> {
    let secret = |what: &str| -> Result<Pin, CardError> {
        Pin::new(random_digits(FRESH_SECRET_DIGITS)?, what)
            .map_err(|e| CardError::Record(e.to_string()))
    };
    Ok((secret("new PIN")?, secret("new PUK")?))
}

/// Sets `new_puk` (authorised by `current_puk`), then `new_pin`
/// (authorised by `current_pin`), then verifies the new PIN on the card.
/// The PUK goes first: a card that refuses it has changed nothing.
pub fn change_card_secrets<T: Transport>(
    client: &mut PivClient<T>,
    current_pin: &Pin,
    current_puk: &Pin,
    new_pin: &Pin,
    new_puk: &Pin,
) -> Result<(), CardError> {
    let card = |error: PivError| CardError::Card {
        step: Step::Credentials,
        error,
    };
    client
        .change_secret(key_reference::PUK, current_puk, new_puk)
        .map_err(card)?;
    client
        .change_secret(key_reference::PIN, current_pin, new_pin)
        .map_err(card)?;
    client.verify_pin(new_pin).map_err(card)
}

/// Sets a fresh PUK and PIN and writes them to the PIN letter. The letter is
/// written to a temporary file first, so the values are never lost: if the
/// card refuses, the letter is removed and the card keeps its old secrets.
pub fn set_fresh_credentials<T: Transport>(
    client: &mut PivClient<T>,
    credentials: &CardCredentials,
    current_puk: &Pin,
    path: &Path,
    certificate: &IssuedCertificate,
) -> Result<(), CardError> {
    let card = |error: PivError| CardError::Card {
        step: Step::Credentials,
        error,
    };
    let record = |e: std::io::Error| {
        CardError::Record(format!(
            "cannot write the PIN letter {}: {e}",
            path.display()
        ))
    };
    let (new_pin, new_puk) = random_card_secrets()?;
    let letter = zeroize::Zeroizing::new(format!(
        "certmint PIN letter\n\
         certificate serial: {}\n\
         PIN: {}\n\
         PUK: {}\n\
         Keep this letter apart from the card. The PIN unlocks the seal key; the PUK unblocks the PIN.\n",
        certificate.serial_hex(),
        new_pin.expose(),
        new_puk.expose()
    ));
    let temporary = path.with_extension("certmint-new");
    crate::ca::write_new_file(&temporary, letter.as_bytes(), 0o600)
        .map_err(|e| CardError::Record(e.to_string()))?;
    // The PUK first: if the card refuses it, nothing changed and the letter goes.
    if let Err(error) = client.change_secret(key_reference::PUK, current_puk, &new_puk) {
        let _ = std::fs::remove_file(&temporary);
        return Err(card(error));
    }
    if let Err(error) = client.change_secret(key_reference::PIN, &credentials.pin, &new_pin) {
        // The PUK is already new: keep the letter so that value is not lost.
        return Err(CardError::Record(format!(
            "the new PUK was set but the new PIN was refused ({error}); the PUK is in {} —              unblock or reset the PIN with it before shipping the card",
            temporary.display()
        )));
    }
    std::fs::rename(&temporary, path).map_err(record)
}

/// The PINs and PUKs a card can have after a change of its secrets
/// ([`change_card_secrets`]: the PUK first, then the PIN) was cut short:
/// before, between or during the two commands.
pub struct InterruptedChange<'a> {
    /// The PIN the card had before the change.
    pub old_pin: &'a Pin,
    /// The PUK the card had before the change.
    pub old_puk: &'a Pin,
    /// The PIN the change sets.
    pub new_pin: &'a Pin,
    /// The PUK the change sets.
    pub new_puk: &'a Pin,
}

/// Why an interrupted change could not be finished: the card is in none of
/// the states the change can leave, or finding out would risk blocking it.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    /// The card failed or left.
    #[error(transparent)]
    Card(#[from] PivError),
    /// Nothing was risked: the card's state is not one the change leaves,
    /// or the PIN has too few tries left to try a PIN that may be wrong.
    #[error("{0}")]
    Unknown(String),
}

/// Brings a card whose PIN and PUK change was interrupted to the new PIN
/// and PUK, spending no try that could block a secret.
///
/// The change sets the PUK first, then the PIN, so the card has the old PIN
/// (with the old or the new PUK) or the new PIN (then with the new PUK).
/// The PIN's retry counter is read first (no try spent); a PIN is only
/// tried while the counter shows at least two tries, so a wrong one never
/// blocks it, and the right one restores the counter. The old PIN is tried
/// first: a card is most often pulled before its change began. With the
/// old PIN, the PUK is changed from the old to the new one; a card that
/// refuses the old PUK has the new one already, which a change from the new
/// PUK to itself confirms (restoring the PUK's counter, which PIV cannot
/// read). Then the PIN is changed and the new PIN verified.
pub fn finish_interrupted_change<T: Transport>(
    client: &mut PivClient<T>,
    change: &InterruptedChange<'_>,
) -> Result<(), FinishError> {
    client.select()?;
    let mut opened_with_new_pin = None;
    for (is_new, pin) in [(false, change.old_pin), (true, change.new_pin)] {
        match client.retry_state(key_reference::PIN)? {
            RetryState::Blocked => {
                return Err(FinishError::Unknown(
                    "its PIN is blocked".into(),
                ))
            }
            RetryState::TriesLeft(tries) if tries < 2 => {
                return Err(FinishError::Unknown(format!(
                    "its PIN has {tries} try left and may be either of the two PINs the journal holds \
                     for it; certmint does not try a PIN that could block it"
                )))
            }
            RetryState::TriesLeft(_) | RetryState::Verified => {}
        }
        match client.verify_pin(pin) {
            Ok(()) => {
                opened_with_new_pin = Some(is_new);
                break;
            }
            Err(PivError::WrongSecret { .. }) => {}
            Err(other) => return Err(other.into()),
        }
    }
    match opened_with_new_pin {
        None => Err(FinishError::Unknown(
            "it refuses both PINs the journal holds for it (its old and its new one)".into(),
        )),
        // The PIN is changed last: a card with the new PIN has the new PUK.
        Some(true) => Ok(()),
        Some(false) => {
            let puk_blocked = || FinishError::Unknown("its PUK is blocked".into());
            match client.change_secret(key_reference::PUK, change.old_puk, change.new_puk) {
                Ok(()) => {}
                Err(PivError::WrongSecret { .. }) => {
                    match client.change_secret(key_reference::PUK, change.new_puk, change.new_puk)
                    {
                        Ok(()) => {}
                        Err(PivError::WrongSecret { tries_left, .. }) => {
                            return Err(FinishError::Unknown(format!(
                                "it refuses both PUKs the journal holds for it ({tries_left} PUK tries left)"
                            )))
                        }
                        Err(PivError::Blocked { .. }) => return Err(puk_blocked()),
                        Err(other) => return Err(other.into()),
                    }
                }
                Err(PivError::Blocked { .. }) => return Err(puk_blocked()),
                Err(other) => return Err(other.into()),
            }
            client.change_secret(key_reference::PIN, change.old_pin, change.new_pin)?;
            client.verify_pin(change.new_pin)?;
            Ok(())
        }
    }
}
