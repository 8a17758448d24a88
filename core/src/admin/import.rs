//! `otpgate import google-authenticator`: the same secret, so the app's
//! entry keeps working; scratch codes become hashed recovery codes.

use super::Error;
use crate::enrollment::Enrollment;
use crate::enrollment::gauth::GoogleFile;
use crate::otp::recovery::{self, RecoveryCode};
use crate::otp::{Algorithm, TotpParams};
use crate::sys::account::Account;
use crate::sys::random::Random;
use std::path::{Path, PathBuf};

/// The file to import: `--file PATH`, or the user's `~/.google_authenticator`.
pub fn source_path(account: &Account, file: Option<&Path>) -> PathBuf {
    file.map_or_else(
        || account.home.join(".google_authenticator"),
        Path::to_path_buf,
    )
}

/// The enrollment an imported file becomes.
pub fn enrollment(google: &GoogleFile, now: u64, random: &dyn Random) -> Result<Enrollment, Error> {
    let params = TotpParams::new(Algorithm::SHA1, 6, google.period)?;
    let mut enrollment = Enrollment::new(google.secret.clone(), params, now, random)
        .map_err(|e| Error::System(e.to_string()))?;
    if !google.scratch_codes.is_empty() {
        let codes: Vec<RecoveryCode> = google
            .scratch_codes
            .iter()
            .filter_map(|c| RecoveryCode::from_scratch(c))
            .collect();
        enrollment.recovery = Some(recovery::hash_set(random, &codes, now)?);
    }
    Ok(enrollment)
}
