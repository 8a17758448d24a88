//! The per-user secret file: a versioned, strictly parsed TOML document.
//!
//! Format version 1 (see `otpgate.toml(5)` / README "Secret file format"):
//!
//! ```toml
//! version = 1
//! enrollment_id = "9f2c…"          # 32 hex digits, new on every enrollment
//! created = 1795000000             # Unix time of the enrollment
//! device_name = "phone"          # optional name of the primary device ("default")
//! secret = "JBSWY3DPEHPK3PXP…"     # base32 TOTP key of the primary device
//! algorithm = "SHA1"               # SHA1 | SHA256 | SHA512
//! digits = 6                       # 6..8
//! period = 30                      # seconds
//! [recovery]                       # optional: hashed recovery codes
//! [[devices]]                      # optional: further authenticators
//! ```
//!
//! The module only ever reads this file; everything that changes at login
//! lives in the root-owned state directory (see [`crate::store::state`]). One parser
//! serves both reading and the CLI's rewriting (oath-toolkit CVE-2013-7322 was
//! two parsers that disagreed).

pub mod devices;
mod format;
pub mod gauth;

use crate::config::Method;
use crate::otp::secret::Secret;
use crate::otp::{Algorithm, TotpParams};
use crate::sys::random::Random;
use serde::{Deserialize, Serialize};

/// The format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Files larger than this are refused before parsing.
pub const MAX_FILE_SIZE: u64 = 64 * 1024;
/// Largest HOTP counter accepted in a file (2^48: a token pressed every
/// second for eight million years).
pub const MAX_HOTP_COUNTER: u64 = 1 << 48;
/// Name of the device described by the file's top-level keys.
pub const PRIMARY_DEVICE: &str = "default";

/// A validated enrollment.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub id: String,
    pub created: u64,
    pub devices: Vec<Device>,
    pub recovery: Option<RecoverySet>,
}

/// One authenticator.
#[derive(Debug, Clone)]
pub struct Device {
    pub name: String,
    pub secret: Secret,
    pub kind: DeviceKind,
    pub created: u64,
}

/// How a device derives its codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// Time-based (RFC 6238), the phone apps.
    Totp(TotpParams),
    /// Counter-based (RFC 4226), hardware tokens; `initial` is the counter
    /// the token starts from when enrolled.
    Hotp {
        algorithm: Algorithm,
        digits: u8,
        initial: u64,
    },
    /// A YubiKey slot in Yubico OTP mode, validated offline: the device's
    /// secret is the slot's AES-128 key. `initial` is the (usage, session)
    /// order ([`crate::otp::yubico::Touch::order`]) of the last OTP seen
    /// when it was added: only later ones are accepted.
    YubicoOtp {
        public_id: [u8; 6],
        private_id: [u8; 6],
        initial: u32,
    },
    /// Codes sent by e-mail to this address when the user asks (an empty
    /// answer at the prompt); the device's secret keys the code's hash.
    Email(crate::otp::sent::Target),
    /// Codes sent by SMS to this number, through `sms_command`.
    Sms(crate::otp::sent::Target),
}

impl DeviceKind {
    /// The length of the device's digit codes (`None`: a YubiKey types a
    /// 44-character OTP, not digits).
    pub fn digits(&self) -> Option<u8> {
        match self {
            Self::Totp(p) => Some(p.digits()),
            Self::Hotp { digits, .. } => Some(*digits),
            Self::YubicoOtp { .. } | Self::Email(_) | Self::Sms(_) => None,
        }
    }

    /// Where codes are sent, for the kinds that send them.
    pub fn target(&self) -> Option<&crate::otp::sent::Target> {
        match self {
            Self::Email(t) | Self::Sms(t) => Some(t),
            _ => None,
        }
    }

    /// The method `methods` allows or forbids this kind by.
    pub fn method(&self) -> Method {
        match self {
            Self::Totp(_) => Method::Totp,
            Self::Hotp { .. } => Method::Hotp,
            Self::YubicoOtp { .. } => Method::YubicoOtp,
            Self::Email(_) => Method::Email,
            Self::Sms(_) => Method::Sms,
        }
    }
}

/// Hashed recovery codes, all sharing one salt so that checking a typed code
/// costs one slow hash whatever the number of codes (see [`crate::otp::recovery`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoverySet {
    /// Key-derivation function; only "argon2id".
    pub kdf: String,
    /// Argon2 memory cost in KiB.
    pub m_cost: u32,
    /// Argon2 iterations.
    pub t_cost: u32,
    /// Argon2 lanes.
    pub p_cost: u32,
    /// Salt, base32.
    pub salt: String,
    /// When this set was generated (Unix time).
    pub created: u64,
    /// One hash per code, base32.
    pub hashes: Vec<String>,
}

/// Why a secret file could not be used. Each message says what is wrong;
/// the store adds what to do (re-enroll, or restore the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    NotUtf8,
    Empty,
    /// The TOML did not parse, or had unknown, missing or duplicate keys.
    Syntax(String),
    UnsupportedVersion(i64),
    VersionNotInteger,
    VersionMissing,
    EnrollmentId,
    /// A secret that is not valid base32, or too short or long.
    Secret {
        what: String,
        why: String,
    },
    /// Parameters or recovery codes that cannot be used.
    Otp {
        what: String,
        error: crate::otp::OtpError,
    },
    DeviceName(DeviceNameError),
    DuplicateName(String),
    SameSecret {
        first: String,
        second: String,
    },
    Counter {
        device: String,
        counter: u64,
    },
    /// A device of the wrong shape (`type`, `period`/`counter`).
    DeviceShape {
        device: String,
        why: String,
    },
    NoDevice,
    PrimaryNotTotp,
    Randomness,
    Serialize(String),
}

/// A device name that is not 1-32 characters of `[A-Za-z0-9._-]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNameError(pub String);

impl std::fmt::Display for DeviceNameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "device name \"{}\" must be 1 to 32 characters of letters, digits, '.', '_' or '-'",
            self.0
        )
    }
}

impl std::error::Error for DeviceNameError {}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotUtf8 => f.write_str("the file is not valid UTF-8 text"),
            Self::Empty => f.write_str("the file is empty"),
            Self::Syntax(msg) => write!(f, "not a valid otpgate secret file: {msg}"),
            Self::UnsupportedVersion(v) => write!(
                f,
                "format version {v} is not supported (this otpgate reads version {FORMAT_VERSION}): upgrade otpgate or re-enroll"
            ),
            Self::VersionNotInteger => f.write_str("`version` must be an integer"),
            Self::VersionMissing => f.write_str("the `version` key is missing"),
            Self::EnrollmentId => {
                f.write_str("`enrollment_id` must be 16 to 64 hexadecimal digits")
            }
            Self::Secret { what, why } => write!(f, "{what}: {why}"),
            Self::Otp { what, error } if what.is_empty() => error.fmt(f),
            Self::Otp { what, error } => write!(f, "{what}: {error}"),
            Self::DeviceName(e) => e.fmt(f),
            Self::DuplicateName(name) => write!(f, "device name \"{name}\" appears twice"),
            Self::SameSecret { first, second } => write!(
                f,
                "devices \"{first}\" and \"{second}\" have the same secret; remove one of them"
            ),
            Self::Counter { device, counter } => write!(
                f,
                "device \"{device}\": counter {counter} is beyond {MAX_HOTP_COUNTER}; no token gets there"
            ),
            Self::DeviceShape { device, why } => write!(f, "device \"{device}\": {why}"),
            Self::NoDevice => f.write_str("an enrollment needs a device"),
            Self::PrimaryNotTotp => f.write_str("the primary device must be a TOTP device"),
            Self::Randomness => f.write_str("the system's random number source failed"),
            Self::Serialize(why) => write!(f, "writing the secret file failed: {why}"),
        }
    }
}

impl std::error::Error for FormatError {}

/// Hex digits to bytes (`None`: odd length or not hex).
pub fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

/// Bytes as lower-case hex digits.
pub fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a device name: 1–32 characters of `[A-Za-z0-9._-]`.
pub fn check_device_name(name: &str) -> Result<(), DeviceNameError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DeviceNameError(name.to_string()))
    }
}

impl Enrollment {
    /// Whether `code` is a current code of any TOTP device (used to
    /// authorise changes by a non-root user).
    pub fn code_is_current(&self, code: &str, now: u64, window: u32) -> bool {
        self.devices.iter().any(|d| match d.kind {
            DeviceKind::Totp(p) => crate::otp::typed_code_matches(&d.secret, &p, code, now, window),
            DeviceKind::Hotp { .. }
            | DeviceKind::YubicoOtp { .. }
            | DeviceKind::Email(_)
            | DeviceKind::Sms(_) => false,
        })
    }

    /// Refuses two devices with one secret: their codes are the same codes,
    /// and one code must never count twice (once per device).
    pub fn check_distinct_secrets(&self) -> Result<(), FormatError> {
        for (i, a) in self.devices.iter().enumerate() {
            if let Some(b) = self.devices[..i].iter().find(|b| b.secret == a.secret) {
                return Err(FormatError::SameSecret {
                    first: b.name.clone(),
                    second: a.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// A fingerprint of everything a user could authenticate with: the
    /// enrollment id and time, each device (name, kind, secret fingerprint)
    /// and the recovery set. A remembered address is trusted only while this
    /// stays the same, so any change of devices, secret or recovery codes
    /// ends every trust window (an edit by hand only ends it sooner).
    pub fn credentials_fingerprint(&self) -> String {
        let mut text = format!("{}/{}", self.id, self.created);
        for d in &self.devices {
            text.push_str(&format!(
                "/{}:{}:{:?}:{}",
                d.name,
                d.created,
                d.kind,
                d.secret.fingerprint()
            ));
        }
        if let Some(r) = &self.recovery {
            text.push_str(&format!("/recovery:{}:{}", r.salt, r.created));
        }
        crate::otp::secret::digest_hex(text.as_bytes())
    }

    /// A fresh random enrollment id (128 bits, hex).
    pub fn new_id(random: &dyn Random) -> Result<String, FormatError> {
        let mut bytes = [0u8; 16];
        random
            .fill(&mut bytes)
            .map_err(|_| FormatError::Randomness)?;
        Ok(crate::otp::secret::hex(&bytes))
    }

    /// A new enrollment with one TOTP device.
    pub fn new(
        secret: Secret,
        params: TotpParams,
        now: u64,
        random: &dyn Random,
    ) -> Result<Self, FormatError> {
        Ok(Self {
            id: Self::new_id(random)?,
            created: now,
            devices: vec![Device {
                name: PRIMARY_DEVICE.into(),
                secret,
                kind: DeviceKind::Totp(params),
                created: now,
            }],
            recovery: None,
        })
    }

    /// The primary device's TOTP parameters.
    pub fn primary_params(&self) -> Option<TotpParams> {
        match self.devices.first().map(|d| d.kind) {
            Some(DeviceKind::Totp(p)) => Some(p),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "version = 1\nenrollment_id = \"0123456789abcdef0123456789abcdef\"\n\
        created = 1700000000\nsecret = \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\"\n\
        algorithm = \"SHA1\"\ndigits = 6\nperiod = 30\n";

    #[test]
    fn parses_a_good_file() {
        let e = Enrollment::parse(GOOD.as_bytes()).unwrap();
        assert_eq!(e.devices.len(), 1);
        assert_eq!(e.devices[0].secret.as_bytes(), b"12345678901234567890");
        assert_eq!(e.primary_params(), Some(TotpParams::DEFAULT));
    }

    #[test]
    fn round_trips_through_to_toml() {
        let mut e = Enrollment::parse(GOOD.as_bytes()).unwrap();
        e.devices.push(Device {
            name: "yubikey".into(),
            secret: Secret::from_bytes(vec![7; 20]).unwrap(),
            kind: DeviceKind::Hotp {
                algorithm: Algorithm::SHA1,
                digits: 6,
                initial: 5,
            },
            created: 1,
        });
        let text = e.to_toml().unwrap();
        let back = Enrollment::parse(text.as_bytes()).unwrap();
        assert_eq!(back.id, e.id);
        assert_eq!(back.devices.len(), 2);
        assert_eq!(back.devices[1].kind, e.devices[1].kind);
        assert_eq!(back.devices[1].secret, e.devices[1].secret);
    }

    #[test]
    fn refuses_malformed_files_with_a_reason() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "empty"),
            (b"\xff\xfe".to_vec(), "UTF-8"),
            (
                GOOD.replace("version = 1", "version = 2").into_bytes(),
                "version 2",
            ),
            (GOOD.replace("version = 1\n", "").into_bytes(), "version"),
            (format!("{GOOD}digits = 7\n").into_bytes(), "duplicate"),
            (format!("{GOOD}colour = 1\n").into_bytes(), "colour"),
            (
                GOOD.replace("digits = 6", "digits = 9").into_bytes(),
                "digits",
            ),
            (
                GOOD.replace("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "GEZD!")
                    .into_bytes(),
                "base32",
            ),
            (
                GOOD.replace("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "GEZDGNBV")
                    .into_bytes(),
                "bits",
            ),
            (
                GOOD.replace("0123456789abcdef0123456789abcdef", "xyz")
                    .into_bytes(),
                "enrollment_id",
            ),
            (GOOD.as_bytes()[..GOOD.len() / 2].to_vec(), "secret file"),
        ];
        for (bytes, expect) in cases {
            let err = Enrollment::parse(&bytes).unwrap_err().to_string();
            assert!(
                err.to_lowercase().contains(&expect.to_lowercase()),
                "{:?}: {err}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn ids_are_random_hex() {
        let a = Enrollment::new_id(&crate::sys::random::test::COUNTER).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(
            a,
            Enrollment::new_id(&crate::sys::random::test::COUNTER).unwrap()
        );
        assert!(format::check_enrollment_id(&a).is_ok());
    }

    #[test]
    fn device_names_are_checked() {
        assert!(check_device_name("backup-phone_2.0").is_ok());
        for bad in ["", "a b", "a/b", &"x".repeat(33)] {
            assert!(check_device_name(bad).is_err());
        }
    }
}
