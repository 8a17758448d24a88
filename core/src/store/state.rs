//! Login state: what changes when someone logs in, as data. Where it is
//! kept is a store engine's business ([`crate::store`]); the rules that
//! change it live in [`crate::auth`] and [`crate::lockout`].
//!
//! Nothing here is keyed by a value the user controls:
//!
//! * replay memory (last accepted TOTP step, next HOTP counter) is filed under
//!   each device secret's keyed fingerprint
//!   ([`crate::otp::secret::Secret::fingerprint`]), so it survives any edit of
//!   ids, names or files, and a new secret starts clean by construction;
//! * used recovery codes are filed under their set's salt and remembered by
//!   their hash;
//! * a state belongs to a **uid**, so account aliases (two names, one uid)
//!   share one replay memory, one failure count, one lockout.
//!
//! Version 1 states (one per *name*, tied to the file's `enrollment_id`) are
//! converted when read; their device memory is kept under `legacy` until a
//! login maps it onto the secrets it belongs to.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Format version of state files.
pub const STATE_VERSION: u32 = 2;
/// States larger than this (serialized) are refused with a clear error.
pub const MAX_STATE_SIZE: u64 = 64 * 1024;
/// Recovery-code sets whose used codes are remembered (the least recently
/// used is dropped); a set holds at most 100 codes.
pub const MAX_USED_SETS: usize = 4;

/// What a successful login used. Stored as text: a device's name, or
/// `recovery code` (which no device name can be: names have no spaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Device(String),
    RecoveryCode,
}

impl Method {
    const RECOVERY: &'static str = "recovery code";

    fn from_text(text: &str) -> Self {
        if text == Self::RECOVERY {
            Self::RecoveryCode
        } else {
            Self::Device(text.to_string())
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Device(name) => f.write_str(name),
            Self::RecoveryCode => f.write_str(Self::RECOVERY),
        }
    }
}

impl Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_text(&String::deserialize(d)?))
    }
}

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

message_error! {
    /// Why a login state's text is refused (the login is denied until an
    /// administrator looks).
    StateParseError
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
    /// What was used then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_method: Option<Method>,
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
    /// A code sent by e-mail or SMS, waiting to be typed (hashed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<crate::otp::sent::Pending>,
    /// When codes were sent (within the last 15 minutes: `send_limit`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sends: Vec<u64>,
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
            pending: None,
            sends: Vec::new(),
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
            last_method: v1.last_method.map(|m| Method::from_text(&m)),
            first_seen: v1.first_seen,
            failures: v1.failures,
            locked_until: v1.locked_until,
            legacy: (legacy != Legacy::default()).then_some(legacy),
            ..Self::default()
        }
    }
}

impl UserState {
    /// Takes in another state of this account — a version-1 file of an
    /// alias, a file left by an older release, or (`otpgate migrate` on a
    /// second server) what another server remembered — so that nothing
    /// either recorded as used works again: replay memory keeps the newer
    /// step and counter, used recovery codes are the union, failures and
    /// the lock add up. Remembered addresses and a waiting sent code are
    /// taken from `self` alone (trust is never widened by a merge).
    pub fn absorb(&mut self, old: UserState) {
        if let Some(old_legacy) = old.legacy {
            let legacy = self.legacy.get_or_insert_with(Legacy::default);
            for (name, device) in old_legacy.devices {
                legacy.devices.entry(name).or_insert(device);
            }
            for hash in old_legacy.used_recovery {
                if !legacy.used_recovery.contains(&hash) {
                    legacy.used_recovery.push(hash);
                }
            }
        }
        for (fingerprint, theirs) in old.devices {
            let mine = self.devices.entry(fingerprint).or_default();
            mine.last_step = mine.last_step.max(theirs.last_step);
            mine.next_counter = mine.next_counter.max(theirs.next_counter);
            mine.resync_pending = mine.resync_pending.or(theirs.resync_pending);
        }
        for (set, theirs) in old.used_recovery {
            let mine = self.used_recovery.entry(set).or_default();
            mine.last_used = mine.last_used.max(theirs.last_used);
            for hash in theirs.hashes {
                if !mine.hashes.contains(&hash) {
                    mine.hashes.push(hash);
                }
            }
        }
        for t in old.failures {
            if !self.failures.contains(&t) {
                self.failures.push(t);
            }
        }
        self.failures.sort_unstable();
        for t in old.sends {
            if !self.sends.contains(&t) {
                self.sends.push(t);
            }
        }
        self.sends.sort_unstable();
        self.locked_until = self.locked_until.max(old.locked_until);
        self.first_seen = match (self.first_seen, old.first_seen) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if old.last_success > self.last_success {
            self.last_success = old.last_success;
            self.last_method = old.last_method;
        }
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
    pub fn parse(bytes: &[u8]) -> Result<Self, StateParseError> {
        Self::parse_versioned(bytes).map(|(state, _)| state)
    }

    /// [`Self::parse`], also saying which format version the bytes were in
    /// (the state directory tells a version-1 file from a current one by
    /// this, never by its name alone).
    pub fn parse_versioned(bytes: &[u8]) -> Result<(Self, u32), StateParseError> {
        Self::parse_text(bytes).map_err(StateParseError)
    }

    fn parse_text(bytes: &[u8]) -> Result<(Self, u32), String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not valid UTF-8".to_string())?;
        // One strict parse on the login path: the current format first;
        // the version probe runs only for an old file or to explain a failure.
        if let Ok(state) = toml::from_str::<UserState>(text)
            && state.version == STATE_VERSION
        {
            return Ok((state, STATE_VERSION));
        }
        let probe: toml::Table =
            toml::from_str(text).map_err(|e| e.message().replace('\n', " "))?;
        let version = probe.get("version").and_then(toml::Value::as_integer);
        match version {
            Some(1) => toml::from_str::<StateV1>(text)
                .map(|v1| (UserState::from(v1), 1))
                .map_err(|e| e.message().replace('\n', " ")),
            Some(v) if v == i64::from(STATE_VERSION) => toml::from_str(text)
                .map(|s| (s, STATE_VERSION))
                .map_err(|e| e.message().replace('\n', " ")),
            Some(v) => Err(format!("state format version {v} is not supported")),
            None => Err("the `version` key is missing".into()),
        }
    }
}

/// A state problem, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    Fs(crate::sys::fs::FsError),
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

impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Fs(e) => Some(e),
            Self::Corrupt { .. } | Self::TooLarge { .. } => None,
        }
    }
}

impl From<crate::sys::fs::FsError> for StateError {
    fn from(e: crate::sys::fs::FsError) -> Self {
        Self::Fs(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aliases_old_state_is_absorbed_not_lost() {
        let mut current = UserState {
            failures: vec![5],
            first_seen: Some(50),
            ..UserState::default()
        };
        current.use_recovery("salt", "h1", 1);
        let old = UserState::parse(
            b"version = 1\nused_recovery = [\"h2\"]\nfailures = [7]\nlocked_until = 99\nfirst_seen = 10\n",
        )
        .unwrap();
        current.absorb(old);
        assert!(current.recovery_used("salt", "h1"));
        assert!(current.recovery_used("any-set", "h2"));
        assert_eq!(current.failures, vec![5, 7]);
        assert_eq!(current.locked_until, Some(99));
        assert_eq!(current.first_seen, Some(10));
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
}
