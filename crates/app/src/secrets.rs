//! Sealing merchants' gateway secrets with the operator's key (`TENURE_SECRETS_KEY`),
//! so a copy of the database (a dump, a backup, a replica) gives away no Stripe key.
//!
//! XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`): a random 192-bit nonce per seal
//! (safe to draw at random, unlike AES-GCM's 96 bits), and the merchant's id and the
//! field's name as associated data, so a sealed value copied to another merchant's row
//! or another column does not open. A sealed value is
//! `version (1) | key id (8) | nonce (24) | ciphertext + tag`; the key id (the first 8
//! bytes of the key's SHA-256) says which key opens it, so keys can be rotated: the new
//! key becomes `TENURE_SECRETS_KEY`, the old ones stay in `TENURE_SECRETS_OLD_KEYS` until
//! `tenure secrets reseal` has sealed everything again under the new one.

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    #[error("a secrets key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("the sealed value was made with a key that is not configured")]
    UnknownKey,
    #[error("the sealed value is damaged or belongs elsewhere")]
    Damaged,
}

struct Key {
    id: [u8; KEY_ID_LEN],
    cipher: XChaCha20Poly1305,
}

impl Key {
    fn from_base64(text: &str) -> Result<Self, SecretsError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| SecretsError::BadKey)?;
        if bytes.len() != 32 {
            return Err(SecretsError::BadKey);
        }
        let digest = Sha256::digest(&bytes);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| SecretsError::BadKey)?;
        Ok(Self { id, cipher })
    }
}

/// The operator's current key and the previous ones still accepted for opening.
pub struct Keyring {
    current: Key,
    previous: Vec<Key>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("previous_keys", &self.previous.len())
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// The current key and the previous ones, each 32 bytes in standard base64.
    pub fn new(current: &str, previous: &[&str]) -> Result<Self, SecretsError> {
        Ok(Self {
            current: Key::from_base64(current)?,
            previous: previous
                .iter()
                .filter(|k| !k.trim().is_empty())
                .map(|k| Key::from_base64(k))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Seals `plain`, bound to `context` (the merchant and the field).
    pub fn seal(&self, context: &str, plain: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let ciphertext = self
            .current
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            // Encryption fails only for messages beyond 256 GiB.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(HEADER_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Opens a sealed value made for `context` with any configured key.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<String, SecretsError> {
        if sealed.len() < HEADER_LEN || sealed[0] != VERSION {
            return Err(SecretsError::Damaged);
        }
        let id = &sealed[1..=KEY_ID_LEN];
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or(SecretsError::UnknownKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1 + KEY_ID_LEN..HEADER_LEN]);
        let plain = key
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &sealed[HEADER_LEN..],
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretsError::Damaged)?;
        String::from_utf8(plain).map_err(|_| SecretsError::Damaged)
    }

    /// Whether `sealed` was made with an older key (and should be sealed again).
    pub fn is_stale(&self, sealed: &[u8]) -> bool {
        sealed.get(1..=KEY_ID_LEN) != Some(&self.current.id[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        base64::engine::general_purpose::STANDARD.encode([byte; 32])
    }

    #[test]
    fn seals_open_only_in_their_context_and_with_a_known_key() {
        let ring = Keyring::new(&key(1), &[]).unwrap();
        let sealed = ring.seal("mer_a:secret_key", "sk_test_123");
        assert!(!sealed.windows(11).any(|w| w == b"sk_test_123"));
        assert_eq!(
            ring.open("mer_a:secret_key", &sealed).unwrap(),
            "sk_test_123"
        );
        assert_ne!(ring.seal("mer_a:secret_key", "sk_test_123"), sealed);
        assert_eq!(
            ring.open("mer_b:secret_key", &sealed),
            Err(SecretsError::Damaged)
        );
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(
            ring.open("mer_a:secret_key", &flipped),
            Err(SecretsError::Damaged)
        );
        let other = Keyring::new(&key(2), &[]).unwrap();
        assert_eq!(
            other.open("mer_a:secret_key", &sealed),
            Err(SecretsError::UnknownKey)
        );
        assert_eq!(ring.open("x", b"short"), Err(SecretsError::Damaged));
    }

    #[test]
    fn a_rotated_ring_opens_old_seals_and_marks_them_stale() {
        let old = Keyring::new(&key(1), &[]).unwrap();
        let sealed = old.seal("c", "whsec_abc");
        let rotated = Keyring::new(&key(2), &[&key(1)]).unwrap();
        assert_eq!(rotated.open("c", &sealed).unwrap(), "whsec_abc");
        assert!(rotated.is_stale(&sealed));
        assert!(!rotated.is_stale(&rotated.seal("c", "whsec_abc")));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert_eq!(
            Keyring::new("c2hvcnQ=", &[]).unwrap_err(),
            SecretsError::BadKey
        );
        assert_eq!(
            Keyring::new("not base64!", &[]).unwrap_err(),
            SecretsError::BadKey
        );
        assert!(Keyring::new(&key(1), &["bad"]).is_err());
    }
}
