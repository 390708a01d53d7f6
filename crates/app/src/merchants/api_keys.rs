//! Merchant secret keys: `sk_test_` and 40 random alphanumerics (about 238 bits). Only a
//! SHA-256 hash is stored; the key is shown once, at creation.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

pub const SECRET_KEY_PREFIX: &str = "sk_test_";
const RANDOM_CHARS: usize = 40;

/// A freshly generated key with what is stored about it.
pub struct GeneratedKey {
    pub secret: String,
    pub hash: Vec<u8>,
    /// The first characters, kept to help a merchant recognise a key in a list.
    pub display_prefix: String,
}

pub fn generate() -> GeneratedKey {
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(RANDOM_CHARS)
        .map(char::from)
        .collect();
    let secret = format!("{SECRET_KEY_PREFIX}{random}");
    GeneratedKey {
        hash: hash(&secret),
        display_prefix: secret[..SECRET_KEY_PREFIX.len() + 4].to_owned(),
        secret,
    }
}

pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Whether a bearer credential is shaped like a secret key (as opposed to a JWT).
pub fn looks_like_secret_key(credential: &str) -> bool {
    credential.starts_with("sk_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_hash_stably() {
        let a = generate();
        let b = generate();
        assert_ne!(a.secret, b.secret);
        assert!(a.secret.starts_with(SECRET_KEY_PREFIX));
        assert_eq!(a.secret.len(), SECRET_KEY_PREFIX.len() + RANDOM_CHARS);
        assert_eq!(hash(&a.secret), a.hash);
        assert!(looks_like_secret_key(&a.secret));
    }
}
