//! The kernel's CSPRNG (getrandom(2), through the getrandom crate): core's
//! `Random`. It blocks only until the kernel's pool is first seeded at boot.

use otpgate_core::sys::random::{Random, Unavailable};

/// The operating system's random source.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), Unavailable> {
        getrandom::fill(buf).map_err(|_| Unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_every_byte_and_differs_between_calls() {
        // 4 KiB: a partial fill would leave a long zero run.
        let mut a = vec![0u8; 4096];
        let mut b = vec![0u8; 4096];
        OsRandom.fill(&mut a).unwrap();
        OsRandom.fill(&mut b).unwrap();
        assert_ne!(a, b);
        assert!(a[4000..].iter().any(|&x| x != 0));
        assert!(a.windows(64).all(|w| w.iter().any(|&x| x != 0)));
        OsRandom.fill(&mut []).unwrap();
    }
}
