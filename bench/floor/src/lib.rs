//! The floor of an otpgate login under issue 13's constraints, measured by
//! scripts/bench.sh beside the real module and google-authenticator.
//!
//! A PAM module in Rust (std, panics caught at the boundary, the real
//! module's link flags) that does only what any otpgate login must: look
//! the user up, parse the config, the user's secret file and the state file
//! with `toml` (the one parser the issue keeps), compute the secret's
//! fingerprint (the state's key, issue 1) and up to two HOTP values, and
//! write the state back atomically under a lock. Everything else the real
//! module does is left out: no path walk from `/` with owner and mode
//! checks, no file-system identity switch, no validation of the config, no
//! policy (groups, networks, grace, lockout), no syslog line, no prompt. It
//! never accepts anyone: the code is not read. Never installed or shipped.
//!
//! Paths and user come from the environment (OTPGATE_FLOOR_CONFIG,
//! OTPGATE_FLOOR_SECRET, OTPGATE_FLOOR_STATE, OTPGATE_FLOOR_USER), so the
//! module needs no unsafe code.

use hmac::{KeyInit, Mac};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::raw::{c_char, c_int, c_void};

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Config {
    state_dir: Option<String>,
    enforce: Option<String>,
}

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct SecretFile {
    version: u32,
    enrollment_id: String,
    created: u64,
    secret: String,
    algorithm: String,
    digits: u8,
    period: u64,
}

#[derive(serde::Deserialize, serde::Serialize, Default)]
struct State {
    version: u32,
    #[serde(default)]
    last_success: u64,
    #[serde(default)]
    devices: BTreeMap<String, Device>,
}

#[derive(serde::Deserialize, serde::Serialize)]
struct Device {
    last_step: u64,
}

/// Whole comment lines out, as the real module does before `toml` reads.
fn without_comment_lines(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

fn base32(text: &str) -> Vec<u8> {
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u64, 0);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => continue,
        };
        acc = (acc << 5) | u64::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn hotp(mac: &hmac::Hmac<sha1::Sha1>, counter: u64) -> u32 {
    let h = mac
        .clone()
        .chain_update(counter.to_be_bytes())
        .finalize()
        .into_bytes();
    let o = usize::from(h[19] & 15);
    (u32::from_be_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]) & 0x7fff_ffff) % 1_000_000
}

fn login() -> Option<()> {
    let var = |name| std::env::var(name).ok();
    nix::unistd::User::from_name(&var("OTPGATE_FLOOR_USER")?).ok()??;
    let config = std::fs::read_to_string(var("OTPGATE_FLOOR_CONFIG")?).ok()?;
    let _config: Config = toml::from_str(&without_comment_lines(&config)).ok()?;
    let secret = std::fs::read_to_string(var("OTPGATE_FLOOR_SECRET")?).ok()?;
    let secret: SecretFile = toml::from_str(&without_comment_lines(&secret)).ok()?;
    let dir = std::path::PathBuf::from(var("OTPGATE_FLOOR_STATE")?);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("user.lock"))
        .ok()?;
    lock.lock().ok()?;
    let mut state: State = match std::fs::read_to_string(dir.join("user.state")) {
        Ok(text) => toml::from_str(&text).ok()?,
        Err(_) => State {
            version: 2,
            ..State::default()
        },
    };
    let key = base32(&secret.secret);
    let fingerprint = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key)
        .ok()?
        .chain_update(b"otpgate/device-fingerprint/v1")
        .finalize()
        .into_bytes();
    let fingerprint: String = fingerprint[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(&key).ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    let step = now / 30;
    // Two HOTP values, as a right code on time costs the real module.
    let matched = [step + 1, step].iter().any(|&s| hotp(&mac, s) == 1_000_000);
    state
        .devices
        .insert(fingerprint, Device { last_step: step });
    state.last_success = now + u64::from(matched);
    let text = toml::to_string(&state).ok()?;
    let tmp = dir.join(".user.state.tmp");
    let mut file = std::fs::File::create(&tmp).ok()?;
    file.write_all(text.as_bytes()).ok()?;
    file.sync_all().ok()?;
    std::fs::rename(&tmp, dir.join("user.state")).ok()?;
    std::fs::File::open(&dir).ok()?.sync_all().ok()
}

/// PAM_SUCCESS when the floor's work went through (no code is asked).
#[unsafe(no_mangle)]
pub extern "C" fn pam_sm_authenticate(
    _pamh: *mut c_void,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    std::panic::catch_unwind(|| if login().is_some() { 0 } else { 7 }).unwrap_or(4)
}

#[unsafe(no_mangle)]
pub extern "C" fn pam_sm_setcred(
    _pamh: *mut c_void,
    _flags: c_int,
    _argc: c_int,
    _argv: *const *const c_char,
) -> c_int {
    0
}
