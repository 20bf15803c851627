//! The PIV card application (NIST SP 800-73-4) as certmint speaks it, on
//! both sides of the wire: the client that provisions cards
//! ([`client::PivClient`]) and the virtual card that rehearses it
//! ([`crate::tools::vcard`]). This module holds what both sides share: the
//! application identifier, key slots and data objects, algorithm
//! identifiers, PIN encoding, the public-key template of GENERATE, and what
//! a card signs.
//!
//! [`apdu`] encodes and decodes APDUs and names every status word, [`tlv`]
//! the BER-TLV of data objects, [`mgmt`] the management key.

pub mod apdu;
pub mod client;
pub mod mgmt;
pub mod tlv;

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest;
use zeroize::Zeroizing;

use crate::signer::{
    public_key_parts, spki_from_ec_point, spki_from_rsa_parts, KeyType, PublicKeyParts, SignerError,
};

/// The PIV application identifier (SP 800-73-4 Part 1 §2.2), version 01 00.
pub const PIV_AID: [u8; 11] = [
    0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00, 0x01, 0x00,
];

/// The part of the AID a SELECT may use (the PIX without the version).
pub const PIV_AID_PREFIX: [u8; 9] = [0xA0, 0x00, 0x00, 0x03, 0x08, 0x00, 0x00, 0x10, 0x00];

/// Instruction bytes (SP 800-73-4 Part 2 §3).
pub mod ins {
    /// SELECT.
    pub const SELECT: u8 = 0xA4;
    /// VERIFY.
    pub const VERIFY: u8 = 0x20;
    /// CHANGE REFERENCE DATA.
    pub const CHANGE_REFERENCE_DATA: u8 = 0x24;
    /// RESET RETRY COUNTER.
    pub const RESET_RETRY_COUNTER: u8 = 0x2C;
    /// GENERAL AUTHENTICATE.
    pub const GENERAL_AUTHENTICATE: u8 = 0x87;
    /// GENERATE ASYMMETRIC KEY PAIR.
    pub const GENERATE_ASYMMETRIC_KEY_PAIR: u8 = 0x47;
    /// PUT DATA.
    pub const PUT_DATA: u8 = 0xDB;
    /// GET DATA.
    pub const GET_DATA: u8 = 0xCB;
    /// GET RESPONSE.
    pub const GET_RESPONSE: u8 = super::apdu::INS_GET_RESPONSE;
}

/// Key references for VERIFY, CHANGE REFERENCE DATA and GENERAL AUTHENTICATE.
pub mod key_reference {
    /// The PIV card application PIN.
    pub const PIN: u8 = 0x80;
    /// The PIN unblocking key.
    pub const PUK: u8 = 0x81;
    /// The card management key.
    pub const MANAGEMENT: u8 = 0x9B;
}

/// Data object identifiers (SP 800-73-4 Part 1 Table 3).
pub mod object {
    /// Card Capability Container.
    pub const CCC: [u8; 3] = [0x5F, 0xC1, 0x07];
    /// Card Holder Unique Identifier.
    pub const CHUID: [u8; 3] = [0x5F, 0xC1, 0x02];
    /// Discovery object (a one-octet id).
    pub const DISCOVERY: [u8; 1] = [0x7E];
    /// Key history object.
    pub const KEY_HISTORY: [u8; 3] = [0x5F, 0xC1, 0x0C];
}

/// A PIV key slot that holds a key and its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    /// 9A, PIV authentication.
    Authentication,
    /// 9C, digital signature: the slot of a Mali Mühür seal key.
    Signature,
    /// 9D, key management.
    KeyManagement,
    /// 9E, card authentication.
    CardAuthentication,
}

impl Slot {
    /// Every slot certmint can provision.
    pub const ALL: [Slot; 4] = [
        Slot::Authentication,
        Slot::Signature,
        Slot::KeyManagement,
        Slot::CardAuthentication,
    ];

    /// The key reference (P2 of GENERATE, GENERAL AUTHENTICATE).
    pub fn key_reference(self) -> u8 {
        match self {
            Slot::Authentication => 0x9A,
            Slot::Signature => 0x9C,
            Slot::KeyManagement => 0x9D,
            Slot::CardAuthentication => 0x9E,
        }
    }

    /// The slot with key reference `reference`.
    pub fn from_key_reference(reference: u8) -> Option<Slot> {
        Slot::ALL
            .into_iter()
            .find(|s| s.key_reference() == reference)
    }

    /// The data object holding the slot's certificate.
    pub fn certificate_object(self) -> [u8; 3] {
        match self {
            Slot::Authentication => [0x5F, 0xC1, 0x05],
            Slot::Signature => [0x5F, 0xC1, 0x0A],
            Slot::KeyManagement => [0x5F, 0xC1, 0x0B],
            Slot::CardAuthentication => [0x5F, 0xC1, 0x01],
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}", self.key_reference())
    }
}

impl FromStr for Slot {
    type Err = String;
    /// `9a`, `9c`, `9d`, `9e` (either case).
    fn from_str(s: &str) -> Result<Self, String> {
        u8::from_str_radix(s, 16)
            .ok()
            .and_then(Slot::from_key_reference)
            .ok_or_else(|| format!("PIV slot {s:?} (use 9a, 9c, 9d or 9e)"))
    }
}

/// The asymmetric algorithms of a PIV key (SP 800-78-4 Table 6-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// 07, RSA-2048.
    Rsa2048,
    /// 11, ECC P-256.
    EcP256,
    /// 14, ECC P-384.
    EcP384,
}

impl Algorithm {
    /// The algorithm identifier.
    pub fn id(self) -> u8 {
        match self {
            Algorithm::Rsa2048 => 0x07,
            Algorithm::EcP256 => 0x11,
            Algorithm::EcP384 => 0x14,
        }
    }

    /// The algorithm with identifier `id`.
    pub fn from_id(id: u8) -> Option<Self> {
        [Algorithm::Rsa2048, Algorithm::EcP256, Algorithm::EcP384]
            .into_iter()
            .find(|a| a.id() == id)
    }

    /// The algorithm of a certmint key type; only RSA-2048, P-256 and P-384
    /// live on PIV cards.
    pub fn for_key_type(key_type: KeyType) -> Option<Self> {
        match key_type {
            KeyType::Rsa(2048) => Some(Algorithm::Rsa2048),
            KeyType::EcP256 => Some(Algorithm::EcP256),
            KeyType::EcP384 => Some(Algorithm::EcP384),
            KeyType::Rsa(_) => None,
        }
    }

    /// The certmint key type.
    pub fn key_type(self) -> KeyType {
        match self {
            Algorithm::Rsa2048 => KeyType::Rsa(2048),
            Algorithm::EcP256 => KeyType::EcP256,
            Algorithm::EcP384 => KeyType::EcP384,
        }
    }

    /// The digest a certificate signature with this key uses.
    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Algorithm::Rsa2048 | Algorithm::EcP256 => &digest::SHA256,
            Algorithm::EcP384 => &digest::SHA384,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.key_type().fmt(f)
    }
}

/// The 8-octet VERIFY data of a PIN: its characters padded with FF
/// (SP 800-73-4 Part 2 §2.4.3). A PIV PIN is 6 to 8 characters.
pub fn pin_block(pin: &[u8]) -> Result<Zeroizing<[u8; 8]>, PinFormatError> {
    if !(6..=8).contains(&pin.len()) {
        return Err(PinFormatError::Length(pin.len()));
    }
    if pin.contains(&0xFF) {
        return Err(PinFormatError::PadOctet);
    }
    let mut block = Zeroizing::new([0xFF; 8]);
    block[..pin.len()].copy_from_slice(pin);
    Ok(block)
}

/// A PIN or PUK that cannot be encoded. The value itself is never repeated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinFormatError {
    /// PIV PINs and PUKs are 6 to 8 characters.
    #[error("a PIV PIN or PUK has 6 to 8 characters, this one has {0}")]
    Length(usize),
    /// FF is the padding octet and cannot be part of a PIN.
    #[error("a PIV PIN cannot contain the octet FF")]
    PadOctet,
}

impl PinFormatError {
    /// Always invalid input: the PIN or PUK the operator gave.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::InvalidInput
    }
}

/// Encodes a public key as the `7F49` template GENERATE returns: `81`
/// modulus and `82` exponent for RSA, `86` point for EC.
pub fn key_template_from_spki(spki_der: &[u8]) -> Result<Vec<u8>, SignerError> {
    let inner = match public_key_parts(spki_der)? {
        PublicKeyParts::Rsa { modulus, exponent } => {
            let mut inner = tlv::encode(&[0x81], &modulus);
            inner.extend(tlv::encode(&[0x82], &exponent));
            inner
        }
        PublicKeyParts::Ec { point, .. } => tlv::encode(&[0x86], &point),
    };
    Ok(tlv::encode(&[0x7F, 0x49], &inner))
}

/// Decodes the `7F49` template of a generated key of `algorithm` into a
/// SubjectPublicKeyInfo, refusing a key of another type.
pub fn spki_from_key_template(algorithm: Algorithm, template: &[u8]) -> Result<Vec<u8>, String> {
    let inner = tlv::find(template, &[0x7F, 0x49])
        .map_err(|e| e.to_string())?
        .ok_or("the response has no public key template (7F49)")?;
    let field = |tag: u8, name: &str| -> Result<&[u8], String> {
        tlv::find(inner, &[tag])
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the public key template has no {name} ({tag:02X})"))
    };
    let spki = match algorithm {
        Algorithm::Rsa2048 => {
            spki_from_rsa_parts(field(0x81, "modulus")?, field(0x82, "exponent")?)
        }
        Algorithm::EcP256 | Algorithm::EcP384 => {
            let curve = algorithm
                .key_type()
                .curve_oid()
                .ok_or("an EC algorithm has a curve")?;
            spki_from_ec_point(curve, field(0x86, "EC point")?)
        }
    }
    .map_err(|e| e.to_string())?;
    let key_type = KeyType::of_public_key(&spki).map_err(|e| e.to_string())?;
    if key_type != algorithm.key_type() {
        return Err(format!(
            "the card generated a {key_type} key where {algorithm} was asked"
        ));
    }
    Ok(spki)
}

/// DigestInfo prefixes (RFC 8017 §9.2 note 1) for the digests PIV signs with.
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// What a PIV card is given to sign `message` with a key of `algorithm`:
/// the hash for ECDSA (the card signs a digest), the whole EMSA-PKCS1-v1_5
/// block for RSA (the card applies the raw private-key operation).
pub fn signing_input(algorithm: Algorithm, message: &[u8]) -> Vec<u8> {
    let hash = digest::digest(algorithm.digest(), message);
    match algorithm {
        Algorithm::EcP256 | Algorithm::EcP384 => hash.as_ref().to_vec(),
        Algorithm::Rsa2048 => {
            let mut block = vec![0x00, 0x01];
            let filler = 256 - 3 - SHA256_DIGEST_INFO.len() - hash.as_ref().len();
            block.extend(std::iter::repeat_n(0xFF, filler));
            block.push(0x00);
            block.extend_from_slice(&SHA256_DIGEST_INFO);
            block.extend_from_slice(hash.as_ref());
            block
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::{Signer, SoftwareSigner};

    #[test]
    fn slots_name_their_key_references_and_certificate_objects() {
        let table = [
            ("9a", 0x9A, [0x5F, 0xC1, 0x05]),
            ("9c", 0x9C, [0x5F, 0xC1, 0x0A]),
            ("9d", 0x9D, [0x5F, 0xC1, 0x0B]),
            ("9e", 0x9E, [0x5F, 0xC1, 0x01]),
        ];
        for (name, reference, object) in table {
            let slot: Slot = name.parse().unwrap();
            assert_eq!(slot.key_reference(), reference);
            assert_eq!(slot.certificate_object(), object);
            assert_eq!(slot.to_string(), name);
        }
        assert!("9C".parse::<Slot>().is_ok());
        assert!(
            "9b".parse::<Slot>().is_err(),
            "9B is the management key, not a slot"
        );
    }

    #[test]
    fn algorithm_identifiers_follow_sp_800_78() {
        assert_eq!(Algorithm::Rsa2048.id(), 0x07);
        assert_eq!(Algorithm::EcP256.id(), 0x11);
        assert_eq!(Algorithm::EcP384.id(), 0x14);
        assert_eq!(Algorithm::from_id(0x14), Some(Algorithm::EcP384));
        assert_eq!(Algorithm::for_key_type(KeyType::Rsa(3072)), None);
    }

    #[test]
    fn pins_are_padded_with_ff_to_eight_octets() {
        assert_eq!(*pin_block(b"123456").unwrap(), *b"123456\xFF\xFF");
        assert_eq!(*pin_block(b"12345678").unwrap(), *b"12345678");
        assert_eq!(pin_block(b"12345"), Err(PinFormatError::Length(5)));
        assert_eq!(pin_block(b"123456789"), Err(PinFormatError::Length(9)));
        assert_eq!(pin_block(b"12345\xFF"), Err(PinFormatError::PadOctet));
    }

    #[test]
    fn public_key_templates_round_trip_for_every_algorithm() {
        for algorithm in [Algorithm::Rsa2048, Algorithm::EcP256, Algorithm::EcP384] {
            let signer = SoftwareSigner::generate(algorithm.key_type()).unwrap();
            let template = key_template_from_spki(signer.public_key_der()).unwrap();
            assert_eq!(&template[..2], &[0x7F, 0x49]);
            let spki = spki_from_key_template(algorithm, &template).unwrap();
            assert_eq!(spki, signer.public_key_der(), "{algorithm}");
        }
        let p256 = SoftwareSigner::generate(KeyType::EcP256).unwrap();
        let template = key_template_from_spki(p256.public_key_der()).unwrap();
        let error = spki_from_key_template(Algorithm::EcP384, &template).unwrap_err();
        assert!(
            error.contains("not an uncompressed point") || error.contains("p256"),
            "{error}"
        );
        assert!(spki_from_key_template(Algorithm::EcP256, &[0x7F, 0x49, 0x00]).is_err());
    }

    #[test]
    fn the_rsa_signing_input_is_the_pkcs1_block_a_software_key_signs() {
        // A PKCS#1 v1.5 signature is the raw RSA operation on this block:
        // 00 01 FF.. 00 DigestInfo(SHA-256) hash, as long as the modulus.
        let block = signing_input(Algorithm::Rsa2048, b"message");
        assert_eq!(block.len(), 256);
        assert_eq!(&block[..2], &[0x00, 0x01]);
        let digest = digest::digest(&digest::SHA256, b"message");
        assert_eq!(&block[256 - 32..], digest.as_ref());
        assert_eq!(&block[256 - 32 - 19..256 - 32], &SHA256_DIGEST_INFO);
        assert_eq!(block[256 - 32 - 19 - 1], 0x00);
        let ec = signing_input(Algorithm::EcP384, b"message");
        assert_eq!(ec, digest::digest(&digest::SHA384, b"message").as_ref());
    }
}
