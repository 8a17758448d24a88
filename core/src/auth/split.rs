//! Split mode's one reply: the password with the code typed after it.
//!
//! Pure byte work, before any secret is touched: where the code starts is
//! decided by the shapes of the account's own codes, so a password that
//! ends in digits still works (the code is always the last *digits*
//! characters), and a space or `+` between the two is taken as a separator.
//! The password is handed on byte for byte (it may be in any encoding).

use crate::enrollment::Enrollment;
use crate::otp::recovery::RecoveryCode;
use zeroize::Zeroizing;

/// Longest combined reply looked at: libpam's own limit for one reply
/// (`PAM_MAX_RESP_SIZE`). Anything longer is refused unread.
pub const MAX_COMBINED_LEN: usize = 512;

/// The code shapes an account's credentials produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shapes {
    /// Code lengths of the devices, longest first, each once.
    digits: Vec<usize>,
    /// Whether a recovery code (`xxxx-xxxx-xxxx`) may come last.
    recovery: bool,
}

impl Shapes {
    /// What an account without an enrollment (or an unknown one) gets: a
    /// six-digit code, the same as most enrolled users, so the split
    /// reveals nothing about the account.
    pub fn default_shapes() -> Self {
        Self {
            digits: vec![6],
            recovery: true,
        }
    }

    /// The shapes of this enrollment's devices and recovery codes.
    pub fn of(enrollment: &Enrollment) -> Self {
        Self::new(
            enrollment.devices.iter().filter_map(|d| d.kind.digits()),
            enrollment.recovery.is_some(),
        )
    }

    /// Codes of these lengths (those outside 6–8 are ignored; none at all
    /// means six digits), and recovery codes if `recovery`.
    pub fn new(lengths: impl IntoIterator<Item = u8>, recovery: bool) -> Self {
        let mut digits: Vec<usize> = lengths
            .into_iter()
            .filter(|l| crate::otp::DIGITS_RANGE.contains(l))
            .map(usize::from)
            .collect();
        digits.sort_unstable_by(|a, b| b.cmp(a));
        digits.dedup();
        if digits.is_empty() {
            digits.push(6);
        }
        Self { digits, recovery }
    }
}

/// A combined reply, taken apart.
pub struct Parts {
    /// What goes on to the password module as PAM_AUTHTOK.
    pub password: Zeroizing<Vec<u8>>,
    /// The code typed after it, if anything code-shaped came last.
    pub code: Option<Zeroizing<String>>,
}

/// Why a combined reply was refused before the password step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    TooLong,
    NulByte,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLong => write!(f, "the reply is longer than {MAX_COMBINED_LEN} bytes"),
            Self::NulByte => f.write_str("the reply contains a NUL byte"),
        }
    }
}

/// The recovery code's displayed form, `xxxx-xxxx-xxxx`.
const RECOVERY_SHOWN_LEN: usize = 14;

fn is_separator(b: u8) -> bool {
    b == b' ' || b == b'+'
}

/// Takes a combined reply apart. The code is, in this order:
/// 1. a recovery code in its shown form (`xxxx-xxxx-xxxx`) at the end;
/// 2. the trailing digits after a space or `+`, when exactly that many
///    digits is one of the device code lengths (the separator is dropped);
/// 3. the whole trailing run of digits, when it is exactly a code length;
/// 4. the last N digits, for the longest code length N shorter than the run.
///
/// Otherwise there is no code and the whole reply is the password.
pub fn split(reply: &[u8], shapes: &Shapes) -> Result<Parts, Refused> {
    if reply.len() > MAX_COMBINED_LEN {
        return Err(Refused::TooLong);
    }
    if reply.contains(&0) {
        return Err(Refused::NulByte);
    }
    let take = |code_start: usize, password_end: usize| Parts {
        password: Zeroizing::new(reply[..password_end].to_vec()),
        code: Some(Zeroizing::new(
            String::from_utf8_lossy(&reply[code_start..]).into_owned(),
        )),
    };
    let without_separator = |start: usize| {
        if start > 0 && is_separator(reply[start - 1]) {
            start - 1
        } else {
            start
        }
    };
    if shapes.recovery && reply.len() >= RECOVERY_SHOWN_LEN {
        let start = reply.len() - RECOVERY_SHOWN_LEN;
        let tail = &reply[start..];
        let shown = tail[4] == b'-'
            && tail[9] == b'-'
            && tail
                .iter()
                .enumerate()
                .all(|(i, b)| i == 4 || i == 9 || b.is_ascii_alphanumeric());
        if shown
            && std::str::from_utf8(tail)
                .ok()
                .and_then(RecoveryCode::parse)
                .is_some()
        {
            return Ok(take(start, without_separator(start)));
        }
    }
    let run = reply
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let run_start = reply.len() - run;
    if shapes.digits.contains(&run) {
        return Ok(take(run_start, without_separator(run_start)));
    }
    if let Some(&len) = shapes.digits.iter().find(|&&len| len < run) {
        let start = reply.len() - len;
        return Ok(take(start, start));
    }
    Ok(Parts {
        password: Zeroizing::new(reply.to_vec()),
        code: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes(digits: &[usize]) -> Shapes {
        Shapes {
            digits: digits.to_vec(),
            recovery: true,
        }
    }

    fn parts(reply: &str, digits: &[usize]) -> (String, Option<String>) {
        let p = split(reply.as_bytes(), &shapes(digits)).unwrap();
        (
            String::from_utf8(p.password.to_vec()).unwrap(),
            p.code.map(|c| c.to_string()),
        )
    }

    fn pair(password: &str, code: &str) -> (String, Option<String>) {
        (password.into(), Some(code.into()))
    }

    #[test]
    fn the_code_is_taken_off_the_end() {
        assert_eq!(parts("hunter2123456", &[6]), pair("hunter2", "123456"));
        assert_eq!(
            parts("correct horse123456", &[6]),
            pair("correct horse", "123456")
        );
        assert_eq!(parts("pw12345678", &[8]), pair("pw", "12345678"));
    }

    #[test]
    fn a_password_ending_in_digits_keeps_them() {
        assert_eq!(parts("secret99123456", &[6]), pair("secret99", "123456"));
        assert_eq!(parts("1234123456", &[6]), pair("1234", "123456"));
        // Two lengths: the exact run, or the longest shorter one.
        assert_eq!(parts("pw1123456", &[8, 6]), pair("pw1", "123456"));
        assert_eq!(parts("pw12345678", &[8, 6]), pair("pw", "12345678"));
    }

    #[test]
    fn a_space_or_plus_between_is_a_separator() {
        assert_eq!(parts("hunter2 123456", &[6]), pair("hunter2", "123456"));
        assert_eq!(parts("hunter2+123456", &[6]), pair("hunter2", "123456"));
        // With two lengths, the separator settles which one was meant.
        assert_eq!(parts("pw12 123456", &[8, 6]), pair("pw12", "123456"));
        // A separator is only one byte: a password ending in '+' types two.
        assert_eq!(parts("pw+ +123456", &[6]), pair("pw+ ", "123456"));
        // Not a separator when the digits before it belong to the password.
        assert_eq!(parts("pw 9123456", &[6]), pair("pw 9", "123456"));
    }

    #[test]
    fn a_recovery_code_may_come_last() {
        assert_eq!(
            parts("hunter2 abcd-efgh-jkmn", &[6]),
            pair("hunter2", "abcd-efgh-jkmn")
        );
        assert_eq!(
            parts("hunter2ABCD-EFGH-JKMN", &[6]),
            pair("hunter2", "ABCD-EFGH-JKMN")
        );
        let no_recovery = Shapes {
            digits: vec![6],
            recovery: false,
        };
        let p = split(b"hunter2 abcd-efgh-jkmn", &no_recovery).unwrap();
        assert!(p.code.is_none());
    }

    #[test]
    fn only_a_password_or_only_digits() {
        assert_eq!(parts("hunter", &[6]), ("hunter".into(), None));
        assert_eq!(parts("hunter12345", &[6]), ("hunter12345".into(), None));
        assert_eq!(parts("123456", &[6]), pair("", "123456"));
        assert_eq!(parts("", &[6]), (String::new(), None));
    }

    #[test]
    fn bad_input_is_refused_or_passed_on_unread() {
        assert_eq!(
            split(&[b'a'; MAX_COMBINED_LEN + 1], &shapes(&[6])).err(),
            Some(Refused::TooLong)
        );
        assert_eq!(
            split(b"pass\0word123456", &shapes(&[6])).err(),
            Some(Refused::NulByte)
        );
        // Not UTF-8: the password goes on byte for byte.
        let p = split(b"p\xe4ss123456", &shapes(&[6])).unwrap();
        assert_eq!(p.password.as_slice(), b"p\xe4ss");
        assert_eq!(p.code.as_deref().map(String::as_str), Some("123456"));
        let p = split(b"p\xe4ss\xff", &shapes(&[6])).unwrap();
        assert_eq!(p.password.as_slice(), b"p\xe4ss\xff");
        assert!(p.code.is_none());
    }

    #[test]
    fn shapes_keep_real_code_lengths_longest_first() {
        assert_eq!(Shapes::new([6, 8, 6, 3, 12], true), shapes(&[8, 6]));
        assert_eq!(Shapes::new([], true), Shapes::default_shapes());
    }

    #[test]
    fn shapes_follow_the_enrollment() {
        let secret =
            crate::otp::secret::Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        let e = Enrollment::new(
            secret,
            crate::otp::TotpParams::DEFAULT,
            1,
            &crate::sys::random::test::COUNTER,
        )
        .unwrap();
        assert_eq!(
            Shapes::of(&e),
            Shapes {
                digits: vec![6],
                recovery: false
            }
        );
    }
}
