//! Objects on a token: keys found by label or id, public keys read back as
//! SubjectPublicKeyInfo, key pairs generated inside the token (never
//! extractable), and certificates imported beside their keys.

use const_oid::ObjectIdentifier;
use cryptoki::error::Error as CkError;
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{
    Attribute, AttributeType, CertificateType, KeyType as CkKeyType, ObjectClass, ObjectHandle,
};
use cryptoki::session::Session;
use der::asn1::OctetString;
use der::{Decode, Encode};
use spki::SubjectPublicKeyInfoOwned;

use super::token::Token;
use super::{ckr_name, Pkcs11Error};
use crate::signer::{spki_from_ec_point, spki_from_rsa_parts, KeyType};

/// The CKA_ID certmint gives a key: the SHA-1 of its public key bits, which
/// is also the certificate's subjectKeyIdentifier.
pub fn key_id(spki_der: &[u8]) -> Result<Vec<u8>, Pkcs11Error> {
    let spki = SubjectPublicKeyInfoOwned::from_der(spki_der).map_err(|e| Pkcs11Error::BadKey {
        token: String::new(),
        reason: e.to_string(),
    })?;
    Ok(crate::issue::tbs::key_identifier(&spki))
}

/// Builds the SubjectPublicKeyInfo of a public key object.
pub fn public_key_spki(
    session: &Session,
    public: ObjectHandle,
    token: &str,
) -> Result<Vec<u8>, Pkcs11Error> {
    let bad = |reason: String| Pkcs11Error::BadKey {
        token: token.to_owned(),
        reason,
    };
    let attrs = session
        .get_attributes(
            public,
            &[
                AttributeType::KeyType,
                AttributeType::EcParams,
                AttributeType::EcPoint,
                AttributeType::Modulus,
                AttributeType::PublicExponent,
            ],
        )
        .map_err(|e| Pkcs11Error::call(token, &e))?;
    let (mut key_type, mut params, mut point, mut modulus, mut exponent) =
        (None, None, None, None, None);
    for attr in attrs {
        match attr {
            Attribute::KeyType(k) => key_type = Some(k),
            Attribute::EcParams(p) => params = Some(p),
            Attribute::EcPoint(p) => point = Some(p),
            Attribute::Modulus(m) => modulus = Some(m),
            Attribute::PublicExponent(e) => exponent = Some(e),
            _ => {}
        }
    }
    let der = match key_type {
        Some(CkKeyType::EC) => {
            let params = params.ok_or_else(|| bad("EC public key without CKA_EC_PARAMS".into()))?;
            let curve: ObjectIdentifier = ObjectIdentifier::from_der(&params)
                .map_err(|_| bad("CKA_EC_PARAMS is not a named curve".into()))?;
            let point = point.ok_or_else(|| bad("EC public key without CKA_EC_POINT".into()))?;
            // The standard wraps the point in an OCTET STRING; some tokens do not.
            let point = match OctetString::from_der(&point) {
                Ok(octets) => octets.as_bytes().to_vec(),
                Err(_) => point,
            };
            spki_from_ec_point(curve, &point)
        }
        Some(CkKeyType::RSA) => {
            let modulus =
                modulus.ok_or_else(|| bad("RSA public key without CKA_MODULUS".into()))?;
            let exponent =
                exponent.ok_or_else(|| bad("RSA public key without CKA_PUBLIC_EXPONENT".into()))?;
            spki_from_rsa_parts(&modulus, &exponent)
        }
        other => return Err(bad(format!("key type {other:?} is neither RSA nor EC"))),
    };
    // The builders refuse what certmint cannot sign with or certify.
    der.map_err(|e| bad(e.to_string()))
}

/// Objects carrying `label`, of any class.
pub fn objects_labelled(session: &Session, label: &str) -> Result<Vec<ObjectHandle>, CkError> {
    session.find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
}

/// Destroys every object matching `template` (alone on the token) and
/// returns how many there were.
pub fn destroy_objects(token: &Token, template: &[Attribute]) -> Result<u64, Pkcs11Error> {
    token.with_session_changing_objects(|s| {
        let objects = s.find_objects(template)?;
        for &o in &objects {
            s.destroy_object(o)?;
        }
        Ok(objects.len() as u64)
    })
}

/// The private key the template matches, which must be unique.
pub fn find_private_key(
    session: &Session,
    label: Option<&str>,
    id: Option<&[u8]>,
) -> Result<Vec<ObjectHandle>, CkError> {
    let mut template = vec![Attribute::Class(ObjectClass::PRIVATE_KEY)];
    if let Some(label) = label {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = id {
        template.push(Attribute::Id(id.to_vec()));
    }
    session.find_objects(&template)
}

/// The CKA_ID of an object (empty when it has none).
pub fn object_id(session: &Session, object: ObjectHandle) -> Result<Vec<u8>, CkError> {
    Ok(session
        .get_attributes(object, &[AttributeType::Id])?
        .into_iter()
        .find_map(|a| {
            if let Attribute::Id(id) = a {
                Some(id)
            } else {
                None
            }
        })
        .unwrap_or_default())
}

/// The public key object beside a private key: same CKA_ID, else same label.
pub fn find_public_key(
    session: &Session,
    id: &[u8],
    label: Option<&str>,
) -> Result<Option<ObjectHandle>, CkError> {
    let mut template = vec![Attribute::Class(ObjectClass::PUBLIC_KEY)];
    if !id.is_empty() {
        template.push(Attribute::Id(id.to_vec()));
    } else if let Some(label) = label {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    } else {
        return Ok(None);
    }
    Ok(session.find_objects(&template)?.into_iter().next())
}

/// The mechanisms to generate a key of `key_type`.
pub fn generation_mechanism(key_type: KeyType) -> (Mechanism<'static>, MechanismType) {
    match key_type {
        KeyType::Rsa(_) => (
            Mechanism::RsaPkcsKeyPairGen,
            MechanismType::RSA_PKCS_KEY_PAIR_GEN,
        ),
        _ => (Mechanism::EccKeyPairGen, MechanismType::ECC_KEY_PAIR_GEN),
    }
}

/// A key pair just generated in a token.
#[derive(Debug, Clone)]
pub struct GeneratedKeyPair {
    /// The private key (sensitive, never extractable).
    pub private: ObjectHandle,
    /// The public key.
    pub public: ObjectHandle,
    /// The public key as SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// The CKA_ID given to both (SHA-1 of the public key).
    pub id: Vec<u8>,
}

/// Generates a key pair labelled `label` inside the token: private key with
/// CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, CKA_SIGN true and CKA_EXTRACTABLE
/// false; CKA_ID set to the SHA-1 of the public key. Refuses a label already
/// in use unless `allow_existing_label`; on any failure after generation the
/// new objects are destroyed, so nothing is left behind.
pub fn generate_key_pair(
    token: &Token,
    key_type: KeyType,
    label: &str,
    allow_existing_label: bool,
) -> Result<GeneratedKeyPair, Pkcs11Error> {
    let (mechanism, mechanism_type) = generation_mechanism(key_type);
    if !token.mechanisms()?.contains(&mechanism_type) {
        return Err(Pkcs11Error::UnsupportedMechanism {
            token: token.label().to_owned(),
            mechanism: mechanism_type.to_string(),
        });
    }
    generate_in_session(token, key_type, label, allow_existing_label, &mechanism)
}

fn generate_in_session(
    token: &Token,
    key_type: KeyType,
    label: &str,
    allow_existing_label: bool,
    mechanism: &Mechanism<'_>,
) -> Result<GeneratedKeyPair, Pkcs11Error> {
    token.with_session_changing_objects(|session| {
        if !allow_existing_label && !objects_labelled(session, label)?.is_empty() {
            return Ok(Err(Pkcs11Error::LabelExists {
                token: token.label().to_owned(),
                label: label.to_owned(),
            }));
        }
        let label_bytes = label.as_bytes().to_vec();
        let mut public_template = vec![
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            // A signing key does nothing else.
            Attribute::Encrypt(false),
            Attribute::Wrap(false),
            Attribute::Label(label_bytes.clone()),
        ];
        match (key_type, key_type.curve_oid()) {
            (KeyType::Rsa(bits), _) => {
                public_template.push(Attribute::ModulusBits(u64::from(bits).into()));
                public_template.push(Attribute::PublicExponent(vec![0x01, 0x00, 0x01]));
            }
            // A named-curve OID always encodes.
            (_, Some(curve)) => {
                public_template.push(Attribute::EcParams(curve.to_der().unwrap_or_default()))
            }
            (_, None) => {}
        }
        let private_template = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Decrypt(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::Label(label_bytes),
        ];
        let (public, private) =
            session.generate_key_pair(mechanism, &public_template, &private_template)?;
        let finish = || -> Result<GeneratedKeyPair, Pkcs11Error> {
            let spki_der = public_key_spki(session, public, token.label())?;
            let id = key_id(&spki_der)?;
            for object in [public, private] {
                session
                    .update_attributes(object, &[Attribute::Id(id.clone())])
                    .map_err(|e| Pkcs11Error::call(token.label(), &e))?;
            }
            Ok(GeneratedKeyPair {
                private,
                public,
                spki_der,
                id,
            })
        };
        Ok(finish().inspect_err(|_| {
            let _ = session.destroy_object(private);
            let _ = session.destroy_object(public);
        }))
    })?
}

/// Imports an X.509 certificate object beside the key with `id`, labelled
/// `label`, with CKA_SUBJECT, CKA_ISSUER, CKA_SERIAL_NUMBER and CKA_VALUE.
pub fn import_certificate(
    session: &Session,
    label: &str,
    id: &[u8],
    certificate_der: &[u8],
) -> Result<ObjectHandle, CkError> {
    // The caller has just issued this certificate; its fields decode.
    let (subject, issuer, serial) = match x509_cert::Certificate::from_der(certificate_der) {
        Ok(cert) => {
            let tbs = cert.tbs_certificate();
            (
                tbs.subject().to_der().unwrap_or_default(),
                tbs.issuer().to_der().unwrap_or_default(),
                tbs.serial_number().to_der().unwrap_or_default(),
            )
        }
        Err(_) => return Err(CkError::InvalidValue),
    };
    session.create_object(&[
        Attribute::Class(ObjectClass::CERTIFICATE),
        Attribute::CertificateType(CertificateType::X_509),
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.to_vec()),
        Attribute::Subject(subject),
        Attribute::Issuer(issuer),
        Attribute::SerialNumber(serial),
        Attribute::Value(certificate_der.to_vec()),
    ])
}

/// A short description of a CKR error for reports.
pub fn describe(error: &CkError) -> String {
    match error {
        CkError::Pkcs11(rv, function) => format!("{function:?}: {}", ckr_name(rv)),
        other => other.to_string(),
    }
}
