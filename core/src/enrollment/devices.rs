//! Several authenticators per user: adding, removing and confirming devices.

use crate::enrollment::{Device, DeviceKind, DeviceNameError, Enrollment, check_device_name};
use crate::otp::secret::Secret;
use crate::otp::{self, Algorithm};

/// Most devices one enrollment may hold.
pub const MAX_DEVICES: usize = 10;

/// Why a device could not be added or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceError {
    Name(DeviceNameError),
    Taken(String),
    Counter(u64),
    SameSecret { existing: String },
    TooMany,
    NotFound { name: String, names: Vec<String> },
    LastTotp(String),
}

impl std::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Name(e) => e.fmt(f),
            Self::Taken(name) => write!(
                f,
                "a device named \"{name}\" already exists; pick another name or remove it first"
            ),
            Self::Counter(c) => write!(
                f,
                "counter {c} is beyond {}; check --counter",
                crate::enrollment::MAX_HOTP_COUNTER
            ),
            Self::SameSecret { existing } => write!(
                f,
                "device \"{existing}\" already has this secret; one secret gives one device (a code must never count twice)"
            ),
            Self::TooMany => write!(
                f,
                "at most {MAX_DEVICES} devices per user; remove one first"
            ),
            Self::NotFound { name, names } => write!(
                f,
                "no device named \"{name}\"; devices: {}",
                names.join(", ")
            ),
            Self::LastTotp(name) => write!(
                f,
                "\"{name}\" is the only time-based device; use `otpgate disable` to remove the whole enrollment, or add another app first"
            ),
        }
    }
}

impl std::error::Error for DeviceError {}

/// Checks the name of a device to be added: valid, and not taken. (The CLI
/// asks this before showing a secret, and [`add`] again.)
pub fn check_new_name(enrollment: &Enrollment, name: &str) -> Result<(), DeviceError> {
    check_device_name(name).map_err(DeviceError::Name)?;
    if enrollment.devices.iter().any(|d| d.name == name) {
        return Err(DeviceError::Taken(name.to_string()));
    }
    Ok(())
}

/// Adds a device, refusing invalid or duplicate names, a secret another
/// device has, and more than [`MAX_DEVICES`].
pub fn add(enrollment: &mut Enrollment, device: Device) -> Result<(), DeviceError> {
    check_new_name(enrollment, &device.name)?;
    if let DeviceKind::Hotp { initial, .. } = device.kind
        && initial > crate::enrollment::MAX_HOTP_COUNTER
    {
        return Err(DeviceError::Counter(initial));
    }
    if let Some(same) = enrollment
        .devices
        .iter()
        .find(|d| d.secret == device.secret)
    {
        return Err(DeviceError::SameSecret {
            existing: same.name.clone(),
        });
    }
    if enrollment.devices.len() >= MAX_DEVICES {
        return Err(DeviceError::TooMany);
    }
    enrollment.devices.push(device);
    Ok(())
}

/// Removes a device. Removing the primary device promotes the next
/// time-based one (the file's top level must be a TOTP device); the last
/// TOTP device cannot be removed (use `otpgate disable`).
pub fn remove(enrollment: &mut Enrollment, name: &str) -> Result<(), DeviceError> {
    let idx = enrollment
        .devices
        .iter()
        .position(|d| d.name == name)
        .ok_or_else(|| DeviceError::NotFound {
            name: name.to_string(),
            names: enrollment.devices.iter().map(|d| d.name.clone()).collect(),
        })?;
    if idx == 0 {
        let next = enrollment
            .devices
            .iter()
            .skip(1)
            .position(|d| matches!(d.kind, DeviceKind::Totp(_)))
            .ok_or_else(|| DeviceError::LastTotp(name.to_string()))?;
        let promoted = enrollment.devices.remove(next + 1);
        enrollment.devices[0] = promoted;
    } else {
        enrollment.devices.remove(idx);
    }
    Ok(())
}

/// Finds the counter of an HOTP code within `lookahead` presses of `start`
/// (used to confirm a new token and set its counter).
pub fn hotp_counter(
    secret: &Secret,
    algorithm: Algorithm,
    digits: u8,
    start: u64,
    lookahead: u32,
    code: &str,
) -> Option<u64> {
    let code: String = code.chars().filter(char::is_ascii_digit).collect();
    let hotp = otp::Hotp::new(secret, algorithm, digits)?;
    (start..=start.saturating_add(u64::from(lookahead)))
        .find(|c| otp::codes_equal(&code, &hotp.code(*c)))
}

/// Why a new device could not be set up or confirmed.
#[derive(Debug)]
pub enum SetupError {
    /// What was given does not describe a usable device, or the touch or
    /// code typed back does not confirm it; the message says what to do.
    Invalid(String),
    /// The key given is not a usable secret.
    Key(crate::otp::secret::SecretError),
    /// No confirmation code could be made.
    Random(crate::otp::OtpError),
    /// The confirmation code could not be sent.
    Send(crate::sys::send::SendError),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(why) => f.write_str(why),
            Self::Key(e) => e.fmt(f),
            Self::Random(e) => e.fmt(f),
            Self::Send(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Invalid(_) => None,
            Self::Key(e) => Some(e),
            Self::Random(e) => Some(e),
            Self::Send(e) => Some(e),
        }
    }
}

impl From<&str> for SetupError {
    fn from(why: &str) -> Self {
        Self::Invalid(why.to_string())
    }
}

/// A YubiKey slot as `otpgate device add --yubico-otp` is given it: the
/// public id (modhex), the private id and the AES key (hex). Each refusal
/// says what to pass instead.
pub fn yubico_kind(
    public_id: &str,
    private_id: &str,
    aes_key_hex: &str,
    counter: u32,
) -> Result<(DeviceKind, Secret), SetupError> {
    let public = crate::otp::yubico::modhex_decode(public_id.trim())
        .and_then(|b| <[u8; 6]>::try_from(b).ok())
        .ok_or("--public-id: give the key's 12-character public id in modhex (the first 12 characters it types, letters cbdefghijklnrtuv)")?;
    let private = super::decode_hex(private_id.trim())
        .and_then(|b| <[u8; 6]>::try_from(b).ok())
        .ok_or("--private-id: give the slot's private id as 12 hexadecimal digits (as `ykman otp yubiotp` printed it)")?;
    let key = zeroize::Zeroizing::new(
        super::decode_hex(aes_key_hex.trim())
            .filter(|k| k.len() == 16)
            .ok_or("the AES key must be 32 hexadecimal digits on standard input (as `ykman otp yubiotp --generate-key` printed it)")?,
    );
    if counter >= 1 << 15 {
        return Err("--counter: a YubiKey's usage counter is below 32768".into());
    }
    let secret = Secret::from_bytes(key.to_vec()).map_err(SetupError::Key)?;
    // OTPs before usage counter `counter` (session 0) are refused.
    let initial = (counter << 8).saturating_sub(1);
    Ok((
        DeviceKind::YubicoOtp {
            public_id: public,
            private_id: private,
            initial,
        },
        secret,
    ))
}

/// Sends a confirmation code for a new e-mail or SMS device; the code (to
/// be typed back). The message says what it is for.
pub fn send_confirmation(
    config: &crate::config::Config,
    sender: &dyn crate::sender::Sender,
    random: &dyn crate::sys::random::Random,
    kind: DeviceKind,
) -> Result<zeroize::Zeroizing<String>, SetupError> {
    let code = crate::otp::sent::new_code(random).map_err(SetupError::Random)?;
    let body = format!(
        "Your otpgate confirmation code is {}.\nType it where `otpgate device add` asks for it. If you did not add this address or number, ignore this message.\n",
        code.as_str()
    );
    match kind {
        DeviceKind::Email(to) => sender.email(
            &config.mail_command,
            &to,
            &format!(
                "To: {}\nSubject: otpgate confirmation code\nContent-Type: text/plain; charset=UTF-8\n\n{body}",
                to.as_str()
            ),
        )
        .map_err(SetupError::Send)?,
        DeviceKind::Sms(to) => {
            sender.sms(&config.sms_command, &to, &body).map_err(SetupError::Send)?
        }
        _ => return Err("codes are only sent to e-mail and SMS devices".into()),
    }
    Ok(code)
}

/// Checks a touch typed to confirm a new YubiKey; the device with its
/// starting counter set past that touch (so it cannot be used again).
pub fn confirm_yubico(
    kind: DeviceKind,
    secret: &Secret,
    otp: &str,
) -> Result<DeviceKind, SetupError> {
    use crate::otp::yubico;
    let DeviceKind::YubicoOtp {
        public_id,
        private_id,
        initial,
    } = kind
    else {
        return Err("not a YubiKey".into());
    };
    let otp = otp.trim().to_ascii_lowercase();
    if yubico::public_id(&otp) != Some(yubico::modhex_encode(&public_id)) {
        return Err("that is not an OTP of a key with this public id; check --public-id, then touch the key again".into());
    }
    let key = <[u8; 16]>::try_from(secret.as_bytes())
        .map(zeroize::Zeroizing::new)
        .map_err(|_| SetupError::from("the AES key is not 16 bytes"))?;
    let touch = yubico::open(&otp, &key, &private_id)
        .map_err(|e| SetupError::Invalid(format!("{e}; check the AES key and --private-id")))?;
    if touch.order() <= initial {
        return Err("that OTP is older than --counter allows; touch the key again".into());
    }
    Ok(DeviceKind::YubicoOtp {
        public_id,
        private_id,
        initial: touch.order(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otp::TotpParams;

    fn enrollment() -> Enrollment {
        Enrollment::new(
            Secret::from_bytes(vec![1; 20]).unwrap(),
            TotpParams::DEFAULT,
            1,
            &crate::sys::random::test::COUNTER,
        )
        .unwrap()
    }

    /// A device with a secret of its own (derived from its name).
    fn device(name: &str, kind: DeviceKind) -> Device {
        let mut bytes = vec![2u8; 20];
        for (i, b) in name.bytes().enumerate() {
            bytes[i % 20] ^= b;
        }
        Device {
            name: name.into(),
            secret: Secret::from_bytes(bytes).unwrap(),
            kind,
            created: 1,
        }
    }

    #[test]
    fn add_checks_names_and_limits() {
        let mut e = enrollment();
        add(
            &mut e,
            device("backup", DeviceKind::Totp(TotpParams::DEFAULT)),
        )
        .unwrap();
        assert!(
            add(
                &mut e,
                device("backup", DeviceKind::Totp(TotpParams::DEFAULT))
            )
            .is_err()
        );
        assert!(
            add(
                &mut e,
                device("bad name", DeviceKind::Totp(TotpParams::DEFAULT))
            )
            .is_err()
        );
        for i in 0..8 {
            add(
                &mut e,
                device(&format!("d{i}"), DeviceKind::Totp(TotpParams::DEFAULT)),
            )
            .unwrap();
        }
        assert!(
            add(
                &mut e,
                device("one-too-many", DeviceKind::Totp(TotpParams::DEFAULT))
            )
            .is_err()
        );
    }

    #[test]
    fn a_second_device_with_the_same_secret_is_refused() {
        let mut e = enrollment();
        let mut copy = device("copy", DeviceKind::Totp(TotpParams::DEFAULT));
        copy.secret = e.devices[0].secret.clone();
        let err = add(&mut e, copy.clone()).unwrap_err();
        assert!(err.to_string().contains("already has this secret"), "{err}");
        // Written by hand into the file, it is refused when read.
        e.devices.push(copy);
        assert!(e.to_toml().is_err());
        e.devices.pop();
        let mut text = e.to_toml().unwrap().to_string();
        text.push_str(&format!(
            "[[devices]]\nname = \"copy\"\ntype = \"hotp\"\nsecret = \"{}\"\nalgorithm = \"SHA1\"\ndigits = 6\ncounter = 0\ncreated = 1\n",
            e.devices[0].secret.to_base32().as_str()
        ));
        let err = Enrollment::parse(text.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("same secret"), "{err}");
    }

    #[test]
    fn removing_the_primary_promotes_a_totp_device() {
        let mut e = enrollment();
        let hotp = DeviceKind::Hotp {
            algorithm: Algorithm::SHA1,
            digits: 6,
            initial: 0,
        };
        add(&mut e, device("yubikey", hotp)).unwrap();
        assert!(
            remove(&mut e, "default")
                .unwrap_err()
                .to_string()
                .contains("only time-based")
        );
        add(
            &mut e,
            device("backup", DeviceKind::Totp(TotpParams::DEFAULT)),
        )
        .unwrap();
        remove(&mut e, "default").unwrap();
        assert_eq!(e.devices[0].name, "backup");
        assert_eq!(e.devices.len(), 2);
        let text = e.to_toml().unwrap();
        let back = Enrollment::parse(text.as_bytes()).unwrap();
        assert_eq!(back.devices[0].name, "backup");
        assert!(
            remove(&mut e, "nope")
                .unwrap_err()
                .to_string()
                .contains("backup, yubikey")
        );
    }

    #[test]
    fn hotp_confirmation_finds_the_counter() {
        let s = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        assert_eq!(
            hotp_counter(&s, Algorithm::SHA1, 6, 0, 10, "969429"),
            Some(3)
        );
        assert_eq!(hotp_counter(&s, Algorithm::SHA1, 6, 4, 10, "969429"), None);
        assert_eq!(hotp_counter(&s, Algorithm::SHA1, 6, 0, 2, "969429"), None);
    }
}
