//! The rules of an order import, over whatever journal stores it: an
//! additional application names an earlier order of the same company and
//! kind; every serial of the list is stored once, a repeat within the list,
//! a serial of an earlier order and a bad line reported with its line
//! number; a list with problems is refused whole unless the operator
//! accepts its good lines; a list with no good line is refused.
//!
//! The journal only stores ([`crate::journal::ImportStore`]), inside one
//! transaction: an import that is refused leaves nothing behind.

use crate::ids::DeviceName;
use crate::journal::{
    Application, ImportOutcome, ImportProblem, ImportReport, ImportStore, Journal, JournalError,
    NewOrder, OrderId, Placed, MAX_REPORTED_PROBLEMS,
};
use crate::order::serial_list::{ListProblem, ListedSerial};

/// One device of an order as listed: an ÖKC serial from the manufacturer's
/// list, or a seal label an order of seals numbered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its line in the list (1-based; a seal's place in its order).
    pub line: usize,
    /// The device serial or the seal label.
    pub name: DeviceName,
}

impl From<ListedSerial> for Listed {
    fn from(listed: ListedSerial) -> Self {
        Listed {
            line: listed.line,
            name: DeviceName::Serial(listed.serial),
        }
    }
}

/// Imports `order` with the devices `serials` lists (the serial list
/// reader's items, or a seal order's labels), in one transaction of
/// `journal`.
pub fn import_order(
    journal: &mut dyn Journal,
    order: &NewOrder,
    serials: &mut dyn Iterator<Item = Result<Listed, ListProblem>>,
    accept_good_lines: bool,
) -> Result<ImportReport, JournalError> {
    let mut report = ImportReport {
        order: None,
        accepted: 0,
        problems: Vec::new(),
        problem_count: 0,
    };
    journal.in_import_transaction(&order.operator, &mut |store| {
        let parent = checked_parent(store, order)?;
        let order_id = store.insert_order(order, parent)?;
        let mut note = |line: usize, message: String| {
            report.problem_count += 1;
            if report.problems.len() < MAX_REPORTED_PROBLEMS {
                report.problems.push(ImportProblem { line, message });
            }
        };
        for item in &mut *serials {
            match item {
                Err(problem) => note(problem.line, problem.to_string()),
                Ok(listed) => {
                    let serial = listed.name.as_str();
                    match store.place_device(order_id, serial, listed.line)? {
                        Placed::New => report.accepted += 1,
                        Placed::Taken { order: other, line, .. } if other == order_id => note(
                            listed.line,
                            format!("line {}: {serial} repeats line {line}", listed.line),
                        ),
                        Placed::Taken {
                            order: other,
                            certified: true,
                            ..
                        } => note(
                            listed.line,
                            format!(
                                "line {}: {serial} was already certified in order {other}",
                                listed.line
                            ),
                        ),
                        Placed::Taken { order: other, .. } => note(
                            listed.line,
                            format!("line {}: {serial} is already in order {other}", listed.line),
                        ),
                    }
                }
            }
        }
        let refused =
            (report.problem_count > 0 && !accept_good_lines) || report.accepted == 0;
        if refused {
            return Ok(ImportOutcome::Undo);
        }
        report.order = Some(order_id);
        Ok(ImportOutcome::Keep {
            order: order_id,
            details: format!(
                "{} order for {} (VKN {}), {} devices from {}, {} problem line(s) skipped, target {}, key {}",
                order.kind,
                order.manufacturer,
                order
                    .manufacturer_vkn
                    .as_ref()
                    .map_or("", crate::ids::TaxpayerId::as_str),
                report.accepted,
                order.source,
                report.problem_count,
                order.target,
                order.key_type
            ),
        })
    })?;
    Ok(report)
}

/// The earlier order an additional application names: it exists, belongs
/// to the same company and is of the same kind.
fn checked_parent(
    store: &mut dyn ImportStore,
    order: &NewOrder,
) -> Result<Option<OrderId>, JournalError> {
    let Application::Additional { parent } = order.application else {
        return Ok(None);
    };
    let Some(stored) = store.parent(parent)? else {
        return Err(JournalError::BadParent(format!(
            "order {parent} does not exist"
        )));
    };
    if stored.taxpayer != order.manufacturer_vkn {
        let shown = |id: &Option<crate::ids::TaxpayerId>| {
            id.as_ref()
                .map_or_else(String::new, |id| id.as_str().to_owned())
        };
        return Err(JournalError::BadParent(format!(
            "order {parent} belongs to VKN {}, not {}",
            shown(&stored.taxpayer),
            shown(&order.manufacturer_vkn)
        )));
    }
    if stored.kind != order.kind {
        return Err(JournalError::BadParent(format!(
            "order {parent} is a {} order",
            stored.kind
        )));
    }
    Ok(Some(parent))
}
