//! Who may ask otpgated for what. The daemon learns the caller's uid from
//! the kernel (`SO_PEERCRED`), never from the request, and asks this module.
//!
//! * uid 0 (the PAM module inside sshd, sudo, login; root's CLI) may do
//!   everything: only it records login decisions (`write_state`).
//! * Any other uid acts only on the account that has its uid on the
//!   daemon's host, under the rules the files engine has: it reads its own
//!   enrollment and state (as it reads its own secret file), enrolls when
//!   not enrolled, and changes or removes an existing enrollment only after
//!   proving a current code on the same connection.

use super::protocol::Request;

/// The caller, as the kernel reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Root,
    User { uid: u32 },
}

impl Caller {
    pub fn from_uid(uid: u32) -> Self {
        if uid == 0 {
            Self::Root
        } else {
            Self::User { uid }
        }
    }
}

/// How many wrong codes one connection may try to prove.
pub const PROVE_TRIES: u32 = 3;

/// What one connection has established so far.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Session {
    /// The account a current code was proved for on this connection.
    pub proved: Option<String>,
    /// Wrong codes tried on this connection.
    pub failed_proofs: u32,
}

/// The answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Allowed only if the account has no enrollment yet (a first
    /// enrollment needs no code; replacing one does).
    AllowIfNotEnrolled,
    Deny(String),
}

/// Decides `request` from `caller`; `owner` is the uid the named account
/// has on this host (`None`: no such account here).
///
/// Every request type is named below, none falls under a catch-all: a
/// request type added later does not compile until someone decides who
/// may send it.
pub fn decide(
    caller: Caller,
    request: &Request,
    owner: Option<u32>,
    session: &Session,
) -> Decision {
    let Caller::User { uid } = caller else {
        return Decision::Allow;
    };
    let only_root =
        |op: &str| Decision::Deny(format!("only root may {op}; run the command as root"));
    // The account must be the caller's own; then `then` decides.
    let own = |user: &str, then: &dyn Fn(bool) -> Decision| {
        if owner == Some(uid) {
            then(session.proved.as_deref() == Some(user))
        } else {
            Decision::Deny(format!(
                "uid {uid} may act only on its own account, not on {user:?}"
            ))
        }
    };
    match request {
        Request::Ping => Decision::Allow,
        Request::List => only_root("list"),
        Request::Import { .. } => only_root("import"),
        Request::AcceptRestore { .. } => only_root("accept_restore"),
        Request::Servers => only_root("list the fleet's servers"),
        Request::Record { .. } => Decision::Deny(
            "only root may record a login decision (the PAM module runs as root in sshd, sudo and login)"
                .into(),
        ),
        Request::History { user: None, .. } => Decision::Deny(
            "only root may read everyone's login history; add --user with your own name, or run the command as root"
                .into(),
        ),
        Request::History {
            user: Some(user), ..
        } => own(user, &|_| Decision::Allow),
        Request::WriteState { .. } => Decision::Deny(
            "only root may record a login decision (the PAM module runs as root in sshd, sudo and login)"
                .into(),
        ),
        Request::Load { user }
        | Request::LoadForLogin { user }
        | Request::ReadState { user } => own(user, &|_| Decision::Allow),
        Request::Prove { user, .. } => own(user, &|_| {
            if session.failed_proofs >= PROVE_TRIES {
                Decision::Deny(format!(
                    "{PROVE_TRIES} wrong codes on one connection; run the command again"
                ))
            } else {
                Decision::Allow
            }
        }),
        Request::Save { user, .. } | Request::Remove { user } => own(user, &|proved| {
            if proved {
                Decision::Allow
            } else {
                Decision::AllowIfNotEnrolled
            }
        }),
        Request::RemoveState { user } => own(user, &|proved| {
            if proved {
                Decision::Allow
            } else {
                Decision::Deny(
                    "forgetting the login state needs a current code from one of your devices, or root"
                        .into(),
                )
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn load(user: &str) -> Request {
        Request::Load { user: user.into() }
    }

    #[test]
    fn root_may_do_everything() {
        for req in [
            Request::List,
            load("bob"),
            Request::WriteState {
                user: "bob".into(),
                version: 0,
                state: String::new(),
                repair: false,
            },
        ] {
            assert_eq!(
                decide(Caller::Root, &req, None, &Session::default()),
                Decision::Allow
            );
        }
    }

    #[test]
    fn a_user_acts_only_on_the_account_with_its_uid() {
        let me = Caller::from_uid(1000);
        let s = Session::default();
        assert_eq!(decide(me, &load("alice"), Some(1000), &s), Decision::Allow);
        for owner in [Some(1001), None, Some(0)] {
            let d = decide(me, &load("bob"), owner, &s);
            assert!(
                matches!(&d, Decision::Deny(m) if m.contains("own account")),
                "{d:?}"
            );
        }
    }

    #[test]
    fn only_root_records_a_login_decision_or_lists() {
        let me = Caller::from_uid(1000);
        let s = Session {
            proved: Some("alice".into()),
            failed_proofs: 0,
        };
        let write = Request::WriteState {
            user: "alice".into(),
            version: 1,
            state: String::new(),
            repair: false,
        };
        assert!(
            matches!(decide(me, &write, Some(1000), &s), Decision::Deny(m) if m.contains("login decision"))
        );
        assert!(matches!(
            decide(me, &Request::List, None, &s),
            Decision::Deny(_)
        ));
        let record = Request::Record {
            events: vec![],
            micros: 0,
        };
        assert!(
            matches!(decide(me, &record, None, &s), Decision::Deny(m) if m.contains("login decision"))
        );
        assert!(matches!(
            decide(me, &Request::Servers, None, &s),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn a_user_reads_only_their_own_login_history() {
        let me = Caller::from_uid(1000);
        let s = Session::default();
        let history = |user: Option<&str>| Request::History {
            user: user.map(str::to_string),
            since: 0,
        };
        assert_eq!(
            decide(me, &history(Some("alice")), Some(1000), &s),
            Decision::Allow
        );
        assert!(matches!(
            decide(me, &history(Some("bob")), Some(1001), &s),
            Decision::Deny(m) if m.contains("own account")
        ));
        assert!(matches!(
            decide(me, &history(None), None, &s),
            Decision::Deny(m) if m.contains("--user")
        ));
        assert_eq!(
            decide(Caller::Root, &history(None), None, &s),
            Decision::Allow
        );
    }

    #[test]
    fn changes_need_a_proof_on_the_connection_unless_not_enrolled() {
        let me = Caller::from_uid(1000);
        let save = Request::Save {
            user: "alice".into(),
            enrollment: Zeroizing::new(String::new()),
        };
        let fresh = Session::default();
        assert_eq!(
            decide(me, &save, Some(1000), &fresh),
            Decision::AllowIfNotEnrolled
        );
        let forget = Request::RemoveState {
            user: "alice".into(),
        };
        assert!(matches!(
            decide(me, &forget, Some(1000), &fresh),
            Decision::Deny(_)
        ));
        let proved = Session {
            proved: Some("alice".into()),
            failed_proofs: 0,
        };
        assert_eq!(decide(me, &save, Some(1000), &proved), Decision::Allow);
        assert_eq!(decide(me, &forget, Some(1000), &proved), Decision::Allow);
        let other = Session {
            proved: Some("bob".into()),
            failed_proofs: 0,
        };
        assert_eq!(
            decide(me, &save, Some(1000), &other),
            Decision::AllowIfNotEnrolled,
            "a proof for another account counts for nothing"
        );
    }

    #[test]
    fn proofs_are_limited_per_connection() {
        let me = Caller::from_uid(1000);
        let prove = Request::Prove {
            user: "alice".into(),
            code: Zeroizing::new("123456".into()),
        };
        let tired = Session {
            proved: None,
            failed_proofs: PROVE_TRIES,
        };
        assert!(matches!(
            decide(me, &prove, Some(1000), &tired),
            Decision::Deny(_)
        ));
    }
}
