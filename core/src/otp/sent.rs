//! Codes sent by e-mail or SMS: where they go (a validated [`Target`]), the
//! code itself (random digits from the OS), and how the login state keeps
//! it — only as a keyed hash, with an expiry, a try budget, single use,
//! and bound to the one PAM request that asked for it.
//!
//! NIST SP 800-63B counts SMS as a restricted authenticator and an e-mail
//! code is weak when the mailbox lives on the same server: these methods
//! are off unless `methods` names them.

use super::OtpError;
use crate::sys::random::Random;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Digits of a sent code.
pub const SENT_DIGITS: usize = 6;
/// Seconds a sent code stays valid.
pub const LIFETIME: u64 = 300;
/// Wrong codes one sent code survives.
pub const TRIES: u32 = 3;
/// Seconds over which `send_limit` counts sends.
pub const SEND_WINDOW: u64 = 15 * 60;
/// Longest address kept (RFC 5321's limit for a path).
pub const MAX_TARGET: usize = 254;

/// Where a code goes: an e-mail address or an E.164 phone number, checked
/// so that it can never be read as an option or smuggle a header.
/// Fixed-size so that the device kinds stay `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Target {
    bytes: [u8; MAX_TARGET],
    len: u8,
}

message_error! {
    /// An e-mail address or phone number that cannot be sent to, and the
    /// form it needs.
    TargetError
}

impl Target {
    fn new(text: &str) -> Self {
        let mut bytes = [0u8; MAX_TARGET];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Self {
            bytes,
            len: text.len() as u8,
        }
    }

    /// An e-mail address: `local@domain`, printable ASCII without spaces,
    /// quotes, angle brackets or a leading `-`, at most 254 characters.
    pub fn email(text: &str) -> Result<Self, TargetError> {
        let t = text.trim();
        let bad = |why: &str| {
            Err(TargetError(format!(
                "{t:?} is not a usable e-mail address: {why}"
            )))
        };
        if t.is_empty() || t.len() > MAX_TARGET {
            return bad("1 to 254 characters");
        }
        if t.starts_with('-') {
            return bad("it may not start with '-'");
        }
        if !t
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"<>()[],;:\\`'".contains(&b))
        {
            return bad("only letters, digits and . _ % + - @ (no spaces, quotes or line breaks)");
        }
        match t.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && domain.contains('.')
                    && !domain.contains('@')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.') =>
            {
                Ok(Self::new(t))
            }
            Some((_, "localhost")) => Ok(Self::new(t)),
            _ => bad("it needs the form name@example.com"),
        }
    }

    /// A phone number in E.164: `+`, then 8 to 15 digits.
    pub fn phone(text: &str) -> Result<Self, TargetError> {
        let t = text.trim();
        let digits = t.strip_prefix('+').unwrap_or("");
        if (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self::new(t))
        } else {
            Err(TargetError(format!(
                "{t:?} is not a phone number in E.164 form: a '+', the country code and the number, 8 to 15 digits (e.g. +4915112345678)"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    /// What the prompt shows: enough to recognise, not to harvest
    /// (`a…@example.com`, `+49…5678`).
    pub fn masked(&self) -> String {
        let t = self.as_str();
        match t.split_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).collect();
                format!("{first}…@{domain}")
            }
            None => {
                let head: String = t.chars().take(3).collect();
                let tail: String = t.chars().skip(t.len().saturating_sub(4)).collect();
                format!("{head}…{tail}")
            }
        }
    }
}

/// A code waiting to be typed, as the login state keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    /// The device it was sent for (its secret's fingerprint).
    pub device: String,
    /// The PAM request it belongs to (random, per `pam_sm_authenticate`).
    pub request: String,
    /// HMAC-SHA256 of the request and the code, keyed with the device's
    /// secret, hex: the code itself is never stored.
    pub hash: String,
    /// Unix time after which it is refused.
    pub expires: u64,
    /// Wrong codes it still survives.
    pub tries_left: u32,
}

/// A fresh code: `SENT_DIGITS` digits, uniformly from `random` (the kernel's CSPRNG on a real host).
pub fn new_code(random: &dyn Random) -> Result<Zeroizing<String>, OtpError> {
    let mut out = Zeroizing::new(String::with_capacity(SENT_DIGITS));
    while out.len() < SENT_DIGITS {
        let mut b = [0u8; 1];
        random.fill(&mut b).map_err(|_| OtpError::Randomness)?;
        // 250 = 25 × 10: rejecting 250..255 keeps the digits uniform.
        if b[0] < 250 {
            out.push(char::from(b'0' + b[0] % 10));
        }
    }
    Ok(out)
}

/// A fresh request id (128 bits, hex) binding a sent code to one login.
pub fn new_request(random: &dyn Random) -> Result<String, OtpError> {
    let mut b = [0u8; 16];
    random.fill(&mut b).map_err(|_| OtpError::Randomness)?;
    Ok(crate::otp::secret::hex(&b))
}

/// The keyed hash a pending code is kept as.
pub fn code_hash(key: &crate::otp::secret::Secret, request: &str, code: &str) -> String {
    use hmac::{KeyInit, Mac};
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(b"otpgate/sent-code/v1\0");
    mac.update(request.as_bytes());
    mac.update(b"\0");
    mac.update(code.as_bytes());
    crate::otp::secret::hex(&mac.finalize().into_bytes())
}

/// What typing a code against a pending one came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Accepted,
    Wrong,
    /// No code is pending for this request (never sent, used, or sent to
    /// another login).
    NonePending,
    Expired,
}

/// Checks `code` for `request` against `pending` and updates it: a right
/// code is used up, a wrong one costs a try (the last try ends it), an
/// expired one is forgotten.
pub fn check(
    pending: &mut Option<Pending>,
    key_of: impl Fn(&str) -> Option<crate::otp::secret::Secret>,
    request: &str,
    code: &str,
    now: u64,
) -> Check {
    let Some(p) = pending.as_mut().filter(|p| p.request == request) else {
        return Check::NonePending;
    };
    if now >= p.expires {
        *pending = None;
        return Check::Expired;
    }
    let Some(key) = key_of(&p.device) else {
        *pending = None;
        return Check::NonePending;
    };
    if crate::otp::codes_equal(&code_hash(&key, request, code), &p.hash) {
        *pending = None;
        return Check::Accepted;
    }
    p.tries_left = p.tries_left.saturating_sub(1);
    if p.tries_left == 0 {
        *pending = None;
    }
    Check::Wrong
}

/// When the next code may be sent, if `limit` sends within the window
/// were reached (`sends`: times of recent sends).
pub fn next_send_allowed(sends: &[u64], limit: u32, now: u64) -> Option<u64> {
    let recent: Vec<u64> = sends
        .iter()
        .copied()
        .filter(|t| t.saturating_add(SEND_WINDOW) > now && *t <= now)
        .collect();
    if recent.len() < limit as usize {
        return None;
    }
    recent.iter().min().map(|t| t.saturating_add(SEND_WINDOW))
}

/// Whether `typed` (spaces and dashes ignored) is the confirmation code
/// that was sent, compared in constant time.
pub fn confirmation_matches(sent: &str, typed: &str) -> bool {
    crate::otp::codes_equal(&crate::otp::input::compact(typed), sent)
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_confirmation_is_the_sent_code_give_or_take_spaces() {
        assert!(confirmation_matches("123456", "123456"));
        assert!(confirmation_matches("123456", " 123 456\n"));
        assert!(confirmation_matches("123456", "123-456"));
        assert!(!confirmation_matches("123456", "123457"));
        assert!(!confirmation_matches("123456", "12345"));
        assert!(!confirmation_matches("123456", ""));
    }
    use super::*;
    use crate::otp::secret::Secret;

    #[test]
    fn addresses_and_numbers_that_could_be_options_or_headers_are_refused() {
        assert!(Target::email("alice@example.com").is_ok());
        assert!(Target::email("root@localhost").is_ok());
        for bad in [
            "-oQ/tmp/x@example.com",
            "alice@example.com\r\nBcc: all@example.com",
            "alice @example.com",
            "alice",
            "a\"b@example.com",
            "<alice@example.com>",
            "",
        ] {
            assert!(Target::email(bad).is_err(), "{bad:?}");
        }
        assert!(Target::phone("+4915112345678").is_ok());
        for bad in [
            "4915112345678",
            "+49 151 123",
            "-4915112345678",
            "+12",
            "+49151123456789012",
        ] {
            assert!(Target::phone(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn masks_show_little() {
        assert_eq!(
            Target::email("alice@example.com").unwrap().masked(),
            "a…@example.com"
        );
        assert_eq!(
            Target::phone("+4915112345678").unwrap().masked(),
            "+49…5678"
        );
    }

    /// No randomness, no code and no request id: never a predictable one.
    #[test]
    fn a_failing_random_source_gives_no_code() {
        let broken = &crate::sys::random::test::Broken;
        assert!(matches!(new_code(broken), Err(OtpError::Randomness)));
        assert!(matches!(new_request(broken), Err(OtpError::Randomness)));
        let secret = crate::otp::secret::Secret::generate(broken);
        assert!(matches!(
            secret,
            Err(crate::otp::secret::SecretError::Randomness)
        ));
        let set = crate::otp::recovery::generate_set(broken, 2, 1);
        assert!(matches!(set, Err(OtpError::Randomness)));
        let id = crate::enrollment::Enrollment::new_id(broken);
        assert!(matches!(
            id,
            Err(crate::enrollment::FormatError::Randomness)
        ));
    }

    #[test]
    fn a_code_is_six_digits_and_varies() {
        let a = new_code(&crate::sys::random::test::COUNTER).unwrap();
        assert_eq!(a.len(), SENT_DIGITS);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        let many: std::collections::HashSet<String> = (0..50)
            .map(|_| {
                new_code(&crate::sys::random::test::COUNTER)
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert!(many.len() > 40);
    }

    fn pending(key: &Secret, request: &str, code: &str) -> Option<Pending> {
        Some(Pending {
            device: "dev".into(),
            request: request.into(),
            hash: code_hash(key, request, code),
            expires: 1300,
            tries_left: TRIES,
        })
    }

    #[test]
    fn a_sent_code_works_once_for_its_request_within_its_life_and_tries() {
        let key = Secret::from_bytes(vec![3; 20]).unwrap();
        let key_of = |_: &str| Some(key.clone());
        let mut p = pending(&key, "req1", "123456");
        assert!(!p.as_ref().unwrap().hash.contains("123456"));
        assert_eq!(
            check(&mut p, key_of, "req2", "123456", 1000),
            Check::NonePending,
            "another login"
        );
        assert_eq!(
            check(&mut p, key_of, "req1", "123456", 1000),
            Check::Accepted
        );
        assert_eq!(
            check(&mut p, key_of, "req1", "123456", 1001),
            Check::NonePending,
            "used"
        );
        let mut p = pending(&key, "req1", "123456");
        assert_eq!(
            check(&mut p, key_of, "req1", "123456", 1300),
            Check::Expired
        );
        assert!(p.is_none());
        let mut p = pending(&key, "req1", "123456");
        for _ in 0..TRIES {
            assert_eq!(check(&mut p, key_of, "req1", "000000", 1000), Check::Wrong);
        }
        assert_eq!(
            check(&mut p, key_of, "req1", "123456", 1000),
            Check::NonePending,
            "tries used up"
        );
    }

    #[test]
    fn sends_are_limited_per_window() {
        assert_eq!(next_send_allowed(&[], 3, 1000), None);
        assert_eq!(next_send_allowed(&[100, 200], 3, 1000), None);
        assert_eq!(
            next_send_allowed(&[100, 200, 300], 3, 500),
            Some(100 + SEND_WINDOW)
        );
        assert_eq!(
            next_send_allowed(&[100, 200, 300], 3, 100 + SEND_WINDOW),
            None
        );
    }
}
