//! The files engine: each user's secret file (by the `secret_path`
//! template) and the state directory ([`super::statedir`]).
//!
//! Reading or writing a secret file uses the right identity:
//!
//! A file inside the user's home is opened with the user's file-system ids
//! (so root never follows anything the user planted), and must be owned by
//! the user or root. A file elsewhere (a central store such as
//! `/var/lib/otpgate/%u.toml`) is opened as the caller and must be owned by
//! root or the user.

use crate::fs::{self, FsError, SafeDir, Trust};
use crate::identity::FsIdentity;
use crate::store::statedir::StateDir;
use otpgate_core::config::Config;
use otpgate_core::enrollment::{Enrollment, MAX_FILE_SIZE};
use otpgate_core::store::Store;
use otpgate_core::store::StoreError;
use otpgate_core::store::state::UserState;
use otpgate_core::sys::account::{Account, Gid, Uid};
use otpgate_core::sys::paths;
use std::path::PathBuf;

/// Whose identity reaches a secret file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Access {
    /// In the user's home (which must be there): read and written with the
    /// user's file-system ids, so root never follows what the user planted.
    AsUser { home: PathBuf },
    /// Elsewhere (a central store): as root.
    AsRoot,
}

/// Where one user's secret file lives and how to reach it.
#[derive(Debug, Clone)]
pub struct Location {
    pub path: PathBuf,
    access: Access,
    uid: Uid,
    gid: Gid,
}

impl Location {
    /// Resolves the `secret_path` template for `account`.
    pub fn of(template: &str, account: &Account) -> Result<Self, StoreError> {
        paths::check_user_name(&account.name)
            .map_err(|e| StoreError::Path(paths::PathError::BadUserName(e)))?;
        let path =
            paths::expand(template, &account.name, &account.home).map_err(StoreError::Path)?;
        Ok(Self {
            access: if paths::is_inside(&path, &account.home) {
                Access::AsUser {
                    home: account.home.clone(),
                }
            } else {
                Access::AsRoot
            },
            path,
            uid: account.uid,
            gid: account.gid,
        })
    }

    fn trust(&self) -> Trust {
        Trust {
            owner: self.uid.as_raw(),
        }
    }

    fn in_home(&self) -> bool {
        matches!(self.access, Access::AsUser { .. })
    }

    /// Switches to the user's file-system ids when the file is in their home.
    fn identity(&self) -> Result<FsIdentity, StoreError> {
        if self.in_home() {
            FsIdentity::become_user(self.uid, self.gid).map_err(StoreError::Fs)
        } else {
            FsIdentity::become_user(Uid::from_raw(0), Gid::from_raw(0)).map_err(StoreError::Fs)
        }
    }

    /// Loads and validates the enrollment. A missing file is `Ok(None)`;
    /// a missing or unreadable home directory is an error, not "not
    /// enrolled" — an unmounted /home must not turn into `nullok`'s pass.
    pub fn load(&self) -> Result<Option<Enrollment>, StoreError> {
        self.load_in(&Homes::default())
    }

    /// [`Self::load`], opening the home through `homes` (the directory that
    /// holds the homes, kept open across users by one store).
    fn load_in(&self, homes: &Homes) -> Result<Option<Enrollment>, StoreError> {
        let _id = self.identity()?;
        let (dir, name) = fs::split(&self.path).map_err(StoreError::Fs)?;
        // In the home, the home is reached once (it must be there) and the
        // rest of the path walked from it; elsewhere, from `/`.
        let read = match &self.access {
            Access::AsUser { home } => {
                let home = homes.open(home, self.trust()).map_err(|e| match e {
                    FsError::NotFound { path } => StoreError::NoHome(path),
                    other => StoreError::Fs(other),
                })?;
                home.open_below(dir)
                    .and_then(|d| d.read_private(name, MAX_FILE_SIZE))
            }
            Access::AsRoot => fs::read_private_file(&self.path, self.trust(), MAX_FILE_SIZE),
        };
        match read {
            Ok(bytes) => Enrollment::parse(&bytes)
                .map(Some)
                .map_err(|error| StoreError::Format {
                    path: self.path.clone(),
                    error,
                }),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(StoreError::Fs(e)),
        }
    }

    /// Writes the enrollment atomically (mode 0600), creating missing parent
    /// directories (mode 0700). In the home, files and directories are
    /// created with the user's ids and so belong to the user.
    pub fn save(&self, enrollment: &Enrollment) -> Result<(), StoreError> {
        let text = enrollment.to_toml().map_err(|error| StoreError::Format {
            path: self.path.clone(),
            error,
        })?;
        let _id = self.identity()?;
        let (dir, name) = fs::split(&self.path).map_err(StoreError::Fs)?;
        let dir = SafeDir::create_all(dir, self.trust(), 0o700).map_err(StoreError::Fs)?;
        dir.write_atomic(name, text.as_bytes(), 0o600)
            .map_err(StoreError::Fs)
    }

    /// A permission error of a non-root caller on a root-managed store
    /// becomes [`StoreError::ManagedByRoot`], which says whom to ask.
    fn explain(&self, error: StoreError, user: &str) -> StoreError {
        let denied = matches!(error, StoreError::Fs(FsError::PermissionDenied { .. }));
        if denied && !self.in_home() && !rustix::process::geteuid().is_root() {
            StoreError::ManagedByRoot {
                path: self.path.clone(),
                user: user.to_string(),
            }
        } else {
            error
        }
    }

    /// Fails early (before a secret is shown) when a non-root caller cannot
    /// write the secret file's directory, e.g. a root-managed central store.
    pub fn check_writable(&self, user: &str) -> Result<(), StoreError> {
        if rustix::process::geteuid().is_root() || self.in_home() {
            return Ok(());
        }
        let Some(dir) = self.path.parent() else {
            return Ok(());
        };
        match rustix::fs::access(dir, rustix::fs::Access::WRITE_OK) {
            Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => Err(self.explain(
                StoreError::Fs(FsError::PermissionDenied {
                    path: dir.to_path_buf(),
                }),
                user,
            )),
            _ => Ok(()),
        }
    }

    /// Runs `act` on the file's directory (with the right identity); a
    /// missing directory means there is no file, which gives `missing`.
    fn in_dir<T>(
        &self,
        missing: T,
        act: impl FnOnce(&SafeDir, &std::ffi::OsStr) -> Result<T, FsError>,
    ) -> Result<T, StoreError> {
        let _id = self.identity()?;
        let (dir, name) = fs::split(&self.path).map_err(StoreError::Fs)?;
        match SafeDir::open(dir, self.trust()) {
            Ok(dir) => act(&dir, name).map_err(StoreError::Fs),
            Err(e) if e.is_not_found() => Ok(missing),
            Err(e) => Err(StoreError::Fs(e)),
        }
    }

    /// Whether a file (or anything else) exists at the path.
    pub fn exists(&self) -> Result<bool, StoreError> {
        self.in_dir(false, |dir, name| dir.exists(name))
    }

    /// Removes the file. Returns whether there was one.
    pub fn remove(&self) -> Result<bool, StoreError> {
        self.in_dir(false, |dir, name| dir.remove(name))
    }
}

/// The directory holding the homes (`/home`), walked from `/` once and
/// kept while it serves user after user (`audit` reads thousands of
/// homes). Kept only when it and every directory above it are root's alone,
/// so it is trusted for every user; else each home is walked from `/`.
#[derive(Debug, Default)]
struct Homes(std::sync::Mutex<Option<SafeDir>>);

impl Homes {
    /// Opens `home` (checked as `trust`'s), below the kept parent if it is
    /// the one `home` is in. Runs with the user's file-system ids, so every
    /// step below the kept directory is looked up with the user's rights.
    fn open(&self, home: &std::path::Path, trust: Trust) -> Result<SafeDir, FsError> {
        let Some(parent) = home.parent().filter(|p| p.parent().is_some()) else {
            return SafeDir::open(home, trust);
        };
        let Ok(mut kept) = self.0.lock() else {
            return SafeDir::open(home, trust);
        };
        if kept.as_ref().is_none_or(|d| d.path() != parent) {
            *kept = SafeDir::open(parent, Trust { owner: 0 }).ok();
        }
        match kept.as_ref() {
            Some(dir) => dir.open_below_as(home, trust),
            None => SafeDir::open(home, trust),
        }
    }
}

/// The files engine: secret files by the `secret_path` template, login
/// state in `state_dir`.
#[derive(Debug)]
pub struct FileStore {
    secret_path: String,
    state_dir: PathBuf,
    homes: Homes,
    /// The state directory, walked from `/` once per store (a login reads
    /// the state before the prompt and updates it after; `audit` reads
    /// every user's).
    opened: std::sync::OnceLock<StateDir>,
    /// The state directory was found missing by a reader: later reads of
    /// this store (audit's thousands) say "no state" without walking again.
    /// A writer still creates it.
    missing: std::sync::atomic::AtomicBool,
    /// For reports over many accounts: the state directory's names, read
    /// once, so that the thousands of state files never written are not
    /// looked up one by one. `None` for logins and changes.
    listing: Option<std::sync::OnceLock<Option<std::collections::HashSet<std::ffi::OsString>>>>,
}

impl FileStore {
    pub fn new(config: &Config) -> Self {
        Self {
            secret_path: config.secret_path.clone(),
            state_dir: config.state_dir.clone(),
            homes: Homes::default(),
            opened: std::sync::OnceLock::new(),
            missing: std::sync::atomic::AtomicBool::new(false),
            listing: None,
        }
    }

    /// A store for read-only reports over many accounts (`audit`): state
    /// is read from a snapshot of the state directory's names.
    pub fn for_reports(config: &Config) -> Self {
        Self {
            listing: Some(std::sync::OnceLock::new()),
            ..Self::new(config)
        }
    }

    /// The state directory, created (mode 0711) if missing.
    fn state_dir(&self) -> Result<&StateDir, StoreError> {
        if let Some(dir) = self.opened.get() {
            return Ok(dir);
        }
        let dir = StateDir::open(&self.state_dir)?;
        Ok(self.opened.get_or_init(|| dir))
    }

    fn locate(&self, account: &Account) -> Result<Location, StoreError> {
        Location::of(&self.secret_path, account)
    }

    /// The state directory if it exists (readers must not create it).
    fn existing_state_dir(&self) -> Result<Option<&StateDir>, StoreError> {
        use std::sync::atomic::Ordering;
        if let Some(dir) = self.opened.get() {
            return Ok(Some(dir));
        }
        if self.missing.load(Ordering::Relaxed) {
            return Ok(None);
        }
        match StateDir::open_existing(&self.state_dir) {
            Ok(dir) => Ok(Some(self.opened.get_or_init(|| dir))),
            Err(crate::store::statedir::StateError::Fs(e)) if e.is_not_found() => {
                self.missing.store(true, Ordering::Relaxed);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Store for FileStore {
    fn location(&self, account: &Account) -> Result<String, StoreError> {
        Ok(self.locate(account)?.path.display().to_string())
    }

    fn describe(&self, account: &Account) -> String {
        match self.locate(account) {
            Ok(l) => format!(
                "{} ({})",
                l.path.display(),
                if l.in_home() {
                    "as the user"
                } else {
                    "as root"
                }
            ),
            Err(e) => e.to_string(),
        }
    }

    fn load(&self, account: &Account) -> Result<Option<Enrollment>, StoreError> {
        self.locate(account)?.load_in(&self.homes)
    }

    fn exists(&self, account: &Account) -> Result<bool, StoreError> {
        self.locate(account)?.exists()
    }

    fn check_writable(&self, account: &Account) -> Result<(), StoreError> {
        self.locate(account)?.check_writable(&account.name)
    }

    fn save(&self, account: &Account, enrollment: &Enrollment) -> Result<(), StoreError> {
        let location = self.locate(account)?;
        location
            .save(enrollment)
            .map_err(|e| location.explain(e, &account.name))
    }

    fn remove(&self, account: &Account) -> Result<bool, StoreError> {
        self.locate(account)?.remove()
    }

    fn read_state(&self, account: &Account) -> Result<UserState, StoreError> {
        let Some(dir) = self.existing_state_dir()? else {
            return Ok(UserState::default());
        };
        let listed = self
            .listing
            .as_ref()
            .and_then(|l| l.get_or_init(|| dir.names().ok()).as_ref());
        match listed {
            Some(names) => Ok(dir.read_listed(account, names)?),
            None => Ok(dir.read(account)?),
        }
    }

    fn update_state(
        &self,
        account: &Account,
        decide: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), StoreError> {
        Ok(self.state_dir()?.update(account, |st| decide(st))?)
    }

    fn repair_state(
        &self,
        account: &Account,
        decide: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), StoreError> {
        Ok(self.state_dir()?.repair_update(account, |st| decide(st))?)
    }

    fn remove_state(&self, account: &Account) -> Result<bool, StoreError> {
        match self.existing_state_dir()? {
            Some(dir) => Ok(dir.remove(account)?),
            None => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn homes_kept_open_still_check_each_home_as_its_own() {
        assert!(
            rustix::process::geteuid().is_root(),
            "this test makes directories owned by other users and must run as root (CI does)"
        );
        let dir = crate::fs::Scratch::new("homes");
        for (name, uid) in [("a", 4201), ("b", 4202)] {
            let home = dir.join(name);
            std::fs::create_dir_all(&home).unwrap();
            std::os::unix::fs::chown(&home, Some(uid), Some(uid)).unwrap();
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(dir.join("a"), dir.join("c")).unwrap();
        let homes = Homes::default();
        let user = |owner| Trust { owner };
        assert!(homes.open(&dir.join("a"), user(4201)).is_ok());
        // The parent is kept, and each home is still checked for its user.
        assert!(matches!(
            homes.open(&dir.join("b"), user(4201)),
            Err(FsError::BadOwner { uid: 4202, .. })
        ));
        assert!(homes.open(&dir.join("b"), user(4202)).is_ok());
        assert!(matches!(
            homes.open(&dir.join("c"), user(4201)),
            Err(FsError::Symlink { .. })
        ));
        // A parent not root's alone is not kept: the home is walked from `/`
        // with the user's trust, as without the cache.
        let theirs = dir.join("b");
        std::fs::create_dir_all(theirs.join("inner")).unwrap();
        std::os::unix::fs::chown(theirs.join("inner"), Some(4202), Some(4202)).unwrap();
        assert!(homes.open(&theirs.join("inner"), user(4202)).is_ok());
    }
}
