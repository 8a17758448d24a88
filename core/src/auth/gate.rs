//! The gate before the prompt: who the user is, whether policy asks them
//! at all (exemptions, not enrolled, grace period), and whether their state
//! already decides (a lockout, a remembered address).

use super::login::Login;
use super::{Level, Outcome};
use crate::enrollment::Enrollment;
use crate::fleet::history::{LoginResult, Method};
use crate::lockout::Limits;
use crate::policy;
use crate::store::StoreExt;
use crate::sys::account::Account;
use crate::sys::clock::format_utc;
use crate::sys::paths;

/// What the gate decided.
pub(super) enum Gate {
    /// Decided without a code (an exemption, a lockout, a remembered
    /// address, a grace period, an error that must not wait for a prompt).
    Decided(Outcome),
    /// Prompt, then decide with the reply.
    Prompt(Prompted),
}

/// Everyone the gate sends to the prompt; the prompt looks the same for
/// all, so it reveals neither which accounts exist nor which are enrolled.
pub(super) enum Prompted {
    Enrolled {
        account: Box<Account>,
        enrollment: Box<Enrollment>,
    },
    /// Not enrolled, and policy demands a second factor.
    NotEnrolled {
        location: String,
        why: String,
    },
    Unknown(String),
    Broken(String),
}

/// How the gate may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
    /// Decide, record what must be recorded (a grace period's start, a
    /// clock fault), tell the user.
    Decide,
    /// Split mode's first line, before the password step: only look. Nothing
    /// is written; the caller mutes the conversation and the log.
    Peek,
}

impl Login<'_> {
    /// Who the user is, whether policy asks them, whether their state
    /// already decides.
    pub(super) fn before_prompt(&mut self, pass: Pass) -> Gate {
        let (config, store, req) = (self.config, self.store, self.req);
        if let Err(e) = paths::check_user_name(req.user) {
            return Gate::Prompt(Prompted::Unknown(e.to_string()));
        }
        let account = match self.directory.user(req.user) {
            Ok(Some(a)) => a,
            Ok(None) => return Gate::Prompt(Prompted::Unknown("no such user".into())),
            Err(e) => return Gate::Prompt(Prompted::Broken(e.to_string())),
        };
        let groups = match policy::groups_if_needed(config, self.directory, &account) {
            Ok(g) => g,
            Err(e) => return Gate::Prompt(Prompted::Broken(e.to_string())),
        };
        if let Some(why) = policy::exemption(config, &groups, req.rhost) {
            self.line(
                Level::Notice,
                &format!("result=ignored reason=\"exempt: {}\"", why.escape_debug()),
            );
            self.event(LoginResult::Accepted, Some(Method::Exempt));
            return Gate::Decided(Outcome::Ignore);
        }
        self.debug(|| format!("reading {}", store.describe(&account).escape_debug()));
        let enrollment = match store.load(&account) {
            Ok(Some(e)) => e,
            Ok(None) => {
                let location = store.location(&account).unwrap_or_default();
                return self.not_enrolled(&account, &groups, pass, location);
            }
            Err(e) if e.service_down() => {
                return Gate::Decided(self.store_failed(&e));
            }
            Err(e) => return Gate::Prompt(Prompted::Broken(e.to_string())),
        };
        if let Some(outcome) = self.state_decides(&account, &enrollment, pass) {
            return Gate::Decided(outcome);
        }
        Gate::Prompt(Prompted::Enrolled {
            account: Box::new(account),
            enrollment: Box::new(enrollment),
        })
    }

    /// Not enrolled: passed by policy, in the grace period, or to be denied
    /// after the prompt.
    fn not_enrolled(
        &mut self,
        account: &Account,
        groups: &[String],
        pass: Pass,
        location: String,
    ) -> Gate {
        let config = self.config;
        let required = policy::second_factor_required(config, groups);
        if !required.required {
            self.line(
            Level::Warning,
            &format!(
                "result=ignored reason=\"not enrolled ({} missing); allowed without a code because {}\"",
                location.escape_debug(),
                required.why.escape_debug()
            ),
        );
            return Gate::Decided(Outcome::Ignore);
        }
        if config.grace_period_days > 0 {
            match self.grace(account, pass) {
                Ok(Some(deadline)) => {
                    let date = format_utc(deadline);
                    self.info(&format!(
                    "2FA required from {date}: run `otpgate enroll` to set up your authenticator app."
                ));
                    self.line(
                        Level::Notice,
                        &format!(
                            "result=ignored reason=\"not enrolled; grace period until {date}\""
                        ),
                    );
                    return Gate::Decided(Outcome::Ignore);
                }
                Ok(None) => {}
                Err(e) => return Gate::Decided(self.store_failed(&e)),
            }
        }
        Gate::Prompt(Prompted::NotEnrolled {
            location,
            why: required.why,
        })
    }

    /// The grace period's end if `now` is still inside it; records the first
    /// attempt (which starts the period) in the state, unless only peeking. A
    /// first attempt stored while the clock was fast is pulled back to now, so
    /// the period never reaches further than `grace_period_days` from now.
    fn grace(
        &self,
        account: &Account,
        pass: Pass,
    ) -> Result<Option<u64>, crate::store::StoreError> {
        let (config, store, now) = (self.config, self.store, self.now);
        let first = match pass {
            Pass::Decide => store.update(account, |st| {
                st.clamp(now, Limits::of(config));
                *st.first_seen.get_or_insert(now)
            }),
            Pass::Peek => store.read_state(account).map(|mut st| {
                st.clamp(now, Limits::of(config));
                st.first_seen.unwrap_or(now)
            }),
        }?;
        let deadline = first.saturating_add(u64::from(config.grace_period_days) * 86_400);
        Ok((now < deadline).then_some(deadline))
    }

    /// Remembered address or active lockout: decided from a snapshot of the
    /// state before prompting (the lockout is checked again under the lock).
    fn state_decides(
        &mut self,
        account: &Account,
        enrollment: &Enrollment,
        pass: Pass,
    ) -> Option<Outcome> {
        let (config, store, req, now) = (self.config, self.store, self.req, self.now);
        if config.remember_minutes == 0 && config.max_failures == 0 {
            return None;
        }
        // A snapshot; only a clock fault (times in the future) makes it a write,
        // and only when deciding.
        let state = store.read_state(account).and_then(|mut state| {
            if state.clamp(now, Limits::of(config)) && pass == Pass::Decide {
                state = store.update(account, |st| {
                    st.clamp(now, Limits::of(config));
                    st.clone()
                })?;
            }
            Ok(state)
        });
        let state = match state {
            Ok(s) => s,
            Err(e) => return Some(self.store_failed(&e)),
        };
        if let Some(until) = state.locked_at(now) {
            return Some(self.deny_locked(until));
        }
        if config.remember_minutes > 0
            && let Some(ip) = policy::rhost_ip(req.rhost)
            && state.remembered(
                req.service,
                &ip.to_string(),
                &enrollment.credentials_fingerprint(),
                now,
                config.remember_minutes,
            )
        {
            self.line(
            Level::Notice,
            &format!("result=ignored reason=\"remembered: a good code came from {ip} on this service within {} minutes\"", config.remember_minutes),
        );
            self.event(LoginResult::Accepted, Some(Method::Remembered));
            return Some(Outcome::Ignore);
        }
        None
    }
}
