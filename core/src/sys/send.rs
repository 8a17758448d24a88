//! Why a code could not be handed to the mailer or the SMS gateway (the
//! programs are run by otpgate-os).

/// Why a message was not handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The local mail system is not running: a message given to it now
    /// would only wait in a queue, and the login for it.
    MailSystemDown(String),
    /// The mailer or gateway is missing, failed, hung or is unsafe.
    Failed(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MailSystemDown(why) | Self::Failed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for SendError {}
