//! The `certmint` command: parses arguments, calls the library, reports.
//! All behaviour lives in the library; this file turns its errors into one
//! message line and a documented exit code.

#![forbid(unsafe_code)]

mod cli;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use der::DateTime;

use certmint::ca::{self, CaDirectory, CaError, CaKey, InitOptions};
use certmint::ids::IdMode;
use certmint::inspect;
use certmint::issue::IssueError;
use certmint::keyref::KeyRefError;
use certmint::pem::der_from_pem_or_der;
use certmint::pkcs11::provision::{ProvisionError, ProvisionRequest};
use certmint::pkcs11::{PinSource, Pkcs11Error, Pkcs11Uri, Token};
use certmint::profile::{CaConfig, Profile, ProfileError, ProfileName, Subject, SubjectInput};
use certmint::request::{self, RequestError};
use certmint::signer::{KeyType, SignerError};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure (files, CA, keys)
  2  usage error (bad or missing arguments, a count out of range)
  3  invalid input (subject data, identifiers, request, public key, a file over its size cap,
     a PIN longer than any token takes)
  4  refused by a lint before signing
  5  token or card refused: wrong or blocked PIN, management key refused, token gone,
     label or slot taken, mechanism missing, factory secrets without the override
  6  the audit log is broken: its hash chain, its signed checkpoints, or the orders and
     certificates it describes do not match
  7  the order is being produced by another producer (named in the message); run again
     once it has finished, or wait for it with --wait SECONDS
130  stopped by Ctrl-C after the devices in flight (run again to resume)";

#[derive(Parser)]
#[command(
    name = "certmint",
    version,
    about = "Certificate production engine: Mali Mühür e-seals and ÖKC device certificates",
    after_help = EXIT_CODES
)]
struct Cli {
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
    /// ÖKC production and the purge of soft deliveries.
    #[command(subcommand)]
    Okc(cli::orders::OkcCommand),
    /// The audit log.
    #[command(subcommand)]
    Audit(cli::orders::AuditCommand),
    /// PIV smart cards through PC/SC: readers, one-card provisioning, the card station, a virtual card.
    #[command(subcommand)]
    Card(cli::card::CardCommand),
    /// Measure a CA key and the issuance pipeline around it (raw rates, efficiency, latency).
    Bench(cli::bench::BenchArgs),
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
}

const URI_HELP: &str = "\n\
Token URIs are RFC 7512: pkcs11:token=LABEL[;object=KEYLABEL]?module-path=MODULE&pin-source=file:PINFILE\n\
module-path defaults to $CERTMINT_PKCS11_MODULE, else /usr/lib/softhsm/libsofthsm2.so.\n\
The PIN comes from pin-source, else from the variable named by --pin-env, else a prompt; never from arguments.";

#[derive(Args)]
#[command(after_help = format!("Example:\n  certmint hsm keygen --key 'pkcs11:token=ca;object=issuing-2026?pin-source=file:/run/secrets/ca.pin' --key-type p384\n{URI_HELP}"))]
struct HsmKeygenArgs {
    /// The key to create: a pkcs11: URI with token= and object= (the label).
    #[arg(long)]
    key: String,
    /// p384, p256, rsa2048, rsa3072 or rsa4096.
    #[arg(long, default_value = "p384")]
    key_type: KeyType,
    /// Environment variable holding the user PIN (when the URI has no pin-source).
    #[arg(long)]
    pin_env: Option<String>,
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
    /// Environment variable holding the user PIN (when the URI has no pin-source).
    #[arg(long)]
    pin_env: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(after_help = format!("Examples:\n  certmint hsm provision --ca ./ca --token 'pkcs11:token=musteri?pin-source=file:musteri.pin' \\\n      --vkn 4540536920 --unvan 'Örnek Bilişim A.Ş.' --key-type p384 --out 4540536920SIGN0.pem\n  \
certmint hsm provision --ca ./ca --order 7 --token 'pkcs11:token=musteri?pin-source=file:musteri.pin'\n\n\
Writes a key pair labelled {{VKN}}SIGN0 (CKA_ID = SHA-1 of the public key) and the certificate beside it,\n\
then reads everything back: attributes, public key match, a test signature.\n\
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
    /// rsa2048 or p384 (the Mali Mühür key types; default p384). With --order, the order's.
    #[arg(long)]
    key_type: Option<KeyType>,
    /// Replace objects that already carry the label.
    #[arg(long)]
    replace: bool,
    /// Also write the certificate here as PEM.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Environment variable holding the customer token's user PIN.
    #[arg(long)]
    pin_env: Option<String>,
    /// Environment variable holding the CA token's PIN (when the CA key is a pkcs11: URI without pin-source).
    #[arg(long)]
    ca_pin_env: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum CaCommand {
    /// Create a self-signed root CA and an issuing CA signed by it.
    Init(CaInitArgs),
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  certmint ca init --dir ./ca\n  certmint ca init --dir ./lab-ca --key-type p256 --issuing-cn 'Lab Issuing CA' --root-cn 'Lab Root CA'\n\n\
Writes certmint-ca.toml (profiles, URLs, OIDs: edit it), root.pem, root-key.pem,\n\
issuing.pem and issuing-key.pem; keys are PKCS#8 with mode 0600. Never overwrites."
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
    /// Use this existing issuing key (file or pkcs11: URI, e.g. from `hsm keygen`) instead of generating one.
    #[arg(long)]
    issuing_key: Option<String>,
    /// Environment variable holding the token PIN (for pkcs11: keys without pin-source).
    #[arg(long)]
    pin_env: Option<String>,
    /// Root CA commonName.
    #[arg(
        long,
        default_value = "Mali Mühür Kök Sertifika Hizmet Sağlayıcısı - Sürüm 1"
    )]
    root_cn: String,
    /// Issuing CA commonName (the issuer name of every certificate it signs).
    #[arg(long, default_value = certmint::profile::MALI_MUHUR_ISSUER_CN)]
    issuing_cn: String,
    /// organizationName of both CAs (none by default, as in Kamu SM's issuer name).
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
# okc-device: device_serial = \"FU00022547\", manufacturer = \"...\"")]
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
    #[arg(long)]
    pin_env: Option<String>,
    /// Accept GİB's test identifiers (VKN 9999999999). Never in production.
    #[arg(long)]
    test_mode: bool,
    /// Start of validity, e.g. 2026-11-21T09:00:00Z (default: now).
    #[arg(long)]
    not_before: Option<DateTime>,
    /// Print a JSON summary (with the PEM) instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  certmint inspect company.pem\n  certmint inspect --json ca/issuing.pem"
)]
struct InspectArgs {
    /// Certificate file, PEM or DER.
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Exit code for an error, by the library error it carries. Wrapper errors
/// are unwrapped by type: `#[error(transparent)]` hides the wrapped error
/// from `source()`, so the anyhow chain alone would not reach it.
fn exit_code(err: &anyhow::Error) -> u8 {
    err.chain().find_map(classify).unwrap_or(1)
}

fn classify(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    if cause.downcast_ref::<cli::orders::ImportRefused>().is_some() {
        return Some(3);
    }
    if let Some(e) = cause.downcast_ref::<certmint::input::InputError>() {
        return match e {
            certmint::input::InputError::TooLarge { .. } => Some(3),
            _ => None,
        };
    }
    if cause.downcast_ref::<cli::orders::AuditBroken>().is_some() {
        return Some(6);
    }
    if cause.downcast_ref::<cli::orders::Stopped>().is_some() {
        return Some(130);
    }
    if let Some(certmint::journal::JournalError::Held { .. }) = cause.downcast_ref() {
        return Some(7);
    }
    if let Some(e) = cause.downcast_ref::<certmint::card::station::StationError>() {
        use certmint::card::station::StationError;
        return match e {
            StationError::Produce(p) => classify(p),
            StationError::Card { error, .. } => classify(error),
            _ => None,
        };
    }
    if let Some(e) = cause.downcast_ref::<certmint::card::provision::CardError>() {
        use certmint::card::provision::CardError;
        return match e {
            CardError::Card { error, .. } => classify(error),
            CardError::Issue { error, .. } => classify(error),
            CardError::Refused(_) => Some(5),
            _ => None,
        };
    }
    if let Some(e) = cause.downcast_ref::<certmint::piv::client::PivError>() {
        use certmint::piv::client::PivError;
        return match e {
            PivError::WrongSecret { .. }
            | PivError::Blocked { .. }
            | PivError::ManagementKeyRefused
            | PivError::NoPivApplication
            | PivError::CardUnusable(_) => Some(5),
            _ => None,
        };
    }
    if let Some(e) = cause.downcast_ref::<certmint::production::ProduceError>() {
        use certmint::production::ProduceError;
        return match e {
            ProduceError::Issue { error, .. } => classify(error),
            ProduceError::Token { error, .. } => classify(error),
            ProduceError::Card { error, .. } => classify(error),
            ProduceError::Journal(error) => classify(error),
            _ => None,
        };
    }
    if let Some(e) = cause.downcast_ref::<CaError>() {
        return match e {
            CaError::Profile(p) => classify(p),
            CaError::Issue(i) => classify(i),
            CaError::KeyRef(k) => classify(k),
            CaError::Signer(s) => classify(s),
            CaError::Input(i) => classify(i),
            _ => None,
        };
    }
    if let Some(e) = cause.downcast_ref::<KeyRefError>() {
        return match e {
            KeyRefError::Pkcs11(p) => classify(p),
            KeyRefError::Signer(s) => classify(s),
            KeyRefError::Uri(_) | KeyRefError::Empty => Some(2),
            _ => None,
        };
    }
    if let Some(e) = cause.downcast_ref::<ProvisionError>() {
        return match e {
            ProvisionError::Pkcs11(p) => classify(p),
            ProvisionError::Issue(i) | ProvisionError::Refused(i) => classify(i),
            _ => None,
        };
    }
    if let Some(e) = cause.downcast_ref::<IssueError>() {
        return match e {
            IssueError::Lint(_) => Some(4),
            IssueError::KeyNotAccepted { .. } => Some(3),
            IssueError::Signer(s) => classify(s),
            _ => None,
        };
    }
    if let Some(e) = cause.downcast_ref::<Pkcs11Error>() {
        return match e {
            Pkcs11Error::WrongPin { .. }
            | Pkcs11Error::PinLocked { .. }
            | Pkcs11Error::TokenGone { .. }
            | Pkcs11Error::LabelExists { .. }
            | Pkcs11Error::UnsupportedMechanism { .. } => Some(5),
            Pkcs11Error::Uri(_) => Some(2),
            Pkcs11Error::Pin(certmint::pkcs11::PinError::TooLong { .. }) => Some(3),
            _ => None,
        };
    }
    if let Some(e) = cause.downcast_ref::<ProfileError>() {
        return match e {
            ProfileError::MissingField { .. }
            | ProfileError::UnexpectedField { .. }
            | ProfileError::Id(_)
            | ProfileError::BadName { .. }
            | ProfileError::SubjectFile { .. } => Some(3),
            ProfileError::Input(i) => classify(i),
            _ => None,
        };
    }
    if cause.downcast_ref::<RequestError>().is_some()
        || cause.downcast_ref::<certmint::ids::IdError>().is_some()
    {
        return Some(3);
    }
    match cause.downcast_ref::<SignerError>() {
        Some(SignerError::UnsupportedKey(_) | SignerError::InvalidKey(_)) => Some(3),
        _ => None,
    }
}

fn main() -> ExitCode {
    // Before any argument, PIN or password is read: a core of this process
    // would hold them (see certmint::hardening).
    if let Err(err) = certmint::hardening::forbid_core_dumps() {
        eprintln!("error: {err}");
        return ExitCode::from(1);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ca(CaCommand::Init(args)) => ca_init(args),
        Command::Issue(args) => issue(args),
        Command::Inspect(args) => inspect_file(args),
        Command::Hsm(HsmCommand::Keygen(args)) => hsm_keygen(args),
        Command::Hsm(HsmCommand::Probe(args)) => hsm_probe(args),
        Command::Hsm(HsmCommand::Provision(args)) => hsm_provision(args),
        Command::Order(command) => cli::orders::order(command),
        Command::Okc(command) => cli::orders::okc(command),
        Command::Audit(command) => cli::orders::audit(command),
        Command::Card(command) => cli::card::card(command),
        Command::Bench(args) => cli::bench::bench(args),
        Command::Pkcs11Session => certmint::pkcs11::session_process::serve(
            std::io::stdin().lock(),
            std::io::stdout().lock(),
        )
        .map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!(
                "error: {}",
                certmint::text::terminal_safe(&format!("{err:#}"))
            );
            ExitCode::from(exit_code(&err))
        }
    }
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
        issuing_key: key(&args.issuing_key),
        unlock: cli::unlock(args.pin_env.clone(), 1),
        root_subject: subject(&args.root_cn),
        issuing_subject: subject(&args.issuing_cn),
        config,
        not_before: now()?,
    };
    let report =
        ca::init(&args.dir, &options).with_context(|| format!("ca init {}", args.dir.display()))?;
    if args.json {
        let json = serde_json::json!({
            "dir": args.dir,
            "files": report.files,
            "root": inspect::summarize(&report.root_der)?,
            "issuing": inspect::summarize(&report.issuing_der)?,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!("Created CA in {}:", args.dir.display());
        for file in &report.files {
            println!("  {}", file.display());
        }
        println!(
            "Move {} offline once the issuing CA exists.",
            args.dir.join(ca::ROOT_KEY_FILE).display()
        );
    }
    Ok(())
}

fn read_input(path: &Path) -> Result<Vec<u8>> {
    Ok(certmint::input::read_file(path)?)
}

fn issue(args: IssueArgs) -> Result<()> {
    if matches!(args.profile, ProfileName::RootCa | ProfileName::IssuingCa) {
        bail!(
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
        (None, None) => bail!("give --csr or --public-key"),
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

    let unlock = cli::unlock(args.pin_env.clone(), 1);
    let directory =
        CaDirectory::open(&args.ca, args.ca_key.as_deref(), &unlock).map_err(|e| match e {
            CaError::KeyRef(KeyRefError::Signer(s)) => anyhow::Error::from(s).context("CA key"),
            other => anyhow::Error::from(other),
        })?;
    let ca = directory.ca.with_id_mode(id_mode);
    let not_before = match args.not_before {
        Some(t) => t,
        None => now()?,
    };
    let key = certmint::issue::SubjectKey::checked(&public_key)?;
    let certificate = ca.issue(&profile, &subject, key, not_before)?;

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
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
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
    }
    Ok(())
}

fn inspect_file(args: InspectArgs) -> Result<()> {
    let bytes = read_input(&args.file)?;
    let der = der_from_pem_or_der(&bytes, "CERTIFICATE")
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let summary = inspect::summarize(&der)
        .with_context(|| format!("{} is not a certificate", args.file.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", summary.to_text());
    }
    Ok(())
}

fn hsm_keygen(args: HsmKeygenArgs) -> Result<()> {
    let uri = Pkcs11Uri::parse(&args.key)?.require_object()?;
    if uri.id.is_some() {
        bail!("leave id= out of the key URI: certmint sets CKA_ID to the SHA-1 of the public key");
    }
    let label = uri.object.clone().unwrap_or_default();
    let pins = PinSource::choose(uri.pin_source.clone(), args.pin_env.as_deref());
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
        println!("{}", serde_json::to_string_pretty(&json)?);
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
    let pins = PinSource::choose(uri.pin_source.clone(), args.pin_env.as_deref());
    let report = certmint::pkcs11::probe::probe(&uri, &key_types, &labels, &pins)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(())
}

fn hsm_provision(args: HsmProvisionArgs) -> Result<()> {
    // Everything is checked before the customer's token is touched.
    let uri = Pkcs11Uri::parse(&args.token)?;
    if uri.object.is_some() || uri.id.is_some() {
        bail!("name only the token in --token: the label is {{VKN}}SIGN0 and the CKA_ID comes from the key");
    }
    if let Some(order) = args.order {
        if args.seal.names_a_company()
            || args.key_type.is_some()
            || args.replace
            || args.out.is_some()
        {
            bail!("with --order the company, the key type and the labels come from the order: leave out --vkn, --tckn, --unvan, --key-type, --replace and --out");
        }
        return cli::orders::provision_seals(cli::orders::SealOrder {
            journal: &args.journal,
            order,
            ca: &args.ca,
            token: uri,
            deliveries: &args.deliveries,
            pin_env: args.pin_env.as_deref(),
            ca_pin_env: args.ca_pin_env.as_deref(),
            id_mode: args.seal.id_mode(),
            json: args.json,
            lease_wait: std::time::Duration::from_secs(args.wait),
        });
    }
    let key_type = args.key_type.unwrap_or(KeyType::EcP384);
    let (profile, subject, id_mode) =
        cli::mali_muhur_subject(&args.ca, &args.seal, args.out.as_ref())?;
    let id = match &subject {
        Subject::MaliMuhur { id, .. } => id.as_str().to_owned(),
        _ => bail!("provisioning makes Mali Mühür certificates only"),
    };
    if !profile.key_types.contains(&key_type) {
        return Err(IssueError::KeyNotAccepted {
            key_type,
            profile: profile.name,
            accepted: profile.key_types_text(),
        }
        .into());
    }
    let unlock = cli::unlock(args.ca_pin_env.clone(), 1);
    let directory = CaDirectory::open(&args.ca, None, &unlock)?;
    let ca = directory.ca.with_id_mode(id_mode);
    let pins = PinSource::choose(uri.pin_source.clone(), args.pin_env.as_deref());
    let token = Token::open(&uri, &pins, Some(1))?;
    let request = ProvisionRequest {
        profile,
        subject,
        key_type,
        label: format!("{id}SIGN0"),
        replace: args.replace,
        not_before: now()?,
    };
    let report =
        certmint::pkcs11::provision::provision(&token, &ca, &request).map_err(|e| match e {
            ProvisionError::Pkcs11(p) => anyhow::Error::from(p),
            other => anyhow::Error::from(other),
        })?;
    if let Some(out) = &args.out {
        ca::write_new_file(out, report.certificate_pem.as_bytes(), 0o644)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "Provisioned {:?} in token {:?}: CKA_ID {}, certificate {}",
            report.label, report.token, report.id, report.serial
        );
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
