//! The `otpauth://totp/...` key URI that phone apps scan.
//!
//! Always carries algorithm, digits and period (google-authenticator-libpam
//! omits the period, which breaks apps when it is not 30).

use crate::otp::TotpParams;
use crate::otp::secret::Secret;
use zeroize::Zeroizing;

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `otpauth://totp/ISSUER:ACCOUNT?secret=…&issuer=…&algorithm=…&digits=…&period=…`
pub fn totp_uri(
    issuer: &str,
    account: &str,
    secret: &Secret,
    params: &TotpParams,
) -> Zeroizing<String> {
    let issuer_enc = percent_encode(issuer);
    Zeroizing::new(format!(
        "otpauth://totp/{issuer_enc}:{}?secret={}&issuer={issuer_enc}&algorithm={}&digits={}&period={}",
        percent_encode(account),
        secret.to_base32().as_str(),
        params.algorithm(),
        params.digits(),
        params.period()
    ))
}

/// The secret in groups of four for typing into an app by hand.
pub fn grouped(secret: &Secret) -> Zeroizing<String> {
    let b32 = secret.to_base32();
    let mut out = Zeroizing::new(String::with_capacity(b32.len() * 5 / 4));
    for (i, c) in b32.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_has_every_parameter_and_encodes_names() {
        let s = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        let uri = totp_uri("Acme Hosting", "alice@web01", &s, &TotpParams::DEFAULT);
        assert_eq!(
            uri.as_str(),
            "otpauth://totp/Acme%20Hosting:alice%40web01?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Hosting&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn grouping_is_by_four() {
        let s = Secret::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(
            grouped(&s).as_str(),
            "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ"
        );
    }
}
