//! `certmint issue` and `certmint inspect`: one certificate from a CSR or a
//! public key, on record; a file's contents shown.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use der::DateTime;

use certmint::ca::{self, CaDirectory, CaError};
use certmint::ids::IdMode;
use certmint::inspect;
use certmint::issue::IssueError;
use certmint::keyref::KeyRefError;
use certmint::profile::{CaConfig, Profile, ProfileName, Subject, SubjectInput};
use certmint::request;
use certmint::signer::KeyType;

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
pub(crate) struct IssueArgs {
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
    journal: super::orders::JournalArgs,
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
pub(crate) struct InspectArgs {
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

pub(crate) fn read_input(path: &Path) -> Result<Vec<u8>> {
    Ok(certmint::input::read_file(path)?)
}

pub(crate) fn issue(args: IssueArgs) -> Result<()> {
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
    let not_before = certmint::issue::validity::requested_start(
        args.not_before,
        certmint::issue::validity::now()?,
    )?;

    let unlock = super::unlock(args.ca_pin_env.clone(), 1);
    let directory =
        CaDirectory::open_for_profile(&args.ca, args.profile, args.ca_key.as_deref(), &unlock)
            .map_err(|e| match e {
                CaError::KeyRef(KeyRefError::Signer(s)) => anyhow::Error::from(s).context("CA key"),
                other => anyhow::Error::from(other),
            })?;
    super::warn_shared_issuing_ca(directory.shared_issuing_ca_warning().as_deref());
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
        super::json::print("issue", &json)?;
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
        println!("{}", super::cert::on_record_line(&on_record));
    }
    Ok(())
}

pub(crate) fn inspect_file(args: InspectArgs) -> Result<()> {
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
        super::json::print("inspect", &inspected)?;
    } else {
        print!("{}", inspected.to_text());
    }
    Ok(())
}
