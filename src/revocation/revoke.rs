//! `certmint revoke`'s rules: which certificates a selection names, what
//! may be revoked, and the invalidity date's bounds. The journal records
//! each revocation with its audit record in one transaction, one
//! certificate at a time, so a long list stopped part-way (Ctrl-C, a crash)
//! leaves every revocation done so far on record, and running it again
//! reports those as revoked already.
//!
//! A selection resolves to certificates on record:
//! - a certificate serial: that certificate (issued, superseded or void);
//! - a device serial or seal label: the device's certificate in force;
//! - an order: every issued certificate of the order (a recalled batch);
//! - a device list: each listed device's certificate in force.
//!
//! An issuing CA certificate is not a device certificate: see
//! [`revoke_ca_certificate`].

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::RevocationReason;
use crate::error::ErrorKind;
use crate::ids::PrefixTable;
use crate::journal::{
    CaCertificateRevocation, CertificateDetail, CertificateFilter, CertificateStatus, Journal,
    JournalError, OrderId, RevocationRequest, RevokeOutcome,
};
use crate::order::serial_list::SerialListReader;

/// The most devices one `--device-list` names.
pub const MAX_DEVICE_LIST: u64 = 1_000_000;

/// How many certificates one page of an order reads.
const PAGE: usize = 256;

/// What to revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// One certificate, by its serial (hex, any case, colons allowed).
    Serial(String),
    /// An ÖKC device's certificate in force.
    DeviceSerial(String),
    /// A Mali Mühür seal's certificate in force.
    SealLabel(String),
    /// Every issued certificate of an order.
    Order(OrderId),
    /// The certificates in force of the devices a file lists, one device
    /// serial a line (or a CSV with a serial column, as order lists).
    DeviceList(PathBuf),
}

/// How to revoke.
#[derive(Debug, Clone)]
pub struct RevokeOptions {
    /// Why.
    pub reason: RevocationReason,
    /// Since when the key is known or suspected to be unfit.
    pub invalidity_date: Option<OffsetDateTime>,
    /// Who, for the audit log.
    pub operator: String,
    /// Only report what would be revoked.
    pub dry_run: bool,
}

/// Why a revocation could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RevokeError {
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The invalidity date is not RFC 3339, or lies in the future.
    #[error("--invalidity-date {given:?}: {problem}")]
    InvalidityDate {
        /// What was given.
        given: String,
        /// What is wrong.
        problem: String,
    },
    /// The device list cannot be used; nothing was revoked.
    #[error("device list {path}: {problem}; nothing was revoked")]
    DeviceList {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// The CA certificate cannot be revoked by this CA directory.
    #[error("{0}")]
    CaCertificate(String),
    /// The CA directory or the certificate file could not be read.
    #[error(transparent)]
    Ca(#[from] crate::ca::CaError),
    /// Some selected certificates were not revoked (each is reported).
    #[error("{not_done} of {selected} selected certificate(s) not revoked: {first}")]
    Incomplete {
        /// How many were selected.
        selected: u64,
        /// How many were not revoked (not found or refused).
        not_done: u64,
        /// The first one, in words.
        first: String,
        /// Its kind.
        kind: ErrorKind,
    },
}

impl RevokeError {
    /// What kind of failure this is (see [`crate::error`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            RevokeError::Journal(e) => e.kind(),
            RevokeError::InvalidityDate { .. }
            | RevokeError::DeviceList { .. }
            | RevokeError::CaCertificate(_) => ErrorKind::InvalidInput,
            RevokeError::Ca(e) => e.kind(),
            RevokeError::Incomplete { kind, .. } => *kind,
        }
    }
}

/// Parses an invalidity date: RFC 3339, not in the future.
pub fn parse_invalidity_date(text: &str) -> Result<OffsetDateTime, RevokeError> {
    let problem = |problem: &str| RevokeError::InvalidityDate {
        given: crate::text::one_line(text),
        problem: problem.to_owned(),
    };
    let date = OffsetDateTime::parse(text.trim(), &Rfc3339)
        .map_err(|_| problem("not an RFC 3339 time such as 2026-12-01T09:00:00Z"))?;
    // A CRL carries times from 1970 on; an earlier date could never be
    // listed.
    if date.year() < 1970 {
        return Err(problem("lies before 1970"));
    }
    if date > OffsetDateTime::now_utc() {
        return Err(problem(
            "lies in the future; give when the key became unfit, as far as known",
        ));
    }
    Ok(date)
}

/// What happened to one selected certificate (or one that was not found).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum ItemOutcome {
    /// Revoked now.
    Revoked {
        /// When (RFC 3339).
        revoked_at: String,
    },
    /// Revoked before; nothing changed.
    AlreadyRevoked {
        /// When (RFC 3339).
        revoked_at: String,
        /// Why, then.
        reason: RevocationReason,
    },
    /// Would be revoked (`--dry-run`).
    WouldRevoke,
    /// Nothing on record matches.
    NotFound {
        /// In words.
        problem: String,
    },
    /// On record, but not revocable as asked.
    Refused {
        /// In words.
        problem: String,
    },
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RevokeItem {
    /// What was asked for: a certificate serial, a device serial or a seal label.
    pub selected: String,
    /// The certificate serial, when one was found.
    pub serial: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub outcome: ItemOutcome,
    /// The kind of a not-found or refused item (not in JSON: the outcome says it).
    #[serde(skip)]
    pub kind: Option<ErrorKind>,
}

/// How many of each.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RevokeSummary {
    /// Items reported.
    pub selected: u64,
    /// Revoked now.
    pub revoked: u64,
    /// Revoked before.
    pub already_revoked: u64,
    /// Would be revoked (`--dry-run`).
    pub would_revoke: u64,
    /// Not found.
    pub not_found: u64,
    /// Refused.
    pub refused: u64,
    /// Whether Ctrl-C stopped the work before the end.
    pub stopped: bool,
    /// The first item not found or refused, in words, and its kind.
    #[serde(skip)]
    pub first_problem: Option<(String, ErrorKind)>,
}

impl RevokeSummary {
    /// `Ok` when every selected certificate is revoked (now or before, or
    /// would be on a dry run); otherwise [`RevokeError::Incomplete`] with
    /// the kind of the first item that was not.
    pub fn result(&self) -> Result<(), RevokeError> {
        match &self.first_problem {
            None => Ok(()),
            Some((first, kind)) => Err(RevokeError::Incomplete {
                selected: self.selected,
                not_done: self.not_found + self.refused,
                first: first.clone(),
                kind: *kind,
            }),
        }
    }
}

/// Revokes what `selection` names, calling `report` with each item as it is
/// done. Between items, `stop` (Ctrl-C) ends the work: every revocation done
/// is on record. Returns the summary; an item not found or refused does not
/// stop the others — the caller reports the summary, then turns it into the
/// exit status ([`RevokeSummary::result`]).
pub fn revoke(
    journal: &mut dyn Journal,
    selection: &Selection,
    options: &RevokeOptions,
    stop: &AtomicBool,
    report: &mut dyn FnMut(&RevokeItem, &RevokeSummary),
) -> Result<RevokeSummary, RevokeError> {
    let mut summary = RevokeSummary::default();
    let mut handle = |item: RevokeItem, summary: &mut RevokeSummary| {
        summary.selected += 1;
        match &item.outcome {
            ItemOutcome::Revoked { .. } => summary.revoked += 1,
            ItemOutcome::AlreadyRevoked { .. } => summary.already_revoked += 1,
            ItemOutcome::WouldRevoke => summary.would_revoke += 1,
            ItemOutcome::NotFound { .. } => summary.not_found += 1,
            ItemOutcome::Refused { .. } => summary.refused += 1,
        }
        if summary.first_problem.is_none() {
            if let (
                Some(kind),
                ItemOutcome::NotFound { problem } | ItemOutcome::Refused { problem },
            ) = (item.kind, &item.outcome)
            {
                summary.first_problem = Some((problem.clone(), kind));
            }
        }
        report(&item, summary);
    };
    match selection {
        Selection::Serial(text) => {
            let serial = crate::records::normalize_serial(text);
            let item = match one_certificate(journal, &serial)? {
                Some(detail) => revoke_one(journal, &serial, &detail, options)?,
                None => not_found(
                    &serial,
                    None,
                    format!("no certificate on record has serial {serial}"),
                ),
            };
            handle(item, &mut summary);
        }
        Selection::DeviceSerial(name) => {
            let item = revoke_device(journal, name.trim(), DeviceKind::Okc, options)?;
            handle(item, &mut summary);
        }
        Selection::SealLabel(name) => {
            let item = revoke_device(journal, name.trim(), DeviceKind::Seal, options)?;
            handle(item, &mut summary);
        }
        Selection::Order(order) => {
            journal.order(*order)?;
            let filter = CertificateFilter {
                order: Some(*order),
                ..CertificateFilter::default()
            };
            let mut after = 0;
            'pages: loop {
                let page = journal.certificates(&filter, after, PAGE)?;
                let Some(last) = page.last() else { break };
                after = last.id;
                // Every certificate of the order that may be valid: issued,
                // superseded (its reissue may still be in progress) and
                // intents (signed, perhaps, before a crash: refused and
                // reported, never skipped). Void ones were revoked when
                // they were voided.
                for detail in page.iter().filter(|c| c.status != CertificateStatus::Void) {
                    if stop.load(Ordering::SeqCst) {
                        summary.stopped = true;
                        break 'pages;
                    }
                    let item = revoke_one(journal, device_of(detail), detail, options)?;
                    handle(item, &mut summary);
                }
            }
        }
        Selection::DeviceList(path) => {
            check_device_list(path)?;
            for listed in device_list(path)? {
                if stop.load(Ordering::SeqCst) {
                    summary.stopped = true;
                    break;
                }
                let serial = listed.map_err(|problem| list_error(path, problem.to_string()))?;
                let item =
                    revoke_device(journal, serial.serial.as_str(), DeviceKind::Okc, options)?;
                handle(item, &mut summary);
            }
        }
    }
    Ok(summary)
}

fn device_of(detail: &CertificateDetail) -> &str {
    detail
        .device_serial
        .as_deref()
        .or(detail.seal_label.as_deref())
        .unwrap_or(&detail.serial)
}

fn not_found(selected: &str, serial: Option<String>, problem: String) -> RevokeItem {
    RevokeItem {
        selected: selected.to_owned(),
        serial,
        outcome: ItemOutcome::NotFound { problem },
        kind: Some(ErrorKind::NotFound),
    }
}

fn refused(selected: &str, serial: &str, problem: String, kind: ErrorKind) -> RevokeItem {
    RevokeItem {
        selected: selected.to_owned(),
        serial: Some(serial.to_owned()),
        outcome: ItemOutcome::Refused { problem },
        kind: Some(kind),
    }
}

/// The certificate on record with this serial.
fn one_certificate(
    journal: &dyn Journal,
    serial: &str,
) -> Result<Option<CertificateDetail>, JournalError> {
    let filter = CertificateFilter {
        serial: Some(serial.to_owned()),
        ..CertificateFilter::default()
    };
    Ok(journal.certificates(&filter, 0, 1)?.pop())
}

/// What a device name names: an ÖKC device serial or a seal label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeviceKind {
    Okc,
    Seal,
}

/// The certificate in force of the ÖKC device or seal `name`.
fn revoke_device(
    journal: &mut dyn Journal,
    name: &str,
    kind: DeviceKind,
    options: &RevokeOptions,
) -> Result<RevokeItem, RevokeError> {
    let what = match kind {
        DeviceKind::Okc => "ÖKC device",
        DeviceKind::Seal => "seal",
    };
    let device = journal.device_by_serial(name)?.filter(|device| {
        matches!(
            (kind, &device.name),
            (DeviceKind::Okc, crate::ids::DeviceName::Serial(_))
                | (DeviceKind::Seal, crate::ids::DeviceName::Seal(_))
        )
    });
    let Some(device) = device else {
        return Ok(not_found(name, None, format!("no {what} {name} on record")));
    };
    let Some((serial, _)) = journal.certificate_in_force(&device)? else {
        return Ok(not_found(
            name,
            None,
            format!("{name} has no certificate in force (none issued yet, or its last was voided)"),
        ));
    };
    match one_certificate(journal, &serial)? {
        Some(detail) => revoke_one(journal, name, &detail, options),
        None => Ok(not_found(
            name,
            Some(serial.clone()),
            format!("certificate {serial} of {name} is not on record"),
        )),
    }
}

/// Revokes one certificate on record (or says it would), checking the
/// invalidity date against its notBefore.
fn revoke_one(
    journal: &mut dyn Journal,
    selected: &str,
    detail: &CertificateDetail,
    options: &RevokeOptions,
) -> Result<RevokeItem, RevokeError> {
    let serial = detail.serial.as_str();
    if let Some(earlier) = &detail.revocation {
        return Ok(RevokeItem {
            selected: selected.to_owned(),
            serial: Some(serial.to_owned()),
            outcome: ItemOutcome::AlreadyRevoked {
                revoked_at: earlier.revoked_at.clone(),
                reason: earlier.reason,
            },
            kind: None,
        });
    }
    if detail.status == CertificateStatus::Intent {
        return Ok(refused(
            selected,
            serial,
            format!("certificate {serial} is an intent still in progress: finish or resume its order first"),
            ErrorKind::Conflict,
        ));
    }
    if let (Some(date), Some(not_before)) = (options.invalidity_date, &detail.not_before) {
        if let Ok(not_before_at) = OffsetDateTime::parse(not_before, &Rfc3339) {
            if date < not_before_at {
                return Ok(refused(
                    selected,
                    serial,
                    format!(
                        "the invalidity date {} lies before certificate {serial}'s notBefore {not_before}",
                        crate::timestamp::format(date)
                    ),
                    ErrorKind::InvalidInput,
                ));
            }
        }
    }
    if options.dry_run {
        return Ok(RevokeItem {
            selected: selected.to_owned(),
            serial: Some(serial.to_owned()),
            outcome: ItemOutcome::WouldRevoke,
            kind: None,
        });
    }
    let outcome = journal.revoke(
        &RevocationRequest {
            serial_hex: serial.to_owned(),
            reason: options.reason,
            invalidity_date: options.invalidity_date,
        },
        &options.operator,
    )?;
    Ok(RevokeItem {
        selected: selected.to_owned(),
        serial: Some(serial.to_owned()),
        outcome: match outcome {
            RevokeOutcome::Revoked { revoked_at } => ItemOutcome::Revoked { revoked_at },
            RevokeOutcome::AlreadyRevoked { when, reason } => ItemOutcome::AlreadyRevoked {
                revoked_at: when,
                reason,
            },
        },
        kind: None,
    })
}

fn list_error(path: &Path, problem: String) -> RevokeError {
    RevokeError::DeviceList {
        path: crate::text::quoted(&path.display().to_string()),
        problem,
    }
}

/// The device list's serials, streamed.
fn device_list(
    path: &Path,
) -> Result<SerialListReader<BufReader<std::io::Take<std::fs::File>>>, RevokeError> {
    let file = std::fs::File::open(path).map_err(|e| list_error(path, e.to_string()))?;
    Ok(SerialListReader::new(
        BufReader::new(file.take(crate::input::MAX_SERIAL_LIST_BYTES + 1)),
        PrefixTable::any(),
    ))
}

/// Reads the whole list once before anything is revoked: a list with a bad
/// line, too many devices or too many bytes is refused whole.
fn check_device_list(path: &Path) -> Result<(), RevokeError> {
    let size = std::fs::metadata(path)
        .map_err(|e| list_error(path, e.to_string()))?
        .len();
    if size > crate::input::MAX_SERIAL_LIST_BYTES {
        return Err(list_error(
            path,
            format!(
                "larger than {} bytes, the most certmint reads from a list",
                crate::input::MAX_SERIAL_LIST_BYTES
            ),
        ));
    }
    let mut count = 0u64;
    for listed in device_list(path)? {
        listed.map_err(|problem| list_error(path, problem.to_string()))?;
        count += 1;
        if count > MAX_DEVICE_LIST {
            return Err(list_error(
                path,
                format!("more than {MAX_DEVICE_LIST} devices; split it"),
            ));
        }
    }
    Ok(())
}

/// An issuing CA certificate to revoke, checked against a CA directory.
#[derive(Debug, Clone)]
pub struct CaCertificateRequest<'a> {
    /// The CA certificate file (PEM or DER).
    pub certificate: &'a Path,
    /// The CA directory whose root signed it.
    pub ca_dir: &'a Path,
}

/// What [`revoke_ca_certificate`] found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaRevokeReport {
    /// The CA certificate's serial, hex.
    pub serial: String,
    /// Its subject.
    pub subject: String,
    /// The root's key identifier, hex (the root's CRL lists it).
    pub issuer_key_id: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: ItemOutcome,
}

/// Revokes an issuing CA certificate: it must be a CA certificate whose
/// signature verifies under the CA directory's root key; the root's CRL
/// (keyed by the root's subjectKeyIdentifier) lists it.
pub fn revoke_ca_certificate(
    journal: &mut dyn Journal,
    request: &CaCertificateRequest<'_>,
    options: &RevokeOptions,
) -> Result<CaRevokeReport, RevokeError> {
    use der::{Decode, Encode};
    use x509_cert::ext::pkix::{BasicConstraints, SubjectKeyIdentifier};
    let refuse = |problem: String| RevokeError::CaCertificate(problem);
    let file = crate::text::quoted(&request.certificate.display().to_string());
    let config = crate::profile::CaConfig::load(&request.ca_dir.join(crate::ca::CONFIG_FILE))
        .map_err(|e| refuse(format!("CA directory {}: {e}", request.ca_dir.display())))?;
    let root_der = crate::ca::read_certificate(&request.ca_dir.join(&config.ca.root_certificate))?;
    let der = crate::ca::read_certificate(request.certificate)?;
    let decode = |der: &[u8]| {
        x509_cert::Certificate::from_der(der).map_err(|e| refuse(format!("{file}: {e}")))
    };
    let root = decode(&root_der)?;
    let certificate = decode(&der)?;
    let tbs = certificate.tbs_certificate();
    let is_ca = tbs
        .get_extension::<BasicConstraints>()
        .ok()
        .flatten()
        .is_some_and(|(_, bc)| bc.ca);
    if !is_ca {
        return Err(refuse(format!(
            "{file} is not a CA certificate (no basicConstraints cA); revoke a device certificate with --serial"
        )));
    }
    if der == root_der {
        return Err(refuse(format!(
            "{file} is the root certificate itself: a root is withdrawn by removing it from trust stores, not by a CRL"
        )));
    }
    let algorithm = crate::signer::SignatureAlgorithm::from_algorithm_identifier(
        certificate.signature_algorithm(),
    )
    .ok_or_else(|| {
        refuse(format!(
            "{file} is signed with an algorithm certmint does not know"
        ))
    })?;
    let message = tbs.to_der().map_err(|e| refuse(format!("{file}: {e}")))?;
    let root_key = root
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| refuse(format!("root certificate: {e}")))?;
    let signature = certificate
        .signature()
        .as_bytes()
        .ok_or_else(|| refuse(format!("{file}: its signature is not whole bytes")))?;
    crate::signer::verify_signature(&root_key, algorithm, &message, signature).map_err(|_| {
        refuse(format!(
            "{file} is not signed by the root of CA directory {}",
            request.ca_dir.display()
        ))
    })?;
    let root_key_id = root
        .tbs_certificate()
        .get_extension::<SubjectKeyIdentifier>()
        .ok()
        .flatten()
        .map(|(_, ski)| ski.0.as_bytes().to_vec())
        .ok_or_else(|| refuse("the root certificate has no subjectKeyIdentifier".into()))?;
    if let Some(date) = options.invalidity_date {
        let not_before = tbs.validity().not_before.to_system_time();
        if std::time::SystemTime::from(date) < not_before {
            return Err(RevokeError::InvalidityDate {
                given: crate::timestamp::format(date),
                problem: format!("lies before {file}'s notBefore"),
            });
        }
    }
    // Recorded, a revocation is listed by every later CRL of the root: a
    // serial no CRL can carry (zero, negative, over 20 octets) would make
    // every one of them a lint refusal, for good.
    crate::crl::lint::serial(tbs.serial_number().as_bytes())
        .map_err(|e| refuse(format!("{file} cannot be listed in a CRL: {e}")))?;
    let serial = crate::pem::hex(tbs.serial_number().as_bytes());
    let subject = tbs.subject().to_string();
    let outcome = if options.dry_run {
        ItemOutcome::WouldRevoke
    } else {
        match journal.revoke_ca_certificate(
            &CaCertificateRevocation {
                serial_hex: serial.clone(),
                issuer_key_id: root_key_id.clone(),
                subject: subject.clone(),
                reason: options.reason,
                invalidity_date: options.invalidity_date,
            },
            &options.operator,
        )? {
            RevokeOutcome::Revoked { revoked_at } => ItemOutcome::Revoked { revoked_at },
            RevokeOutcome::AlreadyRevoked { when, reason } => ItemOutcome::AlreadyRevoked {
                revoked_at: when,
                reason,
            },
        }
    };
    Ok(CaRevokeReport {
        serial,
        subject,
        issuer_key_id: crate::pem::hex(&root_key_id),
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalidity_date_is_rfc_3339_and_not_in_the_future() {
        assert!(parse_invalidity_date("2026-01-01T00:00:00Z").is_ok());
        let future = parse_invalidity_date("2999-01-01T00:00:00Z").unwrap_err();
        assert!(future.to_string().contains("future"), "{future}");
        assert_eq!(future.kind(), ErrorKind::InvalidInput);
        let early = parse_invalidity_date("1969-12-31T23:59:59Z").unwrap_err();
        assert!(early.to_string().contains("1970"), "{early}");
        let bad = parse_invalidity_date("yesterday").unwrap_err();
        assert!(bad.to_string().contains("RFC 3339"), "{bad}");
    }
}
