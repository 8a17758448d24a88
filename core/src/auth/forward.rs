//! Split mode, for clients that send one password (OpenVPN, xrdp, some
//! FTP clients and panels): password and code in one reply.
//!
//! ```text
//! auth requisite pam_otpgate.so forward_pass     # ask once, split, hand the password on
//! auth requisite pam_unix.so use_first_pass      # the password step
//! auth required  pam_otpgate.so forwarded_code   # verify the kept code
//! ```
//!
//! The first line looks at nothing secret and writes nothing: it only
//! decides (read-only) whether policy asks this user at all, takes the code
//! off the end of the reply and keeps it in PAM data. The code is checked
//! by the second line, which libpam only reaches when the password module
//! succeeded: a stranger guessing passwords can neither burn codes nor
//! count failures (google-authenticator's `forward_pass` checks the code
//! first).

use super::gate::{Gate, Pass, Prompted};
use super::login::Login;
use super::split::{self, Shapes};
use super::{Conversation, ConversationError, Level, Log, Outcome, Source, messages};
use zeroize::Zeroizing;

/// What the first line keeps for the second (in PAM data, wiped when the
/// PAM handle ends).
#[derive(Debug)]
pub enum Kept {
    /// The code typed after the password.
    Code(Zeroizing<String>),
    /// Nothing code-shaped came after the password.
    NoCode,
    /// Policy did not ask this user: the whole reply went on as the password.
    NotAsked,
}

message_error! {
    /// Why the password could not be handed on (for the log; the login is
    /// denied).
    HandoffError
}

/// What split mode's two lines hand each other through libpam.
pub trait Handoff {
    /// Sets PAM_AUTHTOK for the password module and keeps `kept`.
    fn pass_on(&mut self, password: &[u8], kept: Kept) -> Result<(), HandoffError>;
    /// Takes what the first line kept (so it is used once).
    fn take_kept(&mut self) -> Option<Kept>;
}

/// For callers that never run split mode (the usual line, tests).
pub struct NoHandoff;

impl Handoff for NoHandoff {
    fn pass_on(&mut self, _: &[u8], _: Kept) -> Result<(), HandoffError> {
        Err(HandoffError("this caller cannot hand a password on".into()))
    }
    fn take_kept(&mut self) -> Option<Kept> {
        None
    }
}

/// A conversation that shows nothing and answers nothing: the gate's
/// read-only look in the first line must not talk to the user.
struct Mute;

impl Conversation for Mute {
    fn ask_hidden(&mut self, _: &str) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        Err(ConversationError("no prompts while peeking".into()))
    }
    fn info(&mut self, _: &str) {}
    fn error(&mut self, _: &str) {}
}

struct Quiet;

impl Log for Quiet {
    fn log(&mut self, _: Level, _: &str) {}
}

/// The first line: ask once, split, hand the password on. Returns
/// PAM_IGNORE when it handed on (the decision belongs to the password
/// module and the second line), a denial only for a reply it cannot hand on.
impl Login<'_> {
    pub(super) fn forward_pass(&mut self, handoff: &mut dyn Handoff) -> Outcome {
        let shapes = {
            let (mut mute, mut quiet) = (Mute, Quiet);
            match self.quiet(&mut mute, &mut quiet).before_prompt(Pass::Peek) {
                Gate::Decided(Outcome::Ignore) => None,
                Gate::Prompt(Prompted::Enrolled { enrollment, .. }) => {
                    Some(Shapes::of(&enrollment))
                }
                // Every other case (unknown, not enrolled, locked, broken) is
                // asked the same way; the second line decides and says why.
                Gate::Decided(_) | Gate::Prompt(_) => Some(Shapes::default_shapes()),
            }
        };
        let reply = match self.ask(&self.config.forward_pass_prompt) {
            Ok(r) => r,
            Err(outcome) => return outcome,
        };
        let (password, kept) = match shapes {
            None => (reply, Kept::NotAsked),
            Some(shapes) => match split::split(&reply, &shapes) {
                Ok(parts) => {
                    let kept = parts.code.map_or(Kept::NoCode, Kept::Code);
                    (parts.password, kept)
                }
                Err(refused) => {
                    self.error(messages::FORWARD_REFUSED);
                    self.deny(
                        Level::Notice,
                        &format!("split mode: {refused}; nothing was checked or counted"),
                    );
                    return Outcome::AuthErr;
                }
            },
        };
        let what = match kept {
            Kept::Code(_) => "a code kept for the forwarded_code line",
            Kept::NoCode => "no code after the password",
            Kept::NotAsked => "not asked by policy: the whole reply handed on",
        };
        if let Err(e) = handoff.pass_on(&password, kept) {
            self.deny(
                Level::Err,
                &format!("split mode: could not hand the password on: {e}"),
            );
            return Outcome::AuthInfoUnavail;
        }
        self.debug(|| format!("split mode: {what}"));
        Outcome::Ignore
    }

    /// The second line: verify what the first line kept, without prompting.
    pub(super) fn forwarded_code(&mut self, handoff: &mut dyn Handoff) -> Outcome {
        let Some(kept) = handoff.take_kept() else {
            self.deny(Level::Err,
            "forwarded_code: no `pam_otpgate.so forward_pass` line ran before this one in this PAM call; \
             put it before the password module (see pam_otpgate(8))",
        );
            return Outcome::AuthInfoUnavail;
        };
        self.check(Source::Kept(kept))
    }

    /// The reply the second line checks: the kept code, or nothing (which is
    /// refused and counted like an empty reply). A user the first line did not
    /// ask, whom policy asks now (a remembered address expired in between), is
    /// refused without counting: they never had the chance to type a code.
    pub(super) fn kept_reply(&mut self, kept: &Kept) -> Result<Zeroizing<Vec<u8>>, Outcome> {
        match kept {
            Kept::Code(code) => Ok(Zeroizing::new(code.as_bytes().to_vec())),
            Kept::NoCode => Ok(Zeroizing::new(Vec::new())),
            Kept::NotAsked => {
                self.error(messages::FORWARD_NOT_ASKED);
                self.deny(Level::Notice,
                "split mode: no code was kept because policy did not ask for one when the password was typed, but it does now",
            );
                Err(Outcome::AuthErr)
            }
        }
    }
}
