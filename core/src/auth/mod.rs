//! The login flow: everything `pam_sm_authenticate` does, minus the FFI.
//!
//! The PAM layer hands over its module arguments, the PAM items, a
//! [`Conversation`] and a [`Log`]; this returns an [`Outcome`] that maps
//! one-to-one onto a PAM return code. The flow: load the config, open the
//! store it names ([`crate::store`]), pass the [`gate`] (who is asked at
//! all), prompt, [`verify`] the reply under the store's exclusivity, and say
//! what happened ([`messages`]). Every error ends in a denial and a log line
//! saying why; only the policy passes listed in the README yield `Ignore`.

mod gate;
mod messages;
pub mod verify;

pub use messages::{CODE_USED, NOT_A_CODE, NOT_ENROLLED, RECOVERY_USED, WRONG_CODE};
pub use verify::{Tolerance, Verdict, adopt_legacy, decide, decide_recovery};

use crate::config::Config;
use crate::config::args::ModuleArgs;
use crate::store::{self, Store};
use crate::sys::clock::Clock;
use gate::{Gate, Prompted};
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

/// Where log lines go (syslog's authpriv facility, in the module).
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

/// Log lines with the request's context, quoting anything user-controlled so
/// a crafted user or host name cannot forge a log line.
pub(crate) struct Ctx<'l> {
    log: &'l mut dyn Log,
    prefix: String,
    debug: bool,
}

pub(crate) fn quote(s: &str) -> String {
    format!("\"{}\"", s.escape_debug())
}

impl<'l> Ctx<'l> {
    fn new(log: &'l mut dyn Log, req: &Request, debug: bool) -> Self {
        Self {
            log,
            prefix: format!(
                "service={} user={} rhost={}",
                quote(req.service),
                quote(req.user),
                req.rhost.map_or_else(|| "-".to_string(), quote)
            ),
            debug,
        }
    }

    pub(crate) fn line(&mut self, level: Level, msg: &str) {
        if level != Level::Debug || self.debug {
            let line = format!("{} {msg}", self.prefix);
            self.log.log(level, &line);
        }
    }
}

pub(crate) fn deny_line(ctx: &mut Ctx, level: Level, why: &str) {
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
    let mut ctx = Ctx::new(log, req, args.contains(&"debug"));
    let config = match ModuleArgs::parse(args).and_then(|a| a.load_checked()) {
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
    let store = store::open(&config);
    run(&config, store.as_ref(), req, conv, &mut ctx, now)
}

/// The flow against any store and a given time (core's unit tests drive it
/// with the in-memory engine).
pub fn authenticate_with(
    config: &Config,
    store: &dyn Store,
    req: &Request,
    conv: &mut dyn Conversation,
    log: &mut dyn Log,
    now: u64,
) -> Outcome {
    let mut ctx = Ctx::new(log, req, config.debug);
    run(config, store, req, conv, &mut ctx, now)
}

fn run(
    config: &Config,
    store: &dyn Store,
    req: &Request,
    conv: &mut dyn Conversation,
    ctx: &mut Ctx,
    now: u64,
) -> Outcome {
    let prompted = match gate::before_prompt(config, store, req, now, conv, ctx) {
        Gate::Decided(outcome) => return outcome,
        Gate::Prompt(p) => p,
    };
    let reply = match conv.ask_hidden(&config.prompt) {
        Ok(Some(r)) => r,
        Ok(None) => {
            deny_line(
                ctx,
                Level::Notice,
                "the application returned no reply (NULL response)",
            );
            return Outcome::AuthErr;
        }
        Err(e) => {
            deny_line(ctx, Level::Err, &format!("conversation failed: {e}"));
            return Outcome::ConvErr;
        }
    };
    match prompted {
        Prompted::Unknown(why) => {
            messages::tell_unknown(&reply, conv);
            deny_line(ctx, Level::Notice, &format!("unknown user: {why}"));
            Outcome::UserUnknown
        }
        Prompted::NotEnrolled { location, why } => {
            conv.error(NOT_ENROLLED);
            deny_line(
                ctx,
                Level::Notice,
                &format!(
                    "not enrolled: {location} does not exist and 2FA is required ({why}); the user must run `otpgate enroll`"
                ),
            );
            Outcome::AuthErr
        }
        Prompted::Broken(why) => {
            deny_line(ctx, Level::Err, &why);
            Outcome::AuthInfoUnavail
        }
        Prompted::Enrolled {
            account,
            enrollment,
        } => verify::verify(
            config,
            store,
            &account,
            &enrollment,
            &reply,
            req,
            now,
            conv,
            ctx,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::clock::FixedClock;

    const NOW: u64 = 1_800_000_000;

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
        // With no config= argument, run on the built-in defaults and an
        // empty in-memory store: never the host's /etc/otpgate/config.toml.
        let out = if args.is_empty() {
            let store = crate::store::memory::MemoryStore::new();
            authenticate_with(&Config::default(), &store, &req, &mut conv, &mut log, NOW)
        } else {
            authenticate(args, &req, &mut conv, &mut log, &FixedClock(NOW))
        };
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

    // The login flow against the in-memory engine: the seam at work.

    use crate::enrollment::Enrollment;
    use crate::otp::secret::Secret;
    use crate::otp::{self, TotpParams};
    use crate::store::memory::MemoryStore;
    use crate::store::{Store, StoreExt};
    use crate::sys::account::{self, Account};

    fn root() -> Account {
        account::by_name("root").unwrap().unwrap()
    }

    fn rfc_secret() -> Secret {
        Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap()
    }

    fn code(at: u64) -> String {
        otp::totp(&rfc_secret(), &TotpParams::DEFAULT, at).to_string()
    }

    fn enrolled_store() -> MemoryStore {
        let store = MemoryStore::new();
        let e = Enrollment::new(rfc_secret(), TotpParams::DEFAULT, 1).unwrap();
        store.save(&root(), &e).unwrap();
        store
    }

    struct Login<'a> {
        config: Config,
        store: &'a dyn Store,
        service: &'a str,
        rhost: Option<&'a str>,
    }

    impl Login<'_> {
        fn at(&self, reply: &str, now: u64) -> (Outcome, Script) {
            let mut conv = Script {
                reply: Ok(Some(reply.as_bytes().to_vec())),
                asked: 0,
                infos: vec![],
            };
            let req = Request {
                user: "root",
                service: self.service,
                rhost: self.rhost,
            };
            let out = authenticate_with(
                &self.config,
                self.store,
                &req,
                &mut conv,
                &mut Lines::default(),
                now,
            );
            (out, conv)
        }
    }

    fn login(store: &dyn Store, config: Config) -> Login<'_> {
        Login {
            config,
            store,
            service: "sshd",
            rhost: Some("203.0.113.5"),
        }
    }

    #[test]
    fn a_code_is_accepted_once_and_a_refusal_says_why() {
        let store = enrolled_store();
        let l = login(&store, Config::default());
        assert_eq!(l.at(&code(NOW), NOW).0, Outcome::Success);
        let (out, conv) = l.at(&code(NOW), NOW + 1);
        assert_eq!(out, Outcome::AuthErr);
        assert_eq!(conv.infos, [CODE_USED]);
        let (out, conv) = l.at("000000", NOW + 2);
        assert_eq!(out, Outcome::AuthErr);
        assert_eq!(conv.infos, [WRONG_CODE]);
        assert_eq!(
            store.read_state(&root()).unwrap().failures,
            vec![NOW + 1, NOW + 2]
        );
    }

    #[test]
    fn a_lockout_refuses_even_the_right_code_without_asking() {
        let store = enrolled_store();
        let config = Config {
            max_failures: 2,
            ..Config::default()
        };
        let l = login(&store, config);
        l.at("000000", NOW);
        l.at("000000", NOW + 1);
        let (out, conv) = l.at(&code(NOW + 30), NOW + 30);
        assert_eq!(out, Outcome::MaxTries);
        assert_eq!(conv.asked, 0);
    }

    #[test]
    fn a_remembered_address_skips_the_prompt_on_its_service_only() {
        let store = enrolled_store();
        let config = Config {
            remember_minutes: 10,
            ..Config::default()
        };
        let mut l = login(&store, config);
        assert_eq!(l.at(&code(NOW), NOW).0, Outcome::Success);
        let (out, conv) = l.at("", NOW + 60);
        assert_eq!((out, conv.asked), (Outcome::Ignore, 0));
        l.service = "sudo";
        let (out, conv) = l.at("", NOW + 60);
        assert_eq!((out, conv.asked), (Outcome::AuthErr, 1));
    }

    #[test]
    fn a_state_that_cannot_be_kept_denies_a_right_code() {
        let mut store = enrolled_store();
        store.fail_writes = true;
        let l = login(&store, Config::default());
        assert_eq!(l.at(&code(NOW), NOW).0, Outcome::AuthInfoUnavail);
    }

    #[test]
    fn unenrolled_users_are_denied_or_passed_by_policy() {
        let store = MemoryStore::new();
        let (out, conv) = login(&store, Config::default()).at("123456", NOW);
        assert_eq!(out, Outcome::AuthErr);
        assert_eq!(conv.infos, [NOT_ENROLLED]);
        let config = Config {
            enforce: crate::policy::Enforce::Enrolled,
            ..Config::default()
        };
        let (out, conv) = login(&store, config).at("", NOW);
        assert_eq!((out, conv.asked), (Outcome::Ignore, 0));
        let config = Config {
            grace_period_days: 7,
            ..Config::default()
        };
        let (out, _) = login(&store, config.clone()).at("", NOW);
        assert_eq!(out, Outcome::Ignore);
        let (out, _) = login(&store, config).at("", NOW + 8 * 86_400);
        assert_eq!(out, Outcome::AuthErr);
        assert_eq!(
            store.update(&root(), |st| st.first_seen).unwrap(),
            Some(NOW)
        );
    }
}
