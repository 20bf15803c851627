//! After a crash: intents that never became certificates are voided
//! (whatever was signed was neither stored nor delivered), and what the
//! interrupted run left on the key target goes.

use std::sync::Mutex;

use super::key_target::TargetRun;
use super::{ProduceError, Production, ProductionReport};
use crate::journal::Journal;
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
        for (serial_hex, device) in dangling {
            // A certificate stored on the target but not recorded goes with its intent.
            report.removed_token_objects += target.remove_unrecorded(&device)?;
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
