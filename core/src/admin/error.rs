//! The admin layer's one error type: what went wrong, what to do, and what
//! kind of failure it is (the CLI turns the kind into its exit code).

use crate::config::ConfigError;
use crate::store::StoreError;

/// Why a command did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A command for administrators, run by someone else.
    NotRoot {
        command: String,
    },
    /// A user acting for another user.
    OtherUser {
        action: String,
        name: String,
    },
    /// `--no-confirm` from a user; `instead` says what to do.
    NoConfirm {
        instead: String,
    },
    /// A change that needs a current code, and none was given.
    CodeNeeded {
        what: String,
    },
    /// A change refused because the code given is not current.
    CodeRefused {
        what: String,
    },
    /// The account has no enrollment.
    NotEnrolled {
        user: String,
        location: String,
    },
    /// The account is enrolled and `--force` was not given.
    AlreadyEnrolled {
        user: String,
        location: String,
    },
    /// `--user NAME` names nobody.
    NoSuchUser {
        name: String,
    },
    /// The caller's uid has no passwd entry.
    NoAccountEntry {
        uid: u32,
    },
    /// A name or value the caller gave is not acceptable.
    Input(String),
    /// The PAM service does not load pam_otpgate.
    NotInStack {
        path: String,
    },
    Config(ConfigError),
    Store(StoreError),
    /// Something below failed (a lookup, the random source, a file).
    System(String),
}

/// How a failure is reported to the shell (see `otpgate(1)`, EXIT STATUS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The caller may not do this: exit 3.
    Denied,
    /// The caller asked for something invalid: exit 2.
    Usage,
    /// It could not be done: exit 1.
    Failure,
}

impl Error {
    pub fn kind(&self) -> Kind {
        match self {
            Self::NotRoot { .. }
            | Self::OtherUser { .. }
            | Self::NoConfirm { .. }
            | Self::CodeNeeded { .. }
            | Self::CodeRefused { .. } => Kind::Denied,
            Self::Input(_) | Self::NoSuchUser { .. } => Kind::Usage,
            _ => Kind::Failure,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotRoot { command } => write!(
                f,
                "{command} is for administrators: run it as root (sudo otpgate {command})"
            ),
            Self::OtherUser { action, name } => write!(
                f,
                "only root can {action} for another user ({name}); run `sudo otpgate ... --user {name}`"
            ),
            Self::NoConfirm { instead } => {
                write!(f, "--no-confirm is for administrators (root); {instead}")
            }
            Self::CodeNeeded { what } => write!(
                f,
                "{what} needs a current code from your app; nothing was changed"
            ),
            Self::CodeRefused { what } => write!(
                f,
                "that code is not valid; {what} refused and nothing was changed"
            ),
            Self::NotEnrolled { user, location } => write!(
                f,
                "{user} is not enrolled ({location} does not exist); run `otpgate enroll` first"
            ),
            Self::AlreadyEnrolled { user, location } => write!(
                f,
                "{user} is already enrolled ({location}); to replace the enrollment (your app's entry stops working) use --force"
            ),
            Self::NoSuchUser { name } => write!(
                f,
                "no such user: {name}; check the name with `getent passwd {name}`"
            ),
            Self::NoAccountEntry { uid } => {
                write!(f, "your uid {uid} has no account entry; use --user NAME")
            }
            Self::Input(why) | Self::System(why) => f.write_str(why),
            Self::NotInStack { path } => write!(
                f,
                "pam_otpgate.so is not in the auth stack of {path} (includes followed)"
            ),
            Self::Config(e) => write!(
                f,
                "{e}; fix the file (see otpgate.toml(5)), then run `otpgate check-config`"
            ),
            Self::Store(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config(e) => Some(e),
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<crate::otp::OtpError> for Error {
    fn from(e: crate::otp::OtpError) -> Self {
        use crate::otp::OtpError::{Digits, Period, RecoveryCount};
        match e {
            Digits(_) | Period(_) | RecoveryCount(_) => Self::Input(e.to_string()),
            _ => Self::System(e.to_string()),
        }
    }
}

impl From<crate::enrollment::devices::DeviceError> for Error {
    fn from(e: crate::enrollment::devices::DeviceError) -> Self {
        Self::Input(e.to_string())
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}
