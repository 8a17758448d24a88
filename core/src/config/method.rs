//! The ways through the second factor that `methods` may allow.

use serde::{Deserialize, Serialize};

/// A method as `methods` names it. A name outside this list is refused
/// when the config is read (a typo must not silently allow or forbid a
/// method), with the known names in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", try_from = "String")]
pub enum Method {
    Totp,
    Hotp,
    YubicoOtp,
    Recovery,
    Email,
    Sms,
}

impl Method {
    /// Every method, in the order the messages list them.
    pub const ALL: [Method; 6] = [
        Self::Totp,
        Self::Hotp,
        Self::YubicoOtp,
        Self::Recovery,
        Self::Email,
        Self::Sms,
    ];

    /// Allowed unless the config says otherwise: the codes that need no
    /// gateway (`email` and `sms` need `mail_command`/`sms_command`).
    pub const DEFAULT: [Method; 4] = [Self::Totp, Self::Hotp, Self::YubicoOtp, Self::Recovery];

    /// The name the config uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Hotp => "hotp",
            Self::YubicoOtp => "yubico-otp",
            Self::Recovery => "recovery",
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

message_error! {
    /// A name in `methods` that is not a method; the message lists the known ones.
    UnknownMethod
}

impl TryFrom<String> for Method {
    type Error = UnknownMethod;
    fn try_from(name: String) -> Result<Self, UnknownMethod> {
        name.parse()
    }
}

impl std::str::FromStr for Method {
    type Err = UnknownMethod;
    fn from_str(name: &str) -> Result<Self, UnknownMethod> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|m| m.as_str()).collect();
                UnknownMethod(format!(
                    "\"{name}\" is not a method; known: {}",
                    known.join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_a_typo_names_the_known_ones() {
        for m in Method::ALL {
            assert_eq!(m.as_str().parse::<Method>(), Ok(m));
            assert_eq!(toml::Value::try_from(m).unwrap().as_str(), Some(m.as_str()));
        }
        let e = "yubikey".parse::<Method>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"yubikey\" is not a method; known: totp, hotp, yubico-otp, recovery, email, sms"
        );
    }
}
