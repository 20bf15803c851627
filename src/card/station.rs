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
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::provision::{CardCredentials, CardError, Step};
use super::{ReaderWatch, Readers};
use crate::journal::{Device, Journal, LeaseHolder};
use crate::piv::client::PivError;
use crate::piv::{Algorithm, Slot};
use crate::pkcs11::token::lock;
use crate::production::key_target::card::{CardInReader, CardRun};
use crate::production::pipeline::CLAIM_AGAIN_AFTER;
use crate::production::pipeline::{ChunkFailure, JournalRecord, Pipeline};
use crate::production::recovery::void_left_intents;
use crate::production::{delivery_folder, ProduceError, Production, ProductionReport};

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

/// What a station run does with the cards' PIN and PUK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinPolicy {
    /// Each card gets its own random PIN and PUK, held by the journal
    /// before they are set, and listed in the order's PIN letter manifest
    /// (mode 0600) at delivery; the purge deletes both by the soft rule.
    Random,
    /// Every card keeps the PIN and PUK it came with: one PIN, known to
    /// the operator, for the whole order (an order that asks for it).
    Keep,
}

/// A station run over one order.
pub struct Station<'a> {
    /// The run of the order the station schedules readers for: the order
    /// (target `card`), the issuing CA with the identifier mode of the run
    /// (GİB's test identifiers only in test mode), the order's profile
    /// (okc-device, or mali-muhur for a seal order), the chain and folder
    /// of the delivery, the operator, the stop flag, the calendar (card
    /// orders have no purge deadline) and the lease wait. Its workers are
    /// the readers.
    pub production: Production<'a>,
    /// The readers to serve.
    pub readers: Vec<String>,
    /// The slot the keys go into.
    pub slot: Slot,
    /// The cards' management key and PIN (and PUK, to set a fresh one).
    pub credentials: CardCredentials,
    /// The cards' PIN and PUK after [`Station::run`]: random per card, or
    /// kept. ([`Station::provision_card_in`] has its own PIN letter.)
    pub pin_policy: PinPolicy,
    /// Receives every worker's events: (reader, event).
    pub on_event: &'a (dyn Fn(&str, &StationEvent) + Sync),
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
    /// Devices this station claimed from the journal and has not begun.
    page: VecDeque<Device>,
    /// Whether the order has no pending device left to claim, here or
    /// with another station.
    exhausted: bool,
    /// When a claim last came back empty while other stations held
    /// devices: the next is tried [`CLAIM_AGAIN_AFTER`] later.
    claimed_nothing_at: Option<std::time::Instant>,
    /// Devices on a card right now.
    in_flight: HashSet<i64>,
}

/// Devices a station claims at a time: one card's worth (a card takes
/// seconds, a claim a moment), so that every station on the order, however
/// small, finds devices to take.
const CARDS_CLAIMED: usize = 1;

enum Claim {
    Device(Device),
    /// Nothing to take now, but another reader's device may come back.
    Wait,
    Finished,
}

impl Station<'_> {
    /// Runs the station until the order is done (then delivers) or stopped.
    pub fn run(&self, journal: &Mutex<dyn Journal>) -> Result<ProductionReport, StationError> {
        let fresh_secrets = self.pin_policy == PinPolicy::Random;
        if fresh_secrets && self.credentials.puk.is_none() {
            return Err(StationError::Card {
                reader: self.readers.join(", "),
                error: CardError::NoPuk,
            });
        }
        self.holding_order(journal, fresh_secrets, |pipeline, algorithm, report| {
            let queue = Mutex::new(Queue::new());
            let produced = AtomicU64::new(0);
            let failure: Mutex<Option<StationError>> = Mutex::new(None);
            let halt = AtomicBool::new(false);
            std::thread::scope(|scope| {
                for reader in &self.readers {
                    let (queue, produced, failure, halt) = (&queue, &produced, &failure, &halt);
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
                            pipeline,
                            pin_letter: None,
                            fresh_secrets,
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
            Ok(())
        })
    }

    /// Produces the order's next pending device on the card in `reader`
    /// now, waiting neither for a card to come nor to go: one card of a
    /// small order (a one-off seal). A card that fails or is refused fails
    /// the call, its intent voided. With `pin_letter`, the card leaves with
    /// a fresh random PIN and PUK written to that new file (mode 0600),
    /// which needs the card's current PUK in the credentials. The report
    /// says stopped while devices of the order remain.
    pub fn provision_card_in(
        &self,
        journal: &Mutex<dyn Journal>,
        reader: &str,
        pin_letter: Option<&Path>,
    ) -> Result<ProductionReport, StationError> {
        let refused = |why: String| StationError::Card {
            reader: reader.to_owned(),
            error: CardError::Refused(why),
        };
        if let Some(letter) = pin_letter {
            if self.credentials.puk.is_none() {
                return Err(refused(
                    "a PIN letter sets a new PUK too: give the card's current PUK".into(),
                ));
            }
            if letter.exists() {
                return Err(refused(format!(
                    "{} already exists; a PIN letter is never overwritten",
                    letter.display()
                )));
            }
        }
        self.holding_order(journal, false, |pipeline, algorithm, report| {
            let pcsc = Readers::establish().map_err(|error| StationError::Reader {
                reader: reader.to_owned(),
                error,
            })?;
            let (queue, halt) = (Mutex::new(Queue::new()), AtomicBool::new(false));
            let worker = Worker {
                station: self,
                reader,
                journal,
                queue: &queue,
                halt: &halt,
                pcsc: &pcsc,
                algorithm,
                pipeline,
                pin_letter,
                fresh_secrets: false,
            };
            let Claim::Device(device) = worker.claim()? else {
                return Ok(());
            };
            let card_error = |error: CardError| StationError::Card {
                reader: reader.to_owned(),
                error,
            };
            match worker.produce(&device) {
                Ok(serial) => {
                    report.produced_now = 1;
                    worker.event(StationEvent::Done {
                        device: device.name.to_string(),
                        serial,
                    });
                    Ok(())
                }
                Err(Outcome::Fatal(error)) => Err(error),
                Err(Outcome::Pulled { step, .. }) => Err(card_error(CardError::Card {
                    step,
                    error: PivError::CardRemoved,
                })),
                Err(Outcome::Refused(error)) => Err(card_error(error)),
            }
        })
    }

    /// Runs `work` over the order's pipeline inside one production run
    /// (lease, recovery, delivery once every device is verified; with
    /// `fresh_secrets`, the delivery writes the PIN letter manifest).
    fn holding_order(
        &self,
        journal: &Mutex<dyn Journal>,
        fresh_secrets: bool,
        work: impl FnOnce(&Pipeline<'_>, Algorithm, &mut ProductionReport) -> Result<(), StationError>,
    ) -> Result<ProductionReport, StationError> {
        self.production
            .run_scheduled(journal, &CardRun { fresh_secrets }, |pipeline, report| {
                let key_type = pipeline.key_type;
                let algorithm =
                    Algorithm::for_key_type(key_type).ok_or_else(|| ProduceError::Order {
                        order: self.production.order,
                        reason: format!("{key_type} keys cannot be generated on PIV cards"),
                    })?;
                work(pipeline, algorithm, report)
            })
    }
}

impl Queue {
    fn new() -> Self {
        Queue {
            retry: VecDeque::new(),
            page: VecDeque::new(),
            exhausted: false,
            claimed_nothing_at: None,
            in_flight: HashSet::new(),
        }
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
    pipeline: &'a Pipeline<'a>,
    /// Where the card's fresh PIN and PUK go (one card at a time only).
    pin_letter: Option<&'a Path>,
    /// Each card gets its own random PIN and PUK, held by the journal.
    fresh_secrets: bool,
}

impl Worker<'_, '_> {
    fn stopping(&self) -> bool {
        self.halt.load(Ordering::SeqCst) || self.station.production.stop.load(Ordering::SeqCst)
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

    /// Claims the order's next pending devices for this station when the
    /// queue ran dry (other stations may share the order, each device is
    /// claimed by one), voiding the intents a station that died left on
    /// them.
    fn refill(&self, queue: &mut Queue) -> Result<(), StationError> {
        let waiting = queue
            .claimed_nothing_at
            .is_some_and(|at| at.elapsed() < CLAIM_AGAIN_AFTER);
        if queue.page.is_empty() && !queue.exhausted && !waiting {
            let holder = LeaseHolder::this_process(&self.station.production.operator);
            let claim = lock(self.journal).claim_devices(
                self.station.production.order,
                &holder,
                CARDS_CLAIMED,
            );
            let claim = claim.map_err(ProduceError::from)?;
            let held_by_others = claim.held_by_others;
            let (devices, _voided) = void_left_intents(
                self.journal,
                &CardRun {
                    fresh_secrets: self.fresh_secrets,
                },
                &delivery_folder(&self.station.production.out, self.station.production.order),
                &self.station.production.operator,
                claim.devices,
            )?;
            queue.claimed_nothing_at = devices.is_empty().then(std::time::Instant::now);
            queue.exhausted = devices.is_empty() && held_by_others == 0;
            queue.page.extend(devices);
        }
        Ok(())
    }

    /// Whether the order is done: nothing queued or on a card here, and
    /// every device of the order certified, by this station or another.
    /// Asked while a reader waits for a card, so it claims nothing: a
    /// device claimed with no card to take it would wait at this station
    /// while other stations' readers stand idle.
    fn order_done(&self) -> Result<bool, StationError> {
        {
            let queue = lock(self.queue);
            if !(queue.retry.is_empty() && queue.page.is_empty() && queue.in_flight.is_empty()) {
                return Ok(false);
            }
        }
        let order = lock(self.journal)
            .order(self.station.production.order)
            .map_err(ProduceError::from)?;
        Ok(order.verified >= order.devices)
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
            None if queue.in_flight.is_empty() && queue.exhausted => Ok(Claim::Finished),
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
                        device: device.name.to_string(),
                        serial,
                    });
                    self.release(device, true);
                }
                Err(Outcome::Pulled { step, voided }) => {
                    self.event(StationEvent::CardPulled {
                        device: device.name.to_string(),
                        step,
                        voided,
                    });
                    self.release(device, false);
                }
                Err(Outcome::Refused(error)) => {
                    self.event(StationEvent::CardRefused {
                        device: device.name.to_string(),
                        reason: error.to_string(),
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

    /// Produces `device` on the card in the reader through the pipeline
    /// (the card is its key target) and records it verified.
    fn produce(&self, device: &Device) -> Result<String, Outcome> {
        let station = self.station;
        let record = JournalRecord {
            journal: self.journal,
            order: station.production.order,
            operator: &station.production.operator,
        };
        let folder = delivery_folder(&station.production.out, station.production.order);
        let on_step = |step: Step| {
            self.event(StationEvent::Producing {
                device: device.name.to_string(),
                step,
            })
        };
        let ca_name = station.production.ca.identity().name_der();
        let mut step = Step::Select;
        let outcome = self.pcsc.with_card(self.reader, |client| {
            let card = CardInReader::new(
                client,
                &station.credentials,
                station.slot,
                self.algorithm,
                self.reader,
                self.journal,
                ca_name,
                &on_step,
            )
            .with_pin_letter(self.pin_letter)
            .with_fresh_secrets(
                self.fresh_secrets
                    .then_some(station.production.operator.as_str()),
            );
            let result = self
                .pipeline
                .sign_chunk(&record, &card, vec![device.clone()])
                .and_then(|signed| {
                    // Proved on the card; a failure to record it stops the
                    // station, and the next run's recovery voids its intent.
                    self.pipeline
                        .store_chunk(
                            self.journal,
                            &card,
                            &folder,
                            &station.production.operator,
                            &signed,
                        )
                        .map_err(ChunkFailure::from)?;
                    Ok(signed)
                });
            step = card.step();
            Ok(result)
        });
        match outcome {
            Ok(Ok(signed)) => Ok(signed
                .into_iter()
                .next()
                .map(|d| d.serial_hex)
                .unwrap_or_default()),
            Ok(Err(failure)) => Err(self.failed(device, step, failure)),
            Err(error) => {
                let error = ProduceError::Card {
                    device: device.name.to_string(),
                    error: CardError::Card { step, error },
                };
                Err(self.failed(device, step, error.into()))
            }
        }
    }

    /// Decides what a failed card means: the device goes back to the queue
    /// (pulled card, unusable card) or the station stops (a problem every
    /// card would have). A recorded intent is voided either way: its
    /// certificate never reached a card that was proved.
    fn failed(&self, device: &Device, step: Step, failure: ChunkFailure) -> Outcome {
        let ChunkFailure { error, intents } = failure;
        let mut voided = None;
        let cause = match &*error {
            ProduceError::Card { error, .. } => error.to_string(),
            other => other.to_string(),
        };
        for serial in intents {
            let reason = format!(
                "device {}: the card failed while {step} ({cause}); never delivered",
                device.name
            );
            match lock(self.journal).void_intent(
                &serial,
                &self.station.production.operator,
                &reason,
            ) {
                Ok(()) => voided = Some(serial),
                Err(e) => return Outcome::Fatal(StationError::Produce(e.into())),
            }
        }
        let error = match *error {
            ProduceError::Card { error, .. } => error,
            // The CA, the journal or the delivery folder: every card would fail alike.
            other => return Outcome::Fatal(StationError::Produce(other)),
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
                Outcome::Refused(error)
            }
        }
    }
}

enum Outcome {
    Pulled { step: Step, voided: Option<String> },
    Refused(CardError),
    Fatal(StationError),
}
