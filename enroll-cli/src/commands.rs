//! The other subcommands: status, recovery-codes, disable, reset, audit,
//! check-config, import.

use crate::enroll::{print_recovery_codes, require_code_or_root};
use otpgate_core::admin::escape::for_terminal;
use otpgate_core::admin::report::{self, UserReport};
use otpgate_core::admin::{self, Caller};
use otpgate_core::config::{Config, Source};
use otpgate_core::enrollment::Enrollment;
use otpgate_core::enrollment::gauth::GoogleFile;
use otpgate_core::otp::TotpParams;
use otpgate_core::otp::recovery::{self, RecoveryCode};
use otpgate_core::store::files::Location;
use otpgate_core::store::state::StateStore;
use otpgate_core::sys::account::Account;
use otpgate_core::sys::clock::{Clock, SystemClock, format_utc};
use otpgate_core::sys::fs::{self, FsIdentity, Trust};
use std::path::Path;

fn now() -> Result<u64, String> {
    SystemClock
        .now()
        .ok_or_else(|| "the system clock is set before 1970".to_string())
}

fn require_root(caller: &Caller, what: &str) -> Result<(), String> {
    if caller.is_root() {
        Ok(())
    } else {
        Err(format!(
            "{what} is for administrators: run it as root (sudo otpgate {what})"
        ))
    }
}

fn load_enrolled(location: &Location, user: &str) -> Result<Enrollment, String> {
    location.load().map_err(|e| e.to_string())?.ok_or_else(|| {
        format!(
            "{user} is not enrolled ({} does not exist); run `otpgate enroll` first",
            location.path.display()
        )
    })
}

pub fn status(config_path: Option<&Path>, user: Option<&str>, json: bool) -> Result<(), String> {
    let caller = Caller::current()?;
    let config = admin::load_config(config_path)?;
    let account = admin::target_account(&caller, user, "show the status")?;
    let r = report::user_report(&config, &account);
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?
        );
    } else {
        out!("{}", r.to_text());
    }
    Ok(())
}

pub fn recovery_codes(
    config_path: Option<&Path>,
    user: Option<&str>,
    count: Option<usize>,
    json: bool,
) -> Result<(), String> {
    let caller = Caller::current()?;
    let config = admin::load_config(config_path)?;
    let account = admin::target_account(&caller, user, "make recovery codes")?;
    let location = Location::of(&config, &account).map_err(|e| e.to_string())?;
    let mut enrollment = load_enrolled(&location, &account.name)?;
    require_code_or_root(&caller, &config, &location, "making new recovery codes")?;
    let n = count.unwrap_or(config.recovery_codes);
    let (codes, set) = recovery::generate_set(n, now()?)?;
    let revoked = enrollment.recovery.replace(set).map(|old| old.salt);
    location.save(&enrollment).map_err(|e| e.to_string())?;
    if let (true, Some(salt)) = (caller.is_root(), revoked) {
        // The used codes of the revoked set can never matter again. (A user
        // cannot write the state; logins keep at most a few sets.)
        StateStore::open(&config.state_dir)
            .and_then(|s| s.update(&account, |st| st.forget_recovery_set(&salt)))
            .map_err(|e| e.to_string())?;
    }
    if json {
        let codes: Vec<String> = codes.iter().map(|c| c.display().to_string()).collect();
        outln!(
            "{}",
            serde_json::json!({ "user": account.name, "recovery_codes": codes })
        );
    } else {
        outln!(
            "New recovery codes for {}; the old ones no longer work.",
            account.name
        );
        print_recovery_codes(&mut std::io::stdout(), &codes);
    }
    Ok(())
}

fn remove_state(config: &Config, account: &Account) -> Result<bool, String> {
    match StateStore::open_existing(&config.state_dir) {
        Ok(store) => store.remove(account).map_err(|e| e.to_string()),
        Err(otpgate_core::store::state::StateError::Fs(e)) if e.is_not_found() => Ok(false),
        Err(e) => Err(e.to_string()),
    }
}

pub fn disable(config_path: Option<&Path>, user: Option<&str>) -> Result<(), String> {
    let caller = Caller::current()?;
    let config = admin::load_config(config_path)?;
    let account = admin::target_account(&caller, user, "disable 2FA")?;
    let location = Location::of(&config, &account).map_err(|e| e.to_string())?;
    // A broken file can still be removed (often the very reason to disable),
    // so only its existence is required here.
    if !location.exists().map_err(|e| e.to_string())? {
        return Err(format!(
            "{} is not enrolled ({} does not exist); nothing to disable",
            account.name,
            location.path.display()
        ));
    }
    require_code_or_root(&caller, &config, &location, "disabling 2FA")?;
    location.remove().map_err(|e| e.to_string())?;
    if caller.is_root() {
        remove_state(&config, &account)?;
    }
    outln!(
        "2FA disabled for {}: {} removed.",
        account.name,
        location.path.display()
    );
    if let Some(why) = admin::denied_when_unenrolled(&config, &account)? {
        eprintln!(
            "Warning: where pam_otpgate is required, {} can no longer log in ({why}) until they run `otpgate enroll` again.",
            account.name
        );
    }
    Ok(())
}

pub fn reset(config_path: Option<&Path>, user: &str, unlock: bool) -> Result<(), String> {
    let caller = Caller::current()?;
    require_root(&caller, "reset")?;
    let config = admin::load_config(config_path)?;
    let account = admin::target_account(&caller, Some(user), "reset")?;
    let location = Location::of(&config, &account).map_err(|e| e.to_string())?;
    if unlock {
        let now = now()?;
        // An unreadable enrollment must not stop the unlock: then only the
        // lock and counters go, and the replay memory stays whole.
        let enrollment = location.load().ok().flatten();
        let store = StateStore::open(&config.state_dir)
            .map_err(|e| e.to_string())?
            .for_repair();
        let (was, dropped) = store
            .update(&account, |st| {
                st.clamp(
                    now,
                    otpgate_core::store::state::Limits {
                        lockout_seconds: config.lockout_seconds,
                    },
                );
                let was = st.locked_at(now);
                st.clear_failures();
                // Compacted only when too large to be read at login, which
                // is the one case where forgetting is better than refusing.
                let too_large = st.too_large();
                let dropped = enrollment.as_ref().filter(|_| too_large).map_or(0, |e| {
                    otpgate_core::auth::adopt_legacy(e, st);
                    let devices: Vec<String> =
                        e.devices.iter().map(|d| d.secret.fingerprint()).collect();
                    st.compact(
                        &devices,
                        e.recovery.as_ref().map(|r| r.salt.as_str()),
                        Some(&e.credentials_fingerprint()),
                    )
                });
                (was, dropped)
            })
            .map_err(|e| e.to_string())?;
        match was {
            Some(t) => outln!("Unlocked {user} (was locked until {}).", format_utc(t)),
            None => outln!("{user} was not locked; wrong-code counters cleared."),
        }
        if dropped > 0 {
            outln!(
                "Compacted the login state: {dropped} entries of old devices, recovery sets or addresses removed."
            );
        }
        return Ok(());
    }
    let had_file = location.remove().map_err(|e| e.to_string())?;
    let had_state = remove_state(&config, &account)?;
    if !had_file && !had_state {
        return Err(format!(
            "{user} is not enrolled and has no login state; nothing to reset"
        ));
    }
    outln!(
        "Reset {user}: enrollment {}, login state {}. They can enroll again with `otpgate enroll`.",
        if had_file { "removed" } else { "absent" },
        if had_state { "cleared" } else { "absent" }
    );
    Ok(())
}

pub fn audit(config_path: Option<&Path>, json: bool) -> Result<(), String> {
    let caller = Caller::current()?;
    require_root(&caller, "audit")?;
    let config = admin::load_config(config_path)?;
    let rows: Vec<UserReport> = report::audit_accounts(&config.enforce_groups)?
        .iter()
        .map(|a| report::user_report(&config, a))
        .collect();
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    outln!(
        "{:<20} {:<9} {:<24} {:<9} {:<24} PROBLEM",
        "USER",
        "ENROLLED",
        "SINCE",
        "RECOVERY",
        "LAST USE"
    );
    let when = |t: Option<u64>| t.map_or_else(|| "-".to_string(), format_utc);
    for r in &rows {
        let recovery = match (r.recovery_codes_left, r.recovery_codes_total) {
            (Some(l), Some(t)) => format!("{l}/{t}"),
            (None, Some(t)) => format!("?/{t}"),
            _ => "-".into(),
        };
        outln!(
            "{:<20} {:<9} {:<24} {:<9} {:<24} {}",
            for_terminal(&r.user),
            if r.enrolled {
                "yes"
            } else if r.problem.is_some() {
                "broken"
            } else {
                "no"
            },
            when(r.enrolled_since),
            recovery,
            when(r.last_success),
            for_terminal(r.problem.as_deref().unwrap_or(""))
        );
    }
    let enrolled = rows.iter().filter(|r| r.enrolled).count();
    let broken = rows.iter().filter(|r| r.problem.is_some()).count();
    outln!(
        "\n{enrolled} of {} login accounts enrolled; {broken} with problems.",
        rows.len()
    );
    Ok(())
}

pub fn check_config(
    config_path: Option<&Path>,
    positional: Option<&Path>,
    service: Option<&str>,
    pam_dir: &Path,
) -> Result<(), String> {
    let path = positional.or(config_path);
    let mut source = path.map_or(Source::Default, |p| Source::Explicit(p.to_path_buf()));
    let mut overrides = Vec::new();
    let mut warning = None;
    if let Some(service) = service {
        let found = admin::check_service(pam_dir, service)?;
        outln!(
            "# auth stack of PAM service {service} ({}), includes followed:",
            pam_dir.join(service).display()
        );
        for e in &found.stack {
            outln!(
                "#   {}{}:{}: {}",
                if e.is_otpgate() { "-> " } else { "   " },
                e.file.display(),
                e.line,
                for_terminal(&e.show())
            );
        }
        if found.otpgate_lines > 1 {
            eprintln!(
                "note: the stack loads pam_otpgate.so {} times; showing the first",
                found.otpgate_lines
            );
        }
        if found.ignore_denies {
            warning = Some(format!(
                "warning: in PAM service {service} no module but pam_otpgate.so can succeed, so a user otpgate passes \
                 without a code (exempt, remembered, grace period, not enrolled under enforce = \"enrolled\") is denied \
                 by libpam. Add `auth required pam_permit.so` after the pam_otpgate.so line \
                 (see /usr/share/doc/otpgate/examples/pam.d-sshd-key-and-code)."
            ));
        }
        let refs: Vec<&str> = found.args.iter().map(String::as_str).collect();
        let parsed = otpgate_core::auth::ModuleArgs::parse(&refs).map_err(|e| e.to_string())?;
        if path.is_none() {
            source = parsed.source;
        }
        overrides = parsed.overrides;
        outln!("# pam_otpgate.so arguments: {:?}", found.args);
    }
    let config = Config::load(&source)
        .and_then(|c| c.with_overrides(&overrides, "module arguments"))
        .map_err(|e| e.to_string())?;
    config
        .check_system()
        .map_err(|e| format!("{}: {e}", source.path().display()))?;
    let shown = source.path().display();
    if matches!(source, Source::Default) && !source.path().exists() {
        outln!("# {shown} does not exist: built-in defaults apply");
    } else {
        outln!("# {shown}: OK");
    }
    outln!(
        "# effective values (issuer \"\" means the host name: {})",
        config.effective_issuer()
    );
    out!("{}", config.to_toml());
    if let Some(w) = warning {
        eprintln!("{w}");
    }
    Ok(())
}

pub fn import_google(
    config_path: Option<&Path>,
    user: Option<&str>,
    file: Option<&Path>,
    force: bool,
) -> Result<(), String> {
    let caller = Caller::current()?;
    let config = admin::load_config(config_path)?;
    let account = admin::target_account(&caller, user, "import")?;
    let path = file.map_or_else(
        || account.home.join(".google_authenticator"),
        Path::to_path_buf,
    );
    let text = {
        let _id = FsIdentity::become_user(account.uid, account.gid).map_err(|e| e.to_string())?;
        fs::read_private_file(&path, Trust { owner: account.uid }, 64 * 1024)
            .map_err(|e| format!("cannot import: {e}"))?
    };
    let text = std::str::from_utf8(&text).map_err(|_| format!("{} is not text", path.display()))?;
    let google = GoogleFile::parse(text).map_err(|e| format!("{}: {e}", path.display()))?;
    let params = TotpParams::new(otpgate_core::otp::Algorithm::SHA1, 6, google.period)?;
    let location = Location::of(&config, &account).map_err(|e| e.to_string())?;
    if admin::check_replace(&location, force, &account.name)? {
        require_code_or_root(&caller, &config, &location, "replacing the enrollment")?;
    }
    let now = now()?;
    let mut enrollment =
        Enrollment::new(google.secret.clone(), params, now).map_err(|e| e.to_string())?;
    if !google.scratch_codes.is_empty() {
        let codes: Vec<RecoveryCode> = google
            .scratch_codes
            .iter()
            .filter_map(|c| RecoveryCode::from_scratch(c))
            .collect();
        enrollment.recovery = Some(recovery::hash_set(&codes, now)?);
    }
    location.save(&enrollment).map_err(|e| e.to_string())?;
    let shown = path.display().to_string();
    outln!(
        "Imported {} into {} for {}: the app's existing entry keeps working.",
        for_terminal(&shown),
        for_terminal(&location.path.display().to_string()),
        for_terminal(&account.name)
    );
    for note in google.notes(config.window) {
        outln!("Note: {}", for_terminal(&note));
    }
    outln!(
        "{} was left in place; remove it once pam_google_authenticator is out of the PAM stack.",
        for_terminal(&shown)
    );
    Ok(())
}
