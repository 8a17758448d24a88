//! What a checked reply came to, and what follows from it: accepted or
//! not, counted as a failure or not, another try or not, the history.

use crate::enrollment::Enrollment;
use crate::fleet::history::{self, LoginResult};
use crate::otp::input::Input;

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
    /// A YubiKey OTP that is not a valid touch of one of the user's keys;
    /// the reason is safe to log.
    WrongOtp(&'static str),
    /// None of the user's devices (nor recovery codes) is allowed by
    /// `methods` for this service.
    NoMethod,
    /// The code sent by e-mail or SMS expired before it was typed.
    SentExpired,
}

impl Verdict {
    /// What the login history says of this verdict, and the method it
    /// concerns when that is known.
    pub(super) fn history(
        &self,
        input: &Input,
        enrollment: &Enrollment,
    ) -> (LoginResult, Option<history::Method>) {
        let kind = |device: &str| {
            enrollment
                .devices
                .iter()
                .find(|d| d.name == device)
                .map(|d| history::Method::from(d.kind.method()))
        };
        match self {
            Self::Device { name, .. } => (LoginResult::Accepted, kind(name)),
            Self::Recovery { .. } => (LoginResult::Accepted, Some(history::Method::Recovery)),
            Self::Wrong => (
                LoginResult::WrongCode,
                match input {
                    Input::Recovery(_) => Some(history::Method::Recovery),
                    Input::YubicoOtp(_) => Some(history::Method::YubicoOtp),
                    _ => None,
                },
            ),
            Self::Replayed { device } => (LoginResult::Replay, kind(device)),
            Self::RecoveryUsed => (LoginResult::Replay, Some(history::Method::Recovery)),
            Self::ResyncNeeded { device } => (LoginResult::WrongCode, kind(device)),
            Self::Unusable(_) | Self::SentExpired => (LoginResult::WrongCode, None),
            Self::WrongOtp(_) => (LoginResult::WrongCode, Some(history::Method::YubicoOtp)),
            Self::Locked { .. } => (LoginResult::Locked, None),
            Self::RecoveryBroken(_) => (LoginResult::Unavailable, Some(history::Method::Recovery)),
            Self::NoMethod => (LoginResult::Denied, None),
        }
    }

    pub(super) fn accepted(&self) -> bool {
        matches!(self, Self::Device { .. } | Self::Recovery { .. })
    }

    /// Whether asking again within the same login makes sense (`prompts`):
    /// a mistyped, reused or missing code, or an HOTP token to press again.
    pub(super) fn may_retry(&self) -> bool {
        matches!(
            self,
            Self::Wrong
                | Self::WrongOtp(_)
                | Self::SentExpired
                | Self::Replayed { .. }
                | Self::RecoveryUsed
                | Self::ResyncNeeded { .. }
                | Self::Unusable(_)
        )
    }

    /// Whether this counts toward the lockout (a guess, not a fault of ours).
    pub(super) fn counts_as_failure(&self) -> bool {
        !matches!(
            self,
            Self::Device { .. }
                | Self::Recovery { .. }
                | Self::ResyncNeeded { .. }
                | Self::Locked { .. }
                | Self::RecoveryBroken(_)
                | Self::NoMethod
                | Self::SentExpired
        )
    }
}
