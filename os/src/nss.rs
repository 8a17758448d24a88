//! The host's accounts and groups, through NSS.

use otpgate_core::directory::Directory;
use otpgate_core::sys::account::{Account, Gid, LookupError, Uid};

fn account(u: nix::unistd::User) -> Account {
    Account {
        name: u.name,
        uid: Uid::from_raw(u.uid.as_raw()),
        gid: Gid::from_raw(u.gid.as_raw()),
        home: u.dir,
        shell: u.shell,
    }
}

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
            .map(|u| u.map(account))
            .map_err(|errno| failed("user".into(), errno))
    }

    fn user_by_uid(&self, uid: Uid) -> Result<Option<Account>, LookupError> {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid.as_raw()))
            .map(|u| u.map(account))
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
