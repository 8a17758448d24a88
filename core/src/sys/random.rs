//! The operating system's CSPRNG, through the getrandom crate
//! (getrandom(2) on Linux; it blocks only until the kernel's pool is first
//! seeded at boot).

/// The random source failed (a kernel without getrandom(2), or a seccomp
/// filter refusing it): callers deny or refuse, never fall back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// Fills `buf` with random bytes.
pub fn fill(buf: &mut [u8]) -> Result<(), Unavailable> {
    getrandom::fill(buf).map_err(|_| Unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_every_byte_and_differs_between_calls() {
        // 4 KiB: a partial fill would leave a long zero run.
        let mut a = vec![0u8; 4096];
        let mut b = vec![0u8; 4096];
        fill(&mut a).unwrap();
        fill(&mut b).unwrap();
        assert_ne!(a, b);
        assert!(a[4000..].iter().any(|&x| x != 0));
        assert!(a.windows(64).all(|w| w.iter().any(|&x| x != 0)));
        fill(&mut []).unwrap();
    }
}
