//! The secret file's text: one strict parser and its writer (one parser
//! for reading and rewriting; oath-toolkit CVE-2013-7322 was two that
//! disagreed).

use super::{
    Device, DeviceKind, Enrollment, FORMAT_VERSION, FormatError, MAX_HOTP_COUNTER, PRIMARY_DEVICE,
    RecoverySet, check_device_name, decode_hex, encode_hex,
};
use crate::otp::secret::Secret;
use crate::otp::sent::Target;
use crate::otp::{Algorithm, TotpParams};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

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

/// A further device as the file holds it. `type` names the variant and
/// each variant takes exactly its own fields, so the parser itself refuses
/// a field of another kind (a `period` on an HOTP device, an `address` on a
/// TOTP one) and a missing one.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
enum RawDevice {
    Totp {
        name: String,
        secret: Zeroizing<String>,
        algorithm: Algorithm,
        digits: u8,
        period: u64,
        created: u64,
    },
    Hotp {
        name: String,
        secret: Zeroizing<String>,
        algorithm: Algorithm,
        digits: u8,
        /// The next counter expected.
        counter: u64,
        created: u64,
    },
    YubicoOtp {
        name: String,
        /// The slot's AES key.
        secret: Zeroizing<String>,
        /// The key's public id, modhex (12 characters).
        public_id: String,
        /// The slot's private id, hex (12 characters).
        private_id: String,
        /// OTPs up to this order (usage counter << 8 | session) are refused.
        #[serde(default)]
        counter: u64,
        created: u64,
    },
    Email {
        name: String,
        secret: Zeroizing<String>,
        /// Where codes are sent.
        address: String,
        created: u64,
    },
    Sms {
        name: String,
        secret: Zeroizing<String>,
        /// Where codes are sent (E.164).
        address: String,
        created: u64,
    },
}

impl RawDevice {
    /// What every kind has: name, secret, creation time.
    fn common(&self) -> (&str, &str, u64) {
        match self {
            Self::Totp {
                name,
                secret,
                created,
                ..
            }
            | Self::Hotp {
                name,
                secret,
                created,
                ..
            }
            | Self::YubicoOtp {
                name,
                secret,
                created,
                ..
            }
            | Self::Email {
                name,
                secret,
                created,
                ..
            }
            | Self::Sms {
                name,
                secret,
                created,
                ..
            } => (name, secret, *created),
        }
    }

    /// The file's form of `d`.
    fn of(d: &Device) -> Self {
        let (name, secret, created) = (d.name.clone(), d.secret.to_base32(), d.created);
        match &d.kind {
            DeviceKind::Totp(p) => Self::Totp {
                name,
                secret,
                algorithm: p.algorithm(),
                digits: p.digits(),
                period: p.period(),
                created,
            },
            DeviceKind::Hotp {
                algorithm,
                digits,
                initial,
            } => Self::Hotp {
                name,
                secret,
                algorithm: *algorithm,
                digits: *digits,
                counter: *initial,
                created,
            },
            DeviceKind::YubicoOtp {
                public_id,
                private_id,
                initial,
            } => Self::YubicoOtp {
                name,
                secret,
                public_id: crate::otp::yubico::modhex_encode(public_id),
                private_id: encode_hex(private_id),
                counter: u64::from(*initial),
                created,
            },
            DeviceKind::Email(to) => Self::Email {
                name,
                secret,
                address: to.as_str().to_string(),
                created,
            },
            DeviceKind::Sms(to) => Self::Sms {
                name,
                secret,
                address: to.as_str().to_string(),
                created,
            },
        }
    }
}

#[derive(Deserialize)]
struct VersionProbe {
    version: Option<toml::Value>,
}

pub(super) fn check_enrollment_id(id: &str) -> Result<(), FormatError> {
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
        let raw: RawFile = match crate::toml_comments::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                Self::check_version(text)?;
                return Err(toml_error(&e, text));
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
        let (name, secret, created) = d.common();
        check_device_name(name).map_err(FormatError::DeviceName)?;
        let what = format!("device \"{name}\"");
        let otp = |error| FormatError::Otp {
            what: what.clone(),
            error,
        };
        let shape = |why: String| FormatError::DeviceShape {
            device: name.to_string(),
            why,
        };
        let kind = match &d {
            RawDevice::Totp {
                algorithm,
                digits,
                period,
                ..
            } => DeviceKind::Totp(TotpParams::new(*algorithm, *digits, *period).map_err(otp)?),
            RawDevice::Hotp { counter, .. } if *counter > MAX_HOTP_COUNTER => {
                return Err(FormatError::Counter {
                    device: name.to_string(),
                    counter: *counter,
                });
            }
            RawDevice::Hotp {
                algorithm,
                digits,
                counter,
                ..
            } => {
                TotpParams::new(*algorithm, *digits, 30).map_err(otp)?;
                DeviceKind::Hotp {
                    algorithm: *algorithm,
                    digits: *digits,
                    initial: *counter,
                }
            }
            RawDevice::YubicoOtp {
                public_id,
                private_id,
                counter,
                ..
            } => {
                let public = crate::otp::yubico::modhex_decode(public_id)
                    .and_then(|b| <[u8; 6]>::try_from(b).ok())
                    .ok_or_else(|| {
                        shape("`public_id` must be 12 modhex characters (cbdefghijklnrtuv)".into())
                    })?;
                let private = decode_hex(private_id)
                    .and_then(|b| <[u8; 6]>::try_from(b).ok())
                    .ok_or_else(|| shape("`private_id` must be 12 hexadecimal digits".into()))?;
                let initial = u32::try_from(*counter)
                    .ok()
                    .filter(|c| *c < 1 << 23)
                    .ok_or_else(|| shape("`counter` is beyond what a YubiKey counts".into()))?;
                DeviceKind::YubicoOtp {
                    public_id: public,
                    private_id: private,
                    initial,
                }
            }
            RawDevice::Email { address, .. } => {
                DeviceKind::Email(Target::email(address).map_err(|e| shape(e.0))?)
            }
            RawDevice::Sms { address, .. } => {
                DeviceKind::Sms(Target::phone(address).map_err(|e| shape(e.0))?)
            }
        };
        let secret = parse_secret(secret, &format!("{what} `secret`"))?;
        if matches!(kind, DeviceKind::YubicoOtp { .. }) && secret.len() != 16 {
            return Err(shape(
                "the AES key of a yubico-otp device is 16 bytes (32 hex digits when added)".into(),
            ));
        }
        Ok(Device {
            secret,
            name: name.to_string(),
            kind,
            created,
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
            devices: others.iter().map(RawDevice::of).collect(),
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

    const HEAD: &str = "version = 1\nenrollment_id = \"0123456789abcdef0123456789abcdef\"\n\
        created = 1\nsecret = \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\"\nalgorithm = \"SHA1\"\n\
        digits = 6\nperiod = 30\n[[devices]]\nname = \"d\"\ncreated = 1\n\
        secret = \"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\"\n";

    fn refusal(device: &str) -> String {
        Enrollment::parse(format!("{HEAD}{device}").as_bytes())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn each_kind_takes_exactly_its_fields() {
        let totp = "type = \"totp\"\nalgorithm = \"SHA1\"\ndigits = 6\nperiod = 30\n";
        let e = Enrollment::parse(format!("{HEAD}{totp}").as_bytes()).unwrap();
        assert!(matches!(e.devices[1].kind, DeviceKind::Totp(_)));
        let back = Enrollment::parse(e.to_toml().unwrap().as_bytes()).unwrap();
        assert_eq!(back.credentials_fingerprint(), e.credentials_fingerprint());
        // A field of another kind, a missing one, an unknown kind.
        let r = refusal(&format!("{totp}counter = 3\n"));
        assert!(r.contains("unknown field `counter`"), "{r}");
        let r = refusal("type = \"hotp\"\nalgorithm = \"SHA1\"\ndigits = 6\n");
        assert!(r.contains("missing field `counter`"), "{r}");
        let r = refusal("type = \"email\"\n");
        assert!(r.contains("missing field `address`"), "{r}");
        let r = refusal("type = \"email\"\naddress = \"a@example.com\"\nperiod = 30\n");
        assert!(r.contains("unknown field `period`"), "{r}");
        let r = refusal("type = \"sms\"\naddress = \"12345\"\n");
        assert!(r.contains("E.164"), "{r}");
        let r = refusal("type = \"frob\"\n");
        assert!(r.contains("unknown variant `frob`"), "{r}");
        assert!(r.contains("totp") && r.contains("yubico-otp"), "{r}");
    }
}
