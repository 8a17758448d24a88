//! The daemon's log: every line to syslog's authpriv facility through
//! /dev/log, and to stderr unless stderr is the journal (under systemd the
//! journal already gets each syslog line: writing both put every event in
//! it twice). Never a code, a secret or a payload: only who asked what,
//! and why it failed.

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
    /// Also write each line to stderr.
    stderr: bool,
    pid: u32,
    /// Unit tests: every line kept here instead.
    #[cfg(test)]
    kept: Option<Mutex<Vec<String>>>,
}

/// Whether stderr is the journal's stream: systemd sets `JOURNAL_STREAM`
/// to the device and inode of the stream it connected (`DEV:INODE`).
fn is_journal(journal_stream: Option<&str>, stderr: Option<(u64, u64)>) -> bool {
    let (Some(named), Some((dev, ino))) = (journal_stream, stderr) else {
        return false;
    };
    named == format!("{dev}:{ino}")
}

impl Log {
    pub fn new() -> Self {
        let sock = UnixDatagram::unbound()
            .and_then(|s| s.connect("/dev/log").map(|()| s))
            .ok();
        let stderr = nix::sys::stat::fstat(std::io::stderr())
            .ok()
            .map(|st| (st.st_dev, st.st_ino));
        let journal = is_journal(std::env::var("JOURNAL_STREAM").ok().as_deref(), stderr);
        Self {
            // Without syslog, stderr is all there is.
            stderr: sock.is_none() || !journal,
            syslog: Mutex::new(sock),
            pid: std::process::id(),
            #[cfg(test)]
            kept: None,
        }
    }

    /// A log that keeps its lines for a unit test to read.
    #[cfg(test)]
    pub fn kept() -> Self {
        Self {
            syslog: Mutex::new(None),
            stderr: false,
            pid: std::process::id(),
            kept: Some(Mutex::new(Vec::new())),
        }
    }

    /// The lines kept so far ([`Self::kept`]).
    #[cfg(test)]
    pub fn lines(&self) -> Vec<String> {
        self.kept
            .as_ref()
            .and_then(|k| k.lock().ok().map(|l| l.clone()))
            .unwrap_or_default()
    }

    pub fn line(&self, level: Level, msg: &str) {
        // One line each: no control characters reach a log.
        let msg: String = msg
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        #[cfg(test)]
        if let Some(kept) = &self.kept {
            if let Ok(mut lines) = kept.lock() {
                lines.push(msg.clone());
            }
            return;
        }
        if self.stderr {
            eprintln!("otpgated: {msg}");
        }
        let Ok(sock) = self.syslog.lock() else {
            return;
        };
        if let Some(sock) = sock.as_ref() {
            let pri = AUTHPRIV | level as u8;
            let _ = sock.send(format!("<{pri}>otpgated[{}]: {msg}", self.pid).as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_is_the_journal_only_when_systemd_says_it_is_this_stream() {
        assert!(is_journal(Some("8:1234"), Some((8, 1234))));
        assert!(
            !is_journal(Some("8:1234"), Some((8, 999))),
            "another stream"
        );
        assert!(!is_journal(None, Some((8, 1234))), "not under systemd");
        assert!(!is_journal(Some("8:1234"), None));
    }
}
