//! Issue 2: password-then-code login through the real libpam loading the real
//! pam_otpgate.so (under pam_wrapper), driven by pamtester, time frozen by
//! libfaketime. Every denial is checked for its syslog reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use otpgate_tests::*;
use std::os::unix::fs::{PermissionsExt, symlink};

#[test]
fn right_code_logs_in_and_wrong_code_is_denied() {
    let w = World::new();
    let u = w.enrolled_user();
    let run = w.login(&u.name, &wrong_code(RFC_SECRET, T0), T0);
    run.assert_denied("reason=\"wrong code\"");
    run.assert_code(PamCode::AuthErr);
    assert!(run.prompted());
    let run = w.login(&u.name, &code_at(RFC_SECRET, T0), T0);
    run.assert_ok();
    run.assert_code(PamCode::Success);
    run.assert_logged("result=accepted");
}

#[test]
fn neighbouring_steps_are_accepted_but_three_steps_ago_is_not() {
    let w = World::new();
    let u = w.enrolled_user();
    w.login(&u.name, &code_at(RFC_SECRET, T0 - 90), T0)
        .assert_denied("reason=\"wrong code\"");
    w.login(&u.name, &code_at(RFC_SECRET, T0 + 90), T0)
        .assert_denied("reason=\"wrong code\"");
    w.login(&u.name, &code_at(RFC_SECRET, T0 - 30), T0)
        .assert_ok();
    w.login(&u.name, &code_at(RFC_SECRET, T0 + 30), T0)
        .assert_ok();
}

#[test]
fn the_same_code_twice_is_refused() {
    let w = World::new();
    let u = w.enrolled_user();
    let code = code_at(RFC_SECRET, T0);
    w.login(&u.name, &code, T0).assert_ok();
    let run = w.login(&u.name, &code, T0);
    run.assert_denied("code already used (replay refused)");
    run.assert_code(PamCode::AuthErr);
    // Also later in the window, and the previous step's code after a newer one.
    w.login(&u.name, &code, T0 + 30)
        .assert_denied("replay refused");
    w.login(&u.name, &code_at(RFC_SECRET, T0 + 30), T0 + 30)
        .assert_ok();
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0 + 30)
        .assert_denied("replay refused");
}

#[test]
fn real_password_step_then_code() {
    let w = World::new();
    let u = w.enrolled_user();
    w.set_password_stack("otpgate-pw", &u.name, "correct horse");
    let code = code_at(RFC_SECRET, T0);
    let run = w.pam("otpgate-pw", &u.name, &["wrong password", &code], T0, None);
    assert!(!run.success);
    assert!(
        !run.prompted(),
        "a wrong password must stop before the code prompt: {run:#?}"
    );
    w.pam(
        "otpgate-pw",
        &u.name,
        &["correct horse", &wrong_code(RFC_SECRET, T0)],
        T0,
        None,
    )
    .assert_denied("wrong code");
    w.pam("otpgate-pw", &u.name, &["correct horse", &code], T0, None)
        .assert_ok();
}

#[test]
fn missing_file_is_prompted_then_denied() {
    let w = World::new();
    let u = TestUser::new(&w);
    let run = w.login(&u.name, "123456", T0);
    assert!(
        run.prompted(),
        "unenrolled users are prompted like everyone: {run:#?}"
    );
    run.assert_denied("not enrolled");
    run.assert_code(PamCode::AuthErr);
    run.assert_logged("otpgate enroll");
}

#[test]
fn unknown_user_is_prompted_then_denied() {
    let w = World::new();
    let run = w.login("no-such-user-otpgate", "123456", T0);
    assert!(
        run.prompted(),
        "the prompt must not reveal that the account is missing"
    );
    run.assert_denied("unknown user");
    run.assert_code(PamCode::UserUnknown);
}

#[test]
fn nullok_lets_unenrolled_users_through_but_not_enrolled_ones() {
    let w = World::new();
    let u = TestUser::new(&w);
    let e = w.enrolled_user();
    w.set_config("nullok = true\n");
    let run = w.login(&u.name, "", T0);
    run.assert_ok();
    assert!(!run.prompted());
    run.assert_logged("result=ignored");
    run.assert_logged("nullok");
    w.login(&e.name, &wrong_code(RFC_SECRET, T0), T0)
        .assert_denied("wrong code");

    // The module argument does the same without touching the config.
    w.set_config("");
    w.login(&u.name, "", T0).assert_denied("not enrolled");
    w.set_stack(
        "otpgate-test",
        &["auth required pam_permit.so", &w.module_line("nullok")],
    );
    w.login(&u.name, "", T0).assert_ok();
}

#[test]
fn malformed_files_are_denied_and_left_alone() {
    let w = World::new();
    let u = w.enrolled_user();
    let file = u.secret_file();
    for (content, reason) in [
        (
            "version = 1\nsecret = [\n",
            "not a valid otpgate secret file",
        ),
        ("", "the file is empty"),
        ("version = 7\n", "format version 7 is not supported"),
        ("version = \"one\"\n", "`version` must be an integer"),
    ] {
        std::fs::write(&file, content).unwrap();
        let run = w.login(&u.name, &code_at(RFC_SECRET, T0), T0);
        run.assert_denied(reason);
        run.assert_code(PamCode::AuthInfoUnavail);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            content,
            "the module must never rewrite the file"
        );
    }
    std::fs::write(&file, b"\xff\xfe\x00garbage").unwrap();
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_denied("not valid UTF-8");
}

#[test]
fn oversized_file_is_denied() {
    let w = World::new();
    let u = w.enrolled_user();
    let file = u.secret_file();
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(&format!("# {}\n", "x".repeat(70 * 1024)));
    std::fs::write(&file, text).unwrap();
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_denied("larger than the 65536-byte limit");
}

#[test]
fn symlinked_file_is_denied() {
    let w = World::new();
    let u = w.enrolled_user();
    let file = u.secret_file();
    let real = file.with_file_name("real.toml");
    std::fs::rename(&file, &real).unwrap();
    symlink(&real, &file).unwrap();
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_denied("is a symbolic link");
    assert!(real.exists(), "nothing may be lost");
}

#[test]
fn symlinked_directory_is_denied() {
    let w = World::new();
    let u = w.enrolled_user();
    let dir = u.home.join(".config/otpgate");
    let real = u.home.join(".config/otpgate-real");
    std::fs::rename(&dir, &real).unwrap();
    symlink(&real, &dir).unwrap();
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_denied("is a symbolic link");
}

#[test]
fn group_readable_file_is_denied() {
    let w = World::new();
    let u = w.enrolled_user();
    std::fs::set_permissions(u.secret_file(), std::fs::Permissions::from_mode(0o640)).unwrap();
    let run = w.login(&u.name, &code_at(RFC_SECRET, T0), T0);
    run.assert_denied("has mode 0640");
    run.assert_logged("chmod 600");
}

#[test]
fn file_owned_by_another_user_is_denied() {
    let w = World::new();
    let u = w.enrolled_user();
    let other = TestUser::new(&w);
    // Readable by the user (0644 would be refused for its mode first), owned by someone else.
    std::os::unix::fs::chown(u.secret_file(), Some(other.uid), Some(other.gid)).unwrap();
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_denied(&format!("owned by uid {}", other.uid));
}

#[test]
fn writable_parent_directory_is_denied() {
    let w = World::new();
    let u = w.enrolled_user();
    let dir = u.home.join(".config/otpgate");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_denied("so group or others can write to it");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0).assert_ok();
}

#[test]
fn the_users_file_is_read_with_the_users_ids() {
    let w = World::new();
    let u = w.enrolled_user();
    // Root could read a root-owned file here; the user cannot, because the
    // directory is theirs (0700) and the file is root's 0600. Only a module
    // that switched to the user's ids is refused.
    std::os::unix::fs::chown(u.secret_file(), Some(0), Some(0)).unwrap();
    std::fs::set_permissions(
        u.home.join(".config/otpgate"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    std::os::unix::fs::chown(u.home.join(".config/otpgate"), Some(u.uid), Some(u.gid)).unwrap();
    std::fs::set_permissions(u.secret_file(), std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = w.login(&u.name, &code_at(RFC_SECRET, T0), T0);
    run.assert_denied("permission denied");
}

#[test]
fn central_root_owned_store_works_by_changing_the_template() {
    let w = World::new();
    let u = TestUser::new(&w);
    let store = w.dir.join("store");
    w.set_config(&format!("secret_path = \"{}/%u.toml\"\n", store.display()));
    w.enroll(&u.name, RFC_SECRET);
    let file = store.join(format!("{}.toml", u.name));
    let meta = std::fs::metadata(&file).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.uid(), meta.mode() & 0o777),
        (0, 0o600),
        "central files are root's, 0600"
    );
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0).assert_ok();
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_denied("replay refused");
}

#[test]
fn broken_config_denies_everyone() {
    let w = World::new();
    let u = w.enrolled_user();
    let code = code_at(RFC_SECRET, T0);
    for (config, reason) in [
        ("nulok = true\n", "unknown field `nulok`"),
        ("window = 99\n", "key `window`: 99 is out of range"),
        ("digits = \"six\"\n", "configuration error"),
        ("window = \n", "configuration error"),
    ] {
        w.set_config(config);
        let run = w.login(&u.name, &code, T0);
        run.assert_denied(reason);
        run.assert_code(PamCode::AuthInfoUnavail);
    }
    // Read as written: bytes that are not text, and a byte-order mark after
    // the comment lines that start the file (toml allows one only first;
    // leaving the comments out must not make it first).
    for (bytes, reason) in [
        (
            &b"# policy\n\xff\xfe window = 1\n"[..],
            "is not valid UTF-8 text",
        ),
        ("# policy\n\u{feff}window = 1\n".as_bytes(), "line 2"),
    ] {
        std::fs::write(&w.config, bytes).unwrap();
        let run = w.login(&u.name, &code, T0);
        run.assert_denied(reason);
        run.assert_code(PamCode::AuthInfoUnavail);
    }
    // Group-writable config: anyone in the group could switch on nullok.
    w.set_config("");
    std::fs::set_permissions(&w.config, std::fs::Permissions::from_mode(0o664)).unwrap();
    w.login(&u.name, &code, T0)
        .assert_denied("so group or others can change it");
    // An explicit config= that does not exist is an error, not the defaults.
    std::fs::remove_file(&w.config).unwrap();
    w.login(&u.name, &code, T0).assert_denied("does not exist");
    // Unknown module argument.
    w.set_config("");
    w.set_stack(
        "otpgate-test",
        &["auth required pam_permit.so", &w.module_line("nulok")],
    );
    w.login(&u.name, &code, T0)
        .assert_denied("unknown argument `nulok`");
    // And the good config still works afterwards.
    w.set_stack(
        "otpgate-test",
        &["auth required pam_permit.so", &w.module_line("")],
    );
    w.login(&u.name, &code, T0).assert_ok();
}

#[test]
fn null_empty_and_failing_conversations_deny() {
    let w = World::new();
    let u = w.enrolled_user();
    let run = w.pamconv(&u.name, "null-resp", None, T0);
    run.assert_denied("no reply (NULL response)");
    assert!(
        run.stdout.contains("rc=7"),
        "PAM_AUTH_ERR expected: {run:#?}"
    );
    w.pamconv(&u.name, "null-array", None, T0)
        .assert_denied("result=denied");
    let run = w.pamconv(&u.name, "fail", None, T0);
    run.assert_denied("conversation failed");
    assert!(
        run.stdout.contains("rc=19"),
        "PAM_CONV_ERR expected: {run:#?}"
    );
    w.pamconv(&u.name, "reply", Some(""), T0)
        .assert_denied("empty code");
    w.pamconv(&u.name, "reply", Some("   "), T0)
        .assert_denied("empty code");
    // The right code through the same helper works, so the denials above mean something.
    w.pamconv(&u.name, "reply", Some(&code_at(RFC_SECRET, T0)), T0)
        .assert_ok();
}

#[test]
fn garbage_replies_are_denied_without_being_logged() {
    let w = World::new();
    let u = w.enrolled_user();
    let long = "7".repeat(10_000);
    for reply in ["12345", "123456789", "hunter2!", long.as_str()] {
        let run = w.pamconv(&u.name, "reply", Some(reply), T0);
        run.assert_denied("result=denied");
        assert!(
            !run.stderr.contains(reply),
            "the reply must never be logged"
        );
    }
}

#[test]
fn state_that_cannot_be_trusted_or_written_denies_a_right_code() {
    let w = World::new();
    let u = w.enrolled_user();
    let code = code_at(RFC_SECRET, T0);
    std::fs::create_dir_all(&w.state).unwrap();
    std::fs::set_permissions(&w.state, std::fs::Permissions::from_mode(0o777)).unwrap();
    w.login(&u.name, &code, T0)
        .assert_denied("so group or others can write to it");
    std::fs::set_permissions(&w.state, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A state path that runs through a regular file cannot be created.
    let blocker = w.dir.join("blocker");
    std::fs::write(&blocker, "").unwrap();
    w.set_config(&format!("state_dir = \"{}/state\"\n", blocker.display()));
    w.login(&u.name, &code, T0)
        .assert_denied("is not a directory");
    // A corrupt state file denies (and says how to reset) instead of starting over.
    w.set_config("");
    std::fs::write(w.state_file(&u), "version = 2\nlast_step = \"x\"\n").unwrap();
    std::fs::set_permissions(w.state_file(&u), std::fs::Permissions::from_mode(0o600)).unwrap();
    w.login(&u.name, &code, T0).assert_denied("is corrupt");
    std::fs::remove_file(w.state_file(&u)).unwrap();
    w.login(&u.name, &code, T0).assert_ok();
}

#[test]
fn parallel_logins_with_one_code_succeed_exactly_once() {
    let w = World::new();
    let u = w.enrolled_user();
    let code = code_at(RFC_SECRET, T0);
    assert_eq!(w.thread_race(&u.name, &code, 16, T0), (1, 15));
    let state = std::fs::read_to_string(w.state_file(&u)).unwrap();
    assert!(
        state.contains(&format!("last_step = {}", T0 / 30)),
        "{state}"
    );
}

#[test]
fn re_enrollment_starts_with_clean_state() {
    let w = World::new();
    let u = w.enrolled_user();
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0).assert_ok();
    let other = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let out = w.otpgate(
        &[
            "enroll",
            "--user",
            &u.name,
            "--secret",
            "-",
            "--no-confirm",
            "--force",
        ],
        other,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.login(&u.name, &code_at(RFC_SECRET, T0 + 30), T0 + 30)
        .assert_denied("wrong code");
    w.login(&u.name, &code_at(other, T0), T0).assert_ok();
}

#[test]
fn log_lines_name_service_user_and_host_but_never_the_code() {
    let w = World::new();
    let u = w.enrolled_user();
    let code = code_at(RFC_SECRET, T0);
    let run = w.pam("otpgate-test", &u.name, &[&code], T0, Some("198.51.100.9"));
    run.assert_ok();
    run.assert_logged(&format!(
        "service=\"otpgate-test\" user=\"{}\" rhost=\"198.51.100.9\" result=accepted",
        u.name
    ));
    assert!(!run.stderr.contains(&code));
    assert!(!run.stderr.contains(RFC_SECRET));
}

#[test]
fn debug_explains_each_step() {
    let w = World::new();
    let u = w.enrolled_user();
    w.set_stack(
        "otpgate-test",
        &["auth required pam_permit.so", &w.module_line("debug")],
    );
    let run = w.login(&u.name, &code_at(RFC_SECRET, T0), T0);
    run.assert_ok();
    run.assert_logged("as the user");
    run.assert_logged("matched step");
}

#[test]
fn setcred_succeeds() {
    let w = World::new();
    let u = w.enrolled_user();
    let run = w.pam_op("otpgate-test", &u.name, "setcred", T0);
    assert!(run.success, "{run:#?}");
}

#[test]
fn missing_home_directory_denies_even_with_nullok() {
    let w = World::new();
    let u = w.enrolled_user();
    w.set_config("nullok = true\n");
    std::fs::rename(&u.home, w.dir.join("moved-home")).unwrap();
    let run = w.login(&u.name, &code_at(RFC_SECRET, T0), T0);
    run.assert_denied("does not exist or is not mounted");
    std::fs::rename(w.dir.join("moved-home"), &u.home).unwrap();
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0).assert_ok();
}
