//! Production: the only home of "an order's devices, each exactly once".
//! The same room serves ÖKC batches (`okc produce`), Mali Mühür seal
//! orders (`hsm provision --order`, the card station) and the bench.
//!
//! Per device, every durable step comes before the side effect it allows:
//!
//! ```text
//! key target: key generated (hsm: journal: key-generated)
//! prepare + lint ─► journal: intent (serial, TBS) ─► CA signs ─► verify
//!   ─► key target: write back, prove, store ─► journal: verified
//!   ─► key target: publish (soft: the PKCS#12 under its delivered name)
//!   ─► certificate files
//! delivery (one station, once every device is verified): certificate files
//!   checked against the journal, manifests ─► sync ─► journal: delivered
//! ```
//!
//! The rooms: [`key_target`] (the [`key_target::KeyTarget`] trait, soft, hsm and
//! card), [`pipeline`] (prepare → lint → intent → sign → verify → store, and
//! the threaded run of an order), [`lease`] (the producers of an order, shared or exclusive),
//! [`recovery`] (what a crash left), [`seals`] (seal orders in a company's
//! token), [`delivery`] (the delivery folder and
//! its manifests), [`files`] (fsync and `O_NOFOLLOW` writes) and [`setup`]
//! (what a run needs before it starts: the order checked and claimed, its
//! key target and issuing CA opened, Ctrl-C, the calendar).
//!
//! Workers take devices a chunk at a time and record the chunk's intents in
//! one transaction (two worker threads per session process when the CA key
//! signs in them, so that one chunk is signed while another is verified); a
//! storer thread writes what they signed and records the chunk verified in
//! another. The steps are the same, and in the same order, for every
//! device: only their fsyncs are shared. Certificate files are not synced
//! one by one: the journal's DER is their durable copy, and the delivery
//! checks and rewrites them, then syncs the file system.
//!
//! A restart voids intents that never became certificates (whatever was
//! signed was neither stored nor delivered), removes target objects the
//! journal does not know, and carries on; devices already verified are
//! never touched again. When every device is verified, the delivery folder
//! is written and its upload time recorded.

pub mod delivery;
pub mod files;
pub mod key_target;
pub mod lease;
pub mod pipeline;
pub mod recovery;
pub mod seals;
pub mod setup;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::calendar::BusinessCalendar;
use crate::card::provision::CardError;
use crate::ids::{DeviceName, IdMode, TaxpayerId};
use crate::issue::{CertificateAuthority, IssueError};
use crate::journal::{
    Journal, JournalError, LeaseHolder, OrderId, OrderKind, OrderState, OrderSummary, Target,
};
use crate::pkcs11::token::lock;
use crate::pkcs11::Pkcs11Error;
use crate::profile::{Profile, ProfileName, Subject, SubjectInput};
use crate::signer::SignerError;

pub use delivery::{delivery_folder, password_manifest, CertificateFacts};
pub use files::write_atomically;
pub use key_target::{KeyTarget, TargetRun};
pub use lease::OrderClaim;
pub use pipeline::{Pipeline, CHUNK};

use lease::HeldLease;

/// Business days after upload until soft key material is purged.
pub const PURGE_AFTER_BUSINESS_DAYS: u32 = 10;

/// Why production stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// A journal problem (the order's state is as the journal says).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The order is produced by another command, or on another target,
    /// than the one asked (the reason names the right one).
    #[error("order {order}: {reason}")]
    WrongCommand {
        /// The order.
        order: OrderId,
        /// Why, and which command produces it.
        reason: String,
    },
    /// The order cannot be produced here.
    #[error("order {order}: {reason}")]
    Order {
        /// The order.
        order: OrderId,
        /// Why.
        reason: String,
    },
    /// Issuance failed for a device.
    #[error("device {device}: {error}")]
    Issue {
        /// The device serial.
        device: String,
        /// The failure.
        error: IssueError,
    },
    /// A token failed; the work stopped and can be resumed.
    #[error("device {device}: {error}")]
    Token {
        /// The device serial.
        device: String,
        /// The failure.
        error: Pkcs11Error,
    },
    /// A key failed.
    #[error("device {device}: {error}")]
    Key {
        /// The device serial.
        device: String,
        /// The failure.
        error: SignerError,
    },
    /// A PIV card failed or refused (card target).
    #[error("device {device}: {error}")]
    Card {
        /// The device serial.
        device: String,
        /// The failure.
        error: CardError,
    },
    /// Files could not be written.
    #[error("{path}: {reason}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl ProduceError {
    /// What kind of failure this is: a wrapped error's own kind.
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            ProduceError::Journal(e) => e.kind(),
            ProduceError::Issue { error, .. } => error.kind(),
            ProduceError::Token { error, .. } => error.kind(),
            ProduceError::Key { error, .. } => error.kind(),
            ProduceError::Card { error, .. } => error.kind(),
            ProduceError::WrongCommand { .. } => crate::error::ErrorKind::Usage,
            // Not producible yet (unpaid), or its delivery is incomplete:
            // the order's state, not the command.
            ProduceError::Order { .. } | ProduceError::Io { .. } => {
                crate::error::ErrorKind::Failure
            }
        }
    }
}

/// One production run of one order.
pub struct Production<'a> {
    /// The order.
    pub order: OrderId,
    /// The issuing CA.
    pub ca: &'a CertificateAuthority,
    /// The okc-device profile.
    pub profile: &'a Profile,
    /// The CA chain (issuing, root) as DER, included in deliveries.
    pub chain: Vec<Vec<u8>>,
    /// Where delivery folders go: `out/order-N/`.
    pub out: PathBuf,
    /// Parallel workers: one signing session each. A CA key that signs in
    /// session processes gets two threads per session (see
    /// [`crate::signer::pipeline_threads`]).
    pub workers: usize,
    /// Who runs it.
    pub operator: String,
    /// Set to stop after the devices in flight.
    pub stop: Arc<AtomicBool>,
    /// Called after each device is verified.
    pub on_device: &'a (dyn Fn() + Sync),
    /// For the purge deadline.
    pub calendar: &'a BusinessCalendar,
    /// How long to wait for another producer of the order to finish
    /// (zero: refuse at once, naming it).
    pub lease_wait: Duration,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProductionReport {
    /// The order.
    pub order: i64,
    /// Devices in the order.
    pub devices: u64,
    /// Devices certified in this run.
    pub produced_now: u64,
    /// Devices already certified before this run.
    pub already_done: u64,
    /// Intents voided at start (left by an interrupted run).
    pub voided_intents: u64,
    /// Token objects removed at start (left by an interrupted run).
    pub removed_token_objects: u64,
    /// Whether the run was stopped (Ctrl-C) before finishing.
    pub stopped: bool,
    /// The delivery folder, once delivered.
    pub delivery: Option<String>,
    /// The password manifest (soft target).
    pub passwords: Option<String>,
    /// The PIN letter manifest (card target, a random PIN and PUK per card).
    pub pin_letters: Option<String>,
    /// Purge deadline (soft target; card target: its PIN letters): the end
    /// of this Turkish business day.
    pub purge_due: Option<String>,
    /// Whether another producer of the order finished it and delivers it
    /// (producers that share an order: the one that finishes it delivers).
    pub delivered_by_another: bool,
}

/// Refuses an order that cannot be produced under `profile` with its keys
/// on `target`: a kind certified under another profile (each names the
/// command that produces it), an unpaid order, another target. Callers check
/// this before any token or card is touched; [`Production`] checks it again.
pub fn check_producible(
    order: &OrderSummary,
    profile: ProfileName,
    target: Target,
) -> Result<(), ProduceError> {
    let refuse = |reason: String| ProduceError::Order {
        order: order.id,
        reason,
    };
    let wrong_command = |reason: String| ProduceError::WrongCommand {
        order: order.id,
        reason,
    };
    // Each kind is certified under its own profile: ÖKC devices with
    // `okc produce` (or the card station), Mali Mühür seals with
    // `hsm provision --order` (or the card station).
    match (order.kind, profile) {
        (OrderKind::Okc, ProfileName::OkcDevice)
        | (OrderKind::MaliMuhur, ProfileName::MaliMuhur) => {}
        (OrderKind::MaliMuhur, _) => {
            return Err(wrong_command(format!(
                "is a Mali Mühür order: produce it with `certmint hsm provision --order {} --token …` (hsm target) or `certmint card station --order {}` (card target)",
                order.id, order.id
            )))
        }
        (OrderKind::Okc, _) => {
            return Err(wrong_command(format!(
                "is an ÖKC order: produce it with `certmint okc produce --order {}`",
                order.id
            )))
        }
    }
    if order.kind == OrderKind::MaliMuhur && target == Target::Soft {
        return Err(wrong_command(
            "is a Mali Mühür order: its seals live on a card or in the company's HSM, never in a file".into(),
        ));
    }
    if order.state == OrderState::Received {
        return Err(refuse("is not paid: production refuses an unpaid order (record the payment with `certmint order pay`)".into()));
    }
    if order.target != target {
        let hint = if order.target == Target::Card {
            format!(
                "; produce it with `certmint card station --order {}`",
                order.id
            )
        } else {
            String::new()
        };
        return Err(wrong_command(format!(
            "was ordered for the {} target, not {target}{hint}",
            order.target
        )));
    }
    Ok(())
}

/// Who an order's certificates certify.
pub enum Certified {
    /// ÖKC: each device by its serial, with the manufacturer's name.
    Devices {
        /// The manufacturer's name (organizationName).
        manufacturer: String,
    },
    /// Mali Mühür: every seal of the order certifies the company.
    Company(Subject),
}

impl Certified {
    /// What `order` certifies; a company's identifier is checked under
    /// `profile` and `id_mode` (GİB test identifiers only in test mode).
    pub fn of(
        order: &OrderSummary,
        profile: &Profile,
        id_mode: IdMode,
    ) -> Result<Self, ProduceError> {
        match order.kind {
            OrderKind::Okc => Ok(Certified::Devices {
                manufacturer: order.manufacturer.clone(),
            }),
            OrderKind::MaliMuhur => {
                let (vkn, tckn) = match &order.manufacturer_vkn {
                    Some(TaxpayerId::Vkn(vkn)) => (Some(vkn.as_str().to_owned()), None),
                    Some(TaxpayerId::Tckn(tckn)) => (None, Some(tckn.as_str().to_owned())),
                    None => (None, None),
                };
                // The identifier is checked again under this run's mode: a
                // GİB test identifier only in test mode.
                let input = SubjectInput {
                    vkn,
                    tckn,
                    unvan: Some(order.manufacturer.clone()),
                    ..Default::default()
                };
                Subject::from_input(profile, &input, id_mode)
                    .map(Certified::Company)
                    .map_err(|e| ProduceError::Order {
                        order: order.id,
                        reason: e.to_string(),
                    })
            }
        }
    }

    /// The subject of the certificate for `device` (an ÖKC serial, or a
    /// seal's label).
    pub fn subject(&self, order: OrderId, device: &DeviceName) -> Result<Subject, ProduceError> {
        match (self, device) {
            (Certified::Devices { manufacturer }, DeviceName::Serial(serial)) => {
                Ok(Subject::OkcDevice {
                    serial: serial.clone(),
                    manufacturer: Some(manufacturer.clone()),
                })
            }
            (Certified::Company(subject), DeviceName::Seal(_)) => Ok(subject.clone()),
            // The journal holds an order's devices by its kind: a seal in an
            // ÖKC order, or a serial in a seal order, was written outside.
            (_, other) => Err(ProduceError::Order {
                order,
                reason: format!("device {other} is not of this order's kind"),
            }),
        }
    }
}

impl Production<'_> {
    /// Produces (or resumes) the order with its keys on `target`, then
    /// delivers it: the order's pending devices go through the pipeline on
    /// N workers, a chunk at a time.
    pub fn run<T>(
        &self,
        journal: &Mutex<dyn Journal>,
        target: &T,
    ) -> Result<ProductionReport, ProduceError>
    where
        T: KeyTarget + Sync,
        T::Written: Send,
    {
        self.run_scheduled(journal, target, |pipeline, report| {
            self.produce_devices(journal, pipeline, target, report)
        })
    }

    /// Produces (or resumes) the order with `schedule` deciding which
    /// device goes through `pipeline` when, and on which key target (the
    /// card station: one device per card, one worker per reader), then
    /// delivers it once every device is verified. Around `schedule`, the
    /// order's lease is held and renewed, what an interrupted run left is
    /// recovered, and `target` (the run's kind of key target) is checked
    /// against the order.
    pub fn run_scheduled<E: From<ProduceError>>(
        &self,
        journal: &Mutex<dyn Journal>,
        target: &dyn TargetRun,
        schedule: impl FnOnce(&Pipeline<'_>, &mut ProductionReport) -> Result<(), E>,
    ) -> Result<ProductionReport, E> {
        let order = lock(journal)
            .order(self.order)
            .map_err(ProduceError::from)?;
        check_producible(&order, self.profile.name, target.kind())?;
        crate::revocation::check_issuing_ca_in_force(&*lock(journal), self.ca.certificate_der())
            .map_err(ProduceError::from)?;
        if matches!(order.state, OrderState::Delivered | OrderState::Purged) {
            return Ok(ProductionReport {
                order: self.order.0,
                devices: order.devices,
                already_done: order.verified,
                ..Default::default()
            });
        }
        self.holding_lease(journal, target.kind(), |lease| {
            let mut report = ProductionReport::default();
            // As it stands now: another producer may have finished it while this one waited.
            let order = self.start(journal, lease, target, &mut report)?;
            if matches!(order.state, OrderState::Paid | OrderState::Producing) {
                let certified = Certified::of(&order, self.profile, self.ca.id_mode())?;
                let pipeline = Pipeline {
                    order: self.order,
                    ca: self.ca,
                    profile: self.profile,
                    certified: &certified,
                    key_type: order.key_type,
                };
                let folder = delivery_folder(&self.out, self.order).join("certs");
                std::fs::create_dir_all(&folder).map_err(files::io(&folder))?;
                schedule(&pipeline, &mut report)?;
            }
            report.stopped |= self.stop.load(std::sync::atomic::Ordering::SeqCst);
            self.finish(journal, target, &mut report)?;
            Ok(report)
        })
    }

    /// Checks the order, moves it to producing and undoes what an
    /// interrupted run left half done. Returns the order as it stands.
    fn start(
        &self,
        journal: &Mutex<dyn Journal>,
        _lease: &HeldLease,
        target: &dyn TargetRun,
        report: &mut ProductionReport,
    ) -> Result<OrderSummary, ProduceError> {
        let order = lock(journal).order(self.order)?;
        check_producible(&order, self.profile.name, target.kind())?;
        report.order = self.order.0;
        report.devices = order.devices;
        report.already_done = order.verified;
        if order.state == OrderState::Producing || order.state == OrderState::Paid {
            let started = lock(journal).start_production(self.order, &self.operator);
            match started {
                Ok(()) => self.recover(journal, target, report)?,
                // Another producer of the order finished it in between:
                // nothing is left to produce, and the order as it stands
                // now says who delivers.
                Err(JournalError::WrongState { .. }) => {
                    return Ok(lock(journal).order(self.order)?);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(order)
    }

    /// When every device is verified: producing → produced, then the
    /// delivery. Marks the report stopped when devices remain.
    fn finish(
        &self,
        journal: &Mutex<dyn Journal>,
        target: &dyn TargetRun,
        report: &mut ProductionReport,
    ) -> Result<(), ProduceError> {
        let order = lock(journal).order(self.order)?;
        if matches!(order.state, OrderState::Delivered | OrderState::Purged) {
            return Ok(());
        }
        if order.state != OrderState::Produced {
            if report.stopped {
                return Ok(());
            }
            // The journal's lock is given back before the delivery takes it.
            let finished = lock(journal).finish_production(self.order, &self.operator);
            match finished {
                Ok(true) => {}
                Ok(false) => {
                    report.stopped = true;
                    return Ok(());
                }
                // Another producer of the order finished it in between.
                Err(JournalError::WrongState { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // Produced: one delivery writes the folder. The order's producers
        // finish together (each waits while another holds devices), and
        // each asks the same rule, so they agree on one of them: the live
        // one with the least holder id. One that died is not asked, and one
        // that finds the order produced and undelivered later takes it up.
        let here = LeaseHolder::this_process(&self.operator);
        let (leases, now_ms) = {
            let journal = lock(journal);
            (journal.leases(self.order)?, journal.clock_ms()?)
        };
        let deliverer = leases
            .iter()
            .filter(|lease| {
                lease.holder.holder_id == here.holder_id || lease.is_live_at(&here, now_ms)
            })
            .map(|lease| lease.holder.holder_id.as_str())
            .min();
        let another_delivers = deliverer.is_some_and(|id| id != here.holder_id);
        if another_delivers {
            report.delivered_by_another = true;
            return Ok(());
        }
        self.deliver(journal, target, report)
    }
}
