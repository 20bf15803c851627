//! RFC 7512 `pkcs11:` URIs: which module, which token, which object, and
//! where the PIN comes from — parsed and validated before any work starts.
//!
//! ```text
//! pkcs11:token=ca;object=issuing-2026?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/ca.pin
//! ```
//!
//! `pin-value` is refused: a PIN in a URI ends up in argv, shell history and logs.

use std::fmt;
use std::path::PathBuf;

/// Why a `pkcs11:` URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// Not a `pkcs11:` URI.
    #[error("{} is not a pkcs11: URI", crate::text::quoted(.0))]
    NotPkcs11(String),
    /// A malformed `name=value` pair or percent escape.
    #[error("pkcs11 URI: malformed {}", crate::text::quoted(.0))]
    Malformed(String),
    /// An attribute certmint does not know.
    #[error("pkcs11 URI: unknown attribute {}", crate::text::quoted(.0))]
    UnknownAttribute(String),
    /// An attribute given twice.
    #[error("pkcs11 URI: attribute {} given twice", crate::text::quoted(.0))]
    Duplicate(String),
    /// A PIN inside the URI.
    #[error("pkcs11 URI: pin-value is refused (a PIN must not appear in arguments); use pin-source=file:PATH, --token-pin-env VAR (--ca-pin-env VAR for the CA key) or the prompt")]
    PinInUri,
    /// A `pin-source` that is not a `file:` path.
    #[error("pkcs11 URI: pin-source {} must be file:/absolute/or/relative/path", crate::text::quoted(.0))]
    BadPinSource(String),
    /// No token named.
    #[error("pkcs11 URI: name the token with token= or serial=")]
    NoToken,
    /// No object named where one is needed.
    #[error("pkcs11 URI: name the key with object= (label) or id=")]
    NoObject,
    /// An object type other than private.
    #[error("pkcs11 URI: type={} cannot sign; use type=private or leave it out", crate::text::quoted(.0))]
    BadType(String),
    /// A `slot-id` that is not a decimal number.
    #[error("pkcs11 URI: slot-id {} must be a decimal number", crate::text::quoted(.0))]
    BadSlotId(String),
    /// Both `module-path` and `module-name`.
    #[error("pkcs11 URI: give module-path or module-name, not both")]
    TwoModules,
    /// A `module-name` that no p11-kit registration names.
    #[error(transparent)]
    Module(#[from] super::registry::RegistryError),
}

/// What a URI says about the token beyond its label and serial, and about
/// its slot and module: every one given must match (RFC 7512 §2.3), so that
/// `slot-id=1` can never pick a token in another slot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenMatch {
    /// CK_TOKEN_INFO manufacturerID.
    pub manufacturer: Option<String>,
    /// CK_TOKEN_INFO model.
    pub model: Option<String>,
    /// The slot's CK_SLOT_ID.
    pub slot_id: Option<u64>,
    /// CK_SLOT_INFO slotDescription.
    pub slot_description: Option<String>,
    /// CK_SLOT_INFO manufacturerID.
    pub slot_manufacturer: Option<String>,
    /// CK_INFO manufacturerID of the module.
    pub library_manufacturer: Option<String>,
    /// CK_INFO libraryDescription of the module.
    pub library_description: Option<String>,
    /// CK_INFO libraryVersion of the module, `major[.minor]`.
    pub library_version: Option<String>,
}

impl TokenMatch {
    /// The attributes given, as URI path attributes, in RFC 7512's order.
    fn attributes(&self) -> Vec<(&'static str, String)> {
        let mut given = Vec::new();
        let mut add = |name, value: &Option<String>| {
            if let Some(v) = value {
                given.push((name, v.clone()));
            }
        };
        add("library-description", &self.library_description);
        add("library-manufacturer", &self.library_manufacturer);
        add("library-version", &self.library_version);
        add("manufacturer", &self.manufacturer);
        add("model", &self.model);
        add("slot-description", &self.slot_description);
        add("slot-manufacturer", &self.slot_manufacturer);
        if let Some(id) = self.slot_id {
            given.push(("slot-id", id.to_string()));
        }
        given
    }
}

impl UriError {
    /// Always a usage error: a key or token URI is an argument.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Usage
    }
}

/// A parsed `pkcs11:` URI.
#[derive(Clone, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// The PKCS#11 module to load; empty when neither the URI nor
    /// `CERTMINT_PKCS11_MODULE` names one ([`super::registry::default_module`]
    /// decides when it is loaded).
    pub module_path: PathBuf,
    /// Token label.
    pub token: Option<String>,
    /// Token serial number.
    pub serial: Option<String>,
    /// Object label.
    pub object: Option<String>,
    /// Object CKA_ID.
    pub id: Option<Vec<u8>>,
    /// Where the user PIN is read from, when the URI says.
    pub pin_source: Option<PathBuf>,
    /// The token's other attributes, its slot's and its module's (boxed:
    /// rarely given, and a URI is carried inside key references).
    pub token_match: Box<TokenMatch>,
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pkcs11Uri({self})")
    }
}

impl fmt::Display for Pkcs11Uri {
    /// The URI without its query, for messages (it never holds a PIN anyway).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .token_match
            .attributes()
            .into_iter()
            .map(|(name, value)| format!("{name}={}", escape(value.as_bytes())))
            .collect();
        if let Some(t) = &self.token {
            parts.push(format!("token={}", escape(t.as_bytes())));
        }
        if let Some(s) = &self.serial {
            parts.push(format!("serial={}", escape(s.as_bytes())));
        }
        if let Some(o) = &self.object {
            parts.push(format!("object={}", escape(o.as_bytes())));
        }
        if let Some(id) = &self.id {
            parts.push(format!(
                "id={}",
                id.iter().map(|b| format!("%{b:02X}")).collect::<String>()
            ));
        }
        write!(f, "pkcs11:{}", parts.join(";"))
    }
}

fn escape(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~:[]@!$'()*+,=&".contains(&b) && b != b';' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn unescape(value: &str) -> Result<Vec<u8>, UriError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            // Exactly two hex digits (RFC 3986 §2.1): `from_str_radix` alone
            // would also take a sign, as in `%+F`.
            let hex = value
                .get(i + 1..i + 3)
                .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| UriError::Malformed(value.to_owned()))?;
            out.push(
                u8::from_str_radix(hex, 16).map_err(|_| UriError::Malformed(value.to_owned()))?,
            );
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn text(value: &str) -> Result<String, UriError> {
    String::from_utf8(unescape(value)?).map_err(|_| UriError::Malformed(value.to_owned()))
}

impl Pkcs11Uri {
    /// The token this URI names, for a PIN prompt and errors, before the
    /// token itself is found: `token "label"` or `token serial "…"`.
    pub fn token_name(&self) -> String {
        match (&self.token, &self.serial) {
            (Some(label), _) => format!("token {label:?}"),
            (None, Some(serial)) => format!("token serial {serial:?}"),
            (None, None) => format!("token {self}"),
        }
    }

    /// Parses a URI. `token=` or `serial=` is required; the object is
    /// optional here (see [`Pkcs11Uri::require_object`]).
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        let rest = uri
            .strip_prefix("pkcs11:")
            .ok_or_else(|| UriError::NotPkcs11(uri.to_owned()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut parsed = Pkcs11Uri {
            module_path: PathBuf::new(),
            token: None,
            serial: None,
            object: None,
            id: None,
            pin_source: None,
            token_match: Box::default(),
        };
        let mut module_given = false;
        let mut module_name = None;
        let mut seen = std::collections::BTreeSet::new();
        let attributes = path
            .split(';')
            .map(|p| (p, false))
            .chain(query.split('&').map(|q| (q, true)));
        for (pair, in_query) in attributes.filter(|(p, _)| !p.is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| UriError::Malformed(pair.to_owned()))?;
            if !seen.insert((name.to_owned(), in_query)) {
                return Err(UriError::Duplicate(name.to_owned()));
            }
            match (name, in_query) {
                ("token", false) => parsed.token = Some(text(value)?),
                ("serial", false) => parsed.serial = Some(text(value)?),
                ("object", false) => parsed.object = Some(text(value)?),
                ("id", false) => parsed.id = Some(unescape(value)?),
                ("type", false) => {
                    if value != "private" {
                        return Err(UriError::BadType(value.to_owned()));
                    }
                }
                ("manufacturer", false) => parsed.token_match.manufacturer = Some(text(value)?),
                ("model", false) => parsed.token_match.model = Some(text(value)?),
                ("slot-description", false) => {
                    parsed.token_match.slot_description = Some(text(value)?)
                }
                ("slot-manufacturer", false) => {
                    parsed.token_match.slot_manufacturer = Some(text(value)?)
                }
                ("library-manufacturer", false) => {
                    parsed.token_match.library_manufacturer = Some(text(value)?)
                }
                ("library-description", false) => {
                    parsed.token_match.library_description = Some(text(value)?)
                }
                ("library-version", false) => {
                    parsed.token_match.library_version = Some(text(value)?)
                }
                ("slot-id", false) => {
                    let id = text(value)?;
                    parsed.token_match.slot_id = Some(
                        id.parse::<u64>()
                            .ok()
                            .filter(|_| id.bytes().all(|b| b.is_ascii_digit()))
                            .ok_or(UriError::BadSlotId(id))?,
                    );
                }
                ("module-path", true) => {
                    parsed.module_path = PathBuf::from(text(value)?);
                    module_given = true;
                }
                ("module-name", true) => module_name = Some(text(value)?),
                ("pin-source", true) => {
                    let source = text(value)?;
                    let path = source
                        .strip_prefix("file:")
                        .ok_or_else(|| UriError::BadPinSource(source.clone()))?;
                    // file:///abs/path and file:/abs/path and file:relative are all accepted.
                    let path = path.strip_prefix("//").unwrap_or(path);
                    if path.is_empty() {
                        return Err(UriError::BadPinSource(source));
                    }
                    parsed.pin_source = Some(PathBuf::from(path));
                }
                ("pin-value", true) => return Err(UriError::PinInUri),
                _ => return Err(UriError::UnknownAttribute(name.to_owned())),
            }
        }
        match (module_given, module_name) {
            (true, Some(_)) => return Err(UriError::TwoModules),
            (false, Some(name)) => {
                parsed.module_path = super::registry::Registry::system().module_path(&name)?;
                module_given = true;
            }
            _ => {}
        }
        if !module_given {
            if let Ok(module) = std::env::var("CERTMINT_PKCS11_MODULE") {
                parsed.module_path = PathBuf::from(module);
            }
        }
        if parsed.token.is_none() && parsed.serial.is_none() {
            return Err(UriError::NoToken);
        }
        Ok(parsed)
    }

    /// Checks that the URI names an object (a key to sign with).
    pub fn require_object(self) -> Result<Self, UriError> {
        if self.object.is_none() && self.id.is_none() {
            return Err(UriError::NoObject);
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_uri() {
        let uri = Pkcs11Uri::parse(
            "pkcs11:token=ca;object=issuing-2026;id=%01%02?module-path=/usr/lib/x.so&pin-source=file:/run/secrets/ca.pin",
        )
        .unwrap();
        assert_eq!(uri.token.as_deref(), Some("ca"));
        assert_eq!(uri.object.as_deref(), Some("issuing-2026"));
        assert_eq!(uri.id, Some(vec![1, 2]));
        assert_eq!(uri.module_path, PathBuf::from("/usr/lib/x.so"));
        assert_eq!(uri.pin_source, Some(PathBuf::from("/run/secrets/ca.pin")));
        assert_eq!(
            uri.to_string(),
            "pkcs11:token=ca;object=issuing-2026;id=%01%02"
        );
    }

    #[test]
    fn percent_escapes_and_file_uri_forms() {
        let uri = Pkcs11Uri::parse("pkcs11:token=M%C3%BC%C5%9Fteri%20HSM?pin-source=file:///tmp/p")
            .unwrap();
        assert_eq!(uri.token.as_deref(), Some("Müşteri HSM"));
        assert_eq!(uri.pin_source, Some(PathBuf::from("/tmp/p")));
        assert_eq!(uri.to_string(), "pkcs11:token=M%C3%BC%C5%9Fteri%20HSM");
    }

    #[test]
    fn refusals() {
        assert_eq!(
            Pkcs11Uri::parse("pkcs11:token=a?pin-value=1234"),
            Err(UriError::PinInUri)
        );
        assert_eq!(Pkcs11Uri::parse("pkcs11:object=k"), Err(UriError::NoToken));
        assert!(matches!(
            Pkcs11Uri::parse("file:k.pem"),
            Err(UriError::NotPkcs11(_))
        ));
        assert!(matches!(
            Pkcs11Uri::parse("pkcs11:token=a;colour=red"),
            Err(UriError::UnknownAttribute(_))
        ));
        assert!(matches!(
            Pkcs11Uri::parse("pkcs11:token=a;token=b"),
            Err(UriError::Duplicate(_))
        ));
        assert!(matches!(
            Pkcs11Uri::parse("pkcs11:token=a?pin-source=env:X"),
            Err(UriError::BadPinSource(_))
        ));
        assert!(matches!(
            Pkcs11Uri::parse("pkcs11:token=%zz"),
            Err(UriError::Malformed(_))
        ));
        assert!(matches!(
            Pkcs11Uri::parse("pkcs11:token=a;type=cert"),
            Err(UriError::BadType(_))
        ));
        assert_eq!(
            Pkcs11Uri::parse("pkcs11:token=a").unwrap().require_object(),
            Err(UriError::NoObject)
        );
    }

    /// Every token, slot and module attribute is kept (to be matched, never
    /// ignored), and survives the trip through text that a session process
    /// makes.
    #[test]
    fn token_slot_and_module_attributes_are_kept_and_round_trip() {
        let uri = Pkcs11Uri::parse(
            "pkcs11:token=ca;manufacturer=SoftHSM%20project;model=SoftHSM%20v2;slot-id=7;\
             slot-description=S;slot-manufacturer=M;library-manufacturer=L;\
             library-description=D;library-version=2.6;object=k",
        )
        .unwrap();
        let wanted = TokenMatch {
            manufacturer: Some("SoftHSM project".into()),
            model: Some("SoftHSM v2".into()),
            slot_id: Some(7),
            slot_description: Some("S".into()),
            slot_manufacturer: Some("M".into()),
            library_manufacturer: Some("L".into()),
            library_description: Some("D".into()),
            library_version: Some("2.6".into()),
        };
        assert_eq!(*uri.token_match, wanted);
        let again = Pkcs11Uri::parse(&uri.to_string()).unwrap();
        assert_eq!(*again.token_match, wanted);
        assert_eq!(again.token, uri.token);
        assert_eq!(again.object, uri.object);
    }

    #[test]
    fn slot_id_is_a_decimal_number() {
        for bad in ["x", "-1", "+1", "0x10", "", "99999999999999999999999"] {
            assert!(
                matches!(
                    Pkcs11Uri::parse(&format!("pkcs11:token=a;slot-id={bad}")),
                    Err(UriError::BadSlotId(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn module_path_and_module_name_together_are_refused() {
        assert_eq!(
            Pkcs11Uri::parse("pkcs11:token=a?module-path=/x.so&module-name=softhsm2"),
            Err(UriError::TwoModules)
        );
    }

    /// A percent escape is `%` and exactly two hex digits: a sign, as in
    /// `%+F` or `%-0`, is malformed, not the octet 0F (the `pkcs11_uri`
    /// fuzz target checks every accepted escape).
    #[test]
    fn a_signed_percent_escape_is_malformed() {
        for uri in [
            "pkcs11:token=ca;id=%+F",
            "pkcs11:token=%+41",
            "pkcs11:serial=%-0",
        ] {
            assert_eq!(
                Pkcs11Uri::parse(uri),
                Err(UriError::Malformed(
                    uri.rsplit('=').next().unwrap().to_owned()
                )),
                "{uri}"
            );
        }
    }
}
