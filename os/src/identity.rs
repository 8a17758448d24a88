//! Switching the file-system identity of the calling thread.

use super::fs::FsError;
use otpgate_core::sys::account::{Gid, Uid};

/// While alive, file-system access uses another user's uid and gid (Linux
/// `setfsuid`/`setfsgid`, which affect only the calling thread, so a
/// multi-threaded host process is not disturbed). Dropping restores the
/// previous identity. A no-op unless running as root for a non-root user.
#[derive(Debug)]
pub struct FsIdentity {
    restore: Option<(nix::unistd::Uid, nix::unistd::Gid)>,
}

impl FsIdentity {
    pub fn become_user(uid: Uid, gid: Gid) -> Result<Self, FsError> {
        if !rustix::process::geteuid().is_root() || uid.is_root() {
            return Ok(Self { restore: None });
        }
        let (fs_uid, fs_gid) = (
            nix::unistd::Uid::from_raw(uid.as_raw()),
            nix::unistd::Gid::from_raw(gid.as_raw()),
        );
        let prev_gid = nix::unistd::setfsgid(fs_gid);
        let prev_uid = nix::unistd::setfsuid(fs_uid);
        let guard = Self {
            restore: Some((prev_uid, prev_gid)),
        };
        // setfsuid reports failure only by not changing: ask again to confirm.
        let now_uid = nix::unistd::setfsuid(nix::unistd::Uid::from_raw(u32::MAX));
        let now_gid = nix::unistd::setfsgid(nix::unistd::Gid::from_raw(u32::MAX));
        if now_uid != fs_uid || now_gid != fs_gid {
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
