//! `certmint journal copy`: a station's journal moved into the shared one.
//! Argument parsing and reporting only; the copy is
//! [`certmint::journal::copy_journal`].

use anyhow::Result;
use clap::{Args, Subcommand};

use certmint::journal::{copy_journal, JournalAddress, SqlJournal};

#[derive(Subcommand)]
pub enum JournalCommand {
    /// Copy a journal into another (a station's SQLite file into the shared PostgreSQL journal).
    Copy(CopyArgs),
}

#[derive(Args)]
#[command(after_help = "Example:\n  \
PGPASSFILE=~/.pgpass certmint journal copy --from station-3.sqlite \\\n      \
--to 'postgresql://certmint@db.ca.example/journal?sslmode=disable'\n\n\
The source's audit chain must verify, and no producer may be at work on it. Its orders get the\n\
target's next numbers (the report and the target's last audit record say which became which);\n\
its audit records are appended to the target's chain, then the whole chain is verified.\n\
Refused, copying nothing (exit 9), when a device or certificate serial, a revocation or an\n\
issuer's CRL numbers are in both journals, or a manufacturer is registered differently.\n\
The source is left as it was: keep it, or archive it, once the copy verified.")]
pub struct CopyArgs {
    /// The journal to copy: an SQLite file (or a postgresql:// URL).
    #[arg(long, value_name = "PATH|URL")]
    from: String,
    /// The journal to copy into: a postgresql:// URL (or an SQLite file), made if it does not exist.
    #[arg(long, value_name = "PATH|URL")]
    to: String,
    /// Who is doing this, for the audit log. Default: $CERTMINT_OPERATOR, else $USER.
    #[arg(long, env = "CERTMINT_OPERATOR")]
    operator: Option<String>,
    /// Print the report as JSON (`certmint.journal.copy/1`).
    #[arg(long)]
    json: bool,
}

pub fn journal(command: JournalCommand) -> Result<()> {
    match command {
        JournalCommand::Copy(args) => copy(args),
    }
}

fn copy(args: CopyArgs) -> Result<()> {
    let address = |flag: &str, text: &str| -> Result<JournalAddress> {
        match JournalAddress::parse(text) {
            Ok(address) => Ok(address),
            Err(reason) => usage!("--{flag}: {reason}"),
        }
    };
    let (from, to) = (address("from", &args.from)?, address("to", &args.to)?);
    // The same file under two spellings is the same journal.
    let same = match (from.file(), to.file()) {
        (Some(a), Some(b)) => match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        },
        _ => from.to_string() == to.to_string(),
    };
    if same {
        usage!("--from and --to name the same journal");
    }
    let operator = match args
        .operator
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .filter(|name| !name.trim().is_empty())
    {
        Some(name) => name,
        None => {
            usage!("name who is doing this for the audit log: --operator NAME or CERTMINT_OPERATOR")
        }
    };
    let mut source = SqlJournal::open_existing(&from)?;
    let mut target = SqlJournal::open_at(&to)?;
    let report = copy_journal(&mut source, &mut target, &operator)?;
    if args.json {
        super::json::print("journal.copy", &report)?;
    } else {
        println!(
            "Copied {} into {}: {} order(s), {} device(s), {} certificate(s), {} CA certificate(s), {} revocation(s), {} audit record(s).",
            report.from,
            report.to,
            report.orders.len(),
            report.devices,
            report.certificates,
            report.ca_certificates,
            report.revocations,
            report.audit_records
        );
        for (old, new) in &report.orders {
            println!("  order {old} is order {new} there");
        }
        println!(
            "The target's audit chain verifies: {} records.",
            report.target_audit_records
        );
    }
    Ok(())
}
