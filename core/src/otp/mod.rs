//! One-time-password arithmetic (RFC 4226 HOTP, RFC 6238 TOTP), plus the
//! window search with replay refusal.
//!
//! HOTP is computed here on the RustCrypto HMAC that totp-rs itself uses,
//! keyed once per secret ([`Hotp`]): totp-rs re-keys the HMAC for every
//! code, and a login tries up to three (a TOTP window) or eleven (an HOTP
//! lookahead). totp-rs stays as the tests' independent oracle.

pub mod input;
pub mod recovery;
pub mod secret;
pub mod sent;
pub mod uri;
pub mod yubico;

use crate::otp::secret::Secret;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The HMAC hash. SHA1 is the only one every phone app honours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Algorithm {
    #[default]
    SHA1,
    SHA256,
    SHA512,
}

impl Algorithm {
    pub const ALLOWED: &'static str = "\"SHA1\", \"SHA256\" or \"SHA512\"";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SHA1 => "SHA1",
            Self::SHA256 => "SHA256",
            Self::SHA512 => "SHA512",
        }
    }

    /// Parses a name case-insensitively, as a command-line flag would give it.
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Some(Self::SHA1),
            "SHA256" => Some(Self::SHA256),
            "SHA512" => Some(Self::SHA512),
            _ => None,
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why OTP parameters, a recovery-code set or a random source could not be
/// used. Each message says what is wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OtpError {
    Digits(u8),
    Period(u64),
    /// The operating system's random source failed.
    Randomness,
    RecoveryCount(usize),
    RecoveryKdf(String),
    RecoveryParams {
        m: u32,
        t: u32,
        p: u32,
    },
    RecoverySalt(String),
    RecoveryHashes,
    Hashing(String),
}

impl std::fmt::Display for OtpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (d0, d1) = (DIGITS_RANGE.start(), DIGITS_RANGE.end());
        let (p0, p1) = (PERIOD_RANGE.start(), PERIOD_RANGE.end());
        match self {
            Self::Digits(d) => write!(f, "digits must be from {d0} to {d1}, not {d}"),
            Self::Period(p) => write!(f, "period must be from {p0} to {p1} seconds, not {p}"),
            Self::Randomness => f.write_str("the system's random number source failed"),
            Self::RecoveryCount(n) => write!(
                f,
                "the number of recovery codes must be from 1 to {}, not {n}",
                recovery::MAX_COUNT
            ),
            Self::RecoveryKdf(kdf) => write!(f, "recovery: kdf \"{kdf}\" is not \"argon2id\""),
            Self::RecoveryParams { m, t, p } => write!(
                f,
                "recovery: Argon2 parameters m_cost={m}, t_cost={t}, p_cost={p} are not the ones otpgate writes \
                 (m_cost={}, t_cost={}, p_cost={}); run `otpgate recovery-codes` to make a new set",
                recovery::M_COST,
                recovery::T_COST,
                recovery::P_COST
            ),
            Self::RecoverySalt(why) => write!(
                f,
                "recovery: salt {why}; run `otpgate recovery-codes` to make a new set"
            ),
            Self::RecoveryHashes => write!(
                f,
                "recovery: hashes must be at most {} of 32 bytes of base32 each; run `otpgate recovery-codes` to make a new set",
                recovery::MAX_COUNT
            ),
            Self::Hashing(why) => write!(f, "hashing a recovery code failed: {why}"),
        }
    }
}

impl std::error::Error for OtpError {}

/// Smallest and largest code length accepted anywhere (RFC 4226 §5.3 allows
/// 6–8; a 31-bit truncated value has at most 10 digits, so this range is
/// also a safety bound).
pub const DIGITS_RANGE: std::ops::RangeInclusive<u8> = 6..=8;
/// Accepted TOTP periods in seconds.
pub const PERIOD_RANGE: std::ops::RangeInclusive<u64> = 10..=300;

/// How a TOTP device computes its codes. The fields are private: a value
/// exists only through [`TotpParams::new`] (checked) or
/// [`TotpParams::DEFAULT`], so code generation can never see digits or a
/// period out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpParams {
    algorithm: Algorithm,
    digits: u8,
    period: u64,
}

impl TotpParams {
    /// What every authenticator app supports: SHA1, 6 digits, 30 seconds.
    pub const DEFAULT: Self = Self {
        algorithm: Algorithm::SHA1,
        digits: 6,
        period: 30,
    };

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn digits(&self) -> u8 {
        self.digits
    }

    /// Seconds per code.
    pub fn period(&self) -> u64 {
        self.period
    }

    /// Whether these are the universally supported defaults (apps such as
    /// Google Authenticator silently ignore anything else).
    pub fn is_default(&self) -> bool {
        *self == Self::DEFAULT
    }

    /// Validates digits and period; callers build params only through this or
    /// [`Self::DEFAULT`], so code generation never sees them out of range.
    pub fn new(algorithm: Algorithm, digits: u8, period: u64) -> Result<Self, OtpError> {
        if !DIGITS_RANGE.contains(&digits) {
            return Err(OtpError::Digits(digits));
        }
        if !PERIOD_RANGE.contains(&period) {
            return Err(OtpError::Period(period));
        }
        Ok(Self {
            algorithm,
            digits,
            period,
        })
    }

    /// The time step containing `unix_time`.
    pub fn step_at(&self, unix_time: u64) -> u64 {
        unix_time / self.period
    }
}

/// An HOTP generator (RFC 4226) for one secret: the HMAC key is absorbed
/// once, so each further counter costs two hash blocks instead of four.
/// The keyed state (the hash cores that absorbed the secret) is wiped when
/// dropped: the `zeroize` features of hmac, sha1 and sha2 (core/Cargo.toml).
pub struct Hotp {
    mac: KeyedMac,
    digits: u8,
}

enum KeyedMac {
    Sha1(hmac::Hmac<sha1::Sha1>),
    Sha256(hmac::Hmac<sha2::Sha256>),
    Sha512(hmac::Hmac<sha2::Sha512>),
}

impl Hotp {
    /// `digits` is clamped to [`DIGITS_RANGE`]. None only if the HMAC
    /// refused the key, which HMAC never does (any length is a key).
    pub fn new(secret: &Secret, algorithm: Algorithm, digits: u8) -> Option<Self> {
        use hmac::KeyInit;
        let key = secret.as_bytes();
        let mac = match algorithm {
            Algorithm::SHA1 => KeyedMac::Sha1(hmac::Hmac::new_from_slice(key).ok()?),
            Algorithm::SHA256 => KeyedMac::Sha256(hmac::Hmac::new_from_slice(key).ok()?),
            Algorithm::SHA512 => KeyedMac::Sha512(hmac::Hmac::new_from_slice(key).ok()?),
        };
        let digits = digits.clamp(*DIGITS_RANGE.start(), *DIGITS_RANGE.end());
        Some(Self { mac, digits })
    }

    /// The code for `counter`: HMAC of the counter (8 bytes, big-endian),
    /// dynamic truncation (RFC 4226 §5.3), the last `digits` decimal digits.
    pub fn code(&self, counter: u64) -> Zeroizing<String> {
        use hmac::Mac;
        let message = counter.to_be_bytes();
        let value = match &self.mac {
            KeyedMac::Sha1(m) => truncate(&m.clone().chain_update(message).finalize().into_bytes()),
            KeyedMac::Sha256(m) => {
                truncate(&m.clone().chain_update(message).finalize().into_bytes())
            }
            KeyedMac::Sha512(m) => {
                truncate(&m.clone().chain_update(message).finalize().into_bytes())
            }
        };
        let modulus = 10u64.pow(u32::from(self.digits));
        Zeroizing::new(format!(
            "{:0width$}",
            u64::from(value) % modulus,
            width = usize::from(self.digits)
        ))
    }
}

/// RFC 4226 dynamic truncation: 31 bits at the offset the last nibble gives.
fn truncate(mac: &[u8]) -> u32 {
    let offset = usize::from(mac.last().copied().unwrap_or(0) & 0x0f);
    // Every HMAC here is at least 20 bytes, so offset + 4 <= 19 fits.
    let word = mac
        .get(offset..offset + 4)
        .and_then(|w| <[u8; 4]>::try_from(w).ok())
        .unwrap_or_default();
    u32::from_be_bytes(word) & 0x7fff_ffff
}

/// The HOTP value for `counter` (RFC 4226). TOTP is HOTP of the time step.
/// For several counters of one secret, use [`Hotp`] once.
pub fn hotp(secret: &Secret, algorithm: Algorithm, digits: u8, counter: u64) -> Zeroizing<String> {
    match Hotp::new(secret, algorithm, digits) {
        Some(h) => h.code(counter),
        // Unreachable; a dash never equals a typed code (digits only).
        None => Zeroizing::new("-".into()),
    }
}

/// The TOTP code for the step containing `unix_time`.
pub fn totp(secret: &Secret, params: &TotpParams, unix_time: u64) -> Zeroizing<String> {
    hotp(
        secret,
        params.algorithm,
        params.digits,
        params.step_at(unix_time),
    )
}

/// Compares a typed code with an expected one without an early exit.
pub fn codes_equal(typed: &str, expected: &str) -> bool {
    typed.len() == expected.len() && bool::from(typed.as_bytes().ct_eq(expected.as_bytes()))
}

/// Finds the newest time step within `window` steps of `now` whose code equals
/// `typed` and that is strictly after `after` (the last step already accepted).
///
/// Steps are tried newest first and the search stops at the first fresh
/// match, as google-authenticator's does: which step matched is no secret
/// (it follows from the clock), and each comparison is in constant time, so
/// the time taken says nothing about the digits. A wrong code costs every
/// step in the window; a right one on time, two.
pub fn find_totp_step(
    secret: &Secret,
    params: &TotpParams,
    typed: &str,
    now: u64,
    window: u32,
    after: Option<u64>,
) -> Option<u64> {
    let current = params.step_at(now);
    let first = current.saturating_sub(u64::from(window));
    let last = current.saturating_add(u64::from(window));
    let hotp = Hotp::new(secret, params.algorithm, params.digits)?;
    (first..=last)
        .rev()
        .find(|&step| after.is_none_or(|a| step > a) && codes_equal(typed, &hotp.code(step)))
}

/// Whether what someone typed is a code of this TOTP key near `now`
/// (confirming a new app, or proving a device to the CLI). Spaces and
/// dashes are ignored. Replay state is not consulted: the login path uses
/// [`find_totp_step`] with the last accepted step instead.
pub fn typed_code_matches(
    secret: &Secret,
    params: &TotpParams,
    typed: &str,
    now: u64,
    window: u32,
) -> bool {
    let code = crate::otp::input::compact(typed);
    find_totp_step(secret, params, &code, now, window, None).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ascii_secret(s: &str) -> Secret {
        Secret::from_bytes(s.as_bytes().to_vec()).unwrap()
    }

    /// RFC 6238 Appendix B, all three hashes, 8 digits, 30 s.
    #[test]
    fn rfc6238_appendix_b_vectors() {
        let sha1 = ascii_secret("12345678901234567890");
        let sha256 = ascii_secret("12345678901234567890123456789012");
        let sha512 =
            ascii_secret("1234567890123456789012345678901234567890123456789012345678901234");
        let cases: [(u64, [&str; 3]); 6] = [
            (59, ["94287082", "46119246", "90693936"]),
            (1_111_111_109, ["07081804", "68084774", "25091201"]),
            (1_111_111_111, ["14050471", "67062674", "99943326"]),
            (1_234_567_890, ["89005924", "91819424", "93441116"]),
            (2_000_000_000, ["69279037", "90698825", "38618901"]),
            (20_000_000_000, ["65353130", "77737706", "47863826"]),
        ];
        for (time, [c1, c256, c512]) in cases {
            let p = |a| TotpParams::new(a, 8, 30).unwrap();
            assert_eq!(*totp(&sha1, &p(Algorithm::SHA1), time), c1, "SHA1 T={time}");
            assert_eq!(
                *totp(&sha256, &p(Algorithm::SHA256), time),
                c256,
                "SHA256 T={time}"
            );
            assert_eq!(
                *totp(&sha512, &p(Algorithm::SHA512), time),
                c512,
                "SHA512 T={time}"
            );
        }
    }

    /// RFC 4226 Appendix D, counters 0..9.
    #[test]
    fn rfc4226_appendix_d_vectors() {
        let secret = ascii_secret("12345678901234567890");
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(*hotp(&secret, Algorithm::SHA1, 6, counter as u64), *code);
        }
    }

    /// Against totp-rs (an independent implementation): every hash, every
    /// code length, counters small and large, secrets short and long.
    #[test]
    fn agrees_with_totp_rs() {
        let to_rs = |a| match a {
            Algorithm::SHA1 => totp_rs::Algorithm::SHA1,
            Algorithm::SHA256 => totp_rs::Algorithm::SHA256,
            Algorithm::SHA512 => totp_rs::Algorithm::SHA512,
        };
        for key_len in [10usize, 20, 32, 64, 100] {
            let key: Vec<u8> = (0..key_len).map(|i| (i * 37 + 11) as u8).collect();
            let secret = Secret::from_bytes(key.clone()).unwrap();
            for algorithm in [Algorithm::SHA1, Algorithm::SHA256, Algorithm::SHA512] {
                for digits in DIGITS_RANGE {
                    let generator = Hotp::new(&secret, algorithm, digits).unwrap();
                    let oracle = totp_rs::Builder::new()
                        .with_algorithm(to_rs(algorithm))
                        .with_digits(digits)
                        .with_skew(0)
                        .with_step_duration(1)
                        .with_secret(key.clone())
                        .build_noncompliant();
                    for counter in (0..200u64).chain([56_666_666, u64::from(u32::MAX) + 7]) {
                        assert_eq!(
                            *generator.code(counter),
                            oracle.generate(counter).to_string(),
                            "{algorithm} {digits} digits, key {key_len} bytes, counter {counter}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn window_accepts_neighbours_only() {
        let s = ascii_secret("12345678901234567890");
        let p = TotpParams::DEFAULT;
        let now = 1_700_000_000;
        for offset in [-1i64, 0, 1] {
            let t = (now as i64 + offset * 30) as u64;
            let code = totp(&s, &p, t);
            assert_eq!(
                find_totp_step(&s, &p, &code, now, 1, None),
                Some(p.step_at(t))
            );
        }
        for offset in [-3i64, -2, 2, 3] {
            let code = totp(&s, &p, (now as i64 + offset * 30) as u64);
            assert_eq!(
                find_totp_step(&s, &p, &code, now, 1, None),
                None,
                "offset {offset}"
            );
        }
    }

    #[test]
    fn replay_of_accepted_or_older_step_is_refused() {
        let s = ascii_secret("12345678901234567890");
        let p = TotpParams::DEFAULT;
        let now = 1_700_000_000;
        let code = totp(&s, &p, now);
        let step = p.step_at(now);
        assert_eq!(
            find_totp_step(&s, &p, &code, now, 1, Some(step - 1)),
            Some(step)
        );
        assert_eq!(find_totp_step(&s, &p, &code, now, 1, Some(step)), None);
        let previous = totp(&s, &p, now - 30);
        assert_eq!(find_totp_step(&s, &p, &previous, now, 1, Some(step)), None);
    }

    #[test]
    fn wrong_length_or_text_never_matches() {
        let s = ascii_secret("12345678901234567890");
        let p = TotpParams::DEFAULT;
        let code = totp(&s, &p, 1_700_000_000);
        for typed in ["", &code[..5], &format!("{}0", &*code), "abcdef"] {
            assert_eq!(find_totp_step(&s, &p, typed, 1_700_000_000, 1, None), None);
        }
    }

    #[test]
    fn params_are_validated() {
        assert!(TotpParams::new(Algorithm::SHA1, 5, 30).is_err());
        assert!(TotpParams::new(Algorithm::SHA1, 9, 30).is_err());
        assert!(TotpParams::new(Algorithm::SHA1, 6, 0).is_err());
        assert!(TotpParams::new(Algorithm::SHA1, 6, 301).is_err());
        assert!(TotpParams::new(Algorithm::SHA512, 8, 60).is_ok());
        assert_eq!(Algorithm::parse("sha-256"), Some(Algorithm::SHA256));
    }
}
