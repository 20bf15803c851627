//! What a CA must never certify, and hostile input: invalid subject public
//! keys are refused before anything is signed, every input file and count
//! has a cap, and untrusted values are quoted and bounded in messages.

mod common;

use common::{Run, Workspace};
use der::asn1::UintRef;
use der::{Decode, Encode, Reader};

// ---------------------------------------------------------------------------
// Subject public keys
// ---------------------------------------------------------------------------

/// Runs `certmint issue --ca ca --out out.pem` with `args`; expects exit
/// `code`, one error line containing `message`, nothing on stdout and no
/// file written.
fn refused(ws: &Workspace, args: &[&str], code: i32, message: &str) -> Run {
    let before = ws.listing();
    let mut all = vec!["issue", "--ca", "ca", "--out", "out.pem"];
    all.extend_from_slice(args);
    let run = ws.certmint(&all);
    assert_eq!(run.code, code, "stderr: {}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one error line, got:\n{}", run.stderr);
    assert!(
        lines[0].contains(message),
        "expected {message:?} in {:?}",
        lines[0]
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert_eq!(ws.listing(), before, "nothing may be written");
    assert!(!ws.exists("out.pem"));
    run
}

/// The arguments of an ÖKC device certificate for the public key in `file`
/// (the okc-device profile accepts p256, p384 and rsa2048).
fn okc_args(flag: &'static str, file: &'static str) -> Vec<&'static str> {
    vec![
        "--profile",
        "okc-device",
        flag,
        file,
        "--device-serial",
        "FU00022547",
    ]
}

/// An ÖKC device certificate for the key in `file` (given with `flag`:
/// `--public-key` or `--csr`) is refused for its key: exit 3, `message`.
fn refused_key(ws: &Workspace, flag: &'static str, file: &'static str, message: &str) -> Run {
    refused(ws, &okc_args(flag, file), 3, message)
}

/// A DER TLV with a short or long-form length.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// An RSA SubjectPublicKeyInfo with modulus `n` and exponent `e`
/// (big-endian), built by hand so that certmint's checks are not involved.
fn rsa_spki(n: &[u8], e: &[u8]) -> Vec<u8> {
    let mut key = UintRef::new(n).unwrap().to_der().unwrap();
    key.extend(UintRef::new(e).unwrap().to_der().unwrap());
    let key = tlv(0x30, &key);
    let mut bits = vec![0u8];
    bits.extend(key);
    // AlgorithmIdentifier { rsaEncryption, NULL }
    let algorithm = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut body = algorithm.to_vec();
    body.extend(tlv(0x03, &bits));
    tlv(0x30, &body)
}

/// An EC SubjectPublicKeyInfo on the curve of `template` (an openssl SPKI
/// DER) with the uncompressed point `04 || x || y`.
fn ec_spki_like(template: &[u8], x: &[u8], y: &[u8]) -> Vec<u8> {
    let point_len = 1 + x.len() + y.len();
    let mut der = template.to_vec();
    let at = der.len() - point_len;
    assert_eq!(der[at], 0x04, "uncompressed point at the end");
    der[at + 1..at + 1 + x.len()].copy_from_slice(x);
    der[at + 1 + x.len()..].copy_from_slice(y);
    der
}

/// The modulus and exponent of an RSA SubjectPublicKeyInfo.
fn rsa_parts(spki_der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_der).unwrap();
    let mut reader = der::SliceReader::new(spki.subject_public_key.raw_bytes()).unwrap();
    reader
        .sequence(|r| {
            let n = UintRef::decode(r)?.as_bytes().to_vec();
            let e = UintRef::decode(r)?.as_bytes().to_vec();
            Ok::<_, der::Error>((n, e))
        })
        .unwrap()
}

/// `n - (n mod p)` made odd (minus another `p` when even): a modulus of the
/// same size divisible by `p`.
fn divisible_by(n: &[u8], p: u32) -> Vec<u8> {
    let rem = n.iter().fold(0u32, |r, b| (r * 256 + u32::from(*b)) % p);
    let mut out = subtract(n, rem);
    if out.last().unwrap() & 1 == 0 {
        out = subtract(&out, p);
    }
    out
}

fn subtract(n: &[u8], value: u32) -> Vec<u8> {
    let mut out = n.to_vec();
    let mut borrow = i64::from(value);
    for byte in out.iter_mut().rev() {
        let v = i64::from(*byte) - (borrow & 0xff);
        borrow >>= 8;
        if v < 0 {
            *byte = (v + 256) as u8;
            borrow += 1;
        } else {
            *byte = v as u8;
        }
        if borrow == 0 {
            break;
        }
    }
    out
}

fn der_of(ws: &Workspace, pem: &str) -> Vec<u8> {
    let out = format!("{pem}.der");
    ws.openssl(&[
        "pkey", "-pubin", "-in", pem, "-outform", "DER", "-out", &out,
    ])
    .ok();
    ws.read(&out)
}

/// Every kind of broken key the issue tracker reported, given to `issue
/// --public-key` as DER (and one as PEM): each is refused with exit 3 and
/// a message naming the file and what is wrong, and no certificate file is
/// written.
#[test]
fn invalid_public_keys_are_refused_before_anything_is_signed() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("p256", "p256");
    ws.openssl_key("p384", "p384");
    ws.openssl_key("rsa", "rsa2048");
    let p256 = der_of(&ws, "p256.pub");
    let p384 = der_of(&ws, "p384.pub");
    let (n, e) = rsa_parts(&der_of(&ws, "rsa.pub"));
    assert_eq!(e, [1, 0, 1]);

    // An off-curve point: the real X with Y + 1 (mod nothing: still 32 bytes).
    let p256_point = &p256[p256.len() - 64..];
    let mut y = p256_point[32..].to_vec();
    *y.last_mut().unwrap() ^= 1;
    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "p256-off-curve",
            ec_spki_like(&p256, &p256_point[..32], &y),
            "the p256 point is not on the curve",
        ),
        (
            "p256-zero",
            ec_spki_like(&p256, &[0; 32], &[0; 32]),
            "the p256 point is not on the curve",
        ),
        (
            "p384-zero",
            ec_spki_like(&p384, &[0; 48], &[0; 48]),
            "the p384 point is not on the curve",
        ),
    ];
    let p384_point = &p384[p384.len() - 96..];
    let mut y = p384_point[48..].to_vec();
    *y.last_mut().unwrap() ^= 1;
    cases.push((
        "p384-off-curve",
        ec_spki_like(&p384, &p384_point[..48], &y),
        "the p384 point is not on the curve",
    ));
    let mut even = n.clone();
    *even.last_mut().unwrap() &= 0xfe;
    cases.extend([
        (
            "rsa-e1",
            rsa_spki(&n, &[1]),
            "the RSA public exponent 1 is below 65537",
        ),
        (
            "rsa-e2",
            rsa_spki(&n, &[2]),
            "the RSA public exponent is even",
        ),
        (
            "rsa-e65536",
            rsa_spki(&n, &[1, 0, 0]),
            "the RSA public exponent is even",
        ),
        (
            "rsa-e3",
            rsa_spki(&n, &[3]),
            "the RSA public exponent 3 is below 65537",
        ),
        ("rsa-even", rsa_spki(&even, &e), "the RSA modulus is even"),
        (
            "rsa-by-3",
            rsa_spki(&divisible_by(&n, 3), &e),
            "the RSA modulus is divisible by 3",
        ),
        (
            "rsa-by-751",
            rsa_spki(&divisible_by(&n, 751), &e),
            "the RSA modulus is divisible by",
        ),
    ]);
    for (name, der, message) in &cases {
        let file: &'static str = Box::leak(format!("{name}.der").into_boxed_str());
        ws.write(file, der);
        let run = refused_key(&ws, "--public-key", file, message);
        let named = format!("{file}: invalid public key: ");
        assert!(run.stderr.contains(&named), "{}", run.stderr);
    }
    // The same key as PEM.
    let pem = der::pem::encode_string("PUBLIC KEY", der::pem::LineEnding::LF, &cases[1].1).unwrap();
    ws.write("p256-zero.pem", pem.as_bytes());
    refused_key(
        &ws,
        "--public-key",
        "p256-zero.pem",
        "the p256 point is not on the curve",
    );
}

/// An RSA key of a size the profile does not allow (2040 bits) is refused.
#[test]
fn an_rsa_key_of_a_size_the_profile_does_not_allow() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("odd", "rsa2040");
    refused_key(
        &ws,
        "--public-key",
        "odd.pub",
        "rsa2040 key is not accepted by profile okc-device",
    );
}

/// A request whose key is off the curve is refused for its key, checked
/// before its signature (which cannot verify under such a key).
#[test]
fn a_csr_with_an_off_curve_key_is_refused_for_its_key() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("dev", "p256");
    ws.openssl(&[
        "req",
        "-in",
        "dev.csr",
        "-outform",
        "DER",
        "-out",
        "dev.csr.der",
    ])
    .ok();
    let spki = der_of(&ws, "dev.pub");
    let mut csr = ws.read("dev.csr.der");
    let at = csr
        .windows(spki.len())
        .position(|w| w == spki.as_slice())
        .expect("the SPKI inside the request");
    let last = at + spki.len() - 1;
    csr[last] ^= 1; // the point's last Y byte: off the curve
    ws.write("bad.csr", &csr);
    refused_key(
        &ws,
        "--csr",
        "bad.csr",
        "bad.csr: invalid public key: the p256 point is not on the curve",
    );
}

/// Keys made by OpenSSL (P-256, P-384, RSA-2048) are still certified, and
/// an RSA-3072 key passes the same checks in the library.
#[test]
fn good_openssl_keys_still_pass() {
    let ws = Workspace::with_ca(&[]);
    for (i, kind) in ["p256", "p384", "rsa2048"].iter().enumerate() {
        ws.openssl_key(kind, kind);
        let key = format!("{kind}.pub");
        let out = format!("{kind}.pem");
        let serial = format!("FU0002254{i}");
        ws.certmint(&[
            "issue",
            "--ca",
            "ca",
            "--profile",
            "okc-device",
            "--public-key",
            &key,
            "--device-serial",
            &serial,
            "--out",
            &out,
        ])
        .ok();
        assert_eq!(ws.verify_okc_chain(&out).code, 0);
    }
    ws.openssl_key("rsa3072", "rsa3072");
    let der = der_of(&ws, "rsa3072.pub");
    assert_eq!(
        certmint::signer::KeyType::of_public_key(&der).unwrap(),
        certmint::signer::KeyType::Rsa(3072)
    );
}

// ---------------------------------------------------------------------------
// Caps on input files and counts
// ---------------------------------------------------------------------------

/// The address-space limit a capped run gets: far above what certmint
/// needs, far below what reading `/dev/zero` whole takes.
const MEMORY_LIMIT: &str = "--as=1073741824";

/// Runs certmint in `ws` under [`MEMORY_LIMIT`] with a 20-second deadline;
/// a run past the deadline is killed and the test fails.
fn bounded(ws: &Workspace, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut child = std::process::Command::new("prlimit")
        .arg(MEMORY_LIMIT)
        .arg(env!("CARGO_BIN_EXE_certmint"))
        .args(args)
        .env("CERTMINT_OPERATOR", "test-operator")
        .envs(env.iter().copied())
        .current_dir(ws.path(""))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run prlimit (util-linux)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            let shown: Vec<String> = args.iter().map(|a| a.chars().take(40).collect()).collect();
            panic!("certmint {shown:?} still running after 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Run::from(child.wait_with_output().unwrap())
}

fn assert_refused(run: &Run, code: i32, message: &str) {
    assert_eq!(run.code, code, "stderr: {}", run.stderr);
    assert!(
        run.stderr.contains(message),
        "{message:?} in {}",
        run.stderr
    );
    assert!(run.stderr.len() < 1024, "a short error: {}", run.stderr);
}

/// A request, a public key, a subject file, a CA configuration and a
/// certificate to inspect given as `/dev/zero` end at once with exit 3 and
/// "larger than 1048576 bytes", in bounded memory; no certificate is written.
#[test]
fn dev_zero_as_any_input_file_ends_at_its_cap() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("dev", "p256");
    let too_large = "larger than 1048576 bytes";
    let issue = |extra: &[&str]| {
        let mut args = vec![
            "issue",
            "--ca",
            "ca",
            "--profile",
            "okc-device",
            "--device-serial",
            "FU00022547",
            "--out",
            "out.pem",
        ];
        args.extend_from_slice(extra);
        let run = bounded(&ws, &args, &[]);
        assert!(!ws.exists("out.pem"));
        run
    };
    assert_refused(&issue(&["--csr", "/dev/zero"]), 3, too_large);
    assert_refused(&issue(&["--public-key", "/dev/zero"]), 3, too_large);
    assert_refused(
        &issue(&["--public-key", "dev.pub", "--subject", "/dev/zero"]),
        3,
        too_large,
    );
    assert_refused(&bounded(&ws, &["inspect", "/dev/zero"], &[]), 3, too_large);
    let config = ws.path("ca/certmint-ca.toml");
    std::fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &config).unwrap();
    assert_refused(&issue(&["--public-key", "dev.pub"]), 3, too_large);
}

/// Counts beyond their maximum are usage errors (exit 2): 4294967295
/// seals, 100000 workers, a billion-device bench batch, an endless or
/// non-finite bench measurement.
#[test]
fn counts_beyond_their_maximum_are_usage_errors() {
    let ws = Workspace::new();
    for (args, message) in [
        (
            vec![
                "order",
                "import",
                "--kind",
                "mali-muhur",
                "--vkn",
                "4540536920",
                "--unvan",
                "ÖRNEK A.Ş.",
                "--target",
                "card",
                "--seals",
                "4294967295",
            ],
            "--seals",
        ),
        (
            vec![
                "okc",
                "produce",
                "--order",
                "1",
                "--ca",
                "ca",
                "--workers",
                "100000",
            ],
            "--workers",
        ),
        (vec!["bench", "--workers", "100000"], "--workers"),
        (vec!["bench", "--batch", "1000000000"], "--batch"),
        (vec!["bench", "--seconds", "inf"], "--seconds"),
        (vec!["bench", "--seconds", "1e9"], "--seconds"),
        (vec!["bench", "--seconds", "NaN"], "--seconds"),
        (
            vec![
                "card",
                "virtual",
                "--cards",
                "4294967295",
                "--eject-on-reset",
            ],
            "--cards",
        ),
        (
            vec!["card", "virtual", "--eject-idle-ms", "18446744073709551615"],
            "--eject-idle-ms",
        ),
    ] {
        let run = bounded(&ws, &args, &[]);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
    }
}

/// An over-long PIN file (and `/dev/zero` as the PIN file) is refused with
/// exit 3 before `C_Login`: pkcs11-spy records no login, so no retry of the
/// token was spent; the right PIN file still logs in through the same spy.
#[test]
fn an_over_long_pin_file_never_reaches_c_login() {
    let ws = Workspace::new();
    let hsm = common::Hsm::new(&ws, &["ca"], "ALL");
    let mut long = hsm.pin().into_bytes();
    long.extend(std::iter::repeat_n(b'9', 300));
    ws.write("long.pin", &long);
    let conf = hsm.conf();
    let module = common::softhsm_module();
    for (pin_file, log, key) in [
        ("long.pin", "long.log", "k1"),
        ("/dev/zero", "zero.log", "k2"),
    ] {
        let log_path = ws.path(log).display().to_string();
        let uri = format!(
            "pkcs11:token=ca;object={key}?module-path={}&pin-source=file:{pin_file}",
            common::SPY_MODULE
        );
        let env = [
            ("SOFTHSM2_CONF", conf.as_str()),
            ("PKCS11SPY", module.as_str()),
            ("PKCS11SPY_OUTPUT", log_path.as_str()),
        ];
        let run = bounded(
            &ws,
            &["hsm", "keygen", "--key", &uri, "--key-type", "p256"],
            &env,
        );
        assert_refused(
            &run,
            3,
            "longer than 255 bytes, the longest it takes; not tried",
        );
        let calls = std::fs::read_to_string(ws.path(log)).unwrap_or_default();
        assert!(!calls.contains("C_Login"), "{pin_file}: C_Login was called");
    }
    // The same spy sees the login of the right PIN.
    let log_path = ws.path("right.log").display().to_string();
    let uri = format!(
        "pkcs11:token=ca;object=k3?module-path={}&pin-source=file:{}",
        common::SPY_MODULE,
        hsm.pin_file()
    );
    let env = [
        ("SOFTHSM2_CONF", conf.as_str()),
        ("PKCS11SPY", module.as_str()),
        ("PKCS11SPY_OUTPUT", log_path.as_str()),
    ];
    bounded(
        &ws,
        &["hsm", "keygen", "--key", &uri, "--key-type", "p256"],
        &env,
    )
    .ok();
    assert!(std::fs::read_to_string(ws.path("right.log"))
        .unwrap()
        .contains("C_Login"));
}

// ---------------------------------------------------------------------------
// Untrusted values in messages and subjects
// ---------------------------------------------------------------------------

/// Whether `text` holds a byte a terminal acts on (anything below 0x20 but
/// the newline, or DEL).
fn has_raw_control_bytes(text: &[u8]) -> bool {
    text.iter().any(|&b| (b < 0x20 && b != b'\n') || b == 0x7f)
}

/// A 20 MB unvan (in a subject file) and a 120 KB one (on the command
/// line, near the kernel's limit for one argument) end in one short error
/// line (< 1 KB) with exit 3; the long value is shown cut with its length.
#[test]
fn a_huge_unvan_gets_a_short_error() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("seal", "p384");
    let huge = format!(
        "vkn = \"4540536920\"\nunvan = \"{}\"\n",
        "A".repeat(20 << 20)
    );
    ws.write("huge.toml", huge.as_bytes());
    let args = [
        "issue",
        "--ca",
        "ca",
        "--profile",
        "mali-muhur",
        "--public-key",
        "seal.pub",
        "--out",
        "out.pem",
    ];
    let mut with_file = args.to_vec();
    with_file.extend(["--subject", "huge.toml"]);
    let run = bounded(&ws, &with_file, &[]);
    assert_refused(&run, 3, "huge.toml");
    let long = "B".repeat(120 * 1024);
    let mut with_flag = args.to_vec();
    with_flag.extend(["--vkn", "4540536920", "--unvan", &long]);
    let run = bounded(&ws, &with_flag, &[]);
    assert_refused(&run, 3, "(122880 characters)");
    assert!(run.stderr.contains("unvan \"BBBB"), "{}", run.stderr);
    assert!(!ws.exists("out.pem"));
}

/// ESC and NUL in a pkcs11: URI (raw, and percent-encoded in module-path
/// and an attribute name) never reach the terminal raw: the messages show
/// them escaped (`\u{1b}`, or percent-encoded as in the URI).
#[test]
fn control_bytes_in_a_pkcs11_uri_are_escaped_in_messages() {
    let ws = Workspace::new();
    // The object's escapes reach the token lookup's message: a real module.
    let with_module = format!(
        "pkcs11:token=x;object=%1b%00?module-path={}",
        common::softhsm_module()
    );
    for uri in [
        "pkcs11:token=x?module-path=/no%1b[2J%00where",
        "pkcs11:token=x?module-path=/no\u{1b}[2Jwhere",
        "pkcs11:token=x;bad\u{1b}[2J=1",
        with_module.as_str(),
        "pkcs1\u{1b}[2J1:token=x",
    ] {
        let run = ws.certmint(&["hsm", "probe", "--token", uri]);
        assert_ne!(run.code, 0, "{uri:?}");
        assert!(
            !has_raw_control_bytes(run.stderr.as_bytes()),
            "{uri:?}: {:?}",
            run.stderr
        );
        assert!(
            run.stderr.contains("\\u{1b}") || run.stderr.contains("%1B"),
            "{uri:?}: {}",
            run.stderr
        );
    }
}

/// `inspect` of a certificate someone else made, whose commonName holds ESC
/// (a terminal's clear-screen sequence) and U+202E: the report shows them
/// escaped, never raw, and each value stays on its own line.
#[test]
fn inspect_shows_control_and_bidi_characters_of_a_foreign_certificate_escaped() {
    let ws = Workspace::new();
    let subject = "/CN=evil\u{1b}[2Jx\u{202e}y";
    let made = ws.openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "foreign.key",
        "-out",
        "foreign.pem",
        "-days",
        "1",
        "-utf8",
        "-subj",
        subject,
    ]);
    assert_eq!(made.code, 0, "{}", made.stderr);
    let run = ws.certmint(&["inspect", "foreign.pem"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        !has_raw_control_bytes(run.stdout.as_bytes()),
        "{:?}",
        run.stdout
    );
    assert!(!run.stdout.contains('\u{202e}'), "{:?}", run.stdout);
    assert!(
        run.stdout
            .contains("CN = evil\\u{1b}[2Jx\\u{202e}y (UTF8String)"),
        "{}",
        run.stdout
    );
}

/// A right-to-left override (U+202E) or another bidirectional formatting
/// character in an unvan, a manufacturer or an order's unvan is refused
/// with exit 3, and the message shows it escaped; nothing is written.
#[test]
fn bidi_and_control_characters_in_subject_data_are_refused() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("seal", "p384");
    ws.openssl_key("dev", "p256");
    for unvan in [
        "ÖRNEK \u{202e}Ş.A KETİRİŞ",
        "ÖRNEK\u{2066} A.Ş.",
        "ÖRNEK\u{200f} A.Ş.",
        "ÖRNEK\u{061c} A.Ş.",
        "ÖRNEK\u{1b}[2J A.Ş.",
    ] {
        let run = refused(
            &ws,
            &[
                "--profile",
                "mali-muhur",
                "--public-key",
                "seal.pub",
                "--vkn",
                "4540536920",
                "--unvan",
                unvan,
            ],
            3,
            "contains control or bidirectional formatting characters",
        );
        assert!(!run.stderr.contains(unvan), "escaped: {}", run.stderr);
    }
    refused(
        &ws,
        &[
            "--profile",
            "okc-device",
            "--public-key",
            "dev.pub",
            "--device-serial",
            "FU00022547",
            "--manufacturer",
            "Örnek \u{202e}Yazarkasa",
        ],
        3,
        "manufacturer \"Örnek \\u{202e}Yazarkasa\": contains control or bidirectional",
    );
    let run = ws.certmint(&[
        "order",
        "import",
        "--kind",
        "mali-muhur",
        "--vkn",
        "4540536920",
        "--unvan",
        "ÖRNEK \u{202e}Ş.A",
        "--target",
        "card",
        "--journal",
        "journal.db",
    ]);
    assert_refused(&run, 3, "bidirectional formatting characters");
    assert!(!ws.exists("journal.db"), "no order is journalled");
}

/// `CertificateAuthority::prepare`, the one place every subject key goes
/// through on its way to a TBS certificate (requests, bare keys, keys made
/// in tokens and on cards, orders), takes only a `SubjectKey`, and an
/// invalid key never becomes one: an off-curve P-256 point and an RSA key
/// with exponent 3 give `SignerError::InvalidKey` and nothing to sign.
#[test]
fn prepare_takes_only_keys_that_were_checked() {
    use certmint::issue::{validity, CertificateAuthority, SubjectKey};
    use certmint::profile::{CaConfig, Profile, ProfileName, Subject, SubjectInput};
    use certmint::signer::{KeyType, Signer, SignerError, SoftwareSigner};

    let config = CaConfig::kamu_sm_defaults();
    let now = validity::now().unwrap();
    let root_profile = Profile::from_config(ProfileName::RootCa, &config).unwrap();
    let root_subject = Subject::from_input(
        &root_profile,
        &SubjectInput {
            common_name: Some("Test Root".into()),
            ..Default::default()
        },
        certmint::ids::IdMode::Production,
    )
    .unwrap();
    let ca = CertificateAuthority::create_root(
        Box::new(SoftwareSigner::generate(KeyType::EcP256).unwrap()),
        &root_profile,
        &root_subject,
        now,
    )
    .unwrap();
    let profile = Profile::from_config(ProfileName::OkcDevice, &config).unwrap();
    let subject = Subject::from_input(
        &profile,
        &SubjectInput {
            device_serial: Some("FU00022547".into()),
            ..Default::default()
        },
        certmint::ids::IdMode::Production,
    )
    .unwrap();

    let good = SoftwareSigner::generate(KeyType::EcP256).unwrap();
    let good = good.public_key_der();
    let checked = SubjectKey::checked(good).unwrap();
    assert!(ca.prepare(&profile, &subject, checked, now).is_ok());
    let mut off_curve = good.to_vec();
    *off_curve.last_mut().unwrap() ^= 1;
    let rsa = SoftwareSigner::generate(KeyType::Rsa(2048)).unwrap();
    let (n, _) = rsa_parts(rsa.public_key_der());
    for bad in [off_curve, rsa_spki(&n, &[3])] {
        // `prepare` takes only a SubjectKey: an invalid key never becomes one.
        match SubjectKey::checked(&bad) {
            Err(SignerError::InvalidKey(_)) => {}
            Ok(_) => panic!("an invalid key became a key to prepare a certificate for"),
            Err(other) => panic!("expected an invalid key, got {other}"),
        }
    }
}

/// An endless serial list (one line that never ends, streamed through a
/// pipe) ends with exit 3 at the 64 MiB cap instead of being read forever,
/// and no order is imported.
#[test]
fn an_endless_serial_list_ends_at_its_cap() {
    use std::io::Write as _;
    let ws = Workspace::with_ca(&[]);
    common::register_manufacturer(
        |args| {
            let mut args = args.to_vec();
            args.extend_from_slice(&["--journal", "journal.db"]);
            ws.certmint(&args)
        },
        "4540536920",
        "FU",
        false,
    );
    let mut child = std::process::Command::new("prlimit")
        .arg(MEMORY_LIMIT)
        .arg(env!("CARGO_BIN_EXE_certmint"))
        .env("CERTMINT_OPERATOR", "test-operator")
        .args([
            "order",
            "import",
            "--kind",
            "okc",
            "--manufacturer",
            "Örnek Yazarkasa A.Ş.",
            "--manufacturer-vkn",
            "4540536920",
            "--ca",
            "ca",
            "--target",
            "hsm",
            "--prefixes",
            "FU",
            "--serials",
            "/dev/stdin",
            "--journal",
            "journal.db",
        ])
        .current_dir(ws.path(""))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run prlimit (util-linux)");
    let mut stdin = child.stdin.take().unwrap();
    // Writes until certmint closes the pipe (or is killed).
    let writer = std::thread::spawn(move || {
        let block = [b'A'; 64 * 1024];
        while stdin.write_all(&block).is_ok() {}
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("an endless serial list was still being read after 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let run = Run::from(child.wait_with_output().unwrap());
    writer.join().unwrap();
    assert_refused(&run, 3, "larger than 67108864 bytes");
    assert!(
        run.stderr.contains("nothing was imported"),
        "{}",
        run.stderr
    );
}

/// Whatever an error line carries (here an output path with ESC and a
/// right-to-left override, named in "already exists"), it reaches stderr
/// with no raw control byte and no bidirectional override.
#[test]
fn every_error_line_is_terminal_safe() {
    let ws = Workspace::with_ca(&[]);
    ws.openssl_key("dev", "p256");
    let out = "x\u{1b}[2J\u{202e}.pem";
    ws.write(out, b"taken");
    let run = ws.certmint(&[
        "issue",
        "--ca",
        "ca",
        "--profile",
        "okc-device",
        "--public-key",
        "dev.pub",
        "--device-serial",
        "FU00022547",
        "--out",
        out,
    ]);
    assert_refused(&run, 1, "already exists");
    assert!(
        !has_raw_control_bytes(run.stderr.as_bytes()) && !run.stderr.contains('\u{202e}'),
        "{:?}",
        run.stderr
    );
    assert!(
        run.stderr.contains("x\\u{1b}[2J\\u{202e}.pem"),
        "{}",
        run.stderr
    );
}
