//! `certmint cert list|show`: the certificates on record. Parsing and
//! reporting only: the journal answers, page by page.

use std::io::Write as _;

use anyhow::Result;
use clap::{Args, Subcommand};

use certmint::journal::{CertificateDetail, CertificateFilter, JournalError, OrderId};
use certmint::order::one_off::IssuedOnRecord;
use certmint::records::{each_certificate, RecordsError};
use certmint::text::one_line;

use super::orders::ReadJournalArgs;

#[derive(Subcommand)]
pub enum CertCommand {
    /// Certificates on record, one line each (or one JSON object per line), filtered.
    List(ListArgs),
    /// Certificates on record in detail: status, order, device or seal, validity,
    /// SHA-256, what superseded them; the certificate itself with --pem.
    Show(ShowArgs),
}

/// Which certificates: every filter given must match.
#[derive(Args)]
pub struct FilterArgs {
    /// The certificate serial (hex, with or without colons).
    #[arg(long)]
    serial: Option<String>,
    /// An ÖKC device serial.
    #[arg(long)]
    device_serial: Option<String>,
    /// A Mali Mühür seal label, e.g. 4540536920SIGN0.
    #[arg(long)]
    seal_label: Option<String>,
    /// The company's or manufacturer's VKN.
    #[arg(long, conflicts_with = "tckn")]
    vkn: Option<String>,
    /// A sole proprietor's TCKN.
    #[arg(long)]
    tckn: Option<String>,
    /// The order.
    #[arg(long)]
    order: Option<i64>,
    /// Only revoked certificates.
    #[arg(long)]
    revoked: bool,
}

impl FilterArgs {
    fn filter(&self) -> CertificateFilter {
        CertificateFilter {
            serial: self.serial.clone(),
            device_serial: self.device_serial.clone(),
            seal_label: self.seal_label.clone(),
            taxpayer: self.vkn.clone().or_else(|| self.tckn.clone()),
            order: self.order.map(OrderId),
            revoked: self.revoked,
        }
    }

    fn is_empty(&self) -> bool {
        self.serial.is_none()
            && self.device_serial.is_none()
            && self.seal_label.is_none()
            && self.vkn.is_none()
            && self.tckn.is_none()
            && self.order.is_none()
            && !self.revoked
    }

    /// The filters given, in words, for "nothing matches".
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mut add = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                parts.push(format!("{name} {}", one_line(&value)));
            }
        };
        add("--serial", self.serial.clone());
        add("--device-serial", self.device_serial.clone());
        add("--seal-label", self.seal_label.clone());
        add("--vkn", self.vkn.clone());
        add("--tckn", self.tckn.clone());
        add("--order", self.order.map(|o| o.to_string()));
        if self.revoked {
            parts.push("--revoked".to_owned());
        }
        if parts.is_empty() {
            "(no filter)".into()
        } else {
            parts.join(", ")
        }
    }
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  certmint cert list --order 3\n  certmint cert list --vkn 4540536920 --json\n  certmint cert list --device-serial FU00022547\n  certmint cert list --revoked\n\n\
Streams: the journal is read a page at a time, however many certificates it holds.\n\
--json prints one JSON object per certificate, one per line."
)]
pub struct ListArgs {
    #[command(flatten)]
    journal: ReadJournalArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  certmint cert show --serial 6CA31D71895FB00ACC8B4ECCBB2D82F9 --pem\n  certmint cert show --device-serial FU00022547 --json\n\n\
Shows every certificate that matches (a device's superseded certificates too); exit 8 when none does.\n\
--json prints one JSON object per certificate, one per line (with \"pem\" when --pem is given)."
)]
pub struct ShowArgs {
    #[command(flatten)]
    journal: ReadJournalArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// Print each certificate as PEM too.
    #[arg(long)]
    pem: bool,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub fn cert(command: CertCommand) -> Result<()> {
    match command {
        CertCommand::List(args) => list(args),
        CertCommand::Show(args) => show(args),
    }
}

/// The line `issue` prints about the record it made.
pub fn on_record_line(issued: &IssuedOnRecord) -> String {
    let order = if issued.one_off {
        format!("one-off order {}", issued.order)
    } else {
        format!("order {}", issued.order)
    };
    match &issued.superseded {
        Some(old) => format!(
            "On record in {order} for {}; it supersedes certificate {old}.",
            issued.holder
        ),
        None => format!("On record in {order} for {}.", issued.holder),
    }
}

fn output_error(e: impl std::fmt::Display) -> RecordsError {
    RecordsError::Output(e.to_string())
}

/// Writing a line failed: a reader that closed the pipe ends the program
/// quietly, as everywhere (see `main`); anything else is an error.
fn write_error(e: std::io::Error) -> RecordsError {
    super::exit_quietly_if_closed(&e);
    output_error(e)
}

fn device_of(c: &CertificateDetail) -> &str {
    c.device_serial
        .as_deref()
        .or(c.seal_label.as_deref())
        .unwrap_or_default()
}

fn list(args: ListArgs) -> Result<()> {
    let journal = args.journal.open()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if !args.json {
        writeln!(
            out,
            "{:<40} {:<10} {:>6}  {:<10} {:<24} {:<11} {:<20} REVOKED",
            "SERIAL", "STATUS", "ORDER", "KIND", "DEVICE / SEAL", "VKN / TCKN", "NOT AFTER"
        )?;
    }
    let count = each_certificate(&journal, &args.filter.filter(), |c| {
        if args.json {
            super::json::write_line(&mut out, "cert", c).map_err(write_error)
        } else {
            writeln!(
                out,
                "{:<40} {:<10} {:>6}  {:<10} {:<24} {:<11} {:<20} {}",
                c.serial,
                c.status.as_str(),
                c.order.to_string(),
                c.kind.as_str(),
                device_of(c),
                if c.taxpayer.is_empty() {
                    "-"
                } else {
                    &c.taxpayer
                },
                c.not_after.as_deref().unwrap_or("-"),
                c.revocation.as_ref().map_or("-", |r| r.reason.name())
            )
            .map_err(write_error)
        }
    })?;
    out.flush()?;
    if !args.json && count == 0 {
        eprintln!(
            "No certificate on record matches {}.",
            args.filter.describe()
        );
    }
    Ok(())
}

fn show(args: ShowArgs) -> Result<()> {
    if args.filter.is_empty() {
        usage!("name the certificates to show: --serial, --device-serial, --seal-label, --vkn, --tckn or --order (`certmint cert list` lists them all)");
    }
    let journal = args.journal.open()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let count = each_certificate(&journal, &args.filter.filter(), |c| {
        let pem = match (&c.der, args.pem) {
            (Some(der), true) => Some(certmint::pem::certificate(der)),
            _ => None,
        };
        if args.json {
            let mut json = serde_json::to_value(c).map_err(output_error)?;
            if let (Some(pem), Some(object)) = (&pem, json.as_object_mut()) {
                object.insert("pem".into(), serde_json::Value::String(pem.clone()));
            }
            super::json::write_line(&mut out, "cert", &json).map_err(write_error)
        } else {
            write_detail(&mut out, c, pem.as_deref()).map_err(output_error)
        }
    })?;
    out.flush()?;
    if count == 0 {
        return Err(JournalError::NoCertificate(args.filter.describe()).into());
    }
    Ok(())
}

fn write_detail(
    out: &mut impl std::io::Write,
    c: &CertificateDetail,
    pem: Option<&str>,
) -> std::io::Result<()> {
    writeln!(out, "Certificate {}", c.serial)?;
    writeln!(out, "  Status:        {}", c.status)?;
    writeln!(
        out,
        "  Order:         {} ({}, target {})",
        c.order, c.kind, c.target
    )?;
    match (&c.device_serial, &c.seal_label) {
        (Some(serial), _) => writeln!(out, "  Device serial: {serial}")?,
        (_, Some(label)) => writeln!(out, "  Seal label:    {label}")?,
        _ => {}
    }
    let taxpayer = if c.taxpayer.is_empty() {
        String::new()
    } else {
        format!(" ({})", c.taxpayer)
    };
    writeln!(out, "  Holder:        {}{taxpayer}", one_line(&c.holder))?;
    writeln!(out, "  Recorded:      {}", c.recorded_at)?;
    if let (Some(from), Some(to)) = (&c.not_before, &c.not_after) {
        writeln!(out, "  Valid:         {from} to {to}")?;
    }
    if let Some(sha256) = &c.sha256 {
        writeln!(out, "  SHA-256:       {sha256}")?;
    }
    if let Some(reason) = &c.void_reason {
        writeln!(out, "  Void:          {}", one_line(reason))?;
    }
    if let Some(by) = &c.superseded_by {
        writeln!(
            out,
            "  Superseded by: {by} at {} by {}",
            c.superseded_at.as_deref().unwrap_or("?"),
            one_line(c.superseded_operator.as_deref().unwrap_or("?"))
        )?;
    }
    if let Some(revocation) = &c.revocation {
        writeln!(
            out,
            "  Revoked:       {} ({}) by {}",
            revocation.revoked_at,
            revocation.reason,
            one_line(&revocation.operator)
        )?;
        if let Some(date) = &revocation.invalidity_date {
            writeln!(out, "  Invalid since: {date}")?;
        }
    }
    if let Some(pem) = pem {
        write!(out, "{pem}")?;
    }
    writeln!(out)
}
