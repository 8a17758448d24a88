//! Which accounts `otpgate audit` and `migrate` cover: local accounts that
//! can log in, group members, and the store's own.

use crate::directory::Directory;
use crate::sys::account::{Account, Gid, Uid};

/// Fleet mode: adds an entry for each account the store has an
/// enrollment for but `accounts` lacks (an account of this host without a
/// login shell, or one that exists only on other hosts of the fleet).
pub fn add_store_accounts(
    directory: &dyn Directory,
    accounts: &mut Vec<Account>,
    names: &[String],
) {
    for name in names {
        if accounts.iter().any(|a| &a.name == name) {
            continue;
        }
        let local = crate::sys::paths::check_user_name(name)
            .ok()
            .and_then(|()| directory.user(name).ok().flatten());
        accounts.push(local.unwrap_or_else(|| Account {
            name: name.clone(),
            // No account here: the fleet store needs only the name.
            uid: crate::sys::account::Uid::from_raw(u32::MAX),
            gid: crate::sys::account::Gid::from_raw(u32::MAX),
            home: std::path::PathBuf::from("/nonexistent"),
            shell: std::path::PathBuf::from("/usr/sbin/nologin"),
        }));
    }
}

message_error! {
    /// Why the accounts or groups a report covers could not be read.
    AccountsError
}

/// A group as `audit_scope` needs it: its gid and its listed members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMembers {
    pub gid: Gid,
    pub members: Vec<String>,
}

impl GroupMembers {
    pub fn has(&self, a: &Account) -> bool {
        a.gid == self.gid || self.members.contains(&a.name)
    }
}

/// Which of `accounts` `otpgate audit` lists: root, every account whose
/// uid is at least `min_uid`, and every member of `enforced` (the config's
/// `enforce_groups`: they must use a second factor whatever their uid);
/// never a member of `excluded` (`audit_exclude_groups`). The names left
/// out come back too, so the report can say how many and why.
pub fn audit_scope(
    accounts: Vec<Account>,
    min_uid: u32,
    enforced: &[GroupMembers],
    excluded: &[GroupMembers],
) -> (Vec<Account>, Vec<String>) {
    let (mut kept, mut left) = (Vec::new(), Vec::new());
    for a in accounts {
        let uid = a.uid.as_raw();
        let listed = !excluded.iter().any(|g| g.has(&a))
            && (uid == 0 || uid >= min_uid || enforced.iter().any(|g| g.has(&a)));
        if listed {
            kept.push(a);
        } else {
            left.push(a.name);
        }
    }
    (kept, left)
}

/// Parses passwd(5) lines.
pub fn parse_passwd(text: &str) -> Vec<Account> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(Account {
                name: f[0].to_string(),
                uid: Uid::from_raw(f[2].parse().ok()?),
                gid: Gid::from_raw(f[3].parse().ok()?),
                home: f[5].into(),
                shell: f[6].into(),
            })
        })
        .collect()
}
