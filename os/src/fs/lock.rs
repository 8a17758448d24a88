//! Exclusive locks on a separate lock file, with a bounded wait.

use super::*;
use rustix::fs::FlockOperation;

impl SafeDir {
    /// Opens (creating if needed) a lock file and takes an exclusive lock on
    /// it, waiting at most `timeout`. The lock is released when the returned
    /// file is dropped. A separate lock file is needed because the atomic
    /// rename replaces the data file's inode.
    pub fn lock(&self, name: &OsStr, timeout: Duration) -> Result<File, FsError> {
        let path = self.path.join(name);
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = openat(&self.fd, name, flags, Mode::from_bits_truncate(0o600))
            .map_err(|e| explain_open_failure(&self.fd, name, &path, errno(e), self.trust))?;
        let st = fstat(&fd).map_err(|e| io(&path, "checking", e))?;
        if !is_type(&st, FileType::RegularFile) {
            return Err(FsError::NotRegular { path });
        }
        let file = File::from(fd);
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        // Bounded by both wall time and a count, so a frozen or faked clock
        // cannot turn this into an endless loop.
        for _ in 0..10_000 {
            match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => return Ok(file),
                Err(rustix::io::Errno::WOULDBLOCK | rustix::io::Errno::INTR) => {}
                Err(e) => return Err(io(&path, "locking", errno(e))),
            }
            if start.elapsed() >= timeout {
                break;
            }
            crate::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
        Err(FsError::Locked {
            path,
            seconds: timeout.as_secs(),
        })
    }
}
