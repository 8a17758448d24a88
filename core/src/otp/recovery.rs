//! Recovery codes: one-use codes for a lost phone.
//!
//! A code is 12 characters from a 32-symbol alphabet without look-alikes
//! (60 bits), shown as `xxxx-xxxx-xxxx`. Only Argon2id hashes are stored. All
//! codes of a set share one random salt, so checking a typed code costs one
//! slow hash whatever the number of codes; sharing the salt costs at most
//! log2(codes) ≈ 3.3 bits against an offline attack on a stolen file, leaving
//! more than 56 bits.

use crate::enrollment::RecoverySet;
use crate::otp::OtpError;
use crate::otp::secret::{Secret, base32_encode};
use crate::sys::random::Random;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Characters per code.
pub const CODE_LEN: usize = 12;
/// Lower-case Crockford base32: no i, l, o, u.
pub const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Default number of codes in a set.
pub const DEFAULT_COUNT: usize = 10;
/// Most codes a set may hold.
pub const MAX_COUNT: usize = 100;
/// OWASP's Argon2id baseline: 19 MiB, 2 passes, 1 lane.
pub const M_COST: u32 = 19 * 1024;
pub const T_COST: u32 = 2;
pub const P_COST: u32 = 1;
const HASH_LEN: usize = 32;
const SALT_LEN: usize = 16;

/// A normalised recovery code (12 alphabet characters), wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(Zeroizing<String>);

impl std::fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryCode([redacted])")
    }
}

impl RecoveryCode {
    /// Normalises what a user typed: case, spaces and dashes do not matter,
    /// and the look-alikes o→0, i/l→1 are mapped as Crockford base32 does.
    pub fn parse(typed: &str) -> Option<Self> {
        let mut out = Zeroizing::new(String::with_capacity(CODE_LEN));
        for c in typed.chars() {
            let c = match c.to_ascii_lowercase() {
                ' ' | '-' | '\t' => continue,
                'o' => '0',
                'i' | 'l' => '1',
                c => c,
            };
            if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) || out.len() >= CODE_LEN {
                return None;
            }
            out.push(c);
        }
        (out.len() == CODE_LEN).then_some(Self(out))
    }

    /// An 8-digit google-authenticator scratch code, kept as a recovery
    /// code when a file is imported (see [`crate::enrollment::gauth`]).
    pub fn from_scratch(digits: &str) -> Option<Self> {
        (digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Self(Zeroizing::new(digits.to_string())))
    }

    /// A new random code from `random` (the kernel's CSPRNG on a real host).
    pub fn generate(random: &dyn Random) -> Result<Self, OtpError> {
        let mut raw = Zeroizing::new([0u8; CODE_LEN]);
        random.fill(&mut *raw).map_err(|_| OtpError::Randomness)?;
        let text: String = raw
            .iter()
            .map(|b| ALPHABET[(b & 31) as usize] as char)
            .collect();
        Ok(Self(Zeroizing::new(text)))
    }

    /// The code as shown to the user: `xxxx-xxxx-xxxx` (scratch codes as they are).
    pub fn display(&self) -> Zeroizing<String> {
        let s = &self.0;
        if s.len() != CODE_LEN {
            return s.clone();
        }
        Zeroizing::new(format!("{}-{}-{}", &s[0..4], &s[4..8], &s[8..12]))
    }
}

fn argon(set_m: u32, set_t: u32, set_p: u32) -> Result<argon2::Argon2<'static>, OtpError> {
    let params = argon2::Params::new(set_m, set_t, set_p, Some(HASH_LEN))
        .map_err(|e| OtpError::Hashing(format!("bad Argon2 parameters: {e}")))?;
    Ok(argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        params,
    ))
}

fn hash(set: &RecoverySet, salt: &[u8], code: &RecoveryCode) -> Result<String, OtpError> {
    let mut out = Zeroizing::new([0u8; HASH_LEN]);
    argon(set.m_cost, set.t_cost, set.p_cost)?
        .hash_password_into(code.0.as_bytes(), salt, &mut *out)
        .map_err(|e| OtpError::Hashing(e.to_string()))?;
    Ok(base32_encode(&*out))
}

fn decode(text: &str) -> Result<Vec<u8>, String> {
    Secret::from_base32(text)
        .map(|s| s.as_bytes().to_vec())
        .map_err(|e| e.to_string())
}

/// Makes `count` new codes and their hashed set.
pub fn generate_set(
    random: &dyn Random,
    count: usize,
    now: u64,
) -> Result<(Vec<RecoveryCode>, RecoverySet), OtpError> {
    if count == 0 || count > MAX_COUNT {
        return Err(OtpError::RecoveryCount(count));
    }
    let mut codes: Vec<RecoveryCode> = Vec::with_capacity(count);
    while codes.len() < count {
        let code = RecoveryCode::generate(random)?;
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    let set = hash_set(random, &codes, now)?;
    Ok((codes, set))
}

/// Hashes given codes into a new set with a fresh salt.
pub fn hash_set(
    random: &dyn Random,
    codes: &[RecoveryCode],
    now: u64,
) -> Result<RecoverySet, OtpError> {
    if codes.len() > MAX_COUNT {
        return Err(OtpError::RecoveryCount(codes.len()));
    }
    let mut salt = [0u8; SALT_LEN];
    random.fill(&mut salt).map_err(|_| OtpError::Randomness)?;
    let mut set = RecoverySet {
        kdf: "argon2id".into(),
        m_cost: M_COST,
        t_cost: T_COST,
        p_cost: P_COST,
        salt: base32_encode(&salt),
        created: now,
        hashes: Vec::with_capacity(codes.len()),
    };
    for code in codes {
        set.hashes.push(hash(&set, &salt, code)?);
    }
    Ok(set)
}

/// Validates a stored set: known KDF, exactly otpgate's own costs (a hostile
/// file must not make the login process spend seconds and gigabytes), a
/// well-formed salt and hashes.
pub fn check_set(set: &RecoverySet) -> Result<(), OtpError> {
    if set.kdf != "argon2id" {
        return Err(OtpError::RecoveryKdf(set.kdf.clone()));
    }
    // Only the parameters otpgate writes: the file is the user's, and the
    // hash runs as root on the login path, outside the user's limits.
    if (set.m_cost, set.t_cost, set.p_cost) != (M_COST, T_COST, P_COST) {
        return Err(OtpError::RecoveryParams {
            m: set.m_cost,
            t: set.t_cost,
            p: set.p_cost,
        });
    }
    let salt = decode(&set.salt).map_err(OtpError::RecoverySalt)?;
    if salt.len() < 8 {
        return Err(OtpError::RecoverySalt("is shorter than 8 bytes".into()));
    }
    if set.hashes.len() > MAX_COUNT {
        return Err(OtpError::RecoveryHashes);
    }
    // Checked by shape, not decoded: this runs at every login that reads
    // the file, and a hash is only ever compared, never decoded.
    if !set.hashes.iter().all(|h| hash_shaped(h)) {
        return Err(OtpError::RecoveryHashes);
    }
    Ok(())
}

/// Whether `text` is what [`base32_encode`] makes of a 32-byte hash: 52
/// characters of the base32 alphabet, the last carrying one bit.
fn hash_shaped(text: &str) -> bool {
    const ENCODED_LEN: usize = (HASH_LEN * 8).div_ceil(5);
    let b = text.as_bytes();
    b.len() == ENCODED_LEN
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || (b'2'..=b'7').contains(c))
        && matches!(b.last(), Some(b'A' | b'Q'))
}

/// Hashes `code` once and returns the stored hash it matches, if any. The
/// comparison runs over every stored hash in constant time.
pub fn find(set: &RecoverySet, code: &RecoveryCode) -> Result<Option<String>, OtpError> {
    check_set(set)?;
    let salt = decode(&set.salt).map_err(OtpError::RecoverySalt)?;
    let typed = hash(set, &salt, code)?;
    let mut found = None;
    for stored in &set.hashes {
        let equal =
            stored.len() == typed.len() && bool::from(stored.as_bytes().ct_eq(typed.as_bytes()));
        if equal {
            found = Some(stored.clone());
        }
    }
    Ok(found)
}

/// How many codes of `set` are not in `used`.
pub fn remaining(set: &RecoverySet, used: &[&str]) -> usize {
    set.hashes
        .iter()
        .filter(|h| !used.contains(&h.as_str()))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_60_bits_and_typeable() {
        let code = RecoveryCode::generate(&crate::sys::random::test::COUNTER).unwrap();
        let shown = code.display();
        assert_eq!(shown.len(), 14);
        assert_eq!(shown.matches('-').count(), 2);
        assert_eq!(RecoveryCode::parse(&shown), Some(code.clone()));
        assert_eq!(
            RecoveryCode::parse(&shown.to_uppercase()),
            Some(code.clone())
        );
        assert_eq!(RecoveryCode::parse(&shown.replace('-', " ")), Some(code));
    }

    #[test]
    fn look_alikes_are_mapped_and_junk_refused() {
        assert_eq!(
            RecoveryCode::parse("oooo-iiii-llll"),
            RecoveryCode::parse("0000-1111-1111")
        );
        for bad in [
            "",
            "abcd-efgh-jkm",
            "abcd-efgh-jkmnp",
            "abcd-efgh-jku!",
            "abcd-efgh-jkmü",
        ] {
            assert_eq!(RecoveryCode::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_set_finds_each_of_its_codes_and_nothing_else() {
        let (codes, set) = generate_set(&crate::sys::random::test::COUNTER, 3, 1).unwrap();
        assert_eq!(set.hashes.len(), 3);
        check_set(&set).unwrap();
        for (i, code) in codes.iter().enumerate() {
            assert_eq!(
                find(&set, code).unwrap().as_deref(),
                Some(set.hashes[i].as_str())
            );
        }
        let other = RecoveryCode::generate(&crate::sys::random::test::COUNTER).unwrap();
        assert_eq!(find(&set, &other).unwrap(), None);
        assert_eq!(remaining(&set, &[set.hashes[1].as_str()]), 2);
    }

    #[test]
    fn hostile_sets_are_refused() {
        let (_, set) = generate_set(&crate::sys::random::test::COUNTER, 1, 1).unwrap();
        for (m, t, p) in [
            (4_000_000, 2, 1),
            (262_144, 10, 1),
            (M_COST, 1, 1),
            (8, 2, 1),
        ] {
            let mut s = set.clone();
            (s.m_cost, s.t_cost, s.p_cost) = (m, t, p);
            let e = check_set(&s).unwrap_err();
            assert!(e.to_string().contains("otpgate recovery-codes"), "{e}");
        }
        let mut s = set.clone();
        s.kdf = "md5".into();
        assert!(check_set(&s).is_err());
        let mut s = set.clone();
        s.hashes.push("AAAA".into());
        assert!(check_set(&s).is_err());
        for bad in [
            set.hashes[0].to_lowercase(),
            format!("{}B", &set.hashes[0][..51]),
        ] {
            let mut s = set.clone();
            s.hashes[0] = bad;
            assert!(check_set(&s).is_err());
        }
        assert!(set.hashes.iter().all(|h| hash_shaped(h)));
        assert!(generate_set(&crate::sys::random::test::COUNTER, 0, 1).is_err());
    }
}
