//! What one `pam_sm_authenticate` call reaches on this server (core's
//! `auth::authenticate` decides): its config file, NSS, the store the
//! config names, the mailer and gateway, the clock, the kernel's CSPRNG.

use otpgate_core::auth::Host;
use otpgate_core::config::args::ModuleArgs;
use otpgate_core::config::{Config, ConfigError};
use otpgate_core::directory::Directory;
use otpgate_core::sender::Sender;
use otpgate_core::store::Store;
use otpgate_core::sys::clock::Clock;
use otpgate_core::sys::random::Random;

/// The host of a real login: the config file (link-free, root's), the
/// store it names, NSS, the mailer and gateway, and `clock`.
pub struct Server<'c> {
    pub clock: &'c dyn Clock,
}

impl Host for Server<'_> {
    fn config(&self, args: &ModuleArgs) -> Result<Config, ConfigError> {
        crate::config::load_checked(args, &crate::nss::Nss)
    }
    fn store(&self, config: &Config) -> Box<dyn Store> {
        crate::store::open_for_login(config)
    }
    fn directory(&self) -> &dyn Directory {
        &crate::nss::Nss
    }
    fn sender(&self) -> &dyn Sender {
        &crate::send::Programs
    }
    fn clock(&self) -> &dyn Clock {
        self.clock
    }
    fn random(&self) -> &dyn Random {
        &crate::random::OsRandom
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use otpgate_core::auth::{Conversation, ConversationError, Level, Log, NoHandoff};
    use otpgate_core::auth::{Outcome, Request};
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
        let out = otpgate_core::auth::authenticate(
            &["config=/nonexistent/otpgate.toml"],
            &req,
            &mut conv,
            &mut NoHandoff,
            &mut log,
            &Server {
                clock: &FixedClock(1_800_000_000),
            },
        );
        assert_eq!(out, Outcome::AuthInfoUnavail);
        assert_eq!(conv.0, 0);
        assert!(log.0[0].1.contains("configuration error"), "{:?}", log.0);
        assert_eq!(log.0[0].0, Level::Err);
    }
}
