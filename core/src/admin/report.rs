//! What `otpgate status` and `otpgate audit` show about a user.

use crate::admin::escape::for_terminal;
use crate::enrollment::DeviceKind;
use crate::otp::recovery;
use crate::store::Store;
use crate::sys::account::Account;
use crate::sys::clock::format_utc;
use serde::Serialize;

pub use super::accounts::{
    AccountsError, GroupMembers, add_store_accounts, audit_scope, parse_passwd,
};

/// A device's kind, as reports show it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DeviceType {
    Totp,
    Hotp,
    #[serde(rename = "yubico-otp")]
    YubicoOtp,
    Email,
    Sms,
}

impl DeviceType {
    /// The method `methods` allows or forbids this kind by.
    pub fn method(self) -> crate::config::Method {
        use crate::config::Method;
        match self {
            Self::Totp => Method::Totp,
            Self::Hotp => Method::Hotp,
            Self::YubicoOtp => Method::YubicoOtp,
            Self::Email => Method::Email,
            Self::Sms => Method::Sms,
        }
    }
}

impl std::fmt::Display for DeviceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Self::Totp => "totp",
            Self::Hotp => "hotp",
            Self::YubicoOtp => "yubico-otp",
            Self::Email => "email",
            Self::Sms => "sms",
        })
    }
}

/// One device, for display.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeviceReport {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: DeviceType,
    pub algorithm: String,
    pub digits: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    /// A YubiKey's public id (modhex), which routes its OTPs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_id: Option<String>,
    /// Where an e-mail or SMS device's codes are sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub created: u64,
    /// False when the config's `methods` leaves this kind out: it is
    /// neither asked for nor accepted ("disabled by policy").
    pub enabled: bool,
}

/// A user's 2FA status.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UserReport {
    pub user: String,
    pub uid: u32,
    pub secret_file: String,
    pub enrolled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrolled_since: Option<u64>,
    pub devices: Vec<DeviceReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes_total: Option<usize>,
    /// `None` when the state could not be read (not root, or no state dir).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_codes_left: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_method: Option<String>,
    /// A problem with the file (unsafe mode or owner, malformed…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// A note about what could not be determined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The second factor is locked until then (Unix time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked_until: Option<u64>,
    /// Wrong codes within the config's `failure_window` (`None`: the state
    /// could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_failures: Option<usize>,
    /// Remote addresses that skip the prompt for now (`remember_minutes`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remembered: Vec<RememberedReport>,
}

/// A remembered address, for display.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RememberedReport {
    pub service: String,
    pub address: String,
    /// When the good code was typed, and until when it is remembered.
    pub since: u64,
    pub until: u64,
}

/// The moment a report is made for, and the config's windows it reads the
/// login state through (a lockout, recent failures, remembered addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportTime {
    pub now: u64,
    pub failure_window: u64,
    pub lockout_seconds: u64,
    pub remember_seconds: u64,
}

impl ReportTime {
    pub fn of(config: &crate::config::Config, now: u64) -> Self {
        Self {
            now,
            failure_window: config.failure_window,
            lockout_seconds: config.lockout_seconds,
            remember_seconds: u64::from(config.remember_minutes).saturating_mul(60),
        }
    }
}

impl UserReport {
    /// Which devices `methods` leaves out, for one table cell.
    pub fn disabled_note(&self) -> Option<String> {
        let off: Vec<&str> = self
            .devices
            .iter()
            .filter(|d| !d.enabled)
            .map(|d| d.name.as_str())
            .collect();
        (!off.is_empty()).then(|| format!("disabled by policy (methods): {}", off.join(", ")))
    }

    /// Marks what `config`'s `methods` leaves out as disabled by policy.
    pub fn apply_methods(&mut self, config: &crate::config::Config) {
        for d in &mut self.devices {
            d.enabled = config.allows(d.kind.method());
        }
        if self.recovery_codes_total.is_some() && !config.allows(crate::config::Method::Recovery) {
            self.note = Some(match self.note.take() {
                Some(n) => format!("{n}; recovery codes disabled by policy (methods)"),
                None => "recovery codes disabled by policy (methods)".into(),
            });
        }
    }
}

/// Builds the report for one account.
pub fn user_report(store: &dyn Store, account: &Account, at: ReportTime) -> UserReport {
    let mut r = UserReport {
        user: account.name.clone(),
        uid: account.uid.as_raw(),
        secret_file: String::new(),
        enrolled: false,
        enrolled_since: None,
        devices: Vec::new(),
        recovery_codes_total: None,
        recovery_codes_left: None,
        last_success: None,
        last_method: None,
        problem: None,
        note: None,
        locked_until: None,
        recent_failures: None,
        remembered: Vec::new(),
    };
    r.secret_file = match store.location(account) {
        Ok(l) => l,
        Err(e) => {
            r.problem = Some(e.to_string());
            return r;
        }
    };
    let enrollment = match store.load(account) {
        Ok(Some(e)) => e,
        Ok(None) => return r,
        Err(e) => {
            r.problem = Some(e.to_string());
            return r;
        }
    };
    r.enrolled = true;
    r.enrolled_since = Some(enrollment.created);
    r.devices = enrollment
        .devices
        .iter()
        .map(|d| match d.kind {
            DeviceKind::Totp(p) => DeviceReport {
                name: d.name.clone(),
                kind: DeviceType::Totp,
                algorithm: p.algorithm().to_string(),
                digits: p.digits(),
                period: Some(p.period()),
                public_id: None,
                address: None,
                created: d.created,
                enabled: true,
            },
            DeviceKind::Hotp {
                algorithm, digits, ..
            } => DeviceReport {
                name: d.name.clone(),
                kind: DeviceType::Hotp,
                algorithm: algorithm.to_string(),
                digits,
                period: None,
                public_id: None,
                address: None,
                created: d.created,
                enabled: true,
            },
            DeviceKind::YubicoOtp { public_id, .. } => DeviceReport {
                name: d.name.clone(),
                kind: DeviceType::YubicoOtp,
                algorithm: "AES-128".into(),
                digits: crate::otp::yubico::OTP_LEN as u8,
                period: None,
                public_id: Some(crate::otp::yubico::modhex_encode(&public_id)),
                address: None,
                created: d.created,
                enabled: true,
            },
            DeviceKind::Email(t) | DeviceKind::Sms(t) => DeviceReport {
                name: d.name.clone(),
                kind: if matches!(d.kind, DeviceKind::Email(_)) {
                    DeviceType::Email
                } else {
                    DeviceType::Sms
                },
                algorithm: "sent".into(),
                digits: crate::otp::sent::SENT_DIGITS as u8,
                period: None,
                public_id: None,
                address: Some(t.as_str().to_string()),
                created: d.created,
                enabled: true,
            },
        })
        .collect();
    r.recovery_codes_total = enrollment.recovery.as_ref().map(|s| s.hashes.len());
    match store.read_state(account) {
        Ok(state) => {
            r.recovery_codes_left = Some(
                enrollment
                    .recovery
                    .as_ref()
                    .map_or(0, |s| recovery::remaining(s, &state.used_in_set(&s.salt))),
            );
            r.last_success = state.last_success;
            r.last_method = state.last_method.as_ref().map(|m| m.to_string());
            r.read_lockout(&state, at);
        }
        Err(e) => {
            r.note = Some(format!(
                "login state not readable ({e}); run as root for recovery codes left and last use"
            ))
        }
    }
    r
}

impl UserReport {
    /// The lockout, the wrong codes within the window and the remembered
    /// addresses, as a login at `at.now` would see them (times written
    /// while the clock was wrong are pulled back, as at login).
    fn read_lockout(&mut self, state: &crate::store::state::UserState, at: ReportTime) {
        let mut state = state.clone();
        state.clamp(
            at.now,
            crate::lockout::Limits {
                lockout_seconds: at.lockout_seconds,
            },
        );
        self.locked_until = state.locked_at(at.now);
        self.recent_failures = Some(
            state
                .failures
                .iter()
                .filter(|t| t.saturating_add(at.failure_window) > at.now)
                .count(),
        );
        self.remembered = state
            .remembered
            .iter()
            .map(|r| RememberedReport {
                service: r.service.clone(),
                address: r.address.clone(),
                since: r.at,
                until: r.at.saturating_add(at.remember_seconds),
            })
            .filter(|r| r.until > at.now && at.remember_seconds > 0)
            .collect();
    }

    /// Human-readable lines for `otpgate status`.
    pub fn to_text(&self) -> String {
        // Every string here may come from the user's file or account entry.
        let e = for_terminal;
        let mut out = format!("User:            {} (uid {})\n", e(&self.user), self.uid);
        // A file's path, or where the fleet store keeps it.
        let label = if self.secret_file.starts_with('/') {
            "Secret file:"
        } else {
            "Stored in:"
        };
        out.push_str(&format!("{label:<17}{}\n", e(&self.secret_file)));
        if let Some(p) = &self.problem {
            out.push_str(&format!("Problem:         {}\n", e(p)));
        }
        if !self.enrolled {
            if self.problem.is_none() {
                out.push_str("Enrolled:        no (run `otpgate enroll`)\n");
            }
            return out;
        }
        if let Some(t) = self.enrolled_since {
            out.push_str(&format!("Enrolled since:  {}\n", format_utc(t)));
        }
        for d in &self.devices {
            let off = if d.enabled {
                ""
            } else {
                " - disabled by policy (methods)"
            };
            if let Some(to) = &d.address {
                let how = if d.kind == DeviceType::Email {
                    "code by e-mail to"
                } else {
                    "code by SMS to"
                };
                out.push_str(&format!(
                    "Device:          {} ({how} {}){off}\n",
                    e(&d.name),
                    e(to)
                ));
                continue;
            }
            if let Some(id) = &d.public_id {
                out.push_str(&format!(
                    "Device:          {} (YubiKey, Yubico OTP, public id {}){off}\n",
                    e(&d.name),
                    e(id)
                ));
                continue;
            }
            let period = d.period.map_or(String::new(), |p| format!(", {p} s"));
            out.push_str(&format!(
                "Device:          {} ({}, {}, {} digits{period}){off}\n",
                e(&d.name),
                d.kind.to_string().to_uppercase(),
                e(&d.algorithm),
                d.digits
            ));
        }
        match (self.recovery_codes_left, self.recovery_codes_total) {
            (Some(left), Some(total)) => {
                out.push_str(&format!("Recovery codes:  {left} of {total} left\n"))
            }
            (None, Some(total)) => out.push_str(&format!("Recovery codes:  {total} issued\n")),
            (_, None) => out.push_str("Recovery codes:  none (run `otpgate recovery-codes`)\n"),
        }
        match (self.last_success, &self.last_method) {
            (Some(t), Some(m)) => {
                out.push_str(&format!("Last success:    {} ({})\n", format_utc(t), e(m)))
            }
            (Some(t), None) => out.push_str(&format!("Last success:    {}\n", format_utc(t))),
            _ if self.note.is_none() => out.push_str("Last success:    never\n"),
            _ => {}
        }
        if let Some(until) = self.locked_until {
            out.push_str(&format!(
                "Locked:          yes, until {} (too many wrong codes; root ends it with `otpgate reset --user {} --unlock`)\n",
                format_utc(until),
                e(&self.user)
            ));
        }
        if let Some(n) = self.recent_failures.filter(|n| *n > 0) {
            out.push_str(&format!("Wrong codes:     {n} within failure_window\n"));
        }
        for r in &self.remembered {
            out.push_str(&format!(
                "Remembered:      {} on {} until {} (no code asked from there)\n",
                e(&r.address),
                e(&r.service),
                format_utc(r.until)
            ));
        }
        if let Some(n) = &self.note {
            out.push_str(&format!("Note:            {}\n", e(n)));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::account::{Gid, Uid};
    use std::path::Path;

    #[test]
    fn passwd_lines_are_parsed_and_junk_skipped() {
        let a = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\nbad line\nbob:x:1000:100::/home/bob:/bin/sh\n",
        );
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].name, "bob");
        assert_eq!(a[1].home, Path::new("/home/bob"));
    }

    #[test]
    fn unenrolled_report_says_how_to_enroll() {
        let store = crate::store::memory::MemoryStore::new();
        let root = crate::directory::Directory::user(
            &crate::directory::Table::default().with_user("root", 0),
            "root",
        )
        .unwrap()
        .unwrap();
        let at = ReportTime {
            now: 1_000,
            failure_window: 300,
            lockout_seconds: 900,
            remember_seconds: 0,
        };
        let r = user_report(&store, &root, at);
        assert!(!r.enrolled);
        assert!(r.to_text().contains("otpgate enroll"));
    }

    #[test]
    fn audit_lists_root_people_and_enforced_members_never_excluded_ones() {
        let acct = |name: &str, uid: u32, gid: u32| Account {
            name: name.into(),
            uid: Uid::from_raw(uid),
            gid: Gid::from_raw(gid),
            home: "/nonexistent".into(),
            shell: "/bin/sh".into(),
        };
        let accounts = vec![
            acct("root", 0, 0),
            acct("postgres", 110, 118),
            acct("alice", 1000, 1000),
            acct("backup", 120, 120),
            acct("svc", 1500, 1500),
        ];
        let admins = GroupMembers {
            gid: Gid::from_raw(900),
            members: vec!["backup".into()],
        };
        let services = GroupMembers {
            gid: Gid::from_raw(1500),
            members: vec![],
        };
        let (kept, left) = audit_scope(accounts, 1000, &[admins], &[services]);
        let names: Vec<&str> = kept.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["root", "alice", "backup"]);
        assert_eq!(left, ["postgres", "svc"]);
    }
}
