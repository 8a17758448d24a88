//! What users type: the reply classifier (YubiKey touches too), split
//! mode's password + code split, recovery-code and base32 normalisers,
//! e-mail addresses and phone numbers. Never panic;
//! classification never depends on more than the first 128 bytes being
//! read; a split only ever cuts the reply, never changes it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otpgate_core::auth::split::{MAX_COMBINED_LEN, Shapes, split};
use otpgate_core::otp::input::{Input, MAX_INPUT_LEN, classify};
use otpgate_core::otp::recovery::RecoveryCode;
use otpgate_core::otp::secret::Secret;

fuzz_target!(|data: &[u8]| {
    match classify(data) {
        Input::Code(c) => assert!((6..=8).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit())),
        Input::YubicoOtp(o) => assert!(
            o.len() == 44 && otpgate_core::otp::yubico::modhex_decode(&o).is_some(),
            "a YubiKey OTP is 44 modhex characters"
        ),
        Input::Recovery(_) | Input::Empty | Input::Invalid(_) => {}
    }
    // Opening a touch with any key never panics (it is refused, or checked).
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = otpgate_core::otp::yubico::open(text, &[7; 16], &[1; 6]);
        let _ = otpgate_core::otp::sent::Target::email(text);
        let _ = otpgate_core::otp::sent::Target::phone(text);
    }
    if data.len() > MAX_INPUT_LEN {
        assert!(matches!(classify(data), Input::Invalid(_)));
    }
    for shapes in [Shapes::default_shapes(), Shapes::new([8, 6], true), Shapes::new([8], false)] {
        match split(data, &shapes) {
            Ok(parts) => {
                assert!(data.len() <= MAX_COMBINED_LEN && !data.contains(&0));
                assert!(data.starts_with(&parts.password));
                if let Some(code) = parts.code {
                    assert!(data.ends_with(code.as_bytes()));
                    let between = data.len() - parts.password.len() - code.len();
                    assert!(between <= 1, "at most one separator is dropped");
                    assert!(!matches!(classify(code.as_bytes()), Input::Invalid(_) | Input::Empty));
                } else {
                    assert_eq!(parts.password.as_slice(), data);
                }
            }
            Err(_) => assert!(data.len() > MAX_COMBINED_LEN || data.contains(&0)),
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(code) = RecoveryCode::parse(text) {
            assert_eq!(RecoveryCode::parse(&code.display()), Some(code));
        }
        if let Ok(secret) = Secret::from_base32(text) {
            assert_eq!(Secret::from_base32(&secret.to_base32()), Ok(secret));
        }
        let _ = otpgate_core::policy::rhost_ip(Some(text));
        let _ = text.parse::<otpgate_core::policy::Cidr>();
        // PAM service lines as libpam splits them, and terminal escaping.
        for (_, line) in otpgate_core::config::pamfile::logical_lines(text) {
            let _ = otpgate_core::config::pamfile::words(&line);
        }
        let shown = otpgate_core::admin::escape::for_terminal(text);
        assert!(!shown.chars().any(|c| c.is_control()));
    }
});
