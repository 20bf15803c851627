//! The card station: one worker per reader over an order whose keys go on
//! PIV cards. Each worker waits for a card (PC/SC status change), takes the
//! next device of the order, provisions the card, records it, and asks for
//! the card to be taken out; then the next.
//!
//! Exactly once, with cards that can be pulled at any moment: the intent is
//! durable before the CA signs; a card that leaves before its certificate is
//! written, read back and test-signed has its intent voided and the device
//! goes back to the queue for the next card. A card that still carries a
//! voided certificate from such an attempt is overwritten when it comes
//! back; a card carrying a certificate that is valid in the journal is
//! refused, so no device ever ends with two valid certificates.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use der::{Decode, Encode};

use super::provision::{provision_card, CardCredentials, CardError, CardHooks, CardRequest, Step};
use super::{ReaderWatch, Readers};
use crate::ids::IdMode;
use crate::issue::{CertificateAuthority, PreparedCertificate};
use crate::journal::{Device, Journal, OrderId, StoredCertificate};
use crate::okc::{
    delivery_folder, store_certificate_files, CertificateFacts, Certified, KeyTarget, ProduceError,
    Production, ProductionReport,
};
use crate::pem::hex;
use crate::piv::client::PivError;
use crate::piv::{Algorithm, Slot};
use crate::pkcs11::token::lock;
use crate::profile::Profile;
use crate::signer::KeyType;

/// How long a wait lasts before the worker looks at the stop flag again.
const WAKE_UP: Duration = Duration::from_millis(250);

/// What a reader's worker is doing, for the live view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StationEvent {
    /// Waiting for a card to be inserted.
    WaitingForCard,
    /// Producing `device` on the card; `step` is under way.
    Producing {
        /// The device serial.
        device: String,
        /// The step.
        step: Step,
    },
    /// The card carries `device`'s certificate, proved.
    Done {
        /// The device serial.
        device: String,
        /// The certificate serial.
        serial: String,
    },
    /// The card left during `step`; `device` goes to the next card.
    CardPulled {
        /// The device serial.
        device: String,
        /// The step it left in.
        step: Step,
        /// Whether an intent was voided.
        voided: Option<String>,
    },
    /// The card cannot be used; `device` goes to the next card.
    CardRefused {
        /// The device serial.
        device: String,
        /// Why.
        reason: String,
    },
    /// Waiting for the card to be taken out.
    RemoveCard,
    /// Nothing left for this reader.
    Finished,
}

impl fmt::Display for StationEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StationEvent::WaitingForCard => f.write_str("insert a card"),
            StationEvent::Producing { device, step } => write!(f, "{device}: {step}"),
            StationEvent::Done { device, serial } => {
                write!(f, "{device}: done, certificate {serial}")
            }
            StationEvent::CardPulled {
                device,
                step,
                voided,
            } => {
                // PC/SC cannot tell a pull from a lost contact mid-exchange.
                write!(f, "{device}: card pulled (or lost contact) while {step}")?;
                if let Some(serial) = voided {
                    write!(f, "; certificate {serial} voided")?;
                }
                f.write_str("; the device goes to the next card")
            }
            StationEvent::CardRefused { device, reason } => {
                write!(
                    f,
                    "{device}: card refused: {reason}; the device goes to the next card"
                )
            }
            StationEvent::RemoveCard => f.write_str("take the card out"),
            StationEvent::Finished => f.write_str("finished"),
        }
    }
}

/// A station run over one order.
pub struct Station<'a> {
    /// The order (target `card`).
    pub order: OrderId,
    /// The issuing CA.
    pub ca: &'a CertificateAuthority,
    /// The order's profile: okc-device, or mali-muhur for a seal order.
    pub profile: &'a Profile,
    /// Whether GİB's test identifiers are accepted (the CA's lints must agree).
    pub id_mode: IdMode,
    /// The CA chain for the delivery.
    pub chain: Vec<Vec<u8>>,
    /// Where the delivery folder goes.
    pub out: PathBuf,
    /// The readers to serve.
    pub readers: Vec<String>,
    /// The slot the keys go into.
    pub slot: Slot,
    /// The cards' management key and PIN.
    pub credentials: CardCredentials,
    /// Who runs it.
    pub operator: String,
    /// Set to stop after the cards in flight.
    pub stop: Arc<AtomicBool>,
    /// Receives every worker's events: (reader, event).
    pub on_event: &'a (dyn Fn(&str, &StationEvent) + Sync),
    /// For the delivery (card orders have no purge deadline).
    pub calendar: &'a crate::calendar::BusinessCalendar,
    /// How long to wait for another producer of the order to finish
    /// (zero: refuse at once, naming it).
    pub lease_wait: std::time::Duration,
}

/// Why the station stopped before the order was done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StationError {
    /// The order or the journal refused.
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// PC/SC failed.
    #[error("{reader}: {error}")]
    Reader {
        /// The reader.
        reader: String,
        /// What failed.
        error: PivError,
    },
    /// A card problem that would repeat on every card (a wrong PIN or
    /// management key): the station stops rather than spend tries.
    #[error("{reader}: {error}")]
    Card {
        /// The reader.
        reader: String,
        /// What failed.
        error: CardError,
    },
}

impl StationError {
    /// What kind of failure this is: a wrapped error's own kind. A reader
    /// that failed under the station is a failure, whatever the card said.
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            StationError::Produce(e) => e.kind(),
            StationError::Card { error, .. } => error.kind(),
            StationError::Reader { .. } => crate::error::ErrorKind::Failure,
        }
    }
}

/// The queue of devices shared by the readers' workers.
struct Queue {
    /// Devices given back by a pulled or refused card, served first.
    retry: VecDeque<Device>,
    /// The next page of pending devices from the journal.
    page: VecDeque<Device>,
    /// The journal cursor: the last device id paged in.
    after: i64,
    /// Whether the journal has no more pending devices past the cursor.
    exhausted: bool,
    /// Devices on a card right now.
    in_flight: HashSet<i64>,
}

enum Claim {
    Device(Device),
    /// Nothing to take now, but another reader's device may come back.
    Wait,
    Finished,
}

impl Station<'_> {
    /// Runs the station until the order is done (then delivers) or stopped.
    pub fn run(&self, journal: &Mutex<dyn Journal>) -> Result<ProductionReport, StationError> {
        let production = Production {
            order: self.order,
            ca: self.ca,
            profile: self.profile,
            chain: self.chain.clone(),
            out: self.out.clone(),
            workers: self.readers.len(),
            target: KeyTarget::Card,
            operator: self.operator.clone(),
            stop: self.stop.clone(),
            on_device: &|| {},
            calendar: self.calendar,
            lease_wait: self.lease_wait,
        };
        production.holding_lease(journal, |lease| {
            let mut report = ProductionReport::default();
            let order = production.start(journal, lease, &mut report)?;
            let key_type: KeyType =
                order
                    .key_type
                    .parse()
                    .map_err(|e: crate::signer::SignerError| ProduceError::Order {
                        order: self.order,
                        reason: e.to_string(),
                    })?;
            let algorithm =
                Algorithm::for_key_type(key_type).ok_or_else(|| ProduceError::Order {
                    order: self.order,
                    reason: format!("{key_type} keys cannot be generated on PIV cards"),
                })?;
            let certified = Certified::of(&order, self.profile, self.id_mode)?;
            let folder = delivery_folder(&self.out, self.order);
            std::fs::create_dir_all(folder.join("certs")).map_err(|e| ProduceError::Io {
                path: folder.display().to_string(),
                reason: e.to_string(),
            })?;
            let queue = Mutex::new(Queue {
                retry: VecDeque::new(),
                page: VecDeque::new(),
                after: 0,
                exhausted: false,
                in_flight: HashSet::new(),
            });
            let produced = AtomicU64::new(0);
            let failure: Mutex<Option<StationError>> = Mutex::new(None);
            let halt = AtomicBool::new(false);
            std::thread::scope(|scope| {
                for reader in &self.readers {
                    let (queue, produced, failure, halt) = (&queue, &produced, &failure, &halt);
                    let certified = &certified;
                    scope.spawn(move || {
                        // One PC/SC context per worker: pcsc-lite serialises the
                        // calls made on one context, and a worker waits long.
                        let pcsc = match Readers::establish() {
                            Ok(pcsc) => pcsc,
                            Err(error) => {
                                halt.store(true, Ordering::SeqCst);
                                lock(failure).get_or_insert(StationError::Reader {
                                    reader: reader.clone(),
                                    error,
                                });
                                return;
                            }
                        };
                        let worker = Worker {
                            station: self,
                            reader,
                            journal,
                            queue,
                            halt,
                            pcsc: &pcsc,
                            algorithm,
                            certified,
                        };
                        match worker.serve(produced) {
                            Ok(()) => {}
                            Err(e) => {
                                halt.store(true, Ordering::SeqCst);
                                // The other workers see the halt at their next wake-up.
                                lock(failure).get_or_insert(e);
                            }
                        }
                        (self.on_event)(reader, &StationEvent::Finished);
                    });
                }
            });
            report.produced_now = produced.load(Ordering::SeqCst);
            if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
                return Err(e);
            }
            report.stopped = self.stop.load(Ordering::SeqCst);
            production.finish(journal, &mut report)?;
            Ok(report)
        })
    }
}

/// One reader's worker.
struct Worker<'a, 's> {
    station: &'a Station<'s>,
    reader: &'a str,
    journal: &'a Mutex<dyn Journal>,
    queue: &'a Mutex<Queue>,
    halt: &'a AtomicBool,
    pcsc: &'a Readers,
    algorithm: Algorithm,
    certified: &'a Certified,
}

impl Worker<'_, '_> {
    fn stopping(&self) -> bool {
        self.halt.load(Ordering::SeqCst) || self.station.stop.load(Ordering::SeqCst)
    }

    fn event(&self, event: StationEvent) {
        (self.station.on_event)(self.reader, &event);
    }

    fn reader_error(&self, error: PivError) -> StationError {
        StationError::Reader {
            reader: self.reader.to_owned(),
            error,
        }
    }

    /// Waits for the card to be taken out, waking up to look at the stop
    /// flag. Returns false when the station is stopping.
    fn wait_for_removal(&self, watch: &mut ReaderWatch) -> Result<bool, StationError> {
        loop {
            if self.stopping() {
                return Ok(false);
            }
            match self.pcsc.wait_for_removal(watch, Some(WAKE_UP)) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(_) if self.stopping() => return Ok(false),
                Err(e) => return Err(self.reader_error(e)),
            }
        }
    }

    /// Pages the next pending devices in from the journal when the queue ran dry.
    fn refill(&self, queue: &mut Queue) -> Result<(), StationError> {
        if queue.page.is_empty() && !queue.exhausted {
            let page = lock(self.journal)
                .pending_devices(self.station.order, queue.after, 64)
                .map_err(ProduceError::from)?;
            match page.last() {
                Some(last) => queue.after = last.id,
                None => queue.exhausted = true,
            }
            queue.page.extend(page);
        }
        Ok(())
    }

    /// Whether the order is done: nothing queued and nothing on a card.
    fn order_done(&self) -> Result<bool, StationError> {
        let mut queue = lock(self.queue);
        self.refill(&mut queue)?;
        Ok(queue.retry.is_empty() && queue.page.is_empty() && queue.in_flight.is_empty())
    }

    fn claim(&self) -> Result<Claim, StationError> {
        let mut queue = lock(self.queue);
        if let Some(device) = queue.retry.pop_front() {
            queue.in_flight.insert(device.id);
            return Ok(Claim::Device(device));
        }
        self.refill(&mut queue)?;
        match queue.page.pop_front() {
            Some(device) => {
                queue.in_flight.insert(device.id);
                Ok(Claim::Device(device))
            }
            None if queue.in_flight.is_empty() => Ok(Claim::Finished),
            None => Ok(Claim::Wait),
        }
    }

    fn release(&self, device: Device, done: bool) {
        let mut queue = lock(self.queue);
        queue.in_flight.remove(&device.id);
        if !done {
            queue.retry.push_back(device);
        }
    }

    fn serve(&self, produced: &AtomicU64) -> Result<(), StationError> {
        let mut watch = self.pcsc.watch(self.reader);
        loop {
            // A card first, then a device: a device never waits in an empty
            // reader while another reader could take it.
            self.event(StationEvent::WaitingForCard);
            loop {
                if self.stopping() || self.order_done()? {
                    return Ok(());
                }
                match self.pcsc.wait_for_card(&mut watch, Some(WAKE_UP)) {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(_) if self.stopping() => return Ok(()),
                    Err(e) => return Err(self.reader_error(e)),
                }
            }
            let device = loop {
                if self.stopping() {
                    return Ok(());
                }
                match self.claim()? {
                    Claim::Device(device) => break device,
                    Claim::Finished => return Ok(()),
                    // Another reader's device may come back to the queue.
                    Claim::Wait => std::thread::sleep(WAKE_UP),
                }
            };
            match self.produce(&device) {
                Ok(serial) => {
                    produced.fetch_add(1, Ordering::SeqCst);
                    self.event(StationEvent::Done {
                        device: device.serial.clone(),
                        serial,
                    });
                    self.release(device, true);
                }
                Err(Outcome::Pulled { step, voided }) => {
                    self.event(StationEvent::CardPulled {
                        device: device.serial.clone(),
                        step,
                        voided,
                    });
                    self.release(device, false);
                }
                Err(Outcome::Refused(reason)) => {
                    self.event(StationEvent::CardRefused {
                        device: device.serial.clone(),
                        reason,
                    });
                    self.release(device, false);
                }
                Err(Outcome::Fatal(error)) => {
                    self.release(device, false);
                    return Err(error);
                }
            }
            self.event(StationEvent::RemoveCard);
            if !self.wait_for_removal(&mut watch)? {
                return Ok(());
            }
        }
    }

    /// Provisions the card in the reader for `device` and records it.
    fn produce(&self, device: &Device) -> Result<String, Outcome> {
        let fatal = |e: ProduceError| Outcome::Fatal(StationError::Produce(e));
        let subject = self
            .certified
            .subject(self.station.order, &device.serial)
            .map_err(fatal)?;
        let request = CardRequest {
            profile: self.station.profile.clone(),
            subject,
            algorithm: self.algorithm,
            slot: self.station.slot,
            not_before: crate::issue::validity::now().map_err(|error| {
                fatal(ProduceError::Issue {
                    device: device.serial.clone(),
                    error,
                })
            })?,
            pin_letter: None,
        };
        let mut hooks = StationHooks {
            worker: self,
            device,
            step: Step::Select,
            intent: None,
        };
        let outcome = self.pcsc.with_card(self.reader, |client| {
            Ok(provision_card(
                client,
                self.station.ca,
                &self.station.credentials,
                &request,
                &mut hooks,
            ))
        });
        let provisioned = match outcome {
            Ok(Ok(card)) => card,
            Ok(Err(error)) => return Err(self.failed(device, hooks.step, hooks.intent, error)),
            Err(error) => {
                let error = CardError::Card {
                    step: hooks.step,
                    error,
                };
                return Err(self.failed(device, hooks.step, hooks.intent, error));
            }
        };
        let parsed =
            x509_cert::Certificate::from_der(&provisioned.certificate_der).map_err(|e| {
                fatal(ProduceError::Io {
                    path: device.serial.clone(),
                    reason: e.to_string(),
                })
            })?;
        let facts = CertificateFacts::of(&parsed, &provisioned.certificate_der);
        store_certificate_files(
            &delivery_folder(&self.station.out, self.station.order),
            &device.serial,
            &provisioned.certificate_der,
        )
        .map_err(fatal)?;
        lock(self.journal)
            .record_verified(
                device,
                &StoredCertificate {
                    serial_hex: &provisioned.serial,
                    der: &provisioned.certificate_der,
                    sha256: &facts.sha256,
                    not_before: &facts.not_before,
                    not_after: &facts.not_after,
                    p12_password: None,
                },
                &self.station.operator,
            )
            .map_err(|e| fatal(e.into()))?;
        Ok(provisioned.serial)
    }

    /// Decides what a failed card means: the device goes back to the queue
    /// (pulled card, unusable card) or the station stops (a problem every
    /// card would have). A recorded intent is voided either way: its
    /// certificate never reached a card that was proved.
    fn failed(
        &self,
        device: &Device,
        step: Step,
        intent: Option<String>,
        error: CardError,
    ) -> Outcome {
        let voided = match intent {
            Some(serial) => {
                let reason = format!(
                    "device {}: the card failed while {step} ({error}); never delivered",
                    device.serial
                );
                match lock(self.journal).void_intent(&serial, &self.station.operator, &reason) {
                    Ok(()) => Some(serial),
                    Err(e) => return Outcome::Fatal(StationError::Produce(e.into())),
                }
            }
            None => None,
        };
        if error.card_removed() {
            return Outcome::Pulled { step, voided };
        }
        match &error {
            // Wrong secrets would be wrong on every card: stop instead of
            // spending a try on each.
            CardError::Card {
                error:
                    PivError::WrongSecret { .. }
                    | PivError::ManagementKeyRefused
                    | PivError::PinFormat(_)
                    | PivError::ManagementKey(_)
                    | PivError::Reader(_),
                ..
            }
            | CardError::Issue { .. }
            | CardError::KeyNotAccepted { .. }
            | CardError::NoPuk
            | CardError::LetterExists(_)
            | CardError::Record(_) => Outcome::Fatal(StationError::Card {
                reader: self.reader.to_owned(),
                error,
            }),
            CardError::Refused(_) | CardError::Check(_) | CardError::Card { .. } => {
                Outcome::Refused(error.to_string())
            }
        }
    }
}

enum Outcome {
    Pulled { step: Step, voided: Option<String> },
    Refused(String),
    Fatal(StationError),
}

/// The station's part in one card's provisioning.
struct StationHooks<'w, 'a, 's> {
    worker: &'w Worker<'a, 's>,
    device: &'w Device,
    step: Step,
    intent: Option<String>,
}

impl CardHooks for StationHooks<'_, '_, '_> {
    fn step(&mut self, step: Step) {
        self.step = step;
        self.worker.event(StationEvent::Producing {
            device: self.device.serial.clone(),
            step,
        });
    }

    fn existing_certificate(&mut self, certificate: &[u8]) -> Result<(), CardError> {
        let refuse = |why: String| CardError::Refused(why);
        let parsed = x509_cert::Certificate::from_der(certificate)
            .map_err(|_| refuse("the card's slot holds data that is not a certificate".into()))?;
        let serial = hex(parsed.tbs_certificate().serial_number().as_bytes());
        let issuer = parsed
            .tbs_certificate()
            .issuer()
            .to_der()
            .map_err(|e| refuse(e.to_string()))?;
        let record = lock(self.worker.journal)
            .certificate_by_serial(&serial)
            .map_err(|e| CardError::Record(e.to_string()))?;
        match record {
            Some(record) if record.status == "void" => Ok(()),
            Some(record) => Err(refuse(format!(
                "the card already carries certificate {serial} of device {} (order {}), valid in the journal",
                record.device_serial, record.order
            ))),
            None if issuer == self.worker.station.ca.identity().name_der() => Err(refuse(format!(
                "the card carries certificate {serial} of this CA that the journal does not know"
            ))),
            None => Err(refuse(format!(
                "the card carries a certificate of another issuer (serial {serial}); use a blank card"
            ))),
        }
    }

    fn before_signing(&mut self, prepared: &PreparedCertificate) -> Result<(), CardError> {
        let serial = hex(prepared.serial());
        lock(self.worker.journal)
            .record_intent(
                self.device,
                &serial,
                prepared.tbs_der(),
                &format!(
                    "key generated on the PIV card in reader {:?}, slot {}",
                    self.worker.reader, self.worker.station.slot
                ),
                &self.worker.station.operator,
            )
            .map_err(|e| CardError::Record(e.to_string()))?;
        self.intent = Some(serial);
        Ok(())
    }
}
