//! Access tokens: HS256 JWTs with the claims the NestJS app issued (`sub`, `username`, `iat`,
//! `exp`), so its tokens stay valid when the secret is shared.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id.
    pub sub: String,
    /// The user's name at sign-in.
    pub username: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
}

/// Signs and verifies tokens with one secret.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl JwtKeys {
    /// Keys from a shared secret; tokens live `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> JwtKeys {
        // Only HS256 is accepted: `alg: none` and RS/HS confusion are refused by construction.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// Issues a token for a user.
    pub fn issue(&self, user_id: Uuid, username: &str) -> anyhow::Result<String> {
        let iat = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            username: username.to_owned(),
            iat,
            exp: iat + self.ttl.as_secs() as i64,
        };
        Ok(encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Verifies signature, algorithm and expiry; returns the user id the token names.
    pub fn verify(&self, token: &str) -> Option<Uuid> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        Uuid::parse_str(&data.claims.sub).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_a_foreign_one_is_refused() {
        let keys = JwtKeys::new(b"first-secret", Duration::from_secs(60));
        let other = JwtKeys::new(b"other-secret", Duration::from_secs(60));
        let id = Uuid::now_v7();
        let token = keys.issue(id, "alice").unwrap();
        assert_eq!(keys.verify(&token), Some(id));
        assert_eq!(other.verify(&token), None);
        assert_eq!(keys.verify("not.a.token"), None);
    }

    #[test]
    fn an_expired_token_is_refused() {
        let keys = JwtKeys::new(b"secret", Duration::from_secs(60));
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: Uuid::now_v7().to_string(),
            username: "bob".into(),
            iat: now - 7200,
            exp: now - 3600,
        };
        let token = encode(&Header::default(), &claims, &keys.encoding).unwrap();
        assert_eq!(keys.verify(&token), None);
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        let keys = JwtKeys::new(b"secret", Duration::from_secs(60));
        // {"alg":"none","typ":"JWT"} . {"sub":..., "exp": far future} . (no signature)
        let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        let payload = "eyJzdWIiOiIwMTkzMDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDAiLCJ1c2VybmFtZSI6ImV2ZSIsImlhdCI6MSwiZXhwIjo5OTk5OTk5OTk5fQ";
        assert_eq!(keys.verify(&format!("{header}.{payload}.")), None);
    }
}
