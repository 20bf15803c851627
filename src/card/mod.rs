//! PIV smart cards through PC/SC: the readers and what is in them, waiting
//! for a card to come or go (PC/SC status changes, never polling), and one
//! exclusive transaction per operation in which a [`PivClient`] talks to the
//! card. [`provision`] makes one Mali Mühür or ÖKC card; [`station`] runs
//! one worker per reader over an order.

pub mod provision;
pub mod station;

use std::ffi::CString;
use std::time::Duration;

use pcsc::{Context, Protocols, ReaderState, Scope, ShareMode, State};
use serde::Serialize;

use crate::piv::client::{PivClient, PivError, Transport};

/// The largest response APDU of a short exchange: 256 data octets and SW1 SW2.
const MAX_RESPONSE: usize = 258;

/// PC/SC failures, in words an operator can act on.
pub fn reader_error(error: pcsc::Error) -> PivError {
    match error {
        pcsc::Error::RemovedCard | pcsc::Error::ResetCard | pcsc::Error::NoSmartcard => {
            PivError::CardRemoved
        }
        pcsc::Error::NoService | pcsc::Error::ServiceStopped => PivError::Reader(
            "the PC/SC service (pcscd) is not running: start it (systemctl start pcscd.socket)"
                .into(),
        ),
        pcsc::Error::NoReadersAvailable => PivError::Reader("no card reader is connected".into()),
        pcsc::Error::UnknownReader | pcsc::Error::ReaderUnavailable => {
            PivError::Reader("the reader is gone or unavailable".into())
        }
        pcsc::Error::SharingViolation => PivError::Reader(
            "another program holds the card exclusively; close it and retry".into(),
        ),
        pcsc::Error::Cancelled => PivError::Reader("cancelled".into()),
        // The reader sees a card it cannot power up, or that does not answer
        // the reset, or whose protocol it cannot speak: this card's fault.
        pcsc::Error::UnpoweredCard | pcsc::Error::UnresponsiveCard => PivError::CardUnusable(
            "it cannot be powered up or does not answer the reset (a damaged chip or \
                 contacts, or the card is the wrong way round)",
        ),
        pcsc::Error::UnsupportedCard | pcsc::Error::CardUnsupported => {
            PivError::CardUnusable("the reader cannot speak its protocol")
        }
        other => PivError::Reader(other.to_string()),
    }
}

/// A failed exchange with the card, in words an operator can act on.
/// SCARD_E_NOT_TRANSACTED is pcsc-lite's answer when the reader driver could
/// not carry the exchange: the card went away or lost contact in the middle
/// of it (vpcd gives it when the card's connection breaks). Either way this
/// card's state is unknown, as with a pull, and another card may well work.
fn transmit_error(error: pcsc::Error) -> PivError {
    match error {
        pcsc::Error::NotTransacted => PivError::CardRemoved,
        other => reader_error(other),
    }
}

/// A [`Transport`] over one PC/SC transaction.
pub struct PcscTransport<'tx> {
    transaction: pcsc::Transaction<'tx>,
}

impl Transport for PcscTransport<'_> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, PivError> {
        let mut buffer = [0u8; MAX_RESPONSE];
        let response = self
            .transaction
            .transmit(apdu, &mut buffer)
            .map_err(transmit_error)?;
        // A reader that lost the card mid-exchange may report success with
        // no bytes at all (vsmartcard's vpcd does): no status word means no card.
        if response.len() < 2 {
            return Err(PivError::CardRemoved);
        }
        Ok(response.to_vec())
    }
}

/// The PC/SC context of this process.
pub struct Readers {
    context: Context,
}

/// One reader as `card list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ReaderReport {
    /// The reader's name.
    pub reader: String,
    /// Whether a card is in it.
    pub card_present: bool,
    /// The card's ATR in hex.
    pub atr: Option<String>,
    /// Whether the card answers to the PIV application identifier (None when
    /// it could not be asked: no card, or in use by another program).
    pub piv: Option<bool>,
    /// Why the card could not be asked, when it could not.
    pub note: Option<String>,
}

impl Readers {
    /// Connects to the PC/SC service.
    pub fn establish() -> Result<Self, PivError> {
        let context = Context::establish(Scope::User).map_err(reader_error)?;
        Ok(Readers { context })
    }

    /// The names of the readers connected now.
    pub fn names(&self) -> Result<Vec<String>, PivError> {
        match self.context.list_readers_owned() {
            Ok(names) => Ok(names
                .into_iter()
                .map(|n| n.to_string_lossy().into_owned())
                .collect()),
            Err(pcsc::Error::NoReadersAvailable) => Ok(Vec::new()),
            Err(e) => Err(reader_error(e)),
        }
    }

    /// Every reader with its card, asking each present card for PIV.
    pub fn list(&self) -> Result<Vec<ReaderReport>, PivError> {
        let names = self.names()?;
        let mut states: Vec<ReaderState> = names
            .iter()
            .map(|n| ReaderState::new(c_name(n), State::UNAWARE))
            .collect();
        if !states.is_empty() {
            self.context
                .get_status_change(Duration::ZERO, &mut states)
                .map_err(reader_error)?;
        }
        let mut reports = Vec::new();
        for (name, state) in names.iter().zip(&states) {
            let present = state.event_state().contains(State::PRESENT);
            let mut report = ReaderReport {
                reader: name.clone(),
                card_present: present,
                atr: present.then(|| crate::pem::hex(state.atr())),
                piv: None,
                note: None,
            };
            if present {
                match self.with_card_left_as_is(name, |client| client.select()) {
                    Ok(_) => report.piv = Some(true),
                    Err(PivError::NoPivApplication) => report.piv = Some(false),
                    Err(PivError::Status { .. }) => report.piv = Some(false),
                    Err(e) => report.note = Some(e.to_string()),
                }
            }
            reports.push(report);
        }
        Ok(reports)
    }

    /// Runs `operation` with a PIV client on the card in `reader`, inside one
    /// exclusive PC/SC transaction; the card is reset when the transaction
    /// ends, so no security status (a verified PIN) outlives the operation.
    pub fn with_card<R>(
        &self,
        reader: &str,
        operation: impl FnOnce(&mut PivClient<PcscTransport<'_>>) -> Result<R, PivError>,
    ) -> Result<R, PivError> {
        self.with_card_then(reader, pcsc::Disposition::ResetCard, operation)
    }

    /// Runs `operation` like [`Readers::with_card`] but leaves the card as
    /// it is afterwards: no reset, no power-off. For operations that only
    /// look (`card list`), which must not disturb a card another program or
    /// a person is using; they verify no PIN, so no security status is left.
    pub fn with_card_left_as_is<R>(
        &self,
        reader: &str,
        operation: impl FnOnce(&mut PivClient<PcscTransport<'_>>) -> Result<R, PivError>,
    ) -> Result<R, PivError> {
        self.with_card_then(reader, pcsc::Disposition::LeaveCard, operation)
    }

    /// One shared connection and one transaction around `operation`; the
    /// transaction ends and the connection closes with `disposition`.
    fn with_card_then<R>(
        &self,
        reader: &str,
        disposition: pcsc::Disposition,
        operation: impl FnOnce(&mut PivClient<PcscTransport<'_>>) -> Result<R, PivError>,
    ) -> Result<R, PivError> {
        let mut card = self
            .context
            .connect(&c_name(reader), ShareMode::Shared, Protocols::ANY)
            .map_err(reader_error)?;
        let transaction = card.transaction().map_err(reader_error)?;
        let mut client = PivClient::new(PcscTransport { transaction });
        let result = operation(&mut client);
        let PcscTransport { transaction } = client.into_transport();
        // Ending the transaction or the connection fails only when the card
        // is already gone, which the operation's own result reports.
        let _ = transaction.end(disposition);
        // Dropping a connection resets the card (the pcsc crate's choice):
        // it is closed explicitly with the disposition asked for.
        let _ = card.disconnect(disposition);
        result
    }

    /// Starts watching `reader` for cards coming and going.
    pub fn watch(&self, reader: &str) -> ReaderWatch {
        ReaderWatch {
            reader: reader.to_owned(),
            state: ReaderState::new(c_name(reader), State::UNAWARE),
            card_events: None,
        }
    }

    /// Waits until a card is present (returns at once if one is). `None`
    /// waits forever. Returns whether a card is present. A mute card (one
    /// pcscd could not power up) counts: connecting to it says what is
    /// wrong with it ([`PivError::CardUnusable`]), where ignoring it would
    /// leave the operator waiting with a card in the reader.
    pub fn wait_for_card(
        &self,
        watch: &mut ReaderWatch,
        timeout: Option<Duration>,
    ) -> Result<bool, PivError> {
        let present = self.wait_until(watch, timeout, |watch| {
            let state = watch.state.event_state();
            state.contains(State::PRESENT)
        })?;
        if present {
            watch.card_events = Some(watch.state.event_count());
        }
        Ok(present)
    }

    /// Waits until the card seen by the last [`Readers::wait_for_card`] has
    /// left: the reader is empty, or holds another card (pcsc-lite counts
    /// card events, so a swap between two looks is not missed).
    pub fn wait_for_removal(
        &self,
        watch: &mut ReaderWatch,
        timeout: Option<Duration>,
    ) -> Result<bool, PivError> {
        let gone = self.wait_until(watch, timeout, |watch| {
            let swapped = watch
                .card_events
                .is_some_and(|events| events != watch.state.event_count());
            !watch.state.event_state().contains(State::PRESENT) || swapped
        })?;
        if gone {
            watch.card_events = None;
        }
        Ok(gone)
    }

    /// Waits, change by change, until `reached` holds for the reader's
    /// state; returns false on timeout.
    fn wait_until(
        &self,
        watch: &mut ReaderWatch,
        timeout: Option<Duration>,
        reached: impl Fn(&ReaderWatch) -> bool,
    ) -> Result<bool, PivError> {
        while !reached(watch) {
            if !self.next_change(watch, timeout)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Waits for the reader's state to differ from the one last seen;
    /// returns false on timeout.
    fn next_change(
        &self,
        watch: &mut ReaderWatch,
        timeout: Option<Duration>,
    ) -> Result<bool, PivError> {
        watch.state.sync_current_state();
        let outcome = match timeout {
            Some(t) => self
                .context
                .get_status_change(t, std::slice::from_mut(&mut watch.state)),
            None => self
                .context
                .get_status_change(None, std::slice::from_mut(&mut watch.state)),
        };
        match outcome {
            Ok(()) => {}
            Err(pcsc::Error::Timeout) => return Ok(false),
            Err(e) => return Err(reader_error(e)),
        }
        if watch
            .state
            .event_state()
            .intersects(State::UNKNOWN | State::IGNORE)
        {
            return Err(PivError::Reader(format!(
                "reader {:?} is gone",
                watch.reader
            )));
        }
        Ok(true)
    }
}

/// One reader's state as last seen, kept across waits.
pub struct ReaderWatch {
    reader: String,
    state: ReaderState,
    /// The reader's card-event count when the current card was seen.
    card_events: Option<u32>,
}

fn c_name(name: &str) -> CString {
    // Reader names come from PC/SC itself or from the operator; an interior
    // NUL cannot name a reader, so it maps to a name no reader has.
    CString::new(name).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The station goes on to the next card for a card that cannot be used
    /// and stops for a reader or service that is gone. pcsc-lite with vpcd
    /// only ever answers SCARD_W_UNPOWERED_CARD for a mute card (rehearsed
    /// end to end in tests/card_cli.rs); the others a real reader
    /// gives are checked here.
    #[test]
    fn a_card_the_reader_cannot_use_is_that_cards_fault_and_not_the_readers() {
        for error in [
            pcsc::Error::UnpoweredCard,
            pcsc::Error::UnresponsiveCard,
            pcsc::Error::UnsupportedCard,
            pcsc::Error::CardUnsupported,
        ] {
            assert!(
                matches!(reader_error(error), PivError::CardUnusable(_)),
                "{error:?}"
            );
        }
        for error in [pcsc::Error::RemovedCard, pcsc::Error::ResetCard] {
            assert!(
                matches!(reader_error(error), PivError::CardRemoved),
                "{error:?}"
            );
        }
        for error in [
            pcsc::Error::NoService,
            pcsc::Error::NoReadersAvailable,
            pcsc::Error::ReaderUnavailable,
        ] {
            assert!(
                matches!(reader_error(error), PivError::Reader(_)),
                "{error:?}"
            );
        }
    }
}
