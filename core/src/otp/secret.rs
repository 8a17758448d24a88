//! The shared OTP secret: a byte string that is zeroized when dropped, never
//! printed by `Debug`, and only converted to base32 on explicit request.

use crate::sys::random::Random;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Fewest secret bits accepted. RFC 4226 requires 128 and recommends 160;
/// google-authenticator-libpam writes 80-bit secrets, which we must still
/// accept when importing them, so 80 is the floor for existing secrets and
/// [`Secret::generate`] always makes 160.
pub const MIN_SECRET_BYTES: usize = 10;
/// Largest secret accepted (a 512-bit HMAC-SHA512 key is 64 bytes; allow some slack).
pub const MAX_SECRET_BYTES: usize = 128;
/// Size of secrets otpgate generates: 160 bits, as RFC 4226 recommends.
pub const GENERATED_SECRET_BYTES: usize = 20;

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A TOTP/HOTP shared secret.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Secret(Vec<u8>);

/// Why a base32 secret was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretError {
    /// A character outside A–Z, 2–7 (after removing spaces, dashes and `=` padding).
    InvalidCharacter,
    /// Fewer than [`MIN_SECRET_BYTES`] bytes.
    TooShort { bits: usize },
    /// More than [`MAX_SECRET_BYTES`] bytes.
    TooLong,
    /// The operating system's random source failed.
    Randomness,
}

impl std::fmt::Display for SecretError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::InvalidCharacter => f.write_str(
                "the secret is not valid base32: use only the letters A-Z and digits 2-7",
            ),
            Self::TooShort { bits } => write!(
                f,
                "the secret has only {bits} bits; at least {} are required",
                MIN_SECRET_BYTES * 8
            ),
            Self::TooLong => write!(f, "the secret is longer than {MAX_SECRET_BYTES} bytes"),
            Self::Randomness => f.write_str("the system's random number source failed"),
        }
    }
}

impl std::error::Error for SecretError {}

impl Secret {
    /// A new random 160-bit secret from `random` (the kernel's CSPRNG on a real host).
    pub fn generate(random: &dyn Random) -> Result<Self, SecretError> {
        let mut bytes = vec![0u8; GENERATED_SECRET_BYTES];
        random
            .fill(&mut bytes)
            .map_err(|_| SecretError::Randomness)?;
        Ok(Self(bytes))
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true (a secret has at least MIN_SECRET_BYTES).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Wraps raw bytes (used by tests and RFC vectors), enforcing the size limits.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, SecretError> {
        let secret = Self(bytes);
        secret.check_len()?;
        Ok(secret)
    }

    /// Parses base32 as phone apps and token vendors print it: case-insensitive,
    /// spaces, dashes and trailing `=` padding ignored.
    pub fn from_base32(text: &str) -> Result<Self, SecretError> {
        let mut bits: u64 = 0;
        let mut nbits = 0u32;
        let mut out = Zeroizing::new(Vec::with_capacity(text.len() * 5 / 8));
        let trimmed = text.trim_end_matches(|c: char| c == '=' || c.is_ascii_whitespace());
        for c in trimmed.bytes() {
            if c == b' ' || c == b'-' || c == b'\t' {
                continue;
            }
            let upper = c.to_ascii_uppercase();
            let value = BASE32_ALPHABET
                .iter()
                .position(|&a| a == upper)
                .ok_or(SecretError::InvalidCharacter)?;
            bits = (bits << 5) | value as u64;
            nbits += 5;
            if nbits >= 8 {
                nbits -= 8;
                out.push((bits >> nbits) as u8);
                bits &= (1 << nbits) - 1;
            }
            if out.len() > MAX_SECRET_BYTES {
                return Err(SecretError::TooLong);
            }
        }
        bits.zeroize();
        Self::from_bytes(std::mem::take(&mut *out))
    }

    /// Base32 without padding, as otpauth:// URIs and secret files hold it.
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(base32_encode(&self.0))
    }

    /// The raw key bytes, for the HMAC.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A keyed fingerprint of this secret: HMAC-SHA256 keyed with the secret
    /// itself over a fixed label, 128 bits in hex. Login state (which codes
    /// were used) is filed under it, so the memory follows the secret through
    /// any edit of names, ids or files, and a genuinely new secret starts
    /// clean. It reveals nothing an observed code does not: checking a guess
    /// of the secret against it is no easier than against one code.
    pub fn fingerprint(&self) -> String {
        use hmac::{KeyInit, Mac};
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0) else {
            // HMAC accepts keys of any length; unreachable, but never panic.
            return String::new();
        };
        mac.update(b"otpgate/device-fingerprint/v1");
        let digest = mac.finalize().into_bytes();
        hex(&digest[..16])
    }

    /// Key size in bits.
    pub fn bits(&self) -> usize {
        self.0.len() * 8
    }

    fn check_len(&self) -> Result<(), SecretError> {
        if self.0.len() < MIN_SECRET_BYTES {
            Err(SecretError::TooShort {
                bits: self.0.len() * 8,
            })
        } else if self.0.len() > MAX_SECRET_BYTES {
            Err(SecretError::TooLong)
        } else {
            Ok(())
        }
    }
}

/// SHA-256 of `bytes`, first 128 bits in hex (identifies non-secret data).
pub fn digest_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes)[..16])
}

/// Lower-case hex, without the formatting machinery (this runs at every
/// login).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

/// RFC 4648 base32 without padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut bits: u64 = 0;
    let mut nbits = 0u32;
    for &b in bytes {
        bits = (bits << 8) | u64::from(b);
        nbits += 8;
        while nbits >= 5 {
            nbits -= 5;
            out.push(BASE32_ALPHABET[((bits >> nbits) & 31) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(BASE32_ALPHABET[((bits << (5 - nbits)) & 31) as usize] as char);
    }
    bits.zeroize();
    out
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret([redacted, {} bits])", self.bits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lower_case_and_fingerprints_are_stable() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        let s = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        assert_eq!(s.fingerprint().len(), 32);
        assert_eq!(s.fingerprint(), s.clone().fingerprint());
        let other = Secret::from_bytes(vec![1; 20]).unwrap();
        assert_ne!(s.fingerprint(), other.fingerprint());
    }

    #[test]
    fn base32_round_trips_rfc4648_vectors() {
        for (raw, b32) in [
            (&b"foobar"[..], "MZXW6YTBOI"),
            (b"12345678901234567890", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
        ] {
            let padded = Secret(raw.to_vec());
            assert_eq!(padded.to_base32().as_str(), b32);
            if raw.len() >= MIN_SECRET_BYTES {
                assert_eq!(Secret::from_base32(b32).unwrap().as_bytes(), raw);
            }
        }
    }

    #[test]
    fn base32_accepts_what_apps_print() {
        let a = Secret::from_base32("gezd gnbv-gy3t qojq gezd gnbv gy3t qojq").unwrap();
        let b = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ====").unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn base32_rejects_bad_characters_and_sizes() {
        assert_eq!(
            Secret::from_base32("GEZDGNBVGY3TQOJ1"),
            Err(SecretError::InvalidCharacter)
        );
        assert_eq!(
            Secret::from_base32("MZXW6YTBOI"),
            Err(SecretError::TooShort { bits: 48 })
        );
        assert_eq!(
            Secret::from_base32(&"A".repeat(400)),
            Err(SecretError::TooLong)
        );
    }

    #[test]
    fn generated_secrets_are_160_bits_and_differ() {
        let a = Secret::generate(&crate::sys::random::test::COUNTER).unwrap();
        let b = Secret::generate(&crate::sys::random::test::COUNTER).unwrap();
        assert_eq!(a.bits(), 160);
        assert_ne!(a, b);
    }

    #[test]
    fn debug_never_shows_the_key() {
        let s = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("GEZD") && !shown.contains("49"), "{shown}");
    }
}
