//! `pam_otpgate.so`: asks for a verification code after the password step.
//!
//! This crate only translates between libpam and `otpgate_core::auth`:
//! module arguments, PAM items and the conversation go in, an
//! [`Outcome`](otpgate_core::auth::Outcome) comes out and becomes a PAM
//! return code. Every hook runs inside pam-bindings' `catch_unwind` guard
//! (a panic becomes PAM_ABORT, a denial), and the release profile keeps
//! `panic = "unwind"` so that guard works.
//!
//! Return codes of the non-auth hooks (documented in pam_otpgate(8)):
//! * `pam_sm_setcred` → PAM_SUCCESS (there are no credentials to set).
//! * account, session and password hooks → PAM_IGNORE: the module makes no
//!   decision there, so a line put in those stacks by mistake neither grants
//!   nor breaks anything; a warning is logged.

// Unsafe code is denied by the workspace lints (Cargo.toml). The only
// module allowed to hold `unsafe`: the hooks libpam calls and the
// libpam functions pam-bindings does not wrap.
#[allow(unsafe_code)]
mod ffi;

use otpgate_core::auth::{
    Conversation, ConversationError, Handoff, HandoffError, Kept, Level, Log, Outcome, Request,
};
use otpgate_os::clock::SystemClock;
use otpgate_os::login::Server;
use pam::constants::{PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_TEXT_INFO, PamFlag, PamResultCode};
use pam::conv::Conv;
use pam::items::{RHost, Service};
use pam::module::{PamHandle, PamHooks};
use std::ffi::CStr;
use zeroize::Zeroizing;

/// The module; [`ffi`] exports its hooks as the six `pam_sm_*` symbols.
pub struct OtpGate;

/// syslog priorities (see syslog(3)).
const LOG_ERR: i32 = 3;
const LOG_WARNING: i32 = 4;
const LOG_NOTICE: i32 = 5;
const LOG_INFO: i32 = 6;
const LOG_DEBUG: i32 = 7;

struct Syslog<'h>(&'h PamHandle);

impl Log for Syslog<'_> {
    fn log(&mut self, level: Level, line: &str) {
        let priority = match level {
            Level::Err => LOG_ERR,
            Level::Warning => LOG_WARNING,
            Level::Notice => LOG_NOTICE,
            Level::Info => LOG_INFO,
            Level::Debug => LOG_DEBUG,
        };
        ffi::syslog(self.0, priority, line);
    }
}

struct PamConversation<'h> {
    conv: Option<Conv<'h>>,
    silent: bool,
}

impl Conversation for PamConversation<'_> {
    fn ask_hidden(
        &mut self,
        prompt: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        let Some(conv) = &self.conv else {
            return Err(ConversationError(
                "the application set no conversation function".into(),
            ));
        };
        match conv.send(PAM_PROMPT_ECHO_OFF, prompt) {
            Ok(Some(reply)) => Ok(Some(Zeroizing::new(reply.as_bytes().to_vec()))),
            Ok(None) => Ok(None),
            Err(code) => Err(ConversationError(format!("{code:?}"))),
        }
    }

    fn info(&mut self, text: &str) {
        if self.silent {
            return;
        }
        if let Some(conv) = &self.conv {
            let _ = conv.send(PAM_TEXT_INFO, text);
        }
    }

    fn error(&mut self, text: &str) {
        if self.silent {
            return;
        }
        if let Some(conv) = &self.conv {
            let _ = conv.send(PAM_ERROR_MSG, text);
        }
    }
}

/// Split mode through libpam. Taking the kept code needs only a shared
/// borrow of the handle; handing the password on needs a mutable one, so
/// it is done after the conversation (which borrows the handle) is over.
struct PamHandoff<'h> {
    pamh: &'h PamHandle,
    pending: Option<(Zeroizing<Vec<u8>>, Kept)>,
}

impl Handoff for PamHandoff<'_> {
    fn pass_on(&mut self, password: &[u8], kept: Kept) -> Result<(), HandoffError> {
        if password.contains(&0) {
            return Err(HandoffError("the password contains a NUL byte".into()));
        }
        self.pending = Some((Zeroizing::new(password.to_vec()), kept));
        Ok(())
    }

    fn take_kept(&mut self) -> Option<Kept> {
        ffi::take_kept(self.pamh)
    }
}

/// Sets PAM_AUTHTOK and the PAM data for the `forwarded_code` line.
fn hand_on(pamh: &mut PamHandle, password: &[u8], kept: Kept) -> Result<(), String> {
    ffi::set_authtok(pamh, password)
        .map_err(|c| format!("pam_set_item(PAM_AUTHTOK) returned {c}"))?;
    ffi::keep(pamh, kept).map_err(|c| format!("pam_set_data: {c:?}"))
}

fn to_pam(outcome: Outcome) -> PamResultCode {
    match outcome {
        Outcome::Success => PamResultCode::PAM_SUCCESS,
        Outcome::Ignore => PamResultCode::PAM_IGNORE,
        Outcome::AuthErr => PamResultCode::PAM_AUTH_ERR,
        Outcome::UserUnknown => PamResultCode::PAM_USER_UNKNOWN,
        Outcome::AuthInfoUnavail => PamResultCode::PAM_AUTHINFO_UNAVAIL,
        Outcome::ConvErr => PamResultCode::PAM_CONV_ERR,
        Outcome::MaxTries => PamResultCode::PAM_MAXTRIES,
    }
}

fn item_text(bytes: Option<&CStr>) -> Option<String> {
    bytes.map(|c| c.to_string_lossy().into_owned())
}

/// PAM_SILENT: the application asked for no informational messages.
const PAM_SILENT: PamFlag = 0x8000;

impl PamHooks for OtpGate {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        let args = arguments(&args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        #[cfg(feature = "test-panic")]
        if args.contains(&"otpgate-test-panic") {
            panic!("otpgate-test-panic: a panic inside the module, on purpose");
        }

        let user = match pamh.get_user(None) {
            Ok(u) => u,
            Err(code) => {
                Syslog(pamh).log(
                    Level::Err,
                    &format!("result=denied reason=\"could not get the user name ({code:?})\""),
                );
                return get_user_failure(code);
            }
        };
        let service = item_text(pamh.get_item::<Service>().ok().flatten().map(|s| s.0))
            .unwrap_or_else(|| "-".into());
        let rhost = item_text(pamh.get_item::<RHost>().ok().flatten().map(|s| s.0))
            .filter(|h| !h.is_empty());
        let request = Request {
            user: &user,
            service: &service,
            rhost: rhost.as_deref(),
        };
        let pending = {
            let shared: &PamHandle = pamh;
            let mut conv = PamConversation {
                conv: shared.get_item::<Conv>().ok().flatten(),
                silent: flags & PAM_SILENT != 0,
            };
            let mut handoff = PamHandoff {
                pamh: shared,
                pending: None,
            };
            let outcome = otpgate_core::auth::authenticate(
                &args,
                &request,
                &mut conv,
                &mut handoff,
                &mut Syslog(shared),
                &Server {
                    clock: &SystemClock,
                },
            );
            if outcome != Outcome::Ignore {
                return to_pam(outcome);
            }
            handoff.pending
        };
        if let Some((password, kept)) = pending
            && let Err(e) = hand_on(pamh, &password, kept)
        {
            Syslog(pamh).log(
                Level::Err,
                &format!(
                    "result=denied reason=\"split mode: could not hand the password on: {e}\""
                ),
            );
            return PamResultCode::PAM_AUTHINFO_UNAVAIL;
        }
        PamResultCode::PAM_IGNORE
    }

    fn sm_setcred(_pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        PamResultCode::PAM_SUCCESS
    }

    fn acct_mgmt(pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        not_here(pamh, "account")
    }

    fn sm_open_session(pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        not_here(pamh, "session")
    }

    fn sm_close_session(pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        not_here(pamh, "session")
    }

    fn sm_chauthtok(pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        not_here(pamh, "password")
    }
}

/// The module arguments as text. One that is not UTF-8 cannot be valid: it
/// becomes an argument the parser refuses, so the login fails closed with
/// a log line instead of the argument being dropped.
fn arguments(args: &[&CStr]) -> Vec<String> {
    args.iter()
        .map(|a| {
            a.to_str()
                .map_or_else(|_| "\u{fffd}non-UTF-8-argument".into(), str::to_owned)
        })
        .collect()
}

/// What a failed `pam_get_user` returns: the failure codes it documents
/// pass through; anything else (PAM_SUCCESS without a name, PAM_IGNORE,
/// PAM_CONV_AGAIN…) becomes a plain denial, never a success.
fn get_user_failure(code: PamResultCode) -> PamResultCode {
    match code {
        PamResultCode::PAM_CONV_ERR
        | PamResultCode::PAM_SYSTEM_ERR
        | PamResultCode::PAM_BUF_ERR
        | PamResultCode::PAM_ABORT => code,
        _ => PamResultCode::PAM_AUTH_ERR,
    }
}

fn not_here(pamh: &PamHandle, stack: &str) -> PamResultCode {
    Syslog(pamh).log(
        Level::Warning,
        &format!("pam_otpgate does nothing in the {stack} stack (returns PAM_IGNORE); list it under `auth`"),
    );
    PamResultCode::PAM_IGNORE
}

#[cfg(test)]
mod tests {
    use super::*;
    use otpgate_core::auth::{Outcome, Request};
    use std::ffi::CString;

    #[test]
    fn a_non_utf8_argument_becomes_one_the_parser_refuses() {
        let good = CString::new("window=0").unwrap();
        let bad = CString::new(vec![b'n', 0xff, b'k']).unwrap();
        let args = arguments(&[good.as_c_str(), bad.as_c_str()]);
        assert_eq!(args[0], "window=0");
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = otpgate_core::config::args::ModuleArgs::parse(&refs).unwrap_err();
        assert!(err.to_string().contains("non-UTF-8"), "{err}");
        // And through the whole flow: a denial before any prompt.
        struct NoConv;
        impl Conversation for NoConv {
            fn ask_hidden(
                &mut self,
                _: &str,
            ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
                panic!("no prompt for a broken argument list")
            }
            fn info(&mut self, _: &str) {}
            fn error(&mut self, _: &str) {}
        }
        struct Quiet;
        impl Log for Quiet {
            fn log(&mut self, _: Level, _: &str) {}
        }
        let req = Request {
            user: "root",
            service: "test",
            rhost: None,
        };
        let out = otpgate_core::auth::authenticate(
            &refs,
            &req,
            &mut NoConv,
            &mut otpgate_core::auth::NoHandoff,
            &mut Quiet,
            &Server {
                clock: &otpgate_core::sys::clock::FixedClock(1_800_000_000),
            },
        );
        assert_eq!(out, Outcome::AuthInfoUnavail);
        assert_eq!(to_pam(out), PamResultCode::PAM_AUTHINFO_UNAVAIL);
    }

    #[test]
    fn pam_get_user_failures_never_become_success() {
        for (got, want) in [
            (PamResultCode::PAM_CONV_ERR, PamResultCode::PAM_CONV_ERR),
            (PamResultCode::PAM_SYSTEM_ERR, PamResultCode::PAM_SYSTEM_ERR),
            (PamResultCode::PAM_BUF_ERR, PamResultCode::PAM_BUF_ERR),
            (PamResultCode::PAM_ABORT, PamResultCode::PAM_ABORT),
            (PamResultCode::PAM_SUCCESS, PamResultCode::PAM_AUTH_ERR),
            (PamResultCode::PAM_IGNORE, PamResultCode::PAM_AUTH_ERR),
            (PamResultCode::PAM_CONV_AGAIN, PamResultCode::PAM_AUTH_ERR),
        ] {
            let shown = format!("{got:?}");
            assert_eq!(get_user_failure(got), want, "{shown}");
        }
    }

    #[test]
    fn every_outcome_maps_to_its_own_pam_code() {
        let all = [
            (Outcome::Success, PamResultCode::PAM_SUCCESS),
            (Outcome::Ignore, PamResultCode::PAM_IGNORE),
            (Outcome::AuthErr, PamResultCode::PAM_AUTH_ERR),
            (Outcome::UserUnknown, PamResultCode::PAM_USER_UNKNOWN),
            (
                Outcome::AuthInfoUnavail,
                PamResultCode::PAM_AUTHINFO_UNAVAIL,
            ),
            (Outcome::ConvErr, PamResultCode::PAM_CONV_ERR),
            (Outcome::MaxTries, PamResultCode::PAM_MAXTRIES),
        ];
        for (outcome, code) in all {
            assert_eq!(to_pam(outcome), code);
        }
    }
}
