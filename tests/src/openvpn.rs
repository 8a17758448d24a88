//! A real OpenVPN server (Debian's `openvpn`, with its
//! `openvpn-plugin-auth-pam`) and real clients on 127.0.0.1, the PAM stack
//! under pam_wrapper. Tunnels are made but never configured
//! (`ifconfig-noexec`, `route-noexec`): the host's network is not touched.

use crate::{World, pam_lock};
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The auth-pam plugin as Debian installs it.
pub const AUTH_PAM_PLUGIN: &str =
    "/usr/lib/x86_64-linux-gnu/openvpn/plugins/openvpn-plugin-auth-pam.so";

/// The PAM service name the server's plugin uses.
pub const SERVICE: &str = "openvpn";

pub struct OpenVpnServer {
    dir: PathBuf,
    port: u16,
    child: Child,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate (P-256, two days) made with openssl.
fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .args(["req", "-x509"])
        .args(ec)
        .args(["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"])
        .args(["-subj", "/CN=otpgate-test-ca"])
        .current_dir(dir));
    run(Command::new("openssl")
        .arg("req")
        .args(ec)
        .args(["-keyout", "server.key", "-out", "server.csr"])
        .args(["-subj", "/CN=otpgate-test-server"])
        .current_dir(dir));
    std::fs::write(
        dir.join("ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .args([
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
        ])
        .args([
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "ext",
        ])
        .current_dir(dir));
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port on 127.0.0.1")
}

fn read_log(path: &Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

impl OpenVpnServer {
    /// Starts the server with `auth` as the auth lines of PAM service
    /// `openvpn`, and waits until it is ready.
    pub fn start(world: &World, auth: &[&str]) -> Self {
        let dir = world.dir.join("openvpn");
        std::fs::create_dir_all(dir.join("svc")).unwrap();
        make_certificates(&dir);
        let mut stack = auth.join("\n");
        stack.push_str("\naccount required pam_permit.so\n");
        std::fs::write(dir.join("svc").join(SERVICE), stack).unwrap();
        std::fs::write(dir.join("svc/other"), "auth required pam_deny.so\n").unwrap();
        let port = free_udp_port();
        let d = dir.display();
        let config = format!(
            "mode server\ntls-server\nproto udp4\nlocal 127.0.0.1\nport {port}\ndev tun\n\
             topology subnet\nifconfig 10.213.0.1 255.255.255.0\nifconfig-pool 10.213.0.10 10.213.0.200\n\
             ifconfig-noexec\nroute-noexec\nca {d}/ca.crt\ncert {d}/server.crt\nkey {d}/server.key\n\
             dh none\nverify-client-cert none\nusername-as-common-name\nduplicate-cn\n\
             plugin {AUTH_PAM_PLUGIN} {SERVICE}\nverb 3\n"
        );
        std::fs::write(dir.join("server.conf"), config).unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        // Its own process group: the auth-pam plugin forks a helper that
        // must go when the server does.
        let child = Command::new("openvpn")
            .arg("--config")
            .arg(dir.join("server.conf"))
            .process_group(0)
            .env("LD_PRELOAD", "libpam_wrapper.so")
            .env("PAM_WRAPPER", "1")
            .env("PAM_WRAPPER_SERVICE_DIR", dir.join("svc"))
            .env("PAM_WRAPPER_DEBUGLEVEL", "2")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting openvpn (install the openvpn package)");
        let server = Self { dir, port, child };
        server.wait_ready();
        server
    }

    /// Waits (bounded) for the server's own "ready" line: a real readiness
    /// condition, not a sleep.
    fn wait_ready(&self) {
        let ready = crate::wait_until(Duration::from_secs(30), || {
            let log = self.log();
            assert!(
                !log.contains("Exiting due to fatal error"),
                "openvpn server failed: {log}"
            );
            log.contains("Initialization Sequence Completed")
        });
        assert!(ready, "openvpn server not ready: {}", self.log());
    }

    /// The server's log, with the module's syslog lines (through pam_wrapper).
    pub fn log(&self) -> String {
        read_log(&self.dir.join("server.log"))
    }

    /// Connects a real client with `user` and `password` (auth-user-pass);
    /// true when the server accepted it and the tunnel came up, false when
    /// the server said AUTH_FAILED.
    pub fn connect(&self, user: &str, password: &str) -> bool {
        let creds = self.dir.join("creds");
        std::fs::write(&creds, format!("{user}\n{password}\n")).unwrap();
        std::fs::set_permissions(
            &creds,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
        )
        .unwrap();
        let d = self.dir.display();
        let config = format!(
            "client\nproto udp4\nremote 127.0.0.1 {port}\ndev tun\nnobind\nifconfig-noexec\n\
             route-noexec\nca {d}/ca.crt\nauth-user-pass {creds}\nauth-retry none\nverb 3\n",
            port = self.port,
            creds = creds.display()
        );
        std::fs::write(self.dir.join("client.conf"), config).unwrap();
        let _pam = pam_lock();
        let mut child = Command::new("openvpn")
            .arg("--config")
            .arg(self.dir.join("client.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the openvpn client");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        let verdict = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("Initialization Sequence Completed") => break Some(true),
                Ok(line) if line.contains("AUTH_FAILED") => break Some(false),
                Ok(line) => seen.push(line),
                Err(_) => break None,
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(&creds);
        verdict.unwrap_or_else(|| {
            panic!(
                "the openvpn client neither connected nor was refused: {}\nserver: {}",
                seen.join("\n"),
                self.log()
            )
        })
    }
}

impl Drop for OpenVpnServer {
    /// Stops the server and the plugin's helper: the whole process group.
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}
