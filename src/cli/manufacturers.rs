//! `certmint manufacturer …`: the register of ÖKC manufacturers. Argument
//! parsing and reporting only; the policy is in
//! [`certmint::order::manufacturer`], the storage in the journal.

use anyhow::Result;
use clap::{Args, Subcommand};

use certmint::ids::{IdMode, Vkn};
use certmint::journal::Journal;
use certmint::order::manufacturer::{self, Manufacturer, ManufacturerChange, ManufacturerError};

use super::orders::{JournalArgs, ReadJournalArgs};

#[derive(Subcommand)]
pub enum ManufacturerCommand {
    /// Register an ÖKC manufacturer once: VKN, name, approved prefixes, GİB model approval.
    Register(RegisterArgs),
    /// Every registered manufacturer.
    List(ListArgs),
    /// One manufacturer's entry.
    Show(ShowArgs),
    /// Change an entry (audited, naming the old and new values).
    Change(ChangeArgs),
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  certmint manufacturer register --vkn 4540536920 --name 'Örnek Yazarkasa A.Ş.' \\\n      \
--prefixes FU,JI --model-approval GIB-ONAY-2026/17 --secure-area-audit 2026-11-30\n\n\
The seed documents' preconditions: no order of a manufacturer is processed before GİB's model\n\
approval; soft (PKCS#12) certificates need the manufacturer's passed secure-area audit.\n\
A VKN is registered once (exit 9 when it is already); `manufacturer change` changes an entry."
)]
pub struct RegisterArgs {
    #[command(flatten)]
    journal: JournalArgs,
    /// The manufacturer's VKN.
    #[arg(long)]
    vkn: String,
    /// Its name, as its certificates carry it (organizationName).
    #[arg(long)]
    name: String,
    /// The device-serial prefixes its model approval covers, comma-separated (e.g. FU,JI).
    #[arg(long, value_delimiter = ',', required = true)]
    prefixes: Vec<String>,
    /// GİB's model-approval reference.
    #[arg(long)]
    model_approval: String,
    /// The day its secure-area audit was passed (YYYY-MM-DD); needed for soft orders.
    #[arg(long, value_name = "YYYY-MM-DD")]
    secure_area_audit: Option<String>,
    /// Accept GİB's test VKN. Never in production.
    #[arg(long)]
    test_mode: bool,
    /// Print the entry as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(after_help = "Example:\n  certmint manufacturer list --json")]
pub struct ListArgs {
    #[command(flatten)]
    journal: ReadJournalArgs,
    /// JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(after_help = "Example:\n  certmint manufacturer show --vkn 4540536920")]
pub struct ShowArgs {
    #[command(flatten)]
    journal: ReadJournalArgs,
    /// The manufacturer's VKN.
    #[arg(long)]
    vkn: String,
    /// JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  certmint manufacturer change --vkn 4540536920 --secure-area-audit 2026-11-30\n  \
certmint manufacturer change --vkn 4540536920 --prefixes FU,JI,KA --model-approval GIB-ONAY-2027/3\n\n\
--prefixes replaces the registered prefixes. Orders already imported keep theirs."
)]
pub struct ChangeArgs {
    #[command(flatten)]
    journal: JournalArgs,
    /// The manufacturer's VKN.
    #[arg(long)]
    vkn: String,
    /// A new name.
    #[arg(long)]
    name: Option<String>,
    /// New approved prefixes, comma-separated (replacing the registered ones).
    #[arg(long, value_delimiter = ',')]
    prefixes: Option<Vec<String>>,
    /// A new GİB model-approval reference.
    #[arg(long)]
    model_approval: Option<String>,
    /// The day a secure-area audit was passed (YYYY-MM-DD).
    #[arg(long, value_name = "YYYY-MM-DD")]
    secure_area_audit: Option<String>,
    /// Print the entry after the change as JSON.
    #[arg(long)]
    json: bool,
}

fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

pub fn manufacturer(command: ManufacturerCommand) -> Result<()> {
    match command {
        ManufacturerCommand::Register(args) => register(args),
        ManufacturerCommand::List(args) => {
            let journal = args.journal.open()?;
            let all = journal.manufacturers()?;
            if args.json {
                super::json::print_list("manufacturer.list", "manufacturers", &all)?;
            } else if all.is_empty() {
                println!("No manufacturer is registered (`certmint manufacturer register`).");
            } else {
                println!(
                    "{:<10}  {:<12}  {:<20}  {:<10}  name",
                    "vkn", "prefixes", "model approval", "audit"
                );
                for m in &all {
                    println!(
                        "{:<10}  {:<12}  {:<20}  {:<10}  {}",
                        m.vkn,
                        m.prefixes.join(","),
                        m.model_approval,
                        m.secure_area_audit.as_deref().unwrap_or("-"),
                        m.name
                    );
                }
            }
            Ok(())
        }
        ManufacturerCommand::Show(args) => {
            let journal = args.journal.open()?;
            let Some(m) = journal.manufacturer(args.vkn.trim())? else {
                return Err(ManufacturerError::NotRegistered {
                    vkn: certmint::text::escaped(args.vkn.trim()),
                }
                .into());
            };
            print_entry(&m, args.json)
        }
        ManufacturerCommand::Change(args) => {
            let change = ManufacturerChange {
                name: args.name.clone(),
                prefixes: args.prefixes.clone(),
                model_approval: args.model_approval.clone(),
                secure_area_audit: args.secure_area_audit.clone(),
            };
            if change == ManufacturerChange::default() {
                return Err(ManufacturerError::NothingToChange.into());
            }
            let mut journal = args.journal.open()?;
            let (before, after) = journal.change_manufacturer(
                args.vkn.trim(),
                &change,
                today(),
                &args.journal.operator()?,
            )?;
            if args.json {
                return print_entry(&after, true);
            }
            println!(
                "Manufacturer VKN {} changed: {}.",
                after.vkn,
                before.describe_change(&after)
            );
            Ok(())
        }
    }
}

fn register(args: RegisterArgs) -> Result<()> {
    let mode = if args.test_mode {
        IdMode::Test
    } else {
        IdMode::Production
    };
    let entry = Manufacturer {
        vkn: Vkn::parse(&args.vkn, mode)?.as_str().to_owned(),
        name: manufacturer::parse_name(&args.name)?,
        prefixes: manufacturer::parse_prefixes(&args.prefixes)?,
        model_approval: manufacturer::parse_model_approval(&args.model_approval)?,
        secure_area_audit: args
            .secure_area_audit
            .as_deref()
            .map(|day| manufacturer::parse_audit_date(day, today()))
            .transpose()?,
    };
    let mut journal = args.journal.open()?;
    journal.register_manufacturer(&entry, &args.journal.operator()?)?;
    if args.json {
        return print_entry(&entry, true);
    }
    println!(
        "Registered manufacturer VKN {}: {}.",
        entry.vkn,
        entry.describe()
    );
    Ok(())
}

fn print_entry(m: &Manufacturer, json: bool) -> Result<()> {
    if json {
        super::json::print("manufacturer", m)?;
        return Ok(());
    }
    println!("Manufacturer VKN {}", m.vkn);
    println!("  name:              {}", m.name);
    println!("  prefixes:          {}", m.prefixes.join(","));
    println!("  model approval:    {}", m.model_approval);
    println!(
        "  secure-area audit: {}",
        m.secure_area_audit
            .as_deref()
            .unwrap_or("none on record (no soft orders)")
    );
    Ok(())
}
