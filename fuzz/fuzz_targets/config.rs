//! The config parser and module-argument overrides: never panic; whatever
//! parses must also survive a round trip through the effective-values output.
//! Leaving whole comment lines out (done before every parse) never changes
//! what `toml` reads: the same table, or an error in both cases (checked on
//! the lean text itself, not through the fallback to the text as written).
#![no_main]

use libfuzzer_sys::fuzz_target;
use otpgate_core::config::Config;
use otpgate_core::config::args::ModuleArgs;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The first line doubles as module arguments.
    let (args_line, body) = text.split_once('\n').unwrap_or((text, ""));
    let plain = toml::from_str::<toml::Table>(text);
    let lean =
        toml::from_str::<toml::Table>(&otpgate_core::toml_comments::without_comment_lines(text));
    match (plain, lean) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "leaving comments out changed the table"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("leaving comments out changed the verdict: {a:?} / {b:?}"),
    }
    if let Ok(config) = Config::parse(body, "fuzz") {
        let again = Config::parse(&config.to_toml(), "fuzz").expect("effective values must parse");
        assert_eq!(again, config);
        let args: Vec<&str> = args_line.split_whitespace().collect();
        if let Ok(parsed) = ModuleArgs::parse(&args) {
            let _ = config.with_overrides(&parsed.overrides, "fuzz");
        }
    }
});
