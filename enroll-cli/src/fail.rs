//! How a command fails: one line for the terminal and an exit status that
//! tells a script what kind of failure it was (otpgate(1), EXIT STATUS):
//! 1 it could not be done, 2 invalid use (clap uses 2 for bad flags too),
//! 3 not permitted (not root, no valid current code).

use otpgate_core::admin::{Error, Kind};

pub const FAILURE: u8 = 1;
pub const USAGE: u8 = 2;
pub const DENIED: u8 = 3;

#[derive(Debug)]
pub struct Fail {
    pub code: u8,
    pub message: String,
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        let code = match e.kind() {
            Kind::Denied => DENIED,
            Kind::Usage => USAGE,
            Kind::Failure => FAILURE,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

impl From<String> for Fail {
    fn from(message: String) -> Self {
        Self {
            code: FAILURE,
            message,
        }
    }
}

impl From<&str> for Fail {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

/// Failures that are neither a refusal nor bad usage: exit 1, their
/// message as it is.
macro_rules! failures {
    ($($error:ty),* $(,)?) => {
        $(impl From<$error> for Fail {
            fn from(e: $error) -> Self {
                Self {
                    code: FAILURE,
                    message: e.to_string(),
                }
            }
        })*
    };
}

failures!(
    otpgate_core::admin::report::AccountsError,
    otpgate_core::enrollment::devices::SetupError,
    otpgate_core::enrollment::gauth::GaFileError,
    otpgate_core::fleet::history::DurationError,
    otpgate_core::fleet::seal::KeyError,
    otpgate_core::otp::secret::SecretError,
    otpgate_os::fs::CreateError,
    serde_json::Error,
);

impl From<otpgate_core::store::StoreError> for Fail {
    fn from(e: otpgate_core::store::StoreError) -> Self {
        Error::from(e).into()
    }
}

impl From<otpgate_core::otp::OtpError> for Fail {
    fn from(e: otpgate_core::otp::OtpError) -> Self {
        Error::from(e).into()
    }
}

impl From<otpgate_core::enrollment::devices::DeviceError> for Fail {
    fn from(e: otpgate_core::enrollment::devices::DeviceError) -> Self {
        Error::from(e).into()
    }
}

/// A result of a command.
pub type Result<T = ()> = std::result::Result<T, Fail>;
