//! `certmint revoke`: parsing and reporting only; the rules are in
//! [`certmint::revocation::revoke`].

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::Result;
use clap::Args;

use certmint::journal::OrderId;
use certmint::revocation::revoke::{
    self, CaCertificateRequest, ItemOutcome, RevokeItem, RevokeOptions, RevokeSummary, Selection,
};
use certmint::revocation::RevocationReason;
use certmint::text::one_line;

use super::orders::JournalArgs;

/// Every how many items a long selection reports progress on standard error.
const PROGRESS_EVERY: u64 = 1000;

#[derive(Args)]
#[command(after_help = "Examples:\n  \
certmint revoke --serial 6CA31D71895FB00ACC8B4ECCBB2D82F9 --reason key-compromise\n  \
certmint revoke --device-serial FU00022547 --invalidity-date 2026-12-01T09:00:00Z\n  \
certmint revoke --seal-label 4540536920SIGN0 --reason affiliation-changed\n  \
certmint revoke --order 12 --reason key-compromise --dry-run\n  \
certmint revoke --device-list recalled.txt --reason key-compromise --json\n  \
certmint revoke --ca-certificate ca/issuing.pem --ca ca --reason ca-compromise\n\n\
Reasons (RFC 5280): unspecified (the default), key-compromise, ca-compromise, affiliation-changed,\n\
superseded, cessation-of-operation, privilege-withdrawn, aa-compromise. Revocation is irreversible:\n\
there is no certificate-hold.\n\n\
--device-serial and --seal-label revoke the certificate in force; --order every certificate of\n\
the order that may be valid (a recalled batch; an intent still in progress is refused, exit 9);\n\
--device-list each listed device's certificate in force (one\n\
device serial a line, or a CSV with a serial column; blank and # lines skipped; the whole list is\n\
checked before anything is revoked). A certificate revoked already is reported and left as it is.\n\
Each revocation is on record (with its audit record) before the next: Ctrl-C stops after the one\n\
in flight, and running the command again reports the done ones as revoked already.\n\n\
Exit status: 0 when every selected certificate is revoked (now or before); otherwise the code of\n\
the first that is not: 8 not on record, 9 an intent still in progress, 3 an invalidity date before\n\
its notBefore. --json prints one certmint.revoke.item/1 object per line, then one\n\
certmint.revoke.summary/1 object.")]
pub struct RevokeArgs {
    #[command(flatten)]
    journal: JournalArgs,
    /// The certificate's serial (hex, with or without colons).
    #[arg(long, group = "selection")]
    serial: Option<String>,
    /// An ÖKC device serial: its certificate in force.
    #[arg(long, group = "selection")]
    device_serial: Option<String>,
    /// A Mali Mühür seal label, e.g. 4540536920SIGN0: its certificate in force.
    #[arg(long, group = "selection")]
    seal_label: Option<String>,
    /// Every certificate of this order that may be valid.
    #[arg(long, group = "selection")]
    order: Option<i64>,
    /// A file of device serials, one a line: each one's certificate in force.
    #[arg(long, group = "selection")]
    device_list: Option<PathBuf>,
    /// An issuing CA certificate file (PEM or DER), signed by the root of --ca.
    #[arg(long, group = "selection", requires = "ca")]
    ca_certificate: Option<PathBuf>,
    /// The CA directory whose root signed --ca-certificate.
    #[arg(long, requires = "ca_certificate")]
    ca: Option<PathBuf>,
    /// Why (RFC 5280 reason, kebab case).
    #[arg(long, default_value = "unspecified")]
    reason: String,
    /// Since when the key is known or suspected to be unfit (RFC 3339; not in
    /// the future, not before the certificate's notBefore).
    #[arg(long)]
    invalidity_date: Option<String>,
    /// Only list what would be revoked; nothing is recorded.
    #[arg(long)]
    dry_run: bool,
    /// One JSON object per certificate, one per line, then a summary object.
    #[arg(long)]
    json: bool,
}

pub fn revoke(args: RevokeArgs) -> Result<()> {
    let reason: RevocationReason = match args.reason.trim().parse() {
        Ok(reason) => reason,
        Err(e) => usage!("--reason: {e}"),
    };
    let invalidity_date = args
        .invalidity_date
        .as_deref()
        .map(revoke::parse_invalidity_date)
        .transpose()?;
    let selection = match (
        &args.serial,
        &args.device_serial,
        &args.seal_label,
        args.order,
        &args.device_list,
    ) {
        (Some(serial), ..) => Some(Selection::Serial(serial.clone())),
        (_, Some(serial), ..) => Some(Selection::DeviceSerial(serial.clone())),
        (_, _, Some(label), ..) => Some(Selection::SealLabel(label.clone())),
        (_, _, _, Some(order), _) => Some(Selection::Order(OrderId(order))),
        (.., Some(path)) => Some(Selection::DeviceList(path.clone())),
        _ => None,
    };
    if selection.is_none() && args.ca_certificate.is_none() {
        usage!("name what to revoke: --serial, --device-serial, --seal-label, --order, --device-list or --ca-certificate with --ca");
    }
    let operator = args.journal.operator()?;
    let options = RevokeOptions {
        reason,
        invalidity_date,
        operator,
        dry_run: args.dry_run,
    };
    // The journal must exist: a revocation on a journal made here would
    // reach no CRL the CA publishes.
    let mut journal = args.journal.location.open()?;
    if let (Some(certificate), Some(ca_dir)) = (&args.ca_certificate, &args.ca) {
        let report = revoke::revoke_ca_certificate(
            &mut journal,
            &CaCertificateRequest {
                certificate,
                ca_dir,
            },
            &options,
        )?;
        if args.json {
            super::json::print("revoke.ca-certificate", &report)?;
        } else {
            println!(
                "CA certificate {} ({}): {}",
                report.serial,
                one_line(&report.subject),
                outcome_words(&report.outcome)
            );
        }
        return Ok(());
    }
    let Some(selection) = selection else {
        return Ok(());
    };
    let long = matches!(selection, Selection::Order(_) | Selection::DeviceList(_));
    let stop = super::stop_on_ctrl_c("revocation")?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed_write = None;
    let mut report = |item: &RevokeItem, summary: &RevokeSummary| {
        let written = if args.json {
            super::json::write_line(&mut out, "revoke.item", item)
        } else {
            writeln!(out, "{}", item_line(item))
        }
        .and_then(|()| out.flush());
        if let Err(e) = written {
            super::exit_quietly_if_closed(&e);
            failed_write.get_or_insert(e);
            stop.store(true, Ordering::SeqCst);
        }
        if long && !args.json && summary.selected % PROGRESS_EVERY == 0 {
            eprintln!("… {} done", summary.selected);
        }
    };
    let summary = revoke::revoke(&mut journal, &selection, &options, &stop, &mut report)?;
    if let Some(e) = failed_write {
        return Err(e.into());
    }
    write_summary(&mut out, &summary, args.json, args.dry_run)?;
    if summary.stopped {
        return Err(certmint::error::Stopped.into());
    }
    Ok(summary.result()?)
}

fn outcome_words(outcome: &ItemOutcome) -> String {
    match outcome {
        ItemOutcome::Revoked { revoked_at } => format!("revoked at {revoked_at}"),
        ItemOutcome::AlreadyRevoked { revoked_at, reason } => {
            format!("revoked already, at {revoked_at} ({reason})")
        }
        ItemOutcome::WouldRevoke => "would be revoked (dry run)".into(),
        ItemOutcome::NotFound { problem } => format!("not found: {}", one_line(problem)),
        ItemOutcome::Refused { problem } => format!("refused: {}", one_line(problem)),
    }
}

fn item_line(item: &RevokeItem) -> String {
    match &item.serial {
        Some(serial) if *serial != item.selected => format!(
            "{} (certificate {serial}): {}",
            one_line(&item.selected),
            outcome_words(&item.outcome)
        ),
        Some(serial) => format!("certificate {serial}: {}", outcome_words(&item.outcome)),
        None => format!(
            "{}: {}",
            one_line(&item.selected),
            outcome_words(&item.outcome)
        ),
    }
}

fn write_summary(
    out: &mut impl std::io::Write,
    summary: &RevokeSummary,
    json: bool,
    dry_run: bool,
) -> Result<()> {
    if json {
        super::json::write_line(out, "revoke.summary", summary)?;
    } else if dry_run {
        writeln!(
            out,
            "Dry run: {} would be revoked, {} revoked already, {} not found, {} refused; nothing recorded.",
            summary.would_revoke, summary.already_revoked, summary.not_found, summary.refused
        )?;
    } else {
        writeln!(
            out,
            "{} revoked, {} revoked already, {} not found, {} refused{}.",
            summary.revoked,
            summary.already_revoked,
            summary.not_found,
            summary.refused,
            if summary.stopped {
                " (stopped by Ctrl-C: run again to finish)"
            } else {
                ""
            }
        )?;
    }
    out.flush()?;
    Ok(())
}
