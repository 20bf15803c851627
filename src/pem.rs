//! Small encoding helpers shared by the CLI and the library.

use der::pem::{self, LineEnding};

/// A DER certificate as PEM.
pub fn certificate(der: &[u8]) -> String {
    // Encoding bytes under a fixed, valid label cannot fail.
    pem::encode_string("CERTIFICATE", LineEnding::LF, der).unwrap_or_default()
}

/// Upper-case hex without separators.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The bytes of a hex string (as [`hex`] writes it); a malformed pair is skipped.
pub fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| {
            text.get(2 * i..2 * i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect()
}

/// The bytes of a hex string, or `None` when any character is not a hex
/// digit or the count is odd: for input that must be exact, such as keys.
pub fn parse_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(unhex(text))
}

/// Upper-case hex with colons, as OpenSSL prints fingerprints.
pub fn hex_colons(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The DER inside `bytes` when they are PEM with `label`, else `bytes` as given.
pub fn der_from_pem_or_der(bytes: &[u8], label: &str) -> Result<Vec<u8>, String> {
    let text_start = bytes.trim_ascii_start();
    if !text_start.starts_with(b"-----BEGIN") {
        return Ok(bytes.to_vec());
    }
    let (found, der) = pem::decode_vec(text_start).map_err(|e| format!("bad PEM: {e}"))?;
    if found != label {
        return Err(format!("PEM label is {found:?}, expected {label:?}"));
    }
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_forms() {
        assert_eq!(hex(&[0x0a, 0xff]), "0AFF");
        assert_eq!(hex_colons(&[0x0a, 0xff]), "0A:FF");
        assert_eq!(unhex("0AFF"), vec![0x0a, 0xff]);
    }

    #[test]
    fn pem_round_trip_and_label_check() {
        let pem = certificate(&[0x30, 0x00]);
        assert_eq!(
            der_from_pem_or_der(pem.as_bytes(), "CERTIFICATE").unwrap(),
            vec![0x30, 0x00]
        );
        assert!(der_from_pem_or_der(pem.as_bytes(), "PUBLIC KEY").is_err());
        assert_eq!(
            der_from_pem_or_der(&[0x30, 0x00], "PUBLIC KEY").unwrap(),
            vec![0x30, 0x00]
        );
    }
}
