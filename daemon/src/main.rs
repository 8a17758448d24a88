//! `otpgated`: the fleet-mode daemon. It runs as root on each server, owns
//! the PostgreSQL connections and answers the PAM module and the `otpgate`
//! CLI on a Unix socket, so no network client, TLS or thread pool ever
//! runs inside sshd or sudo, and users enroll without database credentials.
//!
//! `otpgated --config PATH` serves in the foreground (log to stderr and
//! syslog); `--check` verifies the database, its schema and the key, then
//! exits.

mod activation;
mod db;
mod history;
mod log;
mod memory;
mod metrics;
mod server;

use clap::Parser;
use log::{Level, Log};
use otpgate_core::config::conninfo::ConnInfo;
use otpgate_core::config::{Config, Source};
use otpgate_core::fleet::seal;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "otpgated",
    version,
    about = "otpgate fleet daemon: enrollments and login state in PostgreSQL, served to pam_otpgate.so and otpgate on a Unix socket"
)]
struct Args {
    /// The config file (the same one the module and the CLI read).
    #[arg(long, value_name = "PATH", default_value = otpgate_core::config::DEFAULT_PATH)]
    config: PathBuf,
    /// Check the database connection, the schema and the key, then exit:
    /// 0 if all is well, 1 with what is wrong.
    #[arg(long)]
    check: bool,
}

/// Everything the daemon needs, read once at start.
struct Setup {
    config: Config,
    db: db::Db,
    key: seal::Key,
}

/// Why otpgated cannot start, or what `--check` found wrong.
#[derive(Debug)]
enum StartError {
    Config(otpgate_core::config::ConfigError),
    Key(seal::KeyError),
    Db(db::DbError),
    /// Anything else, said in full.
    Other(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(e) => e.fmt(f),
            Self::Key(e) => e.fmt(f),
            Self::Db(e) => e.fmt(f),
            Self::Other(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config(e) => Some(e),
            Self::Key(e) => Some(e),
            Self::Db(e) => Some(e),
            Self::Other(_) => None,
        }
    }
}

impl From<otpgate_core::config::ConfigError> for StartError {
    fn from(e: otpgate_core::config::ConfigError) -> Self {
        Self::Config(e)
    }
}

impl From<seal::KeyError> for StartError {
    fn from(e: seal::KeyError) -> Self {
        Self::Key(e)
    }
}

impl From<db::DbError> for StartError {
    fn from(e: db::DbError) -> Self {
        Self::Db(e)
    }
}

impl From<String> for StartError {
    fn from(why: String) -> Self {
        Self::Other(why)
    }
}

fn setup(path: &Path) -> Result<Setup, StartError> {
    let config = otpgate_os::config::load(&Source::Explicit(path.to_path_buf()))?;
    // `store` says what the module and the CLI of this server use; the
    // daemon serves as soon as the fleet keys are there, so it can run
    // (and `otpgate migrate` fill the store) while logins still read files.
    if config.database.trim().is_empty() {
        return Err(StartError::Other(format!(
            "{}: `database` is not set; otpgated serves fleet mode: set `database`, `database_password_file` and `secret_key_file` (README \"Fleet mode\")",
            path.display()
        )));
    }
    let info = ConnInfo::parse(&config.database)
        .map_err(|e| format!("{}: key `database`: {e}", path.display()))?;
    let password = if config.database_password_file.is_empty() {
        None
    } else {
        let bytes = otpgate_os::key::read_root_only(
            Path::new(&config.database_password_file),
            "database_password_file",
            4096,
        )?;
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| StartError::Other("database_password_file: is not UTF-8 text".into()))?;
        Some(zeroize::Zeroizing::new(
            text.trim_end_matches(['\n', '\r']).to_string(),
        ))
    };
    let key = otpgate_os::key::load_key(&config.secret_key_file)?;
    let db = db::Db::new(
        &info,
        password.as_deref().map(String::as_str),
        Duration::from_secs(config.store_timeout),
        db::Pool {
            size: config.database_pool_size as usize,
            idle_timeout: Duration::from_secs(config.database_idle_timeout),
        },
    )?;
    Ok(Setup { config, db, key })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let log = Log::new();
    let setup = match setup(&args.config) {
        Ok(s) => s,
        Err(e) => {
            log.line(Level::Err, &format!("cannot start: {e}"));
            return ExitCode::from(1);
        }
    };
    // Taken before any thread exists (it edits the environment).
    let inherited = if args.check {
        None
    } else {
        // SAFETY: this is `main` before the runtime or any other thread
        // exists, and nothing in this process has touched descriptor 3.
        #[allow(unsafe_code)]
        unsafe {
            activation::inherited_listener()
        }
    };
    // One thread: a daemon answers one server's logins, each a few
    // microseconds of work between database round trips; a pool of worker
    // threads per daemon only added wake-ups and hand-offs between them
    // (measured: 0.8× the logins per second with four workers). The
    // journal of what was seen has its own writer thread (memory.rs).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            log.line(Level::Err, &format!("cannot start the runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    if args.check {
        return runtime.block_on(check(&setup, &log));
    }
    runtime.block_on(run(setup, log, inherited))
}

async fn check(setup: &Setup, log: &Log) -> ExitCode {
    match check_all(setup).await {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            log.line(Level::Err, &format!("check failed: {e}"));
            ExitCode::from(1)
        }
    }
}

async fn check_all(setup: &Setup) -> Result<Vec<String>, StartError> {
    let db = &setup.db;
    let version = db.schema_version().await?;
    let mut lines = vec![format!("database: connected ({})", db.target)];
    let latest = db::latest();
    if version > latest {
        return Err(StartError::Other(format!(
            "the database has schema version {version}, newer than this otpgated knows ({latest}); upgrade otpgate on this host"
        )));
    }
    if version < latest {
        let can_create = db.can_create().await?;
        if !can_create {
            return Err(StartError::Other(format!(
                "the database has schema version {version} and this otpgated needs {latest}, but the role may not create tables in schema public; \
                 GRANT CREATE ON SCHEMA public TO the otpgate role (README \"Fleet mode\")"
            )));
        }
        lines.push(format!(
            "schema: version {version}; otpgated will migrate it to {latest} when it starts"
        ));
    } else {
        lines.push(format!("schema: version {version} (current)"));
        match db.sample().await? {
            Some((user, row)) => {
                let binding = seal::Binding {
                    user: &user,
                    id: &row.id,
                    counter: row.counter,
                    removed: row.removed,
                };
                setup.key.open_row(binding, &row.nonce, &row.sealed).map_err(|why| {
                    format!(
                        "the enrollment of {user} does not open: {why}; copy the secret_key_file of the other hosts to {}",
                        setup.config.secret_key_file.display()
                    )
                })?;
                lines.push("key: opens the store's enrollments".into());
            }
            None => lines.push(
                "key: loaded, but not checked yet: the store has no enrollment it could open; \
                 make sure every server has the same secret_key_file before the first enrollment"
                    .into(),
            ),
        }
    }
    lines.push("ok".into());
    Ok(lines)
}

async fn run(
    setup: Setup,
    log: Log,
    inherited: Option<std::os::unix::net::UnixListener>,
) -> ExitCode {
    let socket = setup.config.daemon_socket.clone();
    let memory = match memory::Memory::open(&setup.config.daemon_state_dir) {
        Ok(m) => m,
        Err(e) => {
            log.line(Level::Err, &format!("cannot start: {e}"));
            return ExitCode::from(1);
        }
    };
    let service = Arc::new(server::Service::new(
        setup.db,
        setup.key,
        setup.config,
        log,
        memory,
    ));
    // The schema first, so the socket answers with it in place; if the
    // database is not there (within store_timeout), on first use.
    if let Err(e) = service.ensure_schema().await {
        service.log.line(
            Level::Err,
            &format!("database unavailable at start (logins are denied until it is back): {e}"),
        );
    }
    // The login history, the list of servers and the pruning, once the
    // schema is there.
    let keeper = Arc::clone(&service);
    tokio::spawn(async move {
        while keeper.ensure_schema().await.is_err() {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let (db, log, history) = (&keeper.db, &keeper.log, &keeper.history);
        tokio::join!(
            history.write_forever(db, log),
            history.prune_forever(db, log)
        );
    });
    let beating = Arc::clone(&service);
    tokio::spawn(async move { beating.heartbeat_forever().await });
    match service.config.metrics_address() {
        Ok(Some(addr)) => match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                service
                    .log
                    .line(Level::Info, &format!("metrics on http://{addr}/metrics"));
                let scraped = Arc::clone(&service);
                tokio::spawn(metrics::serve(listener, move || scraped.scrape()));
            }
            // Logins do not depend on the metrics: serve on without them.
            Err(e) => service.log.line(
                Level::Err,
                &format!(
                    "metrics_listen {addr}: cannot listen ({e}); serving logins without metrics"
                ),
            ),
        },
        Ok(None) => {}
        Err(e) => service
            .log
            .line(Level::Err, &format!("metrics_listen: {e}")),
    }
    // Idle database connections are closed after database_idle_timeout.
    let reaper = Arc::clone(&service);
    tokio::spawn(async move {
        let every = Duration::from_secs(reaper.config.database_idle_timeout.div_ceil(4).max(1));
        loop {
            tokio::time::sleep(every).await;
            reaper.db.close_idle().await;
        }
    });
    let log = &service.log;
    let listener = match inherited {
        Some(l) => {
            log.line(Level::Info, "listening on the socket systemd passed");
            l
        }
        None => match bind(&socket) {
            Ok(l) => {
                log.line(Level::Info, &format!("listening on {}", socket.display()));
                l
            }
            Err(e) => {
                log.line(Level::Err, &format!("cannot start: {e}"));
                return ExitCode::from(1);
            }
        },
    };
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixListener::from_std(listener))
    {
        Ok(l) => l,
        Err(e) => {
            log.line(Level::Err, &format!("cannot use the socket: {e}"));
            return ExitCode::from(1);
        }
    };
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            log.line(Level::Err, &format!("cannot watch SIGTERM: {e}"));
            return ExitCode::from(1);
        }
    };
    tokio::select! {
        () = server::serve(listener, Arc::clone(&service)) => {}
        _ = term.recv() => log.line(Level::Info, "stopping (SIGTERM)"),
        _ = tokio::signal::ctrl_c() => log.line(Level::Info, "stopping (SIGINT)"),
    }
    // The decisions still waiting go to the history; `otpgate audit
    // --servers` then says "stopped", not "not seen".
    let _ = tokio::time::timeout(Duration::from_secs(2), service.history.flush(&service.db)).await;
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        service
            .db
            .heartbeat(&service.history.server, db::Beat::Stopping),
    )
    .await;
    ExitCode::SUCCESS
}

/// Binds the socket: its directory made 0755 if missing, a stale socket
/// replaced, a live daemon left alone. Mode 0666: every user may connect;
/// the daemon decides by the caller's uid.
fn bind(path: &Path) -> Result<std::os::unix::net::UnixListener, String> {
    let shown = path.display();
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(format!(
            "{shown}: another otpgated is already listening there; stop it first"
        ));
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
            std::fs::remove_file(path).map_err(|e| format!("removing the stale {shown}: {e}"))?;
        }
        Ok(_) => {
            return Err(format!(
                "{shown} exists and is not a socket; remove it or choose another daemon_socket"
            ));
        }
        Err(_) => {}
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .map_err(|e| format!("binding {shown}: {e}"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| format!("{shown}: {e}"))?;
    Ok(listener)
}
