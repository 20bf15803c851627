//! Mali Mühür seal orders whose keys go into the company's own token
//! (`hsm provision --order`): the order's seals through the one pipeline,
//! after the rule that a first run finds every seal label free. Seal orders
//! on cards go through the card station ([`crate::card::station`]).

use std::sync::{Arc, Mutex};

use super::key_target::hsm::HsmTarget;
use super::{ProduceError, Production, ProductionReport};
use crate::journal::{Journal, OrderState};
use crate::pkcs11::recovery::label_in_use;
use crate::pkcs11::token::lock;
use crate::pkcs11::{Pkcs11Error, Token};

/// Provisions every seal of `production`'s order (a paid Mali Mühür order
/// for the hsm target) in the company's `token`: intent before signing,
/// each seal proved in the token (read back, test signature), recovery of
/// an interrupted run, delivery.
pub fn provision_seals_on_token(
    production: &Production<'_>,
    journal: &Mutex<dyn Journal>,
    token: Arc<Token>,
) -> Result<ProductionReport, ProduceError> {
    let order = lock(journal).order(production.order)?;
    if order.state == OrderState::Paid {
        refuse_labels_in_use(production, journal, &token)?;
    }
    production.run(journal, &HsmTarget::proving(token))
}

/// Before an order's first run: its seal labels must be free on the
/// company's token. (Once production has started, objects carrying a
/// planned seal's label are what an interrupted run left, and recovery
/// removes them; before it, they would be a seal provisioned outside the
/// order, which must not be touched.)
fn refuse_labels_in_use(
    production: &Production<'_>,
    journal: &Mutex<dyn Journal>,
    token: &Token,
) -> Result<(), ProduceError> {
    let mut after = 0;
    loop {
        let page = lock(journal).pending_devices(production.order, after, 256)?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = last.id;
        for device in &page {
            let token_err = |error| ProduceError::Token {
                device: device.serial.clone(),
                error,
            };
            if label_in_use(token, &device.serial).map_err(token_err)? {
                return Err(token_err(Pkcs11Error::LabelExists {
                    token: token.label().to_owned(),
                    label: device.serial.clone(),
                }));
            }
        }
    }
}
