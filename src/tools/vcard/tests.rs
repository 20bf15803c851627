//! The virtual card through certmint's PIV client over [`InMemory`], and
//! raw APDUs where the client has no call for the case.

use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};

use super::*;
use crate::piv::apdu::{Command, Response, StatusWord};
use crate::piv::client::{PivClient, RetryState};
use crate::piv::mgmt::{ManagementKey, MgmtAlgorithm};
use crate::piv::{ins, key_reference, signing_input, tlv, Algorithm, Slot};
use crate::pkcs11::pin::Pin;
use crate::signer::{public_key_parts, verify_signature, PublicKeyParts};

fn pin(value: &str) -> Pin {
    Pin::new(value.into(), "PIN").unwrap()
}

/// A card in memory, reached through certmint's client or with raw APDUs.
struct Bench {
    card: InMemory,
}

impl Bench {
    fn with(config: &CardConfig) -> Self {
        let mut bench = Bench {
            card: InMemory::new(config).unwrap(),
        };
        bench.client().select().unwrap();
        bench
    }

    fn fresh() -> Self {
        Bench::with(&CardConfig::default())
    }

    fn client(&mut self) -> PivClient<&mut InMemory> {
        PivClient::new(&mut self.card)
    }

    /// Sends one APDU as it is, without the client's chaining or GET RESPONSE.
    fn raw(&mut self, apdu: &[u8]) -> Response {
        Response::parse(&self.card.card.process(apdu)).unwrap()
    }
}

fn admin(bench: &mut Bench) {
    bench
        .client()
        .authenticate_management_key(&ManagementKey::factory(MgmtAlgorithm::TripleDes))
        .unwrap();
}

/// A DER-looking certificate longer than one short APDU.
fn long_certificate() -> Vec<u8> {
    let mut certificate = vec![0x30, 0x82, 0x04, 0xAC];
    certificate.extend((0..1196).map(|i| (i % 251) as u8));
    certificate
}

fn status(error: crate::piv::client::PivError) -> StatusWord {
    match error {
        crate::piv::client::PivError::Status { status, .. } => status,
        other => panic!("expected a status, got {other}"),
    }
}

#[test]
fn every_algorithm_generates_stores_a_certificate_and_signs_verifiably() {
    for algorithm in [Algorithm::EcP256, Algorithm::EcP384, Algorithm::Rsa2048] {
        let mut card = Bench::fresh();
        admin(&mut card);
        let spki = card
            .client()
            .generate_key(Slot::Authentication, algorithm)
            .unwrap();
        let certificate = long_certificate();
        card.client()
            .put_certificate(Slot::Authentication, &certificate)
            .unwrap();
        assert_eq!(
            card.client().get_certificate(Slot::Authentication).unwrap(),
            Some(certificate),
            "{algorithm}"
        );
        card.client().verify_pin(&pin("123456")).unwrap();
        let message = b"a Mali Muhur TBSCertificate";
        let signature = card
            .client()
            .sign(
                Slot::Authentication,
                algorithm,
                &signing_input(algorithm, message),
            )
            .unwrap();
        verify_signature(
            &spki,
            algorithm.key_type().signature_algorithm(),
            message,
            &signature,
        )
        .unwrap_or_else(|e| panic!("{algorithm}: {e}"));
    }
}

#[test]
fn a_wrong_pin_spends_exactly_one_try_and_a_blocked_pin_answers_6983() {
    let mut card = Bench::fresh();
    let wrong = pin("654321");
    match card.client().verify_pin(&wrong) {
        Err(crate::piv::client::PivError::WrongSecret { tries_left: 2, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        card.client().retry_state(key_reference::PIN).unwrap(),
        RetryState::TriesLeft(2)
    );
    assert!(card.client().verify_pin(&wrong).is_err());
    assert!(matches!(
        card.client().verify_pin(&wrong),
        Err(crate::piv::client::PivError::Blocked { .. })
    ));
    // Blocked: even the right PIN is refused, and the empty VERIFY says so.
    let mut right = vec![0x00, 0x20, 0x00, 0x80, 0x08];
    right.extend_from_slice(b"123456\xFF\xFF");
    assert_eq!(card.raw(&right).status, StatusWord::AUTHENTICATION_BLOCKED);
    assert_eq!(
        card.client().retry_state(key_reference::PIN).unwrap(),
        RetryState::Blocked
    );
    // The PUK unblocks it with a new PIN.
    let mut reset = vec![0x00, 0x2C, 0x00, 0x80, 0x10];
    reset.extend_from_slice(b"12345678");
    reset.extend_from_slice(b"2468024\xFF");
    assert_eq!(card.raw(&reset).status, StatusWord::SUCCESS);
    assert_eq!(
        card.client().retry_state(key_reference::PIN).unwrap(),
        RetryState::TriesLeft(3)
    );
    card.client().verify_pin(&pin("2468024")).unwrap();
    assert_eq!(
        card.client().retry_state(key_reference::PIN).unwrap(),
        RetryState::Verified
    );
}

#[test]
fn the_empty_verify_spends_no_try_and_p1_ff_resets_the_status() {
    let mut card = Bench::fresh();
    for _ in 0..10 {
        assert_eq!(
            card.client().retry_state(key_reference::PIN).unwrap(),
            RetryState::TriesLeft(3)
        );
    }
    card.client().verify_pin(&pin("123456")).unwrap();
    assert_eq!(
        card.client().retry_state(key_reference::PIN).unwrap(),
        RetryState::Verified
    );
    assert_eq!(
        card.raw(&[0x00, 0x20, 0xFF, 0x80]).status,
        StatusWord::SUCCESS
    );
    assert_eq!(
        card.client().retry_state(key_reference::PIN).unwrap(),
        RetryState::TriesLeft(3)
    );
}

#[test]
fn badly_formed_pins_are_refused_without_spending_a_try() {
    let mut card = Bench::fresh();
    for data in [
        &b"12345\xFF\xFF\xFF"[..], // five digits
        b"12a456\xFF\xFF",         // not digits
        b"123456\xFF1",            // padding in the middle
        b"123456",                 // not 8 octets
    ] {
        let command = Command::new(ins::VERIFY, 0x00, key_reference::PIN, data.to_vec());
        assert_eq!(
            card.raw(&command.to_bytes()).status,
            StatusWord::INCORRECT_DATA
        );
    }
    assert_eq!(
        card.client().retry_state(key_reference::PIN).unwrap(),
        RetryState::TriesLeft(3)
    );
    // VERIFY knows no PUK reference.
    assert_eq!(
        card.raw(&[0x00, 0x20, 0x00, 0x81]).status,
        StatusWord::REFERENCED_DATA_NOT_FOUND
    );
}

#[test]
fn pin_and_puk_change_through_the_client() {
    let mut card = Bench::fresh();
    card.client()
        .change_secret(key_reference::PIN, &pin("123456"), &pin("13572468"))
        .unwrap();
    assert_eq!(
        card.client().retry_state(key_reference::PIN).unwrap(),
        RetryState::Verified,
        "CHANGE REFERENCE DATA presents the PIN"
    );
    card.client()
        .change_secret(key_reference::PUK, &pin("12345678"), &pin("87654321"))
        .unwrap();
    match card
        .client()
        .change_secret(key_reference::PUK, &pin("12345678"), &pin("11111111"))
    {
        Err(crate::piv::client::PivError::WrongSecret {
            what: "PUK",
            tries_left: 2,
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn management_key_authentication_works_with_every_algorithm_and_refuses_a_wrong_key() {
    for algorithm in MgmtAlgorithm::ALL {
        let key = ManagementKey::random(algorithm).unwrap();
        let config = CardConfig {
            management_key: key.clone(),
            ..CardConfig::default()
        };
        let mut card = Bench::with(&config);
        card.client().authenticate_management_key(&key).unwrap();
        card.client()
            .generate_key(Slot::CardAuthentication, Algorithm::EcP256)
            .unwrap();

        let mut card = Bench::with(&config);
        let wrong = ManagementKey::random(algorithm).unwrap();
        assert!(matches!(
            card.client().authenticate_management_key(&wrong),
            Err(crate::piv::client::PivError::ManagementKeyRefused)
        ));
        assert_eq!(
            status(
                card.client()
                    .generate_key(Slot::CardAuthentication, Algorithm::EcP256)
                    .unwrap_err()
            ),
            StatusWord::SECURITY_STATUS_NOT_SATISFIED,
            "{algorithm}: a refused key authorises nothing"
        );

        // Another algorithm in P1 is refused outright.
        let other = MgmtAlgorithm::ALL
            .into_iter()
            .find(|a| *a != algorithm)
            .unwrap();
        let request = Command::new(
            ins::GENERAL_AUTHENTICATE,
            other.id(),
            key_reference::MANAGEMENT,
            vec![0x7C, 0x02, 0x80, 0x00],
        );
        assert_eq!(
            card.raw(&request.to_bytes()).status,
            StatusWord::INCORRECT_P1_P2
        );
    }
}

#[test]
fn triple_des_answers_to_its_legacy_identifier_00_too() {
    let mut card = Bench::fresh();
    let request = Command::new(
        ins::GENERAL_AUTHENTICATE,
        0x00,
        key_reference::MANAGEMENT,
        vec![0x7C, 0x02, 0x80, 0x00],
    );
    let answer = card.raw(&request.expect_response().to_bytes());
    assert_eq!(answer.status, StatusWord::SUCCESS);
    let config = CardConfig {
        management_key: ManagementKey::factory(MgmtAlgorithm::Aes128),
        ..CardConfig::default()
    };
    let mut card = Bench::with(&config);
    let request = Command::new(
        ins::GENERAL_AUTHENTICATE,
        0x00,
        key_reference::MANAGEMENT,
        vec![0x7C, 0x02, 0x80, 0x00],
    );
    assert_eq!(
        card.raw(&request.to_bytes()).status,
        StatusWord::INCORRECT_P1_P2
    );
}

#[test]
fn one_way_management_key_authentication() {
    let key = ManagementKey::factory(MgmtAlgorithm::Aes192);
    let config = CardConfig {
        management_key: key.clone(),
        ..CardConfig::default()
    };
    for correct in [false, true] {
        let mut card = Bench::with(&config);
        let request = Command::new(
            ins::GENERAL_AUTHENTICATE,
            0x0A,
            key_reference::MANAGEMENT,
            vec![0x7C, 0x02, 0x81, 0x00],
        );
        let answer = card.raw(&request.to_bytes());
        assert_eq!(answer.status, StatusWord::SUCCESS);
        let template = tlv::find(&answer.data, &[0x7C]).unwrap().unwrap();
        let challenge = tlv::find(template, &[0x81]).unwrap().unwrap();
        assert_eq!(challenge.len(), 16);
        let mut response = key.encrypt_block(challenge).unwrap();
        if !correct {
            response[0] ^= 1;
        }
        let reply = Command::new(
            ins::GENERAL_AUTHENTICATE,
            0x0A,
            key_reference::MANAGEMENT,
            tlv::encode(&[0x7C], &tlv::encode(&[0x82], &response)),
        );
        let expected = if correct {
            StatusWord::SUCCESS
        } else {
            StatusWord::SECURITY_STATUS_NOT_SATISFIED
        };
        assert_eq!(card.raw(&reply.to_bytes()).status, expected);
        assert_eq!(
            card.client()
                .generate_key(Slot::Signature, Algorithm::EcP256)
                .is_ok(),
            correct
        );
    }
}

#[test]
fn the_signature_key_needs_the_pin_before_each_signature() {
    let mut card = Bench::fresh();
    admin(&mut card);
    let spki = card
        .client()
        .generate_key(Slot::Signature, Algorithm::EcP256)
        .unwrap();
    let input = signing_input(Algorithm::EcP256, b"seal");
    assert_eq!(
        status(
            card.client()
                .sign(Slot::Signature, Algorithm::EcP256, &input)
                .unwrap_err()
        ),
        StatusWord::SECURITY_STATUS_NOT_SATISFIED
    );
    card.client().verify_pin(&pin("123456")).unwrap();
    let signature = card
        .client()
        .sign(Slot::Signature, Algorithm::EcP256, &input)
        .unwrap();
    verify_signature(
        &spki,
        crate::signer::SignatureAlgorithm::EcdsaP256Sha256,
        b"seal",
        &signature,
    )
    .unwrap();
    assert_eq!(
        status(
            card.client()
                .sign(Slot::Signature, Algorithm::EcP256, &input)
                .unwrap_err()
        ),
        StatusWord::SECURITY_STATUS_NOT_SATISFIED,
        "one signature per VERIFY"
    );
    card.client().verify_pin(&pin("123456")).unwrap();
    card.client()
        .sign(Slot::Signature, Algorithm::EcP256, &input)
        .unwrap();

    // 9A needs the PIN once per session; 9E never.
    admin(&mut card);
    card.client()
        .generate_key(Slot::Authentication, Algorithm::EcP256)
        .unwrap();
    card.client()
        .generate_key(Slot::CardAuthentication, Algorithm::EcP256)
        .unwrap();
    card.client().select().unwrap(); // a new selection drops the security status
    card.client()
        .sign(Slot::CardAuthentication, Algorithm::EcP256, &input)
        .unwrap();
    assert_eq!(
        status(
            card.client()
                .sign(Slot::Authentication, Algorithm::EcP256, &input)
                .unwrap_err()
        ),
        StatusWord::SECURITY_STATUS_NOT_SATISFIED
    );
    card.client().verify_pin(&pin("123456")).unwrap();
    card.client()
        .sign(Slot::Authentication, Algorithm::EcP256, &input)
        .unwrap();
    card.client()
        .sign(Slot::Authentication, Algorithm::EcP256, &input)
        .unwrap();
    // A wrong algorithm in P1 and an empty slot are refused.
    assert_eq!(
        status(
            card.client()
                .sign(Slot::Authentication, Algorithm::EcP384, &input)
                .unwrap_err()
        ),
        StatusWord::INCORRECT_P1_P2
    );
    assert_eq!(
        status(
            card.client()
                .sign(Slot::KeyManagement, Algorithm::EcP256, &input)
                .unwrap_err()
        ),
        StatusWord::REFERENCED_DATA_NOT_FOUND
    );
}

#[test]
fn ecdsa_input_is_padded_or_truncated_to_the_field_size() {
    let mut card = Bench::fresh();
    admin(&mut card);
    let spki = card
        .client()
        .generate_key(Slot::CardAuthentication, Algorithm::EcP256)
        .unwrap();
    let PublicKeyParts::Ec { point, .. } = public_key_parts(&spki).unwrap() else {
        panic!("an EC key");
    };
    let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point);
    let sha1 = [0x5Au8; 20];
    let mut padded = [0u8; 32];
    padded[12..].copy_from_slice(&sha1);
    let sha512 = digest::digest(&digest::SHA512, b"long");
    for (input, signed) in [
        (&sha1[..], padded.to_vec()),
        (sha512.as_ref(), sha512.as_ref()[..32].to_vec()),
    ] {
        let signature = card
            .client()
            .sign(Slot::CardAuthentication, Algorithm::EcP256, input)
            .unwrap();
        let digest = Digest::import_less_safe(&signed, &digest::SHA256).unwrap();
        key.verify_digest(&digest, &signature).unwrap();
    }
}

#[test]
fn rsa_refuses_blocks_that_are_not_sha2_signature_blocks() {
    let mut card = Bench::fresh();
    admin(&mut card);
    card.client()
        .generate_key(Slot::KeyManagement, Algorithm::Rsa2048)
        .unwrap();
    card.client().verify_pin(&pin("123456")).unwrap();
    // A SHA-1 DigestInfo, which aws-lc-rs cannot sign.
    let sha1_prefix = [
        0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
    ];
    let mut block = vec![0x00, 0x01];
    block.extend(std::iter::repeat_n(0xFF, 256 - 3 - 15 - 20));
    block.push(0x00);
    block.extend_from_slice(&sha1_prefix);
    block.extend_from_slice(&[0x11; 20]);
    assert_eq!(block.len(), 256);
    let random_block = vec![0x42; 256];
    for input in [block, random_block, vec![0x00; 32]] {
        assert_eq!(
            status(
                card.client()
                    .sign(Slot::KeyManagement, Algorithm::Rsa2048, &input)
                    .unwrap_err()
            ),
            StatusWord::INCORRECT_DATA
        );
    }
}

#[test]
fn long_responses_come_with_61xx_and_get_response() {
    let mut card = Bench::fresh();
    admin(&mut card);
    let generate = Command::new(
        ins::GENERATE_ASYMMETRIC_KEY_PAIR,
        0x00,
        0x9A,
        vec![0xAC, 0x03, 0x80, 0x01, 0x07],
    )
    .expect_response();
    let first = card.raw(&generate.to_bytes());
    assert_eq!(first.data.len(), 256);
    let rest = first.status.more_data_available().unwrap();
    assert!(rest > 0 && rest < 256, "{}", first.status);
    // A smaller Le takes part of the rest; GET RESPONSE goes on from there.
    let part = card.raw(&[0x00, 0xC0, 0x00, 0x00, 0x05]);
    assert_eq!(part.data.len(), 5);
    assert_eq!(part.status.more_data_available(), Some(rest - 5));
    let last = card.raw(&[0x00, 0xC0, 0x00, 0x00, 0x00]);
    assert_eq!(last.status, StatusWord::SUCCESS);
    let mut template = first.data.clone();
    template.extend(part.data);
    template.extend(last.data);
    crate::piv::spki_from_key_template(Algorithm::Rsa2048, &template).unwrap();
    // Nothing is left, and any other command drops what was left.
    assert_eq!(
        card.raw(&[0x00, 0xC0, 0x00, 0x00, 0x00]).status,
        StatusWord::CONDITIONS_NOT_SATISFIED
    );
    let again = card.raw(&generate.to_bytes());
    assert!(again.status.more_data_available().is_some());
    card.raw(&[0x00, 0x20, 0x00, 0x80]);
    assert_eq!(
        card.raw(&[0x00, 0xC0, 0x00, 0x00, 0x00]).status,
        StatusWord::CONDITIONS_NOT_SATISFIED
    );
}

#[test]
fn command_chains_are_collected_and_a_new_command_abandons_one() {
    let mut card = Bench::fresh();
    admin(&mut card);
    let certificate = long_certificate();
    let mut body = tlv::encode(&[0x70], &certificate);
    body.extend(tlv::encode(&[0x71], &[0x00]));
    let mut data = tlv::encode(&[0x5C], &[0x5F, 0xC1, 0x05]);
    data.extend(tlv::encode(&[0x53], &body));
    let chain = Command::new(ins::PUT_DATA, 0x3F, 0xFF, data).to_chain();
    assert!(chain.len() > 2);
    // Interrupted: the first link, then another command, then the rest.
    assert_eq!(card.raw(&chain[0]).status, StatusWord::SUCCESS);
    assert_eq!(
        card.raw(&[0x00, 0x20, 0x00, 0x80]).status,
        StatusWord::tries_left(3)
    );
    for link in &chain[1..chain.len() - 1] {
        assert_eq!(card.raw(link).status, StatusWord::SUCCESS);
    }
    assert_eq!(
        card.raw(&chain[chain.len() - 1]).status,
        StatusWord::INCORRECT_DATA,
        "the tail alone is not an object"
    );
    for link in &chain {
        card.raw(link);
    }
    assert_eq!(
        card.client().get_certificate(Slot::Authentication).unwrap(),
        Some(certificate)
    );
}

#[test]
fn classes_instructions_and_selection_are_checked() {
    let mut card = Bench {
        card: InMemory::new(&CardConfig::default()).unwrap(),
    };
    // Nothing but SELECT before the PIV application is selected.
    assert_eq!(
        card.raw(&[0x00, 0x20, 0x00, 0x80]).status,
        StatusWord::INS_NOT_SUPPORTED
    );
    assert_eq!(
        card.raw(&[0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x00, 0x01])
            .status,
        StatusWord::NOT_FOUND
    );
    let template = card.client().select().unwrap();
    let apt = tlv::find(&template, &[0x61]).unwrap().unwrap();
    assert_eq!(
        tlv::find(apt, &[0x4F]).unwrap(),
        Some(&[0x00, 0x00, 0x10, 0x00, 0x01, 0x00][..])
    );
    let authority = tlv::find(apt, &[0x79]).unwrap().unwrap();
    assert_eq!(
        tlv::find(authority, &[0x4F]).unwrap(),
        Some(&[0xA0, 0x00, 0x00, 0x03, 0x08][..])
    );
    assert!(tlv::find(apt, &[0xAC]).unwrap().is_some());
    // The full AID and the RID alone select too (yubico-piv-tool sends the
    // RID); four octets do not; another AID leaves the PIV selection.
    let rid = [
        0x00, 0xA4, 0x04, 0x00, 0x05, 0xA0, 0x00, 0x00, 0x03, 0x08, 0x00,
    ];
    assert_eq!(card.raw(&rid).status, StatusWord::SUCCESS);
    let four = [0x00, 0xA4, 0x04, 0x00, 0x04, 0xA0, 0x00, 0x00, 0x03, 0x00];
    assert_eq!(card.raw(&four).status, StatusWord::NOT_FOUND);
    let mut full = vec![0x00, 0xA4, 0x04, 0x00, 0x0B];
    full.extend_from_slice(&crate::piv::PIV_AID);
    full.push(0x00);
    assert_eq!(card.raw(&full).status, StatusWord::SUCCESS);
    assert_eq!(
        card.raw(&[0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x05, 0x27, 0x20, 0x01])
            .status,
        StatusWord::NOT_FOUND
    );
    assert_eq!(
        card.raw(&[0x00, 0x20, 0x00, 0x80]).status,
        StatusWord::tries_left(3)
    );
    assert_eq!(
        card.raw(&[0x80, 0x20, 0x00, 0x80]).status,
        StatusWord::CLA_NOT_SUPPORTED
    );
    assert_eq!(
        card.raw(&[0x00, 0x12, 0x00, 0x00]).status,
        StatusWord::INS_NOT_SUPPORTED
    );
    assert_eq!(card.raw(&[0x00]).status, StatusWord::WRONG_LENGTH);
    assert_eq!(
        card.raw(&[0x00, 0xCB, 0x3F, 0x00, 0x03, 0x5C, 0x01, 0x7E])
            .status,
        StatusWord::INCORRECT_P1_P2
    );
}

#[test]
fn data_objects_follow_the_access_rules() {
    let mut card = Bench::fresh();
    // A fresh card carries CHUID, CCC and discovery object, readable by all.
    let chuid = card
        .client()
        .get_object(&crate::piv::object::CHUID)
        .unwrap()
        .unwrap();
    assert_eq!(
        tlv::find(&chuid, &[0x34]).unwrap().map(<[u8]>::len),
        Some(16)
    );
    assert!(card
        .client()
        .get_object(&crate::piv::object::CCC)
        .unwrap()
        .is_some());
    let discovery = card.raw(&[0x00, 0xCB, 0x3F, 0xFF, 0x03, 0x5C, 0x01, 0x7E, 0x00]);
    assert_eq!(discovery.status, StatusWord::SUCCESS);
    assert_eq!(discovery.data[0], 0x7E);
    assert_eq!(
        card.client().get_certificate(Slot::Signature).unwrap(),
        None
    );
    // Writing needs the management key.
    assert_eq!(
        status(
            card.client()
                .put_certificate(Slot::Signature, &[0x30, 0x00])
                .unwrap_err()
        ),
        StatusWord::SECURITY_STATUS_NOT_SATISFIED
    );
    assert_eq!(
        status(
            card.client()
                .generate_key(Slot::Signature, Algorithm::EcP256)
                .unwrap_err()
        ),
        StatusWord::SECURITY_STATUS_NOT_SATISFIED
    );
    // The facial image needs the PIN to be read.
    let facial = [0x5F, 0xC1, 0x08];
    assert_eq!(
        status(card.client().get_object(&facial).unwrap_err()),
        StatusWord::SECURITY_STATUS_NOT_SATISFIED
    );
    card.client().verify_pin(&pin("123456")).unwrap();
    assert_eq!(card.client().get_object(&facial).unwrap(), None);
    // Objects outside SP 800-73-4 are neither stored nor found.
    admin(&mut card);
    assert_eq!(
        status(
            card.client()
                .put_object(&[0x5F, 0xFF, 0x00], &[0x01])
                .unwrap_err()
        ),
        StatusWord::INCORRECT_DATA
    );
    assert_eq!(card.client().get_object(&[0x5F, 0xFF, 0x00]).unwrap(), None);
    // Empty contents delete an object.
    card.client()
        .put_object(&crate::piv::object::CHUID, &[])
        .unwrap();
    assert_eq!(
        card.client()
            .get_object(&crate::piv::object::CHUID)
            .unwrap(),
        None
    );
}

#[test]
fn a_reset_drops_the_security_status_and_keeps_keys_and_counters() {
    let mut card = Bench::fresh();
    admin(&mut card);
    card.client()
        .generate_key(Slot::CardAuthentication, Algorithm::EcP256)
        .unwrap();
    assert!(card.client().verify_pin(&pin("000000")).is_err());
    card.card.card.reset();
    assert_eq!(
        card.raw(&[0x00, 0x20, 0x00, 0x80]).status,
        StatusWord::INS_NOT_SUPPORTED,
        "a reset card has nothing selected"
    );
    card.client().select().unwrap();
    assert_eq!(
        card.client().retry_state(key_reference::PIN).unwrap(),
        RetryState::TriesLeft(2)
    );
    assert_eq!(
        status(
            card.client()
                .generate_key(Slot::Signature, Algorithm::EcP256)
                .unwrap_err()
        ),
        StatusWord::SECURITY_STATUS_NOT_SATISFIED
    );
    let input = signing_input(Algorithm::EcP256, b"x");
    card.client()
        .sign(Slot::CardAuthentication, Algorithm::EcP256, &input)
        .unwrap();
}

#[test]
fn the_atr_is_t1_with_a_correct_check_byte() {
    let atr = atr();
    assert_eq!(atr[0], 0x3B);
    assert_eq!(atr[1] & 0x0F, 14, "fourteen historical bytes");
    assert_eq!(atr[1..].iter().fold(0, |acc, b| acc ^ b), 0);
    assert_eq!(atr.len(), 1 + 1 + 4 + 14 + 1);
}

#[test]
fn configurations_are_checked() {
    let bad_pin = CardConfig {
        pin: zeroize::Zeroizing::new("12ab56".into()),
        ..CardConfig::default()
    };
    assert!(matches!(
        VirtualCard::new(&bad_pin),
        Err(VcardError::PinNotDigits)
    ));
    let short = CardConfig {
        pin: zeroize::Zeroizing::new("123".into()),
        ..CardConfig::default()
    };
    assert!(matches!(VirtualCard::new(&short), Err(VcardError::Pin(_))));
    let tries = CardConfig {
        pin_tries: 16,
        ..CardConfig::default()
    };
    assert!(matches!(
        VirtualCard::new(&tries),
        Err(VcardError::Tries(16))
    ));
    assert!(!format!("{:?}", CardConfig::default()).contains("123456"));
}
