//! The card target: a key generated on a PIV card through PC/SC, its
//! certificate written to the slot, read back, and a test signature by the
//! card verified under it. One [`CardInReader`] is the card in one reader
//! for the length of one PC/SC transaction; the card station
//! ([`crate::card::station`]) schedules the readers and hands each card to
//! the pipeline for one device.

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::sync::Mutex;

use der::{Decode, Encode};

use super::{DeviceKey, KeyTarget, TargetRun};
use crate::card::provision::{
    change_card_secrets, finish_interrupted_change, open_card, random_card_secrets,
    set_fresh_credentials, write_and_prove, CardCredentials, CardError, FinishError,
    InterruptedChange, Step,
};
use crate::issue::IssuedCertificate;
use crate::journal::{Device, HeldCardSecrets, Journal, Target};
use crate::pem::hex;
use crate::piv::client::{PivClient, PivError, Transport};
use crate::piv::{Algorithm, Slot};
use crate::pkcs11::pin::Pin;
use crate::pkcs11::token::lock;
use crate::production::pipeline::Record;
use crate::production::ProduceError;
use crate::signer::KeyType;

/// Card orders are produced by the card station: at the level of a run,
/// the card target has nothing to recover beyond the journal's intents
/// (a card carrying a voided certificate is overwritten when it comes
/// back) and delivers no key files.
pub struct CardRun {
    /// Each card gets its own random PIN and PUK: the delivery writes the
    /// PIN letter manifest, which the purge deletes.
    pub fresh_secrets: bool,
}

impl TargetRun for CardRun {
    fn kind(&self) -> Target {
        Target::Card
    }

    fn delivers_pin_letters(&self) -> bool {
        self.fresh_secrets
    }
}

/// The card in one reader, for one transaction.
pub struct CardInReader<'a, T: Transport> {
    client: RefCell<&'a mut PivClient<T>>,
    credentials: &'a CardCredentials,
    slot: Slot,
    algorithm: Algorithm,
    reader: &'a str,
    journal: &'a Mutex<dyn Journal>,
    /// The issuing CA's name (DER), to tell its certificates from others.
    ca_name_der: &'a [u8],
    step: Cell<Step>,
    on_step: &'a dyn Fn(Step),
    pin_letter: Option<&'a Path>,
    /// With an operator: after the proof the card gets a fresh random PIN
    /// and PUK, held by the journal (recorded by this operator) before
    /// they are set.
    fresh_secrets_by: Option<&'a str>,
    /// The PIN and PUK the card has: the run's, or those the journal holds
    /// for the certificate the card came back with.
    current: RefCell<Option<CardCredentials>>,
    /// Overwrite a certificate the journal does not hold (this CA's,
    /// unknown here, or another issuer's) instead of refusing the card.
    replace_unrecorded: bool,
    /// What a certificate the slot held and that was overwritten was.
    replaced: RefCell<Option<String>>,
    /// The checks the card passed, for a report of one card.
    checks: RefCell<Vec<String>>,
}

impl<'a, T: Transport> CardInReader<'a, T> {
    /// The card `client` talks to, in `reader`, its key going to `slot`;
    /// `on_step` hears each step as it starts. `journal` judges a
    /// certificate the slot holds already.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: &'a mut PivClient<T>,
        credentials: &'a CardCredentials,
        slot: Slot,
        algorithm: Algorithm,
        reader: &'a str,
        journal: &'a Mutex<dyn Journal>,
        ca_name_der: &'a [u8],
        on_step: &'a dyn Fn(Step),
    ) -> Self {
        Self {
            client: RefCell::new(client),
            credentials,
            slot,
            algorithm,
            reader,
            journal,
            ca_name_der,
            step: Cell::new(Step::Select),
            on_step,
            pin_letter: None,
            fresh_secrets_by: None,
            current: RefCell::new(None),
            replace_unrecorded: false,
            replaced: RefCell::new(None),
            checks: RefCell::new(Vec::new()),
        }
    }

    /// A certificate in the slot that the journal does not hold is
    /// overwritten instead of refused (`card provision --replace`). One
    /// the journal holds is judged as always: void is overwritten, valid
    /// refused.
    pub fn replacing_unrecorded(mut self, replace: bool) -> Self {
        self.replace_unrecorded = replace;
        self
    }

    /// The certificate the slot held that this card's run overwrote.
    pub fn replaced(&self) -> Option<String> {
        self.replaced.borrow().clone()
    }

    /// The checks the card passed, taken.
    pub fn take_checks(&self) -> Vec<String> {
        self.checks.take()
    }

    /// After the proof, the card gets a fresh random PIN and PUK, written
    /// to the new file `pin_letter` (mode 0600); the credentials must hold
    /// the card's current PUK.
    pub fn with_pin_letter(mut self, pin_letter: Option<&'a Path>) -> Self {
        self.pin_letter = pin_letter;
        self
    }

    /// After the proof, the card gets a fresh random PIN and PUK, held by
    /// the journal (recorded by `operator`) before they are set on the
    /// card; the credentials must hold the cards' current PUK. `None`: the
    /// card keeps the PIN and PUK it has.
    pub fn with_fresh_secrets(mut self, operator: Option<&'a str>) -> Self {
        self.fresh_secrets_by = operator;
        self
    }

    /// The step under way (or where it failed).
    pub fn step(&self) -> Step {
        self.step.get()
    }

    fn enter(&self, step: Step) {
        self.step.set(step);
        (self.on_step)(step);
    }

    /// The PIN and PUK of the card in the reader: those the journal holds
    /// for the certificate in its slot (a card that left after its fresh
    /// secrets were recorded, and came back), else the run's; with the
    /// certificate whose secrets they are. Reading a certificate needs no
    /// PIN, so no try is spent. A card that left in the middle of its
    /// change is first brought to its new PIN and PUK
    /// ([`finish_interrupted_change`]); one the journal no longer holds a
    /// PIN for, or that cannot be brought to a known state, is refused
    /// without a try of a PIN certmint is not sure of.
    fn secrets_of_card(
        &self,
        client: &mut PivClient<T>,
        operator: &str,
    ) -> Result<(CardCredentials, Option<String>), CardError> {
        let card = |error: PivError| CardError::Card {
            step: Step::Select,
            error,
        };
        let run = || Ok((self.credentials.clone(), None));
        client.select().map_err(card)?;
        let Some(existing) = client.get_certificate(self.slot).map_err(card)? else {
            return run();
        };
        let Ok(parsed) = x509_cert::Certificate::from_der(&existing) else {
            // Judged (and refused) once the card is open.
            return run();
        };
        let serial = hex(parsed.tbs_certificate().serial_number().as_bytes());
        // Only a certificate the journal voided brings its card's secrets:
        // a delivered certificate is public, and a card presenting a copy
        // of it must not be sent its real card's PIN.
        let journal = lock(self.journal);
        let voided = journal
            .certificate_by_serial(&serial)
            .map_err(|e| CardError::Record(e.to_string()))?
            .is_some_and(|record| record.status == "void");
        let held = if voided {
            journal
                .card_secrets_held(&serial)
                .map_err(|e| CardError::Record(e.to_string()))?
        } else {
            None
        };
        drop(journal);
        let with = |pin: Pin, puk: Pin| CardCredentials {
            pin,
            puk: Some(puk),
            ..self.credentials.clone()
        };
        let refuse = |why: String| {
            CardError::Refused(format!(
                "the card in reader {:?} (void certificate {serial}) {why}. Take it out and set it \
                 aside: it carries no valid certificate, and certmint tries no PIN it is not sure of; \
                 reset it to its factory state with the card vendor's tool before it is used again",
                self.reader
            ))
        };
        match held {
            None => run(),
            Some(HeldCardSecrets::Set(secrets)) => {
                Ok((with(secrets.pin, secrets.puk), Some(serial)))
            }
            Some(HeldCardSecrets::Erased) => Err(refuse(
                "left the station long ago and the purge erased its PIN and PUK from the journal"
                    .into(),
            )),
            Some(HeldCardSecrets::Pending {
                new,
                old_pin,
                old_puk,
            }) => {
                self.enter(Step::FinishSecrets);
                let change = InterruptedChange {
                    old_pin: &old_pin,
                    old_puk: &old_puk,
                    new_pin: &new.pin,
                    new_puk: &new.puk,
                };
                match finish_interrupted_change(client, &change) {
                    Ok(()) => {}
                    Err(FinishError::Card(error)) => {
                        return Err(CardError::Card {
                            step: Step::FinishSecrets,
                            error,
                        })
                    }
                    Err(FinishError::Unknown(why)) => {
                        return Err(refuse(format!(
                            "left in the middle of its PIN and PUK change, and {why}"
                        )))
                    }
                }
                lock(self.journal)
                    .confirm_card_secrets(&serial, operator)
                    .map_err(|e| CardError::Record(e.to_string()))?;
                Ok((with(new.pin, new.puk), Some(serial)))
            }
        }
    }

    /// Judges what the slot holds already: a certificate voided in the
    /// journal is overwritten; one valid in the journal is refused, so no
    /// device ever ends with two valid certificates; one of this CA the
    /// journal does not know, or another issuer's, is refused unless
    /// [`Self::replacing_unrecorded`].
    fn judge_existing(&self, certificate: &[u8]) -> Result<(), CardError> {
        let refuse = |why: String| CardError::Refused(why);
        let parsed = x509_cert::Certificate::from_der(certificate)
            .map_err(|_| refuse("the card's slot holds data that is not a certificate".into()))?;
        let serial = hex(parsed.tbs_certificate().serial_number().as_bytes());
        let issuer = parsed
            .tbs_certificate()
            .issuer()
            .to_der()
            .map_err(|e| refuse(e.to_string()))?;
        let record = lock(self.journal)
            .certificate_by_serial(&serial)
            .map_err(|e| CardError::Record(e.to_string()))?;
        match record {
            Some(record) if record.status == "void" => Ok(()),
            Some(record) => Err(refuse(format!(
                "the slot already holds a certificate valid in the journal: {serial} of device {} (order {}); use a blank card",
                record.device_serial, record.order
            ))),
            None if self.replace_unrecorded => {
                *self.replaced.borrow_mut() = Some(serial);
                Ok(())
            }
            None if issuer == self.ca_name_der => Err(refuse(format!(
                "the card carries certificate {serial} of this CA that the journal does not know"
            ))),
            None => Err(refuse(format!(
                "the card carries a certificate of another issuer (serial {serial}); use a blank card"
            ))),
        }
    }
}

/// A key generated on the card: its public key.
pub struct CardKey {
    spki: Vec<u8>,
}

impl DeviceKey for CardKey {
    fn spki(&self) -> &[u8] {
        &self.spki
    }
}

fn card_error(device: &Device) -> impl Fn(CardError) -> ProduceError + '_ {
    move |error| ProduceError::Card {
        device: device.name.to_string(),
        error,
    }
}

impl<T: Transport> TargetRun for CardInReader<'_, T> {
    fn kind(&self) -> Target {
        Target::Card
    }
}

impl<T: Transport> KeyTarget for CardInReader<'_, T> {
    type Key = CardKey;
    type Written = ();

    fn key_note(&self) -> String {
        format!(
            "key generated on the PIV card in reader {:?}, slot {}",
            self.reader, self.slot
        )
    }

    /// Opens the card (PIN checked, management key authenticated), judges
    /// what its slot holds, and generates the key in the slot.
    fn generate(
        &self,
        _record: &dyn Record,
        device: &Device,
        key_type: KeyType,
    ) -> Result<CardKey, ProduceError> {
        let fail = card_error(device);
        if key_type != self.algorithm.key_type() {
            return Err(fail(CardError::Refused(format!(
                "the order's {key_type} keys are not the card's {}",
                self.algorithm.key_type()
            ))));
        }
        let mut client = self.client.borrow_mut();
        self.enter(Step::Select);
        let (credentials, held_for) = match self.fresh_secrets_by {
            Some(operator) => self.secrets_of_card(&mut client, operator).map_err(&fail)?,
            None => (self.credentials.clone(), None),
        };
        open_card(&mut client, &credentials, &mut |step| self.enter(step))
            .map_err(|error| match (error, &held_for) {
                // The journal's PIN for this one card: wrong only on this
                // card, which is refused; the station goes on.
                (
                    CardError::Card {
                        error: PivError::WrongSecret { tries_left, .. },
                        ..
                    },
                    Some(serial),
                ) => CardError::Refused(format!(
                    "the card in reader {:?} refuses the PIN the journal holds for it (void \
                     certificate {serial}; {tries_left} tries left, certmint does not try again): \
                     take it out and set it aside",
                    self.reader
                )),
                (error, _) => error,
            })
            .map_err(&fail)?;
        *self.current.borrow_mut() = Some(credentials);
        let card = |step: Step| move |error: PivError| CardError::Card { step, error };
        self.enter(Step::Inspect);
        if let Some(existing) = client
            .get_certificate(self.slot)
            .map_err(card(Step::Inspect))
            .map_err(&fail)?
        {
            self.judge_existing(&existing).map_err(&fail)?;
        }
        self.enter(Step::GenerateKey);
        let spki = client
            .generate_key(self.slot, self.algorithm)
            .map_err(card(Step::GenerateKey))
            .map_err(&fail)?;
        self.enter(Step::Issue);
        Ok(CardKey { spki })
    }

    /// Writes the certificate to the slot, reads it back and has the card
    /// make a test signature that verifies under it; then, with a PIN
    /// letter, sets the card's fresh PIN and PUK.
    fn write_back(
        &self,
        device: &Device,
        key: CardKey,
        certificate: &IssuedCertificate,
    ) -> Result<(), ProduceError> {
        let mut client = self.client.borrow_mut();
        let current = self.current.borrow();
        let credentials = current.as_ref().unwrap_or(self.credentials);
        // With fresh secrets: drawn and held by the journal as pending,
        // with the PIN and PUK the card has now, before the certificate
        // goes on the card. A card that leaves from here on carries either
        // its old certificate (whose secrets the journal holds) or this one,
        // and its PIN and PUK are among those the journal holds for it.
        let fresh = match self.fresh_secrets_by {
            Some(operator) => {
                let Some(current_puk) = &credentials.puk else {
                    return Err(card_error(device)(CardError::NoPuk));
                };
                let (pin, puk) = random_card_secrets().map_err(card_error(device))?;
                lock(self.journal)
                    .record_pending_card_secrets(
                        device,
                        &certificate.serial_hex(),
                        self.reader,
                        (&pin, &puk),
                        (&credentials.pin, current_puk),
                        operator,
                    )
                    .map_err(|e| card_error(device)(CardError::Record(e.to_string())))?;
                Some((operator, current_puk, pin, puk))
            }
            None => None,
        };
        let mut checks = vec![format!(
            "key generated on the card in slot {} ({}); the certificate certifies it",
            self.slot,
            self.algorithm.key_type()
        )];
        checks.extend(
            write_and_prove(
                &mut client,
                credentials,
                self.slot,
                self.algorithm,
                &key.spki,
                certificate,
                &mut |step| self.enter(step),
            )
            .map_err(card_error(device))?,
        );
        *self.checks.borrow_mut() = checks;
        if let Some((operator, current_puk, pin, puk)) = fresh {
            self.enter(Step::Credentials);
            change_card_secrets(&mut client, &credentials.pin, current_puk, &pin, &puk)
                .map_err(card_error(device))?;
            lock(self.journal)
                .confirm_card_secrets(&certificate.serial_hex(), operator)
                .map_err(|e| card_error(device)(CardError::Record(e.to_string())))?;
            self.checks.borrow_mut().push(
                "fresh random PIN and PUK set, held by the journal for the PIN letters; the new PIN verifies on the card"
                    .into(),
            );
            return Ok(());
        }
        match (self.pin_letter, &self.credentials.puk) {
            (Some(letter), Some(puk)) => {
                self.enter(Step::Credentials);
                set_fresh_credentials(&mut client, self.credentials, puk, letter, certificate)
                    .map_err(card_error(device))?;
                self.checks
                    .borrow_mut()
                    .push("fresh random PIN and PUK set; PIN letter written (mode 0600)".into());
                Ok(())
            }
            (Some(_), None) => Err(card_error(device)(CardError::Refused(
                "a PIN letter sets a new PUK too: give the card's current PUK".into(),
            ))),
            (None, _) => Ok(()),
        }
    }

    /// Proved on the card by write-back: nothing more to make durable.
    fn store(
        &self,
        _folder: &Path,
        _device: &Device,
        _certificate_der: &[u8],
        _written: &(),
    ) -> Result<(), ProduceError> {
        Ok(())
    }
}
