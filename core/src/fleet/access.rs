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
pub fn decide(
    caller: Caller,
    request: &Request,
    owner: Option<u32>,
    session: &Session,
) -> Decision {
    let Caller::User { uid } = caller else {
        return Decision::Allow;
    };
    let op = request.name();
    let user = match request {
        Request::Ping => return Decision::Allow,
        Request::List | Request::Import { .. } => {
            return Decision::Deny(format!("only root may {op}; run the command as root"));
        }
        Request::WriteState { .. } => {
            return Decision::Deny(
                "only root may record a login decision (the PAM module runs as root in sshd, sudo and login)"
                    .into(),
            );
        }
        other => other.user().unwrap_or_default(),
    };
    if owner != Some(uid) {
        return Decision::Deny(format!(
            "uid {uid} may act only on its own account, not on {user:?}"
        ));
    }
    let proved = session.proved.as_deref() == Some(user);
    match request {
        Request::Load { .. } | Request::ReadState { .. } => Decision::Allow,
        Request::Prove { .. } if session.failed_proofs >= PROVE_TRIES => Decision::Deny(format!(
            "{PROVE_TRIES} wrong codes on one connection; run the command again"
        )),
        Request::Prove { .. } => Decision::Allow,
        Request::Save { .. } | Request::Remove { .. } if !proved => Decision::AllowIfNotEnrolled,
        Request::RemoveState { .. } if !proved => Decision::Deny(
            "forgetting the login state needs a current code from one of your devices, or root"
                .into(),
        ),
        _ => Decision::Allow,
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
