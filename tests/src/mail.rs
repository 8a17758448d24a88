//! A real MTA for the e-mail code tests: Debian's postfix, delivering to
//! local mailboxes (/var/mail/USER), started by the tests if it is not
//! running — and then stopped by its master's pid when the test process
//! ends, pass, fail or killed. It listens on loopback only.

use crate::{PamRun, World, run_ok, run_pam_app, unique};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// Tests sending mail hold it shared; the test that stops postfix holds it
/// alone.
static MTA: RwLock<()> = RwLock::new(());

/// Postfix's pickup socket: it accepts connections while postfix runs.
const PICKUP: &str = "/var/spool/postfix/public/pickup";

/// Whether postfix's pickup service accepts a connection.
pub fn postfix_answers() -> bool {
    std::os::unix::net::UnixStream::connect(PICKUP).is_ok()
}

/// Postfix running (started if needed) for as long as the guard lives.
pub fn mta() -> RwLockReadGuard<'static, ()> {
    let guard = MTA.read().unwrap_or_else(|e| e.into_inner());
    ensure_mta();
    guard
}

/// Postfix stopped for as long as this lives (no other test of this
/// process sends mail meanwhile); started again when it is dropped.
pub struct MtaStopped {
    _alone: RwLockWriteGuard<'static, ()>,
}

/// Stops postfix, waiting until its pickup service no longer answers.
pub fn mta_stopped() -> MtaStopped {
    let alone = MTA.write().unwrap_or_else(|e| e.into_inner());
    ensure_mta();
    run_ok(Command::new("postfix").arg("stop"), "postfix stop");
    assert!(
        crate::wait_until(Duration::from_secs(30), || !postfix_answers()),
        "postfix still answers after postfix stop"
    );
    MtaStopped { _alone: alone }
}

impl Drop for MtaStopped {
    fn drop(&mut self) {
        let _ = Command::new("postfix").arg("start").output();
        crate::wait_until(Duration::from_secs(30), postfix_answers);
        if let Some(record) = OURS.get() {
            record_master(record);
        }
    }
}

/// Set when this process started postfix: the file the watcher reads the
/// pid of the master we started from.
static OURS: OnceLock<PathBuf> = OnceLock::new();

/// Postfix's own record of its master's pid.
const MASTER_PID: &str = "/var/spool/postfix/pid/master.pid";

/// Notes the running master's pid in `record` (after each start by us).
fn record_master(record: &Path) {
    let pid = std::fs::read_to_string(MASTER_PID).unwrap_or_default();
    std::fs::write(record, pid.trim()).expect("recording postfix's pid");
}

/// Test processes using postfix hold this file locked shared for their
/// whole life; a watcher stops postfix only under an exclusive lock, so
/// never under the feet of the next test binary.
fn users_lock() -> PathBuf {
    std::env::temp_dir().join("otpgate-tests-postfix.lock")
}

/// Marks this process as using postfix until it ends.
fn hold_users_lock() {
    static HELD: OnceLock<std::fs::File> = OnceLock::new();
    HELD.get_or_init(|| {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(users_lock())
            .expect("opening the postfix users' lock");
        file.lock_shared().expect("locking the postfix users' lock");
        file
    });
}

/// Starts a watcher that waits for this process's end (its stdin, a pipe
/// only we hold, reaches end of file — however we end), then, once no test
/// process uses postfix any more (exclusive lock), sends SIGTERM to the
/// master we started if it still runs (postfix's own pid file still names
/// it) and waits until it is gone.
fn stop_at_exit(record: &Path) {
    static WATCHER: OnceLock<std::process::Child> = OnceLock::new();
    let script = r#"read _ || true
exec 9>>"$2"
flock -x 9
ours=$(cat "$1" 2>/dev/null)
now=$(tr -d ' \n' < /var/spool/postfix/pid/master.pid 2>/dev/null)
if [ -n "$ours" ] && [ "$ours" = "$now" ]; then
    kill -TERM "$ours"
    i=0
    while kill -0 "$ours" 2>/dev/null && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
fi
rm -f "$1""#;
    let child = Command::new("sh")
        .args(["-c", script, "otpgate-postfix-watch"])
        .arg(record)
        .arg(users_lock())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting the postfix watcher");
    // Held, with its stdin, for the life of the process (statics are never
    // dropped; it ends after us, so it is never waited for). The pipe is
    // close-on-exec: no other child keeps it open.
    let _ = WATCHER.set(child);
}

/// The messages postfix's `sendmail` dropped that postfix has not picked up.
pub fn maildrop_len() -> usize {
    std::fs::read_dir(Path::new("/var/spool/postfix/maildrop"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Makes sure postfix runs, local-only; once per test process.
fn ensure_mta() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        assert!(
            std::path::Path::new("/usr/sbin/postfix").exists(),
            "postfix is not installed (apt-get install postfix)"
        );
        // Before looking: a watcher of an earlier test binary may be
        // stopping the postfix it started; this waits until it is done.
        hold_users_lock();
        let conf = Command::new("postconf")
            .args([
                "-e",
                "inet_interfaces = loopback-only",
                "mydestination = $myhostname, localhost.localdomain, localhost",
            ])
            .status()
            .expect("postconf");
        assert!(conf.success());
        let running = Command::new("postfix")
            .arg("status")
            .output()
            .expect("postfix status")
            .status
            .success();
        let verb = if running { "reload" } else { "start" };
        run_ok(
            Command::new("postfix").arg(verb),
            &format!("postfix {verb}"),
        );
        if !running {
            let record =
                std::env::temp_dir().join(format!("otpgate-tests-postfix.{}", std::process::id()));
            assert!(
                crate::wait_until(Duration::from_secs(30), postfix_answers),
                "postfix started but does not answer"
            );
            record_master(&record);
            stop_at_exit(&record);
            let _ = OURS.set(record);
        }
    });
}

/// The local mailbox of `user`.
pub fn mailbox(user: &str) -> PathBuf {
    PathBuf::from("/var/mail").join(user)
}

/// The shell command printing the newest code mailed to `user` once one
/// more than `seen` arrived (for expect scripts and for the tests).
pub fn codes_in(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let rest = l
                .split_once(" is ")
                .filter(|(head, _)| head.contains("code"))?
                .1;
            let code: String = rest.chars().take_while(char::is_ascii_digit).collect();
            (code.len() == 6).then_some(code)
        })
        .collect()
}

/// Waits until `user`'s mailbox holds more than `seen` codes; the newest.
pub fn wait_for_code(user: &str, seen: usize) -> Option<String> {
    let mut found = None;
    crate::wait_until(Duration::from_secs(30), || {
        let text = std::fs::read_to_string(mailbox(user)).unwrap_or_default();
        let codes = codes_in(&text);
        if codes.len() > seen {
            found = codes.last().cloned();
            true
        } else {
            false
        }
    });
    found
}

/// How many codes `user` was mailed so far.
pub fn codes_mailed(user: &str) -> usize {
    codes_in(&std::fs::read_to_string(mailbox(user)).unwrap_or_default()).len()
}

/// How each expect script ends: the program's end, its exit status.
/// (A server asking for a code again means the code was refused.)
pub const END: &str = "expect {\n  eof {}\n  -re {Verification code:} { exit 4 }\n  timeout { exit 3 }\n}\ncatch wait result\nexit [lindex $result 3]\n";

/// Logs in through pamtester in a pseudo-terminal: Enter at the prompt,
/// then, once the "Code sent" prompt shows, whatever `fetch` (a shell
/// command) prints. Polls for the message's arrival, a real condition.
/// The fetch runs without pam_wrapper (its debug lines on stderr would
/// make Tcl's `exec` fail).
pub fn login_with_sent_code(w: &World, user: &str, fetch: &str, at: u64) -> PamRun {
    login_with_sent_code_clock(w, user, fetch, at, None)
}

/// [`login_with_sent_code`] with libfaketime's clock set to `faketime`
/// (e.g. running fast) instead of frozen at `at`.
pub fn login_with_sent_code_clock(
    w: &World,
    user: &str,
    fetch: &str,
    at: u64,
    faketime: Option<&str>,
) -> PamRun {
    let script = format!(
        r#"set timeout 40
log_user 1
spawn pamtester otpgate-test {user} authenticate
expect {{
  -re {{Verification code: }} {{ send "\r" }}
  timeout {{ puts "EXPECT-TIMEOUT at the first prompt"; exit 3 }}
}}
expect {{
  -re {{Code sent [^:]*: }} {{ unset -nocomplain env(LD_PRELOAD); set code [exec sh -c {{{fetch}}}]; send "$code\r" }}
  eof {{}}
  timeout {{ puts "EXPECT-TIMEOUT waiting for the code prompt"; exit 3 }}
}}
{END}"#
    );
    let mut cmd = Command::new("expect");
    cmd.arg("-");
    w.pam_env(&mut cmd, at);
    if let Some(f) = faketime {
        cmd.env("FAKETIME", f);
    }
    let out = run_pam_app(&mut cmd, script.as_bytes());
    // The pseudo-terminal mixes pamtester's stdout and stderr.
    let mut both = out.stdout.clone();
    both.extend_from_slice(&out.stderr);
    PamRun::from(Output {
        status: out.status,
        stderr: both,
        stdout: out.stdout,
    })
}

/// Runs an expect script from a file (read from stdin, its `exec`'d
/// commands would share the script's pipe).
pub fn expect_file(w: &World, script: &str) -> Output {
    let path = w.dir.join(format!("{}.exp", unique("x")));
    std::fs::write(&path, script).unwrap();
    Command::new("expect").arg(&path).output().unwrap()
}

/// A shell command waiting for the (seen+1)th code in `file`, printing it.
pub fn fetch_from(file: &std::path::Path, seen: usize) -> String {
    format!(
        "for i in $(seq 300); do n=$(grep -c 'code for .* is [0-9]*\\.' {f} 2>/dev/null); \
         if [ \"${{n:-0}}\" -gt {seen} ]; then grep -o 'code for .* is [0-9]*\\.' {f} | tail -n1 | sed 's/.* is //; s/\\.$//'; exit 0; fi; \
         sleep 0.1; done; echo nocode",
        f = file.display()
    )
}
