//! The socket side: accept, learn the caller's uid from the kernel, read
//! frames under deadlines, ask `core::fleet::access` whether the caller may,
//! run the request against the database, answer.
//!
//! Garbage, a huge frame, a slow or half-closed client each cost only their
//! own connection: it gets an error and is closed; every other connection
//! is served on.

use crate::db::{Db, DbError, SealedRow, Summary};
use crate::log::{Level, Log};
use otpgate_core::config::Config;
use otpgate_core::enrollment::Enrollment;
use otpgate_core::fleet::access::{self, Caller, Decision, Session};
use otpgate_core::fleet::protocol::{self, ErrorKind, FrameError, HEADER_LEN, Request, Response};
use otpgate_core::fleet::seal::Key;
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
/// Connections one non-root uid may hold at once (root: unlimited, it is
/// the login path).
const PER_USER_CONNECTIONS: usize = 8;

pub struct Service {
    pub db: Db,
    pub key: Key,
    pub config: Config,
    pub log: Log,
    schema_ready: AtomicBool,
    database_up: AtomicBool,
    per_uid: Mutex<HashMap<u32, usize>>,
}

impl Service {
    pub fn new(db: Db, key: Key, config: Config, log: Log) -> Self {
        Self {
            db,
            key,
            config,
            log,
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
        let applied = self.db.migrate().await?;
        for v in applied {
            self.log.line(
                Level::Notice,
                &format!("database schema migrated to version {v}"),
            );
        }
        self.schema_ready.store(true, Ordering::Release);
        Ok(())
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

fn unavailable(service: &Service, e: &DbError) -> Response {
    service.note_database(false, &e.to_string());
    Response::error(
        ErrorKind::Unavailable,
        format!("the fleet database is unavailable: {e}"),
    )
}

/// The uid `name` has on this host, if any.
fn owner_of(name: &str) -> Option<u32> {
    otpgate_core::sys::paths::check_user_name(name).ok()?;
    otpgate_core::sys::account::by_name(name)
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
    if let Err(e) = service.ensure_schema().await {
        return unavailable(service, &e);
    }
    match decision {
        Decision::Allow | Decision::Deny(_) => {}
        Decision::AllowIfNotEnrolled => match service.db.load(&user).await {
            Ok(None) => {}
            Ok(Some(_)) => {
                return deny(
                    "changing an existing enrollment needs a current code from one of your devices, or root"
                        .into(),
                );
            }
            Err(e) => return unavailable(service, &e),
        },
    }
    let response = run(service, session, request).await;
    match &response {
        Response::Error {
            kind: ErrorKind::Unavailable,
            ..
        } => {}
        _ => service.note_database(true, ""),
    }
    if matches!(op, "save" | "remove" | "remove_state" | "import") {
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

/// Opens `user`'s sealed enrollment.
async fn load(service: &Service, user: &str) -> Result<Option<Zeroizing<String>>, Response> {
    let row = match service.db.load(user).await {
        Ok(r) => r,
        Err(e) => return Err(unavailable(service, &e)),
    };
    let Some(row) = row else {
        return Ok(None);
    };
    let plain = service
        .key
        .open(user, &row.id, &row.nonce, &row.sealed)
        .map_err(|why| corrupt(user, why))?;
    let text = String::from_utf8(plain.to_vec()).map_err(|_| corrupt(user, "not UTF-8"))?;
    Ok(Some(Zeroizing::new(text)))
}

/// Checks and seals an enrollment a client sent.
fn seal(service: &Service, user: &str, text: &str) -> Result<(SealedRow, Summary), Response> {
    let bad = |why: String| Response::error(ErrorKind::BadRequest, why);
    let enrollment =
        Enrollment::parse(text.as_bytes()).map_err(|e| bad(format!("enrollment: {e}")))?;
    enrollment
        .check_distinct_secrets()
        .map_err(|e| bad(format!("enrollment: {e}")))?;
    let (nonce, sealed) = service
        .key
        .seal(user, &enrollment.id, text.as_bytes())
        .map_err(bad)?;
    let summary = Summary {
        created: i64::try_from(enrollment.created).unwrap_or(i64::MAX),
        devices: enrollment.devices.iter().map(|d| d.name.clone()).collect(),
        recovery_codes: enrollment
            .recovery
            .as_ref()
            .map_or(0, |r| i32::try_from(r.hashes.len()).unwrap_or(0)),
    };
    Ok((
        SealedRow {
            id: enrollment.id,
            nonce,
            sealed,
        },
        summary,
    ))
}

fn check_state(text: &str, repair: bool) -> Result<(), Response> {
    if !repair && text.len() as u64 > MAX_STATE_SIZE {
        return Err(Response::error(
            ErrorKind::BadRequest,
            format!("a login state over {MAX_STATE_SIZE} bytes is refused"),
        ));
    }
    UserState::parse(text.as_bytes())
        .map(|_| ())
        .map_err(|why| Response::error(ErrorKind::BadRequest, format!("login state: {why}")))
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
            Request::Load { user } => Response::Enrollment {
                enrollment: load(service, &user).await?,
            },
            Request::Save { user, enrollment } => {
                let (row, summary) = seal(service, &user, &enrollment)?;
                db.save(&user, row, summary)
                    .await
                    .map_err(|e| unavailable(service, &e))?;
                Response::Ok
            }
            Request::Remove { user } => Response::Removed {
                removed: db
                    .remove(&user)
                    .await
                    .map_err(|e| unavailable(service, &e))?,
            },
            Request::ReadState { user } => {
                let (version, state) = db
                    .read_state(&user)
                    .await
                    .map_err(|e| unavailable(service, &e))?;
                Response::State { version, state }
            }
            Request::WriteState {
                user,
                version,
                state,
                repair,
            } => {
                check_state(&state, repair)?;
                Response::Written {
                    written: db
                        .write_state(&user, version, state)
                        .await
                        .map_err(|e| unavailable(service, &e))?,
                }
            }
            Request::RemoveState { user } => Response::Removed {
                removed: db
                    .remove_state(&user)
                    .await
                    .map_err(|e| unavailable(service, &e))?,
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
                        otpgate_core::admin::current_code_valid(
                            &enrollment,
                            &code,
                            now,
                            service.config.window,
                        )
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
                let (row, summary) = seal(service, &user, &enrollment)?;
                check_state(&state, true)?;
                Response::Imported {
                    outcome: db
                        .import(&user, row, summary, state, dry_run)
                        .await
                        .map_err(|e| unavailable(service, &e))?,
                }
            }
        })
    }
    .await;
    result.unwrap_or_else(|e| e)
}
