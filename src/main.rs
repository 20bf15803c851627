//! The `certmint` command: parses arguments, calls the library, reports.
//! All behaviour lives in the library; this file turns its errors into one
//! message line and a documented exit code.

#![forbid(unsafe_code)]

#[macro_use]
mod cli;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

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
    Ca(cli::ca::CaCommand),
    /// Issue one certificate from a CSR or a public key, by profile.
    Issue(Box<cli::issue::IssueArgs>),
    /// Show a certificate's fields (string types included).
    Inspect(cli::issue::InspectArgs),
    /// PKCS#11 tokens: CA key ceremony, customer preflight and provisioning.
    #[command(subcommand)]
    Hsm(cli::hsm::HsmCommand),
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
    /// The journal itself: copy a station's journal into the shared one.
    #[command(subcommand)]
    Journal(cli::journal::JournalCommand),
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
        Command::Ca(command) => cli::ca::ca(command),
        Command::Issue(args) => cli::issue::issue(*args),
        Command::Inspect(args) => cli::issue::inspect_file(args),
        Command::Hsm(command) => cli::hsm::hsm(command),
        Command::Order(command) => cli::orders::order(command),
        Command::Manufacturer(command) => cli::manufacturers::manufacturer(command),
        Command::Journal(command) => cli::journal::journal(command),
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
