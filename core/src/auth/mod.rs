//! The login flow: everything `pam_sm_authenticate` does, minus the FFI.
//!
//! The PAM layer hands over its module arguments, the PAM items, a
//! [`Conversation`] and a [`Log`]; this returns an [`Outcome`] that maps
//! one-to-one onto a PAM return code. The flow: load the config, open the
//! store it names ([`crate::store`]), pass the [`gate`] (who is asked at
//! all), prompt, [`verify`] the reply under the store's exclusivity, and say
//! what happened ([`messages`]). Every error ends in a denial and a log line
//! saying why; only the policy passes listed in the README yield `Ignore`.

mod forward;
mod gate;
mod messages;
mod send;
pub mod split;
mod verdict;
pub mod verify;

pub use forward::{Handoff, HandoffError, Kept, NoHandoff};
pub use messages::{
    CODE_USED, FORWARD_NOT_ASKED, FORWARD_REFUSED, NO_METHOD, NOT_A_CODE, NOT_ENROLLED,
    RECOVERY_USED, SENT_EXPIRED, SERVICE_UNAVAILABLE, WRONG_CODE,
};
pub use verify::{Tolerance, Verdict, adopt_legacy, decide, decide_recovery};

use crate::config::Config;
use crate::config::args::{Mode, ModuleArgs};
use crate::fleet::history::{LoginEvent, LoginResult, MAX_EVENTS, Method};
use crate::store::{self, Store};
use crate::sys::clock::Clock;
use gate::{Gate, Pass, Prompted};
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

message_error! {
    /// Why the application's conversation function could not ask (for the
    /// log; the login is denied).
    ConversationError
}

/// Talking to the user through the application.
pub trait Conversation {
    /// Asks with echo off. `Ok(None)` means the application returned no
    /// reply at all (a NULL response), which must deny.
    fn ask_hidden(&mut self, prompt: &str)
    -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError>;
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
    /// This PAM call's random id: a code sent by e-mail or SMS is bound to
    /// it, so it works for this login only ("" if the OS had no randomness:
    /// then nothing is sent). Made when first needed: most logins send
    /// nothing and check no sent code.
    request: std::cell::OnceCell<String>,
    /// What was decided, for the fleet's login history.
    events: Vec<(LoginResult, Option<Method>)>,
    /// Time spent waiting for the user's replies (not decision time).
    waited: std::time::Duration,
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
            request: std::cell::OnceCell::new(),
            events: Vec::new(),
            waited: std::time::Duration::ZERO,
        }
    }

    /// Notes a decision for the fleet's login history.
    pub(crate) fn event(&mut self, result: LoginResult, method: Option<Method>) {
        if self.events.len() < MAX_EVENTS {
            self.events.push((result, method));
        }
    }

    /// The call's decisions: those noted, and — when none decided (or the
    /// last only sent a code) — the one the outcome says.
    fn decisions(&self, outcome: Outcome) -> Vec<(LoginResult, Option<Method>)> {
        let mut events = self.events.clone();
        let decided = events.last().is_some_and(|(r, _)| *r != LoginResult::Sent);
        if !decided && events.len() < MAX_EVENTS {
            let result = match outcome {
                Outcome::Success => Some(LoginResult::Accepted),
                Outcome::Ignore => Some(LoginResult::NotEnrolled),
                Outcome::AuthErr | Outcome::UserUnknown => Some(LoginResult::Denied),
                Outcome::AuthInfoUnavail => Some(LoginResult::Unavailable),
                Outcome::MaxTries => Some(LoginResult::Locked),
                // The application or the user gave up: nothing was decided.
                Outcome::ConvErr => None,
            };
            events.extend(result.map(|r| (r, None)));
        }
        events
    }

    /// This PAM call's request id (see the field).
    pub(crate) fn request(&self) -> &str {
        self.request
            .get_or_init(|| crate::otp::sent::new_request().unwrap_or_default())
    }

    /// A debug line, formatted only when `debug` is on (every login passes
    /// here; most with debug off).
    pub(crate) fn debug(&mut self, msg: impl FnOnce() -> String) {
        if self.debug {
            self.line(Level::Debug, &msg());
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

/// The full decision for one `pam_sm_authenticate` call. `handoff` carries
/// what split mode's two lines hand each other (unused by the usual line).
pub fn authenticate(
    args: &[&str],
    req: &Request,
    conv: &mut dyn Conversation,
    handoff: &mut dyn Handoff,
    log: &mut dyn Log,
    clock: &dyn Clock,
) -> Outcome {
    let mut ctx = Ctx::new(log, req, args.contains(&"debug"));
    let loaded = ModuleArgs::parse(args).and_then(|a| Ok((a.mode, a.load_checked()?)));
    let (mode, config) = match loaded {
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
    let store = store::open_for_login(&config);
    let line = Line {
        config: &config,
        store: store.as_ref(),
        req,
        now,
        clock: Some(clock),
    };
    line.run(mode, conv, handoff, &mut ctx)
}

/// The flow against any store and a given time (core's unit tests drive it
/// with the in-memory engine).
#[allow(clippy::too_many_arguments)]
pub fn authenticate_with(
    config: &Config,
    store: &dyn Store,
    req: &Request,
    mode: Mode,
    conv: &mut dyn Conversation,
    handoff: &mut dyn Handoff,
    log: &mut dyn Log,
    now: u64,
) -> Outcome {
    let mut ctx = Ctx::new(log, req, config.debug);
    let line = Line {
        config,
        store,
        req,
        now,
        clock: None,
    };
    line.run(mode, conv, handoff, &mut ctx)
}

/// One `pam_otpgate.so` line at work: its config, its store, the request.
pub(crate) struct Line<'a> {
    pub config: &'a Config,
    pub store: &'a dyn Store,
    pub req: &'a Request<'a>,
    /// The time the call started (policy, the gate, what is sent).
    pub now: u64,
    /// The clock, read again when a reply is checked: a person may take a
    /// while to type, and a sent code's 300 s count until it is typed.
    /// `None` in core's unit tests (time stays `now`).
    pub clock: Option<&'a dyn Clock>,
}

impl Line<'_> {
    /// The time a reply is checked at (never before the call started).
    fn now_again(&self) -> u64 {
        self.clock
            .and_then(|c| c.now())
            .map_or(self.now, |t| t.max(self.now))
    }
}

/// The application's conversation, telling the store before each word to
/// the user (who may take minutes) so it holds nothing meanwhile.
struct Talking<'a, 'c> {
    conv: &'c mut dyn Conversation,
    store: &'a dyn Store,
}

impl Conversation for Talking<'_, '_> {
    fn ask_hidden(
        &mut self,
        prompt: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        self.store.before_talking();
        self.conv.ask_hidden(prompt)
    }
    fn info(&mut self, text: &str) {
        self.store.before_talking();
        self.conv.info(text);
    }
    fn error(&mut self, text: &str) {
        self.store.before_talking();
        self.conv.error(text);
    }
}

/// Where the code comes from.
pub(crate) enum Source {
    /// Ask for it, up to `prompts` times.
    Ask,
    /// Split mode: what the first line kept; one try, no prompt.
    Kept(Kept),
}

/// Asks with echo off; a NULL reply or a failed conversation is a denial.
pub(crate) fn ask(
    conv: &mut dyn Conversation,
    prompt: &str,
    ctx: &mut Ctx,
) -> Result<Zeroizing<Vec<u8>>, Outcome> {
    let asked = std::time::Instant::now();
    let reply = conv.ask_hidden(prompt);
    ctx.waited += asked.elapsed();
    match reply {
        Ok(Some(r)) => Ok(r),
        Ok(None) => {
            deny_line(
                ctx,
                Level::Notice,
                "the application returned no reply (NULL response)",
            );
            Err(Outcome::AuthErr)
        }
        Err(e) => {
            deny_line(ctx, Level::Err, &format!("conversation failed: {e}"));
            Err(Outcome::ConvErr)
        }
    }
}

impl Line<'_> {
    fn run(
        &self,
        mode: Mode,
        conv: &mut dyn Conversation,
        handoff: &mut dyn Handoff,
        ctx: &mut Ctx,
    ) -> Outcome {
        let started = std::time::Instant::now();
        let conv = &mut Talking {
            conv,
            store: self.store,
        };
        let outcome = match mode {
            Mode::Prompt => self.check(Source::Ask, conv, ctx),
            // The first of split mode's lines decides nothing about codes.
            Mode::ForwardPass => return forward::forward_pass(self, conv, handoff, ctx),
            Mode::ForwardedCode => forward::forwarded_code(self, conv, handoff, ctx),
        };
        if let Some(fleet) = self.store.as_fleet() {
            let took = started.elapsed().saturating_sub(ctx.waited);
            let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            let events = ctx
                .decisions(outcome)
                .into_iter()
                .map(|(result, method)| LoginEvent {
                    user: self.req.user.to_string(),
                    service: self.req.service.to_string(),
                    rhost: self.req.rhost.map(str::to_string),
                    method,
                    result,
                })
                .collect();
            if let Err(e) = fleet.record(events, micros) {
                ctx.debug(|| format!("the decision was not reported to otpgated: {e}"));
            }
        }
        outcome
    }

    /// The gate, then the code (asked or kept), verified.
    pub(crate) fn check(
        &self,
        source: Source,
        conv: &mut dyn Conversation,
        ctx: &mut Ctx,
    ) -> Outcome {
        let Line {
            config,
            store,
            req,
            now,
            ..
        } = *self;
        let prompted = match gate::before_prompt(config, store, req, now, Pass::Decide, conv, ctx) {
            Gate::Decided(outcome) => return outcome,
            Gate::Prompt(p) => p,
        };
        let tries = match source {
            Source::Ask => config.prompts,
            Source::Kept(_) => 1,
        };
        let mut tried = 0;
        loop {
            tried += 1;
            let reply = match &source {
                Source::Ask => match ask(conv, &config.prompt, ctx) {
                    Ok(r) => r,
                    Err(outcome) => return outcome,
                },
                Source::Kept(kept) => match forward::kept_reply(kept, conv, ctx) {
                    Ok(r) => r,
                    Err(outcome) => return outcome,
                },
            };
            // An empty answer from a user with an e-mail or SMS device
            // asks for a code to be sent there; the next answer is checked.
            let reply = match (&source, &prompted) {
                (
                    Source::Ask,
                    Prompted::Enrolled {
                        account,
                        enrollment,
                    },
                ) if crate::otp::input::compact(&String::from_utf8_lossy(&reply)).is_empty() => {
                    match send::offer(self, account, enrollment, conv, ctx) {
                        send::Offer::Nothing => reply,
                        send::Offer::Prompt(prompt) => match ask(conv, &prompt, ctx) {
                            Ok(r) => r,
                            Err(outcome) => return outcome,
                        },
                        send::Offer::Denied(outcome) => return outcome,
                    }
                }
                _ => reply,
            };
            let again = tried < tries;
            match self.decide(&prompted, &reply, conv, ctx, again) {
                Some(outcome) => return outcome,
                None => continue,
            }
        }
    }

    /// Decides on one reply; `None` means "ask again" (only when `again`).
    fn decide(
        &self,
        prompted: &Prompted,
        reply: &[u8],
        conv: &mut dyn Conversation,
        ctx: &mut Ctx,
        again: bool,
    ) -> Option<Outcome> {
        match prompted {
            Prompted::Unknown(why) => {
                messages::tell_unknown(reply, conv);
                if again {
                    return None;
                }
                deny_line(ctx, Level::Notice, &format!("unknown user: {why}"));
                Some(Outcome::UserUnknown)
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
                Some(Outcome::AuthErr)
            }
            Prompted::Broken(why) => {
                deny_line(ctx, Level::Err, why);
                Some(Outcome::AuthInfoUnavail)
            }
            Prompted::Enrolled {
                account,
                enrollment,
            } => {
                let checked = verify::verify(
                    self.config,
                    self.store,
                    account,
                    enrollment,
                    reply,
                    self.req,
                    self.now_again(),
                    conv,
                    ctx,
                );
                if checked.may_retry && again {
                    return None;
                }
                Some(checked.outcome)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::clock::FixedClock;

    const NOW: u64 = 1_800_000_000;

    struct Script {
        /// Replies given first, in order; then `reply` for every further ask.
        first: std::collections::VecDeque<Vec<u8>>,
        reply: Result<Option<Vec<u8>>, String>,
        asked: usize,
        prompts: Vec<String>,
        infos: Vec<String>,
    }

    impl Script {
        fn new(reply: Result<Option<Vec<u8>>, String>) -> Self {
            Self {
                first: Default::default(),
                reply,
                asked: 0,
                prompts: vec![],
                infos: vec![],
            }
        }
    }

    impl Conversation for Script {
        fn ask_hidden(
            &mut self,
            prompt: &str,
        ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
            self.asked += 1;
            self.prompts.push(prompt.into());
            if let Some(r) = self.first.pop_front() {
                return Ok(Some(Zeroizing::new(r)));
            }
            self.reply
                .clone()
                .map(|r| r.map(Zeroizing::new))
                .map_err(ConversationError)
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
        let mut conv = Script::new(reply);
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
            authenticate_with(
                &Config::default(),
                &store,
                &req,
                Mode::Prompt,
                &mut conv,
                &mut NoHandoff,
                &mut log,
                NOW,
            )
        } else {
            authenticate(
                args,
                &req,
                &mut conv,
                &mut NoHandoff,
                &mut log,
                &FixedClock(NOW),
            )
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

    /// libpam's side of split mode: PAM_AUTHTOK and the PAM data.
    #[derive(Default)]
    struct Pam {
        authtok: Option<Vec<u8>>,
        kept: Option<Kept>,
    }

    impl Handoff for Pam {
        fn pass_on(&mut self, password: &[u8], kept: Kept) -> Result<(), HandoffError> {
            self.authtok = Some(password.to_vec());
            self.kept = Some(kept);
            Ok(())
        }
        fn take_kept(&mut self) -> Option<Kept> {
            self.kept.take()
        }
    }

    impl Login<'_> {
        fn at(&self, reply: &str, now: u64) -> (Outcome, Script) {
            self.answers(&[reply], now)
        }

        /// A login whose replies are `replies`, in order (the last repeats).
        fn answers(&self, replies: &[&str], now: u64) -> (Outcome, Script) {
            let mut conv = Script::new(Ok(replies.last().map(|r| r.as_bytes().to_vec())));
            conv.first = replies.iter().map(|r| r.as_bytes().to_vec()).collect();
            let out = self.line(Mode::Prompt, &mut conv, &mut NoHandoff, now);
            (out, conv)
        }

        fn line(
            &self,
            mode: Mode,
            conv: &mut Script,
            handoff: &mut dyn Handoff,
            now: u64,
        ) -> Outcome {
            let req = Request {
                user: "root",
                service: self.service,
                rhost: self.rhost,
            };
            authenticate_with(
                &self.config,
                self.store,
                &req,
                mode,
                conv,
                handoff,
                &mut Lines::default(),
                now,
            )
        }

        /// Split mode's first line with one combined reply.
        fn forward_pass(&self, reply: &[u8], now: u64) -> (Outcome, Pam, Script) {
            let mut conv = Script::new(Ok(Some(reply.to_vec())));
            let mut pam = Pam::default();
            let out = self.line(Mode::ForwardPass, &mut conv, &mut pam, now);
            (out, pam, conv)
        }

        /// The second line, after the password module succeeded.
        fn forwarded_code(&self, pam: &mut Pam, now: u64) -> (Outcome, Script) {
            let mut conv = Script::new(Err("the forwarded_code line must not prompt".into()));
            let out = self.line(Mode::ForwardedCode, &mut conv, pam, now);
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

    // A second chance after a typo (`prompts`).

    #[test]
    fn prompts_asks_again_after_a_wrong_code_and_counts_each() {
        let store = enrolled_store();
        let config = Config {
            prompts: 3,
            ..Config::default()
        };
        let (out, conv) = login(&store, config).answers(&["000000", "111111", &code(NOW)], NOW);
        assert_eq!((out, conv.asked), (Outcome::Success, 3));
        assert_eq!(conv.infos, [WRONG_CODE, WRONG_CODE]);
        // Each wrong code was counted; the good one cleared them.
        assert_eq!(
            store.read_state(&root()).unwrap().failures,
            Vec::<u64>::new()
        );
        let (out, conv) = login(
            &store,
            Config {
                prompts: 3,
                ..Config::default()
            },
        )
        .answers(&["000000", "111111", "222222"], NOW + 1);
        assert_eq!((out, conv.asked), (Outcome::AuthErr, 3));
        assert_eq!(store.read_state(&root()).unwrap().failures.len(), 3);
    }

    #[test]
    fn one_prompt_by_default() {
        let store = enrolled_store();
        let (out, conv) = login(&store, Config::default()).answers(&["000000", &code(NOW)], NOW);
        assert_eq!((out, conv.asked), (Outcome::AuthErr, 1));
    }

    #[test]
    fn a_lockout_ends_the_prompts_at_once() {
        let store = enrolled_store();
        let config = Config {
            prompts: 5,
            max_failures: 2,
            ..Config::default()
        };
        let (out, conv) = login(&store, config).answers(&["000000", "111111", &code(NOW)], NOW);
        assert_eq!(out, Outcome::AuthErr);
        assert_eq!(conv.asked, 2, "no third prompt once locked");
        assert!(
            conv.infos
                .last()
                .unwrap()
                .starts_with("Too many wrong codes"),
            "{:?}",
            conv.infos
        );
    }

    #[test]
    fn unknown_users_are_asked_as_often_as_known_ones() {
        let store = MemoryStore::new();
        let mut l = login(
            &store,
            Config {
                prompts: 3,
                ..Config::default()
            },
        );
        l.service = "sudo";
        let mut conv = Script::new(Ok(Some(b"000000".to_vec())));
        let req = Request {
            user: "no-such-user-otpgate",
            service: "sudo",
            rhost: None,
        };
        let out = authenticate_with(
            &l.config,
            &store,
            &req,
            Mode::Prompt,
            &mut conv,
            &mut NoHandoff,
            &mut Lines::default(),
            NOW,
        );
        assert_eq!((out, conv.asked), (Outcome::UserUnknown, 3));
        assert_eq!(conv.infos, [WRONG_CODE; 3]);
    }

    // Split mode (`forward_pass` + `forwarded_code`).

    fn split_reply(password: &str, at: u64) -> Vec<u8> {
        format!("{password}{}", code(at)).into_bytes()
    }

    #[test]
    fn split_mode_hands_the_password_on_and_checks_the_code_after_it() {
        let store = enrolled_store();
        let l = login(&store, Config::default());
        let (out, mut pam, conv) = l.forward_pass(&split_reply("hunter2", NOW), NOW);
        assert_eq!(out, Outcome::Ignore);
        assert_eq!(conv.prompts, ["Password and verification code: "]);
        assert_eq!(pam.authtok.as_deref(), Some(&b"hunter2"[..]));
        assert!(matches!(&pam.kept, Some(Kept::Code(c)) if **c == code(NOW)));
        let (out, conv) = l.forwarded_code(&mut pam, NOW);
        assert_eq!((out, conv.asked), (Outcome::Success, 0));
        // The same code again is a replay, as at the prompt.
        let (_, mut pam, _) = l.forward_pass(&split_reply("hunter2", NOW), NOW + 1);
        let (out, conv) = l.forwarded_code(&mut pam, NOW + 1);
        assert_eq!(out, Outcome::AuthErr);
        assert_eq!(conv.infos, [CODE_USED]);
    }

    #[test]
    fn the_first_line_writes_nothing_and_checks_nothing() {
        // Every write fails: the first line must not need one, even for a
        // wrong code, a lockout-worthy stream of them, or a grace period.
        let mut store = enrolled_store();
        store.fail_writes = true;
        let l = login(&store, Config::default());
        for _ in 0..10 {
            let (out, pam, _) = l.forward_pass(b"wrongpass000000", NOW);
            assert_eq!(out, Outcome::Ignore);
            assert_eq!(pam.authtok.as_deref(), Some(&b"wrongpass"[..]));
        }
        assert_eq!(store.read_state(&root()).unwrap(), Default::default());
        let unenrolled = {
            let mut s = MemoryStore::new();
            s.fail_writes = true;
            s
        };
        let grace = Config {
            grace_period_days: 7,
            ..Config::default()
        };
        let (out, pam, _) = login(&unenrolled, grace).forward_pass(b"hunter2", NOW);
        assert_eq!(out, Outcome::Ignore);
        assert!(matches!(pam.kept, Some(Kept::NotAsked)));
        assert_eq!(unenrolled.read_state(&root()).unwrap().first_seen, None);
    }

    #[test]
    fn users_policy_does_not_ask_hand_on_the_whole_reply() {
        let store = MemoryStore::new();
        let config = Config {
            enforce: crate::policy::Enforce::Enrolled,
            ..Config::default()
        };
        let l = login(&store, config);
        let (out, mut pam, _) = l.forward_pass(b"hunter2123456", NOW);
        assert_eq!(out, Outcome::Ignore);
        assert_eq!(pam.authtok.as_deref(), Some(&b"hunter2123456"[..]));
        assert_eq!(l.forwarded_code(&mut pam, NOW).0, Outcome::Ignore);
    }

    #[test]
    fn only_a_password_is_refused_after_the_password_step_and_counted() {
        let store = enrolled_store();
        let l = login(&store, Config::default());
        let (out, mut pam, _) = l.forward_pass(b"hunter", NOW);
        assert_eq!(out, Outcome::Ignore);
        assert_eq!(pam.authtok.as_deref(), Some(&b"hunter"[..]));
        let (out, conv) = l.forwarded_code(&mut pam, NOW);
        assert_eq!(out, Outcome::AuthErr);
        assert_eq!(conv.infos, [NOT_A_CODE]);
        assert_eq!(store.read_state(&root()).unwrap().failures, vec![NOW]);
    }

    #[test]
    fn a_reply_that_cannot_be_handed_on_is_refused_unread() {
        let store = enrolled_store();
        let l = login(&store, Config::default());
        for reply in [vec![b'7'; 10_000], b"pass\0word123456".to_vec()] {
            let (out, pam, conv) = l.forward_pass(&reply, NOW);
            assert_eq!(out, Outcome::AuthErr);
            assert!(pam.authtok.is_none() && pam.kept.is_none());
            assert_eq!(conv.infos, [FORWARD_REFUSED]);
        }
        assert_eq!(store.read_state(&root()).unwrap(), Default::default());
    }

    #[test]
    fn the_code_line_without_the_split_line_denies() {
        let store = enrolled_store();
        let l = login(&store, Config::default());
        let (out, _) = l.forwarded_code(&mut Pam::default(), NOW);
        assert_eq!(out, Outcome::AuthInfoUnavail);
        // What was kept is used once.
        let (_, mut pam, _) = l.forward_pass(&split_reply("pw", NOW), NOW);
        assert_eq!(l.forwarded_code(&mut pam, NOW).0, Outcome::Success);
        assert_eq!(l.forwarded_code(&mut pam, NOW).0, Outcome::AuthInfoUnavail);
    }

    #[test]
    fn not_asked_then_but_asked_now_is_refused_without_counting() {
        let store = enrolled_store();
        let config = Config {
            remember_minutes: 10,
            ..Config::default()
        };
        let l = login(&store, config);
        assert_eq!(l.at(&code(NOW), NOW).0, Outcome::Success);
        // Remembered: the whole reply goes on as the password…
        let (_, mut pam, _) = l.forward_pass(b"hunter2", NOW + 599);
        assert!(matches!(pam.kept, Some(Kept::NotAsked)));
        // …and the window closes before the code line runs.
        let (out, conv) = l.forwarded_code(&mut pam, NOW + 601);
        assert_eq!(out, Outcome::AuthErr);
        assert_eq!(conv.infos, [FORWARD_NOT_ASKED]);
        assert!(store.read_state(&root()).unwrap().failures.is_empty());
    }
}
