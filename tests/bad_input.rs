//! Bad input gets one clear error line, a non-zero exit code, and nothing
//! is written: the workspace holds exactly the files it held before.

mod common;

use common::{Run, Workspace};

/// Runs `certmint issue` with `args` (after `--ca ca --out out.pem`), expects
/// failure with `code`, one stderr line containing `message`, and no new file.
fn refused(ws: &Workspace, args: &[&str], code: i32, message: &str) -> Run {
    let before = ws.listing();
    let mut all = vec!["issue", "--ca", "ca", "--out", "out.pem"];
    all.extend_from_slice(args);
    let run = ws.certmint(&all);
    assert_eq!(run.code, code, "stderr: {}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one error line, got:\n{}", run.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    assert!(
        lines[0].contains(message),
        "expected {message:?} in {:?}",
        lines[0]
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert_eq!(ws.listing(), before, "nothing may be written");
    run
}

fn ws_with_keys() -> Workspace {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("good", "p384");
    ws
}

#[test]
fn a_csr_with_a_broken_signature() {
    let ws = ws_with_keys();
    ws.openssl(&[
        "req",
        "-in",
        "good.csr",
        "-outform",
        "DER",
        "-out",
        "good.csr.der",
    ])
    .ok();
    let mut der = ws.read("good.csr.der");
    let last = der.len() - 1;
    der[last] ^= 0x01; // inside the signature's last integer
    ws.write("broken.csr", &der);
    refused(
        &ws,
        &[
            "--profile",
            "mali-muhur",
            "--csr",
            "broken.csr",
            "--vkn",
            "4540536920",
            "--unvan",
            "ÖRNEK A.Ş.",
        ],
        3,
        "broken.csr: the request's signature does not verify with its own public key",
    );
}

#[test]
fn an_invalid_vkn() {
    let ws = ws_with_keys();
    refused(
        &ws,
        &[
            "--profile",
            "mali-muhur",
            "--csr",
            "good.csr",
            "--vkn",
            "4540536921",
            "--unvan",
            "ÖRNEK A.Ş.",
        ],
        3,
        "VKN \"4540536921\" has a wrong check digit",
    );
}

#[test]
fn an_rsa_1024_key() {
    let ws = ws_with_keys();
    ws.openssl_key("weak", "rsa1024");
    refused(
        &ws,
        &[
            "--profile",
            "mali-muhur",
            "--public-key",
            "weak.pub",
            "--vkn",
            "4540536920",
            "--unvan",
            "ÖRNEK A.Ş.",
        ],
        3,
        "rsa1024 key is not accepted by profile mali-muhur (accepts rsa2048, p384)",
    );
}

#[test]
fn a_p256_key_for_mali_muhur() {
    let ws = ws_with_keys();
    ws.openssl_key("p256", "p256");
    refused(
        &ws,
        &[
            "--profile",
            "mali-muhur",
            "--public-key",
            "p256.pub",
            "--vkn",
            "4540536920",
            "--unvan",
            "ÖRNEK A.Ş.",
        ],
        3,
        "p256 key is not accepted by profile mali-muhur",
    );
}

#[test]
fn a_missing_unvan() {
    let ws = ws_with_keys();
    refused(
        &ws,
        &[
            "--profile",
            "mali-muhur",
            "--csr",
            "good.csr",
            "--vkn",
            "4540536920",
        ],
        3,
        "profile mali-muhur needs unvan",
    );
}

#[test]
fn an_empty_unvan() {
    let ws = ws_with_keys();
    refused(
        &ws,
        &[
            "--profile",
            "mali-muhur",
            "--csr",
            "good.csr",
            "--vkn",
            "4540536920",
            "--unvan",
            "  ",
        ],
        3,
        "unvan \"  \": is empty",
    );
}

#[test]
fn an_unreadable_ca_key_file() {
    let ws = ws_with_keys();
    refused(
        &ws,
        &[
            "--profile",
            "mali-muhur",
            "--csr",
            "good.csr",
            "--vkn",
            "4540536920",
            "--unvan",
            "ÖRNEK A.Ş.",
            "--ca-key",
            "/nonexistent/issuing-key.pem",
        ],
        1,
        "CA key: cannot read key /nonexistent/issuing-key.pem: No such file or directory",
    );
}

#[test]
fn a_corrupt_ca_key_file() {
    let ws = ws_with_keys();
    ws.write(
        "garbage-key.pem",
        b"-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n",
    );
    refused(
        &ws,
        &[
            "--profile",
            "mali-muhur",
            "--csr",
            "good.csr",
            "--vkn",
            "4540536920",
            "--unvan",
            "ÖRNEK A.Ş.",
            "--ca-key",
            "garbage-key.pem",
        ],
        1,
        "not a supported private key",
    );
}

#[test]
fn a_ca_key_that_is_not_the_issuing_certificates() {
    let ws = ws_with_keys();
    refused(
        &ws,
        &[
            "--profile",
            "mali-muhur",
            "--csr",
            "good.csr",
            "--vkn",
            "4540536920",
            "--unvan",
            "ÖRNEK A.Ş.",
            "--ca-key",
            "ca/root-key.pem",
        ],
        1,
        "the CA key does not belong to the certificate",
    );
}

#[test]
fn a_file_that_is_not_a_public_key() {
    let ws = ws_with_keys();
    ws.write("junk.pub", b"hello");
    refused(
        &ws,
        &[
            "--profile",
            "okc-device",
            "--public-key",
            "junk.pub",
            "--device-serial",
            "FU00022547",
        ],
        3,
        "junk.pub is not a public key",
    );
}

#[test]
fn a_malformed_device_serial() {
    let ws = ws_with_keys();
    ws.openssl_key("dev", "p256");
    refused(
        &ws,
        &[
            "--profile",
            "okc-device",
            "--public-key",
            "dev.pub",
            "--device-serial",
            "FU-0002254",
        ],
        3,
        "device serial \"FU-0002254\" must be 2-3 capital letters followed by 7-8 digits",
    );
}

#[test]
fn fields_of_another_profile() {
    let ws = ws_with_keys();
    ws.openssl_key("dev", "p256");
    refused(
        &ws,
        &[
            "--profile",
            "okc-device",
            "--public-key",
            "dev.pub",
            "--device-serial",
            "FU00022547",
            "--vkn",
            "4540536920",
        ],
        3,
        "profile okc-device does not take vkn",
    );
}

#[test]
fn an_existing_output_file_is_never_overwritten() {
    let ws = ws_with_keys();
    ws.write("out.pem", b"precious");
    refused(
        &ws,
        &[
            "--profile",
            "mali-muhur",
            "--csr",
            "good.csr",
            "--vkn",
            "4540536920",
            "--unvan",
            "ÖRNEK A.Ş.",
        ],
        1,
        "out.pem already exists",
    );
    assert_eq!(ws.read("out.pem"), b"precious");
}

#[test]
fn usage_errors_exit_with_2() {
    let ws = ws_with_keys();
    let run = ws.certmint(&["issue", "--ca", "ca", "--profile", "mali-muhur"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run = ws.certmint(&[
        "issue",
        "--ca",
        "ca",
        "--profile",
        "no-such-profile",
        "--csr",
        "good.csr",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
}

#[test]
fn every_command_has_help_with_an_example() {
    let ws = Workspace::new();
    for args in [
        vec!["ca", "init", "--help"],
        vec!["issue", "--help"],
        vec!["inspect", "--help"],
        vec!["hsm", "keygen", "--help"],
        vec!["hsm", "probe", "--help"],
        vec!["hsm", "provision", "--help"],
        vec!["order", "import", "--help"],
        vec!["order", "pay", "--help"],
        vec!["order", "status", "--help"],
        vec!["order", "list", "--help"],
        vec!["okc", "produce", "--help"],
        vec!["okc", "purge", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["bench", "--help"],
        vec!["card", "virtual", "--help"],
    ] {
        let run = ws.certmint(&args).ok();
        assert!(run.stdout.contains("Example"), "{args:?}: {}", run.stdout);
    }
    let run = ws.certmint(&["--help"]).ok();
    assert!(run.stdout.contains("Exit codes"), "{}", run.stdout);
}

#[test]
fn a_p521_key() {
    let ws = ws_with_keys();
    let p521 = format!("{}/fixtures/keys/p521.pub.pem", env!("CARGO_MANIFEST_DIR"));
    refused(
        &ws,
        &[
            "--profile",
            "okc-device",
            "--public-key",
            &p521,
            "--device-serial",
            "FU00022547",
        ],
        3,
        "EC curve 1.3.132.0.35 (only P-256 and P-384)",
    );
}

#[test]
fn an_rsa_1024_csr_is_verified_then_refused_by_the_profile() {
    let ws = ws_with_keys();
    ws.openssl_key("weak", "rsa1024");
    refused(
        &ws,
        &[
            "--profile",
            "okc-device",
            "--csr",
            "weak.csr",
            "--device-serial",
            "FU00022547",
        ],
        3,
        "rsa1024 key is not accepted by profile okc-device (accepts p256, p384, rsa2048)",
    );
}
