//! The fleet's login history and list of servers, written by this daemon:
//! decisions the module reports are queued in memory and written in
//! batches by one task, so a slow or full database never holds a login;
//! and rows older than `login_history_days` are pruned at start and
//! hourly. (The list of servers is kept by `Service::heartbeat_forever`.)

use crate::db::{Db, LoginRow};
use crate::log::{Level, Log};
use otpgate_core::fleet::history::LoginEvent;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// The most decisions waiting to be written; beyond it the oldest are
/// dropped (and counted): memory stays bounded while the database is away.
const QUEUE_MAX: usize = 10_000;
/// The most rows one INSERT writes.
const BATCH_MAX: usize = 500;
/// How long the writer waits after the first decision of a batch for
/// others: history rows appear this much later.
const GATHER: Duration = Duration::from_millis(500);
/// How often old rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

pub struct History {
    /// This server's name in the history (`server_name` or the host name).
    pub server: String,
    days: u32,
    queue: Mutex<Vec<LoginRow>>,
    wake: Notify,
    /// Decisions dropped because the queue was full.
    pub dropped: AtomicU64,
}

impl History {
    pub fn new(server: String, days: u32) -> Self {
        Self {
            server,
            days,
            queue: Mutex::new(Vec::new()),
            wake: Notify::new(),
            dropped: AtomicU64::new(0),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<LoginRow>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many decisions wait to be written.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.queue().len()
    }

    /// Queues reported decisions (none when `login_history_days` is 0).
    pub fn add(&self, events: Vec<LoginEvent>) {
        if self.days == 0 || events.is_empty() {
            return;
        }
        let mut queue = self.queue();
        for e in events {
            let e = e.bounded();
            queue.push(LoginRow {
                user: e.user,
                service: e.service,
                method: e.method.map(|m| m.as_str().to_string()),
                result: e.result.as_str().to_string(),
                rhost: e.rhost,
            });
        }
        if queue.len() > QUEUE_MAX {
            let over = queue.len() - QUEUE_MAX;
            queue.drain(..over);
            self.dropped.fetch_add(over as u64, Ordering::Relaxed);
        }
        drop(queue);
        self.wake.notify_one();
    }

    /// Puts a batch that could not be written back in front of the queue.
    fn put_back(&self, mut batch: Vec<LoginRow>) {
        let mut queue = self.queue();
        batch.append(&mut queue);
        if batch.len() > QUEUE_MAX {
            let over = batch.len() - QUEUE_MAX;
            batch.drain(..over);
            self.dropped.fetch_add(over as u64, Ordering::Relaxed);
        }
        *queue = batch;
    }

    /// Writes what is queued, batch by batch, for ever; a failed batch is
    /// put back and tried again a second later.
    pub async fn write_forever(&self, db: &Db, log: &Log) {
        let mut failing = false;
        loop {
            let batch: Vec<LoginRow> = {
                let mut queue = self.queue();
                let n = queue.len().min(BATCH_MAX);
                queue.drain(..n).collect()
            };
            if batch.is_empty() {
                self.wake.notified().await;
                // Gather what comes in the next moment: one INSERT for many
                // logins costs the database far less than one each.
                tokio::time::sleep(GATHER).await;
                continue;
            }
            match db.record_logins(&self.server, &batch).await {
                Ok(()) => {
                    if failing {
                        log.line(Level::Notice, "login history: writing again");
                        failing = false;
                    }
                }
                Err(e) => {
                    if !failing {
                        log.line(
                            Level::Warning,
                            &format!(
                                "login history: cannot write ({e}); logins go on, and the history is kept in memory (up to {QUEUE_MAX} decisions) until it can"
                            ),
                        );
                        failing = true;
                    }
                    self.put_back(batch);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Writes what is queued now (at a clean stop), within the caller's
    /// deadline.
    pub async fn flush(&self, db: &Db) {
        let batch: Vec<LoginRow> = std::mem::take(&mut *self.queue());
        for chunk in batch.chunks(BATCH_MAX) {
            if db.record_logins(&self.server, chunk).await.is_err() {
                return;
            }
        }
    }

    /// Prunes rows older than `login_history_days`, now and hourly.
    pub async fn prune_forever(&self, db: &Db, log: &Log) {
        loop {
            match db.prune_logins(self.days).await {
                Ok(0) => {}
                Ok(n) => log.line(
                    Level::Info,
                    &format!(
                        "login history: pruned {n} row(s) older than {} day(s)",
                        self.days
                    ),
                ),
                Err(e) => log.line(Level::Warning, &format!("login history: cannot prune: {e}")),
            }
            tokio::time::sleep(PRUNE_EVERY).await;
        }
    }
}

/// This server's name: `server_name`, or the kernel's host name.
pub fn server_name(configured: &str) -> String {
    if !configured.is_empty() {
        return configured.to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use otpgate_core::fleet::history::{LoginResult, Method};

    fn event(user: &str) -> LoginEvent {
        LoginEvent {
            user: user.into(),
            service: "sshd".into(),
            rhost: Some("192.0.2.1".into()),
            method: Some(Method::Totp),
            result: LoginResult::Accepted,
        }
    }

    #[test]
    fn zero_days_keeps_nothing_and_the_queue_stays_bounded() {
        let none = History::new("a".into(), 0);
        none.add(vec![event("alice")]);
        assert!(none.queue().is_empty());

        let kept = History::new("a".into(), 90);
        kept.add(
            (0..QUEUE_MAX + 5)
                .map(|i| event(&format!("u{i}")))
                .collect(),
        );
        let queue = kept.queue();
        assert_eq!(queue.len(), QUEUE_MAX);
        assert_eq!(queue[0].user, "u5", "the oldest are dropped");
        assert_eq!(queue[0].method.as_deref(), Some("totp"));
        assert_eq!(queue[0].result, "accepted");
        drop(queue);
        assert_eq!(kept.dropped.load(Ordering::Relaxed), 5);
        // A batch that could not be written goes back in front.
        let retry = History::new("a".into(), 90);
        retry.add(vec![event("new")]);
        let batch: Vec<LoginRow> = kept.queue().drain(..2).collect();
        retry.put_back(batch);
        let users: Vec<String> = retry.queue().iter().map(|r| r.user.clone()).collect();
        assert_eq!(users, ["u5", "u6", "new"]);
    }
}
