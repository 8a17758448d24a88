//! The engines behind [`otpgate_core::store::Store`]: [`files`] (secret
//! files and the state directory, [`statedir`]) and [`daemon`] (fleet
//! mode's client of otpgated), and the choice between them.

pub mod daemon;
pub mod files;
pub mod statedir;

use otpgate_core::config::{Config, StoreKind};
use otpgate_core::store::Store;

/// The store a config names: the files engine, or the fleet engine's
/// client when `store = "postgresql"`.
pub fn open(config: &Config) -> Box<dyn Store> {
    match config.store {
        StoreKind::Files => Box::new(files::FileStore::new(config)),
        StoreKind::Postgresql => Box::new(daemon::DaemonStore::new(config)),
    }
}

/// The store for one login (the PAM module): as [`open`], but the fleet
/// engine holds no connection to otpgated between requests, so a user
/// thinking at the prompt holds nothing of the daemon's.
pub fn open_for_login(config: &Config) -> Box<dyn Store> {
    match config.store {
        StoreKind::Files => Box::new(files::FileStore::new(config)),
        StoreKind::Postgresql => Box::new(daemon::DaemonStore::for_login(config)),
    }
}

/// The store `config` names, for read-only reports over many accounts
/// (`audit`): it may read a snapshot of what exists once instead of
/// looking every account up.
pub fn open_for_reports(config: &Config) -> Box<dyn Store> {
    match config.store {
        StoreKind::Files => Box::new(files::FileStore::for_reports(config)),
        StoreKind::Postgresql => Box::new(daemon::DaemonStore::new(config)),
    }
}
