//! [`Login`]: one `pam_otpgate.so` line at work, the one context every step
//! of the flow is a method on.

use super::forward::Handoff;
use super::gate::{Gate, Pass, Prompted};
use super::messages::NOT_ENROLLED;
use super::{Conversation, Level, Log, Outcome, Request, Services, Source, send, verify};
use crate::config::Config;
use crate::config::args::Mode;
use crate::directory::Directory;
use crate::fleet::history::{LoginEvent, LoginResult, MAX_EVENTS, Method};
use crate::sender::Sender;
use crate::store::Store;
use crate::sys::clock::Clock;
use crate::sys::random::Random;
use zeroize::Zeroizing;

/// One login: its config, its store, the request and the time it started;
/// the conversation with the user (the store lets go of what it holds
/// before each word, since a person may take minutes); and the log lines
/// and decisions it makes. Log lines carry the request's context, quoting
/// anything user-controlled so a crafted user or host name cannot forge
/// one.
pub(crate) struct Login<'a> {
    pub config: &'a Config,
    pub store: &'a dyn Store,
    pub directory: &'a dyn Directory,
    pub sender: &'a dyn Sender,
    pub random: &'a dyn Random,
    pub req: &'a Request<'a>,
    /// The time the call started (policy, the gate, what is sent).
    pub now: u64,
    /// The clock, read again when a reply is checked: a person may take a
    /// while to type, and a sent code's 300 s count until it is typed.
    /// `None` in core's unit tests (time stays `now`).
    clock: Option<&'a dyn Clock>,
    conv: &'a mut dyn Conversation,
    log: &'a mut dyn Log,
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

/// The context every log line of `req` starts with.
pub fn prefix(req: &Request) -> String {
    // One format for the line's start (it is built at every login), the
    // same text as `quote` gives each value.
    let (service, user) = (req.service.escape_debug(), req.user.escape_debug());
    match req.rhost {
        Some(rhost) => format!(
            "service=\"{service}\" user=\"{user}\" rhost=\"{}\"",
            rhost.escape_debug()
        ),
        None => format!("service=\"{service}\" user=\"{user}\" rhost=-"),
    }
}

/// The log line of a denial.
pub fn denied(why: &str) -> String {
    format!("result=denied reason=\"{}\"", why.escape_debug())
}

impl<'a> Login<'a> {
    pub(super) fn new(
        config: &'a Config,
        services: Services<'a>,
        req: &'a Request<'a>,
        now: u64,
        conv: &'a mut dyn Conversation,
        log: &'a mut dyn Log,
    ) -> Self {
        Self {
            config,
            store: services.store,
            directory: services.directory,
            sender: services.sender,
            random: services.random,
            req,
            now,
            clock: services.clock,
            conv,
            log,
            prefix: prefix(req),
            debug: config.debug,
            request: std::cell::OnceCell::new(),
            events: Vec::new(),
            waited: std::time::Duration::ZERO,
        }
    }

    /// The same login looking only: no word to the user, no log line (split
    /// mode's first line, before the password step).
    pub(super) fn quiet<'q>(
        &self,
        conv: &'q mut dyn Conversation,
        log: &'q mut dyn Log,
    ) -> Login<'q>
    where
        'a: 'q,
    {
        let services = Services {
            store: self.store,
            directory: self.directory,
            sender: self.sender,
            random: self.random,
            clock: None,
        };
        let mut quiet = Login::new(self.config, services, self.req, self.now, conv, log);
        quiet.debug = false;
        quiet
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
            .get_or_init(|| crate::otp::sent::new_request(self.random).unwrap_or_default())
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

    /// Logs a denial and why.
    pub(crate) fn deny(&mut self, level: Level, why: &str) {
        self.line(level, &denied(why));
    }

    /// Shows an informational line.
    pub(crate) fn info(&mut self, text: &str) {
        self.store.before_talking();
        self.conv.info(text);
    }

    /// Shows an error line.
    pub(crate) fn error(&mut self, text: &str) {
        self.store.before_talking();
        self.conv.error(text);
    }

    /// Asks with echo off; a NULL reply or a failed conversation is a denial.
    pub(crate) fn ask(&mut self, prompt: &str) -> Result<Zeroizing<Vec<u8>>, Outcome> {
        self.store.before_talking();
        let asked = self.instant();
        let reply = self.conv.ask_hidden(prompt);
        self.waited += self.since(asked);
        match reply {
            Ok(Some(r)) => Ok(r),
            Ok(None) => {
                self.deny(
                    Level::Notice,
                    "the application returned no reply (NULL response)",
                );
                Err(Outcome::AuthErr)
            }
            Err(e) => {
                self.deny(Level::Err, &format!("conversation failed: {e}"));
                Err(Outcome::ConvErr)
            }
        }
    }

    /// Now, for timing a step (`None` when the clock does not measure).
    fn instant(&self) -> Option<std::time::Instant> {
        self.clock.and_then(|c| c.instant())
    }

    /// How long since `then` ([`Self::instant`]); zero when not measured.
    fn since(&self, then: Option<std::time::Instant>) -> std::time::Duration {
        match (then, self.instant()) {
            (Some(then), Some(now)) => now.saturating_duration_since(then),
            _ => std::time::Duration::ZERO,
        }
    }

    /// The time a reply is checked at (never before the call started).
    fn now_again(&self) -> u64 {
        self.clock
            .and_then(|c| c.now())
            .map_or(self.now, |t| t.max(self.now))
    }

    /// The line in its mode; its decisions reported to the store.
    pub(super) fn run(&mut self, mode: Mode, handoff: &mut dyn Handoff) -> Outcome {
        let started = self.instant();
        let outcome = match mode {
            Mode::Prompt => self.check(Source::Ask),
            // The first of split mode's lines decides nothing about codes.
            Mode::ForwardPass => return self.forward_pass(handoff),
            Mode::ForwardedCode => self.forwarded_code(handoff),
        };
        // Reported to the fleet's history (other engines keep none).
        let took = self.since(started).saturating_sub(self.waited);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let events = self
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
        if let Err(e) = self.store.record(events, micros) {
            self.debug(|| format!("the decision was not reported to otpgated: {e}"));
        }
        outcome
    }

    /// The gate, then the code (asked or kept), verified.
    pub(super) fn check(&mut self, source: Source) -> Outcome {
        let prompted = match self.before_prompt(Pass::Decide) {
            Gate::Decided(outcome) => return outcome,
            Gate::Prompt(p) => p,
        };
        let tries = match source {
            Source::Ask => self.config.prompts,
            Source::Kept(_) => 1,
        };
        let mut tried = 0;
        loop {
            tried += 1;
            let reply = match &source {
                Source::Ask => match self.ask(&self.config.prompt) {
                    Ok(r) => r,
                    Err(outcome) => return outcome,
                },
                Source::Kept(kept) => match self.kept_reply(kept) {
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
                    match self.offer(account, enrollment) {
                        send::Offer::Nothing => reply,
                        send::Offer::Prompt(prompt) => match self.ask(&prompt) {
                            Ok(r) => r,
                            Err(outcome) => return outcome,
                        },
                        send::Offer::Denied(outcome) => return outcome,
                    }
                }
                _ => reply,
            };
            let again = tried < tries;
            match self.decide(&prompted, &reply, again) {
                Some(outcome) => return outcome,
                None => continue,
            }
        }
    }

    /// Decides on one reply; `None` means "ask again" (only when `again`).
    fn decide(&mut self, prompted: &Prompted, reply: &[u8], again: bool) -> Option<Outcome> {
        match prompted {
            Prompted::Unknown(why) => {
                self.tell_unknown(reply);
                if again {
                    return None;
                }
                self.deny(Level::Notice, &format!("unknown user: {why}"));
                Some(Outcome::UserUnknown)
            }
            Prompted::NotEnrolled { location, why } => {
                self.error(NOT_ENROLLED);
                self.deny(
                    Level::Notice,
                    &format!(
                        "not enrolled: {location} does not exist and 2FA is required ({why}); the user must run `otpgate enroll`"
                    ),
                );
                Some(Outcome::AuthErr)
            }
            Prompted::Broken(why) => {
                self.deny(Level::Err, why);
                Some(Outcome::AuthInfoUnavail)
            }
            Prompted::Enrolled {
                account,
                enrollment,
            } => {
                let now = self.now_again();
                let checked: verify::Checked = self.verify(account, enrollment, reply, now);
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

    /// The line's start quotes each value as `quote` does: a name with a
    /// quote or a line break cannot forge a field or a line.
    #[test]
    fn the_prefix_quotes_every_value() {
        for (service, user, rhost) in [
            ("sshd", "alice", Some("198.51.100.9")),
            ("sudo", "bob", None),
            ("x\" user=\"root", "a\nb", Some("h\"\\")),
        ] {
            let req = Request {
                service,
                user,
                rhost,
            };
            let expected = format!(
                "service={} user={} rhost={}",
                super::super::quote(service),
                super::super::quote(user),
                rhost.map_or_else(|| "-".to_string(), super::super::quote)
            );
            assert_eq!(prefix(&req), expected);
        }
        let req = Request {
            service: "sshd",
            user: "a\nb",
            rhost: None,
        };
        assert_eq!(prefix(&req), "service=\"sshd\" user=\"a\\nb\" rhost=-");
    }
}
