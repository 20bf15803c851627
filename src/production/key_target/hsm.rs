//! The hsm target: keys generated in a PKCS#11 token (the manufacturer's,
//! or a company's for its seals), never extractable; the certificate is
//! imported beside its key with the same CKA_ID, labelled with the device
//! serial or seal label. Every token call goes through [`crate::pkcs11`].
//!
//! A proving target ([`HsmTarget::proving`], seal orders) reads each key
//! and certificate back after the import and has the key make a test
//! signature that must verify under the certificate. An ÖKC manufacturer's
//! token of thousands of keys is not proved per device: on tokens that
//! search by scanning every object (SoftHSM2) the read-back alone would make
//! an order quadratic, and the test signature would halve the rate of a
//! token that signs no faster than the CA key.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::{DeviceKey, KeyTarget, TargetRun};
use crate::issue::IssuedCertificate;
use crate::journal::{Device, DeviceState, Journal, OrderId, Target};
use crate::pem::{hex, unhex};
use crate::pkcs11::keys::{generate_key_pair, GeneratedKeyPair};
use crate::pkcs11::proof::prove;
use crate::pkcs11::recovery::{
    import_certificate_beside, key_pair_with_id, public_key_with_id, remove_certificates_labelled,
    remove_leftovers,
};
use crate::pkcs11::token::lock;
use crate::pkcs11::{Pkcs11Error, Token};
use crate::production::pipeline::Record;
use crate::production::ProduceError;
use crate::signer::KeyType;

/// Keys in a token, certificates imported beside them.
pub struct HsmTarget {
    token: Arc<Token>,
    prove: bool,
    /// The checks the last proof passed, for a report of one seal.
    last_proof: Mutex<Option<Vec<String>>>,
}

impl HsmTarget {
    /// The target for keys generated in `token`.
    pub fn new(token: Arc<Token>) -> Self {
        Self {
            token,
            prove: false,
            last_proof: Mutex::new(None),
        }
    }

    /// The target for keys generated in `token`, each proved after its
    /// certificate is imported (see [`crate::pkcs11::proof::prove`]).
    pub fn proving(token: Arc<Token>) -> Self {
        Self {
            token,
            prove: true,
            last_proof: Mutex::new(None),
        }
    }

    /// The checks the last key proved passed (a proving target), taken.
    pub fn take_last_proof(&self) -> Option<Vec<String>> {
        lock(&self.last_proof).take()
    }

    /// The token.
    pub fn token(&self) -> &Arc<Token> {
        &self.token
    }
}

/// A key pair in the token: its public key and CKA_ID, its type, and the
/// objects when this run generated them.
pub struct TokenKey {
    spki: Vec<u8>,
    id: Vec<u8>,
    key_type: KeyType,
    generated: Option<GeneratedKeyPair>,
}

impl TokenKey {
    /// The key pair's CKA_ID.
    pub fn id(&self) -> &[u8] {
        &self.id
    }
}

impl DeviceKey for TokenKey {
    fn spki(&self) -> &[u8] {
        &self.spki
    }
}

fn token_error(device: &Device) -> impl Fn(Pkcs11Error) -> ProduceError + '_ {
    move |error| ProduceError::Token {
        device: device.name.to_string(),
        error,
    }
}

impl TargetRun for HsmTarget {
    fn kind(&self) -> Target {
        Target::Hsm
    }

    fn remove_unrecorded(&self, _folder: &Path, device: &Device) -> Result<u64, ProduceError> {
        remove_certificates_labelled(&self.token, device.name.as_str()).map_err(token_error(device))
    }

    /// Removes unlabelled objects an interrupted write left (not in a
    /// company's token) and the objects of devices still `planned` in this
    /// order (a crash right after C_GenerateKeyPair), and says so in the
    /// audit log.
    fn recover(
        &self,
        journal: &Mutex<dyn Journal>,
        order: OrderId,
        company_token: bool,
        operator: &str,
    ) -> Result<u64, ProduceError> {
        let removed = remove_leftovers(&self.token, company_token, &mut |label| {
            lock(journal)
                .device_state(order, label)
                .map(|state| state == Some(DeviceState::Planned))
        })
        .map_err(|error| ProduceError::Token {
            device: "(recovery)".into(),
            error,
        })??;
        let (debris, orphans) = (removed.unlabelled, removed.orphans);
        if debris + orphans > 0 {
            lock(journal).audit(
                operator,
                "token.cleaned",
                &format!("token {}", self.token.label()),
                &format!(
                    "{debris} unlabelled object(s) left by an interrupted write, \
                     {orphans} object(s) of devices whose key was never recorded"
                ),
            )?;
        }
        Ok(debris + orphans)
    }
}

impl KeyTarget for HsmTarget {
    type Key = TokenKey;
    type Written = TokenKey;

    fn key_note(&self) -> String {
        "key in the token".into()
    }

    /// A key recorded by an interrupted run is used again; otherwise one is
    /// generated and recorded before use.
    fn generate(
        &self,
        record: &dyn Record,
        device: &Device,
        key_type: KeyType,
    ) -> Result<TokenKey, ProduceError> {
        let token_err = token_error(device);
        match &device.key_id {
            Some(id_hex) => {
                let id = unhex(id_hex);
                let spki = public_key_with_id(&self.token, &id)
                    .map_err(&token_err)?
                    .ok_or_else(|| {
                        token_err(Pkcs11Error::NoPublicKey(format!(
                            "device {} (CKA_ID {id_hex})",
                            device.name
                        )))
                    })?;
                Ok(TokenKey {
                    spki,
                    id,
                    key_type,
                    generated: None,
                })
            }
            None => {
                // No label check: recovery removed every object labelled with a
                // planned device's serial, and a search per device is O(n) on
                // tokens that scan all objects (SoftHSM2): O(n²) per order.
                let pair = generate_key_pair(&self.token, key_type, device.name.as_str(), true)
                    .map_err(&token_err)?;
                record.record_key(device, &hex(&pair.id))?;
                Ok(TokenKey {
                    spki: pair.spki_der.clone(),
                    id: pair.id.clone(),
                    key_type,
                    generated: Some(pair),
                })
            }
        }
    }

    fn write_back(
        &self,
        _device: &Device,
        key: TokenKey,
        _certificate: &IssuedCertificate,
    ) -> Result<TokenKey, ProduceError> {
        Ok(key)
    }

    /// The certificate object, imported into the token beside its key;
    /// then, for a proving target, the key and certificate proved.
    fn store(
        &self,
        _folder: &Path,
        device: &Device,
        certificate_der: &[u8],
        key: &TokenKey,
    ) -> Result<(), ProduceError> {
        let token_err = token_error(device);
        import_certificate_beside(&self.token, device.name.as_str(), &key.id, certificate_der)
            .map_err(&token_err)?;
        if self.prove {
            let pair = match &key.generated {
                Some(pair) => pair.clone(),
                None => key_pair_with_id(&self.token, &key.id).map_err(&token_err)?,
            };
            let checks = prove(
                &self.token,
                key.key_type,
                &pair,
                certificate_der,
                device.name.as_str(),
            )
            .map_err(&token_err)?;
            *lock(&self.last_proof) = Some(checks);
        }
        Ok(())
    }
}
