//! Reading `~/.google_authenticator` files (google-authenticator-libpam) for
//! `otpgate import google-authenticator`.
//!
//! Format: the base32 secret on the first line, then option lines starting
//! with `" ` (RATE_LIMIT n m [timestamps…], WINDOW_SIZE n, DISALLOW_REUSE
//! [steps…], TOTP_AUTH, HOTP_COUNTER n, STEP_SIZE n), then 8-digit scratch
//! codes, one per line.

use crate::otp::secret::Secret;

message_error! {
    /// Why a `~/.google_authenticator` file cannot be imported, and where.
    GaFileError
}

/// What an imported file holds.
#[derive(Debug)]
pub struct GoogleFile {
    pub secret: Secret,
    /// STEP_SIZE, default 30.
    pub period: u64,
    /// WINDOW_SIZE (total codes accepted, e.g. 3 = one step each side).
    pub window_size: Option<u32>,
    /// RATE_LIMIT n m.
    pub rate_limit: Option<(u32, u32)>,
    pub disallow_reuse: bool,
    pub scratch_codes: Vec<String>,
}

impl GoogleFile {
    /// Notes for the administrator about options otpgate handles differently;
    /// nothing is dropped silently.
    pub fn notes(&self, server_window: u32) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(w) = self.window_size {
            let side = w.saturating_sub(1) / 2;
            if side != server_window {
                notes.push(format!(
                    "WINDOW_SIZE {w} (±{side} steps) is per-user in google-authenticator; otpgate uses the server-wide `window` ({server_window}): set `window = {side}` in the config if you need it"
                ));
            }
        }
        if let Some((n, m)) = self.rate_limit {
            notes.push(format!(
                "RATE_LIMIT {n} per {m} s is not imported: otpgate's brute-force lockout is set server-wide in the config"
            ));
        }
        if !self.disallow_reuse {
            notes.push("the file allowed code reuse; otpgate never accepts a code twice".into());
        }
        if !self.scratch_codes.is_empty() {
            notes.push(format!(
                "{} scratch code(s) became recovery codes (8 digits, weaker than otpgate's own): consider `otpgate recovery-codes` for a new set",
                self.scratch_codes.len()
            ));
        }
        notes
    }

    /// Parses the file text.
    pub fn parse(text: &str) -> Result<Self, GaFileError> {
        Self::parse_text(text).map_err(GaFileError)
    }

    fn parse_text(text: &str) -> Result<Self, String> {
        let mut lines = text.lines();
        let first = lines.next().ok_or("the file is empty")?.trim();
        let secret = Secret::from_base32(first).map_err(|e| format!("line 1 (the secret): {e}"))?;
        let mut file = Self {
            secret,
            period: 30,
            window_size: None,
            rate_limit: None,
            disallow_reuse: false,
            scratch_codes: Vec::new(),
        };
        let mut totp = false;
        for (i, line) in lines.enumerate() {
            let n = i + 2;
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(opt) = line.strip_prefix('"') {
                let mut words = opt.split_whitespace();
                let num = |w: Option<&str>, what: &str| -> Result<u32, String> {
                    w.and_then(|v| v.parse().ok())
                        .ok_or_else(|| format!("line {n}: {what} needs a number"))
                };
                match words.next() {
                    Some("TOTP_AUTH") => totp = true,
                    Some("HOTP_COUNTER") => {
                        return Err("this is a counter-based (HOTP) file; import supports time-based (TOTP) files only: add the token with `otpgate device add NAME --hotp --secret -` instead".into());
                    }
                    Some("WINDOW_SIZE") => {
                        file.window_size = Some(num(words.next(), "WINDOW_SIZE")?)
                    }
                    Some("STEP_SIZE") => file.period = u64::from(num(words.next(), "STEP_SIZE")?),
                    Some("RATE_LIMIT") => {
                        let a = num(words.next(), "RATE_LIMIT")?;
                        let b = num(words.next(), "RATE_LIMIT")?;
                        file.rate_limit = Some((a, b));
                    }
                    Some("DISALLOW_REUSE") => file.disallow_reuse = true,
                    Some(other) => return Err(format!("line {n}: unknown option \"{other}\"")),
                    None => return Err(format!("line {n}: empty option line")),
                }
            } else if line.len() == 8 && line.bytes().all(|b| b.is_ascii_digit()) {
                file.scratch_codes.push(line.to_string());
            } else {
                return Err(format!(
                    "line {n}: neither an option nor an 8-digit scratch code"
                ));
            }
        }
        if !totp {
            return Err(
                "the file has no TOTP_AUTH line: it is not a time-based google-authenticator file"
                    .into(),
            );
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOTP: &str = "ZTGPK7SJODVJ2VDNKAD5AFM6XE\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n13940040\n77902997\n";

    #[test]
    fn parses_a_totp_file() {
        let f = GoogleFile::parse(TOTP).unwrap();
        assert_eq!(f.secret.bits(), 128);
        assert_eq!(f.secret.to_base32().as_str(), "ZTGPK7SJODVJ2VDNKAD5AFM6XE");
        assert_eq!(f.period, 30);
        assert_eq!(f.window_size, Some(3));
        assert_eq!(f.rate_limit, Some((3, 30)));
        assert!(f.disallow_reuse);
        assert_eq!(f.scratch_codes, ["13940040", "77902997"]);
        let notes = f.notes(1);
        assert!(notes.iter().any(|n| n.contains("RATE_LIMIT")));
        assert!(!notes.iter().any(|n| n.contains("WINDOW_SIZE")));
        assert!(f.notes(2).iter().any(|n| n.contains("WINDOW_SIZE")));
    }

    #[test]
    fn reports_what_it_cannot_import() {
        let hotp = "WCLS5ATZDMJEYUVZK3PSDWOIJE\n\" WINDOW_SIZE 3\n\" HOTP_COUNTER 1\n";
        assert!(GoogleFile::parse(hotp).unwrap_err().0.contains("HOTP"));
        assert!(GoogleFile::parse("").is_err());
        assert!(GoogleFile::parse("!!!\n").unwrap_err().0.contains("line 1"));
        assert!(
            GoogleFile::parse("ZTGPK7SJODVJ2VDNKAD5AFM6XE\n\" TOTP_AUTH\n\" FROB\n")
                .unwrap_err()
                .0
                .contains("FROB")
        );
        assert!(GoogleFile::parse("ZTGPK7SJODVJ2VDNKAD5AFM6XE\n123\n").is_err());
        assert!(
            GoogleFile::parse("ZTGPK7SJODVJ2VDNKAD5AFM6XE\n")
                .unwrap_err()
                .0
                .contains("TOTP_AUTH")
        );
    }
}
