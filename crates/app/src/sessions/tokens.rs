//! Customer session tokens. Tenure signs its own with HS256; merchants may also register
//! their identity provider's key so that tokens it issues are accepted (looked up by
//! `iss`). Expiry and not-before are checked against Tenure's clock, not the wall clock,
//! so the test clock governs token lifetimes like everything else.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tenure_domain::access::Mode;
use tenure_domain::ids::{CustomerId, MerchantId};

pub const ISSUER: &str = "tenure";
pub const AUDIENCE: &str = "tenure-portal";
pub const DEFAULT_TTL: Duration = Duration::hours(1);
/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Allowed clock skew between the token's issuer and Tenure.
pub const LEEWAY_SECS: i64 = 30;

/// Algorithms a merchant's identity provider may use. `none` is never accepted, and an
/// HMAC secret can never be used as a public key or vice versa: the registered algorithm
/// decides which key type is built.
pub const ALLOWED_PROVIDER_ALGORITHMS: &[&str] = &["HS256", "RS256", "ES256", "EdDSA"];

#[derive(Debug, Serialize, Deserialize)]
pub struct SessionClaims {
    pub iss: String,
    pub aud: String,
    /// The customer's TypeID.
    pub sub: String,
    /// The merchant's TypeID: the tenant of one mode.
    pub mer: String,
    /// Whether the session is in live mode (the mode of the key that minted it). Tokens
    /// minted before modes existed have none and were all test mode.
    #[serde(default)]
    pub livemode: bool,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub merchant: MerchantId,
    pub customer: CustomerId,
    /// The tenant's mode: a session reaches only its tenant's data, in that mode.
    pub mode: Mode,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature, algorithm, issuer or audience is not accepted")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
}

/// Tenure's own signing key.
#[derive(Clone)]
pub struct SessionSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl std::fmt::Debug for SessionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSigner")
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl SessionSigner {
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            ttl,
        }
    }

    pub fn issue(
        &self,
        session: Session,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), jsonwebtoken::errors::Error> {
        let expires_at = now + self.ttl;
        let claims = SessionClaims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: session.customer.to_string(),
            mer: session.merchant.to_string(),
            livemode: session.mode.is_live(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: expires_at.timestamp(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, expires_at))
    }

    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Session, TokenError> {
        let claims: SessionClaims =
            verify_signature(token, &self.decoding, Algorithm::HS256, ISSUER, AUDIENCE)?;
        check_lifetime(claims.nbf, claims.exp, now)?;
        Ok(Session {
            merchant: claims.mer.parse().map_err(|_| TokenError::Invalid)?,
            customer: claims.sub.parse().map_err(|_| TokenError::Invalid)?,
            mode: Mode::from_livemode(claims.livemode),
        })
    }
}

/// Verifies signature, algorithm, issuer and audience; lifetime is checked separately
/// against Tenure's clock.
pub fn verify_signature<C: serde::de::DeserializeOwned>(
    token: &str,
    key: &DecodingKey,
    algorithm: Algorithm,
    issuer: &str,
    audience: &str,
) -> Result<C, TokenError> {
    let mut validation = Validation::new(algorithm);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_required_spec_claims(&["iss", "aud"]);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    jsonwebtoken::decode::<C>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|err| match err.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidToken
            | jsonwebtoken::errors::ErrorKind::Base64(_)
            | jsonwebtoken::errors::ErrorKind::Json(_)
            | jsonwebtoken::errors::ErrorKind::Utf8(_) => TokenError::Malformed,
            _ => TokenError::Invalid,
        })
}

pub fn check_lifetime(nbf: i64, exp: i64, now: DateTime<Utc>) -> Result<(), TokenError> {
    let now = now.timestamp();
    if exp + LEEWAY_SECS <= now {
        return Err(TokenError::Expired);
    }
    if nbf - LEEWAY_SECS > now {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// The `iss` and `aud` claims (`aud` as a list, empty when absent), read without
/// verifying anything, to pick the key that verifies the token. Nothing else from an
/// unverified token is trusted, and these only choose which check it must pass.
pub fn unverified_issuer_and_audiences(token: &str) -> Result<(String, Vec<String>), TokenError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Audience {
        One(String),
        Many(Vec<String>),
    }
    #[derive(Deserialize)]
    struct Routing {
        iss: String,
        aud: Option<Audience>,
    }
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let routing: Routing = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
    let audiences = match routing.aud {
        None => Vec::new(),
        Some(Audience::One(aud)) => vec![aud],
        Some(Audience::Many(auds)) => auds,
    };
    Ok((routing.iss, audiences))
}

/// Builds the verification key of a merchant's identity provider for its registered
/// algorithm. Fails when the key material does not fit the algorithm, with a message that
/// follows the name of the field at fault (`algorithm` for an unknown one, else
/// `verification_key`), as validation details read.
pub fn provider_key(
    algorithm: &str,
    key_material: &str,
) -> Result<(Algorithm, DecodingKey), String> {
    let built = match algorithm {
        "HS256" => {
            if key_material.len() < 32 {
                return Err("must be at least 32 bytes for HS256".to_owned());
            }
            Ok((
                Algorithm::HS256,
                DecodingKey::from_secret(key_material.as_bytes()),
            ))
        }
        "RS256" => {
            DecodingKey::from_rsa_pem(key_material.as_bytes()).map(|k| (Algorithm::RS256, k))
        }
        "ES256" => DecodingKey::from_ec_pem(key_material.as_bytes()).map(|k| (Algorithm::ES256, k)),
        "EdDSA" => DecodingKey::from_ed_pem(key_material.as_bytes()).map(|k| (Algorithm::EdDSA, k)),
        _ => {
            return Err(format!(
                "must be one of {}",
                ALLOWED_PROVIDER_ALGORITHMS.join(", ")
            ));
        }
    };
    built.map_err(|_| format!("is not a valid PEM public key for {algorithm}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenure_domain::ids::GenerateId;

    fn signer() -> SessionSigner {
        SessionSigner::new(&[7u8; 32], DEFAULT_TTL)
    }

    fn session() -> Session {
        Session {
            merchant: MerchantId::generate(),
            customer: CustomerId::generate(),
            mode: Mode::Live,
        }
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let now = Utc::now();
        let s = session();
        let (token, expires_at) = signer().issue(s, now).unwrap();
        assert_eq!(signer().verify(&token, now).unwrap(), s);
        assert_eq!(
            signer().verify(&token, expires_at + Duration::minutes(5)),
            Err(TokenError::Expired)
        );
        assert_eq!(
            signer().verify(&token, now - Duration::minutes(5)),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn tampered_and_foreign_tokens_are_refused() {
        let now = Utc::now();
        let (token, _) = signer().issue(session(), now).unwrap();
        let other = SessionSigner::new(&[8u8; 32], DEFAULT_TTL);
        assert_eq!(other.verify(&token, now), Err(TokenError::Invalid));
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap() + 3, 'x');
        assert!(signer().verify(&tampered, now).is_err());
        assert_eq!(
            signer().verify("not.a.jwt", now),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let now = Utc::now().timestamp();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let claims = serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "sub": CustomerId::generate().to_string(),
            "mer": MerchantId::generate().to_string(), "iat": now, "nbf": now, "exp": now + 600});
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let token = format!("{header}.{payload}.");
        assert!(signer().verify(&token, Utc::now()).is_err());
    }

    #[test]
    fn issuer_and_audiences_are_read_without_trusting_the_rest() {
        let (token, _) = signer().issue(session(), Utc::now()).unwrap();
        let read = unverified_issuer_and_audiences(&token).unwrap();
        assert_eq!(read, (ISSUER.to_owned(), vec![AUDIENCE.to_owned()]));
        let unsigned = |claims: serde_json::Value| {
            format!("e30.{}.sig", URL_SAFE_NO_PAD.encode(claims.to_string()))
        };
        let many = unsigned(serde_json::json!({"iss": "i", "aud": ["a", "b"]}));
        assert_eq!(
            unverified_issuer_and_audiences(&many).unwrap(),
            ("i".to_owned(), vec!["a".to_owned(), "b".to_owned()])
        );
        let none = unsigned(serde_json::json!({"iss": "i"}));
        assert_eq!(
            unverified_issuer_and_audiences(&none).unwrap(),
            ("i".to_owned(), vec![])
        );
        for malformed in [
            "a.b".to_owned(),
            unsigned(serde_json::json!({"aud": "a"})),
            unsigned(serde_json::json!({"iss": "i", "aud": 7})),
        ] {
            assert_eq!(
                unverified_issuer_and_audiences(&malformed),
                Err(TokenError::Malformed),
                "{malformed}"
            );
        }
    }

    #[test]
    fn provider_keys_must_fit_their_algorithm() {
        assert!(provider_key("none", "x").is_err());
        assert!(provider_key("HS256", "short").is_err());
        assert!(provider_key("HS256", &"k".repeat(32)).is_ok());
        assert!(provider_key("RS256", "not a pem").is_err());
    }
}
