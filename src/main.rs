//! The `certmint` command: parses arguments, calls the library, reports.
//! All behaviour lives in the library; this file turns its errors into one
//! message line and a documented exit code.

#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use der::DateTime;

use certmint::ca::{self, CaDirectory, CaError, InitOptions};
use certmint::ids::IdMode;
use certmint::inspect;
use certmint::issue::IssueError;
use certmint::keyref::KeyRefError;
use certmint::pem::der_from_pem_or_der;
use certmint::profile::{CaConfig, Profile, ProfileError, ProfileName, Subject, SubjectInput};
use certmint::request::{self, RequestError};
use certmint::signer::{KeyType, SignerError};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  failure (files, CA, keys)
  2  usage error (bad or missing arguments)
  3  invalid input (subject data, identifiers, request, public key)
  4  refused by a lint before signing";

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
    /// Key type of both CA keys: p384, p256, rsa2048, rsa3072 or rsa4096.
    #[arg(long, default_value = "p384")]
    key_type: KeyType,
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
    /// Use this CA key reference instead of the configured one.
    #[arg(long)]
    ca_key: Option<String>,
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

/// Exit code for an error, by the library error it carries.
fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if let Some(IssueError::Lint(_)) = cause.downcast_ref::<IssueError>() {
            return 4;
        }
        let invalid_input = matches!(
            cause.downcast_ref::<IssueError>(),
            Some(IssueError::KeyNotAccepted { .. })
        ) || matches!(
            cause.downcast_ref::<ProfileError>(),
            Some(
                ProfileError::MissingField { .. }
                    | ProfileError::UnexpectedField { .. }
                    | ProfileError::Id(_)
                    | ProfileError::BadName { .. }
                    | ProfileError::SubjectFile { .. }
            )
        ) || cause.downcast_ref::<RequestError>().is_some()
            || matches!(
                cause.downcast_ref::<SignerError>(),
                Some(SignerError::UnsupportedKey(_))
            );
        if invalid_input {
            return 3;
        }
    }
    1
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ca(CaCommand::Init(args)) => ca_init(args),
        Command::Issue(args) => issue(args),
        Command::Inspect(args) => inspect_file(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
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
    let options = InitOptions {
        root_key_type: args.key_type,
        issuing_key_type: args.key_type,
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
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
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

    let directory = CaDirectory::open(&args.ca, args.ca_key.as_deref()).map_err(|e| match e {
        CaError::KeyRef(KeyRefError::Signer(s)) => anyhow::Error::from(s).context("CA key"),
        other => anyhow::Error::from(other),
    })?;
    let ca = directory.ca.with_id_mode(id_mode);
    let not_before = match args.not_before {
        Some(t) => t,
        None => now()?,
    };
    let certificate = ca.issue(&profile, &subject, &public_key, not_before)?;

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
