//! Accounts as otpgate needs them: name, typed ids, home, shell (looked
//! up through a [`crate::directory::Directory`]).

use std::path::PathBuf;

/// A user id. Typed, so a uid can never be passed where a gid belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uid(u32);

/// A group id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gid(u32);

impl Uid {
    pub const fn from_raw(uid: u32) -> Self {
        Self(uid)
    }
    pub const fn as_raw(self) -> u32 {
        self.0
    }
    pub const fn is_root(self) -> bool {
        self.0 == 0
    }
}

impl Gid {
    pub const fn from_raw(gid: u32) -> Self {
        Self(gid)
    }
    pub const fn as_raw(self) -> u32 {
        self.0
    }
}

impl From<u32> for Uid {
    fn from(uid: u32) -> Self {
        Self(uid)
    }
}

impl From<u32> for Gid {
    fn from(gid: u32) -> Self {
        Self(gid)
    }
}

impl std::fmt::Display for Uid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for Gid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The parts of a passwd entry otpgate needs. Ids are typed, so a uid can
/// never be passed where a gid belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
    pub home: PathBuf,
    pub shell: PathBuf,
}

/// The account database (NSS) could not answer: this must deny, never count
/// as "no such user".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupError {
    /// What was looked up ("user", "uid 1000", "the groups of alice", "group wheel").
    pub what: String,
    /// Why it failed (the error NSS gave).
    pub why: String,
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "looking up {} failed: {}; check NSS (/etc/nsswitch.conf, sssd)",
            self.what, self.why
        )
    }
}

impl std::error::Error for LookupError {}
