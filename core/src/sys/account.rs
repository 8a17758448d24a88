//! Local accounts, looked up through NSS (`getpwnam_r`).

use crate::directory::Directory;
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

impl From<nix::unistd::User> for Account {
    fn from(u: nix::unistd::User) -> Self {
        Self {
            name: u.name,
            uid: Uid(u.uid.as_raw()),
            gid: Gid(u.gid.as_raw()),
            home: u.dir,
            shell: u.shell,
        }
    }
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

/// The host's accounts and groups, through NSS (`getpwnam_r`,
/// `getgrouplist`, `getgrnam_r`): the [`Directory`] of a real login.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nss;

fn failed(what: String, errno: nix::errno::Errno) -> LookupError {
    LookupError {
        what,
        why: errno.desc().to_string(),
    }
}

impl Directory for Nss {
    fn user(&self, name: &str) -> Result<Option<Account>, LookupError> {
        nix::unistd::User::from_name(name)
            .map(|u| u.map(Account::from))
            .map_err(|errno| failed("user".into(), errno))
    }

    fn user_by_uid(&self, uid: Uid) -> Result<Option<Account>, LookupError> {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid.as_raw()))
            .map(|u| u.map(Account::from))
            .map_err(|errno| failed(format!("uid {uid}"), errno))
    }

    fn groups_of(&self, account: &Account) -> Result<Vec<String>, LookupError> {
        let what = || format!("the groups of {}", account.name);
        let user = std::ffi::CString::new(account.name.as_bytes())
            .map_err(|_| failed(what(), nix::errno::Errno::EINVAL))?;
        let gids =
            nix::unistd::getgrouplist(&user, nix::unistd::Gid::from_raw(account.gid.as_raw()))
                .map_err(|errno| failed(what(), errno))?;
        let mut names = Vec::with_capacity(gids.len());
        for gid in gids {
            if let Ok(Some(g)) = nix::unistd::Group::from_gid(gid) {
                names.push(g.name);
            }
        }
        Ok(names)
    }

    fn group_exists(&self, name: &str) -> Result<bool, LookupError> {
        nix::unistd::Group::from_name(name)
            .map(|g| g.is_some())
            .map_err(|errno| failed(format!("group \"{name}\""), errno))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_exists_and_nonsense_does_not() {
        let root = Nss.user("root").unwrap().unwrap();
        assert_eq!((root.uid.as_raw(), root.gid.as_raw()), (0, 0));
        assert_eq!(
            Nss.user_by_uid(Uid::from_raw(0)).unwrap().unwrap().name,
            "root"
        );
        assert_eq!(Nss.user("no-such-user-otpgate-test").unwrap(), None);
        assert!(Nss.groups_of(&root).unwrap().contains(&"root".to_string()));
        assert!(Nss.group_exists("root").unwrap());
        assert!(!Nss.group_exists("no-such-group-og").unwrap());
    }
}
