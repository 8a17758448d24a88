//! Reaching a directory without following links, and reading from it.

use super::*;

/// An open directory reached without following any link, checked on the way.
#[derive(Debug)]
pub struct SafeDir {
    pub(super) fd: OwnedFd,
    pub(super) path: PathBuf,
    pub(super) trust: Trust,
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
        let fd = rustix::fs::open(root, DIR_FLAGS, Mode::empty())
            .map_err(|e| io(root, "opening", errno(e)))?;
        let here = PathBuf::from("/");
        let st = fstat(&fd).map_err(|e| io(&here, "checking", e))?;
        check_dir(&st, &here, trust)?;
        Self::descend(fd, here, &parts, trust, create)
    }

    /// Opens `path`, which lies below this directory, walking only the
    /// components under it (the checks are the same as [`Self::open`]'s:
    /// no links, trusted owners, not writable by others). Saves walking the
    /// whole path from `/` again.
    pub fn open_below(&self, path: &Path) -> Result<Self, FsError> {
        self.open_below_as(path, self.trust)
    }

    /// [`Self::open_below`] trusting another owner below this directory: a
    /// directory checked as root's alone (such as `/home`) serves every
    /// user's home below it.
    pub fn open_below_as(&self, path: &Path, trust: Trust) -> Result<Self, FsError> {
        let rel = path
            .strip_prefix(&self.path)
            .map_err(|_| FsError::BadPath {
                path: path.into(),
                why: format!("is not below {}", self.path.display()),
            })?;
        let mut parts = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(n) => parts.push(n),
                _ => {
                    return Err(FsError::BadPath {
                        path: path.into(),
                        why: "must not contain \".\" or \"..\"".into(),
                    });
                }
            }
        }
        let Some((first, rest)) = parts.split_first() else {
            let fd = rustix::io::fcntl_dupfd_cloexec(&self.fd, 0)
                .map_err(|e| io(&self.path, "opening", errno(e)))?;
            return Ok(Self {
                fd,
                path: self.path.clone(),
                trust,
            });
        };
        // The first step from our own descriptor, without duplicating it.
        let mut here = self.path.clone();
        let fd = Self::step(&self.fd, &mut here, first, trust, None)?;
        Self::descend(fd, here, rest, trust, None)
    }

    fn descend(
        mut fd: OwnedFd,
        mut here: PathBuf,
        parts: &[&OsStr],
        trust: Trust,
        create: Option<u32>,
    ) -> Result<Self, FsError> {
        for &name in parts {
            fd = Self::step(&fd, &mut here, name, trust, create)?;
        }
        Ok(Self {
            fd,
            path: here,
            trust,
        })
    }

    /// One step down: opens directory `name` in `fd` (creating it with
    /// `create`'s mode if missing) and checks it; `here` becomes its path.
    fn step(
        fd: &OwnedFd,
        here: &mut PathBuf,
        name: &OsStr,
        trust: Trust,
        create: Option<u32>,
    ) -> Result<OwnedFd, FsError> {
        here.push(name);
        let next = match openat(fd, name, DIR_FLAGS, Mode::empty()).map_err(errno) {
            Ok(next) => next,
            Err(Errno::ENOENT) if create.is_some() => {
                let mode = Mode::from_bits_truncate(create.unwrap_or(0o700));
                match mkdirat(fd, name, mode).map_err(errno) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(io(here, "creating directory", e)),
                }
                openat(fd, name, DIR_FLAGS, Mode::empty())
                    .map_err(|e| explain_open_failure(fd, name, here, errno(e), trust))?
            }
            Err(e) => return Err(explain_open_failure(fd, name, here, e, trust)),
        };
        let st = fstat(&next).map_err(|e| io(here, "checking", e))?;
        if is_type(&st, FileType::Symlink) {
            return Err(FsError::Symlink { path: here.clone() });
        }
        check_dir(&st, here, trust)?;
        Ok(next)
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
        // Built only for a message: most reads succeed.
        let path = || self.path.join(name);
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        let fd = openat(&self.fd, name, flags, Mode::empty())
            .map_err(|e| explain_open_failure(&self.fd, name, &path(), errno(e), self.trust))?;
        let st = fstat(&fd).map_err(|e| io(&path(), "checking", e))?;
        if !is_type(&st, FileType::RegularFile) {
            return Err(FsError::NotRegular { path: path() });
        }
        if !self.trust.allows(st.st_uid) {
            return Err(FsError::BadOwner {
                path: path(),
                uid: st.st_uid,
                allowed: self.trust.owner,
            });
        }
        if st.st_mode & forbidden != 0 {
            return Err(FsError::BadMode {
                path: path(),
                mode: st.st_mode & 0o7777,
                forbidden,
            });
        }
        let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
        if size > max {
            return Err(FsError::TooLarge {
                path: path(),
                size,
                max,
            });
        }
        let mut buf = Zeroizing::new(Vec::with_capacity(size as usize));
        let file = File::from(fd);
        file.take(max + 1).read_to_end(&mut buf).map_err(|e| {
            io(
                &path(),
                "reading",
                Errno::from_raw(e.raw_os_error().unwrap_or(0)),
            )
        })?;
        if buf.len() as u64 > max {
            return Err(FsError::TooLarge {
                path: path(),
                size: buf.len() as u64,
                max,
            });
        }
        Ok(buf)
    }

    /// The names in this directory (one read of it, for callers about to
    /// look up thousands of names that mostly do not exist).
    pub fn names(&self) -> Result<std::collections::HashSet<std::ffi::OsString>, FsError> {
        let fd = openat(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io(&self.path, "opening", errno(e)))?;
        let mut dir = rustix::fs::Dir::new(fd).map_err(|e| io(&self.path, "listing", errno(e)))?;
        let mut names = std::collections::HashSet::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(|e| io(&self.path, "listing", errno(e)))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.insert(OsStr::from_bytes(name).to_os_string());
            }
        }
        Ok(names)
    }

    /// Whether `name` exists in this directory (as anything, links included).
    pub fn exists(&self, name: &OsStr) -> Result<bool, FsError> {
        match statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(errno) {
            Ok(_) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(io(&self.path.join(name), "checking", e)),
        }
    }

    /// Removes `name` (not following links) and syncs the directory. Missing is fine.
    pub fn remove(&self, name: &OsStr) -> Result<bool, FsError> {
        let dir = self.writable_fd()?;
        match unlinkat(&dir, name, AtFlags::empty()).map_err(errno) {
            Ok(()) => {
                fsync(&dir).map_err(|e| io(&self.path, "syncing directory", errno(e)))?;
                Ok(true)
            }
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(io(&self.path.join(name), "removing", e)),
        }
    }
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

/// Renders bytes of a path component for messages.
pub fn show(name: &OsStr) -> String {
    String::from_utf8_lossy(name.as_bytes()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::FsIdentity;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn tmp(name: &str) -> crate::fs::Scratch {
        let dir = crate::fs::Scratch::new(&format!("fs-{name}"));
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
    }

    #[test]
    fn fs_identity_switches_and_restores() {
        assert!(
            rustix::process::geteuid().is_root(),
            "this test switches file-system ids and must run as root (CI does)"
        );
        let d = tmp("ident");
        private(&d.join("rootonly"), "x");
        {
            let _id = FsIdentity::become_user(65534.into(), 65534.into()).unwrap();
            assert!(matches!(
                read_private_file(&d.join("rootonly"), Trust::ROOT, 100),
                Err(FsError::PermissionDenied { .. })
            ));
        }
        assert!(read_private_file(&d.join("rootonly"), Trust::ROOT, 100).is_ok());
    }
}
