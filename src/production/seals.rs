//! Mali Mühür seals whose keys go into the company's own token: the seals
//! of an order (`hsm provision --order`), after the rule that a first run
//! finds every seal label free, and a seal without an order (`hsm
//! provision`), whose one-off order is made when its certificate's intent
//! is recorded. Both go through the one pipeline, with the same proving
//! key target. Seals on cards go through the card station
//! ([`crate::card::station`]).

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::key_target::card::CardInReader;
use super::key_target::hsm::HsmTarget;
use super::key_target::KeyTarget;
use super::pipeline::{Pipeline, Record};
use super::{Certified, ProduceError, Production, ProductionReport};
use crate::card::provision::{CardCredentials, CardError, Step};
use crate::card::Readers;
use crate::issue::{CertificateAuthority, IssueError};
use crate::journal::{Device, DeviceState, Intent, Journal, OrderId, OrderState, Target};
use crate::order::one_off::{OnRecordError, OneOff, OneOffSeal};
use crate::piv::{Algorithm, Slot};
use crate::pkcs11::recovery::{ids_labelled, label_in_use, remove_labelled};
use crate::pkcs11::token::lock;
use crate::pkcs11::{Pkcs11Error, Token};
use crate::profile::{Profile, Subject};
use crate::signer::KeyType;

/// Provisions every seal of `production`'s order (a paid Mali Mühür order
/// for the hsm target) in the company's `token`: intent before signing,
/// each seal proved in the token (read back, test signature), recovery of
/// an interrupted run, delivery.
pub fn provision_seals_on_token(
    production: &Production<'_>,
    journal: &Mutex<dyn Journal>,
    token: Arc<Token>,
) -> Result<ProductionReport, ProduceError> {
    let order = lock(journal).order(production.order)?;
    if order.state == OrderState::Paid {
        refuse_labels_in_use(production, journal, &token)?;
    }
    production.run(journal, &HsmTarget::proving(token))
}

/// Before an order's first run: its seal labels must be free on the
/// company's token. (Once production has started, objects carrying a
/// planned seal's label are what an interrupted run left, and recovery
/// removes them; before it, they would be a seal provisioned outside the
/// order, which must not be touched.)
fn refuse_labels_in_use(
    production: &Production<'_>,
    journal: &Mutex<dyn Journal>,
    token: &Token,
) -> Result<(), ProduceError> {
    let mut after = 0;
    loop {
        let page = lock(journal).pending_devices(production.order, after, 256)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.id;
        for device in &page {
            let token_err = |error| ProduceError::Token {
                device: device.name.to_string(),
                error,
            };
            if label_in_use(token, device.name.as_str()).map_err(token_err)? {
                return Err(token_err(Pkcs11Error::LabelExists {
                    token: token.label().to_owned(),
                    label: device.name.to_string(),
                }));
            }
        }
    }
}

/// Why a seal without an order was not provisioned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Refused or failed before a key was generated, or the pipeline failed
    /// with nothing of this run left in the token.
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// Failed after the key was generated and before the CA was asked to
    /// sign: the key was removed, and no order was made.
    #[error("{0}; the key generated for it was removed from the token")]
    KeyRemoved(Box<ProduceError>),
    /// The card or its reader refused or failed before the pipeline ran.
    #[error(transparent)]
    Card(#[from] CardError),
    /// Failed after the certificate's intent was recorded: the certificate,
    /// if signed, never reached a proved token, so it is void on record and
    /// the objects of this run were removed.
    #[error(
        "{error}; certificate {serial} may have been signed but is not in a proved token: \
         it is recorded as void (never delivered) and the key generated for it was removed \
         from the token; run again to take up the same seal"
    )]
    VoidInToken {
        /// The certificate serial, hex.
        serial: String,
        /// What failed.
        error: Box<SealError>,
    },
    /// Failed after the certificate's intent was recorded: the certificate,
    /// if signed, never reached a proved card, so it is void on record.
    #[error(
        "certificate {serial} may have been signed but is not on a proved card: it is recorded \
         as void (never delivered); run again with a card: {error}"
    )]
    VoidOnCard {
        /// The certificate serial, hex.
        serial: String,
        /// What failed.
        error: Box<SealError>,
    },
    /// The seal is proved in the token, but its record failed.
    #[error(transparent)]
    OnRecord(#[from] OnRecordError),
}

impl SealError {
    /// The kind of what failed.
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            SealError::Produce(e) => e.kind(),
            SealError::KeyRemoved(e) => e.kind(),
            SealError::Card(e) => e.kind(),
            SealError::VoidInToken { error, .. } | SealError::VoidOnCard { error, .. } => {
                error.kind()
            }
            SealError::OnRecord(e) => e.kind(),
        }
    }
}

/// A seal to provision in a company's token without an order.
#[derive(Debug, Clone, Copy)]
pub struct OneOffSealRequest<'a> {
    /// The company (a Mali Mühür subject).
    pub subject: &'a Subject,
    /// The key to generate.
    pub key_type: KeyType,
    /// Replace objects not on record that carry the seal's label, once the
    /// new seal is proved.
    pub replace: bool,
    /// Who asks (pays the one-off order; the audit log names them).
    pub operator: &'a str,
    /// The command, named as the one-off order's source.
    pub source: &'a str,
}

/// What was written to the token, proved, and put on record.
#[derive(Debug, Clone, Serialize)]
pub struct OneOffSealReport {
    /// The token label.
    pub token: String,
    /// The objects' label, the seal's `{VKN}SIGN{n}`.
    pub label: String,
    /// Their CKA_ID in hex (= the certificate's subjectKeyIdentifier).
    pub id: String,
    /// The certificate's serial number in hex.
    pub serial: String,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// Objects an earlier failed run of the same seal left, removed.
    pub removed_leftovers: u64,
    /// Objects that carried the label, replaced (`replace`).
    pub replaced_objects: u64,
    /// The checks the seal passed in the token (read back, test signature).
    pub checks: Vec<String>,
    /// The one-off order that holds the seal.
    pub order: i64,
}

/// The pipeline's record for a seal without an order: nothing before the
/// intent; the one-off order and the intent together just before the CA
/// signs, so that a run refused before (a taken label, a missing
/// mechanism, a lint) leaves no order behind.
struct OneOffRecord<'a> {
    journal: &'a Mutex<dyn Journal>,
    seal: Mutex<OneOffSeal>,
}

impl Record for OneOffRecord<'_> {
    /// The key goes on record with the intent; a run that fails before
    /// removes it from the token.
    fn record_key(&self, _device: &Device, _key_id_hex: &str) -> Result<(), ProduceError> {
        Ok(())
    }

    fn record_intents(&self, intents: &[Intent<'_>]) -> Result<(), ProduceError> {
        let mut seal = lock(&self.seal);
        for intent in intents {
            seal.record_intent(
                &mut *lock(self.journal),
                intent.tbs,
                intent.serial_hex,
                intent.key_note,
            )?;
        }
        Ok(())
    }

    /// No other producer knows a one-off order made by this run.
    fn confirm_lease(&self) -> Result<(), ProduceError> {
        Ok(())
    }
}

/// Provisions a seal of `request.subject` in the company's `token` without
/// an order: the company's next seal label (or the seal an earlier failed
/// one-off run left), its key generated in the token, then the pipeline of
/// an order's seals — prepare, lint, intent (with the one-off order, paid
/// at creation), sign, verify — the certificate imported beside the key
/// and proved (read back, test signature), and recorded issued.
///
/// Refused before anything is written: a key type the profile does not
/// accept, a label that objects not on record carry (unless
/// `request.replace`: then they are removed once the new seal is proved).
/// A failure after the key was generated removes what this run wrote to
/// the token; after the intent, the certificate is also recorded void.
pub fn provision_one_off_seal(
    journal: &Mutex<dyn Journal>,
    ca: &CertificateAuthority,
    profile: &Profile,
    token: Arc<Token>,
    request: &OneOffSealRequest<'_>,
) -> Result<OneOffSealReport, SealError> {
    if !profile.key_types.contains(&request.key_type) {
        return Err(ProduceError::Issue {
            device: "a seal".into(),
            error: IssueError::KeyNotAccepted {
                key_type: request.key_type,
                profile: profile.name,
                accepted: profile.key_types_text(),
            },
        }
        .into());
    }
    crate::revocation::check_issuing_ca_in_force(&*lock(journal), ca.certificate_der())
        .map_err(ProduceError::from)?;
    let (seal, device) = plan_one_off(
        &*lock(journal),
        request.subject,
        &OneOff {
            target: Target::Hsm,
            key_type: request.key_type,
            source: request.source,
            operator: request.operator,
            reissue: false,
        },
    )?;
    let label = seal.label().as_str().to_owned();
    let token_err = |error| ProduceError::Token {
        device: label.clone(),
        error,
    };
    // What carries the label before this run: what an earlier failed run
    // of the same seal left (removed now), or objects not on record (kept
    // unless replaced once the new seal is proved).
    let (removed_leftovers, before) = if seal.unfinished().is_some() {
        let removed = remove_labelled(&token, &label, &|_| true).map_err(&token_err)?;
        (removed, Vec::new())
    } else {
        (0, ids_labelled(&token, &label).map_err(&token_err)?)
    };
    if !before.is_empty() && !request.replace {
        return Err(token_err(Pkcs11Error::LabelExists {
            token: token.label().to_owned(),
            label: label.clone(),
        })
        .into());
    }
    let certified = Certified::Company(request.subject.clone());
    let pipeline = Pipeline {
        order: device.order,
        ca,
        profile,
        certified: &certified,
        key_type: request.key_type,
    };
    let target = HsmTarget::proving(token.clone());
    let record = OneOffRecord {
        journal,
        seal: Mutex::new(seal),
    };
    // Removes what this run wrote to the token (objects carrying the label
    // that were not there before), and voids the intent if one was recorded.
    let undo = |error: ProduceError| -> SealError {
        let removed =
            remove_labelled(&token, &label, &|id| !before.iter().any(|b| b == id)).unwrap_or(0);
        let seal = lock(&record.seal);
        match seal.intent_serial().map(str::to_owned) {
            Some(serial) => {
                let reason = format!(
                    "not provisioned: {}",
                    crate::text::one_line(&error.to_string())
                );
                if let Err(voiding) = seal.void(&mut *lock(journal), &reason) {
                    return SealError::Produce(voiding.into());
                }
                SealError::VoidInToken {
                    serial,
                    error: Box::new(error.into()),
                }
            }
            None if removed > 0 => SealError::KeyRemoved(Box::new(error)),
            None => SealError::Produce(error),
        }
    };
    let signed = match pipeline.sign_chunk(&record, &target, vec![device]) {
        Ok(mut signed) => match signed.pop() {
            Some(one) => one,
            None => {
                return Err(undo(ProduceError::Order {
                    order: OrderId(0),
                    reason: format!("seal {label}: the pipeline returned no certificate"),
                }))
            }
        },
        Err(failure) => return Err(undo(*failure.error)),
    };
    // The token is the seal's store; there is no delivery folder.
    if let Err(e) = target.store(
        Path::new(""),
        &signed.device,
        &signed.certificate_der,
        &signed.written,
    ) {
        return Err(undo(e));
    }
    let checks = target.take_last_proof().unwrap_or_default();
    let new_id = signed.written.id().to_vec();
    // On record first: the seal is proved in the token, and a failure to
    // remove the objects it replaces must not leave its intent open.
    let order = lock(&record.seal).record_issued(&mut *lock(journal), &signed.certificate_der)?;
    let replaced_objects = if before.is_empty() {
        0
    } else {
        remove_labelled(&token, &label, &|id| id != new_id.as_slice()).map_err(&token_err)?
    };
    Ok(OneOffSealReport {
        token: token.label().to_owned(),
        label,
        id: crate::pem::hex(&new_id),
        serial: signed.serial_hex,
        certificate_pem: crate::pem::certificate(&signed.certificate_der),
        removed_leftovers,
        replaced_objects,
        checks,
        order: order.0,
    })
}

/// Plans a seal of `subject` without an order: the seal (its label, or the
/// seal an earlier failed one-off run left) and the device the pipeline
/// takes — the seal's row when taken up, else one its one-off order will
/// hold (made with the intent: its row id and order, 0 until then, are
/// not used before).
fn plan_one_off(
    journal: &dyn Journal,
    subject: &Subject,
    how: &OneOff<'_>,
) -> Result<(OneOffSeal, Device), ProduceError> {
    let Subject::MaliMuhur { id, trade_name } = subject else {
        return Err(ProduceError::Order {
            order: OrderId(0),
            reason: "a seal certifies a company: give a Mali Mühür subject".into(),
        });
    };
    let seal = OneOffSeal::plan(journal, id, trade_name.as_str(), how)?;
    let device = match seal.unfinished() {
        Some(device) => Device {
            key_id: None,
            ..device.clone()
        },
        None => Device {
            id: 0,
            order: OrderId(0),
            name: seal.label().clone().into(),
            state: DeviceState::Planned,
            key_id: None,
        },
    };
    Ok((seal, device))
}

/// A seal to provision on a PIV card without an order.
#[derive(Clone, Copy)]
pub struct OneOffCardSealRequest<'a> {
    /// The company (a Mali Mühür subject).
    pub subject: &'a Subject,
    /// The reader holding the card.
    pub reader: &'a str,
    /// The slot the key goes into.
    pub slot: Slot,
    /// The key to generate on the card.
    pub algorithm: Algorithm,
    /// The card's management key and PIN (and PUK, for a PIN letter).
    pub credentials: &'a CardCredentials,
    /// Where the card's fresh PIN and PUK go (a new file, mode 0600).
    pub pin_letter: Option<&'a Path>,
    /// Overwrite a certificate in the slot that the journal does not hold.
    pub replace: bool,
    /// Who asks (pays the one-off order; the audit log names them).
    pub operator: &'a str,
    /// The command, named as the one-off order's source.
    pub source: &'a str,
}

/// What was written to the card, proved, and put on record.
#[derive(Debug, Clone, Serialize)]
pub struct OneOffCardSealReport {
    /// The reader.
    pub reader: String,
    /// The seal's label, `{VKN}SIGN{n}`.
    pub label: String,
    /// The slot.
    pub slot: String,
    /// The key type generated on the card.
    pub key_type: String,
    /// The certificate serial, hex.
    pub serial: String,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The PIN letter written, if one was asked for.
    pub pin_letter: Option<String>,
    /// The serial of a certificate not on record that the slot held and
    /// that was overwritten (`replace`).
    pub replaced: Option<String>,
    /// The checks the card passed (read back, test signature).
    pub checks: Vec<String>,
    /// The one-off order that holds the seal.
    pub order: i64,
}

/// Provisions a seal of `request.subject` on the PIV card in
/// `request.reader` without an order: the company's next seal label (or
/// the seal an earlier failed one-off run left), then the pipeline of an
/// order's seals with the card as key target — the card opened (one PIN
/// try) and its slot judged, the key generated on it, prepare, lint,
/// intent (with the one-off order, paid at creation), sign, verify, the
/// certificate written, read back and test-signed, the PIN letter — and
/// the certificate recorded issued.
///
/// A run refused before the intent leaves no order behind; one that fails
/// after records the certificate void (it never reached a proved card), and
/// the next run takes up the same seal.
pub fn provision_one_off_card_seal(
    journal: &Mutex<dyn Journal>,
    ca: &CertificateAuthority,
    profile: &Profile,
    readers: &Readers,
    request: &OneOffCardSealRequest<'_>,
) -> Result<OneOffCardSealReport, SealError> {
    let key_type = request.algorithm.key_type();
    if !profile.key_types.contains(&key_type) {
        return Err(CardError::KeyNotAccepted {
            profile: profile.name,
            key_type,
            accepted: profile.key_types_text(),
        }
        .into());
    }
    if let Some(letter) = request.pin_letter {
        if request.credentials.puk.is_none() {
            return Err(CardError::NoPuk.into());
        }
        if letter.exists() {
            return Err(CardError::LetterExists(letter.to_path_buf()).into());
        }
    }
    crate::revocation::check_issuing_ca_in_force(&*lock(journal), ca.certificate_der())
        .map_err(ProduceError::from)?;
    let (seal, device) = plan_one_off(
        &*lock(journal),
        request.subject,
        &OneOff {
            target: Target::Card,
            key_type,
            source: request.source,
            operator: request.operator,
            reissue: false,
        },
    )?;
    let label = seal.label().as_str().to_owned();
    let certified = Certified::Company(request.subject.clone());
    let pipeline = Pipeline {
        order: device.order,
        ca,
        profile,
        certified: &certified,
        key_type,
    };
    let record = OneOffRecord {
        journal,
        seal: Mutex::new(seal),
    };
    let mut step = Step::Select;
    let outcome = readers.with_card(request.reader, |client| {
        let card = CardInReader::new(
            client,
            request.credentials,
            request.slot,
            request.algorithm,
            request.reader,
            journal,
            ca.identity().name_der(),
            &|_| {},
        )
        .with_pin_letter(request.pin_letter)
        .replacing_unrecorded(request.replace);
        let signed = pipeline
            .sign_chunk(&record, &card, vec![device])
            .map_err(|failure| *failure.error)
            .and_then(|mut signed| {
                let one = signed.pop().ok_or_else(|| ProduceError::Order {
                    order: OrderId(0),
                    reason: format!("seal {label}: the pipeline returned no certificate"),
                })?;
                // Proved on the card by write-back; the store keeps the
                // pipeline's shape.
                card.store(
                    Path::new(""),
                    &one.device,
                    &one.certificate_der,
                    &one.written,
                )?;
                Ok(one)
            });
        step = card.step();
        Ok((signed, card.take_checks(), card.replaced()))
    });
    let failed = |error: SealError| -> SealError {
        let seal = lock(&record.seal);
        match seal.intent_serial().map(str::to_owned) {
            Some(serial) => {
                let reason = format!(
                    "not provisioned: {}",
                    crate::text::one_line(&error.to_string())
                );
                if let Err(voiding) = seal.void(&mut *lock(journal), &reason) {
                    return SealError::Produce(voiding.into());
                }
                SealError::VoidOnCard {
                    serial,
                    error: Box::new(error),
                }
            }
            None => error,
        }
    };
    let (signed, checks, replaced) = match outcome {
        Ok((Ok(signed), checks, replaced)) => (signed, checks, replaced),
        Ok((Err(error), _, _)) => return Err(failed(error.into())),
        Err(error) => return Err(failed(CardError::Card { step, error }.into())),
    };
    let order = lock(&record.seal).record_issued(&mut *lock(journal), &signed.certificate_der)?;
    Ok(OneOffCardSealReport {
        reader: request.reader.to_owned(),
        label,
        slot: request.slot.to_string(),
        key_type: key_type.to_string(),
        serial: signed.serial_hex,
        certificate_pem: crate::pem::certificate(&signed.certificate_der),
        pin_letter: request.pin_letter.map(|p| p.display().to_string()),
        replaced,
        checks,
        order: order.0,
    })
}
