//! The manufacturer register: the ÖKC manufacturers the CA may certify
//! devices for, each registered once with what the seed documents require
//! before any order of theirs is processed — the GİB model approval, the
//! device-serial prefixes it covers and, for software certificates, the date
//! of the passed secure-area audit.
//!
//! The policy lives here: what a valid entry is, what an order must agree
//! with, and how a change is described for the audit log. The journal only
//! stores entries ([`crate::journal::Journal::register_manufacturer`] and its
//! neighbours).

use serde::Serialize;

use crate::error::ErrorKind;
use crate::ids::{IdError, PrefixTable};
use crate::journal::{Journal, JournalError};
use crate::order::model::Target;
use crate::profile::{Profile, ProfileError};
use crate::signer::KeyType;

/// The longest GİB model-approval reference accepted, in characters.
pub const MAX_MODEL_APPROVAL_CHARS: usize = 64;

/// A registered ÖKC manufacturer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manufacturer {
    /// Its VKN (the register's key; validated when registered).
    pub vkn: String,
    /// Its name, as the certificates carry it (organizationName).
    pub name: String,
    /// The device-serial prefixes its model approval covers (at least one).
    pub prefixes: Vec<String>,
    /// GİB's model-approval reference for its devices.
    pub model_approval: String,
    /// The day its secure-area audit was passed (`YYYY-MM-DD`); required
    /// for orders of software (PKCS#12) certificates.
    pub secure_area_audit: Option<String>,
}

/// Why a register entry or an order was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManufacturerError {
    /// No manufacturer of that VKN is registered.
    #[error("manufacturer VKN {vkn} is not registered; register it first with `certmint manufacturer register --vkn {vkn} --name … --prefixes … --model-approval …`")]
    NotRegistered {
        /// The VKN.
        vkn: String,
    },
    /// The VKN is registered already (a change is `manufacturer change`).
    #[error("manufacturer VKN {vkn} is registered already (as {name}); change its entry with `certmint manufacturer change --vkn {vkn}`")]
    AlreadyRegistered {
        /// The VKN.
        vkn: String,
        /// The registered name.
        name: String,
    },
    /// A field of an entry is not valid.
    #[error("{field} {value}: {reason}")]
    BadField {
        /// The option that gave it.
        field: &'static str,
        /// The value, quoted and escaped.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// An order does not agree with the register or the CA configuration.
    #[error("order refused: {0}")]
    OrderRefused(String),
    /// `manufacturer change` with nothing to change.
    #[error("nothing to change: give at least one of --name, --prefixes, --model-approval, --secure-area-audit")]
    NothingToChange,
}

impl ManufacturerError {
    /// What kind of failure this is (see [`crate::error`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            ManufacturerError::NotRegistered { .. } => ErrorKind::NotFound,
            ManufacturerError::AlreadyRegistered { .. } => ErrorKind::Conflict,
            ManufacturerError::NothingToChange => ErrorKind::Usage,
            ManufacturerError::BadField { .. } | ManufacturerError::OrderRefused(_) => {
                ErrorKind::InvalidInput
            }
        }
    }
}

fn bad(field: &'static str, value: &str, reason: impl Into<String>) -> ManufacturerError {
    ManufacturerError::BadField {
        field,
        value: crate::text::quoted(value),
        reason: reason.into(),
    }
}

/// A manufacturer's name, checked as the certificates will check it.
pub fn parse_name(name: &str) -> Result<String, ManufacturerError> {
    crate::profile::plain_name("manufacturer", name).map_err(|e| match e {
        ProfileError::BadName { reason, .. } => bad("--name", name, reason),
        other => bad("--name", name, other.to_string()),
    })
}

/// Approved prefixes: at least one, each 2–3 capital letters; returned
/// sorted and without repeats.
pub fn parse_prefixes(prefixes: &[String]) -> Result<Vec<String>, ManufacturerError> {
    if prefixes.is_empty() {
        return Err(bad(
            "--prefixes",
            "",
            "a manufacturer needs at least one approved prefix",
        ));
    }
    let table = PrefixTable::new(prefixes).map_err(|e| match e {
        IdError::BadPrefix { value } => bad("--prefixes", &value, "must be 2-3 capital letters"),
        other => bad("--prefixes", &prefixes.join(","), other.to_string()),
    })?;
    Ok(table.iter().map(str::to_owned).collect())
}

/// A GİB model-approval reference: 1 to [`MAX_MODEL_APPROVAL_CHARS`]
/// printable characters.
pub fn parse_model_approval(reference: &str) -> Result<String, ManufacturerError> {
    let trimmed = reference.trim();
    if trimmed.is_empty() {
        return Err(bad(
            "--model-approval",
            reference,
            "is empty: give GİB's model-approval reference",
        ));
    }
    if trimmed.chars().any(crate::text::is_forbidden) {
        return Err(bad(
            "--model-approval",
            reference,
            "contains control or invisible characters",
        ));
    }
    if trimmed.chars().count() > MAX_MODEL_APPROVAL_CHARS {
        return Err(bad(
            "--model-approval",
            reference,
            format!("is longer than {MAX_MODEL_APPROVAL_CHARS} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// The day a secure-area audit was passed: a calendar date `YYYY-MM-DD`,
/// not after `today` (an audit not yet passed is not on record).
pub fn parse_audit_date(text: &str, today: time::Date) -> Result<String, ManufacturerError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(text.trim(), &format)
        .map_err(|_| bad("--secure-area-audit", text, "is not a date YYYY-MM-DD"))?;
    if day > today {
        return Err(bad(
            "--secure-area-audit",
            text,
            format!("is after today ({today}): record an audit once it is passed"),
        ));
    }
    Ok(day.to_string())
}

/// What `manufacturer change` changes: `None` keeps the registered value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManufacturerChange {
    /// A new name.
    pub name: Option<String>,
    /// New approved prefixes (they replace the registered ones).
    pub prefixes: Option<Vec<String>>,
    /// A new model-approval reference.
    pub model_approval: Option<String>,
    /// A new secure-area audit date.
    pub secure_area_audit: Option<String>,
}

impl Manufacturer {
    /// The entry after `change`, every given value checked; refuses a
    /// change that changes nothing.
    pub fn changed(
        &self,
        change: &ManufacturerChange,
        today: time::Date,
    ) -> Result<Manufacturer, ManufacturerError> {
        let mut after = self.clone();
        if let Some(name) = &change.name {
            after.name = parse_name(name)?;
        }
        if let Some(prefixes) = &change.prefixes {
            after.prefixes = parse_prefixes(prefixes)?;
        }
        if let Some(reference) = &change.model_approval {
            after.model_approval = parse_model_approval(reference)?;
        }
        if let Some(day) = &change.secure_area_audit {
            after.secure_area_audit = Some(parse_audit_date(day, today)?);
        }
        if &after == self {
            return Err(ManufacturerError::NothingToChange);
        }
        Ok(after)
    }

    /// The audit record's account of a change from `self` to `after`:
    /// each changed field with its old and new value.
    pub fn describe_change(&self, after: &Manufacturer) -> String {
        let mut parts = Vec::new();
        let mut field = |name: &str, old: String, new: String| {
            if old != new {
                parts.push(format!("{name}: {old:?} -> {new:?}"));
            }
        };
        field("name", self.name.clone(), after.name.clone());
        field(
            "prefixes",
            self.prefixes.join(","),
            after.prefixes.join(","),
        );
        field(
            "model approval",
            self.model_approval.clone(),
            after.model_approval.clone(),
        );
        field(
            "secure-area audit",
            self.secure_area_audit.clone().unwrap_or_default(),
            after.secure_area_audit.clone().unwrap_or_default(),
        );
        parts.join("; ")
    }

    /// The audit record's account of a new entry.
    pub fn describe(&self) -> String {
        format!(
            "{:?}, prefixes {}, model approval {:?}, secure-area audit {}",
            self.name,
            self.prefixes.join(","),
            self.model_approval,
            self.secure_area_audit.as_deref().unwrap_or("none")
        )
    }

    /// Checks an ÖKC order against this entry and returns the prefixes the
    /// order is for: `name` (when given) must be the registered name,
    /// `prefixes` a subset of the registered ones (empty: all of them), and
    /// a soft order needs the secure-area audit on record.
    pub fn check_order(
        &self,
        name: Option<&str>,
        prefixes: &[String],
        target: Target,
    ) -> Result<Vec<String>, ManufacturerError> {
        let refuse = |reason: String| Err(ManufacturerError::OrderRefused(reason));
        if let Some(name) = name {
            if name.trim() != self.name {
                return refuse(format!(
                    "manufacturer VKN {} is registered as {:?}, not {}; leave out --manufacturer, \
                     or change the register with `certmint manufacturer change`",
                    self.vkn,
                    self.name,
                    crate::text::quoted(name)
                ));
            }
        }
        let prefixes = if prefixes.is_empty() {
            self.prefixes.clone()
        } else {
            parse_prefixes(prefixes)?
        };
        let outside: Vec<&str> = prefixes
            .iter()
            .map(String::as_str)
            .filter(|p| !self.prefixes.iter().any(|r| r == p))
            .collect();
        if !outside.is_empty() {
            return refuse(format!(
                "prefix(es) {} are not approved for manufacturer VKN {} (registered: {})",
                outside.join(","),
                self.vkn,
                self.prefixes.join(",")
            ));
        }
        if target == Target::Soft && self.secure_area_audit.is_none() {
            return refuse(format!(
                "soft (PKCS#12) certificates need the manufacturer's passed secure-area audit on record; \
                 record it with `certmint manufacturer change --vkn {} --secure-area-audit YYYY-MM-DD`, \
                 or order --target hsm or card",
                self.vkn
            ));
        }
        Ok(prefixes)
    }
}

/// What an ÖKC order asks for, as checked at import by [`check_okc_order`].
#[derive(Debug, Clone, Copy)]
pub struct OkcOrderTerms<'a> {
    /// The manufacturer's VKN (validated).
    pub vkn: &'a str,
    /// The manufacturer's name, when the order gives one.
    pub name: Option<&'a str>,
    /// The order's prefixes; empty for all the registered ones.
    pub prefixes: &'a [String],
    /// Where the keys are made.
    pub target: Target,
    /// The key type.
    pub key_type: KeyType,
}

/// Checks an ÖKC order before anything of it is journalled: its
/// manufacturer must be registered in `journal`, the order must agree with
/// the entry ([`Manufacturer::check_order`]) and with the CA configuration's
/// `profile` ([`check_against_profile`]). Returns the registered entry and
/// the order's prefixes.
pub fn check_okc_order<J: Journal + ?Sized>(
    journal: &J,
    terms: &OkcOrderTerms<'_>,
    profile: &Profile,
) -> Result<(Manufacturer, Vec<String>), JournalError> {
    let registered =
        journal
            .manufacturer(terms.vkn)?
            .ok_or_else(|| ManufacturerError::NotRegistered {
                vkn: terms.vkn.to_owned(),
            })?;
    let prefixes = registered.check_order(terms.name, terms.prefixes, terms.target)?;
    check_against_profile(profile, &prefixes, terms.key_type)?;
    Ok((registered, prefixes))
}

/// Checks an order's prefixes and key type against the CA configuration's
/// profile, as production will: a prefix its `approved_prefixes` do not
/// approve (when it lists any) and a key type it does not accept are
/// refused now, so that no order is journalled that production must refuse.
pub fn check_against_profile(
    profile: &Profile,
    prefixes: &[String],
    key_type: KeyType,
) -> Result<(), ManufacturerError> {
    let refused: Vec<&str> = prefixes
        .iter()
        .map(String::as_str)
        .filter(|p| !profile.approved_prefixes.allows(p))
        .collect();
    if !refused.is_empty() {
        return Err(ManufacturerError::OrderRefused(format!(
            "prefix(es) {} are not among the CA configuration's approved prefixes ({}) of profile {}",
            refused.join(","),
            profile.approved_prefixes.iter().collect::<Vec<_>>().join(","),
            profile.name
        )));
    }
    if !profile.key_types.contains(&key_type) {
        return Err(ManufacturerError::OrderRefused(format!(
            "key type {key_type} is not accepted by the CA configuration's profile {} (it accepts {})",
            profile.name,
            profile.key_types_text()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(audit: Option<&str>) -> Manufacturer {
        Manufacturer {
            vkn: "4540536920".into(),
            name: "Örnek Yazarkasa A.Ş.".into(),
            prefixes: vec!["FU".into(), "JI".into()],
            model_approval: "GIB-ONAY-2026/17".into(),
            secure_area_audit: audit.map(str::to_owned),
        }
    }

    fn today() -> time::Date {
        time::macros::date!(2026 - 12 - 05)
    }

    #[test]
    fn an_order_takes_a_subset_of_the_registered_prefixes_or_all_of_them() {
        let m = entry(Some("2026-01-10"));
        assert_eq!(
            m.check_order(None, &[], Target::Soft).unwrap(),
            vec!["FU", "JI"]
        );
        assert_eq!(
            m.check_order(Some(" Örnek Yazarkasa A.Ş."), &["JI".into()], Target::Hsm)
                .unwrap(),
            vec!["JI"]
        );
        let outside = m
            .check_order(None, &["FU".into(), "ZZ".into()], Target::Hsm)
            .unwrap_err();
        assert!(outside.to_string().contains("ZZ"), "{outside}");
        assert_eq!(outside.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn another_name_and_soft_without_an_audit_are_refused() {
        let m = entry(None);
        let name = m
            .check_order(Some("Başka A.Ş."), &[], Target::Hsm)
            .unwrap_err();
        assert!(name.to_string().contains("registered as"), "{name}");
        let soft = m.check_order(None, &[], Target::Soft).unwrap_err();
        assert!(soft.to_string().contains("secure-area audit"), "{soft}");
        assert!(m.check_order(None, &[], Target::Card).is_ok());
    }

    #[test]
    fn a_change_names_old_and_new_values_and_an_empty_change_is_refused() {
        let m = entry(None);
        let after = m
            .changed(
                &ManufacturerChange {
                    prefixes: Some(vec!["JI".into(), "FU".into(), "AB".into()]),
                    secure_area_audit: Some("2026-11-30".into()),
                    ..Default::default()
                },
                today(),
            )
            .unwrap();
        assert_eq!(after.prefixes, vec!["AB", "FU", "JI"]);
        let text = m.describe_change(&after);
        assert!(
            text.contains(r#"prefixes: "FU,JI" -> "AB,FU,JI""#),
            "{text}"
        );
        assert!(
            text.contains(r#"secure-area audit: "" -> "2026-11-30""#),
            "{text}"
        );
        assert!(!text.contains("name"), "{text}");
        let same = m.changed(
            &ManufacturerChange {
                prefixes: Some(vec!["JI".into(), "FU".into()]),
                ..Default::default()
            },
            today(),
        );
        assert_eq!(same.unwrap_err(), ManufacturerError::NothingToChange);
    }

    #[test]
    fn fields_are_bounded_and_an_audit_date_is_a_past_day() {
        assert!(parse_prefixes(&[]).is_err());
        assert!(parse_prefixes(&["fu".into()]).is_err());
        assert!(parse_model_approval("").is_err());
        assert!(parse_model_approval(&"x".repeat(MAX_MODEL_APPROVAL_CHARS + 1)).is_err());
        assert!(parse_model_approval("a\u{1b}[2J").is_err());
        assert_eq!(
            parse_audit_date("2026-12-05", today()).unwrap(),
            "2026-12-05"
        );
        assert!(parse_audit_date("2026-12-06", today()).is_err());
        assert!(parse_audit_date("2026-02-30", today()).is_err());
        assert!(parse_audit_date("05.12.2026", today()).is_err());
    }
}
