//! The operator's credential (`TENURE_OPERATOR_TOKEN`): it creates and lists merchants
//! over `/v1/operator/`, and nothing else. Without it those routes refuse everyone.

use sha2::{Digest, Sha256};

/// Tokens shorter than this are refused at start-up: the token guards every tenant.
pub const MIN_TOKEN_CHARS: usize = 32;

/// The operator's token, kept as its SHA-256 (and its length) and compared in constant
/// time.
#[derive(Clone, Default)]
pub struct OperatorToken(Option<([u8; 32], usize)>);

impl std::fmt::Debug for OperatorToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("OperatorToken")
            .field(&self.0.map(|_| "…"))
            .finish()
    }
}

impl OperatorToken {
    /// No operator token: the operator routes answer 401 to everyone.
    pub fn none() -> Self {
        Self(None)
    }

    /// The operator's token; `Err` when it is too short to guard anything.
    pub fn new(token: &str) -> Result<Self, String> {
        let token = token.trim();
        if token.chars().count() < MIN_TOKEN_CHARS || token.starts_with("sk_") {
            return Err(format!(
                "the operator token must be at least {MIN_TOKEN_CHARS} characters and not start with sk_"
            ));
        }
        Ok(Self(Some((
            Sha256::digest(token.as_bytes()).into(),
            token.len(),
        ))))
    }

    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Whether `credential` is the operator's token. Hashing both sides first makes the
    /// comparison's time independent of where they differ; a credential of another
    /// length (every portal token) is not hashed at all, which tells only the length.
    pub fn matches(&self, credential: &str) -> bool {
        let Some((expected, len)) = &self.0 else {
            return false;
        };
        if credential.len() != *len {
            return false;
        }
        let given: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        given
            .iter()
            .zip(expected)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_matches_and_short_ones_are_refused() {
        let token = "op_0123456789abcdef0123456789abcdef";
        let operator = OperatorToken::new(token).unwrap();
        assert!(operator.matches(token));
        assert!(!operator.matches("op_0123456789abcdef0123456789abcdeX"));
        assert!(!OperatorToken::none().matches(token));
        assert!(OperatorToken::new("short").is_err());
        assert!(OperatorToken::new(&format!("sk_{token}")).is_err());
    }
}
