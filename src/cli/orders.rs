//! `certmint order …`, `certmint okc …` and `certmint audit …`: argument
//! parsing and reporting only; the work is in the library.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use certmint::audit::AuditBroken;
use certmint::error::Stopped;
use certmint::ids::{IdMode, PrefixTable, TaxpayerId, Vkn};
use certmint::journal::{
    Application, ImportReport, Journal, JournalAddress, NewOrder, OrderId, OrderKind, SqlJournal,
    Target,
};
use certmint::okc::purge;
use certmint::order::import::Listed;
use certmint::order::manufacturer::OkcOrderTerms;
use certmint::order::serial_list::SerialListReader;
use certmint::order::ImportRefused;
use certmint::pkcs11::{PinSource, Pkcs11Uri, Token};
use certmint::production::key_target::hsm::HsmTarget;
use certmint::production::key_target::soft::SoftTarget;
use certmint::production::setup::{
    business_calendar, okc_token, OpenedTarget, ProductionSetup, SetupRequest,
};
use certmint::production::ProductionReport;
use certmint::profile::{Profile, ProfileName};
use certmint::signer::KeyType;

/// Where the journal is, and who is at the keyboard: for commands that
/// write the journal and its audit log.
#[derive(Args, Clone)]
pub struct JournalArgs {
    #[command(flatten)]
    pub location: ReadJournalArgs,
    /// Who is doing this, for the audit log. Default: $CERTMINT_OPERATOR, else $USER.
    #[arg(long, env = "CERTMINT_OPERATOR")]
    pub operator: Option<String>,
}

impl JournalArgs {
    /// Opens the journal, making it when it does not exist yet.
    pub(crate) fn open(&self) -> Result<SqlJournal> {
        Ok(SqlJournal::open_at(&self.location.address()?)?)
    }

    /// Who the audit log names: `--operator`, else $CERTMINT_OPERATOR, else
    /// $USER. With none of them the command is refused rather than record
    /// a made-up name.
    pub(crate) fn operator(&self) -> Result<String> {
        let named = self
            .operator
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|name| !name.trim().is_empty());
        match named {
            Some(name) => Ok(name),
            None => usage!(
                "name who is doing this for the audit log: --operator NAME or CERTMINT_OPERATOR \
                 (USER is not set)"
            ),
        }
    }
}

/// Where the journal is: all a command that only reads it takes (it
/// records nothing, so it names no operator).
#[derive(Args, Clone)]
pub struct ReadJournalArgs {
    /// The journal: an SQLite file, or a postgresql:// URL shared by several
    /// stations (its password from PGPASSWORD or ~/.pgpass, never the URL).
    /// Default: $CERTMINT_JOURNAL, else ./certmint-journal.sqlite.
    #[arg(
        long,
        env = "CERTMINT_JOURNAL",
        default_value = "certmint-journal.sqlite",
        value_name = "PATH|URL"
    )]
    pub journal: String,
}

impl ReadJournalArgs {
    /// Opens the journal, which must exist: reading a journal that is not
    /// there would make an empty one, and report an empty record instead of
    /// saying that the operator is in the wrong folder.
    pub(crate) fn open(&self) -> Result<SqlJournal> {
        Ok(SqlJournal::open_existing(&self.address()?)?)
    }

    /// The journal's address, read. Read here rather than by the argument
    /// parser, whose errors repeat the value given: a password put in the
    /// address is refused without being repeated.
    pub(crate) fn address(&self) -> Result<JournalAddress> {
        match JournalAddress::parse(&self.journal) {
            Ok(address) => Ok(address),
            Err(reason) => usage!("--journal / CERTMINT_JOURNAL: {reason}"),
        }
    }
}

#[derive(Subcommand)]
pub enum OrderCommand {
    /// Import an order: ÖKC with the manufacturer's serial list, or Mali Mühür seals.
    Import(Box<ImportArgs>),
    /// Record that an order is paid (who and when): production may start.
    Pay(PayArgs),
    /// Cancel an unpaid order (audited); its serials are free for another order.
    Cancel(CancelArgs),
    /// One order's state and progress.
    Status(StatusArgs),
    /// All orders.
    List(ListArgs),
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  certmint order import --manufacturer-vkn 4540536920 --ca ./ca --prefixes FU,JI --serials fu-list.txt\n  \
certmint order import ... --additional-to 3 --serials more.csv --accept-good-lines\n  \
certmint order import --kind mali-muhur --vkn 4540536920 --unvan 'Örnek Bilişim A.Ş.' --target card --seals 2\n\n\
An ÖKC order names a manufacturer registered with `certmint manufacturer register` and is\n\
checked against its entry (name, prefixes, the secure-area audit for --target soft) and\n\
against the CA configuration in --ca (okc_device approved_prefixes and key_types), so that\n\
no order is journalled that production must refuse.\n\
A Mali Mühür order names the company and how many seals it gets; each seal is one card or one\n\
key in the company's HSM, journalled as {VKN}SIGN0, {VKN}SIGN1, … (numbered on from every seal the company got before).\n\
The list: one serial per line, or CSV/TSV with a serial column (serial, seri_no, sicil_no, …);\n\
UTF-8 with or without BOM, LF or CRLF, blank lines and # comments allowed. Every bad line,\n\
duplicate and serial of an earlier order is reported with its line number; the order is\n\
refused as a whole unless --accept-good-lines."
)]
pub struct ImportArgs {
    #[command(flatten)]
    journal: JournalArgs,
    /// What the order produces: okc (device certificates) or mali-muhur (company seals).
    #[arg(long, default_value = "okc")]
    kind: OrderKind,
    /// ÖKC: the registered manufacturer's name; refused when it is not the registered one.
    #[arg(long)]
    manufacturer: Option<String>,
    /// ÖKC: the VKN of a registered manufacturer (`certmint manufacturer register`).
    #[arg(long)]
    manufacturer_vkn: Option<String>,
    /// ÖKC: the serial prefixes of this order, comma-separated (e.g. FU,JI): some of the
    /// manufacturer's registered prefixes (default: all of them).
    #[arg(long, value_delimiter = ',')]
    prefixes: Vec<String>,
    /// The CA directory whose configuration the order is checked against (required for ÖKC).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// ÖKC: the serial list file.
    #[arg(long)]
    serials: Option<PathBuf>,
    /// Mali Mühür: the company's VKN.
    #[arg(long)]
    vkn: Option<String>,
    /// Mali Mühür: a sole proprietor's TCKN (instead of --vkn).
    #[arg(long)]
    tckn: Option<String>,
    /// Mali Mühür: the trade name (unvan).
    #[arg(long)]
    unvan: Option<String>,
    /// Mali Mühür: how many seals (cards or HSM keys; 1 to 10,000).
    #[arg(long, default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(certmint::input::MAX_SEALS)))]
    seals: u32,
    /// An additional application (Ek Başvuru) to this earlier order.
    #[arg(long)]
    additional_to: Option<i64>,
    /// Where device keys are made: soft (PKCS#12 files), hsm (the manufacturer's token) or card (PIV cards at `card station`).
    #[arg(long, default_value = "soft")]
    target: Target,
    /// Key type: p256, p384 or rsa2048 (default p256 for ÖKC, p384 for Mali Mühür).
    #[arg(long)]
    key_type: Option<KeyType>,
    /// Import the good lines even when some lines are bad.
    #[arg(long)]
    accept_good_lines: bool,
    /// Accept GİB's test VKN. Never in production.
    #[arg(long)]
    test_mode: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(after_help = "Example:\n  certmint order pay --order 3 --operator ayse")]
pub struct PayArgs {
    #[command(flatten)]
    journal: JournalArgs,
    /// The order.
    #[arg(long)]
    order: i64,
    /// Print the order as `order status --json` does, once paid.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(after_help = "Example:\n  certmint order cancel --order 3\n\n\
Only an unpaid (received) order can be cancelled: after payment there is no cancellation or\n\
refund (the seed documents). Its serials stay on record with the cancelled order and may be\n\
imported in another order.")]
pub struct CancelArgs {
    #[command(flatten)]
    journal: JournalArgs,
    /// The order.
    #[arg(long)]
    order: i64,
    /// Print the order as `order status --json` does, once cancelled.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(after_help = "Example:\n  certmint order status --order 3 --json")]
pub struct StatusArgs {
    #[command(flatten)]
    journal: ReadJournalArgs,
    /// The order.
    #[arg(long)]
    order: i64,
    /// JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(after_help = "Example:\n  certmint order list")]
pub struct ListArgs {
    #[command(flatten)]
    journal: ReadJournalArgs,
    /// JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum OkcCommand {
    /// Produce (or resume) a paid ÖKC order: one certificate per device serial, then deliver.
    Produce(ProduceArgs),
    /// Irreversibly delete soft deliveries 10 Turkish business days after upload.
    Purge(PurgeArgs),
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  certmint okc produce --order 3 --ca ./ca --deliveries ./deliveries\n  \
certmint okc produce --order 4 --ca ./ca --deliveries ./deliveries --token 'pkcs11:token=URETICI?pin-source=file:pin'\n\n\
Ctrl-C stops after the devices in flight (exit 130); running the same command again resumes\n\
and never issues a second certificate for a device. A soft order may be produced by several\n\
processes at once (on one journal, e.g. PostgreSQL): each certifies the devices it claims, and\n\
the one that finishes the order delivers it. An order with keys in a token (--token) has one\n\
producer at a time: while another holds it, this one is refused naming it (exit 7), or waits\n\
with --wait."
)]
pub struct ProduceArgs {
    #[command(flatten)]
    journal: JournalArgs,
    /// The order.
    #[arg(long)]
    order: i64,
    /// The CA directory.
    #[arg(long)]
    ca: PathBuf,
    /// The delivery root: the order's folder is DELIVERIES/order-N, soft passwords
    /// DELIVERIES/order-N.passwords.csv.
    #[arg(long, alias = "out", default_value = "deliveries")]
    deliveries: PathBuf,
    /// Parallel workers (default: the number of cores). With a pkcs11: CA key, one session
    /// process each, called by two threads.
    #[arg(long, value_parser = super::workers_arg)]
    workers: Option<usize>,
    /// For hsm orders: the manufacturer's token (pkcs11: URI).
    #[arg(long)]
    token: Option<String>,
    /// Environment variable holding the manufacturer token's PIN (when its URI has no pin-source).
    #[arg(long, alias = "pin-env")]
    token_pin_env: Option<String>,
    /// Environment variable holding the CA token's PIN.
    #[arg(long)]
    ca_pin_env: Option<String>,
    /// Extra closed days (one YYYY-MM-DD per line) for the purge deadline.
    #[arg(long)]
    closed_days: Option<PathBuf>,
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

#[derive(Args)]
#[command(
    after_help = "Examples:\n  certmint okc purge\n  certmint okc purge --dry-run --now 2026-12-15T09:00:00Z\n\n\
Works on the delivery folders and password manifests the journal recorded (absolute paths), from\n\
any directory. Before deleting, checks that each order's key files are where the journal says;\n\
an order whose files are not is reported and left alone, the others are purged, and the run exits 1.\n\
Symbolic links are never followed. Overwrites each PKCS#12 file and password manifest with zeros,\n\
syncs, unlinks, and records the purge at the real time. Card orders whose cards got their own PINs\n\
(`card station`) are purged by the same rule: the PIN letter manifest is overwritten and deleted and\n\
the journal's PINs and PUKs erased. Idempotent; safe to run from a timer."
)]
pub struct PurgeArgs {
    #[command(flatten)]
    journal: JournalArgs,
    /// Optional cross-check: refuse deliveries the journal records outside this delivery root.
    #[arg(long, alias = "out")]
    deliveries: Option<PathBuf>,
    /// With --dry-run: judge deadlines at this time (RFC 3339) instead of now.
    #[arg(long, requires = "dry_run")]
    now: Option<String>,
    /// Show what is due; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Extra closed days (one YYYY-MM-DD per line).
    #[arg(long)]
    closed_days: Option<PathBuf>,
    /// JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the audit log: its hash chain, the signed checkpoints beside the journal, and
    /// that every order and certificate in the journal has its audit record and the reverse.
    Verify(AuditVerifyArgs),
    /// Print the audit log (filtered by order and time; --json as JSON lines).
    Show(super::records::AuditShowArgs),
}

#[derive(Args)]
#[command(after_help = "Example:\n  certmint audit verify --journal certmint-journal.sqlite")]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    journal: ReadJournalArgs,
    /// JSON.
    #[arg(long)]
    json: bool,
}

pub fn order(command: OrderCommand) -> Result<()> {
    match command {
        OrderCommand::Import(args) => import(*args),
        OrderCommand::Pay(args) => {
            let mut journal = args.journal.open()?;
            journal.mark_paid(OrderId(args.order), &args.journal.operator()?)?;
            let order = journal.order(OrderId(args.order))?;
            if args.json {
                super::json::print("order", &order)?;
            } else if let Some(paid) = &order.paid {
                println!(
                    "Order {} marked paid by {} at {}.",
                    args.order, paid.by, paid.at
                );
            }
            Ok(())
        }
        OrderCommand::Cancel(args) => {
            let mut journal = args.journal.open()?;
            let freed = journal.cancel_order(OrderId(args.order), &args.journal.operator()?)?;
            let order = journal.order(OrderId(args.order))?;
            if args.json {
                super::json::print("order", &order)?;
            } else {
                println!(
                    "Order {} cancelled; {freed} serial(s) are free for another order.",
                    args.order
                );
            }
            Ok(())
        }
        OrderCommand::Status(args) => {
            let journal = args.journal.open()?;
            let order = journal.order(OrderId(args.order))?;
            let here = certmint::journal::LeaseHolder::this_process("");
            let stations = journal.stations(order.id, &here)?;
            if args.json {
                /// An order with its producers (`order status --json`).
                #[derive(serde::Serialize)]
                struct OrderStatus<'a> {
                    #[serde(flatten)]
                    order: &'a certmint::journal::OrderSummary,
                    stations: &'a [certmint::journal::Station],
                }
                super::json::print(
                    "order",
                    &OrderStatus {
                        order: &order,
                        stations: &stations,
                    },
                )?;
            } else {
                print_order(&order);
                print_stations(&stations);
            }
            Ok(())
        }
        OrderCommand::List(args) => {
            let journal = args.journal.open()?;
            let orders = journal.orders()?;
            if args.json {
                super::json::print_list("order.list", "orders", &orders)?;
            } else {
                println!(
                    "{:>5}  {:<10} {:<9} {:>9}  manufacturer",
                    "order", "state", "target", "verified"
                );
                for o in &orders {
                    println!(
                        "{:>5}  {:<10} {:<9} {:>4}/{:<4}  {} (VKN {})",
                        o.id,
                        o.state,
                        o.target,
                        o.verified,
                        o.devices,
                        o.manufacturer,
                        taxpayer(&o.manufacturer_vkn)
                    );
                }
            }
            Ok(())
        }
    }
}

/// The order's producers: live ones first, each with what it produced.
fn print_stations(stations: &[certmint::journal::Station]) {
    if stations.is_empty() {
        return;
    }
    let live = stations.iter().filter(|s| s.live).count();
    println!("  producers: {} ({live} live)", stations.len());
    for station in stations {
        let state = match (&station.released_at, station.live) {
            (_, true) => format!(
                "live, {} lease renewed {}",
                station.lease.sharing.as_str(),
                station.lease.renewed_at
            ),
            (Some(at), false) => format!("done {at}"),
            (None, false) => format!(
                "gone (lease last renewed {}, taken over when another producer next claims)",
                station.lease.renewed_at
            ),
        };
        println!(
            "    {:>7} produced  {} — {state}",
            station.produced,
            certmint::text::one_line(&station.lease.holder.to_string())
        );
    }
}

fn print_order(o: &certmint::journal::OrderSummary) {
    println!(
        "Order {} — {} order for {} (VKN {})",
        o.id,
        o.kind,
        o.manufacturer,
        taxpayer(&o.manufacturer_vkn)
    );
    println!("  state:     {}", o.state);
    println!("  devices:   {} verified of {}", o.verified, o.devices);
    println!(
        "  target:    {} ({} keys), prefixes {}",
        o.target,
        o.key_type,
        o.prefixes.join(",")
    );
    if let Some(parent) = o.parent {
        println!("  additional application to order {parent}");
    }
    println!("  received:  {}", o.created_at);
    if let Some(paid) = &o.paid {
        println!("  paid:      {} (recorded by {})", paid.at, paid.by);
    }
    if let Some(at) = &o.uploaded_at {
        println!("  delivered: {at}");
    }
    if let Some(due) = &o.purge_due {
        println!("  purge due: end of {due} (Turkish business day)");
    }
    if let Some(at) = &o.purged_at {
        println!("  purged:    {at}");
    }
}

fn import(args: ImportArgs) -> Result<()> {
    if args.target == Target::External {
        usage!("--target external is for certificates `certmint issue` records; an order's keys are made soft, hsm or card");
    }
    match args.kind {
        OrderKind::Okc => import_okc(args),
        OrderKind::MaliMuhur => import_seals(args),
    }
}

fn import_okc(args: ImportArgs) -> Result<()> {
    let mode = if args.test_mode {
        IdMode::Test
    } else {
        IdMode::Production
    };
    let (Some(manufacturer_vkn), Some(serials), Some(ca)) =
        (&args.manufacturer_vkn, &args.serials, &args.ca)
    else {
        usage!("an ÖKC order needs --manufacturer-vkn (a registered manufacturer), --serials and --ca (the CA directory it is checked against)");
    };
    if args.vkn.is_some() || args.tckn.is_some() || args.unvan.is_some() {
        usage!("--vkn, --tckn and --unvan are for Mali Mühür orders (--kind mali-muhur)");
    }
    let vkn = Vkn::parse(manufacturer_vkn, mode)?;
    if let Some(name) = &args.manufacturer {
        certmint::profile::plain_name("manufacturer", name)?;
    }
    let key_type = args.key_type.unwrap_or(KeyType::EcP256);
    let profile = ca_profile(ca, ProfileName::OkcDevice)?;
    let mut journal = args.journal.open()?;
    // Checked before the list is read: no order is journalled that
    // production must refuse.
    let (registered, prefixes) = certmint::order::manufacturer::check_okc_order(
        &journal,
        &OkcOrderTerms {
            vkn: vkn.as_str(),
            name: args.manufacturer.as_deref(),
            prefixes: &args.prefixes,
            target: args.target,
            key_type,
        },
        &profile,
    )?;
    let prefix_table = PrefixTable::new(&prefixes)?;
    let file = std::fs::File::open(serials)
        .with_context(|| format!("cannot read {}", serials.display()))?;
    let file = certmint::input::CappedReader::new(file, certmint::input::MAX_SERIAL_LIST_BYTES);
    let reader = SerialListReader::new(BufReader::new(file), prefix_table);
    let order = NewOrder {
        kind: OrderKind::Okc,
        manufacturer: registered.name.clone(),
        manufacturer_vkn: Some(TaxpayerId::Vkn(vkn)),
        prefixes,
        application: match args.additional_to {
            Some(parent) => Application::Additional {
                parent: OrderId(parent),
            },
            None => Application::Initial,
        },
        target: args.target,
        key_type,
        source: serials.display().to_string(),
        operator: args.journal.operator()?,
    };
    let report = certmint::order::import::import_order(
        &mut journal,
        &order,
        &mut reader.map(|item| item.map(Listed::from)),
        args.accept_good_lines,
    )?;
    report_import(&args, report)
}

/// A Mali Mühür order: the company, and one journal row per seal, named
/// `{ID}SIGN{n}` with `n` counted on from the company's earlier seals.
fn import_seals(args: ImportArgs) -> Result<()> {
    let mode = if args.test_mode {
        IdMode::Test
    } else {
        IdMode::Production
    };
    if args.manufacturer.is_some()
        || args.manufacturer_vkn.is_some()
        || args.serials.is_some()
        || !args.prefixes.is_empty()
        || args.additional_to.is_some()
    {
        usage!("a Mali Mühür order takes --vkn or --tckn, --unvan and --seals (no manufacturer, prefixes, serial list or --additional-to)");
    }
    let id = match (&args.vkn, &args.tckn) {
        (Some(vkn), None) => TaxpayerId::Vkn(Vkn::parse(vkn, mode)?),
        (None, Some(tckn)) => TaxpayerId::Tckn(tckn.parse()?),
        _ => usage!(
            "a Mali Mühür order names the company with --vkn (or a sole proprietor with --tckn)"
        ),
    };
    let unvan = args.unvan.as_deref().map(str::trim).unwrap_or_default();
    if unvan.is_empty() {
        usage!("a Mali Mühür order needs the company's --unvan");
    }
    certmint::profile::TradeName::parse(unvan)?;
    if args.target == Target::Soft {
        usage!("Mali Mühür seals are produced on a card or in the company's HSM: --target card or --target hsm");
    }
    if args.seals == 0 {
        usage!("--seals counts from 1");
    }
    let key_type = args.key_type.unwrap_or(KeyType::EcP384);
    if let Some(ca) = &args.ca {
        let profile = ca_profile(ca, ProfileName::MaliMuhur)?;
        certmint::order::manufacturer::check_against_profile(&profile, &[], key_type)?;
    }
    let mut journal = args.journal.open()?;
    let labels = certmint::order::one_off::next_seal_labels(&journal, &id, args.seals as usize)?;
    let order = NewOrder {
        kind: OrderKind::MaliMuhur,
        manufacturer: unvan.to_owned(),
        manufacturer_vkn: Some(id),
        prefixes: Vec::new(),
        application: Application::Initial,
        target: args.target,
        key_type,
        source: "operator".into(),
        operator: args.journal.operator()?,
    };
    let mut seals = labels.into_iter().enumerate().map(|(i, label)| {
        Ok(Listed {
            line: i + 1,
            name: label.into(),
        })
    });
    let report = certmint::order::import::import_order(&mut journal, &order, &mut seals, false)?;
    report_import(&args, report)
}

/// The profile `name` of the CA configuration in the CA directory `ca`.
fn ca_profile(ca: &Path, name: ProfileName) -> Result<Profile> {
    let config = certmint::profile::CaConfig::load(&ca.join(certmint::ca::CONFIG_FILE))?;
    Ok(Profile::from_config(name, &config)?)
}

fn report_import(args: &ImportArgs, report: ImportReport) -> Result<()> {
    if args.json {
        super::json::print("order.import", &report)?;
    } else {
        for problem in &report.problems {
            eprintln!("  {}", problem.message);
        }
        if report.problem_count > report.problems.len() {
            eprintln!(
                "  … and {} more",
                report.problem_count - report.problems.len()
            );
        }
    }
    match report.order {
        Some(id) => {
            if !args.json {
                println!(
                    "Imported order {id}: {} devices ({} problem line(s) skipped). State: received — record payment with `certmint order pay --order {id}`.",
                    report.accepted, report.problem_count
                );
            }
            Ok(())
        }
        None => Err(ImportRefused {
            problems: report.problem_count,
            any_good: report.accepted > 0,
        }
        .into()),
    }
}

pub fn okc(command: OkcCommand) -> Result<()> {
    match command {
        OkcCommand::Produce(args) => produce(args),
        OkcCommand::Purge(args) => purge_command(args),
    }
}

/// An order's VKN or TCKN for a person to read.
fn taxpayer(id: &Option<TaxpayerId>) -> &str {
    id.as_ref().map_or("none recorded", TaxpayerId::as_str)
}

/// Test hook: in debug builds only, `CERTMINT_TEST_NOW` (RFC 3339) stands in
/// for the clock that judges purge deadlines, so tests can purge without
/// waiting ten business days. A release build refuses it rather than
/// ignoring it, so nobody believes a simulated purge happened.
const TEST_NOW: &str = "CERTMINT_TEST_NOW";

/// An RFC 3339 time given as an argument (`what`); a malformed one is a
/// usage error that names the part that is wrong, once.
fn parse_time(text: &str, what: &str) -> Result<time::OffsetDateTime> {
    match time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        Ok(at) => Ok(at),
        Err(e) => usage!(
            "{what} {} is not an RFC 3339 time such as 2026-12-15T09:00:00Z ({e})",
            certmint::text::quoted(text)
        ),
    }
}

fn purge_clock(args: &PurgeArgs) -> Result<time::OffsetDateTime> {
    if let Some(text) = &args.now {
        return match parse_time(text, "--now") {
            Ok(now) => Ok(now),
            Err(e) => usage!("{e:#}"),
        };
    }
    match std::env::var(TEST_NOW) {
        Ok(text) if cfg!(debug_assertions) => parse_time(&text, TEST_NOW),
        Ok(_) => bail!("{TEST_NOW} is a test hook of debug builds; a release build purges on the real clock (unset it)"),
        Err(_) => Ok(time::OffsetDateTime::now_utc()),
    }
}

fn purge_command(args: PurgeArgs) -> Result<()> {
    let calendar = business_calendar(args.closed_days.as_deref())?;
    let now = purge_clock(&args)?;
    // Deliveries recorded relative to the journal (by older journals) are
    // found beside its file; a server's journal has no folder of its own.
    let journal_dir = match args.journal.location.address()?.file() {
        Some(file) => std::fs::canonicalize(file)
            .with_context(|| format!("journal {}", file.display()))?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        None => std::env::current_dir().context("the current folder")?,
    };
    let journal: Mutex<SqlJournal> = Mutex::new(args.journal.open()?);
    let report = purge::purge(
        &journal,
        &calendar,
        &journal_dir,
        args.deliveries.as_deref(),
        now,
        args.dry_run,
        &args.journal.operator()?,
    )?;
    if args.json {
        super::json::print("okc.purge", &report)?;
    } else {
        if report.deliveries.is_empty() {
            println!("No soft delivery awaits purging.");
        }
        for d in &report.deliveries {
            let due = d.due.as_deref().unwrap_or("(unknown)");
            // Paths and reasons name files whoever wrote into the delivery
            // named: escaped, so no name can forge a line or drive the terminal.
            let what = match (&d.refused, d.is_due, args.dry_run) {
                (Some(reason), _, _) => format!("NOT PURGED: {}", certmint::text::one_line(reason)),
                (None, true, true) => format!("due: would delete {} file(s)", d.files),
                (None, true, false) => {
                    format!("purged: {} file(s) overwritten and deleted", d.files)
                }
                (None, false, _) => "not due yet".into(),
            };
            println!(
                "Order {}: uploaded {}, deadline end of {due} — {what}",
                d.order, d.uploaded_at
            );
            for link in &d.links_removed {
                let verb = if args.dry_run {
                    "would remove"
                } else {
                    "removed"
                };
                println!(
                    "  symbolic link {}: {verb} the link, not followed",
                    certmint::text::escaped(link)
                );
            }
            for file in &d.left_in_place {
                println!(
                    "  {}: not listed by the journal, left in place",
                    certmint::text::escaped(file)
                );
            }
            if let Some(left) = &d.left_for_hand {
                println!("  NOT COMPLETE: {}", certmint::text::one_line(left));
            }
        }
        for p in &report.pin_letters {
            let due = p.due.as_deref().unwrap_or("(unknown)");
            let manifest = certmint::text::escaped(&p.manifest);
            let what = match (&p.refused, p.is_due, args.dry_run, p.manifest_found) {
                (Some(reason), _, _, _) => {
                    format!("NOT PURGED: {}", certmint::text::one_line(reason))
                }
                (None, true, true, _) => {
                    "due: would delete the manifest and erase the journal's PINs".into()
                }
                (None, true, false, true) => {
                    "purged: manifest overwritten and deleted, the journal's PINs erased".into()
                }
                (None, true, false, false) => {
                    "purged: manifest already gone, the journal's PINs erased".into()
                }
                (None, false, _, _) => "not due yet".into(),
            };
            println!(
                "Order {} PIN letters {manifest}: written {}, deadline end of {due} — {what}",
                p.order, p.uploaded_at
            );
        }
        for c in &report.stray_card_secrets {
            let due = c.due.as_deref().unwrap_or("(unknown)");
            let what = match (&c.refused, c.is_due, args.dry_run) {
                (Some(reason), _, _) => {
                    format!("NOT ERASED: {}", certmint::text::one_line(reason))
                }
                (None, true, true) => "due: would erase its PIN and PUK".into(),
                (None, true, false) => "erased: its PIN and PUK are gone from the journal".into(),
                (None, false, _) => "not due yet".into(),
            };
            println!(
                "Card without a delivered certificate {} (device {}, order {}): PIN and PUK recorded {}, deadline end of {due} — {what}",
                c.certificate_serial, c.device_serial, c.order, c.recorded_at
            );
        }
        for problem in &report.problems {
            println!("{}", certmint::text::one_line(problem));
        }
    }
    let failures = report.failures();
    if failures > 0 {
        bail!("{failures} problem(s) in this purge run: see the report above; the other orders were handled");
    }
    Ok(())
}

fn produce(args: ProduceArgs) -> Result<()> {
    let journal = Mutex::new(args.journal.open()?);
    let workers = args.workers.unwrap_or_else(super::default_workers);
    let request = SetupRequest {
        order: OrderId(args.order),
        profile: Some(ProfileName::OkcDevice),
        target: None,
        ca_dir: &args.ca,
        ca_unlock: super::unlock(args.ca_pin_env.clone(), workers),
        id_mode: IdMode::Production,
        closed_days: args.closed_days.as_deref(),
        operator: args.journal.operator()?,
        lease_wait: std::time::Duration::from_secs(args.wait),
        on_ctrl_c: Some(super::ctrl_c_notice("devices")),
    };
    let (setup, token) = ProductionSetup::open(&journal, request, |order| {
        let token = match okc_token(order, args.token.as_deref())? {
            None => None,
            Some(uri) => {
                let uri = Pkcs11Uri::parse(uri)?;
                let pins = PinSource::choose(uri.pin_source.clone(), args.token_pin_env.as_deref());
                Some(Token::open(&uri, &pins, Some(workers))?)
            }
        };
        Ok::<_, anyhow::Error>(OpenedTarget {
            target: token,
            workers,
        })
    })?;
    super::warn_shared_issuing_ca(setup.issuing.shared_issuing_ca_warning.as_deref());
    let remaining = setup.order.devices.saturating_sub(setup.order.verified);
    let bar = indicatif::ProgressBar::new(remaining);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} order {msg} [{bar:40}] {pos}/{len} devices, {per_sec}, ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(args.order.to_string());
    let on_device = || bar.inc(1);
    let production = setup.production(args.deliveries.clone(), &on_device);
    let result = match token {
        None => production.run(&journal, &SoftTarget::new(&setup.issuing.chain)?),
        Some(token) => production.run(&journal, &HsmTarget::new(token)),
    };
    bar.finish_and_clear();
    report_production(&result?, args.json, "certified")
}

/// Prints what a production run did; `Stopped` (exit 130) when Ctrl-C
/// stopped it before the end.
pub(crate) fn report_production(report: &ProductionReport, json: bool, done: &str) -> Result<()> {
    if json {
        super::json::print("production", report)?;
    } else {
        println!(
            "Order {}: {} {done} now, {} before, {} in all.",
            report.order, report.produced_now, report.already_done, report.devices
        );
        if report.voided_intents > 0 || report.removed_token_objects > 0 {
            println!(
                "Resumed an interrupted run: voided {} unfinished intent(s), removed {} token object(s).",
                report.voided_intents, report.removed_token_objects
            );
        }
        if let Some(folder) = &report.delivery {
            println!("Delivered to {folder}");
        }
        if report.delivered_by_another {
            println!(
                "Order {} is produced; another producer of it delivers it (`certmint order status --order {}`).",
                report.order, report.order
            );
        }
        if let Some(passwords) = &report.passwords {
            println!("PKCS#12 passwords: {passwords} (send it by another channel)");
        }
        if let Some(due) = &report.purge_due {
            println!(
                "Soft key material is purged after the end of {due} (10 Turkish business days)."
            );
        }
    }
    if report.stopped {
        return Err(Stopped.into());
    }
    Ok(())
}

pub fn audit(command: AuditCommand) -> Result<()> {
    match command {
        AuditCommand::Show(args) => super::records::audit_show(args),
        AuditCommand::Verify(args) => {
            let journal = args.journal.open()?;
            let report = journal.verify_audit()?;
            if args.json {
                super::json::print("audit.verify", &report)?;
            } else if report.is_intact() {
                println!(
                    "Audit chain intact: {} records, head {}.",
                    report.records, report.head
                );
                if report.checkpoints > 0 {
                    println!(
                        "Anchored by {} signed checkpoint(s) up to record {}; {} record(s) after it not yet anchored.",
                        report.checkpoints, report.anchored_up_to, report.not_yet_anchored
                    );
                }
                for note in &report.notes {
                    println!("Note: {note}.");
                }
            } else {
                for p in &report.problems {
                    if p.seq == 0 {
                        eprintln!("  journal: {}", p.problem);
                    } else {
                        eprintln!("  record {}: {}", p.seq, p.problem);
                    }
                }
            }
            if !report.is_intact() {
                return Err(AuditBroken(report.problems.len()).into());
            }
            Ok(())
        }
    }
}
