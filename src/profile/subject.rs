//! Subject data: who a certificate is for, validated before any TBS exists.

use const_oid::db::rfc4519;
use const_oid::ObjectIdentifier;
use serde::Deserialize;

use super::{Profile, ProfileError, ProfileName};
use crate::ids::{DeviceSerial, IdMode, TaxpayerId, Tckn, Vkn};

/// RFC 5280's upper bound for commonName and organizationName, in characters.
pub const UB_NAME: usize = 64;

/// Why a name with control characters (which a terminal acts on) or
/// bidirectional formatting characters (which make a name read as another,
/// e.g. U+202E) is refused.
const FORBIDDEN_CHARACTERS: &str =
    "contains control or bidirectional formatting characters (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C)";

/// How a name attribute value is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringType {
    /// PrintableString.
    Printable,
    /// UTF8String.
    Utf8,
}

/// One attribute of a subject name, before encoding, its value borrowed
/// from the subject (no allocation per certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubjectAttribute<'a> {
    /// The attribute type.
    pub oid: ObjectIdentifier,
    /// The value.
    pub value: &'a str,
    /// The string type it is encoded as.
    pub string_type: StringType,
}

/// A trade name (unvan) in Turkish capitals, e.g. `ÖRNEK BİLİŞİM ANONİM ŞİRKETİ`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeName(String);

impl TradeName {
    /// Normalises to Turkish capitals (i→İ, ı→I) with single spaces, and
    /// refuses empty, over-long or control-character names.
    pub fn parse(value: &str) -> Result<Self, ProfileError> {
        let bad = |reason: &str| ProfileError::BadName {
            field: "unvan",
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        if value.chars().any(crate::text::is_forbidden) {
            return Err(bad(FORBIDDEN_CHARACTERS));
        }
        let upper: String = value
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .flat_map(|c| match c {
                'i' => vec!['İ'],
                'ı' => vec!['I'],
                c => c.to_uppercase().collect(),
            })
            .collect();
        if upper.is_empty() {
            return Err(bad("is empty"));
        }
        if upper.chars().count() > UB_NAME {
            return Err(bad(&format!(
                "has {} characters; a commonName holds at most {UB_NAME}",
                upper.chars().count()
            )));
        }
        Ok(Self(upper))
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A name value other than an unvan (manufacturer, organizationName,
/// commonName), trimmed: refused when empty, longer than [`UB_NAME`], or
/// holding control or bidirectional formatting characters.
pub fn plain_name(field: &'static str, value: &str) -> Result<String, ProfileError> {
    let bad = |reason: String| ProfileError::BadName {
        field,
        value: value.to_owned(),
        reason,
    };
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(bad("is empty".into()));
    }
    if trimmed.chars().any(crate::text::is_forbidden) {
        return Err(bad(FORBIDDEN_CHARACTERS.into()));
    }
    if trimmed.chars().count() > UB_NAME {
        return Err(bad(format!("is longer than {UB_NAME} characters")));
    }
    Ok(trimmed.to_owned())
}

/// Subject data as an operator gives it (flags or a TOML file), not yet validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectInput {
    /// Mali Mühür: the company's tax number.
    pub vkn: Option<String>,
    /// Mali Mühür: a sole proprietor's identity number (instead of a VKN).
    pub tckn: Option<String>,
    /// Mali Mühür: the trade name.
    pub unvan: Option<String>,
    /// ÖKC: the device serial number.
    pub device_serial: Option<String>,
    /// ÖKC: the manufacturer (optional organizationName).
    pub manufacturer: Option<String>,
    /// CA: commonName.
    pub common_name: Option<String>,
    /// CA: organizationName.
    pub organization: Option<String>,
    /// CA: countryName (default TR).
    pub country: Option<String>,
}

impl SubjectInput {
    /// Reads subject data from a TOML file; unknown fields are refused.
    pub fn load(path: &std::path::Path) -> Result<Self, ProfileError> {
        let file_error = |reason: String| ProfileError::SubjectFile {
            path: path.display().to_string(),
            reason,
        };
        let text = crate::input::read_text_file(path).map_err(|e| match e {
            crate::input::InputError::Unreadable { reason, .. } => file_error(reason),
            too_large => ProfileError::Input(too_large),
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Reads subject data from TOML text; unknown fields are refused.
    /// `origin` names the text in errors (the file's path).
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ProfileError> {
        toml::from_str(text).map_err(|e| ProfileError::SubjectFile {
            path: origin.to_owned(),
            reason: e.message().to_owned(),
        })
    }

    /// Fills every field that `self` lacks from `other` (flags over file).
    pub fn or(self, other: SubjectInput) -> SubjectInput {
        SubjectInput {
            vkn: self.vkn.or(other.vkn),
            tckn: self.tckn.or(other.tckn),
            unvan: self.unvan.or(other.unvan),
            device_serial: self.device_serial.or(other.device_serial),
            manufacturer: self.manufacturer.or(other.manufacturer),
            common_name: self.common_name.or(other.common_name),
            organization: self.organization.or(other.organization),
            country: self.country.or(other.country),
        }
    }
}

/// Validated subject data for one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A Mali Mühür e-seal holder.
    MaliMuhur {
        /// VKN, or TCKN for a sole proprietor.
        id: TaxpayerId,
        /// The trade name.
        trade_name: TradeName,
    },
    /// An ÖKC device.
    OkcDevice {
        /// The device serial.
        serial: DeviceSerial,
        /// The manufacturer, when the CA names it.
        manufacturer: Option<String>,
    },
    /// A CA.
    Ca {
        /// countryName.
        country: String,
        /// organizationName.
        organization: Option<String>,
        /// commonName.
        common_name: String,
    },
}

impl Subject {
    /// Validates `input` for `profile`: required fields present, fields of
    /// other profiles absent, identifiers valid.
    pub fn from_input(
        profile: &Profile,
        input: &SubjectInput,
        mode: IdMode,
    ) -> Result<Self, ProfileError> {
        let name = profile.name;
        let missing = |field| ProfileError::MissingField {
            profile: name,
            field,
        };
        let refuse_unused = |fields: &[(&'static str, bool)]| {
            fields
                .iter()
                .find(|(_, given)| *given)
                .map_or(Ok(()), |(field, _)| {
                    Err(ProfileError::UnexpectedField {
                        profile: name,
                        field,
                    })
                })
        };
        match name {
            ProfileName::MaliMuhur => {
                refuse_unused(&[
                    ("device_serial", input.device_serial.is_some()),
                    ("manufacturer", input.manufacturer.is_some()),
                    ("common_name", input.common_name.is_some()),
                    ("organization", input.organization.is_some()),
                    ("country", input.country.is_some()),
                ])?;
                let id = match (&input.vkn, &input.tckn) {
                    (Some(vkn), None) => TaxpayerId::Vkn(Vkn::parse(vkn, mode)?),
                    (None, Some(tckn)) => TaxpayerId::Tckn(tckn.parse::<Tckn>()?),
                    (Some(_), Some(_)) => {
                        return Err(ProfileError::UnexpectedField {
                            profile: name,
                            field: "tckn (a VKN is given)",
                        });
                    }
                    (None, None) => return Err(missing("vkn (or tckn for a sole proprietor)")),
                };
                let unvan = input.unvan.as_deref().ok_or_else(|| missing("unvan"))?;
                Ok(Subject::MaliMuhur {
                    id,
                    trade_name: TradeName::parse(unvan)?,
                })
            }
            ProfileName::OkcDevice => {
                refuse_unused(&[
                    ("vkn", input.vkn.is_some()),
                    ("tckn", input.tckn.is_some()),
                    ("unvan", input.unvan.is_some()),
                    ("common_name", input.common_name.is_some()),
                    ("organization", input.organization.is_some()),
                    ("country", input.country.is_some()),
                ])?;
                let serial = input
                    .device_serial
                    .as_deref()
                    .ok_or_else(|| missing("device_serial"))?;
                Ok(Subject::OkcDevice {
                    serial: DeviceSerial::parse(serial, &profile.approved_prefixes)?,
                    manufacturer: input
                        .manufacturer
                        .as_deref()
                        .map(|m| plain_name("manufacturer", m))
                        .transpose()?,
                })
            }
            ProfileName::RootCa | ProfileName::IssuingCa => {
                refuse_unused(&[
                    ("vkn", input.vkn.is_some()),
                    ("tckn", input.tckn.is_some()),
                    ("unvan", input.unvan.is_some()),
                    ("device_serial", input.device_serial.is_some()),
                    ("manufacturer", input.manufacturer.is_some()),
                ])?;
                let country = input.country.clone().unwrap_or_else(|| "TR".into());
                if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(ProfileError::BadName {
                        field: "country",
                        value: country,
                        reason: "must be a two-letter ISO 3166 code in capitals".into(),
                    });
                }
                let common_name = input
                    .common_name
                    .as_deref()
                    .ok_or_else(|| missing("common_name"))?;
                Ok(Subject::Ca {
                    country,
                    organization: input
                        .organization
                        .as_deref()
                        .map(|o| plain_name("organization", o))
                        .transpose()?,
                    common_name: plain_name("common_name", common_name)?,
                })
            }
        }
    }

    /// The subject name's attributes in the order the profiles prescribe.
    pub fn attributes(&self) -> Vec<SubjectAttribute<'_>> {
        let attr = |oid, value, string_type| SubjectAttribute {
            oid,
            value,
            string_type,
        };
        match self {
            Subject::MaliMuhur { id, trade_name } => vec![
                attr(rfc4519::SERIAL_NUMBER, id.as_str(), StringType::Printable),
                attr(rfc4519::CN, trade_name.as_str(), StringType::Utf8),
            ],
            Subject::OkcDevice {
                serial,
                manufacturer,
            } => {
                let mut attrs = vec![
                    attr(
                        rfc4519::SERIAL_NUMBER,
                        serial.as_str(),
                        StringType::Printable,
                    ),
                    attr(rfc4519::CN, serial.as_str(), StringType::Utf8),
                ];
                if let Some(m) = manufacturer {
                    attrs.push(attr(rfc4519::O, m, StringType::Utf8));
                }
                attrs
            }
            Subject::Ca {
                country,
                organization,
                common_name,
            } => {
                let mut attrs = vec![attr(rfc4519::C, country, StringType::Printable)];
                if let Some(o) = organization {
                    attrs.push(attr(rfc4519::O, o, StringType::Utf8));
                }
                attrs.push(attr(rfc4519::CN, common_name, StringType::Utf8));
                attrs
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::CaConfig;

    fn profile(name: ProfileName) -> Profile {
        Profile::from_config(name, &CaConfig::kamu_sm_defaults()).unwrap()
    }

    #[test]
    fn trade_names_become_turkish_capitals() {
        assert_eq!(
            TradeName::parse("  örnek bilişim   anonim şirketi ")
                .unwrap()
                .as_str(),
            "ÖRNEK BİLİŞİM ANONİM ŞİRKETİ"
        );
        assert_eq!(TradeName::parse("ılık").unwrap().as_str(), "ILIK");
        assert!(TradeName::parse("   ").is_err());
        assert!(TradeName::parse("A\u{7}B").is_err());
        assert!(TradeName::parse(&"A".repeat(65)).is_err());
    }

    #[test]
    fn mali_muhur_needs_an_id_and_a_trade_name() {
        let p = profile(ProfileName::MaliMuhur);
        let input = SubjectInput {
            vkn: Some("4540536920".into()),
            unvan: Some("Örnek A.Ş.".into()),
            ..Default::default()
        };
        let subject = Subject::from_input(&p, &input, IdMode::Production).unwrap();
        assert_eq!(subject.attributes()[0].value, "4540536920");
        assert_eq!(subject.attributes()[1].value, "ÖRNEK A.Ş.");

        let no_unvan = SubjectInput {
            unvan: None,
            ..input.clone()
        };
        let err = Subject::from_input(&p, &no_unvan, IdMode::Production).unwrap_err();
        assert_eq!(err.to_string(), "profile mali-muhur needs unvan");

        let bad_vkn = SubjectInput {
            vkn: Some("1234567891".into()),
            ..input.clone()
        };
        let err = Subject::from_input(&p, &bad_vkn, IdMode::Production).unwrap_err();
        assert_eq!(
            err.to_string(),
            "VKN \"1234567891\" has a wrong check digit"
        );

        let with_serial = SubjectInput {
            device_serial: Some("FU00022547".into()),
            ..input
        };
        assert!(matches!(
            Subject::from_input(&p, &with_serial, IdMode::Production),
            Err(ProfileError::UnexpectedField {
                field: "device_serial",
                ..
            })
        ));
    }

    #[test]
    fn sole_proprietors_use_their_tckn() {
        let p = profile(ProfileName::MaliMuhur);
        let input = SubjectInput {
            tckn: Some("10000000146".into()),
            unvan: Some("Ali Veli".into()),
            ..Default::default()
        };
        let subject = Subject::from_input(&p, &input, IdMode::Production).unwrap();
        assert_eq!(subject.attributes()[0].value, "10000000146");
    }

    #[test]
    fn okc_subject_repeats_the_serial_in_cn() {
        let p = profile(ProfileName::OkcDevice);
        let input = SubjectInput {
            device_serial: Some("FU00022547".into()),
            ..Default::default()
        };
        let subject = Subject::from_input(&p, &input, IdMode::Production).unwrap();
        let attrs = subject.attributes();
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[0].value, attrs[1].value);
    }
}
