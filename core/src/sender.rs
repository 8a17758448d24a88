//! How codes leave the server: [`Sender`], passed in like the store. On a
//! server it is [`crate::sys::send::Programs`] (the MTA's sendmail, the
//! SMS gateway); in tests, whatever the test needs.

use crate::otp::sent::Target;
use crate::sys::send::SendError;
use std::path::Path;

/// Hands messages to the mailer or the SMS gateway a config names.
pub trait Sender {
    /// Whether a message to the mailer `command` would be delivered now
    /// (checked before a send is recorded).
    fn email_ready(&self, command: &Path) -> Result<(), SendError>;
    /// Whether the SMS gateway `command` may be run.
    fn sms_ready(&self, command: &Path) -> Result<(), SendError>;
    /// Hands `message` (headers and body) to the mailer for `to`.
    fn email(&self, command: &Path, to: &Target, message: &str) -> Result<(), SendError>;
    /// Hands `message` to the SMS gateway for `to`.
    fn sms(&self, command: &Path, to: &Target, message: &str) -> Result<(), SendError>;
    /// This server's name, as messages give it.
    fn host_name(&self) -> Option<String>;
}
