//! [`Store`] over otpgated: each call one request (see the module above).

use super::*;

impl Store for DaemonStore {
    fn location(&self, account: &Account) -> Result<String, StoreError> {
        Ok(format!(
            "the fleet store, user {:?}, through otpgated at {}",
            account.name,
            self.socket.display()
        ))
    }

    fn load(&self, account: &Account) -> Result<Option<Enrollment>, StoreError> {
        let user = account.name.clone();
        if self.keep {
            let request = Request::Load { user };
            return match self.one(&request)? {
                Response::Enrollment {
                    enrollment,
                    removed,
                } => self.enrollment_of(account, enrollment, removed),
                _ => Err(self.unexpected(&request)),
            };
        }
        // A login: the state comes with it, for the checks before the
        // prompt and the first compare-and-set after it.
        let request = Request::LoadForLogin { user };
        match self.one(&request)? {
            Response::Login {
                enrollment,
                removed,
                version,
                state,
            } => {
                let state = parse_state(account, state)?;
                self.keep_snapshot(account, version, state);
                self.enrollment_of(account, enrollment, removed)
            }
            _ => Err(self.unexpected(&request)),
        }
    }

    fn exists(&self, account: &Account) -> Result<bool, StoreError> {
        self.load(account).map(|e| e.is_some())
    }

    fn check_writable(&self, _account: &Account) -> Result<(), StoreError> {
        // Fail before a secret is shown if the daemon or database is down.
        self.ping()
    }

    fn save(&self, account: &Account, enrollment: &Enrollment) -> Result<(), StoreError> {
        enrollment
            .check_distinct_secrets()
            .map_err(|error| StoreError::Format {
                path: PathBuf::from(account.name.clone()),
                error,
            })?;
        let request = Request::Save {
            user: account.name.clone(),
            enrollment: enrollment.to_toml().map_err(|error| StoreError::Format {
                path: PathBuf::from(account.name.clone()),
                error,
            })?,
        };
        match self.one(&request)? {
            Response::Ok => Ok(()),
            _ => Err(self.unexpected(&request)),
        }
    }

    fn remove(&self, account: &Account) -> Result<bool, StoreError> {
        let request = Request::Remove {
            user: account.name.clone(),
        };
        match self.one(&request)? {
            Response::Removed { removed } => Ok(removed),
            _ => Err(self.unexpected(&request)),
        }
    }

    fn read_state(&self, account: &Account) -> Result<UserState, StoreError> {
        if let Some((_, state)) = self.snapshot_of(account) {
            return Ok(state);
        }
        self.read_state_before(account, self.deadline())
            .map(|(_, state)| state)
    }

    fn update_state(
        &self,
        account: &Account,
        decide: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), StoreError> {
        self.update(account, false, decide)
    }

    fn repair_state(
        &self,
        account: &Account,
        decide: &mut dyn FnMut(&mut UserState),
    ) -> Result<(), StoreError> {
        self.update(account, true, decide)
    }

    fn remove_state(&self, account: &Account) -> Result<bool, StoreError> {
        let request = Request::RemoveState {
            user: account.name.clone(),
        };
        match self.one(&request)? {
            Response::Removed { removed } => Ok(removed),
            _ => Err(self.unexpected(&request)),
        }
    }

    fn prove_code(
        &self,
        account: &Account,
        _existing: &Enrollment,
        code: &str,
        _now: u64,
        _window: u32,
    ) -> Result<bool, StoreError> {
        self.prove(account, code)
    }

    fn before_talking(&self) {
        if !self.keep {
            // A user thinking at the prompt holds no connection.
            *self
                .conn
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
        }
    }

    fn record(&self, events: Vec<LoginEvent>, micros: u64) -> Result<(), StoreError> {
        DaemonStore::record(self, events, micros)
    }
}
