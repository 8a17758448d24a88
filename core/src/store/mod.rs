//! Where a user's enrollment and login state live.

pub mod files;
pub mod state;
