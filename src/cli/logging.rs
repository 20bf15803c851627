//! The log on standard error: `-v`/`-q` or `RUST_LOG` choose how much, and
//! every line carries its UTC time and its module. Logs say what certmint
//! does — which journal, which token, how many devices — never a secret:
//! PINs, passwords and keys are never given to a log call (the types that
//! hold them print as `[REDACTED]` even by mistake).

use tracing_subscriber::EnvFilter;

/// How much to log, from the command line.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Verbosity {
    /// Say more on standard error: -v what certmint does, -vv in detail,
    /// -vvv everything. RUST_LOG (e.g. RUST_LOG=certmint::pkcs11=debug) overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Log errors only.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
}

impl Verbosity {
    fn level(self) -> &'static str {
        match (self.quiet, self.verbose) {
            (true, _) => "error",
            (false, 0) => "warn",
            (false, 1) => "info",
            (false, 2) => "debug",
            (false, _) => "trace",
        }
    }

    /// Starts the log. `RUST_LOG`, when set and valid, wins over the flags;
    /// an invalid one is reported and the flags apply.
    pub fn init(self) {
        let flags = || EnvFilter::new(format!("{},certmint={}", self.level(), self.level()));
        let (filter, rejected) = match std::env::var("RUST_LOG") {
            Ok(text) if !text.trim().is_empty() => match EnvFilter::try_new(&text) {
                Ok(filter) => (filter, None),
                Err(e) => (flags(), Some(e.to_string())),
            },
            _ => (flags(), None),
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_timer(tracing_subscriber::fmt::time::SystemTime)
            .try_init();
        if let Some(reason) = rejected {
            tracing::warn!("RUST_LOG is not a valid filter ({reason}); using the -v/-q level");
        }
    }
}
