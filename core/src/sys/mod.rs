//! What the operating system hands over, as plain types: accounts and
//! ids, path and name rules, time, why a file or a send failed, and the
//! CSPRNG as an interface ([`random::Random`]). No system call is made here: the
//! walks, identities, lookups, spawning and the store engines are in
//! otpgate-os.

pub mod account;
pub mod clock;
pub mod fs;
pub mod paths;
pub mod random;
pub mod send;
