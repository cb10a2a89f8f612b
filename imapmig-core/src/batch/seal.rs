//! Secrets at rest: account passwords, tokens and the task's admin password, encrypted in the
//! batch store with a key the admin provides.
//!
//! The key is any non-empty text the admin keeps outside the store (the CLI reads it from
//! `$IMAPMIG_STATE_KEY` or `--state-key-file`; `head -c 32 /dev/urandom | base64` makes a good
//! one). Surrounding white space is dropped, and the 32-byte key is derived from the rest with
//! HKDF-SHA-256 (RFC 5869, info `imapmig batch store v1`). HKDF does not stretch a weak
//! passphrase: the text should be random.
//!
//! Each value is sealed with XChaCha20-Poly1305 under a fresh random 192-bit nonce, with the
//! column it belongs to as associated data (a sealed password cannot be passed off as an admin
//! password), and stored as text: `imapmig-sealed:v1:` and the base64 of nonce, ciphertext and
//! tag. Anything without that prefix is a value written without a key, read as it is.
//!
//! Nothing here does I/O or keeps a secret in a type that prints it.

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::secret::Secret;

/// The prefix of a sealed value (and its format's version).
pub const SEALED_PREFIX: &str = "imapmig-sealed:v1:";

/// What HKDF binds the derived key to.
const KDF_INFO: &[u8] = b"imapmig batch store v1";

/// Nonce length of XChaCha20-Poly1305.
const NONCE_LEN: usize = 24;

/// The key that seals the store's secrets. It never prints itself.
#[derive(Clone)]
pub struct StateKey {
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

/// Why a text is not a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Nothing but white space was given.
    #[error("the state key is empty: make one with `head -c 32 /dev/urandom | base64`")]
    Empty,
}

impl StateKey {
    /// The key for the admin's text (see the module documentation).
    pub fn from_text(text: &str) -> Result<StateKey, KeyError> {
        let material = text.trim();
        if material.is_empty() {
            return Err(KeyError::Empty);
        }
        let mut key = Zeroizing::new([0u8; 32]);
        hkdf::Hkdf::<sha2::Sha256>::new(None, material.as_bytes())
            .expand(KDF_INFO, key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA-256 output length");
        Ok(StateKey { key })
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.key.as_ref().into())
    }

    /// Seals `secret` for the column `what`.
    pub(crate) fn seal(&self, what: &str, secret: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.as_bytes(),
                    aad: what.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 seals any message of a password's size");
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        format!(
            "{SEALED_PREFIX}{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
        )
    }

    /// Opens a value sealed for the column `what`; `None` when it was not sealed with this key
    /// for this column (or is damaged).
    pub(crate) fn open(&self, what: &str, stored: &str) -> Option<Secret> {
        let body = stored.strip_prefix(SEALED_PREFIX)?;
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(body)
            .ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = Zeroizing::new(
            self.cipher()
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: what.as_bytes(),
                    },
                )
                .ok()?,
        );
        String::from_utf8(plain.to_vec()).ok().map(Secret::new)
    }
}

/// Whether a stored value is sealed.
pub(crate) fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_their_key_and_column_only() {
        let key = StateKey::from_text("  k1\n").unwrap();
        let sealed = key.seal("account.password", "hunter2");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("hunter2"));
        assert_eq!(
            key.open("account.password", &sealed).unwrap().expose(),
            "hunter2"
        );
        // Surrounding white space is not part of the key.
        let same = StateKey::from_text("k1").unwrap();
        assert!(same.open("account.password", &sealed).is_some());
        assert!(StateKey::from_text("k2")
            .unwrap()
            .open("account.password", &sealed)
            .is_none());
        assert!(key.open("task.source_secret", &sealed).is_none());
        // A fresh nonce every time.
        assert_ne!(sealed, key.seal("account.password", "hunter2"));
        // Damaged values do not open (nor panic).
        for bad in [
            SEALED_PREFIX.to_string(),
            format!("{SEALED_PREFIX}!!"),
            format!("{}x", &sealed[..sealed.len() - 1]),
        ] {
            assert!(key.open("account.password", &bad).is_none(), "{bad}");
        }
        assert_eq!(StateKey::from_text(" \n").unwrap_err(), KeyError::Empty);
        assert_eq!(format!("{key:?}"), "StateKey(..)");
    }
}
