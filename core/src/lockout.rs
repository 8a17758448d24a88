//! Lockout and the trust window: counting wrong codes, the lock they set,
//! remembered addresses, and pulling back times written while the clock was
//! fast. Pure: data and a time in, a decision out.

use crate::store::state::{Remembered, UserState};

/// Longest `remember_minutes` any service may set, in seconds: entries older
/// than this cannot be honoured anywhere and are dropped.
pub const MAX_REMEMBER_SECONDS: u64 = 10_080 * 60;
/// Remembered addresses kept per user (the oldest is dropped).
pub const MAX_REMEMBERED: usize = 16;

/// Clock limits applied when state is read: a time stored while the clock
/// was wrong never outlives the fault (see [`UserState::clamp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub lockout_seconds: u64,
}

impl Limits {
    /// The limits a config sets.
    pub fn of(config: &crate::config::Config) -> Self {
        Self {
            lockout_seconds: config.lockout_seconds,
        }
    }
}

impl UserState {
    /// Pulls times that lie in the future (written while the clock was
    /// fast) back to `now`: a lockout then lasts at most `lockout_seconds`
    /// from now, a grace period at most its days from now, a remembered
    /// address at most its minutes from now, and old failures expire.
    /// Returns whether anything changed: the caller must then write the
    /// state, or the clamp would be redone from the stored time at every
    /// read and never end.
    pub fn clamp(&mut self, now: u64, limits: Limits) -> bool {
        let before = self.clone();
        if let Some(until) = self.locked_until {
            self.locked_until = Some(until.min(now.saturating_add(limits.lockout_seconds)));
        }
        for t in &mut self.failures {
            *t = (*t).min(now);
        }
        if let Some(first) = self.first_seen {
            self.first_seen = Some(first.min(now));
        }
        for r in &mut self.remembered {
            r.at = r.at.min(now);
        }
        *self != before
    }

    /// Whether the second factor is locked at `now`, and until when.
    pub fn locked_at(&self, now: u64) -> Option<u64> {
        self.locked_until.filter(|until| *until > now)
    }

    /// Counts a wrong code; locks when `max` are within `window` seconds.
    /// Returns the lock's end if this failure caused one.
    pub fn record_failure(&mut self, now: u64, max: u32, window: u64, lockout: u64) -> Option<u64> {
        if max == 0 {
            return None;
        }
        self.failures.retain(|t| t.saturating_add(window) > now);
        self.failures.push(now);
        if self.failures.len() >= max as usize {
            let until = now.saturating_add(lockout);
            self.locked_until = Some(until);
            self.failures.clear();
            return Some(until);
        }
        None
    }

    /// Clears failures and any lock (after a good code, or `reset --unlock`).
    pub fn clear_failures(&mut self) {
        self.failures.clear();
        self.locked_until = None;
    }

    /// Whether a good code from `address` on `service` is still trusted:
    /// within `minutes` (the reading service's `remember_minutes`) of that
    /// code, and while the credentials are the ones that were trusted.
    pub fn remembered(
        &self,
        service: &str,
        address: &str,
        credentials: &str,
        now: u64,
        minutes: u32,
    ) -> bool {
        minutes > 0
            && self.remembered.iter().any(|r| {
                r.service == service
                    && r.address == address
                    && r.credentials == credentials
                    && r.at.saturating_add(u64::from(minutes) * 60) > now
            })
    }

    /// Trusts `address` on `service` from `now`. Entries for other
    /// credentials and entries no service can honour any more are dropped;
    /// at most [`MAX_REMEMBERED`] are kept (the oldest goes).
    pub fn remember(&mut self, service: &str, address: &str, credentials: &str, now: u64) {
        self.remembered.retain(|r| {
            r.credentials == credentials
                && !(r.service == service && r.address == address)
                && r.at.saturating_add(MAX_REMEMBER_SECONDS) > now
        });
        self.remembered.push(Remembered {
            service: service.to_string(),
            address: address.to_string(),
            at: now,
            credentials: credentials.to_string(),
        });
        self.remembered.sort_by_key(|r| r.at);
        let excess = self.remembered.len().saturating_sub(MAX_REMEMBERED);
        self.remembered.drain(..excess);
    }

    /// Drops every remembered address (credentials changed, disable, reset).
    pub fn forget_addresses(&mut self) {
        self.remembered.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_lock_and_expire() {
        let mut s = UserState::default();
        assert_eq!(s.record_failure(100, 3, 60, 900), None);
        assert_eq!(s.record_failure(110, 3, 60, 900), None);
        // The first failure has left the window by 161: still two in it.
        assert_eq!(s.record_failure(161, 3, 60, 900), None);
        assert_eq!(s.record_failure(162, 3, 60, 900), Some(1062));
        assert_eq!(s.locked_at(1000), Some(1062));
        assert_eq!(s.locked_at(1062), None);
        s.clear_failures();
        assert_eq!(s.locked_at(1000), None);
        assert_eq!(
            UserState::default().record_failure(1, 0, 60, 900),
            None,
            "0 disables the lockout"
        );
    }

    #[test]
    fn times_from_a_fast_clock_are_clamped_to_now() {
        let day = 86_400;
        let mut s = UserState {
            locked_until: Some(10 * day),
            failures: vec![5 * day, 5 * day],
            first_seen: Some(3650 * day),
            ..UserState::default()
        };
        s.remember("sshd", "192.0.2.1", "c", 9 * day);
        let limits = Limits {
            lockout_seconds: 900,
        };
        assert!(s.clamp(day, limits), "a clamp reports a change to write");
        assert!(!s.clamp(day + 10, limits), "once written, nothing moves");
        assert_eq!(s.locked_at(day), Some(day + 900));
        assert_eq!(s.failures, vec![day, day]);
        assert_eq!(s.first_seen, Some(day));
        assert!(s.remembered("sshd", "192.0.2.1", "c", day, 10));
        assert!(!s.remembered("sshd", "192.0.2.1", "c", day + 600, 10));
    }

    #[test]
    fn remembered_addresses_are_per_service_per_credentials_and_capped() {
        let mut s = UserState::default();
        s.remember("sshd", "192.0.2.1", "c1", 1000);
        assert!(s.remembered("sshd", "192.0.2.1", "c1", 1000 + 599, 10));
        assert!(!s.remembered("sshd", "192.0.2.1", "c1", 1000 + 600, 10));
        assert!(!s.remembered("sudo", "192.0.2.1", "c1", 1001, 10));
        assert!(!s.remembered("sshd", "192.0.2.1", "c1", 1001, 0));
        assert!(!s.remembered("sshd", "192.0.2.1", "c2", 1001, 10));
        s.remember("sshd", "192.0.2.2", "c2", 1002);
        assert_eq!(s.remembered.len(), 1, "entries of old credentials go");
        for i in 0..40 {
            s.remember("sshd", &format!("198.51.100.{i}"), "c2", 2000 + i);
        }
        assert_eq!(s.remembered.len(), MAX_REMEMBERED);
        assert!(s.remembered("sshd", "198.51.100.39", "c2", 2100, 10));
        assert!(!s.remembered("sshd", "198.51.100.0", "c2", 2100, 10));
    }
}
