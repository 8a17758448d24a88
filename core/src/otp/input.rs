//! What the user typed at the prompt, classified before any secret is touched.

use crate::otp::DIGITS_RANGE;
use crate::otp::recovery::RecoveryCode;
use zeroize::Zeroizing;

/// Longest reply looked at; anything longer is refused unread (a 10 000
/// character "code" must cost nothing).
pub const MAX_INPUT_LEN: usize = 128;

/// A classified reply.
#[derive(Debug)]
pub enum Input {
    /// 6–8 digits (spaces and dashes removed): a TOTP/HOTP code.
    Code(Zeroizing<String>),
    /// Something shaped like a recovery code.
    Recovery(RecoveryCode),
    /// 44 modhex characters: a YubiKey's touch (Yubico OTP), lower case.
    YubicoOtp(Zeroizing<String>),
    /// Nothing but spaces and dashes.
    Empty,
    /// Neither; the reason is safe to log (it never contains the input).
    Invalid(&'static str),
}

/// What a typed code is compared as: spaces and dashes removed (apps show
/// "123 456", people type "123-456"). Wiped when dropped.
pub fn compact(text: &str) -> Zeroizing<String> {
    Zeroizing::new(
        text.chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect(),
    )
}

/// Classifies raw reply bytes from the conversation.
pub fn classify(raw: &[u8]) -> Input {
    if raw.len() > MAX_INPUT_LEN {
        return Input::Invalid("the reply is longer than 128 bytes");
    }
    let Ok(text) = std::str::from_utf8(raw) else {
        return Input::Invalid("the reply is not valid UTF-8");
    };
    if text.contains('\0') {
        return Input::Invalid("the reply contains a NUL byte");
    }
    let compact = compact(text);
    if compact.is_empty() {
        return Input::Empty;
    }
    let len_ok = u8::try_from(compact.len()).is_ok_and(|l| DIGITS_RANGE.contains(&l));
    if len_ok && compact.bytes().all(|b| b.is_ascii_digit()) {
        return Input::Code(compact);
    }
    if crate::otp::yubico::looks_like_otp(&compact) {
        return Input::YubicoOtp(Zeroizing::new(compact.to_ascii_lowercase()));
    }
    match RecoveryCode::parse(text) {
        Some(code) => Input::Recovery(code),
        None => Input::Invalid(
            "the reply is neither a 6-8 digit code, a YubiKey OTP nor a recovery code",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_codes() {
        assert!(matches!(classify(b"123456"), Input::Code(c) if *c == "123456"));
        assert!(matches!(classify(b" 123 456\n"), Input::Code(c) if *c == "123456"));
        assert!(matches!(classify(b"12345678"), Input::Code(_)));
    }

    #[test]
    fn recovery_shapes_are_recovery() {
        assert!(matches!(classify(b"abcd-efgh-jkmn"), Input::Recovery(_)));
        assert!(matches!(classify(b"ABCD EFGH JKMN"), Input::Recovery(_)));
        assert!(matches!(classify(b"1234-5678-9012"), Input::Recovery(_)));
    }

    #[test]
    fn a_yubikey_touch_is_recognised_by_its_shape() {
        let otp = "ccccccbcgujhingjrdejhgfnuetrgigvejhhgbkugded";
        assert!(matches!(classify(otp.as_bytes()), Input::YubicoOtp(o) if *o == otp));
        let upper = otp.to_ascii_uppercase();
        assert!(matches!(classify(upper.as_bytes()), Input::YubicoOtp(o) if *o == otp));
        assert!(matches!(classify(&otp.as_bytes()[..43]), Input::Invalid(_)));
        assert!(matches!(
            classify(otp.replace('c', "a").as_bytes()),
            Input::Invalid(_)
        ));
    }

    #[test]
    fn junk_is_refused_without_echoing_it() {
        assert!(matches!(classify(b""), Input::Empty));
        assert!(matches!(classify(b" - "), Input::Empty));
        assert!(matches!(classify(b"12345"), Input::Invalid(_)));
        assert!(matches!(classify(b"123456789"), Input::Invalid(_)));
        assert!(matches!(classify(&[b'1'; 10_000]), Input::Invalid(_)));
        assert!(matches!(classify(b"12\x003456"), Input::Invalid(_)));
        assert!(matches!(classify(b"\xff\xfe123456"), Input::Invalid(_)));
        if let Input::Invalid(why) = classify(b"hunter2") {
            assert!(!why.contains("hunter2"));
        } else {
            panic!("hunter2 is not a code");
        }
    }
}
