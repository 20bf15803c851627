//! `certmint audit show`: the audit log, streamed, for an auditor.

use std::io::Write as _;

use anyhow::Result;
use clap::Args;

use certmint::journal::OrderId;
use certmint::order::one_off::{OneOff, OneOffSeal, SealOnRecord};
use certmint::records::{each_audit_record, AuditFilter, RecordsError};
use certmint::text::one_line;

use super::orders::{JournalArgs, ReadJournalArgs};

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
    let output = |e: std::io::Error| RecordsError::Output(e.to_string());
    each_audit_record(&journal, &filter, |record| {
        if args.json {
            serde_json::to_writer(&mut out, record)
                .map_err(|e| RecordsError::Output(e.to_string()))?;
            writeln!(out).map_err(output)
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

/// A seal provisioned without `--order` (`hsm provision`, `card provision`),
/// planned on the journal: its label is the company's next seal number.
pub fn plan_seal(
    journal: &JournalArgs,
    subject: &certmint::profile::Subject,
    target: certmint::journal::Target,
    key_type: certmint::signer::KeyType,
    source: &str,
) -> Result<std::sync::Arc<std::sync::Mutex<SealOnRecord>>> {
    let certmint::profile::Subject::MaliMuhur { id, trade_name } = subject else {
        anyhow::bail!("provisioning makes Mali Mühür certificates only");
    };
    let operator = journal.operator()?;
    let opened = journal.open()?;
    let seal = OneOffSeal::plan(
        &opened,
        id,
        trade_name.as_str(),
        &OneOff {
            target,
            key_type,
            source,
            operator: &operator,
            reissue: false,
        },
    )?;
    Ok(std::sync::Arc::new(std::sync::Mutex::new(SealOnRecord {
        journal: Box::new(opened),
        seal,
    })))
}

/// After provisioning a planned seal: its certificate recorded as issued
/// (`provisioned` = the certificate's DER), or, when provisioning failed
/// after the CA was asked to sign, its intent voided. Returns the order.
pub fn finish_seal<T>(
    record: &std::sync::Mutex<SealOnRecord>,
    provisioned: Result<T, anyhow::Error>,
    der: impl FnOnce(&T) -> Result<Vec<u8>>,
) -> Result<(T, certmint::journal::OrderId)> {
    // A poisoned lock only means another thread panicked; the journal's
    // state is its own (transactions), not the lock's.
    let mut guard = record.lock().unwrap_or_else(|p| p.into_inner());
    let SealOnRecord { journal, seal } = &mut *guard;
    match provisioned {
        Ok(done) => {
            let order = seal.record_issued(journal.as_mut(), &der(&done)?)?;
            Ok((done, order))
        }
        Err(e) => {
            if let Some(serial) = seal.intent_serial().map(str::to_owned) {
                seal.void(
                    journal.as_mut(),
                    &format!("not provisioned: {}", one_line(&format!("{e:#}"))),
                )
                .map_err(|v| {
                    anyhow::Error::from(v).context(format!(
                        "certificate {serial} could not be recorded as void"
                    ))
                })?;
            }
            Err(e)
        }
    }
}
