//! The proof of a key and certificate in a token: read back and test-signed,
//! for every seal the production pipeline stores in a company's token
//! ([`crate::production::key_target::hsm::HsmTarget::proving`]).

use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use der::{Decode, Encode};

use super::keys;
use super::signer::Pkcs11Signer;
use super::token::Token;
use super::uri::Pkcs11Uri;
use super::Pkcs11Error;
use crate::signer::{verify_signature, KeyType, Signer};

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
