//! Local accounts, looked up through NSS (`getpwnam_r`).

use std::path::PathBuf;

/// The parts of a passwd entry otpgate needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    pub shell: PathBuf,
}

impl From<nix::unistd::User> for Account {
    fn from(u: nix::unistd::User) -> Self {
        Self {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
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
pub fn by_uid(uid: u32) -> Result<Option<Account>, String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .map(|u| u.map(Account::from))
        .map_err(|e| format!("looking up uid {uid} failed: {}", e.desc()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_exists_and_nonsense_does_not() {
        let root = by_name("root").unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(by_uid(0).unwrap().unwrap().name, "root");
        assert_eq!(by_name("no-such-user-otpgate-test").unwrap(), None);
    }
}
