//! The wire protocol between otpgated and its clients (the PAM module and
//! the CLI) on the daemon's Unix socket.
//!
//! A frame is `OTPG` (4 bytes), the protocol version (u16, big-endian), the
//! payload length (u32, big-endian) and that many bytes of JSON. A frame
//! over [`MAX_FRAME`] is refused from its header, before anything is
//! allocated; a frame of another version gets an error naming both
//! versions. One connection carries any number of request/response pairs
//! (the CLI's "prove a code, then save" needs two on one connection).
//!
//! The payloads carry enrollments and login states as the text of their
//! one strict format (`Enrollment::to_toml`, the state file's TOML), so the
//! parsers that guard files guard the socket too.

use crate::fleet::history::{HistoryEntry, LoginEvent, ServerEntry};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use zeroize::Zeroizing;

/// The four bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"OTPG";
/// The version this build speaks.
pub const VERSION: u16 = 1;
/// Length of a frame header.
pub const HEADER_LEN: usize = 10;
/// Largest payload accepted (an enrollment and a state are each capped at
/// 64 KiB; a state being repaired may be larger).
pub const MAX_FRAME: u32 = 1024 * 1024;

/// What a client asks. `user` is always an account name; the daemon
/// checks it against the caller's kernel-verified uid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Is the daemon there, and can it reach the database?
    Ping,
    /// The user's enrollment.
    Load { user: String },
    /// The user's enrollment and login state together: a login's first
    /// request (one round trip instead of two).
    LoadForLogin { user: String },
    /// Creates or replaces the user's enrollment (its file format, as text).
    Save {
        user: String,
        enrollment: Zeroizing<String>,
    },
    /// Removes the user's enrollment.
    Remove { user: String },
    /// The user's login state and its version (0: none yet).
    ReadState { user: String },
    /// Replaces the login state if its version is still `version`
    /// (compare-and-set: the row count decides, never read-then-write).
    WriteState {
        user: String,
        version: u64,
        state: String,
        /// Accept a state over the size cap (`reset --unlock` compacting).
        repair: bool,
    },
    /// Forgets the user's login state.
    RemoveState { user: String },
    /// A non-root user proves a current code so this connection may change
    /// the user's enrollment (the "root, or a current code" rule).
    Prove {
        user: String,
        code: Zeroizing<String>,
    },
    /// Every enrolled account name in the store (root; `audit`).
    List,
    /// Moves one enrollment and its state in (root; `otpgate migrate`):
    /// only if the store has none for the user, or the same one.
    Import {
        user: String,
        enrollment: Zeroizing<String>,
        state: String,
        dry_run: bool,
    },
    /// Makes this daemon accept what the store holds now as the newest it
    /// has seen, for `user` or (`None`) every account (root; `otpgate
    /// accept-restore`, after restoring the database from a backup).
    AcceptRestore { user: Option<String> },
    /// The decisions of one PAM call, for the login history and the
    /// metrics (root: the module). Sent without waiting for the answer.
    Record {
        events: Vec<LoginEvent>,
        /// Microseconds the PAM call took, without the time the user took
        /// to type.
        micros: u64,
    },
    /// The login history, newest first: of `user` (`None`: everyone;
    /// root only) within the last `since` seconds (0: all that is kept).
    History { user: Option<String>, since: u64 },
    /// Every otpgated of the fleet and when it last reached the store (root).
    Servers,
}

impl Request {
    /// The account the request acts on, if any.
    pub fn user(&self) -> Option<&str> {
        match self {
            Self::Ping | Self::List | Self::Record { .. } | Self::Servers => None,
            Self::AcceptRestore { user } | Self::History { user, .. } => user.as_deref(),
            Self::Load { user }
            | Self::LoadForLogin { user }
            | Self::Save { user, .. }
            | Self::Remove { user }
            | Self::ReadState { user }
            | Self::WriteState { user, .. }
            | Self::RemoveState { user }
            | Self::Prove { user, .. }
            | Self::Import { user, .. } => Some(user),
        }
    }

    /// A name for logs (never the payload: it may hold secrets).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Load { .. } => "load",
            Self::LoadForLogin { .. } => "load_for_login",
            Self::Save { .. } => "save",
            Self::Remove { .. } => "remove",
            Self::ReadState { .. } => "read_state",
            Self::WriteState { .. } => "write_state",
            Self::RemoveState { .. } => "remove_state",
            Self::Prove { .. } => "prove",
            Self::List => "list",
            Self::Import { .. } => "import",
            Self::AcceptRestore { .. } => "accept_restore",
            Self::Record { .. } => "record",
            Self::History { .. } => "history",
            Self::Servers => "servers",
        }
    }
}

/// What `Import` did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Imported {
    /// The enrollment and its state were added.
    Added,
    /// The store already has this very enrollment: nothing changed (its
    /// state there is newer than the file's).
    AlreadyThere,
    /// The store has another enrollment for the user: nothing changed.
    Conflict,
    /// The fleet removed the user's enrollment (`otpgate disable`/`reset`):
    /// a file left on a server does not bring it back; nothing changed.
    Removed,
}

/// Why the daemon did not do what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The caller may not do this (another user's account, a login
    /// decision from a non-root process, a change without a current code).
    Denied,
    /// The database is down, unreachable or too slow.
    Unavailable,
    /// The database answered but refused a statement (privileges, a
    /// broken schema, a full disk): up, but unusable until fixed.
    Database,
    /// The request or its payload is malformed.
    BadRequest,
    /// What the store holds could not be used (corrupt, undecryptable).
    Corrupt,
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "re", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    Ok,
    Enrollment {
        enrollment: Option<Zeroizing<String>>,
        /// No enrollment because the store holds a removal record
        /// (`otpgate disable`/`reset`), not because there never was one.
        #[serde(default)]
        removed: bool,
    },
    State {
        version: u64,
        state: Option<String>,
    },
    /// The answer to `LoadForLogin`: `Enrollment` and `State` in one.
    Login {
        enrollment: Option<Zeroizing<String>>,
        removed: bool,
        version: u64,
        state: Option<String>,
    },
    Written {
        written: bool,
    },
    Removed {
        removed: bool,
    },
    Proved {
        valid: bool,
    },
    Users {
        users: Vec<String>,
    },
    Imported {
        outcome: Imported,
    },
    /// How many accounts' memory `AcceptRestore` set anew.
    Accepted {
        accounts: u64,
    },
    History {
        entries: Vec<HistoryEntry>,
        /// More rows matched than were sent (the newest are sent).
        more: bool,
    },
    Servers {
        servers: Vec<ServerEntry>,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
}

impl Response {
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::Error {
            kind,
            message: message.into(),
        }
    }
}

/// Why a frame could not be read.
#[derive(Debug)]
pub enum FrameError {
    /// The peer closed the connection cleanly between frames.
    Closed,
    /// Reading or writing failed (a timeout included).
    Io(std::io::Error),
    /// Not a frame of this protocol: wrong magic, version or size, or a
    /// payload that is not a message.
    Malformed(String),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed => f.write_str("the connection was closed"),
            Self::Io(e) if is_timeout(e) => f.write_str("timed out"),
            Self::Io(e) => e.fmt(f),
            Self::Malformed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for FrameError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Closed | Self::Malformed(_) => None,
        }
    }
}

/// Whether an I/O error is a read or write deadline passing.
pub fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// Checks a frame header; the payload length it announces.
pub fn parse_header(header: &[u8; HEADER_LEN]) -> Result<u32, FrameError> {
    if header[..4] != MAGIC {
        return Err(FrameError::Malformed(
            "not an otpgate frame (bad magic); is this otpgated's socket?".into(),
        ));
    }
    let version = u16::from_be_bytes([header[4], header[5]]);
    if version != VERSION {
        return Err(FrameError::Malformed(format!(
            "protocol version {version} is not spoken here (this side speaks {VERSION}); \
             install the same otpgate version on the daemon and its clients"
        )));
    }
    let len = u32::from_be_bytes([header[6], header[7], header[8], header[9]]);
    if len > MAX_FRAME {
        return Err(FrameError::Malformed(format!(
            "a frame of {len} bytes is over the limit of {MAX_FRAME}"
        )));
    }
    Ok(len)
}

/// A payload as one frame.
pub fn frame(payload: &[u8]) -> Result<Vec<u8>, FrameError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l <= MAX_FRAME)
        .ok_or_else(|| FrameError::Malformed("message too large for one frame".into()))?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Encodes a message as one frame.
pub fn encode<T: Serialize>(message: &T) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    let payload = Zeroizing::new(
        serde_json::to_vec(message).map_err(|e| FrameError::Malformed(e.to_string()))?,
    );
    Ok(Zeroizing::new(frame(&payload)?))
}

/// Decodes a payload (strictly: unknown fields are errors).
pub fn decode<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(payload)
        .map_err(|e| FrameError::Malformed(format!("not a valid message: {e}")))
}

/// Reads one frame's payload from a blocking stream (its read timeout is
/// the caller's deadline).
pub fn read_frame(stream: &mut impl Read) -> Result<Zeroizing<Vec<u8>>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match stream.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => {
                return Err(FrameError::Malformed(
                    "the connection was closed inside a frame header".into(),
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    let len = parse_header(&header)?;
    let mut payload = Zeroizing::new(vec![0u8; len as usize]);
    stream.read_exact(&mut payload).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Malformed("the connection was closed inside a frame".into())
        } else {
            FrameError::Io(e)
        }
    })?;
    Ok(payload)
}

/// Writes one message as a frame to a blocking stream.
pub fn write_message<T: Serialize>(stream: &mut impl Write, message: &T) -> Result<(), FrameError> {
    let bytes = encode(message)?;
    stream.write_all(&bytes).map_err(FrameError::Io)?;
    stream.flush().map_err(FrameError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_goes_through_a_frame_unchanged() {
        let req = Request::WriteState {
            user: "alice".into(),
            version: 7,
            state: "version = 2\n".into(),
            repair: false,
        };
        let bytes = encode(&req).unwrap();
        assert_eq!(&bytes[..4], b"OTPG");
        let payload = read_frame(&mut bytes.as_slice()).unwrap();
        assert_eq!(decode::<Request>(&payload).unwrap(), req);
    }

    #[test]
    fn bad_frames_are_refused_with_a_reason() {
        let good = encode(&Request::Ping).unwrap().to_vec();
        let mut magic = good.clone();
        magic[0] = b'X';
        let mut version = good.clone();
        version[5] = 9;
        let mut huge = good.clone();
        huge[6..10].copy_from_slice(&(MAX_FRAME + 1).to_be_bytes());
        let cut = good[..good.len() - 1].to_vec();
        for (bytes, want) in [
            (magic, "bad magic"),
            (version, "version 9 is not spoken"),
            (huge, "over the limit"),
            (cut, "closed inside a frame"),
            (good[..3].to_vec(), "inside a frame header"),
        ] {
            let e = read_frame(&mut bytes.as_slice()).unwrap_err();
            assert!(e.to_string().contains(want), "{e}");
        }
        assert!(matches!(
            read_frame(&mut [].as_slice()),
            Err(FrameError::Closed)
        ));
    }

    #[test]
    fn unknown_operations_and_fields_are_refused() {
        for text in [
            r#"{"op":"format_disk"}"#,
            r#"{"op":"load","user":"a","extra":1}"#,
            r#"{"op":"load"}"#,
            r#"["load"]"#,
            "\u{0}",
        ] {
            assert!(decode::<Request>(text.as_bytes()).is_err(), "{text}");
        }
    }
}
