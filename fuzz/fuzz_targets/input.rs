//! What users type: the reply classifier, recovery-code and base32
//! normalisers. Never panic; classification never depends on more than the
//! first 128 bytes being read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otpgate_core::otp::input::{Input, MAX_INPUT_LEN, classify};
use otpgate_core::otp::recovery::RecoveryCode;
use otpgate_core::otp::secret::Secret;

fuzz_target!(|data: &[u8]| {
    match classify(data) {
        Input::Code(c) => assert!((6..=8).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit())),
        Input::Recovery(_) | Input::Empty | Input::Invalid(_) => {}
    }
    if data.len() > MAX_INPUT_LEN {
        assert!(matches!(classify(data), Input::Invalid(_)));
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
