//! `certmint ca crl`: parsing and reporting only; the steps are in
//! [`certmint::crl::publish`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use certmint::ca::{self, CrlAuthority};
use certmint::crl::publish::{self, CrlRequest};
use certmint::crl::{CrlIssuer, CrlPaths};

use super::orders::JournalArgs;

/// How long an issuing CA's CRL stays current unless --valid-for says.
const ISSUING_VALIDITY: &str = "24h";
/// How long the root's CRL (the ARL) stays current unless --valid-for
/// says: the root key is kept offline, so its CRL is signed seldom.
const ROOT_VALIDITY: &str = "90d";

#[derive(Args)]
#[command(after_help = "Examples:\n  \
certmint ca crl --ca ./ca --issuer okc\n  \
certmint ca crl --ca ./ca --issuer mali-muhur --out-dir /srv/www/kurumsal --valid-for 48h\n  \
certmint ca crl --ca ./ca --issuer root --root-key /media/offline/root-key.pem --valid-for 90d --json\n\n\
Lists every revocation on record of the issuer (`certmint revoke`, and the certificates certmint\n\
revoked itself as superseded) in a v2 CRL signed by the issuer's key, with authorityKeyIdentifier,\n\
the next CRL Number, thisUpdate = now and nextUpdate = now + --valid-for (default 24h for an\n\
issuing CA, 90d for the root; between 1h and 366d). The CRL is linted, signed, verified, then\n\
written as DER and PEM (FILE and FILE.pem) in --out-dir (default: crl/ in the CA directory), FILE\n\
being the last part of the CRL URL the certificates name, so the folder can be published as it is.\n\n\
The CRL Number is on record before the CRL is signed: a run that fails or is killed leaves a gap\n\
in the numbers, never a number used twice. A CRL file already in --out-dir is replaced only\n\
when this journal issued it (exit 9 otherwise: a CRL from the wrong journal would take the CA's\n\
revocations back). The root's CRL lists revoked issuing CAs\n\
(`certmint revoke --ca-certificate`).")]
pub struct CaCrlArgs {
    #[command(flatten)]
    journal: JournalArgs,
    /// The CA directory made by `certmint ca init`.
    #[arg(long)]
    ca: PathBuf,
    /// Whose CRL: okc, mali-muhur (the issuing CAs) or root (the ARL).
    #[arg(long)]
    issuer: CrlAuthority,
    /// Where the CRL files go (created if missing). Default: crl/ in the CA directory.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// How long the CRL stays current (nextUpdate - thisUpdate): a number with h or d, e.g. 24h, 7d.
    #[arg(long)]
    valid_for: Option<String>,
    /// The root key (file or pkcs11: URI) for --issuer root; root-key.pem in the CA directory by default.
    #[arg(long)]
    root_key: Option<String>,
    /// Environment variable holding the CA token's PIN (for pkcs11: keys without pin-source).
    #[arg(long, alias = "pin-env")]
    ca_pin_env: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct CrlReport<'a> {
    issuer: String,
    #[serde(flatten)]
    crl: &'a publish::PublishedCrl,
}

pub fn ca_crl(args: CaCrlArgs) -> Result<()> {
    if args.root_key.is_some() && args.issuer != CrlAuthority::Root {
        usage!("--root-key is for --issuer root only");
    }
    let valid_for = match &args.valid_for {
        Some(text) => parse_validity(text)?,
        None => parse_validity(match args.issuer {
            CrlAuthority::Root => ROOT_VALIDITY,
            CrlAuthority::Issuing(_) => ISSUING_VALIDITY,
        })?,
    };
    let operator = args.journal.operator()?;
    let out_dir = args
        .out_dir
        .clone()
        .unwrap_or_else(|| args.ca.join(ca::DEFAULT_CRL_FOLDER));
    // Everything that can be refused cheaply is refused before a key is
    // opened or a number allocated.
    // The journal must exist: a CRL from a journal made here, empty, would
    // take the CA's revocations back.
    let mut journal = args.journal.location.open()?;
    let ca = ca::open_crl_signer(
        &args.ca,
        args.issuer,
        args.root_key.as_deref(),
        &super::unlock(args.ca_pin_env.clone(), 1),
    )
    .with_context(|| format!("ca crl --issuer {}", args.issuer))?;
    let issuer = CrlIssuer::new(&ca.certificate_der, ca.signer.as_ref())?;
    std::fs::create_dir_all(&out_dir).with_context(|| out_dir.display().to_string())?;
    let name = publish::file_name_from_url(ca.crl_url.as_deref(), &format!("{}.crl", args.issuer));
    let paths = CrlPaths {
        der: out_dir.join(&name),
        pem: out_dir.join(format!("{name}.pem")),
    };
    let published = publish::publish_crl(
        &mut journal,
        &issuer,
        &CrlRequest {
            paths: &paths,
            this_update: time::OffsetDateTime::now_utc(),
            valid_for,
            operator: &operator,
        },
    )?;
    if args.json {
        return super::json::print(
            "ca.crl",
            &CrlReport {
                issuer: args.issuer.to_string(),
                crl: &published,
            },
        );
    }
    println!(
        "CRL number {} of {}: {} revoked certificate(s), current until {}",
        published.number, args.issuer, published.entries, published.next_update
    );
    println!(
        "  {} ({} bytes, SHA-256 {})",
        published.der_path.display(),
        published.der_bytes,
        published.sha256
    );
    println!("  {}", published.pem_path.display());
    if let Some(url) = &ca.crl_url {
        println!("  publish {} at {url}", published.der_path.display());
    }
    Ok(())
}

/// `24h`, `7d`: a whole number of hours or days.
fn parse_validity(text: &str) -> Result<Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let seconds_per_unit = match unit {
        "h" => 3600,
        "d" => 24 * 3600,
        _ => usage!("--valid-for {text:?}: give a whole number of hours or days, e.g. 24h or 7d"),
    };
    let Ok(count) = number.parse::<u64>() else {
        usage!("--valid-for {text:?}: give a whole number of hours or days, e.g. 24h or 7d");
    };
    Ok(Duration::from_secs(count.saturating_mul(seconds_per_unit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_is_hours_or_days() {
        assert_eq!(parse_validity("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(
            parse_validity("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        for bad in ["", "h", "7", "7w", "-1d", "1.5d", "d7"] {
            assert!(parse_validity(bad).is_err(), "{bad}");
        }
    }
}
