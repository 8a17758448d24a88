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
pub mod gauth;

use crate::config::Method;
use crate::otp::secret::Secret;
use crate::otp::{Algorithm, TotpParams};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

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

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: u32,
    enrollment_id: String,
    created: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_name: Option<String>,
    secret: Zeroizing<String>,
    algorithm: Algorithm,
    digits: u8,
    period: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recovery: Option<RecoverySet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    devices: Vec<RawDevice>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    secret: Zeroizing<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    algorithm: Option<Algorithm>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digits: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    period: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    counter: Option<u64>,
    /// yubico-otp: the key's public id, modhex (12 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    public_id: Option<String>,
    /// yubico-otp: the slot's private id, hex (12 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    private_id: Option<String>,
    /// email, sms: where codes are sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    created: u64,
}

#[derive(Deserialize)]
struct VersionProbe {
    version: Option<toml::Value>,
}

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

fn check_enrollment_id(id: &str) -> Result<(), FormatError> {
    if (16..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(FormatError::EnrollmentId)
    }
}

fn parse_secret(text: &str, what: &str) -> Result<Secret, FormatError> {
    Secret::from_base32(text).map_err(|e| FormatError::Secret {
        what: what.to_string(),
        why: e.to_string(),
    })
}

impl Enrollment {
    /// Parses file bytes: UTF-8, known version, no unknown or duplicate keys,
    /// every value in range.
    pub fn parse(bytes: &[u8]) -> Result<Self, FormatError> {
        let text = std::str::from_utf8(bytes).map_err(|_| FormatError::NotUtf8)?;
        if text.trim().is_empty() {
            return Err(FormatError::Empty);
        }
        // One strict parse on the login path; the version probe only runs to
        // explain a failure (a newer format fails with unknown keys first).
        let text = crate::toml_comments::blank_comment_lines(text);
        let raw: RawFile = match toml::from_str(&text) {
            Ok(raw) => raw,
            Err(e) => {
                Self::check_version(&text)?;
                return Err(toml_error(&e, &text));
            }
        };
        if raw.version != FORMAT_VERSION {
            return Err(unsupported_version(i64::from(raw.version)));
        }
        check_enrollment_id(&raw.enrollment_id)?;
        let params = TotpParams::new(raw.algorithm, raw.digits, raw.period).map_err(|error| {
            FormatError::Otp {
                what: String::new(),
                error,
            }
        })?;
        let primary_name = raw
            .device_name
            .clone()
            .unwrap_or_else(|| PRIMARY_DEVICE.into());
        check_device_name(&primary_name).map_err(FormatError::DeviceName)?;
        let mut devices = vec![Device {
            name: primary_name,
            secret: parse_secret(&raw.secret, "`secret`")?,
            kind: DeviceKind::Totp(params),
            created: raw.created,
        }];
        for d in raw.devices {
            let device = Self::parse_device(d)?;
            if devices.iter().any(|e| e.name == device.name) {
                return Err(FormatError::DuplicateName(device.name));
            }
            devices.push(device);
        }
        if let Some(r) = &raw.recovery {
            crate::otp::recovery::check_set(r).map_err(|error| FormatError::Otp {
                what: String::new(),
                error,
            })?;
        }
        let enrollment = Self {
            id: raw.enrollment_id,
            created: raw.created,
            devices,
            recovery: raw.recovery,
        };
        enrollment.check_distinct_secrets()?;
        Ok(enrollment)
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

    fn check_version(text: &str) -> Result<(), FormatError> {
        let probe: VersionProbe = toml::from_str(text).map_err(|e| toml_error(&e, text))?;
        match probe.version {
            Some(toml::Value::Integer(v)) if v == i64::from(FORMAT_VERSION) => Ok(()),
            Some(toml::Value::Integer(v)) => Err(unsupported_version(v)),
            Some(_) => Err(FormatError::VersionNotInteger),
            None => Err(FormatError::VersionMissing),
        }
    }

    fn parse_device(d: RawDevice) -> Result<Device, FormatError> {
        check_device_name(&d.name).map_err(FormatError::DeviceName)?;
        let what = format!("device \"{}\"", d.name);
        let otp = |error| FormatError::Otp {
            what: what.clone(),
            error,
        };
        let shape = |why: String| FormatError::DeviceShape {
            device: d.name.clone(),
            why,
        };
        let digit_params = |what: &str| match (d.algorithm, d.digits, &d.public_id, &d.private_id) {
            (Some(a), Some(n), None, None) => Ok((a, n)),
            _ => Err(shape(format!(
                "a {what} device needs `algorithm` and `digits`, and no `public_id` or `private_id`"
            ))),
        };
        let kind = match (d.kind.as_str(), d.period, d.counter) {
            ("totp", Some(period), None) => {
                let (a, n) = digit_params("totp")?;
                DeviceKind::Totp(TotpParams::new(a, n, period).map_err(otp)?)
            }
            ("hotp", None, Some(counter)) if counter > MAX_HOTP_COUNTER => {
                return Err(FormatError::Counter {
                    device: d.name,
                    counter,
                });
            }
            ("hotp", None, Some(counter)) => {
                let (a, n) = digit_params("hotp")?;
                TotpParams::new(a, n, 30).map_err(otp)?;
                DeviceKind::Hotp {
                    algorithm: a,
                    digits: n,
                    initial: counter,
                }
            }
            ("totp", _, _) => {
                return Err(shape(
                    "a totp device needs `period` and no `counter`".into(),
                ));
            }
            ("hotp", _, _) => {
                return Err(shape(
                    "a hotp device needs `counter` and no `period`".into(),
                ));
            }
            ("yubico-otp", None, counter) => {
                if d.algorithm.is_some() || d.digits.is_some() {
                    return Err(shape(
                        "a yubico-otp device has no `algorithm` or `digits`".into(),
                    ));
                }
                let public = d
                    .public_id
                    .as_deref()
                    .and_then(crate::otp::yubico::modhex_decode)
                    .and_then(|b| <[u8; 6]>::try_from(b).ok())
                    .ok_or_else(|| {
                        shape("`public_id` must be 12 modhex characters (cbdefghijklnrtuv)".into())
                    })?;
                let private = d
                    .private_id
                    .as_deref()
                    .and_then(decode_hex)
                    .and_then(|b| <[u8; 6]>::try_from(b).ok())
                    .ok_or_else(|| shape("`private_id` must be 12 hexadecimal digits".into()))?;
                let initial = u32::try_from(counter.unwrap_or(0))
                    .ok()
                    .filter(|c| *c < 1 << 23)
                    .ok_or_else(|| shape("`counter` is beyond what a YubiKey counts".into()))?;
                DeviceKind::YubicoOtp {
                    public_id: public,
                    private_id: private,
                    initial,
                }
            }
            ("yubico-otp", _, _) => {
                return Err(shape("a yubico-otp device has no `period`".into()));
            }
            (kind @ ("email" | "sms"), None, None)
                if d.algorithm.is_none()
                    && d.digits.is_none()
                    && d.public_id.is_none()
                    && d.private_id.is_none() =>
            {
                let address = d.address.as_deref().unwrap_or_default();
                if kind == "email" {
                    DeviceKind::Email(
                        crate::otp::sent::Target::email(address).map_err(|e| shape(e.0))?,
                    )
                } else {
                    DeviceKind::Sms(
                        crate::otp::sent::Target::phone(address).map_err(|e| shape(e.0))?,
                    )
                }
            }
            (kind @ ("email" | "sms"), _, _) => {
                return Err(shape(format!(
                    "an {kind} device has only `address`, `secret` and `created`"
                )));
            }
            (other, _, _) => {
                return Err(shape(format!(
                    "type \"{other}\" is not \"totp\", \"hotp\", \"yubico-otp\", \"email\" or \"sms\""
                )));
            }
        };
        if let DeviceKind::YubicoOtp { .. } = kind {
            let secret = parse_secret(&d.secret, &format!("{what} `secret`"))?;
            if secret.len() != 16 {
                return Err(shape(
                    "the AES key of a yubico-otp device is 16 bytes (32 hex digits when added)"
                        .into(),
                ));
            }
            return Ok(Device {
                secret,
                name: d.name,
                kind,
                created: d.created,
            });
        }
        Ok(Device {
            secret: parse_secret(&d.secret, &format!("{what} `secret`"))?,
            name: d.name,
            kind,
            created: d.created,
        })
    }

    /// Serializes to the file format (the result holds secrets: it is wiped on drop).
    pub fn to_toml(&self) -> Result<Zeroizing<String>, FormatError> {
        self.check_distinct_secrets()?;
        let (primary, others) = self.devices.split_first().ok_or(FormatError::NoDevice)?;
        let DeviceKind::Totp(params) = primary.kind else {
            return Err(FormatError::PrimaryNotTotp);
        };
        let raw = RawFile {
            version: FORMAT_VERSION,
            enrollment_id: self.id.clone(),
            created: self.created,
            device_name: (primary.name != PRIMARY_DEVICE).then(|| primary.name.clone()),
            secret: primary.secret.to_base32(),
            algorithm: params.algorithm(),
            digits: params.digits(),
            period: params.period(),
            recovery: self.recovery.clone(),
            devices: others
                .iter()
                .map(|d| {
                    let mut raw = RawDevice {
                        name: d.name.clone(),
                        kind: d.kind.method().as_str().into(),
                        secret: d.secret.to_base32(),
                        algorithm: None,
                        digits: None,
                        period: None,
                        counter: None,
                        public_id: None,
                        private_id: None,
                        address: d.kind.target().map(|t| t.as_str().to_string()),
                        created: d.created,
                    };
                    match d.kind {
                        DeviceKind::Totp(p) => {
                            raw.algorithm = Some(p.algorithm());
                            raw.digits = Some(p.digits());
                            raw.period = Some(p.period());
                        }
                        DeviceKind::Hotp {
                            algorithm,
                            digits,
                            initial,
                        } => {
                            raw.algorithm = Some(algorithm);
                            raw.digits = Some(digits);
                            raw.counter = Some(initial);
                        }
                        DeviceKind::YubicoOtp {
                            public_id,
                            private_id,
                            initial,
                        } => {
                            raw.public_id = Some(crate::otp::yubico::modhex_encode(&public_id));
                            raw.private_id = Some(encode_hex(&private_id));
                            raw.counter = Some(u64::from(initial));
                        }
                        DeviceKind::Email(_) | DeviceKind::Sms(_) => {}
                    }
                    raw
                })
                .collect(),
        };
        let body = toml::to_string(&raw).map_err(|e| FormatError::Serialize(e.to_string()))?;
        let mut out = Zeroizing::new(String::with_capacity(body.len() + 200));
        out.push_str(
            "# otpgate secret file (format version 1). It holds your 2FA secret:\n\
             # keep it private (mode 0600). Manage it with `otpgate`, not by hand.\n",
        );
        out.push_str(&body);
        Ok(out)
    }

    /// A fresh random enrollment id (128 bits, hex).
    pub fn new_id() -> Result<String, FormatError> {
        let mut bytes = [0u8; 16];
        crate::sys::random::fill(&mut bytes).map_err(|_| FormatError::Randomness)?;
        Ok(crate::otp::secret::hex(&bytes))
    }

    /// A new enrollment with one TOTP device.
    pub fn new(secret: Secret, params: TotpParams, now: u64) -> Result<Self, FormatError> {
        Ok(Self {
            id: Self::new_id()?,
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

fn unsupported_version(v: i64) -> FormatError {
    FormatError::UnsupportedVersion(v)
}

/// The parser's message and the line it points at (`text` is what the
/// parser read: comment lines blanked, line numbers unchanged).
fn toml_error(e: &toml::de::Error, text: &str) -> FormatError {
    let mut msg = e.message().trim().replace('\n', " ");
    if let Some(span) = e.span() {
        let line = text
            .get(..span.start)
            .map_or(0, |before| before.matches('\n').count())
            + 1;
        msg = format!("{msg} (line {line})");
    }
    FormatError::Syntax(msg)
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
        let a = Enrollment::new_id().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, Enrollment::new_id().unwrap());
        assert!(check_enrollment_id(&a).is_ok());
    }

    #[test]
    fn device_names_are_checked() {
        assert!(check_device_name("backup-phone_2.0").is_ok());
        for bad in ["", "a b", "a/b", &"x".repeat(33)] {
            assert!(check_device_name(bad).is_err());
        }
    }
}
