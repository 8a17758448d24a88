//! The fleet engine's client side: every [`Store`] call becomes a request
//! to otpgated on its Unix socket (see [`otpgate_core::fleet::protocol`]); the
//! daemon keeps enrollments and state in PostgreSQL.
//!
//! The login flow stays where it is (in the PAM module, as root): the
//! daemon only stores. [`Store::update_state`] is optimistic: read the
//! state and its version, decide, then write *if the version is still the
//! one read* — the database's conditional `UPDATE … WHERE version = $v`
//! decides by its row count. A login that lost a race decides again on
//! the newer state, so of N logins racing with one code on any number of
//! servers exactly one is accepted, and every failure is counted once.
//!
//! Every call runs under one deadline, `store_timeout`: a daemon that is
//! not running fails at once (nothing listens), one that hangs fails when
//! the deadline passes. Nothing here ever fails open.

use crate::store::files::FileStore;
use otpgate_core::config::Config;
use otpgate_core::enrollment::Enrollment;
use otpgate_core::fleet::history::{HistoryEntry, LoginEvent, ServerEntry};
use otpgate_core::fleet::protocol::{self, ErrorKind, FrameError, Imported, Request, Response};
use otpgate_core::store::state::{MAX_STATE_SIZE, UserState};
use otpgate_core::store::{Store, StoreError};
use otpgate_core::sys::account::Account;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

mod conn;
mod engine;

use conn::{Conn, ConnectError};

/// How often a lost compare-and-set is decided again before giving up
/// (within the deadline in any case).
const MAX_RETRIES: u32 = 64;
/// The most a login's report to the daemon may take (it is not waited
/// for; this bounds only a daemon that does not read).
const RECORD_TIMEOUT: Duration = Duration::from_millis(250);

/// A connection to otpgated, opened on first use and kept for the life of
/// the store (the CLI proves a code and saves on one connection).
#[derive(Debug)]
pub struct DaemonStore {
    socket: PathBuf,
    timeout: Duration,
    conn: Mutex<Option<Conn>>,
    /// This server's files (`secret_path`): an enrollment left there that
    /// never reached the store must not mean "not enrolled".
    files: FileStore,
    /// Keep the connection between requests whatever happens (the CLI
    /// proves a code and saves on one connection). A login keeps it only
    /// while it does not talk to the user ([`Store::before_talking`]): a
    /// user thinking at the prompt holds no connection to the daemon.
    keep: bool,
    /// A login's state as last read or written (its first request reads
    /// the enrollment and the state together). The first compare-and-set
    /// of the login is tried on it; a lost race reads afresh.
    snapshot: Mutex<Option<Snapshot>>,
}

#[derive(Debug)]
struct Snapshot {
    user: String,
    version: u64,
    state: UserState,
}

impl DaemonStore {
    pub fn new(config: &Config) -> Self {
        Self {
            socket: config.daemon_socket.clone(),
            timeout: Duration::from_secs(config.store_timeout),
            conn: Mutex::new(None),
            files: FileStore::new(config),
            keep: true,
            snapshot: Mutex::new(None),
        }
    }

    /// A store for one login: its connection is closed whenever the module
    /// talks to the user, so a waiting login holds nothing.
    pub fn for_login(config: &Config) -> Self {
        Self {
            keep: false,
            ..Self::new(config)
        }
    }

    /// The store has never had an enrollment for `account`: if this server
    /// holds one in files (not migrated yet), the user is refused — never
    /// let in with a password alone because the store does not know them.
    fn not_in_store(&self, account: &Account) -> Result<Option<Enrollment>, StoreError> {
        match self.files.exists(account) {
            Ok(false) => Ok(None),
            Ok(true) => Err(StoreError::Unavailable(format!(
                "{} has an enrollment on this server ({}) that is not in the fleet store; \
                 run `otpgate migrate` as root on this server to move it in",
                account.name,
                self.files.location(account).unwrap_or_default()
            ))),
            Err(e) => Err(StoreError::Unavailable(format!(
                "whether {} has an enrollment left in files on this server could not be checked ({e}); \
                 fix that, or run `otpgate migrate` as root",
                account.name
            ))),
        }
    }

    /// Makes this server's otpgated accept what the store holds now for
    /// `user` (or every account): after a legitimate restore (root).
    pub fn accept_restore(&self, user: Option<&str>) -> Result<u64, StoreError> {
        let request = Request::AcceptRestore {
            user: user.map(str::to_string),
        };
        match self.one(&request)? {
            Response::Accepted { accounts } => Ok(accounts),
            _ => Err(self.unexpected(&request)),
        }
    }

    fn unavailable(&self, why: impl std::fmt::Display) -> StoreError {
        StoreError::Service(format!(
            "two-factor service unavailable: otpgated at {}: {why}",
            self.socket.display()
        ))
    }

    /// One request, one response, before `deadline`.
    fn call(&self, request: &Request, deadline: Instant) -> Result<Response, StoreError> {
        let mut conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if conn.is_none() {
            let stream = Conn::connect(&self.socket).map_err(|e| match e {
                ConnectError::Io(e) => self.unavailable(format!(
                    "{e}; is the daemon running? (`systemctl status otpgated.socket otpgated`)"
                )),
                ConnectError::NotRoot(uid) => self.unavailable(format!(
                    "the process listening there runs as uid {uid}, not as root: it is not otpgated, and nothing it says is believed; \
                     check daemon_socket and who may create files in its directory"
                )),
            })?;
            *conn = Some(stream);
        }
        let result = conn
            .as_mut()
            .ok_or_else(|| self.unavailable("no connection"))
            .and_then(|stream| self.exchange(stream, request, deadline));
        if result.is_err() {
            // A connection in an unknown state is never reused.
            *conn = None;
        }
        result
    }

    fn exchange(
        &self,
        stream: &mut Conn,
        request: &Request,
        deadline: Instant,
    ) -> Result<Response, StoreError> {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| self.unavailable(format!("no answer within {:?}", self.timeout)))?;
        let io = |e: FrameError| match e {
            FrameError::Io(ref io) if protocol::is_timeout(io) => {
                self.unavailable(format!("no answer within {:?}", self.timeout))
            }
            other => self.unavailable(other),
        };
        stream.set_timeouts(left).map_err(|e| self.unavailable(e))?;
        let bytes = protocol::encode(request).map_err(io)?;
        stream.send_all(&bytes).map_err(|e| io(FrameError::Io(e)))?;
        let payload = protocol::read_frame(stream).map_err(io)?;
        let response: Response = protocol::decode(&payload).map_err(io)?;
        match response {
            Response::Error { kind, message } => Err(match kind {
                ErrorKind::Unavailable | ErrorKind::Database => self.unavailable(message),
                ErrorKind::Denied => StoreError::Denied(message),
                ErrorKind::BadRequest | ErrorKind::Corrupt => StoreError::Unavailable(message),
            }),
            other => Ok(other),
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    fn one(&self, request: &Request) -> Result<Response, StoreError> {
        self.call(request, self.deadline())
    }

    fn unexpected(&self, request: &Request) -> StoreError {
        self.unavailable(format!("unexpected answer to {}", request.name()))
    }

    fn read_state_before(
        &self,
        account: &Account,
        deadline: Instant,
    ) -> Result<(u64, UserState), StoreError> {
        let request = Request::ReadState {
            user: account.name.clone(),
        };
        match self.call(&request, deadline)? {
            Response::State { version, state } => Ok((version, parse_state(account, state)?)),
            _ => Err(self.unexpected(&request)),
        }
    }

    fn snapshot(&self) -> std::sync::MutexGuard<'_, Option<Snapshot>> {
        self.snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The login's state as last read or written, if it is `account`'s.
    fn snapshot_of(&self, account: &Account) -> Option<(u64, UserState)> {
        self.snapshot()
            .as_ref()
            .filter(|s| s.user == account.name)
            .map(|s| (s.version, s.state.clone()))
    }

    fn keep_snapshot(&self, account: &Account, version: u64, state: UserState) {
        if !self.keep {
            *self.snapshot() = Some(Snapshot {
                user: account.name.clone(),
                version,
                state,
            });
        }
    }

    /// The enrollment in a `Load`/`LoadForLogin` answer.
    fn enrollment_of(
        &self,
        account: &Account,
        enrollment: Option<Zeroizing<String>>,
        removed: bool,
    ) -> Result<Option<Enrollment>, StoreError> {
        match enrollment {
            None if removed => Ok(None),
            None => self.not_in_store(account),
            Some(text) => Enrollment::parse(text.as_bytes())
                .map(Some)
                .map_err(|error| StoreError::Format {
                    path: PathBuf::from(format!("fleet store: {}", account.name)),
                    error,
                }),
        }
    }

    fn update(
        &self,
        account: &Account,
        repair: bool,
        decide: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), StoreError> {
        let deadline = self.deadline();
        let mut known = self.snapshot_of(account);
        for _ in 0..MAX_RETRIES {
            let (version, before) = match known.take() {
                Some(snapshot) => snapshot,
                None => self.read_state_before(account, deadline)?,
            };
            let mut state = before.clone();
            decide(&mut state);
            if state == before {
                return Ok(());
            }
            let text =
                toml::to_string(&state).map_err(|e| StoreError::Unavailable(e.to_string()))?;
            if !repair && text.len() as u64 > MAX_STATE_SIZE {
                return Err(StoreError::Unavailable(format!(
                    "the login state of {} is larger than {MAX_STATE_SIZE} bytes; run `otpgate reset --user {} --unlock` to compact it",
                    account.name, account.name
                )));
            }
            let request = Request::WriteState {
                user: account.name.clone(),
                version,
                state: text,
                repair,
            };
            match self.call(&request, deadline)? {
                Response::Written { written: true } => {
                    self.keep_snapshot(account, version.saturating_add(1), state);
                    return Ok(());
                }
                // Another login changed the state since it was read: decide again.
                Response::Written { written: false } => continue,
                _ => return Err(self.unexpected(&request)),
            }
        }
        Err(self.unavailable(format!(
            "the login state of {} changed {MAX_RETRIES} times while deciding; try again",
            account.name
        )))
    }

    /// Tells the daemon what one PAM call decided (the login history and
    /// the metrics), without waiting for an answer: a slow database or a
    /// full history table never holds a login. Errors are the caller's to
    /// ignore (the decision is in syslog in any case).
    pub fn record(&self, events: Vec<LoginEvent>, micros: u64) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        // The connection of the login's last request, if nothing was said
        // to the user since (a right code: no message), or a new one.
        let kept = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let conn = match kept {
            Some(conn) => conn,
            None => Conn::connect(&self.socket).map_err(|_| self.unavailable("cannot connect"))?,
        };
        conn.set_timeouts(RECORD_TIMEOUT)
            .map_err(|e| self.unavailable(e))?;
        let bytes = protocol::encode(&Request::Record { events, micros })
            .map_err(|e| self.unavailable(e))?;
        conn.send_all(&bytes).map_err(|e| self.unavailable(e))
    }

    /// The login history (see [`Request::History`]) and whether more rows
    /// matched than came.
    pub fn history(
        &self,
        user: Option<&str>,
        since: u64,
    ) -> Result<(Vec<HistoryEntry>, bool), StoreError> {
        let request = Request::History {
            user: user.map(str::to_string),
            since,
        };
        match self.one(&request)? {
            Response::History { entries, more } => Ok((entries, more)),
            _ => Err(self.unexpected(&request)),
        }
    }

    /// Every otpgated of the fleet.
    pub fn servers(&self) -> Result<Vec<ServerEntry>, StoreError> {
        match self.one(&Request::Servers)? {
            Response::Servers { servers } => Ok(servers),
            _ => Err(self.unexpected(&Request::Servers)),
        }
    }

    /// Asks the daemon to check a current code, so this connection may
    /// change the user's enrollment (a non-root caller).
    pub fn prove(&self, account: &Account, code: &str) -> Result<bool, StoreError> {
        let request = Request::Prove {
            user: account.name.clone(),
            code: Zeroizing::new(code.to_string()),
        };
        match self.one(&request)? {
            Response::Proved { valid } => Ok(valid),
            _ => Err(self.unexpected(&request)),
        }
    }

    /// Every account name the store has an enrollment for (root).
    pub fn list(&self) -> Result<Vec<String>, StoreError> {
        match self.one(&Request::List)? {
            Response::Users { users } => Ok(users),
            _ => Err(self.unexpected(&Request::List)),
        }
    }

    /// Moves one enrollment and its state in (root; `otpgate migrate`).
    pub fn import(
        &self,
        account: &Account,
        enrollment: &Enrollment,
        state: &UserState,
        dry_run: bool,
    ) -> Result<Imported, StoreError> {
        let request = Request::Import {
            user: account.name.clone(),
            enrollment: enrollment.to_toml().map_err(|e| StoreError::Format {
                path: PathBuf::from(account.name.clone()),
                error: e,
            })?,
            state: toml::to_string(state).map_err(|e| StoreError::Unavailable(e.to_string()))?,
            dry_run,
        };
        match self.one(&request)? {
            Response::Imported { outcome } => Ok(outcome),
            _ => Err(self.unexpected(&request)),
        }
    }

    /// Whether the daemon answers and reaches its database.
    pub fn ping(&self) -> Result<(), StoreError> {
        match self.one(&Request::Ping)? {
            Response::Ok => Ok(()),
            _ => Err(self.unexpected(&Request::Ping)),
        }
    }
}

/// A state as the daemon sent it (`None`: there is none yet).
fn parse_state(account: &Account, text: Option<String>) -> Result<UserState, StoreError> {
    let Some(text) = text else {
        return Ok(UserState::default());
    };
    UserState::parse(text.as_bytes()).map_err(|why| {
        StoreError::Unavailable(format!(
            "the fleet store's login state of {} is corrupt ({why}); run `otpgate reset --user {}`",
            account.name, account.name
        ))
    })
}
