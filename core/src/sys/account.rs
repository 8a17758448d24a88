//! Local accounts, looked up through NSS (`getpwnam_r`).

use std::path::PathBuf;

pub use nix::unistd::{Gid, Uid};

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
            uid: u.uid,
            gid: u.gid,
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
    pub errno: nix::errno::Errno,
}

impl std::fmt::Display for LookupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "looking up {} failed: {}; check NSS (/etc/nsswitch.conf, sssd)",
            self.what,
            self.errno.desc()
        )
    }
}

impl std::error::Error for LookupError {}

/// Looks up an account by name. `Ok(None)`: no such user; `Err`: NSS failed
/// (which must deny, not count as "no such user").
pub fn by_name(name: &str) -> Result<Option<Account>, LookupError> {
    nix::unistd::User::from_name(name)
        .map(|u| u.map(Account::from))
        .map_err(|errno| LookupError {
            what: "user".into(),
            errno,
        })
}

/// Looks up an account by uid.
pub fn by_uid(uid: Uid) -> Result<Option<Account>, LookupError> {
    nix::unistd::User::from_uid(uid)
        .map(|u| u.map(Account::from))
        .map_err(|errno| LookupError {
            what: format!("uid {uid}"),
            errno,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_exists_and_nonsense_does_not() {
        let root = by_name("root").unwrap().unwrap();
        assert_eq!((root.uid.as_raw(), root.gid.as_raw()), (0, 0));
        assert_eq!(by_uid(Uid::from_raw(0)).unwrap().unwrap().name, "root");
        assert_eq!(by_name("no-such-user-otpgate-test").unwrap(), None);
    }
}
