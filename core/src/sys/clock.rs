//! Time as a parameter.
//!
//! Every time-dependent decision in `core` takes a [`Clock`], so tests pick the
//! instant they need instead of sleeping, and the PAM module never calls a
//! function that panics on a clock set before 1970 (totp-rs's `*_current`).

/// A source of the current Unix time in seconds.
pub trait Clock {
    /// Seconds since the Unix epoch, or `None` if the clock is unusable
    /// (set before 1970). Callers must fail closed on `None`.
    fn now(&self) -> Option<u64>;
    /// A monotonic instant, for how long a step took (the metrics); `None`
    /// when this clock does not measure (then nothing is timed).
    fn instant(&self) -> Option<std::time::Instant> {
        None
    }
}

/// A clock frozen at one instant, for tests and tools.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub u64);

impl Clock for FixedClock {
    fn now(&self) -> Option<u64> {
        Some(self.0)
    }
}

/// Formats a Unix time as `YYYY-MM-DD HH:MM:SS UTC` without pulling in a date crate.
pub fn format_utc(unix: u64) -> String {
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_clock_returns_its_instant() {
        assert_eq!(FixedClock(59).now(), Some(59));
    }

    #[test]
    fn formats_known_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_utc(1_111_111_109), "2005-03-18 01:58:29 UTC");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
