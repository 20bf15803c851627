//! The virtual card's side of the `vsmartcard-vpcd` reader driver.
//!
//! vpcd is a PC/SC reader driver that listens on a TCP port per reader
//! slot; a virtual card connects to it. Connecting is inserting the card,
//! closing the connection is removing it. Every message, both ways, is a
//! two-octet big-endian length and a payload. From the driver, a one-octet
//! payload is a control code — 00 power off, 01 power on, 02 reset, 04 send
//! the ATR (only this one is answered, with the ATR) — and a longer payload
//! is a command APDU, answered with the response APDU. The driver asks for
//! the ATR every time pcscd polls the slot for presence (several times a
//! second), so an ATR request says nothing about use.
//!
//! [`run`] presents one card after another: with an [`EjectPolicy`] the
//! card "is removed" once it has been used and then reset by the reader, or
//! left idle, and after a pause a fresh, blank card "is inserted", until the
//! count is reached. A [`Fault`] removes the card when a chosen command
//! arrives, before it is answered, to rehearse a card pulled in the middle
//! of a write; or it answers the command and then loses contact, and the
//! same card comes back after the pause, as a re-seated card does. A mute
//! card (a dead chip, a card put in upside down) is present but cannot be
//! powered up: it is taken out after [`MUTE_CARD_STAYS`], as an operator
//! told that it does not answer would.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::{atr, CardConfig, VcardError, VirtualCard};
use crate::piv::apdu::{Response, StatusWord};

/// The default vpcd port (`CHANNELID 0x8C7B` in Debian's reader.conf).
pub const DEFAULT_PORT: u16 = 0x8C7B;

/// Control codes of the vpcd protocol.
mod control {
    pub const POWER_OFF: u8 = 0x00;
    pub const POWER_ON: u8 = 0x01;
    pub const RESET: u8 = 0x02;
    pub const GET_ATR: u8 = 0x04;
}

/// When a card that is in the reader is taken out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EjectPolicy {
    /// Never: the card stays until the program stops.
    Never,
    /// Once the card has answered at least one command and then received
    /// none for this long. A provisioning station talks to a card in one
    /// burst and then falls silent; an operator pulls the card when it is
    /// done. Idleness is the one sign of "done" that holds whatever the
    /// station wrote (or failed to write), so the rehearsal does not
    /// depend on the station's protocol.
    IdleAfterUse(Duration),
    /// Once the reader has reset the card after it answered a command —
    /// what a program does when it is through with a card (certmint's
    /// station and `card provision` end each card's transaction with a
    /// reset) — and then fallen quiet for
    /// [`QUIET_AFTER_RESET`], so that the reset itself completes. Unlike
    /// idleness, this does not depend on how long the program takes between
    /// two commands: a slow journal write in the middle of a card's
    /// provisioning does not pull the card. A power-off is not a reset
    /// here: pcscd powers an unused card off by itself a moment after the
    /// last program let go of it, which says nothing about the program being
    /// through with the card (`card list` leaves the card as it is).
    ResetAfterUse,
}

/// How long the reader must stay silent after a reset that follows use
/// before [`EjectPolicy::ResetAfterUse`] takes the card out. The driver asks
/// for the ATR right after a reset; pcscd's presence polls come every 0.4 s.
pub const QUIET_AFTER_RESET: Duration = Duration::from_millis(50);

/// Fault injection: remove the card when the `count`-th command APDU with
/// instruction `ins` arrives, before answering it (or, with `contact_lost`,
/// just after answering it). Every APDU counts, each
/// link of a command chain included, over the whole run (all cards); the
/// fault fires once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// The instruction byte to watch.
    pub ins: u8,
    /// Which arrival of it pulls the card (1 = the first).
    pub count: u32,
    /// Whether the card loses contact instead of being removed: it answers
    /// the command, then its connection is reset (not closed), so the
    /// driver's next exchange fails outright — pcsc-lite answers
    /// SCARD_E_NOT_TRANSACTED — where a removal gives an empty answer. The
    /// same card, with what it stored so far, comes back after the insert
    /// pause, as when the operator re-seats it.
    pub contact_lost: bool,
}

/// How the virtual card reaches the driver and behaves.
#[derive(Debug, Clone)]
pub struct VpcdOptions {
    /// Host of the pcscd running vpcd.
    pub host: String,
    /// vpcd's port: the reader's CHANNELID plus the slot index.
    pub port: u16,
    /// Factory settings of every card presented.
    pub card: CardConfig,
    /// How many cards to present, one after another.
    pub cards: u32,
    /// When a card is taken out.
    pub eject: EjectPolicy,
    /// Pause between taking a card out and inserting the next one. pcscd
    /// sees a removal when it next polls the slot, every 0.4 s; a card
    /// inserted before that poll passes for the one removed (no removal
    /// event, no power-on), so the pause is longer than the poll interval.
    pub insert_pause: Duration,
    /// Optional fault injection.
    pub fault: Option<Fault>,
    /// How many of the cards, the first ones, are mute.
    pub mute_cards: u32,
}

/// How long a mute card stays in the reader before it is taken out.
pub const MUTE_CARD_STAYS: Duration = Duration::from_secs(2);

/// What a mute card answers when the driver asks for its ATR: 34 octets,
/// one more than ISO/IEC 7816-3 allows, which no reader can take. vpcd sees
/// a card (any answer to the ATR request is one) that it cannot power up,
/// as a reader does with a chip that answers garbage to the reset.
const MUTE_ATR: [u8; 34] = [0x3B; 34];

impl Default for VpcdOptions {
    fn default() -> Self {
        VpcdOptions {
            host: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            card: CardConfig::default(),
            cards: 1,
            eject: EjectPolicy::Never,
            insert_pause: Duration::from_secs(1),
            fault: None,
            mute_cards: 0,
        }
    }
}

/// Why a card left the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The eject policy: idle this long after use.
    Idle(Duration),
    /// The fault injection fired on this command.
    Fault(Fault),
    /// The eject policy: reset by the reader after use.
    Reset,
    /// A mute card, taken out after [`MUTE_CARD_STAYS`].
    Mute,
}

/// What happens to the cards, for the operator's log. Events carry command
/// headers and lengths but never command data, so no PIN, PUK or key value
/// can reach a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardEvent {
    /// Waiting for vpcd to accept the connection.
    Connecting {
        /// host:port.
        address: String,
    },
    /// A card was inserted.
    Inserted {
        /// Its number, from 1.
        card: u32,
        /// Of how many.
        of: u32,
    },
    /// The reader powered the card on, off, or reset it.
    Power {
        /// The card.
        card: u32,
        /// "power on", "power off" or "reset".
        what: &'static str,
    },
    /// A command APDU was answered.
    Command {
        /// The card.
        card: u32,
        /// CLA INS P1 P2.
        header: [u8; 4],
        /// Length of the command data (never the data itself).
        data_len: usize,
        /// The status word answered.
        status: StatusWord,
    },
    /// The card was taken out.
    Removed {
        /// The card.
        card: u32,
        /// Why.
        why: Removal,
    },
    /// The driver closed the connection (pcscd stopped); the same card is
    /// inserted again when it comes back.
    ReaderGone {
        /// The card.
        card: u32,
    },
}

impl fmt::Display for CardEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CardEvent::Connecting { address } => {
                write!(f, "waiting for the vpcd reader at {address}")
            }
            CardEvent::Inserted { card, of } => write!(f, "card {card} of {of}: inserted"),
            CardEvent::Power { card, what } => write!(f, "card {card}: {what}"),
            CardEvent::Command {
                card,
                header,
                data_len,
                status,
            } => write!(
                f,
                "card {card}: {:02X} {:02X} {:02X} {:02X} {} ({data_len} data octets) -> {status}",
                header[0],
                header[1],
                header[2],
                header[3],
                instruction_name(header[1]),
            ),
            CardEvent::Removed { card, why } => match why {
                Removal::Idle(idle) => {
                    write!(f, "card {card}: removed after {} ms idle", idle.as_millis())
                }
                Removal::Reset => {
                    write!(f, "card {card}: removed after the reader reset it")
                }
                Removal::Mute => write!(
                    f,
                    "card {card}: mute card removed after {} ms",
                    MUTE_CARD_STAYS.as_millis()
                ),
                Removal::Fault(fault) if fault.contact_lost => write!(
                    f,
                    "card {card}: lost contact by fault injection after answering {} ({:02X}) #{}",
                    instruction_name(fault.ins),
                    fault.ins,
                    fault.count
                ),
                Removal::Fault(fault) => write!(
                    f,
                    "card {card}: removed by fault injection at {} ({:02X}) #{}, before answering",
                    instruction_name(fault.ins),
                    fault.ins,
                    fault.count
                ),
            },
            CardEvent::ReaderGone { card } => {
                write!(f, "card {card}: the reader closed the connection")
            }
        }
    }
}

/// The name of an instruction, for logs.
pub fn instruction_name(ins: u8) -> &'static str {
    match ins {
        0xA4 => "SELECT",
        0x20 => "VERIFY",
        0x24 => "CHANGE REFERENCE DATA",
        0x2C => "RESET RETRY COUNTER",
        0x87 => "GENERAL AUTHENTICATE",
        0x47 => "GENERATE ASYMMETRIC KEY PAIR",
        0xDB => "PUT DATA",
        0xCB => "GET DATA",
        0xC0 => "GET RESPONSE",
        _ => "unknown instruction",
    }
}

/// How one card's time in the reader ended.
#[derive(Clone, Copy)]
enum Ending {
    Removed(Removal),
    ReaderGone,
}

/// Presents `options.cards` cards to vpcd one after another and returns
/// once the last one was removed; with [`EjectPolicy::Never`] it returns
/// only on an error (stop the program to take the card out).
pub fn run(options: &VpcdOptions, on_event: &mut dyn FnMut(&CardEvent)) -> Result<(), VcardError> {
    if options.cards == 0 {
        return Err(VcardError::Options("present at least one card".into()));
    }
    let mut fault = options.fault;
    let mut fault_seen = 0u32;
    let mut number = 1;
    let mut card = VirtualCard::new(&options.card)?;
    while number <= options.cards {
        let stream = connect(options, on_event)?;
        on_event(&CardEvent::Inserted {
            card: number,
            of: options.cards,
        });
        let mut session = CardSession {
            stream,
            card: &mut card,
            number,
            eject: options.eject,
            fault: &mut fault,
            fault_seen: &mut fault_seen,
            mute: number <= options.mute_cards,
            buffer: Vec::new(),
        };
        let ending = session.serve(on_event)?;
        // Logged before the connection closes, so the log never lags what
        // the reader sees.
        on_event(&match ending {
            Ending::Removed(why) => CardEvent::Removed { card: number, why },
            Ending::ReaderGone => CardEvent::ReaderGone { card: number },
        });
        // Close the connection now: that is the removal. Held through the
        // pause, vpcd would wait for an answer until the next insertion
        // and pcscd would never see the slot empty.
        drop(session);
        match ending {
            // The card that lost contact is still the operator's card: it
            // comes back, as it is, when re-seated after the pause.
            Ending::Removed(Removal::Fault(Fault {
                contact_lost: true, ..
            }))
            | Ending::ReaderGone => card.reset(),
            Ending::Removed(_) => {
                number += 1;
                if number <= options.cards {
                    card = VirtualCard::new(&options.card)?;
                }
            }
        }
        if number <= options.cards {
            std::thread::sleep(options.insert_pause);
        }
    }
    Ok(())
}

/// Connects to vpcd, retrying while it is not listening yet.
fn connect(
    options: &VpcdOptions,
    on_event: &mut dyn FnMut(&CardEvent),
) -> Result<TcpStream, VcardError> {
    let address = format!("{}:{}", options.host, options.port);
    let mut announced = false;
    loop {
        match TcpStream::connect((options.host.as_str(), options.port)) {
            Ok(stream) => {
                stream.set_nodelay(true).map_err(|source| VcardError::Io {
                    what: format!("configure the connection to {address}"),
                    source,
                })?;
                return Ok(stream);
            }
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::TimedOut) => {
                if !announced {
                    on_event(&CardEvent::Connecting {
                        address: address.clone(),
                    });
                    announced = true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(source) => {
                return Err(VcardError::Io {
                    what: format!("connect to vpcd at {address}"),
                    source,
                })
            }
        }
    }
}

/// One card in the reader: the connection and the card's state.
struct CardSession<'a> {
    stream: TcpStream,
    card: &'a mut VirtualCard,
    number: u32,
    eject: EjectPolicy,
    fault: &'a mut Option<Fault>,
    fault_seen: &'a mut u32,
    /// Whether this card is mute: it answers the ATR request with an ATR
    /// no reader takes, and nothing else.
    mute: bool,
    /// Octets received and not yet a whole message.
    buffer: Vec<u8>,
}

impl CardSession<'_> {
    fn serve(&mut self, on_event: &mut dyn FnMut(&CardEvent)) -> Result<Ending, VcardError> {
        let mut last_command: Option<Instant> = None;
        // Since when the reader, having reset the card after use, has been
        // quiet (for EjectPolicy::ResetAfterUse).
        let mut quiet_since_reset: Option<Instant> = None;
        let inserted = Instant::now();
        loop {
            // How long the card may still wait for a message before the
            // eject policy takes it out.
            let patience = match (self.eject, last_command, quiet_since_reset) {
                _ if self.mute => {
                    let left = MUTE_CARD_STAYS.saturating_sub(inserted.elapsed());
                    if left.is_zero() {
                        return Ok(Ending::Removed(Removal::Mute));
                    }
                    Some(left)
                }
                (EjectPolicy::IdleAfterUse(idle), Some(at), _) => {
                    let left = idle.saturating_sub(at.elapsed());
                    if left.is_zero() {
                        return Ok(Ending::Removed(Removal::Idle(idle)));
                    }
                    Some(left)
                }
                (EjectPolicy::ResetAfterUse, _, Some(since)) => {
                    let left = QUIET_AFTER_RESET.saturating_sub(since.elapsed());
                    if left.is_zero() {
                        return Ok(Ending::Removed(Removal::Reset));
                    }
                    Some(left)
                }
                _ => None,
            };
            let Some(message) = self.receive(patience)? else {
                return Ok(Ending::ReaderGone);
            };
            match message.as_slice() {
                // A timeout: loop to check the eject policy.
                [] => continue,
                [code] => {
                    self.control(*code, on_event)?;
                    let reset = *code == control::RESET;
                    if quiet_since_reset.is_some() || (reset && last_command.is_some()) {
                        quiet_since_reset = Some(Instant::now());
                    }
                }
                // The driver cannot power a mute card up, so it sends no
                // command; should one come, a mute card does not answer it.
                _ if self.mute => continue,
                apdu => {
                    let fault = self.fault_fires(apdu);
                    if let Some(fault) = fault.filter(|f| !f.contact_lost) {
                        return Ok(Ending::Removed(Removal::Fault(fault)));
                    }
                    let response = self.card.process(apdu);
                    self.send(&response)?;
                    last_command = Some(Instant::now());
                    // Used again: the card stays until the next reset.
                    quiet_since_reset = None;
                    on_event(&command_event(self.number, apdu, &response));
                    if let Some(fault) = fault {
                        self.reset_on_close()?;
                        return Ok(Ending::Removed(Removal::Fault(fault)));
                    }
                }
            }
        }
    }

    fn control(
        &mut self,
        code: u8,
        on_event: &mut dyn FnMut(&CardEvent),
    ) -> Result<(), VcardError> {
        let what = match code {
            control::GET_ATR if self.mute => return self.send(&MUTE_ATR),
            control::GET_ATR => return self.send(&atr()),
            _ if self.mute => return Ok(()),
            control::POWER_OFF => "power off",
            control::POWER_ON => "power on",
            control::RESET => "reset",
            // Unknown control codes have no answer in the protocol.
            _ => return Ok(()),
        };
        self.card.reset();
        on_event(&CardEvent::Power {
            card: self.number,
            what,
        });
        Ok(())
    }

    /// Makes closing the connection reset it (a zero linger time: TCP RST
    /// instead of FIN), as a card that loses contact breaks the exchange.
    fn reset_on_close(&self) -> Result<(), VcardError> {
        use nix::sys::socket::{setsockopt, sockopt::Linger};
        let linger = nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        setsockopt(&self.stream, Linger, &linger)
            .map_err(|e| io_error("reset the connection to vpcd", e.into()))
    }

    /// The fault, taken so it fires once, when `apdu` is the one it waits for.
    fn fault_fires(&mut self, apdu: &[u8]) -> Option<Fault> {
        let fault = (*self.fault)?;
        if apdu.get(1) != Some(&fault.ins) {
            return None;
        }
        *self.fault_seen += 1;
        if *self.fault_seen == fault.count {
            self.fault.take()
        } else {
            None
        }
    }

    /// The next whole message; `Some(empty)` when `patience` ran out first,
    /// `None` when the driver closed the connection.
    fn receive(&mut self, patience: Option<Duration>) -> Result<Option<Vec<u8>>, VcardError> {
        let deadline = patience.map(|p| Instant::now() + p);
        loop {
            if let Some(message) = self.take_message() {
                return Ok(Some(message));
            }
            let timeout = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(Some(Vec::new()));
                    }
                    Some(left)
                }
                None => None,
            };
            self.stream
                .set_read_timeout(timeout)
                .map_err(|source| io_error("set the read timeout", source))?;
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(Some(Vec::new()))
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) =>
                {
                    return Ok(None)
                }
                Err(source) => return Err(io_error("read from vpcd", source)),
            }
        }
    }

    /// Cuts one `length payload` message off the front of the buffer.
    fn take_message(&mut self) -> Option<Vec<u8>> {
        take_frame(&mut self.buffer)
    }

    fn send(&mut self, payload: &[u8]) -> Result<(), VcardError> {
        let length = u16::try_from(payload.len()).map_err(|_| {
            VcardError::Options(format!(
                "a {}-octet message does not fit vpcd",
                payload.len()
            ))
        })?;
        let mut message = length.to_be_bytes().to_vec();
        message.extend_from_slice(payload);
        self.stream
            .write_all(&message)
            .map_err(|source| io_error("write to vpcd", source))
    }
}

/// Cuts the first whole vpcd message (a two-octet big-endian length, then
/// that many octets) off the front of `buffer`, the octets received from the
/// driver so far, and returns its payload; `None` while no whole non-empty
/// message is there yet. Zero-length messages carry nothing (the driver
/// never sends one) and are dropped. Public so that the frame parser can be
/// fuzzed on its own.
pub fn take_frame(buffer: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        let [high, low, ..] = buffer[..] else {
            return None;
        };
        let length = u16::from_be_bytes([high, low]) as usize;
        if buffer.len() < 2 + length {
            return None;
        }
        let message = buffer[2..2 + length].to_vec();
        buffer.drain(..2 + length);
        if !message.is_empty() {
            return Some(message);
        }
    }
}

fn io_error(what: &str, source: std::io::Error) -> VcardError {
    VcardError::Io {
        what: what.to_string(),
        source,
    }
}

fn command_event(card: u32, apdu: &[u8], response: &[u8]) -> CardEvent {
    let mut header = [0u8; 4];
    for (slot, byte) in header.iter_mut().zip(apdu) {
        *slot = *byte;
    }
    let data_len = crate::piv::apdu::Command::parse(apdu)
        .map(|c| c.data.len())
        .unwrap_or(0);
    let status = Response::parse(response)
        .map(|r| r.status)
        .unwrap_or(StatusWord::NO_PRECISE_DIAGNOSIS);
    CardEvent::Command {
        card,
        header,
        data_len,
        status,
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    /// The driver's side of the protocol: one framed message.
    fn send(stream: &mut TcpStream, payload: &[u8]) {
        let mut message = (payload.len() as u16).to_be_bytes().to_vec();
        message.extend_from_slice(payload);
        stream.write_all(&message).unwrap();
    }

    /// One framed message from the card; `None` when it closed the
    /// connection (the card was removed).
    fn receive(stream: &mut TcpStream) -> Option<Vec<u8>> {
        let mut length = [0u8; 2];
        stream.read_exact(&mut length).ok()?;
        let mut payload = vec![0u8; u16::from_be_bytes(length) as usize];
        stream.read_exact(&mut payload).ok()?;
        Some(payload)
    }

    const SELECT_PIV: [u8; 15] = [
        0x00, 0xA4, 0x04, 0x00, 0x09, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x00,
    ];

    /// The driver's side of a card insertion: the card's connection, with
    /// reads that give up after 5 s rather than hang a failing test.
    fn insertion(listener: &TcpListener) -> TcpStream {
        let (reader, _) = listener.accept().unwrap();
        reader
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        reader
    }

    /// The card's thread: its events, once every card was presented.
    type Running = std::thread::JoinHandle<Result<Vec<CardEvent>, VcardError>>;

    /// Runs the card against a local listener standing in for vpcd.
    fn start(options: VpcdOptions) -> (TcpListener, Running) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let options = VpcdOptions {
            port: listener.local_addr().unwrap().port(),
            ..options
        };
        let card = std::thread::spawn(move || {
            let mut events = Vec::new();
            run(&options, &mut |event| events.push(event.clone())).map(|()| events)
        });
        (listener, card)
    }

    #[test]
    fn cards_speak_the_vpcd_protocol_and_leave_when_idle_after_use() {
        let (listener, card) = start(VpcdOptions {
            cards: 2,
            eject: EjectPolicy::IdleAfterUse(Duration::from_millis(150)),
            insert_pause: Duration::from_millis(10),
            ..VpcdOptions::default()
        });
        for _ in 1..=2 {
            let mut reader = insertion(&listener);
            // ATR requests (presence polls) do not count as use: the card
            // stays while only they arrive.
            for _ in 0..3 {
                send(&mut reader, &[control::GET_ATR]);
                assert_eq!(receive(&mut reader), Some(atr()));
                std::thread::sleep(Duration::from_millis(100));
            }
            send(&mut reader, &[control::POWER_ON]);
            send(&mut reader, &SELECT_PIV);
            let response = receive(&mut reader).unwrap();
            assert_eq!(&response[response.len() - 2..], &[0x90, 0x00]);
            // Used, then idle: the card leaves (the connection closes).
            assert_eq!(receive(&mut reader), None);
        }
        let events = card.join().unwrap().unwrap();
        let idle = Removal::Idle(Duration::from_millis(150));
        for expected in [
            CardEvent::Inserted { card: 1, of: 2 },
            CardEvent::Removed { card: 1, why: idle },
            CardEvent::Inserted { card: 2, of: 2 },
            CardEvent::Removed { card: 2, why: idle },
        ] {
            assert!(events.contains(&expected), "{expected} in {events:?}");
        }
        assert!(events
            .iter()
            .any(|e| e.to_string()
                == "card 1: 00 A4 04 00 SELECT (9 data octets) -> 90 00 (success)"));
    }

    #[test]
    fn cards_leave_when_reset_after_use_however_long_the_reader_pauses() {
        let (listener, card) = start(VpcdOptions {
            cards: 2,
            eject: EjectPolicy::ResetAfterUse,
            insert_pause: Duration::from_millis(10),
            ..VpcdOptions::default()
        });
        for _ in 1..=2 {
            let mut reader = insertion(&listener);
            send(&mut reader, &[control::POWER_ON]);
            // A reset before any command is the reader's own: the card stays.
            send(&mut reader, &[control::RESET]);
            send(&mut reader, &[control::GET_ATR]);
            assert_eq!(receive(&mut reader), Some(atr()));
            std::thread::sleep(QUIET_AFTER_RESET * 3);
            send(&mut reader, &SELECT_PIV);
            assert!(receive(&mut reader).is_some());
            // A long pause between two commands (a slow journal write at the
            // station) does not pull the card.
            std::thread::sleep(Duration::from_millis(400));
            send(&mut reader, &SELECT_PIV);
            assert!(receive(&mut reader).is_some(), "still in after a pause");
            // The program is through: it resets the card, the driver asks
            // for the ATR, and the card leaves once the reader is quiet.
            send(&mut reader, &[control::RESET]);
            send(&mut reader, &[control::GET_ATR]);
            assert_eq!(receive(&mut reader), Some(atr()));
            assert_eq!(receive(&mut reader), None);
        }
        let events = card.join().unwrap().unwrap();
        for expected in [
            CardEvent::Removed {
                card: 1,
                why: Removal::Reset,
            },
            CardEvent::Removed {
                card: 2,
                why: Removal::Reset,
            },
        ] {
            assert!(events.contains(&expected), "{expected} in {events:?}");
        }
        assert_eq!(
            CardEvent::Removed {
                card: 1,
                why: Removal::Reset
            }
            .to_string(),
            "card 1: removed after the reader reset it"
        );
    }

    #[test]
    fn a_card_that_lost_contact_answered_then_comes_back_as_it_was() {
        let fault = Fault {
            ins: 0xA4,
            count: 2,
            contact_lost: true,
        };
        let (listener, card) = start(VpcdOptions {
            fault: Some(fault),
            eject: EjectPolicy::ResetAfterUse,
            insert_pause: Duration::from_millis(10),
            ..VpcdOptions::default()
        });
        let get_chuid = [
            0x00, 0xCB, 0x3F, 0xFF, 0x05, 0x5C, 0x03, 0x5F, 0xC1, 0x02, 0x00,
        ];
        let mut reader = insertion(&listener);
        send(&mut reader, &[control::POWER_ON]);
        send(&mut reader, &SELECT_PIV);
        assert!(receive(&mut reader).is_some());
        send(&mut reader, &get_chuid);
        let chuid = receive(&mut reader).unwrap();
        assert_eq!(&chuid[chuid.len() - 2..], &[0x90, 0x00]);
        // The second SELECT is answered, then the contact breaks: not an
        // orderly close (a read of 0 octets) but a reset connection.
        send(&mut reader, &SELECT_PIV);
        let response = receive(&mut reader).unwrap();
        assert_eq!(&response[response.len() - 2..], &[0x90, 0x00]);
        let mut rest = [0u8; 16];
        let error = reader.read(&mut rest).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::ConnectionReset);
        // Re-seated, it is the same card (same CHUID), not the next one.
        let mut reader = insertion(&listener);
        send(&mut reader, &[control::POWER_ON]);
        send(&mut reader, &SELECT_PIV);
        assert!(receive(&mut reader).is_some());
        send(&mut reader, &get_chuid);
        assert_eq!(receive(&mut reader), Some(chuid));
        send(&mut reader, &[control::RESET]);
        assert_eq!(receive(&mut reader), None, "reset after use: it leaves");
        let events: Vec<String> = card
            .join()
            .unwrap()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            events.contains(
                &"card 1: lost contact by fault injection after answering SELECT (A4) #2".into()
            ),
            "{events:?}"
        );
        assert_eq!(
            events
                .iter()
                .filter(|e| *e == "card 1 of 1: inserted")
                .count(),
            2,
            "{events:?}"
        );
    }

    #[test]
    fn a_fault_removes_the_card_before_it_answers() {
        let fault = Fault {
            ins: 0xCB,
            count: 2,
            contact_lost: false,
        };
        let (listener, card) = start(VpcdOptions {
            fault: Some(fault),
            ..VpcdOptions::default()
        });
        let mut reader = insertion(&listener);
        send(&mut reader, &[control::POWER_ON]);
        send(&mut reader, &SELECT_PIV);
        assert!(receive(&mut reader).is_some());
        let get_discovery = [0x00, 0xCB, 0x3F, 0xFF, 0x03, 0x5C, 0x01, 0x7E, 0x00];
        send(&mut reader, &get_discovery);
        assert!(
            receive(&mut reader).is_some(),
            "the first GET DATA is answered"
        );
        send(&mut reader, &get_discovery);
        assert_eq!(receive(&mut reader), None, "the second pulls the card");
        let events = card.join().unwrap().unwrap();
        assert_eq!(
            events.last(),
            Some(&CardEvent::Removed {
                card: 1,
                why: Removal::Fault(fault)
            })
        );
    }
}
