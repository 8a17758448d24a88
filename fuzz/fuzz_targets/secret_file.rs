//! The secret-file and state-file parsers: never panic; a file that parses
//! is written back by the same code and parses to the same enrollment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otpgate_core::store::state::UserState;
use otpgate_core::enrollment::Enrollment;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = Enrollment::parse(data) {
        let text = e.to_toml().expect("a parsed enrollment serializes");
        let back = Enrollment::parse(text.as_bytes()).expect("round trip");
        assert_eq!(back.id, e.id);
        assert_eq!(back.devices.len(), e.devices.len());
        for (a, b) in back.devices.iter().zip(&e.devices) {
            assert_eq!(a.secret, b.secret);
            assert_eq!(a.kind, b.kind);
        }
    }
    let _ = UserState::parse(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = otpgate_core::enrollment::gauth::GoogleFile::parse(text);
    }
});
