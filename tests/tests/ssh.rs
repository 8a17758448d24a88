//! Issue 5: real logins with the real OpenSSH server and client (through a
//! pseudo-terminal), and real sudo, with pam_otpgate in their PAM stacks.
//! Codes are computed for the real clock (the window tolerates a step change).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use otpgate_tests::sshd::{Sshd, keypair, module_under_test};
use otpgate_tests::*;

const PASSWORD: &str = "Corr3ct-Horse-Battery";

fn module_line(w: &World) -> String {
    format!(
        "auth required {} config={}",
        module_under_test().display(),
        w.config.display()
    )
}

/// sshd asking for the password (pam_unix) and then the code.
fn password_sshd(w: &World) -> Sshd {
    Sshd::start(
        w,
        "pw",
        &["auth requisite pam_unix.so", &module_line(w)],
        "",
    )
}

fn user_with_password(w: &World, enroll: bool) -> TestUser {
    let u = TestUser::new(w);
    u.set_password(PASSWORD);
    if enroll {
        w.enroll(&u.name, RFC_SECRET);
    }
    u
}

#[test]
fn password_and_right_code_runs_a_command_wrong_code_is_refused() {
    let w = World::new();
    let u = user_with_password(&w, true);
    let sshd = password_sshd(&w);
    let bad = wrong_code(RFC_SECRET, real_now());
    let run = sshd.ssh(
        &u.name,
        None,
        &[("Password:", PASSWORD), ("Verification code:", &bad)],
    );
    assert!(!run.logged_in, "{run:#?}");
    // (The module's syslog lines do not reach sshd's stderr from its PAM
    // child process; the reasons are asserted in the pamtester tests. Here:
    // sshd's own verdict and the state the module wrote.)
    assert!(
        sshd.log().contains("Failed keyboard-interactive/pam"),
        "{}",
        sshd.log()
    );
    let state = std::fs::read_to_string(w.state_file(&u)).unwrap();
    assert!(
        state.contains("failures = ["),
        "the wrong code was counted: {state}"
    );
    let run = sshd.ssh(
        &u.name,
        None,
        &[
            ("Password:", PASSWORD),
            ("Verification code:", &code_at(RFC_SECRET, real_now())),
        ],
    );
    assert!(run.logged_in, "{run:#?}\n{}", sshd.log());
    // A wrong password never reaches the code prompt.
    let run = sshd.ssh(&u.name, None, &[("Password:", "wrong password")]);
    assert!(
        !run.logged_in && !run.text.contains("Verification code"),
        "{run:#?}"
    );
}

#[test]
fn the_same_code_twice_is_refused_the_second_time() {
    let w = World::new();
    let u = user_with_password(&w, true);
    let sshd = password_sshd(&w);
    let code = code_at(RFC_SECRET, real_now());
    assert!(
        sshd.ssh(
            &u.name,
            None,
            &[("Password:", PASSWORD), ("Verification code:", &code)]
        )
        .logged_in
    );
    let run = sshd.ssh(
        &u.name,
        None,
        &[("Password:", PASSWORD), ("Verification code:", &code)],
    );
    assert!(!run.logged_in, "{run:#?}");
    let state = std::fs::read_to_string(w.state_file(&u)).unwrap();
    assert!(
        state.contains("failures = ["),
        "the replay was counted as a failure: {state}"
    );
}

#[test]
fn a_recovery_code_logs_in_once() {
    let w = World::new();
    let u = TestUser::new(&w);
    u.set_password(PASSWORD);
    let codes = w.enroll_with_recovery(&u.name, 10);
    let sshd = password_sshd(&w);
    let run = sshd.ssh(
        &u.name,
        None,
        &[("Password:", PASSWORD), ("Verification code:", &codes[0])],
    );
    assert!(run.logged_in, "{run:#?}\n{}", sshd.log());
    assert!(run.text.contains("9 recovery code(s) left"), "{run:#?}");
    let run = sshd.ssh(
        &u.name,
        None,
        &[("Password:", PASSWORD), ("Verification code:", &codes[0])],
    );
    assert!(!run.logged_in, "{run:#?}");
    assert!(run.text.contains("Permission denied"), "{run:#?}");
}

#[test]
fn publickey_then_code_with_authentication_methods() {
    let w = World::new();
    let u = user_with_password(&w, true);
    // For key + code the sshd PAM stack asks only for the code.
    let sshd = Sshd::start(
        &w,
        "key",
        &[&module_line(&w)],
        &format!(
            "Match User {}\n    AuthenticationMethods publickey,keyboard-interactive\n",
            u.name
        ),
    );
    let (key, public) = keypair(&w.dir, "userkey");
    sshd.authorize(&u.name, &public);
    let run = sshd.ssh(
        &u.name,
        Some(&key),
        &[("Verification code:", &code_at(RFC_SECRET, real_now()))],
    );
    assert!(run.logged_in, "{run:#?}\n{}", sshd.log());
    assert!(
        !run.text.contains("Password:"),
        "no password asked after the key"
    );
    let run = sshd.ssh(
        &u.name,
        Some(&key),
        &[("Verification code:", &wrong_code(RFC_SECRET, real_now()))],
    );
    assert!(!run.logged_in, "{run:#?}");
    // The code alone, without the key, is not enough.
    let run = sshd.ssh(
        &u.name,
        None,
        &[("Verification code:", &code_at(RFC_SECRET, real_now() + 30))],
    );
    assert!(!run.logged_in, "{run:#?}");
    assert!(
        sshd.log().contains("Accepted publickey") || sshd.log().contains("Partial publickey"),
        "{}",
        sshd.log()
    );
}

#[test]
fn unenrolled_user_under_enforce_all_is_refused_with_the_enrollment_message() {
    let w = World::new();
    w.set_config("enforce = \"all\"\n");
    let u = user_with_password(&w, false);
    let sshd = password_sshd(&w);
    let run = sshd.ssh(
        &u.name,
        None,
        &[("Password:", PASSWORD), ("Verification code:", "123456")],
    );
    assert!(!run.logged_in, "{run:#?}");
    assert!(
        run.text.contains("otpgate enroll"),
        "the user must see how to enroll: {run:#?}"
    );
}

/// A sudo rule and PAM service for one test user, removed on drop. sudo's
/// `pam_service` option points only this user's sudo at the test stack, so
/// /etc/pam.d/sudo is never touched.
struct SudoSetup {
    sudoers: std::path::PathBuf,
    pam: std::path::PathBuf,
}

impl SudoSetup {
    fn new(w: &World, u: &TestUser) -> Self {
        let service = format!("otpgate-test-{}", u.name);
        let sudoers = std::path::PathBuf::from(format!("/etc/sudoers.d/otpgate-test-{}", u.name));
        let pam = std::path::PathBuf::from(format!("/etc/pam.d/{service}"));
        std::fs::write(&pam, format!("auth requisite pam_unix.so\n{}\naccount required pam_permit.so\nsession required pam_permit.so\n", module_line(w))).unwrap();
        std::fs::write(
            &sudoers,
            format!(
                "Defaults:{user} pam_service={service}\n{user} ALL=(ALL) ALL\n",
                user = u.name
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sudoers, std::fs::Permissions::from_mode(0o440)).unwrap();
        Self { sudoers, pam }
    }

    fn sudo(&self, u: &TestUser, input: &str) -> std::process::Output {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.arg(format!("--reuid={}", u.uid))
            .arg(format!("--regid={}", u.gid))
            .arg("--init-groups")
            .args(["sudo", "-S", "-k", "id", "-u"]);
        run_pam_app(&mut cmd, input.as_bytes())
    }
}

impl Drop for SudoSetup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.sudoers);
        let _ = std::fs::remove_file(&self.pam);
    }
}

#[test]
fn sudo_with_the_module_asks_for_the_code() {
    let w = World::new();
    let u = user_with_password(&w, true);
    let setup = SudoSetup::new(&w, &u);
    let out = setup.sudo(
        &u,
        &format!("{PASSWORD}\n{}\n", wrong_code(RFC_SECRET, real_now())),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Verification code:"),
        "sudo must ask for the code: {err}"
    );
    assert!(!out.status.success());
    let out = setup.sudo(
        &u,
        &format!("{PASSWORD}\n{}\n", code_at(RFC_SECRET, real_now())),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
}

/// A stack shipped in config/pam.d/ as the whole auth stack of sshd, with
/// the module under test and this config; `lines` auth lines are expected.
fn shipped_sshd_stack(w: &World, file: &str, lines: usize) -> Vec<String> {
    let stack = w.shipped_stack_for(file, &module_under_test());
    assert_eq!(stack.len(), lines, "{file}: {stack:?}");
    stack
}

#[test]
fn key_and_code_with_the_shipped_stack_lets_policy_passes_log_in() {
    let w = World::new();
    let u = user_with_password(&w, true);
    let fresh = user_with_password(&w, false);
    let lines = shipped_sshd_stack(&w, "sshd-key-and-code", 2);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let sshd = Sshd::start(
        &w,
        "keypermit",
        &refs,
        &format!(
            "Match User {},{}\n    AuthenticationMethods publickey,keyboard-interactive\n",
            u.name, fresh.name
        ),
    );
    let (key, public) = keypair(&w.dir, "userkey");
    sshd.authorize(&u.name, &public);
    sshd.authorize(&fresh.name, &public);
    let key_only = |user: &TestUser| {
        let run = sshd.ssh(&user.name, Some(&key), &[]);
        assert!(!run.text.contains("Verification code"), "{run:#?}");
        run
    };

    // Exempt network (sshd's PAM_RHOST is 127.0.0.1): the key alone.
    w.set_config("exempt_networks = [\"127.0.0.0/8\"]\n");
    let run = key_only(&u);
    assert!(run.logged_in, "exempt: {run:#?}\n{}", sshd.log());

    // Remembered address: key + code once, then the key alone.
    w.set_config("remember_minutes = 10\n");
    let run = sshd.ssh(
        &u.name,
        Some(&key),
        &[("Verification code:", &code_at(RFC_SECRET, real_now()))],
    );
    assert!(run.logged_in, "code: {run:#?}\n{}", sshd.log());
    let run = key_only(&u);
    assert!(run.logged_in, "remembered: {run:#?}\n{}", sshd.log());

    // Not enrolled under enforce = "enrolled": the key alone.
    w.set_config("enforce = \"enrolled\"\n");
    let run = key_only(&fresh);
    assert!(run.logged_in, "unenrolled: {run:#?}\n{}", sshd.log());

    // And an enrolled user without a remembered address still needs the code.
    w.set_config("");
    let run = sshd.ssh(
        &u.name,
        Some(&key),
        &[("Verification code:", &wrong_code(RFC_SECRET, real_now()))],
    );
    assert!(!run.logged_in, "{run:#?}");
}

#[test]
fn one_prompt_sshd_takes_password_and_code_together() {
    let w = World::new();
    let u = user_with_password(&w, true);
    let lines = shipped_sshd_stack(&w, "sshd-one-prompt", 3);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let sshd = Sshd::start_password(&w, "oneprompt", &refs);
    // A wrong password: no code is looked at, nothing is written.
    let before = std::fs::read(w.state_file(&u)).ok();
    let run = sshd.ssh_password(
        &u.name,
        &format!("wrong{}", code_at(RFC_SECRET, real_now())),
    );
    assert!(!run.logged_in, "{run:#?}");
    assert_eq!(std::fs::read(w.state_file(&u)).ok(), before);
    // The password with the code after it, as one SSH password.
    let run = sshd.ssh_password(
        &u.name,
        &format!("{PASSWORD}{}", code_at(RFC_SECRET, real_now())),
    );
    assert!(run.logged_in, "{run:#?}\n{}", sshd.log());
    // The password alone is not enough for an enrolled user.
    let run = sshd.ssh_password(&u.name, PASSWORD);
    assert!(!run.logged_in, "{run:#?}");
}

#[test]
fn each_code_typed_in_one_ssh_connection_counts_once() {
    // The ssh client's default: up to 3 keyboard-interactive rounds per
    // connection (NumberOfPasswordPrompts), each a PAM call. A wrong code
    // counts once, and the client asks again; nothing is counted for a
    // round the user does not answer.
    let w = World::new();
    w.set_config("max_failures = 5\n");
    let u = user_with_password(&w, true);
    let sshd = password_sshd(&w);
    let bad = wrong_code(RFC_SECRET, real_now());
    let script = format!(
        r#"set timeout 15
log_user 1
spawn ssh -p {port} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o PreferredAuthentications=keyboard-interactive -o PubkeyAuthentication=no {user}@127.0.0.1 echo LOGGED-IN-OK
foreach round {{1 2}} {{
  expect -re {{Password:}} {{ send "{PASSWORD}\r" }} timeout {{ puts "\nEXPECT-TIMEOUT password $round"; exit 3 }}
  expect -re {{Verification code:}} {{ send "{bad}\r" }} timeout {{ puts "\nEXPECT-TIMEOUT code $round"; exit 3 }}
}}
expect -re {{Password:}} {{ puts "\nASKED-A-THIRD-TIME" }} timeout {{ puts "\nEXPECT-TIMEOUT third"; exit 3 }}
"#,
        port = sshd.port,
        user = u.name
    );
    let out = {
        let _pam = pam_lock();
        run_with_stdin(
            std::process::Command::new("expect").arg("-"),
            script.as_bytes(),
        )
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("ASKED-A-THIRD-TIME"), "{text}");
    let state =
        otpgate_core::store::state::UserState::parse(&std::fs::read(w.state_file(&u)).unwrap())
            .unwrap();
    assert_eq!(
        state.failures.len(),
        2,
        "two codes typed, two failures: {state:?}"
    );
}
