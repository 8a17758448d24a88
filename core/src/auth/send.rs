//! Codes by e-mail and SMS at the prompt: an empty answer from a user with
//! such a device sends a code there (within `send_limit`, not while locked
//! out) and asks for it. The code is kept only as a keyed hash in the login
//! state, bound to this PAM call. A send is recorded before the mailer runs
//! (so parallel logins cannot pass the limit together); a mailer or gateway
//! that cannot be started changes nothing, one that runs and fails keeps
//! its send counted and leaves no code waiting.

use super::login::Login;
use super::{Level, Outcome, quote};
use crate::enrollment::{DeviceKind, Enrollment};
use crate::otp::sent::{self, Pending};
use crate::store::StoreExt;
use crate::sys::account::Account;
use crate::sys::clock::format_utc;

/// What an empty answer leads to.
pub(super) enum Offer {
    /// The user has no device codes can be sent to (or none allowed).
    Nothing,
    /// A code was sent; ask for it with this prompt.
    Prompt(String),
    /// Refused (limit, lockout, the send failed); the user was told why.
    Denied(Outcome),
}

/// What the reserving update found.
enum Reserved {
    Go,
    Locked(u64),
    OverLimit(u64),
}

impl Login<'_> {
    /// Sends a code to the user's e-mail or SMS device, if they have one.
    pub(super) fn offer(&mut self, account: &Account, enrollment: &Enrollment) -> Offer {
        let (config, now) = (self.config, self.now);
        let usable = super::verify::allowed(config, enrollment);
        let Some(device) = usable.devices.iter().find(|d| d.kind.target().is_some()) else {
            return Offer::Nothing;
        };
        if self.request().is_empty() {
            self.deny(
                Level::Err,
                "no code sent: the system's random source failed",
            );
            return Offer::Denied(Outcome::AuthInfoUnavail);
        }
        // What can be checked without sending is checked before anything is
        // recorded: a stopped mail system or an unsafe gateway changes nothing.
        let ready = match &device.kind {
            DeviceKind::Email(_) => self.sender.email_ready(&config.mail_command),
            DeviceKind::Sms(_) => self.sender.sms_ready(&config.sms_command),
            _ => return Offer::Nothing,
        };
        if let Err(why) = ready {
            return Offer::Denied(self.send_failed(&why, &device.name));
        }
        let code = match sent::new_code(self.random) {
            Ok(c) => c,
            Err(why) => {
                self.deny(Level::Err, &format!("no code sent: {why}"));
                return Offer::Denied(Outcome::AuthInfoUnavail);
            }
        };
        let pending = Pending {
            device: device.secret.fingerprint(),
            request: self.request().to_string(),
            hash: sent::code_hash(&device.secret, self.request(), &code),
            expires: now.saturating_add(sent::LIFETIME),
            tries_left: sent::TRIES,
        };
        // The lock and `send_limit` are checked and the send recorded in one
        // update (under the state lock, or one compare-and-set in the fleet)
        // before the mailer runs: of any number of parallel logins, at most
        // `send_limit` within the window get past here. A newer send replaces
        // the code an earlier, still waiting login was sent.
        let request = self.request().to_string();
        let reserved = self.store.update(account, |st| {
            if let Some(until) = st.locked_at(now) {
                return Reserved::Locked(until);
            }
            if let Some(at) = sent::next_send_allowed(&st.sends, config.send_limit, now) {
                return Reserved::OverLimit(at);
            }
            st.sends
                .retain(|t| t.saturating_add(sent::SEND_WINDOW) > now);
            st.sends.push(now);
            st.pending = Some(pending.clone());
            Reserved::Go
        });
        match reserved {
            Err(e) => return Offer::Denied(self.store_failed(&e)),
            Ok(Reserved::Locked(until)) => return Offer::Denied(self.deny_locked(until)),
            Ok(Reserved::OverLimit(at)) => {
                self.error(&format!(
                    "Too many codes were sent: wait until {}, or use another authenticator.",
                    format_utc(at)
                ));
                self.deny(
                    Level::Notice,
                    &format!(
                        "no code sent: {} sent within 15 minutes (send_limit)",
                        config.send_limit
                    ),
                );
                return Offer::Denied(Outcome::AuthErr);
            }
            Ok(Reserved::Go) => {}
        }
        let host = self
            .sender
            .host_name()
            .unwrap_or_else(|| "this server".into());
        let body = format!(
            "Your verification code for {} on {host} is {}.\n\
         It works once, for the login that asked for it, within {} minutes.\n\
         If you did not just try to log in, tell an administrator: someone knows your password.\n",
            self.req.service,
            code.as_str(),
            sent::LIFETIME / 60
        );
        let (how, result) = match device.kind {
            DeviceKind::Email(to) => {
                let message = format!(
                    "To: {}\nSubject: Verification code for {host}\nContent-Type: text/plain; charset=UTF-8\n\n{body}",
                    to.as_str()
                );
                (
                    format!("by e-mail to {}", to.masked()),
                    self.sender.email(&config.mail_command, &to, &message),
                )
            }
            DeviceKind::Sms(to) => (
                format!("by SMS to {}", to.masked()),
                self.sender.sms(&config.sms_command, &to, &body),
            ),
            _ => return Offer::Nothing,
        };
        drop(body);
        if let Err(why) = result {
            // The send stays counted (the program ran and may have delivered);
            // the code it was to carry is forgotten, so nothing waits for it.
            let _ = self.store.update(account, |st| {
                if st.pending.as_ref().is_some_and(|p| p.request == request) {
                    st.pending = None;
                }
            });
            return Offer::Denied(self.send_failed(&why, &device.name));
        }
        self.line(
            Level::Notice,
            &format!("code sent {how} (device {})", quote(&device.name)),
        );
        let method = Some(crate::fleet::history::Method::from(device.kind.method()));
        self.event(crate::fleet::history::LoginResult::Sent, method);
        Offer::Prompt(format!("Code sent {how}: "))
    }

    /// Tells the user and the log that a code could not be sent.
    fn send_failed(&mut self, why: &crate::sys::send::SendError, device: &str) -> Outcome {
        self.error(match why {
        crate::sys::send::SendError::MailSystemDown(_) => {
            "The code could not be sent: the mail system on this server is not running. Tell an administrator, or use another authenticator."
        }
        crate::sys::send::SendError::Failed(_) => {
            "The code could not be sent: try again in a few minutes, or use another authenticator."
        }
    });
        self.deny(
            Level::Err,
            &format!("sending a code to device {} failed: {why}", quote(device)),
        );
        Outcome::AuthInfoUnavail
    }
}
