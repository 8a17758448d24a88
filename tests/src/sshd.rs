//! A real OpenSSH server on 127.0.0.1 for end-to-end tests: its own config,
//! host key, port and PAM stack (through pam_wrapper, so the machine's
//! /etc/pam.d is not touched), stopped when dropped.

use crate::{World, run_with_stdin};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Where the installed package puts the module.
pub const INSTALLED_MODULE: &str = "/lib/x86_64-linux-gnu/security/pam_otpgate.so";

/// The module the SSH tests load: the installed package's when
/// OTPGATE_E2E_PACKAGE=1 (scripts/test.sh installs the .deb first and sets
/// it), otherwise the freshly built one.
pub fn module_under_test() -> PathBuf {
    if std::env::var_os("OTPGATE_E2E_PACKAGE").is_some() {
        assert!(
            Path::new(INSTALLED_MODULE).exists(),
            "OTPGATE_E2E_PACKAGE is set but the package is not installed"
        );
        PathBuf::from(INSTALLED_MODULE)
    } else {
        crate::module_path()
    }
}

/// A running sshd.
pub struct Sshd {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

/// A TCP port on 127.0.0.1 nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

impl Sshd {
    /// Starts sshd with `auth` lines as the PAM stack of service "sshd" and
    /// `extra` appended to sshd_config.
    pub fn start(world: &World, name: &str, auth: &[&str], extra: &str) -> Self {
        Self::launch(
            world,
            name,
            auth,
            "KbdInteractiveAuthentication yes\nPasswordAuthentication no\nAuthenticationMethods keyboard-interactive\n",
            extra,
        )
    }

    /// Starts sshd taking SSH password authentication only (the client
    /// sends one password; sshd hands it to PAM's prompt).
    pub fn start_password(world: &World, name: &str, auth: &[&str]) -> Self {
        Self::launch(
            world,
            name,
            auth,
            "KbdInteractiveAuthentication no\nPasswordAuthentication yes\nAuthenticationMethods password\n",
            "",
        )
    }

    fn launch(world: &World, name: &str, auth: &[&str], methods: &str, extra: &str) -> Self {
        let dir = world.dir.join(format!("sshd-{name}"));
        std::fs::create_dir_all(dir.join("svc")).unwrap();
        std::fs::create_dir_all(dir.join("keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let mut stack = auth.join("\n");
        stack.push_str("\naccount required pam_permit.so\nsession required pam_permit.so\n");
        std::fs::write(dir.join("svc/sshd"), stack).unwrap();
        std::fs::write(dir.join("svc/other"), "auth required pam_deny.so\n").unwrap();
        let key = dir.join("hostkey");
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(st.success());
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\nPidFile {pid}\nUsePAM yes\n\
             {methods}PubkeyAuthentication yes\n\
             AuthorizedKeysFile {keys}/%u\nStrictModes no\n\
             MaxAuthTries 3\nLoginGraceTime 30\nLogLevel VERBOSE\n{extra}\n",
            key = key.display(),
            pid = dir.join("sshd.pid").display(),
            keys = dir.join("keys").display(),
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .env("LD_PRELOAD", "libpam_wrapper.so")
            .env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_SERVICE_DIR", dir.join("svc"))
            .env("PAM_WRAPPER_DEBUGLEVEL", "2")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting /usr/sbin/sshd (install openssh-server)");
        let sshd = Self { port, dir, child };
        sshd.wait_listening();
        sshd
    }

    /// Waits (bounded) until the port accepts connections: a real readiness
    /// condition, not a sleep.
    fn wait_listening(&self) {
        let up = crate::wait_until(Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
        assert!(
            up,
            "sshd did not listen on port {}: {}",
            self.port,
            self.log()
        );
    }

    /// Authorizes a public key for `user`.
    pub fn authorize(&self, user: &str, pubkey: &str) {
        std::fs::write(self.dir.join("keys").join(user), pubkey).unwrap();
    }

    /// sshd's log (with the module's syslog lines, through pam_wrapper).
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir.join("sshd.log")) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Logs in with the real ssh client through a pseudo-terminal (expect),
    /// answering each prompt in turn, and runs `echo LOGGED-IN-OK`.
    /// `answers` are (prompt regex, reply) pairs.
    pub fn ssh(&self, user: &str, key: Option<&Path>, answers: &[(&str, &str)]) -> SshRun {
        let methods = if key.is_some() {
            "publickey,keyboard-interactive"
        } else {
            "keyboard-interactive"
        };
        self.client(user, key, methods, answers)
    }

    /// Logs in with SSH password authentication, typing `password` once.
    pub fn ssh_password(&self, user: &str, password: &str) -> SshRun {
        self.client(user, None, "password", &[("password:", password)])
    }

    fn client(
        &self,
        user: &str,
        key: Option<&Path>,
        methods: &str,
        answers: &[(&str, &str)],
    ) -> SshRun {
        let mut spawn = format!(
            "spawn ssh -p {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=INFO \
             -o PreferredAuthentications={methods} -o NumberOfPasswordPrompts=1 -o BatchMode=no -o IdentitiesOnly=yes",
            self.port
        );
        match key {
            Some(k) => spawn.push_str(&format!(" -i {}", k.display())),
            None => spawn.push_str(" -o PubkeyAuthentication=no"),
        }
        spawn.push_str(&format!(" {user}@127.0.0.1 echo LOGGED-IN-OK"));
        let mut script = format!("set timeout 20\nlog_user 1\n{spawn}\n");
        for (prompt, reply) in answers {
            script.push_str(&format!(
                "expect {{\n  -re {{{prompt}}} {{ send -- {{{reply}}}; send \"\\r\" }}\n  timeout {{ puts \"\\nEXPECT-TIMEOUT waiting for {prompt}\"; exit 3 }}\n  eof {{ puts \"\\nEXPECT-EOF before {prompt}\" }}\n}}\n"
            ));
        }
        script.push_str("expect { timeout { puts \"\\nEXPECT-TIMEOUT at end\"; exit 3 } eof {} }\ncatch wait result\nexit [lindex $result 3]\n");
        let mut cmd = Command::new("expect");
        cmd.arg("-");
        // sshd's PAM runs under pam_wrapper in a new process per connection.
        let out = {
            let _pam = crate::pam_lock();
            run_with_stdin(&mut cmd, script.as_bytes())
        };
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        SshRun {
            logged_in: out.status.success() && text.contains("LOGGED-IN-OK\r\n"),
            text,
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What an ssh attempt showed.
#[derive(Debug)]
pub struct SshRun {
    pub logged_in: bool,
    pub text: String,
}

/// Makes an ed25519 key pair; returns (private key path, public key line).
pub fn keypair(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(st.success());
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public)
}
