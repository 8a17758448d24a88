//! Benchmark helper (not a test): logins per second and latency through
//! the login flow the module runs (`core::auth`), against the files engine
//! and against fleet mode over two otpgated, with 1, 8 and 64 concurrent
//! logins. Each login opens its store afresh, as the module does in each
//! PAM call; each thread logs in as its own user with a fresh code each
//! time (time moves 30 s per login). Run by scripts/bench-fleet.sh.
//!
//! usage: bench_fleet FILES_CONFIG FLEET_A_CONFIG FLEET_B_CONFIG USER_PREFIX LOGINS_PER_THREAD
//!        bench_fleet scale USER_PREFIX LOGINS_PER_THREAD START_TIME FLEET_CONFIG...
//!
//! The second form spreads the threads over many servers (thread t on
//! server t mod N), counts every outcome instead of requiring success, and
//! then races 32 logins with one right code over the servers.

use otpgate_core::auth::{
    self, Conversation, ConversationError, Level, Log, NoHandoff, Outcome, Request,
};
use otpgate_core::config::args::Mode;
use otpgate_core::config::{Config, Source};
use otpgate_core::otp::secret::Secret;
use otpgate_core::otp::{TotpParams, totp};
use std::time::Instant;
use zeroize::Zeroizing;

const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

struct Typed(String);

impl Conversation for Typed {
    fn ask_hidden(
        &mut self,
        _prompt: &str,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, ConversationError> {
        Ok(Some(Zeroizing::new(self.0.clone().into_bytes())))
    }
    fn info(&mut self, _text: &str) {}
    fn error(&mut self, _text: &str) {}
}

struct Quiet;

impl Log for Quiet {
    fn log(&mut self, _level: Level, _line: &str) {}
}

fn load(path: &str) -> Config {
    otpgate_os::config::load(&Source::Explicit(path.into())).unwrap_or_else(|e| panic!("{e}"))
}

/// One login as the module makes it (its store opened for the login);
/// the outcome and how long it took in milliseconds.
fn login(config: &Config, user: &str, secret: &Secret, now: u64) -> (Outcome, f64) {
    let code = totp(secret, &TotpParams::DEFAULT, now).to_string();
    login_with(config, user, &code, now)
}

fn login_with(config: &Config, user: &str, code: &str, now: u64) -> (Outcome, f64) {
    let req = Request {
        user,
        service: "bench",
        rhost: None,
    };
    let t0 = Instant::now();
    let store = otpgate_os::store::open_for_login(config);
    let services = auth::Services {
        store: store.as_ref(),
        directory: &otpgate_os::nss::Nss,
        sender: &otpgate_os::send::Programs,
        random: &otpgate_os::random::OsRandom,
        clock: None,
    };
    let out = auth::authenticate_with(
        config,
        services,
        &req,
        (Mode::Prompt, now),
        &mut Typed(code.to_string()),
        &mut NoHandoff,
        &mut Quiet,
    );
    (out, t0.elapsed().as_secs_f64() * 1000.0)
}

/// The median and the 99th percentile of `latencies` (milliseconds).
fn p50_p99(mut latencies: Vec<f64>) -> (f64, f64) {
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    (pct(0.50), pct(0.99))
}

/// The fleet-scale form: many servers, every outcome counted. `start`:
/// the (fake) time of the first login, later than any code used before.
fn scale(prefix: &str, logins: u64, start: u64, configs: &[Config]) {
    let secret = Secret::from_base32(SECRET).unwrap_or_else(|e| panic!("{e}"));
    let mut base = start;
    for concurrency in [1usize, 8, 64] {
        let start = Instant::now();
        let results: Vec<(Outcome, f64)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..concurrency)
                .map(|t| {
                    let config = &configs[t % configs.len()];
                    let user = format!("{prefix}{t}");
                    let secret = &secret;
                    scope.spawn(move || {
                        (1..=logins)
                            .map(|k| login(config, &user, secret, base + 30 * k))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap_or_default())
                .collect()
        });
        let wall = start.elapsed().as_secs_f64();
        let accepted = results
            .iter()
            .filter(|(o, _)| *o == Outcome::Success)
            .count();
        let (p50, p99) = p50_p99(results.iter().map(|(_, ms)| *ms).collect());
        println!(
            "scale-bench servers={} concurrency={concurrency:<2} logins={:<5} accepted={accepted:<5} logins_per_s={:<7.0} p50_ms={:.2} p99_ms={:.2} p99_over_p50={:.1}",
            configs.len(),
            results.len(),
            results.len() as f64 / wall,
            p50,
            p99,
            p99 / p50
        );
        base += 30 * (logins + 1);
    }
    // 32 logins at once with one right code, spread over the servers.
    let now = base + 30;
    let code = totp(&secret, &TotpParams::DEFAULT, now).to_string();
    let user = format!("{prefix}0");
    let barrier = std::sync::Barrier::new(32);
    let accepted = std::thread::scope(|scope| {
        (0..32)
            .map(|t| {
                let (config, code, user, barrier) =
                    (&configs[t % configs.len()], &code, &user, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    login_with(config, user, code, now).0 == Outcome::Success
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|w| w.join().unwrap_or(false))
            .filter(|ok| *ok)
            .count()
    });
    println!(
        "scale-race servers={} requests=32 one_right_code accepted={accepted}",
        configs.len()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("scale") && args.len() >= 6 {
        let logins: u64 = args[3].parse().unwrap_or(20);
        let start: u64 = args[4].parse().unwrap_or(1_900_000_000);
        let configs: Vec<Config> = args[5..].iter().map(|p| load(p)).collect();
        scale(&args[2], logins, start, &configs);
        return;
    }
    if args.len() != 6 {
        eprintln!(
            "usage: bench_fleet FILES_CONFIG FLEET_A_CONFIG FLEET_B_CONFIG USER_PREFIX LOGINS_PER_THREAD"
        );
        std::process::exit(2);
    }
    let files = load(&args[1]);
    let fleet = [load(&args[2]), load(&args[3])];
    let prefix = &args[4];
    let logins: u64 = args[5].parse().unwrap_or(50);
    let secret = Secret::from_base32(SECRET).unwrap_or_else(|e| panic!("{e}"));
    // Each run starts later than every code used before it.
    let mut base = 1_800_000_000u64;
    for concurrency in [1usize, 8, 64] {
        for engine in ["files", "fleet"] {
            let start = Instant::now();
            let latencies: Vec<f64> = std::thread::scope(|scope| {
                let workers: Vec<_> = (0..concurrency)
                    .map(|t| {
                        let config = if engine == "files" {
                            &files
                        } else {
                            &fleet[t % 2]
                        };
                        let user = format!("{prefix}{t}");
                        let secret = &secret;
                        scope.spawn(move || {
                            let mut times = Vec::new();
                            for k in 1..=logins {
                                let now = base + 30 * k;
                                let (out, ms) = login(config, &user, secret, now);
                                times.push(ms);
                                assert_eq!(out, Outcome::Success, "{engine} {user} at {now}");
                            }
                            times
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .flat_map(|w| w.join().unwrap_or_default())
                    .collect()
            });
            let wall = start.elapsed().as_secs_f64();
            let n = latencies.len();
            let (p50, p99) = p50_p99(latencies);
            println!(
                "fleet-bench engine={engine:<5} concurrency={concurrency:<2} logins={n:<5} logins_per_s={:<7.0} p50_ms={p50:.2} p99_ms={p99:.2}",
                n as f64 / wall,
            );
            base += 30 * (logins + 1);
        }
    }
}
