//! `hsm list`: what a module's slots hold, and what objects a token holds —
//! what `pkcs11-tool -L` and `-O` show — so that an engineer at a
//! customer's HSM needs no second tool to see the token before and after a
//! session. Reading only: nothing here changes a token.

use std::path::Path;

use cryptoki::object::{Attribute, AttributeType, KeyType as CkKeyType, ObjectClass};
use cryptoki::session::Session;
use serde::Serialize;

use super::token::{find_token, module, Token};
use super::uri::Pkcs11Uri;
use super::Pkcs11Error;
use crate::pem::hex;

/// The most objects listed from one token: a token is outside input, and a
/// listing is for a person to read.
pub const MAX_LISTED_OBJECTS: usize = 10_000;

/// One slot of the module, with its token if one is present.
#[derive(Debug, Clone, Serialize)]
pub struct SlotListing {
    /// The slot's CK_SLOT_ID, as `slot-id=` names it in a URI.
    pub slot_id: u64,
    /// The slot's description.
    pub description: String,
    /// The slot's manufacturer.
    pub manufacturer: String,
    /// The token in it, if any.
    pub token: Option<TokenListing>,
}

/// What a token says about itself.
#[derive(Debug, Clone, Serialize)]
pub struct TokenListing {
    /// Its label (`token=`).
    pub label: String,
    /// Its manufacturer (`manufacturer=`).
    pub manufacturer: String,
    /// Its model (`model=`).
    pub model: String,
    /// Its serial number (`serial=`).
    pub serial: String,
    /// Whether it was initialised (has a label and an SO PIN).
    pub initialized: bool,
    /// Whether the user PIN is locked.
    pub user_pin_locked: bool,
    /// Whether it refuses writes.
    pub write_protected: bool,
}

/// One object on a token.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectListing {
    /// `private-key`, `public-key`, `certificate`, `secret-key`, `data` or the class number.
    pub class: String,
    /// CKA_LABEL (`object=`).
    pub label: String,
    /// CKA_ID in hex (`id=`), empty when none.
    pub id: String,
    /// The key type of a key: `ec`, `rsa`, … (`null` for other objects).
    pub key_type: Option<String>,
    /// The key's capabilities and protections that are set, e.g. `sign`,
    /// `sensitive`, `never-extractable`; `extractable` is listed when set.
    pub flags: Vec<String>,
}

/// The slots of the module at `module_path`, each with its token.
pub fn slots(module_path: &Path) -> Result<Vec<SlotListing>, Pkcs11Error> {
    let ctx = module(module_path)?;
    let call = |e: cryptoki::error::Error| Pkcs11Error::call("(module)", &e);
    let mut listing = Vec::new();
    for slot in ctx.get_all_slots().map_err(call)? {
        let info = ctx.get_slot_info(slot).map_err(call)?;
        let token = if info.token_present() {
            let t = ctx.get_token_info(slot).map_err(call)?;
            Some(TokenListing {
                label: t.label().trim().to_owned(),
                manufacturer: t.manufacturer_id().trim().to_owned(),
                model: t.model().trim().to_owned(),
                serial: t.serial_number().trim().to_owned(),
                initialized: t.token_initialized(),
                user_pin_locked: t.user_pin_locked(),
                write_protected: t.write_protected(),
            })
        } else {
            None
        };
        listing.push(SlotListing {
            slot_id: slot.id(),
            description: info.slot_description().trim().to_owned(),
            manufacturer: info.manufacturer_id().trim().to_owned(),
            token,
        });
    }
    Ok(listing)
}

/// The objects of the token `uri` names that are visible without logging
/// in (public objects): at most [`MAX_LISTED_OBJECTS`], and whether more
/// were left out.
pub fn public_objects(uri: &Pkcs11Uri) -> Result<(Vec<ObjectListing>, bool), Pkcs11Error> {
    let found = find_token(uri)?;
    let label = found.label();
    let call = |e: cryptoki::error::Error| Pkcs11Error::call(&label, &e);
    let session = found.ctx.open_ro_session(found.slot).map_err(call)?;
    describe_objects(&session).map_err(call)
}

/// Every object of a token that is logged in, private keys included: at
/// most [`MAX_LISTED_OBJECTS`], and whether more were left out.
pub fn objects(token: &Token) -> Result<(Vec<ObjectListing>, bool), Pkcs11Error> {
    token.with_session(describe_objects)
}

fn describe_objects(
    session: &Session,
) -> Result<(Vec<ObjectListing>, bool), cryptoki::error::Error> {
    let handles = session.find_objects(&[])?;
    let more = handles.len() > MAX_LISTED_OBJECTS;
    let mut listing = Vec::new();
    for handle in handles.into_iter().take(MAX_LISTED_OBJECTS) {
        let attributes = session.get_attributes(
            handle,
            &[
                AttributeType::Class,
                AttributeType::Label,
                AttributeType::Id,
                AttributeType::KeyType,
                AttributeType::Sign,
                AttributeType::Verify,
                AttributeType::Decrypt,
                AttributeType::Encrypt,
                AttributeType::Derive,
                AttributeType::Private,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::NeverExtractable,
                AttributeType::Modifiable,
            ],
        )?;
        listing.push(describe(&attributes));
    }
    Ok((listing, more))
}

fn describe(attributes: &[Attribute]) -> ObjectListing {
    let mut object = ObjectListing {
        class: String::new(),
        label: String::new(),
        id: String::new(),
        key_type: None,
        flags: Vec::new(),
    };
    for attribute in attributes {
        let flag = |set: &bool, name: &str| set.then(|| name.to_owned());
        let set = match attribute {
            Attribute::Class(class) => {
                object.class = class_name(*class);
                None
            }
            Attribute::Label(label) => {
                object.label = String::from_utf8_lossy(label).into_owned();
                None
            }
            Attribute::Id(id) => {
                object.id = hex(id);
                None
            }
            Attribute::KeyType(key_type) => {
                object.key_type = Some(key_type_name(*key_type));
                None
            }
            Attribute::Sign(v) => flag(v, "sign"),
            Attribute::Verify(v) => flag(v, "verify"),
            Attribute::Decrypt(v) => flag(v, "decrypt"),
            Attribute::Encrypt(v) => flag(v, "encrypt"),
            Attribute::Derive(v) => flag(v, "derive"),
            Attribute::Private(v) => flag(v, "private"),
            Attribute::Sensitive(v) => flag(v, "sensitive"),
            Attribute::Extractable(v) => flag(v, "extractable"),
            Attribute::NeverExtractable(v) => flag(v, "never-extractable"),
            Attribute::Modifiable(v) => flag(v, "modifiable"),
            _ => None,
        };
        object.flags.extend(set);
    }
    // The label is outside text, shown on a terminal.
    object.label = crate::text::escaped(&object.label);
    object
}

fn class_name(class: ObjectClass) -> String {
    match class {
        ObjectClass::PRIVATE_KEY => "private-key".into(),
        ObjectClass::PUBLIC_KEY => "public-key".into(),
        ObjectClass::CERTIFICATE => "certificate".into(),
        ObjectClass::SECRET_KEY => "secret-key".into(),
        ObjectClass::DATA => "data".into(),
        other => format!("class {other}"),
    }
}

fn key_type_name(key_type: CkKeyType) -> String {
    match key_type {
        CkKeyType::EC => "ec".into(),
        CkKeyType::RSA => "rsa".into(),
        CkKeyType::AES => "aes".into(),
        other => other.to_string().to_lowercase(),
    }
}

/// The slots as text for an operator, one block per slot.
pub fn slots_text(slots: &[SlotListing]) -> String {
    let mut out = String::new();
    for slot in slots {
        out += &format!(
            "slot-id={}  {}\n",
            slot.slot_id,
            crate::text::escaped(&slot.description)
        );
        match &slot.token {
            None => out += "  no token\n",
            Some(t) if !t.initialized => out += "  token not initialised\n",
            Some(t) => {
                out += &format!(
                    "  token={}  manufacturer={}  model={}  serial={}{}{}\n",
                    crate::text::quoted(&t.label),
                    crate::text::quoted(&t.manufacturer),
                    crate::text::quoted(&t.model),
                    crate::text::quoted(&t.serial),
                    if t.user_pin_locked {
                        "  USER PIN LOCKED"
                    } else {
                        ""
                    },
                    if t.write_protected {
                        "  write-protected"
                    } else {
                        ""
                    },
                );
            }
        }
    }
    out
}

/// The objects as text for an operator, one line each.
pub fn objects_text(objects: &[ObjectListing], more: bool) -> String {
    let mut out = String::new();
    for o in objects {
        out += &format!(
            "{:<12} {:<32} id={:<40} {}{}\n",
            o.class,
            format!("\"{}\"", o.label),
            if o.id.is_empty() { "-" } else { &o.id },
            o.key_type
                .as_deref()
                .map(|t| format!("{t} "))
                .unwrap_or_default(),
            o.flags.join(",")
        );
    }
    if objects.is_empty() {
        out += "no objects\n";
    }
    if more {
        out += &format!("… only the first {MAX_LISTED_OBJECTS} objects are listed\n");
    }
    out
}
