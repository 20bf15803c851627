//! What a revocation is: the certificate's serial, when it was revoked, why
//! (an RFC 5280 §5.3.1 reason code) and, where known, since when its key is
//! suspect (the invalidity date, §5.3.2). The journal records these; the
//! CRL lists them.
//!
//! Revocation is irreversible: `certificateHold` (6) and `removeFromCRL` (8)
//! are not offered, so a certificate once listed stays listed.

pub mod revoke;

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

/// Why a certificate is revoked: the RFC 5280 `CRLReason` codes certmint
/// offers (every code but `certificateHold` and `removeFromCRL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationReason {
    /// 0: no reason given. RFC 5280 asks that a CRL leave this code out of
    /// the entry; the CRL writer does.
    Unspecified,
    /// 1: the subject's private key is known or suspected to be compromised.
    KeyCompromise,
    /// 2: a CA's private key is known or suspected to be compromised.
    CaCompromise,
    /// 3: the subject's name or other information changed.
    AffiliationChanged,
    /// 4: the certificate was replaced by another. certmint revokes with
    /// this reason on its own whenever a certificate that may have been
    /// signed will never be the device's certificate (a voided intent, a
    /// card pulled after its certificate was written, a reissue).
    Superseded,
    /// 5: the certificate is no longer needed (a device withdrawn, a
    /// company closed).
    CessationOfOperation,
    /// 9: a privilege in the certificate was withdrawn.
    PrivilegeWithdrawn,
    /// 10: an attribute authority's key is compromised.
    AaCompromise,
}

impl RevocationReason {
    /// Every reason, in code order.
    pub const ALL: [RevocationReason; 8] = [
        RevocationReason::Unspecified,
        RevocationReason::KeyCompromise,
        RevocationReason::CaCompromise,
        RevocationReason::AffiliationChanged,
        RevocationReason::Superseded,
        RevocationReason::CessationOfOperation,
        RevocationReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise,
    ];

    /// The RFC 5280 `CRLReason` code.
    pub fn code(self) -> u8 {
        match self {
            RevocationReason::Unspecified => 0,
            RevocationReason::KeyCompromise => 1,
            RevocationReason::CaCompromise => 2,
            RevocationReason::AffiliationChanged => 3,
            RevocationReason::Superseded => 4,
            RevocationReason::CessationOfOperation => 5,
            RevocationReason::PrivilegeWithdrawn => 9,
            RevocationReason::AaCompromise => 10,
        }
    }

    /// The reason with this code; `None` for a code certmint does not
    /// offer (6, 8) or that does not exist.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.code() == code)
    }

    /// The name certmint uses on the command line, in the journal and in
    /// JSON: RFC 5280's name in kebab case (`key-compromise`).
    pub fn name(self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "key-compromise",
            RevocationReason::CaCompromise => "ca-compromise",
            RevocationReason::AffiliationChanged => "affiliation-changed",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessation-of-operation",
            RevocationReason::PrivilegeWithdrawn => "privilege-withdrawn",
            RevocationReason::AaCompromise => "aa-compromise",
        }
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A reason name that is not one certmint offers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{given:?} is not a revocation reason certmint offers; use one of: unspecified, \
     key-compromise, ca-compromise, affiliation-changed, superseded, \
     cessation-of-operation, privilege-withdrawn, aa-compromise (revocation is \
     irreversible: certificate-hold is not offered)"
)]
pub struct UnknownReason {
    /// What was given, cut to a bounded length.
    pub given: String,
}

impl FromStr for RevocationReason {
    type Err = UnknownReason;

    fn from_str(text: &str) -> Result<Self, UnknownReason> {
        Self::ALL
            .into_iter()
            .find(|reason| reason.name() == text)
            .ok_or_else(|| UnknownReason {
                given: text.chars().take(64).collect(),
            })
    }
}

impl serde::Serialize for RevocationReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// One revoked certificate as a CRL lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedEntry {
    /// The certificate's serial number: the big-endian unsigned integer
    /// as its DER INTEGER carries it (a leading zero byte only where the
    /// top bit would otherwise make it negative).
    pub serial: Vec<u8>,
    /// When the CA recorded the revocation (the entry's revocationDate).
    pub revoked_at: OffsetDateTime,
    /// Why.
    pub reason: RevocationReason,
    /// Since when the key is known or suspected to be unfit, if known.
    pub invalidity_date: Option<OffsetDateTime>,
}

/// Refuses to sign with an issuing CA whose own certificate is revoked on
/// record (`certmint revoke --ca-certificate`): a certificate it signed
/// after that would chain to a revoked CA. Its revocation is keyed by its
/// issuer, the root, whose key identifier is the certificate's
/// authorityKeyIdentifier; the root's revocations are few (issuing CA
/// certificates only), so they are read through.
pub fn check_issuing_ca_in_force(
    journal: &dyn crate::journal::Journal,
    ca_certificate_der: &[u8],
) -> Result<(), crate::journal::JournalError> {
    use der::Decode;
    use x509_cert::ext::pkix::AuthorityKeyIdentifier;
    let Ok(certificate) = x509_cert::Certificate::from_der(ca_certificate_der) else {
        // The CA certificate was parsed when the CA was opened.
        return Ok(());
    };
    let tbs = certificate.tbs_certificate();
    let Some(root_key_id) = tbs
        .get_extension::<AuthorityKeyIdentifier>()
        .ok()
        .flatten()
        .and_then(|(_, aki)| aki.key_identifier)
    else {
        return Ok(());
    };
    let serial = tbs.serial_number().as_bytes();
    let mut revoked = None;
    journal.revoked_entries(root_key_id.as_bytes(), &mut |entry| {
        if entry.serial == serial {
            revoked = Some(entry);
        }
        Ok(())
    })?;
    match revoked {
        None => Ok(()),
        Some(entry) => Err(crate::journal::JournalError::IssuingCaRevoked {
            subject: tbs.subject().to_string(),
            serial: crate::pem::hex(serial),
            revoked_at: crate::timestamp::format(entry.revoked_at),
            reason: entry.reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_carry_their_rfc_5280_codes() {
        let codes: Vec<u8> = RevocationReason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 9, 10]);
        for reason in RevocationReason::ALL {
            assert_eq!(RevocationReason::from_code(reason.code()), Some(reason));
            assert_eq!(reason.name().parse::<RevocationReason>(), Ok(reason));
        }
    }

    #[test]
    fn hold_and_remove_from_crl_are_not_offered() {
        assert_eq!(RevocationReason::from_code(6), None);
        assert_eq!(RevocationReason::from_code(8), None);
        assert_eq!(RevocationReason::from_code(7), None);
        let error = "certificate-hold".parse::<RevocationReason>().unwrap_err();
        assert!(error.to_string().contains("irreversible"), "{error}");
    }
}
