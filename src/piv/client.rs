//! The PIV client: the card operations certmint needs, over any
//! [`Transport`] that carries one APDU and brings back its response.
//!
//! Every operation checks the status word and turns it into a typed
//! [`PivError`]. Long commands are chained and long responses collected with
//! GET RESPONSE here, once, for every operation. The PIN is never tried
//! blindly: [`PivClient::verify_pin`] first reads the retry counter without
//! spending a try and stops on the first refusal.

use aws_lc_rs::rand;

use super::apdu::{Command, Response, StatusWord};
use super::mgmt::{ManagementKey, MgmtKeyError};
use super::{
    ins, key_reference, pin_block, spki_from_key_template, tlv, Algorithm, PinFormatError, Slot,
    PIV_AID_PREFIX,
};
use crate::pkcs11::pin::Pin;

/// The most response data one operation collects with GET RESPONSE: the
/// largest PIV data object fits well within it (SP 800-73-4 Part 1
/// Appendix A), and so does the largest extended-length response.
pub const MAX_RESPONSE_DATA: usize = 65_536;

/// The most GET RESPONSE commands one operation sends: a card that keeps
/// answering `61 xx` with little or no data must not keep certmint busy for
/// ever (256 rounds of 256 octets are [`MAX_RESPONSE_DATA`]; this leaves
/// room for cards that send smaller pieces).
pub const MAX_GET_RESPONSES: usize = 1_024;

/// Carries one short command APDU to the card and returns the raw response
/// (data followed by SW1 SW2).
pub trait Transport {
    /// Sends `apdu`; an error means the card could not be reached.
    fn transmit(&mut self, apdu: &[u8]) -> Result<Vec<u8>, PivError>;
}

/// Why a card operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PivError {
    /// The card left the reader (or was reset, or lost contact) during the
    /// operation.
    #[error("the card was removed from the reader (or lost contact with it)")]
    CardRemoved,
    /// The reader or the PC/SC service failed.
    #[error("reader: {0}")]
    Reader(String),
    /// The card is in the reader but the reader cannot talk to it: it does
    /// not answer the reset (a dead chip, dirty contacts, inserted the
    /// wrong way round) or speaks no protocol the reader knows. Another
    /// card may well work.
    #[error("the card does not answer the reader: {0}; try another card")]
    CardUnusable(&'static str),
    /// The card does not answer to the PIV application identifier.
    #[error("the card has no PIV application")]
    NoPivApplication,
    /// A wrong PIN or PUK; one try was spent.
    #[error("wrong {what}: {tries_left} tries left; certmint does not try again")]
    WrongSecret {
        /// "PIN" or "PUK".
        what: &'static str,
        /// Tries the card has left.
        tries_left: u8,
    },
    /// The PIN or PUK is blocked; no try was spent.
    #[error("the {what} is blocked (69 83); the card must be unblocked before use")]
    Blocked {
        /// "PIN" or "PUK".
        what: &'static str,
    },
    /// The card refused the management key.
    #[error("the card refused the management key")]
    ManagementKeyRefused,
    /// The card answered an operation with an error status.
    #[error("{operation}: the card answered {status}")]
    Status {
        /// What was being done.
        operation: &'static str,
        /// The status word.
        status: StatusWord,
    },
    /// The card's answer could not be understood.
    #[error("{operation}: {detail}")]
    Malformed {
        /// What was being done.
        operation: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A PIN or PUK of the wrong form.
    #[error(transparent)]
    PinFormat(#[from] PinFormatError),
    /// A management key of the wrong form.
    #[error(transparent)]
    ManagementKey(#[from] MgmtKeyError),
}

impl PivError {
    /// What the card refused is [`TokenRefused`](crate::error::ErrorKind::TokenRefused);
    /// a secret of the wrong form is invalid input; a card that left, a
    /// reader or an answer that cannot be read is a failure.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            PivError::WrongSecret { .. }
            | PivError::Blocked { .. }
            | PivError::ManagementKeyRefused
            | PivError::NoPivApplication
            | PivError::CardUnusable(_) => ErrorKind::TokenRefused,
            PivError::PinFormat(e) => e.kind(),
            PivError::ManagementKey(e) => e.kind(),
            PivError::CardRemoved
            | PivError::Reader(_)
            | PivError::Status { .. }
            | PivError::Malformed { .. } => ErrorKind::Failure,
        }
    }
}

/// The state of a PIN or PUK, read without spending a try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryState {
    /// Already verified in this card session.
    Verified,
    /// Not verified; this many tries left.
    TriesLeft(u8),
    /// Blocked.
    Blocked,
}

/// A PIV card session over `T`.
pub struct PivClient<T: Transport> {
    transport: T,
}

impl<T: Transport> PivClient<T> {
    /// A client over `transport`. Nothing is sent until the first call.
    pub fn new(transport: T) -> Self {
        PivClient { transport }
    }

    /// Gives the transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// Sends `command` (chained if long) and collects the whole response
    /// (GET RESPONSE while the card says `61 xx`). The final status word is
    /// returned as it is, for the caller to judge.
    pub fn exchange(
        &mut self,
        operation: &'static str,
        command: &Command,
    ) -> Result<Response, PivError> {
        let chain = command.to_chain();
        let last = chain.len() - 1;
        let mut response = None;
        for (i, apdu) in chain.iter().enumerate() {
            let reply = self.transmit(operation, apdu)?;
            if i < last && !reply.status.is_success() {
                return Err(PivError::Status {
                    operation,
                    status: reply.status,
                });
            }
            response = Some(reply);
        }
        let mut response = response.ok_or(PivError::Malformed {
            operation,
            detail: "empty command chain".into(),
        })?;
        let mut data = std::mem::take(&mut response.data);
        let mut rounds = 0;
        while let Some(available) = response.status.more_data_available() {
            rounds += 1;
            if rounds > MAX_GET_RESPONSES || data.len() > MAX_RESPONSE_DATA {
                return Err(PivError::Malformed {
                    operation,
                    detail: format!(
                        "the card still announced more data (61 xx) after {} octets in {} \
                         GET RESPONSE rounds",
                        data.len(),
                        rounds - 1
                    ),
                });
            }
            let get_response = Command {
                le: Some(available as u16),
                ..Command::new(ins::GET_RESPONSE, 0x00, 0x00, Vec::new())
            };
            response = self.transmit(operation, &get_response.to_bytes())?;
            data.append(&mut response.data);
        }
        Ok(Response {
            data,
            status: response.status,
        })
    }

    fn transmit(&mut self, operation: &'static str, apdu: &[u8]) -> Result<Response, PivError> {
        let raw = self.transport.transmit(apdu)?;
        Response::parse(&raw).map_err(|e| PivError::Malformed {
            operation,
            detail: e.to_string(),
        })
    }

    /// Sends `command` and requires `90 00`; returns the response data.
    fn call(&mut self, operation: &'static str, command: &Command) -> Result<Vec<u8>, PivError> {
        let response = self.exchange(operation, command)?;
        if response.status.is_success() {
            Ok(response.data)
        } else {
            Err(PivError::Status {
                operation,
                status: response.status,
            })
        }
    }

    /// SELECTs the PIV application; returns its application property template.
    pub fn select(&mut self) -> Result<Vec<u8>, PivError> {
        let command =
            Command::new(ins::SELECT, 0x04, 0x00, PIV_AID_PREFIX.to_vec()).expect_response();
        let response = self.exchange("SELECT PIV", &command)?;
        match response.status {
            StatusWord::SUCCESS => Ok(response.data),
            StatusWord::NOT_FOUND => Err(PivError::NoPivApplication),
            status => Err(PivError::Status {
                operation: "SELECT PIV",
                status,
            }),
        }
    }

    /// Reads the state of the PIN (`reference` 80) with an empty VERIFY,
    /// which spends no try (SP 800-73-4 Part 2 §3.2.1). VERIFY knows no PUK
    /// reference: a card answers 81 with 6A 88.
    pub fn retry_state(&mut self, reference: u8) -> Result<RetryState, PivError> {
        let command = Command::new(ins::VERIFY, 0x00, reference, Vec::new());
        let response = self.exchange("read the retry counter", &command)?;
        match response.status {
            StatusWord::SUCCESS => Ok(RetryState::Verified),
            StatusWord::AUTHENTICATION_BLOCKED => Ok(RetryState::Blocked),
            status => match status.retries() {
                Some(0) => Ok(RetryState::Blocked),
                Some(n) => Ok(RetryState::TriesLeft(n)),
                None => Err(PivError::Status {
                    operation: "read the retry counter",
                    status,
                }),
            },
        }
    }

    /// Verifies the PIN. A blocked PIN is reported without sending it; a
    /// wrong PIN spends exactly one try and is reported with the tries left.
    pub fn verify_pin(&mut self, pin: &Pin) -> Result<(), PivError> {
        if self.retry_state(key_reference::PIN)? == RetryState::Blocked {
            return Err(PivError::Blocked { what: "PIN" });
        }
        let block = pin_block(pin.expose().as_bytes())?;
        let command = Command::new(ins::VERIFY, 0x00, key_reference::PIN, block.to_vec());
        let response = self.exchange("VERIFY PIN", &command)?;
        secret_outcome("PIN", "VERIFY PIN", response.status)
    }

    /// Changes the PIN (`reference` 80) or the PUK (81) from `old` to `new`
    /// with CHANGE REFERENCE DATA. A wrong `old` spends one try.
    pub fn change_secret(&mut self, reference: u8, old: &Pin, new: &Pin) -> Result<(), PivError> {
        let what = if reference == key_reference::PUK {
            "PUK"
        } else {
            "PIN"
        };
        // Only the PIN's counter can be read without spending a try: VERIFY
        // takes no PUK reference (SP 800-73-4 Part 2 §3.2.1; a card answers
        // 6A 88). A blocked PUK is refused by the card itself with 69 83,
        // before any try is spent.
        if reference == key_reference::PIN && self.retry_state(reference)? == RetryState::Blocked {
            return Err(PivError::Blocked { what });
        }
        let mut data = zeroize::Zeroizing::new(pin_block(old.expose().as_bytes())?.to_vec());
        data.extend_from_slice(&*pin_block(new.expose().as_bytes())?);
        let command = Command::new(ins::CHANGE_REFERENCE_DATA, 0x00, reference, data.to_vec());
        let response = self.exchange("CHANGE REFERENCE DATA", &command);
        // The command held both secrets; wipe its copy whatever happened.
        drop(command);
        secret_outcome(what, "CHANGE REFERENCE DATA", response?.status)
    }

    /// Authenticates the card management key by mutual challenge–response
    /// (SP 800-73-4 Part 2 Appendix A.1): the card proves it holds the key by
    /// encrypting a witness, then this side proves it by encrypting the
    /// card's challenge. Both directions are checked.
    pub fn authenticate_management_key(&mut self, key: &ManagementKey) -> Result<(), PivError> {
        const OPERATION: &str = "management key authentication";
        let algorithm = key.algorithm();
        let request_witness = Command::new(
            ins::GENERAL_AUTHENTICATE,
            algorithm.id(),
            key_reference::MANAGEMENT,
            tlv::encode(&[0x7C], &tlv::encode(&[0x80], &[])),
        )
        .expect_response();
        let response = self.exchange(OPERATION, &request_witness)?;
        match response.status {
            StatusWord::SUCCESS => {}
            StatusWord::AUTHENTICATION_BLOCKED => return Err(PivError::ManagementKeyRefused),
            status => {
                return Err(PivError::Status {
                    operation: OPERATION,
                    status,
                })
            }
        }
        let encrypted_witness = dynamic_field(OPERATION, &response.data, 0x80)?;
        let witness = key.decrypt_block(&encrypted_witness)?;
        let mut challenge = vec![0u8; algorithm.block_len()];
        rand::fill(&mut challenge).map_err(|_| PivError::Malformed {
            operation: OPERATION,
            detail: "the random number generator failed".into(),
        })?;
        let mut fields = tlv::encode(&[0x80], &witness);
        fields.extend(tlv::encode(&[0x81], &challenge));
        fields.extend(tlv::encode(&[0x82], &[]));
        let answer = Command::new(
            ins::GENERAL_AUTHENTICATE,
            algorithm.id(),
            key_reference::MANAGEMENT,
            tlv::encode(&[0x7C], &fields),
        )
        .expect_response();
        let response = self.exchange(OPERATION, &answer)?;
        match response.status {
            StatusWord::SUCCESS => {}
            StatusWord::SECURITY_STATUS_NOT_SATISFIED
            | StatusWord::INCORRECT_DATA
            | StatusWord::AUTHENTICATION_BLOCKED => return Err(PivError::ManagementKeyRefused),
            status => {
                return Err(PivError::Status {
                    operation: OPERATION,
                    status,
                })
            }
        }
        let card_answer = dynamic_field(OPERATION, &response.data, 0x82)?;
        if card_answer != key.encrypt_block(&challenge)? {
            return Err(PivError::Malformed {
                operation: OPERATION,
                detail: "the card's answer to our challenge is wrong: it does not hold this management key".into(),
            });
        }
        Ok(())
    }

    /// Generates a key pair of `algorithm` in `slot` on the card and returns
    /// its public key as a SubjectPublicKeyInfo. The private key never leaves
    /// the card.
    pub fn generate_key(&mut self, slot: Slot, algorithm: Algorithm) -> Result<Vec<u8>, PivError> {
        const OPERATION: &str = "GENERATE ASYMMETRIC KEY PAIR";
        let template = tlv::encode(&[0xAC], &tlv::encode(&[0x80], &[algorithm.id()]));
        let command = Command::new(
            ins::GENERATE_ASYMMETRIC_KEY_PAIR,
            0x00,
            slot.key_reference(),
            template,
        )
        .expect_response();
        let data = self.call(OPERATION, &command)?;
        spki_from_key_template(algorithm, &data).map_err(|detail| PivError::Malformed {
            operation: OPERATION,
            detail,
        })
    }

    /// Writes `certificate` (DER) into the certificate object of `slot`,
    /// uncompressed, with an empty error detection code.
    pub fn put_certificate(&mut self, slot: Slot, certificate: &[u8]) -> Result<(), PivError> {
        let mut body = tlv::encode(&[0x70], certificate);
        body.extend(tlv::encode(&[0x71], &[0x00]));
        body.extend(tlv::encode(&[0xFE], &[]));
        self.put_object(&slot.certificate_object(), &body)
    }

    /// PUT DATA of one data object: `5C <id> 53 <contents>`.
    pub fn put_object(&mut self, id: &[u8], contents: &[u8]) -> Result<(), PivError> {
        let mut data = tlv::encode(&[0x5C], id);
        data.extend(tlv::encode(&[0x53], contents));
        let command = Command::new(ins::PUT_DATA, 0x3F, 0xFF, data);
        self.call("PUT DATA", &command).map(drop)
    }

    /// GET DATA of one data object; `None` when the card has none.
    pub fn get_object(&mut self, id: &[u8]) -> Result<Option<Vec<u8>>, PivError> {
        const OPERATION: &str = "GET DATA";
        let command =
            Command::new(ins::GET_DATA, 0x3F, 0xFF, tlv::encode(&[0x5C], id)).expect_response();
        let response = self.exchange(OPERATION, &command)?;
        match response.status {
            StatusWord::SUCCESS => {}
            StatusWord::NOT_FOUND => return Ok(None),
            status => {
                return Err(PivError::Status {
                    operation: OPERATION,
                    status,
                })
            }
        }
        let contents = tlv::find(&response.data, &[0x53])
            .map_err(|e| malformed(OPERATION, e))?
            .ok_or_else(|| malformed(OPERATION, "the object is not wrapped in tag 53"))?;
        Ok(Some(contents.to_vec()))
    }

    /// The DER certificate in `slot`, if there is one.
    pub fn get_certificate(&mut self, slot: Slot) -> Result<Option<Vec<u8>>, PivError> {
        let Some(contents) = self.get_object(&slot.certificate_object())? else {
            return Ok(None);
        };
        let certinfo = tlv::find(&contents, &[0x71]).map_err(|e| malformed("GET DATA", e))?;
        if certinfo.is_some_and(|info| info.first().is_some_and(|b| b & 0x01 != 0)) {
            return Err(malformed(
                "GET DATA",
                "the certificate is stored compressed",
            ));
        }
        let certificate = tlv::find(&contents, &[0x70])
            .map_err(|e| malformed("GET DATA", e))?
            .ok_or_else(|| {
                malformed("GET DATA", "the certificate object has no certificate (70)")
            })?;
        Ok(Some(certificate.to_vec()))
    }

    /// Signs with the key in `slot`: `input` is what [`super::signing_input`]
    /// makes. Returns the DER ECDSA signature or the RSA signature block.
    /// The PIN must have been verified in this card session.
    pub fn sign(
        &mut self,
        slot: Slot,
        algorithm: Algorithm,
        input: &[u8],
    ) -> Result<Vec<u8>, PivError> {
        const OPERATION: &str = "GENERAL AUTHENTICATE (sign)";
        let mut fields = tlv::encode(&[0x82], &[]);
        fields.extend(tlv::encode(&[0x81], input));
        let command = Command::new(
            ins::GENERAL_AUTHENTICATE,
            algorithm.id(),
            slot.key_reference(),
            tlv::encode(&[0x7C], &fields),
        )
        .expect_response();
        let data = self.call(OPERATION, &command)?;
        dynamic_field(OPERATION, &data, 0x82)
    }
}

/// The outcome of a VERIFY or CHANGE REFERENCE DATA: one refusal is final.
fn secret_outcome(
    what: &'static str,
    operation: &'static str,
    status: StatusWord,
) -> Result<(), PivError> {
    match status {
        StatusWord::SUCCESS => Ok(()),
        StatusWord::AUTHENTICATION_BLOCKED => Err(PivError::Blocked { what }),
        status => match status.retries() {
            Some(0) => Err(PivError::Blocked { what }),
            Some(tries_left) => Err(PivError::WrongSecret { what, tries_left }),
            None => Err(PivError::Status { operation, status }),
        },
    }
}

/// The value of `tag` inside the dynamic authentication template (7C).
fn dynamic_field(operation: &'static str, data: &[u8], tag: u8) -> Result<Vec<u8>, PivError> {
    let template = tlv::find(data, &[0x7C])
        .map_err(|e| malformed(operation, e))?
        .ok_or_else(|| malformed(operation, "no dynamic authentication template (7C)"))?;
    let value = tlv::find(template, &[tag])
        .map_err(|e| malformed(operation, e))?
        .ok_or_else(|| malformed(operation, format!("no field {tag:02X} in the template")))?;
    Ok(value.to_vec())
}

fn malformed(operation: &'static str, detail: impl ToString) -> PivError {
    PivError::Malformed {
        operation,
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_status_words_become_typed_outcomes() {
        let outcome = |sw: u16| secret_outcome("PIN", "VERIFY PIN", StatusWord(sw));
        assert!(outcome(0x9000).is_ok());
        assert!(matches!(
            outcome(0x63C2),
            Err(PivError::WrongSecret {
                what: "PIN",
                tries_left: 2
            })
        ));
        assert!(matches!(
            outcome(0x63C0),
            Err(PivError::Blocked { what: "PIN" })
        ));
        assert!(matches!(
            outcome(0x6983),
            Err(PivError::Blocked { what: "PIN" })
        ));
        assert!(matches!(
            outcome(0x6A80),
            Err(PivError::Status {
                status: StatusWord::INCORRECT_DATA,
                ..
            })
        ));
        let message = outcome(0x63C1).unwrap_err().to_string();
        assert_eq!(
            message,
            "wrong PIN: 1 tries left; certmint does not try again"
        );
    }

    /// A card that answers every command with `61 01` and no data (as the
    /// `piv_card` fuzz target's scripted card can): the operation ends with
    /// a malformed-answer error after at most [`MAX_GET_RESPONSES`] GET
    /// RESPONSE rounds instead of asking for the rest for ever.
    #[test]
    fn a_card_that_always_announces_more_data_is_refused() {
        struct Stuck(usize);
        impl Transport for Stuck {
            fn transmit(&mut self, _apdu: &[u8]) -> Result<Vec<u8>, PivError> {
                self.0 += 1;
                // Far more rounds than any limit: without one, a test failure.
                if self.0 > 100 * MAX_GET_RESPONSES {
                    return Err(PivError::CardRemoved);
                }
                Ok(vec![0x61, 0x01])
            }
        }
        let mut client = PivClient::new(Stuck(0));
        assert!(matches!(
            client.select(),
            Err(PivError::Malformed {
                operation: "SELECT PIV",
                ..
            })
        ));
        assert_eq!(client.into_transport().0, 1 + MAX_GET_RESPONSES);
    }

    /// A card that announces more data for ever while sending a full piece
    /// each time is stopped once the data passes [`MAX_RESPONSE_DATA`].
    #[test]
    fn a_card_that_sends_data_for_ever_is_refused() {
        struct Endless(usize);
        impl Transport for Endless {
            fn transmit(&mut self, _apdu: &[u8]) -> Result<Vec<u8>, PivError> {
                self.0 += 1;
                if self.0 > 100 * MAX_GET_RESPONSES {
                    return Err(PivError::CardRemoved);
                }
                let mut answer = vec![0xAA; 256];
                answer.extend_from_slice(&[0x61, 0x00]);
                Ok(answer)
            }
        }
        let mut client = PivClient::new(Endless(0));
        assert!(matches!(client.select(), Err(PivError::Malformed { .. })));
        assert!(client.into_transport().0 <= 2 + MAX_RESPONSE_DATA / 256);
    }

    #[test]
    fn dynamic_authentication_templates_are_read_and_refused_when_malformed() {
        let data = tlv::encode(&[0x7C], &tlv::encode(&[0x82], &[1, 2, 3]));
        assert_eq!(dynamic_field("sign", &data, 0x82).unwrap(), [1, 2, 3]);
        assert!(matches!(
            dynamic_field("sign", &data, 0x80),
            Err(PivError::Malformed { .. })
        ));
        assert!(matches!(
            dynamic_field("sign", &[0x7C, 0x05, 0x82], 0x82),
            Err(PivError::Malformed { .. })
        ));
    }
}
