//! `otpgate migrate`: moves this server's enrollments (secret files, by the
//! config's `secret_path`) and their login state (`state_dir`) into the
//! fleet store. Idempotent: an account the store already has keeps its
//! enrollment, and this server's replay memory and used recovery codes are
//! merged into its state, so no code used on any server becomes usable
//! again; an account the fleet removed stays removed.

use crate::store::daemon::DaemonStore;
use crate::store::files::FileStore;
use otpgate_core::config::Config;
use otpgate_core::fleet::protocol::Imported;
use otpgate_core::store::Store;
use otpgate_core::sys::account::Account;

/// What happened to one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moved {
    /// Not enrolled on this server: nothing to move.
    NotEnrolled,
    Done(Imported),
    Failed(String),
}

/// Moves each of `accounts` that has an enrollment in files into `fleet`
/// (with `dry_run`, only says what it would do).
pub fn migrate(
    config: &Config,
    accounts: &[Account],
    fleet: &DaemonStore,
    dry_run: bool,
) -> Vec<(String, Moved)> {
    let files = FileStore::new(config);
    accounts
        .iter()
        .map(|a| (a.name.clone(), move_one(&files, fleet, a, dry_run)))
        .collect()
}

fn move_one(files: &FileStore, fleet: &DaemonStore, account: &Account, dry_run: bool) -> Moved {
    let enrollment = match files.load(account) {
        Ok(Some(e)) => e,
        Ok(None) => return Moved::NotEnrolled,
        Err(e) => return Moved::Failed(e.to_string()),
    };
    let state = match files.read_state(account) {
        Ok(s) => s,
        Err(e) => return Moved::Failed(e.to_string()),
    };
    match fleet.import(account, &enrollment, &state, dry_run) {
        Ok(done) => Moved::Done(done),
        Err(e) => Moved::Failed(e.to_string()),
    }
}

/// One line per account moved or not, for the terminal.
pub fn describe(user: &str, moved: &Moved, dry_run: bool) -> Option<String> {
    let would = if dry_run { "would be " } else { "" };
    Some(match moved {
        Moved::NotEnrolled => return None,
        Moved::Done(Imported::Added) => {
            format!(
                "{user}: {would}moved into the fleet store (devices, recovery codes, replay state)"
            )
        }
        Moved::Done(Imported::AlreadyThere) => format!(
            "{user}: already in the fleet store; {would}merged this server's used codes and replay memory into it"
        ),
        Moved::Done(Imported::Removed) => format!(
            "{user}: removed in the fleet store (otpgate disable or reset); left as it is — this server's file does not bring it back"
        ),
        Moved::Done(Imported::Conflict) => format!(
            "{user}: the fleet store has another enrollment for {user} (made on another server); \
             left as it is — the user logs in with that one, or run `otpgate reset --user {user}` and migrate again"
        ),
        Moved::Failed(why) => format!("{user}: not moved: {why}"),
    })
}
