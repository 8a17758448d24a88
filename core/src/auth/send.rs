//! Codes by e-mail and SMS at the prompt: an empty answer from a user with
//! such a device sends a code there (within `send_limit`, not while locked
//! out) and asks for it. The code is kept only as a keyed hash in the login
//! state, bound to this PAM call; a send that fails changes nothing.

use super::messages::{deny_locked, store_failed};
use super::{Conversation, Ctx, Level, Line, Outcome, deny_line, quote};
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

pub(super) fn offer(
    line: &Line,
    account: &Account,
    enrollment: &Enrollment,
    conv: &mut dyn Conversation,
    ctx: &mut Ctx,
) -> Offer {
    let config = line.config;
    let now = line.now;
    let usable = super::verify::allowed(config, enrollment);
    let Some(device) = usable.devices.iter().find(|d| d.kind.target().is_some()) else {
        return Offer::Nothing;
    };
    if ctx.request().is_empty() {
        deny_line(
            ctx,
            Level::Err,
            "no code sent: the system's random source failed",
        );
        return Offer::Denied(Outcome::AuthInfoUnavail);
    }
    let state = match line.store.read_state(account) {
        Ok(s) => s,
        Err(e) => return Offer::Denied(store_failed(&e, conv, ctx)),
    };
    if let Some(until) = state.locked_at(now) {
        return Offer::Denied(deny_locked(until, conv, ctx));
    }
    if let Some(at) = sent::next_send_allowed(&state.sends, config.send_limit, now) {
        conv.error(&format!(
            "Too many codes were sent: wait until {}, or use another authenticator.",
            format_utc(at)
        ));
        deny_line(
            ctx,
            Level::Notice,
            &format!(
                "no code sent: {} sent within 15 minutes (send_limit)",
                config.send_limit
            ),
        );
        return Offer::Denied(Outcome::AuthErr);
    }
    let code = match sent::new_code() {
        Ok(c) => c,
        Err(why) => {
            deny_line(ctx, Level::Err, &format!("no code sent: {why}"));
            return Offer::Denied(Outcome::AuthInfoUnavail);
        }
    };
    let host = crate::sys::hostname().unwrap_or_else(|| "this server".into());
    let body = format!(
        "Your verification code for {} on {host} is {}.\n\
         It works once, for the login that asked for it, within {} minutes.\n\
         If you did not just try to log in, tell an administrator: someone knows your password.\n",
        line.req.service,
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
                crate::sys::send::email(&config.mail_command, &to, &message),
            )
        }
        DeviceKind::Sms(to) => (
            format!("by SMS to {}", to.masked()),
            crate::sys::send::sms(&config.sms_command, &to, &body),
        ),
        _ => return Offer::Nothing,
    };
    drop(body);
    if let Err(why) = result {
        conv.error(match why {
            crate::sys::send::SendError::MailSystemDown(_) => {
                "The code could not be sent: the mail system on this server is not running. Tell an administrator, or use another authenticator."
            }
            crate::sys::send::SendError::Failed(_) => {
                "The code could not be sent: try again in a few minutes, or use another authenticator."
            }
        });
        deny_line(
            ctx,
            Level::Err,
            &format!(
                "sending a code to device {} failed: {why}",
                quote(&device.name)
            ),
        );
        return Offer::Denied(Outcome::AuthInfoUnavail);
    }
    let pending = Pending {
        device: device.secret.fingerprint(),
        request: ctx.request().to_string(),
        hash: sent::code_hash(&device.secret, ctx.request(), &code),
        expires: now.saturating_add(sent::LIFETIME),
        tries_left: sent::TRIES,
    };
    let recorded = line.store.update(account, |st| {
        st.sends
            .retain(|t| t.saturating_add(sent::SEND_WINDOW) > now);
        st.sends.push(now);
        st.pending = Some(pending.clone());
    });
    if let Err(e) = recorded {
        return Offer::Denied(store_failed(&e, conv, ctx));
    }
    ctx.line(
        Level::Notice,
        &format!("code sent {how} (device {})", quote(&device.name)),
    );
    Offer::Prompt(format!("Code sent {how}: "))
}
