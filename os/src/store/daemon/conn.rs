//! The socket to otpgated.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;

/// The connection to otpgated: a Unix stream socket driven by raw system
/// calls (rustix), like the file access in [`crate::fs`]: std's
/// `UnixStream` made the module import six more libc symbols, each bound by
/// the loader at every login, fleet mode or not.
#[derive(Debug)]
pub(super) struct Conn(OwnedFd);

/// Why no connection to otpgated was made.
#[derive(Debug)]
pub(super) enum ConnectError {
    Io(std::io::Error),
    /// Whoever answers is not root, so it is not otpgated: a local user
    /// who bound the socket path could otherwise answer "not enrolled".
    NotRoot(u32),
}

impl From<rustix::io::Errno> for ConnectError {
    fn from(e: rustix::io::Errno) -> Self {
        Self::Io(e.into())
    }
}

impl Conn {
    pub(super) fn connect(path: &Path) -> Result<Self, ConnectError> {
        use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        rustix::net::connect(&fd, &SocketAddrUnix::new(path)?)?;
        // The kernel's word on who listens (SO_PEERCRED), before a byte is
        // sent or believed.
        let peer = rustix::net::sockopt::socket_peercred(&fd)?;
        if peer.uid.as_raw() != 0 {
            return Err(ConnectError::NotRoot(peer.uid.as_raw()));
        }
        Ok(Self(fd))
    }

    /// Each later send and receive gives up after `left` (EAGAIN: a timeout).
    pub(super) fn set_timeouts(&self, left: Duration) -> std::io::Result<()> {
        use rustix::net::sockopt::{Timeout, set_socket_timeout};
        set_socket_timeout(&self.0, Timeout::Send, Some(left))?;
        set_socket_timeout(&self.0, Timeout::Recv, Some(left))?;
        Ok(())
    }

    /// Writes all of `bytes` with `MSG_NOSIGNAL`: a daemon that went away
    /// between two requests must be an error, never a SIGPIPE that kills
    /// the process the module runs in (sshd's, sudo's); the fleet test with
    /// a vanishing daemon guards it.
    pub(super) fn send_all(&self, mut bytes: &[u8]) -> std::io::Result<()> {
        use rustix::net::{SendFlags, send};
        while !bytes.is_empty() {
            match send(&self.0, bytes, SendFlags::NOSIGNAL) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

impl std::io::Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match rustix::io::read(&self.0, &mut *buf) {
                Err(rustix::io::Errno::INTR) => {}
                other => return other.map_err(Into::into),
            }
        }
    }
}
