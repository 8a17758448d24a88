//! The operating system's CSPRNG: the getrandom(2) system call, through
//! rustix's raw backend.
//!
//! Not `rand`'s `SysRng` (the getrandom crate): that looks the libc function
//! up with `dlsym` and keeps a `/dev/urandom` fallback (poll, open) for
//! kernels older than 3.17, four more libc imports bound by the loader at
//! every login. The call blocks only until the kernel's pool is first
//! seeded at boot, as the getrandom crate's does.

/// The random source failed (a kernel without getrandom(2), or a seccomp
/// filter refusing it): callers deny or refuse, never fall back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// Fills `buf` with random bytes.
pub fn fill(buf: &mut [u8]) -> Result<(), Unavailable> {
    let mut done = 0;
    while let Some(rest) = buf.get_mut(done..).filter(|r| !r.is_empty()) {
        match rustix::rand::getrandom(rest, rustix::rand::GetRandomFlags::empty()) {
            Ok(0) => return Err(Unavailable),
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return Err(Unavailable),
        }
    }
    Ok(())
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
