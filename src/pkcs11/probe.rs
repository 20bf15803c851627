//! `hsm probe`: a preflight of a customer's token before an on-site session —
//! library and token facts, the mechanisms the requested key types need,
//! session limits, free memory, and which labels we would write already exist.

use cryptoki::mechanism::MechanismType;
use cryptoki::slot::Limit;
use serde::Serialize;

use super::keys::{generation_mechanism, objects_labelled};
use super::pin::PinSource;
use super::token::{find_token, Token};
use super::uri::Pkcs11Uri;
use super::Pkcs11Error;
use crate::signer::KeyType;

/// What the module says about itself.
#[derive(Debug, Clone, Serialize)]
pub struct LibraryFacts {
    /// The module path.
    pub path: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Description.
    pub description: String,
    /// Library version.
    pub version: String,
    /// Cryptoki version it implements.
    pub cryptoki_version: String,
}

/// What the token says about itself.
#[derive(Debug, Clone, Serialize)]
pub struct TokenFacts {
    /// Label.
    pub label: String,
    /// Manufacturer.
    pub manufacturer: String,
    /// Model.
    pub model: String,
    /// Serial number.
    pub serial: String,
    /// Sessions open now and the limit.
    pub sessions: SessionCount,
    /// Read-write sessions open now and the limit.
    pub rw_sessions: SessionCount,
    /// Public memory, in bytes.
    pub public_memory: Memory,
    /// Private memory, in bytes.
    pub private_memory: Memory,
    /// Whether the user PIN has had failed attempts.
    pub user_pin_count_low: bool,
    /// Whether the next wrong PIN locks it.
    pub user_pin_final_try: bool,
    /// Whether the user PIN is locked.
    pub user_pin_locked: bool,
    /// Whether the token is write-protected.
    pub write_protected: bool,
}

/// Whether the token can do what one key type needs.
#[derive(Debug, Clone, Serialize)]
pub struct MechanismCheck {
    /// The key type.
    pub key_type: String,
    /// The key generation mechanism and whether it is there (with its key-size range).
    pub generate: String,
    /// The signing mechanism certmint would use.
    pub sign: String,
    /// Whether both are available.
    pub ok: bool,
}

/// Whether a label we would write is free.
#[derive(Debug, Clone, Serialize)]
pub struct LabelCheck {
    /// The label.
    pub label: String,
    /// Objects already carrying it.
    pub existing_objects: usize,
}

/// The whole preflight.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeReport {
    /// The module.
    pub library: LibraryFacts,
    /// The token.
    pub token: TokenFacts,
    /// Mechanisms per requested key type.
    pub mechanisms: Vec<MechanismCheck>,
    /// Labels we would write (checked after login).
    pub labels: Vec<LabelCheck>,
    /// True when every mechanism is there, every label is free and the PIN is not locked.
    pub ready: bool,
}

/// Sessions as a token counts them: numbers, `null` where the token does
/// not say.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SessionCount {
    /// Open now.
    pub open: Option<u64>,
    /// The most the token allows; `null` when it has no limit or does not say.
    pub max: Option<u64>,
    /// Whether the token says it has no limit.
    pub unlimited: bool,
}

impl SessionCount {
    fn new(open: Option<u64>, max: Limit) -> Self {
        let (max, unlimited) = match max {
            Limit::Max(n) => (Some(n), false),
            Limit::Infinite => (None, true),
            Limit::Unavailable => (None, false),
        };
        Self {
            open,
            max,
            unlimited,
        }
    }
}

impl std::fmt::Display for SessionCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: Option<u64>| v.map_or("unknown".to_owned(), |v| v.to_string());
        let max = if self.unlimited {
            "no limit".to_owned()
        } else {
            show(self.max)
        };
        write!(f, "{} / {max}", show(self.open))
    }
}

/// A token's memory in bytes: `null` where the token does not say.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Memory {
    /// Free.
    pub free: Option<u64>,
    /// In all.
    pub total: Option<u64>,
}

impl std::fmt::Display for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: Option<u64>| v.map_or("unknown".to_owned(), |v| v.to_string());
        write!(f, "{} free of {}", show(self.free), show(self.total))
    }
}

fn memory(free: Option<usize>, total: Option<usize>) -> Memory {
    Memory {
        free: free.map(|v| v as u64),
        total: total.map(|v| v as u64),
    }
}

/// Probes the token the URI names. Labels are checked only when some are
/// given, and that needs a login (PIN from `pin_source`).
pub fn probe(
    uri: &Pkcs11Uri,
    key_types: &[KeyType],
    labels: &[String],
    pin_source: &PinSource,
) -> Result<ProbeReport, Pkcs11Error> {
    let found = find_token(uri)?;
    let call = |e: cryptoki::error::Error| Pkcs11Error::call(&found.label(), &e);
    let info = found.ctx.get_library_info().map_err(call)?;
    let library = LibraryFacts {
        path: super::token::module_to_load(&uri.module_path)?
            .display()
            .to_string(),
        manufacturer: info.manufacturer_id().trim().to_owned(),
        description: info.library_description().trim().to_owned(),
        version: info.library_version().to_string(),
        cryptoki_version: info.cryptoki_version().to_string(),
    };
    let t = &found.info;
    let token = TokenFacts {
        label: found.label(),
        manufacturer: t.manufacturer_id().trim().to_owned(),
        model: t.model().trim().to_owned(),
        serial: t.serial_number().trim().to_owned(),
        sessions: SessionCount::new(t.session_count(), t.max_session_count()),
        rw_sessions: SessionCount::new(t.rw_session_count(), t.max_rw_session_count()),
        public_memory: memory(t.free_public_memory(), t.total_public_memory()),
        private_memory: memory(t.free_private_memory(), t.total_private_memory()),
        user_pin_count_low: t.user_pin_count_low(),
        user_pin_final_try: t.user_pin_final_try(),
        user_pin_locked: t.user_pin_locked(),
        write_protected: t.write_protected(),
    };
    let available = found.ctx.get_mechanism_list(found.slot).map_err(call)?;
    let mut mechanisms = Vec::new();
    for &key_type in key_types {
        let (_, generation) = generation_mechanism(key_type);
        let generate = if available.contains(&generation) {
            match found.ctx.get_mechanism_info(found.slot, generation) {
                Ok(m) => format!(
                    "{generation} (key sizes {}-{})",
                    m.min_key_size(),
                    m.max_key_size()
                ),
                Err(_) => format!("{generation}"),
            }
        } else {
            format!("{generation} MISSING")
        };
        let candidates: &[MechanismType] = match key_type {
            KeyType::EcP256 => &[MechanismType::ECDSA_SHA256, MechanismType::ECDSA],
            KeyType::EcP384 => &[MechanismType::ECDSA_SHA384, MechanismType::ECDSA],
            KeyType::Rsa(_) => &[MechanismType::SHA256_RSA_PKCS, MechanismType::RSA_PKCS],
        };
        let sign = candidates.iter().find(|m| available.contains(m));
        mechanisms.push(MechanismCheck {
            key_type: key_type.to_string(),
            ok: available.contains(&generation) && sign.is_some(),
            generate,
            sign: match sign {
                Some(m) if *m == MechanismType::ECDSA || *m == MechanismType::RSA_PKCS => {
                    format!("{m} (hash in software)")
                }
                Some(m) => m.to_string(),
                None => format!("{} MISSING", candidates[0]),
            },
        });
    }
    let mut label_checks = Vec::new();
    if !labels.is_empty() {
        let token_session = Token::open(uri, pin_source, Some(1))?;
        for label in labels {
            let existing = token_session
                .with_session(|s| objects_labelled(s, label))?
                .len();
            label_checks.push(LabelCheck {
                label: label.clone(),
                existing_objects: existing,
            });
        }
    }
    let ready = mechanisms.iter().all(|m| m.ok)
        && label_checks.iter().all(|l| l.existing_objects == 0)
        && !token.user_pin_locked;
    Ok(ProbeReport {
        library,
        token,
        mechanisms,
        labels: label_checks,
        ready,
    })
}

impl ProbeReport {
    /// The report as text for an operator.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let l = &self.library;
        out += &format!(
            "Library:  {} — {} {} (Cryptoki {})\n          {}\n",
            l.manufacturer, l.description, l.version, l.cryptoki_version, l.path
        );
        let t = &self.token;
        out += &format!(
            "Token:    {:?}  {} {}  serial {}\n",
            t.label, t.manufacturer, t.model, t.serial
        );
        out += &format!("Sessions: {} (read-write {})\n", t.sessions, t.rw_sessions);
        out += &format!(
            "Memory:   public {}; private {}\n",
            t.public_memory, t.private_memory
        );
        let pin_state = if t.user_pin_locked {
            "LOCKED"
        } else if t.user_pin_final_try {
            "one try left"
        } else if t.user_pin_count_low {
            "failed attempts recorded"
        } else {
            "ok"
        };
        out += &format!(
            "User PIN: {pin_state}{}\n",
            if t.write_protected {
                "; token is WRITE-PROTECTED"
            } else {
                ""
            }
        );
        for m in &self.mechanisms {
            out += &format!(
                "{:8}  {}  generate {}; sign {}\n",
                m.key_type,
                if m.ok { "ok " } else { "NO " },
                m.generate,
                m.sign
            );
        }
        for l in &self.labels {
            out += &format!(
                "Label {:?}: {}\n",
                l.label,
                if l.existing_objects == 0 {
                    "free".to_owned()
                } else {
                    format!("TAKEN by {} object(s)", l.existing_objects)
                }
            );
        }
        out += if self.ready {
            "Ready for provisioning.\n"
        } else {
            "NOT ready: see the lines marked above.\n"
        };
        out
    }
}
