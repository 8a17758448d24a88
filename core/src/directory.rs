//! Where accounts and groups come from: NSS on a server
//! ([`crate::sys::account::Nss`]), a table in tests ([`Table`]). Policy, the
//! gate and the commands ask through [`Directory`], so their rules are
//! unit-tested without root and without real accounts.

use crate::sys::account::{Account, Gid, LookupError, Uid};

/// Accounts and groups. `Ok(None)`/`Ok(false)`: there is no such thing;
/// `Err`: the lookup failed, which must deny, never count as "none".
pub trait Directory {
    /// The account named `name`.
    fn user(&self, name: &str) -> Result<Option<Account>, LookupError>;
    /// The account with uid `uid`.
    fn user_by_uid(&self, uid: Uid) -> Result<Option<Account>, LookupError>;
    /// The names of the groups `account` is in, primary and supplementary.
    fn groups_of(&self, account: &Account) -> Result<Vec<String>, LookupError>;
    /// Whether a group named `name` exists.
    fn group_exists(&self, name: &str) -> Result<bool, LookupError>;
}

/// A directory held in memory: for tests, and for tools that must not
/// consult the host's accounts.
#[derive(Debug, Clone, Default)]
pub struct Table {
    users: Vec<Account>,
    /// (name, gid, listed members)
    groups: Vec<(String, Gid, Vec<String>)>,
    /// Every lookup fails (NSS down).
    broken: bool,
}

impl Table {
    /// An account `name` with uid and primary gid `id`, home
    /// `/home/NAME`, shell `/bin/sh`.
    pub fn with_user(mut self, name: &str, id: u32) -> Self {
        self.users.push(Account {
            name: name.to_string(),
            uid: Uid::from_raw(id),
            gid: Gid::from_raw(id),
            home: format!("/home/{name}").into(),
            shell: "/bin/sh".into(),
        });
        self
    }

    /// A group `name` with gid `gid` listing `members`.
    pub fn with_group(mut self, name: &str, gid: u32, members: &[&str]) -> Self {
        let members = members.iter().map(|m| m.to_string()).collect();
        self.groups
            .push((name.to_string(), Gid::from_raw(gid), members));
        self
    }

    /// Every lookup fails, as when NSS (sssd, LDAP) cannot answer.
    pub fn broken(mut self) -> Self {
        self.broken = true;
        self
    }

    fn check(&self, what: impl FnOnce() -> String) -> Result<(), LookupError> {
        if self.broken {
            return Err(LookupError {
                what: what(),
                why: "the directory does not answer".into(),
            });
        }
        Ok(())
    }
}

impl Directory for Table {
    fn user(&self, name: &str) -> Result<Option<Account>, LookupError> {
        self.check(|| "user".into())?;
        Ok(self.users.iter().find(|a| a.name == name).cloned())
    }

    fn user_by_uid(&self, uid: Uid) -> Result<Option<Account>, LookupError> {
        self.check(|| format!("uid {uid}"))?;
        Ok(self.users.iter().find(|a| a.uid == uid).cloned())
    }

    fn groups_of(&self, account: &Account) -> Result<Vec<String>, LookupError> {
        self.check(|| format!("the groups of {}", account.name))?;
        Ok(self
            .groups
            .iter()
            .filter(|(_, gid, members)| *gid == account.gid || members.contains(&account.name))
            .map(|(name, ..)| name.clone())
            .collect())
    }

    fn group_exists(&self, name: &str) -> Result<bool, LookupError> {
        self.check(|| format!("group \"{name}\""))?;
        Ok(self.groups.iter().any(|(n, ..)| n == name))
    }
}
