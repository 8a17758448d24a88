//! The host's accounts as `otpgate audit` and `migrate` see them:
//! /etc/passwd, /etc/shells and the groups the config names.

use otpgate_core::admin::report::{AccountsError, GroupMembers, parse_passwd};
use otpgate_core::sys::account::{Account, Gid};
use std::path::Path;

/// The accounts `otpgate audit` reports on: every local account that can log
/// in, plus every member (primary or supplementary) of `groups` (the
/// config's `enforce_groups`), each once.
pub fn audit_accounts(groups: &[String]) -> Result<Vec<Account>, AccountsError> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| AccountsError(format!("reading /etc/passwd failed: {e}")))?;
    let all = parse_passwd(&passwd);
    let mut out = with_login_shell(all.clone());
    for name in groups {
        let group = nix::unistd::Group::from_name(name)
            .map_err(|e| AccountsError(format!("looking up group {name} failed: {}", e.desc())))?
            .ok_or_else(|| {
                AccountsError(format!("enforce_groups: group \"{name}\" does not exist"))
            })?;
        for a in &all {
            let member = a.gid.as_raw() == group.gid.as_raw() || group.mem.contains(&a.name);
            if member && !out.iter().any(|o| o.name == a.name) {
                out.push(a.clone());
            }
        }
    }
    Ok(out)
}

/// Looks the named groups up (the system's part of [`audit_scope`]).
pub fn group_members(names: &[String]) -> Result<Vec<GroupMembers>, AccountsError> {
    names
        .iter()
        .map(|name| {
            let g = nix::unistd::Group::from_name(name)
                .map_err(|e| {
                    AccountsError(format!("looking up group {name} failed: {}", e.desc()))
                })?
                .ok_or_else(|| AccountsError(format!("group \"{name}\" does not exist")))?;
            Ok(GroupMembers {
                gid: Gid::from_raw(g.gid.as_raw()),
                members: g.mem,
            })
        })
        .collect()
}

/// Local accounts that can log in: a shell listed in /etc/shells.
pub fn login_accounts() -> Result<Vec<Account>, AccountsError> {
    let passwd = std::fs::read_to_string("/etc/passwd")
        .map_err(|e| AccountsError(format!("reading /etc/passwd failed: {e}")))?;
    Ok(with_login_shell(parse_passwd(&passwd)))
}

/// The accounts whose shell is listed in /etc/shells.
fn with_login_shell(accounts: Vec<Account>) -> Vec<Account> {
    let shells = std::fs::read_to_string("/etc/shells").unwrap_or_default();
    let shells: Vec<&Path> = shells
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('/'))
        .map(Path::new)
        .collect();
    accounts
        .into_iter()
        .filter(|a| shells.contains(&a.shell.as_path()))
        .collect()
}
