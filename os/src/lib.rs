//! otpgate's side of the operating system: everything `otpgate-core`
//! decides with but does not do itself. Core depends on none of nix,
//! rustix or libc; this crate holds them, and crates cannot depend on
//! each other in a circle, so no decision can come to call the system
//! again.
//!
//! | module | one job |
//! |---|---|
//! | [`fs`] | link-free walks from `/`, owner and mode checks on the descriptor used, atomic writes, the bounded-wait lock |
//! | [`identity`] | switching the file-system ids of the calling thread (`setfsuid`) |
//! | [`nss`] | the host's accounts and groups: core's `Directory` |
//! | [`send`] | the mailer and the SMS gateway: core's `Sender` |
//! | [`clock`] | the host's clock: core's `Clock` |
//! | [`random`] | the kernel's CSPRNG: core's `Random` |
//! | [`store`] | the files engine (`statedir` for login state) and the fleet engine's client of otpgated, and which one a config names |
//! | [`config`] | reading the config file safely |
//! | [`key`] | root-only files: `secret_key_file`, `database_password_file` |
//! | [`login`] | `Server`: the `Host` a real login runs against |
//! | [`accounts`], [`report`], [`import`], [`migrate`] | the host's side of `audit`, `import` and `migrate` |

#![forbid(unsafe_code)]

pub mod accounts;
pub mod clock;
pub mod config;
pub mod fs;
pub mod identity;
pub mod import;
pub mod key;
pub mod login;
pub mod migrate;
pub mod nss;
pub mod random;
pub mod report;
pub mod send;
pub mod store;

/// This host's name (uname's node name, what `gethostname` returns), if it
/// is UTF-8 and not empty.
pub fn hostname() -> Option<String> {
    let uts = rustix::system::uname();
    let name = uts.nodename().to_str().ok()?;
    (!name.is_empty()).then(|| name.to_owned())
}

/// Sleeps `pause` (a nanosleep system call; std's sleep would import
/// `clock_nanosleep` from libc, one more symbol bound at every load).
pub(crate) fn sleep(pause: std::time::Duration) {
    let request = rustix::thread::Timespec {
        tv_sec: i64::try_from(pause.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(pause.subsec_nanos()),
    };
    let _ = rustix::thread::nanosleep(&request);
}

/// Who runs this command: the effective uid and its entry in `directory`.
pub fn caller(
    directory: &dyn otpgate_core::directory::Directory,
) -> Result<otpgate_core::admin::Caller, otpgate_core::admin::Error> {
    let uid = otpgate_core::sys::account::Uid::from_raw(rustix::process::geteuid().as_raw());
    otpgate_core::admin::Caller::of(uid, directory)
}

#[cfg(test)]
mod tests {
    /// This crate's error types are `std::error::Error`s too.
    #[test]
    fn every_error_type_is_an_error() {
        fn is_error<E: std::error::Error + 'static>() {}
        is_error::<crate::fs::CreateError>();
        is_error::<crate::fs::FsError>();
    }
}
