//! What production asks of a token by label and CKA_ID, and what it removes
//! after a crash: the only place outside the session and key primitives
//! where token objects are searched or destroyed, so that no caller outside
//! this module handles a PKCS#11 session.

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};

use super::keys::{
    destroy_objects, find_private_key, find_public_key, import_certificate, objects_labelled,
    GeneratedKeyPair,
};
use super::token::Token;
use super::Pkcs11Error;

/// The public key (SubjectPublicKeyInfo, DER) of the key pair with CKA_ID
/// `id`, or `None` when the token holds no public key with that id.
pub fn public_key_with_id(token: &Token, id: &[u8]) -> Result<Option<Vec<u8>>, Pkcs11Error> {
    token
        .with_session(|s| match find_public_key(s, id, None)? {
            Some(public) => Ok(Some(super::keys::public_key_spki(s, public, token.label()))),
            None => Ok(None),
        })?
        .transpose()
}

/// Imports `certificate_der` as a certificate object labelled `label` beside
/// the key pair with CKA_ID `id` (alone on the token while it writes).
pub fn import_certificate_beside(
    token: &Token,
    label: &str,
    id: &[u8],
    certificate_der: &[u8],
) -> Result<(), Pkcs11Error> {
    token
        .with_session_changing_objects(|s| import_certificate(s, label, id, certificate_der))
        .map(|_| ())
}

/// Whether any object carries `label`.
pub fn label_in_use(token: &Token, label: &str) -> Result<bool, Pkcs11Error> {
    token.with_session(|s| Ok(!objects_labelled(s, label)?.is_empty()))
}

/// Removes the certificate objects labelled `label` (a certificate imported
/// whose record never followed); returns how many there were.
pub fn remove_certificates_labelled(token: &Token, label: &str) -> Result<u64, Pkcs11Error> {
    destroy_objects(
        token,
        &[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Label(label.as_bytes().to_vec()),
        ],
    )
}

/// What [`remove_leftovers`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Objects without a (readable) label: half-written by an interrupted run.
    pub unlabelled: u64,
    /// Objects whose label the caller called an orphan.
    pub orphans: u64,
}

/// One pass over the token's objects, removing what an interrupted run
/// left: unlabelled (or unreadable) objects — every object certmint
/// creates carries a label in its template, so these were never completed
/// (SoftHSM2's file store writes attributes one by one) — unless
/// `keep_unlabelled` (a company's token holds its own objects too, and one
/// without a label is not ours to judge), and objects whose label
/// `is_orphan` accepts (the caller asks its journal per label, so memory
/// stays flat and the token is scanned once). An error of `is_orphan`
/// stops the pass and is returned as the inner error.
pub fn remove_leftovers<E>(
    token: &Token,
    keep_unlabelled: bool,
    is_orphan: &mut dyn FnMut(&str) -> Result<bool, E>,
) -> Result<Result<Leftovers, E>, Pkcs11Error> {
    token.with_session_changing_objects(|s| {
        let mut removed = Leftovers::default();
        // Every object: a half-written one may lack CKA_LABEL entirely,
        // which no search template matches.
        for o in s.find_objects(&[])? {
            let label = match s.get_attributes(o, &[AttributeType::Label]) {
                Ok(attrs) => attrs.into_iter().find_map(|a| match a {
                    Attribute::Label(l) if !l.is_empty() => Some(l),
                    _ => None,
                }),
                // A label that cannot even be read marks a half-written object.
                Err(CkError::Pkcs11(
                    RvError::AttributeValueInvalid | RvError::AttributeTypeInvalid,
                    _,
                )) => None,
                Err(other) => return Err(other),
            };
            let remove = match &label {
                None if keep_unlabelled => false,
                None => {
                    removed.unlabelled += 1;
                    true
                }
                Some(label) => match is_orphan(&String::from_utf8_lossy(label)) {
                    Ok(true) => {
                        removed.orphans += 1;
                        true
                    }
                    Ok(false) => false,
                    Err(e) => return Ok(Err(e)),
                },
            };
            if remove {
                s.destroy_object(o)?;
            }
        }
        Ok(Ok(removed))
    })
}

/// The key pair with CKA_ID `id` (one private key and its public key), as
/// generation returns it, so that a key found again after a crash is
/// proved as a fresh one is.
pub fn key_pair_with_id(token: &Token, id: &[u8]) -> Result<GeneratedKeyPair, Pkcs11Error> {
    let missing = |what: &str| {
        Pkcs11Error::Verification(format!("no {what} with CKA_ID {}", crate::pem::hex(id)))
    };
    let (private, public) = token.with_session(|s| {
        let private = find_private_key(s, None, Some(id))?;
        let public = find_public_key(s, id, None)?;
        Ok((private, public))
    })?;
    let [private] = private[..] else {
        return Err(missing("single private key"));
    };
    let public = public.ok_or_else(|| missing("public key"))?;
    let spki_der =
        token.with_session(|s| Ok(super::keys::public_key_spki(s, public, token.label())))??;
    Ok(GeneratedKeyPair {
        private,
        public,
        spki_der,
        id: id.to_vec(),
    })
}

/// The CKA_IDs of the objects carrying `label` (an empty id for an object
/// without one), in no particular order.
pub fn ids_labelled(token: &Token, label: &str) -> Result<Vec<Vec<u8>>, Pkcs11Error> {
    token.with_session(|s| {
        objects_labelled(s, label)?
            .into_iter()
            .map(|o| super::keys::object_id(s, o))
            .collect()
    })
}

/// Removes the objects carrying `label` whose CKA_ID `remove` accepts;
/// returns how many went.
pub fn remove_labelled(
    token: &Token,
    label: &str,
    remove: &dyn Fn(&[u8]) -> bool,
) -> Result<u64, Pkcs11Error> {
    token.with_session_changing_objects(|s| {
        let mut removed = 0;
        for o in objects_labelled(s, label)? {
            if remove(&super::keys::object_id(s, o)?) {
                s.destroy_object(o)?;
                removed += 1;
            }
        }
        Ok(removed)
    })
}
