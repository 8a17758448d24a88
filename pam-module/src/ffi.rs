//! The only `unsafe` code in otpgate: libpam functions that pam-bindings
//! does not wrap.
//!
//! * `pam_syslog(3)` — logs to syslog with the service and module name
//!   prefixed, using LOG_AUTHPRIV. It is variadic, so it is always called
//!   with the constant format `"%s"` and the message as the one argument: a
//!   `%` in a user name can then never be read as a format directive. We
//!   never call `openlog(3)` (that would change the host process's logging).

use pam::module::PamHandle;
use std::ffi::CString;
use std::os::raw::{c_char, c_int};

#[link(name = "pam")]
unsafe extern "C" {
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
}

/// Writes one line to syslog through libpam. Interior NUL bytes (which a
/// C string cannot hold) are replaced, so nothing is silently dropped.
pub fn syslog(pamh: &PamHandle, priority: c_int, line: &str) {
    let text = CString::new(line.replace('\0', "\\0")).unwrap_or_default();
    // SAFETY: `pamh` is the live handle libpam passed to this hook (a
    // reference, so non-null and valid for the call). The format is a
    // constant NUL-terminated "%s" that consumes exactly the one `char *`
    // argument we pass, which is a valid NUL-terminated C string that
    // outlives the call. pam_syslog does not retain either pointer.
    unsafe {
        pam_syslog(pamh, priority, c"%s".as_ptr(), text.as_ptr());
    }
}
