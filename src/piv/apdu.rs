//! ISO 7816-4 command and response APDUs as PIV uses them: short APDUs,
//! command chaining (CLA bit 0x10) for data longer than 255 octets, and the
//! status words a PIV card answers with, each with its meaning.

use std::fmt;

/// The longest data field of one short command APDU.
pub const MAX_SHORT_DATA: usize = 255;

/// CLA bit that says "more commands of this chain follow" (ISO 7816-4 §5.1.1).
pub const CLA_CHAINING: u8 = 0x10;

/// INS of GET RESPONSE, sent after `61 xx` to fetch the rest of a response.
pub const INS_GET_RESPONSE: u8 = 0xC0;

/// One command APDU.
#[derive(Clone, PartialEq, Eq)]
pub struct Command {
    /// Class byte (0x00 for PIV, before chaining).
    pub cla: u8,
    /// Instruction byte.
    pub ins: u8,
    /// First parameter.
    pub p1: u8,
    /// Second parameter.
    pub p2: u8,
    /// Command data (may be longer than one APDU: see [`Command::to_chain`]).
    pub data: Vec<u8>,
    /// Expected response length: `Some(256)` is encoded as `00` ("up to 256").
    pub le: Option<u16>,
}

// The data of a VERIFY or a management-key response is secret; never print it.
impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Command({:02X} {:02X} {:02X} {:02X}, {} data octets, le {:?})",
            self.cla,
            self.ins,
            self.p1,
            self.p2,
            self.data.len(),
            self.le
        )
    }
}

impl Command {
    /// A command with data and no Le.
    pub fn new(ins: u8, p1: u8, p2: u8, data: Vec<u8>) -> Self {
        Command {
            cla: 0x00,
            ins,
            p1,
            p2,
            data,
            le: None,
        }
    }

    /// The same command, asking for up to 256 octets of response.
    pub fn expect_response(mut self) -> Self {
        self.le = Some(256);
        self
    }

    /// Encodes one short APDU. The data must fit one APDU; longer commands
    /// go through [`Command::to_chain`].
    pub fn to_bytes(&self) -> Vec<u8> {
        debug_assert!(self.data.len() <= MAX_SHORT_DATA);
        let mut out = Vec::with_capacity(6 + self.data.len());
        out.extend_from_slice(&[self.cla, self.ins, self.p1, self.p2]);
        if !self.data.is_empty() {
            out.push(self.data.len() as u8);
            out.extend_from_slice(&self.data);
        }
        if let Some(le) = self.le {
            // 256 is encoded as 00 (ISO 7816-4 §5.1); larger values are not
            // possible in a short APDU.
            out.push(if le >= 256 { 0 } else { le as u8 });
        }
        out
    }

    /// Splits the command into short APDUs: every one but the last carries
    /// the chaining bit and no Le; the last carries the original class and Le.
    pub fn to_chain(&self) -> Vec<Vec<u8>> {
        if self.data.len() <= MAX_SHORT_DATA {
            return vec![self.to_bytes()];
        }
        let chunks: Vec<&[u8]> = self.data.chunks(MAX_SHORT_DATA).collect();
        let last = chunks.len() - 1;
        chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| {
                Command {
                    cla: if i < last {
                        self.cla | CLA_CHAINING
                    } else {
                        self.cla
                    },
                    ins: self.ins,
                    p1: self.p1,
                    p2: self.p2,
                    data: chunk.to_vec(),
                    le: if i < last { None } else { self.le },
                }
                .to_bytes()
            })
            .collect()
    }

    /// Decodes one short or extended command APDU, as a card receives it.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApduError> {
        let malformed = |why: &str| ApduError::Malformed(why.to_string());
        if bytes.len() < 4 {
            return Err(malformed("a command APDU has at least 4 octets"));
        }
        let (cla, ins, p1, p2) = (bytes[0], bytes[1], bytes[2], bytes[3]);
        let body = &bytes[4..];
        let (data, le) = match body.len() {
            0 => (Vec::new(), None),
            1 => (Vec::new(), Some(short_le(body[0]))),
            _ if body[0] == 0 && body.len() >= 3 => {
                // Extended length: 00 Lc1 Lc2 data [Le1 Le2], or 00 Le1 Le2.
                let n = u16::from_be_bytes([body[1], body[2]]) as usize;
                let rest = &body[3..];
                if rest.is_empty() {
                    (Vec::new(), Some(if n == 0 { 65_536 } else { n as u32 }))
                } else if rest.len() == n {
                    (rest.to_vec(), None)
                } else if rest.len() == n + 2 {
                    let le = u16::from_be_bytes([rest[n], rest[n + 1]]) as u32;
                    (rest[..n].to_vec(), Some(if le == 0 { 65_536 } else { le }))
                } else {
                    return Err(malformed("extended length does not match the data"));
                }
            }
            _ => {
                let lc = body[0] as usize;
                let rest = &body[1..];
                if rest.len() == lc {
                    (rest.to_vec(), None)
                } else if rest.len() == lc + 1 {
                    (rest[..lc].to_vec(), Some(short_le(rest[lc])))
                } else {
                    return Err(malformed("Lc does not match the data"));
                }
            }
        };
        Ok(Command {
            cla,
            ins,
            p1,
            p2,
            data,
            le: le.map(|n| n.min(u16::MAX as u32) as u16),
        })
    }

    /// Whether more commands of this chain follow.
    pub fn is_chained(&self) -> bool {
        self.cla & CLA_CHAINING != 0
    }
}

fn short_le(byte: u8) -> u32 {
    if byte == 0 {
        256
    } else {
        byte as u32
    }
}

/// One response APDU: data and status word.
#[derive(Clone, PartialEq, Eq)]
pub struct Response {
    /// Response data.
    pub data: Vec<u8>,
    /// Status word (SW1 SW2).
    pub status: StatusWord,
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Response({} data octets, {})",
            self.data.len(),
            self.status
        )
    }
}

impl Response {
    /// A response carrying `data` and `9000`.
    pub fn ok(data: Vec<u8>) -> Self {
        Response {
            data,
            status: StatusWord::SUCCESS,
        }
    }

    /// A response carrying only a status word.
    pub fn status(status: StatusWord) -> Self {
        Response {
            data: Vec::new(),
            status,
        }
    }

    /// Splits the raw bytes a reader returned into data and status word.
    pub fn parse(bytes: &[u8]) -> Result<Self, ApduError> {
        if bytes.len() < 2 {
            return Err(ApduError::Malformed(format!(
                "a response APDU has at least 2 octets, got {}",
                bytes.len()
            )));
        }
        let (data, sw) = bytes.split_at(bytes.len() - 2);
        Ok(Response {
            data: data.to_vec(),
            status: StatusWord(u16::from_be_bytes([sw[0], sw[1]])),
        })
    }

    /// Encodes data followed by the status word.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len() + 2);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(&self.status.0.to_be_bytes());
        out
    }
}

/// A status word, SW1 SW2.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusWord(pub u16);

impl StatusWord {
    /// `90 00`: normal processing.
    pub const SUCCESS: StatusWord = StatusWord(0x9000);
    /// `63 00`: verification failed, no retry count given.
    pub const VERIFICATION_FAILED: StatusWord = StatusWord(0x6300);
    /// `67 00`: wrong length.
    pub const WRONG_LENGTH: StatusWord = StatusWord(0x6700);
    /// `68 83`: last command of the chain expected.
    pub const LAST_COMMAND_EXPECTED: StatusWord = StatusWord(0x6883);
    /// `68 84`: command chaining not supported.
    pub const CHAINING_NOT_SUPPORTED: StatusWord = StatusWord(0x6884);
    /// `69 82`: security status not satisfied.
    pub const SECURITY_STATUS_NOT_SATISFIED: StatusWord = StatusWord(0x6982);
    /// `69 83`: authentication method blocked.
    pub const AUTHENTICATION_BLOCKED: StatusWord = StatusWord(0x6983);
    /// `69 85`: conditions of use not satisfied.
    pub const CONDITIONS_NOT_SATISFIED: StatusWord = StatusWord(0x6985);
    /// `6A 80`: incorrect parameters in the data field.
    pub const INCORRECT_DATA: StatusWord = StatusWord(0x6A80);
    /// `6A 81`: function not supported.
    pub const FUNCTION_NOT_SUPPORTED: StatusWord = StatusWord(0x6A81);
    /// `6A 82`: file or application not found.
    pub const NOT_FOUND: StatusWord = StatusWord(0x6A82);
    /// `6A 84`: not enough memory.
    pub const NOT_ENOUGH_MEMORY: StatusWord = StatusWord(0x6A84);
    /// `6A 86`: incorrect P1 or P2.
    pub const INCORRECT_P1_P2: StatusWord = StatusWord(0x6A86);
    /// `6A 88`: referenced data or reference data not found.
    pub const REFERENCED_DATA_NOT_FOUND: StatusWord = StatusWord(0x6A88);
    /// `6D 00`: instruction not supported.
    pub const INS_NOT_SUPPORTED: StatusWord = StatusWord(0x6D00);
    /// `6E 00`: class not supported.
    pub const CLA_NOT_SUPPORTED: StatusWord = StatusWord(0x6E00);
    /// `6F 00`: no precise diagnosis.
    pub const NO_PRECISE_DIAGNOSIS: StatusWord = StatusWord(0x6F00);

    /// `61 xx`: more response data is waiting; xx octets (0 = 256 or more).
    pub fn more_data(available: u8) -> Self {
        StatusWord(0x6100 | available as u16)
    }

    /// `63 Cx`: verification failed, x tries left.
    pub fn tries_left(tries: u8) -> Self {
        StatusWord(0x63C0 | (tries.min(15) as u16))
    }

    /// SW1.
    pub fn sw1(self) -> u8 {
        (self.0 >> 8) as u8
    }

    /// SW2.
    pub fn sw2(self) -> u8 {
        self.0 as u8
    }

    /// Whether this is `90 00`.
    pub fn is_success(self) -> bool {
        self == StatusWord::SUCCESS
    }

    /// For `61 xx`: how many octets the card holds for GET RESPONSE.
    pub fn more_data_available(self) -> Option<usize> {
        (self.sw1() == 0x61).then(|| match self.sw2() {
            0 => 256,
            n => n as usize,
        })
    }

    /// For `63 Cx`: the tries left.
    pub fn retries(self) -> Option<u8> {
        (self.0 & 0xFFF0 == 0x63C0).then_some(self.sw2() & 0x0F)
    }

    /// What the status word means, in the words of ISO 7816-4 and SP 800-73-4.
    pub fn meaning(self) -> String {
        if let Some(n) = self.more_data_available() {
            return format!("{n} more response octets available");
        }
        if let Some(n) = self.retries() {
            return format!("verification failed, {n} tries left");
        }
        if self.sw1() == 0x6C {
            return format!("wrong Le; {} octets available", self.sw2());
        }
        match self {
            StatusWord::SUCCESS => "success",
            StatusWord::VERIFICATION_FAILED => "verification failed",
            StatusWord::WRONG_LENGTH => "wrong length",
            StatusWord::LAST_COMMAND_EXPECTED => "last command of the chain expected",
            StatusWord::CHAINING_NOT_SUPPORTED => "command chaining not supported",
            StatusWord::SECURITY_STATUS_NOT_SATISFIED => "security status not satisfied",
            StatusWord::AUTHENTICATION_BLOCKED => "authentication method blocked",
            StatusWord::CONDITIONS_NOT_SATISFIED => "conditions of use not satisfied",
            StatusWord::INCORRECT_DATA => "incorrect parameter in the command data field",
            StatusWord::FUNCTION_NOT_SUPPORTED => "function not supported",
            StatusWord::NOT_FOUND => "data object or application not found",
            StatusWord::NOT_ENOUGH_MEMORY => "not enough memory",
            StatusWord::INCORRECT_P1_P2 => "incorrect parameter P1 or P2",
            StatusWord::REFERENCED_DATA_NOT_FOUND => "referenced data not found",
            StatusWord::INS_NOT_SUPPORTED => "instruction not supported",
            StatusWord::CLA_NOT_SUPPORTED => "class not supported",
            StatusWord::NO_PRECISE_DIAGNOSIS => "no precise diagnosis",
            _ => "unknown status",
        }
        .to_string()
    }
}

impl fmt::Display for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02X} {:02X} ({})",
            self.sw1(),
            self.sw2(),
            self.meaning()
        )
    }
}

impl fmt::Debug for StatusWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusWord({:04X})", self.0)
    }
}

/// An APDU that cannot be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApduError {
    /// The octets do not form an APDU.
    #[error("malformed APDU: {0}")]
    Malformed(String),
}

impl ApduError {
    /// Always a failure: octets that do not form an APDU.
    pub fn kind(&self) -> crate::error::ErrorKind {
        crate::error::ErrorKind::Failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_1_2_3_4_commands_encode_as_iso_7816_4_says() {
        let select = Command::new(0xA4, 0x04, 0x00, vec![0xA0, 0x00, 0x00, 0x03, 0x08]);
        assert_eq!(
            select.to_bytes(),
            [0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08]
        );
        let get = Command::new(0xCB, 0x3F, 0xFF, vec![0x5C, 0x01, 0x7E]).expect_response();
        assert_eq!(
            get.to_bytes(),
            [0x00, 0xCB, 0x3F, 0xFF, 0x03, 0x5C, 0x01, 0x7E, 0x00]
        );
        let verify_status = Command::new(0x20, 0x00, 0x80, vec![]);
        assert_eq!(verify_status.to_bytes(), [0x00, 0x20, 0x00, 0x80]);
        let get_response = Command::new(INS_GET_RESPONSE, 0, 0, vec![]).expect_response();
        assert_eq!(get_response.to_bytes(), [0x00, 0xC0, 0x00, 0x00, 0x00]);
    }

    #[test]
    fn long_data_is_chained_in_255_octet_pieces_with_le_only_on_the_last() {
        let data: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        let put = Command::new(0xDB, 0x3F, 0xFF, data.clone()).expect_response();
        let chain = put.to_chain();
        assert_eq!(chain.len(), 3);
        assert_eq!(&chain[0][..5], &[0x10, 0xDB, 0x3F, 0xFF, 0xFF]);
        assert_eq!(chain[0].len(), 5 + 255);
        assert_eq!(&chain[1][..5], &[0x10, 0xDB, 0x3F, 0xFF, 0xFF]);
        assert_eq!(&chain[2][..5], &[0x00, 0xDB, 0x3F, 0xFF, 90]);
        assert_eq!(chain[2].last(), Some(&0x00), "Le on the last command only");
        let rejoined: Vec<u8> = chain
            .iter()
            .flat_map(|apdu| Command::parse(apdu).unwrap().data)
            .collect();
        assert_eq!(rejoined, data);
        assert!(Command::parse(&chain[0]).unwrap().is_chained());
        assert!(!Command::parse(&chain[2]).unwrap().is_chained());
    }

    #[test]
    fn commands_decode_in_every_case_including_extended_length() {
        let parsed = Command::parse(&[0x00, 0x20, 0x00, 0x80]).unwrap();
        assert_eq!((parsed.ins, parsed.data.len(), parsed.le), (0x20, 0, None));
        let parsed = Command::parse(&[0x00, 0xC0, 0x00, 0x00, 0x00]).unwrap();
        assert_eq!(parsed.le, Some(256));
        let parsed = Command::parse(&[0x00, 0x87, 0x03, 0x9B, 0x02, 0x7C, 0x00, 0x00]).unwrap();
        assert_eq!((parsed.data, parsed.le), (vec![0x7C, 0x00], Some(256)));
        let mut extended = vec![0x00, 0xDB, 0x3F, 0xFF, 0x00, 0x01, 0x2C];
        extended.extend(std::iter::repeat_n(0xAB, 300));
        let parsed = Command::parse(&extended).unwrap();
        assert_eq!(parsed.data.len(), 300);
        assert!(Command::parse(&[0x00, 0xA4, 0x04]).is_err());
        assert!(Command::parse(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0]).is_err());
    }

    #[test]
    fn responses_split_into_data_and_status() {
        let response = Response::parse(&[0x01, 0x02, 0x61, 0x10]).unwrap();
        assert_eq!(response.data, [0x01, 0x02]);
        assert_eq!(response.status.more_data_available(), Some(16));
        assert_eq!(
            Response::parse(&[0x61, 0x00])
                .unwrap()
                .status
                .more_data_available(),
            Some(256)
        );
        assert!(Response::parse(&[0x90]).is_err());
        assert_eq!(Response::ok(vec![7]).to_bytes(), [7, 0x90, 0x00]);
    }

    #[test]
    fn every_status_word_has_its_meaning() {
        let table = [
            (0x9000, "success"),
            (0x6300, "verification failed"),
            (0x63C2, "verification failed, 2 tries left"),
            (0x6110, "16 more response octets available"),
            (0x6C20, "wrong Le; 32 octets available"),
            (0x6700, "wrong length"),
            (0x6883, "last command of the chain expected"),
            (0x6884, "command chaining not supported"),
            (0x6982, "security status not satisfied"),
            (0x6983, "authentication method blocked"),
            (0x6985, "conditions of use not satisfied"),
            (0x6A80, "incorrect parameter in the command data field"),
            (0x6A81, "function not supported"),
            (0x6A82, "data object or application not found"),
            (0x6A84, "not enough memory"),
            (0x6A86, "incorrect parameter P1 or P2"),
            (0x6A88, "referenced data not found"),
            (0x6D00, "instruction not supported"),
            (0x6E00, "class not supported"),
            (0x6F00, "no precise diagnosis"),
            (0x6401, "unknown status"),
        ];
        for (sw, meaning) in table {
            assert_eq!(StatusWord(sw).meaning(), meaning, "{sw:04X}");
        }
        assert_eq!(StatusWord::tries_left(3).retries(), Some(3));
        assert_eq!(StatusWord::tries_left(0), StatusWord(0x63C0));
        assert_eq!(StatusWord(0x6300).retries(), None);
        assert_eq!(
            StatusWord(0x6983).to_string(),
            "69 83 (authentication method blocked)"
        );
    }

    #[test]
    fn debug_output_never_shows_command_data() {
        let verify = Command::new(0x20, 0x00, 0x80, b"123456\xFF\xFF".to_vec());
        let shown = format!("{verify:?}");
        assert!(
            !shown.contains("123456") && !shown.contains("49, 50"),
            "{shown}"
        );
    }
}
