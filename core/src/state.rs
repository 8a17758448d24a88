//! Login state: what changes when someone logs in.
//!
//! One root-owned file per user in the state directory (default
//! `/var/lib/otpgate`, mode 0711): the last accepted time step of each
//! device, used recovery codes, the last success. Users cannot write here, so
//! they cannot reset their own replay protection, and a read-only home does
//! not break logins. A state file is root's, mode 0640, group the user's
//! primary group, so `otpgate status` run by the user can show recovery
//! codes left and the last use (the directory cannot be listed). Each update holds an exclusive lock on a separate lock
//! file across read, decide and write, and writes atomically.

use crate::fsutil::{FsError, SafeDir, Trust};
use crate::paths::state_stem;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

/// Format version of state files.
pub const STATE_VERSION: u32 = 1;
/// How long a login waits for another login of the same user.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// State files larger than this are corrupt.
pub const MAX_STATE_SIZE: u64 = 256 * 1024;

/// Per-device state.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceState {
    /// The device's creation time: state left by an earlier device of the
    /// same name (removed, then re-added) is discarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
    /// Newest TOTP time step accepted; codes for it or older are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<u64>,
    /// Next HOTP counter expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_counter: Option<u64>,
    /// HOTP resynchronisation: a counter beyond the look-ahead that matched;
    /// the next code must match the counter after it (RFC 4226 §7.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync_pending: Option<u64>,
}

/// Everything otpgate remembers about one user between logins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserState {
    pub version: u32,
    /// The enrollment the per-enrollment parts belong to; a new enrollment
    /// (new id) starts clean.
    #[serde(default)]
    pub enrollment_id: String,
    #[serde(default)]
    pub devices: BTreeMap<String, DeviceState>,
    /// Hashes of recovery codes already used.
    #[serde(default)]
    pub used_recovery: Vec<String>,
    /// Unix time of the last accepted code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<u64>,
    /// What was used then: a device name or "recovery code".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_method: Option<String>,
    /// First login attempt seen while not enrolled (starts the grace period).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<u64>,
    /// Times of recent wrong codes (within `failure_window`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<u64>,
    /// The second factor is locked until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<u64>,
    /// Remote address → until when a good code from it is remembered.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub remembered: BTreeMap<String, u64>,
}

impl Default for UserState {
    fn default() -> Self {
        Self {
            version: STATE_VERSION,
            enrollment_id: String::new(),
            devices: BTreeMap::new(),
            used_recovery: Vec::new(),
            last_success: None,
            last_method: None,
            first_seen: None,
            failures: Vec::new(),
            locked_until: None,
            remembered: BTreeMap::new(),
        }
    }
}

impl UserState {
    /// Ties the per-enrollment state to `enrollment_id`, clearing it if it
    /// belonged to an earlier enrollment.
    pub fn bind(&mut self, enrollment_id: &str) {
        if self.enrollment_id != enrollment_id {
            self.enrollment_id = enrollment_id.to_string();
            self.devices.clear();
            self.used_recovery.clear();
        }
    }

    /// Whether the second factor is locked at `now`.
    pub fn locked_at(&self, now: u64) -> Option<u64> {
        self.locked_until.filter(|until| *until > now)
    }

    /// Counts a wrong code; locks when `max` are within `window` seconds.
    /// Returns the lock's end if this failure caused one.
    pub fn record_failure(&mut self, now: u64, max: u32, window: u64, lockout: u64) -> Option<u64> {
        if max == 0 {
            return None;
        }
        self.failures.retain(|t| t.saturating_add(window) > now);
        self.failures.push(now);
        if self.failures.len() >= max as usize {
            let until = now.saturating_add(lockout);
            self.locked_until = Some(until);
            self.failures.clear();
            return Some(until);
        }
        None
    }

    /// Clears failures and any lock (after a good code, or `reset --unlock`).
    pub fn clear_failures(&mut self) {
        self.failures.clear();
        self.locked_until = None;
    }

    /// Parses a state file strictly.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not valid UTF-8".to_string())?;
        let state: Self = toml::from_str(text).map_err(|e| e.message().replace('\n', " "))?;
        if state.version != STATE_VERSION {
            return Err(format!(
                "state format version {} is not supported",
                state.version
            ));
        }
        Ok(state)
    }
}

/// A state problem, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    Fs(FsError),
    Corrupt { path: String, why: String },
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fs(e) => write!(f, "state: {e}"),
            Self::Corrupt { path, why } => write!(
                f,
                "state file {path} is corrupt ({why}); move it aside to reset this user's login state"
            ),
        }
    }
}

impl From<FsError> for StateError {
    fn from(e: FsError) -> Self {
        Self::Fs(e)
    }
}

/// The state directory.
#[derive(Debug)]
pub struct StateStore {
    dir: SafeDir,
    lock_timeout: Duration,
}

fn names(user: &str) -> (OsString, OsString) {
    let stem = state_stem(user);
    (
        OsString::from(format!("{stem}.state")),
        OsString::from(format!("{stem}.lock")),
    )
}

impl StateStore {
    /// Opens the state directory, creating it (mode 0711) if missing. Every
    /// directory on the way must belong to root (or the current user, when not
    /// running as root) and not be writable by others.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let trust = Trust {
            owner: nix::unistd::geteuid().as_raw(),
        };
        Ok(Self {
            dir: SafeDir::create_all(dir, trust, 0o711)?,
            lock_timeout: LOCK_TIMEOUT,
        })
    }

    /// Opens the state directory only if it exists (for read-only tools).
    pub fn open_existing(dir: &Path) -> Result<Self, StateError> {
        let trust = Trust {
            owner: nix::unistd::geteuid().as_raw(),
        };
        Ok(Self {
            dir: SafeDir::open(dir, trust)?,
            lock_timeout: LOCK_TIMEOUT,
        })
    }

    /// Sets how long [`Self::update`] waits for the lock.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    fn read_unlocked(&self, state_name: &OsString) -> Result<UserState, StateError> {
        match self.dir.read_checked(state_name, MAX_STATE_SIZE, 0o027) {
            Ok(bytes) => UserState::parse(&bytes).map_err(|why| StateError::Corrupt {
                path: self.dir.path().join(state_name).display().to_string(),
                why,
            }),
            Err(e) if e.is_not_found() => Ok(UserState::default()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a user's state without locking (a snapshot, for status output).
    pub fn read(&self, user: &str) -> Result<UserState, StateError> {
        self.read_unlocked(&names(user).0)
    }

    /// Runs `decide` on the user's state under an exclusive lock and writes
    /// the state back atomically if `decide` changed it. If the write fails
    /// the whole update fails, so a caller never accepts a code it could not
    /// mark as used.
    pub fn update<R>(
        &self,
        user: &str,
        decide: impl FnOnce(&mut UserState) -> R,
    ) -> Result<R, StateError> {
        self.update_for(user, None, decide)
    }

    /// [`Self::update`], making the file readable by group `gid` (the
    /// user's primary group) so the user can see their own state.
    pub fn update_for<R>(
        &self,
        user: &str,
        gid: Option<u32>,
        decide: impl FnOnce(&mut UserState) -> R,
    ) -> Result<R, StateError> {
        let (state_name, lock_name) = names(user);
        let _lock = self.dir.lock(&lock_name, self.lock_timeout)?;
        let before = self.read_unlocked(&state_name)?;
        let mut state = before.clone();
        let result = decide(&mut state);
        if state != before {
            let text = toml::to_string(&state).map_err(|e| StateError::Corrupt {
                path: self.dir.path().join(&state_name).display().to_string(),
                why: e.to_string(),
            })?;
            let mode = if gid.is_some() { 0o640 } else { 0o600 };
            self.dir
                .write_atomic_locked(&state_name, text.as_bytes(), mode, gid)?;
        }
        Ok(result)
    }

    /// Forgets everything about a user (admin reset).
    pub fn remove(&self, user: &str) -> Result<bool, StateError> {
        let (state_name, lock_name) = names(user);
        let _lock = self.dir.lock(&lock_name, self.lock_timeout)?;
        Ok(self.dir.remove(&state_name)?)
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("otpgate-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn creates_a_private_dir_and_round_trips() {
        let dir = tmp("rt");
        let store = StateStore::open(&dir).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o711
        );
        assert_eq!(store.read("alice").unwrap(), UserState::default());
        store.update("alice", |s| s.last_success = Some(5)).unwrap();
        assert_eq!(store.read("alice").unwrap().last_success, Some(5));
        assert!(store.remove("alice").unwrap());
        assert_eq!(store.read("alice").unwrap(), UserState::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn concurrent_updates_are_serialised() {
        let dir = tmp("conc");
        let store = StateStore::open(&dir).unwrap();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let store = StateStore::open(&dir).unwrap();
                    for _ in 0..25 {
                        store
                            .update("bob", |st| {
                                let n = st.last_success.unwrap_or(0);
                                st.last_success = Some(n + 1);
                            })
                            .unwrap();
                    }
                });
            }
        });
        assert_eq!(store.read("bob").unwrap().last_success, Some(200));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_held_lock_times_out_instead_of_hanging() {
        let dir = tmp("lock");
        let store = StateStore::open(&dir).unwrap();
        let holder = std::fs::File::open(dir.join("carol.lock"))
            .or_else(|_| {
                store.update("carol", |_| ()).unwrap();
                std::fs::File::open(dir.join("carol.lock"))
            })
            .unwrap();
        holder.lock().unwrap();
        let short = StateStore::open(&dir)
            .unwrap()
            .with_lock_timeout(Duration::from_millis(50));
        let err = short.update("carol", |_| ()).unwrap_err();
        assert!(err.to_string().contains("stayed locked"), "{err}");
        drop(holder);
        short.update("carol", |_| ()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_temporary_file_left_by_a_killed_writer_is_replaced() {
        let dir = tmp("staletmp");
        let store = StateStore::open(&dir).unwrap();
        std::fs::write(dir.join(".erin.state.tmp"), "half a write").unwrap();
        store.update("erin", |s| s.last_success = Some(7)).unwrap();
        assert_eq!(store.read("erin").unwrap().last_success, Some(7));
        assert!(!dir.join(".erin.state.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn corrupt_state_is_an_error_not_a_reset() {
        let dir = tmp("corrupt");
        let store = StateStore::open(&dir).unwrap();
        std::fs::write(dir.join("dave.state"), "version = 1\nbogus = 1\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.join("dave.state"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let err = store
            .update("dave", |s| s.last_success = Some(1))
            .unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
        assert!(
            std::fs::read_to_string(dir.join("dave.state"))
                .unwrap()
                .contains("bogus")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failures_lock_and_expire() {
        let mut s = UserState::default();
        assert_eq!(s.record_failure(100, 3, 60, 900), None);
        assert_eq!(s.record_failure(110, 3, 60, 900), None);
        // The first failure has left the window by 161: still two in it.
        assert_eq!(s.record_failure(161, 3, 60, 900), None);
        assert_eq!(s.record_failure(162, 3, 60, 900), Some(1062));
        assert_eq!(s.locked_at(1000), Some(1062));
        assert_eq!(s.locked_at(1062), None);
        s.clear_failures();
        assert_eq!(s.locked_at(1000), None);
        assert_eq!(
            UserState::default().record_failure(1, 0, 60, 900),
            None,
            "0 disables the lockout"
        );
    }

    #[test]
    fn odd_user_names_stay_inside_the_directory() {
        let dir = tmp("names");
        let store = StateStore::open(&dir).unwrap();
        store
            .update("../escape", |s| s.last_success = Some(1))
            .unwrap();
        assert!(
            dir.join(format!("{}.state", state_stem("../escape")))
                .exists()
        );
        assert_eq!(state_stem("../escape"), "%2E.%2Fescape");
        assert!(!dir.parent().unwrap().join("escape.state").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
