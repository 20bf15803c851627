//! What kind of failure an error is, and the exit code of each kind.
//!
//! Every error type of the library says its own [`ErrorKind`] (a `kind()`
//! method next to the type; a wrapper asks the error it wraps). [`kind_of`]
//! finds the kind of a whole error chain, so the binary maps an error to its
//! exit code in one line. [`KINDS`] is the one table of kinds, exit codes and
//! names: the `--help` text is made from it, and a unit test holds the
//! README's exit-code table to it.

use std::fmt::Write as _;

/// What kind of failure an error is: decides the exit code, and names the
/// failure in machine-readable reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Anything not below: files, I/O, the CA, keys, the journal's database.
    Failure,
    /// The arguments: missing, conflicting, or a value out of range.
    Usage,
    /// Data the operator or a customer gave is not valid: subject data,
    /// identifiers, a request, a public key, a file over its cap.
    InvalidInput,
    /// A lint refused the certificate before the CA key signed it.
    LintRefused,
    /// A token or card refused: wrong or blocked PIN, management key
    /// refused, token gone, label or slot taken, mechanism missing.
    TokenRefused,
    /// The audit log does not verify.
    AuditBroken,
    /// Another producer holds the order.
    Held,
    /// No such order or certificate.
    NotFound,
    /// The request conflicts with what the journal records (a certificate
    /// already on record for a device or seal label).
    Conflict,
    /// A preflight found what it checks not ready (`hsm probe`).
    NotReady,
    /// The operator stopped the work (Ctrl-C) after what was in flight.
    Stopped,
}

/// One row of the exit-code table.
#[derive(Debug, Clone, Copy)]
pub struct KindRow {
    /// The kind.
    pub kind: ErrorKind,
    /// The process exit code.
    pub code: u8,
    /// A short kebab-case name, for machine-readable error reports.
    pub name: &'static str,
    /// What the code means, for the operator (Markdown: `code` spans).
    pub meaning: &'static str,
}

/// Every kind, in the order of its exit code. The one source of the exit
/// codes: the binary's `--help`, the README's table (checked by a test)
/// and [`ErrorKind::exit_code`] all read it.
pub const KINDS: [KindRow; 11] = [
    KindRow {
        kind: ErrorKind::Failure,
        code: 1,
        name: "failure",
        meaning: "failure: files, I/O, CA, keys",
    },
    KindRow {
        kind: ErrorKind::Usage,
        code: 2,
        name: "usage",
        meaning: "usage error: bad, missing or conflicting arguments, a count out of range",
    },
    KindRow {
        kind: ErrorKind::InvalidInput,
        code: 3,
        name: "invalid-input",
        meaning: "invalid input: subject data, identifiers, request, public key (off the curve, a weak RSA key), \
                  key not accepted by the profile, a file over its size cap, a PIN longer than any token takes",
    },
    KindRow {
        kind: ErrorKind::LintRefused,
        code: 4,
        name: "lint-refused",
        meaning: "refused by a lint before signing",
    },
    KindRow {
        kind: ErrorKind::TokenRefused,
        code: 5,
        name: "token-refused",
        meaning: "token or card refused: wrong or blocked PIN (tried once only), management key refused, \
                  token gone, label or slot in use, mechanism missing, factory secrets without \
                  `--allow-factory-defaults`",
    },
    KindRow {
        kind: ErrorKind::AuditBroken,
        code: 6,
        name: "audit-broken",
        meaning: "the audit log is broken (`audit verify`): its hash chain, its signed checkpoints, \
                  or the orders and certificates it describes do not match",
    },
    KindRow {
        kind: ErrorKind::Held,
        code: 7,
        name: "held",
        meaning: "the order is being produced by another producer (named in the message); \
                  run again once it has finished, or wait with `--wait SECONDS`; or another \
                  `ca crl` writes into the same CRL folder",
    },
    KindRow {
        kind: ErrorKind::NotFound,
        code: 8,
        name: "not-found",
        meaning: "not found: no such order or registered manufacturer, or no certificate on record matches, \
                  or no issuing CA of that product line for `ca crl` or `ca add-issuing --replace`",
    },
    KindRow {
        kind: ErrorKind::Conflict,
        code: 9,
        name: "conflict",
        meaning: "conflict: the device serial or seal label already has a certificate on record (named in the \
                  message); `issue --reissue` supersedes it; a manufacturer VKN registered already; \
                  `ca add-issuing` for a product line that has its issuing CA, or `--replace` of one in force \
                  (not revoked, not expired); an order whose state refuses the request (a paid order is never cancelled); revoking an intent still in progress",
    },
    KindRow {
        kind: ErrorKind::NotReady,
        code: 10,
        name: "not-ready",
        meaning: "not ready (`hsm probe`): a mechanism missing, a label taken or the PIN locked; the report \
                  marks which",
    },
    KindRow {
        kind: ErrorKind::Stopped,
        code: 130,
        name: "stopped",
        meaning: "stopped by Ctrl-C (`okc produce`, `hsm provision --order`, `card station`) after the devices \
                  in flight; run the same command again to resume",
    },
];

impl ErrorKind {
    fn row(self) -> &'static KindRow {
        // Every kind has its row (a unit test checks it); the first row,
        // failure, stands in should one ever be missing.
        KINDS
            .iter()
            .find(|row| row.kind == self)
            .unwrap_or(&KINDS[0])
    }

    /// The process exit code of this kind.
    pub fn exit_code(self) -> u8 {
        self.row().code
    }

    /// The kind's kebab-case name (`usage`, `invalid-input`, …).
    pub fn name(self) -> &'static str {
        self.row().name
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Arguments that are missing or do not fit together, found before any
/// work started: the caller's mistake ([`ErrorKind::Usage`], exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

impl Usage {
    /// Always [`ErrorKind::Usage`].
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Usage
    }
}

/// The operator stopped the work with Ctrl-C; what was in flight finished
/// and the rest resumes when the same command runs again.
#[derive(Debug, thiserror::Error)]
#[error("stopped after the devices in flight; run the same command again to resume")]
pub struct Stopped;

impl Stopped {
    /// Always [`ErrorKind::Stopped`].
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Stopped
    }
}

/// A preflight's report said "not ready"; the report itself was printed.
#[derive(Debug, thiserror::Error)]
#[error("{0} is not ready: see the lines marked above")]
pub struct NotReady(pub String);

impl NotReady {
    /// Always [`ErrorKind::NotReady`].
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::NotReady
    }
}

/// The kind of an error chain: the first cause, outermost first, whose
/// library type gives a kind other than [`ErrorKind::Failure`]. Wrappers
/// marked `#[error(transparent)]` hide the error they wrap from `source()`,
/// so each wrapper's `kind()` asks that error itself.
pub fn kind_of(error: &(dyn std::error::Error + 'static)) -> ErrorKind {
    let mut cause = Some(error);
    while let Some(error) = cause {
        let kind = own_kind(error);
        if kind != ErrorKind::Failure {
            return kind;
        }
        cause = error.source();
    }
    ErrorKind::Failure
}

/// The kind one error gives of itself, by its library type; any other type
/// (I/O, encodings, messages) is a failure.
fn own_kind(error: &(dyn std::error::Error + 'static)) -> ErrorKind {
    macro_rules! kind_by_type {
        ($($error_type:ty),+ $(,)?) => {
            $(
                if let Some(e) = error.downcast_ref::<$error_type>() {
                    return e.kind();
                }
            )+
        };
    }
    kind_by_type!(
        Usage,
        Stopped,
        NotReady,
        crate::audit::AuditBroken,
        crate::audit::checkpoint::CheckpointError,
        crate::ca::CaError,
        crate::calendar::CalendarError,
        crate::card::provision::CardError,
        crate::card::station::StationError,
        crate::crl::CrlError,
        crate::crl::publish::PublishError,
        crate::hardening::HardeningError,
        crate::ids::IdError,
        crate::input::InputError,
        crate::inspect::InspectError,
        crate::issue::IssueError,
        crate::journal::JournalError,
        crate::journal::CopyError,
        crate::keyref::KeyRefError,
        crate::production::ProduceError,
        crate::production::seals::SealError,
        crate::production::setup::SetupError,
        crate::okc::purge::PurgeError,
        crate::order::ImportRefused,
        crate::order::manufacturer::ManufacturerError,
        crate::order::one_off::OnRecordError,
        crate::piv::apdu::ApduError,
        crate::piv::client::PivError,
        crate::piv::mgmt::MgmtKeyError,
        crate::piv::tlv::TlvError,
        crate::piv::PinFormatError,
        crate::pkcs11::Pkcs11Error,
        crate::pkcs11::pin::PinError,
        crate::pkcs11::registry::RegistryError,
        crate::pkcs11::uri::UriError,
        crate::profile::ProfileError,
        crate::records::RecordsError,
        crate::request::RequestError,
        crate::revocation::revoke::RevokeError,
        crate::signer::SignerError,
        crate::tools::vcard::VcardError,
    );
    ErrorKind::Failure
}

/// The exit-code list of `certmint --help`, made from [`KINDS`].
pub fn exit_codes_help() -> String {
    let mut text = String::from("Exit codes:\n  0  success\n");
    for row in &KINDS {
        let meaning = row.meaning.replace('`', "");
        let mut line = String::new();
        let mut first = true;
        for word in meaning.split(' ') {
            if !line.is_empty() && line.len() + 1 + word.len() > HELP_WIDTH {
                push_help_line(&mut text, row.code, first, &line);
                first = false;
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        push_help_line(&mut text, row.code, first, &line);
    }
    text.pop();
    text
}

/// Width of a meaning's lines in the help text, after the code column.
const HELP_WIDTH: usize = 90;

fn push_help_line(text: &mut String, code: u8, first: bool, line: &str) {
    if first {
        let _ = writeln!(text, "{code:>3}  {line}");
    } else {
        let _ = writeln!(text, "     {line}");
    }
}

/// The README's exit-code table, made from [`KINDS`].
pub fn exit_codes_markdown() -> String {
    let mut text = String::from("| code | meaning |\n|---|---|\n| 0 | success |\n");
    for row in &KINDS {
        let _ = writeln!(text, "| {} | {} |", row.code, row.meaning);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind and the exit code the README documents for it.
    const DOCUMENTED: [(ErrorKind, u8, &str); 11] = [
        (ErrorKind::Failure, 1, "failure"),
        (ErrorKind::Usage, 2, "usage"),
        (ErrorKind::InvalidInput, 3, "invalid-input"),
        (ErrorKind::LintRefused, 4, "lint-refused"),
        (ErrorKind::TokenRefused, 5, "token-refused"),
        (ErrorKind::AuditBroken, 6, "audit-broken"),
        (ErrorKind::Held, 7, "held"),
        (ErrorKind::NotFound, 8, "not-found"),
        (ErrorKind::Conflict, 9, "conflict"),
        (ErrorKind::NotReady, 10, "not-ready"),
        (ErrorKind::Stopped, 130, "stopped"),
    ];

    #[test]
    fn every_kind_maps_to_its_documented_code_and_name() {
        for (kind, code, name) in DOCUMENTED {
            assert_eq!(kind.exit_code(), code, "{kind:?}");
            assert_eq!(kind.name(), name, "{kind:?}");
            assert_eq!(kind.to_string(), name);
        }
    }

    #[test]
    fn the_table_has_one_row_per_kind_code_and_name() {
        assert_eq!(KINDS.len(), DOCUMENTED.len());
        for (i, row) in KINDS.iter().enumerate() {
            for other in &KINDS[i + 1..] {
                assert_ne!(row.kind, other.kind);
                assert!(row.code < other.code, "in order of code: {}", row.name);
                assert_ne!(row.name, other.name);
            }
            let kebab = row.name.chars().all(|c| c.is_ascii_lowercase() || c == '-');
            assert!(kebab, "{}", row.name);
        }
    }

    #[test]
    fn the_readme_table_is_the_kind_table() {
        let readme = include_str!("../README.md");
        let table = exit_codes_markdown();
        assert!(
            readme.contains(&table),
            "README.md's exit-code table must read exactly:\n{table}"
        );
    }

    #[test]
    fn the_help_text_lists_every_code_once() {
        let help = exit_codes_help();
        for code in std::iter::once(0).chain(KINDS.iter().map(|r| r.code)) {
            let starts = help
                .lines()
                .filter(|l| l.trim_start().starts_with(&format!("{code}  ")))
                .count();
            assert_eq!(starts, 1, "code {code} in\n{help}");
        }
        assert!(!help.contains('`'));
        assert!(help.lines().all(|l| l.chars().count() <= HELP_WIDTH + 5));
    }

    #[test]
    fn a_chain_takes_the_first_specific_kind_through_transparent_wrappers() {
        // A lint refusal wrapped transparently twice: `source()` would skip
        // the inner errors, `kind()` does not.
        let inner = crate::issue::IssueError::Lint(crate::issue::lint::LintReport(Vec::new()));
        let wrapped = crate::ca::CaError::Issue(inner);
        assert_eq!(kind_of(&wrapped), ErrorKind::LintRefused);
        let usage = anyhow::Error::from(Usage("give --token".into())).context("okc produce");
        assert_eq!(kind_of(usage.as_ref()), ErrorKind::Usage);
        let io = std::io::Error::other("disk full");
        assert_eq!(kind_of(&io), ErrorKind::Failure);
        let not_found = crate::journal::JournalError::NoOrder(crate::journal::OrderId(999));
        assert_eq!(kind_of(&not_found), ErrorKind::NotFound);
    }
}
