//! Helpers shared by the integration tests: run the real `certmint` binary
//! and the real `openssl` command line in a fresh temporary directory.

#![allow(dead_code)]

pub mod pcsc;
pub mod postgres;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A scratch directory with a certmint CA in `ca/` (when asked for).
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

/// What a command printed and returned.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with both streams unless the command succeeded.
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "command failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// The journal certmint uses in a workspace when a test names none: the
/// file its default would be (`./certmint-journal.sqlite`).
pub const DEFAULT_JOURNAL: &str = "certmint-journal.sqlite";

impl Workspace {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temporary directory"),
        }
    }

    /// A workspace with a CA made by `certmint ca init` with these extra arguments.
    pub fn with_ca(extra: &[&str]) -> Self {
        let ws = Self::new();
        let mut args = vec!["ca", "init", "--dir", "ca"];
        args.extend_from_slice(extra);
        ws.certmint(&args).ok();
        ws
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs certmint in the workspace as `test-operator` (the audit log
    /// names who did it; certmint refuses to record without a name).
    pub fn certmint(&self, args: &[&str]) -> Run {
        Run::from(
            Command::new(env!("CARGO_BIN_EXE_certmint"))
                .args(args)
                .env("CERTMINT_OPERATOR", "test-operator")
                // The workspace's own journal, never one named in the
                // environment of whoever runs the tests.
                .env("CERTMINT_JOURNAL", DEFAULT_JOURNAL)
                .current_dir(self.dir.path())
                .output()
                .expect("run certmint"),
        )
    }

    pub fn openssl(&self, args: &[&str]) -> Run {
        Run::from(
            Command::new("openssl")
                .args(args)
                .current_dir(self.dir.path())
                .output()
                .expect("run openssl (install the openssl package)"),
        )
    }

    /// A private key made by OpenSSL (`p256`, `p384`, `rsa1024`, `rsa2048`…).
    pub fn openssl_key(&self, name: &str, kind: &str) {
        let args: Vec<String> = match kind.strip_prefix("rsa") {
            Some(bits) => vec![
                "-algorithm".into(),
                "RSA".into(),
                "-pkeyopt".into(),
                format!("rsa_keygen_bits:{bits}"),
            ],
            None => vec![
                "-algorithm".into(),
                "EC".into(),
                "-pkeyopt".into(),
                format!(
                    "ec_paramgen_curve:{}",
                    if kind == "p256" { "P-256" } else { "P-384" }
                ),
            ],
        };
        let mut all = vec!["genpkey".to_owned()];
        all.extend(args);
        all.extend(["-out".into(), format!("{name}.key")]);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        self.openssl(&refs).ok();
        self.openssl(&[
            "pkey",
            "-in",
            &format!("{name}.key"),
            "-pubout",
            "-out",
            &format!("{name}.pub"),
        ])
        .ok();
        self.openssl(&[
            "req",
            "-new",
            "-key",
            &format!("{name}.key"),
            "-subj",
            "/CN=requester",
            "-out",
            &format!("{name}.csr"),
        ])
        .ok();
    }

    /// `openssl verify` of `cert` against the CA's root and issuing certificates.
    pub fn verify_chain(&self, cert: &str) -> Run {
        self.openssl(&[
            "verify",
            "-CAfile",
            "ca/root.pem",
            "-untrusted",
            "ca/issuing.pem",
            cert,
        ])
    }

    /// OpenSSL's text dump of a certificate, names with their string types.
    pub fn openssl_text(&self, cert: &str) -> String {
        self.openssl(&[
            "x509",
            "-in",
            cert,
            "-noout",
            "-text",
            "-nameopt",
            "multiline,show_type,utf8,-esc_msb",
        ])
        .ok()
        .stdout
    }

    /// OpenSSL's ASN.1 dump of the DER inside one extension of `cert`.
    pub fn openssl_extension_asn1(&self, cert: &str, extension_name: &str) -> String {
        let dump = self.openssl(&["asn1parse", "-in", cert]).ok().stdout;
        let lines: Vec<&str> = dump.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.contains(extension_name))
            .unwrap_or_else(|| panic!("no {extension_name} in\n{dump}"));
        // The OCTET STRING holding the extension value follows the OID (and
        // the criticality BOOLEAN, when present).
        let octets = lines[at + 1..]
            .iter()
            .find(|l| l.contains("OCTET STRING"))
            .expect("extension value");
        let offset = octets.split(':').next().unwrap().trim();
        self.openssl(&["asn1parse", "-in", cert, "-strparse", offset])
            .ok()
            .stdout
    }

    pub fn exists(&self, name: &str) -> bool {
        self.path(name).exists()
    }

    pub fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.path(name), bytes).unwrap();
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    /// Every file below the workspace, for "nothing was written" checks.
    pub fn listing(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out.sort();
        out
    }
}

/// The PKCS#11 module under test: $CERTMINT_PKCS11_MODULE, else Debian's SoftHSM2.
pub fn softhsm_module() -> String {
    std::env::var("CERTMINT_PKCS11_MODULE")
        .unwrap_or_else(|_| "/usr/lib/softhsm/libsofthsm2.so".into())
}

/// OpenSC's logging PKCS#11 module, which forwards to SoftHSM2 and records every call.
pub const SPY_MODULE: &str = "/usr/lib/x86_64-linux-gnu/pkcs11-spy.so";

/// SoftHSM2 tokens in their own directory inside a workspace.
pub struct Hsm {
    pub dir: PathBuf,
}

impl Hsm {
    /// Creates `labels` as tokens in `ws/hsm` (with SoftHSM's mechanism list `mechanisms`).
    pub fn new(ws: &Workspace, labels: &[&str], mechanisms: &str) -> Self {
        let dir = ws.path("hsm");
        let script = format!("{}/softhsm/new-token.sh", env!("CARGO_MANIFEST_DIR"));
        for label in labels {
            let out = Command::new("bash")
                .args([script.as_str(), dir.to_str().unwrap(), label, mechanisms])
                .output()
                .expect("run softhsm/new-token.sh");
            assert!(
                out.status.success(),
                "new-token.sh: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Self { dir }
    }

    pub fn conf(&self) -> String {
        self.dir.join("softhsm2.conf").display().to_string()
    }

    pub fn pin_file(&self) -> String {
        self.dir.join("user.pin").display().to_string()
    }

    pub fn pin(&self) -> String {
        std::fs::read_to_string(self.dir.join("user.pin"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// A URI for `token` (and `object`), PIN from the token directory's file.
    pub fn uri(&self, token: &str, object: Option<&str>) -> String {
        let object = object.map(|o| format!(";object={o}")).unwrap_or_default();
        format!(
            "pkcs11:token={token}{object}?module-path={}&pin-source=file:{}",
            softhsm_module(),
            self.pin_file()
        )
    }

    /// `pkcs11-tool` (OpenSC) on `token`, logged in: an independent reader of the token.
    pub fn pkcs11_tool(&self, token: &str, args: &[&str]) -> Run {
        let (module, pin) = (softhsm_module(), self.pin());
        let mut all: Vec<&str> = vec![
            "--module",
            &module,
            "--token-label",
            token,
            "--login",
            "--pin",
            &pin,
        ];
        all.extend_from_slice(args);
        let workspace = self
            .dir
            .parent()
            .expect("the hsm folder is inside a workspace");
        Run::from(
            Command::new("pkcs11-tool")
                .args(&all)
                .env("SOFTHSM2_CONF", self.conf())
                .current_dir(workspace)
                .output()
                .expect("run pkcs11-tool (install opensc)"),
        )
    }

    /// The DER of the certificate object labelled `label` on `token`, as
    /// pkcs11-tool reads it (through the workspace file `out`).
    pub fn certificate(&self, ws: &Workspace, token: &str, label: &str, out: &str) -> Vec<u8> {
        self.pkcs11_tool(
            token,
            &[
                "--read-object",
                "--type",
                "cert",
                "--label",
                label,
                "--output-file",
                out,
            ],
        )
        .ok();
        ws.read(out)
    }

    /// The objects pkcs11-tool lists on `token`, as (kind, label) pairs, sorted.
    pub fn objects(&self, token: &str) -> Vec<(String, String)> {
        let listing = self.pkcs11_tool(token, &["--list-objects"]).stdout;
        let mut objects = Vec::new();
        let mut kind = None;
        for line in listing.lines() {
            if let Some(k) = [
                "Private Key Object",
                "Public Key Object",
                "Certificate Object",
            ]
            .iter()
            .find(|k| line.starts_with(**k))
            {
                kind = Some(k.to_string());
            } else if let (Some(k), Some(label)) = (&kind, line.trim().strip_prefix("label:")) {
                objects.push((k.clone(), label.trim().to_owned()));
                kind = None;
            }
        }
        objects.sort();
        objects
    }
}

impl Workspace {
    /// Runs certmint as [`Workspace::certmint`] does, with SOFTHSM2_CONF
    /// (and extra variables, which may name another operator) set.
    pub fn certmint_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        Run::from(
            Command::new(env!("CARGO_BIN_EXE_certmint"))
                .args(args)
                .env("CERTMINT_OPERATOR", "test-operator")
                .env("CERTMINT_JOURNAL", DEFAULT_JOURNAL)
                .envs(env.iter().copied())
                .current_dir(self.dir.path())
                .output()
                .expect("run certmint"),
        )
    }
}

/// The manufacturer the tests' ÖKC orders are imported for.
pub const MANUFACTURER: &str = "Örnek Yazarkasa A.Ş.";

/// `order import --manufacturer MANUFACTURER --manufacturer-vkn 4540536920
/// --ca ca --prefixes PREFIXES --serials LIST`, then `extra`. The
/// manufacturer must be registered first ([`register_manufacturer`]).
pub fn import_args<'a>(prefixes: &'a str, list: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "order",
        "import",
        "--manufacturer",
        MANUFACTURER,
        "--manufacturer-vkn",
        "4540536920",
        "--ca",
        "ca",
        "--prefixes",
        prefixes,
        "--serials",
        list,
    ];
    args.extend_from_slice(extra);
    args
}

/// `okc produce --order ORDER --ca ca --out out --workers 2`, then `extra`.
pub fn produce_args<'a>(order: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "okc",
        "produce",
        "--order",
        order,
        "--ca",
        "ca",
        "--out",
        "out",
        "--workers",
        "2",
    ];
    args.extend_from_slice(extra);
    args
}

/// certmint in the workspace's directory, on its journal (`journal.sqlite`,
/// through CERTMINT_JOURNAL) as `operator` (CERTMINT_OPERATOR); arguments,
/// further variables and output still to be given.
pub fn certmint_on_journal(ws: &Workspace, operator: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_certmint"));
    command
        .env("CERTMINT_JOURNAL", ws.path("journal.sqlite"))
        .env("CERTMINT_OPERATOR", operator)
        .current_dir(ws.dir.path());
    command
}

/// certmint with `args` on the workspace's journal as `test-operator`, with
/// `extra` variables, waited for.
pub fn run_on_journal(ws: &Workspace, args: &[&str], extra: &[(&str, &str)]) -> Run {
    Run::from(
        certmint_on_journal(ws, "test-operator")
            .args(args)
            .envs(extra.iter().copied())
            .output()
            .expect("run certmint"),
    )
}

/// certmint with `args` on the workspace's journal as `operator`, with `env`
/// variables, started (not waited for) with its stdout and stderr piped.
pub fn spawn_on_journal(
    ws: &Workspace,
    operator: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Child {
    certmint_on_journal(ws, operator)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The pids of the `certmint pkcs11-session` processes whose parent is `parent`.
pub fn session_processes_of(parent: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let (Ok(stat), Ok(cmdline)) = (
            std::fs::read_to_string(format!("/proc/{pid}/stat")),
            std::fs::read(format!("/proc/{pid}/cmdline")),
        ) else {
            continue;
        };
        // "pid (comm) state ppid …": the ppid follows the closing parenthesis.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) && String::from_utf8_lossy(&cmdline).contains("pkcs11-session") {
            pids.push(pid);
        }
    }
    pids
}

/// Imports the serial list at `list` for MANUFACTURER (prefixes `prefixes`,
/// then `extra` import arguments) and pays the order it becomes, `order`:
/// the "imported and paid" start of the production tests. `run` is the test
/// file's own way of running certmint; both steps must succeed.
pub fn import_and_pay(
    run: impl Fn(&[&str]) -> Run,
    prefixes: &str,
    list: &str,
    order: &str,
    extra: &[&str],
) {
    ensure_manufacturer(&run);
    run(&import_args(prefixes, list, extra)).ok();
    run(&["order", "pay", "--order", order]).ok();
}

/// Registers MANUFACTURER under `vkn` (`manufacturer register`) with the
/// approved `prefixes` and, when `soft`, a passed secure-area audit (so
/// that it may order soft certificates); must succeed.
pub fn register_manufacturer(run: impl Fn(&[&str]) -> Run, vkn: &str, prefixes: &str, soft: bool) {
    let mut args = vec![
        "manufacturer",
        "register",
        "--vkn",
        vkn,
        "--name",
        MANUFACTURER,
        "--prefixes",
        prefixes,
        "--model-approval",
        "GIB-ONAY-2026/17",
    ];
    if soft {
        args.extend_from_slice(&["--secure-area-audit", "2026-01-15"]);
    }
    run(&args).ok();
}

/// Registers MANUFACTURER (VKN 4540536920, prefixes FU and JI, secure-area
/// audit passed) unless it is registered already: the manufacturer of the
/// tests' ÖKC orders ([`import_args`]).
pub fn ensure_manufacturer(run: impl Fn(&[&str]) -> Run) {
    let shown = run(&["manufacturer", "show", "--vkn", "4540536920"]);
    if shown.code == 8 {
        register_manufacturer(&run, "4540536920", "FU,JI", true);
    } else {
        shown.ok();
    }
}

impl Workspace {
    /// `openssl verify` of an ÖKC device certificate `cert` against the CA's
    /// root and its ÖKC issuing certificate.
    pub fn verify_okc_chain(&self, cert: &str) -> Run {
        self.openssl(&[
            "verify",
            "-CAfile",
            "ca/root.pem",
            "-untrusted",
            "ca/okc-issuing.pem",
            cert,
        ])
    }
}

impl Workspace {
    /// The subjectKeyIdentifier of the CA certificate `cert` (PEM): the key
    /// identifier the journal keys that CA's revocations and CRLs by.
    pub fn key_id_of(&self, cert: &str) -> Vec<u8> {
        use der::DecodePem;
        let certificate = x509_cert::Certificate::from_pem(self.read(cert)).unwrap();
        let (_, ski) = certificate
            .tbs_certificate()
            .get_extension::<x509_cert::ext::pkix::SubjectKeyIdentifier>()
            .unwrap()
            .unwrap();
        ski.0.as_bytes().to_vec()
    }
}
