//! What this otpgated has seen of the fleet store: for each account the
//! highest enrollment counter and login-state version
//! ([`otpgate_core::fleet::freshness::Seen`]), kept in its own root-only
//! directory (`daemon_state_dir`, mode 0700), one small file per account
//! written atomically (temporary file, fsync, rename, fsync of the
//! directory), and in memory. Raised as rows are read and written, never
//! lowered but by `otpgate accept-restore`.
//!
//! One lock serialises changes, so two requests for one account never
//! write its file out of order.

use otpgate_core::fleet::freshness::Seen;
use otpgate_core::sys::paths::state_stem;
use std::collections::HashMap;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const SUFFIX: &str = ".seen";

pub struct Memory {
    dir: PathBuf,
    cache: Mutex<HashMap<String, Seen>>,
    /// Held for the daemon's life: one otpgated per directory (two would
    /// write the same files, each trusting its own cache).
    _lock: std::fs::File,
}

impl Memory {
    /// Opens (creating, mode 0700) the directory; it must be root's, not a
    /// link, and closed to group and others.
    pub fn open(dir: &Path) -> Result<Self, String> {
        let shown = dir.display();
        if std::fs::symlink_metadata(dir).is_err() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("daemon_state_dir {shown}: cannot be created: {e}"))?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("daemon_state_dir {shown}: {e}"))?;
        }
        let meta =
            std::fs::symlink_metadata(dir).map_err(|e| format!("daemon_state_dir {shown}: {e}"))?;
        if !meta.is_dir() || meta.uid() != 0 || meta.mode() & 0o077 != 0 {
            return Err(format!(
                "daemon_state_dir {shown}: must be a directory (not a link) owned by root with mode 0700; \
                 run `chown root:root {shown} && chmod 700 {shown}`"
            ));
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(dir.join(".lock"))
            .map_err(|e| format!("daemon_state_dir {shown}/.lock: {e}"))?;
        lock.try_lock().map_err(|_| {
            format!(
                "daemon_state_dir {shown} is in use by another otpgated; give each daemon its own directory"
            )
        })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            cache: Mutex::new(HashMap::new()),
            _lock: lock,
        })
    }

    fn path(&self, user: &str) -> PathBuf {
        self.dir.join(format!("{}{SUFFIX}", state_stem(user)))
    }

    fn read(&self, user: &str) -> Result<Seen, String> {
        let path = self.path(user);
        match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
        {
            Ok(mut f) => {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut f, &mut text)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| {
                    format!(
                        "{} is corrupt ({}); run `otpgate accept-restore --user {user}` to set it from the store",
                        path.display(),
                        e.message().trim()
                    )
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Seen::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    fn write(&self, user: &str, seen: Seen) -> Result<(), String> {
        let path = self.path(user);
        let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let text = toml::to_string(&seen).map_err(|e| fail(&e))?;
        let tmp = self.dir.join(format!(".{}{SUFFIX}.tmp", state_stem(user)));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .map_err(|e| fail(&e))?;
        f.write_all(text.as_bytes()).map_err(|e| fail(&e))?;
        f.sync_all().map_err(|e| fail(&e))?;
        std::fs::rename(&tmp, &path).map_err(|e| fail(&e))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| fail(&e))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What this daemon has seen of `user`'s rows.
    pub fn seen(&self, user: &str) -> Result<Seen, String> {
        let mut cache = self.lock();
        if let Some(s) = cache.get(user) {
            return Ok(*s);
        }
        let s = self.read(user)?;
        cache.insert(user.to_string(), s);
        Ok(s)
    }

    /// Raises what was seen of `user` to `seen` (never lowers it).
    pub fn raise(&self, user: &str, seen: Seen) -> Result<(), String> {
        let mut cache = self.lock();
        let old = match cache.get(user) {
            Some(s) => *s,
            None => self.read(user)?,
        };
        let new = old.raised(seen);
        if new != old {
            self.write(user, new)?;
        }
        cache.insert(user.to_string(), new);
        Ok(())
    }

    /// Sets what was seen of `user` to exactly `seen`, lower or not
    /// (`otpgate accept-restore`).
    pub fn set(&self, user: &str, seen: Seen) -> Result<(), String> {
        let mut cache = self.lock();
        self.write(user, seen)?;
        cache.insert(user.to_string(), seen);
        Ok(())
    }

    /// Forgets every account (`otpgate accept-restore` for all; each is
    /// then set from what the store holds).
    pub fn forget_all(&self) -> Result<(), String> {
        let mut cache = self.lock();
        let list = std::fs::read_dir(&self.dir)
            .map_err(|e| format!("daemon_state_dir {}: {e}", self.dir.display()))?;
        for entry in list {
            let entry = entry.map_err(|e| format!("{}: {e}", self.dir.display()))?;
            if entry.file_name().to_string_lossy().ends_with(SUFFIX) {
                std::fs::remove_file(entry.path())
                    .map_err(|e| format!("{}: {e}", entry.path().display()))?;
            }
        }
        cache.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("otpgated-memory-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn remembers_across_restarts_and_never_lowers() {
        let d = dir("raise");
        let m = Memory::open(&d).unwrap();
        assert_eq!(m.seen("alice").unwrap(), Seen::default());
        m.raise(
            "alice",
            Seen {
                enrollment: 5,
                state: 2,
            },
        )
        .unwrap();
        m.raise(
            "alice",
            Seen {
                enrollment: 3,
                state: 9,
            },
        )
        .unwrap();
        assert!(
            Memory::open(&d)
                .err()
                .unwrap()
                .contains("in use by another otpgated"),
            "one daemon per directory"
        );
        drop(m);
        let again = Memory::open(&d).unwrap();
        assert_eq!(
            again.seen("alice").unwrap(),
            Seen {
                enrollment: 5,
                state: 9
            }
        );
        again.set("alice", Seen::default()).unwrap();
        assert_eq!(again.seen("alice").unwrap(), Seen::default());
        again
            .raise(
                "bob",
                Seen {
                    enrollment: 1,
                    state: 0,
                },
            )
            .unwrap();
        again.forget_all().unwrap();
        assert_eq!(again.seen("bob").unwrap(), Seen::default());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn an_open_directory_is_refused() {
        let d = dir("open");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = Memory::open(&d).err().unwrap();
        assert!(e.contains("chmod 700"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
