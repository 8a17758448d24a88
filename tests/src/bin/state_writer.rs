//! Test helper: rewrites a user's login state and secret file in a loop,
//! printing the iteration number after each completed pair of writes, until
//! killed. The crash-safety test SIGKILLs it at random points.
//!
//! usage: state_writer CONFIG USER

use otpgate_core::config::Source;
use otpgate_core::enrollment::Enrollment;
use otpgate_core::otp::TotpParams;
use otpgate_core::otp::secret::Secret;
use otpgate_core::store::{Store, StoreExt};
use otpgate_os::store::files::FileStore;
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(config), Some(user)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: state_writer CONFIG USER");
        std::process::exit(2);
    };
    let config = otpgate_os::config::load(&Source::Explicit(config.into()))
        .unwrap_or_else(|e| panic!("{e}"));
    let account = otpgate_core::directory::Directory::user(&otpgate_os::nss::Nss, user)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no user {user}"));
    let store = FileStore::new(&config);
    let make = |id: &str, byte: u8| {
        let mut e = Enrollment::new(
            Secret::from_bytes(vec![byte; 20]).unwrap_or_else(|e| panic!("{e}")),
            TotpParams::DEFAULT,
            1,
            &otpgate_os::random::OsRandom,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        e.id = id.into();
        e
    };
    let enrollments = [
        make("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1),
        make("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 2),
    ];
    let mut out = std::io::stdout();
    for i in 1u64.. {
        store
            .update(&account, |s| {
                s.last_success = Some(i);
                s.failures = (0..(i % 7)).collect();
            })
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .save(&account, &enrollments[(i % 2) as usize])
            .unwrap_or_else(|e| panic!("{e}"));
        if writeln!(out, "{i}").and_then(|()| out.flush()).is_err() {
            return;
        }
    }
}
