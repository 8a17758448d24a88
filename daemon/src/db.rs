//! The PostgreSQL engine: connections (with TLS as `sslmode` says), the
//! schema and its migrations, and every query the daemon runs. Each call
//! runs under a deadline; a connection that failed or timed out is dropped,
//! and the next call connects again (so the daemon recovers by itself when
//! the database is back).

use otpgate_core::config::conninfo::ConnInfo;
use otpgate_core::fleet::history::{HistoryEntry, ServerEntry};
use otpgate_core::fleet::seal::{Binding, Key};
use std::time::Duration;
use std::time::Instant;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinHandle;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};

/// The schema, one migration per step, each applied in one transaction.
/// Never edit a released step: add one. Step 2 also runs [`reseal`] in its
/// transaction (it needs the key), so no unsealed row outlives it.
pub const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        include_str!("../migrations/001_enrollments_and_states.sql"),
    ),
    (
        2,
        include_str!("../migrations/002_counters_removal_records_state_macs.sql"),
    ),
    (
        3,
        include_str!("../migrations/003_login_history_and_servers.sql"),
    ),
];

/// The schema version this build needs.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |(v, _)| *v)
}

/// Why a database step failed: the database could not be reached (or
/// not in time), or it answered and refused the statement. The two are
/// told apart in the log, in the metrics and in what the module hears.
#[derive(Debug)]
pub enum DbError {
    /// Not connected, the connection broke, or the deadline passed.
    Unavailable {
        why: String,
        source: Option<tokio_postgres::Error>,
    },
    /// The database answered, but with an error (privileges, a broken
    /// schema, a full disk, a value out of range).
    Query {
        why: String,
        source: Option<tokio_postgres::Error>,
    },
}

impl DbError {
    pub fn unavailable(why: impl Into<String>) -> Self {
        Self::Unavailable {
            why: why.into(),
            source: None,
        }
    }

    pub fn query(why: impl Into<String>) -> Self {
        Self::Query {
            why: why.into(),
            source: None,
        }
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable { why, .. } | Self::Query { why, .. } => f.write_str(why),
        }
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unavailable { source, .. } | Self::Query { source, .. } => source
                .as_ref()
                .map(|e| e as &(dyn std::error::Error + 'static)),
        }
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.is_closed() {
            return Self::Unavailable {
                why: format!("the database connection broke: {e}"),
                source: Some(e),
            };
        }
        match e.as_db_error().map(|db| db.message().to_string()) {
            Some(message) => Self::Query {
                why: format!("database: {message}"),
                source: Some(e),
            },
            None => Self::Unavailable {
                why: format!("database: {e}"),
                source: Some(e),
            },
        }
    }
}

/// A connection and the task driving it (aborted when dropped, so a
/// connection to a black-holed server never lingers).
struct Conn {
    client: Client,
    task: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

enum Tls {
    None,
    OpenSsl(postgres_openssl::MakeTlsConnector),
}

/// The pool's settings (`database_pool_size`, `database_idle_timeout`).
#[derive(Debug, Clone, Copy)]
pub struct Pool {
    pub size: usize,
    pub idle_timeout: Duration,
}

/// A bounded pool of connections to the database: at most `size` open at
/// once (a request waits for one within its deadline, never opens more),
/// idle ones closed after `idle_timeout`. With a pooler such as PgBouncer
/// in front, the database sees the pooler's connections only: every query
/// is sent as one unnamed statement with its parameters' types (the
/// `*_typed` calls), never a named prepared statement, and no session
/// state is set outside a transaction — so transaction pooling works, also
/// Debian 12's PgBouncer 1.18, which has no prepared-statement support.
pub struct Db {
    config: tokio_postgres::Config,
    tls: Tls,
    /// Idle connections and when each was last given back, newest last.
    idle: Mutex<Vec<(Conn, Instant)>>,
    /// One permit per connection that may be open (idle or in use).
    permits: Semaphore,
    size: usize,
    idle_timeout: Duration,
    timeout: Duration,
    /// What the connection string says, for messages.
    pub target: String,
    /// What a failed connection's message should point at.
    hints: Hints,
}

/// The settings a connection failure's message names.
struct Hints {
    /// `sslrootcert`, if set.
    root_cert: Option<String>,
    /// Whether a password file gave a password.
    password: bool,
}

/// A connection failure in one line: each cause once (OpenSSL's stack
/// repeats itself down the error chain), and what to do for the failures a
/// newcomer meets first.
fn connect_failure(e: &tokio_postgres::Error, hints: &Hints) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    let why = parts.join(": ");
    if why.contains("certificate verify failed") {
        let against = hints.root_cert.as_deref().map_or_else(
            || "the system's CAs (no sslrootcert)".to_string(),
            |f| format!("sslrootcert={f}"),
        );
        return format!(
            "the database server's certificate did not verify against {against} ({why}); \
             set sslrootcert in `database` to the CA file that signed the server's certificate, \
             whose name must be the host you connect to (README \"Fleet mode\", step 1)"
        );
    }
    if why.contains("password missing") && !hints.password {
        return format!(
            "{why}: the database asks for a password; put it in a root-only file and name it in \
             database_password_file (README \"Fleet mode\", step 3)"
        );
    }
    why
}

impl Db {
    /// Builds the connection settings (no connection yet).
    pub fn new(
        info: &ConnInfo,
        password: Option<&str>,
        timeout: Duration,
        pool: Pool,
    ) -> Result<Self, String> {
        let mut config = tokio_postgres::Config::new();
        let mut ports = Vec::new();
        for (key, value) in &info.params {
            match key.as_str() {
                "host" => {
                    for h in value.split(',') {
                        config.host(h);
                    }
                }
                "hostaddr" => {
                    for a in value.split(',') {
                        config.hostaddr(
                            a.parse()
                                .map_err(|_| format!("hostaddr={a} is not an IP address"))?,
                        );
                    }
                }
                "port" => {
                    for p in value.split(',') {
                        ports.push(
                            p.parse::<u16>()
                                .map_err(|_| format!("port={p} is not a port"))?,
                        );
                    }
                }
                "dbname" => {
                    config.dbname(value);
                }
                "user" => {
                    config.user(value);
                }
                "application_name" => {
                    config.application_name(value);
                }
                "options" => {
                    config.options(value);
                }
                "keepalives" => {
                    config.keepalives(value != "0");
                }
                "keepalives_idle" => {
                    config.keepalives_idle(Duration::from_secs(value.parse().unwrap_or(60)));
                }
                "target_session_attrs" => {
                    config.target_session_attrs(match value.as_str() {
                        "any" => tokio_postgres::config::TargetSessionAttrs::Any,
                        "read-write" => tokio_postgres::config::TargetSessionAttrs::ReadWrite,
                        other => {
                            return Err(format!(
                                "target_session_attrs={other} is not supported; use any or read-write"
                            ));
                        }
                    });
                }
                // Handled below (TLS) or by the daemon's own deadline.
                _ => {}
            }
        }
        for p in ports {
            config.port(p);
        }
        if info.get("host").is_none() && info.get("hostaddr").is_none() {
            // libpq's default: the local server's socket directory.
            config.host("/var/run/postgresql");
        }
        if info.get("application_name").is_none() {
            config.application_name("otpgated");
        }
        if info.get("user").is_none() {
            config.user("otpgate");
        }
        if let Some(pw) = password {
            config.password(pw);
        }
        // A connection attempt may not outlast the login waiting on it.
        let connect = info
            .get("connect_timeout")
            .and_then(|t| t.parse::<u64>().ok())
            .filter(|t| *t > 0)
            .map_or(timeout, |t| Duration::from_secs(t).min(timeout));
        config.connect_timeout(connect);
        config.tcp_user_timeout(timeout);
        let mode = info.sslmode();
        config.ssl_mode(match mode {
            "disable" => tokio_postgres::config::SslMode::Disable,
            "prefer" => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        let tls = if mode == "disable" {
            Tls::None
        } else {
            Tls::OpenSsl(tls_connector(info, mode)?)
        };
        let target = info
            .params
            .iter()
            .filter(|(k, _)| {
                matches!(
                    k.as_str(),
                    "host" | "hostaddr" | "port" | "dbname" | "user" | "sslmode"
                )
            })
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Self {
            config,
            tls,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(pool.size),
            size: pool.size,
            idle_timeout: pool.idle_timeout,
            timeout,
            target,
            hints: Hints {
                root_cert: info.get("sslrootcert").map(str::to_string),
                password: password.is_some(),
            },
        })
    }

    async fn connect(&self) -> Result<Conn, DbError> {
        let unavailable = |e: tokio_postgres::Error| {
            DbError::unavailable(format!(
                "cannot connect to the database ({}): {}",
                self.target,
                connect_failure(&e, &self.hints)
            ))
        };
        let (client, task) = match &self.tls {
            Tls::None => {
                let (client, conn) = self.config.connect(NoTls).await.map_err(unavailable)?;
                (client, tokio::spawn(async move { drop(conn.await) }))
            }
            Tls::OpenSsl(tls) => {
                let (client, conn) = self
                    .config
                    .connect(tls.clone())
                    .await
                    .map_err(unavailable)?;
                (client, tokio::spawn(async move { drop(conn.await) }))
            }
        };
        Ok(Conn { client, task })
    }

    /// An idle connection that still works (the most recently used), or a
    /// new one. The caller holds a permit.
    async fn take(&self) -> Result<Conn, DbError> {
        loop {
            let next = self.idle.lock().await.pop();
            match next {
                Some((conn, _)) if !conn.client.is_closed() => return Ok(conn),
                Some(_) => continue,
                None => return self.connect().await,
            }
        }
    }

    async fn give_back(&self, conn: Conn) {
        if !conn.client.is_closed() {
            self.idle.lock().await.push((conn, Instant::now()));
        }
    }

    /// Closes the connections idle for longer than `database_idle_timeout`
    /// (run periodically by the daemon), so a quiet fleet holds no
    /// database connections.
    pub async fn close_idle(&self) {
        let mut idle = self.idle.lock().await;
        let timeout = self.idle_timeout;
        idle.retain(|(conn, since)| since.elapsed() < timeout && !conn.client.is_closed());
    }

    /// Runs `op` on a connection under the deadline: waiting for a free
    /// one counts against it too. The connection goes back to the pool
    /// only if `op` finished without a connection error.
    pub async fn run<T, F>(&self, op: F) -> Result<T, DbError>
    where
        F: for<'c> FnOnce(
            &'c mut Client,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = Result<T, DbError>> + Send + 'c>,
        >,
    {
        let work = async {
            let _permit = self
                .permits
                .acquire()
                .await
                .map_err(|_| DbError::unavailable("the connection pool is closed"))?;
            let mut conn = self.take().await?;
            let result = op(&mut conn.client).await;
            if !matches!(result, Err(DbError::Unavailable { .. })) {
                self.give_back(conn).await;
            }
            result
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(DbError::unavailable(format!(
                "the database ({}) did not answer within {} s (or all {} pooled connections stayed busy)",
                self.target,
                self.timeout.as_secs(),
                self.size
            ))),
        }
    }

    /// Brings the schema up to [`latest`]; each step in its own
    /// transaction, serialized across daemons by an advisory lock.
    pub async fn migrate(&self, key: &Key) -> Result<Vec<i32>, DbError> {
        let key = key.clone();
        self.run(move |c| {
            Box::pin(async move {
                c.batch_execute(
                    "CREATE TABLE IF NOT EXISTS otpgate_schema (
                        version integer PRIMARY KEY,
                        applied_at timestamptz NOT NULL DEFAULT now())",
                )
                .await?;
                let mut applied = Vec::new();
                for (version, sql) in MIGRATIONS {
                    let tx = c.transaction().await?;
                    tx.execute_typed("SELECT pg_advisory_xact_lock(4242001)", &[])
                        .await?;
                    let done = tx
                        .query_typed_opt(
                            "SELECT 1 FROM otpgate_schema WHERE version = $1",
                            &[(version, Type::INT4)],
                        )
                        .await?
                        .is_some();
                    if !done {
                        tx.batch_execute(sql).await?;
                        if *version == 2 {
                            reseal(&tx, &key).await?;
                        }
                        tx.execute_typed(
                            "INSERT INTO otpgate_schema (version) VALUES ($1)",
                            &[(version, Type::INT4)],
                        )
                        .await?;
                        applied.push(*version);
                    }
                    tx.commit().await?;
                }
                Ok(applied)
            })
        })
        .await
    }

    /// The schema version the database has (0: none).
    pub async fn schema_version(&self) -> Result<i32, DbError> {
        self.run(|c| {
            Box::pin(async move {
                let exists = c
                    .query_typed_one("SELECT to_regclass('otpgate_schema') IS NOT NULL", &[])
                    .await?
                    .get::<_, bool>(0);
                if !exists {
                    return Ok(0);
                }
                let row = c
                    .query_typed_one("SELECT coalesce(max(version), 0) FROM otpgate_schema", &[])
                    .await?;
                Ok(row.get::<_, i32>(0))
            })
        })
        .await
    }

    /// `user`'s enrollment row (an enrollment or a removal record).
    pub async fn load(&self, user: &str) -> Result<Option<SealedRow>, DbError> {
        let user = user.to_string();
        self.run(move |c| {
            Box::pin(async move {
                let row = c
                    .query_typed_opt(
                        "SELECT enrollment_id, nonce, sealed, counter, removed FROM otpgate_enrollments WHERE user_name = $1",
                        &[(&user, Type::TEXT)],
                    )
                    .await
                    ?;
                Ok(row.map(|r| SealedRow {
                    id: r.get(0),
                    nonce: r.get(1),
                    sealed: r.get(2),
                    counter: counter_of(r.get(3)),
                    removed: r.get(4),
                }))
            })
        })
        .await
    }

    /// `user`'s enrollment row and login state in one statement (a login's
    /// first request: one round trip to the database instead of two).
    pub async fn load_for_login(
        &self,
        user: &str,
    ) -> Result<(Option<SealedRow>, Option<StateRow>), DbError> {
        let user = user.to_string();
        self.run(move |c| {
            Box::pin(async move {
                let r = c
                    .query_typed_one(
                        "SELECT e.enrollment_id, e.nonce, e.sealed, e.counter, e.removed,
                                s.version, s.state, s.mac
                         FROM (SELECT $1::text AS user_name) AS q
                         LEFT JOIN otpgate_enrollments e ON e.user_name = q.user_name
                         LEFT JOIN otpgate_states s ON s.user_name = q.user_name",
                        &[(&user, Type::TEXT)],
                    )
                    .await?;
                let counter: Option<i64> = r.get(3);
                let enrollment = counter.map(|counter| SealedRow {
                    id: r.get::<_, Option<String>>(0).unwrap_or_default(),
                    nonce: r.get::<_, Option<Vec<u8>>>(1).unwrap_or_default(),
                    sealed: r.get::<_, Option<Vec<u8>>>(2).unwrap_or_default(),
                    counter: counter_of(counter),
                    removed: r.get::<_, Option<bool>>(4).unwrap_or_default(),
                });
                let version: Option<i64> = r.get(5);
                let state = version.map(|version| StateRow {
                    version: counter_of(version),
                    state: r.get::<_, Option<String>>(6).unwrap_or_default(),
                    mac: r.get(7),
                });
                Ok((enrollment, state))
            })
        })
        .await
    }

    /// Compare-and-set of `user`'s enrollment row: written only if the row
    /// still has counter `expected` (`None`: there is no row yet).
    pub async fn write_row(
        &self,
        user: &str,
        expected: Option<u64>,
        row: SealedRow,
        summary: Summary,
    ) -> Result<bool, DbError> {
        let user = user.to_string();
        let expected = expected.map(to_sql).transpose()?;
        let counter = to_sql(row.counter)?;
        self.run(move |c| {
            Box::pin(async move {
                let params = enrollment_params(&user, &row, &summary, &counter);
                let n = match expected {
                    None => {
                        c.execute_typed(
                            &format!("{INSERT_ENROLLMENT} ON CONFLICT (user_name) DO NOTHING"),
                            &params,
                        )
                        .await
                    }
                    Some(old) => {
                        let mut p = params.to_vec();
                        p.push((&old, Type::INT8));
                        c.execute_typed(
                            "UPDATE otpgate_enrollments SET enrollment_id = $2, created = $3,
                             devices = $4, recovery_codes = $5, nonce = $6, sealed = $7,
                             counter = $8, removed = $9, updated_at = now()
                             WHERE user_name = $1 AND counter = $10",
                            &p,
                        )
                        .await
                    }
                }?;
                Ok(n == 1)
            })
        })
        .await
    }

    /// `user`'s login state: (version, text, MAC), if there is one.
    pub async fn read_state(&self, user: &str) -> Result<Option<StateRow>, DbError> {
        let user = user.to_string();
        self.run(move |c| {
            Box::pin(async move {
                let row = c
                    .query_typed_opt(
                        "SELECT version, state, mac FROM otpgate_states WHERE user_name = $1",
                        &[(&user, Type::TEXT)],
                    )
                    .await?;
                Ok(row.map(|r| StateRow {
                    version: counter_of(r.get(0)),
                    state: r.get(1),
                    mac: r.get(2),
                }))
            })
        })
        .await
    }

    /// Compare-and-set: writes `next` if `user`'s state is still at
    /// `version` (0: there is none yet). The row count decides; a login
    /// that lost the race gets `false` and decides again.
    pub async fn write_state(
        &self,
        user: &str,
        version: u64,
        next: StateRow,
    ) -> Result<bool, DbError> {
        let user = user.to_string();
        let version = to_sql(version)?;
        let new_version = to_sql(next.version)?;
        self.run(move |c| {
            Box::pin(async move {
                let n = if version == 0 {
                    c.execute_typed(
                        "INSERT INTO otpgate_states (user_name, version, state, mac) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (user_name) DO NOTHING",
                        &[
                            (&user, Type::TEXT),
                            (&new_version, Type::INT8),
                            (&next.state, Type::TEXT),
                            (&next.mac, Type::BYTEA),
                        ],
                    )
                    .await
                } else {
                    c.execute_typed(
                        "UPDATE otpgate_states SET state = $3, version = $4, mac = $5, updated_at = now()
                         WHERE user_name = $1 AND version = $2",
                        &[
                            (&user, Type::TEXT),
                            (&version, Type::INT8),
                            (&next.state, Type::TEXT),
                            (&new_version, Type::INT8),
                            (&next.mac, Type::BYTEA),
                        ],
                    )
                    .await
                }
                ?;
                Ok(n == 1)
            })
        })
        .await
    }

    /// Every enrolled account name (removal records left out).
    pub async fn list(&self) -> Result<Vec<String>, DbError> {
        self.run(|c| {
            Box::pin(async move {
                let rows = c
                    .query_typed(
                        "SELECT user_name FROM otpgate_enrollments WHERE NOT removed ORDER BY user_name",
                        &[],
                    )
                    .await
                    ?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
        })
        .await
    }

    /// Every account with a row, with its enrollment counter and state
    /// version as stored (0: no such row), for `accept-restore`.
    pub async fn counters(&self) -> Result<Vec<(String, u64, u64)>, DbError> {
        self.run(|c| {
            Box::pin(async move {
                let rows = c
                    .query_typed(
                        "SELECT coalesce(e.user_name, s.user_name), coalesce(e.counter, 0), coalesce(s.version, 0)
                         FROM otpgate_enrollments e FULL JOIN otpgate_states s ON e.user_name = s.user_name",
                        &[],
                    )
                    .await
                    ?;
                Ok(rows
                    .iter()
                    .map(|r| (r.get(0), counter_of(r.get(1)), counter_of(r.get(2))))
                    .collect())
            })
        })
        .await
    }
}

/// A counter as PostgreSQL's bigint.
fn to_sql(n: u64) -> Result<i64, DbError> {
    i64::try_from(n).map_err(|_| DbError::query("a counter is out of range"))
}

/// A stored bigint counter (never negative: a negative one reads as 0,
/// which is older than anything seen).
fn counter_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Step 2 of the schema: every enrollment sealed again with its counter
/// (and the removed flag) bound in, and every state given its MAC, in the
/// migration's own transaction. A row that does not open with this key
/// stops the migration: nothing is half-converted.
async fn reseal(tx: &tokio_postgres::Transaction<'_>, key: &Key) -> Result<(), DbError> {
    let bad = |why: String| {
        DbError::query(format!(
            "schema migration 2 (sealing rows with counters): {why}"
        ))
    };
    let rows = tx
        .query_typed(
            "SELECT user_name, enrollment_id, nonce, sealed FROM otpgate_enrollments",
            &[],
        )
        .await?;
    for r in rows {
        let (user, id): (String, String) = (r.get(0), r.get(1));
        let (nonce, sealed): (Vec<u8>, Vec<u8>) = (r.get(2), r.get(3));
        let plain = key
            .open(&user, &id, &nonce, &sealed)
            .map_err(|why| bad(format!("the enrollment of {user}: {why}")))?;
        let binding = Binding {
            user: &user,
            id: &id,
            counter: 1,
            removed: false,
        };
        let (nonce, sealed) = key
            .seal_row(&otpgate_os::random::OsRandom, binding, &plain)
            .map_err(|e| bad(e.0))?;
        tx.execute_typed(
            "UPDATE otpgate_enrollments SET nonce = $2, sealed = $3, counter = 1 WHERE user_name = $1",
            &[(&user, Type::TEXT), (&nonce, Type::BYTEA), (&sealed, Type::BYTEA)],
        )
        .await
        ?;
    }
    let states = tx
        .query_typed("SELECT user_name, version, state FROM otpgate_states", &[])
        .await?;
    for r in states {
        let (user, version, state): (String, i64, String) = (r.get(0), r.get(1), r.get(2));
        let mac = key.state_mac(&user, counter_of(version), &state);
        tx.execute_typed(
            "UPDATE otpgate_states SET mac = $2 WHERE user_name = $1",
            &[(&user, Type::TEXT), (&mac, Type::BYTEA)],
        )
        .await?;
    }
    Ok(())
}

const INSERT_ENROLLMENT: &str = "INSERT INTO otpgate_enrollments
    (user_name, enrollment_id, created, devices, recovery_codes, nonce, sealed, counter, removed)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// The parameters of [`INSERT_ENROLLMENT`], typed (no statement is
/// prepared: see [`Db`]).
fn enrollment_params<'a>(
    user: &'a String,
    row: &'a SealedRow,
    summary: &'a Summary,
    counter: &'a i64,
) -> [(&'a (dyn tokio_postgres::types::ToSql + Sync), Type); 9] {
    [
        (user, Type::TEXT),
        (&row.id, Type::TEXT),
        (&summary.created, Type::INT8),
        (&summary.devices, Type::TEXT_ARRAY),
        (&summary.recovery_codes, Type::INT4),
        (&row.nonce, Type::BYTEA),
        (&row.sealed, Type::BYTEA),
        (counter, Type::INT8),
        (&row.removed, Type::BOOL),
    ]
}

/// An enrollment row as stored: sealed under a binding of its account,
/// id, counter and removed flag.
pub struct SealedRow {
    pub id: String,
    pub nonce: Vec<u8>,
    pub sealed: Vec<u8>,
    pub counter: u64,
    pub removed: bool,
}

/// A login-state row as stored.
pub struct StateRow {
    pub version: u64,
    pub state: String,
    /// `None` only in a row no otpgated with the key wrote.
    pub mac: Option<Vec<u8>>,
}

/// What an administrator sees in the table without the key.
pub struct Summary {
    pub created: i64,
    pub devices: Vec<String>,
    pub recovery_codes: i32,
}

/// The TLS connector `sslmode` asks for: `verify-full` checks the chain to
/// `sslrootcert` (or the system's CAs) and the host name; `verify-ca` the
/// chain only; `require` and `prefer` encrypt without checking (libpq's
/// meaning; say `verify-full` to be safe from a man in the middle).
fn tls_connector(
    info: &ConnInfo,
    mode: &str,
) -> Result<postgres_openssl::MakeTlsConnector, String> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let tls_err = |e: openssl::error::ErrorStack| format!("TLS set-up: {e}");
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(tls_err)?;
    let verify = matches!(mode, "verify-ca" | "verify-full");
    if verify {
        match info.get("sslrootcert") {
            Some(ca) if ca != "system" => builder.set_ca_file(ca).map_err(|e| {
                format!("sslrootcert={ca}: cannot be read as PEM certificates: {e}")
            })?,
            _ => builder.set_default_verify_paths().map_err(tls_err)?,
        }
        builder.set_verify(SslVerifyMode::PEER);
    } else {
        builder.set_verify(SslVerifyMode::NONE);
    }
    if let Some(cert) = info.get("sslcert") {
        builder
            .set_certificate_chain_file(cert)
            .map_err(|e| format!("sslcert={cert}: {e}"))?;
    }
    if let Some(key) = info.get("sslkey") {
        builder
            .set_private_key_file(key, openssl::ssl::SslFiletype::PEM)
            .map_err(|e| format!("sslkey={key}: {e}"))?;
    }
    let mut connector = postgres_openssl::MakeTlsConnector::new(builder.build());
    let full = mode == "verify-full";
    connector.set_callback(move |cfg, _domain| {
        cfg.set_verify_hostname(full);
        if !verify {
            cfg.set_verify(SslVerifyMode::NONE);
        }
        Ok(())
    });
    Ok(connector)
}

impl Db {
    /// Whether the role may create tables in schema `public` (the schema
    /// does not exist yet).
    pub async fn can_create(&self) -> Result<bool, DbError> {
        self.run(|c| {
            Box::pin(async move {
                let row = c
                    .query_typed_one("SELECT has_schema_privilege('public', 'CREATE')", &[])
                    .await?;
                Ok(row.get::<_, bool>(0))
            })
        })
        .await
    }

    /// One enrollment, to prove the key opens what the store holds.
    pub async fn sample(&self) -> Result<Option<(String, SealedRow)>, DbError> {
        self.run(|c| {
            Box::pin(async move {
                let row = c
                    .query_typed_opt(
                        "SELECT user_name, enrollment_id, nonce, sealed, counter, removed FROM otpgate_enrollments LIMIT 1",
                        &[],
                    )
                    .await
                    ?;
                Ok(row.map(|r| {
                    (
                        r.get(0),
                        SealedRow {
                            id: r.get(1),
                            nonce: r.get(2),
                            sealed: r.get(3),
                            counter: counter_of(r.get(4)),
                            removed: r.get(5),
                        },
                    )
                }))
            })
        })
        .await
    }
}

/// One login decision as kept in the history.
#[derive(Debug, Clone)]
pub struct LoginRow {
    pub user: String,
    pub service: String,
    pub method: Option<String>,
    pub result: String,
    pub rhost: Option<String>,
}

impl Db {
    /// Adds login decisions to the history, all in one statement.
    pub async fn record_logins(&self, server: &str, rows: &[LoginRow]) -> Result<(), DbError> {
        let server = server.to_string();
        let users: Vec<String> = rows.iter().map(|r| r.user.clone()).collect();
        let services: Vec<String> = rows.iter().map(|r| r.service.clone()).collect();
        let methods: Vec<Option<String>> = rows.iter().map(|r| r.method.clone()).collect();
        let results: Vec<String> = rows.iter().map(|r| r.result.clone()).collect();
        let rhosts: Vec<Option<String>> = rows.iter().map(|r| r.rhost.clone()).collect();
        self.run(move |c| {
            Box::pin(async move {
                c.execute_typed(
                    "INSERT INTO otpgate_logins (server, user_name, service, method, result, rhost)
                     SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[])",
                    &[
                        (&server, Type::TEXT),
                        (&users, Type::TEXT_ARRAY),
                        (&services, Type::TEXT_ARRAY),
                        (&methods, Type::TEXT_ARRAY),
                        (&results, Type::TEXT_ARRAY),
                        (&rhosts, Type::TEXT_ARRAY),
                    ],
                )
                .await
                ?;
                Ok(())
            })
        })
        .await
    }

    /// Removes history rows older than `days` days (0: all); how many.
    pub async fn prune_logins(&self, days: u32) -> Result<u64, DbError> {
        let days = i32::try_from(days).unwrap_or(i32::MAX);
        self.run(move |c| {
            Box::pin(async move {
                c.execute_typed(
                    "DELETE FROM otpgate_logins WHERE at < now() - make_interval(days => $1)",
                    &[(&days, Type::INT4)],
                )
                .await
                .map_err(DbError::from)
            })
        })
        .await
    }

    /// The history, newest first: at most `limit` rows of `user` (or
    /// everyone's) within the last `since` seconds (0: all).
    pub async fn history(
        &self,
        user: Option<&str>,
        since: u64,
        limit: i64,
    ) -> Result<Vec<HistoryEntry>, DbError> {
        let user = user.map(str::to_string);
        let since = to_sql(since)?;
        self.run(move |c| {
            Box::pin(async move {
                let rows = c
                    .query_typed(
                        "SELECT extract(epoch FROM at)::bigint, user_name, server, service, method, result, rhost
                         FROM otpgate_logins
                         WHERE ($1::text IS NULL OR user_name = $1)
                           AND ($2::bigint = 0 OR at >= now() - make_interval(secs => $2::bigint::float8))
                         ORDER BY at DESC, id DESC LIMIT $3",
                        &[(&user, Type::TEXT), (&since, Type::INT8), (&limit, Type::INT8)],
                    )
                    .await
                    ?;
                Ok(rows
                    .iter()
                    .map(|r| HistoryEntry {
                        time: counter_of(r.get(0)),
                        user: r.get(1),
                        server: r.get(2),
                        service: r.get(3),
                        method: r.get(4),
                        result: r.get(5),
                        rhost: r.get(6),
                    })
                    .collect())
            })
        })
        .await
    }

    /// Records that this server reached the store: `starting` sets its
    /// start time and clears a stop; `stopping` marks a clean stop.
    pub async fn heartbeat(&self, server: &str, beat: Beat) -> Result<(), DbError> {
        let server = server.to_string();
        let version = env!("CARGO_PKG_VERSION").to_string();
        self.run(move |c| {
            Box::pin(async move {
                let sql = match beat {
                    Beat::Starting => {
                        "INSERT INTO otpgate_servers (name, version, started, last_seen, stopped)
                         VALUES ($1, $2, now(), now(), false)
                         ON CONFLICT (name) DO UPDATE SET version = $2, started = now(), last_seen = now(), stopped = false"
                    }
                    Beat::Alive => {
                        "INSERT INTO otpgate_servers (name, version, started, last_seen, stopped)
                         VALUES ($1, $2, now(), now(), false)
                         ON CONFLICT (name) DO UPDATE SET version = $2, last_seen = now(), stopped = false"
                    }
                    Beat::Stopping => {
                        "UPDATE otpgate_servers SET last_seen = now(), stopped = true WHERE name = $1 AND version = $2"
                    }
                };
                c.execute_typed(sql, &[(&server, Type::TEXT), (&version, Type::TEXT)])
                    .await
                    ?;
                Ok(())
            })
        })
        .await
    }

    /// Every server of the fleet, by name.
    pub async fn servers(&self) -> Result<Vec<ServerEntry>, DbError> {
        self.run(move |c| {
            Box::pin(async move {
                let rows = c
                    .query_typed(
                        "SELECT name, version, extract(epoch FROM started)::bigint,
                                extract(epoch FROM last_seen)::bigint,
                                greatest(extract(epoch FROM now() - last_seen), 0)::bigint, stopped
                         FROM otpgate_servers ORDER BY name",
                        &[],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| ServerEntry {
                        name: r.get(0),
                        version: r.get(1),
                        started: counter_of(r.get(2)),
                        last_seen: counter_of(r.get(3)),
                        seen_seconds_ago: counter_of(r.get(4)),
                        stopped: r.get(5),
                    })
                    .collect())
            })
        })
        .await
    }

    /// Connections in use and idle (for the metrics).
    pub fn pool_usage(&self) -> (usize, usize) {
        let in_use = self.size.saturating_sub(self.permits.available_permits());
        let idle = self.idle.try_lock().map_or(0, |idle| idle.len());
        (in_use, idle)
    }
}

/// What [`Db::heartbeat`] records.
#[derive(Debug, Clone, Copy)]
pub enum Beat {
    Starting,
    Alive,
    Stopping,
}
