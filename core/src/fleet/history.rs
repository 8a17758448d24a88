//! Fleet login history and the servers of a fleet: what the PAM module
//! tells otpgated about each decision, what the daemon keeps of it in the
//! database (never a code or a secret), and how `otpgate audit --logins`
//! and `--servers` show it.

use serde::{Deserialize, Serialize};

/// How the user got through (or tried to).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    Totp,
    Hotp,
    YubicoOtp,
    Email,
    Sms,
    Recovery,
    /// A good code from the same address within `remember_minutes`.
    Remembered,
    /// `exempt_groups` or `exempt_networks`.
    Exempt,
}

impl Method {
    pub const ALL: [Method; 8] = [
        Self::Totp,
        Self::Hotp,
        Self::YubicoOtp,
        Self::Email,
        Self::Sms,
        Self::Recovery,
        Self::Remembered,
        Self::Exempt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Hotp => "hotp",
            Self::YubicoOtp => "yubico-otp",
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Recovery => "recovery",
            Self::Remembered => "remembered",
            Self::Exempt => "exempt",
        }
    }
}

impl From<crate::config::Method> for Method {
    fn from(m: crate::config::Method) -> Self {
        use crate::config::Method as M;
        match m {
            M::Totp => Self::Totp,
            M::Hotp => Self::Hotp,
            M::YubicoOtp => Self::YubicoOtp,
            M::Recovery => Self::Recovery,
            M::Email => Self::Email,
            M::Sms => Self::Sms,
        }
    }
}

/// What was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginResult {
    /// Let in: a good code, or passed without one (remembered, exempt).
    Accepted,
    /// A wrong, malformed or expired code.
    WrongCode,
    /// A code (or recovery code) already used.
    Replay,
    /// Refused because the second factor is locked.
    Locked,
    /// A code was sent by e-mail or SMS.
    Sent,
    /// The store, the daemon or the user's data could not be used.
    Unavailable,
    /// Not enrolled and let through by policy (`enforce`, `nullok`, grace).
    NotEnrolled,
    /// Any other refusal (unknown or unenrolled user where 2FA is
    /// required, no allowed method).
    Denied,
}

impl LoginResult {
    pub const ALL: [LoginResult; 8] = [
        Self::Accepted,
        Self::WrongCode,
        Self::Replay,
        Self::Locked,
        Self::Sent,
        Self::Unavailable,
        Self::NotEnrolled,
        Self::Denied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::WrongCode => "wrong_code",
            Self::Replay => "replay",
            Self::Locked => "locked",
            Self::Sent => "sent",
            Self::Unavailable => "unavailable",
            Self::NotEnrolled => "not_enrolled",
            Self::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// The most events one PAM call reports (a code sent, then a few typed).
pub const MAX_EVENTS: usize = 16;
/// The longest user, service or remote address kept (longer is cut).
pub const MAX_FIELD: usize = 256;

/// One decision, as the module reports it to otpgated after the PAM call.
/// The daemon adds the server and the time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginEvent {
    pub user: String,
    pub service: String,
    pub rhost: Option<String>,
    pub method: Option<Method>,
    pub result: LoginResult,
}

impl LoginEvent {
    /// The event with its text fields cut to [`MAX_FIELD`] bytes (on a
    /// character boundary).
    pub fn bounded(mut self) -> Self {
        for field in [&mut self.user, &mut self.service] {
            cut(field);
        }
        if let Some(r) = &mut self.rhost {
            cut(r);
        }
        self
    }
}

fn cut(s: &mut String) {
    if s.len() > MAX_FIELD {
        let mut end = MAX_FIELD;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// One row of the history, as `otpgate audit --logins` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryEntry {
    /// Unix time (seconds) the daemon recorded it.
    pub time: u64,
    pub user: String,
    pub server: String,
    pub service: String,
    pub method: Option<String>,
    pub result: String,
    pub rhost: Option<String>,
}

/// One otpgated of the fleet, as `otpgate audit --servers` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEntry {
    pub name: String,
    pub version: String,
    /// Unix time it started.
    pub started: u64,
    /// Unix time it last reached the store.
    pub last_seen: u64,
    /// Seconds since then, by the database's clock.
    pub seen_seconds_ago: u64,
    /// It stopped cleanly (SIGTERM) and has not started again.
    pub stopped: bool,
}

/// How often each otpgated records that it reached the store.
pub const HEARTBEAT_SECONDS: u64 = 30;

/// How a server looks from its last heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerStatus {
    /// Reached the store within three heartbeats.
    Up,
    /// Stopped cleanly.
    Stopped,
    /// Not heard from for longer: down, cut off, or its store access broken.
    NotSeen,
}

impl ServerEntry {
    pub fn status(&self) -> ServerStatus {
        if self.stopped {
            ServerStatus::Stopped
        } else if self.seen_seconds_ago <= 3 * HEARTBEAT_SECONDS {
            ServerStatus::Up
        } else {
            ServerStatus::NotSeen
        }
    }
}

message_error! {
    /// A `--since` that is not a duration, and the form it needs.
    DurationError
}

/// "90s", "15m", "24h", "7d", "2w" or plain seconds, as `--since` takes it.
pub fn parse_duration(text: &str) -> Result<u64, DurationError> {
    let text = text.trim();
    let bad = || {
        DurationError(format!(
            "--since {text:?} is not a duration; use a number with s, m, h, d or w (e.g. 24h, 7d)"
        ))
    };
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).ok_or_else(bad)
}

/// "12 s", "5 min", "3 h", "2 d": how long ago, for a table.
pub fn ago(seconds: u64) -> String {
    match seconds {
        0..120 => format!("{seconds} s ago"),
        120..7200 => format!("{} min ago", seconds / 60),
        7200..172_800 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_bad_ones_say_how() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("24h"), Ok(86_400));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(parse_duration("2w"), Ok(1_209_600));
        for bad in ["", "h", "7 days", "-1d", "1.5h", "99999999999999999999w"] {
            let e = parse_duration(bad).unwrap_err();
            assert!(e.0.contains("e.g. 24h"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_server_is_up_stopped_or_not_seen() {
        let mut s = ServerEntry {
            name: "a".into(),
            version: "0.7.0".into(),
            started: 0,
            last_seen: 0,
            seen_seconds_ago: 10,
            stopped: false,
        };
        assert_eq!(s.status(), ServerStatus::Up);
        s.seen_seconds_ago = 3 * HEARTBEAT_SECONDS + 1;
        assert_eq!(s.status(), ServerStatus::NotSeen);
        s.stopped = true;
        assert_eq!(s.status(), ServerStatus::Stopped);
    }

    #[test]
    fn events_are_bounded_and_names_round_trip() {
        let e = LoginEvent {
            user: "é".repeat(200),
            service: "sshd".into(),
            rhost: Some("x".repeat(300)),
            method: Some(Method::YubicoOtp),
            result: LoginResult::WrongCode,
        }
        .bounded();
        assert!(e.user.len() <= MAX_FIELD && e.user.chars().all(|c| c == 'é'));
        assert_eq!(e.rhost.as_deref().map(str::len), Some(MAX_FIELD));
        for m in crate::config::Method::ALL {
            assert_eq!(Method::from(m).as_str(), m.as_str());
        }
        for r in LoginResult::ALL {
            assert_eq!(LoginResult::parse(r.as_str()), Some(r));
        }
        assert_eq!(ago(59), "59 s ago");
        assert_eq!(ago(600), "10 min ago");
        assert_eq!(ago(3 * 86_400), "3 d ago");
    }
}
