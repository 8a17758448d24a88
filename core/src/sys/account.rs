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

/// Looks up an account by name. `Ok(None)`: no such user; `Err`: NSS failed
/// (which must deny, not count as "no such user").
pub fn by_name(name: &str) -> Result<Option<Account>, String> {
    nix::unistd::User::from_name(name)
        .map(|u| u.map(Account::from))
        .map_err(|e| format!("looking up user failed: {}", e.desc()))
}

/// Looks up an account by uid.
pub fn by_uid(uid: Uid) -> Result<Option<Account>, String> {
    nix::unistd::User::from_uid(uid)
        .map(|u| u.map(Account::from))
        .map_err(|e| format!("looking up uid {uid} failed: {}", e.desc()))
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
