//! Decisions behind the `otpgate` commands: who may act on whose enrollment,
//! and how a new enrollment is put together. The CLI only does the terminal.

pub mod escape;
pub mod report;

use crate::config::{Config, Source};
use crate::enrollment::Enrollment;
use crate::otp::recovery::{self, RecoveryCode};
use crate::otp::secret::Secret;
use crate::otp::{self, Algorithm, TotpParams};
use crate::store::files::Location;
use crate::sys::account::{self, Account};
use zeroize::Zeroizing;

/// Who runs the command.
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: u32,
    pub account: Option<Account>,
}

impl Caller {
    /// The current process's effective user.
    pub fn current() -> Result<Self, String> {
        let uid = nix::unistd::geteuid().as_raw();
        Ok(Self {
            uid,
            account: account::by_uid(uid)?,
        })
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// Resolves the account a command acts on: `--user NAME`, or the caller.
/// Only root may name another user.
pub fn target_account(
    caller: &Caller,
    user: Option<&str>,
    action: &str,
) -> Result<Account, String> {
    let Some(name) = user else {
        return caller.account.clone().ok_or_else(|| {
            format!(
                "your uid {} has no account entry; use --user NAME",
                caller.uid
            )
        });
    };
    crate::sys::paths::check_user_name(name).map_err(|e| format!("--user {name:?}: {e}"))?;
    let account = account::by_name(name)?.ok_or_else(|| {
        format!("no such user: {name}; check the name with `getent passwd {name}`")
    })?;
    if !caller.is_root() && account.uid != caller.uid {
        return Err(format!(
            "only root can {action} for another user ({name}); run `sudo otpgate ... --user {name}`"
        ));
    }
    Ok(account)
}

/// Loads the config for a command (`--config PATH` or the default).
pub fn load_config(path: Option<&std::path::Path>) -> Result<Config, String> {
    let source = path.map_or(Source::Default, |p| Source::Explicit(p.to_path_buf()));
    Config::load(&source).map_err(|e| {
        format!("{e}; fix the file (see otpgate.toml(5)), then run `otpgate check-config`")
    })
}

/// What `otpgate enroll` was asked for.
#[derive(Debug, Default)]
pub struct EnrollOptions {
    pub algorithm: Option<Algorithm>,
    pub digits: Option<u8>,
    pub period: Option<u64>,
    pub recovery_codes: usize,
}

/// A prepared, not yet saved, enrollment, with the recovery codes in clear
/// (shown once, then dropped and wiped).
pub struct NewEnrollment {
    pub enrollment: Enrollment,
    pub recovery_codes: Vec<RecoveryCode>,
    pub params: TotpParams,
}

impl NewEnrollment {
    /// Builds an enrollment: the given secret or a fresh 160-bit one, the
    /// config's parameters unless overridden, and a new recovery-code set.
    pub fn prepare(
        config: &Config,
        secret: Option<Secret>,
        opts: &EnrollOptions,
        now: u64,
    ) -> Result<Self, String> {
        let params = TotpParams::new(
            opts.algorithm.unwrap_or(config.algorithm),
            opts.digits.unwrap_or(config.digits),
            opts.period.unwrap_or(config.period),
        )?;
        let secret = match secret {
            Some(s) => s,
            None => Secret::generate().map_err(|e| e.to_string())?,
        };
        let mut enrollment = Enrollment::new(secret, params, now).map_err(|e| e.to_string())?;
        let mut recovery_codes = Vec::new();
        if opts.recovery_codes > 0 {
            let (codes, set) = recovery::generate_set(opts.recovery_codes, now)?;
            enrollment.recovery = Some(set);
            recovery_codes = codes;
        }
        Ok(Self {
            enrollment,
            recovery_codes,
            params,
        })
    }

    /// The primary secret.
    pub fn secret(&self) -> &Secret {
        &self.enrollment.devices[0].secret
    }

    /// Whether `code` is a current code of the new secret (the confirmation step).
    pub fn confirms(&self, code: &str, now: u64, window: u32) -> bool {
        otp::typed_code_matches(self.secret(), &self.params, code, now, window)
    }
}

/// Refuses to overwrite an existing enrollment unless forced.
pub fn check_replace(location: &Location, force: bool, user: &str) -> Result<bool, String> {
    let exists = location.exists().map_err(|e| e.to_string())?;
    if exists && !force {
        return Err(format!(
            "{user} is already enrolled ({}); to replace the enrollment (your app's entry stops working) use --force",
            location.path.display()
        ));
    }
    Ok(exists)
}

/// Whether `code` is a current code of any TOTP device of `enrollment`
/// (used to authorise changes by a non-root user).
pub fn current_code_valid(enrollment: &Enrollment, code: &str, now: u64, window: u32) -> bool {
    enrollment.devices.iter().any(|d| match d.kind {
        crate::enrollment::DeviceKind::Totp(p) => {
            otp::typed_code_matches(&d.secret, &p, code, now, window)
        }
        crate::enrollment::DeviceKind::Hotp { .. } => false,
    })
}

/// Who may change an enrollment (replace it, add or remove a device, make
/// new recovery codes, disable it): root, or the user with a current code
/// from one of their devices. `existing` is the enrollment being changed;
/// with none there is nothing to protect. `code` asks the user for a code
/// and is only called when one is needed.
pub fn authorize_change(
    caller: &Caller,
    existing: Option<&Enrollment>,
    code: impl FnOnce() -> Result<Option<Zeroizing<String>>, String>,
    now: u64,
    window: u32,
    what: &str,
) -> Result<(), String> {
    let Some(existing) = existing.filter(|_| !caller.is_root()) else {
        return Ok(());
    };
    let code = code()?
        .ok_or_else(|| format!("{what} needs a current code from your app; nothing was changed"))?;
    if current_code_valid(existing, &code, now, window) {
        Ok(())
    } else {
        Err(format!(
            "that code is not valid; {what} refused and nothing was changed"
        ))
    }
}

/// Why `account`, once not enrolled, would be denied by `config`'s policy
/// (for the warning `otpgate disable` prints), or `None` if they would pass.
pub fn denied_when_unenrolled(
    config: &Config,
    account: &Account,
) -> Result<Option<String>, String> {
    let needs_groups = !config.enforce_groups.is_empty() || !config.exempt_groups.is_empty();
    let groups = if needs_groups {
        crate::policy::group_names(account)?
    } else {
        Vec::new()
    };
    if crate::policy::exempt_group(config, &groups).is_some() {
        return Ok(None);
    }
    let (required, why) = crate::policy::second_factor_required(config, &groups);
    Ok(required.then_some(why))
}

/// What `check-config --service` finds in a PAM service: its auth stack
/// with includes followed (see [`crate::config::pamfile`]), the arguments of the
/// first pam_otpgate line, how many there are, and whether a policy pass
/// would lock users out.
#[derive(Debug, Clone)]
pub struct ServiceCheck {
    pub stack: Vec<crate::config::pamfile::Entry>,
    pub args: Vec<String>,
    pub otpgate_lines: usize,
    /// No other module can succeed: when otpgate passes a user by policy
    /// (PAM_IGNORE), libpam denies the login.
    pub ignore_denies: bool,
}

/// Reads service `service` in `pam_dir` (normally /etc/pam.d).
pub fn check_service(pam_dir: &std::path::Path, service: &str) -> Result<ServiceCheck, String> {
    crate::sys::paths::check_user_name(service).map_err(|e| format!("--service: {e}"))?;
    let stack =
        crate::config::pamfile::stack(pam_dir, service, "auth").map_err(|e| e.to_string())?;
    let otpgate: Vec<&crate::config::pamfile::Entry> =
        stack.iter().filter(|e| e.is_otpgate()).collect();
    let Some(first) = otpgate.first() else {
        return Err(format!(
            "pam_otpgate.so is not in the auth stack of {} (includes followed)",
            pam_dir.join(service).display()
        ));
    };
    Ok(ServiceCheck {
        args: first.args.clone(),
        otpgate_lines: otpgate.len(),
        ignore_denies: !crate::config::pamfile::passes_without_otpgate(&stack),
        stack,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_need_root_or_a_current_code() {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        let e = Enrollment::new(secret.clone(), TotpParams::DEFAULT, 1).unwrap();
        let now = 1_800_000_000;
        let good = otp::totp(&secret, &TotpParams::DEFAULT, now).to_string();
        let root = Caller {
            uid: 0,
            account: None,
        };
        let user = Caller {
            uid: 1000,
            account: None,
        };
        let never = || -> Result<Option<Zeroizing<String>>, String> { panic!("root is not asked") };
        assert!(authorize_change(&root, Some(&e), never, now, 1, "x").is_ok());
        assert!(authorize_change(&user, None, never, now, 1, "x").is_ok());
        let spaced = format!("{} {}", &good[..3], &good[3..]);
        assert!(
            authorize_change(
                &user,
                Some(&e),
                || Ok(Some(Zeroizing::new(spaced))),
                now,
                1,
                "x"
            )
            .is_ok()
        );
        let err = authorize_change(
            &user,
            Some(&e),
            || Ok(Some(Zeroizing::new("000000".into()))),
            now,
            1,
            "adding a device",
        );
        assert!(err.unwrap_err().contains("adding a device refused"));
        assert!(authorize_change(&user, Some(&e), || Ok(None), now, 1, "x").is_err());
    }

    #[test]
    fn only_root_names_other_users() {
        let root = Caller::current().unwrap();
        assert!(root.is_root(), "this test must run as root (CI does)");
        assert_eq!(target_account(&root, Some("root"), "x").unwrap().uid, 0);
        assert!(
            target_account(&root, Some("no-such-user-og"), "x")
                .unwrap_err()
                .contains("no such user")
        );
        let nobody = Caller {
            uid: 65534,
            account: crate::sys::account::by_uid(65534).unwrap(),
        };
        assert!(
            target_account(&nobody, Some("root"), "enroll")
                .unwrap_err()
                .contains("only root can enroll")
        );
    }
}
