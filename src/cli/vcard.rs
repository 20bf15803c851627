//! `certmint card virtual`: parsing and reporting; the card and the vpcd
//! protocol are in the library (`certmint::tools::vcard`).

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use zeroize::Zeroizing;

use certmint::piv::mgmt::{ManagementKey, MgmtAlgorithm};
use certmint::tools::vcard::vpcd::{self, EjectPolicy, Fault, VpcdOptions};
use certmint::tools::vcard::CardConfig;

#[derive(Args)]
#[command(after_help = "Examples:\n  \
certmint card virtual\n  \
certmint card virtual --port 35964 --cards 5 --eject-on-reset\n  \
certmint card virtual --port 35964 --cards 5 --eject-idle-ms 2000\n  \
certmint card virtual --mgmt-algorithm aes192 --remove-on-ins db --remove-on-count 1\n  \
certmint card virtual --remove-on-ins db --lose-contact\n  \
certmint card virtual --cards 3 --mute-cards 1 --eject-on-reset\n\n\
Connects to the vsmartcard-vpcd reader driver of a running pcscd (Debian package vsmartcard-vpcd,\n\
reader.conf CHANNELID 0x8C7B = port 35963; each vpcd reader line gives two slots, ports N and N+1).\n\
Connecting is inserting the card; the card is a factory-fresh PIV card (SP 800-73-4) with a new\n\
CHUID, CCC and discovery object. With --cards N, a card that was used is removed once the reader\n\
resets it (--eject-on-reset: how certmint's station and card provision end their work with a card)\n\
or once it was left idle (--eject-idle-ms), and after --insert-pause-ms a fresh card is inserted,\n\
until N cards were presented. --remove-on-ins pulls the card when that command arrives, before it\n\
is answered; with --lose-contact the card answers it and then loses contact, as with a bad contact\n\
(the reader's next exchange fails outright instead of finding the card gone), and the same card\n\
comes back after --insert-pause-ms, as when it is re-seated. A mute card (--mute-cards) answers\n\
the reader with an ATR no reader takes, so pcscd sees a card it cannot power up.\n\
pcscd notices a removal when it next polls the slot (every 0.4 s): with a shorter\n\
--insert-pause-ms the next card may pass for the same one.\n\
Each card's life is logged to standard error: insertion, removal, power, and every command's\n\
header, data length and status word; never command data.\n\n\
The PIN, PUK and management key options are the virtual card's FACTORY SETTINGS for rehearsal,\n\
not secrets: a real card's secrets never go on a command line.")]
pub struct VirtualArgs {
    /// Host of the pcscd whose vpcd reader takes the card.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// vpcd port: the reader's CHANNELID plus the slot index (0 or 1).
    #[arg(long, default_value_t = vpcd::DEFAULT_PORT)]
    port: u16,
    /// How many cards to present, one after another (more than one needs --eject-on-reset or --eject-idle-ms).
    #[arg(long, default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=MAX_CARDS))]
    cards: u32,
    /// Remove a card once it has answered a command and then heard none for this many milliseconds.
    #[arg(long, conflicts_with = "eject_on_reset",
          value_parser = clap::value_parser!(u64).range(1..=MAX_MILLISECONDS))]
    eject_idle_ms: Option<u64>,
    /// Remove a card once the reader resets it after it has answered a command.
    #[arg(long)]
    eject_on_reset: bool,
    /// Pause between removing a card and inserting the next, in milliseconds (see below).
    #[arg(long, default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(0..=MAX_MILLISECONDS))]
    insert_pause_ms: u64,
    /// Management key algorithm: 3des, aes128, aes192 or aes256.
    #[arg(long, default_value = "3des", value_parser = parse_mgmt_algorithm)]
    mgmt_algorithm: MgmtAlgorithm,
    /// Management key in hex (factory setting; default 0102030405060708 repeated to the key length).
    #[arg(long)]
    mgmt_key: Option<String>,
    /// PIN (factory setting, 6 to 8 digits).
    #[arg(long, default_value = "123456")]
    pin: String,
    /// PUK (factory setting, 6 to 8 characters).
    #[arg(long, default_value = "12345678")]
    puk: String,
    /// PIN tries before the PIN blocks (1 to 15).
    #[arg(long, default_value_t = 3)]
    pin_tries: u8,
    /// PUK tries before the PUK blocks (1 to 15).
    #[arg(long, default_value_t = 3)]
    puk_tries: u8,
    /// Fault injection: remove the card when a command with this INS (hex, e.g. db) arrives, before answering.
    #[arg(long, value_parser = parse_ins)]
    remove_on_ins: Option<u8>,
    /// Which arrival of --remove-on-ins pulls the card (1 = the first; every APDU of a chain counts).
    #[arg(long, default_value_t = 1, requires = "remove_on_ins",
          value_parser = clap::value_parser!(u32).range(1..=MAX_CARDS))]
    remove_on_count: u32,
    /// With --remove-on-ins: the card answers that command, then loses contact (the reader's next exchange fails); the same card comes back after the pause.
    #[arg(long, requires = "remove_on_ins")]
    lose_contact: bool,
    /// The first N cards are mute: present, but they cannot be powered up (a dead chip); each is taken out after 2 s.
    #[arg(long, default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=MAX_CARDS))]
    mute_cards: u32,
}

/// The most cards one rehearsal presents (and the most arrivals
/// --remove-on-count waits for): far beyond any station's batch of cards.
const MAX_CARDS: i64 = 100_000;

/// The longest pause or idle time a rehearsal takes, in milliseconds (an hour).
const MAX_MILLISECONDS: u64 = 3_600_000;

fn parse_mgmt_algorithm(name: &str) -> Result<MgmtAlgorithm, String> {
    MgmtAlgorithm::from_name(name)
        .ok_or_else(|| format!("{name:?} (use 3des, aes128, aes192 or aes256)"))
}

fn parse_ins(text: &str) -> Result<u8, String> {
    let digits = text.trim_start_matches("0x").trim_start_matches("0X");
    u8::from_str_radix(digits, 16).map_err(|_| format!("{text:?} is not one hexadecimal octet"))
}

/// Runs the virtual card until its cards were presented (or forever with
/// no eject policy: stop it with Ctrl-C, which removes the card).
pub fn run(args: VirtualArgs) -> Result<()> {
    let eject = match (args.eject_idle_ms, args.eject_on_reset) {
        (Some(ms), _) => EjectPolicy::IdleAfterUse(Duration::from_millis(ms)),
        (None, true) => EjectPolicy::ResetAfterUse,
        (None, false) => EjectPolicy::Never,
    };
    if args.cards > 1 && eject == EjectPolicy::Never {
        usage!(
            "--cards {} needs --eject-on-reset or --eject-idle-ms: without an eject policy the first card never leaves",
            args.cards
        );
    }
    if args.remove_on_count == 0 {
        usage!("--remove-on-count counts from 1");
    }
    let management_key = match &args.mgmt_key {
        Some(hex) => ManagementKey::from_hex(args.mgmt_algorithm, hex).context("--mgmt-key")?,
        None => ManagementKey::factory(args.mgmt_algorithm),
    };
    if args.mute_cards > args.cards {
        usage!(
            "--mute-cards {} is more than the {} cards presented (--cards)",
            args.mute_cards,
            args.cards
        );
    }
    let options = VpcdOptions {
        host: args.host,
        port: args.port,
        card: CardConfig {
            management_key,
            pin: Zeroizing::new(args.pin),
            puk: Zeroizing::new(args.puk),
            pin_tries: args.pin_tries,
            puk_tries: args.puk_tries,
        },
        cards: args.cards,
        eject,
        insert_pause: Duration::from_millis(args.insert_pause_ms),
        fault: args.remove_on_ins.map(|ins| Fault {
            ins,
            count: args.remove_on_count,
            contact_lost: args.lose_contact,
        }),
        mute_cards: args.mute_cards,
    };
    // Validate the factory settings before touching the reader.
    certmint::tools::vcard::VirtualCard::new(&options.card)?;
    vpcd::run(&options, &mut |event| eprintln!("vcard: {event}"))?;
    Ok(())
}
