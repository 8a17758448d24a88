//! An in-memory engine: the proof that the login flow, the policy and the
//! commands need nothing of the files engine, and the store core's unit
//! tests of the login flow run against.

use crate::enrollment::Enrollment;
use crate::store::state::UserState;
use crate::store::{Store, StoreError};
use crate::sys::account::{Account, Uid};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Default, Clone)]
struct Entry {
    enrollment: Option<Enrollment>,
    state: UserState,
}

/// Enrollments and states by uid, behind one mutex (its exclusivity is the
/// engine's: an update runs entirely under it).
#[derive(Debug, Default)]
pub struct MemoryStore {
    users: Mutex<BTreeMap<u32, Entry>>,
    /// When set, every state write fails (a full disk, a lost database).
    pub fail_writes: bool,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, uid: Uid, f: impl FnOnce(&mut Entry) -> R) -> R {
        let mut users = self
            .users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(users.entry(uid.as_raw()).or_default())
    }
}

impl Store for MemoryStore {
    fn location(&self, account: &Account) -> Result<String, StoreError> {
        Ok(format!("memory:{}", account.uid))
    }

    fn load(&self, account: &Account) -> Result<Option<Enrollment>, StoreError> {
        Ok(self.with(account.uid, |e| e.enrollment.clone()))
    }

    fn exists(&self, account: &Account) -> Result<bool, StoreError> {
        Ok(self.with(account.uid, |e| e.enrollment.is_some()))
    }

    fn check_writable(&self, _account: &Account) -> Result<(), StoreError> {
        Ok(())
    }

    fn save(&self, account: &Account, enrollment: &Enrollment) -> Result<(), StoreError> {
        enrollment
            .check_distinct_secrets()
            .map_err(|error| StoreError::Format {
                path: format!("memory:{}", account.uid).into(),
                error,
            })?;
        self.with(account.uid, |e| e.enrollment = Some(enrollment.clone()));
        Ok(())
    }

    fn remove(&self, account: &Account) -> Result<bool, StoreError> {
        Ok(self.with(account.uid, |e| e.enrollment.take().is_some()))
    }

    fn read_state(&self, account: &Account) -> Result<UserState, StoreError> {
        Ok(self.with(account.uid, |e| e.state.clone()))
    }

    fn update_state(
        &self,
        account: &Account,
        decide: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), StoreError> {
        let fail = self.fail_writes;
        self.with(account.uid, |e| {
            let mut state = e.state.clone();
            decide(&mut state);
            if state == e.state {
                return Ok(());
            }
            if fail {
                return Err(StoreError::Unavailable(
                    "the in-memory store was told to fail writes".into(),
                ));
            }
            e.state = state;
            Ok(())
        })
    }

    fn repair_state(
        &self,
        account: &Account,
        decide: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), StoreError> {
        self.update_state(account, decide)
    }

    fn remove_state(&self, account: &Account) -> Result<bool, StoreError> {
        Ok(self.with(account.uid, |e| {
            let had = e.state != UserState::default();
            e.state = UserState::default();
            had
        }))
    }
}
