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
mod login;
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

use crate::config::args::{Mode, ModuleArgs};
use crate::config::{Config, ConfigError};
use crate::directory::Directory;
use crate::sender::Sender;
use crate::store::Store;
use crate::sys::clock::Clock;
use crate::sys::random::Random;
use login::Login;
pub use login::{denied, prefix};
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

pub(crate) fn quote(s: &str) -> String {
    format!("\"{}\"", s.escape_debug())
}

/// What a login reaches outside itself, all passed in: where enrollments
/// and state live, where accounts and groups come from, how codes are sent.
#[derive(Clone, Copy)]
pub struct Services<'a> {
    pub store: &'a dyn Store,
    pub directory: &'a dyn Directory,
    pub sender: &'a dyn Sender,
    /// Randomness for the sent codes and this call's request id.
    pub random: &'a dyn Random,
    /// Read again when a reply is checked (a person may take a while to
    /// type, and a sent code's 300 s count until it is typed) and to time
    /// the decision; `None`: time stays at the call's start, nothing timed.
    pub clock: Option<&'a dyn Clock>,
}

/// The host as one login reaches it (otpgate-os's `login::Server` on a
/// real server): the config a line's arguments name, the store that config
/// names, accounts and groups, the mailer, the clock, randomness.
pub trait Host {
    /// The line's config: the file its arguments name, their overrides
    /// applied, the groups it names checked.
    fn config(&self, args: &ModuleArgs) -> Result<Config, ConfigError>;
    /// The store `config` names, opened for one login.
    fn store(&self, config: &Config) -> Box<dyn Store>;
    fn directory(&self) -> &dyn Directory;
    fn sender(&self) -> &dyn Sender;
    fn clock(&self) -> &dyn Clock;
    fn random(&self) -> &dyn Random;
}

/// The full decision for one `pam_sm_authenticate` call: arguments that
/// are no usable config, or a clock set before 1970, deny before anything
/// is asked; then the flow. `handoff` carries what split mode's two lines
/// hand each other (unused by the usual line).
pub fn authenticate(
    args: &[&str],
    req: &Request,
    conv: &mut dyn Conversation,
    handoff: &mut dyn Handoff,
    log: &mut dyn Log,
    host: &dyn Host,
) -> Outcome {
    let refuse = |log: &mut dyn Log, why: &str| {
        log.log(Level::Err, &format!("{} {}", prefix(req), denied(why)));
        Outcome::AuthInfoUnavail
    };
    let loaded = ModuleArgs::parse(args).and_then(|a| Ok((a.mode, host.config(&a)?)));
    let (mode, config) = match loaded {
        Ok(c) => c,
        Err(e) => return refuse(log, &format!("configuration error: {e}")),
    };
    let Some(now) = host.clock().now() else {
        return refuse(log, "the system clock is set before 1970");
    };
    let store = host.store(&config);
    let services = Services {
        store: store.as_ref(),
        directory: host.directory(),
        sender: host.sender(),
        random: host.random(),
        clock: Some(host.clock()),
    };
    authenticate_with(&config, services, req, (mode, now), conv, handoff, log)
}

/// The flow against any services, in a given mode at a given time (core's
/// unit tests drive it with the in-memory engine and a table of accounts).
pub fn authenticate_with(
    config: &Config,
    services: Services,
    req: &Request,
    (mode, now): (Mode, u64),
    conv: &mut dyn Conversation,
    handoff: &mut dyn Handoff,
    log: &mut dyn Log,
) -> Outcome {
    Login::new(config, services, req, now, conv, log).run(mode, handoff)
}

/// Where the code comes from.
pub(crate) enum Source {
    /// Ask for it, up to `prompts` times.
    Ask,
    /// Split mode: what the first line kept; one try, no prompt.
    Kept(Kept),
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn run(user: &str, reply: Result<Option<Vec<u8>>, String>) -> (Outcome, Script, Lines) {
        let mut conv = Script::new(reply);
        let mut log = Lines::default();
        let req = Request {
            user,
            service: "test",
            rhost: Some("203.0.113.5"),
        };
        // The built-in defaults and an empty in-memory store (the host's
        // config file is read by otpgate-os, and tested there).
        let store = crate::store::memory::MemoryStore::new();
        let out = authenticate_with(
            &Config::default(),
            services(&store),
            &req,
            (Mode::Prompt, NOW),
            &mut conv,
            &mut NoHandoff,
            &mut log,
        );
        (out, conv, log)
    }

    #[test]
    fn unknown_and_invalid_users_are_prompted_then_unknown() {
        for user in ["no-such-user-otpgate", "../../etc/passwd", "a\nb"] {
            let (out, conv, log) = run(user, Ok(Some(b"123456".to_vec())));
            assert_eq!(out, Outcome::UserUnknown, "{user:?}");
            assert_eq!(conv.asked, 1);
            assert!(
                log.0.iter().all(|(_, l)| !l.contains('\n')),
                "log lines stay single lines: {:?}",
                log.0
            );
        }
    }

    /// The gate asks the directory it is given: an exempt group passes
    /// without a prompt, a directory that cannot answer denies (after the
    /// same prompt everyone gets), an unenrolled user whom policy asks is
    /// told to enroll. No real account is involved.
    #[test]
    fn the_gate_asks_the_directory_it_is_given() {
        let store = MemoryStore::new();
        let dir = Table::default()
            .with_user("alice", 1000)
            .with_group("alice", 1000, &[])
            .with_group("wheel", 10, &["alice"]);
        let req = Request {
            user: "alice",
            service: "sshd",
            rhost: None,
        };
        let decide = |config: &Config, directory: &dyn Directory| {
            let mut conv = Script::new(Ok(Some(b"123456".to_vec())));
            let mut log = Lines::default();
            let services = Services {
                store: &store,
                directory,
                sender: &NoMailer,
                random: &crate::sys::random::test::COUNTER,
                clock: None,
            };
            let out = authenticate_with(
                config,
                services,
                &req,
                (Mode::Prompt, NOW),
                &mut conv,
                &mut NoHandoff,
                &mut log,
            );
            (out, conv.asked, conv.infos, log.0)
        };
        let exempt = Config {
            exempt_groups: vec!["wheel".into()],
            ..Config::default()
        };
        let (out, asked, _, log) = decide(&exempt, &dir);
        assert_eq!((out, asked), (Outcome::Ignore, 0));
        assert!(
            log.iter()
                .any(|(_, l)| l.contains("exempt group \\\"wheel\\\"")),
            "{log:?}"
        );
        let (out, asked, _, log) = decide(&exempt, &Table::default().broken());
        assert_eq!((out, asked), (Outcome::AuthInfoUnavail, 1));
        assert!(log.iter().any(|(_, l)| l.contains("check NSS")), "{log:?}");
        let all = Config {
            enforce: crate::policy::Enforce::All,
            ..Config::default()
        };
        let (out, asked, told, _) = decide(&all, &dir);
        assert_eq!((out, asked), (Outcome::AuthErr, 1));
        assert_eq!(told, [NOT_ENROLLED]);
    }

    /// A sent code is checked at the time it is typed, read again from the
    /// clock passed in: typed 400 s after it was sent, it has expired.
    #[test]
    fn a_sent_code_is_checked_on_the_clock_when_typed() {
        use std::cell::RefCell;
        /// Keeps what it is given to send.
        #[derive(Default)]
        struct Mailbox(RefCell<Vec<String>>);
        impl Sender for Mailbox {
            fn email_ready(&self, _: &std::path::Path) -> Result<(), SendError> {
                Ok(())
            }
            fn sms_ready(&self, _: &std::path::Path) -> Result<(), SendError> {
                Ok(())
            }
            fn email(
                &self,
                _: &std::path::Path,
                _: &crate::otp::sent::Target,
                message: &str,
            ) -> Result<(), SendError> {
                self.0.borrow_mut().push(message.to_string());
                Ok(())
            }
            fn sms(
                &self,
                _: &std::path::Path,
                _: &crate::otp::sent::Target,
                _: &str,
            ) -> Result<(), SendError> {
                Ok(())
            }
            fn host_name(&self) -> Option<String> {
                None
            }
        }
        /// The clock when the code is typed: `late` seconds after the call
        /// began (at `NOW`, given to the flow).
        struct Later(u64);
        impl Clock for Later {
            fn now(&self) -> Option<u64> {
                Some(NOW + self.0)
            }
        }
        /// Asks for a code (an empty answer), then types the one mailed.
        struct Typist<'m>(&'m Mailbox, usize);
        impl Conversation for Typist<'_> {
            fn ask_hidden(
                &mut self,
                _: &str,
            ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
                self.1 += 1;
                let mail = self.0.0.borrow().last().cloned().unwrap_or_default();
                let code: String = mail
                    .split(" is ")
                    .nth(1)
                    .unwrap_or("")
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                Ok(Some(Zeroizing::new(code.into_bytes())))
            }
            fn info(&mut self, _: &str) {}
            fn error(&mut self, _: &str) {}
        }
        let outcome = |late: u64, random: &dyn Random| {
            let store = MemoryStore::new();
            let mut e = Enrollment::new(
                rfc_secret(),
                TotpParams::DEFAULT,
                1,
                &crate::sys::random::test::COUNTER,
            )
            .unwrap();
            e.devices.push(crate::enrollment::Device {
                name: "mail".into(),
                secret: Secret::from_bytes(vec![9; 20]).unwrap(),
                kind: crate::enrollment::DeviceKind::Email(
                    crate::otp::sent::Target::email("root@example.com").unwrap(),
                ),
                created: 1,
            });
            store.save(&root(), &e).unwrap();
            let config = Config {
                methods: vec![crate::config::Method::Totp, crate::config::Method::Email],
                ..Config::default()
            };
            let mailbox = Mailbox::default();
            let clock = Later(late);
            let services = Services {
                store: &store,
                directory: &*DIRECTORY,
                sender: &mailbox,
                random,
                clock: Some(&clock),
            };
            let req = Request {
                user: "root",
                service: "sshd",
                rhost: None,
            };
            let mut conv = Typist(&mailbox, 0);
            let mut log = Lines::default();
            let out = authenticate_with(
                &config,
                services,
                &req,
                (Mode::Prompt, NOW),
                &mut conv,
                &mut NoHandoff,
                &mut log,
            );
            (out, conv.1, mailbox.0.borrow().len(), log)
        };
        let counter = &crate::sys::random::test::COUNTER;
        let (out, asked, sent, _) = outcome(10, counter);
        assert_eq!((out, asked, sent), (Outcome::Success, 2, 1));
        let (out, asked, sent, _) = outcome(400, counter);
        assert_eq!((out, asked, sent), (Outcome::AuthErr, 2, 1));
        // Without randomness no code (and no request id) is made: nothing
        // is sent, the login is denied and the log says why.
        let (out, _, sent, log) = outcome(10, &crate::sys::random::test::Broken);
        assert_eq!((out, sent), (Outcome::AuthInfoUnavail, 0));
        assert!(
            log.0
                .iter()
                .any(|(_, l)| l.contains("no code sent") && l.contains("random source failed")),
            "{:?}",
            log.0
        );
    }

    /// A config that cannot be used, or a clock before 1970, denies before
    /// anything is asked, and says why in the log (the host is a stand-in:
    /// no file is read).
    #[test]
    fn an_unusable_config_or_clock_denies_before_prompting() {
        struct Stub(Result<Config, crate::config::ConfigError>, Option<u64>);
        impl Clock for Stub {
            fn now(&self) -> Option<u64> {
                self.1
            }
        }
        impl Host for Stub {
            fn config(&self, _: &ModuleArgs) -> Result<Config, crate::config::ConfigError> {
                self.0.clone()
            }
            fn store(&self, _: &Config) -> Box<dyn Store> {
                Box::new(enrolled_store())
            }
            fn directory(&self) -> &dyn Directory {
                &*DIRECTORY
            }
            fn sender(&self) -> &dyn Sender {
                &NoMailer
            }
            fn clock(&self) -> &dyn Clock {
                self
            }
            fn random(&self) -> &dyn Random {
                &crate::sys::random::test::COUNTER
            }
        }
        let broken = crate::config::ConfigError::new(
            "/etc/otpgate/config.toml",
            crate::config::ConfigProblem::Syntax("line 1: nonsense".into()),
        );
        let req = Request {
            user: "root",
            service: "sshd",
            rhost: None,
        };
        for (host, args, why) in [
            (
                Stub(Err(broken), Some(NOW)),
                &[][..],
                "configuration error: /etc/otpgate/config.toml: line 1: nonsense",
            ),
            (
                Stub(Ok(Config::default()), Some(NOW)),
                &["frobnicate"][..],
                "configuration error: module arguments: unknown argument `frobnicate`",
            ),
            (
                Stub(Ok(Config::default()), None),
                &[][..],
                "the system clock is set before 1970",
            ),
        ] {
            let mut conv = Script::new(Ok(Some(code(NOW).into_bytes())));
            let mut log = Lines::default();
            let out = authenticate(args, &req, &mut conv, &mut NoHandoff, &mut log, &host);
            assert_eq!((out, conv.asked), (Outcome::AuthInfoUnavail, 0), "{why}");
            assert_eq!(log.0.len(), 1, "{:?}", log.0);
            assert_eq!(log.0[0].0, Level::Err);
            assert!(log.0[0].1.contains(why), "{why}: {:?}", log.0);
        }
        // The same host with a usable config and clock: the code is accepted.
        let host = Stub(Ok(Config::default()), Some(NOW));
        let mut conv = Script::new(Ok(Some(code(NOW).into_bytes())));
        let out = authenticate(
            &[],
            &req,
            &mut conv,
            &mut NoHandoff,
            &mut Lines::default(),
            &host,
        );
        assert_eq!(out, Outcome::Success);
    }

    #[test]
    fn a_panic_free_denial_for_conversation_errors() {
        let (out, _, log) = run("no-such-user-otpgate", Err("boom".into()));
        assert_eq!(out, Outcome::ConvErr);
        assert!(log.0[0].1.contains("conversation failed"));
        let (out, _, _) = run("no-such-user-otpgate", Ok(None));
        assert_eq!(out, Outcome::AuthErr);
    }

    // The login flow against the in-memory engine: the seam at work.

    use crate::directory::{Directory, Table};
    use crate::enrollment::Enrollment;
    use crate::otp::secret::Secret;
    use crate::otp::sent::Target;
    use crate::otp::{self, TotpParams};
    use crate::store::memory::MemoryStore;
    use crate::store::{Store, StoreExt};
    use crate::sys::account::Account;
    use crate::sys::send::SendError;

    /// The accounts of these tests: no real account is looked up.
    static DIRECTORY: std::sync::LazyLock<Table> = std::sync::LazyLock::new(|| {
        Table::default()
            .with_user("root", 0)
            .with_group("root", 0, &[])
    });

    /// No mailer here: a send fails, and says so.
    struct NoMailer;

    fn none(what: &str) -> Result<(), SendError> {
        Err(SendError::Failed(format!("no {what} in core's unit tests")))
    }

    impl Sender for NoMailer {
        fn email_ready(&self, _: &std::path::Path) -> Result<(), SendError> {
            none("mailer")
        }
        fn sms_ready(&self, _: &std::path::Path) -> Result<(), SendError> {
            none("gateway")
        }
        fn email(&self, _: &std::path::Path, _: &Target, _: &str) -> Result<(), SendError> {
            none("mailer")
        }
        fn sms(&self, _: &std::path::Path, _: &Target, _: &str) -> Result<(), SendError> {
            none("gateway")
        }
        fn host_name(&self) -> Option<String> {
            Some("test-host".into())
        }
    }

    fn services(store: &dyn Store) -> Services<'_> {
        Services {
            store,
            directory: &*DIRECTORY,
            sender: &NoMailer,
            random: &crate::sys::random::test::COUNTER,
            clock: None,
        }
    }

    fn root() -> Account {
        DIRECTORY.user("root").unwrap().unwrap()
    }

    fn rfc_secret() -> Secret {
        Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap()
    }

    fn code(at: u64) -> String {
        otp::totp(&rfc_secret(), &TotpParams::DEFAULT, at).to_string()
    }

    fn enrolled_store() -> MemoryStore {
        let store = MemoryStore::new();
        let e = Enrollment::new(
            rfc_secret(),
            TotpParams::DEFAULT,
            1,
            &crate::sys::random::test::COUNTER,
        )
        .unwrap();
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
                services(self.store),
                &req,
                (mode, now),
                conv,
                handoff,
                &mut Lines::default(),
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
            services(&store),
            &req,
            (Mode::Prompt, NOW),
            &mut conv,
            &mut NoHandoff,
            &mut Lines::default(),
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
