//! The PIV card application of the virtual card: one [`VirtualCard`] is the
//! whole card, its persistent memory (PIN, PUK, management key, slot keys,
//! data objects, retry counters) and its volatile session (selection,
//! security status, pending command chain and response).
//!
//! Behaviour follows SP 800-73-4 Part 2 §3 command by command; where the
//! specification leaves a choice, the choice is written next to the code.

use std::collections::BTreeMap;
use std::fmt;

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, RsaEncoding, RsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING,
    ECDSA_P384_SHA384_ASN1_SIGNING, RSA_PKCS1_SHA256, RSA_PKCS1_SHA384, RSA_PKCS1_SHA512,
};
use aws_lc_rs::{constant_time, rand};
use zeroize::Zeroizing;

use super::objects::{self, ReadRule};
use super::VcardError;
use crate::piv::apdu::{Command, Response, StatusWord, CLA_CHAINING, INS_GET_RESPONSE};
use crate::piv::mgmt::ManagementKey;
use crate::piv::mgmt::MgmtAlgorithm;
use crate::piv::{
    ins, key_reference, key_template_from_spki, pin_block, tlv, Algorithm, Slot, PIV_AID,
};

/// Length of the NIST registered application provider identifier, the
/// shortest truncated AID that selects the PIV application.
const NIST_RID_LEN: usize = 5;

/// The longest command data a chain may accumulate, and the longest data
/// object the card stores: bounded so a runaway client cannot exhaust
/// memory. Larger than any SP 800-73-4 container a rehearsal needs.
pub const MAX_OBJECT_LEN: usize = 16 * 1024;

/// The factory settings of a virtual card: the values an operator rehearses
/// with, never production secrets.
#[derive(Clone)]
pub struct CardConfig {
    /// The card management key (9B) and its algorithm.
    pub management_key: ManagementKey,
    /// The PIN: 6 to 8 digits.
    pub pin: Zeroizing<String>,
    /// The PUK: 6 to 8 characters.
    pub puk: Zeroizing<String>,
    /// PIN tries before it blocks (1 to 15).
    pub pin_tries: u8,
    /// PUK tries before it blocks (1 to 15).
    pub puk_tries: u8,
}

impl Default for CardConfig {
    /// The usual factory settings: 3DES key `0102…08` three times, PIN
    /// 123456, PUK 12345678, three tries each.
    fn default() -> Self {
        CardConfig {
            management_key: ManagementKey::factory(MgmtAlgorithm::TripleDes),
            pin: Zeroizing::new("123456".into()),
            puk: Zeroizing::new("12345678".into()),
            pin_tries: 3,
            puk_tries: 3,
        }
    }
}

impl fmt::Debug for CardConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "CardConfig({:?}, PIN and PUK <redacted>, tries {}/{})",
            self.management_key, self.pin_tries, self.puk_tries
        )
    }
}

/// A PIN or PUK with its retry counter.
struct Secret {
    block: Zeroizing<[u8; 8]>,
    tries_left: u8,
    max_tries: u8,
}

impl Secret {
    fn is_blocked(&self) -> bool {
        self.tries_left == 0
    }

    /// Compares in constant time, so the answer's timing says nothing.
    fn matches(&self, candidate: &[u8]) -> bool {
        constant_time::verify_slices_are_equal(&self.block[..], candidate).is_ok()
    }

    /// Spends one try; returns `63 Cx` with the tries left.
    fn spend_try(&mut self) -> StatusWord {
        self.tries_left = self.tries_left.saturating_sub(1);
        StatusWord::tries_left(self.tries_left)
    }

    fn replace(&mut self, block: &[u8]) {
        self.block.copy_from_slice(block);
        self.tries_left = self.max_tries;
    }
}

/// A key pair living in a slot.
enum SlotKey {
    Ec {
        algorithm: Algorithm,
        pair: EcdsaKeyPair,
    },
    Rsa(RsaKeyPair),
}

impl SlotKey {
    fn algorithm(&self) -> Algorithm {
        match self {
            SlotKey::Ec { algorithm, .. } => *algorithm,
            SlotKey::Rsa(_) => Algorithm::Rsa2048,
        }
    }
}

/// The challenge of a management-key authentication in progress: it is
/// valid for the very next command only.
enum PendingAuthentication {
    /// Mutual: the plain witness the client must send back decrypted.
    Witness(Zeroizing<Vec<u8>>),
    /// One-way: the challenge the client must send back encrypted.
    Challenge(Zeroizing<Vec<u8>>),
}

/// Data of a command chain received so far.
struct Chain {
    ins: u8,
    p1: u8,
    p2: u8,
    data: Vec<u8>,
}

/// Volatile state, lost at every reset or power cycle.
#[derive(Default)]
struct Session {
    piv_selected: bool,
    pin_verified: bool,
    /// "PIN Always" for the 9C key (SP 800-73-4 Part 1 Table 4b): set by
    /// each successful PIN presentation, spent by one 9C signature.
    signature_pin_fresh: bool,
    management_authenticated: bool,
    pending_authentication: Option<PendingAuthentication>,
    chain: Option<Chain>,
    pending_response: Vec<u8>,
}

/// The result of one command: data for `90 00`, or an error status.
type Outcome = Result<Vec<u8>, StatusWord>;

/// A virtual PIV card: feed it command APDUs with [`VirtualCard::process`].
pub struct VirtualCard {
    pin: Secret,
    puk: Secret,
    management_key: ManagementKey,
    keys: BTreeMap<Slot, SlotKey>,
    /// Data objects by identifier, each stored as GET DATA returns it
    /// (`53 L contents`, or the whole `7E` / `7F61` object).
    objects: BTreeMap<Vec<u8>, Vec<u8>>,
    session: Session,
}

impl fmt::Debug for VirtualCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VirtualCard(keys in {:?}, {} data objects)",
            self.keys.keys().collect::<Vec<_>>(),
            self.objects.len()
        )
    }
}

impl VirtualCard {
    /// A factory-fresh card with `config`: no keys, a fresh CHUID, CCC and
    /// discovery object.
    pub fn new(config: &CardConfig) -> Result<Self, VcardError> {
        if !config.pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(VcardError::PinNotDigits);
        }
        let pin = pin_block(config.pin.as_bytes()).map_err(VcardError::Pin)?;
        let puk = pin_block(config.puk.as_bytes()).map_err(VcardError::Puk)?;
        for tries in [config.pin_tries, config.puk_tries] {
            if !(1..=15).contains(&tries) {
                return Err(VcardError::Tries(tries));
            }
        }
        let random_failed = |_| VcardError::Random;
        let expires = time::OffsetDateTime::now_utc().year() + 5;
        let mut objects = BTreeMap::new();
        objects.insert(
            crate::piv::object::CHUID.to_vec(),
            tlv::encode(&[0x53], &objects::chuid(expires).map_err(random_failed)?),
        );
        objects.insert(
            crate::piv::object::CCC.to_vec(),
            tlv::encode(&[0x53], &objects::ccc().map_err(random_failed)?),
        );
        objects.insert(crate::piv::object::DISCOVERY.to_vec(), objects::discovery());
        Ok(VirtualCard {
            pin: Secret {
                block: pin,
                tries_left: config.pin_tries,
                max_tries: config.pin_tries,
            },
            puk: Secret {
                block: puk,
                tries_left: config.puk_tries,
                max_tries: config.puk_tries,
            },
            management_key: config.management_key.clone(),
            keys: BTreeMap::new(),
            objects,
            session: Session::default(),
        })
    }

    /// A power cycle or warm reset: the security status, the selection and
    /// any pending chain or response are lost; keys, objects and retry
    /// counters stay.
    pub fn reset(&mut self) {
        self.session = Session::default();
    }

    /// Processes one command APDU and returns the response APDU (data
    /// followed by SW1 SW2).
    pub fn process(&mut self, command_apdu: &[u8]) -> Vec<u8> {
        self.respond(command_apdu).to_bytes()
    }

    fn respond(&mut self, command_apdu: &[u8]) -> Response {
        let Ok(command) = Command::parse(command_apdu) else {
            self.abandon_pending();
            return Response::status(StatusWord::WRONG_LENGTH);
        };
        // Only the basic logical channel, no secure messaging: CLA 00, and
        // 10 for a link of a chain.
        if command.cla & !CLA_CHAINING != 0x00 {
            self.abandon_pending();
            return Response::status(StatusWord::CLA_NOT_SUPPORTED);
        }
        if command.ins == INS_GET_RESPONSE {
            return self.get_response(&command);
        }
        // A response not fetched at once is gone (ISO 7816-4 §5.3.4).
        self.session.pending_response.clear();
        // A management-key challenge is valid for the next command only.
        if !(command.ins == ins::GENERAL_AUTHENTICATE && command.p2 == key_reference::MANAGEMENT) {
            self.session.pending_authentication = None;
        }
        let data = match self.chain(&command) {
            Ok(Some(data)) => data,
            Ok(None) => return Response::ok(Vec::new()),
            Err(status) => return Response::status(status),
        };
        match self.execute(&command, &data) {
            Ok(data) => self.send_data(data, command.le),
            Err(status) => Response::status(status),
        }
    }

    fn abandon_pending(&mut self) {
        self.session.chain = None;
        self.session.pending_response.clear();
    }

    /// Command chaining (ISO 7816-4 §5.3.3): collects the data of every
    /// link; returns the whole data at the last link, `None` before it.
    /// A command with another header abandons a chain in progress and is
    /// processed on its own, as a client that started over expects.
    fn chain(&mut self, command: &Command) -> Result<Option<Vec<u8>>, StatusWord> {
        let continues = self
            .session
            .chain
            .as_ref()
            .is_some_and(|c| (c.ins, c.p1, c.p2) == (command.ins, command.p1, command.p2));
        let mut data = if continues {
            self.session
                .chain
                .take()
                .map(|c| c.data)
                .unwrap_or_default()
        } else {
            self.session.chain = None;
            Vec::new()
        };
        data.extend_from_slice(&command.data);
        // The 64 octets leave room for the tags and lengths around an object.
        if data.len() > MAX_OBJECT_LEN + 64 {
            return Err(StatusWord::NOT_ENOUGH_MEMORY);
        }
        if command.is_chained() {
            self.session.chain = Some(Chain {
                ins: command.ins,
                p1: command.p1,
                p2: command.p2,
                data,
            });
            return Ok(None);
        }
        Ok(Some(data))
    }

    /// Sends as much of `data` as Le allows (256 for a short Le of 00 or no
    /// Le), keeping the rest for GET RESPONSE behind `61 xx`.
    fn send_data(&mut self, mut data: Vec<u8>, le: Option<u16>) -> Response {
        let limit = le.map_or(256, usize::from).max(1);
        if data.len() <= limit {
            return Response::ok(data);
        }
        let rest = data.split_off(limit);
        let status = more_data_status(rest.len());
        self.session.pending_response = rest;
        Response { data, status }
    }

    fn get_response(&mut self, command: &Command) -> Response {
        self.session.chain = None;
        if (command.p1, command.p2) != (0x00, 0x00) {
            self.session.pending_response.clear();
            return Response::status(StatusWord::INCORRECT_P1_P2);
        }
        if self.session.pending_response.is_empty() {
            return Response::status(StatusWord::CONDITIONS_NOT_SATISFIED);
        }
        let limit = command.le.map_or(256, usize::from).max(1);
        let pending = &mut self.session.pending_response;
        let take = limit.min(pending.len());
        let data: Vec<u8> = pending.drain(..take).collect();
        let status = if pending.is_empty() {
            StatusWord::SUCCESS
        } else {
            more_data_status(pending.len())
        };
        Response { data, status }
    }

    fn execute(&mut self, command: &Command, data: &[u8]) -> Outcome {
        if command.ins == ins::SELECT {
            return self.select(command, data);
        }
        // Without the PIV application selected the card has no application
        // that knows any other instruction.
        if !self.session.piv_selected {
            return Err(StatusWord::INS_NOT_SUPPORTED);
        }
        match command.ins {
            ins::VERIFY => self.verify(command, data),
            ins::CHANGE_REFERENCE_DATA => self.change_reference_data(command, data),
            ins::RESET_RETRY_COUNTER => self.reset_retry_counter(command, data),
            ins::GENERAL_AUTHENTICATE => self.general_authenticate(command, data),
            ins::GENERATE_ASYMMETRIC_KEY_PAIR => self.generate(command, data),
            ins::PUT_DATA => self.put_data(command, data),
            ins::GET_DATA => self.get_data(command, data),
            _ => Err(StatusWord::INS_NOT_SUPPORTED),
        }
    }

    /// SELECT by AID (Part 2 §3.1.1): the full AID or a right-truncated one
    /// (ISO 7816-4 §8.2.2.2 partial DF name). SP 800-73-4 names the 9-octet
    /// PIX without version, but yubico-piv-tool selects with the 5-octet
    /// NIST RID alone; as the card holds one application, any truncation
    /// down to the RID names it unambiguously. Selecting the PIV
    /// application starts a fresh security status; a SELECT of another
    /// application fails and leaves the current selection as it was (ISO
    /// 7816-4 §7.1.1).
    fn select(&mut self, command: &Command, aid: &[u8]) -> Outcome {
        if (command.p1, command.p2) != (0x04, 0x00) {
            return Err(StatusWord::INCORRECT_P1_P2);
        }
        if aid.len() < NIST_RID_LEN || !PIV_AID.starts_with(aid) {
            return Err(StatusWord::NOT_FOUND);
        }
        self.session = Session {
            piv_selected: true,
            ..Session::default()
        };
        Ok(application_property_template())
    }

    /// VERIFY (Part 2 §3.2.1) of the PIV Card Application PIN.
    fn verify(&mut self, command: &Command, data: &[u8]) -> Outcome {
        if command.p2 != key_reference::PIN {
            // 00 (global PIN) and 96/97 (on-card comparison) do not exist on
            // this card; 81 (PUK) is not a VERIFY reference.
            return Err(StatusWord::REFERENCED_DATA_NOT_FOUND);
        }
        match command.p1 {
            0xFF => {
                if !data.is_empty() {
                    return Err(StatusWord::INCORRECT_DATA);
                }
                self.session.pin_verified = false;
                self.session.signature_pin_fresh = false;
                return Ok(Vec::new());
            }
            0x00 => {}
            _ => return Err(StatusWord::INCORRECT_P1_P2),
        }
        if self.pin.is_blocked() {
            return Err(StatusWord::AUTHENTICATION_BLOCKED);
        }
        if data.is_empty() {
            // The status query spends no try.
            return if self.session.pin_verified {
                Ok(Vec::new())
            } else {
                Err(StatusWord::tries_left(self.pin.tries_left))
            };
        }
        if !is_pin_block(data) {
            return Err(StatusWord::INCORRECT_DATA);
        }
        if self.pin.matches(data) {
            self.pin.tries_left = self.pin.max_tries;
            self.session.pin_verified = true;
            self.session.signature_pin_fresh = true;
            Ok(Vec::new())
        } else {
            self.session.pin_verified = false;
            self.session.signature_pin_fresh = false;
            Err(self.pin.spend_try())
        }
    }

    /// CHANGE REFERENCE DATA (Part 2 §3.2.2) of the PIN (80) or PUK (81):
    /// the current value and the new one, 8 octets each.
    fn change_reference_data(&mut self, command: &Command, data: &[u8]) -> Outcome {
        if command.p1 != 0x00 {
            return Err(StatusWord::INCORRECT_P1_P2);
        }
        let is_pin = match command.p2 {
            key_reference::PIN => true,
            key_reference::PUK => false,
            _ => return Err(StatusWord::REFERENCED_DATA_NOT_FOUND),
        };
        let secret = if is_pin { &self.pin } else { &self.puk };
        if secret.is_blocked() {
            return Err(StatusWord::AUTHENTICATION_BLOCKED);
        }
        if data.len() != 16 {
            return Err(StatusWord::INCORRECT_DATA);
        }
        let (old, new) = data.split_at(8);
        // The PUK is any 8 octets (Part 2 §2.4.3); only the PIN has a form.
        if is_pin && !(is_pin_block(old) && is_pin_block(new)) {
            return Err(StatusWord::INCORRECT_DATA);
        }
        let secret = if is_pin { &mut self.pin } else { &mut self.puk };
        if !secret.matches(old) {
            let status = secret.spend_try();
            if is_pin {
                self.session.pin_verified = false;
                self.session.signature_pin_fresh = false;
            }
            return Err(status);
        }
        secret.replace(new);
        if is_pin {
            // The PIN was just presented: its security status is set.
            self.session.pin_verified = true;
            self.session.signature_pin_fresh = true;
        }
        Ok(Vec::new())
    }

    /// RESET RETRY COUNTER (Part 2 §3.2.3): the PUK and a new PIN unblock
    /// the PIN. A wrong PUK spends a PUK try and clears the PIN's security
    /// status; success resets both counters and leaves the PIN's security
    /// status as it was.
    fn reset_retry_counter(&mut self, command: &Command, data: &[u8]) -> Outcome {
        if command.p1 != 0x00 {
            return Err(StatusWord::INCORRECT_P1_P2);
        }
        if command.p2 != key_reference::PIN {
            return Err(StatusWord::REFERENCED_DATA_NOT_FOUND);
        }
        if self.puk.is_blocked() {
            return Err(StatusWord::AUTHENTICATION_BLOCKED);
        }
        if data.len() != 16 {
            return Err(StatusWord::INCORRECT_DATA);
        }
        let (puk, new_pin) = data.split_at(8);
        if !is_pin_block(new_pin) {
            return Err(StatusWord::INCORRECT_DATA);
        }
        if !self.puk.matches(puk) {
            self.session.pin_verified = false;
            self.session.signature_pin_fresh = false;
            return Err(self.puk.spend_try());
        }
        self.puk.tries_left = self.puk.max_tries;
        self.pin.replace(new_pin);
        Ok(Vec::new())
    }

    /// GENERAL AUTHENTICATE (Part 2 §3.2.4): management-key authentication
    /// with key reference 9B, signatures with a slot key.
    fn general_authenticate(&mut self, command: &Command, data: &[u8]) -> Outcome {
        let template = tlv::find(data, &[0x7C])
            .ok()
            .flatten()
            .ok_or(StatusWord::INCORRECT_DATA)?;
        let items = tlv::parse_all(template).map_err(|_| StatusWord::INCORRECT_DATA)?;
        let field = |tag: u8| items.iter().find(|t| t.tag == [tag]).map(|t| t.value);
        let fields = DynamicTemplate {
            witness: field(0x80),
            challenge: field(0x81),
            response: field(0x82),
        };
        if command.p2 == key_reference::MANAGEMENT {
            return self.authenticate_management_key(command.p1, &fields);
        }
        let slot =
            Slot::from_key_reference(command.p2).ok_or(StatusWord::REFERENCED_DATA_NOT_FOUND)?;
        self.sign(slot, command.p1, &fields)
    }

    /// Management-key authentication, mutual (witness 80, then decrypted
    /// witness and challenge) or one-way (challenge 81, then its encryption
    /// in 82); SP 800-73-4 Part 2 Appendix A.1 and A.2.
    fn authenticate_management_key(&mut self, p1: u8, fields: &DynamicTemplate<'_>) -> Outcome {
        let key = &self.management_key;
        // SP 800-78-4 Table 6-2 names three-key Triple-DES both 03 and 00.
        let triple_des_alias = p1 == 0x00 && key.algorithm() == MgmtAlgorithm::TripleDes;
        if p1 != key.algorithm().id() && !triple_des_alias {
            return Err(StatusWord::INCORRECT_P1_P2);
        }
        let block_len = key.algorithm().block_len();
        let pending = self.session.pending_authentication.take();
        let cipher_failed = |_| StatusWord::NO_PRECISE_DIAGNOSIS;
        match (fields.witness, fields.challenge, fields.response) {
            // Mutual, step 1: the card's encrypted witness.
            (Some([]), None, None) => {
                self.session.management_authenticated = false;
                let witness = random_block(block_len)?;
                let encrypted = key.encrypt_block(&witness).map_err(cipher_failed)?;
                self.session.pending_authentication = Some(PendingAuthentication::Witness(witness));
                Ok(tlv::encode(&[0x7C], &tlv::encode(&[0x80], &encrypted)))
            }
            // Mutual, step 2: the witness decrypted, and the client's
            // challenge, which the card answers encrypted.
            (Some(witness), Some(challenge), None | Some([])) if !witness.is_empty() => {
                let Some(PendingAuthentication::Witness(expected)) = pending else {
                    return Err(StatusWord::CONDITIONS_NOT_SATISFIED);
                };
                if challenge.len() != block_len {
                    return Err(StatusWord::INCORRECT_DATA);
                }
                if constant_time::verify_slices_are_equal(witness, &expected).is_err() {
                    return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
                }
                let answer = key.encrypt_block(challenge).map_err(cipher_failed)?;
                self.session.management_authenticated = true;
                Ok(tlv::encode(&[0x7C], &tlv::encode(&[0x82], &answer)))
            }
            // One-way, step 1: a plain challenge.
            (None, Some([]), None) => {
                self.session.management_authenticated = false;
                let challenge = random_block(block_len)?;
                let reply = tlv::encode(&[0x7C], &tlv::encode(&[0x81], &challenge));
                self.session.pending_authentication =
                    Some(PendingAuthentication::Challenge(challenge));
                Ok(reply)
            }
            // One-way, step 2: the challenge encrypted by the client.
            (None, None, Some(response)) if !response.is_empty() => {
                let Some(PendingAuthentication::Challenge(challenge)) = pending else {
                    return Err(StatusWord::CONDITIONS_NOT_SATISFIED);
                };
                let expected = key.encrypt_block(&challenge).map_err(cipher_failed)?;
                if constant_time::verify_slices_are_equal(response, &expected).is_err() {
                    return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
                }
                self.session.management_authenticated = true;
                Ok(Vec::new())
            }
            _ => Err(StatusWord::INCORRECT_DATA),
        }
    }

    /// A signature with the key in `slot`: template `82 00, 81 input`.
    fn sign(&mut self, slot: Slot, p1: u8, fields: &DynamicTemplate<'_>) -> Outcome {
        let key = self
            .keys
            .get(&slot)
            .ok_or(StatusWord::REFERENCED_DATA_NOT_FOUND)?;
        if p1 != key.algorithm().id() {
            return Err(StatusWord::INCORRECT_P1_P2);
        }
        let (Some([]), Some(input), None) = (fields.response, fields.challenge, fields.witness)
        else {
            // Key agreement (85) and other templates are not supported.
            return Err(StatusWord::INCORRECT_DATA);
        };
        // Access rules of Part 1 Table 4b: 9E needs nothing, 9A and 9D the
        // PIN, 9C the PIN presented again before each signature.
        match slot {
            Slot::CardAuthentication => {}
            Slot::Authentication | Slot::KeyManagement => {
                if !self.session.pin_verified {
                    return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
                }
            }
            Slot::Signature => {
                if !(self.session.pin_verified && self.session.signature_pin_fresh) {
                    return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
                }
                self.session.signature_pin_fresh = false;
            }
        }
        let signature = match key {
            SlotKey::Rsa(pair) => sign_rsa_block(pair, input)?,
            SlotKey::Ec { algorithm, pair } => sign_ec_digest(*algorithm, pair, input)?,
        };
        Ok(tlv::encode(&[0x7C], &tlv::encode(&[0x82], &signature)))
    }

    /// GENERATE ASYMMETRIC KEY PAIR (Part 2 §3.3.2): template `AC { 80 alg }`,
    /// answered with the public key template `7F49`.
    fn generate(&mut self, command: &Command, data: &[u8]) -> Outcome {
        let slot = Slot::from_key_reference(command.p2);
        let (0x00, Some(slot)) = (command.p1, slot) else {
            return Err(StatusWord::INCORRECT_P1_P2);
        };
        if !self.session.management_authenticated {
            return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
        }
        let template = tlv::find(data, &[0xAC])
            .ok()
            .flatten()
            .ok_or(StatusWord::INCORRECT_DATA)?;
        let items = tlv::parse_all(template).map_err(|_| StatusWord::INCORRECT_DATA)?;
        // Only 80 (algorithm) and 81 (parameter) are SP 800-73-4; vendor
        // PIN and touch policies (AA, AB) are refused rather than ignored,
        // so a client never believes in a policy the card does not apply.
        if items.iter().any(|t| t.tag != [0x80] && t.tag != [0x81]) {
            return Err(StatusWord::INCORRECT_DATA);
        }
        let algorithm = match items.iter().find(|t| t.tag == [0x80]).map(|t| t.value) {
            Some([id]) => Algorithm::from_id(*id).ok_or(StatusWord::INCORRECT_DATA)?,
            _ => return Err(StatusWord::INCORRECT_DATA),
        };
        let failed = |_| StatusWord::NO_PRECISE_DIAGNOSIS;
        let (key, spki) = match algorithm {
            Algorithm::Rsa2048 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?;
                let spki = pair.public_key().as_der().map_err(failed)?;
                let spki = spki.as_ref().to_vec();
                (SlotKey::Rsa(pair), spki)
            }
            Algorithm::EcP256 | Algorithm::EcP384 => {
                let signing = if algorithm == Algorithm::EcP256 {
                    &ECDSA_P256_SHA256_ASN1_SIGNING
                } else {
                    &ECDSA_P384_SHA384_ASN1_SIGNING
                };
                let pair = EcdsaKeyPair::generate(signing).map_err(failed)?;
                let spki = pair.public_key().as_der().map_err(failed)?;
                let spki = spki.as_ref().to_vec();
                (SlotKey::Ec { algorithm, pair }, spki)
            }
        };
        let template =
            key_template_from_spki(&spki).map_err(|_| StatusWord::NO_PRECISE_DIAGNOSIS)?;
        self.keys.insert(slot, key);
        Ok(template)
    }

    /// PUT DATA (Part 2 §3.3.1): `5C id 53 contents`, or the discovery
    /// object (7E) or biometric group template (7F61) whole. Writing empty
    /// contents deletes the object.
    fn put_data(&mut self, command: &Command, data: &[u8]) -> Outcome {
        if (command.p1, command.p2) != (0x3F, 0xFF) {
            return Err(StatusWord::INCORRECT_P1_P2);
        }
        if !self.session.management_authenticated {
            return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
        }
        let items = tlv::parse_all(data).map_err(|_| StatusWord::INCORRECT_DATA)?;
        let (id, stored) = match items.as_slice() {
            [id, contents] if id.tag == [0x5C] && contents.tag == [0x53] => (
                id.value.to_vec(),
                (!contents.value.is_empty()).then(|| tlv::encode(&[0x53], contents.value)),
            ),
            [whole] if whole.tag == [0x7E] || whole.tag == [0x7F, 0x61] => (
                whole.tag.to_vec(),
                (!whole.value.is_empty()).then(|| data.to_vec()),
            ),
            _ => return Err(StatusWord::INCORRECT_DATA),
        };
        if objects::read_rule(&id).is_none() {
            return Err(StatusWord::INCORRECT_DATA);
        }
        match stored {
            Some(bytes) if bytes.len() > MAX_OBJECT_LEN => Err(StatusWord::NOT_ENOUGH_MEMORY),
            Some(bytes) => {
                self.objects.insert(id, bytes);
                Ok(Vec::new())
            }
            None => {
                self.objects.remove(&id);
                Ok(Vec::new())
            }
        }
    }

    /// GET DATA (Part 2 §3.1.2): `5C id`.
    fn get_data(&mut self, command: &Command, data: &[u8]) -> Outcome {
        if (command.p1, command.p2) != (0x3F, 0xFF) {
            return Err(StatusWord::INCORRECT_P1_P2);
        }
        let items = tlv::parse_all(data).map_err(|_| StatusWord::INCORRECT_DATA)?;
        let [id] = items.as_slice() else {
            return Err(StatusWord::INCORRECT_DATA);
        };
        if id.tag != [0x5C] {
            return Err(StatusWord::INCORRECT_DATA);
        }
        match objects::read_rule(id.value) {
            None => return Err(StatusWord::NOT_FOUND),
            Some(ReadRule::Pin) if !self.session.pin_verified => {
                return Err(StatusWord::SECURITY_STATUS_NOT_SATISFIED)
            }
            Some(_) => {}
        }
        self.objects
            .get(id.value)
            .cloned()
            .ok_or(StatusWord::NOT_FOUND)
    }
}

/// The fields of a dynamic authentication template (7C) the card uses.
/// Exponentiation (85, ECDH key agreement) is not among them: the card
/// refuses key agreement.
struct DynamicTemplate<'a> {
    witness: Option<&'a [u8]>,
    challenge: Option<&'a [u8]>,
    response: Option<&'a [u8]>,
}

/// `61 xx` for `remaining` octets waiting (00 when 256 or more).
fn more_data_status(remaining: usize) -> StatusWord {
    StatusWord::more_data(if remaining >= 256 { 0 } else { remaining as u8 })
}

/// The application property template answered to SELECT (Part 2 §3.1.1,
/// Table 3): the PIX with version, the coexistent tag allocation authority
/// (NIST's RID), a label and the algorithms the card supports.
fn application_property_template() -> Vec<u8> {
    let mut value = tlv::encode(&[0x4F], &PIV_AID[5..]);
    value.extend(tlv::encode(&[0x79], &tlv::encode(&[0x4F], &PIV_AID[..5])));
    value.extend(tlv::encode(&[0x50], b"certmint virtual PIV"));
    let mut algorithms = Vec::new();
    for id in [0x03, 0x08, 0x0A, 0x0C, 0x07, 0x11, 0x14] {
        algorithms.extend(tlv::encode(&[0x80], &[id]));
    }
    algorithms.extend(tlv::encode(&[0x06], &[]));
    value.extend(tlv::encode(&[0xAC], &algorithms));
    tlv::encode(&[0x61], &value)
}

/// Whether `block` is a PIV PIN as VERIFY carries it: 8 octets, 6 to 8
/// ASCII digits padded with FF (Part 2 §2.4.3).
fn is_pin_block(block: &[u8]) -> bool {
    if block.len() != 8 {
        return false;
    }
    let digits = block.iter().take_while(|b| b.is_ascii_digit()).count();
    digits >= 6 && block[digits..].iter().all(|&b| b == 0xFF)
}

fn random_block(len: usize) -> Result<Zeroizing<Vec<u8>>, StatusWord> {
    let mut block = Zeroizing::new(vec![0u8; len]);
    rand::fill(&mut block).map_err(|_| StatusWord::NO_PRECISE_DIAGNOSIS)?;
    Ok(block)
}

/// DigestInfo prefixes (RFC 8017 §9.2 note 1) of the digests aws-lc-rs can
/// sign a PKCS#1 v1.5 signature over, with the matching padding.
static DIGEST_INFOS: [(&[u8], &digest::Algorithm, &dyn RsaEncoding); 3] = [
    (
        &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        &digest::SHA256,
        &RSA_PKCS1_SHA256,
    ),
    (
        &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        &digest::SHA384,
        &RSA_PKCS1_SHA384,
    ),
    (
        &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
        &digest::SHA512,
        &RSA_PKCS1_SHA512,
    ),
];

/// The raw RSA private-key operation on `block`, for the one kind of block
/// a signature produces: EMSA-PKCS1-v1_5 (`00 01 FF… 00 DigestInfo`) with a
/// SHA-256, -384 or -512 DigestInfo. PKCS#1 v1.5 padding is deterministic,
/// so signing the digest with that padding yields exactly the raw result.
/// Anything else (a SHA-1 or SHA-224 DigestInfo, a decryption, raw blocks)
/// is refused with 6A80: aws-lc-rs offers no raw private-key operation.
fn sign_rsa_block(pair: &RsaKeyPair, block: &[u8]) -> Result<Vec<u8>, StatusWord> {
    let refused = StatusWord::INCORRECT_DATA;
    if block.len() != pair.public_modulus_len() {
        return Err(refused);
    }
    let [0x00, 0x01, rest @ ..] = block else {
        return Err(refused);
    };
    let filler = rest.iter().take_while(|&&b| b == 0xFF).count();
    // At least eight octets of padding (RFC 8017 §9.2 step 5).
    if filler < 8 || rest.get(filler) != Some(&0x00) {
        return Err(refused);
    }
    let digest_info = &rest[filler + 1..];
    let (hash, algorithm, padding) = DIGEST_INFOS
        .iter()
        .find_map(|(prefix, algorithm, padding)| {
            let hash = digest_info.strip_prefix(*prefix)?;
            (hash.len() == algorithm.output_len()).then_some((hash, *algorithm, *padding))
        })
        .ok_or(refused)?;
    let digest = Digest::import_less_safe(hash, algorithm).map_err(|_| refused)?;
    let mut signature = vec![0u8; pair.public_modulus_len()];
    pair.sign_digest(padding, &digest, &mut signature)
        .map_err(|_| StatusWord::NO_PRECISE_DIAGNOSIS)?;
    Ok(signature)
}

/// ECDSA over `input` as a digest: shorter input is left-padded with
/// zeros, longer input is cut to its leftmost field-size octets (FIPS
/// 186-4 §6.4). Returns the DER `Ecdsa-Sig-Value`.
fn sign_ec_digest(
    algorithm: Algorithm,
    pair: &EcdsaKeyPair,
    input: &[u8],
) -> Result<Vec<u8>, StatusWord> {
    let (field_len, digest_algorithm) = match algorithm {
        Algorithm::EcP384 => (48, &digest::SHA384),
        _ => (32, &digest::SHA256),
    };
    let mut value = vec![0u8; field_len];
    if input.len() >= field_len {
        value.copy_from_slice(&input[..field_len]);
    } else {
        value[field_len - input.len()..].copy_from_slice(input);
    }
    let digest = Digest::import_less_safe(&value, digest_algorithm)
        .map_err(|_| StatusWord::INCORRECT_DATA)?;
    let signature = pair
        .sign_digest(&digest)
        .map_err(|_| StatusWord::NO_PRECISE_DIAGNOSIS)?;
    Ok(signature.as_ref().to_vec())
}
