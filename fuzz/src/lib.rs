//! The bodies of certmint's fuzz targets, one function per parser of
//! outside input, written once: each `fuzz_targets/<name>.rs` calls its
//! function here, and `tests/fuzz_corpus.rs` (which includes this file with
//! `#[path]`) replays every file of `corpus/<name>/` through the same
//! function on stable Rust.
//!
//! A target fails (panics) when the library panics, and also when a promise
//! the library makes about its output is broken: each function says which.
//! This file uses only `certmint` and `std`, so that the replay test can
//! include it without libFuzzer.

#![forbid(unsafe_code)]

use std::io::BufReader;

use certmint::ids::{DeviceSerial, IdMode, PrefixTable};
use certmint::inspect;
use certmint::issue::tbs::encode_name_der;
use certmint::order::serial_list::{ListProblem, ListedSerial, SerialListReader};
use certmint::pem;
use certmint::piv::apdu::{Command, Response, CLA_CHAINING, MAX_SHORT_DATA};
use certmint::piv::client::{PivClient, PivError, Transport};
use certmint::piv::mgmt::{ManagementKey, MgmtAlgorithm};
use certmint::piv::{key_reference, spki_from_key_template, tlv, Algorithm, Slot};
use certmint::pkcs11::{Pin, Pkcs11Uri};
use certmint::profile::{
    CaConfig, Profile, ProfileName, StringType, Subject, SubjectInput, TradeName, UB_NAME,
};
use certmint::request;
use certmint::signer::KeyType;
use certmint::tools::vcard::vpcd::take_frame;
use certmint::tools::vcard::{CardConfig, VirtualCard};

/// The body of one fuzz target: it gets one input.
pub type Target = fn(&[u8]);

/// Every target: its name (its file in `fuzz_targets/` and its folder in
/// `corpus/`) and its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("serial_list", serial_list),
    ("csr", csr),
    ("pem", pem),
    ("pkcs11_uri", pkcs11_uri),
    ("subject_toml", subject_toml),
    ("ca_config", ca_config),
    ("piv_card", piv_card),
    ("vpcd", vpcd),
    ("inspect", inspect),
];

/// A manufacturer's serial list (`SerialListReader`).
///
/// Checks: the same items whether the reader gets the input whole or one
/// byte per read (line ends, BOM and look-ahead must not depend on buffer
/// boundaries); line numbers increase; a file-level problem is the last
/// item; every serial parses again to itself; excerpts and messages hold
/// at most 40 characters of input and no control characters.
pub fn serial_list(data: &[u8]) {
    let read = |input: &mut dyn std::io::BufRead| -> Vec<Result<ListedSerial, ListProblem>> {
        SerialListReader::new(input, PrefixTable::any()).collect()
    };
    let whole = read(&mut &data[..]);
    let bytewise = read(&mut BufReader::with_capacity(1, data));
    assert_eq!(whole, bytewise, "the result depends on read boundaries");
    let mut last_line = 0;
    for (i, item) in whole.iter().enumerate() {
        match item {
            Ok(listed) => {
                assert!(listed.line > last_line, "line numbers go back");
                last_line = listed.line;
                let again = DeviceSerial::parse(listed.serial.as_str(), &PrefixTable::any());
                assert!(again.is_ok_and(|s| s == listed.serial));
            }
            Err(problem) => {
                if problem.is_file_level() {
                    assert_eq!(i + 1, whole.len(), "items after a file-level problem");
                    assert_eq!(problem.line, 0);
                } else {
                    assert!(problem.line > last_line, "line numbers go back");
                    last_line = problem.line;
                }
                assert!(problem.excerpt.chars().count() <= 40);
                assert!(!problem.excerpt.chars().any(char::is_control));
                let message = problem.to_string();
                assert!(
                    !message.chars().any(char::is_control),
                    "raw control characters in {message:?}"
                );
            }
        }
    }
}

/// A certificate request or a public key (`public_key_from_csr`,
/// `public_key_from_spki`), PEM or DER.
///
/// Checks: the key of a request whose signature verifies is a DER
/// SubjectPublicKeyInfo that reads back to itself and has a key type; a
/// public key read once reads back to the same DER.
pub fn csr(data: &[u8]) {
    match request::public_key_from_csr(data, "fuzz input") {
        Ok(spki) => {
            assert!(KeyType::of_public_key(&spki).is_ok());
            let again = request::public_key_from_spki(&spki, "its key");
            assert!(again.is_ok_and(|again| again == spki));
        }
        Err(e) => drop(e.to_string()),
    }
    match request::public_key_from_spki(data, "fuzz input") {
        Ok(spki) => {
            let again = request::public_key_from_spki(&spki, "its DER");
            assert!(again.is_ok_and(|again| again == spki));
        }
        Err(e) => drop(e.to_string()),
    }
}

/// PEM and hex input (`der_from_pem_or_der`, `parse_hex`, `unhex`).
///
/// Checks: input that is not PEM passes through unchanged; DER from a
/// certificate PEM comes back from `pem::certificate`; hex of any bytes
/// parses back to them, and hex that parses is the upper-case of the input.
pub fn pem(data: &[u8]) {
    let is_pem = data.trim_ascii_start().starts_with(b"-----BEGIN");
    for label in ["CERTIFICATE", "CERTIFICATE REQUEST", "PUBLIC KEY"] {
        match pem::der_from_pem_or_der(data, label) {
            Ok(der) => {
                if !is_pem {
                    assert_eq!(der, data);
                } else if label == "CERTIFICATE" {
                    let again = pem::der_from_pem_or_der(pem::certificate(&der).as_bytes(), label);
                    assert_eq!(again, Ok(der));
                }
            }
            Err(e) => assert!(is_pem && !e.is_empty()),
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(bytes) = pem::parse_hex(text) {
            assert_eq!(pem::hex(&bytes), text.to_ascii_uppercase());
        }
        assert!(pem::unhex(text).len() <= text.len() / 2);
    }
    assert_eq!(pem::parse_hex(&pem::hex(data)), Some(data.to_vec()));
}

/// An RFC 7512 `pkcs11:` URI (`Pkcs11Uri::parse`).
///
/// Checks: a URI that parses is displayed without its query (where a PIN
/// source lives), and the displayed URI parses to the same token, serial,
/// object, id and token, slot and module attributes.
pub fn pkcs11_uri(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Pkcs11Uri::parse(text) {
        Ok(uri) => {
            let shown = uri.to_string();
            assert!(!shown.contains('?'), "{shown:?} shows its query");
            let again = match Pkcs11Uri::parse(&shown) {
                Ok(again) => again,
                Err(e) => panic!("{shown:?} (from {text:?}) does not parse: {e}"),
            };
            assert_eq!(
                (
                    &again.token,
                    &again.serial,
                    &again.object,
                    &again.id,
                    &again.token_match
                ),
                (
                    &uri.token,
                    &uri.serial,
                    &uri.object,
                    &uri.id,
                    &uri.token_match
                ),
                "{shown:?} (from {text:?}) parses to another URI"
            );
            let path = text.split('?').next().unwrap_or_default();
            for pair in path.trim_start_matches("pkcs11:").split(';') {
                let Some((name, value)) = pair.split_once('=') else {
                    continue;
                };
                if name != "type" {
                    assert!(
                        well_formed_escapes(value),
                        "{text:?}: a malformed percent escape in {name} was accepted"
                    );
                }
            }
            drop(uri.token_name());
            drop(uri.require_object());
        }
        Err(e) => drop(e.to_string()),
    }
}

/// Whether every `%` in `value` is followed by two hex digits (RFC 3986 §2.1).
fn well_formed_escapes(value: &str) -> bool {
    value.split('%').skip(1).all(|after| {
        after
            .as_bytes()
            .get(..2)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    })
}

/// Subject data from a TOML file (`SubjectInput::from_toml`, then
/// `Subject::from_input` for every profile).
///
/// Checks: a subject that validates encodes as a name; its values are
/// non-empty, at most 64 characters, free of control characters, and
/// PrintableString values use its alphabet; a trade name is already in its
/// normal form.
pub fn subject_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let input = match SubjectInput::from_toml(text, "fuzz input") {
        Ok(input) => input,
        Err(e) => return drop(e.to_string()),
    };
    let config = CaConfig::kamu_sm_defaults();
    let profiles = [
        ProfileName::MaliMuhur,
        ProfileName::OkcDevice,
        ProfileName::RootCa,
        ProfileName::IssuingCa,
    ];
    for name in profiles {
        let Ok(profile) = Profile::from_config(name, &config) else {
            panic!("the shipped {name} profile does not load");
        };
        for mode in [IdMode::Production, IdMode::Test] {
            let subject = match Subject::from_input(&profile, &input, mode) {
                Ok(subject) => subject,
                Err(e) => {
                    drop(e.to_string());
                    continue;
                }
            };
            let attributes = subject.attributes();
            for attribute in &attributes {
                let value = attribute.value;
                assert!(!value.is_empty());
                assert!(value.chars().count() <= UB_NAME, "{value:?} is too long");
                assert!(!value.chars().any(char::is_control), "{value:?}");
                if attribute.string_type == StringType::Printable {
                    assert!(value.bytes().all(is_printable_string), "{value:?}");
                }
            }
            if let Err(e) = encode_name_der(&attributes) {
                panic!("{subject:?} does not encode: {e}");
            }
            if let Subject::MaliMuhur { trade_name, .. } = &subject {
                let again = TradeName::parse(trade_name.as_str());
                assert!(
                    again.as_ref().is_ok_and(|again| again == trade_name),
                    "{trade_name:?} normalises to {again:?}"
                );
            }
        }
    }
}

/// The PrintableString alphabet (X.680 §41.4).
fn is_printable_string(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b)
}

/// A CA configuration file, `certmint-ca.toml` (`CaConfig::from_toml`,
/// then `Profile::from_config` for every profile).
///
/// Checks: a configuration that reads is written by `to_toml` as text that
/// reads back to the same configuration.
pub fn ca_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match CaConfig::from_toml(text, "fuzz input") {
        Ok(config) => config,
        Err(e) => return drop(e.to_string()),
    };
    let written = config.to_toml();
    match CaConfig::from_toml(&written, "written") {
        Ok(again) => assert_eq!(again, config, "{written}"),
        Err(e) => panic!("to_toml wrote a file that does not read: {e}\n{written}"),
    }
    let profiles = [
        ProfileName::MaliMuhur,
        ProfileName::OkcDevice,
        ProfileName::RootCa,
        ProfileName::IssuingCa,
    ];
    for name in profiles {
        if let Err(e) = Profile::from_config(name, &config) {
            drop(e.to_string());
        }
    }
}

/// What a PIV card sends back: response APDUs, BER-TLV, and the client's
/// handling of whole answers. The first octet chooses what the rest is.
///
/// - `0`: one response APDU, and one command APDU (as the virtual card
///   reads it). Checks: a response re-encodes to its bytes; a command
///   re-encodes to one that parses to itself, and its chain carries its
///   data with the chaining bit on every APDU but the last, which keeps
///   the command's own class.
/// - `1`: TLV. Checks: re-encoding what parses gives TLVs that parse to the
///   same tags and values, in the shortest form (re-encoding again gives
///   the same bytes), and `find` returns the first TLV of each tag.
/// - `2`: a public key template, for every algorithm. Checks: a key read
///   from it is of the algorithm asked for.
/// - else: a card session: the rest is the card's answers, each a two-octet
///   length and that many octets (the last answer is repeated for ever, as
///   a card stuck in one state would), and the octet picks the operation.
///   Checks: every APDU the client sends is a well-formed short APDU, and
///   the operation ends.
pub fn piv_card(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode {
        0 => apdus(rest),
        1 => tlvs(rest),
        2 => {
            for algorithm in [Algorithm::Rsa2048, Algorithm::EcP256, Algorithm::EcP384] {
                if let Ok(spki) = spki_from_key_template(algorithm, rest) {
                    assert!(KeyType::of_public_key(&spki).is_ok_and(|k| k == algorithm.key_type()));
                }
            }
        }
        operation => card_session(operation, rest),
    }
}

fn apdus(data: &[u8]) {
    if let Ok(response) = Response::parse(data) {
        assert_eq!(response.to_bytes(), data);
        drop(response.status.meaning());
        drop(response.status.to_string());
    }
    let Ok(command) = Command::parse(data) else {
        return;
    };
    let short = command.data.len() <= MAX_SHORT_DATA && command.le.is_none_or(|le| le <= 256);
    if short {
        let again = Command::parse(&command.to_bytes());
        assert!(
            again.as_ref().is_ok_and(|again| *again == command),
            "{command:?} became {again:?}"
        );
    }
    let chain = command.to_chain();
    let mut carried = Vec::new();
    for (i, apdu) in chain.iter().enumerate() {
        let Ok(piece) = Command::parse(apdu) else {
            panic!("a piece of the chain of {command:?} does not parse");
        };
        // Every piece but the last carries the chaining bit; the last one
        // has the command's own class, whatever that is.
        let class = if i + 1 < chain.len() {
            command.cla | CLA_CHAINING
        } else {
            command.cla
        };
        assert_eq!(piece.cla, class);
        assert!(piece.data.len() <= MAX_SHORT_DATA);
        carried.extend_from_slice(&piece.data);
    }
    assert_eq!(carried, command.data);
}

fn tlvs(data: &[u8]) {
    let Ok(parsed) = tlv::parse_all(data) else {
        return;
    };
    let encode = |tlvs: &[tlv::Tlv<'_>]| -> Vec<u8> {
        tlvs.iter()
            .flat_map(|t| tlv::encode(t.tag, t.value))
            .collect()
    };
    let encoded = encode(&parsed);
    assert!(encoded.len() <= data.len());
    let reparsed = tlv::parse_all(&encoded).unwrap_or_else(|e| panic!("re-encoded TLV: {e}"));
    assert_eq!(reparsed, parsed);
    assert_eq!(encode(&reparsed), encoded);
    for t in &parsed {
        let first = parsed
            .iter()
            .find(|other| other.tag == t.tag)
            .map(|o| o.value);
        assert_eq!(tlv::find(data, t.tag), Ok(first));
    }
}

/// A card whose answers come from the fuzzer.
struct ScriptedCard<'a> {
    answers: &'a [u8],
    last: Option<Vec<u8>>,
}

impl Transport for ScriptedCard<'_> {
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, PivError> {
        let command = Command::parse(apdu);
        assert!(
            command.is_ok_and(|c| c.data.len() <= MAX_SHORT_DATA),
            "the client sent a malformed APDU"
        );
        if let [high, low, rest @ ..] = self.answers {
            let length = usize::from(u16::from_be_bytes([*high, *low])).min(rest.len());
            let (answer, after) = rest.split_at(length);
            self.answers = after;
            self.last = Some(answer.to_vec());
        }
        self.last.clone().ok_or(PivError::CardRemoved)
    }
}

fn card_session(operation: u8, answers: &[u8]) {
    let mut client = PivClient::new(ScriptedCard {
        answers,
        last: None,
    });
    let pin = |digits: &str| Pin::new(digits.to_owned(), "PIN");
    let slot = Slot::ALL[usize::from(operation) % Slot::ALL.len()];
    let algorithm =
        [Algorithm::Rsa2048, Algorithm::EcP256, Algorithm::EcP384][usize::from(operation / 4) % 3];
    let outcome = match operation % 10 {
        0 => client.select().map(drop),
        1 => client.retry_state(key_reference::PIN).map(drop),
        2 => match pin("123456") {
            Ok(pin) => client.verify_pin(&pin),
            Err(_) => return,
        },
        3 => match (pin("123456"), pin("654321")) {
            (Ok(old), Ok(new)) => client.change_secret(key_reference::PIN, &old, &new),
            _ => return,
        },
        4 => client.authenticate_management_key(&ManagementKey::factory(MgmtAlgorithm::TripleDes)),
        5 => client.generate_key(slot, algorithm).map(|spki| {
            assert!(KeyType::of_public_key(&spki).is_ok_and(|k| k == algorithm.key_type()));
        }),
        6 => client.put_certificate(slot, &[0x30, 0x00]),
        7 => client.get_object(&[0x5F, 0xC1, 0x02]).map(drop),
        8 => client.get_certificate(slot).map(drop),
        _ => client.sign(slot, algorithm, &[0x5A; 32]).map(drop),
    };
    if let Err(e) = outcome {
        drop(e.to_string());
    }
}

/// What the vpcd driver sends the virtual card: length-prefixed frames
/// (`take_frame`), each a control code or a command APDU for the card.
///
/// Checks: no frame is empty; what is left is an unfinished frame; every
/// answer of the card is a response APDU that fits a frame.
pub fn vpcd(data: &[u8]) {
    let Ok(mut card) = VirtualCard::new(&CardConfig::default()) else {
        panic!("the factory card cannot be made");
    };
    let mut buffer = data.to_vec();
    while let Some(message) = take_frame(&mut buffer) {
        match message[..] {
            [] => panic!("an empty frame"),
            // Power off, power on, reset: the card loses its session.
            [0x00..=0x02] => card.reset(),
            [_] => {}
            _ => {
                let answer = card.process(&message);
                assert!(answer.len() >= 2 && answer.len() <= usize::from(u16::MAX));
            }
        }
    }
    if let [high, low, rest @ ..] = &buffer[..] {
        assert!(rest.len() < usize::from(u16::from_be_bytes([*high, *low])));
    } else {
        assert!(buffer.len() < 2);
    }
}

/// A file for `certmint inspect` (`inspect::inspect`, `inspect::summarize`):
/// a certificate, a chain of PEM blocks, a request; without a password, so
/// that no PKCS#12 key derivation runs per input.
///
/// Checks: a summary's text is produced whatever the file holds; a DER
/// certificate reads the same through both.
pub fn inspect(data: &[u8]) {
    let summary = inspect::summarize(data);
    if let Ok(summary) = &summary {
        assert!(!summary.to_text().is_empty());
    }
    match inspect::inspect(data, "fuzz", None) {
        Ok(inspected) => {
            assert!(!inspected.to_text().is_empty());
            if let (Ok(one), inspect::Inspected::Certificate(other)) = (&summary, &inspected) {
                assert_eq!(one.serial, other.serial);
            }
        }
        Err(e) => drop(e.to_string()),
    }
}
