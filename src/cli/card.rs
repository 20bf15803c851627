//! `certmint card list|provision|station`: PIV smart cards through PC/SC.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use certmint::ca;
use certmint::card::provision::CardCredentials;
use certmint::card::station::{PinPolicy, StationEvent};
use certmint::card::Readers;
use certmint::ids::IdMode;
use certmint::journal::{OrderId, SqlJournal, Target};
use certmint::piv::mgmt::{ManagementKey, MgmtAlgorithm};
use certmint::piv::{Algorithm, Slot};
use certmint::pkcs11::pin::{PinError, PinSource};
use certmint::production::seals::{provision_one_off_card_seal, OneOffCardSealRequest};
use certmint::production::setup::{
    IssuingCa, OpenedTarget, ProductionSetup, SetupRequest, StationCards,
};
use certmint::profile::ProfileName;
use certmint::signer::KeyType;

use certmint::error::Stopped;

use super::orders::JournalArgs;

const CARD_HELP: &str = "\n\
Secrets never come from arguments: the cards' PIN from the file named by --card-pin-file or the\n\
variable named by --card-pin-env (else a prompt), the management key from --mgmt-key-file (hex;\n\
keep the file mode 0600) or --mgmt-key-env.\n\
The well-known factory management key and PIN are refused unless --allow-factory-defaults (test cards).\n\
A wrong PIN is tried once: the run stops with the tries left.";

/// How to reach the cards' secrets.
#[derive(Args, Clone)]
pub struct CardSecretArgs {
    /// File holding the cards' management key in hex.
    #[arg(long)]
    mgmt_key_file: Option<PathBuf>,
    /// Environment variable holding the cards' management key in hex.
    #[arg(long)]
    mgmt_key_env: Option<String>,
    /// Management key algorithm: 3des, aes128, aes192 or aes256.
    #[arg(long, default_value = "3des", value_parser = parse_mgmt_algorithm)]
    mgmt_algorithm: MgmtAlgorithm,
    /// File holding the cards' PIN (a trailing newline is ignored).
    #[arg(long, conflicts_with = "card_pin_env")]
    card_pin_file: Option<PathBuf>,
    /// Environment variable holding the cards' PIN (else a prompt).
    #[arg(long, alias = "pin-env")]
    card_pin_env: Option<String>,
    /// Accept the well-known factory management key and PIN (test cards only).
    #[arg(long)]
    allow_factory_defaults: bool,
}

/// Where the cards' current PUK comes from (needed to set a fresh one).
#[derive(Args, Clone)]
pub struct CardPukArgs {
    /// File holding the cards' current PUK (a trailing newline is ignored).
    #[arg(long, conflicts_with = "card_puk_env")]
    card_puk_file: Option<PathBuf>,
    /// Environment variable holding the cards' current PUK.
    #[arg(long, alias = "puk-env")]
    card_puk_env: Option<String>,
}

impl CardPukArgs {
    fn source(&self) -> Option<PinSource> {
        match (&self.card_puk_file, &self.card_puk_env) {
            (Some(path), _) => Some(PinSource::File(path.clone())),
            (None, Some(var)) => Some(PinSource::choose(None, Some(var))),
            (None, None) => None,
        }
    }
}

fn parse_mgmt_algorithm(text: &str) -> Result<MgmtAlgorithm, String> {
    MgmtAlgorithm::from_name(text)
        .ok_or_else(|| format!("{text:?} (use 3des, aes128, aes192 or aes256)"))
}

impl CardSecretArgs {
    fn credentials(&self, puk: Option<PinSource>) -> Result<CardCredentials> {
        let management_key = match (&self.mgmt_key_file, &self.mgmt_key_env) {
            (Some(path), None) => {
                let text = zeroize::Zeroizing::new(
                    certmint::input::read_secret_file(path, "the management key").with_context(
                        || format!("cannot read the management key file {}", path.display()),
                    )?,
                );
                ManagementKey::from_hex(self.mgmt_algorithm, text.trim())
                    .with_context(|| path.display().to_string())?
            }
            (None, Some(var)) => {
                certmint::pkcs11::pin::mark_secret_variable(var);
                let Ok(text) = std::env::var(var) else {
                    usage!("environment variable {var} (named by --mgmt-key-env) is not set or not text")
                };
                let text = zeroize::Zeroizing::new(text);
                ManagementKey::from_hex(self.mgmt_algorithm, text.trim())
                    .with_context(|| format!("the management key in {var}"))?
            }
            (None, None) if self.allow_factory_defaults => {
                ManagementKey::factory(self.mgmt_algorithm)
            }
            (None, None) => usage!(
                "give the cards' management key with --mgmt-key-file or --mgmt-key-env \
                 (the factory key only with --allow-factory-defaults)"
            ),
            (Some(_), Some(_)) => usage!("give --mgmt-key-file or --mgmt-key-env, not both"),
        };
        let pin_source =
            PinSource::choose(self.card_pin_file.clone(), self.card_pin_env.as_deref());
        let pin = match pin_source.read("the cards") {
            Err(PinError::NoSource(_)) => usage!(
                "no PIN for the cards: name the variable holding it with --card-pin-env or the \
                 file with --card-pin-file (there is no terminal to prompt on)"
            ),
            pin => pin?,
        };
        let puk = match puk {
            Some(source) => Some(source.read("the cards' PUK")?),
            None => None,
        };
        Ok(CardCredentials {
            management_key,
            pin,
            puk,
            allow_factory_defaults: self.allow_factory_defaults,
        })
    }
}

#[derive(Subcommand)]
pub enum CardCommand {
    /// Readers, whether a card is present, its ATR and whether it answers PIV.
    List(ListArgs),
    /// Key generated on one card, Mali Mühür certificate written, read back and test-signed.
    Provision(ProvisionArgs),
    /// One worker per reader over an order: insert a card, produce, take it out, next.
    Station(StationArgs),
    /// Write a card order's PIN letter manifest again from the journal (a manifest lost before the purge).
    PinLetters(PinLettersArgs),
    /// Put a virtual PIV card into a vsmartcard-vpcd reader of pcscd (rehearsals and tests).
    Virtual(super::vcard::VirtualArgs),
}

#[derive(Args)]
#[command(after_help = "Example:\n  certmint card pin-letters --order 7\n\n\
Writes DELIVERIES/order-N.pins.csv again, where `card station` wrote it (the path the journal\n\
recorded), mode 0600, from the PINs and PUKs the journal holds until `certmint okc purge` erases\n\
them. An existing file is never overwritten; the purge deadline stays as it was; audited.")]
pub struct PinLettersArgs {
    #[command(flatten)]
    journal: JournalArgs,
    /// The order (target card, produced at the station with a PIN per card).
    #[arg(long)]
    order: i64,
}

#[derive(Args)]
#[command(after_help = "Examples:\n  certmint card list\n  certmint card list --json")]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(after_help = format!("Example:\n  CARD_PIN=… CARD_PUK=… certmint card provision --ca ./ca --reader 'Yubico YubiKey 00 00' \\\n      --vkn 4540536920 --unvan 'Örnek Bilişim A.Ş.' --key-type p384 \\\n      --mgmt-key-file card.key --card-pin-env CARD_PIN --card-puk-env CARD_PUK --pin-letter 4540536920.pin.txt --out 4540536920.pem\n\n\
Authenticates with the management key, generates the key in slot 9c on the card, has the CA sign the\n\
Mali Mühür certificate, writes it, reads it back, and verifies a test signature made by the card.\n\
The seal is on record: the company's next seal label {{VKN}}SIGN<n> in a one-off order made just\n\
before the CA signs (intent first), the certificate once the card proved it.\n\
With --pin-letter the card gets a fresh random PIN and PUK, written to that new file (mode 0600);\n\
setting the PUK needs the card's current one, from --card-puk-file or --card-puk-env.\n{CARD_HELP}"))]
pub struct ProvisionArgs {
    /// The CA directory made by `certmint ca init`.
    #[arg(long)]
    ca: PathBuf,
    /// The reader (default: the only reader with a card in it).
    #[arg(long)]
    reader: Option<String>,
    #[command(flatten)]
    seal: super::SealSubjectArgs,
    /// p384 or rsa2048 (the Mali Mühür key types on PIV cards).
    #[arg(long, default_value = "p384")]
    key_type: KeyType,
    /// The PIV slot: 9c (digital signature) unless told otherwise.
    #[arg(long, default_value = "9c")]
    slot: Slot,
    #[command(flatten)]
    secrets: CardSecretArgs,
    #[command(flatten)]
    puk: CardPukArgs,
    /// Set a fresh random PIN and PUK and write them to this new file (mode 0600).
    #[arg(long)]
    pin_letter: Option<PathBuf>,
    /// Replace a certificate in the slot that the journal does not hold (one it holds:
    /// void is always replaced, valid always refused).
    #[arg(long)]
    replace: bool,
    /// Also write the certificate here as PEM (never overwritten).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Environment variable holding the CA token's PIN (when the CA key is a pkcs11: URI).
    #[arg(long)]
    ca_pin_env: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    journal: JournalArgs,
}

#[derive(Args)]
#[command(after_help = format!("Examples:\n  certmint card station --order 7 --ca ./ca --mgmt-key-file cards.key --card-pin-file cards.pin --card-puk-file cards.puk\n  certmint card station --order 7 --ca ./ca --reader 'Reader A' --reader 'Reader B' --mgmt-key-env CARD_KEY --card-pin-env CARD_PIN --card-puk-env CARD_PUK\n  certmint card station --order 7 --ca ./ca --mgmt-key-file cards.key --card-pin-file order7.pin --keep-card-pin\n\n\
Serves every reader (or those named) with one worker each: insert a blank card, the worker takes the\n\
next device of the order, provisions the card and asks for it to be taken out. A card pulled in the\n\
middle is reported and its device goes to the next card; the journal keeps one valid certificate per\n\
device. Ctrl-C stops after the cards in flight; the same command resumes.\n\n\
PIN letters: each card gets its own random 8-digit PIN and PUK, set with the cards' current PUK\n\
(--card-puk-file or --card-puk-env) after the card proved its certificate. The journal holds them\n\
(pending, with the card's old ones) before the certificate goes on the card; a card that comes back\n\
after leaving in the middle has its change finished first, with no PIN try that could block it, or\n\
is refused (take it out and set it aside). When the order is delivered they are listed in DELIVERIES/order-N.pins.csv\n\
(mode 0600: device serial, certificate serial, reader, PIN, PUK), the PIN mailer's input, and\n\
`certmint okc purge` deletes that manifest and erases them from the journal 10 Turkish business days\n\
later. With --keep-card-pin every card keeps the PIN and PUK it has: one known PIN for the order.\n{CARD_HELP}"))]
pub struct StationArgs {
    #[command(flatten)]
    journal: JournalArgs,
    /// The order (target card).
    #[arg(long)]
    order: i64,
    /// The CA directory.
    #[arg(long)]
    ca: PathBuf,
    /// A reader to serve (repeatable; default: every reader).
    #[arg(long = "reader")]
    readers: Vec<String>,
    /// The PIV slot of the device keys.
    #[arg(long, default_value = "9c")]
    slot: Slot,
    #[command(flatten)]
    secrets: CardSecretArgs,
    #[command(flatten)]
    puk: CardPukArgs,
    /// Every card keeps the PIN and PUK it has (one known PIN for the order) instead of its own random ones.
    #[arg(long, conflicts_with_all = ["card_puk_file", "card_puk_env"])]
    keep_card_pin: bool,
    /// The delivery root: the order's certificates and manifest go to DELIVERIES/order-N.
    #[arg(long, alias = "out", default_value = "deliveries")]
    deliveries: PathBuf,
    /// Environment variable holding the CA token's PIN.
    #[arg(long)]
    ca_pin_env: Option<String>,
    /// Accept GİB's test identifiers. Never in production.
    #[arg(long)]
    test_mode: bool,
    /// When a producer that keeps this one out holds the order (one with the
    /// order alone: keys in a token), wait up to SECONDS for it to finish
    /// (default: refuse at once, naming it; exit 7). Producers of a shared
    /// order (soft keys, cards) work beside each other and never wait.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    wait: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn card(command: CardCommand) -> Result<()> {
    match command {
        CardCommand::List(args) => list(args),
        CardCommand::Provision(args) => provision(args),
        CardCommand::Station(args) => station(args),
        CardCommand::PinLetters(args) => pin_letters(args),
        CardCommand::Virtual(args) => super::vcard::run(args),
    }
}

fn list(args: ListArgs) -> Result<()> {
    let readers = Readers::establish()?;
    let reports = readers.list()?;
    if args.json {
        super::json::print_list("card.list", "readers", &reports)?;
        return Ok(());
    }
    if reports.is_empty() {
        println!("No card reader is connected.");
    }
    for r in &reports {
        let card = match (&r.atr, r.piv) {
            (None, _) => "no card".to_owned(),
            (Some(atr), Some(true)) => format!("card, ATR {atr}, PIV"),
            (Some(atr), Some(false)) => format!("card, ATR {atr}, no PIV application"),
            (Some(atr), None) => format!(
                "card, ATR {atr}, PIV unknown ({})",
                r.note.as_deref().unwrap_or("not asked")
            ),
        };
        println!("{}: {card}", r.reader);
    }
    Ok(())
}

/// The only reader holding a card, when the operator named none.
fn choose_reader(readers: &Readers, named: Option<String>) -> Result<String> {
    if let Some(name) = named {
        return Ok(name);
    }
    let with_card: Vec<String> = readers
        .list()?
        .into_iter()
        .filter(|r| r.card_present)
        .map(|r| r.reader)
        .collect();
    match with_card.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no reader holds a card: insert one, or name the reader with --reader"),
        many => usage!(
            "several readers hold a card ({}): name one with --reader",
            many.join(", ")
        ),
    }
}

fn provision(args: ProvisionArgs) -> Result<()> {
    // Everything is checked before the card is touched.
    let (profile, subject, id_mode) =
        super::mali_muhur_subject(&args.ca, &args.seal, args.out.as_ref())?;
    let Some(algorithm) = Algorithm::for_key_type(args.key_type) else {
        usage!("{} keys cannot be generated on PIV cards", args.key_type)
    };
    let credentials = args.secrets.credentials(args.puk.source())?;
    credentials.check_factory_defaults(args.pin_letter.is_some())?;
    let journal = Mutex::new(args.journal.open()?);
    let operator = args.journal.operator()?;
    let IssuingCa { ca, .. } = IssuingCa::open(
        &args.ca,
        ProfileName::MaliMuhur,
        id_mode,
        &super::unlock(args.ca_pin_env.clone(), 1),
    )?;
    let readers = Readers::establish()?;
    let reader = choose_reader(&readers, args.reader.clone())?;
    let report = provision_one_off_card_seal(
        &journal,
        &ca,
        &profile,
        &readers,
        &OneOffCardSealRequest {
            subject: &subject,
            reader: &reader,
            slot: args.slot,
            algorithm,
            credentials: &credentials,
            pin_letter: args.pin_letter.as_deref(),
            replace: args.replace,
            operator: &operator,
            source: "certmint card provision",
        },
    )?;
    if let Some(out) = &args.out {
        ca::write_new_file(out, report.certificate_pem.as_bytes(), 0o644)?;
    }
    if args.json {
        super::json::print("card.provision", &report)?;
    } else {
        println!(
            "Provisioned the card in {reader:?}: seal {}, slot {}, {} key, certificate {}",
            report.label, report.slot, report.key_type, report.serial
        );
        println!("On record in one-off order {}.", report.order);
        if let Some(replaced) = &report.replaced {
            println!("Replaced the slot's earlier certificate (serial {replaced}, not on record).");
        }
        for check in &report.checks {
            println!("  ok  {check}");
        }
        if let Some(letter) = &report.pin_letter {
            println!("PIN letter: {letter} (hand it to the customer apart from the card)");
        }
    }
    Ok(())
}

fn pin_letters(args: PinLettersArgs) -> Result<()> {
    let operator = args.journal.operator()?;
    let journal: Mutex<SqlJournal> = Mutex::new(args.journal.open()?);
    let path = certmint::production::delivery::rewrite_pin_letters(
        &journal,
        OrderId(args.order),
        &operator,
    )?;
    println!(
        "PIN letters of order {}: {} (mode 0600; the PIN mailer's input, kept apart from the cards)",
        args.order,
        path.display()
    );
    Ok(())
}

/// The station's cards: the PIN policy, the cards' credentials and the
/// readers to serve (one worker each), checked once the order is claimed.
fn open_cards(args: &StationArgs) -> Result<OpenedTarget<StationCards>> {
    let pin_policy = if args.keep_card_pin {
        PinPolicy::Keep
    } else {
        PinPolicy::Random
    };
    if pin_policy == PinPolicy::Random && args.puk.source().is_none() {
        usage!(
            "each card gets its own random PIN and PUK, which needs the cards' current PUK: \
             give --card-puk-file or --card-puk-env (or --keep-card-pin for one known PIN for the whole order)"
        );
    }
    let credentials = args.secrets.credentials(args.puk.source())?;
    credentials.check_factory_defaults(pin_policy == PinPolicy::Random)?;
    let readers = Readers::establish()?;
    let names = if args.readers.is_empty() {
        readers.names()?
    } else {
        let present = readers.names()?;
        for name in &args.readers {
            if !present.contains(name) {
                bail!(
                    "reader {name:?} is not connected (connected: {})",
                    present.join(", ")
                );
            }
        }
        args.readers.clone()
    };
    if names.is_empty() {
        bail!("no card reader is connected");
    }
    Ok(OpenedTarget {
        workers: names.len(),
        target: StationCards {
            readers: names,
            slot: args.slot,
            credentials,
            pin_policy,
        },
    })
}

fn station(args: StationArgs) -> Result<()> {
    let journal = Mutex::new(args.journal.open()?);
    let request = SetupRequest {
        order: OrderId(args.order),
        profile: None,
        target: Some(Target::Card),
        ca_dir: &args.ca,
        ca_unlock: super::unlock(args.ca_pin_env.clone(), 1),
        id_mode: if args.test_mode {
            IdMode::Test
        } else {
            IdMode::Production
        },
        closed_days: None,
        operator: args.journal.operator()?,
        lease_wait: std::time::Duration::from_secs(args.wait),
        on_ctrl_c: Some(super::ctrl_c_notice("cards")),
    };
    let (setup, cards) = ProductionSetup::open(&journal, request, |_| open_cards(&args))?;
    super::warn_shared_issuing_ca(setup.issuing.shared_issuing_ca_warning.as_deref());
    // The live view: one line per reader on a terminal, one log line per
    // event otherwise (logs, CI).
    let live = std::io::stderr().is_terminal();
    let view = indicatif::MultiProgress::new();
    let lines: Vec<(String, indicatif::ProgressBar)> = cards
        .readers
        .iter()
        .map(|name| {
            let bar = view.add(indicatif::ProgressBar::new_spinner());
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {prefix:30} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.set_prefix(name.clone());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            (name.clone(), bar)
        })
        .collect();
    let total = view.add(indicatif::ProgressBar::new(setup.order.devices));
    total.set_style(
        indicatif::ProgressStyle::with_template(
            "  order {msg} [{bar:30}] {pos}/{len} cards, {per_sec}, ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    total.set_message(args.order.to_string());
    total.set_position(setup.order.verified);
    let on_event = |reader: &str, event: &StationEvent| {
        if let StationEvent::Done { .. } = event {
            total.inc(1);
        }
        if live {
            if let Some((_, bar)) = lines.iter().find(|(name, _)| name == reader) {
                bar.set_message(event.to_string());
            }
        } else {
            eprintln!("[{reader}] {event}");
        }
    };
    let station = setup.station(args.deliveries.clone(), cards, &on_event);
    let result = station.run(&journal);
    for (_, bar) in &lines {
        bar.finish_and_clear();
    }
    total.finish_and_clear();
    let report = result?;
    if args.json {
        super::json::print("production", &report)?;
    } else {
        println!(
            "Order {}: {} card(s) produced now, {} before, {} in all.",
            args.order, report.produced_now, report.already_done, report.devices
        );
        if report.voided_intents > 0 {
            println!(
                "Resumed an interrupted run: voided {} unfinished intent(s).",
                report.voided_intents
            );
        }
        if let Some(folder) = &report.delivery {
            println!("Delivered to {folder}");
        }
        if let Some(letters) = &report.pin_letters {
            println!("PIN letters: {letters} (mode 0600; the PIN mailer's input, kept apart from the cards)");
            if let Some(due) = &report.purge_due {
                println!(
                    "The PIN letters and the journal's PINs are purged after the end of {due} (10 Turkish business days)."
                );
            }
        }
    }
    if report.stopped {
        return Err(Stopped.into());
    }
    Ok(())
}
