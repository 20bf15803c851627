//! A logged-in token with a pool of sessions.
//!
//! Login discipline: a process logs in to a token once. [`Token::open`] keeps
//! a registry of open tokens, so every worker shares one [`Token`]; a refused
//! PIN is remembered, and every later attempt in this process fails at once
//! without another C_Login — a wrong PIN never burns more than one of the
//! token's tries.
//!
//! The pool hands out sessions to workers and heals them: a dead session is
//! replaced, a lost login is restored with one C_Login, a removed token stops
//! the work with [`Pkcs11Error::TokenGone`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock, Weak};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::{Limit, Slot, TokenInfo};

use super::pin::{Pin, PinError, PinSource};
use super::uri::{Pkcs11Uri, TokenMatch};
use super::{ckr_name, recovery, Pkcs11Error, Recovery};

/// Locks a mutex; a panic in another worker does not make the data unusable
/// (every critical section here leaves it consistent).
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();

/// The module a URI's `module_path` names: itself, or the default when
/// it is empty ([`super::registry::default_module`]).
pub fn module_to_load(path: &Path) -> Result<PathBuf, Pkcs11Error> {
    if path.as_os_str().is_empty() {
        super::registry::default_module()
    } else {
        Ok(path.to_path_buf())
    }
}

/// The initialised context of a module, loaded once per process.
pub fn module(path: &Path) -> Result<Pkcs11, Pkcs11Error> {
    let path = &module_to_load(path)?;
    let mut modules = lock(MODULES.get_or_init(Default::default));
    if let Some(ctx) = modules.get(path) {
        return Ok(ctx.clone());
    }
    let failed = |reason: String| Pkcs11Error::Module {
        path: path.display().to_string(),
        reason,
    };
    if !path.exists() {
        return Err(failed(
            "no such file (install the module or set module-path=)".into(),
        ));
    }
    tracing::debug!(module = %path.display(), "loading the PKCS#11 module");
    let ctx = Pkcs11::new(path).map_err(|e| failed(e.to_string()))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(CkError::Pkcs11(rv, _)) => {
            return Err(failed(format!("C_Initialize: {}", ckr_name(&rv))))
        }
        Err(e) => return Err(failed(e.to_string())),
    }
    modules.insert(path.clone(), ctx.clone());
    Ok(ctx)
}

/// A token found in a module's slots, not logged in.
#[derive(Debug, Clone)]
pub struct FoundToken {
    /// The module context.
    pub ctx: Pkcs11,
    /// The slot holding the token.
    pub slot: Slot,
    /// The token's information.
    pub info: TokenInfo,
}

impl FoundToken {
    /// The token label, without padding.
    pub fn label(&self) -> String {
        self.info.label().trim().to_owned()
    }
}

/// Finds the one token the URI names (by label and/or serial).
pub fn find_token(uri: &Pkcs11Uri) -> Result<FoundToken, Pkcs11Error> {
    let ctx = module(&uri.module_path)?;
    let call = |e: CkError| Pkcs11Error::call("(module)", &e);
    let wanted_module = module_matches(&ctx, &uri.token_match).map_err(call)?;
    let mut present = Vec::new();
    let mut matches = Vec::new();
    for slot in ctx.get_slots_with_token().map_err(call)? {
        let info = ctx.get_token_info(slot).map_err(call)?;
        let label = info.label().trim().to_owned();
        let serial = info.serial_number().trim().to_owned();
        let wanted = wanted_module
            && uri.token.as_ref().is_none_or(|t| *t == label)
            && uri.serial.as_ref().is_none_or(|s| *s == serial)
            && token_matches(&ctx, slot, &info, &uri.token_match).map_err(call)?;
        if !info.token_initialized() {
            continue;
        }
        present.push(format!("{label} (slot-id={})", slot.id()));
        if wanted {
            matches.push(FoundToken {
                ctx: ctx.clone(),
                slot,
                info,
            });
        }
    }
    tracing::debug!(wanted = %uri, tokens = ?present, "tokens present");
    match matches.len() {
        1 => {
            let found = matches.remove(0);
            tracing::info!(token = %found.label(), slot_id = found.slot.id(), "found the token");
            Ok(found)
        }
        0 => Err(Pkcs11Error::TokenNotFound {
            wanted: uri.to_string(),
            present: if present.is_empty() {
                "none".into()
            } else {
                present.join(", ")
            },
        }),
        count => Err(Pkcs11Error::AmbiguousToken {
            wanted: uri.to_string(),
            count,
        }),
    }
}

/// Whether the module is the one the URI's `library-*` attributes name
/// (all of them when given; RFC 7512 compares the padded fields trimmed).
fn module_matches(ctx: &Pkcs11, wanted: &TokenMatch) -> Result<bool, CkError> {
    if wanted.library_manufacturer.is_none()
        && wanted.library_description.is_none()
        && wanted.library_version.is_none()
    {
        return Ok(true);
    }
    let info = ctx.get_library_info()?;
    let version = info.library_version();
    Ok(same(&wanted.library_manufacturer, info.manufacturer_id())
        && same(&wanted.library_description, info.library_description())
        && wanted.library_version.as_ref().is_none_or(|v| {
            // `major` alone matches any minor version (RFC 7512 §2.3).
            match v.split_once('.') {
                Some((major, minor)) => {
                    major.parse() == Ok(version.major()) && minor.parse() == Ok(version.minor())
                }
                None => v.parse() == Ok(version.major()),
            }
        }))
}

/// Whether the token in `slot` has every token and slot attribute the URI
/// gives beyond its label and serial.
fn token_matches(
    ctx: &Pkcs11,
    slot: Slot,
    info: &TokenInfo,
    wanted: &TokenMatch,
) -> Result<bool, CkError> {
    if !(same(&wanted.manufacturer, info.manufacturer_id())
        && same(&wanted.model, info.model())
        && wanted.slot_id.is_none_or(|id| id == slot.id()))
    {
        return Ok(false);
    }
    if wanted.slot_description.is_none() && wanted.slot_manufacturer.is_none() {
        return Ok(true);
    }
    let slot_info = ctx.get_slot_info(slot)?;
    Ok(same(&wanted.slot_description, slot_info.slot_description())
        && same(&wanted.slot_manufacturer, slot_info.manufacturer_id()))
}

/// An attribute the URI gives equals the token's (blank-padded) field; one
/// it does not give matches anything.
fn same(wanted: &Option<String>, actual: &str) -> bool {
    wanted.as_ref().is_none_or(|w| w == actual.trim())
}

enum Registered {
    Open(Weak<Token>),
    /// C_Login refused this PIN; the CKR code it gave.
    LoginRefused(String),
}

type TokenKey = (PathBuf, u64);
static TOKENS: OnceLock<Mutex<HashMap<TokenKey, Registered>>> = OnceLock::new();

struct LoginState {
    /// Bumped at each successful (re-)login, so that workers who lost the
    /// login together re-log in once, not once each.
    generation: u64,
    /// Set when the PIN was refused: nobody tries again.
    refused: Option<String>,
}

struct PoolState {
    idle: Vec<Session>,
    open: usize,
}

/// A logged-in token shared by all workers of the process.
pub struct Token {
    ctx: Pkcs11,
    slot: Slot,
    label: String,
    pin: Pin,
    login: Mutex<LoginState>,
    logins: AtomicU64,
    pool: Mutex<PoolState>,
    session_freed: Condvar,
    max_sessions: usize,
    /// Shared by every call on the token, exclusive while objects are created
    /// or destroyed. SoftHSM2 2.6's file store re-reads the token directory on
    /// every object access without a lock around it: a re-read that overlaps a
    /// creation in another thread drops the new object (C_GenerateKeyPair or
    /// C_CreateObject then fail with CKR_GENERAL_ERROR, or a reader's handle
    /// turns CKR_OBJECT_HANDLE_INVALID). Creation is serial inside most HSMs
    /// anyway; calls that only read or sign still run side by side.
    objects: RwLock<()>,
    /// The mechanisms the token offers, asked for once (a key is generated
    /// per device, and the list does not change while the token is open).
    mechanisms: OnceLock<Vec<MechanismType>>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({:?}, {} sessions)", self.label, self.max_sessions)
    }
}

fn wrong_pin(token: &str, ckr: String) -> Pkcs11Error {
    if ckr == "CKR_PIN_LOCKED" {
        Pkcs11Error::PinLocked {
            token: token.to_owned(),
        }
    } else {
        Pkcs11Error::WrongPin {
            token: token.to_owned(),
            ckr,
        }
    }
}

fn is_pin_refusal(rv: &RvError) -> bool {
    matches!(
        rv,
        RvError::PinIncorrect
            | RvError::PinInvalid
            | RvError::PinLenRange
            | RvError::PinLocked
            | RvError::PinExpired
    )
}

/// The pool size for a token: what it allows, and no more than `wanted`.
fn pool_size(info: &TokenInfo, wanted: usize) -> usize {
    let limit = |l: Limit| match l {
        Limit::Max(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    wanted
        .min(limit(info.max_session_count()))
        .min(limit(info.max_rw_session_count()))
        .max(1)
}

impl Token {
    /// Opens (or joins) the logged-in token the URI names. `sessions` caps the
    /// pool; by default it is the number of cores. The PIN is read from
    /// `pin_source` only when this process has not logged in to the token yet.
    pub fn open(
        uri: &Pkcs11Uri,
        pin_source: &PinSource,
        sessions: Option<usize>,
    ) -> Result<Arc<Token>, Pkcs11Error> {
        Self::open_reading(uri, |what| pin_source.read(what), sessions)
    }

    /// [`Token::open`] with a PIN already read (by a parent process: see
    /// [`super::session_process`]).
    pub fn open_with_pin(
        uri: &Pkcs11Uri,
        pin: Pin,
        sessions: Option<usize>,
    ) -> Result<Arc<Token>, Pkcs11Error> {
        Self::open_reading(uri, |_| Ok(pin), sessions)
    }

    fn open_reading(
        uri: &Pkcs11Uri,
        read_pin: impl FnOnce(&str) -> Result<Pin, PinError>,
        sessions: Option<usize>,
    ) -> Result<Arc<Token>, Pkcs11Error> {
        let found = find_token(uri)?;
        let label = found.label();
        let key = (uri.module_path.clone(), found.slot.id());
        let mut registry = lock(TOKENS.get_or_init(Default::default));
        match registry.get(&key) {
            Some(Registered::Open(weak)) => {
                if let Some(token) = weak.upgrade() {
                    return Ok(token);
                }
            }
            Some(Registered::LoginRefused(ckr)) => return Err(wrong_pin(&label, ckr.clone())),
            None => {}
        }
        let what = format!("token {label:?}");
        let pin = read_pin(&what)?;
        tracing::debug!(token = %label, "logging in (one attempt)");
        // A PIN longer than the token takes is wrong for certain: refused
        // here, it spends none of the token's tries.
        let max_pin = found.info.max_pin_length();
        if max_pin > 0 && pin.expose().len() > max_pin {
            return Err(PinError::TooLong { what, max: max_pin }.into());
        }
        let session = found
            .ctx
            .open_rw_session(found.slot)
            .map_err(|e| Pkcs11Error::call(&label, &e))?;
        match session.login(UserType::User, Some(pin.as_secret())) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(rv, _)) if is_pin_refusal(&rv) => {
                let ckr = ckr_name(&rv);
                registry.insert(key, Registered::LoginRefused(ckr.clone()));
                return Err(wrong_pin(&label, ckr));
            }
            Err(e) => return Err(Pkcs11Error::call(&label, &e)),
        }
        let wanted =
            sessions.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let token = Arc::new(Token {
            max_sessions: pool_size(&found.info, wanted),
            ctx: found.ctx,
            slot: found.slot,
            label,
            pin,
            login: Mutex::new(LoginState {
                generation: 0,
                refused: None,
            }),
            logins: AtomicU64::new(1),
            pool: Mutex::new(PoolState {
                idle: vec![session],
                open: 1,
            }),
            session_freed: Condvar::new(),
            objects: RwLock::new(()),
            mechanisms: OnceLock::new(),
        });
        registry.insert(key, Registered::Open(Arc::downgrade(&token)));
        tracing::info!(token = %token.label, sessions = token.max_sessions, "logged in");
        Ok(token)
    }

    /// The token label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The module context.
    pub fn context(&self) -> &Pkcs11 {
        &self.ctx
    }

    /// The slot.
    pub fn slot(&self) -> Slot {
        self.slot
    }

    /// The mechanisms the token offers (C_GetMechanismList, once).
    pub fn mechanisms(&self) -> Result<&[MechanismType], Pkcs11Error> {
        if let Some(list) = self.mechanisms.get() {
            return Ok(list);
        }
        let list = self
            .ctx
            .get_mechanism_list(self.slot)
            .map_err(|e| Pkcs11Error::call(&self.label, &e))?;
        Ok(self.mechanisms.get_or_init(|| list))
    }

    /// How many sessions the pool may hold.
    pub fn max_sessions(&self) -> usize {
        self.max_sessions
    }

    /// Like [`Token::with_session`], for `op`s that create or destroy token
    /// objects: no other call of this process runs on the token meanwhile.
    pub fn with_session_changing_objects<T>(
        &self,
        op: impl FnMut(&Session) -> Result<T, CkError>,
    ) -> Result<T, Pkcs11Error> {
        let _alone = self.objects.write().unwrap_or_else(|p| p.into_inner());
        self.run_healing(op)
    }

    /// How many times this process has called C_Login on the token.
    pub fn login_count(&self) -> u64 {
        self.logins.load(Ordering::SeqCst)
    }

    fn checkout(&self) -> Result<PooledSession<'_>, Pkcs11Error> {
        let mut pool = lock(&self.pool);
        loop {
            if let Some(session) = pool.idle.pop() {
                return Ok(PooledSession {
                    token: self,
                    session: Some(session),
                    discard: false,
                });
            }
            if pool.open < self.max_sessions {
                pool.open += 1;
                drop(pool);
                return match self.ctx.open_rw_session(self.slot) {
                    Ok(session) => Ok(PooledSession {
                        token: self,
                        session: Some(session),
                        discard: false,
                    }),
                    Err(e) => {
                        lock(&self.pool).open -= 1;
                        self.session_freed.notify_one();
                        Err(Pkcs11Error::call(&self.label, &e))
                    }
                };
            }
            pool = self
                .session_freed
                .wait(pool)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    fn relogin(&self, session: &Session, seen_generation: u64) -> Result<(), Pkcs11Error> {
        let mut state = lock(&self.login);
        if let Some(ckr) = &state.refused {
            return Err(wrong_pin(&self.label, ckr.clone()));
        }
        if state.generation != seen_generation {
            return Ok(()); // another worker already logged in again
        }
        self.logins.fetch_add(1, Ordering::SeqCst);
        match session.login(UserType::User, Some(self.pin.as_secret())) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                state.generation += 1;
                Ok(())
            }
            Err(CkError::Pkcs11(rv, _)) if is_pin_refusal(&rv) => {
                let ckr = ckr_name(&rv);
                state.refused = Some(ckr.clone());
                Err(wrong_pin(&self.label, ckr))
            }
            Err(e) => Err(Pkcs11Error::call(&self.label, &e)),
        }
    }

    /// Runs `op` on a pooled session, healing once per kind of fault: a dead
    /// session is replaced, a lost login restored. A gone token stops. `op`
    /// must not create or destroy objects (see
    /// [`Token::with_session_changing_objects`]) nor call back into the token.
    pub fn with_session<T>(
        &self,
        op: impl FnMut(&Session) -> Result<T, CkError>,
    ) -> Result<T, Pkcs11Error> {
        let _shared = self.objects.read().unwrap_or_else(|p| p.into_inner());
        self.run_healing(op)
    }

    fn run_healing<T>(
        &self,
        mut op: impl FnMut(&Session) -> Result<T, CkError>,
    ) -> Result<T, Pkcs11Error> {
        let (mut replaced, mut relogged) = (false, false);
        loop {
            let generation = lock(&self.login).generation;
            let mut pooled = self.checkout()?;
            let error = match op(pooled.session()) {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            // Some tokens (SoftHSM2 among them) hide private objects once the
            // login is lost and answer CKR_OBJECT_HANDLE_INVALID instead of
            // CKR_USER_NOT_LOGGED_IN: ask the session what it really is.
            // A login restored by another worker while this call was failing
            // (the generation moved) also calls for a retry, not a failure.
            let recovery = match recovery(&error) {
                Recovery::RefindKey | Recovery::Fail
                    if !is_logged_in(pooled.session())
                        || lock(&self.login).generation != generation =>
                {
                    Recovery::Relogin
                }
                other => other,
            };
            match recovery {
                Recovery::ReplaceSession if !replaced => {
                    replaced = true;
                    pooled.discard = true;
                }
                Recovery::Relogin if !relogged => {
                    relogged = true;
                    self.relogin(pooled.session(), generation)?;
                }
                _ => return Err(Pkcs11Error::call(&self.label, &error)),
            }
        }
    }
}

fn is_logged_in(session: &Session) -> bool {
    matches!(
        session.get_session_info().map(|i| i.session_state()),
        Ok(SessionState::RoUser | SessionState::RwUser)
    )
}

/// A session lent by the pool; returned (or, when dead, closed) on drop.
struct PooledSession<'a> {
    token: &'a Token,
    session: Option<Session>,
    discard: bool,
}

impl PooledSession<'_> {
    fn session(&self) -> &Session {
        // Present from construction until drop.
        self.session
            .as_ref()
            .unwrap_or_else(|| unreachable!("pooled session taken before drop"))
    }
}

impl Drop for PooledSession<'_> {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let mut pool = lock(&self.token.pool);
        if self.discard {
            pool.open -= 1;
            drop(pool);
            drop(session); // C_CloseSession; a dead handle's error is moot
        } else {
            pool.idle.push(session);
        }
        self.token.session_freed.notify_one();
    }
}
