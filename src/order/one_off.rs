//! Certificates signed outside an imported order are on record too: a
//! certificate from `certmint issue`, and a seal from `hsm provision` or
//! `card provision` without `--order`, each get a one-off order (paid at
//! creation by the operator who asks, audited as one-off) holding their one
//! device or seal, unless the device is on record already, in whichever
//! order: then the certificate attaches to it.
//!
//! The rules, in one place:
//! - a device serial or seal label has at most one issued certificate; a
//!   second one is refused naming the first ([`JournalError::AlreadyCertified`])
//!   unless the operator asks for a reissue, which records the first as
//!   superseded by the second;
//! - a company's seals are numbered `{VKN}SIGN{n}` on from every seal it
//!   ever got, in any order ([`next_seal_labels`]);
//! - the intent is durable before the CA key signs, and the certificate is
//!   recorded once signed and verified.

use der::{DateTime, Decode};

use crate::ids::{SealLabel, TaxpayerId};
use crate::issue::{CertificateAuthority, IssueError, IssuedCertificate, SubjectKey};
use crate::journal::{
    Application, CertificateStatus, Device, DeviceState, Intent, Journal, JournalError, NewOrder,
    OrderId, OrderKind, OrderState, StoredCertificate, Target,
};
use crate::pem::{hex, hex_colons};
use crate::profile::{Profile, Subject};
use crate::signer::KeyType;

/// Why a certificate could not be issued on record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnRecordError {
    /// The journal refused or failed (a certificate already on record
    /// included).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The CA refused or failed to issue; any intent recorded for it was voided.
    #[error(transparent)]
    Issue(#[from] IssueError),
    /// The subject is not one a certificate on record can be for (a CA).
    #[error("{0} certificates are not issued on an order's record")]
    NotRecordable(String),
    /// The CA signed, but the journal could not record the certificate: its
    /// intent stays on record (durable before the signature), so the
    /// journal still knows the serial.
    #[error("certificate {serial} was signed but could not be recorded as issued (its intent is on record): {source}")]
    SignedNotRecorded {
        /// The certificate serial, hex.
        serial: String,
        /// What failed.
        #[source]
        source: JournalError,
    },
}

impl OnRecordError {
    /// The journal's or the CA's kind; a CA subject is a usage error; a
    /// certificate signed but not recorded is a failure.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            OnRecordError::Journal(e) => e.kind(),
            OnRecordError::Issue(e) => e.kind(),
            OnRecordError::NotRecordable(_) => ErrorKind::Usage,
            OnRecordError::SignedNotRecorded { .. } => ErrorKind::Failure,
        }
    }
}

/// How a certificate outside an imported order is recorded.
#[derive(Debug, Clone, Copy)]
pub struct OneOff<'a> {
    /// Where the key lives (`external` for a CSR or a public key).
    pub target: Target,
    /// The key type, for the order's record.
    pub key_type: KeyType,
    /// The command that asks, named as the one-off order's source.
    pub source: &'a str,
    /// Who asks (for the audit log; also who pays a one-off order).
    pub operator: &'a str,
    /// Supersede an issued certificate of the same device instead of
    /// refusing a second one.
    pub reissue: bool,
}

/// The next `count` seal labels of the taxpayer `id`: `{ID}SIGN{n}` for
/// the lowest `n` on no record, counting every seal the company ever got
/// in any order (imported or one-off).
pub fn next_seal_labels(
    journal: &dyn Journal,
    id: &TaxpayerId,
    count: usize,
) -> Result<Vec<SealLabel>, JournalError> {
    let mut labels = Vec::with_capacity(count);
    let mut index: u32 = 0;
    while labels.len() < count {
        let label = SealLabel::new(id, index);
        if journal.device_order(label.as_str())?.is_none() {
            labels.push(label);
        }
        index = index.saturating_add(1);
    }
    Ok(labels)
}

/// A one-off Mali Mühür order for one seal of the company `id` (`name` its
/// trade name), labelled with its next seal number, paid at creation. The
/// order's production path (`hsm provision --order`, the card path) then
/// provisions it like any imported seal order.
pub fn one_off_seal_order(
    journal: &mut dyn Journal,
    id: &TaxpayerId,
    name: &str,
    how: &OneOff<'_>,
) -> Result<(OrderId, SealLabel), JournalError> {
    let label = next_seal_labels(&*journal, id, 1)?.pop().ok_or_else(|| {
        JournalError::NoCertificate(format!("a free seal label of {}", id.as_str()))
    })?;
    let device = journal.record_one_off_order(
        &one_off_order(OrderKind::MaliMuhur, name, Some(id), Vec::new(), how),
        label.as_str(),
    )?;
    Ok((device.order, label))
}

fn one_off_order(
    kind: OrderKind,
    holder: &str,
    taxpayer: Option<&TaxpayerId>,
    prefixes: Vec<String>,
    how: &OneOff<'_>,
) -> NewOrder {
    NewOrder {
        kind,
        manufacturer: holder.to_owned(),
        manufacturer_vkn: taxpayer.cloned(),
        prefixes,
        application: Application::Initial,
        target: how.target,
        key_type: how.key_type,
        source: how.source.to_owned(),
        operator: how.operator.to_owned(),
    }
}

/// Where a certificate goes on record: the device row, the issued
/// certificate it supersedes, and whether a one-off order was made for it.
#[derive(Debug, Clone)]
pub struct RecordPlace {
    /// The device (or seal) row.
    pub device: Device,
    /// The issued certificate a reissue supersedes, hex.
    pub supersedes: Option<String>,
    /// Whether the device's order is a one-off order made for this certificate.
    pub one_off: bool,
}

/// Checks, before anything is written or signed, that `subject` may get a
/// certificate: an ÖKC device on record with an issued certificate is
/// refused (unless a reissue is asked for) or has an unfinished intent, and
/// a device whose order a live producer holds is left to it. Returns the
/// device when it is on record.
fn device_on_record(
    journal: &dyn Journal,
    serial: &str,
    how: &OneOff<'_>,
) -> Result<Option<(Device, Option<String>)>, JournalError> {
    let Some(device) = journal.device_by_serial(serial)? else {
        return Ok(None);
    };
    // Nothing is certified before its order is paid.
    let order = journal.order(device.order)?;
    if order.state == crate::journal::OrderState::Received {
        return Err(JournalError::WrongState {
            order: order.id,
            state: order.state,
            refused: format!(
                "device {serial} belongs to it, and no certificate is issued before payment (record it with `certmint order pay --order {}`)",
                order.id
            ),
        });
    }
    let now_ms = journal.clock_ms()?;
    for lease in journal.leases(device.order)? {
        if lease.is_live_at(
            &crate::journal::LeaseHolder::this_process(how.operator),
            now_ms,
        ) {
            return Err(JournalError::Held {
                order: device.order,
                lease: Box::new(lease),
            });
        }
    }
    let supersedes = match journal.certificate_in_force(&device)? {
        None => None,
        Some((certificate, CertificateStatus::Issued)) if how.reissue => Some(certificate),
        Some((certificate, CertificateStatus::Issued)) => {
            return Err(JournalError::AlreadyCertified {
                subject: serial.to_owned(),
                serial: certificate,
            })
        }
        Some((certificate, _)) => {
            return Err(JournalError::InProgress {
                subject: serial.to_owned(),
                serial: certificate,
                order: device.order,
            })
        }
    };
    Ok(Some((device, supersedes)))
}

/// A certificate issued on record.
#[derive(Debug, Clone)]
pub struct IssuedOnRecord {
    /// The certificate.
    pub certificate: IssuedCertificate,
    /// The order that holds it.
    pub order: OrderId,
    /// The device serial or seal label.
    pub holder: String,
    /// Whether its order is a one-off order made for it.
    pub one_off: bool,
    /// The certificate it superseded, hex.
    pub superseded: Option<String>,
}

/// Issues one certificate for a key from outside (a CSR or a public key) on
/// record: checks and lints first, then the one-off order if needed, the
/// intent, the signature, the record of the certificate. A device serial
/// that is on record attaches to its device; a Mali Mühür subject gets its
/// company's next seal label in a one-off order.
pub fn issue_on_record(
    journal: &mut dyn Journal,
    ca: &CertificateAuthority,
    profile: &Profile,
    subject: &Subject,
    key: SubjectKey<'_>,
    not_before: DateTime,
    how: &OneOff<'_>,
) -> Result<IssuedOnRecord, OnRecordError> {
    // Everything that can refuse does so before anything is written.
    crate::revocation::check_issuing_ca_in_force(journal, ca.certificate_der())?;
    let on_record = match subject {
        Subject::OkcDevice { serial, .. } => device_on_record(journal, serial.as_str(), how)?,
        Subject::MaliMuhur { .. } => None,
        Subject::Ca { .. } => return Err(OnRecordError::NotRecordable(profile.name.to_string())),
    };
    let prepared = ca.prepare(profile, subject, key, not_before)?;
    let place = match (on_record, subject) {
        (Some((device, supersedes)), _) => RecordPlace {
            device,
            supersedes,
            one_off: false,
        },
        (
            None,
            Subject::OkcDevice {
                serial,
                manufacturer,
            },
        ) => {
            let order = one_off_order(
                OrderKind::Okc,
                manufacturer.as_deref().unwrap_or_default(),
                None,
                vec![serial.prefix().to_owned()],
                how,
            );
            RecordPlace {
                device: journal.record_one_off_order(&order, serial.as_str())?,
                supersedes: None,
                one_off: true,
            }
        }
        (None, Subject::MaliMuhur { id, trade_name }) => {
            let (order, label) = one_off_seal_order(journal, id, trade_name.as_str(), how)?;
            let device = journal
                .device_by_serial(label.as_str())?
                .ok_or(JournalError::NoOrder(order))?;
            RecordPlace {
                device,
                supersedes: None,
                one_off: true,
            }
        }
        (None, Subject::Ca { .. }) => {
            return Err(OnRecordError::NotRecordable(profile.name.to_string()))
        }
    };
    if place.one_off {
        journal.start_production(place.device.order, how.operator)?;
    }
    let serial_hex = hex(prepared.serial());
    journal.record_single_intent(
        &Intent {
            device: &place.device,
            serial_hex: &serial_hex,
            tbs: prepared.tbs_der(),
            key_note: "key from outside (a CSR or a public key)",
        },
        place.supersedes.as_deref(),
        how.operator,
    )?;
    let certificate = match ca
        .sign(prepared)
        .and_then(|c| c.certifying(key.der()).map(|_| c))
    {
        Ok(certificate) => certificate,
        Err(e) => {
            // No certificate left this process: the intent is void. Should
            // voiding fail, the intent stays, and the journal still knows.
            let _ = journal.void_intent(&serial_hex, how.operator, &format!("not issued: {e}"));
            return Err(e.into());
        }
    };
    record_issued(journal, &place.device, &certificate, how.operator)?;
    if place.one_off {
        journal.finish_production(place.device.order, how.operator)?;
    }
    Ok(IssuedOnRecord {
        certificate,
        order: place.device.order,
        holder: place.device.name.to_string(),
        one_off: place.one_off,
        superseded: place.supersedes,
    })
}

/// Records a signed, verified certificate of `device` (intent → issued).
fn record_issued(
    journal: &mut dyn Journal,
    device: &Device,
    certificate: &IssuedCertificate,
    operator: &str,
) -> Result<(), OnRecordError> {
    let parsed = x509_cert::Certificate::from_der(certificate.der())
        .map_err(|e| IssueError::Encoding(e.to_string()))?;
    record_issued_der(
        journal,
        device,
        &certificate.serial_hex(),
        &parsed,
        certificate.der(),
        operator,
    )
}

/// Records the certificate `der` (decoded: `parsed`, serial `serial`) of
/// `device` as issued.
fn record_issued_der(
    journal: &mut dyn Journal,
    device: &Device,
    serial: &str,
    parsed: &x509_cert::Certificate,
    der: &[u8],
    operator: &str,
) -> Result<(), OnRecordError> {
    let serial = serial.to_owned();
    let validity = parsed.tbs_certificate().validity();
    let sha256 = hex_colons(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref());
    let not_before = validity.not_before.to_date_time().to_string();
    let not_after = validity.not_after.to_date_time().to_string();
    journal
        .record_single_issued(
            device,
            &StoredCertificate {
                serial_hex: &serial,
                der,
                sha256: &sha256,
                not_before: &not_before,
                not_after: &not_after,
                p12_password: None,
            },
            operator,
        )
        .map_err(|source| OnRecordError::SignedNotRecorded { serial, source })
}

/// Whether `device` is the seal of a one-off order for `target` that never
/// got a certificate: planned, nothing in force, its order not finished.
fn never_certified_one_off(
    journal: &dyn Journal,
    device: &Device,
    target: Target,
) -> Result<bool, JournalError> {
    if device.state != DeviceState::Planned {
        return Ok(false);
    }
    let order = journal.order(device.order)?;
    Ok(order.one_off
        && order.kind == OrderKind::MaliMuhur
        && order.target == target
        && matches!(order.state, OrderState::Paid | OrderState::Producing)
        && journal.certificate_in_force(device)?.is_none())
}

/// A seal provisioned without an order (`hsm provision`, `card provision`):
/// its label is the company's next seal number, and its one-off order is
/// made only when the CA is about to sign, so that a run refused before
/// (a wrong PIN, a taken label, a lint) leaves no order behind.
#[derive(Debug)]
pub struct OneOffSeal {
    id: TaxpayerId,
    name: String,
    label: SealLabel,
    target: Target,
    key_type: KeyType,
    source: String,
    operator: String,
    /// A seal of an earlier one-off order of the same kind that never got
    /// a certificate (its run failed after the CA signed), taken up again.
    unfinished: Option<Device>,
    /// The seal's device row and the certificate serial, once its intent is recorded.
    intent: Option<(Device, String)>,
}

impl OneOffSeal {
    /// Plans the seal: its label, the company's next seal number — or the
    /// label of a seal an earlier one-off run for the same target left
    /// without a certificate (all its certificates void: it never reached
    /// the company), so that running the command again takes up the same
    /// seal. Nothing is written.
    pub fn plan(
        journal: &dyn Journal,
        id: &TaxpayerId,
        name: &str,
        how: &OneOff<'_>,
    ) -> Result<Self, JournalError> {
        let mut index: u32 = 0;
        let (label, unfinished) = loop {
            let label = SealLabel::new(id, index);
            match journal.device_by_serial(label.as_str())? {
                None => break (label, None),
                Some(device) if never_certified_one_off(journal, &device, how.target)? => {
                    break (label, Some(device))
                }
                Some(_) => {}
            }
            index = index.checked_add(1).ok_or_else(|| {
                JournalError::NoCertificate(format!("a free seal label of {}", id.as_str()))
            })?;
        };
        Ok(Self {
            id: id.clone(),
            name: name.to_owned(),
            label,
            target: how.target,
            key_type: how.key_type,
            source: how.source.to_owned(),
            operator: how.operator.to_owned(),
            unfinished,
            intent: None,
        })
    }

    /// The seal's label, `{VKN}SIGN{n}`.
    pub fn label(&self) -> &SealLabel {
        &self.label
    }

    /// The seal's device row when the plan takes up a seal an earlier
    /// one-off run left without a certificate (its one-off order exists).
    pub fn unfinished(&self) -> Option<&Device> {
        self.unfinished.as_ref()
    }

    /// The serial of the certificate whose intent is recorded, if the CA
    /// was asked to sign.
    pub fn intent_serial(&self) -> Option<&str> {
        self.intent.as_ref().map(|(_, serial)| serial.as_str())
    }

    /// Just before the CA key signs `tbs` (serial `serial_hex`): the
    /// one-off order with this one seal (paid, production started) and the
    /// certificate's intent, durable when this returns.
    pub fn record_intent(
        &mut self,
        journal: &mut dyn Journal,
        tbs: &[u8],
        serial_hex: &str,
        key_note: &str,
    ) -> Result<(), JournalError> {
        let how = OneOff {
            target: self.target,
            key_type: self.key_type,
            source: &self.source,
            operator: &self.operator,
            reissue: false,
        };
        let device = match (&self.intent, &self.unfinished) {
            (Some((device, _)), _) => device.clone(),
            (None, Some(device)) => {
                journal.start_production(device.order, &self.operator)?;
                device.clone()
            }
            (None, None) => {
                let order = one_off_order(
                    OrderKind::MaliMuhur,
                    &self.name,
                    Some(&self.id),
                    Vec::new(),
                    &how,
                );
                let device = journal.record_one_off_order(&order, self.label.as_str())?;
                journal.start_production(device.order, &self.operator)?;
                device
            }
        };
        journal.record_single_intent(
            &Intent {
                device: &device,
                serial_hex,
                tbs,
                key_note,
            },
            None,
            &self.operator,
        )?;
        self.intent = Some((device, serial_hex.to_owned()));
        Ok(())
    }

    /// The seal's certificate is signed, stored on its carrier and proved:
    /// recorded as issued, and its one-off order produced. Returns the order.
    pub fn record_issued(
        &self,
        journal: &mut dyn Journal,
        der: &[u8],
    ) -> Result<OrderId, OnRecordError> {
        let Some((device, serial)) = &self.intent else {
            return Err(JournalError::NoCertificate(format!(
                "an intent for seal {}",
                self.label.as_str()
            ))
            .into());
        };
        let parsed = x509_cert::Certificate::from_der(der)
            .map_err(|e| IssueError::Encoding(e.to_string()))?;
        let certified = hex(parsed.tbs_certificate().serial_number().as_bytes());
        if &certified != serial {
            return Err(OnRecordError::SignedNotRecorded {
                serial: certified,
                source: JournalError::NoCertificate(format!(
                    "an intent with this serial (the intent is {serial})"
                )),
            });
        }
        record_issued_der(journal, device, serial, &parsed, der, &self.operator)?;
        journal.finish_production(device.order, &self.operator)?;
        Ok(device.order)
    }

    /// Provisioning failed after the intent was recorded: the certificate,
    /// if the CA signed it, never reached a carrier that proved it, so it
    /// is void. Nothing to do when no intent was recorded.
    pub fn void(&self, journal: &mut dyn Journal, reason: &str) -> Result<(), JournalError> {
        match &self.intent {
            Some((_, serial)) => journal.void_intent(serial, &self.operator, reason),
            None => Ok(()),
        }
    }
}
