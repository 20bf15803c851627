//! Key targets: where a device's key is generated and stays. One trait,
//! three homes:
//!
//! - [`soft::SoftTarget`]: generated in memory, delivered as a PKCS#12 file
//!   ([`pkcs12`]) with its password apart;
//! - [`hsm::HsmTarget`]: generated in a PKCS#11 token, never extractable,
//!   the certificate imported beside it with the same CKA_ID;
//! - [`card::CardInReader`]: generated on a PIV card through PC/SC, the
//!   certificate written to the slot, read back and test-signed.
//!
//! The pipeline ([`super::pipeline`]) asks a target for a key, prepares,
//! lints, records, signs and verifies the certificate, and hands it back
//! to the target to write back, prove and store. A new target implements
//! [`TargetRun`] and [`KeyTarget`] here, and gets the order's `Target`
//! value in `src/journal/mod.rs`.

pub mod card;
pub mod hsm;
pub mod pkcs12;
pub mod soft;

use std::path::Path;
use std::sync::Mutex;

use super::pipeline::Record;
use super::ProduceError;
use crate::issue::{IssuedCertificate, SubjectKey};
use crate::journal::{Device, Journal, OrderId, Target};
use crate::signer::{KeyType, SignerError};

/// What a key target is for a whole run of an order: which order target it
/// serves, what it undoes after a crash, what its delivery holds.
pub trait TargetRun {
    /// The order target this serves (an order names one).
    fn kind(&self) -> Target;

    /// Removes what a voided intent of `device` left on the target (hsm: a
    /// certificate imported whose record never followed; soft: a key file
    /// under the delivered name in `folder`, the order's delivery folder);
    /// returns how many token objects went.
    fn remove_unrecorded(&self, _folder: &Path, _device: &Device) -> Result<u64, ProduceError> {
        Ok(0)
    }

    /// After the journal's dangling intents are voided: removes what an
    /// interrupted run left on the target that the journal does not know;
    /// returns how many objects went. `company_token`: the target belongs
    /// to the company (a seal order), whose own objects are never touched.
    fn recover(
        &self,
        _journal: &Mutex<dyn Journal>,
        _order: OrderId,
        _company_token: bool,
        _operator: &str,
    ) -> Result<u64, ProduceError> {
        Ok(0)
    }

    /// Whether the delivery hands over key files (soft: PKCS#12): then it
    /// checks they are all there, writes the password manifest apart, and
    /// the delivery gets a purge deadline.
    fn delivers_key_files(&self) -> bool {
        false
    }

    /// Whether the delivery writes the PIN letter manifest (card: each card
    /// got its own random PIN and PUK), which the purge deletes by the rule
    /// of key files.
    fn delivers_pin_letters(&self) -> bool {
        false
    }

    /// Folders of the delivery this target writes into, made once per run.
    fn delivery_folders(&self) -> &'static [&'static str] {
        &[]
    }
}

/// A device's key where it lives, as the pipeline sees it: the public key
/// its certificate certifies.
pub trait DeviceKey {
    /// The public key as DER SubjectPublicKeyInfo.
    fn spki(&self) -> &[u8];

    /// The public key for [`crate::issue::CertificateAuthority::prepare`]:
    /// checked, unless certmint generated it itself.
    fn subject_key(&self) -> Result<SubjectKey<'_>, SignerError> {
        SubjectKey::checked(self.spki())
    }
}

/// Where a device's key is generated and stays, and what happens to its
/// certificate there.
///
/// The pipeline calls, per device: [`KeyTarget::generate`], then (after the
/// intent is durable, the CA signed and the certificate was checked to
/// certify the key) [`KeyTarget::write_back`] on the same thread, then
/// [`KeyTarget::store`] on the storer's thread, then
/// [`KeyTarget::chunk_stored`] once per chunk, then records the chunk's
/// devices verified, and only then [`KeyTarget::publish`] per device.
pub trait KeyTarget: TargetRun {
    /// A device's key, from generation to write-back.
    type Key: DeviceKey + Send;
    /// What write-back leaves for the storer.
    type Written: Send;

    /// Where the key comes from, for the intent's audit record.
    fn key_note(&self) -> String;

    /// Generates `device`'s key where it will live (or finds the one an
    /// interrupted run generated and recorded). A key the journal must know
    /// before it is used is recorded through `record`.
    fn generate(
        &self,
        record: &dyn Record,
        device: &Device,
        key_type: KeyType,
    ) -> Result<Self::Key, ProduceError>;

    /// Puts the signed and checked certificate with its key, and proves it
    /// where proof is cheap enough per device (card: written to the slot,
    /// read back and test-signed; soft: packed with the key in a PKCS#12).
    fn write_back(
        &self,
        device: &Device,
        key: Self::Key,
        certificate: &IssuedCertificate,
    ) -> Result<Self::Written, ProduceError>;

    /// Makes what write-back left durable (soft: the PKCS#12 file; hsm: the
    /// certificate object in the token) before the device is recorded
    /// verified. `folder` is the order's delivery folder.
    fn store(
        &self,
        folder: &Path,
        device: &Device,
        certificate_der: &[u8],
        written: &Self::Written,
    ) -> Result<(), ProduceError>;

    /// After a chunk's devices are stored: one sync for them all.
    fn chunk_stored(&self, _folder: &Path) -> Result<(), ProduceError> {
        Ok(())
    }

    /// After the journal recorded `device` verified with this certificate:
    /// puts what [`KeyTarget::store`] kept apart under its delivered name
    /// (soft: renames the PKCS#12 into place). Never before the record: a
    /// producer whose lease was taken over while it stored is refused by
    /// the journal, and so never replaces the file of the producer that
    /// took the device over.
    fn publish(
        &self,
        _folder: &Path,
        _device: &Device,
        _written: &Self::Written,
    ) -> Result<(), ProduceError> {
        Ok(())
    }

    /// The journal refused to record `device` for this producer (its lease
    /// or its claim was taken over): removes what [`KeyTarget::store`] kept
    /// apart, which no record will ever name.
    fn discard(&self, _folder: &Path, _device: &Device, _written: &Self::Written) {}

    /// The password of the key file of `written`, recorded with the device
    /// (soft).
    fn key_file_password<'w>(&self, _written: &'w Self::Written) -> Option<&'w str> {
        None
    }
}
