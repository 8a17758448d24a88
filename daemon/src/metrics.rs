//! Prometheus metrics at `http://metrics_listen/metrics` (off unless
//! configured; a loopback or private address only): logins by result and
//! method, decision latency, whether the store is up, pool connections,
//! refused requests. The text format is a handful of line kinds, written
//! here directly (no client library for a dozen series), and the HTTP side
//! answers one GET per connection: a scraper that stalls holds only its own
//! connection, and at most [`CONNECTIONS`] of them exist at once.

use otpgate_core::fleet::history::{LoginEvent, LoginResult, Method};
use otpgate_core::fleet::protocol::ErrorKind;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];
/// Scrapes served at once; more are closed at once.
const CONNECTIONS: usize = 4;
/// A scrape's request must arrive within this.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Latency {
    /// Counts per bucket (not cumulative) and above the last.
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    logins: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    latency: Mutex<Latency>,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    pub requests: AtomicU64,
}

/// What is not counted here but read when scraped.
pub struct Now {
    pub store_up: bool,
    pub pool_in_use: usize,
    pub pool_idle: usize,
    pub pool_size: usize,
    pub history_dropped: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    /// Counts one PAM call's decisions and how long it took.
    pub fn login(&self, events: &[LoginEvent], micros: u64) {
        let mut logins = lock(&self.logins);
        for e in events {
            let method = e.method.map_or("none", Method::as_str);
            *logins.entry((e.result.as_str(), method)).or_default() += 1;
        }
        drop(logins);
        if events.is_empty() {
            return;
        }
        let seconds = micros as f64 / 1e6;
        let mut latency = lock(&self.latency);
        let slot = BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(BUCKETS.len());
        latency.buckets[slot] += 1;
        latency.sum += seconds;
        latency.count += 1;
    }

    /// Counts a request answered with an error.
    pub fn refused(&self, kind: ErrorKind) {
        let reason = match kind {
            ErrorKind::Denied => "denied",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Database => "database",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Corrupt => "corrupt",
        };
        *lock(&self.refused).entry(reason).or_default() += 1;
    }

    /// The text exposition format, version 0.0.4.
    pub fn render(&self, now: &Now) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP otpgate_logins_total Login decisions by result and method.\n# TYPE otpgate_logins_total counter"
        );
        let logins = lock(&self.logins);
        // Every result with no method, so alerts see zeros, not gaps.
        for r in LoginResult::ALL {
            if !logins.contains_key(&(r.as_str(), "none")) {
                let _ = writeln!(
                    out,
                    "otpgate_logins_total{{result=\"{}\",method=\"none\"}} 0",
                    r.as_str()
                );
            }
        }
        for ((result, method), n) in logins.iter() {
            let _ = writeln!(
                out,
                "otpgate_logins_total{{result=\"{result}\",method=\"{method}\"}} {n}"
            );
        }
        drop(logins);
        let latency = lock(&self.latency);
        let _ = writeln!(
            out,
            "# HELP otpgate_login_seconds Time a PAM call took to decide, without the time the user took to type.\n# TYPE otpgate_login_seconds histogram"
        );
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(latency.buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "otpgate_login_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "otpgate_login_seconds_bucket{{le=\"+Inf\"}} {}\notpgate_login_seconds_sum {}\notpgate_login_seconds_count {}",
            latency.count, latency.sum, latency.count
        );
        drop(latency);
        let _ = writeln!(
            out,
            "# HELP otpgate_store_up Whether this otpgated reached the database at its last try (1) or not (0).\n# TYPE otpgate_store_up gauge\notpgate_store_up {}",
            u8::from(now.store_up)
        );
        let _ = writeln!(
            out,
            "# HELP otpgate_pool_connections Database connections of this otpgated by state.\n# TYPE otpgate_pool_connections gauge\notpgate_pool_connections{{state=\"in_use\"}} {}\notpgate_pool_connections{{state=\"idle\"}} {}",
            now.pool_in_use, now.pool_idle
        );
        let _ = writeln!(
            out,
            "# HELP otpgate_pool_size The most database connections this otpgated opens (database_pool_size).\n# TYPE otpgate_pool_size gauge\notpgate_pool_size {}",
            now.pool_size
        );
        let _ = writeln!(
            out,
            "# HELP otpgate_requests_total Requests answered by this otpgated.\n# TYPE otpgate_requests_total counter\notpgate_requests_total {}",
            self.requests.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP otpgate_requests_refused_total Requests answered with an error, by reason.\n# TYPE otpgate_requests_refused_total counter"
        );
        let refused = lock(&self.refused);
        for reason in [
            "unavailable",
            "database",
            "denied",
            "bad_request",
            "corrupt",
        ] {
            let _ = writeln!(
                out,
                "otpgate_requests_refused_total{{reason=\"{reason}\"}} {}",
                refused.get(reason).copied().unwrap_or(0)
            );
        }
        drop(refused);
        let _ = writeln!(
            out,
            "# HELP otpgate_history_dropped_total Login decisions not written to the history because too many waited.\n# TYPE otpgate_history_dropped_total counter\notpgate_history_dropped_total {}",
            now.history_dropped
        );
        let _ = writeln!(
            out,
            "# HELP otpgate_build_info This otpgated's version.\n# TYPE otpgate_build_info gauge\notpgate_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        out
    }
}

/// Serves `GET /metrics` on `listener` for ever; `scrape` renders.
pub async fn serve(listener: TcpListener, scrape: impl Fn() -> String + Send + Sync + 'static) {
    let scrape = std::sync::Arc::new(scrape);
    let slots = std::sync::Arc::new(Semaphore::new(CONNECTIONS));
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(slot) = std::sync::Arc::clone(&slots).try_acquire_owned() else {
            continue; // dropped: closed
        };
        let scrape = std::sync::Arc::clone(&scrape);
        tokio::spawn(async move {
            let _slot = slot;
            let Ok(Some(path)) =
                tokio::time::timeout(REQUEST_DEADLINE, request_path(&mut stream)).await
            else {
                return;
            };
            let (status, body) = if path == "/metrics" {
                ("200 OK", scrape())
            } else {
                (
                    "404 Not Found",
                    "only /metrics is served here\n".to_string(),
                )
            };
            let head = format!(
                "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = tokio::time::timeout(REQUEST_DEADLINE, async {
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(body.as_bytes()).await?;
                stream.shutdown().await
            })
            .await;
        });
    }
}

/// The path of a `GET` request (its head read up to 4 KiB).
async fn request_path(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 || head.len() + n > 4096 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let mut words = text.lines().next()?.split(' ');
    if words.next()? != "GET" {
        return None;
    }
    let target = words.next()?;
    Some(target.split('?').next().unwrap_or(target).to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn event(result: LoginResult, method: Option<Method>) -> LoginEvent {
        LoginEvent {
            user: "alice".into(),
            service: "sshd".into(),
            rhost: None,
            method,
            result,
        }
    }

    #[test]
    fn counts_and_buckets_add_up() {
        let m = Metrics::default();
        m.login(&[event(LoginResult::Accepted, Some(Method::Totp))], 2_000);
        m.login(
            &[
                event(LoginResult::WrongCode, None),
                event(LoginResult::Accepted, Some(Method::Totp)),
            ],
            30_000,
        );
        m.refused(ErrorKind::Unavailable);
        let text = m.render(&Now {
            store_up: true,
            pool_in_use: 1,
            pool_idle: 2,
            pool_size: 4,
            history_dropped: 0,
        });
        for line in [
            "otpgate_logins_total{result=\"accepted\",method=\"totp\"} 2",
            "otpgate_logins_total{result=\"wrong_code\",method=\"none\"} 1",
            "otpgate_logins_total{result=\"locked\",method=\"none\"} 0",
            "otpgate_login_seconds_bucket{le=\"0.0025\"} 1",
            "otpgate_login_seconds_bucket{le=\"0.05\"} 2",
            "otpgate_login_seconds_bucket{le=\"+Inf\"} 2",
            "otpgate_login_seconds_count 2",
            "otpgate_store_up 1",
            "otpgate_pool_connections{state=\"idle\"} 2",
            "otpgate_requests_refused_total{reason=\"unavailable\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
