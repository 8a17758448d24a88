//! Issue 9: the trust holes an attack review found, each reproduced through
//! the real module (pamtester under pam_wrapper, time frozen) or the real
//! CLI. Every test here failed on the code before the fix.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use otpgate_tests::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const DAY: u64 = 86_400;
const OTHER_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
const HOME_IP: &str = "198.51.100.7";
const CODE_USED: &str = "This code was already used; wait for the next one.";

/// Enrolls with the RFC key and `n` recovery codes; returns the codes.
fn enrolled_with_recovery(w: &World, u: &TestUser, n: usize) -> Vec<String> {
    w.enroll_secret_with_recovery(&u.name, Some(RFC_SECRET), n)
}

/// Replaces the first line of `path` starting with `key =` (keeps owner and mode).
fn set_key(path: &Path, key: &str, value: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    let prefix = format!("{key} = ");
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{key} not in {text}"))
        .to_string();
    std::fs::write(path, text.replacen(&line, &format!("{prefix}{value}"), 1)).unwrap();
}

fn append(path: &Path, text: &str) {
    let mut old = std::fs::read_to_string(path).unwrap();
    old.push_str(text);
    std::fs::write(path, old).unwrap();
}

// 1. Login state keyed by what a user cannot forge.

#[test]
fn editing_the_enrollment_id_does_not_make_a_used_code_valid_again() {
    let w = World::new();
    let u = w.enrolled_user();
    let code = code_at(RFC_SECRET, T0);
    w.login(&u.name, &code, T0).assert_ok();
    set_key(
        &u.secret_file(),
        "enrollment_id",
        "\"ffffffffffffffffffffffffffffffff\"",
    );
    let run = w.login(&u.name, &code, T0 + 1);
    run.assert_denied("code already used");
    run.assert_code(PamCode::AuthErr);
}

#[test]
fn two_secret_files_sharing_one_state_dir_share_the_used_codes() {
    let w = World::new();
    let u = TestUser::new(&w);
    let codes = enrolled_with_recovery(&w, &u, 3);
    // A second service reads a root-owned copy with another id.
    let central = w.dir.join("central");
    std::fs::create_dir_all(&central).unwrap();
    let copy = central.join(format!("{}.toml", u.name));
    std::fs::copy(u.secret_file(), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).unwrap();
    set_key(
        &copy,
        "enrollment_id",
        "\"eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\"",
    );
    let line = w.module_line(&format!("secret_path={}/%u.toml", central.display()));
    w.set_stack("central", &["auth required pam_permit.so", &line]);

    let code = code_at(RFC_SECRET, T0);
    w.login(&u.name, &code, T0).assert_ok();
    w.pam("central", &u.name, &[&code], T0 + 1, None)
        .assert_denied("code already used");
    w.login(&u.name, &codes[0], T0 + 2).assert_ok();
    w.pam("central", &u.name, &[&codes[0]], T0 + 3, None)
        .assert_denied("recovery code already used");
    // And back: what the second file used is used for the first too.
    w.pam("central", &u.name, &[&codes[1]], T0 + 4, None)
        .assert_ok();
    w.login(&u.name, &codes[1], T0 + 5)
        .assert_denied("recovery code already used");
}

#[test]
fn account_aliases_share_replay_memory_failures_and_lockout() {
    let w = World::new();
    let u = w.enrolled_user();
    let alias = u.alias();
    w.set_config("max_failures = 2\n");
    let code = code_at(RFC_SECRET, T0);
    w.login(&u.name, &code, T0).assert_ok();
    w.login(&alias.name, &code, T0 + 1)
        .assert_denied("code already used");
    let bad = wrong_code(RFC_SECRET, T0 + 60);
    w.login(&alias.name, &bad, T0 + 60)
        .assert_denied("wrong code");
    w.login(&u.name, &bad, T0 + 61).assert_denied("wrong code");
    let run = w.login(&alias.name, &code_at(RFC_SECRET, T0 + 90), T0 + 90);
    run.assert_denied("locked out");
    run.assert_code(PamCode::MaxTries);
    assert!(!run.prompted());
}

#[test]
fn two_devices_with_one_secret_are_refused() {
    let w = World::new();
    let u = w.enrolled_user();
    assert_cli_error(
        &w.add_device(&u.name, "copy", RFC_SECRET, &["--hotp"]),
        "already has this secret",
    );
    assert!(
        !std::fs::read_to_string(u.secret_file())
            .unwrap()
            .contains("copy")
    );
    // Written into the file by hand, the login refuses the file.
    append(
        &u.secret_file(),
        &format!(
            "\n[[devices]]\nname = \"copy\"\ntype = \"totp\"\nsecret = \"{RFC_SECRET}\"\n\
             algorithm = \"SHA1\"\ndigits = 6\nperiod = 30\ncreated = 1\n"
        ),
    );
    let run = w.login(&u.name, &code_at(RFC_SECRET, T0), T0);
    run.assert_denied("have the same secret");
    run.assert_code(PamCode::AuthInfoUnavail);
}

#[test]
fn state_stays_bounded_and_reset_unlock_repairs_an_oversized_file() {
    let w = World::new();
    let u = w.enrolled_user();
    w.set_config("remember_minutes = 10\n");
    // Remembered addresses are capped.
    for i in 0..20u64 {
        let at = T0 + 30 * i;
        let ip = format!("192.0.2.{i}");
        w.pam(
            "otpgate-test",
            &u.name,
            &[&code_at(RFC_SECRET, at)],
            at,
            Some(&ip),
        )
        .assert_ok();
    }
    let state = std::fs::read_to_string(w.state_file(&u)).unwrap();
    assert_eq!(state.matches("[[remembered]]").count(), 16, "{state}");
    // A file over the cap (here: memory of 3000 old secrets) is refused…
    let mut big = state.clone();
    for i in 0..3000 {
        big.push_str(&format!("\n[devices.{i:032x}]\nlast_step = {i}\n"));
    }
    std::fs::write(w.state_file(&u), &big).unwrap();
    let at = T0 + 30 * 20;
    let run = w.login(&u.name, &code_at(RFC_SECRET, at), at);
    run.assert_denied(&format!("otpgate reset --user {} --unlock", u.name));
    run.assert_code(PamCode::AuthInfoUnavail);
    // …until reset --unlock compacts it, keeping the current device's memory.
    let out = cli_ok(&w.otpgate_at(at, &["reset", "--user", &u.name, "--unlock"], ""));
    assert!(out.contains("Compacted the login state"), "{out}");
    assert!(std::fs::metadata(w.state_file(&u)).unwrap().len() < 16 * 1024);
    let last = T0 + 30 * 19;
    w.login(&u.name, &code_at(RFC_SECRET, last), last + 1)
        .assert_denied("code already used");
    w.login(&u.name, &code_at(RFC_SECRET, at), at).assert_ok();
}

#[test]
fn a_new_recovery_set_drops_the_used_codes_of_the_revoked_one() {
    let w = World::new();
    let u = TestUser::new(&w);
    let codes = enrolled_with_recovery(&w, &u, 2);
    w.login(&u.name, &codes[0], T0).assert_ok();
    let salt_line = |f: &Path| {
        std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .find(|l| l.starts_with("salt = "))
            .unwrap()
            .trim_start_matches("salt = ")
            .trim_matches('"')
            .to_string()
    };
    let old_salt = salt_line(&u.secret_file());
    assert!(
        std::fs::read_to_string(w.state_file(&u))
            .unwrap()
            .contains(&old_salt)
    );
    cli_ok(&w.otpgate(&["recovery-codes", "--user", &u.name, "--count", "2"], ""));
    let state = std::fs::read_to_string(w.state_file(&u)).unwrap();
    assert!(!state.contains(&old_salt), "{state}");
    assert_ne!(salt_line(&u.secret_file()), old_salt);
}

// 2. The trust window is bound to what was trusted.

fn remembered_world() -> (World, TestUser) {
    let w = World::new();
    let u = w.enrolled_user();
    w.set_config("remember_minutes = 60\n");
    w.set_stack(
        "no-remember",
        &[
            "auth required pam_permit.so",
            &w.module_line("remember_minutes=0"),
        ],
    );
    (w, u)
}

/// A login with an empty reply from the home address: passes only if remembered.
fn skip(w: &World, service: &str, u: &TestUser, at: u64) -> PamRun {
    w.pam(service, &u.name, &[""], at, Some(HOME_IP))
}

fn trust(w: &World, u: &TestUser, at: u64) {
    w.pam(
        "otpgate-test",
        &u.name,
        &[&code_at(RFC_SECRET, at)],
        at,
        Some(HOME_IP),
    )
    .assert_ok();
    let run = skip(w, "otpgate-test", u, at + 1);
    run.assert_ok();
    assert!(!run.prompted());
}

#[test]
fn a_remembered_address_counts_only_on_its_service_and_for_the_readers_minutes() {
    let (w, u) = remembered_world();
    trust(&w, &u, T0);
    let run = skip(&w, "no-remember", &u, T0 + 60);
    assert!(run.prompted());
    run.assert_denied("empty code");
    w.set_stack(
        "other",
        &[
            "auth required pam_permit.so",
            &w.module_line("remember_minutes=60"),
        ],
    );
    assert!(
        !skip(&w, "other", &u, T0 + 60).success,
        "remembered on another service"
    );
    skip(&w, "otpgate-test", &u, T0 + 600).assert_ok();
    // The reading service's own minutes, counted from the good code.
    w.set_config("remember_minutes = 5\n");
    assert!(!skip(&w, "otpgate-test", &u, T0 + 600).success);
}

#[test]
fn changing_devices_secret_or_recovery_codes_ends_every_trust_window() {
    let (w, u) = remembered_world();
    let changes: [&[&str]; 4] = [
        &[
            "device",
            "add",
            "backup",
            "--secret",
            "-",
            "--no-confirm",
            "--qr",
            "none",
        ],
        &["device", "remove", "backup"],
        &["recovery-codes", "--count", "2"],
        &[
            "enroll",
            "--force",
            "--secret",
            "-",
            "--no-confirm",
            "--qr",
            "none",
        ],
    ];
    let mut at = T0;
    for change in changes {
        trust(&w, &u, at);
        let mut args = change.to_vec();
        args.extend(["--user", &u.name]);
        let stdin = if change.contains(&"add") {
            OTHER_SECRET
        } else {
            RFC_SECRET
        };
        cli_ok(&w.otpgate(&args, stdin));
        let run = skip(&w, "otpgate-test", &u, at + 2);
        assert!(run.prompted(), "after {change:?}: {run:#?}");
        assert!(!run.success, "after {change:?}");
        at += 60;
    }
}

// 3. The stacks the README documents work for every policy outcome.

/// The shipped key + code fragment with the module path and config filled in.
fn shipped_key_and_code(w: &World, permit: bool) -> Vec<String> {
    let text = std::fs::read_to_string(workspace().join("config/pam.d/sshd-key-and-code")).unwrap();
    text.lines()
        .filter(|l| l.starts_with("auth"))
        .filter(|l| permit || !l.contains("pam_permit"))
        .map(|l| {
            l.replace(
                "pam_otpgate.so",
                &format!("{} config={}", module_path().display(), w.config.display()),
            )
        })
        .collect()
}

#[test]
fn the_shipped_key_and_code_stack_passes_every_policy_outcome() {
    let w = World::new();
    let enrolled_user = w.enrolled_user();
    let fresh = TestUser::new(&w);
    let lines = shipped_key_and_code(&w, true);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    w.set_stack("keyonly", &refs);
    let bare = shipped_key_and_code(&w, false);
    w.set_stack("bare", &[bare[0].as_str()]);

    let cases: [(&str, &TestUser, Option<&str>); 4] = [
        (
            "exempt_networks = [\"10.0.0.0/8\"]\n",
            &enrolled_user,
            Some("10.1.2.3"),
        ),
        ("enforce = \"enrolled\"\n", &fresh, None),
        ("grace_period_days = 7\n", &fresh, None),
        ("remember_minutes = 10\n", &enrolled_user, Some(HOME_IP)),
    ];
    let mut at = T0;
    for (config, user, rhost) in cases {
        w.set_config(config);
        if config.contains("remember") {
            // Remembered per service: a good code on each first.
            for (service, step) in [("keyonly", 0), ("bare", 30)] {
                w.pam(
                    service,
                    &user.name,
                    &[&code_at(RFC_SECRET, at + step)],
                    at + step,
                    rhost,
                )
                .assert_ok();
            }
            at += 30;
        }
        let run = w.pam("keyonly", &user.name, &[""], at + 1, rhost);
        run.assert_ok();
        run.assert_logged("result=ignored");
        // Without pam_permit, libpam denies the stack every module ignored.
        // (PAM_PERM_DENIED is libpam's answer when every module ignored:
        // it shows that otpgate returned PAM_IGNORE, not a failure.)
        let run = w.pam("bare", &user.name, &[""], at + 1, rhost);
        run.assert_code(PamCode::PermDenied);
        at += 60;
    }
    // A refused code still fails the shipped stack.
    w.set_config("");
    let run = w.pam("keyonly", &enrolled_user.name, &["000000"], at, None);
    run.assert_denied("wrong code");
    run.assert_code(PamCode::AuthErr);

    // check-config warns about the bare stack, not the shipped one.
    let svc = w.svc.to_str().unwrap();
    let out = w.otpgate(&["check-config", "--service", "bare", "--pam-dir", svc], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "a warning: exit 2: {text}");
    assert!(text.contains("auth required pam_permit.so"), "{text}");
    let out = w.otpgate(
        &["check-config", "--service", "keyonly", "--pam-dir", svc],
        "",
    );
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("warning"));
}

#[test]
fn check_config_reads_the_stack_and_arguments_as_libpam_does() {
    let w = World::new();
    let u = w.enrolled_user();
    let svc = w.svc.to_str().unwrap().to_string();
    let module = module_path().display().to_string();
    let config = w.config.display().to_string();
    // Included the way pam-auth-update and admins do it.
    std::fs::write(
        w.svc.join("common-auth-test"),
        format!(
            "auth [success=1 default=ignore] pam_permit.so\nauth requisite pam_deny.so\n\
             auth required pam_permit.so\nauth required {module} config={config} window=0\n"
        ),
    )
    .unwrap();
    let include = w.svc.join("common-auth-test").display().to_string();
    for (service, line) in [
        ("at-include", format!("@include {include}")),
        ("include", format!("auth include {include}")),
        ("substack", format!("auth substack {include}")),
    ] {
        std::fs::write(w.svc.join(service), format!("{line}\n")).unwrap();
        let out = w.otpgate(
            &["check-config", "--service", service, "--pam-dir", &svc],
            "",
        );
        let text = cli_ok(&out);
        assert!(text.contains("window = 0"), "{service}: {text}");
        assert!(text.contains("-> "), "{service}: {text}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
        // The real module agrees: window = 0 refuses the previous step.
        w.pam(service, &u.name, &[&code_at(RFC_SECRET, T0 - 30)], T0, None)
            .assert_denied("wrong code");
    }
    // `[prompt=a]b]` is the two arguments `prompt=a` and `b]` for libpam:
    // the module refuses `b]`, and so must check-config.
    w.set_stack(
        "brackets",
        &[
            "auth required pam_permit.so",
            &format!("auth required {module} config={config} [prompt=a]b]"),
        ],
    );
    let out = w.otpgate(
        &["check-config", "--service", "brackets", "--pam-dir", &svc],
        "",
    );
    assert_cli_error(&out, "b]");
    let run = w.pam("brackets", &u.name, &[&code_at(RFC_SECRET, T0)], T0, None);
    run.assert_denied("unknown argument `b]`");
    run.assert_code(PamCode::AuthInfoUnavail);
    // An escaped bracket stays in the prompt, for both.
    w.set_stack(
        "escaped",
        &[
            "auth required pam_permit.so",
            &format!("auth required {module} config={config} [prompt=Code\\] now: ]"),
        ],
    );
    let text = cli_ok(&w.otpgate(
        &["check-config", "--service", "escaped", "--pam-dir", &svc],
        "",
    ));
    assert!(text.contains("prompt = \"Code] now: \""), "{text}");
    let run = w.pam("escaped", &u.name, &[&code_at(RFC_SECRET, T0)], T0, None);
    run.assert_ok();
    assert!(run.said("Code] now: "), "{run:#?}");
}

// 4. Nothing from a user's file reaches root's terminal raw.

#[test]
fn nothing_from_a_users_file_reaches_roots_terminal_raw() {
    let w = World::new();
    let u = TestUser::new(&w);
    enrolled_with_recovery(&w, &u, 2);
    let forged = "\\u001b[2J\\u001b[31mFORGED\\r\\nroot yes";
    set_key(&u.secret_file(), "kdf", &format!("\"{forged}\""));
    let raw_free = |out: &std::process::Output, what: &str| {
        for stream in [&out.stdout, &out.stderr] {
            assert!(
                !stream.iter().any(|b| *b == 0x1b || *b == b'\r'),
                "{what}: raw control bytes: {:?}",
                String::from_utf8_lossy(stream)
            );
        }
    };
    let audit = w.otpgate(&["audit"], "");
    raw_free(&audit, "audit");
    let text = cli_ok(&audit);
    assert!(text.contains("\\u{1b}[2J"), "{text}");
    let status = w.otpgate(&["status", "--user", &u.name], "");
    raw_free(&status, "status");
    assert!(String::from_utf8_lossy(&status.stdout).contains("\\u{1b}[31mFORGED"));
    assert_eq!(status.status.code(), Some(1), "a problem shown: exit 1");
    // JSON stays exact.
    let json = w.otpgate(&["status", "--user", &u.name, "--json"], "");
    let json = String::from_utf8_lossy(&json.stdout);
    assert!(json.contains("\\u001b[2J"), "{json}");
    // A device name and an unknown key, shown in errors.
    let bad_device = format!(
        "\n[[devices]]\nname = \"x\\u001b[1Ay\"\ntype = \"totp\"\nsecret = \"{OTHER_SECRET}\"\n\
         algorithm = \"SHA1\"\ndigits = 6\nperiod = 30\ncreated = 1\n"
    );
    set_key(&u.secret_file(), "kdf", "\"argon2id\"");
    append(&u.secret_file(), &bad_device);
    let out = w.otpgate(&["device", "list", "--user", &u.name], "");
    raw_free(&out, "device list");
    assert_cli_error(&out, "x\\u{1b}[1Ay");
    let text = std::fs::read_to_string(u.secret_file()).unwrap();
    std::fs::write(
        u.secret_file(),
        text.replace(&bad_device, "\n\"\\u001b[2K\" = 1\n"),
    )
    .unwrap();
    let audit = w.otpgate(&["audit"], "");
    raw_free(&audit, "audit (unknown key)");
    // An import error quoting the file.
    let google = u.home.join(".google_authenticator");
    std::fs::write(&google, "\u{1b}[2JNOT A SECRET\n\" \u{1b}]0;title\u{7}\n").unwrap();
    nix::unistd::chown(&google, Some(u.uid.into()), Some(u.gid.into())).unwrap();
    std::fs::set_permissions(&google, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = w.otpgate(
        &[
            "import",
            "google-authenticator",
            "--user",
            &u.name,
            "--force",
        ],
        "",
    );
    raw_free(&out, "import");
    assert!(!out.status.success());
}

// 5. Nobody else reads a user's login state.

fn cat_as(user: &TestUser, path: &Path) -> bool {
    Command::new("setpriv")
        .arg(format!("--reuid={}", user.uid))
        .arg(format!("--regid={}", user.gid))
        .arg("--init-groups")
        .arg("cat")
        .arg(path)
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn login_state_is_readable_by_root_and_its_user_only() {
    let w = World::new();
    let u = TestUser::new(&w);
    let neighbour = TestUser::in_group(&w, u.gid);
    let codes = enrolled_with_recovery(&w, &u, 3);
    w.login(&u.name, &codes[0], T0).assert_ok();
    let state = w.state_file(&u);
    let meta = std::fs::metadata(&state).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    assert_eq!(meta.mode() & 0o007, 0, "nothing for others");
    assert!(
        !cat_as(&neighbour, &state),
        "a user of the same primary group read the state"
    );
    assert!(cat_as(&u, &state), "the user cannot read their own state");
    let status = cli_ok(&w.otpgate_as(&u, &["status"], ""));
    assert!(status.contains("Recovery codes:  2 of 3 left"), "{status}");
    assert!(status.contains("Last success:"), "{status}");
}

#[test]
fn state_from_the_previous_version_is_converted_and_made_private() {
    let w = World::new();
    let u = TestUser::new(&w);
    let neighbour = TestUser::in_group(&w, u.gid);
    let codes = enrolled_with_recovery(&w, &u, 3);
    let secret_text = std::fs::read_to_string(u.secret_file()).unwrap();
    let first_hash = secret_text
        .split("hashes = [")
        .nth(1)
        .unwrap()
        .split('"')
        .nth(1)
        .unwrap()
        .to_string();
    // What version 0.1 wrote: one file per name, group-readable, the first
    // recovery code used and the current step's code used.
    std::fs::create_dir_all(&w.state).unwrap();
    let legacy = w.state.join(format!("{}.state", u.name));
    std::fs::write(
        &legacy,
        format!(
            "version = 1\nenrollment_id = \"0\"\nused_recovery = [\"{first_hash}\"]\n\
             [devices.default]\nlast_step = {}\n",
            T0 / 30
        ),
    )
    .unwrap();
    nix::unistd::chown(&legacy, Some(0.into()), Some(u.gid.into())).unwrap();
    std::fs::set_permissions(&legacy, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(cat_as(&neighbour, &legacy));

    w.login(&u.name, &codes[0], T0)
        .assert_denied("recovery code already used");
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0 + 1)
        .assert_denied("code already used");
    assert!(!legacy.exists(), "the old file is converted and removed");
    assert!(!cat_as(&neighbour, &w.state_file(&u)));
    w.login(&u.name, &codes[1], T0 + 2).assert_ok();
}

// 6. A user's file cannot make a login expensive.

#[test]
fn costly_argon2_parameters_are_refused_and_the_lockout_comes_before_any_hash() {
    let w = World::new();
    let u = TestUser::new(&w);
    let codes = enrolled_with_recovery(&w, &u, 3);
    let original = std::fs::read_to_string(u.secret_file()).unwrap();
    set_key(&u.secret_file(), "m_cost", "262144");
    set_key(&u.secret_file(), "t_cost", "10");
    let run = w.login(&u.name, &codes[0], T0);
    run.assert_denied("not the ones otpgate writes");
    run.assert_code(PamCode::AuthInfoUnavail);
    let out = w.otpgate(&["status", "--user", &u.name], "");
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.contains("otpgate recovery-codes"), "{status}");
    assert_eq!(out.status.code(), Some(1), "a problem shown: exit 1");

    // With otpgate's own parameters, a locked user's recovery code is
    // refused before it is hashed: it is not used up.
    std::fs::write(u.secret_file(), original).unwrap();
    w.set_config("max_failures = 2\n");
    let bad = wrong_code(RFC_SECRET, T0);
    w.login(&u.name, &bad, T0);
    w.login(&u.name, &bad, T0 + 1);
    let run = w.login(&u.name, &codes[0], T0 + 2);
    run.assert_code(PamCode::MaxTries);
    assert!(!run.prompted());
    w.login(&u.name, &codes[0], T0 + 2000).assert_ok();
}

// 7. Clock faults do not outlive the fault.

#[test]
fn a_lockout_from_a_fast_clock_ends_lockout_seconds_after_the_fix() {
    let w = World::new();
    let u = w.enrolled_user();
    w.set_config("max_failures = 5\nlockout_seconds = 900\n");
    // The server's clock is a day fast: the phone's right codes look wrong.
    for i in 0..5 {
        w.login(&u.name, &code_at(RFC_SECRET, T0 + i * 30), T0 + DAY + i)
            .assert_denied("wrong code");
    }
    // Clock fixed: the lock lasts at most 900 s from now, not a day.
    let run = w.login(&u.name, &code_at(RFC_SECRET, T0 + 200), T0 + 200);
    run.assert_code(PamCode::MaxTries);
    let until = otpgate_core::sys::clock::format_utc(T0 + 200 + 900);
    assert!(run.said(&format!("locked until {until}")), "{run:#?}");
    w.login(&u.name, &code_at(RFC_SECRET, T0 + 1101), T0 + 1101)
        .assert_ok();
}

#[test]
fn a_grace_period_started_by_a_fast_clock_ends_grace_days_after_the_fix() {
    let w = World::new();
    let u = TestUser::new(&w);
    w.set_config("grace_period_days = 7\n");
    let run = w.login(&u.name, "", T0 + 3650 * DAY);
    run.assert_ok();
    run.assert_logged("grace period");
    w.login(&u.name, "", T0).assert_ok();
    let run = w.login(&u.name, "", T0 + 8 * DAY);
    run.assert_denied("not enrolled");
}

#[test]
fn a_remembered_address_from_a_fast_clock_lasts_remember_minutes_after_the_fix() {
    let w = World::new();
    let u = w.enrolled_user();
    w.set_config("remember_minutes = 10\n");
    let fast = T0 + DAY;
    w.pam(
        "otpgate-test",
        &u.name,
        &[&code_at(RFC_SECRET, fast)],
        fast,
        Some(HOME_IP),
    )
    .assert_ok();
    skip(&w, "otpgate-test", &u, T0).assert_ok();
    assert!(!skip(&w, "otpgate-test", &u, T0 + 601).success);
}

#[test]
fn a_backward_clock_step_never_lets_a_code_be_used_twice() {
    let w = World::new();
    let u = w.enrolled_user();
    let code = code_at(RFC_SECRET, T0);
    w.login(&u.name, &code, T0).assert_ok();
    w.login(&u.name, &code, T0 - 30)
        .assert_denied("code already used");
    w.login(&u.name, &code_at(RFC_SECRET, T0 - 30), T0 - 30)
        .assert_denied("code already used");
}

// 8. Tell the user what happened.

/// What the user saw: pamtester's stdout and the conversation's error lines.
fn shown(run: &PamRun) -> String {
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.contains("SYSLOG") && !l.starts_with("pamtester:") && !l.contains("PWRAP"))
        .collect();
    format!("{}|{}", run.stdout.trim(), errors.join("\n"))
}

#[test]
fn a_refused_code_says_why_without_revealing_the_account() {
    let w = World::new();
    let u = w.enrolled_user();
    let code = code_at(RFC_SECRET, T0);
    w.login(&u.name, &code, T0).assert_ok();
    let run = w.login(&u.name, &code, T0 + 1);
    assert!(run.said(CODE_USED), "{run:#?}");
    let bad = wrong_code(RFC_SECRET, T0);
    let wrong = w.login(&u.name, &bad, T0 + 2);
    assert!(wrong.said("Wrong code."), "{wrong:#?}");
    assert!(!wrong.said("already used"));
    let unknown = w.login("no-such-user-otpgate", &bad, T0 + 3);
    unknown.assert_code(PamCode::UserUnknown);
    assert_eq!(shown(&unknown), shown(&wrong));
    let junk = w.login(&u.name, "hello", T0 + 4);
    let junk_unknown = w.login("no-such-user-otpgate", "hello", T0 + 4);
    assert!(junk.said("That is not a code"), "{junk:#?}");
    assert_eq!(shown(&junk), shown(&junk_unknown));
}

/// The files and names this suite writes are the ones the code writes.
#[test]
fn the_state_file_is_named_after_the_uid() {
    let w = World::new();
    let u = w.enrolled_user();
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0).assert_ok();
    let names: Vec<PathBuf> = std::fs::read_dir(&w.state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(names.contains(&w.state_file(&u)), "{names:?}");
    assert!(!w.state.join(format!("{}.state", u.name)).exists());
}

#[test]
fn an_alias_state_from_the_previous_version_is_not_forgotten() {
    let w = World::new();
    let u = TestUser::new(&w);
    let codes = enrolled_with_recovery(&w, &u, 3);
    let alias = u.alias();
    // The account logged in once under the new version: its uid file exists.
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0).assert_ok();
    assert!(w.state_file(&u).exists());
    // 0.1 left a file for the alias, recording the first recovery code used.
    let text = std::fs::read_to_string(u.secret_file()).unwrap();
    let first_hash = text
        .split("hashes = [")
        .nth(1)
        .unwrap()
        .split('"')
        .nth(1)
        .unwrap()
        .to_string();
    let legacy = w.state.join(format!("{}.state", alias.name));
    std::fs::write(
        &legacy,
        format!("version = 1\nenrollment_id = \"0\"\nused_recovery = [\"{first_hash}\"]\n"),
    )
    .unwrap();
    std::fs::set_permissions(&legacy, std::fs::Permissions::from_mode(0o600)).unwrap();
    w.login(&alias.name, &codes[0], T0 + 1)
        .assert_denied("recovery code already used");
    w.login(&u.name, &codes[0], T0 + 2)
        .assert_denied("recovery code already used");
    assert!(!legacy.exists(), "absorbed into the uid's file");
    w.login(&u.name, &codes[1], T0 + 3).assert_ok();
}
