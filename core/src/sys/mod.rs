//! The operating-system boundary: everything that touches files, accounts,
//! file-system identity or the clock. Decisions never live here.

pub mod account;
pub mod clock;
pub mod fs;
pub mod identity;
pub mod paths;
pub mod random;
pub mod send;

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
