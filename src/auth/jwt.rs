//! Access tokens: HS256 JWTs with the claims the NestJS app issued (`sub`, `username`, `iat`,
//! `exp`), so its tokens stay valid when the secret is shared, plus the account's `createdAt`.
//! With both profile claims a token carries the whole public profile, so a handshake needs no
//! database read; older tokens without `createdAt` are resolved through the database.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::store::User;

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
    /// When the account was created; absent from tokens of the NestJS app and of earlier versions.
    #[serde(rename = "createdAt", default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
}

/// Whom a valid token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSubject {
    /// The whole profile is in the token.
    Profile(User),
    /// Only the id: the profile must be looked up.
    Id(Uuid),
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
        // No leeway, as the NestJS app's passport-jwt: a token is expired from the second named
        // by its `exp` on (`exp <= now`), which the crate checks as "expiring in under 1 s".
        validation.leeway = 0;
        validation.reject_tokens_expiring_in_less_than = 1;
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
    pub fn issue(&self, user: &User) -> anyhow::Result<String> {
        let iat = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user.id.to_string(),
            username: user.username.clone(),
            iat,
            exp: iat + self.ttl.as_secs() as i64,
            created_at: Some(user.created_at),
        };
        Ok(encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Verifies signature, algorithm and expiry; returns who the token names.
    pub fn verify(&self, token: &str) -> Option<TokenSubject> {
        let claims = decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()?
            .claims;
        let id = Uuid::parse_str(&claims.sub).ok()?;
        Some(match claims.created_at {
            Some(created_at) if !claims.username.is_empty() => TokenSubject::Profile(User {
                id,
                username: claims.username,
                created_at,
            }),
            _ => TokenSubject::Id(id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_a_foreign_one_is_refused() {
        let keys = JwtKeys::new(b"first-secret", Duration::from_secs(60));
        let other = JwtKeys::new(b"other-secret", Duration::from_secs(60));
        let user = User {
            id: Uuid::now_v7(),
            username: "alice".into(),
            created_at: "2026-11-29T08:00:00.123456Z".parse().unwrap(),
        };
        let token = keys.issue(&user).unwrap();
        assert_eq!(keys.verify(&token), Some(TokenSubject::Profile(user)));
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
            created_at: None,
        };
        let token = encode(&Header::default(), &claims, &keys.encoding).unwrap();
        assert_eq!(keys.verify(&token), None);
        // No leeway: a token that expired a second ago, or expires this second, is refused too
        // (jsonwebtoken's `expiresIn: -1` in a Node test), one that expires next second is not.
        for (exp, valid) in [(now - 1, false), (now, false), (now + 2, true)] {
            let claims = Claims {
                exp,
                ..claims.clone()
            };
            let token = encode(&Header::default(), &claims, &keys.encoding).unwrap();
            assert_eq!(
                keys.verify(&token).is_some(),
                valid,
                "exp = now + {}",
                exp - now
            );
        }
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        let keys = JwtKeys::new(b"secret", Duration::from_secs(60));
        // {"alg":"none","typ":"JWT"} . {"sub":..., "exp": far future} . (no signature)
        let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        let payload = "eyJzdWIiOiIwMTkzMDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDAiLCJ1c2VybmFtZSI6ImV2ZSIsImlhdCI6MSwiZXhwIjo5OTk5OTk5OTk5fQ";
        assert_eq!(keys.verify(&format!("{header}.{payload}.")), None);
    }

    #[test]
    fn a_token_without_created_at_names_only_the_id() {
        // The claims the NestJS app signed: its tokens still work, through a profile lookup.
        let keys = JwtKeys::new(b"secret", Duration::from_secs(60));
        let now = chrono::Utc::now().timestamp();
        let id = Uuid::now_v7();
        let claims =
            serde_json::json!({"sub": id, "username": "carol", "iat": now, "exp": now + 60});
        let token = encode(&Header::default(), &claims, &keys.encoding).unwrap();
        assert_eq!(keys.verify(&token), Some(TokenSubject::Id(id)));
    }
}
