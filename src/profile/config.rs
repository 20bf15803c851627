//! The CA's configuration: what a CA may change in its certificates (URLs,
//! OIDs, validity, accepted keys, ÖKC prefixes), with the Kamu SM values of
//! `../shared/domain.md` §3 as the shipped defaults. Stored as TOML beside the
//! CA's certificates; `certmint ca init` writes a complete file to edit.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ProfileError;

/// The Mali Mühür certificate policy OID.
pub const MALI_MUHUR_POLICY_OID: &str = "2.16.792.1.2.1.1.5.7.4.1";
/// The Mali Mühür extended key usage OID.
pub const MALI_MUHUR_EKU_OID: &str = "2.16.792.1.2.1.1.5.7.50.1";
/// Kamu SM's certification practice statement.
pub const KAMU_SM_CPS_URI: &str = "http://depo.kamusm.gov.tr/ilke";
/// The UserNotice text of Kamu SM certificates (encoded as BMPString).
pub const KAMU_SM_USER_NOTICE: &str = "Bu sertifika ile ilgili sertifika uygulama esaslarını okumak için belirtilen web sitesini ziyaret ediniz.";
/// The issuer CN of the Mali Mühür issuing CA, version 1.
pub const MALI_MUHUR_ISSUER_CN: &str =
    "Mali Mühür Elektronik Sertifika Hizmet Sağlayıcısı - Sürüm 1";
/// The issuer CN of the ÖKC issuing CA \[assumption: Kamu SM publishes no
/// ÖKC CA name; this follows the Mali Mühür CA's naming\].
pub const OKC_ISSUER_CN: &str = "ÖKC Elektronik Sertifika Hizmet Sağlayıcısı - Sürüm 1";
/// The ÖKC device certificate policy OID \[assumption: no public ÖKC policy
/// exists; an OID under Kamu SM's policy arc, distinct from Mali Mühür's, to
/// be replaced by the one the CA's certificate policy assigns\].
pub const OKC_POLICY_OID: &str = "2.16.792.1.2.1.1.5.7.60.1";
/// The root's CRL (the ARL listing revoked issuing CAs) \[assumption\].
pub const ROOT_CRL_URL: &str = "http://depo.kamusm.gov.tr/kurumsal/mmkshs-s1.crl";
/// Where the root certificate is published \[assumption\].
pub const ROOT_CA_ISSUERS_URL: &str = "http://depo.kamusm.gov.tr/kurumsal/mmkshs-s1.crt";
/// The ÖKC issuing CA's CRL \[assumption\].
pub const OKC_CRL_URL: &str = "http://depo.kamusm.gov.tr/kurumsal/okcshs-s1.crl";
/// Where the ÖKC issuing CA certificate is published \[assumption\].
pub const OKC_CA_ISSUERS_URL: &str = "http://depo.kamusm.gov.tr/kurumsal/okcshs-s1.crt";

/// Everything a CA configures about its certificates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// Where the root and the Mali Mühür issuing CA's certificate and key are.
    pub ca: CaFiles,
    /// Where the ÖKC issuing CA's certificate and key are. Absent in a CA
    /// directory that has only the Mali Mühür issuing CA (see
    /// [`crate::ca::CaDirectory::open`]); `certmint ca add-issuing --line okc` adds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub okc_ca: Option<IssuingCaFiles>,
    /// The self-signed root CA's certificate profile.
    #[serde(default = "ProfileConfig::root_ca_defaults")]
    pub root_ca: ProfileConfig,
    /// The Mali Mühür issuing CA's certificate profile (signed by the root).
    #[serde(default = "ProfileConfig::issuing_ca_defaults")]
    pub issuing_ca: ProfileConfig,
    /// The ÖKC issuing CA's certificate profile (signed by the root). When
    /// absent, `[issuing_ca]` with the `[okc_device]` policy applies (see
    /// [`CaConfig::okc_issuing_ca`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub okc_issuing_ca: Option<ProfileConfig>,
    /// Mali Mühür e-seal certificates.
    #[serde(default = "ProfileConfig::mali_muhur_defaults")]
    pub mali_muhur: ProfileConfig,
    /// ÖKC device certificates.
    #[serde(default = "ProfileConfig::okc_device_defaults")]
    pub okc_device: ProfileConfig,
}

/// The issuing CA's files, relative to the configuration file's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaFiles {
    /// The issuing CA certificate (PEM).
    pub issuing_certificate: String,
    /// The issuing CA key reference: a PKCS#8 file path.
    pub issuing_key: String,
    /// The root CA certificate (PEM), delivered as part of the chain.
    pub root_certificate: String,
}

/// One issuing CA's files, relative to the configuration file's folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuingCaFiles {
    /// The issuing CA certificate (PEM).
    pub certificate: String,
    /// The issuing CA key reference: a PKCS#8 file path or a `pkcs11:` URI.
    pub key: String,
}

impl IssuingCaFiles {
    /// The ÖKC issuing CA's default files.
    pub fn okc_defaults() -> Self {
        Self {
            certificate: "okc-issuing.pem".into(),
            key: "okc-issuing-key.pem".into(),
        }
    }
}

impl Default for CaFiles {
    fn default() -> Self {
        Self {
            issuing_certificate: "issuing.pem".into(),
            issuing_key: "issuing-key.pem".into(),
            root_certificate: "root.pem".into(),
        }
    }
}

/// The configurable part of one certificate profile. A whole section is
/// given or the defaults apply; fields a profile has no use for are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// notAfter = notBefore + this many years − 1 day, same time of day.
    pub validity_years: u32,
    /// Subscriber key types accepted: `rsa2048`, `rsa3072`, `rsa4096`, `p256`, `p384`.
    pub key_types: Vec<String>,
    /// Extended key usage OIDs.
    #[serde(default)]
    pub extended_key_usage: Vec<String>,
    /// The certificate policy OID; no certificatePolicies extension when absent.
    pub policy_oid: Option<String>,
    /// The CPS URI qualifier of the policy.
    pub cps_uri: Option<String>,
    /// The UserNotice explicitText of the policy (BMPString).
    pub user_notice: Option<String>,
    /// CRL distribution point URL.
    pub crl_url: Option<String>,
    /// AIA caIssuers URL.
    pub ca_issuers_url: Option<String>,
    /// AIA OCSP responder URL.
    pub ocsp_url: Option<String>,
    /// ÖKC only: approved device serial prefixes (empty: any well-formed prefix).
    #[serde(default)]
    pub approved_prefixes: Vec<String>,
}

impl ProfileConfig {
    fn empty(validity_years: u32, key_types: &[&str]) -> Self {
        Self {
            validity_years,
            key_types: key_types.iter().map(|s| s.to_string()).collect(),
            extended_key_usage: Vec::new(),
            policy_oid: None,
            cps_uri: None,
            user_notice: None,
            crl_url: None,
            ca_issuers_url: None,
            ocsp_url: None,
            approved_prefixes: Vec::new(),
        }
    }

    /// Root CA: 25 years \[assumption\].
    pub fn root_ca_defaults() -> Self {
        Self::empty(25, &["rsa2048", "rsa3072", "rsa4096", "p256", "p384"])
    }

    /// Mali Mühür issuing CA: 12 years \[assumption\], long enough for the
    /// subscriber certificates it signs near the end of its issuing period;
    /// the Mali Mühür policy, and a CRL DP and caIssuers pointing at the
    /// root, so the root's CRL can revoke it.
    pub fn issuing_ca_defaults() -> Self {
        Self {
            policy_oid: Some(MALI_MUHUR_POLICY_OID.into()),
            cps_uri: Some(KAMU_SM_CPS_URI.into()),
            crl_url: Some(ROOT_CRL_URL.into()),
            ca_issuers_url: Some(ROOT_CA_ISSUERS_URL.into()),
            ..Self::empty(12, &["rsa2048", "rsa3072", "rsa4096", "p256", "p384"])
        }
    }

    /// ÖKC issuing CA: as the Mali Mühür one, with the ÖKC policy.
    pub fn okc_issuing_ca_defaults() -> Self {
        Self {
            policy_oid: Some(OKC_POLICY_OID.into()),
            ..Self::issuing_ca_defaults()
        }
    }

    /// Mali Mühür: the confirmed Kamu SM profile (domain.md §3), Sürüm 1 URLs.
    pub fn mali_muhur_defaults() -> Self {
        Self {
            extended_key_usage: vec![MALI_MUHUR_EKU_OID.into()],
            policy_oid: Some(MALI_MUHUR_POLICY_OID.into()),
            cps_uri: Some(KAMU_SM_CPS_URI.into()),
            user_notice: Some(KAMU_SM_USER_NOTICE.into()),
            crl_url: Some("http://depo.kamusm.gov.tr/kurumsal/mmeshs-s1.crl".into()),
            ca_issuers_url: Some("http://depo.kamusm.gov.tr/kurumsal/mmeshs-s1.crt".into()),
            ocsp_url: Some("http://cisdupmms1.kurumsal.kamusm.gov.tr".into()),
            ..Self::empty(3, &["rsa2048", "p384"])
        }
    }

    /// ÖKC device [assumption: no public profile exists]: 5 years, an ÖKC
    /// policy of its own with Kamu SM's CPS, the ÖKC issuing CA's CRL and
    /// caIssuers (a relying party must be able to learn that a device is
    /// revoked); no OCSP responder by default.
    pub fn okc_device_defaults() -> Self {
        Self {
            extended_key_usage: vec!["1.3.6.1.5.5.7.3.1".into(), "1.3.6.1.5.5.7.3.2".into()],
            policy_oid: Some(OKC_POLICY_OID.into()),
            cps_uri: Some(KAMU_SM_CPS_URI.into()),
            crl_url: Some(OKC_CRL_URL.into()),
            ca_issuers_url: Some(OKC_CA_ISSUERS_URL.into()),
            ..Self::empty(5, &["p256", "p384", "rsa2048"])
        }
    }
}

impl CaConfig {
    /// The shipped defaults.
    pub fn kamu_sm_defaults() -> Self {
        Self {
            ca: CaFiles::default(),
            okc_ca: Some(IssuingCaFiles::okc_defaults()),
            root_ca: ProfileConfig::root_ca_defaults(),
            issuing_ca: ProfileConfig::issuing_ca_defaults(),
            okc_issuing_ca: Some(ProfileConfig::okc_issuing_ca_defaults()),
            mali_muhur: ProfileConfig::mali_muhur_defaults(),
            okc_device: ProfileConfig::okc_device_defaults(),
        }
    }

    /// The ÖKC issuing CA certificate's profile section: `[okc_issuing_ca]`,
    /// else `[issuing_ca]` asserting the ÖKC device policy — so a
    /// configuration written for one issuing CA (its validity within the
    /// root's, its URLs) serves the second one without an edit.
    pub fn okc_issuing_ca(&self) -> ProfileConfig {
        match &self.okc_issuing_ca {
            Some(section) => section.clone(),
            None => ProfileConfig {
                policy_oid: self.okc_device.policy_oid.clone(),
                cps_uri: self.okc_device.cps_uri.clone(),
                user_notice: None,
                ..self.issuing_ca.clone()
            },
        }
    }

    /// Reads a configuration file.
    pub fn load(path: &Path) -> Result<Self, ProfileError> {
        let text = crate::input::read_text_file(path).map_err(|e| match e {
            crate::input::InputError::Unreadable { reason, .. } => ProfileError::Config {
                path: path.display().to_string(),
                reason,
            },
            too_large => ProfileError::Input(too_large),
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Reads a configuration from TOML text. `origin` names the text in
    /// errors (the file's path).
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ProfileError> {
        toml::from_str(text).map_err(|e| ProfileError::Config {
            path: origin.to_owned(),
            reason: e.to_string(),
        })
    }

    /// The configuration as commented TOML.
    pub fn to_toml(&self) -> String {
        // Serialising plain strings, vectors and options cannot fail.
        let body = toml::to_string_pretty(self).unwrap_or_default();
        format!(
            "# certmint CA configuration. Paths are relative to this file's folder.\n\
             # Each profile section is used whole: edit values, keep every field.\n\n{body}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml() {
        let config = CaConfig::kamu_sm_defaults();
        let parsed: CaConfig = toml::from_str(&config.to_toml()).unwrap();
        assert_eq!(parsed, config);
    }

    #[test]
    fn missing_profile_sections_take_the_defaults() {
        let parsed: CaConfig = toml::from_str(
            "[ca]\nissuing_certificate='a.pem'\nissuing_key='k.pem'\nroot_certificate='r.pem'\n",
        )
        .unwrap();
        assert_eq!(parsed.mali_muhur, ProfileConfig::mali_muhur_defaults());
    }

    #[test]
    fn a_configuration_with_one_issuing_ca_has_no_okc_ca_and_derives_its_profile() {
        let parsed: CaConfig = toml::from_str(
            "[ca]\nissuing_certificate='a.pem'\nissuing_key='k.pem'\nroot_certificate='r.pem'\n",
        )
        .unwrap();
        assert_eq!(parsed.okc_ca, None);
        let okc_issuing = parsed.okc_issuing_ca();
        assert_eq!(okc_issuing.policy_oid.as_deref(), Some(OKC_POLICY_OID));
        assert_eq!(okc_issuing.validity_years, parsed.issuing_ca.validity_years);
        assert_eq!(okc_issuing.crl_url.as_deref(), Some(ROOT_CRL_URL));
        // An [okc_issuing_ca] section given is used as it is.
        let mut config = CaConfig::kamu_sm_defaults();
        let mut section = ProfileConfig::okc_issuing_ca_defaults();
        section.validity_years = 7;
        config.okc_issuing_ca = Some(section.clone());
        assert_eq!(config.okc_issuing_ca(), section);
    }

    #[test]
    fn the_okc_defaults_differ_from_mali_muhur_where_they_must() {
        let okc = ProfileConfig::okc_device_defaults();
        let mali_muhur = ProfileConfig::mali_muhur_defaults();
        assert_ne!(okc.policy_oid, mali_muhur.policy_oid);
        assert_ne!(okc.crl_url, mali_muhur.crl_url);
        assert!(okc.ca_issuers_url.is_some() && okc.ocsp_url.is_none());
        let issuing = ProfileConfig::issuing_ca_defaults();
        assert_eq!(issuing.crl_url.as_deref(), Some(ROOT_CRL_URL));
        assert_eq!(
            ProfileConfig::okc_issuing_ca_defaults().crl_url,
            issuing.crl_url
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = toml::from_str::<CaConfig>(
            "[ca]\nissuing_certificate='a.pem'\nissuing_key='k.pem'\nroot_certificate='r.pem'\ncolour='red'\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }
}
