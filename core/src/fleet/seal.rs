//! Secrets at rest: every enrollment is stored sealed with XChaCha20-Poly1305
//! under `secret_key_file`, a key the database never sees. The associated
//! data binds the ciphertext to its account, its enrollment id, its counter
//! (which only grows: a row written back from before is recognised as
//! older) and whether it is a removal record, so a row copied onto another
//! account, replayed from the past or flipped between enrolled and removed
//! does not open: it is refused, never used.
//!
//! Login states are not secret but must not be forged: each state row
//! carries an HMAC-SHA256, under a key derived from `secret_key_file`, over
//! the account, the row's version and its text.

use crate::sys::random::Random;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

/// Length of the key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of a nonce in bytes (192 bits: random nonces never collide).
pub const NONCE_LEN: usize = 24;

/// The sealing key, and the state-MAC key derived from it. Cloned only to
/// hand it to a database task (the migration that seals rows).
#[derive(Clone)]
pub struct Key {
    aead: XChaCha20Poly1305,
    /// Keyed once with the derived key; cloned for each MAC.
    mac: hmac::Hmac<sha2::Sha256>,
}

/// What the associated data of a sealed enrollment row binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding<'a> {
    pub user: &'a str,
    /// The enrollment id (empty in a removal record).
    pub id: &'a str,
    /// The row's counter: only ever grows for one account.
    pub counter: u64,
    /// A removal record (`otpgate disable`/`reset`), not an enrollment.
    pub removed: bool,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

message_error! {
    /// Why `secret_key_file` (or another root-only file) cannot be used,
    /// and what to do.
    KeyError
}

message_error! {
    /// Why a row could not be sealed, or why a sealed row does not open
    /// (refused, never used).
    SealError
}

impl Key {
    /// The key from its base64 text.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| {
                    KeyError(
                        "is not base64; make one with `head -c 32 /dev/urandom | base64`".into(),
                    )
                })?,
        );
        if raw.len() != KEY_LEN {
            return Err(KeyError(format!(
                "holds {} bytes, not {KEY_LEN}; make one with `head -c 32 /dev/urandom | base64` and copy it to every host",
                raw.len()
            )));
        }
        let aead = XChaCha20Poly1305::new_from_slice(&raw)
            .map_err(|_| KeyError("is not a usable key".into()))?;
        // A separate key for state MACs, so one key never serves two
        // constructions.
        use hmac::{KeyInit as _, Mac as _};
        let mut derive = hmac::Hmac::<sha2::Sha256>::new_from_slice(&raw)
            .map_err(|_| KeyError("is not a usable key".into()))?;
        derive.update(b"otpgate/state-mac/v1");
        let derived = Zeroizing::new(derive.finalize().into_bytes().to_vec());
        let mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&derived)
            .map_err(|_| KeyError("is not a usable key".into()))?;
        Ok(Self { aead, mac })
    }

    fn seal_with(
        &self,
        random: &dyn Random,
        aad: &[u8],
        plain: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        random
            .fill(&mut nonce)
            .map_err(|_| SealError("the system's random source failed".into()))?;
        let sealed = self
            .aead
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| SealError("sealing failed".into()))?;
        Ok((nonce.to_vec(), sealed))
    }

    fn open_with(
        &self,
        aad: &[u8],
        nonce: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if nonce.len() != NONCE_LEN {
            return Err(SealError("the nonce has the wrong length".into()));
        }
        self.aead
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad })
            .map(Zeroizing::new)
            .map_err(|_| {
                SealError("it does not open with this host's secret_key_file (another key, a row moved from another account, or fields edited without the key)".into())
            })
    }

    /// Seals `plain` for `user`'s enrollment `id` in the format of schema
    /// version 1 (no counter). Only tests and the migration's tests use it.
    pub fn seal(
        &self,
        random: &dyn Random,
        user: &str,
        id: &str,
        plain: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), SealError> {
        self.seal_with(random, &associated(user, id), plain)
    }

    /// Opens a row sealed by schema version 1 (the migration to version 2
    /// opens each once, to seal it again with its counter).
    pub fn open(
        &self,
        user: &str,
        id: &str,
        nonce: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        self.open_with(&associated(user, id), nonce, sealed)
    }

    /// Seals an enrollment row (or, `removed`, a removal record with an
    /// empty `plain`): (nonce, ciphertext).
    pub fn seal_row(
        &self,
        random: &dyn Random,
        b: Binding<'_>,
        plain: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), SealError> {
        self.seal_with(random, &associated_row(b), plain)
    }

    /// Opens what [`Self::seal_row`] made for exactly the same binding.
    pub fn open_row(
        &self,
        b: Binding<'_>,
        nonce: &[u8],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        self.open_with(&associated_row(b), nonce, sealed)
    }

    /// The MAC of `user`'s login state `text` at `version`.
    pub fn state_mac(&self, user: &str, version: u64, text: &str) -> Vec<u8> {
        use hmac::Mac as _;
        self.state_hmac(user, version, text)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// Whether `mac` is the MAC of that state (constant time).
    pub fn state_mac_ok(&self, user: &str, version: u64, text: &str, mac: &[u8]) -> bool {
        use hmac::Mac as _;
        self.state_hmac(user, version, text)
            .verify_slice(mac)
            .is_ok()
    }

    fn state_hmac(&self, user: &str, version: u64, text: &str) -> hmac::Hmac<sha2::Sha256> {
        use hmac::Mac as _;
        let mut h = self.mac.clone();
        h.update(b"otpgate/state/v1\0");
        h.update(user.as_bytes());
        h.update(b"\0");
        h.update(&version.to_be_bytes());
        h.update(text.as_bytes());
        h
    }
}

fn associated_row(b: Binding<'_>) -> Vec<u8> {
    let mut aad = b"otpgate/enrollment/v2\0".to_vec();
    aad.extend_from_slice(b.user.as_bytes());
    aad.push(0);
    aad.extend_from_slice(b.id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&b.counter.to_be_bytes());
    aad.push(u8::from(b.removed));
    aad
}

fn associated(user: &str, id: &str) -> Vec<u8> {
    let mut aad = b"otpgate/enrollment/v1\0".to_vec();
    aad.extend_from_slice(user.as_bytes());
    aad.push(0);
    aad.extend_from_slice(id.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        Key::from_base64(&base64::engine::general_purpose::STANDARD.encode([byte; 32])).unwrap()
    }

    #[test]
    fn sealed_opens_only_for_its_account_and_enrollment() {
        let k = key(1);
        let (nonce, sealed) = k
            .seal(
                &crate::sys::random::test::COUNTER,
                "alice",
                "id1",
                b"JBSWY3DPEHPK3PXP",
            )
            .unwrap();
        assert!(!sealed.windows(16).any(|w| w == b"JBSWY3DPEHPK3PXP"));
        assert_eq!(
            k.open("alice", "id1", &nonce, &sealed).unwrap().as_slice(),
            b"JBSWY3DPEHPK3PXP"
        );
        assert!(
            k.open("bob", "id1", &nonce, &sealed).is_err(),
            "swapped onto bob"
        );
        assert!(
            k.open("alice", "id2", &nonce, &sealed).is_err(),
            "another enrollment"
        );
        assert!(
            key(2).open("alice", "id1", &nonce, &sealed).is_err(),
            "another key"
        );
        let mut flipped = sealed.clone();
        flipped[0] ^= 1;
        assert!(
            k.open("alice", "id1", &nonce, &flipped).is_err(),
            "tampered"
        );
    }

    #[test]
    fn keys_of_the_wrong_shape_are_refused_with_the_way_to_make_one() {
        for (text, want) in [("not base64!", "not base64"), ("AAAA", "holds 3 bytes")] {
            let e = Key::from_base64(text).unwrap_err();
            assert!(e.0.contains(want) && e.0.contains("/dev/urandom"), "{e}");
        }
    }
}
