//! Fleet mode for end-to-end tests: a real PostgreSQL 15 started by the
//! test itself (`initdb` into a temporary directory, `pg_ctl` on 127.0.0.1
//! and a private Unix socket directory), real `otpgated` processes, one per
//! "server", each with its own config and socket.

use crate::{World, run_with_stdin, wait_until};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The PostgreSQL role and database the daemons use.
pub const ROLE: &str = "otpgate";
pub const PASSWORD: &str = "fleet-test-password";

/// Debian's PostgreSQL programs (the newest installed major version).
pub fn pg_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (apt-get install postgresql)")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("bin/initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no /usr/lib/postgresql/*/bin/initdb")
        .join("bin")
        .join(name)
}

/// Runs a command as the `postgres` system user (initdb and postgres
/// refuse to run as root).
fn as_postgres(program: &Path) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--"]).arg(program);
    cmd.current_dir("/");
    cmd
}

/// A throw-away PostgreSQL server.
pub struct Postgres {
    pub dir: PathBuf,
    pub port: u16,
    /// The Unix socket directory (for psql as the superuser).
    pub socket_dir: PathBuf,
    /// The TLS files (CA certificate) when started with TLS.
    pub ca: Option<PathBuf>,
}

impl Postgres {
    /// initdb + start, with the `otpgate` role (password) and database.
    pub fn start() -> Self {
        Self::start_with(false)
    }

    /// [`Self::start`] with TLS: a CA and a server certificate for
    /// `localhost` made by the test (openssl), `ssl = on`.
    pub fn start_tls() -> Self {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> Self {
        let (dir, socket_dir) = cluster_dir("p");
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, "superpw\n").unwrap();
        chown_postgres(&pwfile);
        let data = dir.join("data");
        let out = as_postgres(&pg_bin("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--username=postgres",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = crate::sshd::free_port();
        let mut conf = format!(
            "listen_addresses = '*'\nport = {port}\nunix_socket_directories = '{}'\n\
             fsync = off\nmax_connections = 200\n",
            socket_dir.display()
        );
        let mut ca = None;
        if tls {
            // The README's steps write the server's TLS settings into a
            // conf.d file; the test's cluster includes it.
            let made = make_certs(&dir);
            conf.push_str(&format!(
                "include '{}'\n",
                made.join("conf.d/otpgate-tls.conf").display()
            ));
            ca = Some(made.join("otpgate-db-ca.pem"));
        }
        // Servers in their own network namespaces reach it over veth links.
        let mut hba = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("pg_hba.conf"))
            .unwrap();
        std::io::Write::write_all(&mut hba, b"host all all 10.0.0.0/8 scram-sha-256\n").unwrap();
        let mut pgconf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(&mut pgconf, conf.as_bytes()).unwrap();
        let pg = Self {
            dir,
            port,
            socket_dir,
            ca,
        };
        pg.start_server();
        pg.psql_on(
            "postgres",
            &format!("CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'"),
        );
        pg.psql_on("postgres", &format!("CREATE DATABASE {ROLE} OWNER {ROLE}"));
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Starts the server (again); returns when it accepts connections.
    pub fn start_server(&self) {
        let out = as_postgres(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-w", "-t", "60", "start"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
        );
    }

    /// Stops the server at once (as a crash or an outage would).
    pub fn stop_server(&self) {
        let _ = as_postgres(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }

    /// The postmaster's pid (to freeze the server with SIGSTOP).
    pub fn pid(&self) -> i32 {
        std::fs::read_to_string(self.data().join("postmaster.pid"))
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Runs SQL as the superuser on the `otpgate` database; returns psql's
    /// unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_on(ROLE, sql)
    }

    /// [`Self::psql`] on database `db`.
    pub fn psql_on(&self, db: &str, sql: &str) -> String {
        let out = as_postgres(&pg_bin("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A full dump of the `otpgate` database (pg_dump, as a backup would be).
    pub fn dump(&self) -> String {
        let out = as_postgres(&pg_bin("pg_dump"))
            .arg("-h")
            .arg(&self.socket_dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", ROLE])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_dump failed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The `database` key for a daemon reaching this server over TCP.
    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} dbname={ROLE} user={ROLE} sslmode=disable",
            self.port
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // A frozen server (SIGSTOP test) must be thawed to be stopped.
        let _ = Command::new("kill")
            .args(["-CONT", &self.pid_or_zero().to_string()])
            .output();
        self.stop_server();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Postgres {
    fn pid_or_zero(&self) -> i32 {
        std::fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse().ok()))
            .unwrap_or(0)
    }
}

/// A new cluster's directory and its socket directory, both postgres's.
fn cluster_dir(tag: &str) -> (PathBuf, PathBuf) {
    let dir = PathBuf::from(format!("/tmp/otpgate-pg-{}", crate::unique(tag)));
    let _ = std::fs::remove_dir_all(&dir);
    let socket_dir = dir.join("sock");
    std::fs::create_dir_all(&socket_dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    chown_postgres(&dir);
    chown_postgres(&socket_dir);
    (dir, socket_dir)
}

fn chown_postgres(path: &Path) {
    let st = Command::new("chown")
        .arg("postgres:postgres")
        .arg(path)
        .status()
        .unwrap();
    assert!(st.success());
}

/// A CA and a server certificate for `localhost` (and 127.0.0.1), made with
/// the openssl command line; returns the directory holding them.
pub fn make_certs(dir: &Path) -> PathBuf {
    let certs = dir.join("certs");
    std::fs::create_dir_all(certs.join("conf.d")).unwrap();
    // The README's steps for the database's certificate, as written: only
    // the name and the directory change, and the test starts the server.
    let readme = std::fs::read_to_string(crate::workspace().join("README.md")).unwrap();
    let marker = "<!-- tested: make_certs in tests/src/fleet.rs runs this block -->";
    let block: String = readme
        .split_once(marker)
        .and_then(|(_, rest)| rest.split_once("```sh\n"))
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block.to_string())
        .expect("README: the certificate block after its marker");
    let steps = block
        .lines()
        .map(str::trim_start)
        .map(|l| {
            if l.starts_with("DB=") {
                "DB=localhost".to_string()
            } else if l.starts_with("PGCONF=") {
                format!("PGCONF={}", certs.display())
            } else if l == "systemctl restart postgresql" {
                String::new()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        steps.contains("DB=localhost") && steps.contains("PGCONF=/"),
        "{steps}"
    );
    // Another CA, for the test that a wrong one is refused.
    let sh = format!(
        "set -e\n{steps}\n
         openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj '/CN=another CA' -keyout other-ca.key -out other-ca.crt 2>/dev/null"
    );
    let out = Command::new("sh").arg("-c").arg(&sh).output().unwrap();
    assert!(
        out.status.success(),
        "the README's certificate steps: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    certs
}

/// The fleet's shared secret key (the same on every "server").
pub const FLEET_KEY: &str = "b3RwZ2F0ZSB0ZXN0IGZsZWV0IGtleSwgMzIgYnl0ZXM=";

/// Two servers of one fleet; server A's world also holds a service for B,
/// so one process can race logins on both.
pub struct Fleet {
    pub pg: Postgres,
    pub a: Server,
    pub b: Server,
}

impl Fleet {
    pub fn new(extra: &str) -> Self {
        // Tests not about timeouts wait long: many clusters and daemons
        // share the machine while the test binaries run in parallel.
        let extra = if extra.contains("store_timeout") {
            extra.to_string()
        } else {
            format!("store_timeout = 20\n{extra}")
        };
        let extra = extra.as_str();
        let pg = Postgres::start();
        let a = Server::start(&pg, extra);
        let b = Server::start(&pg, extra);
        Self::from_servers(pg, a, b)
    }

    /// Two running servers as one fleet: A's world also gets service
    /// "on-b" (B's config and daemon), so one process can race logins on
    /// both.
    pub fn from_servers(pg: Postgres, a: Server, b: Server) -> Self {
        a.world.set_stack(
            "on-b",
            &[
                "auth required pam_permit.so",
                &format!(
                    "auth required {} config={}",
                    crate::module_path().display(),
                    b.world.config.display()
                ),
            ],
        );
        Self { pg, a, b }
    }

    /// A user known to both "servers" (one /etc/passwd here).
    pub fn user(&self) -> crate::TestUser {
        crate::TestUser::new(&self.a.world)
    }
}

/// One "server" of the fleet: a world whose config says
/// `store = "postgresql"`, with its own otpgated and socket.
pub struct Server {
    pub world: World,
    pub daemon: Option<Daemon>,
}

impl Server {
    /// A world configured for `database` (its key and password files made
    /// root-only), with `extra` config; the daemon not started yet.
    pub fn configure(database: &str, extra: &str) -> World {
        let world = World::new();
        Self::switch(&world, database, extra);
        world
    }

    /// Rewrites `world`'s config for fleet mode (key and password files
    /// made root-only); its state_dir stays where it was.
    pub fn switch(world: &World, database: &str, extra: &str) {
        let key = world.dir.join("secret.key");
        write_root_only(&key, &format!("{FLEET_KEY}\n"));
        let pw = world.dir.join("db.password");
        write_root_only(&pw, &format!("{PASSWORD}\n"));
        world.set_config(&format!(
            "store = \"postgresql\"\ndatabase = \"{database}\"\n\
             database_password_file = \"{}\"\nsecret_key_file = \"{}\"\n\
             daemon_socket = \"{}\"\ndaemon_state_dir = \"{}\"\n{extra}",
            pw.display(),
            key.display(),
            world.dir.join("otpgated.sock").display(),
            world.dir.join("otpgated-seen").display()
        ));
    }

    /// A server of `pg`'s fleet, its daemon running.
    pub fn start(pg: &Postgres, extra: &str) -> Self {
        Self::start_on(&pg.conninfo(), extra)
    }

    /// A server whose daemon reaches the store at `database` (a pooler,
    /// a list of hosts), its daemon running.
    pub fn start_on(database: &str, extra: &str) -> Self {
        let world = Self::configure(database, extra);
        let daemon = Daemon::start(&world);
        Self {
            world,
            daemon: Some(daemon),
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.world.dir.join("otpgated.sock")
    }

    pub fn daemon(&self) -> &Daemon {
        self.daemon.as_ref().expect("the daemon is running")
    }
}

/// Writes a root-owned 0600 file.
pub fn write_root_only(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Path of the built `otpgated`.
pub fn daemon_path() -> PathBuf {
    crate::cli_path().with_file_name("otpgated")
}

/// A running `otpgated --config PATH`, its stderr kept in a file;
/// terminated when dropped.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts the daemon for `world` and waits until its socket accepts.
    pub fn start(world: &World) -> Self {
        Self::spawn(world, None)
    }

    fn spawn(world: &World, netns: Option<&str>) -> Self {
        let log = world
            .dir
            .join(format!("otpgated-{}.log", crate::unique("d")));
        let err = std::fs::File::create(&log).unwrap();
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(daemon_path());
                c
            }
            None => Command::new(daemon_path()),
        };
        let mut child = cmd
            .arg("--config")
            .arg(&world.config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("starting otpgated");
        let socket = socket_of(world);
        let up = wait_until(Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
                || child.try_wait().ok().flatten().is_some()
        });
        assert!(
            up && child.try_wait().ok().flatten().is_none(),
            "otpgated did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        Self { child, log }
    }

    /// What the daemon logged so far.
    pub fn logged(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// The socket a world's config names.
pub fn socket_of(world: &World) -> PathBuf {
    world.dir.join("otpgated.sock")
}

/// Runs `otpgated --config PATH --check`.
pub fn check(world: &World) -> Output {
    let mut cmd = Command::new(daemon_path());
    cmd.arg("--config").arg(&world.config).arg("--check");
    run_with_stdin(&mut cmd, b"")
}

/// The raw protocol client (tests/src/bin/fleet_client.rs), copied where
/// any user can run it (the clone may be mode 0700).
pub fn client_path() -> PathBuf {
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        // Cargo builds the package's binaries next to the others for its tests.
        let built = crate::cli_path().with_file_name("fleet_client");
        let dir = PathBuf::from(format!("/tmp/otpgate-e2e-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let copy = dir.join("fleet_client");
        crate::link_or_copy(&built, &copy);
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        copy
    })
    .clone()
}

/// Sends JSON requests (one per line) to `socket` as uid `uid` (0: root);
/// the responses, one per line.
pub fn ask(socket: &Path, uid: u32, requests: &[&str]) -> Vec<String> {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .arg("--clear-groups")
        .arg(client_path())
        .arg(socket);
    let out = run_with_stdin(&mut cmd, requests.join("\n").as_bytes());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Sends raw bytes to `socket` (as root); what came back.
pub fn ask_raw(socket: &Path, bytes: &[u8]) -> String {
    let mut cmd = Command::new(client_path());
    cmd.arg(socket).arg("--raw");
    let out = run_with_stdin(&mut cmd, bytes);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The login state the store holds for `user` (its TOML), if any.
pub fn state_of(pg: &Postgres, user: &str) -> Option<String> {
    let out = pg.psql(&format!(
        "SELECT state FROM otpgate_states WHERE user_name = '{user}'"
    ));
    (!out.trim().is_empty()).then_some(out)
}

/// How many failures a stored state holds.
pub fn failures_in(state: &str) -> usize {
    otpgate_core::store::state::UserState::parse(state.trim().as_bytes())
        .unwrap()
        .failures
        .len()
}

/// A network namespace joined to this one by a veth link: the namespace
/// side is `10.N.0.2`, this side `10.N.0.1`. Removed when dropped.
pub struct Netns {
    pub name: String,
    /// This side's interface (take it down to cut the link).
    pub host_if: String,
    pub host_ip: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    pub fn new() -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        // 10.(200..250).(0..255).x: unique per process and namespace.
        let n = N.fetch_add(1, Ordering::SeqCst);
        let a = 200 + (std::process::id() % 50);
        let b = n % 250;
        let name = format!("ogf{}x{n}", std::process::id());
        let host_if = format!("ogh{}x{n}", std::process::id() % 100_000);
        let peer_if = format!("ogp{}x{n}", std::process::id() % 100_000);
        let host_ip = format!("10.{a}.{b}.1");
        let ns_ip = format!("10.{a}.{b}.2");
        // The guard exists before anything is made: if a step below fails
        // (a panic), dropping it removes what was made so far.
        let ns = Self {
            name,
            host_if,
            host_ip,
        };
        ns.set_up(&peer_if, &ns_ip);
        ns
    }

    fn set_up(&self, peer_if: &str, ns_ip: &str) {
        let (name, host_if, host_ip) = (&self.name, &self.host_if, &self.host_ip);
        ip(&["netns", "add", name]);
        ip(&[
            "link", "add", host_if, "type", "veth", "peer", "name", peer_if,
        ]);
        ip(&["link", "set", peer_if, "netns", name]);
        ip(&["addr", "add", &format!("{host_ip}/24"), "dev", host_if]);
        ip(&["link", "set", host_if, "up"]);
        ip(&[
            "-n",
            name,
            "addr",
            "add",
            &format!("{ns_ip}/24"),
            "dev",
            peer_if,
        ]);
        ip(&["-n", name, "link", "set", peer_if, "up"]);
        ip(&["-n", name, "link", "set", "lo", "up"]);
    }

    /// Cuts (`false`) or restores (`true`) the link: packets sent into a
    /// down veth vanish, as on a black-holed network.
    pub fn link(&self, up: bool) {
        ip(&["link", "set", &self.host_if, if up { "up" } else { "down" }]);
    }
}

impl Default for Netns {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

impl Daemon {
    /// Starts the daemon for `world` inside network namespace `ns` (its
    /// Unix socket, a file, is reachable from here).
    pub fn start_in(world: &World, ns: &Netns) -> Self {
        Self::spawn(world, Some(&ns.name))
    }
}

/// A real PgBouncer (Debian's; 1.18 has no prepared-statement support) in
/// transaction pooling mode in front of `pg`, on its own Unix socket, run
/// as postgres; stopped (by its pid) when dropped.
pub struct PgBouncer {
    pub dir: PathBuf,
    pub port: u16,
}

impl PgBouncer {
    /// Starts it with `pool_size` server connections for the otpgate
    /// database; returns when it accepts connections.
    pub fn start(pg: &Postgres, pool_size: u32) -> Self {
        let dir = PathBuf::from(format!("/tmp/otpgate-pgb-{}", crate::unique("b")));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        chown_postgres(&dir);
        let port = crate::sshd::free_port();
        let users = dir.join("users.txt");
        std::fs::write(&users, format!("\"{ROLE}\" \"\"\n")).unwrap();
        chown_postgres(&users);
        let ini = dir.join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n{ROLE} = host={sock} port={pgport} dbname={ROLE} user={ROLE}\n\
                 [pgbouncer]\nlisten_addr =\nunix_socket_dir = {d}\nlisten_port = {port}\n\
                 auth_type = trust\nauth_file = {users}\npool_mode = transaction\n\
                 default_pool_size = {pool_size}\nmin_pool_size = 0\nreserve_pool_size = 0\n\
                 max_client_conn = 2000\nserver_idle_timeout = 600\n\
                 logfile = {d}/pgbouncer.log\npidfile = {d}/pgbouncer.pid\n\
                 ignore_startup_parameters = extra_float_digits,options\n",
                sock = pg.socket_dir.display(),
                pgport = pg.port,
                d = dir.display(),
                users = users.display()
            ),
        )
        .unwrap();
        chown_postgres(&ini);
        let out = as_postgres(Path::new("/usr/sbin/pgbouncer"))
            .arg("-d")
            .arg(&ini)
            .output()
            .expect("pgbouncer (apt-get install pgbouncer)");
        assert!(
            out.status.success(),
            "pgbouncer: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default()
        );
        let socket = dir.join(format!(".s.PGSQL.{port}"));
        assert!(
            wait_until(Duration::from_secs(20), || {
                std::os::unix::net::UnixStream::connect(&socket).is_ok()
            }),
            "pgbouncer did not listen: {}",
            std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default()
        );
        Self { dir, port }
    }

    /// The connection string of the pooled database.
    pub fn conninfo(&self) -> String {
        format!(
            "host={} port={} dbname={ROLE} user={ROLE}",
            self.dir.display(),
            self.port
        )
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.dir.join("pgbouncer.pid")).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            wait_until(Duration::from_secs(10), || {
                nix::sys::signal::kill(pid, None).is_err()
            });
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Postgres {
    /// The otpgate role's connections the server holds now.
    pub fn otpgate_connections(&self) -> usize {
        self.psql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = '{ROLE}'"
        ))
        .trim()
        .parse()
        .unwrap_or(usize::MAX)
    }

    /// Sets `max_connections` and restarts the server.
    pub fn set_max_connections(&self, n: u32) {
        self.psql(&format!("ALTER SYSTEM SET max_connections = {n}"));
        self.stop_server();
        self.start_server();
    }
}

impl Postgres {
    /// A streaming replica of this server (pg_basebackup -R), on its own
    /// port and socket directory, running; this server then waits for it
    /// on every commit (`synchronous_standby_names = '*'`).
    pub fn start_standby(&self) -> Postgres {
        let (dir, socket_dir) = cluster_dir("s");
        let data = dir.join("data");
        let out = as_postgres(&pg_bin("pg_basebackup"))
            .arg("-h")
            .arg(&self.socket_dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "-D",
            ])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_basebackup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = crate::sshd::free_port();
        // Later lines win over the primary's settings copied with the data.
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(
            &mut conf,
            format!(
                "port = {port}\nunix_socket_directories = '{}'\n",
                socket_dir.display()
            )
            .as_bytes(),
        )
        .unwrap();
        let standby = Postgres {
            dir,
            port,
            socket_dir,
            ca: None,
        };
        standby.start_server();
        self.psql("ALTER SYSTEM SET synchronous_standby_names = '*'");
        self.psql("SELECT pg_reload_conf()");
        // Synchronous from here on: a commit waits for the standby.
        assert!(
            wait_until(Duration::from_secs(30), || {
                self.psql("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")
                    .trim()
                    == "1"
            }),
            "the standby did not become synchronous"
        );
        standby
    }

    /// Promotes this standby to primary (a failover).
    pub fn promote(&self) {
        let out = as_postgres(&pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-w", "promote"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl promote: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
