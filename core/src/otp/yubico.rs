//! Yubico OTP, validated offline (as yubikey-val does) with the AES key the
//! administrator programmed into the key's slot.
//!
//! A touch types 44 modhex characters: the 12-character public id (6
//! bytes) and a 16-byte AES-128 block. Decrypted, the block is the private
//! id (6 bytes), the usage counter (2 bytes, little-endian; the top bit is
//! a flag, not counter), a timestamp (3 bytes), the session counter (1
//! byte), 2 random bytes and a CRC-16 (ISO 13239) whose check over all 16
//! bytes leaves the residue 0xf0b8.

use aes::Aes128;
use aes::cipher::{BlockDecrypt, KeyInit, generic_array::GenericArray};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The modhex alphabet: hex digits 0–f, as keys that are the same on most
/// keyboard layouts.
pub const MODHEX: &[u8; 16] = b"cbdefghijklnrtuv";
/// Characters one touch types.
pub const OTP_LEN: usize = 44;
/// Characters of the public id.
pub const PUBLIC_ID_LEN: usize = 12;
/// The CRC residue of a block with a valid checksum.
const CRC_RESIDUE: u16 = 0xf0b8;

/// Decodes modhex to bytes (`None`: odd length or a character outside the alphabet).
pub fn modhex_decode(text: &str) -> Option<Vec<u8>> {
    let digits: Option<Vec<u8>> = text
        .bytes()
        .map(|b| {
            MODHEX
                .iter()
                .position(|m| *m == b.to_ascii_lowercase())
                .and_then(|p| u8::try_from(p).ok())
        })
        .collect();
    let digits = digits?;
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    Some(digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}

/// Encodes bytes as modhex.
pub fn modhex_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|b| [MODHEX[usize::from(b >> 4)], MODHEX[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

/// CRC-16/ISO 13239 (X.25 without the final inversion), as the key computes it.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xffff;
    for byte in data {
        crc ^= u16::from(*byte);
        for _ in 0..8 {
            let carry = crc & 1 != 0;
            crc >>= 1;
            if carry {
                crc ^= 0x8408;
            }
        }
    }
    crc
}

/// Whether a reply is shaped like a Yubico OTP (44 modhex characters).
pub fn looks_like_otp(text: &str) -> bool {
    text.len() == OTP_LEN && modhex_decode(text).is_some()
}

/// The public id (modhex, lower case) an OTP starts with.
pub fn public_id(otp: &str) -> Option<String> {
    looks_like_otp(otp).then(|| otp[..PUBLIC_ID_LEN].to_ascii_lowercase())
}

/// What one touch proved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Touch {
    /// Times the key was plugged in (the flag bit removed).
    pub usage: u16,
    /// Touches since it was plugged in.
    pub session: u8,
}

impl Touch {
    /// The pair as one number that only grows: usage, then session.
    pub fn order(self) -> u32 {
        (u32::from(self.usage) << 8) | u32::from(self.session)
    }
}

/// Why an OTP was refused. Safe to log (never the OTP or the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpFault {
    /// Not 44 modhex characters.
    Shape,
    /// The block did not decrypt to a valid CRC (another key, or garbage).
    Crc,
    /// The private id inside is not this device's.
    PrivateId,
}

impl std::fmt::Display for OtpFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Shape => "not a Yubico OTP (44 modhex characters)",
            Self::Crc => "the Yubico OTP does not decrypt with this key (bad CRC)",
            Self::PrivateId => "the Yubico OTP's private id does not match the device",
        })
    }
}

/// Decrypts `otp` with `key` and checks its CRC and private id; the
/// counters it carries. The caller checks the public id (routing) and that
/// the counters moved forward.
pub fn open(otp: &str, key: &[u8; 16], private_id: &[u8; 6]) -> Result<Touch, OtpFault> {
    if !looks_like_otp(otp) {
        return Err(OtpFault::Shape);
    }
    let block = modhex_decode(&otp[PUBLIC_ID_LEN..]).ok_or(OtpFault::Shape)?;
    let mut plain = Zeroizing::new([0u8; 16]);
    plain.copy_from_slice(&block);
    let cipher = Aes128::new(GenericArray::from_slice(key));
    cipher.decrypt_block(GenericArray::from_mut_slice(&mut plain[..]));
    if crc16(&plain[..]) != CRC_RESIDUE {
        return Err(OtpFault::Crc);
    }
    if !bool::from(plain[..6].ct_eq(&private_id[..])) {
        return Err(OtpFault::PrivateId);
    }
    Ok(Touch {
        usage: u16::from_le_bytes([plain[6], plain[7]]) & 0x7fff,
        session: plain[11],
    })
}

/// Builds an OTP the way a key does, for core's unit tests (the end-to-end
/// tests use OTPs made by python3-yubiotp, an independent implementation).
#[cfg(test)]
pub(crate) fn make(
    key: &[u8; 16],
    public: &[u8; 6],
    private: &[u8; 6],
    usage: u16,
    session: u8,
) -> String {
    use aes::cipher::BlockEncrypt;
    let mut block = [0u8; 16];
    block[..6].copy_from_slice(private);
    block[6..8].copy_from_slice(&usage.to_le_bytes());
    block[8..11].copy_from_slice(&[1, 2, 3]);
    block[11] = session;
    block[12..14].copy_from_slice(&[9, 9]);
    let crc = !crc16(&block[..14]);
    block[14..].copy_from_slice(&crc.to_le_bytes());
    let cipher = Aes128::new(GenericArray::from_slice(key));
    cipher.encrypt_block(GenericArray::from_mut_slice(&mut block));
    format!("{}{}", modhex_encode(public), modhex_encode(&block))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modhex_is_hex_in_other_letters() {
        assert_eq!(
            modhex_encode(&[0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]),
            "cbdefghijklnrtuv"
        );
        assert_eq!(
            modhex_decode("CBDEFGHIJKLNRTUV").unwrap(),
            vec![0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef]
        );
        assert_eq!(modhex_decode("cbd"), None);
        assert_eq!(modhex_decode("cbda"), None, "a is not modhex");
    }

    #[test]
    fn crc_of_the_specs_example_and_the_residue() {
        // CRC-16/X-25's check value is 0x906e for "123456789" (with the final
        // inversion the key does not apply: !0x906e = 0x6f91).
        assert_eq!(!crc16(b"123456789"), 0x906e);
        let mut data = b"otpgate!".to_vec();
        let crc = !crc16(&data);
        data.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(crc16(&data), CRC_RESIDUE);
    }

    #[test]
    fn a_good_otp_opens_and_bad_ones_say_why() {
        let key = [7u8; 16];
        let public = [1, 2, 3, 4, 5, 6];
        let private = [0xa, 0xb, 0xc, 0xd, 0xe, 0xf];
        let otp = make(&key, &public, &private, 0x8005, 3);
        assert_eq!(otp.len(), OTP_LEN);
        assert_eq!(public_id(&otp).unwrap(), modhex_encode(&public));
        let t = open(&otp, &key, &private).unwrap();
        assert_eq!(
            t,
            Touch {
                usage: 5,
                session: 3
            },
            "the flag bit is not counter"
        );
        assert_eq!(open(&otp, &[8u8; 16], &private), Err(OtpFault::Crc));
        assert_eq!(open(&otp, &key, &[0; 6]), Err(OtpFault::PrivateId));
        assert_eq!(open(&otp[..43], &key, &private), Err(OtpFault::Shape));
        let mut flipped = otp.into_bytes();
        flipped[20] = if flipped[20] == b'c' { b'b' } else { b'c' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(open(&flipped, &key, &private), Err(OtpFault::Crc));
    }

    #[test]
    fn an_otp_made_by_another_implementation_opens() {
        // Made by Debian's python3-yubiotp (its YubiKey simulator) with this
        // AES key and private id, usage counter 513, session counter 7.
        let otp = "vvccccbhhlkritflnvguluflkbfdigdlkibvtvglkrtl";
        let key: [u8; 16] = crate::enrollment::decode_hex("0f1e2d3c4b5a69788796a5b4c3d2e1f0")
            .unwrap()
            .try_into()
            .unwrap();
        let private: [u8; 6] = crate::enrollment::decode_hex("5c2a8f10e3b4")
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(public_id(otp).unwrap(), "vvccccbhhlkr");
        assert_eq!(
            open(otp, &key, &private),
            Ok(Touch {
                usage: 513,
                session: 7
            })
        );
    }

    #[test]
    fn touches_order_by_usage_then_session() {
        let a = Touch {
            usage: 1,
            session: 200,
        };
        let b = Touch {
            usage: 2,
            session: 0,
        };
        assert!(b.order() > a.order());
        assert!(
            Touch {
                usage: 1,
                session: 201
            }
            .order()
                > a.order()
        );
    }
}
