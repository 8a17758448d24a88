//! `otpgate import google-authenticator`: the same secret, so the app's
//! entry keeps working; scratch codes become hashed recovery codes.

use super::Error;
use crate::enrollment::gauth::GoogleFile;
use crate::enrollment::{Enrollment, MAX_FILE_SIZE};
use crate::otp::recovery::{self, RecoveryCode};
use crate::otp::{Algorithm, TotpParams};
use crate::sys::account::Account;
use crate::sys::fs::{self, Trust};
use crate::sys::identity::FsIdentity;
use std::path::{Path, PathBuf};

/// The file to import: `--file PATH`, or the user's `~/.google_authenticator`.
pub fn source_path(account: &Account, file: Option<&Path>) -> PathBuf {
    file.map_or_else(
        || account.home.join(".google_authenticator"),
        Path::to_path_buf,
    )
}

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

/// The enrollment an imported file becomes.
pub fn enrollment(google: &GoogleFile, now: u64) -> Result<Enrollment, Error> {
    let params = TotpParams::new(Algorithm::SHA1, 6, google.period)?;
    let mut enrollment = Enrollment::new(google.secret.clone(), params, now)
        .map_err(|e| Error::System(e.to_string()))?;
    if !google.scratch_codes.is_empty() {
        let codes: Vec<RecoveryCode> = google
            .scratch_codes
            .iter()
            .filter_map(|c| RecoveryCode::from_scratch(c))
            .collect();
        enrollment.recovery = Some(recovery::hash_set(&codes, now)?);
    }
    Ok(enrollment)
}
