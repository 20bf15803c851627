//! The order model: orders, their devices, the states of both and the only
//! legal moves between them. The journal stores and returns these values;
//! the rules of which state may follow which are decided here, once.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::ids::{DeviceName, TaxpayerId};
use crate::signer::KeyType;

/// An order number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct OrderId(pub i64);

impl fmt::Display for OrderId {
    /// The number, honouring width and alignment (`{:>5}`) for tables.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name { $($(#[$vmeta])* $variant),* }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The name stored in the journal and shown to operators.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }

        impl fmt::Display for $name {
            /// The name, honouring width and alignment (`{:<10}`) for tables.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)*
                    other => Err(format!("{other:?} is not one of: {}", [$($text),*].join(", "))),
                }
            }
        }
    };
}

text_enum!(
    /// What an order produces.
    OrderKind {
        /// ÖKC fiscal device certificates, one per serial number.
        Okc = "okc",
        /// A Mali Mühür company e-seal.
        MaliMuhur = "mali-muhur",
    }
);

text_enum!(
    /// An order's life: received → paid → producing → produced → delivered
    /// (→ purged, for soft deliveries), or received → cancelled. Production
    /// refuses an unpaid order.
    OrderState {
        /// Imported, not paid: nothing may be produced.
        Received = "received",
        /// Payment recorded (who and when): production may start.
        Paid = "paid",
        /// Production started (and may be resumed).
        Producing = "producing",
        /// Every device has a verified certificate.
        Produced = "produced",
        /// The delivery folder is complete; its upload time is recorded.
        Delivered = "delivered",
        /// Soft key material irreversibly deleted after the deadline.
        Purged = "purged",
        /// Cancelled before payment; its serials are free for another
        /// order. A paid order is never cancelled (no cancellation or refund
        /// after payment).
        Cancelled = "cancelled",
    }
);

impl OrderState {
    /// The states an order may be in for it to move to `self` — the only
    /// legal moves of an order: received → paid → producing → produced →
    /// delivered → purged (soft deliveries), and received → cancelled. A
    /// paid order may already be producing when a run resumes it; nothing
    /// moves from paid to cancelled: no cancellation after payment.
    pub fn comes_from(self) -> &'static [OrderState] {
        match self {
            OrderState::Received => &[],
            OrderState::Paid => &[OrderState::Received],
            OrderState::Producing => &[OrderState::Paid, OrderState::Producing],
            OrderState::Produced => &[OrderState::Producing],
            OrderState::Delivered => &[OrderState::Produced],
            OrderState::Purged => &[OrderState::Delivered],
            OrderState::Cancelled => &[OrderState::Received],
        }
    }

    /// Whether an order in this state may move to `next`.
    pub fn may_become(self, next: OrderState) -> bool {
        next.comes_from().contains(&self)
    }
}

text_enum!(
    /// A device's life: planned → key generated → linted → intent recorded →
    /// signed → stored → verified → delivered.
    DeviceState {
        /// In the order, nothing done yet.
        Planned = "planned",
        /// Its key exists in a token (HSM target); the key id is recorded.
        KeyGenerated = "key-generated",
        /// Its TBS passed the lints (recorded together with the intent).
        Linted = "linted",
        /// The serial and TBS are durable: the CA may sign.
        IntentRecorded = "intent-recorded",
        /// Signed (passed through in memory; recorded with `Stored`).
        Signed = "signed",
        /// Certificate and key package written.
        Stored = "stored",
        /// Certificate checked against the key and the CA; row written with the DER.
        Verified = "verified",
        /// Listed in the order's delivery.
        Delivered = "delivered",
    }
);

impl DeviceState {
    /// Whether a device in this state may be recorded in `next`: the only
    /// legal moves of a device. Planned → key generated (token targets) →
    /// intent recorded → verified → delivered; a voided intent sends the
    /// device back to planned or key generated. The stages between intent
    /// and verified (linted, signed, stored) live in memory within one
    /// chunk and are never recorded on their own.
    pub fn may_become(self, next: DeviceState) -> bool {
        use DeviceState::*;
        matches!(
            (self, next),
            (Planned, KeyGenerated)
                | (Planned | KeyGenerated, IntentRecorded)
                | (IntentRecorded, Verified | Planned | KeyGenerated)
                | (Verified, Delivered)
        )
    }
}

text_enum!(
    /// Where device keys are generated.
    Target {
        /// Software keys, delivered as password-protected PKCS#12 files.
        Soft = "soft",
        /// Keys generated in the manufacturer's PKCS#11 token.
        Hsm = "hsm",
        /// Keys generated on PIV cards at a card station.
        Card = "card",
        /// The key came from outside, in a CSR or a public key (`certmint
        /// issue`): nothing to produce, the certificate is only recorded.
        External = "external",
    }
);

text_enum!(
    /// A certificate's status in the journal: an intent becomes issued (or
    /// void, when its signature never became a stored certificate); an
    /// issued certificate may be superseded by a reissue.
    CertificateStatus {
        /// Serial and TBS are durable; the CA may sign (or is signing).
        Intent = "intent",
        /// Signed, verified and recorded with its DER.
        Issued = "issued",
        /// The intent never became a certificate.
        Void = "void",
        /// Replaced by a later certificate for the same device or seal.
        Superseded = "superseded",
    }
);

impl CertificateStatus {
    /// Whether the operator may revoke a certificate in this status. An
    /// intent may still be signing: its order's run (or its recovery)
    /// decides whether it becomes issued or void, and only then can it be
    /// revoked.
    pub fn may_be_revoked(self) -> bool {
        !matches!(self, CertificateStatus::Intent)
    }
}

/// Initial application, or an additional one referring to an earlier order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Application {
    /// The manufacturer's first order.
    Initial,
    /// More devices for a manufacturer with an earlier order.
    Additional {
        /// The earlier order.
        parent: OrderId,
    },
}

/// An order as imported.
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// What it produces.
    pub kind: OrderKind,
    /// The manufacturer's name (ÖKC), or the company's trade name (seals).
    pub manufacturer: String,
    /// The manufacturer's VKN (ÖKC), or the company's VKN or TCKN (seals);
    /// `None` for the one-off record of a device certificate `issue` made
    /// without naming its manufacturer.
    pub manufacturer_vkn: Option<TaxpayerId>,
    /// Approved device serial prefixes.
    pub prefixes: Vec<String>,
    /// Initial or additional.
    pub application: Application,
    /// Where keys are generated.
    pub target: Target,
    /// The key type of its devices.
    pub key_type: KeyType,
    /// The file the serial list came from (for the record).
    pub source: String,
    /// Who imported it.
    pub operator: String,
}

/// One problem line in an import report.
#[derive(Debug, Clone, Serialize)]
pub struct ImportProblem {
    /// 1-based line; 0 for the whole file.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// The new order, when it was imported.
    pub order: Option<OrderId>,
    /// Serials accepted.
    pub accepted: u64,
    /// Problems found (at most [`MAX_REPORTED_PROBLEMS`] listed).
    pub problems: Vec<ImportProblem>,
    /// Problems in all, including those not listed.
    pub problem_count: usize,
}

/// How many problems an import report lists; the rest are counted.
pub const MAX_REPORTED_PROBLEMS: usize = 1000;

/// An order's payment, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payment {
    /// When it was recorded (RFC 3339, UTC).
    pub at: String,
    /// Who recorded it.
    pub by: String,
}

/// An order with its progress.
#[derive(Debug, Clone, Serialize)]
pub struct OrderSummary {
    /// Its number.
    pub id: OrderId,
    /// Its kind.
    pub kind: OrderKind,
    /// Its state.
    pub state: OrderState,
    /// Manufacturer name (ÖKC), or the company's trade name (seals).
    pub manufacturer: String,
    /// Manufacturer VKN (ÖKC), or the company's VKN or TCKN (seals); `null`
    /// for a one-off device record made without its manufacturer.
    pub manufacturer_vkn: Option<TaxpayerId>,
    /// Approved prefixes.
    pub prefixes: Vec<String>,
    /// The earlier order of an additional application.
    pub parent: Option<OrderId>,
    /// Key target.
    pub target: Target,
    /// Key type of its devices.
    pub key_type: KeyType,
    /// When imported (RFC 3339, UTC).
    pub created_at: String,
    /// When marked paid, and by whom.
    pub paid: Option<Payment>,
    /// Devices in the order.
    pub devices: u64,
    /// Devices with a verified certificate.
    pub verified: u64,
    /// When the delivery was uploaded.
    pub uploaded_at: Option<String>,
    /// When its soft key material is due for purge (end of that Turkish business day).
    pub purge_due: Option<String>,
    /// When it was purged.
    pub purged_at: Option<String>,
    /// Made by a command for one certificate signed without an imported
    /// order (see [`crate::order::one_off`]).
    pub one_off: bool,
}

/// A device to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Row id (stable order for paging).
    pub id: i64,
    /// Its order.
    pub order: OrderId,
    /// The device serial (ÖKC), or the seal label (Mali Mühür).
    pub name: DeviceName,
    /// Its state.
    pub state: DeviceState,
    /// Token key id (hex), once generated in a token.
    pub key_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every status but an intent may be revoked.
    #[test]
    fn only_an_intent_is_not_revocable() {
        for status in [
            CertificateStatus::Intent,
            CertificateStatus::Issued,
            CertificateStatus::Void,
            CertificateStatus::Superseded,
        ] {
            assert_eq!(
                status.may_be_revoked(),
                status != CertificateStatus::Intent,
                "{status}"
            );
        }
    }

    const ORDER_STATES: [OrderState; 7] = [
        OrderState::Received,
        OrderState::Paid,
        OrderState::Producing,
        OrderState::Produced,
        OrderState::Delivered,
        OrderState::Purged,
        OrderState::Cancelled,
    ];

    /// Every legal move of an order, and nothing else.
    #[test]
    fn an_order_moves_only_forward_one_step_or_resumes_production_or_is_cancelled_unpaid() {
        let legal = [
            (OrderState::Received, OrderState::Paid),
            (OrderState::Paid, OrderState::Producing),
            (OrderState::Producing, OrderState::Producing),
            (OrderState::Producing, OrderState::Produced),
            (OrderState::Produced, OrderState::Delivered),
            (OrderState::Delivered, OrderState::Purged),
            (OrderState::Received, OrderState::Cancelled),
        ];
        for from in ORDER_STATES {
            for to in ORDER_STATES {
                assert_eq!(
                    from.may_become(to),
                    legal.contains(&(from, to)),
                    "{from} → {to}"
                );
            }
        }
    }

    #[test]
    fn nothing_comes_back_from_a_purge_and_nothing_skips_payment() {
        for to in ORDER_STATES {
            assert!(!OrderState::Purged.may_become(to), "purged → {to}");
            assert!(
                !OrderState::Received.may_become(to)
                    || matches!(to, OrderState::Paid | OrderState::Cancelled),
                "received → {to}"
            );
            assert!(!OrderState::Cancelled.may_become(to), "cancelled → {to}");
        }
    }

    #[test]
    fn a_device_moves_through_its_recorded_states_and_a_void_sends_it_back() {
        use DeviceState::*;
        assert!(Planned.may_become(IntentRecorded));
        assert!(KeyGenerated.may_become(IntentRecorded));
        assert!(IntentRecorded.may_become(Verified));
        assert!(IntentRecorded.may_become(Planned), "a voided intent");
        assert!(Verified.may_become(Delivered));
        assert!(
            !Planned.may_become(Verified),
            "never signed without an intent"
        );
        assert!(!Verified.may_become(Planned), "a verified device stays so");
        assert!(!Delivered.may_become(Verified));
    }
}
