//! Randomness, passed in like the clock: core asks a [`Random`] for bytes
//! and makes no system call itself (otpgate-os's `OsRandom` reads the
//! kernel's CSPRNG, getrandom(2), through the getrandom crate).

/// The random source failed (a kernel without getrandom(2), or a seccomp
/// filter refusing it): callers deny or refuse, never fall back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// A source of cryptographically secure random bytes: secrets, recovery
/// codes and their salt, sent codes, enrollment and request ids, nonces.
pub trait Random: Send + Sync {
    /// Fills all of `buf`, or fails.
    fn fill(&self, buf: &mut [u8]) -> Result<(), Unavailable>;
}

/// Stand-ins for core's unit tests: no system call, no secrecy.
#[cfg(test)]
pub(crate) mod test {
    use super::{Random, Unavailable};
    use sha2::Digest;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// SHA-256 of a running counter: different on every call, so tests
    /// that compare two generated values still can.
    pub(crate) struct Counter(AtomicU64);

    pub(crate) static COUNTER: Counter = Counter(AtomicU64::new(0));

    impl Random for Counter {
        fn fill(&self, buf: &mut [u8]) -> Result<(), Unavailable> {
            for chunk in buf.chunks_mut(32) {
                let n = self.0.fetch_add(1, Ordering::Relaxed);
                let block = sha2::Sha256::digest(n.to_le_bytes());
                chunk.copy_from_slice(block.get(..chunk.len()).ok_or(Unavailable)?);
            }
            Ok(())
        }
    }

    /// A source that always fails.
    pub(crate) struct Broken;

    impl Random for Broken {
        fn fill(&self, _: &mut [u8]) -> Result<(), Unavailable> {
            Err(Unavailable)
        }
    }

    #[test]
    fn the_counter_fills_every_byte_and_differs_between_calls() {
        let mut a = vec![0u8; 100];
        let mut b = vec![0u8; 100];
        COUNTER.fill(&mut a).unwrap();
        COUNTER.fill(&mut b).unwrap();
        assert_ne!(a, b);
        assert!(a[64..].iter().any(|&x| x != 0));
        COUNTER.fill(&mut []).unwrap();
        assert_eq!(Broken.fill(&mut a), Err(Unavailable));
    }
}
