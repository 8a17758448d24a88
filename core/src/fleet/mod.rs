//! Fleet mode: what the PAM module and the CLI say to otpgated, who may
//! say what, and how enrollments are sealed at rest. The daemon (`daemon/`)
//! only translates between this, its socket and PostgreSQL.

pub mod access;
pub mod freshness;
pub mod history;
pub mod protocol;
pub mod seal;
