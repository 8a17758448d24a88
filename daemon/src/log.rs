//! The daemon's log: every line to stderr (the journal, when run by
//! systemd) and to syslog's authpriv facility through /dev/log. Never a
//! code, a secret or a payload: only who asked what, and why it failed.

use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;

/// syslog severities used here.
#[derive(Debug, Clone, Copy)]
pub enum Level {
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
}

/// LOG_AUTHPRIV: where sshd and PAM modules log.
const AUTHPRIV: u8 = 10 << 3;

pub struct Log {
    syslog: Mutex<Option<UnixDatagram>>,
    pid: u32,
}

impl Log {
    pub fn new() -> Self {
        let sock = UnixDatagram::unbound()
            .and_then(|s| s.connect("/dev/log").map(|()| s))
            .ok();
        Self {
            syslog: Mutex::new(sock),
            pid: std::process::id(),
        }
    }

    pub fn line(&self, level: Level, msg: &str) {
        // One line each: no control characters reach a log.
        let msg: String = msg
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        eprintln!("otpgated: {msg}");
        let Ok(sock) = self.syslog.lock() else {
            return;
        };
        if let Some(sock) = sock.as_ref() {
            let pri = AUTHPRIV | level as u8;
            let _ = sock.send(format!("<{pri}>otpgated[{}]: {msg}", self.pid).as_bytes());
        }
    }
}
