//! The login decision: everything `pam_sm_authenticate` does, minus the FFI.
//!
//! The PAM layer hands over its module arguments, the PAM items, a
//! [`Conversation`] and a [`Log`]; this returns an [`Outcome`] that maps
//! one-to-one onto a PAM return code. Every error path ends in a denial and a
//! log line saying why; only "not enrolled + nullok" yields `Ignore`.

use crate::account::{self, Account};
use crate::clock::Clock;
use crate::config::{Config, ConfigError, Source};
use crate::input::{self, Input};
use crate::otp;
use crate::paths;
use crate::recovery::{self, RecoveryCode};
use crate::state::{StateStore, UserState};
use crate::store::{Location, StoreError};
use crate::userfile::{DeviceKind, Enrollment};
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
    NotEnrolled {
        path: PathBuf,
    },
    Unknown(String),
    Broken(String),
}

fn plan(config: &Config, user: &str, ctx: &mut Ctx) -> Plan {
    if let Err(e) = paths::check_user_name(user) {
        return Plan::Unknown(e);
    }
    let account = match account::by_name(user) {
        Ok(Some(a)) => a,
        Ok(None) => return Plan::Unknown("no such user".into()),
        Err(e) => return Plan::Broken(e),
    };
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
        Ok(None) => Plan::NotEnrolled {
            path: location.path,
        },
        Err(e @ (StoreError::Fs(_) | StoreError::Format { .. } | StoreError::Path(_))) => {
            Plan::Broken(e.to_string())
        }
    }
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
    let config = match ModuleArgs::parse(args).and_then(|a| a.load()) {
        Ok(c) => c,
        Err(e) => {
            ctx.line(
                Level::Err,
                &format!("result=denied reason=\"configuration error: {e}\""),
            );
            return Outcome::AuthInfoUnavail;
        }
    };
    ctx.debug = config.debug;
    let plan = plan(&config, req.user, &mut ctx);

    if let Plan::NotEnrolled { path } = &plan
        && config.nullok
    {
        ctx.line(
            Level::Warning,
            &format!(
                "result=ignored reason=\"not enrolled ({} missing); allowed without a code because nullok is set\"",
                path.display()
            ),
        );
        return Outcome::Ignore;
    }

    // Everyone else is prompted, so the prompt reveals neither which accounts
    // exist nor which are enrolled.
    let reply = match conv.ask_hidden(&config.prompt) {
        Ok(Some(r)) => r,
        Ok(None) => {
            ctx.line(
                Level::Notice,
                "result=denied reason=\"the application returned no reply (NULL response)\"",
            );
            return Outcome::AuthErr;
        }
        Err(e) => {
            ctx.line(
                Level::Err,
                &format!("result=denied reason=\"conversation failed: {e}\""),
            );
            return Outcome::ConvErr;
        }
    };

    match plan {
        Plan::Unknown(why) => {
            ctx.line(
                Level::Notice,
                &format!("result=denied reason=\"unknown user: {why}\""),
            );
            Outcome::UserUnknown
        }
        Plan::NotEnrolled { path } => {
            ctx.line(
                Level::Notice,
                &format!(
                    "result=denied reason=\"not enrolled: {} does not exist; the user must run `otpgate enroll` (or set nullok)\"",
                    path.display()
                ),
            );
            Outcome::AuthErr
        }
        Plan::Broken(why) => {
            ctx.line(
                Level::Err,
                &format!("result=denied reason=\"{}\"", why.escape_debug()),
            );
            Outcome::AuthInfoUnavail
        }
        Plan::Enrolled {
            account,
            enrollment,
        } => verify(
            &config,
            &account,
            &enrollment,
            &reply,
            conv,
            &mut ctx,
            clock,
        ),
    }
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
}

/// Decides on a classified code against an enrollment and the user's state,
/// updating the state for an accepted one. Pure: no I/O, fully unit-tested.
pub fn decide(
    enrollment: &Enrollment,
    state: &mut UserState,
    code: &str,
    now: u64,
    window: u32,
) -> Verdict {
    state.bind(&enrollment.id);
    let mut replayed = None;
    for device in &enrollment.devices {
        let DeviceKind::Totp(params) = device.kind else {
            continue;
        };
        if usize::from(params.digits) != code.len() {
            continue;
        }
        let last = state.devices.get(&device.name).and_then(|d| d.last_step);
        if let Some(step) = otp::find_totp_step(&device.secret, &params, code, now, window, last) {
            state
                .devices
                .entry(device.name.clone())
                .or_default()
                .last_step = Some(step);
            state.last_success = Some(now);
            state.last_method = Some(device.name.clone());
            return Verdict::Device {
                name: device.name.clone(),
                matched: step,
            };
        }
        if replayed.is_none()
            && otp::find_totp_step(&device.secret, &params, code, now, window, None).is_some()
        {
            replayed = Some(device.name.clone());
        }
    }
    match replayed {
        Some(device) => Verdict::Replayed { device },
        None => Verdict::Wrong,
    }
}

/// Marks a recovery code (identified by its stored hash) as used.
pub fn decide_recovery(
    enrollment: &Enrollment,
    state: &mut UserState,
    matched_hash: Option<&str>,
    now: u64,
) -> Verdict {
    state.bind(&enrollment.id);
    let (Some(set), Some(hash)) = (&enrollment.recovery, matched_hash) else {
        return Verdict::Wrong;
    };
    if state.used_recovery.iter().any(|h| h == hash) {
        return Verdict::RecoveryUsed;
    }
    state.used_recovery.push(hash.to_string());
    state.last_success = Some(now);
    state.last_method = Some("recovery code".into());
    Verdict::Recovery {
        remaining: recovery::remaining(set, &state.used_recovery),
    }
}

fn verify(
    config: &Config,
    account: &Account,
    enrollment: &Enrollment,
    reply: &[u8],
    conv: &mut dyn Conversation,
    ctx: &mut Ctx,
    clock: &dyn Clock,
) -> Outcome {
    let Some(now) = clock.now() else {
        ctx.line(
            Level::Err,
            "result=denied reason=\"the system clock is set before 1970\"",
        );
        return Outcome::AuthInfoUnavail;
    };
    let input = input::classify(reply);
    // Hash a recovery code before taking the lock: the slow part needs no state.
    let recovery_hash = match &input {
        Input::Recovery(code) => match &enrollment.recovery {
            Some(set) => match recovery::find(set, code) {
                Ok(h) => Some(h),
                Err(e) => {
                    ctx.line(
                        Level::Err,
                        &format!("result=denied reason=\"recovery codes unusable: {e}\""),
                    );
                    return Outcome::AuthInfoUnavail;
                }
            },
            None => None,
        },
        _ => None,
    };
    let store = match StateStore::open(&config.state_dir) {
        Ok(s) => s,
        Err(e) => {
            ctx.line(
                Level::Err,
                &format!("result=denied reason=\"{}\"", e.to_string().escape_debug()),
            );
            return Outcome::AuthInfoUnavail;
        }
    };
    let verdict = match &input {
        Input::Empty => Ok(None),
        Input::Invalid(_) => Ok(None),
        Input::Code(code) => {
            // An imported google-authenticator scratch code is 8 digits: hash
            // it (outside the lock) so it can be tried when no device takes it.
            let scratch = match (&enrollment.recovery, RecoveryCode::from_scratch(code)) {
                (Some(set), Some(sc)) => match recovery::find(set, &sc) {
                    Ok(h) => h,
                    Err(e) => {
                        ctx.line(
                            Level::Err,
                            &format!("result=denied reason=\"recovery codes unusable: {e}\""),
                        );
                        return Outcome::AuthInfoUnavail;
                    }
                },
                _ => None,
            };
            store
                .update_for(&account.name, Some(account.gid), |st| {
                    match decide(enrollment, st, code, now, config.window) {
                        Verdict::Wrong if scratch.is_some() => {
                            decide_recovery(enrollment, st, scratch.as_deref(), now)
                        }
                        v => v,
                    }
                })
                .map(Some)
        }
        Input::Recovery(_) => store
            .update_for(&account.name, Some(account.gid), |st| {
                decide_recovery(enrollment, st, recovery_hash.flatten().as_deref(), now)
            })
            .map(Some),
    };
    let verdict = match verdict {
        Ok(v) => v,
        Err(e) => {
            ctx.line(
                Level::Err,
                &format!("result=denied reason=\"{}\"", e.to_string().escape_debug()),
            );
            return Outcome::AuthInfoUnavail;
        }
    };
    match (verdict, input) {
        (None, Input::Invalid(why)) => {
            ctx.line(Level::Notice, &format!("result=denied reason=\"{why}\""));
            Outcome::AuthErr
        }
        (None, _) => {
            ctx.line(Level::Notice, "result=denied reason=\"empty code\"");
            Outcome::AuthErr
        }
        (Some(Verdict::Device { name, matched }), _) => {
            ctx.line(Level::Debug, &format!("matched step/counter {matched}"));
            ctx.line(
                Level::Info,
                &format!("result=accepted method=code device={}", quote(&name)),
            );
            Outcome::Success
        }
        (Some(Verdict::Recovery { remaining }), _) => {
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
        (Some(Verdict::Wrong), Input::Recovery(_)) => {
            ctx.line(
                Level::Notice,
                "result=denied reason=\"wrong recovery code\"",
            );
            Outcome::AuthErr
        }
        (Some(Verdict::Wrong), _) => {
            ctx.line(Level::Notice, "result=denied reason=\"wrong code\"");
            Outcome::AuthErr
        }
        (Some(Verdict::Replayed { device }), _) => {
            ctx.line(
                Level::Notice,
                &format!(
                    "result=denied reason=\"code already used (replay refused)\" device={}",
                    quote(&device)
                ),
            );
            Outcome::AuthErr
        }
        (Some(Verdict::RecoveryUsed), _) => {
            ctx.line(
                Level::Notice,
                "result=denied reason=\"recovery code already used\"",
            );
            Outcome::AuthErr
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use crate::otp::TotpParams;
    use crate::secret::Secret;
    use crate::userfile::Device;

    const NOW: u64 = 1_800_000_000;

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
        let v = decide(&e, &mut st, &code(NOW), NOW, 1);
        assert_eq!(
            v,
            Verdict::Device {
                name: "default".into(),
                matched: NOW / 30
            }
        );
        assert_eq!(st.devices["default"].last_step, Some(NOW / 30));
        assert_eq!(st.last_success, Some(NOW));
        assert_eq!(
            decide(&e, &mut st, &code(NOW), NOW, 1),
            Verdict::Replayed {
                device: "default".into()
            }
        );
        assert_eq!(
            decide(&e, &mut st, &code(NOW - 30), NOW, 1),
            Verdict::Replayed {
                device: "default".into()
            }
        );
        assert_eq!(decide(&e, &mut st, "000000", NOW, 1), Verdict::Wrong);
    }

    #[test]
    fn window_zero_accepts_only_the_current_step() {
        let e = enrollment("0123456789abcdef");
        let mut st = UserState::default();
        assert_eq!(decide(&e, &mut st, &code(NOW - 30), NOW, 0), Verdict::Wrong);
        assert!(matches!(
            decide(&e, &mut st, &code(NOW), NOW, 0),
            Verdict::Device { .. }
        ));
    }

    #[test]
    fn a_new_enrollment_resets_replay_state() {
        let mut st = UserState::default();
        assert!(matches!(
            decide(&enrollment("aaaaaaaaaaaaaaaa"), &mut st, &code(NOW), NOW, 1),
            Verdict::Device { .. }
        ));
        let v = decide(&enrollment("bbbbbbbbbbbbbbbb"), &mut st, &code(NOW), NOW, 1);
        assert!(matches!(v, Verdict::Device { .. }), "{v:?}");
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
            decide(&e, &mut st, &other_code, NOW, 1),
            Verdict::Device {
                name: "backup".into(),
                matched: NOW / 30
            }
        );
        // The primary's code for the same step is still fresh: devices are independent.
        assert!(matches!(
            decide(&e, &mut st, &code(NOW), NOW, 1),
            Verdict::Device { .. }
        ));
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
