//! systemd socket activation: the one place in otpgated that needs
//! `unsafe` (taking ownership of a file descriptor by number, and editing
//! the environment). Its one entry point is an `unsafe fn`: whether it is
//! sound depends on when and where it is called, which only the caller
//! knows.

#![allow(unsafe_code)]

use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixListener;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// The listening socket systemd passed, if this process was started by
/// socket activation (`LISTEN_PID` is this process, `LISTEN_FDS` ≥ 1).
///
/// # Safety
///
/// Call it once, before any other thread exists (it removes environment
/// variables), and only if nothing else in the process owns or will close
/// descriptor 3 (ownership of it moves to the listener returned).
pub unsafe fn inherited_listener() -> Option<UnixListener> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let fds: i32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || fds < 1 {
        return None;
    }
    // Only a listening Unix stream socket will do.
    let fd = LISTEN_FDS_START;
    // SAFETY: descriptor 3 is open: systemd passed it to this process
    // (LISTEN_PID is our pid, LISTEN_FDS ≥ 1); the borrow lives for one
    // fstat, before ownership is taken below.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let is_socket = nix::sys::stat::fstat(borrowed)
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
        .unwrap_or(false);
    if !is_socket {
        return None;
    }
    // SAFETY: systemd passed descriptor 3 to this process (LISTEN_PID is
    // our pid), the caller promises nothing else owns or closes it, and it
    // was just checked to be a socket; ownership moves to the listener once.
    let listener = unsafe { UnixListener::from_raw_fd(fd) };
    // SAFETY: removing environment variables races with other threads
    // reading the environment; the caller promises there are none yet.
    // Children must not see the variables.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    Some(listener)
}
