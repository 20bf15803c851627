//! Certificate profiles as data: what each kind of certificate contains is
//! decided here, in one place per profile. The TBS builder and the linter
//! both read a [`Profile`]; neither has profile knowledge of its own.

mod config;
mod subject;

pub use config::{
    CaConfig, CaFiles, IssuingCaFiles, ProfileConfig, KAMU_SM_CPS_URI, KAMU_SM_USER_NOTICE,
    MALI_MUHUR_EKU_OID, MALI_MUHUR_ISSUER_CN, MALI_MUHUR_POLICY_OID, OKC_CA_ISSUERS_URL,
    OKC_CRL_URL, OKC_ISSUER_CN, OKC_POLICY_OID, ROOT_CA_ISSUERS_URL, ROOT_CRL_URL,
};
pub use subject::{
    plain_name, StringType, Subject, SubjectAttribute, SubjectInput, TradeName, UB_NAME,
};

use std::fmt;
use std::str::FromStr;

use const_oid::db::rfc4519;
use const_oid::ObjectIdentifier;
use x509_cert::ext::pkix::KeyUsages;

use crate::ids::{IdError, PrefixTable};
use crate::signer::KeyType;

/// Why a profile or its subject data could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProfileError {
    /// The CA configuration file is unreadable or invalid.
    #[error("CA configuration {path}: {reason}")]
    Config {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A configured value is invalid.
    #[error("profile {profile}: {field} = {} is invalid: {reason}", crate::text::quoted(.value))]
    BadSetting {
        /// The profile section.
        profile: ProfileName,
        /// The field.
        field: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// Subject data the profile needs was not given.
    #[error("profile {profile} needs {field}")]
    MissingField {
        /// The profile.
        profile: ProfileName,
        /// The missing field, as the operator names it.
        field: &'static str,
    },
    /// Subject data the profile does not use was given.
    #[error("profile {profile} does not take {field}")]
    UnexpectedField {
        /// The profile.
        profile: ProfileName,
        /// The field given.
        field: &'static str,
    },
    /// An identifier is invalid.
    #[error(transparent)]
    Id(#[from] IdError),
    /// A subject or configuration file is over its cap.
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    /// A name value is unusable.
    #[error("{field} {}: {reason}", crate::text::quoted(.value))]
    BadName {
        /// Which name field.
        field: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// A subject data file is unreadable or has unknown or mistyped fields.
    #[error("subject file {path}: {reason}")]
    SubjectFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An unknown profile name.
    #[error("unknown profile {} (use mali-muhur, okc-device, root-ca or issuing-ca)", crate::text::quoted(.0))]
    UnknownProfile(String),
    /// An unknown product line name.
    #[error("unknown product line {} (use mali-muhur or okc)", crate::text::quoted(.0))]
    UnknownProductLine(String),
}

impl ProfileError {
    /// Subject data is invalid input; the CA's configuration is a failure.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            ProfileError::MissingField { .. }
            | ProfileError::UnexpectedField { .. }
            | ProfileError::BadName { .. }
            | ProfileError::SubjectFile { .. } => ErrorKind::InvalidInput,
            ProfileError::Id(e) => e.kind(),
            ProfileError::Input(e) => e.kind(),
            ProfileError::Config { .. }
            | ProfileError::BadSetting { .. }
            | ProfileError::UnknownProfile(_) => ErrorKind::Failure,
            ProfileError::UnknownProductLine(_) => ErrorKind::InvalidInput,
        }
    }
}

/// The certificate profiles certmint issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProfileName {
    /// Mali Mühür company e-seal signing certificate.
    MaliMuhur,
    /// ÖKC fiscal device certificate.
    OkcDevice,
    /// Self-signed root CA.
    RootCa,
    /// Issuing (intermediate) CA signed by the root.
    IssuingCa,
}

impl fmt::Display for ProfileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProfileName::MaliMuhur => "mali-muhur",
            ProfileName::OkcDevice => "okc-device",
            ProfileName::RootCa => "root-ca",
            ProfileName::IssuingCa => "issuing-ca",
        })
    }
}

impl FromStr for ProfileName {
    type Err = ProfileError;
    fn from_str(s: &str) -> Result<Self, ProfileError> {
        match s {
            "mali-muhur" => Ok(ProfileName::MaliMuhur),
            "okc-device" => Ok(ProfileName::OkcDevice),
            "root-ca" => Ok(ProfileName::RootCa),
            "issuing-ca" => Ok(ProfileName::IssuingCa),
            other => Err(ProfileError::UnknownProfile(other.to_owned())),
        }
    }
}

/// A product line: each has an issuing CA of its own under the one root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProductLine {
    /// Mali Mühür company e-seals.
    MaliMuhur,
    /// ÖKC fiscal device certificates.
    Okc,
}

impl ProductLine {
    /// The product line whose issuing CA signs certificates of `profile`;
    /// `None` for the CA profiles, which the root signs.
    pub fn of_profile(profile: ProfileName) -> Option<Self> {
        match profile {
            ProfileName::MaliMuhur => Some(ProductLine::MaliMuhur),
            ProfileName::OkcDevice => Some(ProductLine::Okc),
            ProfileName::RootCa | ProfileName::IssuingCa => None,
        }
    }

    /// The configuration section of this line's issuing CA certificate.
    pub fn issuing_ca_config(self, config: &CaConfig) -> ProfileConfig {
        match self {
            ProductLine::MaliMuhur => config.issuing_ca.clone(),
            ProductLine::Okc => config.okc_issuing_ca(),
        }
    }
}

impl fmt::Display for ProductLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProductLine::MaliMuhur => "mali-muhur",
            ProductLine::Okc => "okc",
        })
    }
}

impl FromStr for ProductLine {
    type Err = ProfileError;
    fn from_str(s: &str) -> Result<Self, ProfileError> {
        match s {
            "mali-muhur" => Ok(ProductLine::MaliMuhur),
            "okc" => Ok(ProductLine::Okc),
            other => Err(ProfileError::UnknownProductLine(other.to_owned())),
        }
    }
}

/// What the subject name must look like: attributes in this order, one per RDN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeRule {
    /// The attribute type.
    pub oid: ObjectIdentifier,
    /// The string type it must be encoded as.
    pub string_type: StringType,
    /// Whether it must be present.
    pub required: bool,
}

/// A certificate policy with its qualifiers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySpec {
    /// The policy OID.
    pub oid: ObjectIdentifier,
    /// CPS pointer qualifier (IA5String).
    pub cps_uri: Option<String>,
    /// UserNotice explicitText (BMPString).
    pub user_notice: Option<String>,
}

/// Everything that decides the content of one kind of certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// Which profile this is.
    pub name: ProfileName,
    /// notAfter = notBefore + `validity_years` years − 1 day.
    pub validity_years: u32,
    /// Subject key types accepted.
    pub key_types: Vec<KeyType>,
    /// Subject name attributes, in order.
    pub subject_rules: Vec<AttributeRule>,
    /// keyUsage bits for every key (always critical).
    pub key_usage: flagset::FlagSet<KeyUsages>,
    /// keyUsage bits added for EC keys.
    pub key_usage_ec_extra: flagset::FlagSet<KeyUsages>,
    /// basicConstraints cA flag and pathLenConstraint (always critical).
    pub ca: Option<Option<u8>>,
    /// extKeyUsage OIDs (non-critical); no extension when empty.
    pub extended_key_usage: Vec<ObjectIdentifier>,
    /// certificatePolicies (non-critical).
    pub policy: Option<PolicySpec>,
    /// cRLDistributionPoints URL.
    pub crl_url: Option<String>,
    /// AIA caIssuers URL.
    pub ca_issuers_url: Option<String>,
    /// AIA OCSP URL.
    pub ocsp_url: Option<String>,
    /// ÖKC: approved device serial prefixes.
    pub approved_prefixes: PrefixTable,
}

fn parse_oid(
    profile: ProfileName,
    field: &'static str,
    value: &str,
) -> Result<ObjectIdentifier, ProfileError> {
    ObjectIdentifier::new(value).map_err(|e| ProfileError::BadSetting {
        profile,
        field,
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

fn check_url(
    profile: ProfileName,
    field: &'static str,
    value: &Option<String>,
) -> Result<Option<String>, ProfileError> {
    match value {
        Some(url)
            if !(url.starts_with("http://") || url.starts_with("https://")) || !url.is_ascii() =>
        {
            Err(ProfileError::BadSetting {
                profile,
                field,
                value: url.clone(),
                reason: "must be an ASCII http:// or https:// URL".into(),
            })
        }
        other => Ok(other.clone()),
    }
}

impl Profile {
    /// The profile `name` with the CA's configuration applied.
    pub fn from_config(name: ProfileName, config: &CaConfig) -> Result<Self, ProfileError> {
        let section = match name {
            ProfileName::MaliMuhur => &config.mali_muhur,
            ProfileName::OkcDevice => &config.okc_device,
            ProfileName::RootCa => &config.root_ca,
            ProfileName::IssuingCa => &config.issuing_ca,
        };
        Self::new(name, section)
    }

    /// The profile `name` with one configuration section applied.
    pub fn new(name: ProfileName, config: &ProfileConfig) -> Result<Self, ProfileError> {
        use KeyUsages::*;
        if !(1..=50).contains(&config.validity_years) {
            return Err(ProfileError::BadSetting {
                profile: name,
                field: "validity_years",
                value: config.validity_years.to_string(),
                reason: "must be 1 to 50".into(),
            });
        }
        let key_types = config
            .key_types
            .iter()
            .map(|k| {
                k.parse::<KeyType>().map_err(|e| ProfileError::BadSetting {
                    profile: name,
                    field: "key_types",
                    value: k.clone(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let extended_key_usage = config
            .extended_key_usage
            .iter()
            .map(|oid| parse_oid(name, "extended_key_usage", oid))
            .collect::<Result<Vec<_>, _>>()?;
        let policy = match &config.policy_oid {
            Some(oid) => Some(PolicySpec {
                oid: parse_oid(name, "policy_oid", oid)?,
                cps_uri: check_url(name, "cps_uri", &config.cps_uri)?,
                user_notice: config.user_notice.clone(),
            }),
            None => None,
        };
        let approved_prefixes = PrefixTable::new(&config.approved_prefixes)?;

        let serial_number = |required| AttributeRule {
            oid: rfc4519::SERIAL_NUMBER,
            string_type: StringType::Printable,
            required,
        };
        let common_name = AttributeRule {
            oid: rfc4519::CN,
            string_type: StringType::Utf8,
            required: true,
        };
        let organization = AttributeRule {
            oid: rfc4519::O,
            string_type: StringType::Utf8,
            required: false,
        };
        let country = AttributeRule {
            oid: rfc4519::C,
            string_type: StringType::Printable,
            required: true,
        };
        let (subject_rules, key_usage, key_usage_ec_extra, ca) = match name {
            ProfileName::MaliMuhur => (
                vec![serial_number(true), common_name],
                DigitalSignature.into(),
                flagset::FlagSet::default(),
                None,
            ),
            ProfileName::OkcDevice => (
                vec![serial_number(true), common_name, organization],
                DigitalSignature.into(),
                KeyAgreement.into(),
                None,
            ),
            ProfileName::RootCa => (
                vec![country, organization, common_name],
                KeyCertSign | CRLSign,
                flagset::FlagSet::default(),
                Some(None),
            ),
            ProfileName::IssuingCa => (
                vec![country, organization, common_name],
                KeyCertSign | CRLSign,
                flagset::FlagSet::default(),
                Some(Some(0)),
            ),
        };
        Ok(Self {
            name,
            validity_years: config.validity_years,
            key_types,
            subject_rules,
            key_usage,
            key_usage_ec_extra,
            ca,
            extended_key_usage,
            policy,
            crl_url: check_url(name, "crl_url", &config.crl_url)?,
            ca_issuers_url: check_url(name, "ca_issuers_url", &config.ca_issuers_url)?,
            ocsp_url: check_url(name, "ocsp_url", &config.ocsp_url)?,
            approved_prefixes,
        })
    }

    /// The keyUsage bits for a subject key of `key_type`.
    pub fn key_usage_for(&self, key_type: KeyType) -> flagset::FlagSet<KeyUsages> {
        match key_type {
            KeyType::Rsa(_) => self.key_usage,
            KeyType::EcP256 | KeyType::EcP384 => self.key_usage | self.key_usage_ec_extra,
        }
    }

    /// The accepted key types as a human list, e.g. `rsa2048, p384`.
    pub fn key_types_text(&self) -> String {
        self.key_types
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// True for the self-signed root profile.
    pub fn is_self_signed(&self) -> bool {
        self.name == ProfileName::RootCa
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_names_round_trip() {
        for name in [
            ProfileName::MaliMuhur,
            ProfileName::OkcDevice,
            ProfileName::RootCa,
            ProfileName::IssuingCa,
        ] {
            assert_eq!(name.to_string().parse::<ProfileName>().unwrap(), name);
        }
        assert!("mali_muhur".parse::<ProfileName>().is_err());
    }

    #[test]
    fn product_lines_round_trip_and_map_profiles() {
        for line in [ProductLine::MaliMuhur, ProductLine::Okc] {
            assert_eq!(line.to_string().parse::<ProductLine>().unwrap(), line);
        }
        assert!("ökc".parse::<ProductLine>().is_err());
        assert_eq!(
            ProductLine::of_profile(ProfileName::OkcDevice),
            Some(ProductLine::Okc)
        );
        assert_eq!(
            ProductLine::of_profile(ProfileName::MaliMuhur),
            Some(ProductLine::MaliMuhur)
        );
        assert_eq!(ProductLine::of_profile(ProfileName::IssuingCa), None);
    }

    #[test]
    fn mali_muhur_defaults_are_the_confirmed_profile() {
        let p =
            Profile::from_config(ProfileName::MaliMuhur, &CaConfig::kamu_sm_defaults()).unwrap();
        assert_eq!(p.validity_years, 3);
        assert_eq!(p.key_types, vec![KeyType::Rsa(2048), KeyType::EcP384]);
        assert_eq!(
            p.key_usage_for(KeyType::EcP384),
            flagset::FlagSet::from(KeyUsages::DigitalSignature)
        );
        assert_eq!(p.ca, None);
        assert_eq!(
            p.extended_key_usage,
            vec![ObjectIdentifier::new_unwrap("2.16.792.1.2.1.1.5.7.50.1")]
        );
        let policy = p.policy.unwrap();
        assert_eq!(
            policy.oid,
            ObjectIdentifier::new_unwrap("2.16.792.1.2.1.1.5.7.4.1")
        );
        assert_eq!(
            policy.cps_uri.as_deref(),
            Some("http://depo.kamusm.gov.tr/ilke")
        );
    }

    #[test]
    fn okc_adds_key_agreement_for_ec_keys_only() {
        let p =
            Profile::from_config(ProfileName::OkcDevice, &CaConfig::kamu_sm_defaults()).unwrap();
        assert_eq!(
            p.key_usage_for(KeyType::EcP256),
            KeyUsages::DigitalSignature | KeyUsages::KeyAgreement
        );
        assert_eq!(
            p.key_usage_for(KeyType::Rsa(2048)),
            flagset::FlagSet::from(KeyUsages::DigitalSignature)
        );
    }

    #[test]
    fn bad_settings_name_field_and_value() {
        let mut config = ProfileConfig::mali_muhur_defaults();
        config.policy_oid = Some("2.16.x".into());
        let err = Profile::new(ProfileName::MaliMuhur, &config).unwrap_err();
        assert!(err.to_string().contains("policy_oid = \"2.16.x\""), "{err}");

        let mut config = ProfileConfig::mali_muhur_defaults();
        config.key_types = vec!["rsa1024".into()];
        let err = Profile::new(ProfileName::MaliMuhur, &config).unwrap_err();
        assert!(err.to_string().contains("key_types = \"rsa1024\""), "{err}");

        let mut config = ProfileConfig::mali_muhur_defaults();
        config.crl_url = Some("ldap://x".into());
        assert!(Profile::new(ProfileName::MaliMuhur, &config).is_err());
    }
}
