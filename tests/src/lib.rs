//! Harness for otpgate's end-to-end tests: the real `pam_otpgate.so` loaded
//! by the real libpam (through pam_wrapper, so the machine's own PAM
//! configuration is never touched), driven by `pamtester`, with time frozen
//! by libfaketime, real throw-away users and real files.
//!
//! These tests must run as root (they create users and chown files); CI does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

pub use otpgate_core;

pub mod fleet;
pub mod mail;
pub mod openvpn;
pub mod sshd;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

struct Built {
    module: PathBuf,
    cli: PathBuf,
    pamconv: PathBuf,
    pamrace: PathBuf,
}

/// Builds the module, the CLI and the conversation helper once per test binary.
fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the end-to-end tests must run as root (they create users and set file owners)"
        );
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                "pam-otpgate",
                "-p",
                "otpgate",
                "-p",
                "otpgated",
            ])
            .current_dir(workspace())
            .status()
            .expect("running cargo build");
        assert!(status.success(), "building the module and CLI failed");
        let dir = target_dir().join("debug");
        let compile = |name: &str| {
            let out = dir.join(name);
            let status = Command::new("cc")
                .args(["-O1", "-Wall", "-pthread", "-o"])
                .arg(&out)
                .arg(workspace().join(format!("tests/helpers/{name}.c")))
                .arg("-lpam")
                .status()
                .expect("running cc (install gcc and libpam0g-dev)");
            assert!(status.success(), "compiling tests/helpers/{name}.c failed");
            out
        };
        Built {
            module: dir.join("libpam_otpgate.so"),
            cli: dir.join("otpgate"),
            pamconv: compile("pamconv"),
            pamrace: compile("pamrace"),
        }
    })
}

/// Path of the built `pam_otpgate.so`.
pub fn module_path() -> PathBuf {
    built().module.clone()
}

/// Path of the built `otpgate` binary.
pub fn cli_path() -> PathBuf {
    built().cli.clone()
}

/// A copy of the CLI that any user can run: the build lies inside the clone,
/// which may be a mode-0700 directory such as `/root/otpgate`, where a test
/// user cannot reach it. One copy per test process, in a 0755 directory.
pub fn user_cli_path() -> PathBuf {
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    COPY.get_or_init(|| {
        let dir = PathBuf::from(format!("/tmp/otpgate-e2e-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let copy = dir.join("otpgate");
        link_or_copy(&cli_path(), &copy);
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        copy
    })
    .clone()
}

/// Makes `to` the file `from` is: a hard link (no space: the debug CLI is
/// 48 MB, and each test process needs one where any user can run it),
/// or a copy where the two are on different file systems.
pub fn link_or_copy(from: &Path, to: &Path) {
    let _ = std::fs::remove_file(to);
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to).unwrap();
    }
}

/// The real clock (for tests that log in through programs whose time
/// cannot be frozen: sshd, sudo, the installed package).
pub fn real_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// pam_wrapper gives each process a configuration directory `/tmp/pam.X`
/// chosen by `lstat` then `mkdir` (36 names): two processes started at once
/// can share one and read each other's service files. Every process that
/// runs under pam_wrapper therefore holds this lock; concurrency tests use
/// threads inside one process instead ([`World::thread_race`]).
pub fn pam_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const PAM_MATRIX: &str = "/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_matrix.so";

/// A fixed instant used by most tests: 2027-01-15 08:00:00 UTC.
pub const T0: u64 = 1_800_000_000;

/// The RFC 6238 SHA1 test key, base32.
pub const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// One test's private world: a directory with the PAM service files, the
/// config, the state directory and (for central-store tests) secret files.
pub struct World {
    pub dir: PathBuf,
    pub svc: PathBuf,
    pub config: PathBuf,
    pub state: PathBuf,
}

/// A name unique within this test run.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

impl World {
    /// A new world whose default service `otpgate-test` is
    /// `pam_permit` (standing in for the password step) then `pam_otpgate`.
    pub fn new() -> Self {
        built();
        let dir = PathBuf::from(format!("/tmp/otpgate-e2e-{}", unique("w")));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("svc")).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let world = Self {
            svc: dir.join("svc"),
            config: dir.join("config.toml"),
            state: dir.join("state"),
            dir,
        };
        std::fs::write(world.svc.join("other"), "auth required pam_deny.so\n").unwrap();
        world.set_config("");
        world.set_stack(
            "otpgate-test",
            &["auth required pam_permit.so", &world.module_line("")],
        );
        world
    }

    /// The `auth` line loading the real module with this world's config.
    pub fn module_line(&self, extra_args: &str) -> String {
        format!(
            "auth required {} config={} {extra_args}",
            module_path().display(),
            self.config.display()
        )
    }

    /// Writes the config file (root-owned, 0644) with this world's state dir
    /// prepended unless the text sets its own.
    pub fn set_config(&self, text: &str) {
        let mut full = String::new();
        if !text
            .lines()
            .any(|l| l.trim_start().starts_with("state_dir"))
        {
            full.push_str(&format!("state_dir = \"{}\"\n", self.state.display()));
        }
        full.push_str(text);
        std::fs::write(&self.config, full).unwrap();
        std::fs::set_permissions(&self.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    /// Writes a PAM service file.
    pub fn set_stack(&self, service: &str, lines: &[&str]) {
        let mut text = lines.join("\n");
        text.push_str("\naccount required pam_permit.so\nsession required pam_permit.so\n");
        std::fs::write(self.svc.join(service), text).unwrap();
    }

    /// A stack with a real password check (pam_matrix) before the module.
    pub fn set_password_stack(&self, service: &str, user: &str, password: &str) {
        let passdb = self.dir.join("passdb");
        std::fs::write(&passdb, format!("{user}:{password}:{service}\n")).unwrap();
        self.set_stack(
            service,
            &[
                &format!("auth requisite {PAM_MATRIX} passdb={}", passdb.display()),
                &self.module_line(""),
            ],
        );
    }

    /// Runs pamtester against `service` for `user`, feeding `input` lines,
    /// with the clock frozen at `at`.
    pub fn pam(
        &self,
        service: &str,
        user: &str,
        input: &[&str],
        at: u64,
        rhost: Option<&str>,
    ) -> PamRun {
        let mut cmd = Command::new("pamtester");
        if let Some(h) = rhost {
            cmd.arg("-I").arg(format!("rhost={h}"));
        }
        let mut stdin = input.join("\n");
        stdin.push('\n');
        self.pam_bytes(&mut cmd, service, user, stdin.as_bytes(), at)
    }

    /// [`Self::pam`] with raw bytes on pamtester's stdin (non-UTF-8, NUL).
    pub fn pam_raw(&self, service: &str, user: &str, stdin: &[u8], at: u64) -> PamRun {
        self.pam_bytes(&mut Command::new("pamtester"), service, user, stdin, at)
    }

    fn pam_bytes(
        &self,
        cmd: &mut Command,
        service: &str,
        user: &str,
        stdin: &[u8],
        at: u64,
    ) -> PamRun {
        cmd.args([service, user, "authenticate"]);
        self.pam_env(cmd, at);
        let _pam = pam_lock();
        PamRun::from(run_with_stdin(cmd, stdin))
    }

    /// The `auth` lines of a stack shipped in `config/pam.d/`, with the
    /// module under test and this world's config in place of
    /// `pam_otpgate.so`.
    pub fn shipped_stack(&self, file: &str) -> Vec<String> {
        self.shipped_stack_for(file, &module_path())
    }

    /// [`Self::shipped_stack`] with another build of the module (the
    /// installed one, in package tests).
    pub fn shipped_stack_for(&self, file: &str, module: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(workspace().join("config/pam.d").join(file))
            .unwrap_or_else(|e| panic!("config/pam.d/{file}: {e}"));
        text.lines()
            .filter(|l| l.starts_with("auth"))
            .map(|l| {
                l.replace(
                    "pam_otpgate.so",
                    &format!("{} config={}", module.display(), self.config.display()),
                )
            })
            .collect()
    }

    /// Runs another pamtester operation (setcred, acct_mgmt, open_session…).
    pub fn pam_op(&self, service: &str, user: &str, op: &str, at: u64) -> PamRun {
        let mut cmd = Command::new("pamtester");
        cmd.args([service, user, op]);
        self.pam_env(&mut cmd, at);
        let _pam = pam_lock();
        PamRun::from(run_with_stdin(&mut cmd, b""))
    }

    /// The default service with several replies (`prompts`), in order.
    pub fn login_lines(&self, user: &str, replies: &[&str], at: u64) -> PamRun {
        self.pam("otpgate-test", user, replies, at, None)
    }

    /// The usual call: default service, code typed, no remote host.
    pub fn login(&self, user: &str, code: &str, at: u64) -> PamRun {
        self.pam("otpgate-test", user, &[code], at, None)
    }

    /// Runs `n` threads in one process, each with its own PAM handle, all
    /// authenticating at once with `reply`; returns (successes, failures).
    pub fn thread_race(&self, user: &str, reply: &str, n: usize, at: u64) -> (usize, usize) {
        self.thread_race_on("otpgate-test", user, reply, n, at)
    }

    /// [`Self::thread_race`] over several services (comma-separated):
    /// thread i uses service i mod k.
    pub fn thread_race_on(
        &self,
        services: &str,
        user: &str,
        reply: &str,
        n: usize,
        at: u64,
    ) -> (usize, usize) {
        let mut cmd = Command::new(&built().pamrace);
        cmd.args([services, user, &n.to_string(), reply]);
        self.pam_env(&mut cmd, at);
        let out = {
            let _pam = pam_lock();
            run_with_stdin(&mut cmd, b"")
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |k: &str| -> usize {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("pamrace printed {text:?}"))
        };
        (field("success="), field("failure="))
    }

    /// Runs the misbehaving-conversation helper (see tests/helpers/pamconv.c).
    pub fn pamconv(&self, user: &str, mode: &str, reply: Option<&str>, at: u64) -> PamRun {
        let mut cmd = Command::new(&built().pamconv);
        cmd.args(["otpgate-test", user, mode]);
        if let Some(r) = reply {
            cmd.arg(r);
        }
        self.pam_env(&mut cmd, at);
        let _pam = pam_lock();
        PamRun::from(run_with_stdin(&mut cmd, b""))
    }

    /// The environment that puts a command under pam_wrapper and libfaketime.
    pub fn pam_env(&self, cmd: &mut Command, at: u64) {
        let stamp = otpgate_core::sys::clock::format_utc(at).replace(" UTC", "");
        cmd.env("LD_PRELOAD", format!("libpam_wrapper.so {FAKETIME_LIB}"))
            .env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_SERVICE_DIR", &self.svc)
            .env("PAM_WRAPPER_DEBUGLEVEL", "2")
            .env("TZ", "UTC")
            .env("FAKETIME", stamp)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("FAKETIME_DONT_RESET", "1");
    }

    /// Runs the `otpgate` CLI with this world's config.
    pub fn otpgate(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = Command::new(cli_path());
        cmd.arg("--config").arg(&self.config).args(args);
        run_with_stdin(&mut cmd, stdin.as_bytes())
    }

    /// Runs the `otpgate` CLI with the clock frozen at `at` (libfaketime),
    /// so it sees the same time as the logins of a test.
    pub fn otpgate_at(&self, at: u64, args: &[&str], stdin: &str) -> Output {
        let mut cmd = Command::new(cli_path());
        cmd.arg("--config").arg(&self.config).args(args);
        let stamp = otpgate_core::sys::clock::format_utc(at).replace(" UTC", "");
        cmd.env("LD_PRELOAD", FAKETIME_LIB)
            .env("TZ", "UTC")
            .env("FAKETIME", stamp)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("FAKETIME_DONT_RESET", "1");
        run_with_stdin(&mut cmd, stdin.as_bytes())
    }

    /// Runs the CLI as `user` (via setpriv), with this world's config.
    pub fn otpgate_as(&self, user: &TestUser, args: &[&str], stdin: &str) -> Output {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", user.uid))
            .arg(format!("--regid={}", user.gid))
            .arg("--init-groups")
            .arg("--reset-env")
            .arg(user_cli_path())
            .arg("--config")
            .arg(&self.config)
            .args(args);
        cmd.env("HOME", &user.home);
        run_with_stdin(&mut cmd, stdin.as_bytes())
    }

    /// A new user enrolled with the RFC test key (through the real CLI).
    pub fn enrolled_user(&self) -> TestUser {
        let u = TestUser::new(self);
        self.enroll(&u.name, RFC_SECRET);
        u
    }

    /// Enrolls `user` with `secret` through the real CLI (as root, no confirmation).
    pub fn enroll(&self, user: &str, secret: &str) {
        let out = self.otpgate(
            &[
                "enroll",
                "--user",
                user,
                "--secret",
                "-",
                "--no-confirm",
                "--recovery-codes",
                "0",
            ],
            secret,
        );
        assert!(
            out.status.success(),
            "enroll failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Enrolls `user` through the real CLI (root, new secret, `--json`) and
    /// returns the `count` recovery codes it printed.
    pub fn enroll_with_recovery(&self, user: &str, count: usize) -> Vec<String> {
        self.enroll_secret_with_recovery(user, None, count)
    }

    /// [`Self::enroll_with_recovery`] with a given base32 secret (or a new one).
    pub fn enroll_secret_with_recovery(
        &self,
        user: &str,
        secret: Option<&str>,
        count: usize,
    ) -> Vec<String> {
        let n = count.to_string();
        let mut args = vec![
            "enroll",
            "--user",
            user,
            "--no-confirm",
            "--json",
            "--qr",
            "none",
            "--recovery-codes",
            &n,
        ];
        if secret.is_some() {
            args.extend(["--secret", "-"]);
        }
        let codes = recovery_codes_in(&cli_ok(&self.otpgate(&args, secret.unwrap_or(""))));
        assert_eq!(codes.len(), count, "enroll printed {codes:?}");
        codes
    }

    /// Runs `otpgate device add NAME --user USER --secret - --no-confirm
    /// --qr none EXTRA…` as root with `secret` on stdin.
    pub fn add_device(&self, user: &str, name: &str, secret: &str, extra: &[&str]) -> Output {
        let mut args = vec![
            "device",
            "add",
            name,
            "--user",
            user,
            "--secret",
            "-",
            "--no-confirm",
            "--qr",
            "none",
        ];
        args.extend_from_slice(extra);
        self.otpgate(&args, secret)
    }

    /// Adds a YubiKey (Yubico OTP) as root, without a touch, refusing OTPs
    /// with a usage counter below `counter`; asserts it was added.
    pub fn add_yubikey(&self, user: &str, name: &str, ids: (&str, &str), aes: &str, counter: u16) {
        let counter = counter.to_string();
        let out = self.add_device(
            user,
            name,
            aes,
            &[
                "--yubico-otp",
                "--public-id",
                ids.0,
                "--private-id",
                ids.1,
                "--counter",
                &counter,
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The state file of `user` (one per uid).
    pub fn state_file(&self, user: &TestUser) -> PathBuf {
        self.state.join(format!("uid={}.state", user.uid))
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `ready` — a real readiness condition (a port that accepts, a
/// server's own "ready" line), never a fixed sleep — until it holds or
/// `limit` has passed; says whether it held.
pub fn wait_until(limit: std::time::Duration, mut ready: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if ready() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// Runs a PAM application (pamtester, or anything under pam_wrapper) under
/// the harness's lock; see [`pam_lock`].
pub fn run_pam_app(cmd: &mut Command, stdin: &[u8]) -> Output {
    let _pam = pam_lock();
    run_with_stdin(cmd, stdin)
}

/// Runs a command with `stdin` fed in, collecting its output.
pub fn run_with_stdin(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin);
    }
    child.wait_with_output().unwrap()
}

/// The result of one PAM transaction.
#[derive(Debug)]
pub struct PamRun {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
    /// The module's syslog lines (pam_wrapper prints them on stderr).
    pub syslog: Vec<String>,
}

impl From<Output> for PamRun {
    fn from(out: Output) -> Self {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let syslog = stderr
            .lines()
            .filter_map(|l| l.split_once("SYSLOG(").map(|(_, rest)| rest.to_string()))
            .collect();
        Self {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr,
            syslog,
        }
    }
}

/// A PAM return code as pamtester reports it (it prints `pam_strerror`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PamCode {
    Success,
    AuthErr,
    UserUnknown,
    AuthInfoUnavail,
    MaxTries,
    ConvErr,
    PermDenied,
    Abort,
}

impl PamCode {
    /// libpam's `pam_strerror` text for the code.
    pub fn text(self) -> &'static str {
        match self {
            Self::Success => "Success",
            Self::AuthErr => "Authentication failure",
            Self::UserUnknown => "User not known to the underlying authentication module",
            Self::AuthInfoUnavail => "Authentication service cannot retrieve authentication info",
            Self::MaxTries => "Have exhausted maximum number of retries for service",
            Self::ConvErr => "Conversation error",
            Self::PermDenied => "Permission denied",
            Self::Abort => "Critical error - immediate abort",
        }
    }
}

impl PamRun {
    /// The PAM code the transaction ended with, read from pamtester's
    /// closing `pamtester: <pam_strerror>` line (exit 0 is success).
    pub fn code(&self) -> Option<PamCode> {
        if self.success {
            return Some(PamCode::Success);
        }
        let last = self
            .stderr
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("pamtester: "))?;
        [
            PamCode::AuthErr,
            PamCode::UserUnknown,
            PamCode::AuthInfoUnavail,
            PamCode::MaxTries,
            PamCode::ConvErr,
            PamCode::PermDenied,
            PamCode::Abort,
        ]
        .into_iter()
        .find(|c| last.trim() == c.text())
    }

    /// Asserts the PAM return code.
    #[track_caller]
    pub fn assert_code(&self, code: PamCode) {
        assert_eq!(self.code(), Some(code), "{self:#?}");
    }

    /// Asserts the transaction was denied and a module log line contains `reason`.
    #[track_caller]
    pub fn assert_denied(&self, reason: &str) {
        assert!(
            !self.success,
            "expected denial ({reason}), got success: {self:#?}"
        );
        self.assert_logged(reason);
    }

    /// Asserts success.
    #[track_caller]
    pub fn assert_ok(&self) {
        assert!(self.success, "expected success, got denial: {self:#?}");
    }

    /// Asserts some syslog line contains `text`.
    #[track_caller]
    pub fn assert_logged(&self, text: &str) {
        assert!(
            self.syslog.iter().any(|l| l.contains(text)),
            "no log line contains {text:?}; log: {:#?}",
            self.syslog
        );
    }

    /// Whether the user was shown `text` (PAM_TEXT_INFO goes to pamtester's
    /// stdout, PAM_ERROR_MSG to its stderr).
    pub fn said(&self, text: &str) -> bool {
        self.stdout.contains(text) || self.stderr.contains(text)
    }

    /// How many times the user was shown `text`.
    pub fn times_said(&self, text: &str) -> usize {
        self.stdout.matches(text).count() + self.stderr.matches(text).count()
    }

    /// Whether the user was asked for a verification code.
    pub fn prompted(&self) -> bool {
        self.said("Verification code")
    }
}

/// A throw-away local account, removed (with its home, unless it is an
/// alias sharing another account's home) when dropped.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    owns_home: bool,
}

/// Runs `cmd`, failing the test with `what` and its stderr unless it exits 0.
pub fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `useradd ARGS --shell /bin/sh --home-dir HOME NAME` under the
/// shadow-tools lock.
fn useradd(args: &[&str], home: &Path, name: &str) {
    let _guard = user_lock().lock().unwrap_or_else(|e| e.into_inner());
    run_ok(
        Command::new("useradd")
            .args(args)
            .args(["--shell", "/bin/sh", "--home-dir"])
            .arg(home)
            .arg(name),
        "useradd",
    );
}

fn user_lock() -> &'static Mutex<()> {
    static LOCK: Mutex<()> = Mutex::new(());
    &LOCK
}

impl TestUser {
    /// Changes the login shell (under the same lock as useradd: the shadow
    /// tools refuse to run while another one holds /etc/passwd).
    pub fn set_shell(&self, shell: &str) {
        let _guard = user_lock().lock().unwrap_or_else(|e| e.into_inner());
        let st = Command::new("usermod")
            .args(["-s", shell, &self.name])
            .status()
            .expect("usermod");
        assert!(st.success());
    }

    /// Sets the user's login password (for pam_unix).
    pub fn set_password(&self, password: &str) {
        let _guard = user_lock().lock().unwrap_or_else(|e| e.into_inner());
        let out = run_with_stdin(
            Command::new("chpasswd").arg("--crypt-method").arg("SHA512"),
            format!("{}:{password}\n", self.name).as_bytes(),
        );
        assert!(
            out.status.success(),
            "chpasswd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Creates a user with a home directory under `world`.
    pub fn new(world: &World) -> Self {
        Self::create(world, &[])
    }

    /// Creates a user whose primary group is `gid` (a group shared with
    /// another user, as `users` or a directory-service group is).
    pub fn in_group(world: &World, gid: u32) -> Self {
        Self::create(world, &["--gid", &gid.to_string()])
    }

    /// A second account name for this account's uid, gid and home (a
    /// `toor`/`root`-style alias).
    pub fn alias(&self) -> Self {
        let name = unique("oga");
        useradd(
            &[
                "--non-unique",
                "--no-create-home",
                "--uid",
                &self.uid.to_string(),
                "--gid",
                &self.gid.to_string(),
            ],
            &self.home,
            &name,
        );
        Self {
            name,
            uid: self.uid,
            gid: self.gid,
            home: self.home.clone(),
            owns_home: false,
        }
    }

    fn create(world: &World, extra: &[&str]) -> Self {
        let name = unique("ogt");
        let home = world.dir.join("home").join(&name);
        std::fs::create_dir_all(world.dir.join("home")).unwrap();
        std::fs::set_permissions(
            world.dir.join("home"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let mut args = vec!["--create-home"];
        args.extend_from_slice(extra);
        useradd(&args, &home, &name);
        let account = otpgate_core::directory::Directory::user(&otpgate_os::nss::Nss, &name)
            .unwrap()
            .unwrap();
        Self {
            name,
            uid: account.uid.as_raw(),
            gid: account.gid.as_raw(),
            home,
            owns_home: true,
        }
    }

    /// Where the default config puts this user's secret file.
    pub fn secret_file(&self) -> PathBuf {
        self.home.join(".config/otpgate/secret.toml")
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _guard = user_lock().lock().unwrap_or_else(|e| e.into_inner());
        let mut cmd = Command::new("userdel");
        cmd.arg("--force");
        if self.owns_home {
            cmd.arg("--remove");
        }
        let _ = cmd.arg(&self.name).output();
    }
}

/// The TOTP code of the RFC test key (or `secret`) at `at`, default parameters.
pub fn code_at(secret: &str, at: u64) -> String {
    let s = otpgate_core::otp::secret::Secret::from_base32(secret).unwrap();
    otpgate_core::otp::totp(&s, &otpgate_core::otp::TotpParams::DEFAULT, at).to_string()
}

/// A code that is not valid near `at` for `secret`.
pub fn wrong_code(secret: &str, at: u64) -> String {
    let near: Vec<String> = (0..=4).map(|i| code_at(secret, at + i * 30 - 60)).collect();
    (0..1_000_000u32)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

/// Decodes the QR code in an image file with zbarimg (zbar-tools); SVG is
/// rendered with rsvg-convert first.
pub fn decode_qr(path: &Path) -> String {
    let png = if path.extension().is_some_and(|e| e == "svg") {
        let png = path.with_extension("rendered.png");
        let st = Command::new("rsvg-convert")
            .arg("-o")
            .arg(&png)
            .arg(path)
            .status()
            .expect("rsvg-convert");
        assert!(st.success());
        png
    } else {
        path.to_path_buf()
    };
    let out = Command::new("zbarimg")
        .args(["--raw", "-q"])
        .arg(&png)
        .output()
        .expect("zbarimg");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Turns a QR code drawn with Unicode half blocks back into a PGM image
/// (4 pixels per module) and decodes it, so the terminal output itself is
/// what gets scanned.
pub fn decode_terminal_qr(text: &str, scratch: &Path) -> String {
    let rows: Vec<Vec<char>> = text
        .lines()
        .filter(|l| {
            l.contains('█')
                || l.contains('▀')
                || l.contains('▄')
                || (!l.is_empty() && l.trim().is_empty())
        })
        .map(|l| {
            l.replace("\x1b[30;47m", "")
                .replace("\x1b[0m", "")
                .chars()
                .collect()
        })
        .collect();
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let height = rows.len() * 2;
    let scale = 4;
    let mut pixels = vec![255u8; width * scale * height * scale];
    for (ty, row) in rows.iter().enumerate() {
        for (x, c) in row.iter().enumerate() {
            let (top, bottom) = match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                _ => (false, false),
            };
            for (dy, dark) in [(0, top), (1, bottom)] {
                if !dark {
                    continue;
                }
                let y = ty * 2 + dy;
                for py in 0..scale {
                    for px in 0..scale {
                        pixels[(y * scale + py) * width * scale + x * scale + px] = 0;
                    }
                }
            }
        }
    }
    let mut pgm = format!("P5\n{} {}\n255\n", width * scale, height * scale).into_bytes();
    pgm.extend_from_slice(&pixels);
    std::fs::write(scratch, pgm).unwrap();
    decode_qr(scratch)
}

/// Runs an expect(1) script (a real pseudo-terminal); returns its output.
pub fn expect(script: &str) -> Output {
    let mut cmd = Command::new("expect");
    cmd.arg("-");
    run_with_stdin(&mut cmd, script.as_bytes())
}

/// Recovery codes (`xxxx-xxxx-xxxx`) found in some output.
pub fn recovery_codes_in(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| {
            w.len() == 14
                && w.matches('-').count() == 2
                && w.bytes().all(|b| b == b'-' || b.is_ascii_alphanumeric())
        })
        .map(str::to_string)
        .collect()
}

/// Asserts a CLI run failed with exactly one line on stderr, starting with
/// `otpgate:` and containing `text`.
#[track_caller]
pub fn assert_cli_error(out: &Output, text: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success: {err}"
    );
    assert!(err.contains(text), "stderr lacks {text:?}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("otpgate: "),
        "not one `otpgate: ...` line: {err:?}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("Os {"),
        "not a clean error: {err}"
    );
}

/// Asserts a command-line usage error: exit code 2 and clap's `error:` line
/// naming `text` (clap adds a usage hint below it).
#[track_caller]
pub fn assert_usage_error(out: &Output, text: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2: {err}");
    let first = err.lines().next().unwrap_or("");
    assert!(
        first.starts_with("error: ") && first.contains(text),
        "first line is not clap's error naming {text:?}: {err}"
    );
}

/// stdout of a CLI run as text, asserting success.
#[track_caller]
pub fn cli_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "CLI failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A throw-away group with some members, removed when dropped.
pub struct TestGroup {
    pub name: String,
}

impl TestGroup {
    pub fn new(members: &[&TestUser]) -> Self {
        let name = unique("ogg");
        let _guard = user_lock().lock().unwrap_or_else(|e| e.into_inner());
        let st = Command::new("groupadd")
            .arg(&name)
            .status()
            .expect("groupadd");
        assert!(st.success());
        for m in members {
            let st = Command::new("usermod")
                .args(["-aG", &name, &m.name])
                .status()
                .expect("usermod");
            assert!(st.success());
        }
        Self { name }
    }
}

impl Drop for TestGroup {
    fn drop(&mut self) {
        let _guard = user_lock().lock().unwrap_or_else(|e| e.into_inner());
        let _ = Command::new("groupdel").arg(&self.name).output();
    }
}

/// The HOTP code of `secret` (base32) at `counter`, 6 digits SHA1.
pub fn hotp_at(secret: &str, counter: u64) -> String {
    let s = otpgate_core::otp::secret::Secret::from_base32(secret).unwrap();
    otpgate_core::otp::hotp(&s, otpgate_core::otp::Algorithm::SHA1, 6, counter).to_string()
}

/// Consecutive Yubico OTP touches of a simulated key from (usage, session),
/// made by an independent implementation: Debian's python3-yubiotp
/// (tests/helpers/yubiotp_gen.py).
pub fn yubico_otps(
    public: &str,
    private: &str,
    key: &str,
    usage: u16,
    session: u8,
    n: usize,
) -> Vec<String> {
    // Debian's interpreter, where python3-yubiotp is installed.
    let out = Command::new("/usr/bin/python3")
        .arg(workspace().join("tests/helpers/yubiotp_gen.py"))
        .args([
            public,
            private,
            key,
            &usage.to_string(),
            &session.to_string(),
            &n.to_string(),
        ])
        .output()
        .expect("/usr/bin/python3 (with python3-yubiotp)");
    assert!(
        out.status.success(),
        "yubiotp_gen.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(list.len(), n);
    assert!(list.iter().all(|o| o.len() == 44 && o.starts_with(public)));
    list
}
