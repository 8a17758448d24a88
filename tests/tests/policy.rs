//! Issue 4: server-wide policy through the real module under pam_wrapper +
//! pamtester, with PAM_RHOST set and time frozen: who must use a second
//! factor, grace periods, exemptions, remembered addresses, lockout,
//! several devices and HOTP tokens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use otpgate_tests::*;

const DAY: u64 = 86_400;

#[test]
fn enforce_enrolled_lets_unenrolled_users_pass_and_asks_enrolled_ones() {
    let w = World::new();
    let plain = TestUser::new(&w);
    let e = w.enrolled_user();
    w.set_config("enforce = \"enrolled\"\n");
    let run = w.login(&plain.name, "", T0);
    run.assert_ok();
    assert!(!run.prompted());
    run.assert_logged("result=ignored reason=\"not enrolled");
    run.assert_logged("enforce = \\\"enrolled\\\"");
    w.login(&e.name, &wrong_code(RFC_SECRET, T0), T0)
        .assert_denied("wrong code");
    w.login(&e.name, &code_at(RFC_SECRET, T0), T0).assert_ok();
}

#[test]
fn enforce_all_denies_unenrolled_users_with_the_enrollment_message() {
    let w = World::new();
    let plain = TestUser::new(&w);
    w.set_config("enforce = \"all\"\n");
    let run = w.login(&plain.name, "123456", T0);
    run.assert_denied("2FA is required (enforce = \\\"all\\\")");
    assert!(run.said("run `otpgate enroll`"), "{run:#?}");
}

#[test]
fn enforce_groups_require_2fa_of_their_members_only() {
    let w = World::new();
    let admin = TestUser::new(&w);
    let other = TestUser::new(&w);
    let g = TestGroup::new(&[&admin]);
    w.set_config(&format!(
        "enforce = \"enrolled\"\nenforce_groups = [\"{}\"]\n",
        g.name
    ));
    w.login(&admin.name, "123456", T0)
        .assert_denied(&format!("member of enforced group \\\"{}\\\"", g.name));
    w.login(&other.name, "", T0).assert_ok();
    // A group that does not exist is a configuration error: everyone denied.
    w.set_config("enforce = \"enrolled\"\nenforce_groups = [\"no-such-group-og\"]\n");
    w.login(&other.name, "", T0)
        .assert_denied("group \\\"no-such-group-og\\\" does not exist");
}

#[test]
fn grace_period_counts_from_the_first_attempt() {
    let w = World::new();
    let u = TestUser::new(&w);
    w.set_config("enforce = \"all\"\ngrace_period_days = 7\n");
    let run = w.login(&u.name, "", T0);
    run.assert_ok();
    let deadline = otpgate_core::sys::clock::format_utc(T0 + 7 * DAY);
    assert!(
        run.stdout.contains(&format!(
            "2FA required from {deadline}: run `otpgate enroll`"
        )),
        "{run:#?}"
    );
    run.assert_logged("grace period until");
    // Later attempts do not move the start.
    w.login(&u.name, "", T0 + 6 * DAY).assert_ok();
    w.login(&u.name, "123456", T0 + 7 * DAY + 1)
        .assert_denied("not enrolled");
    // Enrolling ends the matter: codes are asked from then on.
    w.enroll(&u.name, RFC_SECRET);
    w.login(&u.name, &code_at(RFC_SECRET, T0 + 8 * DAY), T0 + 8 * DAY)
        .assert_ok();
}

#[test]
fn exempt_groups_skip_the_code_and_are_logged() {
    let w = World::new();
    let svc = w.enrolled_user();
    let g = TestGroup::new(&[&svc]);
    w.set_config(&format!("exempt_groups = [\"{}\"]\n", g.name));
    let run = w.login(&svc.name, "", T0);
    run.assert_ok();
    assert!(!run.prompted());
    run.assert_logged(&format!(
        "exempt: member of exempt group \\\"{}\\\"",
        g.name
    ));
}

#[test]
fn exempt_networks_match_ipv4_and_ipv6_addresses_but_never_names() {
    let w = World::new();
    let u = w.enrolled_user();
    w.set_config("exempt_networks = [\"192.0.2.0/24\", \"2001:db8::/32\"]\n");
    for host in ["192.0.2.5", "2001:db8:5::1", "::ffff:192.0.2.9"] {
        let run = w.pam("otpgate-test", &u.name, &[""], T0, Some(host));
        run.assert_ok();
        run.assert_logged("exempt: remote address in exempt network");
    }
    for host in [
        "198.51.100.1",
        "2001:db9::1",
        "192.0.2.5.evil.example",
        "localhost",
    ] {
        let run = w.pam("otpgate-test", &u.name, &["000000"], T0, Some(host));
        assert!(run.prompted(), "{host} must be asked");
        assert!(!run.success, "{host}");
    }
    w.pam("otpgate-test", &u.name, &[""], T0, None)
        .assert_denied("empty code");
}

#[test]
fn remembered_address_is_not_asked_again_within_the_window() {
    let w = World::new();
    let u = w.enrolled_user();
    w.set_config("remember_minutes = 10\n");
    let home = Some("198.51.100.7");
    w.pam(
        "otpgate-test",
        &u.name,
        &[&code_at(RFC_SECRET, T0)],
        T0,
        home,
    )
    .assert_ok();
    let run = w.pam("otpgate-test", &u.name, &[""], T0 + 300, home);
    run.assert_ok();
    assert!(!run.prompted());
    run.assert_logged("remembered");
    assert!(
        !w.pam(
            "otpgate-test",
            &u.name,
            &[""],
            T0 + 300,
            Some("198.51.100.8")
        )
        .success
    );
    assert!(
        !w.pam("otpgate-test", &u.name, &[""], T0 + 300, None)
            .success,
        "no address, nothing remembered"
    );
    assert!(
        !w.pam("otpgate-test", &u.name, &[""], T0 + 601, home)
            .success,
        "expired after 10 minutes"
    );
}

#[test]
fn module_arguments_override_the_config_per_service() {
    let w = World::new();
    let plain = TestUser::new(&w);
    let u = w.enrolled_user();
    w.set_config("enforce = \"enrolled\"\n");
    w.set_stack(
        "sudo-test",
        &[
            "auth required pam_permit.so",
            &w.module_line("enforce=all window=0"),
        ],
    );
    w.login(&plain.name, "", T0).assert_ok();
    w.pam("sudo-test", &plain.name, &["123456"], T0, None)
        .assert_denied("not enrolled");
    // window=0: the previous step's code is refused for sudo, accepted for the default service.
    let previous = code_at(RFC_SECRET, T0 - 30);
    w.pam("sudo-test", &u.name, &[&previous], T0, None)
        .assert_denied("wrong code");
    w.login(&u.name, &previous, T0).assert_ok();
    // check-config shows what the service gets.
    let out = w.otpgate(
        &[
            "check-config",
            "--service",
            "sudo-test",
            "--pam-dir",
            w.svc.to_str().unwrap(),
        ],
        "",
    );
    let text = cli_ok(&out);
    assert!(
        text.contains("enforce = \"all\"") && text.contains("window = 0"),
        "{text}"
    );
}

#[test]
fn wrong_codes_lock_the_second_factor_until_the_lockout_ends() {
    let w = World::new();
    let u = w.enrolled_user();
    w.set_config("max_failures = 3\nfailure_window = 300\nlockout_seconds = 600\n");
    let bad = wrong_code(RFC_SECRET, T0);
    w.login(&u.name, &bad, T0).assert_denied("wrong code");
    w.login(&u.name, "garbage!", T0 + 1)
        .assert_denied("neither");
    let run = w.login(&u.name, &bad, T0 + 2);
    run.assert_denied("wrong code");
    run.assert_logged("lockout: 3 wrong codes within 300 s");
    let until = otpgate_core::sys::clock::format_utc(T0 + 602);
    assert!(run.said(&format!("locked until {until}")), "{run:#?}");
    // Even the right code is refused while locked, without a prompt.
    let run = w.login(&u.name, &code_at(RFC_SECRET, T0 + 30), T0 + 30);
    run.assert_denied("locked out until");
    run.assert_code(PamCode::MaxTries);
    assert!(!run.prompted());
    // After the lockout the right code works and clears the counter.
    w.login(&u.name, &code_at(RFC_SECRET, T0 + 603), T0 + 603)
        .assert_ok();
    w.login(&u.name, &bad, T0 + 604).assert_denied("wrong code");
    w.login(&u.name, &code_at(RFC_SECRET, T0 + 640), T0 + 640)
        .assert_ok();
}

#[test]
fn admin_unlock_ends_a_lockout_and_keeps_the_enrollment() {
    let w = World::new();
    let u = w.enrolled_user();
    w.set_config("max_failures = 2\n");
    let bad = wrong_code(RFC_SECRET, T0);
    w.login(&u.name, &bad, T0);
    w.login(&u.name, &bad, T0);
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_denied("locked out");
    // The CLI runs at the same (frozen) time as the logins.
    let text = cli_ok(&w.otpgate_at(T0 + 1, &["reset", "--user", &u.name, "--unlock"], ""));
    let until = otpgate_core::sys::clock::format_utc(T0 + 900);
    assert_eq!(
        text.trim(),
        format!("Unlocked {} (was locked until {until}).", u.name)
    );
    assert!(u.secret_file().exists());
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0 + 1)
        .assert_ok();
    // Unlocking an unlocked user says so.
    let text = cli_ok(&w.otpgate_at(T0 + 2, &["reset", "--user", &u.name, "--unlock"], ""));
    assert!(text.contains("was not locked"), "{text}");
}

#[test]
fn lockout_cannot_be_triggered_without_the_password() {
    let w = World::new();
    let u = w.enrolled_user();
    w.set_config("max_failures = 2\n");
    w.set_password_stack("otpgate-pw", &u.name, "right password");
    let bad = wrong_code(RFC_SECRET, T0);
    for _ in 0..5 {
        assert!(
            !w.pam("otpgate-pw", &u.name, &["wrong password", &bad], T0, None)
                .success
        );
    }
    let state = std::fs::read_to_string(w.state_file(&u)).unwrap_or_default();
    assert!(
        !state.contains("failures") && !state.contains("locked_until"),
        "{state}"
    );
    w.pam(
        "otpgate-pw",
        &u.name,
        &["right password", &code_at(RFC_SECRET, T0)],
        T0,
        None,
    )
    .assert_ok();
}

#[test]
fn concurrent_wrong_codes_are_each_counted_once() {
    let w = World::new();
    let u = w.enrolled_user();
    w.set_config("max_failures = 1000\nfailure_window = 3600\n");
    assert_eq!(
        w.thread_race(&u.name, &wrong_code(RFC_SECRET, T0), 20, T0),
        (0, 20)
    );
    let state = std::fs::read_to_string(w.state_file(&u)).unwrap();
    let line = state.lines().find(|l| l.starts_with("failures")).unwrap();
    assert_eq!(line.matches(&T0.to_string()).count(), 20, "{state}");
}

#[test]
fn a_second_device_works_is_named_and_can_be_removed() {
    let w = World::new();
    let u = w.enrolled_user();
    let backup = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let out = w.add_device(&u.name, "backup-phone", backup, &[]);
    cli_ok(&out);
    let run = w.login(&u.name, &code_at(backup, T0), T0);
    run.assert_ok();
    run.assert_logged("device=\"backup-phone\"");
    let status = cli_ok(&w.otpgate(&["status", "--user", &u.name], ""));
    assert!(
        status.contains("Device:          backup-phone (TOTP") && status.contains("(backup-phone)"),
        "{status}"
    );
    let list = cli_ok(&w.otpgate(&["device", "list", "--user", &u.name], ""));
    assert!(
        list.contains("default") && list.contains("backup-phone"),
        "{list}"
    );
    assert_cli_error(
        &w.add_device(&u.name, "backup-phone", backup, &[]),
        "already exists",
    );
    cli_ok(&w.otpgate(&["device", "remove", "backup-phone", "--user", &u.name], ""));
    w.login(&u.name, &code_at(backup, T0 + 30), T0 + 30)
        .assert_denied("wrong code");
    w.login(&u.name, &code_at(RFC_SECRET, T0 + 30), T0 + 30)
        .assert_ok();
}

#[test]
fn removing_the_lost_primary_phone_promotes_the_backup() {
    let w = World::new();
    let u = w.enrolled_user();
    let backup = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    cli_ok(&w.add_device(&u.name, "backup", backup, &[]));
    cli_ok(&w.otpgate(&["device", "remove", "default", "--user", &u.name], ""));
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_denied("wrong code");
    w.login(&u.name, &code_at(backup, T0), T0).assert_ok();
    assert_cli_error(
        &w.otpgate(&["device", "remove", "backup", "--user", &u.name], ""),
        "only time-based device",
    );
}

#[test]
fn a_user_adding_a_device_must_prove_an_existing_one() {
    let w = World::new();
    let u = w.enrolled_user();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let out = w.otpgate_as(
        &u,
        &["device", "add", "tablet", "--qr", "none"],
        &format!("{}\n", wrong_code(RFC_SECRET, now)),
    );
    assert_cli_error(&out, "not valid");
    let list = cli_ok(&w.otpgate(&["device", "list", "--user", &u.name], ""));
    assert!(!list.contains("tablet"));
}

const TOKEN: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

#[test]
fn hotp_token_with_look_ahead_replay_refusal_and_resync() {
    let w = World::new();
    let u = w.enrolled_user();
    let out = w.add_device(&u.name, "yubikey", TOKEN, &["--hotp", "--counter", "0"]);
    cli_ok(&out);
    let run = w.login(&u.name, &hotp_at(TOKEN, 0), T0);
    run.assert_ok();
    run.assert_logged("device=\"yubikey\"");
    w.login(&u.name, &hotp_at(TOKEN, 0), T0)
        .assert_denied("replay refused");
    // Presses not used to log in: within the look-ahead (10) is fine.
    w.login(&u.name, &hotp_at(TOKEN, 6), T0).assert_ok();
    w.login(&u.name, &hotp_at(TOKEN, 3), T0)
        .assert_denied("replay refused");
    // Far ahead (counter 50, next expected 7): two consecutive codes resynchronise.
    w.login(&u.name, &hotp_at(TOKEN, 50), T0)
        .assert_denied("resynchronisation pending");
    w.login(&u.name, &hotp_at(TOKEN, 51), T0).assert_ok();
    w.login(&u.name, &hotp_at(TOKEN, 52), T0).assert_ok();
    w.login(&u.name, &hotp_at(TOKEN, 51), T0)
        .assert_denied("replay refused");
}

#[test]
fn hotp_token_added_with_a_confirmation_code_sets_the_counter() {
    let w = World::new();
    let u = w.enrolled_user();
    let out = w.otpgate(
        &[
            "device", "add", "token", "--user", &u.name, "--hotp", "--secret", TOKEN,
        ],
        &format!("{}\n", hotp_at(TOKEN, 2)),
    );
    cli_ok(&out);
    // The confirmation code is spent: the counter continues after it.
    w.login(&u.name, &hotp_at(TOKEN, 2), T0)
        .assert_denied("result=denied");
    w.login(&u.name, &hotp_at(TOKEN, 3), T0).assert_ok();
    assert_cli_error(
        &w.otpgate(
            &["device", "add", "token2", "--user", &u.name, "--hotp"],
            "",
        ),
        "comes with its secret",
    );
}

#[test]
fn rfc4226_vectors_through_the_real_module() {
    let w = World::new();
    let u = TestUser::new(&w);
    // The app gets another secret: one secret makes one device.
    w.enroll(&u.name, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP");
    // RFC 4226 Appendix D key; one login per counter 0..9.
    cli_ok(&w.add_device(&u.name, "rfc", RFC_SECRET, &["--hotp"]));
    let expected = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
        "520489",
    ];
    for (i, code) in expected.iter().enumerate() {
        assert_eq!(hotp_at(RFC_SECRET, i as u64), *code);
        w.login(&u.name, code, T0 + 30 * (i as u64 + 1)).assert_ok();
    }
}
