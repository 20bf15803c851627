//! `hsm provision`: a Mali Mühür key pair generated inside the customer's
//! token, its certificate signed by the CA and imported beside it, then
//! everything read back and proved.
//!
//! The work is done under a temporary label (`{label}.certmint-new`) and only
//! renamed to the final label once proved, so an interrupted run never leaves
//! a half-provisioned key under the customer's label; the next run removes
//! such leftovers (they were never delivered) and says so.

use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use der::{DateTime, Decode, Encode};
use serde::Serialize;

use super::keys::{self, generate_key_pair, import_certificate, objects_labelled};
use super::signer::Pkcs11Signer;
use super::token::Token;
use super::uri::Pkcs11Uri;
use super::Pkcs11Error;
use crate::issue::{CertificateAuthority, IssueError};
use crate::profile::{Profile, Subject};
use crate::signer::{verify_signature, KeyType, Signer};

/// Why provisioning failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProvisionError {
    /// A token problem.
    #[error(transparent)]
    Pkcs11(#[from] Pkcs11Error),
    /// The CA refused or failed to issue; the generated key was removed.
    #[error("{0}; the key generated for it was removed from the token")]
    Issue(#[source] IssueError),
    /// The key type is not accepted by the profile (nothing was written).
    #[error(transparent)]
    Refused(IssueError),
}

impl ProvisionError {
    /// What kind of failure this is: a wrapped error's own kind.
    pub fn kind(&self) -> crate::error::ErrorKind {
        match self {
            ProvisionError::Pkcs11(e) => e.kind(),
            ProvisionError::Issue(e) | ProvisionError::Refused(e) => e.kind(),
        }
    }
}

/// What one provisioning run asks for.
#[derive(Debug, Clone)]
pub struct ProvisionRequest {
    /// The certificate profile (Mali Mühür).
    pub profile: Profile,
    /// The certificate's subject.
    pub subject: Subject,
    /// The key to generate.
    pub key_type: KeyType,
    /// The final label, e.g. `4540536920SIGN0`.
    pub label: String,
    /// Replace objects already carrying the label.
    pub replace: bool,
    /// Start of validity.
    pub not_before: DateTime,
}

/// What was written to the token, proved.
#[derive(Debug, Clone, Serialize)]
pub struct ProvisionReport {
    /// The token label.
    pub token: String,
    /// The objects' label.
    pub label: String,
    /// Their CKA_ID in hex (= the certificate's subjectKeyIdentifier).
    pub id: String,
    /// The certificate's serial number in hex.
    pub serial: String,
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// Leftover objects of an interrupted earlier run that were removed.
    pub removed_leftovers: u64,
    /// Objects replaced because `replace` was asked for.
    pub replaced_objects: usize,
    /// The checks that passed after writing.
    pub checks: Vec<String>,
}

fn temporary_label(label: &str) -> String {
    format!("{label}.certmint-new")
}

fn classes(
    session: &Session,
    objects: &[ObjectHandle],
) -> Result<Vec<ObjectClass>, cryptoki::error::Error> {
    let mut out = Vec::new();
    for &o in objects {
        for attr in session.get_attributes(o, &[AttributeType::Class])? {
            if let Attribute::Class(c) = attr {
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// Provisions one subscriber into `token`, with `ca` signing.
pub fn provision(
    token: &std::sync::Arc<Token>,
    ca: &CertificateAuthority,
    request: &ProvisionRequest,
) -> Result<ProvisionReport, ProvisionError> {
    let profile = &request.profile;
    if !profile.key_types.contains(&request.key_type) {
        return Err(ProvisionError::Refused(IssueError::KeyNotAccepted {
            key_type: request.key_type,
            profile: profile.name,
            accepted: profile.key_types_text(),
        }));
    }
    let name = token.label().to_owned();
    let temporary = temporary_label(&request.label);

    let existing = token.with_session(|s| objects_labelled(s, &request.label))?;
    if !existing.is_empty() && !request.replace {
        return Err(Pkcs11Error::LabelExists {
            token: name,
            label: request.label.clone(),
        }
        .into());
    }
    let leftovers =
        keys::destroy_objects(token, &[Attribute::Label(temporary.as_bytes().to_vec())])?;

    let pair = generate_key_pair(token, request.key_type, &temporary, false)?;
    let remove_new = |extra: Option<ObjectHandle>| {
        let _ = token.with_session_changing_objects(|s| {
            for o in [Some(pair.private), Some(pair.public), extra]
                .into_iter()
                .flatten()
            {
                let _ = s.destroy_object(o);
            }
            Ok(())
        });
    };

    let certificate = match crate::issue::SubjectKey::checked(&pair.spki_der)
        .map_err(crate::issue::IssueError::from)
        .and_then(|key| ca.issue(profile, &request.subject, key, request.not_before))
    {
        Ok(c) => c,
        Err(e) => {
            remove_new(None);
            return Err(ProvisionError::Issue(e));
        }
    };
    let imported = token.with_session_changing_objects(|s| {
        import_certificate(s, &temporary, &pair.id, certificate.der())
    });
    let cert_object = match imported {
        Ok(o) => o,
        Err(e) => {
            remove_new(None);
            return Err(e.into());
        }
    };

    let checks = match prove(
        token,
        request.key_type,
        &pair,
        certificate.der(),
        &temporary,
    ) {
        Ok(checks) => checks,
        Err(e) => {
            remove_new(Some(cert_object));
            return Err(e.into());
        }
    };

    // Proved: replace the old objects if asked, then give the new ones their name.
    let replaced = token.with_session_changing_objects(|s| {
        let old = objects_labelled(s, &request.label)?;
        for &o in &old {
            s.destroy_object(o)?;
        }
        for o in [pair.private, pair.public, cert_object] {
            s.update_attributes(o, &[Attribute::Label(request.label.as_bytes().to_vec())])?;
        }
        Ok(old.len())
    })?;
    let final_classes = token
        .with_session(|s| {
            let objects = objects_labelled(s, &request.label)?;
            classes(s, &objects)
        })
        .map_err(|e| Pkcs11Error::Verification(format!("reading back {}: {e}", request.label)))?;
    let count = |c: ObjectClass| final_classes.iter().filter(|&&x| x == c).count();
    let layout = (
        count(ObjectClass::PRIVATE_KEY),
        count(ObjectClass::PUBLIC_KEY),
        count(ObjectClass::CERTIFICATE),
    );
    if layout != (1, 1, 1) || final_classes.len() != 3 {
        return Err(Pkcs11Error::Verification(format!(
            "label {} holds {} private, {} public, {} certificate objects ({} in all), expected one of each",
            request.label,
            layout.0,
            layout.1,
            layout.2,
            final_classes.len()
        ))
        .into());
    }
    Ok(ProvisionReport {
        token: token.label().to_owned(),
        label: request.label.clone(),
        id: crate::pem::hex(&pair.id),
        serial: certificate.serial_hex(),
        certificate_pem: certificate.to_pem(),
        removed_leftovers: leftovers,
        replaced_objects: replaced,
        checks,
    })
}

/// Reads everything back and proves it: key attributes (sensitive, never
/// extractable, its value unreadable), the certificate's key equals the
/// token's, the certificate object labelled `label` beside the key holds
/// exactly `certificate_der`, and a test signature by the key verifies
/// under the certificate. Returns the checks that passed.
pub fn prove(
    token: &std::sync::Arc<Token>,
    key_type: KeyType,
    pair: &keys::GeneratedKeyPair,
    certificate_der: &[u8],
    label: &str,
) -> Result<Vec<String>, Pkcs11Error> {
    let name = token.label().to_owned();
    let failed = |m: String| Pkcs11Error::Verification(m);
    let mut checks = Vec::new();

    let attrs = token.with_session(|s| {
        s.get_attributes(
            pair.private,
            &[
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
                AttributeType::Sign,
            ],
        )
    })?;
    let flag = |t: AttributeType| {
        attrs.iter().find_map(|a| match (a, t) {
            (Attribute::Token(v), AttributeType::Token)
            | (Attribute::Private(v), AttributeType::Private)
            | (Attribute::Sensitive(v), AttributeType::Sensitive)
            | (Attribute::Extractable(v), AttributeType::Extractable)
            | (Attribute::AlwaysSensitive(v), AttributeType::AlwaysSensitive)
            | (Attribute::NeverExtractable(v), AttributeType::NeverExtractable)
            | (Attribute::Sign(v), AttributeType::Sign) => Some(*v),
            _ => None,
        })
    };
    for (t, want) in [
        (AttributeType::Token, true),
        (AttributeType::Private, true),
        (AttributeType::Sensitive, true),
        (AttributeType::Extractable, false),
        (AttributeType::AlwaysSensitive, true),
        (AttributeType::NeverExtractable, true),
        (AttributeType::Sign, true),
    ] {
        if flag(t) != Some(want) {
            return Err(failed(format!(
                "private key attribute {t} is {:?}, expected {want}",
                flag(t)
            )));
        }
    }
    checks.push("private key: token, private, sensitive, never extractable, sign".to_owned());

    // The key value must not come out.
    let value =
        token.with_session(|s| Ok(s.get_attributes(pair.private, &[AttributeType::Value])))?;
    let leaked = matches!(&value, Ok(v) if v.iter().any(|a| matches!(a, Attribute::Value(bytes) if !bytes.is_empty())));
    if leaked {
        return Err(failed("the private key's value can be read".into()));
    }
    checks.push("private key value cannot be read".to_owned());

    let certificate =
        x509_cert::Certificate::from_der(certificate_der).map_err(|e| failed(e.to_string()))?;
    let cert_spki = certificate
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| failed(e.to_string()))?;
    let token_spki = token.with_session(|s| Ok(keys::public_key_spki(s, pair.public, &name)))??;
    if cert_spki != token_spki {
        return Err(failed(
            "the certificate's public key is not the token key's".into(),
        ));
    }
    checks.push("certificate public key = token public key".to_owned());

    let stored = token.with_session(|s| {
        let certs = s.find_objects(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Id(pair.id.clone()),
        ])?;
        let mut values = Vec::new();
        for c in certs {
            for a in s.get_attributes(c, &[AttributeType::Value])? {
                if let Attribute::Value(v) = a {
                    values.push(v);
                }
            }
        }
        Ok(values)
    })?;
    if stored != [certificate_der.to_vec()] {
        return Err(failed(
            "the certificate object on the token is not the issued certificate".into(),
        ));
    }
    checks.push("certificate object holds the issued certificate, same CKA_ID".to_owned());

    let key_uri = Pkcs11Uri {
        module_path: std::path::PathBuf::new(),
        token: Some(name.clone()),
        serial: None,
        object: Some(label.to_owned()),
        id: Some(pair.id.clone()),
        pin_source: None,
        token_match: Default::default(),
    };
    let signer = Pkcs11Signer::on_token(token.clone(), key_uri)?;
    let mut challenge = [0u8; 32];
    aws_lc_rs::rand::fill(&mut challenge).map_err(|e| failed(e.to_string()))?;
    let signature = signer.sign(&challenge).map_err(|e| failed(e.to_string()))?;
    verify_signature(
        &cert_spki,
        key_type.signature_algorithm(),
        &challenge,
        &signature,
    )
    .map_err(|e| failed(format!("test signature: {e}")))?;
    checks.push(format!(
        "test signature by the token key verifies under the certificate ({})",
        key_type.signature_algorithm()
    ));
    Ok(checks)
}
