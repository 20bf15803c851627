//! The producers of an order: each holds a lease on it, taken before
//! anything is touched, renewed while the work runs, given back when it
//! ends. Whether producers share an order is decided here, by where the
//! keys go ([`sharing_for`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{ProduceError, Production};
use crate::journal::lease::{LEASE_RENEW_EVERY, LEASE_TTL};
use crate::journal::{Journal, JournalError, LeaseHolder, OrderId, Sharing, Target};
use crate::pkcs11::token::lock;

/// Whether producers of an order with keys on `target` may work on it at
/// the same time. Soft keys and cards: yes, each on the devices it claims
/// (several stations, each with its own readers, on one order). Keys in
/// an HSM token: one producer at a time, because a crash's clean-up of the
/// token removes what the journal does not know, which must be nobody
/// else's work in progress, and one token opened by two processes at the
/// same moment can fail either.
pub fn sharing_for(target: Target) -> Sharing {
    match target {
        Target::Soft | Target::Card => Sharing::Shared,
        Target::Hsm | Target::External => Sharing::Exclusive,
    }
}

/// Proof that the order's producer lease is held: [`Production::start`]
/// takes one, so nothing recovers or produces an order without it.
pub(crate) struct HeldLease {
    holder: LeaseHolder,
}

/// An order claimed by this process: its producer lease, taken before the
/// producer opens a token, asks for a PIN or unlocks a key, so that a second
/// producer is refused (or waits) before it touches anything — two
/// processes opening one SoftHSM2 token at the same moment can make either
/// fail. [`Production::run`] in the same process holds the same lease (one
/// holder per process) while it works and renews it; the claim gives it
/// back when dropped, whatever happened in between.
pub struct OrderClaim<'a> {
    journal: &'a Mutex<dyn Journal>,
    order: OrderId,
    holder: LeaseHolder,
}

impl<'a> OrderClaim<'a> {
    /// Takes `order`'s lease for this process, waiting up to `wait` for a
    /// live holder (and no longer once `stop` is set).
    pub fn take(
        journal: &'a Mutex<dyn Journal>,
        order: OrderId,
        operator: &str,
        wait: Duration,
        stop: &AtomicBool,
    ) -> Result<Self, ProduceError> {
        let holder = LeaseHolder::this_process(operator);
        let sharing = sharing_for(lock(journal).order(order)?.target);
        acquire_lease_waiting(journal, order, &holder, sharing, wait, stop)?;
        Ok(Self {
            journal,
            order,
            holder,
        })
    }
}

impl Drop for OrderClaim<'_> {
    fn drop(&mut self) {
        // A lease that cannot be given back (the journal failed) is taken
        // over as soon as this process is gone.
        let _ = lock(self.journal).release_lease(self.order, &self.holder);
    }
}

/// Takes `order`'s lease for `holder`, trying again every 250 ms while a
/// live producer holds it, for up to `wait` (a wait too long to represent
/// is a wait without end) and until `stop` is set; then the holder is named
/// in the error.
fn acquire_lease_waiting(
    journal: &Mutex<dyn Journal>,
    order: OrderId,
    holder: &LeaseHolder,
    sharing: Sharing,
    wait: Duration,
    stop: &AtomicBool,
) -> Result<(), ProduceError> {
    let deadline = Instant::now().checked_add(wait);
    loop {
        let attempt = lock(journal).acquire_lease(order, holder, LEASE_TTL, sharing);
        let left = deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        });
        match attempt {
            Ok(_) => return Ok(()),
            Err(JournalError::Held { .. }) if !left.is_zero() && !stop.load(Ordering::SeqCst) => {
                std::thread::sleep(left.min(Duration::from_millis(250)));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

impl Production<'_> {
    /// Runs `work` holding a lease on the order, shared with other
    /// producers or not as [`sharing_for`] `target` says. The lease is taken (waiting up to
    /// [`Production::lease_wait`] for a live holder), renewed every
    /// [`LEASE_RENEW_EVERY`] while `work` runs, and given back when it ends,
    /// whether it succeeded or not.
    pub(super) fn holding_lease<T, E: From<ProduceError>>(
        &self,
        journal: &Mutex<dyn Journal>,
        target: Target,
        work: impl FnOnce(&HeldLease) -> Result<T, E>,
    ) -> Result<T, E> {
        let lease = HeldLease {
            holder: LeaseHolder::this_process(&self.operator),
        };
        acquire_lease_waiting(
            journal,
            self.order,
            &lease.holder,
            sharing_for(target),
            self.lease_wait,
            &self.stop,
        )?;
        let (done, renewals) = channel::<()>();
        let result = std::thread::scope(|scope| {
            let lease = &lease;
            // Renews until the work ends (the sender is dropped).
            scope.spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = renewals.recv_timeout(LEASE_RENEW_EVERY)
                {
                    let renewed = lock(journal).renew_lease(self.order, &lease.holder, LEASE_TTL);
                    // A lost lease stops the work at its next journal write
                    // (the journal refuses it); a busy journal is tried
                    // again at the next tick, well within the TTL.
                    if let Err(JournalError::LeaseLost { .. }) = renewed {
                        break;
                    }
                }
            });
            let result = work(lease);
            drop(done);
            result
        });
        // A lease that cannot be given back (the journal failed) is taken
        // over as soon as this process is gone: the work's outcome stands.
        let _ = lock(journal).release_lease(self.order, &lease.holder);
        result
    }
}
