//! The store seam: where a user's enrollment and login state live.
//!
//! The login flow ([`crate::auth`]) and the CLI's commands call only the
//! [`Store`] trait. Engines:
//!
//! * `otpgate_os::store::files::FileStore` — today's default: secret files by the
//!   `secret_path` template, login state in `state_dir`, with every rule of
//!   safe file access (link-free walk, `setfsuid`, per-uid lock, atomic
//!   writes) inside it;
//! * `otpgate_os::store::daemon::DaemonStore` — fleet mode (`store = "postgresql"`): every
//!   call goes to otpgated over its Unix socket; the daemon keeps
//!   enrollments and state in PostgreSQL;
//! * [`memory::MemoryStore`] — in memory, for core's unit tests of the login
//!   flow (and the proof that a second engine needs no change elsewhere).
//!
//! The one rule every engine keeps: [`Store::update_state`] runs the whole
//! read–decide–write under the engine's own exclusivity, so two logins of one
//! user never both accept one code.

pub mod memory;
pub mod state;

use crate::enrollment::{Enrollment, FormatError};
use crate::sys::account::Account;
use crate::sys::fs::FsError;
use state::StateError;
use state::UserState;
use std::path::PathBuf;

/// Why a store could not do what was asked. Each message says what is wrong
/// and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// Where the enrollment lives could not be worked out for this user
    /// (the `secret_path` template, or the user name in it).
    Path(crate::sys::paths::PathError),
    /// The home directory the enrollment lives in is not there.
    NoHome(PathBuf),
    /// The engine could not do its work (a store told to fail, a store that
    /// ran no update).
    Unavailable(String),
    /// A file or directory is missing, unsafe or unreadable.
    Fs(FsError),
    /// The enrollment was read but is not valid.
    Format { path: PathBuf, error: FormatError },
    /// The login state could not be used.
    State(StateError),
    /// A non-root user cannot write a root-managed store.
    ManagedByRoot { path: PathBuf, user: String },
    /// The fleet store's daemon or its database cannot be reached in time
    /// (the message starts "two-factor service unavailable").
    Service(String),
    /// The fleet store's daemon refused the caller.
    Denied(String),
}

impl StoreError {
    /// Whether the store's service is down (the user is told so at login).
    pub fn service_down(&self) -> bool {
        matches!(self, Self::Service(_))
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Path(e) => write!(f, "secret_path: {e}"),
            Self::NoHome(home) => write!(
                f,
                "the home directory {} does not exist or is not mounted",
                home.display()
            ),
            Self::Unavailable(why) => f.write_str(why),
            Self::Fs(e) => e.fmt(f),
            Self::Format { path, error } => write!(
                f,
                "{}: {error}; re-enroll with `otpgate enroll --force` or restore the file",
                path.display()
            ),
            Self::State(e) => e.fmt(f),
            Self::Service(why) => f.write_str(why),
            Self::Denied(why) => write!(f, "otpgated refused: {why}"),
            Self::ManagedByRoot { path, user } => write!(
                f,
                "permission denied writing {}: the secret store is managed by root; ask an administrator to run `otpgate enroll --user {user}`",
                path.display()
            ),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<StateError> for StoreError {
    fn from(e: StateError) -> Self {
        Self::State(e)
    }
}

/// Where enrollments and login state live. Object-safe, so the login flow
/// and the CLI take `&dyn Store`; [`StoreExt`] adds the typed helpers.
pub trait Store {
    /// Where `account`'s enrollment lives, for messages (a file's path).
    fn location(&self, account: &Account) -> Result<String, StoreError>;
    /// Where and how the enrollment is read, for the debug log.
    fn describe(&self, account: &Account) -> String {
        self.location(account).unwrap_or_else(|e| e.to_string())
    }
    /// The enrollment, or `None` if the user is not enrolled. Something
    /// unsafe or unreadable is an error, never "not enrolled".
    fn load(&self, account: &Account) -> Result<Option<Enrollment>, StoreError>;
    /// Whether anything is where the enrollment lives (also when broken).
    fn exists(&self, account: &Account) -> Result<bool, StoreError>;
    /// Fails early, before a secret is shown, if this caller cannot write
    /// the enrollment (a user and a root-managed central store).
    fn check_writable(&self, account: &Account) -> Result<(), StoreError>;
    /// Creates or replaces the enrollment (enroll, devices, recovery codes).
    fn save(&self, account: &Account, enrollment: &Enrollment) -> Result<(), StoreError>;
    /// Removes the enrollment; whether there was one.
    fn remove(&self, account: &Account) -> Result<bool, StoreError>;
    /// A snapshot of the login state (no lock; for reports and the check
    /// before the prompt).
    fn read_state(&self, account: &Account) -> Result<UserState, StoreError>;
    /// Runs `decide` on the login state under the store's exclusivity and
    /// keeps what it changed; if that cannot be kept, the whole update fails
    /// (a code that could not be marked used is never accepted). `decide`
    /// may be run again if the engine must retry.
    fn update_state(
        &self,
        account: &Account,
        decide: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), StoreError>;
    /// [`Self::update_state`] also on a state grown over its size cap, so
    /// `otpgate reset --unlock` can compact it.
    fn repair_state(
        &self,
        account: &Account,
        decide: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), StoreError>;
    /// Forgets the login state (admin reset); whether there was any.
    fn remove_state(&self, account: &Account) -> Result<bool, StoreError>;
    /// Whether `code` is a current code of `existing` (a non-root user
    /// proving the right to change their enrollment). The fleet engine has
    /// the daemon check it, so the daemon lets this connection change it.
    fn prove_code(
        &self,
        _account: &Account,
        existing: &Enrollment,
        code: &str,
        now: u64,
        window: u32,
    ) -> Result<bool, StoreError> {
        Ok(existing.code_is_current(code, now, window))
    }
    /// Reports a login's decisions (`micros`: its own time, without the
    /// user's) to the fleet's login history; one-way, never waited for.
    /// Other engines keep no history (the auth log has it).
    fn record(
        &self,
        _events: Vec<crate::fleet::history::LoginEvent>,
        _micros: u64,
    ) -> Result<(), StoreError> {
        Ok(())
    }
    /// The login is about to talk to the user, who may take minutes (or
    /// never answer): let go of anything held for it (the fleet engine's
    /// connection to otpgated).
    fn before_talking(&self) {}
}

/// Typed helpers over any [`Store`].
pub trait StoreExt: Store {
    /// [`Store::update_state`] returning what `decide` returns.
    fn update<R>(
        &self,
        account: &Account,
        mut decide: impl FnMut(&mut UserState) -> R,
    ) -> Result<R, StoreError> {
        let mut out = None;
        self.update_state(account, &mut |st| out = Some(decide(st)))?;
        out.ok_or_else(|| {
            StoreError::Unavailable("the store ran no update; nothing was changed".into())
        })
    }
}

impl<S: Store + ?Sized> StoreExt for S {}
