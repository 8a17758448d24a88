//! What a daemon believes of the fleet store: the database stores, the key
//! decides. Someone who can write the database without `secret_key_file`
//! cannot forge a row (enrollments are sealed, states MACed), but could
//! write back an older genuine row, or delete one. Every sealed row has a
//! counter that only grows (enrollment rows: [`next_counter`]; state rows:
//! their compare-and-set version), rows are never deleted (a removal is a
//! sealed removal record), and each otpgated remembers the highest
//! counters it has seen per account ([`Seen`]). A row older than that, or
//! a missing row for an account it has seen, is refused with a message
//! naming [`ACCEPT_COMMAND`], never used.

use serde::{Deserialize, Serialize};

/// The command that makes a daemon accept the store as it is now (after a
/// legitimate restore from a backup).
pub const ACCEPT_COMMAND: &str = "otpgate accept-restore";

/// The highest counters a daemon has seen for one account (0: none).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seen {
    /// Of the enrollment row (an enrollment or a removal record).
    pub enrollment: u64,
    /// The version of the login-state row.
    pub state: u64,
}

impl Seen {
    /// Whether this daemon has seen any row of the account.
    pub fn any(&self) -> bool {
        self.enrollment > 0 || self.state > 0
    }

    /// `self` raised to what `other` has seen (never lowered).
    pub fn raised(self, other: Seen) -> Seen {
        Seen {
            enrollment: self.enrollment.max(other.enrollment),
            state: self.state.max(other.state),
        }
    }
}

/// Which row of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    Enrollment,
    State,
}

impl Row {
    fn name(self) -> &'static str {
        match self {
            Self::Enrollment => "enrollment",
            Self::State => "login state",
        }
    }
}

/// A row the daemon refuses to believe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// Older than one this daemon has seen.
    Older {
        user: String,
        row: Row,
        found: u64,
        seen: u64,
    },
    /// Missing, though this daemon has seen one.
    Missing { user: String, row: Row, seen: u64 },
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (user, what) = match self {
            Self::Older {
                user,
                row,
                found,
                seen,
            } => (
                user,
                format!(
                    "the fleet store's {} row of {user:?} is older than one this server has seen \
                     (counter {found}, seen {seen}): it was written back from the past",
                    row.name()
                ),
            ),
            Self::Missing { user, row, seen } => (
                user,
                format!(
                    "the fleet store has no {} row for {user:?}, but this server has seen one \
                     (counter {seen}): it was deleted",
                    row.name()
                ),
            ),
        };
        write!(
            f,
            "{what} — by a restore from a backup, or by someone who can write the database \
             without the key; {user:?} is denied until then. After a legitimate restore run \
             `{ACCEPT_COMMAND} --user {user}` (or `{ACCEPT_COMMAND}` for every account) as root on this server; \
             otherwise restore the newer rows"
        )
    }
}

impl std::error::Error for Stale {}

/// Decides whether a row with counter `found` (`None`: no row) may be
/// believed, given the highest counter `seen` for it (0: never seen).
pub fn check(user: &str, row: Row, seen: u64, found: Option<u64>) -> Result<(), Stale> {
    match found {
        None if seen > 0 => Err(Stale::Missing {
            user: user.to_string(),
            row,
            seen,
        }),
        None => Ok(()),
        Some(found) if found < seen => Err(Stale::Older {
            user: user.to_string(),
            row,
            found,
            seen,
        }),
        Some(_) => Ok(()),
    }
}

/// The counter for a new enrollment row (or removal record): above the
/// row it replaces and above everything this daemon has seen, and at least
/// the time in microseconds, so that a row written after an attacker
/// deleted one is still newer than what every other server remembers.
pub fn next_counter(previous: u64, seen: u64, now_micros: u64) -> u64 {
    previous.max(seen).saturating_add(1).max(now_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_never_seen_or_as_new_is_believed() {
        assert_eq!(check("a", Row::Enrollment, 0, None), Ok(()));
        assert_eq!(check("a", Row::Enrollment, 0, Some(3)), Ok(()));
        assert_eq!(check("a", Row::State, 5, Some(5)), Ok(()));
        assert_eq!(check("a", Row::State, 5, Some(9)), Ok(()));
    }

    #[test]
    fn an_older_or_missing_row_is_refused_naming_the_command() {
        let older = check("alice", Row::Enrollment, 7, Some(6)).unwrap_err();
        assert!(matches!(
            older,
            Stale::Older {
                found: 6,
                seen: 7,
                ..
            }
        ));
        let text = older.to_string();
        assert!(
            text.contains("older than one this server has seen"),
            "{text}"
        );
        assert!(
            text.contains("`otpgate accept-restore --user alice`"),
            "{text}"
        );
        let missing = check("alice", Row::State, 2, None).unwrap_err();
        assert!(
            missing.to_string().contains("no login state row"),
            "{missing}"
        );
    }

    #[test]
    fn counters_only_grow() {
        assert_eq!(next_counter(0, 0, 0), 1);
        assert_eq!(next_counter(5, 9, 0), 10);
        assert_eq!(next_counter(5, 0, 1_000), 1_000);
        assert_eq!(next_counter(u64::MAX, 0, 0), u64::MAX);
        let seen = Seen {
            enrollment: 4,
            state: 1,
        };
        assert_eq!(
            seen.raised(Seen {
                enrollment: 2,
                state: 8
            }),
            Seen {
                enrollment: 4,
                state: 8
            }
        );
        assert!(!Seen::default().any() && seen.any());
    }
}
