//! The set-up of a production run, in one place: `okc produce`, `hsm
//! provision --order` and the card station each make one call,
//! [`ProductionSetup::open`], and get what their run needs.
//!
//! The steps, in this order, for every run:
//!
//! 1. the order is read and checked against the command's profile and key
//!    target ([`check_producible`]): nothing is touched for an order the
//!    command cannot produce;
//! 2. Ctrl-C is installed (when the caller asks): the run stops after what
//!    is in flight;
//! 3. the order is claimed ([`OrderClaim`]), before any token, card or PIN:
//!    a second producer is refused (or waits) before it touches anything;
//! 4. the command's key target is opened (the manufacturer's token, the
//!    company's token, the cards' credentials and readers), which says how
//!    many workers the run has;
//! 5. the issuing CA of the order's product line is opened with one signing
//!    session per worker, with its profile and the chain the delivery
//!    carries ([`IssuingCa`]);
//! 6. the business calendar for the purge deadline.
//!
//! The journal is opened by the caller (one place decides its backend) and
//! lent to the set-up, whose claim holds the order's lease until the
//! set-up is dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::ca::{CaDirectory, CaError};
use crate::calendar::{BusinessCalendar, CalendarError};
use crate::card::provision::CardCredentials;
use crate::card::station::{PinPolicy, Station, StationEvent};
use crate::error::{ErrorKind, Usage};
use crate::ids::IdMode;
use crate::input::InputError;
use crate::issue::CertificateAuthority;
use crate::journal::{Journal, JournalError, OrderId, OrderKind, OrderSummary, Target};
use crate::keyref::Unlock;
use crate::piv::Slot;
use crate::pkcs11::token::lock;
use crate::profile::{Profile, ProfileError, ProfileName};

use super::{check_producible, OrderClaim, ProduceError, Production};

/// Why a production run could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The journal could not say what the order is.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The order cannot be produced by this command, or is held by another
    /// producer.
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// The CA directory or its issuing key.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The CA configuration's profile.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The closed-days file could not be read.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The business calendar.
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    /// A line of the closed-days file is not a day.
    #[error("{path}")]
    ClosedDays {
        /// The closed-days file.
        path: String,
        /// What is wrong in it.
        #[source]
        error: CalendarError,
    },
    /// The Ctrl-C handler could not be installed.
    #[error("cannot install the Ctrl-C handler")]
    CtrlC(#[source] ctrlc::Error),
}

impl SetupError {
    /// What kind of failure this is: a wrapped error's own kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SetupError::Journal(e) => e.kind(),
            SetupError::Produce(e) => e.kind(),
            SetupError::Ca(e) => e.kind(),
            SetupError::Profile(e) => e.kind(),
            SetupError::Input(e) => e.kind(),
            SetupError::Calendar(e) | SetupError::ClosedDays { error: e, .. } => e.kind(),
            SetupError::CtrlC(_) => ErrorKind::Failure,
        }
    }
}

/// What the operator is told when Ctrl-C is pressed: called with `true`
/// when it is pressed again, the operator insisting on leaving at once.
pub type OnCtrlC = Box<dyn Fn(bool) + Send + 'static>;

/// Installs the process's Ctrl-C handler: the returned flag is set at the
/// first Ctrl-C, and the work stops after what is in flight. `on_ctrl_c`
/// tells the operator (and leaves at once when pressed again: the journal
/// stays consistent, as after a crash).
pub fn stop_on_ctrl_c(on_ctrl_c: OnCtrlC) -> Result<Arc<AtomicBool>, SetupError> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || on_ctrl_c(flag.swap(true, Ordering::SeqCst)))
        .map_err(SetupError::CtrlC)?;
    Ok(stop)
}

/// The Turkish business calendar, with the operator's extra closed days
/// (one date a line) when `closed_days` names a file.
pub fn business_calendar(closed_days: Option<&Path>) -> Result<BusinessCalendar, SetupError> {
    let calendar = BusinessCalendar::turkey();
    let Some(path) = closed_days else {
        return Ok(calendar);
    };
    let text = crate::input::read_text_file(path)?;
    let days = BusinessCalendar::parse_closed_days_file(&text).map_err(|error| {
        SetupError::ClosedDays {
            path: path.display().to_string(),
            error,
        }
    })?;
    Ok(calendar.with_extra_closed_days(days)?)
}

/// The profile an order's kind is certified under: ÖKC devices under
/// okc-device, Mali Mühür seals under mali-muhur.
pub fn profile_of(kind: OrderKind) -> ProfileName {
    match kind {
        OrderKind::Okc => ProfileName::OkcDevice,
        OrderKind::MaliMuhur => ProfileName::MaliMuhur,
    }
}

/// The token an ÖKC order's keys go into, for `okc produce`: none for
/// the soft target (PKCS#12 files), the manufacturer's `token` for the hsm
/// target. Any other pairing is the operator's mistake, named with the
/// command that serves the order.
pub fn okc_token<'t>(
    order: &OrderSummary,
    token: Option<&'t str>,
) -> Result<Option<&'t str>, Usage> {
    let id = order.id;
    match (order.target, token) {
        (Target::Soft, None) => Ok(None),
        (Target::Hsm, Some(uri)) => Ok(Some(uri)),
        (Target::Hsm, None) => Err(Usage(format!(
            "order {id} is for the hsm target: give the manufacturer's token with --token"
        ))),
        (Target::Soft, Some(_)) => Err(Usage(format!(
            "order {id} is for the soft target: leave out --token"
        ))),
        (Target::Card, _) => Err(Usage(format!(
            "order {id} is for the card target: produce it with `certmint card station --order {id}`"
        ))),
        (Target::External, _) => Err(Usage(format!(
            "order {id} records a certificate issued for a key from outside: there is nothing to produce"
        ))),
    }
}

/// The issuing CA that signs one profile's certificates, opened for a run.
pub struct IssuingCa {
    /// The issuing CA, key opened, with the run's identifier mode (GİB's
    /// test identifiers only in test mode).
    pub ca: CertificateAuthority,
    /// The profile, from the CA's configuration.
    pub profile: Profile,
    /// The CA chain (issuing, root) as DER, as deliveries carry it.
    pub chain: Vec<Vec<u8>>,
    /// The operator's warning when the product line has no issuing CA of
    /// its own and shares the Mali Mühür one.
    pub shared_issuing_ca_warning: Option<String>,
}

impl IssuingCa {
    /// Opens the issuing CA in `dir` for `profile`'s product line, its key
    /// unlocked with `unlock`, accepting subjects under `id_mode`.
    pub fn open(
        dir: &Path,
        profile: ProfileName,
        id_mode: IdMode,
        unlock: &Unlock,
    ) -> Result<Self, SetupError> {
        let directory = CaDirectory::open_for_profile(dir, profile, None, unlock)?;
        let shared_issuing_ca_warning = directory.shared_issuing_ca_warning();
        let profile = Profile::from_config(profile, &directory.config)?;
        let chain = vec![
            directory.ca.certificate_der().to_vec(),
            directory.root_der.clone(),
        ];
        Ok(Self {
            ca: directory.ca.with_id_mode(id_mode),
            profile,
            chain,
            shared_issuing_ca_warning,
        })
    }
}

/// What a command asks of [`ProductionSetup::open`].
pub struct SetupRequest<'a> {
    /// The order to produce.
    pub order: OrderId,
    /// The profile the command certifies under; `None`: the one the
    /// order's kind is certified under (the card station takes both kinds).
    pub profile: Option<ProfileName>,
    /// The key target the command puts keys on; `None`: the order's own
    /// (`okc produce` serves the soft and hsm targets).
    pub target: Option<Target>,
    /// The CA directory.
    pub ca_dir: &'a Path,
    /// How to unlock the CA key; its session count is the run's workers.
    pub ca_unlock: Unlock,
    /// Whether GİB's test identifiers are accepted.
    pub id_mode: IdMode,
    /// The operator's extra closed days, for the purge deadline.
    pub closed_days: Option<&'a Path>,
    /// Who runs it, for the journal's audit log.
    pub operator: String,
    /// How long to wait for another producer of the order to finish
    /// (zero: refuse at once, naming it).
    pub lease_wait: Duration,
    /// What the operator is told on Ctrl-C, which then stops the run
    /// after what is in flight; `None`: the caller installs no Ctrl-C
    /// handler (a process has one, and a library caller may own it).
    pub on_ctrl_c: Option<OnCtrlC>,
}

/// What a command's key target opened, and how many workers it serves:
/// the CA key gets one signing session per worker.
pub struct OpenedTarget<T> {
    /// The opened key target (a token, the cards' credentials and readers).
    pub target: T,
    /// Parallel workers.
    pub workers: usize,
}

/// Everything a production run of one order needs, its order claimed.
pub struct ProductionSetup<'j> {
    /// The order as it stood when the run was set up.
    pub order: OrderSummary,
    /// The issuing CA, its profile and chain.
    pub issuing: IssuingCa,
    /// The business calendar, for the purge deadline.
    pub calendar: BusinessCalendar,
    /// Set by Ctrl-C: stop after what is in flight.
    pub stop: Arc<AtomicBool>,
    /// Who runs it.
    pub operator: String,
    /// How long to wait for another producer of the order.
    pub lease_wait: Duration,
    /// Parallel workers.
    pub workers: usize,
    /// The order's lease, held until the set-up is dropped.
    _claim: OrderClaim<'j>,
}

impl<'j> ProductionSetup<'j> {
    /// Sets up a run of `request.order` (the steps in the module
    /// documentation); `open_target` opens the command's key target once
    /// the order is checked and claimed, before the CA key is unlocked.
    pub fn open<T, E>(
        journal: &'j Mutex<dyn Journal>,
        request: SetupRequest<'_>,
        open_target: impl FnOnce(&OrderSummary) -> Result<OpenedTarget<T>, E>,
    ) -> Result<(Self, T), E>
    where
        E: From<SetupError>,
    {
        let order = lock(journal)
            .order(request.order)
            .map_err(SetupError::from)?;
        let profile = request.profile.unwrap_or_else(|| profile_of(order.kind));
        // Checked before any token or card is touched.
        check_producible(&order, profile, request.target.unwrap_or(order.target))
            .map_err(SetupError::from)?;
        let stop = match request.on_ctrl_c {
            Some(on_ctrl_c) => stop_on_ctrl_c(on_ctrl_c)?,
            None => Arc::new(AtomicBool::new(false)),
        };
        let claim = OrderClaim::take(
            journal,
            order.id,
            &request.operator,
            request.lease_wait,
            &stop,
        )
        .map_err(SetupError::from)?;
        let OpenedTarget { target, workers } = open_target(&order)?;
        let unlock = Unlock {
            sessions: Some(workers),
            ..request.ca_unlock
        };
        let issuing = IssuingCa::open(request.ca_dir, profile, request.id_mode, &unlock)?;
        let calendar = business_calendar(request.closed_days)?;
        let setup = Self {
            order,
            issuing,
            calendar,
            stop,
            operator: request.operator,
            lease_wait: request.lease_wait,
            workers,
            _claim: claim,
        };
        Ok((setup, target))
    }

    /// The run of the order on the key target, its deliveries under `out`;
    /// `on_device` is called after each device is verified.
    pub fn production<'s>(
        &'s self,
        out: PathBuf,
        on_device: &'s (dyn Fn() + Sync),
    ) -> Production<'s> {
        Production {
            order: self.order.id,
            ca: &self.issuing.ca,
            profile: &self.issuing.profile,
            chain: self.issuing.chain.clone(),
            out,
            workers: self.workers,
            operator: self.operator.clone(),
            stop: self.stop.clone(),
            on_device,
            calendar: &self.calendar,
            lease_wait: self.lease_wait,
        }
    }

    /// The card station's run of the order: one worker per reader, the
    /// keys in `slot`, the cards' PIN and PUK after it as `pin_policy`
    /// says, its deliveries under `out`; `on_event` receives every
    /// worker's events.
    pub fn station<'s>(
        &'s self,
        out: PathBuf,
        cards: StationCards,
        on_event: &'s (dyn Fn(&str, &StationEvent) + Sync),
    ) -> Station<'s> {
        let mut production = self.production(out, &|| {});
        production.workers = cards.readers.len();
        Station {
            production,
            readers: cards.readers,
            slot: cards.slot,
            credentials: cards.credentials,
            pin_policy: cards.pin_policy,
            on_event,
        }
    }
}

/// The card station's key target: the readers it serves and how it
/// treats the cards.
pub struct StationCards {
    /// The readers, one worker each.
    pub readers: Vec<String>,
    /// The slot the keys go into.
    pub slot: Slot,
    /// The cards' management key and PIN (and PUK, to set a fresh one).
    pub credentials: CardCredentials,
    /// The cards' PIN and PUK after the run.
    pub pin_policy: PinPolicy,
}
