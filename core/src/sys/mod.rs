//! The operating-system boundary: everything that touches files, accounts,
//! file-system identity or the clock. Decisions never live here.

pub mod account;
pub mod clock;
pub mod fs;
pub mod identity;
pub mod paths;
pub mod send;
