//! The socket side: accept, learn the caller's uid from the kernel, read
//! frames under deadlines, ask `core::fleet::access` whether the caller may,
//! run the request against the database, answer.
//!
//! Garbage, a huge frame, a slow or half-closed client each cost only their
//! own connection: it gets an error and is closed; every other connection
//! is served on.

use crate::db::{Beat, Db, DbError, SealedRow, StateRow, Summary};
use crate::history::History;
use crate::log::{Level, Log};
use crate::memory::Memory;
use crate::metrics::{self, Metrics};
use otpgate_core::config::Config;
use otpgate_core::enrollment::devices::MAX_DEVICES;
use otpgate_core::enrollment::{Enrollment, MAX_FILE_SIZE};
use otpgate_core::fleet::access::{self, Caller, Decision, Session};
use otpgate_core::fleet::freshness::{self, Row, Seen, Stale};
use otpgate_core::fleet::history::HEARTBEAT_SECONDS;
use otpgate_core::fleet::protocol::{
    self, ErrorKind, FrameError, HEADER_LEN, Imported, Request, Response,
};
use otpgate_core::fleet::seal::{Binding, Key};
use otpgate_core::store::state::{MAX_STATE_SIZE, UserState};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use zeroize::Zeroizing;

/// How long a connection may sit idle between requests (the CLI waits for
/// a person typing a code between proving and saving).
const IDLE: Duration = Duration::from_secs(300);
/// How long the rest of a frame may take once its first byte came, and a
/// response may take to be taken.
const FRAME_DEADLINE: Duration = Duration::from_secs(10);
/// The most history rows one answer carries (the newest).
const HISTORY_ROWS: i64 = 1000;
/// Connections one non-root uid may hold at once (root: unlimited, it is
/// the login path).
const PER_USER_CONNECTIONS: usize = 8;

pub struct Service {
    pub db: Db,
    pub key: Key,
    pub config: Config,
    pub log: Log,
    /// The newest rows this daemon has seen, per account.
    pub memory: Memory,
    /// Login decisions waiting to be written to the history.
    pub history: History,
    pub metrics: Metrics,
    schema_ready: AtomicBool,
    database_up: AtomicBool,
    per_uid: Mutex<HashMap<u32, usize>>,
}

impl Service {
    pub fn new(db: Db, key: Key, config: Config, log: Log, memory: Memory) -> Self {
        let server = crate::history::server_name(&config.server_name);
        let history = History::new(server, config.login_history_days);
        Self {
            db,
            key,
            config,
            log,
            memory,
            history,
            metrics: Metrics::default(),
            schema_ready: AtomicBool::new(false),
            database_up: AtomicBool::new(true),
            per_uid: Mutex::new(HashMap::new()),
        }
    }

    /// Creates or upgrades the schema; logs what it did.
    pub async fn ensure_schema(&self) -> Result<(), DbError> {
        if self.schema_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let applied = self.db.migrate(&self.key).await?;
        for v in applied {
            self.log.line(
                Level::Notice,
                &format!("database schema migrated to version {v}"),
            );
        }
        self.schema_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// The metrics as a scrape sees them now.
    pub fn scrape(&self) -> String {
        let (pool_in_use, pool_idle) = self.db.pool_usage();
        self.metrics.render(&metrics::Now {
            store_up: self.database_up.load(Ordering::Acquire),
            pool_in_use,
            pool_idle,
            pool_size: self.config.database_pool_size as usize,
            history_dropped: self.history.dropped.load(Ordering::Relaxed),
        })
    }

    /// Every [`HEARTBEAT_SECONDS`]: records in the list of servers that
    /// this one reached the store (the first time as its start), and
    /// notes whether the database answered — so `otpgate_store_up` turns
    /// 0 within a heartbeat of the database going away, logins or not.
    pub async fn heartbeat_forever(&self) {
        let mut beat = Beat::Starting;
        let mut warned = false;
        loop {
            let done = match self.ensure_schema().await {
                Ok(()) => self.db.heartbeat(&self.history.server, beat).await,
                Err(e) => Err(e),
            };
            match done {
                Ok(()) => {
                    self.note_database(true, "");
                    beat = Beat::Alive;
                    warned = false;
                }
                Err(e @ DbError::Unavailable { .. }) => self.note_database(false, &e.to_string()),
                Err(e) if !warned => {
                    self.log.line(
                        Level::Warning,
                        &format!(
                            "servers: cannot record that {} is up: {e}",
                            self.history.server
                        ),
                    );
                    warned = true;
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_secs(HEARTBEAT_SECONDS)).await;
        }
    }

    /// Logs when the database goes away and when it is back (once each).
    fn note_database(&self, up: bool, why: &str) {
        let was = self.database_up.swap(up, Ordering::AcqRel);
        if was && !up {
            self.log
                .line(Level::Err, &format!("database unavailable: {why}"));
        } else if !was && up {
            self.log.line(Level::Notice, "database reachable again");
        }
    }
}

/// Accepts connections for ever.
pub async fn serve(listener: UnixListener, service: Arc<Service>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let service = Arc::clone(&service);
                tokio::spawn(async move { connection(service, stream).await });
            }
            Err(e) => {
                service
                    .log
                    .line(Level::Err, &format!("accepting a connection failed: {e}"));
                // Out of descriptors: give the others time to finish.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Releases a non-root uid's connection slot when dropped.
struct Slot<'a> {
    service: &'a Service,
    uid: u32,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Ok(mut map) = self.service.per_uid.lock()
            && let Some(n) = map.get_mut(&self.uid)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.uid);
            }
        }
    }
}

async fn connection(service: Arc<Service>, mut stream: UnixStream) {
    let uid = match stream.peer_cred() {
        Ok(cred) => cred.uid(),
        Err(e) => {
            service
                .log
                .line(Level::Err, &format!("cannot learn a caller's uid: {e}"));
            return;
        }
    };
    let caller = Caller::from_uid(uid);
    let _slot = if uid == 0 {
        None
    } else {
        let taken = {
            let mut map = service
                .per_uid
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = map.entry(uid).or_insert(0);
            let free = *n < PER_USER_CONNECTIONS;
            if free {
                *n += 1;
            }
            free
        };
        if !taken {
            let _ = send(
                &mut stream,
                &Response::error(
                    ErrorKind::Denied,
                    format!("uid {uid} has {PER_USER_CONNECTIONS} connections open already"),
                ),
            )
            .await;
            return;
        }
        Some(Slot {
            service: &service,
            uid,
        })
    };
    let mut session = Session::default();
    loop {
        let payload = match read_frame(&mut stream).await {
            Ok(p) => p,
            Err(FrameError::Closed) => return,
            Err(e) => {
                service.log.line(
                    Level::Warning,
                    &format!("connection from uid {uid} dropped: {e}"),
                );
                if matches!(e, FrameError::Malformed(_)) {
                    let _ = send(
                        &mut stream,
                        &Response::error(ErrorKind::BadRequest, e.to_string()),
                    )
                    .await;
                }
                return;
            }
        };
        let request: Request = match protocol::decode(&payload) {
            Ok(r) => r,
            Err(e) => {
                service.log.line(
                    Level::Warning,
                    &format!("connection from uid {uid} dropped: {e}"),
                );
                let _ = send(
                    &mut stream,
                    &Response::error(ErrorKind::BadRequest, e.to_string()),
                )
                .await;
                return;
            }
        };
        let response = handle(&service, caller, uid, &mut session, request).await;
        service.metrics.requests.fetch_add(1, Ordering::Relaxed);
        if let Response::Error { kind, .. } = &response {
            service.metrics.refused(*kind);
        }
        if send(&mut stream, &response).await.is_err() {
            return;
        }
    }
}

/// Reads one frame: the first byte may take [`IDLE`], the rest
/// [`FRAME_DEADLINE`].
async fn read_frame(stream: &mut UnixStream) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let first = tokio::time::timeout(IDLE, stream.read(&mut header[..1]))
        .await
        .map_err(|_| FrameError::Malformed("idle for too long".into()))?
        .map_err(FrameError::Io)?;
    if first == 0 {
        return Err(FrameError::Closed);
    }
    let rest = async {
        stream
            .read_exact(&mut header[1..])
            .await
            .map_err(|e| FrameError::Malformed(format!("the frame header was cut: {e}")))?;
        let len = protocol::parse_header(&header)?;
        let mut payload = Zeroizing::new(vec![0u8; len as usize]);
        stream
            .read_exact(&mut payload)
            .await
            .map_err(|e| FrameError::Malformed(format!("the frame was cut: {e}")))?;
        Ok(payload)
    };
    tokio::time::timeout(FRAME_DEADLINE, rest)
        .await
        .map_err(|_| FrameError::Malformed("a frame did not arrive in time".into()))?
}

async fn send(stream: &mut UnixStream, response: &Response) -> Result<(), FrameError> {
    let bytes = protocol::encode(response)?;
    tokio::time::timeout(FRAME_DEADLINE, stream.write_all(&bytes))
        .await
        .map_err(|_| FrameError::Malformed("the client did not take the answer".into()))?
        .map_err(FrameError::Io)
}

/// A database step failed: unreachable (the store is down: noted, and
/// logged once) or refused (the store is up but something in it is wrong:
/// logged each time, for an administrator to fix). Either way the login is
/// denied.
fn unavailable(service: &Service, e: &DbError) -> Response {
    match e {
        DbError::Unavailable { .. } => {
            service.note_database(false, &e.to_string());
            Response::error(
                ErrorKind::Unavailable,
                format!("the fleet database is unavailable: {e}"),
            )
        }
        DbError::Query { .. } => {
            service.log.line(
                Level::Err,
                &format!(
                    "the database refused a statement: {e}; check the role's privileges, the schema (`otpgated --check`) and the server's log"
                ),
            );
            Response::error(
                ErrorKind::Database,
                format!("the fleet database refused a statement: {e}"),
            )
        }
    }
}

/// The uid `name` has on this host, if any.
fn owner_of(name: &str) -> Option<u32> {
    otpgate_core::sys::paths::check_user_name(name).ok()?;
    use otpgate_core::directory::Directory as _;
    otpgate_os::nss::Nss
        .user(name)
        .ok()
        .flatten()
        .map(|a| a.uid.as_raw())
}

async fn handle(
    service: &Service,
    caller: Caller,
    uid: u32,
    session: &mut Session,
    request: Request,
) -> Response {
    let op = request.name();
    if let Some(user) = request.user()
        && let Err(e) = otpgate_core::sys::paths::check_user_name(user)
    {
        return Response::error(ErrorKind::BadRequest, format!("user {user:?}: {e}"));
    }
    let owner = match caller {
        Caller::Root => None,
        Caller::User { .. } => request.user().and_then(owner_of),
    };
    let user = request.user().unwrap_or("-").to_string();
    let deny = |why: String| {
        service.log.line(
            Level::Warning,
            &format!("denied {op} for user {user:?} to uid {uid}: {why}"),
        );
        Response::error(ErrorKind::Denied, why)
    };
    let decision = access::decide(caller, &request, owner, session);
    if let Decision::Deny(why) = decision {
        return deny(why);
    }
    // Kept in memory and written later: never waits for the database.
    if let Request::Record { events, micros } = request {
        let events: Vec<_> = events
            .into_iter()
            .take(otpgate_core::fleet::history::MAX_EVENTS)
            .collect();
        service.metrics.login(&events, micros);
        service.history.add(events);
        return Response::Ok;
    }
    if let Err(e) = service.ensure_schema().await {
        return unavailable(service, &e);
    }
    match decision {
        Decision::Allow | Decision::Deny(_) => {}
        Decision::AllowIfNotEnrolled => match believed_row(service, &user).await {
            Ok(None | Some((_, None))) => {}
            Ok(Some((_, Some(_)))) => {
                return deny(
                    "changing an existing enrollment needs a current code from one of your devices, or root"
                        .into(),
                );
            }
            Err(refused) => return refused,
        },
    }
    // A dry run, or an account already in the store, is not an import.
    let dry_run = matches!(request, Request::Import { dry_run: true, .. });
    let response = run(service, session, request).await;
    let imported = matches!(
        response,
        Response::Imported {
            outcome: Imported::Added
        }
    );
    match &response {
        Response::Error {
            kind: ErrorKind::Unavailable,
            ..
        } => {}
        _ => service.note_database(true, ""),
    }
    let changed = match op {
        "import" => !dry_run && (imported || matches!(response, Response::Error { .. })),
        "save" | "remove" | "remove_state" | "accept_restore" => true,
        _ => false,
    };
    if changed {
        if let Response::Error { message, .. } = &response {
            service.log.line(
                Level::Warning,
                &format!("{op} for user {user:?} by uid {uid} failed: {message}"),
            );
        } else {
            service.log.line(
                Level::Notice,
                &format!("{op} for user {user:?} by uid {uid}"),
            );
        }
    }
    response
}

fn corrupt(user: &str, why: impl std::fmt::Display) -> Response {
    Response::error(
        ErrorKind::Corrupt,
        format!(
            "the fleet store's enrollment of {user} cannot be used: {why}; restore it, or run `otpgate enroll --user {user} --force`"
        ),
    )
}

/// A row this daemon refuses (older than, or missing though, one it has
/// seen): logged, and the caller told which command accepts a restore.
fn refused(service: &Service, stale: &Stale) -> Response {
    service
        .log
        .line(Level::Err, &format!("refused the fleet store: {stale}"));
    Response::error(ErrorKind::Corrupt, stale.to_string())
}

/// What this daemon has seen of `user`.
fn seen(service: &Service, user: &str) -> Seen {
    service.memory.seen(user)
}

/// Raises what this daemon has seen of `user` (failing closed).
async fn remember(service: &Service, user: &str, seen: Seen) -> Result<(), Response> {
    service
        .memory
        .raise(user, seen)
        .await
        .map_err(|why| memory_failed(service, &why))
}

/// This daemon's memory could not be read or written: fail closed.
fn memory_failed(service: &Service, why: &str) -> Response {
    service
        .log
        .line(Level::Err, &format!("daemon_state_dir: {why}"));
    Response::error(
        ErrorKind::Unavailable,
        format!("otpgated cannot keep what it has seen of the store: {why}"),
    )
}

fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// An enrollment row and its opened text (`None` for a removal record).
type Believed = (SealedRow, Option<Zeroizing<String>>);

/// `user`'s enrollment row, believed: it opens under its own binding
/// (account, id, counter, removed), and it is not older than — nor
/// missing though this daemon has seen — a row of the account. The
/// enrollment's text is `None` for a removal record.
async fn believed_row(service: &Service, user: &str) -> Result<Option<Believed>, Response> {
    // What was seen is taken *before* the row is read: the memory is raised
    // only after the database holds that counter, and counters there only
    // grow, so a row read afterwards is older only if it was written back.
    // (Read after the row, a newer write by a parallel request in between
    // would look like a rollback.)
    let seen = seen(service, user);
    let row = service
        .db
        .load(user)
        .await
        .map_err(|e| unavailable(service, &e))?;
    let row = believe_row(service, user, seen, row)?;
    if let Some((row, _)) = &row {
        remember(
            service,
            user,
            Seen {
                enrollment: row.counter,
                state: 0,
            },
        )
        .await?;
    }
    Ok(row)
}

/// Checks an enrollment row read after `seen` was taken (see
/// [`believed_row`]) and opens it.
fn believe_row(
    service: &Service,
    user: &str,
    seen: Seen,
    row: Option<SealedRow>,
) -> Result<Option<Believed>, Response> {
    freshness::check(
        user,
        Row::Enrollment,
        seen.enrollment,
        row.as_ref().map(|r| r.counter),
    )
    .map_err(|stale| refused(service, &stale))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let binding = Binding {
        user,
        id: &row.id,
        counter: row.counter,
        removed: row.removed,
    };
    let plain = service
        .key
        .open_row(binding, &row.nonce, &row.sealed)
        .map_err(|why| corrupt(user, why))?;
    let text = if row.removed {
        None
    } else {
        let text = String::from_utf8(plain.to_vec()).map_err(|_| corrupt(user, "not UTF-8"))?;
        Some(Zeroizing::new(text))
    };
    Ok(Some((row, text)))
}

/// Opens `user`'s enrollment (`None`: not enrolled, or removed).
async fn load(service: &Service, user: &str) -> Result<Option<Zeroizing<String>>, Response> {
    Ok(believed_row(service, user)
        .await?
        .and_then(|(_, text)| text))
}

/// The answer to `Load`: the enrollment, or none and whether it was removed.
async fn load_answer(service: &Service, user: &str) -> Result<Response, Response> {
    Ok(match believed_row(service, user).await? {
        Some((_, Some(text))) => Response::Enrollment {
            enrollment: Some(text),
            removed: false,
        },
        Some((_, None)) => Response::Enrollment {
            enrollment: None,
            removed: true,
        },
        None => Response::Enrollment {
            enrollment: None,
            removed: false,
        },
    })
}

/// How often a lost compare-and-set is tried again in the daemon.
const CAS_TRIES: u32 = 16;

/// Writes `user`'s enrollment row (`Some(enrollment)`) or a removal record
/// (`None`) over the believed current row, with a counter above it and
/// above all this daemon has seen. Whether a row was replaced that was an
/// enrollment.
async fn write_enrollment(
    service: &Service,
    user: &str,
    enrollment: Option<(&Enrollment, &str)>,
) -> Result<bool, Response> {
    let bad = |why: String| Response::error(ErrorKind::BadRequest, why);
    for _ in 0..CAS_TRIES {
        let current = believed_row(service, user).await?;
        let had = current.as_ref().is_some_and(|(_, text)| text.is_some());
        if enrollment.is_none() && !had {
            return Ok(false);
        }
        let seen = seen(service, user);
        let previous = current.as_ref().map(|(r, _)| r.counter);
        let counter = freshness::next_counter(previous.unwrap_or(0), seen.enrollment, now_micros());
        let (id, plain, summary) = match enrollment {
            Some((e, text)) => (e.id.clone(), text.as_bytes(), summary_of(e)),
            None => (
                String::new(),
                &b""[..],
                Summary {
                    created: 0,
                    devices: Vec::new(),
                    recovery_codes: 0,
                },
            ),
        };
        let binding = Binding {
            user,
            id: &id,
            counter,
            removed: enrollment.is_none(),
        };
        let (nonce, sealed) = service
            .key
            .seal_row(&otpgate_os::random::OsRandom, binding, plain)
            .map_err(|e| bad(e.0))?;
        let row = SealedRow {
            id,
            nonce,
            sealed,
            counter,
            removed: enrollment.is_none(),
        };
        let written = service
            .db
            .write_row(user, previous, row, summary)
            .await
            .map_err(|e| unavailable(service, &e))?;
        if written {
            remember(
                service,
                user,
                Seen {
                    enrollment: counter,
                    state: 0,
                },
            )
            .await?;
            return Ok(had);
        }
    }
    Err(Response::error(
        ErrorKind::Unavailable,
        format!(
            "the enrollment of {user} changed {CAS_TRIES} times while being written; try again"
        ),
    ))
}

/// `user`'s login state, believed: its MAC is the key's, and it is not
/// older than — nor missing though this daemon has seen — a state of the
/// account.
async fn believed_state(service: &Service, user: &str) -> Result<Option<StateRow>, Response> {
    // Seen before the row is read (see `believed_row`).
    let seen = seen(service, user);
    let row = service
        .db
        .read_state(user)
        .await
        .map_err(|e| unavailable(service, &e))?;
    let row = believe_state(service, user, seen, row)?;
    if let Some(row) = &row {
        remember(
            service,
            user,
            Seen {
                enrollment: 0,
                state: row.version,
            },
        )
        .await?;
    }
    Ok(row)
}

/// Checks a state row read after `seen` was taken.
fn believe_state(
    service: &Service,
    user: &str,
    seen: Seen,
    row: Option<StateRow>,
) -> Result<Option<StateRow>, Response> {
    freshness::check(
        user,
        Row::State,
        seen.state,
        row.as_ref().map(|r| r.version),
    )
    .map_err(|stale| refused(service, &stale))?;
    let Some(row) = row else {
        return Ok(None);
    };
    let genuine = row
        .mac
        .as_deref()
        .is_some_and(|mac| service.key.state_mac_ok(user, row.version, &row.state, mac));
    if !genuine {
        let why = format!(
            "the fleet store's login state of {user:?} (version {}) was not written with the key: \
             it was edited in the database; restore it from a backup (then `otpgate accept-restore --user {user}`) \
             or run `otpgate reset --user {user}` (it forgets the state and removes the enrollment: the user enrolls again)",
            row.version
        );
        service
            .log
            .line(Level::Err, &format!("refused the fleet store: {why}"));
        return Err(Response::error(ErrorKind::Corrupt, why));
    }
    Ok(Some(row))
}

/// A login's first request: the enrollment and the login state, both
/// believed, read in one statement.
async fn load_for_login(service: &Service, user: &str) -> Result<Response, Response> {
    let seen = seen(service, user);
    let (row, state) = service
        .db
        .load_for_login(user)
        .await
        .map_err(|e| unavailable(service, &e))?;
    let row = believe_row(service, user, seen, row)?;
    let state = believe_state(service, user, seen, state)?;
    remember(
        service,
        user,
        Seen {
            enrollment: row.as_ref().map_or(0, |(r, _)| r.counter),
            state: state.as_ref().map_or(0, |s| s.version),
        },
    )
    .await?;
    Ok(Response::Login {
        removed: row.as_ref().is_some_and(|(_, text)| text.is_none()),
        enrollment: row.and_then(|(_, text)| text),
        version: state.as_ref().map_or(0, |s| s.version),
        state: state.map(|s| s.state),
    })
}

/// Compare-and-set of `user`'s state from `version` to `version + 1`, MACed.
async fn write_state(
    service: &Service,
    user: &str,
    version: u64,
    state: String,
) -> Result<bool, Response> {
    let seen = seen(service, user);
    if version < seen.state {
        // Read before a newer state this daemon has seen: decide again.
        return Ok(false);
    }
    put_state(service, user, version, version.saturating_add(1), state).await
}

/// Compare-and-set of `user`'s state from `current` to `next`, MACed with
/// the key; what was written is remembered. Whether it was written.
async fn put_state(
    service: &Service,
    user: &str,
    current: u64,
    next: u64,
    state: String,
) -> Result<bool, Response> {
    let mac = service.key.state_mac(user, next, &state);
    let row = StateRow {
        version: next,
        state,
        mac: Some(mac),
    };
    let written = service
        .db
        .write_state(user, current, row)
        .await
        .map_err(|e| unavailable(service, &e))?;
    if written {
        remember(
            service,
            user,
            Seen {
                enrollment: 0,
                state: next,
            },
        )
        .await?;
    }
    Ok(written)
}

/// Forgets `user`'s login state (`otpgate reset`): an empty state with a
/// version above the row's and above all this daemon has seen, so a
/// login that read the old state can never write over the new one. Works
/// over a row this daemon would refuse (that is what a reset is for).
async fn forget_state(service: &Service, user: &str) -> Result<bool, Response> {
    let empty = toml::to_string(&UserState::default())
        .map_err(|e| Response::error(ErrorKind::BadRequest, e.to_string()))?;
    for _ in 0..CAS_TRIES {
        let row = service
            .db
            .read_state(user)
            .await
            .map_err(|e| unavailable(service, &e))?;
        let seen = seen(service, user);
        if row.is_none() && seen.state == 0 {
            return Ok(false);
        }
        let current = row.as_ref().map_or(0, |r| r.version);
        let next = current.max(seen.state).saturating_add(1);
        if put_state(service, user, current, next, empty.clone()).await? {
            return Ok(row.is_some());
        }
    }
    Err(Response::error(
        ErrorKind::Unavailable,
        format!("the login state of {user} changed {CAS_TRIES} times while being reset; try again"),
    ))
}

/// Merges `theirs` (another server's state, `otpgate migrate`) into
/// `user`'s state in the store, so that no code used on either works again.
async fn merge_state(service: &Service, user: &str, theirs: &UserState) -> Result<(), Response> {
    let bad = |why: String| Response::error(ErrorKind::BadRequest, why);
    for _ in 0..CAS_TRIES {
        let row = believed_state(service, user).await?;
        let (version, before) = match &row {
            Some(r) => (
                r.version,
                UserState::parse(r.state.as_bytes()).map_err(|why| corrupt(user, why))?,
            ),
            None => (0, UserState::default()),
        };
        let mut merged = before.clone();
        merged.absorb(theirs.clone());
        if merged == before {
            return Ok(());
        }
        let text = toml::to_string(&merged).map_err(|e| bad(e.to_string()))?;
        if write_state(service, user, version, text).await? {
            return Ok(());
        }
    }
    Err(Response::error(
        ErrorKind::Unavailable,
        format!("the login state of {user} changed {CAS_TRIES} times while merging; try again"),
    ))
}

/// Checks an enrollment a client sent: the caps files mode has (size
/// before parsing, devices after), then its own rules.
fn checked_enrollment(text: &str) -> Result<Enrollment, Response> {
    let bad = |why: String| Response::error(ErrorKind::BadRequest, why);
    if text.len() as u64 > MAX_FILE_SIZE {
        return Err(bad(format!(
            "enrollment: larger than {MAX_FILE_SIZE} bytes; an enrollment holds at most {MAX_DEVICES} devices"
        )));
    }
    let enrollment =
        Enrollment::parse(text.as_bytes()).map_err(|e| bad(format!("enrollment: {e}")))?;
    if enrollment.devices.len() > MAX_DEVICES {
        return Err(bad(format!(
            "enrollment: {} devices; at most {MAX_DEVICES} devices per user",
            enrollment.devices.len()
        )));
    }
    enrollment
        .check_distinct_secrets()
        .map_err(|e| bad(format!("enrollment: {e}")))?;
    Ok(enrollment)
}

/// What an administrator sees in the table without the key.
fn summary_of(enrollment: &Enrollment) -> Summary {
    Summary {
        created: i64::try_from(enrollment.created).unwrap_or(i64::MAX),
        devices: enrollment.devices.iter().map(|d| d.name.clone()).collect(),
        recovery_codes: enrollment
            .recovery
            .as_ref()
            .map_or(0, |r| i32::try_from(r.hashes.len()).unwrap_or(0)),
    }
}

fn check_state(text: &str, repair: bool) -> Result<UserState, Response> {
    if !repair && text.len() as u64 > MAX_STATE_SIZE {
        return Err(Response::error(
            ErrorKind::BadRequest,
            format!("a login state over {MAX_STATE_SIZE} bytes is refused"),
        ));
    }
    UserState::parse(text.as_bytes())
        .map_err(|why| Response::error(ErrorKind::BadRequest, format!("login state: {why}")))
}

/// `otpgate accept-restore`: what the store holds now becomes what this
/// daemon has seen, for `user` or every account.
async fn accept_restore(service: &Service, user: Option<&str>) -> Result<u64, Response> {
    match user {
        Some(user) => {
            let row = service
                .db
                .load(user)
                .await
                .map_err(|e| unavailable(service, &e))?;
            let state = service
                .db
                .read_state(user)
                .await
                .map_err(|e| unavailable(service, &e))?;
            let seen = Seen {
                enrollment: row.map_or(0, |r| r.counter),
                state: state.map_or(0, |s| s.version),
            };
            service
                .memory
                .set(user, seen)
                .await
                .map_err(|why| memory_failed(service, &why))?;
            Ok(1)
        }
        None => {
            let all = service
                .db
                .counters()
                .await
                .map_err(|e| unavailable(service, &e))?;
            let seen: Vec<(String, Seen)> = all
                .iter()
                .map(|(name, enrollment, state)| {
                    let seen = Seen {
                        enrollment: *enrollment,
                        state: *state,
                    };
                    (name.clone(), seen)
                })
                .collect();
            service
                .memory
                .replace_all(&seen)
                .await
                .map_err(|why| memory_failed(service, &why))?;
            Ok(all.len() as u64)
        }
    }
}

async fn run(service: &Service, session: &mut Session, request: Request) -> Response {
    let db = &service.db;
    let result: Result<Response, Response> = async {
        Ok(match request {
            Request::Ping => {
                db.schema_version()
                    .await
                    .map_err(|e| unavailable(service, &e))?;
                Response::Ok
            }
            Request::Load { user } => load_answer(service, &user).await?,
            Request::LoadForLogin { user } => load_for_login(service, &user).await?,
            Request::History { user, since } => {
                let mut entries = db
                    .history(user.as_deref(), since, HISTORY_ROWS + 1)
                    .await
                    .map_err(|e| unavailable(service, &e))?;
                let more = entries.len() > HISTORY_ROWS as usize;
                entries.truncate(HISTORY_ROWS as usize);
                Response::History { entries, more }
            }
            Request::Servers => Response::Servers {
                servers: db.servers().await.map_err(|e| unavailable(service, &e))?,
            },
            // Answered in `handle` before the database is asked.
            Request::Record { .. } => Response::Ok,
            Request::Save { user, enrollment } => {
                let parsed = checked_enrollment(&enrollment)?;
                write_enrollment(service, &user, Some((&parsed, &enrollment))).await?;
                Response::Ok
            }
            Request::Remove { user } => Response::Removed {
                removed: write_enrollment(service, &user, None).await?,
            },
            Request::ReadState { user } => match believed_state(service, &user).await? {
                Some(row) => Response::State {
                    version: row.version,
                    state: Some(row.state),
                },
                None => Response::State {
                    version: 0,
                    state: None,
                },
            },
            Request::WriteState {
                user,
                version,
                state,
                repair,
            } => {
                check_state(&state, repair)?;
                Response::Written {
                    written: write_state(service, &user, version, state).await?,
                }
            }
            Request::RemoveState { user } => Response::Removed {
                removed: forget_state(service, &user).await?,
            },
            Request::Prove { user, code } => {
                let text = load(service, &user).await?;
                let valid = match text {
                    Some(text) => {
                        let enrollment =
                            Enrollment::parse(text.as_bytes()).map_err(|e| corrupt(&user, e))?;
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs());
                        enrollment.code_is_current(&code, now, service.config.window)
                    }
                    None => false,
                };
                if valid {
                    session.proved = Some(user);
                } else {
                    session.failed_proofs += 1;
                    service.log.line(
                        Level::Notice,
                        &format!("a wrong code was offered to change the enrollment of {user:?}"),
                    );
                }
                Response::Proved { valid }
            }
            Request::List => Response::Users {
                users: db.list().await.map_err(|e| unavailable(service, &e))?,
            },
            Request::Import {
                user,
                enrollment,
                state,
                dry_run,
            } => {
                let parsed = checked_enrollment(&enrollment)?;
                let theirs = check_state(&state, true)?;
                let outcome = match believed_row(service, &user).await? {
                    Some((row, Some(_))) if row.id == parsed.id => Imported::AlreadyThere,
                    Some((_, Some(_))) => Imported::Conflict,
                    Some((_, None)) => Imported::Removed,
                    None => Imported::Added,
                };
                if !dry_run && matches!(outcome, Imported::Added | Imported::AlreadyThere) {
                    // The state first: an enrollment must never stand in
                    // the store without the used codes that travel with it.
                    merge_state(service, &user, &theirs).await?;
                    if outcome == Imported::Added {
                        write_enrollment(service, &user, Some((&parsed, &enrollment))).await?;
                    }
                }
                Response::Imported { outcome }
            }
            Request::AcceptRestore { user } => Response::Accepted {
                accounts: accept_restore(service, user.as_deref()).await?,
            },
        })
    }
    .await;
    result.unwrap_or_else(|e| e)
}

/// Request handling without a database: what is decided before one is
/// needed (names, who may ask what, reports), frames, and failing closed
/// when the database cannot be reached. (Everything the database takes
/// part in is tested end to end, against a real PostgreSQL.)
#[cfg(test)]
mod tests {
    use super::*;
    use otpgate_core::config::conninfo::ConnInfo;
    use otpgate_core::fleet::history::{LoginEvent, LoginResult, Method};

    /// A service whose database does not exist (nothing listens there).
    fn service(name: &str) -> (Service, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("otpgated-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let info = ConnInfo::parse(&format!(
            "host={} dbname=x user=x",
            dir.join("no-db").display()
        ))
        .unwrap();
        let pool = crate::db::Pool {
            size: 1,
            idle_timeout: Duration::from_secs(60),
        };
        let db = Db::new(&info, None, Duration::from_secs(2), pool).unwrap();
        let key = Key::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap();
        let memory = Memory::open(&dir.join("seen")).unwrap();
        let config = Config {
            server_name: "unit".into(),
            ..Config::default()
        };
        (Service::new(db, key, config, Log::kept(), memory), dir)
    }

    fn ask(service: &Service, uid: u32, request: Request) -> Response {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut session = Session::default();
        runtime.block_on(handle(
            service,
            Caller::from_uid(uid),
            uid,
            &mut session,
            request,
        ))
    }

    fn kind(r: &Response) -> Option<ErrorKind> {
        match r {
            Response::Error { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    #[test]
    fn a_bad_user_name_is_refused_before_anything_else() {
        let (s, dir) = service("names");
        for user in ["../etc/passwd", "a\nb", "", "-rf", ".."] {
            let r = ask(&s, 0, Request::Load { user: user.into() });
            assert_eq!(kind(&r), Some(ErrorKind::BadRequest), "{user:?}: {r:?}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_user_may_not_ask_for_another_users_rows_and_it_is_logged() {
        let (s, dir) = service("access");
        for request in [
            Request::Load {
                user: "root".into(),
            },
            Request::ReadState {
                user: "root".into(),
            },
            Request::Remove {
                user: "root".into(),
            },
        ] {
            let r = ask(&s, 4242, request);
            assert_eq!(kind(&r), Some(ErrorKind::Denied), "{r:?}");
        }
        let lines = s.log.lines();
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("denied load for user \"root\" to uid 4242")),
            "{lines:?}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_report_is_counted_and_queued_without_the_database() {
        let (s, dir) = service("record");
        let event = |result| LoginEvent {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: None,
            method: Some(Method::Totp),
            result,
        };
        let events = vec![event(LoginResult::Accepted), event(LoginResult::WrongCode)];
        let r = ask(
            &s,
            0,
            Request::Record {
                events: events.clone(),
                micros: 1_500,
            },
        );
        assert_eq!(r, Response::Ok);
        assert_eq!(s.history.queued(), 2);
        let scrape = s.scrape();
        assert!(
            scrape
                .lines()
                .any(|l| l == "otpgate_logins_total{result=\"accepted\",method=\"totp\"} 1"),
            "{scrape}"
        );
        // Only root reports decisions.
        let r = ask(&s, 4242, Request::Record { events, micros: 1 });
        assert_eq!(kind(&r), Some(ErrorKind::Denied), "{r:?}");
        assert_eq!(s.history.queued(), 2);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn without_the_database_a_login_is_refused_as_unavailable() {
        let (s, dir) = service("down");
        let r = ask(
            &s,
            0,
            Request::LoadForLogin {
                user: "root".into(),
            },
        );
        assert_eq!(kind(&r), Some(ErrorKind::Unavailable), "{r:?}");
        assert!(s.scrape().lines().any(|l| l == "otpgate_store_up 0"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn frames_are_read_whole_or_refused() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let frame = protocol::encode(&Request::Ping).unwrap();
            // Whole: the payload back.
            let (mut a, mut b) = UnixStream::pair().unwrap();
            a.write_all(&frame).await.unwrap();
            let payload = read_frame(&mut b).await.unwrap();
            assert_eq!(&payload[..], &frame[HEADER_LEN..]);
            // Closed before a byte: the end of the connection, no error.
            drop(a);
            assert!(matches!(read_frame(&mut b).await, Err(FrameError::Closed)));
            // Not our magic: refused from the header.
            let (mut a, mut b) = UnixStream::pair().unwrap();
            a.write_all(b"GET / HTTP/1.0\r\n").await.unwrap();
            assert!(matches!(
                read_frame(&mut b).await,
                Err(FrameError::Malformed(_))
            ));
            // Cut: the header promises more than comes.
            let (mut a, mut b) = UnixStream::pair().unwrap();
            a.write_all(&frame[..frame.len() - 1]).await.unwrap();
            drop(a);
            match read_frame(&mut b).await {
                Err(FrameError::Malformed(why)) => assert!(why.contains("cut"), "{why}"),
                other => panic!("{:?}", other.map(|p| p.len())),
            }
        });
    }
}
