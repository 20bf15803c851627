//! `certmint audit show`: the audit log, streamed, for an auditor.

use std::io::Write as _;

use anyhow::Result;
use clap::Args;

use certmint::journal::OrderId;
use certmint::records::{each_audit_record, AuditFilter, RecordsError};
use certmint::text::one_line;

use super::orders::ReadJournalArgs;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  certmint audit show --order 3\n  certmint audit show --since 2026-12-01T00:00:00Z --until 2026-12-31T23:59:59Z --json\n\n\
Prints the records in sequence order, read a page at a time. With --order: the records about the\n\
order, its devices and their certificates. --json prints one JSON object per record, one per line.\n\
`certmint audit verify` checks the chain."
)]
pub struct AuditShowArgs {
    #[command(flatten)]
    journal: ReadJournalArgs,
    /// Only the records about this order, its devices and their certificates.
    #[arg(long)]
    order: Option<i64>,
    /// Only records at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Only records at or before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub fn audit_show(args: AuditShowArgs) -> Result<()> {
    let journal = args.journal.open()?;
    let filter = AuditFilter {
        order: args.order.map(OrderId),
        since: args.since.clone(),
        until: args.until.clone(),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let output = |e: std::io::Error| {
        super::exit_quietly_if_closed(&e);
        RecordsError::Output(e.to_string())
    };
    each_audit_record(&journal, &filter, |record| {
        if args.json {
            super::json::write_line(&mut out, "audit.record", record).map_err(output)
        } else {
            // Subjects and details name what outside input named: one line each.
            writeln!(
                out,
                "{:>6} {} {} {} {}: {}",
                record.seq,
                record.at,
                one_line(&record.operator),
                record.event,
                one_line(&record.subject),
                one_line(&record.details)
            )
            .map_err(output)
        }
    })?;
    out.flush()?;
    Ok(())
}
