//! Race-free, symlink-free file access for secret and state files.
//!
//! Every path is walked from `/` one component at a time with `openat` and
//! `O_NOFOLLOW`, and every check (owner, mode, type, size) is made on the
//! descriptor that is then used, so swapping in a symlink between check and
//! use gains nothing (the pam_oath CVE-2024-47191 and google-authenticator
//! complaints). Every descriptor is `O_CLOEXEC`. Writes are atomic: temporary
//! file in the same directory, fsync, rename, fsync of the directory.
//!
//! Here: the error type and the owner rule ([`Trust`]); [`dir`] the
//! link-free walk and reads, [`atomic`] the two write strategies and the
//! reader ACL, [`lock`] the bounded-wait lock. Switching file-system ids is
//! [`crate::identity`].

// The system calls go through rustix's raw Linux backend, not libc: each
// libc function the module imports is one more symbol the loader binds at
// every dlopen (full RELRO), about 1 k instructions each per login. Errors
// are kept as nix's `Errno` (a plain number) for the messages.
use nix::errno::Errno;
use rustix::fs::{
    AtFlags, FileType, Mode, OFlags, Stat as FileStat, fchmod, fstat as raw_fstat, fsync, mkdirat,
    openat, renameat, statat, unlinkat,
};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

mod atomic;
mod dir;
mod lock;
#[cfg(test)]
pub(crate) mod scratch;
#[cfg(test)]
pub(crate) use scratch::Scratch;

pub use atomic::{CreateError, create_private_file, grant_read};
pub use dir::{SafeDir, read_private_file, show, split};
pub use otpgate_core::sys::fs::FsError;

/// Who may own the files and directories on a path: root always, plus `owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trust {
    pub owner: u32,
}

impl Trust {
    pub const ROOT: Self = Self { owner: 0 };

    pub(crate) fn allows(&self, uid: u32) -> bool {
        uid == 0 || uid == self.owner
    }
}

pub(crate) fn io(path: &Path, op: &'static str, errno: Errno) -> FsError {
    match errno {
        Errno::ENOENT => FsError::NotFound { path: path.into() },
        Errno::EACCES | Errno::EPERM => FsError::PermissionDenied { path: path.into() },
        Errno::ENOTDIR => FsError::NotDirectory { path: path.into() },
        _ => FsError::Io {
            path: path.into(),
            op,
            why: errno.desc().to_string(),
        },
    }
}

/// rustix's error as the errno value the messages use.
pub(crate) fn errno(e: rustix::io::Errno) -> Errno {
    Errno::from_raw(e.raw_os_error())
}

pub(crate) fn fstat(fd: impl AsFd) -> Result<FileStat, Errno> {
    raw_fstat(fd).map_err(errno)
}

pub(crate) fn is_type(st: &FileStat, kind: FileType) -> bool {
    FileType::from_raw_mode(st.st_mode) == kind
}

/// Checks a directory on the walk: trusted owner, and not writable by group or
/// others unless it is a root-owned sticky directory such as `/tmp`.
pub(crate) fn check_dir(st: &FileStat, path: &Path, trust: Trust) -> Result<(), FsError> {
    if !is_type(st, FileType::Directory) {
        return Err(FsError::NotDirectory { path: path.into() });
    }
    if !trust.allows(st.st_uid) {
        return Err(FsError::BadOwner {
            path: path.into(),
            uid: st.st_uid,
            allowed: trust.owner,
        });
    }
    let sticky_root = st.st_mode & 0o1000 != 0 && st.st_uid == 0;
    if st.st_mode & 0o022 != 0 && !sticky_root {
        return Err(FsError::WritableDir {
            path: path.into(),
            mode: st.st_mode & 0o7777,
        });
    }
    Ok(())
}

/// Explains a failed `openat`: a link, a wrong owner, or the raw error.
pub(crate) fn explain_open_failure(
    dir: &OwnedFd,
    name: &OsStr,
    path: &Path,
    errno: Errno,
    trust: Trust,
) -> FsError {
    // ENOENT needs no explaining (a link is ELOOP under O_NOFOLLOW), and a
    // missing file is the common case: a state file never written, a user
    // never enrolled.
    if errno != Errno::ENOENT
        && let Ok(st) = statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
    {
        if is_type(&st, FileType::Symlink) {
            return FsError::Symlink { path: path.into() };
        }
        if errno == Errno::EACCES && !trust.allows(st.st_uid) {
            return FsError::BadOwner {
                path: path.into(),
                uid: st.st_uid,
                allowed: trust.owner,
            };
        }
    }
    io(path, "opening", errno)
}

pub(crate) const DIR_FLAGS: OFlags = OFlags::PATH
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

pub(crate) fn components(path: &Path) -> Result<Vec<&OsStr>, FsError> {
    let mut out = Vec::new();
    for (i, c) in path.components().enumerate() {
        match c {
            Component::RootDir if i == 0 => {}
            Component::Normal(n) => out.push(n),
            _ => {
                return Err(FsError::BadPath {
                    path: path.into(),
                    why: "must be absolute, without \".\" or \"..\"".into(),
                });
            }
        }
    }
    if !path.is_absolute() {
        return Err(FsError::BadPath {
            path: path.into(),
            why: "must be an absolute path".into(),
        });
    }
    Ok(out)
}
