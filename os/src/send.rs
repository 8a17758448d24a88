//! Handing a message to the outside world: the local MTA's sendmail
//! interface for e-mail, an administrator's gateway program for SMS. Never
//! through a shell; the address or number is one argument after `--` (or
//! alone, validated to start with '+'), the message goes on stdin.

use otpgate_core::otp::sent::Target;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a mailer or gateway may take before it is killed.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The unprivileged ids the SMS gateway runs as (nobody, nogroup).
const NOBODY: u32 = 65534;
/// util-linux's setpriv, present on every Debian system.
const SETPRIV: &str = "/usr/bin/setpriv";

/// The sendmail interface every Debian MTA installs.
pub const SENDMAIL: &str = "/usr/sbin/sendmail";
/// Postfix's pickup service: its `sendmail` drops a message into the
/// maildrop queue and pokes this socket; when postfix is stopped the drop
/// still succeeds (exit status 0) and the message waits, silently, until
/// postfix runs again.
const POSTFIX_PICKUP: &str = "/var/spool/postfix/public/pickup";

pub use otpgate_core::sys::send::SendError;

/// The programs a config names, run as this module documents: the
/// [`Sender`](otpgate_core::sender::Sender) of a real login.
#[derive(Debug, Clone, Copy, Default)]
pub struct Programs;

impl otpgate_core::sender::Sender for Programs {
    fn email_ready(&self, command: &Path) -> Result<(), SendError> {
        email_ready(command)
    }
    fn sms_ready(&self, command: &Path) -> Result<(), SendError> {
        sms_ready(command)
    }
    fn email(&self, command: &Path, to: &Target, message: &str) -> Result<(), SendError> {
        email(command, to, message)
    }
    fn sms(&self, command: &Path, to: &Target, message: &str) -> Result<(), SendError> {
        sms(command, to, message)
    }
    fn host_name(&self) -> Option<String> {
        super::hostname()
    }
}

/// Whether the local MTA behind the default sendmail interface is down.
/// Only postfix needs asking: its `sendmail` reports success while postfix
/// is stopped (exim's and the relay clients' report their own failures).
/// Postfix is running when its pickup service accepts a connection — the
/// same poke its own `postdrop` gives after queueing a message.
pub fn mail_system_down(mail_command: &Path) -> Option<String> {
    mail_system_down_at(mail_command, Path::new(POSTFIX_PICKUP))
}

fn mail_system_down_at(mail_command: &Path, pickup: &Path) -> Option<String> {
    use rustix::fs::FileType;
    use rustix::io::Errno;
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    if mail_command != Path::new(SENDMAIL) {
        return None;
    }
    match rustix::fs::lstat(pickup) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Socket => {}
        // No postfix here (or not at its default queue directory).
        _ => return None,
    }
    let down = |why: String| {
        Some(format!(
            "the mail system is not running: the postfix pickup service ({}) {why}; start postfix (systemctl start postfix): until then codes cannot be e-mailed",
            pickup.display()
        ))
    };
    let sock = match rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    ) {
        Ok(s) => s,
        Err(e) => return down(format!("could not be asked: {e}")),
    };
    let addr = match SocketAddrUnix::new(pickup) {
        Ok(a) => a,
        Err(e) => return down(format!("could not be asked: {e}")),
    };
    match rustix::net::connect(&sock, &addr) {
        // Accepted, or busy with a full backlog: postfix runs.
        Ok(()) | Err(Errno::AGAIN) => None,
        Err(Errno::CONNREFUSED) => down("does not answer".into()),
        Err(e) => down(format!("could not be reached: {e}")),
    }
}

/// Sends `message` (a whole RFC 5322 message: headers, blank line, body)
/// to `to` through `mail_command -i -- ADDRESS`, after checking the mail
/// system behind it is running.
/// What can be known about the mailer before anything is sent: the mail
/// system runs and the mailer is an executable file. A login checks this
/// before it records a send, so a stopped postfix changes nothing.
pub fn email_ready(mail_command: &Path) -> Result<(), SendError> {
    if let Some(why) = mail_system_down(mail_command) {
        return Err(SendError::MailSystemDown(why));
    }
    let what = format!("the mailer {}", mail_command.display());
    match std::fs::metadata(mail_command) {
        Ok(m) if m.is_file() && m.mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err(SendError::Failed(format!(
            "{what} could not be started: not an executable file"
        ))),
        Err(e) => Err(SendError::Failed(format!(
            "{what} could not be started: {e}"
        ))),
    }
}

pub fn email(mail_command: &Path, to: &Target, message: &str) -> Result<(), SendError> {
    email_ready(mail_command)?;
    let what = format!("the mailer {}", mail_command.display());
    let mut argv = vec![mail_command.as_os_str(), "-i".as_ref(), "--".as_ref()];
    argv.push(to.as_str().as_ref());
    run(
        &argv,
        &["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],
        message,
        &what,
    )
    .map_err(SendError::Failed)
}

/// Sends `message` to `to` through the SMS gateway `command NUMBER`, after
/// checking the program is root's and only root's to change; it runs as
/// nobody with an empty environment.
pub fn sms(command: &Path, to: &Target, message: &str) -> Result<(), SendError> {
    sms_checked(command, to, message).map_err(SendError::Failed)
}

/// What can be known about the SMS gateway before anything is sent: one
/// is configured, and it is root's file, not writable by others.
pub fn sms_ready(command: &Path) -> Result<(), SendError> {
    sms_gateway_checked(command).map_err(SendError::Failed)
}

fn sms_gateway_checked(path: &Path) -> Result<(), String> {
    if path.as_os_str().is_empty() {
        return Err("no SMS gateway is configured (sms_command)".into());
    }
    let command = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("the SMS gateway {command}: {e}"))?;
    if !meta.is_file() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "the SMS gateway {command} must be a file owned by root and not writable by group or others (chown root: {command}; chmod go-w {command})"
        ));
    }
    Ok(())
}

fn sms_checked(path: &Path, to: &Target, message: &str) -> Result<(), String> {
    sms_gateway_checked(path)?;
    let command = path.display();
    // setpriv (util-linux) drops to nobody *and* clears the supplementary
    // groups, which std cannot do without `unsafe` (core forbids it).
    let (reuid, regid) = (format!("--reuid={NOBODY}"), format!("--regid={NOBODY}"));
    let argv: Vec<&std::ffi::OsStr> = vec![
        SETPRIV.as_ref(),
        reuid.as_ref(),
        regid.as_ref(),
        "--clear-groups".as_ref(),
        "--no-new-privs".as_ref(),
        "--".as_ref(),
        path.as_os_str(),
        to.as_str().as_ref(),
    ];
    run(&argv, &[], message, &format!("the SMS gateway {command}"))
}

/// Runs `argv` (an absolute program path first) in `/` with exactly the
/// environment `env` and `stdin` on its standard input, its output
/// discarded (it may echo the message, which holds the code); waits up to
/// [`SEND_TIMEOUT`] and kills it past that.
///
/// Started with `posix_spawn` through `/usr/bin/env -C /` (for the working
/// directory) rather than `std::process`: std's spawning machinery made the
/// module import some 35 more libc symbols, each resolved by the dynamic
/// loader at every login, sending or not.
///
/// The standard input is one end of a socket pair, not a pipe: a program
/// that exits without reading would make a write to a pipe raise SIGPIPE,
/// which kills the host process (sshd's, sudo's: they do not ignore it).
/// A socket is written with `MSG_NOSIGNAL` and just reports EPIPE.
fn run(argv: &[&std::ffi::OsStr], env: &[&str], stdin: &str, what: &str) -> Result<(), String> {
    use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawn};
    use nix::sys::signal::{SigSet, Signal};
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    use rustix::process::{WaitOptions, waitpid};
    use std::ffi::CString;
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let start_failed = |e: &dyn std::fmt::Display| format!("{what} could not be started: {e}");
    let cstr = |s: &[u8]| CString::new(s).map_err(|e| start_failed(&e));
    let mut args = vec![cstr(ENV.as_bytes())?, cstr(b"-C")?, cstr(b"/")?];
    for a in argv {
        args.push(cstr(a.as_bytes())?);
    }
    let envp = env
        .iter()
        .map(|e| cstr(e.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let (ours, theirs) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| start_failed(&e))?;
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .map_err(|e| start_failed(&e))?;
    let mut actions = PosixSpawnFileActions::init().map_err(|e| start_failed(&e))?;
    actions
        .add_dup2(theirs.as_raw_fd(), 0)
        .and_then(|()| actions.add_dup2(null.as_raw_fd(), 1))
        .and_then(|()| actions.add_dup2(null.as_raw_fd(), 2))
        .map_err(|e| start_failed(&e))?;
    // Then every other descriptor is closed in the child: the host's own
    // (sshd's client socket, sudo's) that are not close-on-exec must never
    // reach a program meant to run confined.
    for fd in open_descriptors().map_err(|e| start_failed(&e))? {
        if fd > 2 {
            actions.add_close(fd).map_err(|e| start_failed(&e))?;
        }
    }
    // The host's blocked signals and its ignored SIGPIPE are not the
    // program's business.
    let mut attr = PosixSpawnAttr::init().map_err(|e| start_failed(&e))?;
    let mut pipe = SigSet::empty();
    pipe.add(Signal::SIGPIPE);
    attr.set_sigmask(&SigSet::empty())
        .and_then(|()| attr.set_sigdefault(&pipe))
        .and_then(|()| {
            attr.set_flags(
                PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
            )
        })
        .map_err(|e| start_failed(&e))?;
    let pid = posix_spawn(ENV, &actions, &attr, &args, &envp).map_err(|e| start_failed(&e))?;
    let Some(pid) = rustix::process::Pid::from_raw(pid.as_raw()) else {
        return Err(start_failed(&"no process id"));
    };
    drop((theirs, null));
    // A program that exits without reading is judged by its status.
    let _ = write_no_signal(&ours, stdin.as_bytes());
    drop(ours);
    let start = Instant::now();
    loop {
        match waitpid(Some(pid), WaitOptions::NOHANG) {
            Ok(Some((_, status))) => {
                return match status.exit_status() {
                    Some(0) => Ok(()),
                    Some(code) => Err(format!("{what} failed (exit status {code})")),
                    None => Err(format!("{what} was killed by a signal")),
                };
            }
            Ok(None) if start.elapsed() >= SEND_TIMEOUT => {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                let _ = waitpid(Some(pid), WaitOptions::empty());
                return Err(format!(
                    "{what} did not finish within {} s and was stopped",
                    SEND_TIMEOUT.as_secs()
                ));
            }
            // Polled, not waited on by a thread: the module starts no
            // threads inside sshd or sudo.
            Ok(None) => super::sleep(Duration::from_millis(20)),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}

/// coreutils' env: sets the working directory (`-C /`) and then runs the
/// program, with the environment it was given.
const ENV: &str = "/usr/bin/env";

/// The descriptors this process has open, from `/proc/self/fd`. Without
/// that listing nothing is started (a child might inherit anything).
fn open_descriptors() -> Result<Vec<i32>, String> {
    let list = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| format!("the open descriptors could not be listed (/proc/self/fd: {e})"))?;
    let mut fds = Vec::new();
    for entry in list {
        let entry = entry.map_err(|e| format!("/proc/self/fd: {e}"))?;
        if let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            fds.push(fd);
        }
    }
    Ok(fds)
}

/// Writes all of `bytes` to the socket, never raising SIGPIPE; gives up
/// after [`SEND_TIMEOUT`] on a program that neither reads nor exits.
fn write_no_signal(sock: &std::os::fd::OwnedFd, bytes: &[u8]) -> Result<(), String> {
    use rustix::net::{SendFlags, send, sockopt};
    sockopt::set_socket_timeout(sock, sockopt::Timeout::Send, Some(SEND_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut rest = bytes;
    while !rest.is_empty() {
        match send(sock, rest, SendFlags::NOSIGNAL) {
            Ok(n) => rest = rest.get(n..).unwrap_or_default(),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gateway_that_is_not_roots_alone_is_refused_before_it_runs() {
        let to = Target::phone("+4915112345678").unwrap();
        assert!(
            sms(Path::new(""), &to, "x")
                .unwrap_err()
                .to_string()
                .contains("sms_command")
        );
        let dir = crate::fs::Scratch::new("send");
        std::fs::create_dir_all(&dir).unwrap();
        let gw = dir.join("gw");
        std::fs::write(&gw, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&gw, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        let e = sms(&gw, &to, "x").unwrap_err().to_string();
        assert!(e.contains("not writable by group or others"), "{e}");
    }

    #[test]
    fn a_stopped_postfix_is_told_apart_from_a_running_one() {
        let dir = crate::fs::Scratch::new("pickup");
        std::fs::create_dir_all(&dir).unwrap();
        let pickup = dir.join("pickup");
        let sendmail = Path::new(SENDMAIL);
        // No postfix: nothing to ask.
        assert_eq!(mail_system_down_at(sendmail, &pickup), None);
        // Listening: running.
        let listener = std::os::unix::net::UnixListener::bind(&pickup).unwrap();
        assert_eq!(mail_system_down_at(sendmail, &pickup), None);
        // The socket left behind by a stopped postfix: down, and why.
        drop(listener);
        let why = mail_system_down_at(sendmail, &pickup).unwrap();
        assert!(why.contains("does not answer"), "{why}");
        assert!(why.contains("systemctl start postfix"), "{why}");
        // Another mail command is judged by its own exit status.
        assert_eq!(mail_system_down_at(Path::new("/bin/true"), &pickup), None);
    }

    #[test]
    fn failing_missing_and_slow_programs_are_errors() {
        let to = Target::email("alice@example.com").unwrap();
        assert!(
            email(Path::new("/bin/false"), &to, "x")
                .unwrap_err()
                .to_string()
                .contains("exit status 1")
        );
        assert!(
            email(Path::new("/nonexistent/sendmail"), &to, "x")
                .unwrap_err()
                .to_string()
                .contains("could not be started")
        );
        assert!(email(Path::new("/bin/true"), &to, "x").is_ok());
    }
}
