//! One `pam_sm_authenticate` call wired to the host: its config file, NSS,
//! the store the config names, the mailer and gateway, the clock.

use otpgate_core::auth::{
    Conversation, Handoff, Level, Log, Outcome, Request, Services, authenticate_with, denied,
    prefix,
};
use otpgate_core::config::args::ModuleArgs;
use otpgate_core::sys::clock::Clock;

/// The full decision for one `pam_sm_authenticate` call. `handoff` carries
/// what split mode's two lines hand each other (unused by the usual line).
pub fn authenticate(
    args: &[&str],
    req: &Request,
    conv: &mut dyn Conversation,
    handoff: &mut dyn Handoff,
    log: &mut dyn Log,
    clock: &dyn Clock,
) -> Outcome {
    let directory = crate::nss::Nss;
    let loaded = ModuleArgs::parse(args)
        .and_then(|a| Ok((a.mode, crate::config::load_checked(&a, &directory)?)));
    let (mode, config) = match loaded {
        Ok(c) => c,
        Err(e) => {
            let why = denied(&format!("configuration error: {e}"));
            log.log(Level::Err, &format!("{} {why}", prefix(req)));
            return Outcome::AuthInfoUnavail;
        }
    };
    let Some(now) = clock.now() else {
        let why = denied("the system clock is set before 1970");
        log.log(Level::Err, &format!("{} {why}", prefix(req)));
        return Outcome::AuthInfoUnavail;
    };
    let store = crate::store::open_for_login(&config);
    let services = Services {
        store: store.as_ref(),
        directory: &directory,
        sender: &crate::send::Programs,
        clock: Some(clock),
    };
    authenticate_with(&config, services, req, (mode, now), conv, handoff, log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use otpgate_core::auth::{ConversationError, NoHandoff};
    use otpgate_core::sys::clock::FixedClock;
    use zeroize::Zeroizing;

    struct Asked(usize);

    impl Conversation for Asked {
        fn ask_hidden(&mut self, _: &str) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
            self.0 += 1;
            Ok(Some(Zeroizing::new(b"123456".to_vec())))
        }
        fn info(&mut self, _: &str) {}
        fn error(&mut self, _: &str) {}
    }

    #[derive(Default)]
    struct Lines(Vec<(Level, String)>);

    impl Log for Lines {
        fn log(&mut self, level: Level, line: &str) {
            self.0.push((level, line.into()));
        }
    }

    #[test]
    fn a_broken_config_denies_before_prompting() {
        let req = Request {
            user: "root",
            service: "test",
            rhost: None,
        };
        let (mut conv, mut log) = (Asked(0), Lines::default());
        let out = authenticate(
            &["config=/nonexistent/otpgate.toml"],
            &req,
            &mut conv,
            &mut NoHandoff,
            &mut log,
            &FixedClock(1_800_000_000),
        );
        assert_eq!(out, Outcome::AuthInfoUnavail);
        assert_eq!(conv.0, 0);
        assert!(log.0[0].1.contains("configuration error"), "{:?}", log.0);
        assert_eq!(log.0[0].0, Level::Err);
    }
}
