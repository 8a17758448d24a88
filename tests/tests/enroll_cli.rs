//! Issue 3: the enrollment CLI, recovery codes at login, status, reset,
//! audit, check-config and import, through the real binary and the real module.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use otpgate_tests::*;
use std::os::unix::fs::PermissionsExt;

fn uri_in(text: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix("Key URI: "))
        .expect("a Key URI line")
        .trim()
        .to_string()
}

#[test]
fn terminal_png_and_svg_qr_codes_decode_to_the_printed_uri() {
    let w = World::new();
    let u = TestUser::new(&w);
    let out = w.otpgate(&["enroll", "--user", &u.name, "--no-confirm"], "");
    let text = cli_ok(&out);
    let uri = uri_in(&text);
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    for part in ["&algorithm=SHA1", "&digits=6", "&period=30", "issuer="] {
        assert!(uri.contains(part), "{uri} lacks {part}");
    }
    assert_eq!(decode_terminal_qr(&text, &w.dir.join("term.pgm")), uri);

    for (kind, file) in [("png", "qr.png"), ("svg", "qr.svg")] {
        let path = w.dir.join(file);
        let arg = format!("{kind}={}", path.display());
        let out = w.otpgate(
            &[
                "enroll",
                "--user",
                &u.name,
                "--no-confirm",
                "--force",
                "--qr",
                &arg,
            ],
            "",
        );
        let text = cli_ok(&out);
        assert_eq!(decode_qr(&path), uri_in(&text), "{kind}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the image holds the secret");
    }
    let out = w.otpgate(
        &[
            "enroll",
            "--user",
            &u.name,
            "--no-confirm",
            "--force",
            "--qr",
            "none",
        ],
        "",
    );
    assert!(!cli_ok(&out).contains('█'));
}

#[test]
fn non_default_parameters_warn_and_appear_in_the_uri() {
    let w = World::new();
    let u = TestUser::new(&w);
    let out = w.otpgate(
        &[
            "enroll",
            "--user",
            &u.name,
            "--no-confirm",
            "--digits",
            "8",
            "--period",
            "60",
            "--algorithm",
            "sha256",
            "--qr",
            "none",
        ],
        "",
    );
    let text = cli_ok(&out);
    assert!(
        text.contains("algorithm=SHA256&digits=8&period=60"),
        "{text}"
    );
    assert!(
        text.contains("Google Authenticator") && text.contains("may ignore"),
        "{text}"
    );
}

/// Drives `otpgate enroll` as the user through a real pseudo-terminal.
fn interactive_enroll(w: &World, u: &TestUser, codes: &str) -> std::process::Output {
    let script = format!(
        r#"
set timeout 20
log_user 1
spawn setpriv --reuid={uid} --regid={gid} --init-groups env HOME={home} {cli} --config {config} enroll
expect {{
    -re {{Key \(time-based[^:]*: ([A-Z2-7 ]+)\r}} {{ set secret [string map {{" " ""}} $expect_out(1,string)] }}
    timeout {{ puts "NO-SECRET"; exit 3 }}
}}
set code [exec oathtool --totp -b $secret]
set bad [format %06d [expr {{([scan $code %d] + 500000) % 1000000}}]]
foreach what {{ {codes} }} {{
    expect {{
        -re {{Code from your app \(. of 3\): }} {{}}
        timeout {{ puts "NO-PROMPT"; exit 3 }}
        eof {{ break }}
    }}
    if {{ $what eq "good" }} {{ send "[exec oathtool --totp -b $secret]\r" }} else {{ send "$bad\r" }}
}}
expect eof
catch wait result
exit [lindex $result 3]
"#,
        uid = u.uid,
        gid = u.gid,
        home = u.home.display(),
        cli = user_cli_path().display(),
        config = w.config.display(),
    );
    expect(&script)
}

#[test]
fn interactive_enrollment_wrong_thrice_writes_nothing() {
    let w = World::new();
    let u = TestUser::new(&w);
    let out = interactive_enroll(&w, &u, "bad bad bad");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("nothing was written"), "{text}");
    assert_eq!(text.matches("That code is not valid").count(), 3, "{text}");
    assert!(!u.secret_file().exists());
    assert!(
        !u.home.join(".config/otpgate").exists()
            || std::fs::read_dir(u.home.join(".config/otpgate"))
                .unwrap()
                .count()
                == 0
    );
}

#[test]
fn interactive_enrollment_then_each_recovery_code_logs_in_once() {
    let w = World::new();
    let u = TestUser::new(&w);
    w.set_config("recovery_codes = 3\n");
    let out = interactive_enroll(&w, &u, "bad good");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Enrolled"), "{text}");
    // On a terminal the QR code is drawn black on white (ANSI), so it scans
    // on dark and light themes alike; what the terminal got must decode.
    assert!(text.contains("\x1b[30;47m"), "no colours on a terminal");
    let screen = text.replace('\r', "");
    assert_eq!(
        decode_terminal_qr(&screen, &w.dir.join("pty.pgm")),
        uri_in(&screen)
    );
    let meta = std::fs::metadata(u.secret_file()).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.mode() & 0o777), (u.uid, 0o600));
    let codes = recovery_codes_in(&text);
    assert_eq!(codes.len(), 3, "{text}");
    let file = std::fs::read_to_string(u.secret_file()).unwrap();
    for c in &codes {
        assert!(
            !file.contains(c.as_str()) && !file.contains(&c.replace('-', "")),
            "codes are stored hashed only"
        );
    }
    for (i, code) in codes.iter().enumerate() {
        // Typed in upper case with spaces: case and separators do not matter.
        let typed = code.to_uppercase().replace('-', " ");
        let run = w.login(&u.name, &typed, T0 + i as u64);
        run.assert_ok();
        let left = 2 - i;
        assert!(
            run.stdout
                .contains(&format!("{left} recovery code(s) left")),
            "{run:#?}"
        );
        assert!(
            run.stdout.contains("otpgate recovery-codes"),
            "at 0-2 left the user is warned: {run:#?}"
        );
        run.assert_logged(&format!("method=recovery-code remaining={left}"));
        w.login(&u.name, code, T0 + 10)
            .assert_denied("recovery code already used");
    }
    let status = cli_ok(&w.otpgate_as(&u, &["status"], ""));
    assert!(status.contains("Recovery codes:  0 of 3 left"), "{status}");
}

#[test]
fn a_recovery_code_works_once_when_logins_race() {
    let w = World::new();
    let u = TestUser::new(&w);
    // The 11 losers are wrong codes; keep them from locking the user out.
    w.set_config("max_failures = 100\n");
    let codes = w.enroll_with_recovery(&u.name, 2);
    let code = &codes[0];
    assert_eq!(w.thread_race(&u.name, code, 12, T0), (1, 11));
    w.login(&u.name, &codes[1], T0).assert_ok();
    w.login(&u.name, "zzzz-zzzz-zzzz", T0)
        .assert_denied("wrong recovery code");
}

#[test]
fn json_provisioning_output_is_complete() {
    let w = World::new();
    let u = TestUser::new(&w);
    let out = w.otpgate(
        &[
            "enroll",
            "--user",
            &u.name,
            "--secret",
            "-",
            "--no-confirm",
            "--json",
        ],
        RFC_SECRET,
    );
    let text = cli_ok(&out);
    let line = text.lines().last().unwrap();
    for key in [
        "\"uri\":",
        "\"secret\":\"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\"",
        "\"recovery_codes\":",
        "\"user\":",
    ] {
        assert!(line.contains(key), "{line}");
    }
    assert_eq!(recovery_codes_in(line).len(), 10);
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0).assert_ok();
}

#[test]
fn existing_enrollment_needs_force_and_a_current_code_from_a_user() {
    let w = World::new();
    let u = TestUser::new(&w);
    w.enroll(&u.name, RFC_SECRET);
    let before = std::fs::read(u.secret_file()).unwrap();
    assert_cli_error(
        &w.otpgate(&["enroll", "--user", &u.name, "--no-confirm"], ""),
        "already enrolled",
    );
    // The user with --force must prove they hold the current device.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = w.otpgate_as(
        &u,
        &["enroll", "--force", "--qr", "none"],
        &format!("{}\n", wrong_code(RFC_SECRET, now)),
    );
    assert_cli_error(&out, "not valid");
    assert_eq!(
        std::fs::read(u.secret_file()).unwrap(),
        before,
        "nothing changed"
    );
}

#[test]
fn permission_and_flag_errors_are_one_clear_line() {
    let w = World::new();
    let u = TestUser::new(&w);
    let other = TestUser::new(&w);
    assert_cli_error(
        &w.otpgate_as(&u, &["enroll", "--user", &other.name, "--no-confirm"], ""),
        "only root can enroll",
    );
    assert_cli_error(
        &w.otpgate_as(&u, &["enroll", "--no-confirm"], ""),
        "--no-confirm is for administrators",
    );
    assert_cli_error(
        &w.otpgate_as(&u, &["status", "--user", &other.name], ""),
        "only root",
    );
    assert_cli_error(
        &w.otpgate_as(&u, &["reset", "--user", &other.name], ""),
        "for administrators",
    );
    assert_cli_error(&w.otpgate_as(&u, &["audit"], ""), "for administrators");
    assert_cli_error(
        &w.otpgate(&["enroll", "--user", "no-such-user-og", "--no-confirm"], ""),
        "no such user",
    );
    assert_cli_error(
        &w.otpgate(
            &["enroll", "--user", &u.name, "--no-confirm", "--digits", "9"],
            "",
        ),
        "digits must be from 6 to 8",
    );
    assert_cli_error(
        &w.otpgate(
            &["enroll", "--user", &u.name, "--no-confirm", "--secret", "-"],
            "not base32!",
        ),
        "not valid base32",
    );
    assert_usage_error(
        &w.otpgate(
            &["enroll", "--user", &u.name, "--no-confirm", "--qr", "gif=x"],
            "",
        ),
        "--qr",
    );
    let out = w.otpgate(&["enroll", "--bogus"], "");
    assert_eq!(out.status.code(), Some(2), "bad flags exit 2");
    assert!(!u.secret_file().exists());
}

#[test]
fn commands_on_an_unenrolled_user() {
    let w = World::new();
    let u = TestUser::new(&w);
    let status = cli_ok(&w.otpgate_as(&u, &["status"], ""));
    assert!(
        status.contains("Enrolled:        no (run `otpgate enroll`)"),
        "{status}"
    );
    assert_cli_error(
        &w.otpgate_as(&u, &["recovery-codes"], ""),
        "is not enrolled",
    );
    assert_cli_error(&w.otpgate_as(&u, &["disable"], ""), "is not enrolled");
    assert_cli_error(
        &w.otpgate(&["reset", "--user", &u.name], ""),
        "nothing to reset",
    );
}

#[test]
fn status_shows_enrollment_use_and_file_problems() {
    let w = World::new();
    let u = TestUser::new(&w);
    w.enroll(&u.name, RFC_SECRET);
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0).assert_ok();
    let text = cli_ok(&w.otpgate_as(&u, &["status"], ""));
    for part in [
        "Enrolled since:",
        "TOTP, SHA1, 6 digits, 30 s",
        "Last success:    2027-01-15 08:00:00 UTC (default)",
        "secret.toml",
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
    let json = cli_ok(&w.otpgate(&["status", "--user", &u.name, "--json"], ""));
    assert!(
        json.contains("\"enrolled\": true") && json.contains("\"last_success\": 1800000000"),
        "{json}"
    );
    std::fs::set_permissions(u.secret_file(), std::fs::Permissions::from_mode(0o644)).unwrap();
    // A problem is printed, and the exit status says so (1).
    let out = w.otpgate(&["status", "--user", &u.name], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Problem:") && text.contains("chmod 600"),
        "{text}"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn recovery_codes_regeneration_revokes_the_old_set() {
    let w = World::new();
    let u = TestUser::new(&w);
    let old = w.enroll_with_recovery(&u.name, 2);
    let new = recovery_codes_in(&cli_ok(
        &w.otpgate(&["recovery-codes", "--user", &u.name, "--count", "4"], ""),
    ));
    assert_eq!(new.len(), 4);
    w.login(&u.name, &old[0], T0)
        .assert_denied("wrong recovery code");
    w.login(&u.name, &new[0], T0).assert_ok();
}

#[test]
fn disable_by_the_user_needs_a_current_code() {
    let w = World::new();
    let u = TestUser::new(&w);
    w.enroll(&u.name, RFC_SECRET);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_cli_error(
        &w.otpgate_as(
            &u,
            &["disable"],
            &format!("{}\n", wrong_code(RFC_SECRET, now)),
        ),
        "not valid",
    );
    assert!(u.secret_file().exists());
    let out = w.otpgate_as(&u, &["disable"], &format!("{}\n", code_at(RFC_SECRET, now)));
    cli_ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("can no longer log in (enforce = \"all\")")
    );
    assert!(!u.secret_file().exists());
    // Under enforce = "enrolled" nothing would deny them: no warning.
    w.enroll(&u.name, RFC_SECRET);
    w.set_config("enforce = \"enrolled\"\n");
    let out = w.otpgate(&["disable", "--user", &u.name], "");
    cli_ok(&out);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("can no longer log in"));
}

#[test]
fn admin_reset_removes_enrollment_and_state() {
    let w = World::new();
    let u = TestUser::new(&w);
    w.enroll(&u.name, RFC_SECRET);
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0).assert_ok();
    assert!(w.state_file(&u).exists());
    let text = cli_ok(&w.otpgate(&["reset", "--user", &u.name], ""));
    assert!(
        text.contains("enrollment removed") && text.contains("login state cleared"),
        "{text}"
    );
    assert!(!u.secret_file().exists() && !w.state_file(&u).exists());
    w.login(&u.name, &code_at(RFC_SECRET, T0 + 30), T0 + 30)
        .assert_denied("not enrolled");
}

#[test]
fn audit_lists_login_accounts_with_their_state() {
    let w = World::new();
    let a = TestUser::new(&w);
    let b = TestUser::new(&w);
    let c = TestUser::new(&w);
    w.enroll(&a.name, RFC_SECRET);
    w.enroll(&c.name, RFC_SECRET);
    std::fs::set_permissions(c.secret_file(), std::fs::Permissions::from_mode(0o640)).unwrap();
    let text = cli_ok(&w.otpgate(&["audit"], ""));
    let row = |n: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{n} ")))
            .unwrap_or_else(|| panic!("no row for {n}: {text}"))
            .to_string()
    };
    assert!(row(&a.name).contains(" yes "), "{text}");
    assert!(row(&b.name).contains(" no "), "{text}");
    assert!(
        row(&c.name).contains("broken") && row(&c.name).contains("chmod 600"),
        "{text}"
    );
    let json = cli_ok(&w.otpgate(&["audit", "--json"], ""));
    assert!(json.contains(&format!("\"user\": \"{}\"", b.name)));
    // The last use comes from the login state.
    w.login(&a.name, &code_at(RFC_SECRET, T0), T0).assert_ok();
    let text = cli_ok(&w.otpgate(&["audit"], ""));
    let last = otpgate_core::sys::clock::format_utc(T0);
    let row_a = text
        .lines()
        .find(|l| l.starts_with(&format!("{} ", a.name)));
    assert!(row_a.is_some_and(|r| r.contains(&last)), "{text}");
    // A member of an enforced group is listed even without a login shell.
    let d = TestUser::new(&w);
    assert!(
        std::process::Command::new("usermod")
            .args(["-s", "/usr/sbin/nologin", &d.name])
            .status()
            .unwrap()
            .success()
    );
    let text = cli_ok(&w.otpgate(&["audit"], ""));
    assert!(
        !text.contains(&format!("{} ", d.name)),
        "no login shell, not enforced: not listed"
    );
    let g = TestGroup::new(&[&d]);
    w.set_config(&format!("enforce_groups = [\"{}\"]\n", g.name));
    let text = cli_ok(&w.otpgate(&["audit"], ""));
    assert!(
        text.lines().any(|l| l.starts_with(&format!("{} ", d.name))),
        "{text}"
    );
}

#[test]
fn check_config_prints_effective_values_or_the_error() {
    let w = World::new();
    w.set_config("window = 2\n");
    let text = cli_ok(&w.otpgate(&["check-config"], ""));
    assert!(
        text.contains("OK") && text.contains("window = 2") && text.contains("digits = 6"),
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.starts_with("check-config: ") && l.ends_with(": OK")),
        "a summary line last: {text}"
    );
    // --quiet: nothing when all is well.
    let quiet = w.otpgate(&["check-config", "--quiet"], "");
    assert!(
        quiet.status.success() && quiet.stdout.is_empty(),
        "{quiet:?}"
    );
    let bad = w.dir.join("bad.toml");
    std::fs::write(&bad, "digits = 12\n").unwrap();
    let out = w.otpgate(&["check-config", bad.to_str().unwrap()], "");
    assert_cli_error(&out, "key `digits`: 12 is out of range; allowed: 6 to 8");
    assert_eq!(out.status.code(), Some(1), "an error: exit 1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("run this command again") && !err.contains("then run `otpgate check-config`"),
        "{err}"
    );
}

#[test]
fn check_config_puts_warnings_first_and_last_and_exits_2() {
    let w = World::new();
    let pam_dir = w.dir.join("pam.d");
    std::fs::create_dir_all(&pam_dir).unwrap();
    // A stack where nothing but pam_otpgate.so can succeed.
    std::fs::write(
        pam_dir.join("bare"),
        format!("auth required {}\n", module_path().display()),
    )
    .unwrap();
    let args = [
        "check-config",
        "--service",
        "bare",
        "--pam-dir",
        pam_dir.to_str().unwrap(),
    ];
    let out = w.otpgate(&args, "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("warning: in PAM service bare"),
        "{text}"
    );
    assert!(text.contains("digits = 6"), "the values follow: {text}");
    assert!(
        lines
            .last()
            .unwrap()
            .contains("usable, 1 warning (at the top)"),
        "{text}"
    );
    // --quiet: the warning alone, same exit status.
    let mut quiet = args.to_vec();
    quiet.push("--quiet");
    let out = w.otpgate(&quiet, "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.starts_with("warning: ") && !text.contains("digits = 6"),
        "{text}"
    );
}

#[test]
fn completions_are_generated_for_three_shells() {
    let w = World::new();
    for (shell, marker) in [
        ("bash", "complete"),
        ("zsh", "#compdef otpgate"),
        ("fish", "complete -c otpgate"),
    ] {
        let text = cli_ok(&w.otpgate(&["completions", shell], ""));
        assert!(
            text.contains(marker) && text.contains("recovery-codes"),
            "{shell}"
        );
    }
}

fn google_file(w: &World, u: &TestUser, args: &[&str]) -> std::path::PathBuf {
    let path = u.home.join(".google_authenticator");
    let out = std::process::Command::new("setpriv")
        .arg(format!("--reuid={}", u.uid))
        .arg(format!("--regid={}", u.gid))
        .arg("--init-groups")
        .arg("google-authenticator")
        .args(args)
        .args(["-f", "-C", "-q", "-s"])
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            // HOTP set-up asks whether to widen the window: answer no.
            let _ = child.stdin.take().unwrap().write_all(b"n\n");
            child.wait_with_output()
        })
        .unwrap();
    assert!(
        out.status.success() || path.exists(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = w;
    path
}

#[test]
fn import_from_a_real_google_authenticator_file() {
    let w = World::new();
    let u = TestUser::new(&w);
    let path = google_file(
        &w,
        &u,
        &["-t", "-d", "-r", "3", "-R", "30", "-w", "3", "-e", "3"],
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let secret = text.lines().next().unwrap().to_string();
    let scratch: Vec<String> = text
        .lines()
        .filter(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))
        .map(String::from)
        .collect();
    assert_eq!(scratch.len(), 3);
    let out = w.otpgate_as(&u, &["import", "google-authenticator"], "");
    let report = cli_ok(&out);
    assert!(
        report.contains("keeps working")
            && report.contains("RATE_LIMIT")
            && report.contains("scratch code"),
        "{report}"
    );
    let file = std::fs::read_to_string(u.secret_file()).unwrap();
    assert!(
        !file.contains(&scratch[0]),
        "scratch codes are stored hashed"
    );
    w.login(&u.name, &code_at(&secret, T0), T0).assert_ok();
    w.login(&u.name, &scratch[0], T0).assert_ok();
    w.login(&u.name, &scratch[0], T0)
        .assert_denied("recovery code already used");
    assert!(path.exists(), "the original file is left in place");
}

#[test]
fn import_reports_hotp_files_and_writes_nothing() {
    let w = World::new();
    let u = TestUser::new(&w);
    google_file(&w, &u, &["-c", "-w", "3", "-e", "1"]);
    assert_cli_error(
        &w.otpgate(&["import", "google-authenticator", "--user", &u.name], ""),
        "counter-based (HOTP)",
    );
    assert!(!u.secret_file().exists());
    assert_cli_error(
        &w.otpgate(
            &[
                "import",
                "google-authenticator",
                "--user",
                &u.name,
                "--file",
                "/nonexistent/ga",
            ],
            "",
        ),
        "does not exist",
    );
}

#[test]
fn a_user_cannot_write_a_root_managed_store_and_is_told_whom_to_ask() {
    let w = World::new();
    let u = TestUser::new(&w);
    let store = w.dir.join("central");
    std::fs::create_dir(&store).unwrap();
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).unwrap();
    w.set_config(&format!("secret_path = \"{}/%u.toml\"\n", store.display()));
    let out = w.otpgate_as(&u, &["enroll", "--qr", "none"], "");
    assert_cli_error(
        &out,
        &format!(
            "ask an administrator to run `otpgate enroll --user {}`",
            u.name
        ),
    );
}

/// otpgate(1) EXIT STATUS: 1 could not be done, 2 invalid use, 3 not permitted.
#[test]
fn exit_status_tells_denied_from_invalid_from_failed() {
    let w = World::new();
    let u = TestUser::new(&w);
    let other = w.enrolled_user();
    let code = |out: &std::process::Output| out.status.code();
    // Not permitted.
    let out = w.otpgate_as(&u, &["audit"], "");
    assert_cli_error(&out, "run it as root");
    assert_eq!(code(&out), Some(3));
    let out = w.otpgate_as(&u, &["status", "--user", &other.name], "");
    assert_eq!(code(&out), Some(3), "{out:?}");
    let out = w.otpgate_as(&u, &["enroll", "--no-confirm", "--qr", "none"], "");
    assert_eq!(code(&out), Some(3), "{out:?}");
    // Invalid use.
    let out = w.otpgate(&["status", "--user", "no-such-user-og"], "");
    assert_cli_error(&out, "no such user");
    assert_eq!(code(&out), Some(2));
    let out = w.otpgate(
        &["enroll", "--user", &u.name, "--no-confirm", "--digits", "9"],
        "",
    );
    assert_eq!(code(&out), Some(2), "{out:?}");
    assert_eq!(code(&w.otpgate(&["enroll", "--bogus"], "")), Some(2));
    // Could not be done.
    let out = w.otpgate(&["recovery-codes", "--user", &u.name], "");
    assert_cli_error(&out, "not enrolled");
    assert_eq!(code(&out), Some(1));
}

#[test]
fn status_and_audit_show_a_lockout_failures_and_remembered_addresses() {
    let w = World::new();
    w.set_config("max_failures = 3\nremember_minutes = 10\n");
    let u = w.enrolled_user();
    // A good code from 192.0.2.7: that address is remembered for sshd-like use.
    w.pam(
        "otpgate-test",
        &u.name,
        &[&code_at(RFC_SECRET, T0)],
        T0,
        Some("192.0.2.7"),
    )
    .assert_ok();
    for i in 0..2 {
        w.login(&u.name, &wrong_code(RFC_SECRET, T0 + 30), T0 + 30 + i)
            .assert_denied("wrong code");
    }
    let status = cli_ok(&w.otpgate_at(T0 + 40, &["status", "--user", &u.name], ""));
    assert!(
        status.contains("Wrong codes:     2 within failure_window"),
        "{status}"
    );
    assert!(!status.contains("Locked:"), "{status}");
    assert!(
        status.contains("Remembered:      192.0.2.7 on otpgate-test until 2027-01-15 08:10:00 UTC"),
        "{status}"
    );
    // The third wrong code locks the second factor.
    w.login(&u.name, &wrong_code(RFC_SECRET, T0 + 60), T0 + 60)
        .assert_denied("wrong code");
    let status = cli_ok(&w.otpgate_at(T0 + 61, &["status", "--user", &u.name], ""));
    assert!(
        status.contains("Locked:          yes, until 2027-01-15 08:16:00 UTC")
            && status.contains(&format!("otpgate reset --user {} --unlock", u.name)),
        "{status}"
    );
    let json = cli_ok(&w.otpgate_at(T0 + 61, &["status", "--user", &u.name, "--json"], ""));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["locked_until"], T0 + 60 + 900, "{json}");
    // The lock starts a new count.
    assert_eq!(v["recent_failures"], 0, "{json}");
    assert_eq!(v["remembered"][0]["address"], "192.0.2.7", "{json}");
    // audit marks the account.
    let audit = cli_ok(&w.otpgate_at(T0 + 61, &["audit"], ""));
    let row = audit
        .lines()
        .find(|l| l.starts_with(&u.name))
        .unwrap_or_else(|| panic!("{audit}"));
    assert!(
        row.contains("locked until 2027-01-15 08:16:00 UTC"),
        "{row}"
    );
    // After the lockout, no "Locked" line.
    let later = cli_ok(&w.otpgate_at(T0 + 2000, &["status", "--user", &u.name], ""));
    assert!(!later.contains("Locked:"), "{later}");
}

#[test]
fn status_exits_non_zero_when_it_prints_a_problem() {
    let w = World::new();
    let u = w.enrolled_user();
    // The file made unsafe: status shows the problem, and says so by its exit status.
    std::fs::set_permissions(
        u.secret_file(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let out = w.otpgate(&["status", "--user", &u.name], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Problem:"), "{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("shows a problem"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn audit_leaves_out_system_accounts_and_excluded_groups_and_says_so() {
    let w = World::new();
    let person = TestUser::new(&w);
    // A system account with a login shell, as postgres has.
    let name = unique("sys");
    run_ok(
        std::process::Command::new("useradd").args(["--system", "--shell", "/bin/sh", &name]),
        "useradd --system",
    );
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::process::Command::new("userdel").arg(&self.0).status();
        }
    }
    let _gone = Gone(name.clone());
    let starts = |text: &str, n: &str| text.lines().any(|l| l.starts_with(&format!("{n} ")));
    let text = cli_ok(&w.otpgate(&["audit"], ""));
    assert!(
        starts(&text, &person.name) && starts(&text, "root"),
        "{text}"
    );
    assert!(
        !starts(&text, &name),
        "a system account is not listed: {text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("not listed (uid below audit_min_uid = 1000") && l.contains(&name)),
        "{text}"
    );
    // The admin decides: every uid, or a group left out.
    w.set_config("audit_min_uid = 0\n");
    assert!(starts(&cli_ok(&w.otpgate(&["audit"], "")), &name));
    w.set_config(&format!("audit_exclude_groups = [\"{}\"]\n", person.name));
    let text = cli_ok(&w.otpgate(&["audit"], ""));
    assert!(!starts(&text, &person.name), "{text}");
    // enforce_groups members are listed whatever their uid.
    w.set_config(&format!("enforce_groups = [\"{name}\"]\n"));
    assert!(starts(&cli_ok(&w.otpgate(&["audit"], "")), &name));
}
