//! What the user is told, and the log line for each verdict.

use super::login::Login;
use super::verify::Verdict;
use super::{Level, Outcome, quote};
use crate::otp::input::{self, Input};
use crate::sys::clock::format_utc;

/// Shown to an unenrolled user who must use a second factor.
pub const NOT_ENROLLED: &str = "Two-factor authentication is required for this account, but it is not set up. \
     Log in another way and run `otpgate enroll`, or ask an administrator.";

pub(super) fn locked_message(until: u64) -> String {
    format!(
        "Too many wrong codes: two-factor login is locked until {}.",
        format_utc(until)
    )
}

impl Login<'_> {
    /// Refuses a locked-out user: tells them until when, logs it.
    pub(super) fn deny_locked(&mut self, until: u64) -> Outcome {
        self.error(&locked_message(until));
        self.deny(
            Level::Warning,
            &format!(
                "locked out until {} after too many wrong codes",
                format_utc(until)
            ),
        );
        Outcome::MaxTries
    }

    /// Denies because the store failed: tells the user when its service is
    /// down (fleet mode), logs why. Never a pass.
    pub(super) fn store_failed(&mut self, e: &crate::store::StoreError) -> Outcome {
        if e.service_down() {
            self.error(SERVICE_UNAVAILABLE);
        }
        self.deny(Level::Err, &e.to_string());
        Outcome::AuthInfoUnavail
    }

    /// What an unknown user is told: exactly what a known one would be for the
    /// same reply, so the answer reveals nothing about the account.
    pub(super) fn tell_unknown(&mut self, reply: &[u8]) {
        match input::classify(reply) {
            Input::Code(_) | Input::Recovery(_) | Input::YubicoOtp(_) => self.error(WRONG_CODE),
            Input::Empty | Input::Invalid(_) => self.error(NOT_A_CODE),
        }
    }

    /// Logs a verdict, tells the user what they need to know, and maps it to an outcome.
    pub(super) fn report(&mut self, verdict: Verdict, input: &Input) -> Outcome {
        match verdict {
            Verdict::Device { name, matched } => {
                self.debug(|| format!("matched step/counter {matched}"));
                self.line(
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
                self.info(&msg);
                let level = if remaining <= 2 {
                    Level::Warning
                } else {
                    Level::Notice
                };
                self.line(
                    level,
                    &format!("result=accepted method=recovery-code remaining={remaining}"),
                );
                Outcome::Success
            }
            Verdict::Wrong if matches!(input, Input::Recovery(_)) => {
                self.error(WRONG_CODE);
                self.deny(Level::Notice, "wrong recovery code");
                Outcome::AuthErr
            }
            Verdict::Wrong => {
                self.error(WRONG_CODE);
                self.deny(Level::Notice, "wrong code");
                Outcome::AuthErr
            }
            Verdict::Replayed { device } => {
                self.error(CODE_USED);
                self.line(
                    Level::Notice,
                    &format!(
                        "result=denied reason=\"code already used (replay refused)\" device={}",
                        quote(&device)
                    ),
                );
                Outcome::AuthErr
            }
            Verdict::RecoveryUsed => {
                self.error(RECOVERY_USED);
                self.deny(Level::Notice, "recovery code already used");
                Outcome::AuthErr
            }
            Verdict::ResyncNeeded { device } => {
                self.error("That code is far ahead of the token's counter: log in again with the token's next code to resynchronise.");
                self.line(
                Level::Notice,
                &format!("result=denied reason=\"HOTP code beyond the look-ahead; resynchronisation pending\" device={}", quote(&device)),
            );
                Outcome::AuthErr
            }
            Verdict::Unusable(why) => {
                self.error(NOT_A_CODE);
                self.deny(Level::Notice, why);
                Outcome::AuthErr
            }
            Verdict::WrongOtp(why) => {
                self.error(WRONG_CODE);
                self.deny(Level::Notice, &format!("wrong YubiKey OTP: {why}"));
                Outcome::AuthErr
            }
            Verdict::SentExpired => {
                self.error(SENT_EXPIRED);
                self.deny(Level::Notice, "the code sent was typed after it expired");
                Outcome::AuthErr
            }
            Verdict::NoMethod => {
                self.error(NO_METHOD);
                self.deny(
                    Level::Warning,
                    "no device or recovery code of this user is allowed by `methods` here",
                );
                Outcome::AuthErr
            }
            Verdict::Locked { until } => self.deny_locked(until),
            Verdict::RecoveryBroken(why) => {
                self.deny(Level::Err, &format!("recovery codes unusable: {why}"));
                Outcome::AuthInfoUnavail
            }
        }
    }
}

/// Shown when the fleet store's daemon or database cannot answer in time.
pub const SERVICE_UNAVAILABLE: &str = "Login refused: two-factor service unavailable. Try again in a minute; if it persists, tell an administrator.";

/// What the user is told about a refused reply. The same words for a
/// wrong code, whether or not the account exists or is enrolled.
pub const WRONG_CODE: &str = "Wrong code.";
/// A valid code whose time step (or counter) was already accepted.
pub const CODE_USED: &str = "This code was already used; wait for the next one.";
/// A recovery code that was already used.
pub const RECOVERY_USED: &str = "This recovery code was already used; each works only once.";
/// A code sent by e-mail or SMS typed too late.
pub const SENT_EXPIRED: &str =
    "That code has expired: log in again and press Enter at the prompt for a new one.";
/// None of the user's authenticators is allowed (`methods`) for this service.
pub const NO_METHOD: &str = "None of your authenticators may be used here; ask an administrator.";
/// A reply that is no code at all.
pub const NOT_A_CODE: &str =
    "That is not a code: type the code from your authenticator app, or a recovery code.";

/// Split mode: a reply that cannot be handed on (too long, a NUL byte).
pub const FORWARD_REFUSED: &str =
    "That reply cannot be used: type your password followed by your verification code.";
/// Split mode: policy asks for a code now but did not when the reply was read.
pub const FORWARD_NOT_ASKED: &str =
    "A verification code is required now: log in again with your password followed by your code.";
