//! What can go wrong with a secret or state file, phrased for the
//! administrator (the link-free walks that find out are in otpgate-os).

use std::path::PathBuf;

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
        /// The system's word for it ("No such device", …).
        why: String,
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
            Self::Io { path, op, why } => {
                write!(f, "{op} {} failed: {why}", path.display())
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
