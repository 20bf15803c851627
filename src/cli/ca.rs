//! `certmint ca init|add-issuing|show`: parsing and reporting; the CA
//! directory is made and read by [`certmint::ca`]. (`ca crl` is in
//! [`super::crl`].)

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use certmint::ca::{self, CaKey, InitOptions, IssuingCaOptions};
use certmint::inspect;
use certmint::profile::{CaConfig, ProductLine, SubjectInput};
use certmint::signer::KeyType;

#[derive(Subcommand)]
pub(crate) enum CaCommand {
    /// Create a self-signed root CA and one issuing CA per product line (Mali Mühür, ÖKC) signed by it.
    Init(CaInitArgs),
    /// Add a product line's issuing CA, signed by the root, to an existing CA directory.
    AddIssuing(CaAddIssuingArgs),
    /// Show the root and each product line's issuing CA: files, names, validity, policy and URLs.
    Show(CaShowArgs),
    /// Issue a CA's next CRL from the revocations on record: an issuing CA's, or the root's (ARL).
    Crl(Box<super::crl::CaCrlArgs>),
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  certmint ca show --ca ./ca\n  certmint ca show --ca ./ca --json\n\n\
Reads the CA directory only; opens no key."
)]
pub(crate) struct CaShowArgs {
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
Refuses (exit 9) when the line already has an issuing CA of its own. Never overwrites.\n\n\
With --replace, replaces the line's issuing CA once it is retired: its certificate revoked on record\n\
(`certmint revoke --ca-certificate ca/issuing.pem --ca ca --reason …`) or expired; refused (exit 9)\n\
while it is in force. The new CA takes the line's file names; the retired certificate and key files\n\
are kept as NAME.retired-SERIAL.pem (a key in a token stays there), never deleted; the root's CRL\n\
keeps listing the revoked certificate. Audited in the journal (ca.issuing-replaced).\n\
  certmint ca add-issuing --ca ./ca --line mali-muhur --replace"
)]
pub(crate) struct CaAddIssuingArgs {
    /// The CA directory made by `certmint ca init`.
    #[arg(long)]
    ca: PathBuf,
    /// The product line of the new issuing CA: okc (mali-muhur always exists, and can only be replaced).
    #[arg(long)]
    line: ProductLine,
    /// Replace the line's issuing CA, which must be revoked on record or expired.
    #[arg(long)]
    replace: bool,
    /// The journal that records the certificate the root key signs (and holds the revocation
    /// with --replace), and the operator.
    #[command(flatten)]
    journal: super::orders::JournalArgs,
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
pub(crate) struct CaInitArgs {
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
    /// The journal that records the three certificates the root key signs, and the operator.
    #[command(flatten)]
    journal: super::orders::JournalArgs,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub(crate) fn ca_init(args: CaInitArgs) -> Result<()> {
    let operator = args.journal.operator()?;
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
        unlock: super::unlock(args.ca_pin_env.clone(), 1),
        root_subject: subject(&args.root_cn),
        config,
        not_before: certmint::issue::validity::now()?,
    };
    // Refused before the journal is opened (or made).
    ca::refuse_existing(&args.dir, &options)
        .with_context(|| format!("ca init {}", args.dir.display()))?;
    let mut journal = args.journal.open()?;
    let mut ledger = ca::CaLedger {
        journal: &mut journal,
        operator: &operator,
    };
    let report = ca::init(&args.dir, &options, &mut ledger)
        .with_context(|| format!("ca init {}", args.dir.display()))?;
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
pub(crate) fn print_issuing_report(
    schema: &str,
    dir: &Path,
    report: &ca::InitReport,
    json: bool,
) -> Result<()> {
    print_issuing_report_with(schema, dir, report, json, None)
}

/// [`print_issuing_report`], with the retired issuing CA of a replacement
/// (`retired` in the JSON).
fn print_issuing_report_with(
    schema: &str,
    dir: &Path,
    report: &ca::InitReport,
    json: bool,
    retired: Option<serde_json::Value>,
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
        if let Some(retired) = retired {
            document["retired"] = retired;
        }
        super::json::print(schema, &document)?;
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

pub(crate) fn ca_show(args: CaShowArgs) -> Result<()> {
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
        super::json::print("ca.show", &document)?;
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

pub(crate) fn ca_add_issuing(args: CaAddIssuingArgs) -> Result<()> {
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
        unlock: super::unlock(args.ca_pin_env.clone(), 1),
        not_before: certmint::issue::validity::now()?,
    };
    if args.replace {
        let operator = args.journal.operator()?;
        let mut journal = args.journal.open()?;
        let replaced = ca::replace_issuing(&args.ca, &options, &mut journal, &operator)
            .with_context(|| format!("ca add-issuing --replace {}", args.ca.display()))?;
        let retired = serde_json::json!({
            "serial": replaced.retired_serial,
            "why": replaced.retirement.to_string(),
            "files": replaced.retired_files.iter().map(|(from, to)| {
                serde_json::json!({"from": from, "to": to})
            }).collect::<Vec<_>>(),
            "key_in_token": replaced.retired_key_elsewhere,
        });
        if !args.json {
            println!(
                "Retired the {} issuing CA, certificate {} ({}):",
                args.line, replaced.retired_serial, replaced.retirement
            );
            for (from, to) in &replaced.retired_files {
                println!("  {} kept as {}", from.display(), to.display());
            }
            if let Some(key) = &replaced.retired_key_elsewhere {
                println!("  its key stays in its token: {key}");
            }
        }
        return print_issuing_report_with(
            "ca.add_issuing",
            &args.ca,
            &replaced.added,
            args.json,
            Some(retired),
        );
    }
    let operator = args.journal.operator()?;
    let mut journal = args.journal.open()?;
    let mut ledger = ca::CaLedger {
        journal: &mut journal,
        operator: &operator,
    };
    let report = ca::add_issuing(&args.ca, &options, &mut ledger)
        .with_context(|| format!("ca add-issuing {}", args.ca.display()))?;
    print_issuing_report("ca.add_issuing", &args.ca, &report, args.json)
}

pub(crate) fn ca(command: CaCommand) -> Result<()> {
    match command {
        CaCommand::Init(args) => ca_init(args),
        CaCommand::AddIssuing(args) => ca_add_issuing(args),
        CaCommand::Show(args) => ca_show(args),
        CaCommand::Crl(args) => super::crl::ca_crl(*args),
    }
}
