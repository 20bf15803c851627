//! After a crash: intents that never became certificates are voided
//! (whatever was signed was neither stored nor delivered), and what the
//! interrupted run left on the key target goes. At the start of a run for
//! the devices nobody claims; during a run for each device claimed from a
//! producer that died.

use std::sync::Mutex;

use super::key_target::TargetRun;
use super::{ProduceError, Production, ProductionReport};
use crate::journal::{CertificateStatus, Device, DeviceState, Journal};
use crate::pkcs11::token::lock;
use crate::profile::ProfileName;

impl Production<'_> {
    /// Undoes what an interrupted run left half done.
    pub(crate) fn recover(
        &self,
        journal: &Mutex<dyn Journal>,
        target: &dyn TargetRun,
        report: &mut ProductionReport,
    ) -> Result<(), ProduceError> {
        let dangling = lock(journal).dangling_intents(self.order)?;
        let folder = super::delivery_folder(&self.out, self.order);
        for (serial_hex, device) in dangling {
            // A certificate stored on the target but not recorded goes with its intent.
            report.removed_token_objects += target.remove_unrecorded(&folder, &device)?;
            lock(journal).void_intent(
                &serial_hex,
                &self.operator,
                &format!("device {}: production was interrupted between intent and storage; never delivered", device.name),
            )?;
            report.voided_intents += 1;
        }
        // A seal order's token is the company's own.
        let company_token = self.profile.name == ProfileName::MaliMuhur;
        report.removed_token_objects +=
            target.recover(journal, self.order, company_token, &self.operator)?;
        Ok(())
    }
}

/// Voids the intents that producers which died left on `claimed` (devices
/// just claimed from them), removing what they left on the key target
/// (and in the delivery `folder`) first; returns the devices as they stand after it, and how many intents
/// were voided.
pub(crate) fn void_left_intents(
    journal: &Mutex<dyn Journal>,
    target: &dyn TargetRun,
    folder: &std::path::Path,
    operator: &str,
    claimed: Vec<Device>,
) -> Result<(Vec<Device>, u64), ProduceError> {
    let mut voided = 0;
    let mut devices = Vec::with_capacity(claimed.len());
    for device in claimed {
        // Only a device whose intent was recorded can carry one (recording
        // it moves the device to that state): the others need no look.
        if matches!(
            device.state,
            DeviceState::Planned | DeviceState::KeyGenerated
        ) {
            devices.push(device);
            continue;
        }
        let in_force = lock(journal).certificate_in_force(&device)?;
        let Some((serial_hex, CertificateStatus::Intent)) = in_force else {
            devices.push(device);
            continue;
        };
        target.remove_unrecorded(folder, &device)?;
        lock(journal).void_intent(
            &serial_hex,
            operator,
            &format!(
                "device {}: its producer died between intent and storage (its lease was taken over); never delivered",
                device.name
            ),
        )?;
        voided += 1;
        // As the voiding left it (planned, or key generated).
        let device = lock(journal)
            .device_by_serial(device.name.as_str())?
            .unwrap_or(device);
        devices.push(device);
    }
    Ok((devices, voided))
}
