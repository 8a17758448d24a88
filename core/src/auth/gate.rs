//! The gate before the prompt: who the user is, whether policy asks them
//! at all (exemptions, not enrolled, grace period), and whether their state
//! already decides (a lockout, a remembered address).

use super::messages::deny_locked;
use super::{Conversation, Ctx, Level, Outcome, Request};
use crate::config::Config;
use crate::enrollment::Enrollment;
use crate::fleet::history::{LoginResult, Method};
use crate::lockout::Limits;
use crate::policy;
use crate::store::{Store, StoreExt};
use crate::sys::account::{self, Account};
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

pub(super) fn before_prompt(
    config: &Config,
    store: &dyn Store,
    req: &Request,
    now: u64,
    pass: Pass,
    conv: &mut dyn Conversation,
    ctx: &mut Ctx,
) -> Gate {
    if let Err(e) = paths::check_user_name(req.user) {
        return Gate::Prompt(Prompted::Unknown(e.to_string()));
    }
    let account = match account::by_name(req.user) {
        Ok(Some(a)) => a,
        Ok(None) => return Gate::Prompt(Prompted::Unknown("no such user".into())),
        Err(e) => return Gate::Prompt(Prompted::Broken(e.to_string())),
    };
    let groups = match policy::groups_if_needed(config, &account) {
        Ok(g) => g,
        Err(e) => return Gate::Prompt(Prompted::Broken(e.to_string())),
    };
    if let Some(why) = policy::exemption(config, &groups, req.rhost) {
        ctx.line(
            Level::Notice,
            &format!("result=ignored reason=\"exempt: {}\"", why.escape_debug()),
        );
        ctx.event(LoginResult::Accepted, Some(Method::Exempt));
        return Gate::Decided(Outcome::Ignore);
    }
    ctx.debug(|| format!("reading {}", store.describe(&account).escape_debug()));
    let enrollment = match store.load(&account) {
        Ok(Some(e)) => e,
        Ok(None) => {
            let location = store.location(&account).unwrap_or_default();
            let asked = Asked {
                account: &account,
                groups: &groups,
                now,
                pass,
            };
            return not_enrolled(config, store, &asked, location, conv, ctx);
        }
        Err(e) if e.service_down() => {
            return Gate::Decided(super::messages::store_failed(&e, conv, ctx));
        }
        Err(e) => return Gate::Prompt(Prompted::Broken(e.to_string())),
    };
    if let Some(outcome) = state_decides(
        config,
        store,
        &account,
        &enrollment,
        req,
        (now, pass),
        conv,
        ctx,
    ) {
        return Gate::Decided(outcome);
    }
    Gate::Prompt(Prompted::Enrolled {
        account: Box::new(account),
        enrollment: Box::new(enrollment),
    })
}

/// The account being looked at, and how.
struct Asked<'a> {
    account: &'a Account,
    groups: &'a [String],
    now: u64,
    pass: Pass,
}

/// Not enrolled: passed by policy, in the grace period, or to be denied
/// after the prompt.
fn not_enrolled(
    config: &Config,
    store: &dyn Store,
    asked: &Asked,
    location: String,
    conv: &mut dyn Conversation,
    ctx: &mut Ctx,
) -> Gate {
    let Asked {
        account,
        groups,
        now,
        pass,
    } = *asked;
    let required = policy::second_factor_required(config, groups);
    if !required.required {
        ctx.line(
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
        match grace(config, store, account, now, pass) {
            Ok(Some(deadline)) => {
                let date = format_utc(deadline);
                conv.info(&format!(
                    "2FA required from {date}: run `otpgate enroll` to set up your authenticator app."
                ));
                ctx.line(
                    Level::Notice,
                    &format!("result=ignored reason=\"not enrolled; grace period until {date}\""),
                );
                return Gate::Decided(Outcome::Ignore);
            }
            Ok(None) => {}
            Err(e) => return Gate::Decided(super::messages::store_failed(&e, conv, ctx)),
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
    config: &Config,
    store: &dyn Store,
    account: &Account,
    now: u64,
    pass: Pass,
) -> Result<Option<u64>, crate::store::StoreError> {
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
#[allow(clippy::too_many_arguments)]
fn state_decides(
    config: &Config,
    store: &dyn Store,
    account: &Account,
    enrollment: &Enrollment,
    req: &Request,
    (now, pass): (u64, Pass),
    conv: &mut dyn Conversation,
    ctx: &mut Ctx,
) -> Option<Outcome> {
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
        Err(e) => return Some(super::messages::store_failed(&e, conv, ctx)),
    };
    if let Some(until) = state.locked_at(now) {
        return Some(deny_locked(until, conv, ctx));
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
        ctx.line(
            Level::Notice,
            &format!("result=ignored reason=\"remembered: a good code came from {ip} on this service within {} minutes\"", config.remember_minutes),
        );
        ctx.event(LoginResult::Accepted, Some(Method::Remembered));
        return Some(Outcome::Ignore);
    }
    None
}
