//! The other subcommands: status, recovery-codes, disable, reset, audit,
//! check-config, import.

use crate::enroll::{authorize_replace, now, print_recovery_codes, require_code_or_root};
use crate::fail;
use otpgate_core::admin::escape::for_terminal;
use otpgate_core::admin::report::{self, UserReport};
use otpgate_core::admin::{self, Caller, import, unlock};
use otpgate_core::config::Source;
use otpgate_core::fleet::history;
use otpgate_core::otp::recovery;
use otpgate_core::sys::clock::format_utc;
use otpgate_os::nss::Nss;
use otpgate_os::store::daemon::DaemonStore;
use std::path::Path;

/// Prints `value` as pretty JSON (`--json`).
fn print_json(value: &impl serde::Serialize) -> fail::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn require_root(caller: &Caller, what: &str) -> fail::Result<()> {
    Ok(caller.require_root(what)?)
}

pub fn status(config_path: Option<&Path>, user: Option<&str>, json: bool) -> fail::Result<()> {
    let caller = otpgate_os::caller(&Nss)?;
    let config = otpgate_os::config::load_for_command(config_path)?;
    let account = admin::target_account(&Nss, &caller, user, "show the status")?;
    let store = otpgate_os::store::open(&config);
    let at = report::ReportTime::of(&config, now()?);
    let mut r = report::user_report(store.as_ref(), &account, at);
    r.apply_methods(&config);
    if json {
        outln!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        out!("{}", r.to_text());
    }
    // A script (or a person) must not read "all is well" from the exit
    // status when the status shows a problem.
    if r.problem.is_some() {
        return Err(format!(
            "the status of {} shows a problem (above); fix it, then run `otpgate status` again",
            account.name
        )
        .into());
    }
    Ok(())
}

pub fn recovery_codes(
    config_path: Option<&Path>,
    user: Option<&str>,
    count: Option<usize>,
    json: bool,
) -> fail::Result<()> {
    let caller = otpgate_os::caller(&Nss)?;
    let config = otpgate_os::config::load_for_command(config_path)?;
    let account = admin::target_account(&Nss, &caller, user, "make recovery codes")?;
    let store = otpgate_os::store::open(&config);
    let mut enrollment = admin::load_enrolled(store.as_ref(), &account)?;
    require_code_or_root(
        &caller,
        &config,
        store.as_ref(),
        &account,
        "making new recovery codes",
    )?;
    let n = count.unwrap_or(config.recovery_codes);
    let (codes, set) = recovery::generate_set(&otpgate_os::random::OsRandom, n, now()?)?;
    let revoked = enrollment.recovery.replace(set).map(|old| old.salt);
    store.save(&account, &enrollment)?;
    if let (true, Some(salt)) = (caller.is_root(), revoked) {
        // The used codes of the revoked set can never matter again. (A user
        // cannot write the state; logins keep at most a few sets.)
        unlock::forget_recovery_set(store.as_ref(), &account, &salt)?;
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

pub fn disable(config_path: Option<&Path>, user: Option<&str>) -> fail::Result<()> {
    let caller = otpgate_os::caller(&Nss)?;
    let config = otpgate_os::config::load_for_command(config_path)?;
    let account = admin::target_account(&Nss, &caller, user, "disable 2FA")?;
    let store = otpgate_os::store::open(&config);
    let location = store.location(&account)?;
    // A broken file can still be removed (often the very reason to disable),
    // so only its existence is required here.
    if !store.exists(&account)? {
        return Err(format!(
            "{} is not enrolled ({location} does not exist); nothing to disable",
            account.name
        )
        .into());
    }
    require_code_or_root(&caller, &config, store.as_ref(), &account, "disabling 2FA")?;
    store.remove(&account)?;
    if caller.is_root() {
        store.remove_state(&account)?;
    }
    outln!(
        "2FA disabled for {}: {} removed.",
        account.name,
        for_terminal(&location)
    );
    if let Some(why) = admin::denied_when_unenrolled(&config, &Nss, &account)? {
        eprintln!(
            "Warning: where pam_otpgate is required, {} can no longer log in ({why}) until they run `otpgate enroll` again.",
            account.name
        );
    }
    Ok(())
}

pub fn reset(config_path: Option<&Path>, user: &str, unlock: bool) -> fail::Result<()> {
    let caller = otpgate_os::caller(&Nss)?;
    require_root(&caller, "reset")?;
    let config = otpgate_os::config::load_for_command(config_path)?;
    let account = admin::target_account(&Nss, &caller, Some(user), "reset")?;
    let store = otpgate_os::store::open(&config);
    if unlock {
        // An unreadable enrollment must not stop the unlock: then only the
        // lock and counters go, and the replay memory stays whole.
        let enrollment = store.load(&account).ok().flatten();
        let done = unlock::unlock(
            store.as_ref(),
            &config,
            &account,
            enrollment.as_ref(),
            now()?,
        )?;
        match done.was_locked_until {
            Some(t) => outln!("Unlocked {user} (was locked until {}).", format_utc(t)),
            None => outln!("{user} was not locked; wrong-code counters cleared."),
        }
        if done.compacted > 0 {
            outln!(
                "Compacted the login state: {} entries of old devices, recovery sets or addresses removed.",
                done.compacted
            );
        }
        return Ok(());
    }
    let had_file = store.remove(&account)?;
    let had_state = store.remove_state(&account)?;
    if !had_file && !had_state {
        return Err(
            format!("{user} is not enrolled and has no login state; nothing to reset").into(),
        );
    }
    outln!(
        "Reset {user}: enrollment {}, login state {}. They can enroll again with `otpgate enroll`.",
        if had_file { "removed" } else { "absent" },
        if had_state { "cleared" } else { "absent" }
    );
    Ok(())
}

pub fn audit(config_path: Option<&Path>, json: bool) -> fail::Result<()> {
    let caller = otpgate_os::caller(&Nss)?;
    require_root(&caller, "audit")?;
    let config = otpgate_os::config::load_for_command(config_path)?;
    let (mut accounts, left_out) = report::audit_scope(
        otpgate_os::accounts::audit_accounts(&config.enforce_groups)?,
        config.audit_min_uid,
        &otpgate_os::accounts::group_members(&config.enforce_groups)?,
        &otpgate_os::accounts::group_members(&config.audit_exclude_groups)?,
    );
    if config.store == otpgate_core::config::StoreKind::Postgresql {
        // Fleet mode: also every account the store has an enrollment for.
        let names = DaemonStore::new(&config).list()?;
        report::add_store_accounts(&Nss, &mut accounts, &names);
    }
    let mut rows: Vec<UserReport> = otpgate_os::report::audit(&config, &accounts, now()?);
    for r in &mut rows {
        r.apply_methods(&config);
    }
    if json {
        return print_json(&rows);
    }
    // One write for the whole table (stdout is line-buffered: a write per
    // line is a system call per account).
    use std::fmt::Write as _;
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<20} {:<9} {:<24} {:<9} {:<24} PROBLEM",
        "USER", "ENROLLED", "SINCE", "RECOVERY", "LAST USE"
    );
    let when = |t: Option<u64>| t.map_or_else(|| "-".to_string(), format_utc);
    for r in &rows {
        let recovery = match (r.recovery_codes_left, r.recovery_codes_total) {
            (Some(l), Some(t)) => format!("{l}/{t}"),
            (None, Some(t)) => format!("?/{t}"),
            _ => "-".into(),
        };
        let _ = writeln!(
            table,
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
            for_terminal(
                &r.problem
                    .clone()
                    .or_else(|| r
                        .locked_until
                        .map(|t| format!("locked until {}", format_utc(t))))
                    .or_else(|| r.disabled_note())
                    .unwrap_or_default()
            )
        );
    }
    let enrolled = rows.iter().filter(|r| r.enrolled).count();
    let broken = rows.iter().filter(|r| r.problem.is_some()).count();
    let _ = writeln!(
        table,
        "\n{enrolled} of {} login accounts enrolled; {broken} with problems.",
        rows.len()
    );
    if !left_out.is_empty() {
        let shown: Vec<String> = left_out
            .iter()
            .take(10)
            .map(|n| for_terminal(n).into_owned())
            .collect();
        let more = if left_out.len() > shown.len() {
            ", …"
        } else {
            ""
        };
        let _ = writeln!(
            table,
            "{} system account(s) with a login shell not listed (uid below audit_min_uid = {}, or in audit_exclude_groups): {}{more}",
            left_out.len(),
            config.audit_min_uid,
            shown.join(", ")
        );
    }
    out!("{table}");
    Ok(())
}

/// The fleet engine of `config`, or an error saying these views need it.
fn fleet_only(config: &otpgate_core::config::Config, what: &str) -> fail::Result<DaemonStore> {
    if config.store != otpgate_core::config::StoreKind::Postgresql {
        return Err(format!(
            "{what} is kept only in fleet mode (store = \"postgresql\"); on a single server, \
             read the auth log instead (`journalctl -t otpgate` or /var/log/auth.log)"
        )
        .into());
    }
    Ok(DaemonStore::new(config))
}

pub fn audit_logins(
    config_path: Option<&Path>,
    user: Option<&str>,
    since: Option<&str>,
    json: bool,
) -> fail::Result<()> {
    let caller = otpgate_os::caller(&Nss)?;
    let config = otpgate_os::config::load_for_command(config_path)?;
    // Root may ask for any name (the history holds refused unknown ones
    // too); anyone else for their own only.
    let user = match (caller.is_root(), user) {
        (true, Some(name)) => {
            otpgate_core::sys::paths::check_user_name(name)
                .map_err(|e| format!("--user {name:?}: {e}"))?;
            Some(name.to_string())
        }
        (true, None) => None,
        (false, name) => {
            Some(admin::target_account(&Nss, &caller, name, "read the login history of")?.name)
        }
    };
    let since = since.map(history::parse_duration).transpose()?.unwrap_or(0);
    let fleet = fleet_only(&config, "the login history")?;
    let (entries, more) = fleet.history(user.as_deref(), since)?;
    if json {
        return print_json(&entries);
    }
    use std::fmt::Write as _;
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<24} {:<16} {:<16} {:<10} {:<11} {:<12} FROM",
        "TIME", "USER", "SERVER", "SERVICE", "METHOD", "RESULT"
    );
    for e in &entries {
        let _ = writeln!(
            table,
            "{:<24} {:<16} {:<16} {:<10} {:<11} {:<12} {}",
            format_utc(e.time),
            for_terminal(&e.user),
            for_terminal(&e.server),
            for_terminal(&e.service),
            for_terminal(e.method.as_deref().unwrap_or("-")),
            for_terminal(&e.result),
            for_terminal(e.rhost.as_deref().unwrap_or("-")),
        );
    }
    let _ = writeln!(
        table,
        "\n{} login decision(s), newest first.",
        entries.len()
    );
    if more {
        let _ = writeln!(
            table,
            "Only the newest {} are shown; narrow with --since or --user.",
            entries.len()
        );
    }
    out!("{table}");
    Ok(())
}

pub fn audit_servers(config_path: Option<&Path>, json: bool) -> fail::Result<()> {
    let caller = otpgate_os::caller(&Nss)?;
    require_root(&caller, "audit --servers")?;
    let config = otpgate_os::config::load_for_command(config_path)?;
    let fleet = fleet_only(&config, "the list of servers")?;
    let servers = fleet.servers()?;
    if json {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            #[serde(flatten)]
            server: &'a history::ServerEntry,
            status: history::ServerStatus,
        }
        let rows: Vec<Row> = servers
            .iter()
            .map(|server| Row {
                server,
                status: server.status(),
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    use std::fmt::Write as _;
    let mut table = String::new();
    let _ = writeln!(
        table,
        "{:<24} {:<10} {:<24} {:<16} STATUS",
        "SERVER", "VERSION", "STARTED", "LAST SEEN"
    );
    let mut problems = 0;
    for s in &servers {
        let status = match s.status() {
            history::ServerStatus::Up => "up".to_string(),
            history::ServerStatus::Stopped => {
                problems += 1;
                "stopped".to_string()
            }
            history::ServerStatus::NotSeen => {
                problems += 1;
                format!(
                    "NOT SEEN for {} (otpgated down, or cannot reach the store)",
                    history::ago(s.seen_seconds_ago).trim_end_matches(" ago")
                )
            }
        };
        let _ = writeln!(
            table,
            "{:<24} {:<10} {:<24} {:<16} {}",
            for_terminal(&s.name),
            for_terminal(&s.version),
            format_utc(s.started),
            history::ago(s.seen_seconds_ago),
            status
        );
    }
    let _ = writeln!(
        table,
        "\n{} server(s); {problems} stopped or not seen.",
        servers.len()
    );
    out!("{table}");
    Ok(())
}

pub fn check_config(
    config_path: Option<&Path>,
    positional: Option<&Path>,
    service: Option<&str>,
    pam_dir: &Path,
    quiet: bool,
) -> fail::Result<()> {
    let path = positional.or(config_path);
    let service = match service {
        Some(name) => Some((
            name,
            admin::check_service(pam_dir, name, &otpgate_os::config::read_pam_file)?,
        )),
        None => None,
    };
    let effective =
        match otpgate_os::config::effective(&Nss, path, service.as_ref().map(|(_, s)| s)) {
            Ok(e) => e,
            // The generic advice ends "then run `otpgate check-config`": from
            // check-config itself, say what to do next instead.
            Err(admin::Error::Config(e)) => {
                return Err(format!(
                    "{e}; fix the file (see otpgate.toml(5)) and run this command again"
                )
                .into());
            }
            Err(e) => return Err(e.into()),
        };
    // What matters comes first: each warning, then the values, then a
    // summary line that repeats whether there was anything.
    let mut warnings: Vec<String> = Vec::new();
    if let Some((name, found)) = &service {
        if found.ignore_denies {
            warnings.push(format!(
                "in PAM service {name} no module but pam_otpgate.so can succeed, so a user otpgate passes \
                 without a code (exempt, remembered, grace period, not enrolled under enforce = \"enrolled\") is denied \
                 by libpam. Add `auth required pam_permit.so` after the pam_otpgate.so line \
                 (see /usr/share/doc/otpgate/examples/pam.d-sshd-key-and-code)."
            ));
        }
        for problem in &found.split_problems {
            warnings.push(format!(
                "in PAM service {name}, split mode: {}",
                for_terminal(problem)
            ));
        }
    }
    for w in &warnings {
        outln!("warning: {w}");
    }
    let shown = effective.source.path().display().to_string();
    if quiet {
        return summary_exit(&shown, warnings.len(), false);
    }
    if let Some((name, found)) = &service {
        outln!(
            "# auth stack of PAM service {name} ({}), includes followed:",
            pam_dir.join(name).display()
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
            outln!(
                "# note: the stack loads pam_otpgate.so {} times; showing the first",
                found.otpgate_lines
            );
        }
        outln!("# pam_otpgate.so arguments: {:?}", found.args);
    }
    if matches!(effective.source, Source::Default) && !effective.source.path().exists() {
        outln!("# {shown} does not exist: built-in defaults apply");
    }
    outln!(
        "# effective values (issuer \"\" means the host name: {})",
        effective.config.effective_issuer(otpgate_os::hostname())
    );
    out!("{}", effective.config.to_toml());
    summary_exit(&shown, warnings.len(), true)
}

/// check-config's last line, and its exit status: 0, or 2 with warnings.
fn summary_exit(shown: &str, warnings: usize, always: bool) -> fail::Result<()> {
    if warnings == 0 {
        if always {
            outln!("check-config: {shown}: OK");
        }
        return Ok(());
    }
    let s = if warnings == 1 { "" } else { "s" };
    outln!("check-config: {shown}: usable, {warnings} warning{s} (at the top)");
    Err(fail::Fail {
        code: fail::USAGE,
        message: format!("{warnings} warning{s}: see the first lines of the output"),
    })
}

pub fn import_google(
    config_path: Option<&Path>,
    user: Option<&str>,
    file: Option<&Path>,
    force: bool,
) -> fail::Result<()> {
    let caller = otpgate_os::caller(&Nss)?;
    let config = otpgate_os::config::load_for_command(config_path)?;
    let account = admin::target_account(&Nss, &caller, user, "import")?;
    let path = import::source_path(&account, file);
    let google = otpgate_os::import::read(&account, &path)?;
    let store = otpgate_os::store::open(&config);
    authorize_replace(&caller, &config, store.as_ref(), &account, force)?;
    let enrollment = import::enrollment(&google, now()?, &otpgate_os::random::OsRandom)?;
    store.save(&account, &enrollment)?;
    let location = store.location(&account)?;
    let shown = path.display().to_string();
    outln!(
        "Imported {} into {} for {}: the app's existing entry keeps working.",
        for_terminal(&shown),
        for_terminal(&location),
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

pub fn migrate(config_path: Option<&Path>, to: Option<&Path>, dry_run: bool) -> fail::Result<()> {
    use otpgate_core::fleet::protocol::Imported;
    let caller = otpgate_os::caller(&Nss)?;
    require_root(&caller, "migrate")?;
    // Where the files are: this server's config, still in use by the module.
    let config = otpgate_os::config::load_for_command(config_path)?;
    let fleet_config = match to {
        Some(path) => otpgate_os::config::load_for_command(Some(path))?,
        None => config.clone(),
    };
    // The fleet keys name the store, whatever `store` says: the module may
    // still read files while migrate fills the store (the safe order).
    if fleet_config.database.trim().is_empty() {
        return Err(match to {
            Some(path) => format!(
                "{} has no `database`; --to names the fleet config (`database`, `secret_key_file`, its otpgated running)",
                path.display()
            ),
            None => "the config has no `database`: add the fleet keys (README \"Fleet mode\"), start otpgated, then run migrate; \
                     or name another fleet config with --to"
                .to_string(),
        }
        .into());
    }
    let daemon = otpgate_os::store::daemon::DaemonStore::new(&fleet_config);
    let fleet = &daemon;
    fleet.ping()?;
    let accounts = otpgate_os::accounts::audit_accounts(&config.enforce_groups)?;
    let moved = otpgate_os::migrate::migrate(&config, &accounts, fleet, dry_run);
    let (mut added, mut there, mut removed, mut conflicts, mut failed) = (0, 0, 0, 0, 0);
    for (user, m) in &moved {
        match m {
            otpgate_os::migrate::Moved::NotEnrolled => continue,
            otpgate_os::migrate::Moved::Done(Imported::Added) => added += 1,
            otpgate_os::migrate::Moved::Done(Imported::AlreadyThere) => there += 1,
            otpgate_os::migrate::Moved::Done(Imported::Removed) => removed += 1,
            otpgate_os::migrate::Moved::Done(Imported::Conflict) => conflicts += 1,
            otpgate_os::migrate::Moved::Failed(_) => failed += 1,
        }
        if let Some(line) = otpgate_os::migrate::describe(user, m, dry_run) {
            outln!("{}", for_terminal(&line));
        }
    }
    let verb = if dry_run { "would move" } else { "moved" };
    outln!(
        "migrate: {verb} {added}, {there} already in the fleet store (used codes merged), {removed} removed in the fleet, {conflicts} conflicting, {failed} failed{}",
        if dry_run {
            " (dry run: nothing was changed)"
        } else {
            ""
        }
    );
    if !dry_run {
        match to {
            Some(path) => outln!(
                "The files were left in place and this server still uses them. Now make {} the config the module reads \
                 (or set the same fleet keys there): from then on the fleet store is used.",
                for_terminal(&path.display().to_string())
            ),
            None if config.store == otpgate_core::config::StoreKind::Files => outln!(
                "The files were left in place and this server still uses them (store = \"files\"). \
                 Now set store = \"postgresql\", then run `otpgate migrate` once more to merge codes used meanwhile."
            ),
            None if added > 0 => outln!(
                "The files were left in place. The fleet store is used from now on (store = \"postgresql\")."
            ),
            None => {}
        }
    }
    if conflicts + failed > 0 {
        return Err(format!(
            "{} account(s) were not moved; see the lines above",
            conflicts + failed
        )
        .into());
    }
    Ok(())
}

pub fn accept_restore(config_path: Option<&Path>, user: Option<&str>) -> fail::Result<()> {
    let caller = otpgate_os::caller(&Nss)?;
    require_root(&caller, "accept-restore")?;
    let config = otpgate_os::config::load_for_command(config_path)?;
    if config.store != otpgate_core::config::StoreKind::Postgresql {
        return Err(
            "the config says store = \"files\"; accept-restore is for fleet mode (store = \"postgresql\")"
                .to_string()
                .into(),
        );
    }
    let fleet = DaemonStore::new(&config);
    let accounts = fleet.accept_restore(user)?;
    let whom = match user {
        Some(u) => for_terminal(u).into_owned(),
        None => format!("{accounts} account(s)"),
    };
    outln!(
        "otpgated on this server now accepts what the fleet store holds for {whom} as the newest it has seen. \
         Run `otpgate accept-restore` on every other server that refuses logins after the restore."
    );
    Ok(())
}
