//! Atomic writes: temporary file in the same directory, fsync, rename,
//! fsync of the directory, so a reader or a crash sees the old file or the
//! new one, never a mix.

use super::*;
use otpgate_core::sys::random::Random;

impl SafeDir {
    pub(super) fn writable_fd(&self) -> Result<OwnedFd, FsError> {
        openat(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(&self.path, "opening", errno(e)))
    }

    /// Replaces `name` atomically with `data` at `mode`: a reader sees the old
    /// file or the new one, never a mix, also after a crash or power loss.
    /// The temporary file has a unique name (for writers that hold no lock);
    /// temporary files of killed writers are removed afterwards.
    pub fn write_atomic(&self, name: &OsStr, data: &[u8], mode: u32) -> Result<(), FsError> {
        let dir = self.writable_fd()?;
        let mut rnd = [0u8; 8];
        crate::random::OsRandom
            .fill(&mut rnd)
            .map_err(|_| FsError::Identity {
                why: "no randomness for a temporary file name".into(),
            })?;
        let tmp_name = format!(
            ".{}.tmp-{}-{}",
            name.to_string_lossy(),
            rustix::process::getpid().as_raw_nonzero(),
            u64::from_le_bytes(rnd)
        );
        self.write_through(&dir, OsStr::new(&tmp_name), name, data, mode, None)?;
        self.remove_stale_temps(&dir, name);
        Ok(())
    }

    /// [`Self::write_atomic`] for a writer that holds the file's lock: one
    /// fixed temporary name (`.NAME.tmp`), so whatever a killed writer left
    /// there is stale and is replaced, and no directory listing is needed
    /// (the state directory holds a file per user; the login path must not
    /// read it all). `reader`, if given, is a uid granted read access by a
    /// POSIX ACL before the file becomes visible (see [`grant_read`]).
    pub fn write_atomic_locked(
        &self,
        name: &OsStr,
        data: &[u8],
        mode: u32,
        reader: Option<u32>,
    ) -> Result<(), FsError> {
        let dir = self.writable_fd()?;
        let tmp_name = format!(".{}.tmp", name.to_string_lossy());
        let tmp = OsStr::new(&tmp_name);
        match unlinkat(&dir, tmp, AtFlags::empty()).map_err(errno) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(io(&self.path.join(tmp), "removing", e)),
        }
        self.write_through(&dir, tmp, name, data, mode, reader)
    }

    /// Creates `tmp` (never through a link or over a file), writes, syncs,
    /// renames it over `name` and syncs the directory; removes `tmp` on error.
    fn write_through(
        &self,
        dir: &OwnedFd,
        tmp: &OsStr,
        name: &OsStr,
        data: &[u8],
        mode: u32,
        reader: Option<u32>,
    ) -> Result<(), FsError> {
        let path = self.path.join(name);
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = openat(dir, tmp, flags, Mode::from_bits_truncate(mode & 0o600))
            .map_err(|e| io(&path, "creating a temporary file for", errno(e)))?;
        let result = (|| {
            fchmod(&fd, Mode::from_bits_truncate(mode))
                .map_err(|e| io(&path, "setting the mode of", errno(e)))?;
            if let Some(uid) = reader {
                grant_read(&fd, uid, &path)?;
            }
            let mut file = File::from(fd);
            file.write_all(data).map_err(|e| {
                io(
                    &path,
                    "writing",
                    Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                )
            })?;
            fsync(file.as_fd()).map_err(|e| io(&path, "syncing", errno(e)))?;
            drop(file);
            renameat(dir, tmp, dir, name)
                .map_err(|e| io(&path, "renaming into place", errno(e)))?;
            fsync(dir).map_err(|e| io(&self.path, "syncing directory", errno(e)))
        })();
        if result.is_err() {
            let _ = unlinkat(dir, tmp, AtFlags::empty());
        }
        result
    }

    /// Removes temporary files of `name` left by writers that were killed
    /// mid-write (their process no longer exists). Best effort: a failure
    /// here never fails the write that already succeeded.
    fn remove_stale_temps(&self, dir: &OwnedFd, name: &OsStr) {
        let prefix = format!(".{}.tmp-", name.to_string_lossy());
        let Ok(mut listing) = rustix::fs::Dir::read_from(dir) else {
            return;
        };
        let stale: Vec<std::ffi::CString> = std::iter::from_fn(|| listing.read())
            .flatten()
            .filter_map(|entry| {
                let file = entry.file_name().to_str().ok()?;
                let pid: i32 = file
                    .strip_prefix(&prefix)?
                    .split('-')
                    .next()?
                    .parse()
                    .ok()?;
                let dead = rustix::process::Pid::from_raw(pid).is_some_and(|pid| {
                    rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
                });
                dead.then(|| entry.file_name().to_owned())
            })
            .collect();
        for file in stale {
            let _ = unlinkat(dir, file.as_c_str(), AtFlags::empty());
        }
    }
}

/// Lets `uid` (and nobody else) read an open file of mode 0600 through a
/// POSIX access ACL: `user::rw-, user:UID:r--, group::---, mask::r--,
/// other::---`. The group entry stays empty, so a shared primary group
/// (`users`, a directory-service group) reads nothing. On a file system
/// without ACL support the file simply stays root's alone: the user's
/// `otpgate status` then lacks the state, and nothing is exposed.
pub fn grant_read(fd: &OwnedFd, uid: u32, path: &Path) -> Result<(), FsError> {
    if uid == 0 {
        return Ok(());
    }
    const VERSION: u32 = 2;
    const UNDEFINED: u32 = u32::MAX;
    // (tag, permissions, id), sorted by tag as the kernel requires.
    let entries: [(u16, u16, u32); 5] = [
        (0x01, 6, UNDEFINED), // ACL_USER_OBJ rw-
        (0x02, 4, uid),       // ACL_USER uid r--
        (0x04, 0, UNDEFINED), // ACL_GROUP_OBJ ---
        (0x10, 4, UNDEFINED), // ACL_MASK r--
        (0x20, 0, UNDEFINED), // ACL_OTHER ---
    ];
    let mut value = Vec::with_capacity(4 + entries.len() * 8);
    value.extend_from_slice(&VERSION.to_le_bytes());
    for (tag, perm, id) in entries {
        value.extend_from_slice(&tag.to_le_bytes());
        value.extend_from_slice(&perm.to_le_bytes());
        value.extend_from_slice(&id.to_le_bytes());
    }
    match rustix::fs::fsetxattr(
        fd,
        "system.posix_acl_access",
        &value,
        rustix::fs::XattrFlags::empty(),
    ) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::OPNOTSUPP => Ok(()),
        Err(e) => Err(io(
            path,
            "granting the user read access (ACL) to",
            Errno::from_raw(e.raw_os_error()),
        )),
    }
}

/// Creates a new private file (mode 0600) at `path` and writes `bytes`:
/// never through a link, never over an existing file, synced to disk. For
/// files the user asks for (a QR code image holding the secret).
pub fn create_private_file(path: &Path, bytes: &[u8]) -> Result<(), CreateError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc_o_nofollow())
        .open(path)
        .map_err(|source| CreateError::Create {
            path: path.to_path_buf(),
            source,
        })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|source| CreateError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// Why [`create_private_file`] did not create the file.
#[derive(Debug)]
pub enum CreateError {
    /// It could not be created (it exists, is a link, or the directory
    /// refuses).
    Create {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// It was created but not written and synced whole.
    Write {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl std::fmt::Display for CreateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Create { path, source } => write!(
                f,
                "cannot create {}: {source} (it must not exist yet)",
                path.display()
            ),
            Self::Write { path, source } => {
                write!(f, "writing {} failed: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for CreateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Create { source, .. } | Self::Write { source, .. } => Some(source),
        }
    }
}

fn libc_o_nofollow() -> i32 {
    OFlags::NOFOLLOW.bits().cast_signed()
}
