//! Keys made by other tools: certmint reads OpenSSL's private key files in
//! PKCS#8 and traditional form, and classifies public keys by DER alone.

mod common;

use certmint::pem::der_from_pem_or_der;
use certmint::signer::{verify_signature, KeyType, Signer, SignerError, SoftwareSigner};
use common::Workspace;

#[test]
fn openssl_private_keys_in_every_common_form_sign_and_verify() {
    let ws = Workspace::new();
    let cases: [(&str, &[&str], KeyType); 5] = [
        (
            "p256.pk8",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ],
            KeyType::EcP256,
        ),
        (
            "p384.pk8",
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-384",
            ],
            KeyType::EcP384,
        ),
        (
            "p384.sec1",
            &["ecparam", "-name", "secp384r1", "-genkey", "-noout"],
            KeyType::EcP384,
        ),
        (
            "rsa2048.pk8",
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
            KeyType::Rsa(2048),
        ),
        (
            "rsa3072.pkcs1",
            &["genrsa", "-traditional", "3072"],
            KeyType::Rsa(3072),
        ),
    ];
    for (name, args, key_type) in cases {
        let mut all = vec![args[0], "-out", name];
        all.extend_from_slice(&args[1..]);
        ws.openssl(&all).ok();
        let signer = SoftwareSigner::load(&ws.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(signer.key_type(), key_type, "{name}");
        let signature = signer.sign(b"tbs").unwrap();
        verify_signature(
            signer.public_key_der(),
            signer.algorithm(),
            b"tbs",
            &signature,
        )
        .unwrap();
        // The public key certmint derives is the one OpenSSL derives.
        ws.openssl(&[
            "pkey",
            "-in",
            name,
            "-pubout",
            "-outform",
            "DER",
            "-out",
            &format!("{name}.pub.der"),
        ])
        .ok();
        assert_eq!(
            ws.read(&format!("{name}.pub.der")),
            signer.public_key_der(),
            "{name}"
        );
    }
}

#[test]
fn pkcs8_export_round_trips_through_openssl() {
    let ws = Workspace::new();
    for key_type in [KeyType::EcP256, KeyType::EcP384, KeyType::Rsa(2048)] {
        let signer = SoftwareSigner::generate(key_type).unwrap();
        ws.write("k.pem", &signer.to_pkcs8_pem().unwrap());
        ws.openssl(&[
            "pkey",
            "-in",
            "k.pem",
            "-pubout",
            "-outform",
            "DER",
            "-out",
            "k.pub.der",
        ])
        .ok();
        assert_eq!(ws.read("k.pub.der"), signer.public_key_der(), "{key_type}");
        std::fs::remove_file(ws.path("k.pem")).unwrap();
    }
}

#[test]
fn public_keys_are_classified_by_der_alone() {
    let rsa1024 = der_from_pem_or_der(
        include_bytes!("../fixtures/keys/rsa1024.pub.pem"),
        "PUBLIC KEY",
    )
    .unwrap();
    assert_eq!(
        KeyType::of_public_key(&rsa1024).unwrap(),
        KeyType::Rsa(1024)
    );
    let p521 = der_from_pem_or_der(
        include_bytes!("../fixtures/keys/p521.pub.pem"),
        "PUBLIC KEY",
    )
    .unwrap();
    let err = KeyType::of_public_key(&p521).unwrap_err();
    assert!(matches!(err, SignerError::UnsupportedKey(_)), "{err}");
    assert!(err.to_string().contains("only P-256 and P-384"), "{err}");
    assert!(KeyType::of_public_key(b"\x30\x00").is_err());
}

#[test]
fn an_rsa_1024_signing_key_is_refused() {
    let ws = Workspace::new();
    ws.openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:1024",
        "-out",
        "weak.pem",
    ])
    .ok();
    let err = SoftwareSigner::load(&ws.path("weak.pem")).unwrap_err();
    assert!(err.to_string().contains("RSA 2048-4096 bits"), "{err}");
}
