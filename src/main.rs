//! The `certmint` command: parses arguments, calls the library, reports.
//! All behaviour lives in the library; this file turns its errors into one
//! message line and a documented exit code.

#![forbid(unsafe_code)]

#[macro_use]
mod cli;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use der::DateTime;

use certmint::ca::{self, CaDirectory, CaError, CaKey, InitOptions, IssuingCaOptions};
use certmint::ids::IdMode;
use certmint::inspect;
use certmint::issue::IssueError;
use certmint::keyref::KeyRefError;
use certmint::pkcs11::{PinSource, Pkcs11Uri, Token};
use certmint::profile::{CaConfig, ProductLine, Profile, ProfileName, Subject, SubjectInput};
use certmint::request;
use certmint::signer::KeyType;

#[derive(Parser)]
#[command(
    name = "certmint",
    version,
    about = "Certificate production engine: Mali Mühür e-seals and ÖKC device certificates",
    after_help = certmint::error::exit_codes_help()
)]
struct Cli {
    #[command(flatten)]
    verbosity: cli::logging::Verbosity,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create and manage certification authorities.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Issue one certificate from a CSR or a public key, by profile.
    Issue(IssueArgs),
    /// Show a certificate's fields (string types included).
    Inspect(InspectArgs),
    /// PKCS#11 tokens: CA key ceremony, customer preflight and provisioning.
    #[command(subcommand)]
    Hsm(HsmCommand),
    /// Orders: import with the serial list, payment, status.
    #[command(subcommand)]
    Order(cli::orders::OrderCommand),
    /// The register of ÖKC manufacturers: register, list, show, change.
    #[command(subcommand)]
    Manufacturer(cli::manufacturers::ManufacturerCommand),
    /// ÖKC production and the purge of soft deliveries.
    #[command(subcommand)]
    Okc(cli::orders::OkcCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(cli::orders::AuditCommand),
    /// Certificates on record: list them, show them.
    #[command(subcommand)]
    Cert(cli::cert::CertCommand),
    /// Revoke certificates: by serial, device, seal, order, device list, or an issuing CA certificate.
    Revoke(Box<cli::revoke::RevokeArgs>),
    /// PIV smart cards through PC/SC: readers, one-card provisioning, the card station, a virtual card.
    #[command(subcommand)]
    Card(cli::card::CardCommand),
    /// Measure a CA key and the issuance pipeline around it (raw rates, efficiency, latency).
    Bench(cli::bench::BenchArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(after_help = "Install:\n  \
certmint completions bash > /usr/share/bash-completion/completions/certmint\n  \
certmint completions zsh  > /usr/local/share/zsh/site-functions/_certmint\n  \
certmint completions fish > ~/.config/fish/completions/certmint.fish")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages: certmint(1) and one per command.
    #[command(
        after_help = "Install:\n  certmint man --out-dir /usr/local/share/man/man1 && mandb -q\n  \
man certmint-okc-produce\n\nWithout --out-dir, prints certmint(1) alone."
    )]
    Man {
        /// Write every page (certmint.1, certmint-okc-produce.1, …) into this folder.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
    /// Internal: one PKCS#11 session of a CA key, driven over stdin/stdout by
    /// the certmint process that started it.
    #[command(name = "pkcs11-session", hide = true)]
    Pkcs11Session,
}

#[derive(Subcommand)]
enum HsmCommand {
    /// Key ceremony: generate a CA key pair inside a token (refuses a label in use).
    Keygen(HsmKeygenArgs),
    /// Preflight a token: library, mechanisms, sessions, memory, labels in use.
    Probe(HsmProbeArgs),
    /// Generate a Mali Mühür key in a customer's token and import its certificate beside it.
    Provision(HsmProvisionArgs),
    /// List a module's slots and tokens, or one token's objects (reading only).
    List(HsmListArgs),
}

#[derive(Args)]
#[command(after_help = format!("Examples:\n  certmint hsm list --module-name softhsm2\n  \
certmint hsm list --module-path /usr/lib/vendor/libpkcs11.so --json\n  \
certmint hsm list --token 'pkcs11:token=musteri?module-path=/usr/lib/vendor/libpkcs11.so'\n  \
certmint hsm list --token 'pkcs11:token=musteri?pin-source=file:musteri.pin' --login\n\n\
Without --token: every slot of the module, with its token's label, manufacturer, model and serial\n\
(the values a URI's token=, manufacturer=, model=, serial= and slot-id= take).\n\
With --token: the token's objects (class, label, CKA_ID, key type, flags such as sign, sensitive,\n\
extractable); private objects only with --login.\n{URI_HELP}"))]
struct HsmListArgs {
    /// List this token's objects: a pkcs11: URI with token= or serial=.
    #[arg(long, conflicts_with_all = ["module_path", "module_name"])]
    token: Option<String>,
    /// Log in to the token (PIN from pin-source, --token-pin-env or a prompt) to list private objects too.
    #[arg(long, requires = "token")]
    login: bool,
    /// The PKCS#11 module whose slots to list (default: $CERTMINT_PKCS11_MODULE, else p11-kit's proxy).
    #[arg(long)]
    module_path: Option<PathBuf>,
    /// The module p11-kit registered under this name (e.g. softhsm2, opensc-pkcs11).
    #[arg(long, conflicts_with = "module_path")]
    module_name: Option<String>,
    /// Environment variable holding the token's user PIN (with --login, when the URI has no pin-source).
    #[arg(long, requires = "login")]
    token_pin_env: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

const URI_HELP: &str = "\n\
Token URIs are RFC 7512: pkcs11:token=LABEL[;object=KEYLABEL]?module-path=MODULE&pin-source=file:PINFILE\n\
module-name=NAME loads the module p11-kit registered as NAME; without either, $CERTMINT_PKCS11_MODULE,\n\
else p11-kit's proxy when installed.\n\
The PIN comes from pin-source, else from the variable named by --token-pin-env (--ca-pin-env for the CA key),\n\
else a prompt; never from arguments.";

#[derive(Args)]
#[command(after_help = format!("Example:\n  certmint hsm keygen --key 'pkcs11:token=ca;object=issuing-2026?pin-source=file:/run/secrets/ca.pin' --key-type p384\n{URI_HELP}"))]
struct HsmKeygenArgs {
    /// The key to create: a pkcs11: URI with token= and object= (the label).
    #[arg(long)]
    key: String,
    /// p384, p256, rsa2048, rsa3072 or rsa4096.
    #[arg(long, default_value = "p384")]
    key_type: KeyType,
    /// Environment variable holding the token's user PIN (when the URI has no pin-source).
    #[arg(long, alias = "pin-env")]
    token_pin_env: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(after_help = format!("Examples:\n  certmint hsm probe --token 'pkcs11:token=musteri?module-path=/usr/lib/vendor/libpkcs11.so'\n  certmint hsm probe --token 'pkcs11:token=musteri?pin-source=file:pin' --vkn 4540536920 --json\n{URI_HELP}"))]
struct HsmProbeArgs {
    /// The token: a pkcs11: URI with token= or serial=.
    #[arg(long)]
    token: String,
    /// Key types to check mechanisms for (repeatable; default rsa2048 and p384).
    #[arg(long = "key-type")]
    key_types: Vec<KeyType>,
    /// Check that {VKN}SIGN0 is free (needs the PIN; repeatable).
    #[arg(long)]
    vkn: Vec<String>,
    /// Check that this label is free (needs the PIN; repeatable).
    #[arg(long)]
    label: Vec<String>,
    /// Environment variable holding the token's user PIN (when the URI has no pin-source).
    #[arg(long, alias = "pin-env")]
    token_pin_env: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(after_help = format!("Examples:\n  certmint hsm provision --ca ./ca --token 'pkcs11:token=musteri?pin-source=file:musteri.pin' \\\n      --vkn 4540536920 --unvan 'Örnek Bilişim A.Ş.' --key-type p384 --out seal.pem\n  \
certmint hsm provision --ca ./ca --order 7 --token 'pkcs11:token=musteri?pin-source=file:musteri.pin'\n\n\
Writes a key pair labelled with the company's next seal number {{VKN}}SIGN<n> (counting every seal it\n\
has on record; CKA_ID = SHA-1 of the public key) and the certificate beside it, then reads everything\n\
back: attributes, public key match, a test signature. The seal is on record in a one-off order\n\
(intent before the CA signs, the certificate after).\n\
With --order, provisions every seal of a paid Mali Mühür order for the hsm target: the company,\n\
the key type and the labels ({{VKN}}SIGN0, SIGN1, …) come from the order; each seal is journalled\n\
(intent before signing), a re-run resumes and issues nothing twice, and the delivery goes to\n\
DELIVERIES/order-N.\n{URI_HELP}"))]
struct HsmProvisionArgs {
    /// The CA directory made by `certmint ca init` (its key may itself be a pkcs11: URI).
    #[arg(long)]
    ca: PathBuf,
    /// The customer's token: a pkcs11: URI with token= or serial=.
    #[arg(long)]
    token: String,
    /// Provision the seals of this journalled Mali Mühür order (target hsm).
    #[arg(long)]
    order: Option<i64>,
    #[command(flatten)]
    journal: cli::orders::JournalArgs,
    /// With --order: the delivery root (the order's folder is DELIVERIES/order-N).
    #[arg(long, default_value = "deliveries")]
    deliveries: PathBuf,
    /// With --order, when another producer holds the order: wait up to SECONDS for it
    /// to finish (default: refuse at once, naming it; exit 7).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    wait: u64,
    #[command(flatten)]
    seal: cli::SealSubjectArgs,
    /// rsa2048 or p384 (the Mali Mühür key types; default p384); with --order, the order's key type is used.
    #[arg(long)]
    key_type: Option<KeyType>,
    /// Replace objects that already carry the label.
    #[arg(long)]
    replace: bool,
    /// Also write the certificate here as PEM.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Environment variable holding the customer token's user PIN (when its URI has no pin-source).
    #[arg(long, alias = "pin-env")]
    token_pin_env: Option<String>,
    /// Environment variable holding the CA token's PIN (when the CA key is a pkcs11: URI without pin-source).
    #[arg(long)]
    ca_pin_env: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum CaCommand {
    /// Create a self-signed root CA and one issuing CA per product line (Mali Mühür, ÖKC) signed by it.
    Init(CaInitArgs),
    /// Add a product line's issuing CA, signed by the root, to an existing CA directory.
    AddIssuing(CaAddIssuingArgs),
    /// Show the root and each product line's issuing CA: files, names, validity, policy and URLs.
    Show(CaShowArgs),
    /// Issue a CA's next CRL from the revocations on record: an issuing CA's, or the root's (ARL).
    Crl(Box<cli::crl::CaCrlArgs>),
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  certmint ca show --ca ./ca\n  certmint ca show --ca ./ca --json\n\n\
Reads the CA directory only; opens no key."
)]
struct CaShowArgs {
    /// The CA directory made by `certmint ca init`.
    #[arg(long)]
    ca: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  certmint ca add-issuing --ca ./ca --line okc\n  \
certmint ca add-issuing --ca ./ca --line okc --key 'pkcs11:token=ca;object=okc-2026?pin-source=file:/run/secrets/ca.pin'\n\n\
Signs the new issuing CA certificate with the root key (root-key.pem in the CA directory, or --root-key),\n\
writes okc-issuing.pem (and okc-issuing-key.pem for a generated key) and records it in certmint-ca.toml.\n\
Refuses (exit 9) when the line already has an issuing CA of its own. Never overwrites."
)]
struct CaAddIssuingArgs {
    /// The CA directory made by `certmint ca init`.
    #[arg(long)]
    ca: PathBuf,
    /// The product line of the new issuing CA: okc (mali-muhur always exists).
    #[arg(long)]
    line: ProductLine,
    /// Key type of a generated issuing key: p384, p256, rsa2048, rsa3072 or rsa4096.
    #[arg(long, default_value = "p384")]
    key_type: KeyType,
    /// Use this existing issuing key (file or pkcs11: URI) instead of generating one.
    #[arg(long)]
    key: Option<String>,
    /// The root key (file or pkcs11: URI); root-key.pem in the CA directory by default.
    #[arg(long)]
    root_key: Option<String>,
    /// The issuing CA's commonName (the issuer name of every certificate it signs).
    #[arg(long)]
    cn: Option<String>,
    /// organizationName of the issuing CA (none by default).
    #[arg(long)]
    organization: Option<String>,
    /// Environment variable holding the CA token's PIN (for pkcs11: keys without pin-source).
    #[arg(long, alias = "pin-env")]
    ca_pin_env: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  certmint ca init --dir ./ca\n  certmint ca init --dir ./lab-ca --key-type p256 --issuing-cn 'Lab Issuing CA' --root-cn 'Lab Root CA'\n\n\
Writes certmint-ca.toml (profiles, URLs, OIDs: edit it), root.pem, root-key.pem,\n\
issuing.pem and issuing-key.pem (the Mali Mühür issuing CA), okc-issuing.pem and\n\
okc-issuing-key.pem (the ÖKC issuing CA); keys are PKCS#8 with mode 0600. Never overwrites."
)]
struct CaInitArgs {
    /// The CA directory to create (created if missing; existing CA files are never replaced).
    #[arg(long)]
    dir: PathBuf,
    /// Key type of generated CA keys: p384, p256, rsa2048, rsa3072 or rsa4096.
    #[arg(long, default_value = "p384")]
    key_type: KeyType,
    /// Use this existing root key (file or pkcs11: URI) instead of generating one.
    #[arg(long)]
    root_key: Option<String>,
    /// Use this existing Mali Mühür issuing key (file or pkcs11: URI, e.g. from `hsm keygen`) instead of generating one.
    #[arg(long)]
    issuing_key: Option<String>,
    /// Use this existing ÖKC issuing key (file or pkcs11: URI) instead of generating one.
    #[arg(long)]
    okc_issuing_key: Option<String>,
    /// Environment variable holding the CA token's PIN (for pkcs11: keys without pin-source).
    #[arg(long, alias = "pin-env")]
    ca_pin_env: Option<String>,
    /// Root CA commonName.
    #[arg(
        long,
        default_value = "Mali Mühür Kök Sertifika Hizmet Sağlayıcısı - Sürüm 1"
    )]
    root_cn: String,
    /// Mali Mühür issuing CA commonName (the issuer name of every seal certificate it signs).
    #[arg(long, default_value = certmint::profile::MALI_MUHUR_ISSUER_CN)]
    issuing_cn: String,
    /// ÖKC issuing CA commonName (the issuer name of every device certificate it signs).
    #[arg(long, default_value = certmint::profile::OKC_ISSUER_CN)]
    okc_issuing_cn: String,
    /// organizationName of all three CAs (none by default, as in Kamu SM's issuer name).
    #[arg(long)]
    organization: Option<String>,
    /// Start from this configuration file instead of the Kamu SM defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(after_help = "Examples:\n  \
certmint issue --ca ./ca --profile mali-muhur --csr company.csr --vkn 4540536920 \\\n      --unvan 'ÖRNEK BİLİŞİM ANONİM ŞİRKETİ' --out company.pem\n  \
certmint issue --ca ./ca --profile okc-device --public-key device.pub --device-serial FU00022547 --out FU00022547.pem\n  \
certmint issue --ca ./ca --profile mali-muhur --public-key k.pub --subject subject.toml --json\n\n\
Subject file (TOML), flags override it:\n  vkn = \"4540536920\"          # or tckn = \"...\" for a sole proprietor\n  unvan = \"ÖRNEK BİLİŞİM ANONİM ŞİRKETİ\"\n  \
# okc-device: device_serial = \"FU00022547\", manufacturer = \"...\"\n\n\
Every certificate is on record in the journal: its intent before the CA key signs, the certificate\n\
after. A device serial on record attaches to its device (in any order), else a one-off order is made;\n\
a Mali Mühür seal gets the company's next label {VKN}SIGN<n> in a one-off order. A second certificate\n\
for a device is refused (exit 9) naming the first, unless --reissue.")]
struct IssueArgs {
    /// The CA directory made by `certmint ca init`.
    #[arg(long)]
    ca: PathBuf,
    /// Certificate profile: mali-muhur or okc-device.
    #[arg(long)]
    profile: ProfileName,
    /// PKCS#10 request (PEM or DER); its signature must verify.
    #[arg(
        long,
        conflicts_with = "public_key",
        required_unless_present = "public_key"
    )]
    csr: Option<PathBuf>,
    /// Bare public key (PEM "PUBLIC KEY" or DER SubjectPublicKeyInfo).
    #[arg(long)]
    public_key: Option<PathBuf>,
    /// Subject data as TOML (see below); flags take precedence.
    #[arg(long)]
    subject: Option<PathBuf>,
    /// Mali Mühür: the company's VKN.
    #[arg(long)]
    vkn: Option<String>,
    /// Mali Mühür: a sole proprietor's TCKN (instead of --vkn).
    #[arg(long)]
    tckn: Option<String>,
    /// Mali Mühür: the trade name (unvan); converted to Turkish capitals.
    #[arg(long)]
    unvan: Option<String>,
    /// ÖKC: the device serial number.
    #[arg(long)]
    device_serial: Option<String>,
    /// ÖKC: the manufacturer, added as organizationName.
    #[arg(long)]
    manufacturer: Option<String>,
    /// Write the certificate here as PEM (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the certificate as DER here.
    #[arg(long)]
    der_out: Option<PathBuf>,
    /// Use this CA key reference instead of the configured one (file or pkcs11: URI).
    #[arg(long)]
    ca_key: Option<String>,
    /// Environment variable holding the CA token's PIN (when its URI has no pin-source).
    #[arg(long, alias = "pin-env")]
    ca_pin_env: Option<String>,
    /// Accept GİB's test identifiers (VKN 9999999999). Never in production.
    #[arg(long)]
    test_mode: bool,
    /// Start of validity, e.g. 2026-11-21T09:00:00Z (default: now).
    #[arg(long)]
    not_before: Option<DateTime>,
    /// Print a JSON summary (with the PEM) instead of text.
    #[arg(long)]
    json: bool,
    /// Issue a new certificate for a device serial that has one already, recording the
    /// earlier one as superseded by it (without it, a second certificate is refused: exit 9).
    #[arg(long)]
    reissue: bool,
    #[command(flatten)]
    journal: cli::orders::JournalArgs,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  certmint inspect company.pem\n  certmint inspect --json ca/issuing.pem\n  \
certmint inspect out/order-1/chain.pem                 # every certificate of a chain\n  \
certmint inspect company.csr                           # a request: subject, key, signature checked\n  \
certmint inspect --password-file pw.txt FU00022547.p12 # a PKCS#12 file: its entries and certificates\n\n\
JSON: one certificate is one object; a chain is an array of them, in file order; a request and a\n\
PKCS#12 file are objects whose \"kind\" says which. A PKCS#12 private key is never shown."
)]
struct InspectArgs {
    /// A certificate or a chain (PEM or DER), a PKCS#10 request, or a PKCS#12 file.
    file: PathBuf,
    /// A PKCS#12 file's password, from this file (a trailing line end is ignored).
    #[arg(long, conflicts_with = "password_env")]
    password_file: Option<PathBuf>,
    /// A PKCS#12 file's password, from this environment variable.
    #[arg(long)]
    password_env: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    // Before any argument, PIN or password is read: a core of this process
    // would hold them (see certmint::hardening).
    if let Err(err) = certmint::hardening::forbid_core_dumps() {
        eprintln!("error: {err}");
        return ExitCode::from(err.kind().exit_code());
    }
    end_quietly_when_stdout_closes();
    let json = wants_json();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are not errors; clap prints them and exits 0.
        Err(e) if !json || !e.use_stderr() => e.exit(),
        Err(e) => {
            report_error(
                certmint::error::ErrorKind::Usage,
                &first_line_of(&e.to_string()),
                true,
            );
            return ExitCode::from(certmint::error::ErrorKind::Usage.exit_code());
        }
    };
    cli.verbosity.init();
    let result = match cli.command {
        Command::Ca(CaCommand::Init(args)) => ca_init(args),
        Command::Ca(CaCommand::AddIssuing(args)) => ca_add_issuing(args),
        Command::Ca(CaCommand::Show(args)) => ca_show(args),
        Command::Ca(CaCommand::Crl(args)) => cli::crl::ca_crl(*args),
        Command::Issue(args) => issue(args),
        Command::Inspect(args) => inspect_file(args),
        Command::Hsm(HsmCommand::Keygen(args)) => hsm_keygen(args),
        Command::Hsm(HsmCommand::Probe(args)) => hsm_probe(args),
        Command::Hsm(HsmCommand::Provision(args)) => hsm_provision(args),
        Command::Hsm(HsmCommand::List(args)) => hsm_list(args),
        Command::Order(command) => cli::orders::order(command),
        Command::Manufacturer(command) => cli::manufacturers::manufacturer(command),
        Command::Okc(command) => cli::orders::okc(command),
        Command::Audit(command) => cli::orders::audit(command),
        Command::Cert(command) => cli::cert::cert(command),
        Command::Revoke(args) => cli::revoke::revoke(*args),
        Command::Card(command) => cli::card::card(command),
        Command::Bench(args) => cli::bench::bench(args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "certmint", &mut script);
            write_stdout(&script)
        }
        Command::Man { out_dir } => manual_pages(out_dir.as_deref()),
        Command::Pkcs11Session => certmint::pkcs11::session_process::serve(
            std::io::stdin().lock(),
            std::io::stdout().lock(),
        )
        .map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A closed standard output that surfaced as an error ends quietly too.
            for cause in err.chain() {
                if let Some(io) = cause.downcast_ref::<std::io::Error>() {
                    cli::exit_quietly_if_closed(io);
                }
            }
            let kind = certmint::error::kind_of(err.as_ref());
            report_error(kind, &format!("{err:#}"), json);
            ExitCode::from(kind.exit_code())
        }
    }
}

/// Whether the command line asks for JSON (`--json` before any `--`), so
/// that even an error the arguments themselves cause is reported as JSON.
fn wants_json() -> bool {
    std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

/// clap's error message without its usage lines and hints.
fn first_line_of(text: &str) -> String {
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ")
        .to_owned()
}

/// An error on standard error: one line of text, or with `--json` one JSON
/// object naming its kind and exit code, for scripts.
fn report_error(kind: certmint::error::ErrorKind, message: &str, json: bool) {
    if json {
        #[derive(serde::Serialize)]
        struct ErrorReport<'a> {
            schema: String,
            error: ErrorBody<'a>,
        }
        #[derive(serde::Serialize)]
        struct ErrorBody<'a> {
            kind: &'a str,
            exit_code: u8,
            message: &'a str,
        }
        let report = ErrorReport {
            schema: cli::json::schema("error"),
            error: ErrorBody {
                kind: kind.name(),
                exit_code: kind.exit_code(),
                message,
            },
        };
        eprintln!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        eprintln!("error: {}", certmint::text::terminal_safe(message));
    }
}

/// A reader that closes standard output early (`certmint … | head -1`)
/// ends the program quietly, with the status a shell gives a process ended
/// by SIGPIPE (141), as `cat` or `grep` would end. Rust ignores SIGPIPE, so
/// the write fails and `println!` panics; this hook turns that one panic
/// into the quiet exit. Restoring SIGPIPE's default instead would also kill
/// the process silently when a PKCS#11 session process or pcscd goes away
/// under a write, in the middle of a batch.
fn end_quietly_when_stdout_closes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// Writes `bytes` to standard output; a closed pipe ends the program as
/// [`end_quietly_when_stdout_closes`] says.
fn write_stdout(bytes: &[u8]) -> Result<()> {
    match std::io::stdout().lock().write_all(bytes) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(141),
        other => Ok(other?),
    }
}

/// certmint(1) on standard output, or every page into `out_dir`: one per
/// command, named as `man` finds them (`certmint-okc-produce.1`).
fn manual_pages(out_dir: Option<&Path>) -> Result<()> {
    let command = <Cli as clap::CommandFactory>::command();
    let Some(dir) = out_dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(command).render(&mut page)?;
        return write_stdout(&page);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = 0;
    let mut pending = vec![(String::from("certmint"), command)];
    while let Some((name, command)) = pending.pop() {
        for sub in command.get_subcommands().filter(|c| !c.is_hide_set()) {
            // `help` is clap's own, and has no page of its own.
            if sub.get_name() != "help" {
                let page_name = format!("{name}-{}", sub.get_name());
                let usage_name = page_name.replace('-', " ");
                let sub = sub
                    .clone()
                    .display_name(page_name.clone())
                    .bin_name(usage_name);
                pending.push((page_name, sub));
            }
        }
        let mut page = Vec::new();
        clap_mangen::Man::new(command).render(&mut page)?;
        let file = dir.join(format!("{name}.1"));
        std::fs::write(&file, page).with_context(|| format!("cannot write {}", file.display()))?;
        written += 1;
    }
    println!("Wrote {written} manual pages to {}", dir.display());
    Ok(())
}

fn now() -> Result<DateTime> {
    Ok(certmint::issue::validity::now()?)
}

fn ca_init(args: CaInitArgs) -> Result<()> {
    let config = match &args.config {
        Some(path) => CaConfig::load(path)?,
        None => CaConfig::kamu_sm_defaults(),
    };
    let subject = |cn: &str| SubjectInput {
        common_name: Some(cn.to_owned()),
        organization: args.organization.clone(),
        ..Default::default()
    };
    let key = |reference: &Option<String>| match reference {
        Some(r) => CaKey::Existing(r.clone()),
        None => CaKey::Generate(args.key_type),
    };
    let options = InitOptions {
        root_key: key(&args.root_key),
        mali_muhur: IssuingCaOptions {
            key: key(&args.issuing_key),
            subject: subject(&args.issuing_cn),
        },
        okc: IssuingCaOptions {
            key: key(&args.okc_issuing_key),
            subject: subject(&args.okc_issuing_cn),
        },
        unlock: cli::unlock(args.ca_pin_env.clone(), 1),
        root_subject: subject(&args.root_cn),
        config,
        not_before: now()?,
    };
    let report =
        ca::init(&args.dir, &options).with_context(|| format!("ca init {}", args.dir.display()))?;
    print_issuing_report("ca.init", &args.dir, &report, args.json)?;
    if !args.json {
        println!(
            "Move {} offline once the issuing CAs exist.",
            args.dir.join(ca::ROOT_KEY_FILE).display()
        );
    }
    Ok(())
}

/// The report of `ca init` or `ca add-issuing`: the files written and each
/// issuing CA made, by product line.
fn print_issuing_report(
    schema: &str,
    dir: &Path,
    report: &ca::InitReport,
    json: bool,
) -> Result<()> {
    if json {
        let mut document = serde_json::json!({
            "dir": dir,
            "files": report.files,
            "root": inspect::summarize(&report.root_der)?,
        });
        if !report.filled_settings.is_empty() {
            document["okc_device_settings"] = serde_json::json!(report.filled_settings);
        }
        for (line, der) in &report.issuing {
            let key = match line {
                ProductLine::MaliMuhur => "issuing",
                ProductLine::Okc => "okc_issuing",
            };
            document[key] = serde_json::to_value(inspect::summarize(der)?)?;
        }
        cli::json::print(schema, &document)?;
    } else {
        println!("Wrote to {}:", dir.display());
        for file in &report.files {
            println!("  {}", file.display());
        }
        for (line, der) in &report.issuing {
            let subject: Vec<String> = inspect::summarize(der)?
                .subject
                .iter()
                .map(|a| format!("{}={}", a.attribute, a.value))
                .collect();
            println!("{line} issuing CA: {}", subject.join(", "));
        }
        for setting in &report.filled_settings {
            println!("Set in certmint-ca.toml [okc_device]: {setting}");
        }
    }
    Ok(())
}

fn ca_show(args: CaShowArgs) -> Result<()> {
    let overview = ca::overview(&args.ca)?;
    let config = &overview.config;
    let name = |der: &[u8]| -> Result<String> {
        Ok(inspect::summarize(der)?
            .subject
            .iter()
            .map(|a| format!("{}={}", a.attribute, a.value))
            .collect::<Vec<_>>()
            .join(", "))
    };
    // What each line's issuing CA puts in the certificates it signs.
    let line_profile = |line: ProductLine| match line {
        ProductLine::MaliMuhur => &config.mali_muhur,
        ProductLine::Okc => &config.okc_device,
    };
    if args.json {
        let mut issuing = Vec::new();
        for ca in &overview.issuing {
            let profile = line_profile(ca.line);
            issuing.push(serde_json::json!({
                "line": ca.line.to_string(),
                "certificate_file": ca.certificate_file,
                "key": ca.key,
                "shared_issuing_ca": ca.shared_issuing_ca,
                "certificate": inspect::summarize(&ca.certificate_der)?,
                "policy_oid": profile.policy_oid,
                "crl_url": profile.crl_url,
                "ca_issuers_url": profile.ca_issuers_url,
                "ocsp_url": profile.ocsp_url,
            }));
        }
        let document = serde_json::json!({
            "dir": args.ca,
            "root": {
                "certificate_file": config.ca.root_certificate,
                "certificate": inspect::summarize(&overview.root_der)?,
            },
            "issuing": issuing,
        });
        cli::json::print("ca.show", &document)?;
        return Ok(());
    }
    let root = inspect::summarize(&overview.root_der)?;
    println!(
        "root: {} ({}, until {})",
        name(&overview.root_der)?,
        config.ca.root_certificate,
        root.not_after
    );
    for ca in &overview.issuing {
        let summary = inspect::summarize(&ca.certificate_der)?;
        let profile = line_profile(ca.line);
        let shown = |value: &Option<String>| value.clone().unwrap_or_else(|| "none".into());
        println!(
            "{} issuing CA: {} ({}, key {}, until {})",
            ca.line,
            name(&ca.certificate_der)?,
            ca.certificate_file,
            ca.key,
            summary.not_after
        );
        if ca.shared_issuing_ca {
            println!(
                "  shared with mali-muhur: no {} issuing CA of its own (add one with `certmint ca add-issuing --ca {} --line {}`)",
                ca.line,
                args.ca.display(),
                ca.line
            );
        }
        println!(
            "  its certificates: policy {}, CRL {}, caIssuers {}, OCSP {}",
            shown(&profile.policy_oid),
            shown(&profile.crl_url),
            shown(&profile.ca_issuers_url),
            shown(&profile.ocsp_url)
        );
    }
    Ok(())
}

fn ca_add_issuing(args: CaAddIssuingArgs) -> Result<()> {
    let key = match &args.key {
        Some(reference) => CaKey::Existing(reference.clone()),
        None => CaKey::Generate(args.key_type),
    };
    let mut issuing = IssuingCaOptions::kamu_sm_defaults(args.line, args.key_type);
    issuing.key = key;
    if let Some(cn) = &args.cn {
        issuing.subject.common_name = Some(cn.clone());
    }
    issuing.subject.organization = args.organization.clone();
    let options = ca::AddIssuingOptions {
        line: args.line,
        issuing,
        root_key: args.root_key.clone(),
        unlock: cli::unlock(args.ca_pin_env.clone(), 1),
        not_before: now()?,
    };
    let report = ca::add_issuing(&args.ca, &options)
        .with_context(|| format!("ca add-issuing {}", args.ca.display()))?;
    print_issuing_report("ca.add_issuing", &args.ca, &report, args.json)
}

fn read_input(path: &Path) -> Result<Vec<u8>> {
    Ok(certmint::input::read_file(path)?)
}

fn issue(args: IssueArgs) -> Result<()> {
    if matches!(args.profile, ProfileName::RootCa | ProfileName::IssuingCa) {
        usage!(
            "profile {} is made by `certmint ca init`, not by `issue`",
            args.profile
        );
    }
    // Everything is read and validated before the CA key is opened, and
    // nothing is written until the certificate is signed and verified.
    for out in [&args.out, &args.der_out].into_iter().flatten() {
        if out.exists() {
            bail!(
                "{} already exists; certmint never overwrites a certificate",
                out.display()
            );
        }
    }
    let file_input = match &args.subject {
        Some(path) => SubjectInput::load(path)?,
        None => SubjectInput::default(),
    };
    let input = SubjectInput {
        vkn: args.vkn.clone(),
        tckn: args.tckn.clone(),
        unvan: args.unvan.clone(),
        device_serial: args.device_serial.clone(),
        manufacturer: args.manufacturer.clone(),
        ..Default::default()
    }
    .or(file_input);
    let public_key = match (&args.csr, &args.public_key) {
        (Some(csr), _) => {
            request::public_key_from_csr(&read_input(csr)?, &csr.display().to_string())?
        }
        (None, Some(key)) => {
            request::public_key_from_spki(&read_input(key)?, &key.display().to_string())?
        }
        (None, None) => usage!("give --csr or --public-key"),
    };
    let config = CaConfig::load(&args.ca.join(ca::CONFIG_FILE))?;
    let profile = Profile::from_config(args.profile, &config)?;
    let id_mode = if args.test_mode {
        IdMode::Test
    } else {
        IdMode::Production
    };
    let subject = Subject::from_input(&profile, &input, id_mode)?;
    // The key is checked against the profile before the CA key is opened.
    let key_type = KeyType::of_public_key(&public_key)?;
    if !profile.key_types.contains(&key_type) {
        return Err(IssueError::KeyNotAccepted {
            key_type,
            profile: profile.name,
            accepted: profile.key_types_text(),
        }
        .into());
    }
    let not_before = certmint::issue::validity::requested_start(args.not_before, now()?)?;

    let unlock = cli::unlock(args.ca_pin_env.clone(), 1);
    let directory =
        CaDirectory::open_for_profile(&args.ca, args.profile, args.ca_key.as_deref(), &unlock)
            .map_err(|e| match e {
                CaError::KeyRef(KeyRefError::Signer(s)) => anyhow::Error::from(s).context("CA key"),
                other => anyhow::Error::from(other),
            })?;
    cli::warn_shared_issuing_ca(&directory);
    let ca = directory.ca.with_id_mode(id_mode);
    let key = certmint::issue::SubjectKey::checked(&public_key)?;
    let mut journal = args.journal.open()?;
    let operator = args.journal.operator()?;
    let on_record = certmint::order::one_off::issue_on_record(
        &mut journal,
        &ca,
        &profile,
        &subject,
        key,
        not_before,
        &certmint::order::one_off::OneOff {
            target: certmint::journal::Target::External,
            key_type,
            source: "certmint issue",
            operator: &operator,
            reissue: args.reissue,
        },
    )?;
    let certificate = &on_record.certificate;

    let pem = certificate.to_pem();
    if let Some(path) = &args.out {
        ca::write_new_file(path, pem.as_bytes(), 0o644)?;
    }
    if let Some(path) = &args.der_out {
        ca::write_new_file(path, certificate.der(), 0o644)?;
    }
    let summary = inspect::summarize(certificate.der())?;
    if args.json {
        let json = serde_json::json!({
            "profile": profile.name.to_string(),
            "certificate": summary,
            "pem": pem,
            "out": args.out,
            "order": on_record.order,
            "holder": on_record.holder,
            "one_off": on_record.one_off,
            "superseded": on_record.superseded,
        });
        cli::json::print("issue", &json)?;
    } else if args.out.is_none() {
        std::io::stdout().write_all(pem.as_bytes())?;
    } else {
        let who = summary
            .subject
            .iter()
            .map(|a| a.value.as_str())
            .collect::<Vec<_>>()
            .join(" / ");
        println!(
            "Issued {} certificate {} for {who}, valid {} to {}",
            profile.name, summary.serial, summary.not_before, summary.not_after
        );
        println!("{}", cli::cert::on_record_line(&on_record));
    }
    Ok(())
}

fn inspect_file(args: InspectArgs) -> Result<()> {
    let bytes = read_input(&args.file)?;
    let password = match (&args.password_file, &args.password_env) {
        (Some(file), _) => Some(zeroize::Zeroizing::new(certmint::input::read_secret_file(
            file,
            "the PKCS#12 password",
        )?)),
        (None, Some(var)) => match std::env::var(var) {
            Ok(password) => Some(zeroize::Zeroizing::new(password)),
            Err(_) => usage!("environment variable {var} (named by --password-env) is not set"),
        },
        (None, None) => None,
    };
    let what = args.file.display().to_string();
    let inspected = inspect::inspect(&bytes, &what, password.as_deref().map(String::as_str))?;
    if args.json {
        cli::json::print("inspect", &inspected)?;
    } else {
        print!("{}", inspected.to_text());
    }
    Ok(())
}

fn hsm_keygen(args: HsmKeygenArgs) -> Result<()> {
    let uri = Pkcs11Uri::parse(&args.key)?.require_object()?;
    if uri.id.is_some() {
        usage!("leave id= out of the key URI: certmint sets CKA_ID to the SHA-1 of the public key");
    }
    let label = uri.object.clone().unwrap_or_default();
    let pins = PinSource::choose(uri.pin_source.clone(), args.token_pin_env.as_deref());
    let token = Token::open(&uri, &pins, Some(1))?;
    let pair = certmint::pkcs11::keys::generate_key_pair(&token, args.key_type, &label, false)?;
    let public_pem =
        der::pem::encode_string("PUBLIC KEY", der::pem::LineEnding::LF, &pair.spki_der)?;
    if args.json {
        let json = serde_json::json!({
            "token": token.label(),
            "label": label,
            "id": certmint::pem::hex(&pair.id),
            "key_type": args.key_type.to_string(),
            "public_key_pem": public_pem,
        });
        cli::json::print("hsm.keygen", &json)?;
    } else {
        println!(
            "Generated {} key pair {label:?} in token {:?}, CKA_ID {}\n{public_pem}",
            args.key_type,
            token.label(),
            certmint::pem::hex(&pair.id)
        );
    }
    Ok(())
}

fn hsm_list(args: HsmListArgs) -> Result<()> {
    use certmint::pkcs11::list;
    let Some(token) = &args.token else {
        let module_path = match (&args.module_path, &args.module_name) {
            (Some(path), _) => path.clone(),
            (None, Some(name)) => {
                certmint::pkcs11::registry::Registry::system().module_path(name)?
            }
            (None, None) => match std::env::var_os("CERTMINT_PKCS11_MODULE") {
                Some(path) => PathBuf::from(path),
                None => certmint::pkcs11::registry::default_module()?,
            },
        };
        let slots = list::slots(&module_path)?;
        if args.json {
            cli::json::print_list("hsm.list.slots", "slots", &slots)?;
        } else {
            println!("Module {}", module_path.display());
            print!("{}", list::slots_text(&slots));
        }
        return Ok(());
    };
    let uri = Pkcs11Uri::parse(token)?;
    let (objects, more) = if args.login {
        let pins = PinSource::choose(uri.pin_source.clone(), args.token_pin_env.as_deref());
        list::objects(&*Token::open(&uri, &pins, Some(1))?)?
    } else {
        list::public_objects(&uri)?
    };
    if args.json {
        let json = serde_json::json!({ "objects": objects, "more": more, "logged_in": args.login });
        cli::json::print("hsm.list.objects", &json)?;
    } else {
        print!("{}", list::objects_text(&objects, more));
        if !args.login {
            println!("(public objects only: add --login to list private keys)");
        }
    }
    Ok(())
}

fn hsm_probe(args: HsmProbeArgs) -> Result<()> {
    let uri = Pkcs11Uri::parse(&args.token)?;
    let key_types = if args.key_types.is_empty() {
        vec![KeyType::Rsa(2048), KeyType::EcP384]
    } else {
        args.key_types.clone()
    };
    let mut labels = Vec::new();
    for vkn in &args.vkn {
        labels.push(format!(
            "{}SIGN0",
            certmint::ids::Vkn::parse(vkn, IdMode::Production)?
        ));
    }
    labels.extend(args.label.iter().cloned());
    let pins = PinSource::choose(uri.pin_source.clone(), args.token_pin_env.as_deref());
    let report = certmint::pkcs11::probe::probe(&uri, &key_types, &labels, &pins)?;
    if args.json {
        cli::json::print("hsm.probe", &report)?;
    } else {
        print!("{}", report.to_text());
    }
    if !report.ready {
        // Its own exit code, so that a script can gate the session on it.
        return Err(certmint::error::NotReady(format!("token {:?}", report.token.label)).into());
    }
    Ok(())
}

fn hsm_provision(args: HsmProvisionArgs) -> Result<()> {
    // Everything is checked before the customer's token is touched.
    let uri = Pkcs11Uri::parse(&args.token)?;
    if uri.object.is_some() || uri.id.is_some() {
        usage!("name only the token in --token: the label is {{VKN}}SIGN0 and the CKA_ID comes from the key");
    }
    if let Some(order) = args.order {
        if args.seal.names_a_company()
            || args.key_type.is_some()
            || args.replace
            || args.out.is_some()
        {
            usage!("with --order the company, the key type and the labels come from the order: leave out --vkn, --tckn, --unvan, --key-type, --replace and --out");
        }
        return cli::orders::provision_seals(cli::orders::SealOrder {
            journal: &args.journal,
            order,
            ca: &args.ca,
            token: uri,
            deliveries: &args.deliveries,
            token_pin_env: args.token_pin_env.as_deref(),
            ca_pin_env: args.ca_pin_env.as_deref(),
            id_mode: args.seal.id_mode(),
            json: args.json,
            lease_wait: std::time::Duration::from_secs(args.wait),
        });
    }
    let (profile, subject, id_mode) =
        cli::mali_muhur_subject(&args.ca, &args.seal, args.out.as_ref())?;
    let journal = std::sync::Mutex::new(args.journal.open()?);
    let operator = args.journal.operator()?;
    let unlock = cli::unlock(args.ca_pin_env.clone(), 1);
    let directory = CaDirectory::open(&args.ca, ProductLine::MaliMuhur, None, &unlock)?;
    let ca = directory.ca.with_id_mode(id_mode);
    let pins = PinSource::choose(uri.pin_source.clone(), args.token_pin_env.as_deref());
    let token = Token::open(&uri, &pins, Some(1))?;
    let report = certmint::production::seals::provision_one_off_seal(
        &journal,
        &ca,
        &profile,
        token,
        &certmint::production::seals::OneOffSealRequest {
            subject: &subject,
            key_type: args.key_type.unwrap_or(KeyType::EcP384),
            replace: args.replace,
            operator: &operator,
            source: "certmint hsm provision",
        },
    )?;
    if let Some(out) = &args.out {
        ca::write_new_file(out, report.certificate_pem.as_bytes(), 0o644)?;
    }
    if args.json {
        cli::json::print("hsm.provision", &report)?;
    } else {
        println!(
            "Provisioned {:?} in token {:?}: CKA_ID {}, certificate {}",
            report.label, report.token, report.id, report.serial
        );
        println!("On record in one-off order {}.", report.order);
        if report.removed_leftovers > 0 {
            println!(
                "Removed {} leftover object(s) of an interrupted earlier run.",
                report.removed_leftovers
            );
        }
        if report.replaced_objects > 0 {
            println!(
                "Replaced {} object(s) that carried the label.",
                report.replaced_objects
            );
        }
        for check in &report.checks {
            println!("  ok  {check}");
        }
    }
    Ok(())
}
