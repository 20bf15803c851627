//! The data objects a fresh virtual card carries (SP 800-73-4 Part 1): a
//! Card Holder Unique Identifier with a random GUID and a FASC-N of a
//! non-federal issuer, a Card Capability Container with a random card
//! identifier, and the Discovery Object. Also the table of which data
//! objects exist and who may read them.

use aws_lc_rs::rand;

use crate::piv::{tlv, PIV_AID};

/// Who may read a data object with GET DATA (SP 800-73-4 Part 1 Table 3).
/// Writing always needs the card management key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadRule {
    /// Anyone: certificates, CHUID, CCC, discovery, security object…
    Always,
    /// Only after the PIN was verified: biometrics and printed information.
    Pin,
}

/// The read rule of data object `id`, or `None` when SP 800-73-4 defines no
/// such object (the card stores nothing else).
pub fn read_rule(id: &[u8]) -> Option<ReadRule> {
    match id {
        // Discovery object and biometric information templates group template.
        [0x7E] | [0x7F, 0x61] => Some(ReadRule::Always),
        [0x5F, 0xC1, n] => match n {
            // Fingerprints, facial image, printed information, iris images.
            0x03 | 0x08 | 0x09 | 0x21 => Some(ReadRule::Pin),
            // Certificates of 9E, 9A, 9C, 9D, CHUID, security object, CCC,
            // key history, the 20 retired key certificates and the secure
            // messaging certificate signer.
            0x01 | 0x02 | 0x05..=0x07 | 0x0A..=0x20 | 0x22 => Some(ReadRule::Always),
            _ => None,
        },
        _ => None,
    }
}

/// Characters of a FASC-N (TIG SCEPACS, as SP 800-73-4 Part 1 §3.1.2
/// encodes it): digits plus the start, field separator and end sentinels.
#[derive(Debug, Clone, Copy)]
enum FascnChar {
    Digit(u8),
    Start,
    Separator,
    End,
}

impl FascnChar {
    /// The four data bits of the character.
    fn value(self) -> u8 {
        match self {
            FascnChar::Digit(d) => d,
            FascnChar::Start => 0x0B,
            FascnChar::Separator => 0x0D,
            FascnChar::End => 0x0F,
        }
    }
}

/// The identity fields of a FASC-N, as decimal digit strings.
#[derive(Debug, Clone)]
pub struct Fascn {
    /// Agency code, 4 digits.
    pub agency_code: [u8; 4],
    /// System code, 4 digits.
    pub system_code: [u8; 4],
    /// Credential number, 6 digits.
    pub credential_number: [u8; 6],
    /// Credential series, 1 digit.
    pub credential_series: u8,
    /// Individual credential issue, 1 digit.
    pub individual_credential_issue: u8,
    /// Person identifier, 10 digits.
    pub person_identifier: [u8; 10],
    /// Organizational category, 1 digit (3: commercial enterprise).
    pub organizational_category: u8,
    /// Organizational identifier, 4 digits.
    pub organizational_identifier: [u8; 4],
    /// Person / organization association category, 1 digit.
    pub association_category: u8,
}

impl Fascn {
    /// The FASC-N of a non-federal issuer (agency, system and credential
    /// number all nines, SP 800-73-4 Part 1 §3.3.2 note), with a random
    /// person identifier so that every virtual card differs.
    pub fn non_federal_random() -> Result<Self, aws_lc_rs::error::Unspecified> {
        let mut random = [0u8; 10];
        rand::fill(&mut random)?;
        Ok(Fascn {
            agency_code: [9; 4],
            system_code: [9; 4],
            credential_number: [9; 6],
            credential_series: 0,
            individual_credential_issue: 1,
            // `% 10` favours low digits slightly; an identifier that only
            // has to differ between rehearsal cards needs no uniform digits.
            person_identifier: random.map(|b| b % 10),
            organizational_category: 3,
            organizational_identifier: [0; 4],
            association_category: 1,
        })
    }

    /// The 25-octet encoding: 40 characters of five bits (four data bits,
    /// least significant first, and an odd parity bit), the last one the
    /// longitudinal redundancy check of all others.
    pub fn encode(&self) -> [u8; 25] {
        use FascnChar::{Digit, End, Separator, Start};
        let mut chars = vec![Start];
        let digits = |out: &mut Vec<FascnChar>, ds: &[u8]| out.extend(ds.iter().map(|&d| Digit(d)));
        digits(&mut chars, &self.agency_code);
        chars.push(Separator);
        digits(&mut chars, &self.system_code);
        chars.push(Separator);
        digits(&mut chars, &self.credential_number);
        chars.push(Separator);
        digits(&mut chars, &[self.credential_series]);
        chars.push(Separator);
        digits(&mut chars, &[self.individual_credential_issue]);
        chars.push(Separator);
        digits(&mut chars, &self.person_identifier);
        digits(&mut chars, &[self.organizational_category]);
        digits(&mut chars, &self.organizational_identifier);
        digits(&mut chars, &[self.association_category]);
        chars.push(End);
        let lrc = chars.iter().fold(0u8, |acc, c| acc ^ c.value());
        let mut values: Vec<u8> = chars.iter().map(|c| c.value()).collect();
        values.push(lrc);

        let mut out = [0u8; 25];
        let mut bit = 0usize;
        for value in values {
            let data = (0..4).map(|i| (value >> i) & 1);
            let ones = value.count_ones() as u8;
            let parity = if ones % 2 == 0 { 1 } else { 0 };
            for b in data.chain(std::iter::once(parity)) {
                if b == 1 {
                    out[bit / 8] |= 0x80 >> (bit % 8);
                }
                bit += 1;
            }
        }
        out
    }
}

/// A version 4 (random) UUID, RFC 4122 §4.4: the GUID of the CHUID.
fn random_uuid() -> Result<[u8; 16], aws_lc_rs::error::Unspecified> {
    let mut uuid = [0u8; 16];
    rand::fill(&mut uuid)?;
    uuid[6] = (uuid[6] & 0x0F) | 0x40;
    uuid[8] = (uuid[8] & 0x3F) | 0x80;
    Ok(uuid)
}

/// The contents (inside tag 53) of a fresh CHUID: FASC-N, GUID, expiration
/// date, an empty issuer signature and an empty error detection code.
///
/// The issuer asymmetric signature (3E) is mandatory in SP 800-73-4 but can
/// only be made by a card issuer's signing key; a rehearsal card has none,
/// so the field is present and empty, as on factory-fresh cards of several
/// vendors.
pub fn chuid(expires_year: i32) -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> {
    let fascn = Fascn::non_federal_random()?.encode();
    let mut contents = tlv::encode(&[0x30], &fascn);
    contents.extend(tlv::encode(&[0x34], &random_uuid()?));
    contents.extend(tlv::encode(
        &[0x35],
        format!("{expires_year:04}1231").as_bytes(),
    ));
    contents.extend(tlv::encode(&[0x3E], &[]));
    contents.extend(tlv::encode(&[0xFE], &[]));
    Ok(contents)
}

/// The contents (inside tag 53) of a fresh Card Capability Container
/// (SP 800-73-4 Part 1 Table 8, values as Appendix A of Part 1 gives them).
/// The card identifier is the GSC-RID, manufacturer FF (none), card type 01
/// (not 02, Java Card, which makes some middleware apply Java Card
/// workarounds) and 14 random octets.
pub fn ccc() -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> {
    let mut card_identifier = vec![0xA0, 0x00, 0x00, 0x01, 0x16, 0xFF, 0x01];
    let mut random = [0u8; 14];
    rand::fill(&mut random)?;
    card_identifier.extend_from_slice(&random);
    let mut contents = tlv::encode(&[0xF0], &card_identifier);
    contents.extend(tlv::encode(&[0xF1], &[0x21]));
    contents.extend(tlv::encode(&[0xF2], &[0x21]));
    contents.extend(tlv::encode(&[0xF3], &[]));
    contents.extend(tlv::encode(&[0xF4], &[0x00]));
    contents.extend(tlv::encode(&[0xF5], &[0x10]));
    for tag in [0xF6, 0xF7, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE] {
        contents.extend(tlv::encode(&[tag], &[]));
    }
    Ok(contents)
}

/// The Discovery Object (SP 800-73-4 Part 1 §3.3.2), whole with its tag 7E:
/// the PIV AID and a PIN usage policy saying that only the PIV Card
/// Application PIN exists (no global PIN, no on-card comparison).
pub fn discovery() -> Vec<u8> {
    let mut value = tlv::encode(&[0x4F], &PIV_AID);
    value.extend(tlv::encode(&[0x5F, 0x2F], &[0x40, 0x00]));
    tlv::encode(&[0x7E], &value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fascn_encoding_has_sentinels_parity_and_lrc() {
        // Non-federal FASC-N with person identifier 0000000000, commercial
        // category, association 1: decoded by hand from the 5-bit table of
        // TIG SCEPACS, this is the value factory-fresh cards of one vendor
        // carry, so the encoder (parity and LRC included) is checked against
        // a third party's bytes.
        let fascn = Fascn {
            person_identifier: [0; 10],
            ..Fascn::non_federal_random().unwrap()
        };
        assert_eq!(
            crate::pem::hex(&fascn.encode()),
            "D4E739DA739CED39CE739D836858210842108421C84210C3EB"
        );
    }

    #[test]
    fn fresh_objects_are_well_formed() {
        let chuid = chuid(2031).unwrap();
        let items = tlv::parse_all(&chuid).unwrap();
        let tags: Vec<&[u8]> = items.iter().map(|t| t.tag).collect();
        assert_eq!(tags, [&[0x30][..], &[0x34], &[0x35], &[0x3E], &[0xFE]]);
        assert_eq!(items[0].value.len(), 25);
        assert_eq!(items[1].value.len(), 16);
        assert_eq!(items[1].value[6] >> 4, 4, "a version 4 UUID");
        assert_eq!(items[2].value, b"20311231");
        assert_ne!(chuid, super::chuid(2031).unwrap(), "every card differs");

        let ccc = ccc().unwrap();
        let f0 = tlv::find(&ccc, &[0xF0]).unwrap().unwrap();
        assert_eq!(f0.len(), 21);
        assert_eq!(&f0[..5], &[0xA0, 0x00, 0x00, 0x01, 0x16]);

        let discovery = discovery();
        let value = tlv::find(&discovery, &[0x7E]).unwrap().unwrap();
        assert_eq!(tlv::find(value, &[0x4F]).unwrap(), Some(&PIV_AID[..]));
        assert_eq!(
            tlv::find(value, &[0x5F, 0x2F]).unwrap(),
            Some(&[0x40, 0x00][..])
        );
    }

    #[test]
    fn read_rules_follow_table_3() {
        assert_eq!(read_rule(&[0x5F, 0xC1, 0x0A]), Some(ReadRule::Always));
        assert_eq!(read_rule(&[0x5F, 0xC1, 0x08]), Some(ReadRule::Pin));
        assert_eq!(read_rule(&[0x7E]), Some(ReadRule::Always));
        assert_eq!(read_rule(&[0x5F, 0xC1, 0x04]), None);
        assert_eq!(read_rule(&[0x5F, 0xFF, 0x00]), None);
    }
}
