//! Race-free, symlink-free file access for secret and state files.
//!
//! Every path is walked from `/` one component at a time with `openat` and
//! `O_NOFOLLOW`, and every check (owner, mode, type, size) is made on the
//! descriptor that is then used, so swapping in a symlink between check and
//! use gains nothing (the pam_oath CVE-2024-47191 and google-authenticator
//! complaints). Every descriptor is `O_CLOEXEC`. Writes are atomic: temporary
//! file in the same directory, fsync, rename, fsync of the directory.

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstat, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fsync, unlinkat};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// What went wrong with a file or directory, phrased for the administrator:
/// each variant's message says what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsError {
    NotFound {
        path: PathBuf,
    },
    Symlink {
        path: PathBuf,
    },
    BadOwner {
        path: PathBuf,
        uid: u32,
        allowed: u32,
    },
    BadMode {
        path: PathBuf,
        mode: u32,
        forbidden: u32,
    },
    WritableDir {
        path: PathBuf,
        mode: u32,
    },
    NotRegular {
        path: PathBuf,
    },
    NotDirectory {
        path: PathBuf,
    },
    TooLarge {
        path: PathBuf,
        size: u64,
        max: u64,
    },
    PermissionDenied {
        path: PathBuf,
    },
    Locked {
        path: PathBuf,
        seconds: u64,
    },
    Io {
        path: PathBuf,
        op: &'static str,
        errno: Errno,
    },
    BadPath {
        path: PathBuf,
        why: String,
    },
    Identity {
        why: String,
    },
}

impl std::fmt::Display for FsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound { path } => write!(f, "{} does not exist", path.display()),
            Self::Symlink { path } => write!(
                f,
                "{} is a symbolic link; otpgate never follows links: replace it with the real file or directory",
                path.display()
            ),
            Self::BadOwner { path, uid, allowed } => write!(
                f,
                "{} is owned by uid {uid}, but only root or uid {allowed} may own it: run `chown {allowed} {}`",
                path.display(),
                path.display()
            ),
            Self::BadMode {
                path,
                mode,
                forbidden,
            } if *forbidden == 0o022 => write!(
                f,
                "{} has mode {mode:04o}, so group or others can change it: run `chmod go-w {}`",
                path.display(),
                path.display()
            ),
            Self::BadMode { path, mode, .. } => write!(
                f,
                "{} has mode {mode:04o}, so group or others can access it: run `chmod 600 {}`",
                path.display(),
                path.display()
            ),
            Self::WritableDir { path, mode } => write!(
                f,
                "directory {} has mode {mode:04o}, so group or others can write to it: run `chmod go-w {}`",
                path.display(),
                path.display()
            ),
            Self::NotRegular { path } => {
                write!(f, "{} is not a regular file", path.display())
            }
            Self::NotDirectory { path } => write!(f, "{} is not a directory", path.display()),
            Self::TooLarge { path, size, max } => write!(
                f,
                "{} is {size} bytes, larger than the {max}-byte limit: it is not an otpgate file",
                path.display()
            ),
            Self::PermissionDenied { path } => write!(
                f,
                "permission denied opening {}: check the owner and mode of the file and its directories",
                path.display()
            ),
            Self::Locked { path, seconds } => write!(
                f,
                "{} stayed locked by another process for {seconds} s; try again, and look for a stuck login",
                path.display()
            ),
            Self::Io { path, op, errno } => {
                write!(f, "{op} {} failed: {}", path.display(), errno.desc())
            }
            Self::BadPath { path, why } => write!(f, "{}: {why}", path.display()),
            Self::Identity { why } => write!(f, "could not switch file-system identity: {why}"),
        }
    }
}

impl std::error::Error for FsError {}

impl FsError {
    /// True when the file simply is not there (as opposed to being unsafe or unreadable).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

/// Who may own the files and directories on a path: root always, plus `owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trust {
    pub owner: u32,
}

impl Trust {
    pub const ROOT: Self = Self { owner: 0 };

    fn allows(&self, uid: u32) -> bool {
        uid == 0 || uid == self.owner
    }
}

/// An open directory reached without following any link, checked on the way.
#[derive(Debug)]
pub struct SafeDir {
    fd: OwnedFd,
    path: PathBuf,
    trust: Trust,
}

fn io(path: &Path, op: &'static str, errno: Errno) -> FsError {
    match errno {
        Errno::ENOENT => FsError::NotFound { path: path.into() },
        Errno::EACCES | Errno::EPERM => FsError::PermissionDenied { path: path.into() },
        Errno::ENOTDIR => FsError::NotDirectory { path: path.into() },
        _ => FsError::Io {
            path: path.into(),
            op,
            errno,
        },
    }
}

fn is_type(st: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == kind
}

/// Checks a directory on the walk: trusted owner, and not writable by group or
/// others unless it is a root-owned sticky directory such as `/tmp`.
fn check_dir(st: &FileStat, path: &Path, trust: Trust) -> Result<(), FsError> {
    if !is_type(st, SFlag::S_IFDIR) {
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
fn explain_open_failure(
    dir: &OwnedFd,
    name: &OsStr,
    path: &Path,
    errno: Errno,
    trust: Trust,
) -> FsError {
    if let Ok(st) = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        if is_type(&st, SFlag::S_IFLNK) {
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

const DIR_FLAGS: OFlag = OFlag::O_PATH
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

fn components(path: &Path) -> Result<Vec<&OsStr>, FsError> {
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

impl SafeDir {
    /// Opens an existing directory, checking every directory from `/` down.
    pub fn open(path: &Path, trust: Trust) -> Result<Self, FsError> {
        Self::walk(path, trust, None)
    }

    /// Like [`Self::open`], but creates missing directories with `mode`
    /// (owned by the current file-system uid).
    pub fn create_all(path: &Path, trust: Trust, mode: u32) -> Result<Self, FsError> {
        Self::walk(path, trust, Some(mode))
    }

    fn walk(path: &Path, trust: Trust, create: Option<u32>) -> Result<Self, FsError> {
        let parts = components(path)?;
        let root = Path::new("/");
        let mut fd =
            nix::fcntl::open(root, DIR_FLAGS, Mode::empty()).map_err(|e| io(root, "opening", e))?;
        let mut here = PathBuf::from("/");
        let st = fstat(&fd).map_err(|e| io(&here, "checking", e))?;
        check_dir(&st, &here, trust)?;
        for name in parts {
            here.push(name);
            let next = match openat(&fd, name, DIR_FLAGS, Mode::empty()) {
                Ok(next) => next,
                Err(Errno::ENOENT) if create.is_some() => {
                    let mode = Mode::from_bits_truncate(create.unwrap_or(0o700));
                    match mkdirat(&fd, name, mode) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(io(&here, "creating directory", e)),
                    }
                    openat(&fd, name, DIR_FLAGS, Mode::empty())
                        .map_err(|e| explain_open_failure(&fd, name, &here, e, trust))?
                }
                Err(e) => return Err(explain_open_failure(&fd, name, &here, e, trust)),
            };
            let st = fstat(&next).map_err(|e| io(&here, "checking", e))?;
            if is_type(&st, SFlag::S_IFLNK) {
                return Err(FsError::Symlink { path: here });
            }
            check_dir(&st, &here, trust)?;
            fd = next;
        }
        Ok(Self {
            fd,
            path: here,
            trust,
        })
    }

    /// The directory's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Mode and owner of the directory itself.
    pub fn stat(&self) -> Result<FileStat, FsError> {
        fstat(&self.fd).map_err(|e| io(&self.path, "checking", e))
    }

    /// Reads a private file in this directory: a regular file, not a link,
    /// owned by root or the trusted owner, no group/other permission bits, at
    /// most `max` bytes. The contents are wiped from memory when dropped.
    pub fn read_private(&self, name: &OsStr, max: u64) -> Result<Zeroizing<Vec<u8>>, FsError> {
        self.read_checked(name, max, 0o077)
    }

    /// Reads a configuration file: like [`Self::read_private`], but it may be
    /// readable by everyone; only group/other write bits are refused.
    pub fn read_config(&self, name: &OsStr, max: u64) -> Result<Zeroizing<Vec<u8>>, FsError> {
        self.read_checked(name, max, 0o022)
    }

    /// Reads a file whose mode may have no bits in `forbidden` (e.g. 0o027:
    /// group may read, others nothing).
    pub fn read_checked(
        &self,
        name: &OsStr,
        max: u64,
        forbidden: u32,
    ) -> Result<Zeroizing<Vec<u8>>, FsError> {
        let path = self.path.join(name);
        let flags = OFlag::O_RDONLY
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC
            | OFlag::O_NOCTTY
            | OFlag::O_NONBLOCK;
        let fd = openat(&self.fd, name, flags, Mode::empty())
            .map_err(|e| explain_open_failure(&self.fd, name, &path, e, self.trust))?;
        let st = fstat(&fd).map_err(|e| io(&path, "checking", e))?;
        if !is_type(&st, SFlag::S_IFREG) {
            return Err(FsError::NotRegular { path });
        }
        if !self.trust.allows(st.st_uid) {
            return Err(FsError::BadOwner {
                path,
                uid: st.st_uid,
                allowed: self.trust.owner,
            });
        }
        if st.st_mode & forbidden != 0 {
            return Err(FsError::BadMode {
                path,
                mode: st.st_mode & 0o7777,
                forbidden,
            });
        }
        let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
        if size > max {
            return Err(FsError::TooLarge { path, size, max });
        }
        let mut buf = Zeroizing::new(Vec::with_capacity(size as usize));
        let file = File::from(fd);
        file.take(max + 1).read_to_end(&mut buf).map_err(|e| {
            io(
                &path,
                "reading",
                Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            )
        })?;
        if buf.len() as u64 > max {
            return Err(FsError::TooLarge {
                path,
                size: buf.len() as u64,
                max,
            });
        }
        Ok(buf)
    }

    /// Whether `name` exists in this directory (as anything, links included).
    pub fn exists(&self, name: &OsStr) -> Result<bool, FsError> {
        match fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(_) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(io(&self.path.join(name), "checking", e)),
        }
    }

    fn writable_fd(&self) -> Result<OwnedFd, FsError> {
        openat(
            &self.fd,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(&self.path, "opening", e))
    }

    /// Replaces `name` atomically with `data` at `mode`: a reader sees the old
    /// file or the new one, never a mix, also after a crash or power loss.
    /// The temporary file has a unique name (for writers that hold no lock);
    /// temporary files of killed writers are removed afterwards.
    pub fn write_atomic(&self, name: &OsStr, data: &[u8], mode: u32) -> Result<(), FsError> {
        let dir = self.writable_fd()?;
        let mut rnd = [0u8; 8];
        rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, &mut rnd).map_err(|_| {
            FsError::Identity {
                why: "no randomness for a temporary file name".into(),
            }
        })?;
        let tmp_name = format!(
            ".{}.tmp-{}-{}",
            name.to_string_lossy(),
            std::process::id(),
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
        match unlinkat(&dir, tmp, UnlinkatFlags::NoRemoveDir) {
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
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(dir, tmp, flags, Mode::from_bits_truncate(mode & 0o600))
            .map_err(|e| io(&path, "creating a temporary file for", e))?;
        let result = (|| {
            fchmod(&fd, Mode::from_bits_truncate(mode))
                .map_err(|e| io(&path, "setting the mode of", e))?;
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
            fsync(file.as_fd()).map_err(|e| io(&path, "syncing", e))?;
            drop(file);
            renameat(dir, tmp, dir, name).map_err(|e| io(&path, "renaming into place", e))?;
            fsync(dir).map_err(|e| io(&self.path, "syncing directory", e))
        })();
        if result.is_err() {
            let _ = unlinkat(dir, tmp, UnlinkatFlags::NoRemoveDir);
        }
        result
    }

    /// Removes temporary files of `name` left by writers that were killed
    /// mid-write (their process no longer exists). Best effort: a failure
    /// here never fails the write that already succeeded.
    fn remove_stale_temps(&self, dir: &OwnedFd, name: &OsStr) {
        let prefix = format!(".{}.tmp-", name.to_string_lossy());
        let Ok(fd) = dir.try_clone() else { return };
        let Ok(mut listing) = nix::dir::Dir::from_fd(fd) else {
            return;
        };
        let stale: Vec<std::ffi::CString> = listing
            .iter()
            .flatten()
            .filter_map(|entry| {
                let file = entry.file_name().to_str().ok()?;
                let pid: i32 = file
                    .strip_prefix(&prefix)?
                    .split('-')
                    .next()?
                    .parse()
                    .ok()?;
                let dead = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                    == Err(Errno::ESRCH);
                dead.then(|| entry.file_name().to_owned())
            })
            .collect();
        for file in stale {
            let _ = unlinkat(dir, file.as_c_str(), UnlinkatFlags::NoRemoveDir);
        }
    }

    /// Removes `name` (not following links) and syncs the directory. Missing is fine.
    pub fn remove(&self, name: &OsStr) -> Result<bool, FsError> {
        let dir = self.writable_fd()?;
        match unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => {
                fsync(&dir).map_err(|e| io(&self.path, "syncing directory", e))?;
                Ok(true)
            }
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(io(&self.path.join(name), "removing", e)),
        }
    }

    /// Opens (creating if needed) a lock file and takes an exclusive lock on
    /// it, waiting at most `timeout`. The lock is released when the returned
    /// file is dropped. A separate lock file is needed because the atomic
    /// rename replaces the data file's inode.
    pub fn lock(&self, name: &OsStr, timeout: Duration) -> Result<File, FsError> {
        let path = self.path.join(name);
        let flags = OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(&self.fd, name, flags, Mode::from_bits_truncate(0o600))
            .map_err(|e| explain_open_failure(&self.fd, name, &path, e, self.trust))?;
        let st = fstat(&fd).map_err(|e| io(&path, "checking", e))?;
        if !is_type(&st, SFlag::S_IFREG) {
            return Err(FsError::NotRegular { path });
        }
        let file = File::from(fd);
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        // Bounded by both wall time and a count, so a frozen or faked clock
        // cannot turn this into an endless loop.
        for _ in 0..10_000 {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(io(
                        &path,
                        "locking",
                        Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                    ));
                }
            }
            if start.elapsed() >= timeout {
                break;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        Err(FsError::Locked {
            path,
            seconds: timeout.as_secs(),
        })
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
pub fn create_private_file(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc_o_nofollow())
        .open(path)
        .map_err(|e| {
            format!(
                "cannot create {}: {e} (it must not exist yet)",
                path.display()
            )
        })?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("writing {} failed: {e}", path.display()))
}

fn libc_o_nofollow() -> i32 {
    OFlag::O_NOFOLLOW.bits()
}

/// Reads a private file by absolute path (see [`SafeDir::read_private`]).
pub fn read_private_file(
    path: &Path,
    trust: Trust,
    max: u64,
) -> Result<Zeroizing<Vec<u8>>, FsError> {
    let (dir, name) = split(path)?;
    SafeDir::open(dir, trust)?.read_private(name, max)
}

/// Splits an absolute file path into its directory and file name.
pub fn split(path: &Path) -> Result<(&Path, &OsStr), FsError> {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) if path.is_absolute() => Ok((dir, name)),
        _ => Err(FsError::BadPath {
            path: path.into(),
            why: "must be an absolute path to a file".into(),
        }),
    }
}

/// While alive, file-system access uses another user's uid and gid (Linux
/// `setfsuid`/`setfsgid`, which affect only the calling thread, so a
/// multi-threaded host process is not disturbed). Dropping restores the
/// previous identity. A no-op unless running as root for a non-root user.
#[derive(Debug)]
pub struct FsIdentity {
    restore: Option<(Uid, Gid)>,
}

impl FsIdentity {
    pub fn become_user(uid: u32, gid: u32) -> Result<Self, FsError> {
        if !nix::unistd::geteuid().is_root() || uid == 0 {
            return Ok(Self { restore: None });
        }
        let prev_gid = nix::unistd::setfsgid(Gid::from_raw(gid));
        let prev_uid = nix::unistd::setfsuid(Uid::from_raw(uid));
        let guard = Self {
            restore: Some((prev_uid, prev_gid)),
        };
        // setfsuid reports failure only by not changing: ask again to confirm.
        let now_uid = nix::unistd::setfsuid(Uid::from_raw(u32::MAX));
        let now_gid = nix::unistd::setfsgid(Gid::from_raw(u32::MAX));
        if now_uid.as_raw() != uid || now_gid.as_raw() != gid {
            return Err(FsError::Identity {
                why: format!("setfsuid({uid})/setfsgid({gid}) did not take effect"),
            });
        }
        Ok(guard)
    }
}

impl Drop for FsIdentity {
    fn drop(&mut self) {
        if let Some((uid, gid)) = self.restore.take() {
            nix::unistd::setfsuid(uid);
            nix::unistd::setfsgid(gid);
        }
    }
}

/// Renders bytes of a path component for messages.
pub fn show(name: &OsStr) -> String {
    String::from_utf8_lossy(name.as_bytes()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("otpgate-fs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    fn private(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn reads_a_private_file() {
        let d = tmp("read");
        private(&d.join("f"), "hello");
        assert_eq!(
            &*read_private_file(&d.join("f"), Trust::ROOT, 100).unwrap(),
            b"hello"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_links_modes_sizes_and_types() {
        let d = tmp("refuse");
        private(&d.join("f"), "hello");
        symlink(d.join("f"), d.join("link")).unwrap();
        assert!(matches!(
            read_private_file(&d.join("link"), Trust::ROOT, 100),
            Err(FsError::Symlink { .. })
        ));
        std::fs::create_dir(d.join("realdir")).unwrap();
        private(&d.join("realdir/g"), "x");
        symlink(d.join("realdir"), d.join("dirlink")).unwrap();
        assert!(matches!(
            read_private_file(&d.join("dirlink/g"), Trust::ROOT, 100),
            Err(FsError::Symlink { .. })
        ));
        assert!(matches!(
            read_private_file(&d.join("f"), Trust::ROOT, 3),
            Err(FsError::TooLarge { .. })
        ));
        std::fs::set_permissions(d.join("f"), std::fs::Permissions::from_mode(0o604)).unwrap();
        assert!(matches!(
            read_private_file(&d.join("f"), Trust::ROOT, 100),
            Err(FsError::BadMode { .. })
        ));
        assert!(matches!(
            read_private_file(&d.join("realdir"), Trust::ROOT, 100),
            Err(FsError::NotRegular { .. })
        ));
        assert!(
            read_private_file(&d.join("missing"), Trust::ROOT, 100)
                .unwrap_err()
                .is_not_found()
        );
        assert!(matches!(
            read_private_file(Path::new("relative"), Trust::ROOT, 100),
            Err(FsError::BadPath { .. })
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refuses_files_of_untrusted_owners_and_writable_dirs() {
        let d = tmp("owner");
        private(&d.join("f"), "x");
        std::os::unix::fs::chown(d.join("f"), Some(4242), None).unwrap();
        assert!(matches!(
            read_private_file(&d.join("f"), Trust::ROOT, 100),
            Err(FsError::BadOwner { uid: 4242, .. })
        ));
        assert!(read_private_file(&d.join("f"), Trust { owner: 4242 }, 100).is_ok());
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o775)).unwrap();
        assert!(matches!(
            read_private_file(&d.join("f"), Trust { owner: 4242 }, 100),
            Err(FsError::WritableDir { .. })
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_files() {
        let d = tmp("write");
        let dir = SafeDir::open(&d, Trust::ROOT).unwrap();
        dir.write_atomic(OsStr::new("f"), b"one", 0o600).unwrap();
        dir.write_atomic(OsStr::new("f"), b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(d.join("f")).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(d.join("f")).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
        // A link planted at the target is replaced, never followed.
        private(&d.join("victim"), "keep");
        symlink(d.join("victim"), d.join("g")).unwrap();
        dir.write_atomic(OsStr::new("g"), b"new", 0o600).unwrap();
        assert_eq!(std::fs::read(d.join("victim")).unwrap(), b"keep");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn create_all_makes_private_directories() {
        let d = tmp("create");
        let dir = SafeDir::create_all(&d.join("a/b"), Trust::ROOT, 0o700).unwrap();
        assert_eq!(dir.path(), d.join("a/b"));
        assert_eq!(
            std::fs::metadata(d.join("a/b"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn fs_identity_switches_and_restores() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test switches file-system ids and must run as root (CI does)"
        );
        let d = tmp("ident");
        private(&d.join("rootonly"), "x");
        {
            let _id = FsIdentity::become_user(65534, 65534).unwrap();
            assert!(matches!(
                read_private_file(&d.join("rootonly"), Trust::ROOT, 100),
                Err(FsError::PermissionDenied { .. })
            ));
        }
        assert!(read_private_file(&d.join("rootonly"), Trust::ROOT, 100).is_ok());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
