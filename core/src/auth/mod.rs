//! The login decision: everything `pam_sm_authenticate` does, minus the FFI.
//!
//! The PAM layer hands over its module arguments, the PAM items, a
//! [`Conversation`] and a [`Log`]; this returns an [`Outcome`] that maps
//! one-to-one onto a PAM return code. Every error path ends in a denial and a
//! log line saying why; only "not enrolled + nullok" yields `Ignore`.

use crate::config::{Config, ConfigError, Source};
use crate::enrollment::{DeviceKind, Enrollment};
use crate::otp;
use crate::otp::input::{self, Input};
use crate::otp::recovery::{self, RecoveryCode};
use crate::policy;
use crate::store::files::Location;
use crate::store::state::{Limits, StateStore, UserState};
use crate::sys::account::{self, Account};
use crate::sys::clock::Clock;
use crate::sys::clock::format_utc;
use crate::sys::paths;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// The result, as PAM will see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// PAM_SUCCESS: a valid, fresh code.
    Success,
    /// PAM_IGNORE: not enrolled and `nullok` — the only non-denial besides success.
    Ignore,
    /// PAM_AUTH_ERR: wrong, reused or malformed code; not enrolled.
    AuthErr,
    /// PAM_USER_UNKNOWN: no such account.
    UserUnknown,
    /// PAM_AUTHINFO_UNAVAIL: config, file or state could not be used.
    AuthInfoUnavail,
    /// PAM_CONV_ERR: the application's conversation function failed.
    ConvErr,
    /// PAM_MAXTRIES: locked out after too many wrong codes.
    MaxTries,
}

/// Syslog priorities used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Err,
    Warning,
    Notice,
    Info,
    Debug,
}

/// Where log lines go (syslog's auth facility, in the module).
pub trait Log {
    fn log(&mut self, level: Level, line: &str);
}

/// Talking to the user through the application.
pub trait Conversation {
    /// Asks with echo off. `Ok(None)` means the application returned no
    /// reply at all (a NULL response), which must deny.
    fn ask_hidden(&mut self, prompt: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String>;
    /// Shows an informational line (PAM_TEXT_INFO).
    fn info(&mut self, text: &str);
    /// Shows an error line (PAM_ERROR_MSG).
    fn error(&mut self, text: &str);
}

/// Who is logging in, from the PAM items.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub user: &'a str,
    pub service: &'a str,
    pub rhost: Option<&'a str>,
}

/// Module arguments, split into the config source and overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleArgs {
    pub source: Source,
    pub overrides: Vec<(String, String)>,
}

impl ModuleArgs {
    /// `config=PATH`, the flags `debug` and `nullok`, and `key=value` for any
    /// config key. Anything else is an error (fail closed on a typo).
    pub fn parse(args: &[&str]) -> Result<Self, ConfigError> {
        let mut source = Source::Default;
        let mut overrides = Vec::new();
        for arg in args {
            match arg.split_once('=') {
                Some(("config", path)) => {
                    paths::check_plain_absolute(std::path::Path::new(path)).map_err(|e| {
                        ConfigError {
                            source: "module arguments".into(),
                            message: format!("config={path}: {e}"),
                        }
                    })?;
                    source = Source::Explicit(PathBuf::from(path));
                }
                Some((key, value)) => overrides.push((key.to_string(), value.to_string())),
                None if *arg == "debug" || *arg == "nullok" => {
                    overrides.push((arg.to_string(), "true".into()));
                }
                None => {
                    return Err(ConfigError {
                        source: "module arguments".into(),
                        message: format!(
                            "unknown argument `{arg}`; use config=PATH, debug, nullok or KEY=VALUE for a config key"
                        ),
                    });
                }
            }
        }
        Ok(Self { source, overrides })
    }

    /// Loads the config file and applies the overrides.
    pub fn load(&self) -> Result<Config, ConfigError> {
        Config::load(&self.source)?.with_overrides(&self.overrides, "module arguments")
    }
}

/// Log lines with the request's context, quoting anything user-controlled so
/// a crafted user or host name cannot forge a log line.
struct Ctx<'l> {
    log: &'l mut dyn Log,
    prefix: String,
    debug: bool,
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.escape_debug())
}

impl Ctx<'_> {
    fn line(&mut self, level: Level, msg: &str) {
        if level != Level::Debug || self.debug {
            let line = format!("{} {msg}", self.prefix);
            self.log.log(level, &line);
        }
    }
}

/// What was found before prompting.
enum Plan {
    Enrolled {
        account: Box<Account>,
        enrollment: Box<Enrollment>,
    },
    /// Not enrolled; `required` says whether policy demands a second factor.
    NotEnrolled {
        account: Box<Account>,
        path: PathBuf,
        required: bool,
        why: String,
    },
    Exempt(String),
    Unknown(String),
    Broken(String),
}

fn plan(config: &Config, req: &Request, ctx: &mut Ctx) -> Plan {
    if let Err(e) = paths::check_user_name(req.user) {
        return Plan::Unknown(e);
    }
    let account = match account::by_name(req.user) {
        Ok(Some(a)) => a,
        Ok(None) => return Plan::Unknown("no such user".into()),
        Err(e) => return Plan::Broken(e),
    };
    let needs_groups = !config.exempt_groups.is_empty() || !config.enforce_groups.is_empty();
    let groups = if needs_groups {
        match policy::group_names(&account) {
            Ok(g) => g,
            Err(e) => return Plan::Broken(e),
        }
    } else {
        Vec::new()
    };
    if let Some(g) = policy::exempt_group(config, &groups) {
        return Plan::Exempt(format!("member of exempt group {}", quote(g)));
    }
    if let Some(ip) = policy::rhost_ip(req.rhost)
        && let Some(net) = config
            .exempt_networks
            .iter()
            .zip(config.exempt_cidrs())
            .find(|(_, c)| c.contains(ip))
    {
        return Plan::Exempt(format!("remote address in exempt network {}", net.0));
    }
    let location = match Location::of(config, &account) {
        Ok(l) => l,
        Err(e) => return Plan::Broken(e.to_string()),
    };
    ctx.line(
        Level::Debug,
        &format!(
            "reading {} ({})",
            location.path.display(),
            if location.in_home {
                "as the user"
            } else {
                "as root"
            }
        ),
    );
    match location.load() {
        Ok(Some(enrollment)) => Plan::Enrolled {
            account: Box::new(account),
            enrollment: Box::new(enrollment),
        },
        Ok(None) => {
            let (required, why) = policy::second_factor_required(config, &groups);
            Plan::NotEnrolled {
                account: Box::new(account),
                path: location.path,
                required,
                why,
            }
        }
        Err(e) => Plan::Broken(e.to_string()),
    }
}

fn deny_line(ctx: &mut Ctx, level: Level, why: &str) {
    ctx.line(
        level,
        &format!("result=denied reason=\"{}\"", why.escape_debug()),
    );
}

/// The full decision for one `pam_sm_authenticate` call.
pub fn authenticate(
    args: &[&str],
    req: &Request,
    conv: &mut dyn Conversation,
    log: &mut dyn Log,
    clock: &dyn Clock,
) -> Outcome {
    let mut ctx = Ctx {
        log,
        prefix: format!(
            "service={} user={} rhost={}",
            quote(req.service),
            quote(req.user),
            req.rhost.map_or_else(|| "-".to_string(), quote)
        ),
        debug: args.contains(&"debug"),
    };
    let config = match ModuleArgs::parse(args)
        .and_then(|a| a.load())
        .and_then(|c| {
            c.check_system().map_err(|message| ConfigError {
                source: "policy".into(),
                message,
            })?;
            Ok(c)
        }) {
        Ok(c) => c,
        Err(e) => {
            deny_line(&mut ctx, Level::Err, &format!("configuration error: {e}"));
            return Outcome::AuthInfoUnavail;
        }
    };
    ctx.debug = config.debug;
    let Some(now) = clock.now() else {
        deny_line(&mut ctx, Level::Err, "the system clock is set before 1970");
        return Outcome::AuthInfoUnavail;
    };
    let plan = plan(&config, req, &mut ctx);

    // Cases decided without a code.
    match &plan {
        Plan::Exempt(why) => {
            ctx.line(
                Level::Notice,
                &format!("result=ignored reason=\"exempt: {}\"", why.escape_debug()),
            );
            return Outcome::Ignore;
        }
        Plan::NotEnrolled {
            required: false,
            path,
            why,
            ..
        } => {
            ctx.line(
                Level::Warning,
                &format!(
                    "result=ignored reason=\"not enrolled ({} missing); allowed without a code because {}\"",
                    path.display(),
                    why.escape_debug()
                ),
            );
            return Outcome::Ignore;
        }
        Plan::NotEnrolled {
            required: true,
            account,
            ..
        } if config.grace_period_days > 0 => match grace(&config, account, now) {
            Ok(Some(deadline)) => {
                let date = format_utc(deadline);
                conv.info(&format!(
                        "2FA required from {date}: run `otpgate enroll` to set up your authenticator app."
                    ));
                ctx.line(
                    Level::Notice,
                    &format!("result=ignored reason=\"not enrolled; grace period until {date}\""),
                );
                return Outcome::Ignore;
            }
            Ok(None) => {}
            Err(e) => {
                deny_line(&mut ctx, Level::Err, &e);
                return Outcome::AuthInfoUnavail;
            }
        },
        Plan::Enrolled {
            account,
            enrollment,
        } => {
            if let Some(outcome) =
                before_prompt(&config, account, enrollment, req, now, conv, &mut ctx)
            {
                return outcome;
            }
        }
        _ => {}
    }

    // Everyone else is prompted, so the prompt reveals neither which accounts
    // exist nor which are enrolled.
    let reply = match conv.ask_hidden(&config.prompt) {
        Ok(Some(r)) => r,
        Ok(None) => {
            deny_line(
                &mut ctx,
                Level::Notice,
                "the application returned no reply (NULL response)",
            );
            return Outcome::AuthErr;
        }
        Err(e) => {
            deny_line(&mut ctx, Level::Err, &format!("conversation failed: {e}"));
            return Outcome::ConvErr;
        }
    };

    match plan {
        Plan::Unknown(why) => {
            tell_unknown(&reply, conv);
            deny_line(&mut ctx, Level::Notice, &format!("unknown user: {why}"));
            Outcome::UserUnknown
        }
        Plan::NotEnrolled { path, why, .. } => {
            conv.error(
                "Two-factor authentication is required for this account, but it is not set up. \
                 Log in another way and run `otpgate enroll`, or ask an administrator.",
            );
            deny_line(
                &mut ctx,
                Level::Notice,
                &format!(
                    "not enrolled: {} does not exist and 2FA is required ({why}); the user must run `otpgate enroll`",
                    path.display()
                ),
            );
            Outcome::AuthErr
        }
        Plan::Broken(why) => {
            deny_line(&mut ctx, Level::Err, &why);
            Outcome::AuthInfoUnavail
        }
        // Decided before the prompt; never reached. Deny if it ever is.
        Plan::Exempt(_) => Outcome::AuthErr,
        Plan::Enrolled {
            account,
            enrollment,
        } => verify(
            &config,
            &account,
            &enrollment,
            &reply,
            req,
            now,
            conv,
            &mut ctx,
        ),
    }
}

/// The clock limits for reading this config's state (see [`UserState::clamp`]).
fn limits(config: &Config) -> Limits {
    Limits {
        lockout_seconds: config.lockout_seconds,
    }
}

/// The grace period's end if `now` is still inside it; records the first
/// attempt (which starts the period) in the state. A first attempt stored
/// while the clock was fast is pulled back to now, so the period never
/// reaches further than `grace_period_days` from now.
fn grace(config: &Config, account: &Account, now: u64) -> Result<Option<u64>, String> {
    let store = StateStore::open(&config.state_dir).map_err(|e| e.to_string())?;
    let first = store
        .update(account, |st| {
            st.clamp(now, limits(config));
            *st.first_seen.get_or_insert(now)
        })
        .map_err(|e| e.to_string())?;
    let deadline = first.saturating_add(u64::from(config.grace_period_days) * 86_400);
    Ok((now < deadline).then_some(deadline))
}

/// Remembered address or active lockout: decided from a snapshot of the
/// state before prompting (the lockout is checked again under the lock).
fn before_prompt(
    config: &Config,
    account: &Account,
    enrollment: &Enrollment,
    req: &Request,
    now: u64,
    conv: &mut dyn Conversation,
    ctx: &mut Ctx,
) -> Option<Outcome> {
    if config.remember_minutes == 0 && config.max_failures == 0 {
        return None;
    }
    // A snapshot; only a clock fault (times in the future) makes it a write.
    let state = StateStore::open(&config.state_dir).and_then(|store| {
        let mut state = store.read(account)?;
        if state.clamp(now, limits(config)) {
            state = store.update(account, |st| {
                st.clamp(now, limits(config));
                st.clone()
            })?;
        }
        Ok(state)
    });
    let state = match state {
        Ok(s) => s,
        Err(e) => {
            deny_line(ctx, Level::Err, &e.to_string());
            return Some(Outcome::AuthInfoUnavail);
        }
    };
    if let Some(until) = state.locked_at(now) {
        return Some(deny_locked(until, conv, ctx));
    }
    if let Some(ip) = policy::rhost_ip(req.rhost)
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
        return Some(Outcome::Ignore);
    }
    None
}

/// A checked reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A fresh code from this device; the step or counter it matched.
    Device { name: String, matched: u64 },
    /// An unused recovery code; this many remain.
    Recovery { remaining: usize },
    /// The code matches no device.
    Wrong,
    /// The code is valid but its time step was already used.
    Replayed { device: String },
    /// The recovery code was already used.
    RecoveryUsed,
    /// An HOTP code far ahead of the counter: the next code will resynchronise.
    ResyncNeeded { device: String },
    /// Nothing usable was typed (empty or malformed); the reason is safe to log.
    Unusable(&'static str),
    /// The second factor is locked until then.
    Locked { until: u64 },
    /// The recovery codes could not be checked (a set otpgate did not write).
    RecoveryBroken(String),
}

impl Verdict {
    fn accepted(&self) -> bool {
        matches!(self, Self::Device { .. } | Self::Recovery { .. })
    }

    /// Whether this counts toward the lockout (a guess, not a fault of ours).
    fn counts_as_failure(&self) -> bool {
        !matches!(
            self,
            Self::Device { .. }
                | Self::Recovery { .. }
                | Self::ResyncNeeded { .. }
                | Self::Locked { .. }
                | Self::RecoveryBroken(_)
        )
    }
}

/// How far beyond the look-ahead an HOTP code may be and still start a
/// resynchronisation.
pub const HOTP_RESYNC_WINDOW: u64 = 100;

/// Maps version-1 state (filed under device names and the file's
/// `enrollment_id`) onto this enrollment's secrets, once: a device's memory
/// moves to its secret's fingerprint if the name and creation time still
/// match, used recovery codes of the current set move to that set. Anything
/// else belonged to devices or sets that no longer exist.
pub fn adopt_legacy(enrollment: &Enrollment, state: &mut UserState) {
    let Some(legacy) = state.legacy.take() else {
        return;
    };
    for device in &enrollment.devices {
        let Some(old) = legacy.devices.get(&device.name) else {
            continue;
        };
        if old.created.is_some_and(|c| c != device.created) {
            continue;
        }
        let mem = state
            .devices
            .entry(device.secret.fingerprint())
            .or_default();
        let old = old.memory();
        mem.last_step = mem.last_step.max(old.last_step);
        mem.next_counter = mem.next_counter.max(old.next_counter);
        mem.resync_pending = mem.resync_pending.or(old.resync_pending);
    }
    if let Some(set) = &enrollment.recovery {
        for hash in legacy
            .used_recovery
            .iter()
            .filter(|h| set.hashes.contains(h))
        {
            if !state.recovery_used(&set.salt, hash) {
                state.use_recovery(&set.salt, hash, state.last_success.unwrap_or(0));
            }
        }
    }
}

/// Decides on a classified code against an enrollment and the user's state,
/// updating the state for an accepted one. Pure: no I/O, fully unit-tested.
///
/// Replay memory is looked up by each device's secret fingerprint, never by
/// a name or id from the user's file.
pub fn decide(
    enrollment: &Enrollment,
    state: &mut UserState,
    code: &str,
    now: u64,
    window: u32,
    lookahead: u32,
) -> Verdict {
    let mut replayed = None;
    let mut resync = None;
    for device in &enrollment.devices {
        if usize::from(device.kind.digits()) != code.len() {
            continue;
        }
        let fingerprint = device.secret.fingerprint();
        let mut mem = state.devices.get(&fingerprint).cloned().unwrap_or_default();
        match device.kind {
            DeviceKind::Totp(params) => {
                if let Some(step) =
                    otp::find_totp_step(&device.secret, &params, code, now, window, mem.last_step)
                {
                    mem.last_step = Some(step);
                    state.devices.insert(fingerprint, mem);
                    return accept(state, &device.name, step, now);
                }
                if replayed.is_none()
                    && otp::find_totp_step(&device.secret, &params, code, now, window, None)
                        .is_some()
                {
                    replayed = Some(device.name.clone());
                }
            }
            DeviceKind::Hotp {
                algorithm,
                digits,
                initial,
            } => {
                let next = mem.next_counter.unwrap_or(initial).max(initial);
                let matches = |c: u64| {
                    otp::codes_equal(code, &otp::hotp(&device.secret, algorithm, digits, c))
                };
                let ahead = next.saturating_add(u64::from(lookahead));
                let pending = mem.resync_pending.take();
                let found = (next..=ahead)
                    .find(|c| matches(*c))
                    .or_else(|| pending.map(|p| p.saturating_add(1)).filter(|c| matches(*c)));
                if let Some(c) = found {
                    mem.next_counter = Some(c.saturating_add(1));
                    state.devices.insert(fingerprint, mem);
                    return accept(state, &device.name, c, now);
                }
                // Every range below is at most HOTP_RESYNC_WINDOW long, so a
                // hostile counter cannot make a login compute more HMACs.
                let beyond = ahead.saturating_add(1)..=ahead.saturating_add(HOTP_RESYNC_WINDOW);
                let recent = next.saturating_sub(HOTP_RESYNC_WINDOW).max(initial)..next;
                if let Some(c) = beyond.into_iter().find(|c| matches(*c)) {
                    mem.resync_pending = Some(c);
                    state.devices.insert(fingerprint, mem);
                    resync = Some(device.name.clone());
                } else {
                    if pending.is_some() {
                        // A pending resync is used up by any other code.
                        state.devices.insert(fingerprint, mem);
                    }
                    if recent.into_iter().any(matches) {
                        replayed.get_or_insert_with(|| device.name.clone());
                    }
                }
            }
        }
    }
    match (resync, replayed) {
        (Some(device), _) => Verdict::ResyncNeeded { device },
        (None, Some(device)) => Verdict::Replayed { device },
        (None, None) => Verdict::Wrong,
    }
}

fn accept(state: &mut UserState, device: &str, matched: u64, now: u64) -> Verdict {
    state.last_success = Some(now);
    state.last_method = Some(device.to_string());
    Verdict::Device {
        name: device.to_string(),
        matched,
    }
}

/// Marks a recovery code (identified by its stored hash) as used, filed
/// under its set: used codes are remembered by what was used.
pub fn decide_recovery(
    enrollment: &Enrollment,
    state: &mut UserState,
    matched_hash: Option<&str>,
    now: u64,
) -> Verdict {
    let (Some(set), Some(hash)) = (&enrollment.recovery, matched_hash) else {
        return Verdict::Wrong;
    };
    if state.recovery_used(&set.salt, hash) {
        return Verdict::RecoveryUsed;
    }
    state.use_recovery(&set.salt, hash, now);
    state.last_success = Some(now);
    state.last_method = Some("recovery code".into());
    Verdict::Recovery {
        remaining: recovery::remaining(set, &state.used_in_set(&set.salt)),
    }
}

/// The stored hash a typed recovery (or imported scratch) code matches.
/// Called under the lock and only after the lockout check, so a locked
/// user's guesses cost no hash at all.
fn recovery_hash(enrollment: &Enrollment, input: &Input) -> Result<Option<String>, String> {
    let code = match input {
        Input::Recovery(code) => Some(code.clone()),
        Input::Code(digits) => RecoveryCode::from_scratch(digits),
        _ => None,
    };
    match (&enrollment.recovery, code) {
        (Some(set), Some(code)) => recovery::find(set, &code),
        _ => Ok(None),
    }
}

/// Checks one classified reply under the user's lock: the lockout first,
/// then the devices, then (only if needed) one recovery-code hash.
fn check_reply(
    config: &Config,
    enrollment: &Enrollment,
    st: &mut UserState,
    input: &Input,
    now: u64,
) -> Verdict {
    if let Some(until) = st.locked_at(now) {
        return Verdict::Locked { until };
    }
    let recovery = |st: &mut UserState| match recovery_hash(enrollment, input) {
        Ok(hash) => decide_recovery(enrollment, st, hash.as_deref(), now),
        Err(e) => Verdict::RecoveryBroken(e),
    };
    match input {
        Input::Empty => Verdict::Unusable("empty code"),
        Input::Invalid(why) => Verdict::Unusable(why),
        Input::Code(code) => match decide(
            enrollment,
            st,
            code,
            now,
            config.window,
            config.hotp_lookahead,
        ) {
            Verdict::Wrong if enrollment.recovery.is_some() => recovery(st),
            v => v,
        },
        Input::Recovery(_) => recovery(st),
    }
}

#[allow(clippy::too_many_arguments)]
fn verify(
    config: &Config,
    account: &Account,
    enrollment: &Enrollment,
    reply: &[u8],
    req: &Request,
    now: u64,
    conv: &mut dyn Conversation,
    ctx: &mut Ctx,
) -> Outcome {
    let input = input::classify(reply);
    let store = match StateStore::open(&config.state_dir) {
        Ok(s) => s,
        Err(e) => {
            deny_line(ctx, Level::Err, &e.to_string());
            return Outcome::AuthInfoUnavail;
        }
    };
    let remember_ip = policy::rhost_ip(req.rhost).filter(|_| config.remember_minutes > 0);
    let credentials = enrollment.credentials_fingerprint();
    let mut lock_started = None;
    let verdict = store.update(account, |st| {
        st.clamp(now, limits(config));
        adopt_legacy(enrollment, st);
        let verdict = check_reply(config, enrollment, st, &input, now);
        if verdict.accepted() {
            st.clear_failures();
            if let Some(ip) = remember_ip {
                st.remember(req.service, &ip.to_string(), &credentials, now);
            }
        } else if verdict.counts_as_failure() {
            lock_started = st.record_failure(
                now,
                config.max_failures,
                config.failure_window,
                config.lockout_seconds,
            );
        }
        verdict
    });
    let verdict = match verdict {
        Ok(v) => v,
        Err(e) => {
            deny_line(ctx, Level::Err, &e.to_string());
            return Outcome::AuthInfoUnavail;
        }
    };
    let outcome = report(verdict, &input, conv, ctx);
    if let Some(until) = lock_started {
        conv.error(&locked_message(until));
        ctx.line(
            Level::Warning,
            &format!(
                "lockout: {} wrong codes within {} s; locked until {}",
                config.max_failures,
                config.failure_window,
                format_utc(until)
            ),
        );
    }
    outcome
}

fn locked_message(until: u64) -> String {
    format!(
        "Too many wrong codes: two-factor login is locked until {}.",
        format_utc(until)
    )
}

/// Refuses a locked-out user: tells them until when, logs it.
fn deny_locked(until: u64, conv: &mut dyn Conversation, ctx: &mut Ctx) -> Outcome {
    conv.error(&locked_message(until));
    deny_line(
        ctx,
        Level::Warning,
        &format!(
            "locked out until {} after too many wrong codes",
            format_utc(until)
        ),
    );
    Outcome::MaxTries
}

/// What the user is told about a refused reply. The same words for a
/// wrong code, whether or not the account exists or is enrolled.
pub const WRONG_CODE: &str = "Wrong code.";
/// A valid code whose time step (or counter) was already accepted.
pub const CODE_USED: &str = "This code was already used; wait for the next one.";
/// A recovery code that was already used.
pub const RECOVERY_USED: &str = "This recovery code was already used; each works only once.";
/// A reply that is no code at all.
pub const NOT_A_CODE: &str =
    "That is not a code: type the code from your authenticator app, or a recovery code.";

/// What an unknown user is told: exactly what a known one would be for the
/// same reply, so the answer reveals nothing about the account.
fn tell_unknown(reply: &[u8], conv: &mut dyn Conversation) {
    match input::classify(reply) {
        Input::Code(_) | Input::Recovery(_) => conv.error(WRONG_CODE),
        Input::Empty | Input::Invalid(_) => conv.error(NOT_A_CODE),
    }
}

/// Logs a verdict, tells the user what they need to know, and maps it to an outcome.
fn report(verdict: Verdict, input: &Input, conv: &mut dyn Conversation, ctx: &mut Ctx) -> Outcome {
    match verdict {
        Verdict::Device { name, matched } => {
            ctx.line(Level::Debug, &format!("matched step/counter {matched}"));
            ctx.line(
                Level::Info,
                &format!("result=accepted method=code device={}", quote(&name)),
            );
            Outcome::Success
        }
        Verdict::Recovery { remaining } => {
            let mut msg = format!("Recovery code accepted. {remaining} recovery code(s) left.");
            if remaining <= 2 {
                msg.push_str(" Run `otpgate recovery-codes` soon to make a new set.");
            }
            conv.info(&msg);
            let level = if remaining <= 2 {
                Level::Warning
            } else {
                Level::Notice
            };
            ctx.line(
                level,
                &format!("result=accepted method=recovery-code remaining={remaining}"),
            );
            Outcome::Success
        }
        Verdict::Wrong if matches!(input, Input::Recovery(_)) => {
            conv.error(WRONG_CODE);
            deny_line(ctx, Level::Notice, "wrong recovery code");
            Outcome::AuthErr
        }
        Verdict::Wrong => {
            conv.error(WRONG_CODE);
            deny_line(ctx, Level::Notice, "wrong code");
            Outcome::AuthErr
        }
        Verdict::Replayed { device } => {
            conv.error(CODE_USED);
            ctx.line(
                Level::Notice,
                &format!(
                    "result=denied reason=\"code already used (replay refused)\" device={}",
                    quote(&device)
                ),
            );
            Outcome::AuthErr
        }
        Verdict::RecoveryUsed => {
            conv.error(RECOVERY_USED);
            deny_line(ctx, Level::Notice, "recovery code already used");
            Outcome::AuthErr
        }
        Verdict::ResyncNeeded { device } => {
            conv.error("That code is far ahead of the token's counter: log in again with the token's next code to resynchronise.");
            ctx.line(
                Level::Notice,
                &format!("result=denied reason=\"HOTP code beyond the look-ahead; resynchronisation pending\" device={}", quote(&device)),
            );
            Outcome::AuthErr
        }
        Verdict::Unusable(why) => {
            conv.error(NOT_A_CODE);
            deny_line(ctx, Level::Notice, why);
            Outcome::AuthErr
        }
        Verdict::Locked { until } => deny_locked(until, conv, ctx),
        Verdict::RecoveryBroken(why) => {
            deny_line(ctx, Level::Err, &format!("recovery codes unusable: {why}"));
            Outcome::AuthInfoUnavail
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrollment::Device;
    use crate::otp::TotpParams;
    use crate::otp::secret::Secret;
    use crate::sys::clock::FixedClock;

    const NOW: u64 = 1_800_000_000;

    fn decide10(e: &Enrollment, st: &mut UserState, code: &str, now: u64, window: u32) -> Verdict {
        decide(e, st, code, now, window, 10)
    }

    fn enrollment(id: &str) -> Enrollment {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        let mut e = Enrollment::new(secret, TotpParams::DEFAULT, 1).unwrap();
        e.id = id.into();
        e
    }

    fn code(at: u64) -> String {
        let s = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        otp::totp(&s, &TotpParams::DEFAULT, at).to_string()
    }

    #[test]
    fn accepts_a_fresh_code_once_and_records_it() {
        let e = enrollment("0123456789abcdef");
        let mut st = UserState::default();
        let v = decide10(&e, &mut st, &code(NOW), NOW, 1);
        assert_eq!(
            v,
            Verdict::Device {
                name: "default".into(),
                matched: NOW / 30
            }
        );
        let fp = e.devices[0].secret.fingerprint();
        assert_eq!(st.devices[&fp].last_step, Some(NOW / 30));
        assert_eq!(st.last_success, Some(NOW));
        assert_eq!(
            decide10(&e, &mut st, &code(NOW), NOW, 1),
            Verdict::Replayed {
                device: "default".into()
            }
        );
        assert_eq!(
            decide10(&e, &mut st, &code(NOW - 30), NOW, 1),
            Verdict::Replayed {
                device: "default".into()
            }
        );
        assert_eq!(decide10(&e, &mut st, "000000", NOW, 1), Verdict::Wrong);
    }

    #[test]
    fn window_zero_accepts_only_the_current_step() {
        let e = enrollment("0123456789abcdef");
        let mut st = UserState::default();
        assert_eq!(
            decide10(&e, &mut st, &code(NOW - 30), NOW, 0),
            Verdict::Wrong
        );
        assert!(matches!(
            decide10(&e, &mut st, &code(NOW), NOW, 0),
            Verdict::Device { .. }
        ));
    }

    #[test]
    fn replay_memory_follows_the_secret_not_ids_or_names() {
        let mut st = UserState::default();
        assert!(matches!(
            decide10(&enrollment("aaaaaaaaaaaaaaaa"), &mut st, &code(NOW), NOW, 1),
            Verdict::Device { .. }
        ));
        // The same secret under another id and device name: still used.
        let mut renamed = enrollment("bbbbbbbbbbbbbbbb");
        renamed.devices[0].name = "phone".into();
        renamed.devices[0].created = 99;
        let v = decide10(&renamed, &mut st, &code(NOW), NOW, 1);
        assert_eq!(
            v,
            Verdict::Replayed {
                device: "phone".into()
            }
        );
        // A genuinely new secret starts clean.
        let fresh = Secret::from_bytes(vec![3; 20]).unwrap();
        let mut new = enrollment("cccccccccccccccc");
        new.devices[0].secret = fresh.clone();
        let fresh_code = otp::totp(&fresh, &TotpParams::DEFAULT, NOW).to_string();
        assert!(matches!(
            decide10(&new, &mut st, &fresh_code, NOW, 1),
            Verdict::Device { .. }
        ));
    }

    #[test]
    fn version_one_memory_is_adopted_by_name_and_creation_time() {
        let mut e = enrollment("0123456789abcdef");
        let (codes, set) = recovery::generate_set(2, 1).unwrap();
        e.recovery = Some(set.clone());
        let mut st = UserState::parse(
            format!(
                "version = 1\nenrollment_id = \"x\"\nused_recovery = [\"{}\"]\n\
                 [devices.default]\ncreated = 1\nlast_step = {}\n",
                set.hashes[0],
                NOW / 30
            )
            .as_bytes(),
        )
        .unwrap();
        adopt_legacy(&e, &mut st);
        assert!(st.legacy.is_none());
        assert_eq!(
            decide10(&e, &mut st, &code(NOW), NOW, 1),
            Verdict::Replayed {
                device: "default".into()
            }
        );
        let h0 = recovery::find(&set, &codes[0]).unwrap();
        assert_eq!(
            decide_recovery(&e, &mut st, h0.as_deref(), NOW),
            Verdict::RecoveryUsed
        );
    }

    #[test]
    fn extra_devices_are_tried_and_named() {
        let mut e = enrollment("0123456789abcdef");
        let other = Secret::from_bytes(vec![9; 20]).unwrap();
        let other_code = otp::totp(&other, &TotpParams::DEFAULT, NOW).to_string();
        e.devices.push(Device {
            name: "backup".into(),
            secret: other,
            kind: DeviceKind::Totp(TotpParams::DEFAULT),
            created: 1,
        });
        let mut st = UserState::default();
        assert_eq!(
            decide10(&e, &mut st, &other_code, NOW, 1),
            Verdict::Device {
                name: "backup".into(),
                matched: NOW / 30
            }
        );
        // The primary's code for the same step is still fresh: devices are independent.
        assert!(matches!(
            decide10(&e, &mut st, &code(NOW), NOW, 1),
            Verdict::Device { .. }
        ));
    }

    #[test]
    fn hotp_counters_at_the_top_of_the_range_cannot_overflow_or_hang() {
        let mut e = enrollment("0123456789abcdef");
        let secret = Secret::from_bytes(vec![7; 20]).unwrap();
        for initial in [u64::MAX, u64::MAX - 5, u64::MAX - 200] {
            e.devices.truncate(1);
            e.devices.push(Device {
                name: "tok".into(),
                secret: secret.clone(),
                kind: DeviceKind::Hotp {
                    algorithm: otp::Algorithm::SHA1,
                    digits: 6,
                    initial,
                },
                created: 1,
            });
            let mut st = UserState::default();
            let v = decide10(&e, &mut st, "000000", NOW, 1);
            assert!(
                matches!(v, Verdict::Wrong | Verdict::ResyncNeeded { .. }),
                "{v:?}"
            );
            let code = otp::hotp(&secret, otp::Algorithm::SHA1, 6, initial).to_string();
            let v = decide10(&e, &mut st, &code, NOW, 1);
            assert!(matches!(v, Verdict::Device { .. }), "{initial}: {v:?}");
        }
    }

    #[test]
    fn hotp_replay_check_looks_back_a_bounded_distance() {
        let mut e = enrollment("0123456789abcdef");
        let secret = Secret::from_bytes(vec![7; 20]).unwrap();
        e.devices.push(Device {
            name: "tok".into(),
            secret: secret.clone(),
            kind: DeviceKind::Hotp {
                algorithm: otp::Algorithm::SHA1,
                digits: 6,
                initial: 0,
            },
            created: 1,
        });
        let mut st = UserState::default();
        st.devices.insert(
            secret.fingerprint(),
            crate::store::state::DeviceState {
                next_counter: Some(u64::MAX / 2),
                ..Default::default()
            },
        );
        // Without a bound this would compute 2^63 HMACs.
        assert_eq!(decide10(&e, &mut st, "000000", NOW, 1), Verdict::Wrong);
    }

    #[test]
    fn recovery_codes_work_once() {
        let mut e = enrollment("0123456789abcdef");
        let (codes, set) = recovery::generate_set(2, 1).unwrap();
        e.recovery = Some(set);
        let mut st = UserState::default();
        let h0 = recovery::find(e.recovery.as_ref().unwrap(), &codes[0]).unwrap();
        assert_eq!(
            decide_recovery(&e, &mut st, h0.as_deref(), NOW),
            Verdict::Recovery { remaining: 1 }
        );
        assert_eq!(
            decide_recovery(&e, &mut st, h0.as_deref(), NOW),
            Verdict::RecoveryUsed
        );
        assert_eq!(decide_recovery(&e, &mut st, None, NOW), Verdict::Wrong);
    }

    #[test]
    fn module_arguments_are_strict() {
        let a = ModuleArgs::parse(&["config=/etc/otpgate/sudo.toml", "debug", "window=0"]).unwrap();
        assert_eq!(a.source, Source::Explicit("/etc/otpgate/sudo.toml".into()));
        assert_eq!(a.overrides.len(), 2);
        assert!(ModuleArgs::parse(&["nulok"]).is_err());
        assert!(ModuleArgs::parse(&["config=relative.toml"]).is_err());
    }

    struct Script {
        reply: Result<Option<Vec<u8>>, String>,
        asked: usize,
        infos: Vec<String>,
    }

    impl Conversation for Script {
        fn ask_hidden(&mut self, _prompt: &str) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
            self.asked += 1;
            self.reply.clone().map(|r| r.map(Zeroizing::new))
        }
        fn info(&mut self, text: &str) {
            self.infos.push(text.into());
        }
        fn error(&mut self, text: &str) {
            self.infos.push(text.into());
        }
    }

    #[derive(Default)]
    struct Lines(Vec<(Level, String)>);

    impl Log for Lines {
        fn log(&mut self, level: Level, line: &str) {
            self.0.push((level, line.into()));
        }
    }

    fn run(
        args: &[&str],
        user: &str,
        reply: Result<Option<Vec<u8>>, String>,
    ) -> (Outcome, Script, Lines) {
        let mut conv = Script {
            reply,
            asked: 0,
            infos: vec![],
        };
        let mut log = Lines::default();
        let req = Request {
            user,
            service: "test",
            rhost: Some("203.0.113.5"),
        };
        let out = authenticate(args, &req, &mut conv, &mut log, &FixedClock(NOW));
        (out, conv, log)
    }

    #[test]
    fn broken_config_denies_before_prompting() {
        let (out, conv, log) = run(
            &["config=/nonexistent/otpgate.toml"],
            "root",
            Ok(Some(b"123456".to_vec())),
        );
        assert_eq!(out, Outcome::AuthInfoUnavail);
        assert_eq!(conv.asked, 0);
        assert!(log.0[0].1.contains("configuration error"), "{:?}", log.0);
        assert_eq!(log.0[0].0, Level::Err);
    }

    #[test]
    fn unknown_and_invalid_users_are_prompted_then_unknown() {
        for user in ["no-such-user-otpgate", "../../etc/passwd", "a\nb"] {
            let (out, conv, log) = run(&[], user, Ok(Some(b"123456".to_vec())));
            assert_eq!(out, Outcome::UserUnknown, "{user:?}");
            assert_eq!(conv.asked, 1);
            assert!(
                log.0.iter().all(|(_, l)| !l.contains('\n')),
                "log lines stay single lines: {:?}",
                log.0
            );
        }
    }

    #[test]
    fn a_panic_free_denial_for_conversation_errors() {
        let (out, _, log) = run(&[], "no-such-user-otpgate", Err("boom".into()));
        assert_eq!(out, Outcome::ConvErr);
        assert!(log.0[0].1.contains("conversation failed"));
        let (out, _, _) = run(&[], "no-such-user-otpgate", Ok(None));
        assert_eq!(out, Outcome::AuthErr);
    }
}
