//! The host's clock.

use otpgate_core::sys::clock::Clock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The real system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Option<u64> {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs())
    }
    fn instant(&self) -> Option<std::time::Instant> {
        Some(std::time::Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clock_is_after_2020_and_measures() {
        assert!(SystemClock.now().is_some_and(|t| t > 1_577_836_800));
        let (a, b) = (SystemClock.instant(), SystemClock.instant());
        assert!(a.zip(b).is_some_and(|(a, b)| b >= a));
    }
}
