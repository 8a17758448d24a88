//! Switching the file-system identity of the calling thread.

use super::fs::FsError;
use nix::unistd::{Gid, Uid};

/// While alive, file-system access uses another user's uid and gid (Linux
/// `setfsuid`/`setfsgid`, which affect only the calling thread, so a
/// multi-threaded host process is not disturbed). Dropping restores the
/// previous identity. A no-op unless running as root for a non-root user.
#[derive(Debug)]
pub struct FsIdentity {
    restore: Option<(Uid, Gid)>,
}

impl FsIdentity {
    pub fn become_user(uid: Uid, gid: Gid) -> Result<Self, FsError> {
        if !rustix::process::geteuid().is_root() || uid.is_root() {
            return Ok(Self { restore: None });
        }
        let prev_gid = nix::unistd::setfsgid(gid);
        let prev_uid = nix::unistd::setfsuid(uid);
        let guard = Self {
            restore: Some((prev_uid, prev_gid)),
        };
        // setfsuid reports failure only by not changing: ask again to confirm.
        let now_uid = nix::unistd::setfsuid(Uid::from_raw(u32::MAX));
        let now_gid = nix::unistd::setfsgid(Gid::from_raw(u32::MAX));
        if now_uid != uid || now_gid != gid {
            return Err(FsError::Identity {
                why: format!("setfsuid({uid})/setfsgid({gid}) did not take effect"),
            });
        }
        Ok(guard)
    }
}

impl Drop for FsIdentity {
    fn drop(&mut self) {
        if let Some((uid, gid)) = self.restore.take() {
            nix::unistd::setfsuid(uid);
            nix::unistd::setfsgid(gid);
        }
    }
}
