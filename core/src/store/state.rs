//! Login state: what changes when someone logs in.
//!
//! One root-owned file per **uid** in the state directory (default
//! `/var/lib/otpgate`, mode 0711): `UID.state`. Nothing in it is keyed by a
//! value the user controls:
//!
//! * replay memory (last accepted TOTP step, next HOTP counter) is filed under
//!   each device secret's keyed fingerprint ([`crate::otp::secret::Secret::fingerprint`]),
//!   so it survives any edit of ids, names or files, and a new secret starts
//!   clean by construction;
//! * used recovery codes are filed under their set's salt and remembered by
//!   their hash;
//! * account aliases (two names, one uid) share one file: one replay memory,
//!   one failure count, one lockout.
//!
//! The file is root's, mode 0600, plus a POSIX ACL entry letting the user
//! (and nobody else, not even their primary group) read it, so `otpgate
//! status` shows them their own recovery codes left and last use. Each update
//! holds an exclusive lock on a separate lock file across read, decide and
//! write, and writes atomically.
//!
//! Version 1 files (one per *name*, tied to the file's `enrollment_id`) are
//! read once and converted; their device memory is kept under `legacy` until
//! a login maps it onto the secrets it belongs to.

use crate::sys::account::Account;
use crate::sys::fs::{FsError, SafeDir, Trust};
use crate::sys::paths::state_stem;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

/// Format version of state files.
pub const STATE_VERSION: u32 = 2;
/// How long a login waits for another login of the same user.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// State files larger than this are refused with a clear error.
pub const MAX_STATE_SIZE: u64 = 64 * 1024;
/// What `otpgate reset --unlock` reads to repair an oversized file.
pub const MAX_REPAIR_SIZE: u64 = 16 * 1024 * 1024;
/// Remembered addresses kept per user (the oldest is dropped).
pub const MAX_REMEMBERED: usize = 16;
/// Recovery-code sets whose used codes are remembered (the least recently
/// used is dropped); a set holds at most 100 codes.
pub const MAX_USED_SETS: usize = 4;
/// Longest `remember_minutes` any service may set, in seconds: entries older
/// than this cannot be honoured anywhere and are dropped.
pub const MAX_REMEMBER_SECONDS: u64 = 10_080 * 60;

/// Replay memory of one device secret.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceState {
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

/// Used codes of one recovery-code set.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsedSet {
    /// When a code of this set was last used (which set to drop first).
    pub last_used: u64,
    /// Stored hashes of the codes used.
    pub hashes: Vec<String>,
}

/// A remote address whose good code lets the user skip the prompt for a
/// while: only on the service that remembered it, only while the user's
/// credentials are the ones that were trusted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remembered {
    pub service: String,
    pub address: String,
    /// When the good code was typed.
    pub at: u64,
    /// [`crate::enrollment::Enrollment::credentials_fingerprint`] then.
    pub credentials: String,
}

/// Version-1 state not yet mapped onto secrets (see the module docs).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Legacy {
    /// Device name → (the device's `created`, its memory).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub devices: BTreeMap<String, LegacyDevice>,
    /// Hashes of used recovery codes (any set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_recovery: Vec<String>,
}

/// A version-1 device entry.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyDevice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_counter: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync_pending: Option<u64>,
}

impl LegacyDevice {
    /// The replay memory this entry held.
    pub fn memory(&self) -> DeviceState {
        DeviceState {
            last_step: self.last_step,
            next_counter: self.next_counter,
            resync_pending: self.resync_pending,
        }
    }
}

/// Everything otpgate remembers about one uid between logins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserState {
    pub version: u32,
    /// Device secret fingerprint → replay memory.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub devices: BTreeMap<String, DeviceState>,
    /// Recovery-code set (its salt) → codes used.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub used_recovery: BTreeMap<String, UsedSet>,
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
    /// Remembered addresses, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remembered: Vec<Remembered>,
    /// Version-1 memory still to be mapped onto secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legacy: Option<Legacy>,
}

impl Default for UserState {
    fn default() -> Self {
        Self {
            version: STATE_VERSION,
            devices: BTreeMap::new(),
            used_recovery: BTreeMap::new(),
            last_success: None,
            last_method: None,
            first_seen: None,
            failures: Vec::new(),
            locked_until: None,
            remembered: Vec::new(),
            legacy: None,
        }
    }
}

/// The version-1 format, read only to convert it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateV1 {
    #[allow(dead_code)]
    version: u32,
    #[serde(default)]
    #[allow(dead_code)]
    enrollment_id: String,
    #[serde(default)]
    devices: BTreeMap<String, LegacyDevice>,
    #[serde(default)]
    used_recovery: Vec<String>,
    #[serde(default)]
    last_success: Option<u64>,
    #[serde(default)]
    last_method: Option<String>,
    #[serde(default)]
    first_seen: Option<u64>,
    #[serde(default)]
    failures: Vec<u64>,
    #[serde(default)]
    locked_until: Option<u64>,
    #[serde(default)]
    #[allow(dead_code)]
    remembered: BTreeMap<String, u64>,
}

impl From<StateV1> for UserState {
    /// Keeps everything but remembered addresses (version 1 did not record
    /// which service or credentials they were trusted for: they must not
    /// outlive the upgrade).
    fn from(v1: StateV1) -> Self {
        let legacy = Legacy {
            devices: v1.devices,
            used_recovery: v1.used_recovery,
        };
        Self {
            last_success: v1.last_success,
            last_method: v1.last_method,
            first_seen: v1.first_seen,
            failures: v1.failures,
            locked_until: v1.locked_until,
            legacy: (legacy != Legacy::default()).then_some(legacy),
            ..Self::default()
        }
    }
}

/// Clock limits applied when state is read: a time stored while the clock
/// was wrong never outlives the fault (see [`UserState::clamp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub lockout_seconds: u64,
}

impl UserState {
    /// Pulls times that lie in the future (written while the clock was
    /// fast) back to `now`: a lockout then lasts at most `lockout_seconds`
    /// from now, a grace period at most its days from now, a remembered
    /// address at most its minutes from now, and old failures expire.
    /// Returns whether anything changed: the caller must then write the
    /// state, or the clamp would be redone from the stored time at every
    /// read and never end.
    pub fn clamp(&mut self, now: u64, limits: Limits) -> bool {
        let before = self.clone();
        if let Some(until) = self.locked_until {
            self.locked_until = Some(until.min(now.saturating_add(limits.lockout_seconds)));
        }
        for t in &mut self.failures {
            *t = (*t).min(now);
        }
        if let Some(first) = self.first_seen {
            self.first_seen = Some(first.min(now));
        }
        for r in &mut self.remembered {
            r.at = r.at.min(now);
        }
        *self != before
    }

    /// Whether the second factor is locked at `now`, and until when.
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

    /// Whether a good code from `address` on `service` is still trusted:
    /// within `minutes` (the reading service's `remember_minutes`) of that
    /// code, and while the credentials are the ones that were trusted.
    pub fn remembered(
        &self,
        service: &str,
        address: &str,
        credentials: &str,
        now: u64,
        minutes: u32,
    ) -> bool {
        minutes > 0
            && self.remembered.iter().any(|r| {
                r.service == service
                    && r.address == address
                    && r.credentials == credentials
                    && r.at.saturating_add(u64::from(minutes) * 60) > now
            })
    }

    /// Trusts `address` on `service` from `now`. Entries for other
    /// credentials and entries no service can honour any more are dropped;
    /// at most [`MAX_REMEMBERED`] are kept (the oldest goes).
    pub fn remember(&mut self, service: &str, address: &str, credentials: &str, now: u64) {
        self.remembered.retain(|r| {
            r.credentials == credentials
                && !(r.service == service && r.address == address)
                && r.at.saturating_add(MAX_REMEMBER_SECONDS) > now
        });
        self.remembered.push(Remembered {
            service: service.to_string(),
            address: address.to_string(),
            at: now,
            credentials: credentials.to_string(),
        });
        self.remembered.sort_by_key(|r| r.at);
        let excess = self.remembered.len().saturating_sub(MAX_REMEMBERED);
        self.remembered.drain(..excess);
    }

    /// Drops every remembered address (credentials changed, disable, reset).
    pub fn forget_addresses(&mut self) {
        self.remembered.clear();
    }

    /// Whether the recovery code with stored hash `hash` of the set with
    /// salt `set` was already used.
    pub fn recovery_used(&self, set: &str, hash: &str) -> bool {
        self.used_recovery
            .get(set)
            .is_some_and(|u| u.hashes.iter().any(|h| h == hash))
            || self
                .legacy
                .as_ref()
                .is_some_and(|l| l.used_recovery.iter().any(|h| h == hash))
    }

    /// Marks a recovery code as used. Only the [`MAX_USED_SETS`] most
    /// recently used sets are remembered.
    pub fn use_recovery(&mut self, set: &str, hash: &str, now: u64) {
        let entry = self.used_recovery.entry(set.to_string()).or_default();
        entry.last_used = now;
        entry.hashes.push(hash.to_string());
        while self.used_recovery.len() > MAX_USED_SETS {
            let oldest = self
                .used_recovery
                .iter()
                .filter(|(salt, _)| salt.as_str() != set)
                .min_by_key(|(_, u)| u.last_used)
                .map(|(salt, _)| salt.clone());
            match oldest {
                Some(salt) => self.used_recovery.remove(&salt),
                None => break,
            };
        }
    }

    /// Used codes of the set with salt `set` (for "codes left").
    pub fn used_in_set(&self, set: &str) -> Vec<&str> {
        let mut used: Vec<&str> = self
            .used_recovery
            .get(set)
            .map(|u| u.hashes.iter().map(String::as_str).collect())
            .unwrap_or_default();
        if let Some(l) = &self.legacy {
            used.extend(l.used_recovery.iter().map(String::as_str));
        }
        used
    }

    /// Forgets the used codes of a revoked set (a new set was made).
    pub fn forget_recovery_set(&mut self, set: &str) {
        self.used_recovery.remove(set);
    }

    /// Whether the state no longer fits [`MAX_STATE_SIZE`] (logins refuse it).
    pub fn too_large(&self) -> bool {
        toml::to_string(self).map_or(true, |t| t.len() as u64 > MAX_STATE_SIZE)
    }

    /// Shrinks the state to what can still matter (`otpgate reset
    /// --unlock`): memory of the current devices only, used codes of the
    /// current recovery set only, no failures or lock, remembered addresses
    /// only for the current credentials. Returns how many entries went.
    pub fn compact(
        &mut self,
        devices: &[String],
        recovery_set: Option<&str>,
        credentials: Option<&str>,
    ) -> usize {
        let before = self.devices.len() + self.used_recovery.len() + self.remembered.len();
        self.devices.retain(|fp, _| devices.contains(fp));
        self.used_recovery
            .retain(|salt, _| recovery_set == Some(salt.as_str()));
        self.remembered
            .retain(|r| credentials == Some(r.credentials.as_str()));
        self.clear_failures();
        before - (self.devices.len() + self.used_recovery.len() + self.remembered.len())
    }

    /// Parses a state file strictly; version 1 is converted.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not valid UTF-8".to_string())?;
        let probe: toml::Table =
            toml::from_str(text).map_err(|e| e.message().replace('\n', " "))?;
        let version = probe.get("version").and_then(toml::Value::as_integer);
        match version {
            Some(1) => toml::from_str::<StateV1>(text)
                .map(UserState::from)
                .map_err(|e| e.message().replace('\n', " ")),
            Some(v) if v == i64::from(STATE_VERSION) => {
                toml::from_str(text).map_err(|e| e.message().replace('\n', " "))
            }
            Some(v) => Err(format!("state format version {v} is not supported")),
            None => Err("the `version` key is missing".into()),
        }
    }
}

/// A state problem, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    Fs(FsError),
    Corrupt {
        path: String,
        why: String,
    },
    /// Over [`MAX_STATE_SIZE`]: refused, with the repair named.
    TooLarge {
        path: String,
        user: String,
    },
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fs(e) => write!(f, "state: {e}"),
            Self::Corrupt { path, why } => write!(
                f,
                "state file {path} is corrupt ({why}); move it aside to reset this user's login state"
            ),
            Self::TooLarge { path, user } => write!(
                f,
                "state file {path} is larger than {MAX_STATE_SIZE} bytes; run `otpgate reset --user {user} --unlock` to compact it"
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
    max_size: u64,
}

/// File names of one account's state: the uid's file and lock, and the
/// version-1 file named after the account name.
struct Names {
    state: OsString,
    lock: OsString,
    legacy: OsString,
}

fn names(account: &Account) -> Names {
    Names {
        state: OsString::from(format!("{}.state", account.uid)),
        lock: OsString::from(format!("{}.lock", account.uid)),
        legacy: OsString::from(format!("{}.state", state_stem(&account.name))),
    }
}

/// Read for the user: root's file, readable by this uid through an ACL.
const STATE_MODE: u32 = 0o600;

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
            max_size: MAX_STATE_SIZE,
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
            max_size: MAX_STATE_SIZE,
        })
    }

    /// Sets how long [`Self::update`] waits for the lock.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Reads files up to [`MAX_REPAIR_SIZE`] (for `reset --unlock`, which
    /// compacts an oversized file).
    pub fn for_repair(mut self) -> Self {
        self.max_size = MAX_REPAIR_SIZE;
        self
    }

    fn read_file(&self, name: &OsString, user: &str) -> Result<Option<UserState>, StateError> {
        let path = || self.dir.path().join(name).display().to_string();
        match self.dir.read_checked(name, self.max_size, 0o027) {
            Ok(bytes) => UserState::parse(&bytes)
                .map(Some)
                .map_err(|why| StateError::Corrupt { path: path(), why }),
            Err(e) if e.is_not_found() => Ok(None),
            Err(FsError::TooLarge { .. }) => Err(StateError::TooLarge {
                path: path(),
                user: user.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The state, from the uid's file or else a version-1 file to convert;
    /// the flag says whether it came from a version-1 file.
    fn read_any(&self, account: &Account, n: &Names) -> Result<(UserState, bool), StateError> {
        if let Some(state) = self.read_file(&n.state, &account.name)? {
            return Ok((state, false));
        }
        match self.read_file(&n.legacy, &account.name)? {
            Some(state) => Ok((state, true)),
            None => Ok((UserState::default(), false)),
        }
    }

    /// Reads a user's state without locking (a snapshot, for status output
    /// and the check before the prompt).
    pub fn read(&self, account: &Account) -> Result<UserState, StateError> {
        self.read_any(account, &names(account)).map(|(s, _)| s)
    }

    /// Runs `decide` on the user's state under an exclusive lock and writes
    /// the state back atomically if `decide` changed it. If the write fails
    /// the whole update fails, so a caller never accepts a code it could not
    /// mark as used. The file is made readable by the user alone (ACL).
    pub fn update<R>(
        &self,
        account: &Account,
        decide: impl FnOnce(&mut UserState) -> R,
    ) -> Result<R, StateError> {
        let n = names(account);
        let _lock = self.dir.lock(&n.lock, self.lock_timeout)?;
        let (before, converted) = self.read_any(account, &n)?;
        let mut state = before.clone();
        let result = decide(&mut state);
        if state != before || converted {
            let text = toml::to_string(&state).map_err(|e| StateError::Corrupt {
                path: self.dir.path().join(&n.state).display().to_string(),
                why: e.to_string(),
            })?;
            self.dir.write_atomic_locked(
                &n.state,
                text.as_bytes(),
                STATE_MODE,
                Some(account.uid),
            )?;
        }
        if converted {
            self.dir.remove(&n.legacy)?;
        }
        Ok(result)
    }

    /// Forgets everything about a user (admin reset), also a version-1 file.
    pub fn remove(&self, account: &Account) -> Result<bool, StateError> {
        let n = names(account);
        let _lock = self.dir.lock(&n.lock, self.lock_timeout)?;
        let had = self.dir.remove(&n.state)?;
        let had_legacy = self.dir.remove(&n.legacy)?;
        Ok(had || had_legacy)
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Path of an account's state file.
    pub fn file_of(&self, account: &Account) -> std::path::PathBuf {
        self.dir.path().join(names(account).state)
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

    fn account(name: &str, uid: u32) -> Account {
        Account {
            name: name.into(),
            uid,
            gid: uid,
            home: "/nonexistent".into(),
            shell: "/bin/sh".into(),
        }
    }

    #[test]
    fn creates_a_private_dir_and_round_trips() {
        let dir = tmp("rt");
        let store = StateStore::open(&dir).unwrap();
        let alice = account("alice", 4001);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o711
        );
        assert_eq!(store.read(&alice).unwrap(), UserState::default());
        store.update(&alice, |s| s.last_success = Some(5)).unwrap();
        assert_eq!(store.read(&alice).unwrap().last_success, Some(5));
        assert!(dir.join("4001.state").exists());
        assert!(store.remove(&alice).unwrap());
        assert_eq!(store.read(&alice).unwrap(), UserState::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn aliases_of_one_uid_share_one_state() {
        let dir = tmp("alias");
        let store = StateStore::open(&dir).unwrap();
        store
            .update(&account("root-alias-a", 4100), |s| {
                s.record_failure(100, 5, 60, 900);
            })
            .unwrap();
        let other = store.read(&account("root-alias-b", 4100)).unwrap();
        assert_eq!(other.failures, vec![100]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn concurrent_updates_are_serialised() {
        let dir = tmp("conc");
        let store = StateStore::open(&dir).unwrap();
        let bob = account("bob", 4002);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let store = StateStore::open(&dir).unwrap();
                    for _ in 0..25 {
                        store
                            .update(&bob, |st| {
                                let n = st.last_success.unwrap_or(0);
                                st.last_success = Some(n + 1);
                            })
                            .unwrap();
                    }
                });
            }
        });
        assert_eq!(store.read(&bob).unwrap().last_success, Some(200));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_held_lock_times_out_instead_of_hanging() {
        let dir = tmp("lock");
        let store = StateStore::open(&dir).unwrap();
        let carol = account("carol", 4003);
        store.update(&carol, |_| ()).unwrap();
        let holder = std::fs::File::open(dir.join("4003.lock")).unwrap();
        holder.lock().unwrap();
        let short = StateStore::open(&dir)
            .unwrap()
            .with_lock_timeout(Duration::from_millis(50));
        let err = short.update(&carol, |_| ()).unwrap_err();
        assert!(err.to_string().contains("stayed locked"), "{err}");
        drop(holder);
        short.update(&carol, |_| ()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_temporary_file_left_by_a_killed_writer_is_replaced() {
        let dir = tmp("staletmp");
        let store = StateStore::open(&dir).unwrap();
        let erin = account("erin", 4004);
        std::fs::write(dir.join(".4004.state.tmp"), "half a write").unwrap();
        store.update(&erin, |s| s.last_success = Some(7)).unwrap();
        assert_eq!(store.read(&erin).unwrap().last_success, Some(7));
        assert!(!dir.join(".4004.state.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn write_600(path: &Path, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn corrupt_state_is_an_error_not_a_reset() {
        let dir = tmp("corrupt");
        let store = StateStore::open(&dir).unwrap();
        let dave = account("dave", 4005);
        write_600(&dir.join("4005.state"), "version = 2\nbogus = 1\n");
        let err = store
            .update(&dave, |s| s.last_success = Some(1))
            .unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
        assert!(
            std::fs::read_to_string(dir.join("4005.state"))
                .unwrap()
                .contains("bogus")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_oversized_state_names_the_repair_and_repair_mode_reads_it() {
        let dir = tmp("big");
        let store = StateStore::open(&dir).unwrap();
        let fay = account("fay", 4006);
        let mut big = UserState::default();
        for i in 0..2000 {
            big.devices
                .insert(format!("{i:032x}"), DeviceState::default());
            big.devices.get_mut(&format!("{i:032x}")).unwrap().last_step = Some(i);
        }
        write_600(&dir.join("4006.state"), &toml::to_string(&big).unwrap());
        let err = store.update(&fay, |_| ()).unwrap_err();
        assert!(
            err.to_string()
                .contains("otpgate reset --user fay --unlock"),
            "{err}"
        );
        let repaired = StateStore::open(&dir).unwrap().for_repair();
        repaired
            .update(&fay, |s| s.devices.retain(|k, _| k.ends_with('1')))
            .unwrap();
        assert!(store.read(&fay).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn version_one_files_are_converted_once_and_lose_remembered_addresses() {
        let dir = tmp("v1");
        let store = StateStore::open(&dir).unwrap();
        let gus = account("gus", 4007);
        write_600(
            &dir.join("gus.state"),
            "version = 1\nenrollment_id = \"0123456789abcdef\"\nused_recovery = [\"AAAA\"]\n\
             failures = [10]\n[devices.default]\ncreated = 1\nlast_step = 99\n\
             [remembered]\n\"192.0.2.1\" = 999999\n",
        );
        let st = store.read(&gus).unwrap();
        assert_eq!(st.failures, vec![10]);
        assert!(st.remembered.is_empty());
        let legacy = st.legacy.clone().unwrap();
        assert_eq!(legacy.used_recovery, vec!["AAAA".to_string()]);
        assert_eq!(legacy.devices["default"].last_step, Some(99));
        store.update(&gus, |_| ()).unwrap();
        assert!(!dir.join("gus.state").exists(), "the v1 file is gone");
        assert_eq!(store.read(&gus).unwrap(), st, "nothing lost on conversion");
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
    fn times_from_a_fast_clock_are_clamped_to_now() {
        let day = 86_400;
        let mut s = UserState {
            locked_until: Some(10 * day),
            failures: vec![5 * day, 5 * day],
            first_seen: Some(3650 * day),
            ..UserState::default()
        };
        s.remember("sshd", "192.0.2.1", "c", 9 * day);
        let limits = Limits {
            lockout_seconds: 900,
        };
        assert!(s.clamp(day, limits), "a clamp reports a change to write");
        assert!(!s.clamp(day + 10, limits), "once written, nothing moves");
        assert_eq!(s.locked_at(day), Some(day + 900));
        assert_eq!(s.failures, vec![day, day]);
        assert_eq!(s.first_seen, Some(day));
        assert!(s.remembered("sshd", "192.0.2.1", "c", day, 10));
        assert!(!s.remembered("sshd", "192.0.2.1", "c", day + 600, 10));
    }

    #[test]
    fn remembered_addresses_are_per_service_per_credentials_and_capped() {
        let mut s = UserState::default();
        s.remember("sshd", "192.0.2.1", "c1", 1000);
        assert!(s.remembered("sshd", "192.0.2.1", "c1", 1000 + 599, 10));
        assert!(!s.remembered("sshd", "192.0.2.1", "c1", 1000 + 600, 10));
        assert!(!s.remembered("sudo", "192.0.2.1", "c1", 1001, 10));
        assert!(!s.remembered("sshd", "192.0.2.1", "c1", 1001, 0));
        assert!(!s.remembered("sshd", "192.0.2.1", "c2", 1001, 10));
        s.remember("sshd", "192.0.2.2", "c2", 1002);
        assert_eq!(s.remembered.len(), 1, "entries of old credentials go");
        for i in 0..40 {
            s.remember("sshd", &format!("198.51.100.{i}"), "c2", 2000 + i);
        }
        assert_eq!(s.remembered.len(), MAX_REMEMBERED);
        assert!(s.remembered("sshd", "198.51.100.39", "c2", 2100, 10));
        assert!(!s.remembered("sshd", "198.51.100.0", "c2", 2100, 10));
    }

    #[test]
    fn used_recovery_sets_are_bounded_and_the_current_one_kept() {
        let mut s = UserState::default();
        for set in 0..10u64 {
            s.use_recovery(&format!("salt{set}"), "h", set);
        }
        assert_eq!(s.used_recovery.len(), MAX_USED_SETS);
        assert!(s.recovery_used("salt9", "h"));
        assert!(!s.recovery_used("salt0", "h"));
        s.forget_recovery_set("salt9");
        assert!(!s.recovery_used("salt9", "h"));
    }

    #[test]
    fn odd_user_names_cannot_reach_outside_the_directory() {
        let dir = tmp("names");
        let store = StateStore::open(&dir).unwrap();
        store
            .update(&account("../escape", 4008), |s| s.last_success = Some(1))
            .unwrap();
        assert!(dir.join("4008.state").exists());
        assert_eq!(state_stem("../escape"), "%2E.%2Fescape");
        assert!(!dir.parent().unwrap().join("escape.state").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
