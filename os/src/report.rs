//! `otpgate audit` over the host's accounts, in parallel.

use otpgate_core::admin::report::{ReportTime, UserReport, user_report};
use otpgate_core::sys::account::Account;

/// Reports on every account, in order. The work is almost all system calls
/// and, on a cold cache, waiting for the disk (four inodes per account), so
/// the accounts are shared out over more threads than CPUs (4 per CPU, 4 to
/// 16; measured on 2 cores with 10 000 accounts: cold 4.0 s with 2 threads,
/// 1.6 s with 16; warm 0.27 s either way). Each thread has its own store, and
/// reads each secret file with that account's file-system ids, which are
/// per thread.
pub fn audit(
    config: &otpgate_core::config::Config,
    accounts: &[Account],
    now: u64,
) -> Vec<UserReport> {
    let at = ReportTime::of(config, now);
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .saturating_mul(4)
        .clamp(4, 16);
    let chunk = accounts.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = accounts
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let store = crate::store::open_for_reports(config);
                    part.iter()
                        .map(|a| user_report(store.as_ref(), a, at))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut rows = Vec::with_capacity(accounts.len());
        for (worker, part) in workers.into_iter().zip(accounts.chunks(chunk)) {
            match worker.join() {
                Ok(part_rows) => rows.extend(part_rows),
                // A panic in one worker must not drop its accounts from the
                // report silently: they are reported as problems.
                Err(_) => rows.extend(part.iter().map(|a| {
                    let mut r =
                        user_report(&otpgate_core::store::memory::MemoryStore::new(), a, at);
                    r.problem = Some("could not be checked (internal error)".into());
                    r
                })),
            }
        }
        rows
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_reports_every_account_in_order() {
        let root = otpgate_core::directory::Directory::user(
            &otpgate_core::directory::Table::default().with_user("root", 0),
            "root",
        )
        .unwrap()
        .unwrap();
        let accounts: Vec<Account> = (0..37)
            .map(|i| Account {
                name: format!("audit-{i}"),
                ..root.clone()
            })
            .collect();
        let dir = crate::fs::Scratch::new("audit");
        let config = otpgate_core::config::Config {
            state_dir: dir.join("state"),
            secret_path: format!("{}/%u.toml", dir.display()),
            ..Default::default()
        };
        let rows = audit(&config, &accounts, 1_000);
        let names: Vec<&str> = rows.iter().map(|r| r.user.as_str()).collect();
        let want: Vec<String> = (0..37).map(|i| format!("audit-{i}")).collect();
        assert_eq!(names, want);
        assert!(audit(&config, &[], 1_000).is_empty());
    }
}
