//! otpgate's decisions: configuration, policy, OTP and recovery-code
//! checks, lockout, and the seams the system comes in through.
//!
//! No FFI, no terminal and no system call here: storage comes through
//! [`store::Store`], accounts and groups through [`directory::Directory`],
//! sending through [`sender::Sender`], time through [`sys::clock::Clock`],
//! all passed in; their implementations are in `otpgate-os` (which depends on
//! this crate, never the reverse). `pam-module`, `enroll-cli` and `daemon`
//! only translate between the outside world and these two crates, so every
//! rule is unit-tested here. The map:
//!
//! | module | one job |
//! |---|---|
//! | [`auth`] | the login flow: ports (outcome, request, conversation, log), the gate before the prompt, verifying a reply, codes sent by e-mail or SMS, what the user is told, split mode |
//! | [`policy`] | who must use a second factor, who is exempt |
//! | [`lockout`] | failure counting, the lock, the trust window, clock clamps |
//! | [`directory`] | where accounts and groups come from (NSS on a server, a table in tests) |
//! | [`sender`] | how codes leave the server (the mailer, the SMS gateway), passed in |
//! | [`config`] | the config file, module arguments, PAM service files as libpam reads them, the database connection string |
//! | [`otp`] | TOTP/HOTP arithmetic, secrets, recovery codes, YubiKey OTPs, sent codes, what users type |
//! | [`enrollment`] | the enrollment model, its versioned file format, devices, imports |
//! | [`store`] | the seam where enrollments and login state live (the in-memory engine here; the files and fleet engines in otpgate-os) |
//! | [`fleet`] | fleet mode: otpgated's wire protocol, who may ask it what, sealing, freshness, the login history's types |
//! | [`sys`] | what the system hands over, as plain types: accounts and ids, path and name rules, time, why a file or a send failed; randomness as an interface (`Random`) |
//! | [`admin`] | decisions behind the CLI's commands: who may change what, unlocking, imports, reports |
//! | [`toml_comments`] | leaves comment lines out before `toml` reads a file |

#![forbid(unsafe_code)]

/// Declares an error type that carries one finished message — what is
/// wrong and what to do — for failures that wrap no other error. The type
/// says which layer failed; the message is what a person reads.
macro_rules! message_error {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(pub String);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::error::Error for $name {}
    };
}

pub mod admin;
pub mod auth;
pub mod config;
pub mod directory;
pub mod enrollment;
pub mod fleet;
pub mod lockout;
pub mod otp;
pub mod policy;
pub mod sender;
pub mod store;
pub mod sys;
pub mod toml_comments;

#[cfg(test)]
mod tests {
    /// Core decides and never calls the system: it depends on none of the
    /// crates that do (they are otpgate-os's; randomness comes in as a
    /// `Random`), and a crate cannot depend on otpgate-os in return. (Nor
    /// does anything core depends on reach them: `cargo tree -p
    /// otpgate-core -e normal` lists none.)
    #[test]
    fn core_depends_on_no_system_call_crate() {
        let manifest: toml::Table = toml::from_str(include_str!("../Cargo.toml")).unwrap();
        let deps = manifest["dependencies"].as_table().unwrap();
        for name in ["nix", "rustix", "libc", "getrandom", "otpgate-os"] {
            assert!(!deps.contains_key(name), "core depends on {name}");
        }
    }

    /// Every error type of core is a `std::error::Error`, so the CLI and
    /// the daemon can carry it with `?` and keep its source.
    #[test]
    fn every_error_type_is_an_error() {
        fn is_error<E: std::error::Error + 'static>() {}
        is_error::<crate::admin::Error>();
        is_error::<crate::admin::report::AccountsError>();
        is_error::<crate::auth::ConversationError>();
        is_error::<crate::auth::HandoffError>();
        is_error::<crate::config::ConfigError>();
        is_error::<crate::config::MetricsAddressError>();
        is_error::<crate::config::UnknownMethod>();
        is_error::<crate::policy::CidrError>();
        is_error::<crate::config::conninfo::ConnInfoError>();
        is_error::<crate::config::pamfile::PamFileError>();
        is_error::<crate::enrollment::devices::DeviceError>();
        is_error::<crate::enrollment::devices::SetupError>();
        is_error::<crate::enrollment::DeviceNameError>();
        is_error::<crate::enrollment::FormatError>();
        is_error::<crate::enrollment::gauth::GaFileError>();
        is_error::<crate::fleet::freshness::Stale>();
        is_error::<crate::fleet::history::DurationError>();
        is_error::<crate::fleet::protocol::FrameError>();
        is_error::<crate::fleet::seal::KeyError>();
        is_error::<crate::fleet::seal::SealError>();
        is_error::<crate::otp::OtpError>();
        is_error::<crate::otp::secret::SecretError>();
        is_error::<crate::otp::sent::TargetError>();
        is_error::<crate::policy::GroupError>();
        is_error::<crate::store::StoreError>();
        is_error::<crate::store::state::StateError>();
        is_error::<crate::store::state::StateParseError>();
        is_error::<crate::sys::account::LookupError>();
        is_error::<crate::sys::fs::FsError>();
        is_error::<crate::sys::paths::PathError>();
        is_error::<crate::sys::paths::UserNameError>();
        is_error::<crate::sys::send::SendError>();
    }
}
