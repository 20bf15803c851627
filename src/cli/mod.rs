//! Command groups of the `certmint` binary that have grown beyond a few
//! lines each. Parsing and reporting only: the work is in the library.

/// Returns a usage error (exit 2): arguments that are missing or do not
/// fit together, found before any work starts.
macro_rules! usage {
    ($($message:tt)+) => {
        return Err(certmint::error::Usage(format!($($message)+)).into())
    };
}

pub mod bench;
pub mod ca;
pub mod card;
pub mod cert;
pub mod crl;
pub mod hsm;
pub mod issue;
pub mod journal;
pub mod json;
pub mod logging;
pub mod manufacturers;
pub mod orders;
pub mod records;
pub mod revoke;
pub mod vcard;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Result};

use certmint::ids::IdMode;
use certmint::profile::{CaConfig, Profile, ProfileName, Subject, SubjectInput};

/// A reader that closed standard output (`certmint cert list | head`)
/// ends the program quietly with the status of a process ended by SIGPIPE.
pub fn exit_quietly_if_closed(error: &std::io::Error) {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
}

/// Parses a worker count: 1 to [`certmint::input::MAX_WORKERS`].
pub fn workers_arg(text: &str) -> Result<usize, String> {
    count_arg(text, certmint::input::MAX_WORKERS)
}

/// Parses a count from 1 to `max` (a usage error beyond: exit 2).
pub fn count_arg(text: &str, max: u64) -> Result<usize, String> {
    match text.parse::<u64>() {
        Ok(n) if (1..=max).contains(&n) => usize::try_from(n).map_err(|e| e.to_string()),
        _ => Err(format!("expected a whole number from 1 to {max}")),
    }
}

/// The default number of workers: the cores, within [`workers_arg`]'s range.
pub fn default_workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(certmint::input::MAX_WORKERS as usize)
}

/// A flag set by Ctrl-C: the work stops after what is in flight (`what`).
pub fn stop_on_ctrl_c(what: &'static str) -> Result<Arc<AtomicBool>> {
    Ok(certmint::production::setup::stop_on_ctrl_c(ctrl_c_notice(
        what,
    ))?)
}

/// What Ctrl-C tells the operator: the work stops after the `what` in
/// flight. A second Ctrl-C is the operator insisting: leave at once (the
/// journal stays consistent).
pub fn ctrl_c_notice(what: &'static str) -> certmint::production::setup::OnCtrlC {
    Box::new(move |again| {
        if again {
            std::process::exit(130);
        }
        eprintln!("\nStopping after the {what} in flight… (Ctrl-C again to leave at once)");
    })
}

/// The company a Mali Mühür seal certifies, as `hsm provision` and
/// `card provision` take it.
#[derive(clap::Args)]
pub struct SealSubjectArgs {
    /// The company's VKN.
    #[arg(long)]
    vkn: Option<String>,
    /// A sole proprietor's TCKN (instead of --vkn).
    #[arg(long)]
    tckn: Option<String>,
    /// The trade name (unvan).
    #[arg(long)]
    unvan: Option<String>,
    /// Accept GİB's test identifiers. Never in production.
    #[arg(long)]
    test_mode: bool,
}

impl SealSubjectArgs {
    /// Whether the company was named on the command line.
    pub fn names_a_company(&self) -> bool {
        self.vkn.is_some() || self.tckn.is_some() || self.unvan.is_some()
    }

    /// The identifier mode `--test-mode` asks for.
    pub fn id_mode(&self) -> IdMode {
        if self.test_mode {
            IdMode::Test
        } else {
            IdMode::Production
        }
    }
}

/// The Mali Mühür profile of the CA in `ca_dir` and the subject it
/// certifies, checked before any token or card is touched; refuses an
/// `out` file that exists already.
pub fn mali_muhur_subject(
    ca_dir: &Path,
    seal: &SealSubjectArgs,
    out: Option<&PathBuf>,
) -> Result<(Profile, Subject, IdMode)> {
    if let Some(out) = out {
        if out.exists() {
            bail!(
                "{} already exists; certmint never overwrites a certificate",
                out.display()
            );
        }
    }
    let config = CaConfig::load(&ca_dir.join(certmint::ca::CONFIG_FILE))?;
    let profile = Profile::from_config(ProfileName::MaliMuhur, &config)?;
    let id_mode = if seal.test_mode {
        IdMode::Test
    } else {
        IdMode::Production
    };
    let input = SubjectInput {
        vkn: seal.vkn.clone(),
        tckn: seal.tckn.clone(),
        unvan: match &seal.unvan {
            Some(unvan) => Some(unvan.clone()),
            None => usage!("name the company's trade name with --unvan"),
        },
        ..Default::default()
    };
    let subject = Subject::from_input(&profile, &input, id_mode)?;
    Ok((profile, subject, id_mode))
}

/// Tells the operator, on stderr, that the opened product line has no
/// issuing CA of its own and shares the Mali Mühür one (`warning`, when it
/// does).
pub fn warn_shared_issuing_ca(warning: Option<&str>) {
    if let Some(warning) = warning {
        eprintln!("warning: {warning}");
    }
}

/// How to unlock a CA key: its PIN from `pin_env` when its URI has no
/// `pin-source`, and `sessions` token sessions, each (when more than one) in
/// a process of its own running this program.
pub fn unlock(pin_env: Option<String>, sessions: usize) -> certmint::keyref::Unlock {
    certmint::keyref::Unlock {
        pin_env,
        sessions: Some(sessions),
        session_program: std::env::current_exe().ok(),
    }
}
