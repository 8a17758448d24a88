//! Issue 14: clients that send one password. Split mode (`forward_pass` …
//! password module … `forwarded_code`) through the real module, the shipped
//! stacks and a real password check (pam_unix against /etc/shadow), and
//! `prompts` (a second chance after a typo) in one PAM call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use otpgate_tests::*;

const PASSWORD: &str = "Corr3ct-Horse";
const SERVICE: &str = "otpgate-split";

/// A world whose service `otpgate-split` is the shipped OpenVPN stack, and
/// an enrolled user with a real password.
fn split_world() -> (World, TestUser) {
    let w = World::new();
    let lines = w.shipped_stack("openvpn");
    assert_eq!(lines.len(), 3, "{lines:?}");
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    w.set_stack(SERVICE, &refs);
    let u = w.enrolled_user();
    u.set_password(PASSWORD);
    (w, u)
}

fn one_prompt(w: &World, u: &TestUser, reply: &str, at: u64) -> PamRun {
    w.pam(SERVICE, &u.name, &[reply], at, None)
}

/// The state file's bytes, or None when there is none.
fn state(w: &World, u: &TestUser) -> Option<Vec<u8>> {
    std::fs::read(w.state_file(u)).ok()
}

/// The module's decision lines (`result=…`), which only a line that
/// checked something writes.
fn decisions(run: &PamRun) -> Vec<&String> {
    run.syslog
        .iter()
        .filter(|l| l.contains("result="))
        .collect()
}

#[test]
fn password_and_code_in_one_reply_log_in_once() {
    let (w, u) = split_world();
    let code = code_at(RFC_SECRET, T0);
    let run = one_prompt(&w, &u, &format!("{PASSWORD}{code}"), T0);
    run.assert_ok();
    assert!(run.said("Password and verification code"), "{run:#?}");
    assert!(!run.prompted(), "one prompt only: {run:#?}");
    run.assert_logged("result=accepted method=code");
    // The same code again, with the right password: a replay.
    let run = one_prompt(&w, &u, &format!("{PASSWORD}{code}"), T0 + 1);
    run.assert_denied("replay refused");
    run.assert_code(PamCode::AuthErr);
    // A wrong code after the right password is refused and counted.
    let run = one_prompt(
        &w,
        &u,
        &format!("{PASSWORD}{}", wrong_code(RFC_SECRET, T0 + 30)),
        T0 + 30,
    );
    run.assert_denied("wrong code");
    let text = String::from_utf8(state(&w, &u).unwrap()).unwrap();
    assert!(
        text.contains(&format!("failures = [{}, {}]", T0 + 1, T0 + 30)),
        "{text}"
    );
}

#[test]
fn a_wrong_password_never_looks_at_the_code_nor_counts() {
    let (w, u) = split_world();
    w.set_config("max_failures = 2\n");
    let before = state(&w, &u);
    let code = code_at(RFC_SECRET, T0);
    // The right code behind a wrong password, then a stream of wrong codes
    // (enough to lock out twice over if they were counted).
    let run = one_prompt(&w, &u, &format!("wrong-password{code}"), T0);
    run.assert_code(PamCode::AuthErr);
    assert!(decisions(&run).is_empty(), "{:#?}", run.syslog);
    for i in 0..5 {
        let run = one_prompt(
            &w,
            &u,
            &format!("wrong-password{}", wrong_code(RFC_SECRET, T0)),
            T0 + i,
        );
        run.assert_code(PamCode::AuthErr);
        assert!(decisions(&run).is_empty(), "{:#?}", run.syslog);
    }
    assert_eq!(state(&w, &u), before, "no state was written");
    // The code was not burned and nobody is locked out.
    one_prompt(&w, &u, &format!("{PASSWORD}{code}"), T0 + 10).assert_ok();
}

#[test]
fn passwords_ending_in_digits_and_separators() {
    let (w, u) = split_world();
    u.set_password("s3cret99");
    for (i, sep) in ["", " ", "+"].iter().enumerate() {
        let at = T0 + 30 * i as u64;
        let run = one_prompt(
            &w,
            &u,
            &format!("s3cret99{sep}{}", code_at(RFC_SECRET, at)),
            at,
        );
        assert!(run.success, "separator {sep:?}: {run:#?}");
    }
    // A recovery code after the password.
    let v = TestUser::new(&w);
    v.set_password(PASSWORD);
    let codes = w.enroll_with_recovery(&v.name, 2);
    one_prompt(&w, &v, &format!("{PASSWORD} {}", codes[0]), T0).assert_ok();
    one_prompt(&w, &v, &format!("{PASSWORD}{}", codes[0]), T0 + 1)
        .assert_denied("recovery code already used");
}

#[test]
fn users_policy_does_not_ask_type_only_their_password() {
    let (w, u) = split_world();
    let fresh = TestUser::new(&w);
    fresh.set_password(PASSWORD);
    // Not enrolled, enforce = "enrolled": the password alone, unchanged
    // (also one ending in six digits).
    w.set_config("enforce = \"enrolled\"\n");
    one_prompt(&w, &fresh, PASSWORD, T0).assert_ok();
    fresh.set_password("pin123456");
    one_prompt(&w, &fresh, "pin123456", T0).assert_ok();
    one_prompt(&w, &fresh, "pin", T0).assert_code(PamCode::AuthErr);
    // Exempt network: an enrolled user types only the password.
    w.set_config("exempt_networks = [\"192.0.2.0/24\"]\n");
    let run = w.pam(SERVICE, &u.name, &[PASSWORD], T0, Some("192.0.2.7"));
    run.assert_ok();
    run.assert_logged("exempt");
    // From elsewhere the password alone is not enough.
    let run = w.pam(SERVICE, &u.name, &[PASSWORD], T0, Some("198.51.100.7"));
    run.assert_denied("empty code");
}

#[test]
fn bad_replies_are_denied_and_nothing_is_counted_before_the_password() {
    let (w, u) = split_world();
    let code = code_at(RFC_SECRET, T0);
    let before = state(&w, &u);
    // Only the code: the password module gets an empty password.
    one_prompt(&w, &u, &code, T0).assert_code(PamCode::AuthErr);
    // 10 000 characters: refused by the first line, unread.
    let long = format!("{}{code}", "x".repeat(10_000));
    let run = one_prompt(&w, &u, &long, T0);
    run.assert_denied("longer than 512 bytes");
    assert!(run.said("type your password followed by your verification code"));
    // Not UTF-8, and a NUL byte (the conversation carries C strings, so
    // the reply ends there and the password module sees a cut password;
    // core's unit tests refuse a NUL the split itself is given).
    let mut raw = b"\xff\xfe\xfd".to_vec();
    raw.extend_from_slice(code.as_bytes());
    raw.push(b'\n');
    w.pam_raw(SERVICE, &u.name, &raw, T0)
        .assert_code(PamCode::AuthErr);
    let mut nul = b"Corr".to_vec();
    nul.push(0);
    nul.extend_from_slice(format!("3ct-Horse{code}\n").as_bytes());
    w.pam_raw(SERVICE, &u.name, &nul, T0)
        .assert_code(PamCode::AuthErr);
    assert_eq!(
        state(&w, &u),
        before,
        "nothing written before the password step"
    );
    // Only the password (right): refused after the password step, counted.
    let run = one_prompt(&w, &u, PASSWORD, T0);
    run.assert_denied("empty code");
    assert!(run.said("That is not a code"), "{run:#?}");
    let text = String::from_utf8(state(&w, &u).unwrap()).unwrap();
    assert!(text.contains(&format!("failures = [{T0}]")), "{text}");
    // And the code nobody could use is still good.
    one_prompt(&w, &u, &format!("{PASSWORD}{code}"), T0).assert_ok();
}

#[test]
fn the_code_line_without_the_split_line_denies() {
    let w = World::new();
    let u = w.enrolled_user();
    w.set_stack(
        "otpgate-half",
        &[
            "auth required pam_permit.so",
            &w.module_line("forwarded_code"),
        ],
    );
    let run = w.pam("otpgate-half", &u.name, &[], T0, None);
    run.assert_denied("no `pam_otpgate.so forward_pass` line ran before this one");
    run.assert_code(PamCode::AuthInfoUnavail);
    // Both flags on one line is a configuration error, before any prompt.
    w.set_stack(
        "otpgate-both",
        &[
            "auth required pam_permit.so",
            &w.module_line("forward_pass forwarded_code"),
        ],
    );
    let run = w.pam("otpgate-both", &u.name, &[], T0, None);
    run.assert_denied("belong on two otpgate lines");
    assert!(!run.said("Password and verification code"));
}

#[test]
fn check_config_warns_about_a_split_stack_that_would_not_protect() {
    let w = World::new();
    let pam_dir = w.dir.join("pam.d");
    std::fs::create_dir_all(&pam_dir).unwrap();
    std::fs::write(
        pam_dir.join("openvpn"),
        std::fs::read_to_string(workspace().join("config/pam.d/openvpn")).unwrap(),
    )
    .unwrap();
    std::fs::write(
        pam_dir.join("common-account"),
        "account required pam_permit.so\n",
    )
    .unwrap();
    let check = |service: &str| {
        w.otpgate(
            &[
                "check-config",
                "--service",
                service,
                "--pam-dir",
                pam_dir.to_str().unwrap(),
            ],
            "",
        )
    };
    let out = check("openvpn");
    assert!(out.status.success(), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("warning"),
        "{out:?}"
    );
    std::fs::write(
        pam_dir.join("weak"),
        "auth requisite pam_otpgate.so forward_pass\nauth required pam_unix.so use_first_pass\n",
    )
    .unwrap();
    let out = check("weak");
    assert_eq!(out.status.code(), Some(2), "warnings: exit status 2");
    let err = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        err.lines()
            .next()
            .is_some_and(|l| l.contains("no `pam_otpgate.so forwarded_code` line")),
        "the warning comes first: {err}"
    );
    std::fs::write(
        pam_dir.join("weak"),
        "auth requisite pam_otpgate.so forward_pass
auth required pam_unix.so use_first_pass
         auth required pam_otpgate.so forwarded_code
",
    )
    .unwrap();
    let err = String::from_utf8_lossy(&check("weak").stdout).into_owned();
    assert!(
        err.contains("weak:2: `pam_unix.so` is `required`; make it `requisite`"),
        "{err}"
    );
}

#[test]
fn prompts_gives_a_second_chance_within_one_login() {
    let w = World::new();
    let u = w.enrolled_user();
    w.set_config("prompts = 3\n");
    let code = code_at(RFC_SECRET, T0);
    let wrong = wrong_code(RFC_SECRET, T0);
    let run = w.login_lines(&u.name, &[&wrong, &code], T0);
    run.assert_ok();
    assert_eq!(run.times_said("Verification code: "), 2, "{run:#?}");
    assert!(run.said("Wrong code."));
    // Each wrong code counts; a lockout ends the tries at once.
    w.set_config("prompts = 5\nmax_failures = 2\n");
    let next = code_at(RFC_SECRET, T0 + 30);
    let run = w.login_lines(&u.name, &[&wrong, &wrong, &next], T0 + 30);
    assert!(!run.success, "{run:#?}");
    assert_eq!(run.times_said("Verification code: "), 2, "{run:#?}");
    assert!(run.said("Too many wrong codes"), "{run:#?}");
    w.login(&u.name, &next, T0 + 31)
        .assert_code(PamCode::MaxTries);
    // Out of range is a configuration error that denies.
    w.set_config("prompts = 6\n");
    w.login(&u.name, &next, T0 + 60)
        .assert_denied("key `prompts`: 6 is out of range; allowed: 1 to 5");
    // Per service, as every key: `prompts=2` on the sudo-like line only.
    w.set_config("");
    w.set_stack(
        "otpgate-sudo",
        &["auth required pam_permit.so", &w.module_line("prompts=2")],
    );
    let later = T0 + 3600;
    let wrong = wrong_code(RFC_SECRET, later);
    let run = w.pam(
        "otpgate-sudo",
        &u.name,
        &[&wrong, &code_at(RFC_SECRET, later)],
        later,
        None,
    );
    run.assert_ok();
    assert_eq!(run.times_said("Verification code: "), 2, "{run:#?}");
    let run = w.login_lines(
        &u.name,
        &[&wrong, &code_at(RFC_SECRET, later + 30)],
        later + 30,
    );
    assert!(
        !run.success,
        "the default service still asks once: {run:#?}"
    );
    assert_eq!(run.times_said("Verification code: "), 1, "{run:#?}");
}
