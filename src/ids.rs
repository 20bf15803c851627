//! Identifiers that can only exist when valid: VKN, TCKN, MERSİS and ÖKC
//! device serial numbers (`../shared/domain.md` §3–4).
//!
//! Each type is built only through its parser, so holding a [`Vkn`] proves the
//! check digit was right. Error messages name the identifier and the value.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Wrong number of characters.
    #[error("{kind} {} must have {expected} digits, it has {actual}", crate::text::quoted(.value))]
    WrongLength {
        /// Which identifier (VKN, TCKN, MERSİS).
        kind: &'static str,
        /// The value as given.
        value: String,
        /// The required number of digits.
        expected: usize,
        /// The number of characters given.
        actual: usize,
    },
    /// A character other than 0–9.
    #[error("{kind} {} must contain only the digits 0-9", crate::text::quoted(.value))]
    NotDigits {
        /// Which identifier.
        kind: &'static str,
        /// The value as given.
        value: String,
    },
    /// The check digit(s) do not match.
    #[error("{kind} {} has a wrong check digit", crate::text::quoted(.value))]
    BadCheckDigit {
        /// Which identifier.
        kind: &'static str,
        /// The value as given.
        value: String,
    },
    /// A TCKN never starts with 0.
    #[error("TCKN {} must not start with 0", crate::text::quoted(.value))]
    LeadingZero {
        /// The value as given.
        value: String,
    },
    /// GİB's test VKN outside test mode.
    #[error("VKN 9999999999 is GİB's test number; it is accepted only in test mode")]
    TestVknOutsideTestMode,
    /// A MERSİS number whose embedded VKN is not the applicant's.
    #[error("MERSİS {} contains VKN {embedded}, but the applicant's VKN is {expected}", crate::text::quoted(.value))]
    MersisVknMismatch {
        /// The MERSİS number as given.
        value: String,
        /// The VKN found at digits 2–11.
        embedded: String,
        /// The applicant's VKN.
        expected: String,
    },
    /// A MERSİS number with a structure other than `0` + VKN + 5 digits.
    #[error("MERSİS {} must start with 0 followed by a valid 10-digit VKN", crate::text::quoted(.value))]
    MersisStructure {
        /// The value as given.
        value: String,
    },
    /// A device serial not of the form 2–3 capital letters + 7–8 digits.
    #[error("device serial {} must be 2-3 capital letters followed by 7-8 digits (e.g. FU00022547)", crate::text::quoted(.value))]
    DeviceSerialFormat {
        /// The value as given.
        value: String,
    },
    /// A seal label not of the form `{VKN or TCKN}SIGN{n}`.
    #[error("seal label {} must be a VKN or TCKN, SIGN and a number (e.g. 4540536920SIGN0)", crate::text::quoted(.value))]
    SealLabelFormat {
        /// The value as given.
        value: String,
    },
    /// A device serial whose prefix is not in the manufacturer's table.
    #[error("device serial {} has prefix {}, which is not among the approved prefixes {allowed}", crate::text::quoted(.value), crate::text::quoted(.prefix))]
    DeviceSerialPrefix {
        /// The value as given.
        value: String,
        /// Its letter prefix.
        prefix: String,
        /// The approved prefixes, comma-separated.
        allowed: String,
    },
    /// A prefix table entry that is not 2–3 capital letters.
    #[error("approved prefix {} must be 2-3 capital letters A-Z", crate::text::quoted(.value))]
    BadPrefix {
        /// The value as given.
        value: String,
    },
}

impl IdError {
    /// Always invalid input.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::InvalidInput
    }
}

/// Whether GİB's test identifiers are acceptable. Production refuses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdMode {
    /// Real identifiers only.
    #[default]
    Production,
    /// Also accept GİB's test VKN `9999999999`.
    Test,
}

const GIB_TEST_VKN: &str = "9999999999";

fn digits(kind: &'static str, value: &str, expected: usize) -> Result<Vec<u32>, IdError> {
    let actual = value.chars().count();
    if actual != expected {
        return Err(IdError::WrongLength {
            kind,
            value: value.to_owned(),
            expected,
            actual,
        });
    }
    value
        .chars()
        .map(|c| c.to_digit(10))
        .collect::<Option<Vec<u32>>>()
        .ok_or_else(|| IdError::NotDigits {
            kind,
            value: value.to_owned(),
        })
}

/// A Turkish tax number (Vergi Kimlik Numarası): 10 digits, last one a check digit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vkn(String);

impl Vkn {
    /// Parses a VKN; GİB's test number is accepted only in [`IdMode::Test`].
    pub fn parse(value: &str, mode: IdMode) -> Result<Self, IdError> {
        let d = digits("VKN", value, 10)?;
        if value == GIB_TEST_VKN {
            return match mode {
                IdMode::Test => Ok(Self(value.to_owned())),
                IdMode::Production => Err(IdError::TestVknOutsideTestMode),
            };
        }
        if vkn_check_digit(&d[..9]) != d[9] {
            return Err(IdError::BadCheckDigit {
                kind: "VKN",
                value: value.to_owned(),
            });
        }
        Ok(Self(value.to_owned()))
    }

    /// The ten digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The VKN check digit of the first nine digits (GİB algorithm).
fn vkn_check_digit(first_nine: &[u32]) -> u32 {
    let mut sum = 0;
    for (index, &digit) in first_nine.iter().enumerate() {
        let power = 9 - index as u32; // p = 10 − k for k = 1..9
        let t = (digit + power) % 10;
        let c = if t == 0 {
            0
        } else {
            match (t * 2u32.pow(power)) % 9 {
                0 => 9,
                c => c,
            }
        };
        sum += c;
    }
    (10 - sum % 10) % 10
}

impl FromStr for Vkn {
    type Err = IdError;
    /// Production mode; use [`Vkn::parse`] for test mode.
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::parse(s, IdMode::Production)
    }
}

/// A Turkish personal identity number (T.C. Kimlik No): 11 digits, two check digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tckn(String);

impl Tckn {
    /// The eleven digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tckn {
    type Err = IdError;
    fn from_str(value: &str) -> Result<Self, IdError> {
        let d = digits("TCKN", value, 11)?;
        if d[0] == 0 {
            return Err(IdError::LeadingZero {
                value: value.to_owned(),
            });
        }
        let odd: i64 = [0, 2, 4, 6, 8].iter().map(|&i| i64::from(d[i])).sum();
        let even: i64 = [1, 3, 5, 7].iter().map(|&i| i64::from(d[i])).sum();
        let tenth = (7 * odd - even).rem_euclid(10) as u32;
        let eleventh = d[..10].iter().sum::<u32>() % 10;
        if d[9] != tenth || d[10] != eleventh {
            return Err(IdError::BadCheckDigit {
                kind: "TCKN",
                value: value.to_owned(),
            });
        }
        Ok(Self(value.to_owned()))
    }
}

/// A MERSİS number: `0` + the company's VKN + a 5-digit suffix.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Mersis {
    value: String,
    vkn: Vkn,
}

impl Mersis {
    /// Parses a MERSİS number and checks that it embeds `applicant`'s VKN.
    pub fn parse_for(value: &str, applicant: &Vkn) -> Result<Self, IdError> {
        let mersis = value.parse::<Self>()?;
        if mersis.vkn != *applicant {
            return Err(IdError::MersisVknMismatch {
                value: value.to_owned(),
                embedded: mersis.vkn.0,
                expected: applicant.0.clone(),
            });
        }
        Ok(mersis)
    }

    /// The embedded VKN.
    pub fn vkn(&self) -> &Vkn {
        &self.vkn
    }

    /// The sixteen digits.
    pub fn as_str(&self) -> &str {
        &self.value
    }
}

impl FromStr for Mersis {
    type Err = IdError;
    /// Structure only; use [`Mersis::parse_for`] to tie it to an applicant.
    fn from_str(value: &str) -> Result<Self, IdError> {
        let d = digits("MERSİS", value, 16)?;
        let structure_error = || IdError::MersisStructure {
            value: value.to_owned(),
        };
        if d[0] != 0 {
            return Err(structure_error());
        }
        let vkn = Vkn::parse(&value[1..11], IdMode::Production).map_err(|_| structure_error())?;
        Ok(Self {
            value: value.to_owned(),
            vkn,
        })
    }
}

/// The identifier in a Mali Mühür subject's serialNumber: a company's VKN, or
/// a sole proprietor's TCKN.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum TaxpayerId {
    /// A company's tax number.
    Vkn(Vkn),
    /// A sole proprietor's identity number.
    Tckn(Tckn),
}

impl TaxpayerId {
    /// The digits.
    pub fn as_str(&self) -> &str {
        match self {
            TaxpayerId::Vkn(v) => v.as_str(),
            TaxpayerId::Tckn(t) => t.as_str(),
        }
    }

    /// A VKN (10 digits) or a TCKN (11 digits), each checked as such under
    /// `mode`: the one place where the two are told apart by their length,
    /// which is what defines them.
    pub fn parse(value: &str, mode: IdMode) -> Result<Self, IdError> {
        if value.len() == 11 {
            Ok(TaxpayerId::Tckn(value.parse()?))
        } else {
            Ok(TaxpayerId::Vkn(Vkn::parse(value, mode)?))
        }
    }
}

impl serde::Serialize for TaxpayerId {
    /// As its digits.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The letter prefixes a manufacturer's devices are approved for.
/// An empty table accepts any well-formed prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefixTable(BTreeSet<String>);

impl PrefixTable {
    /// A table that accepts every well-formed prefix.
    pub fn any() -> Self {
        Self::default()
    }

    /// A table of approved prefixes, each 2–3 capital letters.
    pub fn new<I, S>(prefixes: I) -> Result<Self, IdError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut table = BTreeSet::new();
        for prefix in prefixes {
            let prefix = prefix.as_ref();
            let well_formed =
                (2..=3).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_uppercase());
            if !well_formed {
                return Err(IdError::BadPrefix {
                    value: prefix.to_owned(),
                });
            }
            table.insert(prefix.to_owned());
        }
        Ok(Self(table))
    }

    /// True when `prefix` may be used.
    pub fn allows(&self, prefix: &str) -> bool {
        self.0.is_empty() || self.0.contains(prefix)
    }

    /// The prefixes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

/// An ÖKC device serial number (mali sicil no): 2–3 capital letters, then 7–8 digits.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceSerial(String);

impl DeviceSerial {
    /// Parses a serial and checks its prefix against the manufacturer's table.
    pub fn parse(value: &str, prefixes: &PrefixTable) -> Result<Self, IdError> {
        let letters = value.bytes().take_while(u8::is_ascii_uppercase).count();
        let digits = &value[letters..];
        let well_formed = (2..=3).contains(&letters)
            && (7..=8).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit());
        if !well_formed {
            return Err(IdError::DeviceSerialFormat {
                value: value.to_owned(),
            });
        }
        let prefix = &value[..letters];
        if !prefixes.allows(prefix) {
            return Err(IdError::DeviceSerialPrefix {
                value: value.to_owned(),
                prefix: prefix.to_owned(),
                allowed: prefixes.iter().collect::<Vec<_>>().join(", "),
            });
        }
        Ok(Self(value.to_owned()))
    }

    /// The journal name of the `index`-th Mali Mühür seal of the taxpayer
    /// The letter prefix (manufacturer / brand code).
    pub fn prefix(&self) -> &str {
        let letters = self.0.bytes().take_while(u8::is_ascii_uppercase).count();
        &self.0[..letters]
    }

    /// The whole serial.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The label of a company's e-seal key: `{VKN or TCKN}SIGN{n}`, as Kamu SM
/// labels it; `n` counts the company's seals from 0.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SealLabel(String);

impl SealLabel {
    /// The company's seal number `index`.
    pub fn new(id: &TaxpayerId, index: u32) -> Self {
        Self(format!("{}SIGN{index}", id.as_str()))
    }

    /// A label as certmint writes them: 10 or 11 digits, `SIGN`, a number.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let refused = || IdError::SealLabelFormat {
            value: value.to_owned(),
        };
        let (id, number) = value.split_once("SIGN").ok_or_else(refused)?;
        let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        if !(matches!(id.len(), 10 | 11) && digits(id) && digits(number) && number.len() <= 9) {
            return Err(refused());
        }
        Ok(Self(value.to_owned()))
    }

    /// The whole label.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What one device row of an order stands for: an ÖKC device by its
/// serial, or a company's seal by its label. The two never share a type.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceName {
    /// An ÖKC device.
    Serial(DeviceSerial),
    /// A Mali Mühür seal.
    Seal(SealLabel),
}

impl DeviceName {
    /// A stored name: a device serial or a seal label, which no text can
    /// be both of (a serial starts with letters, a label with digits).
    pub fn parse(value: &str) -> Result<Self, IdError> {
        match DeviceSerial::parse(value, &PrefixTable::any()) {
            Ok(serial) => Ok(DeviceName::Serial(serial)),
            Err(_) => SealLabel::parse(value).map(DeviceName::Seal),
        }
    }

    /// The serial or the label.
    pub fn as_str(&self) -> &str {
        match self {
            DeviceName::Serial(serial) => serial.as_str(),
            DeviceName::Seal(label) => label.as_str(),
        }
    }
}

impl From<DeviceSerial> for DeviceName {
    fn from(serial: DeviceSerial) -> Self {
        DeviceName::Serial(serial)
    }
}

impl From<SealLabel> for DeviceName {
    fn from(label: SealLabel) -> Self {
        DeviceName::Seal(label)
    }
}

macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($t), self.as_str())
            }
        }
    )*};
}
display_as_str!(
    Vkn,
    Tckn,
    Mersis,
    DeviceSerial,
    TaxpayerId,
    SealLabel,
    DeviceName
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vkn_accepts_the_published_valid_numbers() {
        for v in ["4540536920", "3230512384", "6180884538"] {
            assert_eq!(v.parse::<Vkn>().unwrap().as_str(), v);
        }
    }

    #[test]
    fn vkn_refuses_a_changed_check_digit() {
        assert!(matches!(
            "4540536921".parse::<Vkn>(),
            Err(IdError::BadCheckDigit { kind: "VKN", .. })
        ));
    }

    #[test]
    fn vkn_refuses_wrong_length_and_letters() {
        assert!(matches!(
            "454053692".parse::<Vkn>(),
            Err(IdError::WrongLength { actual: 9, .. })
        ));
        assert!(matches!(
            "45405369A0".parse::<Vkn>(),
            Err(IdError::NotDigits { .. })
        ));
    }

    #[test]
    fn gib_test_vkn_only_in_test_mode() {
        assert_eq!(
            "9999999999".parse::<Vkn>(),
            Err(IdError::TestVknOutsideTestMode)
        );
        assert!(Vkn::parse("9999999999", IdMode::Test).is_ok());
        // Test mode does not weaken the check for other numbers.
        assert!(Vkn::parse("4540536921", IdMode::Test).is_err());
    }

    #[test]
    fn tckn_published_values() {
        assert!("10000000146".parse::<Tckn>().is_ok());
        assert!("17291716060".parse::<Tckn>().is_ok());
        assert!(matches!(
            "17291716050".parse::<Tckn>(),
            Err(IdError::BadCheckDigit { kind: "TCKN", .. })
        ));
        assert!(matches!(
            "07291716060".parse::<Tckn>(),
            Err(IdError::LeadingZero { .. })
        ));
    }

    #[test]
    fn mersis_embeds_the_applicants_vkn() {
        let vkn: Vkn = "4540536920".parse().unwrap();
        let mersis = Mersis::parse_for("0454053692000015", &vkn).unwrap();
        assert_eq!(mersis.vkn(), &vkn);
        let other: Vkn = "3230512384".parse().unwrap();
        assert!(matches!(
            Mersis::parse_for("0454053692000015", &other),
            Err(IdError::MersisVknMismatch { .. })
        ));
        assert!(matches!(
            "1454053692000015".parse::<Mersis>(),
            Err(IdError::MersisStructure { .. })
        ));
        assert!(matches!(
            "0454053692100015".parse::<Mersis>(),
            Err(IdError::MersisStructure { .. })
        ));
    }

    #[test]
    fn device_serial_format() {
        let any = PrefixTable::any();
        for ok in ["FU00022547", "AB1234567", "ABC12345678"] {
            assert!(DeviceSerial::parse(ok, &any).is_ok(), "{ok}");
        }
        for bad in [
            "F00022547",
            "ABCD1234567",
            "FU123456",
            "FU123456789",
            "fu00022547",
            "FU0002254X",
            "",
            "FU 0022547",
        ] {
            assert!(
                matches!(
                    DeviceSerial::parse(bad, &any),
                    Err(IdError::DeviceSerialFormat { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn device_serial_prefix_table() {
        let table = PrefixTable::new(["FU", "JI"]).unwrap();
        let serial = DeviceSerial::parse("FU00022547", &table).unwrap();
        assert_eq!(serial.prefix(), "FU");
        let err = DeviceSerial::parse("AB00022547", &table).unwrap_err();
        assert_eq!(
            err.to_string(),
            "device serial \"AB00022547\" has prefix \"AB\", which is not among the approved prefixes FU, JI"
        );
        assert!(PrefixTable::new(["F"]).is_err());
        assert!(PrefixTable::new(["fu"]).is_err());
    }

    #[test]
    fn a_device_serial_and_a_seal_label_are_told_apart_and_never_confused() {
        let vkn = TaxpayerId::Vkn(Vkn::parse("4540536920", IdMode::Production).unwrap());
        let label = SealLabel::new(&vkn, 3);
        assert_eq!(label.as_str(), "4540536920SIGN3");
        assert_eq!(SealLabel::parse("4540536920SIGN3").unwrap(), label);
        assert_eq!(
            DeviceName::parse("4540536920SIGN3").unwrap(),
            DeviceName::Seal(label)
        );
        assert!(matches!(
            DeviceName::parse("FU00022547").unwrap(),
            DeviceName::Serial(_)
        ));
        for bad in [
            "",
            "SIGN1",
            "4540536920SIGN",
            "454053692SIGN1",
            "4540536920SIGNx",
            "FU000225",
        ] {
            assert!(DeviceName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
