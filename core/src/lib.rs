//! otpgate's decisions: configuration, the secret store, OTP and
//! recovery-code checks, and login policy.
//!
//! No FFI and no terminal here: `pam-module` and `enroll-cli` only translate
//! between the outside world and this crate, so every rule is unit-tested here.

pub mod account;
pub mod admin;
pub mod clock;
pub mod config;
pub mod devices;
pub mod escape;
pub mod fsutil;
pub mod gauth;
pub mod input;
pub mod login;
pub mod otp;
pub mod pamconf;
pub mod paths;
pub mod policy;
pub mod recovery;
pub mod report;
pub mod secret;
pub mod state;
pub mod store;
pub mod uri;
pub mod userfile;
