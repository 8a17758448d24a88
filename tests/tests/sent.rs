//! Codes by e-mail (a real postfix delivering to /var/mail) and by SMS (a
//! gateway script the test provides), end to end through the real module:
//! an empty answer sends a code, the next answer is checked.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use otpgate_tests::mail::{
    END, codes_in, codes_mailed, expect_file, fetch_from, login_with_sent_code,
    login_with_sent_code_clock, mailbox, maildrop_len, mta, mta_stopped,
};
use otpgate_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::RwLockReadGuard;

/// A world whose users may use e-mail and SMS codes, `extra` config added.
fn world(extra: &str) -> World {
    let w = World::new();
    w.set_config(&format!(
        "methods = [\"totp\", \"recovery\", \"email\", \"sms\"]\n{extra}"
    ));
    w
}

/// A user with an app and an e-mail device for their local mailbox, and
/// postfix running for as long as the guard lives.
fn user_with_email(w: &World) -> (TestUser, RwLockReadGuard<'static, ()>) {
    let mta = mta();
    let u = w.enrolled_user();
    let _ = std::fs::remove_file(mailbox(&u.name));
    add(w, &u, &["--email", &format!("{}@localhost", u.name)]);
    (u, mta)
}

fn add(w: &World, u: &TestUser, how: &[&str]) {
    let mut args = vec!["device", "add", "sent", "--user", &u.name, "--no-confirm"];
    args.extend_from_slice(how);
    let out = w.otpgate(&args, "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_emailed_code_logs_in_once_and_only_for_the_login_that_asked() {
    let w = world("");
    let (u, _mta) = user_with_email(&w);
    let run = login_with_sent_code(&w, &u.name, &fetch_from(&mailbox(&u.name), 0), T0);
    run.assert_ok();
    assert!(run.said("Code sent by e-mail to o…@localhost"), "{run:#?}");
    run.assert_logged("code sent by e-mail");
    let mailed = std::fs::read_to_string(mailbox(&u.name)).unwrap();
    let code = codes_in(&mailed).pop().unwrap();
    assert!(
        !run.syslog.iter().any(|l| l.contains(&code)),
        "the code is never logged"
    );
    // The same code again, typed straight in another login: refused.
    w.login(&u.name, &code, T0 + 1).assert_denied("wrong code");
    // A new login that asks for a code but types the old one: refused, and
    // the new code was still sent.
    let old = format!("echo {code}");
    login_with_sent_code(&w, &u.name, &old, T0 + 2).assert_denied("wrong code");
    assert_eq!(codes_mailed(&u.name), 2);
    // A code sent for one login (which then failed) does not work in the
    // next one: it is bound to the PAM call that asked for it.
    login_with_sent_code(&w, &u.name, "echo 000000", T0 + 3).assert_denied("wrong code");
    let unused = codes_in(&std::fs::read_to_string(mailbox(&u.name)).unwrap())
        .pop()
        .unwrap();
    w.login(&u.name, &unused, T0 + 4)
        .assert_denied("wrong code");
    // The app works as before.
    w.login(&u.name, &code_at(RFC_SECRET, T0 + 60), T0 + 60)
        .assert_ok();
}

#[test]
fn a_sent_code_typed_after_300_s_has_expired() {
    let w = world("");
    let (u, _mta) = user_with_email(&w);
    // The module's clock runs 100 times fast; the code is typed 4 s (real)
    // after it arrived, 400 s on that clock.
    let late = format!("( {} ); sleep 4", fetch_from(&mailbox(&u.name), 0));
    let run = login_with_sent_code_clock(&w, &u.name, &late, T0, Some("@2027-01-15 08:00:00 x100"));
    run.assert_denied("typed after it expired");
    assert!(run.said(otpgate_core::auth::SENT_EXPIRED), "{run:#?}");
    // In time, the same flow logs in.
    login_with_sent_code_clock(
        &w,
        &u.name,
        &fetch_from(&mailbox(&u.name), 1),
        T0,
        Some("@2027-01-15 09:00:00 x100"),
    )
    .assert_ok();
}

#[test]
fn without_email_in_methods_an_empty_answer_sends_nothing() {
    let w = World::new();
    let (u, _mta) = user_with_email(&w);
    let run = w.login(&u.name, "", T0);
    run.assert_denied("empty code");
    assert_eq!(codes_mailed(&u.name), 0);
    let status = cli_ok(&w.otpgate(&["status", "--user", &u.name], ""));
    assert!(
        status.contains(&format!(
            "code by e-mail to {}@localhost) - disabled by policy",
            u.name
        )),
        "{status}"
    );
}

#[test]
fn sends_are_limited_separately_from_the_lockout() {
    let w = world("send_limit = 2\n");
    let (u, _mta) = user_with_email(&w);
    for n in 0..2 {
        login_with_sent_code(
            &w,
            &u.name,
            &fetch_from(&mailbox(&u.name), n),
            T0 + n as u64,
        )
        .assert_ok();
    }
    let run = w.login(&u.name, "", T0 + 10);
    run.assert_denied("send_limit");
    assert!(
        run.said("Too many codes were sent: wait until 2027-01-15 08:15:00 UTC"),
        "{run:#?}"
    );
    assert_eq!(codes_mailed(&u.name), 2, "no third mail");
    // Not a lockout: the app's code works.
    w.login(&u.name, &code_at(RFC_SECRET, T0 + 30), T0 + 30)
        .assert_ok();
    // After the window, sending works again.
    login_with_sent_code(&w, &u.name, &fetch_from(&mailbox(&u.name), 2), T0 + 901).assert_ok();
}

#[test]
fn a_missing_or_failing_mailer_denies_clearly_and_leaves_no_code_waiting() {
    for (mailer, why, counted) in [
        // Not startable: known before anything is recorded.
        ("/nonexistent/sendmail", "could not be started", false),
        // Started, then failed: it may have delivered, so the send counts
        // toward send_limit; no code is left waiting.
        ("/bin/false", "exit status 1", true),
    ] {
        let w = world(&format!("mail_command = \"{mailer}\"\n"));
        let u = w.enrolled_user();
        add(&w, &u, &["--email", &format!("{}@localhost", u.name)]);
        let before = std::fs::read(w.state_file(&u)).ok();
        let run = w.login(&u.name, "", T0);
        run.assert_code(PamCode::AuthInfoUnavail);
        run.assert_logged(why);
        assert!(run.said("The code could not be sent"), "{run:#?}");
        let after = std::fs::read(w.state_file(&u)).ok();
        if counted {
            let state = otpgate_core::store::state::UserState::parse(&after.unwrap()).unwrap();
            assert_eq!(state.sends, vec![T0], "{mailer}: the send is counted");
            assert_eq!(state.pending, None, "{mailer}: no code waits");
        } else {
            assert_eq!(after, before, "{mailer}: nothing recorded");
        }
    }
}

#[test]
fn a_stopped_mail_system_denies_clearly_and_changes_nothing() {
    let w = world("");
    let (u, shared) = user_with_email(&w);
    drop(shared);
    let before = std::fs::read(w.state_file(&u)).ok();
    let mailed = codes_mailed(&u.name);
    let down = mta_stopped();
    // Counted after the stop: postfix may still have been picking up.
    let queued = maildrop_len();
    let run = w.login(&u.name, "", T0);
    run.assert_code(PamCode::AuthInfoUnavail);
    assert!(
        run.said("The code could not be sent: the mail system on this server is not running."),
        "{run:#?}"
    );
    run.assert_logged("the mail system is not running: the postfix pickup service");
    run.assert_logged("systemctl start postfix");
    assert_eq!(
        std::fs::read(w.state_file(&u)).ok(),
        before,
        "nothing recorded"
    );
    assert_eq!(maildrop_len(), queued, "nothing queued for later");
    // Adding an address is refused the same way, and adds nothing.
    assert_cli_error(
        &w.otpgate(
            &[
                "device",
                "add",
                "mail2",
                "--user",
                &u.name,
                "--email",
                &format!("{}@localhost", u.name),
            ],
            "",
        ),
        "the mail system is not running",
    );
    let list = cli_ok(&w.otpgate(&["device", "list", "--user", &u.name], ""));
    assert!(!list.contains("mail2"), "{list}");
    // The app still works meanwhile; and once postfix is back, so do codes.
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0).assert_ok();
    drop(down);
    let _mta = mta();
    login_with_sent_code(&w, &u.name, &fetch_from(&mailbox(&u.name), mailed), T0 + 60).assert_ok();
}

#[test]
fn a_mailer_that_exits_without_reading_never_kills_the_application() {
    // Writing the message into a pipe nobody reads raises SIGPIPE, which
    // kills a PAM application (pamtester, sshd, sudo do not ignore it).
    // The race is lost only now and then; 40 logins lose it often enough.
    let w = world("mail_command = \"/bin/false\"\n");
    let u = w.enrolled_user();
    add(&w, &u, &["--email", &format!("{}@localhost", u.name)]);
    for i in 0..40 {
        // 300 s apart: at most three sends in any 15 minutes (send_limit),
        // so every login runs the mailer.
        let run = w.login(&u.name, "", T0 + i * 300);
        assert_eq!(
            run.code(),
            Some(PamCode::AuthInfoUnavail),
            "login {i}: the application did not finish: {run:#?}"
        );
    }
}

/// An SMS gateway script (root's, 0755) that appends its uid, environment,
/// number and message to `outbox` (a 1777 directory), after `pre`.
fn gateway(w: &World, pre: &str) -> (String, std::path::PathBuf) {
    let outbox = w.dir.join("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    std::fs::set_permissions(&outbox, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let log = outbox.join("sms.txt");
    let script = w.dir.join("sms-gateway");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{pre}\n{{ echo \"uid=$(id -u) groups=$(id -G) number=$1\"; env | sed 's/^/env: /'; cat; }} >> {}\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script.display().to_string(), log)
}

#[test]
fn an_sms_code_goes_through_the_gateway_as_nobody_with_an_empty_environment() {
    let w0 = World::new();
    let (script, log) = gateway(&w0, "");
    let w = world(&format!("sms_command = \"{script}\"\n"));
    let u = w.enrolled_user();
    add(&w, &u, &["--sms", "+4915112345678"]);
    let run = login_with_sent_code(&w, &u.name, &fetch_from(&log, 0), T0);
    run.assert_ok();
    assert!(run.said("Code sent by SMS to +49…5678"), "{run:#?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("uid=65534 groups=65534 number=+4915112345678"),
        "{text}"
    );
    let env: Vec<&str> = text.lines().filter(|l| l.starts_with("env: ")).collect();
    assert!(
        env.iter().all(|l| *l == "env: PWD=/"),
        "an empty environment: {env:?}"
    );
}

#[test]
fn a_hanging_failing_or_unsafe_gateway_denies_clearly() {
    let w0 = World::new();
    for (pre, mode, why) in [
        ("sleep 60", 0o755, "did not finish within 10 s"),
        ("exit 3", 0o755, "exit status 3"),
        ("", 0o777, "not writable by group or others"),
    ] {
        let (script, log) = gateway(&w0, pre);
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(mode)).unwrap();
        let w = world(&format!("sms_command = \"{script}\"\n"));
        let u = w.enrolled_user();
        add(&w, &u, &["--sms", "+4915112345678"]);
        let start = std::time::Instant::now();
        let run = w.login(&u.name, "", T0);
        run.assert_code(PamCode::AuthInfoUnavail);
        run.assert_logged(why);
        assert!(run.said("The code could not be sent"));
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        assert!(
            !std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("is ")
        );
        let _ = std::fs::remove_file(&log);
    }
}

#[test]
fn adding_an_address_is_confirmed_with_a_code_sent_there() {
    let _mta = mta();
    let w = world("");
    let u = w.enrolled_user();
    let _ = std::fs::remove_file(mailbox(&u.name));
    let address = format!("{}@localhost", u.name);
    // Bad addresses and numbers: a clear error, nothing sent.
    for (how, value, why) in [
        ("--email", "-oQ/tmp@localhost", "may not start with '-'"),
        (
            "--email",
            "x\r\nBcc: y@example.com",
            "not a usable e-mail address",
        ),
        ("--sms", "015112345678", "E.164"),
    ] {
        assert_cli_error(
            &w.otpgate(
                &[
                    "device",
                    "add",
                    "d",
                    "--user",
                    &u.name,
                    &format!("{how}={value}"),
                ],
                "",
            ),
            why,
        );
    }
    // The code typed back (read from the mailbox once it arrives).
    let script = format!(
        r#"set timeout 40
spawn {cli} --config {config} device add mail --user {user} --email {address}
expect {{
  -re {{Code sent to [^:]*: }} {{ unset -nocomplain env(LD_PRELOAD); set code [exec sh -c {{{fetch}}}]; send "$code\r" }}
  timeout {{ exit 3 }}
}}
{END}"#,
        cli = cli_path().display(),
        config = w.config.display(),
        user = u.name,
        fetch = fetch_from(&mailbox(&u.name), 0).replace("code for .* is", "confirmation code is"),
    );
    let out = expect_file(&w, &script);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let list = cli_ok(&w.otpgate(&["device", "list", "--user", &u.name], ""));
    assert!(list.contains("mail"), "{list}");
}

/// Logs `user` in through a real sshd (keyboard-interactive): Enter, then
/// the code `fetch` prints. Whether the login succeeded.
fn ssh_with_sent_code(w: &World, user: &str, fetch: &str) -> bool {
    use otpgate_tests::sshd::{Sshd, module_under_test};
    let line = format!(
        "auth required {} config={}",
        module_under_test().display(),
        w.config.display()
    );
    let sshd = Sshd::start(w, &unique("s"), &["auth required pam_permit.so", &line], "");
    let script = format!(
        r#"set timeout 40
spawn ssh -p {port} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o PreferredAuthentications=keyboard-interactive -o PubkeyAuthentication=no {user}@127.0.0.1 echo LOGGED-IN-OK
expect {{
  -re {{Verification code:}} {{ send "\r" }}
  timeout {{ exit 3 }}
}}
expect {{
  -re {{Code sent [^:]*:}} {{ unset -nocomplain env(LD_PRELOAD); set code [exec sh -c {{{fetch}}}]; send "$code\r" }}
  timeout {{ exit 3 }}
}}
{END}"#,
        port = sshd.port,
    );
    // sshd's PAM runs under pam_wrapper: hold the harness's lock, as the
    // other PAM applications do.
    let out = {
        let _pam = pam_lock();
        expect_file(w, &script)
    };
    let text = String::from_utf8_lossy(&out.stdout);
    // The command's own output line (the spawn line echoes its text too).
    let ok = text.lines().any(|l| l.trim() == "LOGGED-IN-OK");
    if !ok {
        eprintln!("{text}\n{}", sshd.log());
    }
    ok
}

#[test]
fn a_real_sshd_login_with_an_emailed_code() {
    let w = world("");
    let (u, _mta) = user_with_email(&w);
    assert!(ssh_with_sent_code(
        &w,
        &u.name,
        &fetch_from(&mailbox(&u.name), 0)
    ));
}

#[test]
fn a_real_sshd_login_with_a_code_by_sms() {
    let w0 = World::new();
    let (script, log) = gateway(&w0, "");
    let w = world(&format!("sms_command = \"{script}\"\n"));
    let u = w.enrolled_user();
    add(&w, &u, &["--sms", "+4915112345678"]);
    assert!(ssh_with_sent_code(&w, &u.name, &fetch_from(&log, 0)));
    // The same code typed again in a new session: refused.
    let code = codes_in(&std::fs::read_to_string(&log).unwrap())
        .pop()
        .unwrap();
    assert!(!ssh_with_sent_code(&w, &u.name, &format!("echo {code}")));
}

#[test]
fn a_user_adding_an_address_needs_a_current_code_first() {
    let _mta = mta();
    let w = world("");
    let u = w.enrolled_user();
    let _ = std::fs::remove_file(mailbox(&u.name));
    let address = format!("{}@localhost", u.name);
    let add = ["device", "add", "mail", "--email", &address];
    // A wrong current code: refused before anything is sent.
    assert_cli_error(
        &w.otpgate_as(&u, &add, "000000\n"),
        "adding a device refused",
    );
    // A right one: the confirmation goes out; typed back wrong three times,
    // nothing is added.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let stdin = format!("{}\n000000\n000000\n000000\n", code_at(RFC_SECRET, now));
    let out = w.otpgate_as(&u, &add, &stdin);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("That is not the code that was sent.")
            && err.contains("otpgate: device not added: the code sent was not typed back"),
        "{err}"
    );
    assert!(
        otpgate_tests::wait_until(std::time::Duration::from_secs(30), || codes_in_mailbox(
            &u.name
        ) == 1),
        "one confirmation code was mailed"
    );
    let list = cli_ok(&w.otpgate(&["device", "list", "--user", &u.name], ""));
    assert!(!list.contains("mail"), "{list}");
}

/// Confirmation codes in `user`'s mailbox.
fn codes_in_mailbox(user: &str) -> usize {
    std::fs::read_to_string(mailbox(user))
        .unwrap_or_default()
        .matches("confirmation code is")
        .count()
}

/// A mailer script (root's, 0755) that keeps each message it is handed in
/// its own file in `outbox`, with the list of descriptors it was started
/// with (`ls -l /proc/$$/fd`).
fn recording_mailer(w: &World) -> (String, std::path::PathBuf) {
    let outbox = w.dir.join("mailer-outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    let script = w.dir.join("recording-mailer");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nls -l /proc/$$/fd > {o}/fds.$$\ncat > {o}/msg.$$.tmp && mv {o}/msg.$$.tmp {o}/msg.$$\n",
            o = outbox.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script.display().to_string(), outbox)
}

fn messages_in(outbox: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(outbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("msg.") && !n.ends_with(".tmp"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| std::fs::read_to_string(outbox.join(n)).unwrap())
        .collect()
}

#[test]
fn parallel_logins_never_hand_the_mailer_more_than_send_limit() {
    let w0 = World::new();
    let (mailer, outbox) = recording_mailer(&w0);
    let w = world(&format!("mail_command = \"{mailer}\"\nsend_limit = 3\n"));
    let u = w.enrolled_user();
    add(&w, &u, &["--email", &format!("{}@localhost", u.name)]);
    // 12 logins pressing Enter at once: each asks for a code.
    let (ok, failed) = w.thread_race(&u.name, "", 12, T0);
    assert_eq!((ok, failed), (0, 12));
    let sent = messages_in(&outbox);
    assert_eq!(sent.len(), 3, "send_limit = 3 messages, whatever the race");
    // The limit is recorded: a 13th login sends nothing either.
    let run = w.login(&u.name, "", T0 + 1);
    run.assert_denied("send_limit");
    assert_eq!(messages_in(&outbox).len(), 3);
}

#[test]
fn a_second_send_replaces_the_code_a_waiting_login_was_sent() {
    let w0 = World::new();
    let (mailer, outbox) = recording_mailer(&w0);
    let w = world(&format!("mail_command = \"{mailer}\"\n"));
    let u = w.enrolled_user();
    add(&w, &u, &["--email", &format!("{}@localhost", u.name)]);
    // Login A asks for a code and waits; login B asks for one too; then
    // A types its code (no longer valid), B types its own (valid).
    let fetch = |n: usize| {
        format!(
            "for i in $(seq 300); do c=$(ls {o} | grep -c '^msg\\.[0-9]*$'); \
             if [ \"$c\" -gt {n} ]; then cat $(ls -tr {o}/msg.* | grep -v '[.]tmp$' | tail -n1) | grep -o 'is [0-9]*\\.' | tr -dc 0-9; exit 0; fi; sleep 0.1; done; echo nocode",
            o = outbox.display()
        )
    };
    let script = format!(
        r#"set timeout 40
log_user 1
set pre $env(LD_PRELOAD)
proc code_after {{n cmd}} {{ global pre env; unset -nocomplain env(LD_PRELOAD); set c [exec sh -c $cmd]; set env(LD_PRELOAD) $pre; return $c }}
spawn pamtester otpgate-test {user} authenticate
set a $spawn_id
expect -i $a -re {{Verification code: }} {{ send -i $a "\r" }} timeout {{ puts "EXPECT-TIMEOUT a1"; exit 3 }}
expect -i $a -re {{Code sent [^:]*: }} {{}} timeout {{ puts "EXPECT-TIMEOUT a2"; exit 3 }}
set codeA [code_after 0 {{{f0}}}]
spawn pamtester otpgate-test {user} authenticate
set b $spawn_id
expect -i $b -re {{Verification code: }} {{ send -i $b "\r" }} timeout {{ puts "EXPECT-TIMEOUT b1"; exit 3 }}
expect -i $b -re {{Code sent [^:]*: }} {{}} timeout {{ puts "EXPECT-TIMEOUT b2"; exit 3 }}
set codeB [code_after 1 {{{f1}}}]
send -i $a "$codeA\r"
expect -i $a eof
set ra [wait -i $a]
puts "RESULT-A [lindex $ra 3]"
send -i $b "$codeB\r"
expect -i $b eof
set rb [wait -i $b]
puts "RESULT-B [lindex $rb 3]"
"#,
        user = u.name,
        f0 = fetch(0),
        f1 = fetch(1),
    );
    let mut cmd = Command::new("expect");
    cmd.arg("-");
    w.pam_env(&mut cmd, T0);
    let out = run_pam_app(&mut cmd, script.as_bytes());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("RESULT-A 1"),
        "the first code no longer works: {text}"
    );
    assert!(text.contains("RESULT-B 0"), "the newest code works: {text}");
    assert_eq!(messages_in(&outbox).len(), 2);
}

#[test]
fn the_mailer_gets_three_descriptors_and_none_of_the_host() {
    let w0 = World::new();
    let (mailer, outbox) = recording_mailer(&w0);
    let w = world(&format!("mail_command = \"{mailer}\"\n"));
    let u = w.enrolled_user();
    add(&w, &u, &["--email", &format!("{}@localhost", u.name)]);
    // The host (here pamtester) holds a descriptor that is not
    // close-on-exec, as sshd holds its client's socket.
    let marker = w.dir.join("host-secret-descriptor");
    std::fs::write(&marker, "host").unwrap();
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!(
        "exec 7<{} && exec pamtester otpgate-test {} authenticate",
        marker.display(),
        u.name
    ));
    w.pam_env(&mut cmd, T0);
    let run = {
        let _pam = pam_lock();
        PamRun::from(run_with_stdin(&mut cmd, b"\n"))
    };
    assert!(run.said("Code sent by e-mail"), "{run:#?}");
    let fds: Vec<String> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("fds."))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(fds.len(), 1, "the mailer ran once");
    let listing = &fds[0];
    assert!(
        !listing.contains(&*marker.to_string_lossy()),
        "a host descriptor reached the mailer: {listing}"
    );
    // Standard input, output and error, and nothing else but the shell's own.
    for fd in [" 0 -> socket:", " 2 -> /dev/null"] {
        assert!(listing.contains(fd), "{fd}: {listing}");
    }
    assert!(!listing.contains(" 7 -> "), "{listing}");
}
