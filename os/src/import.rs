//! Reading a `~/.google_authenticator` file to import.

use crate::fs::{self, Trust};
use crate::identity::FsIdentity;
use otpgate_core::admin::Error;
use otpgate_core::enrollment::MAX_FILE_SIZE;
use otpgate_core::enrollment::gauth::GoogleFile;
use otpgate_core::sys::account::Account;
use std::path::Path;

/// Reads and parses the file as the user (their file-system ids, the same
/// link-free, owner- and mode-checked read as a secret file, the same size cap).
pub fn read(account: &Account, path: &Path) -> Result<GoogleFile, Error> {
    let bytes = {
        let _id = FsIdentity::become_user(account.uid, account.gid)
            .map_err(|e| Error::System(e.to_string()))?;
        let trust = Trust {
            owner: account.uid.as_raw(),
        };
        fs::read_private_file(path, trust, MAX_FILE_SIZE)
            .map_err(|e| Error::System(format!("cannot import: {e}")))?
    };
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::Input(format!("{} is not text", path.display())))?;
    GoogleFile::parse(text).map_err(|e| Error::Input(format!("{}: {e}", path.display())))
}
