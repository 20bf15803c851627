//! Where the journal is: a path is an embedded SQLite file, a
//! `postgresql://` URL a shared PostgreSQL database.
//!
//! The database password never comes from the command line (it would show
//! in the process list and the shell's history): an address that holds one
//! is refused. It comes from `PGPASSWORD`, or from the password file libpq
//! reads (`PGPASSFILE`, else `~/.pgpass`, mode 0600), as for `psql`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use postgres::config::{Host, SslMode};
use postgres::{Client, Config, NoTls};

use super::JournalError;

/// The longest journal address taken.
const MAX_ADDRESS: usize = 4096;

/// Where the journal is.
#[derive(Clone)]
pub enum JournalAddress {
    /// An SQLite file.
    File(PathBuf),
    /// A PostgreSQL database.
    Server(Box<ServerAddress>),
}

impl std::fmt::Debug for JournalAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl std::fmt::Display for JournalAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JournalAddress::File(path) => write!(f, "{}", path.display()),
            JournalAddress::Server(server) => f.write_str(server.shown()),
        }
    }
}

/// A PostgreSQL journal: its connection settings (never a password) and
/// how it is named in messages.
#[derive(Clone)]
pub struct ServerAddress {
    config: Config,
    shown: String,
    /// The TLS roots to verify the server against (`sslrootcert`), if given.
    root_file: Option<PathBuf>,
}

/// An error and its causes, each once (a failed TLS handshake says why:
/// an unknown issuer, a name that does not match).
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let said = e.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        cause = e.source();
    }
    text
}

/// `%XX` escapes of a URL's query value decoded; `None` for a broken one.
fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The address with the TLS settings the client does not read taken out:
/// `sslrootcert` (returned), and `sslmode=verify-ca`/`verify-full` read as
/// `require` (certmint always verifies the server's chain and name).
fn tls_settings(text: &str) -> Result<(String, Option<PathBuf>), String> {
    let Some((base, query)) = text.split_once('?') else {
        return Ok((text.to_owned(), None));
    };
    let mut root_file = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("sslrootcert", value)) => {
                let value = percent_decoded(value)
                    .ok_or("the journal address's sslrootcert is not a well-formed value")?;
                root_file = Some(PathBuf::from(value));
            }
            Some(("sslmode", "verify-ca" | "verify-full")) => kept.push("sslmode=require"),
            _ => kept.push(pair),
        }
    }
    let address = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((address, root_file))
}

impl JournalAddress {
    /// Reads a journal address: `postgresql://` (or `postgres://`) is a
    /// server, anything else a file path.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() > MAX_ADDRESS {
            return Err(format!(
                "a journal address is at most {MAX_ADDRESS} characters"
            ));
        }
        if text.is_empty() {
            return Err("the journal address is empty".into());
        }
        if text.starts_with("postgresql://") || text.starts_with("postgres://") {
            ServerAddress::parse(text).map(|server| JournalAddress::Server(Box::new(server)))
        } else if let Some((scheme, _)) = text.split_once("://") {
            // Only the scheme is repeated: the rest may hold a password.
            Err(format!(
                "an address of scheme {:?} is neither a file path nor a postgresql:// URL",
                crate::text::one_line(&scheme.chars().take(32).collect::<String>())
            ))
        } else {
            Ok(JournalAddress::File(PathBuf::from(text)))
        }
    }

    /// The file, for an SQLite journal.
    pub fn file(&self) -> Option<&Path> {
        match self {
            JournalAddress::File(path) => Some(path),
            JournalAddress::Server(_) => None,
        }
    }
}

impl FromStr for JournalAddress {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

impl ServerAddress {
    fn parse(text: &str) -> Result<Self, String> {
        let (text, root_file) = tls_settings(text)?;
        let config = Config::from_str(&text)
            .map_err(|e| format!("the journal address is not a PostgreSQL URL: {e}"))?;
        if config.get_password().is_some() {
            return Err(
                "the journal address holds a password, which would show in the process list \
                 and the shell's history: give it in PGPASSWORD or a password file \
                 (PGPASSFILE, else ~/.pgpass) instead"
                    .into(),
            );
        }
        let host = config
            .get_hosts()
            .iter()
            .map(|host| match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect::<Vec<_>>()
            .join(",");
        let port = config
            .get_ports()
            .first()
            .map_or(String::new(), |p| format!(":{p}"));
        let user = config.get_user().map_or(String::new(), |u| format!("{u}@"));
        let database = config.get_dbname().unwrap_or("");
        let shown = format!("postgresql://{user}{host}{port}/{database}");
        Ok(Self {
            config,
            shown,
            root_file,
        })
    }

    /// The address as messages name it (no password is ever in it).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Where this station keeps the audit chain's signed checkpoints of
    /// this journal: a file under `CERTMINT_AUDIT_DIR`, else
    /// `$XDG_STATE_HOME/certmint`, else `~/.local/state/certmint`, named
    /// after the server, port, user and database the address leads to
    /// (spelt with or without the default port or user, in any case of the
    /// host name, it is one journal). Never in the database: whoever can
    /// write the database must not be able to rewrite what anchors its
    /// log, nor which file does.
    pub fn anchor(&self) -> PathBuf {
        let dir = std::env::var_os("CERTMINT_AUDIT_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("XDG_STATE_HOME").map(|d| PathBuf::from(d).join("certmint"))
            })
            .or_else(|| {
                std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/certmint"))
            })
            .unwrap_or_else(|| PathBuf::from("."));
        let file_of = |spelt: &str| {
            let name: String = spelt
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            dir.join(format!("{name}.journal"))
        };
        let anchor = file_of(&self.canonical());
        // Checkpoints kept under the address as it was spelt, before names
        // were resolved, stay in use.
        let spelt = file_of(self.shown.trim_start_matches("postgresql://"));
        if !anchor.exists() && spelt.exists() {
            return spelt;
        }
        anchor
    }

    /// `user@host:port/database` as the connection resolves it: the user
    /// `$USER` when the address names none, the port 5432 when none, host
    /// names in lower case.
    fn canonical(&self) -> String {
        let hosts = self
            .config
            .get_hosts()
            .iter()
            .map(|host| match host {
                Host::Tcp(name) => name.to_ascii_lowercase(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect::<Vec<_>>()
            .join(",");
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let user = self
            .config
            .get_user()
            .map(str::to_owned)
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_default();
        let database = self.config.get_dbname().unwrap_or(&user);
        format!("{user}@{hosts}:{port}/{database}")
    }

    /// Connects, with the password from `PGPASSWORD` or the password file.
    pub fn connect(&self) -> Result<Client, String> {
        let mut config = self.config.clone();
        if config.get_user().is_none() {
            if let Ok(user) = std::env::var("USER") {
                config.user(&user);
            }
        }
        if let Some(password) = self.password(&config)? {
            config.password(password.as_bytes());
        }
        // As libpq: TLS is for networks; a Unix socket is this machine's.
        if config
            .get_hosts()
            .iter()
            .all(|host| matches!(host, Host::Unix(_)))
        {
            config.ssl_mode(SslMode::Disable);
        }
        match config.get_ssl_mode() {
            // TLS, and the server verified: its chain against the roots,
            // its name against the address.
            SslMode::Require => {
                let tls = super::tls::RustlsConnect::new(self.root_file.as_deref())?;
                config.connect(tls).map_err(|e| with_causes(&e))
            }
            // `prefer` (the default) and `disable`: no TLS. A connection in
            // the clear is one the operator chose by not asking for TLS.
            _ => config.connect(NoTls).map_err(|e| with_causes(&e)),
        }
    }

    /// The password for `config`'s server, database and user: `PGPASSWORD`,
    /// else the first matching line of the password file.
    fn password(&self, config: &Config) -> Result<Option<zeroize::Zeroizing<String>>, String> {
        if let Ok(password) = std::env::var("PGPASSWORD") {
            if !password.is_empty() {
                return Ok(Some(zeroize::Zeroizing::new(password)));
            }
        }
        let file = match std::env::var_os("PGPASSFILE") {
            Some(file) => PathBuf::from(file),
            None => match std::env::var_os("HOME") {
                Some(home) => PathBuf::from(home).join(".pgpass"),
                None => return Ok(None),
            },
        };
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => zeroize::Zeroizing::new(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("password file {}: {e}", file.display())),
        };
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file)
                .map_err(|e| format!("password file {}: {e}", file.display()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                // As libpq: a file others can read is not used, and said so.
                tracing::warn!(
                    "password file {} is readable by others (mode {:o}): not used; make it 0600",
                    file.display(),
                    mode & 0o777
                );
                return Ok(None);
            }
        }
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(name)) => name.clone(),
            Some(Host::Unix(_)) | None => "localhost".to_owned(),
        };
        let port = config
            .get_ports()
            .first()
            .copied()
            .unwrap_or(5432)
            .to_string();
        let user = config.get_user().unwrap_or("");
        // As libpq: the database defaults to the user's name.
        let database = config.get_dbname().unwrap_or(user);
        Ok(text
            .lines()
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let fields = pgpass_fields(line);
                let [h, p, d, u, password] = fields.as_slice() else {
                    return None;
                };
                let matches = |field: &str, value: &str| field == "*" || field == value;
                (matches(h, &host) && matches(p, &port) && matches(d, database) && matches(u, user))
                    .then(|| zeroize::Zeroizing::new(password.clone()))
            }))
    }
}

/// The five fields of a password file line (`host:port:database:user:password`),
/// with `\:` and `\\` unescaped.
fn pgpass_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    if let Some(field) = fields.last_mut() {
                        field.push(next);
                    }
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            _ => {
                if let Some(field) = fields.last_mut() {
                    field.push(c);
                }
            }
        }
    }
    fields
}

impl super::SqlJournal {
    /// Opens (creating if needed) the journal at `address`.
    pub fn open_at(address: &JournalAddress) -> Result<Self, JournalError> {
        match address {
            JournalAddress::File(path) => Self::open(path),
            JournalAddress::Server(server) => Self::open_server(server),
        }
    }

    /// Opens the journal at `address`, which must exist: reading a journal
    /// that is not there would make an empty one, and report an empty
    /// record instead of saying that the operator is in the wrong folder
    /// or named the wrong database.
    pub fn open_existing(address: &JournalAddress) -> Result<Self, JournalError> {
        let exists = match address {
            JournalAddress::File(path) => path.exists(),
            JournalAddress::Server(server) => super::sql::has_server_journal(server)?,
        };
        if !exists {
            return Err(JournalError::NoJournal(address.to_string()));
        }
        Self::open_at(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One journal, however its address is spelt: the checkpoints a
    /// station keeps of it are in one file.
    #[test]
    fn spellings_of_one_journal_share_their_checkpoints() {
        let anchor = |text: &str| match JournalAddress::parse(text).unwrap() {
            JournalAddress::Server(server) => server.anchor(),
            JournalAddress::File(_) => unreachable!(),
        };
        let user = std::env::var("USER").unwrap_or_default();
        let plain = anchor("postgresql://certmint@DB.example/ca");
        assert_eq!(anchor("postgres://certmint@db.example:5432/ca"), plain);
        assert_eq!(
            anchor("postgresql://certmint@db.example/ca?sslmode=require"),
            plain
        );
        assert_ne!(anchor("postgresql://certmint@db.example:5433/ca"), plain);
        assert_ne!(anchor("postgresql://certmint@db.example/other"), plain);
        if !user.is_empty() {
            assert_eq!(
                anchor("postgresql://db.example/ca"),
                anchor(&format!("postgresql://{user}@db.example:5432/ca"))
            );
        }
    }

    #[test]
    fn a_path_is_a_file_and_a_postgresql_url_a_server() {
        assert!(matches!(
            JournalAddress::parse("journal.sqlite").unwrap(),
            JournalAddress::File(_)
        ));
        let server = JournalAddress::parse("postgresql://certmint@db.example:5433/ca").unwrap();
        assert_eq!(
            server.to_string(),
            "postgresql://certmint@db.example:5433/ca"
        );
        assert!(JournalAddress::parse("mysql://x/y").is_err());
        assert!(JournalAddress::parse("").is_err());
    }

    #[test]
    fn a_password_in_the_address_is_refused_and_never_repeated() {
        let refused = JournalAddress::parse("postgresql://certmint:s3cret@db/ca").unwrap_err();
        assert!(refused.contains("PGPASSWORD"), "{refused}");
        assert!(!refused.contains("s3cret"), "{refused}");
        let refused = JournalAddress::parse("postgresql://db/ca?password=s3cret").unwrap_err();
        assert!(!refused.contains("s3cret"), "{refused}");
        // A mistyped scheme is named, and nothing after it.
        let refused = JournalAddress::parse("postgress://certmint:s3cret@db/ca").unwrap_err();
        assert!(refused.contains("\"postgress\""), "{refused}");
        assert!(!refused.contains("s3cret"), "{refused}");
    }

    #[test]
    fn tls_settings_the_client_does_not_read_are_taken_out_of_the_address() {
        let (address, roots) = tls_settings(
            "postgresql://u@db/ca?sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20roots.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(
            address,
            "postgresql://u@db/ca?sslmode=require&application_name=x"
        );
        assert_eq!(roots, Some(PathBuf::from("/etc/ca roots.pem")));
        assert_eq!(
            tls_settings("postgresql://u@db/ca").unwrap(),
            ("postgresql://u@db/ca".to_owned(), None)
        );
        assert!(tls_settings("postgresql://u@db/ca?sslrootcert=%zz").is_err());
    }

    #[test]
    fn password_file_fields_unescape_colons_and_backslashes() {
        assert_eq!(
            pgpass_fields(r"db:5432:ca:certmint:pa\:ss\\word"),
            ["db", "5432", "ca", "certmint", r"pa:ss\word"]
        );
        assert_eq!(pgpass_fields("*:*:*:*:x:y"), ["*", "*", "*", "*", "x:y"]);
    }
}
