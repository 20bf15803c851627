//! One PKCS#11 session per process: a CA key whose token is driven by
//! several workers signs in N child processes, each with the module loaded
//! and logged in on its own, instead of N threads sharing one module.
//!
//! Why: a module serialises its callers as it sees fit, and SoftHSM2 holds
//! process-wide locks for about a third of every signature (its token
//! mutex around the decryption of the key, its object store), so that two
//! threads sign only ~1.25× as fast as one; two processes, which share no
//! lock, ~1.5–1.8× (measured; see the README's Performance section). The
//! processes also keep a crashing vendor module from taking the journal's
//! process with it (OpenSSH runs PKCS#11 modules in `ssh-pkcs11-helper` for
//! the same reason).
//!
//! The parent reads the PIN (file, environment variable or prompt), starts
//! one child and hands it the key's URI and the PIN over a pipe — never
//! argv — and starts the others only once that child has logged in, so that
//! a wrong PIN is tried exactly once. Each child is the `certmint` binary's
//! hidden `pkcs11-session` command, which runs [`serve`]: a
//! [`Pkcs11Signer`] with one session, and all its healing (lost login,
//! dead session, stale handle), behind a pipe. A child ends when its stdin
//! closes, so it never outlives the parent; it runs in a process group of
//! its own, so that Ctrl-C stops the parent's work gracefully instead of
//! killing the signers under it.
//!
//! A worker hands its child a whole chunk of TBS certificates in one frame
//! ([`Signer::sign_all`]) and gets the signatures back in one, so the pipes
//! cost a round trip per chunk, not per signature. Each process is called
//! by two threads (see [`Signer::callers_to_keep_busy`]): while it signs
//! one's chunk, the other verifies the signatures of its last chunk and
//! prepares its next, which is waiting when the process is done. With one
//! caller per process, the process waited while its caller verified, and
//! the caller while the process signed: in three alternating pairs of
//! `certmint bench` runs, a pool of two SoftHSM2 P-256 sessions issued
//! 0.84–0.88 of what its separate sign and verify rates allow with one
//! caller each, 0.90–1.03 with two (see the README's Performance section).
//! With one worker there is
//! no child: the key signs in certmint's own process (see
//! [`crate::keyref::KeyRef::open`]), since a lone child would only add the
//! hand-offs between two processes.
//!
//! Frames on both pipes: a 4-byte little-endian length, then a kind byte and
//! the payload. Buffers that held the PIN are wiped.

use std::io::{self, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Condvar, Mutex};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::pin::secret_variables;
use super::{Pin, PinError, PinSource, Pkcs11Error, Pkcs11Signer, Pkcs11Uri, Token};
use crate::signer::{SignatureAlgorithm, Signer, SignerError};

/// The hidden command of the `certmint` binary that runs [`serve`].
pub const COMMAND: &str = "pkcs11-session";

/// Parent → child: the key (JSON [`KeyToOpen`]).
const OPEN: u8 = 1;
/// Parent → child: the PIN.
const PIN: u8 = 2;
/// Parent → child: messages to sign, in one frame (see [`put_list`]).
const SIGN_ALL: u8 = 3;
/// Child → parent: logged in; the key's SubjectPublicKeyInfo.
const READY: u8 = 0x10;
/// Child → parent: the key could not be opened (JSON [`Refusal`]).
const REFUSED: u8 = 0x11;
/// Child → parent: the signatures, in order (see [`put_list`]).
const SIGNATURES: u8 = 0x12;
/// Child → parent: signing failed; the message.
const FAILED: u8 = 0x13;

/// The largest frame either side accepts: a chunk of TBS certificates (a
/// few KiB each) and their signatures.
const MAX_FRAME: usize = 16 << 20;

/// The key a child opens: the URI's parts that name it (its `pin-source`
/// is read by the parent only).
#[derive(Serialize, Deserialize)]
struct KeyToOpen {
    uri: String,
    module_path: PathBuf,
}

/// Why a child could not open the key, keeping the distinctions the
/// operator acts on (exit codes, "stopped after one attempt").
#[derive(Serialize, Deserialize)]
enum Refusal {
    WrongPin {
        token: String,
        ckr: String,
    },
    PinLocked {
        token: String,
    },
    TokenGone {
        token: String,
        function: String,
        ckr: String,
    },
    Other(String),
}

impl From<&Pkcs11Error> for Refusal {
    fn from(error: &Pkcs11Error) -> Self {
        match error {
            Pkcs11Error::WrongPin { token, ckr } => Refusal::WrongPin {
                token: token.clone(),
                ckr: ckr.clone(),
            },
            Pkcs11Error::PinLocked { token } => Refusal::PinLocked {
                token: token.clone(),
            },
            Pkcs11Error::TokenGone {
                token,
                function,
                ckr,
            } => Refusal::TokenGone {
                token: token.clone(),
                function: function.clone(),
                ckr: ckr.clone(),
            },
            other => Refusal::Other(other.to_string()),
        }
    }
}

impl Refusal {
    fn into_error(self, uri: &Pkcs11Uri) -> Pkcs11Error {
        match self {
            Refusal::WrongPin { token, ckr } => Pkcs11Error::WrongPin { token, ckr },
            Refusal::PinLocked { token } => Pkcs11Error::PinLocked { token },
            Refusal::TokenGone {
                token,
                function,
                ckr,
            } => Pkcs11Error::TokenGone {
                token,
                function,
                ckr,
            },
            Refusal::Other(reason) => Pkcs11Error::SessionProcess {
                uri: uri.to_string(),
                reason,
            },
        }
    }
}

fn write_frame(out: &mut impl Write, kind: u8, payload: &[u8]) -> io::Result<()> {
    let length = u32::try_from(payload.len() + 1)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    // One write, so a frame is never interleaved; wiped, as it may be the PIN.
    let mut frame = Zeroizing::new(Vec::with_capacity(5 + payload.len()));
    frame.extend_from_slice(&length.to_le_bytes());
    frame.push(kind);
    frame.extend_from_slice(payload);
    out.write_all(&frame)?;
    out.flush()
}

/// The next frame, or `None` when the other side closed the pipe between
/// frames.
fn read_frame(input: &mut impl Read) -> io::Result<Option<(u8, Zeroizing<Vec<u8>>)>> {
    let mut length = [0u8; 4];
    match input.read_exact(&mut length) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let length = u32::from_le_bytes(length) as usize;
    if length == 0 || length > MAX_FRAME {
        return Err(protocol(format!("bad frame length {length}")));
    }
    let mut kind = [0u8];
    input.read_exact(&mut kind)?;
    let mut payload = Zeroizing::new(vec![0u8; length - 1]);
    input.read_exact(&mut payload)?;
    Ok(Some((kind[0], payload)))
}

/// A list of byte strings as one payload: each a 4-byte little-endian
/// length, then its bytes.
fn put_list<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut payload = Vec::new();
    for item in items {
        payload.extend_from_slice(&(item.len() as u32).to_le_bytes());
        payload.extend_from_slice(item);
    }
    payload
}

/// The byte strings of a [`put_list`] payload.
fn read_list(mut payload: &[u8]) -> io::Result<Vec<&[u8]>> {
    let mut items = Vec::new();
    while !payload.is_empty() {
        let (length, rest) = payload
            .split_first_chunk::<4>()
            .ok_or_else(|| protocol("a truncated list"))?;
        let length = u32::from_le_bytes(*length) as usize;
        if length > rest.len() {
            return Err(protocol("a truncated list"));
        }
        let (item, rest) = rest.split_at(length);
        items.push(item);
        payload = rest;
    }
    Ok(items)
}

fn protocol(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// The child's side: opens the key the parent names with the PIN it sends,
/// then signs what it is sent until its stdin closes. Returns when the
/// parent is gone; an error only for a broken pipe or protocol.
pub fn serve(input: impl Read, output: impl Write) -> io::Result<()> {
    let mut input = BufReader::new(input);
    let mut output = io::BufWriter::new(output);
    let expect_frame = |frame: Option<(u8, Zeroizing<Vec<u8>>)>, kind: u8| match frame {
        Some((k, payload)) if k == kind => Ok(payload),
        Some((k, _)) => Err(protocol(format!("frame kind {k}, expected {kind}"))),
        None => Err(protocol("the parent closed the pipe")),
    };
    let key: KeyToOpen = serde_json::from_slice(&expect_frame(read_frame(&mut input)?, OPEN)?)
        .map_err(|e| protocol(e.to_string()))?;
    let pin = expect_frame(read_frame(&mut input)?, PIN)?;
    let opened = Pkcs11Uri::parse(&key.uri)
        .map_err(Pkcs11Error::from)
        .and_then(|mut uri| {
            uri.module_path = key.module_path;
            let pin = std::str::from_utf8(&pin)
                .map_err(|_| {
                    PinError::Empty(format!("{} (the PIN sent is not UTF-8)", uri.token_name()))
                })
                .and_then(|text| Pin::new(text.to_owned(), &uri.token_name()))?;
            let token = Token::open_with_pin(&uri, pin, Some(1))?;
            Pkcs11Signer::on_token(token, uri)
        });
    let signer = match opened {
        Ok(signer) => signer,
        Err(error) => {
            let refusal =
                serde_json::to_vec(&Refusal::from(&error)).map_err(|e| protocol(e.to_string()))?;
            return write_frame(&mut output, REFUSED, &refusal);
        }
    };
    write_frame(&mut output, READY, signer.public_key_der())?;
    while let Some(frame) = read_frame(&mut input)? {
        let messages = match frame {
            (SIGN_ALL, messages) => messages,
            (kind, _) => return Err(protocol(format!("frame kind {kind}, expected {SIGN_ALL}"))),
        };
        match signer.sign_all(&read_list(&messages)?) {
            Ok(signatures) => write_frame(
                &mut output,
                SIGNATURES,
                &put_list(signatures.iter().map(Vec::as_slice)),
            )?,
            Err(e) => write_frame(&mut output, FAILED, e.to_string().as_bytes())?,
        }
    }
    Ok(())
}

/// One child and its pipes.
struct SessionProcess {
    child: Child,
    to_child: Option<ChildStdin>,
    from_child: BufReader<ChildStdout>,
}

impl SessionProcess {
    /// Starts a child; `hidden` are the environment variables it must not
    /// inherit (the PIN reaches it over the pipe, see [`secret_variables`]).
    fn start(program: &Path, hidden: &[std::ffi::OsString]) -> io::Result<Self> {
        let mut command = Command::new(program);
        for name in hidden {
            command.env_remove(name);
        }
        let mut child = command
            .arg(COMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()?;
        let (Some(to_child), Some(from_child)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err(io::Error::other("the child's pipes were not set up"));
        };
        Ok(Self {
            child,
            to_child: Some(to_child),
            from_child: BufReader::new(from_child),
        })
    }

    fn send(&mut self, kind: u8, payload: &[u8]) -> io::Result<()> {
        match self.to_child.as_mut() {
            Some(pipe) => write_frame(pipe, kind, payload),
            None => Err(io::Error::from(io::ErrorKind::BrokenPipe)),
        }
    }

    fn receive(&mut self) -> io::Result<(u8, Zeroizing<Vec<u8>>)> {
        read_frame(&mut self.from_child)?.ok_or_else(|| {
            let status = self
                .child
                .try_wait()
                .ok()
                .flatten()
                .map_or_else(|| "closed its output".to_owned(), |s| s.to_string());
            io::Error::new(io::ErrorKind::UnexpectedEof, status)
        })
    }

    /// Opens the key in the child; its SubjectPublicKeyInfo.
    fn open(&mut self, uri: &Pkcs11Uri, pin: &Pin) -> Result<Vec<u8>, Pkcs11Error> {
        let lost = |e: io::Error| Pkcs11Error::SessionProcess {
            uri: uri.to_string(),
            reason: format!("the session process failed while opening the key: {e}"),
        };
        let key = KeyToOpen {
            uri: uri.to_string(),
            module_path: uri.module_path.clone(),
        };
        let key = serde_json::to_vec(&key).map_err(|e| lost(io::Error::other(e)))?;
        self.send(OPEN, &key).map_err(lost)?;
        self.send(PIN, pin.expose().as_bytes()).map_err(lost)?;
        match self.receive().map_err(lost)? {
            (READY, spki) => Ok(spki.to_vec()),
            (REFUSED, refusal) => {
                let refusal: Refusal =
                    serde_json::from_slice(&refusal).map_err(|e| lost(protocol(e.to_string())))?;
                Err(refusal.into_error(uri))
            }
            (kind, _) => Err(lost(protocol(format!("unexpected frame kind {kind}")))),
        }
    }

    fn sign_all(&mut self, messages: &[&[u8]]) -> io::Result<Result<Vec<Vec<u8>>, String>> {
        self.send(SIGN_ALL, &put_list(messages.iter().copied()))?;
        match self.receive()? {
            // One per message sent; CertificateAuthority::sign_all checks the count, for any signer.
            (SIGNATURES, signatures) => Ok(Ok(read_list(&signatures)?
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect())),
            (FAILED, reason) => Ok(Err(String::from_utf8_lossy(&reason).into_owned())),
            (kind, _) => Err(protocol(format!("unexpected frame kind {kind}"))),
        }
    }
}

impl Drop for SessionProcess {
    fn drop(&mut self) {
        // Closing its stdin ends the child after the call in flight, if any.
        drop(self.to_child.take());
        let _ = self.child.wait();
    }
}

struct Pool {
    idle: Vec<SessionProcess>,
    /// Processes alive: idle or signing.
    alive: usize,
}

/// A token key that signs in `sessions` child processes, one session each.
pub struct SessionProcesses {
    uri: Pkcs11Uri,
    algorithm: SignatureAlgorithm,
    public_key_der: Vec<u8>,
    /// Processes started.
    sessions: usize,
    pool: Mutex<Pool>,
    returned: Condvar,
}

impl std::fmt::Debug for SessionProcesses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionProcesses({}, {})", self.uri, self.algorithm)
    }
}

impl SessionProcesses {
    /// Starts `sessions` children of `program` (the `certmint` binary) on
    /// the key `uri` names. The PIN is read once, here; a refused PIN stops
    /// after the first child's single C_Login.
    pub fn open(
        program: &Path,
        uri: &Pkcs11Uri,
        pin_source: &PinSource,
        sessions: usize,
    ) -> Result<Self, Pkcs11Error> {
        let uri = uri.clone().require_object()?;
        let pin = pin_source.read(&uri.token_name())?;
        Self::open_with_pin(program, &uri, &pin, sessions)
    }

    /// [`SessionProcesses::open`] with the PIN already read.
    pub fn open_with_pin(
        program: &Path,
        uri: &Pkcs11Uri,
        pin: &Pin,
        sessions: usize,
    ) -> Result<Self, Pkcs11Error> {
        let uri = uri.clone().require_object()?;
        let what = uri.token_name();
        let hidden = secret_variables(Some(pin));
        let start = || {
            SessionProcess::start(program, &hidden).map_err(|e| Pkcs11Error::SessionProcess {
                uri: uri.to_string(),
                reason: format!("cannot start {} {COMMAND}: {e}", program.display()),
            })
        };
        let mut first = start()?;
        let public_key_der = first.open(&uri, pin)?;
        let mut idle = vec![first];
        for _ in 1..sessions.max(1) {
            let mut process = start()?;
            if process.open(&uri, pin)? != public_key_der {
                return Err(Pkcs11Error::SessionProcess {
                    uri: uri.to_string(),
                    reason: "two session processes found different keys under the same URI".into(),
                });
            }
            idle.push(process);
        }
        let key_type = crate::signer::KeyType::of_public_key(&public_key_der).map_err(|e| {
            Pkcs11Error::BadKey {
                token: what.clone(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            algorithm: key_type.signature_algorithm(),
            uri,
            public_key_der,
            sessions: idle.len(),
            pool: Mutex::new(Pool {
                alive: idle.len(),
                idle,
            }),
            returned: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn checkout(&self) -> Result<SessionProcess, SignerError> {
        let mut pool = self.lock();
        loop {
            if let Some(process) = pool.idle.pop() {
                return Ok(process);
            }
            if pool.alive == 0 {
                return Err(SignerError::SigningFailed(format!(
                    "no session process is left for {}; the work can be resumed",
                    self.uri
                )));
            }
            pool = self.returned.wait(pool).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Signer for SessionProcesses {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    fn public_key_der(&self) -> &[u8] {
        &self.public_key_der
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        let mut signatures = self.sign_all(&[message])?;
        signatures
            .pop()
            .ok_or_else(|| SignerError::SigningFailed("no signature came back".into()))
    }

    /// Two callers per process: while one caller's chunk is signed, the
    /// other verifies its last chunk and prepares the next, so the process
    /// never waits for a caller (see the module's documentation).
    fn callers_to_keep_busy(&self) -> usize {
        2 * self.sessions
    }

    /// All of `messages` in one round trip to one session process, so that
    /// a chunk of certificates pays for the pipes once.
    fn sign_all(&self, messages: &[&[u8]]) -> Result<Vec<Vec<u8>>, SignerError> {
        let mut process = self.checkout()?;
        let outcome = process.sign_all(messages);
        let mut pool = self.lock();
        match outcome {
            Ok(signed) => {
                pool.idle.push(process);
                drop(pool);
                self.returned.notify_one();
                signed.map_err(SignerError::SigningFailed)
            }
            Err(e) => {
                // The process (or its module) died: it is not used again.
                pool.alive -= 1;
                drop(pool);
                self.returned.notify_all();
                let _ = process.child.kill();
                drop(process);
                Err(SignerError::SigningFailed(format!(
                    "the session process for {} ended ({e}); the work can be resumed",
                    self.uri
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_a_closed_pipe_between_frames_is_the_end() {
        let mut pipe = Vec::new();
        write_frame(&mut pipe, SIGN_ALL, b"tbs").unwrap();
        write_frame(&mut pipe, SIGNATURES, b"").unwrap();
        let mut input = pipe.as_slice();
        let (kind, payload) = read_frame(&mut input).unwrap().unwrap();
        assert_eq!((kind, payload.as_slice()), (SIGN_ALL, &b"tbs"[..]));
        let (kind, payload) = read_frame(&mut input).unwrap().unwrap();
        assert_eq!((kind, payload.as_slice()), (SIGNATURES, &b""[..]));
        assert!(read_frame(&mut input).unwrap().is_none());
    }

    #[test]
    fn a_truncated_or_oversized_frame_is_an_error() {
        let mut pipe = Vec::new();
        write_frame(&mut pipe, SIGN_ALL, b"tbs").unwrap();
        pipe.pop();
        assert!(read_frame(&mut pipe.as_slice()).is_err());
        let huge = ((MAX_FRAME + 1) as u32).to_le_bytes();
        assert!(read_frame(&mut huge.as_slice()).is_err());
        assert!(read_frame(&mut [0u8, 0, 0, 0].as_slice()).is_err());
    }

    #[test]
    fn lists_round_trip_empty_items_included_and_a_truncated_list_is_an_error() {
        let items: [&[u8]; 3] = [b"first tbs", b"", b"third"];
        let payload = put_list(items);
        assert_eq!(read_list(&payload).unwrap(), items);
        assert!(read_list(&put_list([])).unwrap().is_empty());
        assert!(read_list(&payload[..payload.len() - 1]).is_err());
        assert!(read_list(&payload[..2]).is_err());
    }

    #[test]
    fn the_pin_refusal_survives_the_pipe() {
        let error = Pkcs11Error::WrongPin {
            token: "ca".into(),
            ckr: "CKR_PIN_INCORRECT".into(),
        };
        let json = serde_json::to_vec(&Refusal::from(&error)).unwrap();
        let refusal: Refusal = serde_json::from_slice(&json).unwrap();
        let uri = Pkcs11Uri::parse("pkcs11:token=ca;object=k").unwrap();
        assert_eq!(refusal.into_error(&uri).to_string(), error.to_string());
    }
}
