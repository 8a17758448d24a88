//! Decisions behind the `otpgate` commands: who may act on whose enrollment,
//! and how a new enrollment is put together. The CLI only does the terminal.

mod accounts;
mod error;
pub mod escape;
pub mod import;
pub mod report;
pub mod unlock;

pub use error::{Error, Kind};

use crate::config::{Config, Source};
use crate::directory::Directory;
use crate::enrollment::Enrollment;
use crate::otp::recovery::{self, RecoveryCode};
use crate::otp::secret::Secret;
use crate::otp::{self, Algorithm, TotpParams};
use crate::store::Store;
use crate::sys::account::Account;
use crate::sys::random::Random;
use zeroize::Zeroizing;

/// Who runs the command.
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: crate::sys::account::Uid,
    pub account: Option<Account>,
}

impl Caller {
    /// The user `uid` (the process's effective uid), its entry from
    /// `directory`.
    pub fn of(uid: crate::sys::account::Uid, directory: &dyn Directory) -> Result<Self, Error> {
        Ok(Self {
            uid,
            account: directory
                .user_by_uid(uid)
                .map_err(|e| Error::System(e.to_string()))?,
        })
    }

    /// Refuses anyone but root (`command` names the command).
    pub fn require_root(&self, command: &str) -> Result<(), Error> {
        if self.is_root() {
            Ok(())
        } else {
            Err(Error::NotRoot {
                command: command.to_string(),
            })
        }
    }

    pub fn is_root(&self) -> bool {
        self.uid.is_root()
    }
}

/// Resolves the account a command acts on: `--user NAME`, or the caller.
/// Only root may name another user.
pub fn target_account(
    directory: &dyn Directory,
    caller: &Caller,
    user: Option<&str>,
    action: &str,
) -> Result<Account, Error> {
    let Some(name) = user else {
        return caller.account.clone().ok_or(Error::NoAccountEntry {
            uid: caller.uid.as_raw(),
        });
    };
    crate::sys::paths::check_user_name(name)
        .map_err(|e| Error::Input(format!("--user {name:?}: {e}")))?;
    let account = directory
        .user(name)
        .map_err(|e| Error::System(e.to_string()))?
        .ok_or_else(|| Error::NoSuchUser {
            name: name.to_string(),
        })?;
    if !caller.is_root() && account.uid != caller.uid {
        return Err(Error::OtherUser {
            action: action.to_string(),
            name: name.to_string(),
        });
    }
    Ok(account)
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
        random: &dyn Random,
    ) -> Result<Self, Error> {
        let params = TotpParams::new(
            opts.algorithm.unwrap_or(config.algorithm),
            opts.digits.unwrap_or(config.digits),
            opts.period.unwrap_or(config.period),
        )?;
        let secret = match secret {
            Some(s) => s,
            None => Secret::generate(random).map_err(|e| Error::System(e.to_string()))?,
        };
        let mut enrollment = Enrollment::new(secret, params, now, random)
            .map_err(|e| Error::System(e.to_string()))?;
        let mut recovery_codes = Vec::new();
        if opts.recovery_codes > 0 {
            let (codes, set) = recovery::generate_set(random, opts.recovery_codes, now)?;
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

/// How many codes a user may type to confirm a new app or token.
pub const CONFIRM_TRIES: u32 = 3;

/// Refuses to overwrite an existing enrollment unless forced; whether one
/// exists.
pub fn check_replace(store: &dyn Store, account: &Account, force: bool) -> Result<bool, Error> {
    let exists = store.exists(account)?;
    if exists && !force {
        return Err(Error::AlreadyEnrolled {
            user: account.name.clone(),
            location: store.location(account)?,
        });
    }
    Ok(exists)
}

/// The enrollment, or an error saying how to enroll.
pub fn load_enrolled(store: &dyn Store, account: &Account) -> Result<Enrollment, Error> {
    store.load(account)?.ok_or_else(|| Error::NotEnrolled {
        user: account.name.clone(),
        location: store.location(account).unwrap_or_default(),
    })
}

/// Who may skip proving that a new app or token works (`--no-confirm`):
/// root alone, for provisioning. `instead` says what a user does instead.
pub fn check_no_confirm(caller: &Caller, no_confirm: bool, instead: &str) -> Result<(), Error> {
    if no_confirm && !caller.is_root() {
        return Err(Error::NoConfirm {
            instead: instead.to_string(),
        });
    }
    Ok(())
}

/// [`authorize_change`] against the enrollment in `store`: root is never
/// asked; a user is asked (through `code`) for a current code.
pub fn require_code_or_root(
    caller: &Caller,
    config: &Config,
    store: &dyn Store,
    account: &Account,
    code: impl FnOnce() -> Result<Option<Zeroizing<String>>, String>,
    now: u64,
    what: &str,
) -> Result<(), Error> {
    let existing = if caller.is_root() {
        None
    } else {
        store.load(account)?
    };
    authorize_with(caller, existing.as_ref(), code, what, |e, c| {
        Ok(store.prove_code(account, e, c, now, config.window)?)
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
) -> Result<(), Error> {
    authorize_with(caller, existing, code, what, |e, c| {
        Ok(e.code_is_current(c, now, window))
    })
}

/// [`authorize_change`] with the code checked by `valid` (the fleet store
/// has its daemon check it).
fn authorize_with(
    caller: &Caller,
    existing: Option<&Enrollment>,
    code: impl FnOnce() -> Result<Option<Zeroizing<String>>, String>,
    what: &str,
    valid: impl FnOnce(&Enrollment, &str) -> Result<bool, Error>,
) -> Result<(), Error> {
    let Some(existing) = existing.filter(|_| !caller.is_root()) else {
        return Ok(());
    };
    let code = code()
        .map_err(Error::System)?
        .ok_or_else(|| Error::CodeNeeded {
            what: what.to_string(),
        })?;
    if valid(existing, &code)? {
        Ok(())
    } else {
        Err(Error::CodeRefused {
            what: what.to_string(),
        })
    }
}

/// Why `account`, once not enrolled, would be denied by `config`'s policy
/// (for the warning `otpgate disable` prints), or `None` if they would pass.
pub fn denied_when_unenrolled(
    config: &Config,
    directory: &dyn Directory,
    account: &Account,
) -> Result<Option<String>, Error> {
    let groups = crate::policy::groups_if_needed(config, directory, account)
        .map_err(|e| Error::System(e.to_string()))?;
    if crate::policy::exempt_group(config, &groups).is_some() {
        return Ok(None);
    }
    let r = crate::policy::second_factor_required(config, &groups);
    Ok(r.required.then_some(r.why))
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
    /// What is wrong with the split-mode lines, if the stack has them.
    pub split_problems: Vec<String>,
}

/// The config a login through a PAM service really runs with.
#[derive(Debug, Clone)]
pub struct Effective {
    pub config: Config,
    /// The file it came from (or the default path, when absent).
    pub source: Source,
}

/// One rule for "the effective config" (the module and `check-config`
/// share it): the file given (or the one the service's `config=` names, or
/// the default), then the service's module arguments (then the groups it
/// names must exist: [`crate::config::args::ModuleArgs::configure`]).
pub fn effective_args(
    path: Option<&std::path::Path>,
    service: Option<&ServiceCheck>,
) -> Result<crate::config::args::ModuleArgs, Error> {
    let mut args = crate::config::args::ModuleArgs {
        source: Source::Default,
        mode: crate::config::args::Mode::Prompt,
        overrides: Vec::new(),
    };
    if let Some(found) = service {
        let refs: Vec<&str> = found.args.iter().map(String::as_str).collect();
        args = crate::config::args::ModuleArgs::parse(&refs)?;
    }
    if let Some(p) = path {
        args.source = Source::Explicit(p.to_path_buf());
    }
    Ok(args)
}

/// Reads service `service` in `pam_dir` (normally /etc/pam.d).
pub fn check_service(
    pam_dir: &std::path::Path,
    service: &str,
    read: crate::config::pamfile::Read,
) -> Result<ServiceCheck, Error> {
    crate::sys::paths::check_user_name(service)
        .map_err(|e| Error::Input(format!("--service: {e}")))?;
    let stack = crate::config::pamfile::stack(pam_dir, service, "auth", read)
        .map_err(|e| Error::System(e.0))?;
    let otpgate: Vec<&crate::config::pamfile::Entry> =
        stack.iter().filter(|e| e.is_otpgate()).collect();
    let Some(first) = otpgate.first() else {
        return Err(Error::NotInStack {
            path: pam_dir.join(service).display().to_string(),
        });
    };

    Ok(ServiceCheck {
        args: first.args.clone(),
        otpgate_lines: otpgate.len(),
        ignore_denies: !crate::config::pamfile::passes_without_otpgate(&stack),
        split_problems: crate::config::pamfile::split_mode_problems(&stack),
        stack,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_need_root_or_a_current_code() {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        let e = Enrollment::new(
            secret.clone(),
            TotpParams::DEFAULT,
            1,
            &crate::sys::random::test::COUNTER,
        )
        .unwrap();
        let now = 1_800_000_000;
        let good = otp::totp(&secret, &TotpParams::DEFAULT, now).to_string();
        let root = Caller {
            uid: 0.into(),
            account: None,
        };
        let user = Caller {
            uid: 1000.into(),
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
        let err = err.unwrap_err();
        assert_eq!(err.kind(), Kind::Denied);
        assert!(err.to_string().contains("adding a device refused"));
        assert_eq!(
            authorize_change(&user, Some(&e), || Ok(None), now, 1, "x").unwrap_err(),
            Error::CodeNeeded { what: "x".into() }
        );
    }

    #[test]
    fn only_root_names_other_users() {
        use crate::directory::Table;
        let dir = Table::default()
            .with_user("root", 0)
            .with_user("alice", 1000);
        let caller = |uid: u32| Caller {
            uid: uid.into(),
            account: dir.user_by_uid(uid.into()).unwrap(),
        };
        let (root, alice) = (caller(0), caller(1000));
        assert!(root.is_root());
        let bob = target_account(&dir, &root, Some("alice"), "x").unwrap();
        assert_eq!(bob.uid.as_raw(), 1000);
        let err = target_account(&dir, &root, Some("no-such-user-og"), "x").unwrap_err();
        assert_eq!(err.kind(), Kind::Usage);
        assert!(err.to_string().contains("no such user"));
        let err = target_account(&dir, &alice, Some("root"), "enroll").unwrap_err();
        assert_eq!(err.kind(), Kind::Denied);
        assert!(err.to_string().contains("only root can enroll"));
        assert_eq!(
            target_account(&dir, &alice, None, "x").unwrap().name,
            "alice"
        );
        // A directory that cannot answer is a failure, never "no such user".
        let err =
            target_account(&Table::default().broken(), &root, Some("alice"), "x").unwrap_err();
        assert_eq!(err.kind(), Kind::Failure);
        assert!(err.to_string().contains("check NSS"), "{err}");
    }
}
