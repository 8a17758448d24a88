//! `otpgate reset --unlock`: ending a lockout, and repairing a state that
//! grew over its size cap.

use super::Error;
use crate::config::Config;
use crate::enrollment::Enrollment;
use crate::lockout::Limits;
use crate::store::{Store, StoreExt as _};
use crate::sys::account::Account;

/// What an unlock did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unlocked {
    /// The lock that was in force, if any.
    pub was_locked_until: Option<u64>,
    /// Entries dropped to make an oversized state fit again.
    pub compacted: usize,
}

/// Clears failures and any lock at `now`. A state over its size cap is
/// compacted to what can still matter for `enrollment` (its devices'
/// memory, its recovery set, addresses trusted for its credentials); a
/// state within the cap keeps everything, so no used code becomes usable.
pub fn unlock(
    store: &dyn Store,
    config: &Config,
    account: &Account,
    enrollment: Option<&Enrollment>,
    now: u64,
) -> Result<Unlocked, Error> {
    let mut result = None;
    store.repair_state(account, &mut |st| {
        st.clamp(now, Limits::of(config));
        let was_locked_until = st.locked_at(now);
        st.clear_failures();
        let compacted = match enrollment.filter(|_| st.too_large()) {
            Some(e) => {
                crate::auth::adopt_legacy(e, st);
                let devices: Vec<String> =
                    e.devices.iter().map(|d| d.secret.fingerprint()).collect();
                st.compact(
                    &devices,
                    e.recovery.as_ref().map(|r| r.salt.as_str()),
                    Some(&e.credentials_fingerprint()),
                )
            }
            None => 0,
        };
        result = Some(Unlocked {
            was_locked_until,
            compacted,
        });
    })?;
    result.ok_or_else(|| Error::System("the store ran no update; nothing was changed".into()))
}

/// Forgets the used codes of a revoked recovery set (root made a new one).
pub fn forget_recovery_set(store: &dyn Store, account: &Account, salt: &str) -> Result<(), Error> {
    Ok(store.update(account, |st| st.forget_recovery_set(salt))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otp::TotpParams;
    use crate::otp::secret::Secret;
    use crate::store::memory::MemoryStore;

    #[test]
    fn unlock_ends_a_lock_and_keeps_replay_memory() {
        let store = MemoryStore::new();
        let who = crate::directory::Directory::user(
            &crate::directory::Table::default().with_user("root", 0),
            "root",
        )
        .unwrap()
        .unwrap();
        let e = Enrollment::new(
            Secret::from_bytes(vec![5; 20]).unwrap(),
            TotpParams::DEFAULT,
            1,
            &crate::sys::random::test::COUNTER,
        )
        .unwrap();
        store
            .update(&who, |st| {
                st.locked_until = Some(2000);
                st.devices.insert("x".into(), Default::default());
            })
            .unwrap();
        let config = Config::default();
        let u = unlock(&store, &config, &who, Some(&e), 1000).unwrap();
        assert_eq!(
            u.was_locked_until,
            Some(1900),
            "clamped to lockout_seconds from now"
        );
        assert_eq!(u.compacted, 0, "a state within its cap is not compacted");
        let st = store.read_state(&who).unwrap();
        assert_eq!(st.locked_until, None);
        assert!(st.devices.contains_key("x"));
        let again = unlock(&store, &config, &who, Some(&e), 1001).unwrap();
        assert_eq!(again.was_locked_until, None);
    }
}
