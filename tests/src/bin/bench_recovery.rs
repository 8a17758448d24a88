//! Benchmark helper (not a test): the cost of checking one recovery code
//! against sets of 1, 10 and 100 stored hashes. Run in release mode by
//! scripts/bench.sh; prints one line per set size.

use otpgate_core::otp::recovery::{self, RecoveryCode};
use std::time::Instant;

fn main() {
    for n in [1usize, 10, 100] {
        let (codes, set) = recovery::generate_set(&otpgate_os::random::OsRandom, n, 0)
            .unwrap_or_else(|e| panic!("{e}"));
        let last = codes.last().cloned().unwrap_or_else(|| panic!("no codes"));
        let miss =
            RecoveryCode::generate(&otpgate_os::random::OsRandom).unwrap_or_else(|e| panic!("{e}"));
        let mut times = Vec::new();
        for i in 0..21 {
            let code = if i % 2 == 0 { &last } else { &miss };
            let start = Instant::now();
            let found = recovery::find(&set, code).unwrap_or_else(|e| panic!("{e}"));
            times.push(start.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(found.is_some(), i % 2 == 0);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "recovery-check codes={n:<3} median_ms={:.1} max_ms={:.1}",
            times[10], times[20]
        );
    }
}
