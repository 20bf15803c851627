//! BER-TLV as PIV data objects use it (SP 800-73-4 Part 1 §3, ISO 7816-4
//! Annex D): one- to three-octet tags, lengths in short form or in the long
//! forms `81 xx`, `82 xx xx` and `83 xx xx xx`.

/// Encodes one TLV: `tag` given as its octets (`&[0x7F, 0x49]`, `&[0x53]`).
pub fn encode(tag: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(tag.len() + 4 + value.len());
    out.extend_from_slice(tag);
    push_length(&mut out, value.len());
    out.extend_from_slice(value);
    out
}

/// Appends a BER length.
pub fn push_length(out: &mut Vec<u8>, length: usize) {
    match length {
        0..=0x7F => out.push(length as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, length as u8]),
        0x100..=0xFFFF => {
            out.push(0x82);
            out.extend_from_slice(&(length as u16).to_be_bytes());
        }
        _ => {
            out.push(0x83);
            out.extend_from_slice(&(length as u32).to_be_bytes()[1..]);
        }
    }
}

/// One decoded TLV, borrowing its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The tag's octets.
    pub tag: &'a [u8],
    /// The value.
    pub value: &'a [u8],
}

/// A TLV that cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlvError {
    /// The input ended inside a tag, a length or a value.
    #[error("TLV data is truncated at offset {0}")]
    Truncated(usize),
    /// A length form PIV does not use (indefinite, or more than 3 octets).
    #[error("unsupported TLV length form {0:#04X} at offset {1}")]
    LengthForm(u8, usize),
}

impl TlvError {
    /// Always a failure: data from a card that cannot be read.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Failure
    }
}

/// Decodes a sequence of TLVs that fills `input` exactly.
pub fn parse_all(input: &[u8]) -> Result<Vec<Tlv<'_>>, TlvError> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < input.len() {
        let (tlv, next) = parse_one(input, offset)?;
        out.push(tlv);
        offset = next;
    }
    Ok(out)
}

/// The value of the first TLV tagged `tag` at the top level of `input`.
pub fn find<'a>(input: &'a [u8], tag: &[u8]) -> Result<Option<&'a [u8]>, TlvError> {
    Ok(parse_all(input)?
        .into_iter()
        .find(|tlv| tlv.tag == tag)
        .map(|tlv| tlv.value))
}

/// Decodes the one TLV starting at `offset`; returns it and the offset after it.
fn parse_one(input: &[u8], offset: usize) -> Result<(Tlv<'_>, usize), TlvError> {
    let byte = |at: usize| input.get(at).copied().ok_or(TlvError::Truncated(at));
    let mut at = offset;
    // Tag: a first octet whose low five bits are all set continues while the
    // following octets have their top bit set.
    let first = byte(at)?;
    at += 1;
    if first & 0x1F == 0x1F {
        loop {
            let next = byte(at)?;
            at += 1;
            if next & 0x80 == 0 || at - offset >= 3 {
                break;
            }
        }
    }
    let tag = &input[offset..at];
    let length_octet = byte(at)?;
    at += 1;
    let length = match length_octet {
        0..=0x7F => length_octet as usize,
        0x81..=0x83 => {
            let count = (length_octet & 0x7F) as usize;
            let mut length = 0usize;
            for _ in 0..count {
                length = (length << 8) | byte(at)? as usize;
                at += 1;
            }
            length
        }
        other => return Err(TlvError::LengthForm(other, at - 1)),
    };
    let end = at.checked_add(length).ok_or(TlvError::Truncated(at))?;
    if end > input.len() {
        return Err(TlvError::Truncated(input.len()));
    }
    Ok((
        Tlv {
            tag,
            value: &input[at..end],
        },
        end,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_use_the_shortest_form() {
        assert_eq!(encode(&[0x53], &[1, 2])[..2], [0x53, 0x02]);
        assert_eq!(encode(&[0x53], &[0; 0x80])[..3], [0x53, 0x81, 0x80]);
        assert_eq!(encode(&[0x53], &[0; 0x100])[..4], [0x53, 0x82, 0x01, 0x00]);
        assert_eq!(
            encode(&[0x53], &[0; 0x10000])[..5],
            [0x53, 0x83, 0x01, 0x00, 0x00]
        );
    }

    #[test]
    fn two_octet_tags_and_nested_objects_round_trip() {
        let point = [0x04; 65];
        let template = encode(&[0x7F, 0x49], &encode(&[0x86], &point));
        let outer = parse_all(&template).unwrap();
        assert_eq!(outer.len(), 1);
        assert_eq!(outer[0].tag, [0x7F, 0x49]);
        assert_eq!(find(outer[0].value, &[0x86]).unwrap(), Some(&point[..]));
        assert_eq!(find(outer[0].value, &[0x81]).unwrap(), None);
    }

    #[test]
    fn a_certificate_object_with_long_lengths_decodes() {
        let certificate = vec![0x30; 1200];
        let mut body = encode(&[0x70], &certificate);
        body.extend(encode(&[0x71], &[0x00]));
        body.extend(encode(&[0xFE], &[]));
        let object = encode(&[0x53], &body);
        let inner = find(&object, &[0x53]).unwrap().unwrap();
        let items = parse_all(inner).unwrap();
        let tags: Vec<&[u8]> = items.iter().map(|t| t.tag).collect();
        assert_eq!(tags, [&[0x70][..], &[0x71], &[0xFE]]);
        assert_eq!(items[0].value.len(), 1200);
    }

    #[test]
    fn truncated_and_indefinite_input_is_refused() {
        assert_eq!(parse_all(&[0x53, 0x05, 1, 2]), Err(TlvError::Truncated(4)));
        assert_eq!(parse_all(&[0x53]), Err(TlvError::Truncated(1)));
        assert_eq!(parse_all(&[0x7F]), Err(TlvError::Truncated(1)));
        assert_eq!(parse_all(&[0x53, 0x82, 0x01]), Err(TlvError::Truncated(3)));
        assert_eq!(parse_all(&[0x53, 0x80]), Err(TlvError::LengthForm(0x80, 1)));
        assert_eq!(
            parse_all(&[0x53, 0x84, 0, 0, 0, 1]),
            Err(TlvError::LengthForm(0x84, 1))
        );
    }
}
