//! Fleet mode: what the PAM module and the CLI say to otpgated, and who may
//! say what. The daemon (`daemon/`) only translates between this, its
//! socket and PostgreSQL.

pub mod access;
pub mod protocol;
