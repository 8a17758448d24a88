//! The state directory of the files engine: one file per uid
//! (`uid=UID.state`), root's, mode 0600, plus a POSIX ACL entry letting that
//! user (and nobody else, not even their primary group) read it, so
//! `otpgate status` shows them their own recovery codes left and last use.
//! Each update holds an exclusive lock on a separate lock file (`UID.lock`)
//! across read, decide and write, and writes atomically.
//!
//! Files of older releases are converted when their account logs in:
//! `NAME.state` (format 1, named after the account) and `UID.state`
//! (format 2, named after the uid). The two old names collide for
//! all-digit account names (`47001.state` may be uid 47001's file or user
//! "47001"'s), so an old file is taken only after its *content* says whose
//! it is: format 1 belongs to the account name, format 2 to the uid. A file
//! that is someone else's is never read as ours, converted or removed. The
//! current name cannot collide with either: `=` is escaped in every
//! `NAME.state` ([`state_stem`]), and no uid file had it.

use crate::fs::{FsError, SafeDir, Trust};
use otpgate_core::store::state::{MAX_STATE_SIZE, STATE_VERSION as STATE_V2, UserState};
use otpgate_core::sys::account::Account;
use otpgate_core::sys::paths::state_stem;
use std::collections::HashSet;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

/// How long a login waits for another login of the same user.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// What `otpgate reset --unlock` reads to repair an oversized file.
pub const MAX_REPAIR_SIZE: u64 = 16 * 1024 * 1024;

pub use otpgate_core::store::state::StateError;

/// The state directory.
#[derive(Debug)]
pub struct StateDir {
    dir: SafeDir,
    lock_timeout: Duration,
    max_size: u64,
    memo: Memo,
}

/// The last state file parsed, by name and exact bytes. A login reads the
/// state twice — a snapshot before the prompt, then again under the lock —
/// and the second read usually finds the same bytes: parsing them again
/// would give the same state, so it is taken from here instead. The bytes
/// are always read again; only the parse is saved.
#[derive(Debug, Default)]
struct Memo(std::sync::Mutex<Option<Parsed>>);

/// One parsed file: its name, its bytes, the state and its format version.
#[derive(Debug)]
struct Parsed {
    name: OsString,
    bytes: Vec<u8>,
    state: UserState,
    format: u32,
}

impl Memo {
    fn recall(&self, name: &OsString, bytes: &[u8]) -> Option<(UserState, u32)> {
        let memo = self.0.lock().ok()?;
        let p = memo.as_ref()?;
        (&p.name == name && p.bytes.as_slice() == bytes).then(|| (p.state.clone(), p.format))
    }

    fn keep(&self, name: &OsString, bytes: &[u8], state: &UserState, format: u32) {
        if let Ok(mut memo) = self.0.lock() {
            *memo = Some(Parsed {
                name: name.clone(),
                bytes: bytes.to_vec(),
                state: state.clone(),
                format,
            });
        }
    }
}

/// File names of one account's state: the current file and its lock, and
/// the two names older releases used.
struct Names {
    state: OsString,
    lock: OsString,
    /// Format 2 (the release before): `UID.state`.
    by_uid: OsString,
    /// Format 1: `NAME.state`.
    by_name: OsString,
}

fn names(account: &Account) -> Names {
    // Concatenated, not format!ted: this runs twice in every login.
    let uid = account.uid.as_raw().to_string();
    let named = |parts: &[&str]| OsString::from(parts.concat());
    Names {
        state: named(&["uid=", &uid, ".state"]),
        lock: named(&[&uid, ".lock"]),
        by_uid: named(&[&uid, ".state"]),
        by_name: named(&[&state_stem(&account.name), ".state"]),
    }
}

/// An old file that turned out to be this account's (absorbed, to be
/// removed once the merged state is written).
struct Old {
    name: OsString,
}

/// Read for the user: root's file, readable by this uid through an ACL.
const STATE_MODE: u32 = 0o600;

impl StateDir {
    /// Opens the state directory, creating it (mode 0711) if missing. Every
    /// directory on the way must belong to root (or the current user, when not
    /// running as root) and not be writable by others.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let trust = Trust {
            owner: rustix::process::geteuid().as_raw(),
        };
        Ok(Self {
            dir: SafeDir::create_all(dir, trust, 0o711)?,
            lock_timeout: LOCK_TIMEOUT,
            max_size: MAX_STATE_SIZE,
            memo: Memo::default(),
        })
    }

    /// Opens the state directory only if it exists (for read-only tools).
    pub fn open_existing(dir: &Path) -> Result<Self, StateError> {
        let trust = Trust {
            owner: rustix::process::geteuid().as_raw(),
        };
        Ok(Self {
            dir: SafeDir::open(dir, trust)?,
            lock_timeout: LOCK_TIMEOUT,
            max_size: MAX_STATE_SIZE,
            memo: Memo::default(),
        })
    }

    /// Sets how long [`Self::update`] waits for the lock.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// A state file and the format version its content is in.
    fn read_file(
        &self,
        name: &OsString,
        user: &str,
        max: u64,
        listed: Option<&HashSet<OsString>>,
    ) -> Result<Option<(UserState, u32)>, StateError> {
        if listed.is_some_and(|names| !names.contains(name)) {
            return Ok(None);
        }
        let path = || self.dir.path().join(name).display().to_string();
        match self.dir.read_checked(name, max, 0o027) {
            Ok(bytes) => {
                if let Some(found) = self.memo.recall(name, &bytes) {
                    return Ok(Some(found));
                }
                let (state, format) =
                    UserState::parse_versioned(&bytes).map_err(|why| StateError::Corrupt {
                        path: path(),
                        why: why.0,
                    })?;
                self.memo.keep(name, &bytes, &state, format);
                Ok(Some((state, format)))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(FsError::TooLarge { .. }) => Err(StateError::TooLarge {
                path: path(),
                user: user.to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The state: the current file with every old file that is this
    /// account's absorbed (those are returned, to be removed once the
    /// merged state is written).
    fn read_any(
        &self,
        account: &Account,
        n: &Names,
        max: u64,
        listed: Option<&HashSet<OsString>>,
    ) -> Result<(UserState, Vec<Old>), StateError> {
        let mut state = self
            .read_file(&n.state, &account.name, max, listed)?
            .map(|(s, _)| s);
        let mut olds = Vec::new();
        // `UID.state` is ours if it holds format 2; `NAME.state` if it
        // holds format 1. When the account's name is its uid they are one
        // file, ours whatever its format.
        let same = n.by_uid == n.by_name;
        let candidates = [(&n.by_uid, STATE_V2), (&n.by_name, 1)];
        for (name, ours_if) in candidates.iter().take(if same { 1 } else { 2 }) {
            let Some((old, format)) = self.read_file(name, &account.name, max, listed)? else {
                continue;
            };
            if same || format == *ours_if {
                match state.as_mut() {
                    Some(s) => s.absorb(old),
                    None => state = Some(old),
                }
                olds.push(Old {
                    name: (*name).clone(),
                });
            }
        }
        Ok((state.unwrap_or_default(), olds))
    }

    /// Reads a user's state without locking (a snapshot, for status output
    /// and the check before the prompt).
    pub fn read(&self, account: &Account) -> Result<UserState, StateError> {
        self.read_any(account, &names(account), self.max_size, None)
            .map(|(s, _)| s)
    }

    /// [`Self::read`] for reports over many accounts: `listed` holds the
    /// directory's names (from [`Self::names`]), and a file not among them
    /// is not looked up. A file written after the listing is missed, as in
    /// any snapshot.
    pub fn read_listed(
        &self,
        account: &Account,
        listed: &HashSet<OsString>,
    ) -> Result<UserState, StateError> {
        self.read_any(account, &names(account), self.max_size, Some(listed))
            .map(|(s, _)| s)
    }

    /// The names in the state directory, read once.
    pub fn names(&self) -> Result<HashSet<OsString>, StateError> {
        Ok(self.dir.names()?)
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
        self.update_reading(account, self.max_size, decide)
    }

    /// [`Self::update`] that reads files up to [`MAX_REPAIR_SIZE`] (for
    /// `reset --unlock`, which compacts an oversized file).
    pub fn repair_update<R>(
        &self,
        account: &Account,
        decide: impl FnOnce(&mut UserState) -> R,
    ) -> Result<R, StateError> {
        self.update_reading(account, MAX_REPAIR_SIZE, decide)
    }

    fn update_reading<R>(
        &self,
        account: &Account,
        max: u64,
        decide: impl FnOnce(&mut UserState) -> R,
    ) -> Result<R, StateError> {
        let n = names(account);
        let _lock = self.dir.lock(&n.lock, self.lock_timeout)?;
        let (before, olds) = self.read_any(account, &n, max, None)?;
        let mut state = before.clone();
        let result = decide(&mut state);
        if state != before || !olds.is_empty() {
            let text = toml::to_string(&state).map_err(|e| StateError::Corrupt {
                path: self.dir.path().join(&n.state).display().to_string(),
                why: e.to_string(),
            })?;
            self.dir.write_atomic_locked(
                &n.state,
                text.as_bytes(),
                STATE_MODE,
                Some(account.uid.as_raw()),
            )?;
        }
        // Only after the merged state is safely written.
        for old in olds {
            self.dir.remove(&old.name)?;
        }
        Ok(result)
    }

    /// Forgets everything about a user (admin reset), also their files
    /// from older releases (only those that are theirs).
    pub fn remove(&self, account: &Account) -> Result<bool, StateError> {
        let n = names(account);
        let _lock = self.dir.lock(&n.lock, self.lock_timeout)?;
        // Which old files are this account's is read before anything goes;
        // a corrupt one stops the reset rather than removing the wrong file.
        let (_, olds) = self.read_any(account, &n, MAX_REPAIR_SIZE, None)?;
        let mut had = self.dir.remove(&n.state)?;
        for old in olds {
            had |= self.dir.remove(&old.name)?;
        }
        Ok(had)
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
    use otpgate_core::store::state::DeviceState;

    fn tmp(name: &str) -> crate::fs::Scratch {
        crate::fs::Scratch::new(&format!("state-{name}"))
    }

    fn account(name: &str, uid: u32) -> Account {
        Account {
            name: name.into(),
            uid: uid.into(),
            gid: uid.into(),
            home: "/nonexistent".into(),
            shell: "/bin/sh".into(),
        }
    }
    #[test]
    fn creates_a_private_dir_and_round_trips() {
        let dir = tmp("rt");
        let store = StateDir::open(&dir).unwrap();
        let alice = account("alice", 4001);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o711
        );
        assert_eq!(store.read(&alice).unwrap(), UserState::default());
        store.update(&alice, |s| s.last_success = Some(5)).unwrap();
        assert_eq!(store.read(&alice).unwrap().last_success, Some(5));
        assert!(dir.join("uid=4001.state").exists());
        assert!(store.remove(&alice).unwrap());
        assert_eq!(store.read(&alice).unwrap(), UserState::default());
    }

    #[test]
    fn a_state_file_changed_by_another_process_is_read_anew() {
        let dir = tmp("memo");
        let store = StateDir::open(&dir).unwrap();
        let carol = account("carol", 4003);
        store.update(&carol, |s| s.last_success = Some(5)).unwrap();
        assert_eq!(store.read(&carol).unwrap().last_success, Some(5));
        assert_eq!(store.read(&carol).unwrap().last_success, Some(5));
        // Another login (another StateDir) writes in between.
        StateDir::open(&dir)
            .unwrap()
            .update(&carol, |s| s.last_success = Some(6))
            .unwrap();
        assert_eq!(store.read(&carol).unwrap().last_success, Some(6));
        let seen = store.update(&carol, |s| s.last_success).unwrap();
        assert_eq!(seen, Some(6));
        // A file that no longer parses is refused, not taken from memory.
        std::fs::write(store.file_of(&carol), "last_success = \"x\"\n").unwrap();
        assert!(store.read(&carol).is_err());
    }

    #[test]
    fn reports_read_what_the_listing_names_and_only_that() {
        let dir = tmp("listed");
        let store = StateDir::open(&dir).unwrap();
        let (dave, erin) = (account("dave", 4004), account("erin", 4005));
        store.update(&dave, |s| s.last_success = Some(7)).unwrap();
        let names = store.names().unwrap();
        assert!(names.contains(&OsString::from("uid=4004.state")));
        assert_eq!(
            store.read_listed(&dave, &names).unwrap().last_success,
            Some(7)
        );
        assert_eq!(
            store.read_listed(&erin, &names).unwrap(),
            UserState::default()
        );
        // Written after the listing: a snapshot misses it, a plain read does not.
        store.update(&erin, |s| s.last_success = Some(8)).unwrap();
        assert_eq!(
            store.read_listed(&erin, &names).unwrap(),
            UserState::default()
        );
        assert_eq!(store.read(&erin).unwrap().last_success, Some(8));
    }

    #[test]
    fn aliases_of_one_uid_share_one_state() {
        let dir = tmp("alias");
        let store = StateDir::open(&dir).unwrap();
        store
            .update(&account("root-alias-a", 4100), |s| {
                s.record_failure(100, 5, 60, 900);
            })
            .unwrap();
        let other = store.read(&account("root-alias-b", 4100)).unwrap();
        assert_eq!(other.failures, vec![100]);
    }

    #[test]
    fn concurrent_updates_are_serialised() {
        let dir = tmp("conc");
        let store = StateDir::open(&dir).unwrap();
        let bob = account("bob", 4002);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let store = StateDir::open(&dir).unwrap();
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
    }

    #[test]
    fn a_held_lock_times_out_instead_of_hanging() {
        let dir = tmp("lock");
        let store = StateDir::open(&dir).unwrap();
        let carol = account("carol", 4003);
        store.update(&carol, |_| ()).unwrap();
        let holder = std::fs::File::open(dir.join("4003.lock")).unwrap();
        holder.lock().unwrap();
        let short = StateDir::open(&dir)
            .unwrap()
            .with_lock_timeout(Duration::from_millis(50));
        let err = short.update(&carol, |_| ()).unwrap_err();
        assert!(err.to_string().contains("stayed locked"), "{err}");
        drop(holder);
        short.update(&carol, |_| ()).unwrap();
    }

    #[test]
    fn a_temporary_file_left_by_a_killed_writer_is_replaced() {
        let dir = tmp("staletmp");
        let store = StateDir::open(&dir).unwrap();
        let erin = account("erin", 4004);
        std::fs::write(dir.join(".uid=4004.state.tmp"), "half a write").unwrap();
        store.update(&erin, |s| s.last_success = Some(7)).unwrap();
        assert_eq!(store.read(&erin).unwrap().last_success, Some(7));
        assert!(!dir.join(".uid=4004.state.tmp").exists());
    }

    fn write_600(path: &Path, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn corrupt_state_is_an_error_not_a_reset() {
        let dir = tmp("corrupt");
        let store = StateDir::open(&dir).unwrap();
        let dave = account("dave", 4005);
        write_600(&dir.join("uid=4005.state"), "version = 2\nbogus = 1\n");
        let err = store
            .update(&dave, |s| s.last_success = Some(1))
            .unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
        assert!(
            std::fs::read_to_string(dir.join("uid=4005.state"))
                .unwrap()
                .contains("bogus")
        );
    }

    #[test]
    fn an_oversized_state_names_the_repair_and_repair_mode_reads_it() {
        let dir = tmp("big");
        let store = StateDir::open(&dir).unwrap();
        let fay = account("fay", 4006);
        let mut big = UserState::default();
        for i in 0..2000 {
            big.devices
                .insert(format!("{i:032x}"), DeviceState::default());
            big.devices.get_mut(&format!("{i:032x}")).unwrap().last_step = Some(i);
        }
        write_600(&dir.join("uid=4006.state"), &toml::to_string(&big).unwrap());
        let err = store.update(&fay, |_| ()).unwrap_err();
        assert!(
            err.to_string()
                .contains("otpgate reset --user fay --unlock"),
            "{err}"
        );
        let repaired = StateDir::open(&dir).unwrap();
        repaired
            .repair_update(&fay, |s| s.devices.retain(|k, _| k.ends_with('1')))
            .unwrap();
        assert!(store.read(&fay).is_ok());
    }

    #[test]
    fn version_one_files_are_converted_once_and_lose_remembered_addresses() {
        let dir = tmp("v1");
        let store = StateDir::open(&dir).unwrap();
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
    }
    #[test]
    fn odd_user_names_cannot_reach_outside_the_directory() {
        let dir = tmp("names");
        let store = StateDir::open(&dir).unwrap();
        store
            .update(&account("../escape", 4008), |s| s.last_success = Some(1))
            .unwrap();
        assert!(dir.join("uid=4008.state").exists());
        assert_eq!(state_stem("../escape"), "%2E.%2Fescape");
        assert!(!dir.parent().unwrap().join("escape.state").exists());
    }

    #[test]
    fn a_format_two_file_of_the_release_before_is_taken_over_once() {
        let dir = tmp("v2name");
        let store = StateDir::open(&dir).unwrap();
        let hal = account("hal", 4009);
        let mut old = UserState::default();
        old.devices.insert(
            "fp".into(),
            DeviceState {
                last_step: Some(77),
                ..DeviceState::default()
            },
        );
        write_600(&dir.join("4009.state"), &toml::to_string(&old).unwrap());
        assert_eq!(store.read(&hal).unwrap(), old);
        store.update(&hal, |_| ()).unwrap();
        assert!(!dir.join("4009.state").exists());
        assert_eq!(store.read(&hal).unwrap(), old, "nothing lost");
    }

    fn used_step(state: &UserState) -> Option<u64> {
        state.devices.get("fp").and_then(|d| d.last_step)
    }

    fn with_step(step: u64, failures: Vec<u64>) -> UserState {
        let mut s = UserState {
            failures,
            ..UserState::default()
        };
        s.devices.insert(
            "fp".into(),
            DeviceState {
                last_step: Some(step),
                ..DeviceState::default()
            },
        );
        s
    }

    #[test]
    fn an_all_digit_name_that_is_its_own_uid_keeps_one_current_file() {
        let dir = tmp("digits-same");
        let store = StateDir::open(&dir).unwrap();
        let n = account("47001", 47001);
        store.update(&n, |s| *s = with_step(5, vec![1])).unwrap();
        for round in 0..4 {
            store
                .update(&n, |s| {
                    let step = used_step(s).unwrap();
                    s.devices.get_mut("fp").unwrap().last_step = Some(step + 1);
                    s.failures.push(100 + round);
                })
                .unwrap();
        }
        let st = store.read(&n).unwrap();
        assert_eq!(used_step(&st), Some(9), "every use remembered");
        assert_eq!(st.failures.len(), 5, "every failure counted");
        assert!(dir.join("uid=47001.state").exists());
        assert!(!dir.join("47001.state").exists());
    }

    #[test]
    fn an_all_digit_name_never_takes_or_removes_another_uids_file() {
        let dir = tmp("digits-other");
        let store = StateDir::open(&dir).unwrap();
        // uid 47002's state as the release before wrote it (format 2)...
        let theirs = with_step(50, vec![10, 11, 12]);
        let theirs_text = toml::to_string(&UserState {
            locked_until: Some(u64::MAX / 2),
            ..theirs.clone()
        })
        .unwrap();
        write_600(&dir.join("47002.state"), &theirs_text);
        // ...is nothing to the account *named* 47002 with another uid.
        let named = account("47002", 5000);
        assert_eq!(store.read(&named).unwrap(), UserState::default());
        store.update(&named, |s| s.failures.push(1)).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("47002.state")).unwrap(),
            theirs_text,
            "uid 47002's file is left as it was"
        );
        assert_eq!(store.read(&named).unwrap().locked_until, None);
        assert!(store.remove(&named).unwrap());
        assert!(
            dir.join("47002.state").exists(),
            "a reset removes only its own"
        );
        // uid 47002 (named anything) takes it over at its next login.
        let owner = account("bob", 47002);
        assert_eq!(used_step(&store.read(&owner).unwrap()), Some(50));
        store.update(&owner, |_| ()).unwrap();
        assert!(!dir.join("47002.state").exists());
        assert_eq!(used_step(&store.read(&owner).unwrap()), Some(50));
    }

    #[test]
    fn a_format_one_file_of_an_all_digit_name_is_never_another_uids_state() {
        let dir = tmp("digits-v1");
        let store = StateDir::open(&dir).unwrap();
        let v1 = "version = 1\nfailures = [10, 11]\nlocked_until = 999999999999\n";
        write_600(&dir.join("47003.state"), v1);
        // uid 47003 (another name) does not read user "47003"'s old file.
        let uid_owner = account("carl", 47003);
        assert_eq!(store.read(&uid_owner).unwrap(), UserState::default());
        store.update(&uid_owner, |s| s.failures.push(3)).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("47003.state")).unwrap(),
            v1
        );
        // The account named 47003 converts it (another uid).
        let named = account("47003", 6000);
        assert_eq!(store.read(&named).unwrap().failures, vec![10, 11]);
        store.update(&named, |_| ()).unwrap();
        assert!(!dir.join("47003.state").exists());
        assert_eq!(store.read(&uid_owner).unwrap().failures, vec![3]);
    }
}
