//! Handing a message to the outside world: the local MTA's sendmail
//! interface for e-mail, an administrator's gateway program for SMS. Never
//! through a shell; the address or number is one argument after `--` (or
//! alone, validated to start with '+'), the message goes on stdin.

use crate::otp::sent::Target;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a mailer or gateway may take before it is killed.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The unprivileged ids the SMS gateway runs as (nobody, nogroup).
const NOBODY: u32 = 65534;
/// util-linux's setpriv, present on every Debian system.
const SETPRIV: &str = "/usr/bin/setpriv";

/// Sends `message` (a whole RFC 5322 message: headers, blank line, body)
/// to `to` through `mail_command -i -- ADDRESS`.
pub fn email(mail_command: &Path, to: &Target, message: &str) -> Result<(), String> {
    let mut cmd = Command::new(mail_command);
    cmd.args(["-i", "--", to.as_str()])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .current_dir("/");
    run(
        cmd,
        message,
        &format!("the mailer {}", mail_command.display()),
    )
}

/// Sends `message` to `to` through the SMS gateway `command NUMBER`, after
/// checking the program is root's and only root's to change; it runs as
/// nobody with an empty environment.
pub fn sms(command: &str, to: &Target, message: &str) -> Result<(), String> {
    if command.is_empty() {
        return Err("no SMS gateway is configured (sms_command)".into());
    }
    let path = Path::new(command);
    let meta = std::fs::metadata(path).map_err(|e| format!("the SMS gateway {command}: {e}"))?;
    if !meta.is_file() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "the SMS gateway {command} must be a file owned by root and not writable by group or others (chown root: {command}; chmod go-w {command})"
        ));
    }
    // setpriv (util-linux) drops to nobody *and* clears the supplementary
    // groups, which std cannot do without `unsafe` (core forbids it).
    let mut cmd = Command::new(SETPRIV);
    cmd.arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .args(["--clear-groups", "--no-new-privs", "--"])
        .arg(path)
        .arg(to.as_str())
        .env_clear()
        .current_dir("/");
    run(cmd, message, &format!("the SMS gateway {command}"))
}

/// Runs `cmd` with `stdin` on its standard input, waits up to
/// [`SEND_TIMEOUT`], kills it past that. Its output is discarded (it may
/// echo the message, which holds the code).
fn run(mut cmd: Command, stdin: &str, what: &str) -> Result<(), String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{what} could not be started: {e}"))?;
    if let Some(mut input) = child.stdin.take() {
        // A program that exits without reading is judged by its status.
        let _ = input.write_all(stdin.as_bytes());
    }
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(match status.code() {
                    Some(code) => format!("{what} failed (exit status {code})"),
                    None => format!("{what} was killed by a signal"),
                });
            }
            Ok(None) if start.elapsed() >= SEND_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{what} did not finish within {} s and was stopped",
                    SEND_TIMEOUT.as_secs()
                ));
            }
            // Polled, not waited on by a thread: the module starts no
            // threads inside sshd or sudo.
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_that_is_not_roots_alone_is_refused_before_it_runs() {
        let to = Target::phone("+4915112345678").unwrap();
        assert!(sms("", &to, "x").unwrap_err().contains("sms_command"));
        let dir = std::env::temp_dir().join(format!("otpgate-send-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let gw = dir.join("gw");
        std::fs::write(&gw, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&gw, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let e = sms(gw.to_str().unwrap(), &to, "x").unwrap_err();
        assert!(e.contains("not writable by group or others"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failing_missing_and_slow_programs_are_errors() {
        let to = Target::email("alice@example.com").unwrap();
        assert!(
            email(Path::new("/bin/false"), &to, "x")
                .unwrap_err()
                .contains("exit status 1")
        );
        assert!(
            email(Path::new("/nonexistent/sendmail"), &to, "x")
                .unwrap_err()
                .contains("could not be started")
        );
        assert!(email(Path::new("/bin/true"), &to, "x").is_ok());
    }
}
