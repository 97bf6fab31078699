//! Accounts: registration, sign-in and token verification.

pub mod jwt;
pub mod password;
mod throttle;

use std::{
    collections::HashMap,
    net::IpAddr,
    path::Path,
    sync::{Arc, RwLock},
};

use anyhow::Context;
use uuid::Uuid;

pub use jwt::{JwtKeys, TokenSubject};
use throttle::LoginThrottle;

use crate::{
    config::{Config, ThrottleConfig},
    error::AppError,
    store::{Store, StoreError, User},
};

/// Users looked up by id, kept because accounts are never renamed and every old-shape handshake
/// and every send needs one. Cleared when it grows past this many entries.
const USER_CACHE_LIMIT: usize = 100_000;

/// Registration, sign-in and token checks.
pub struct Accounts {
    store: Store,
    keys: JwtKeys,
    cost: u32,
    /// A hash of a random password, verified for unknown usernames so that a failed sign-in
    /// takes as long whether or not the account exists.
    dummy_hash: String,
    users: RwLock<HashMap<Uuid, User>>,
    throttle: LoginThrottle,
}

/// A signed-in user and their token.
pub struct Session {
    /// The access token.
    pub token: String,
    /// The user it names.
    pub user: User,
}

impl Accounts {
    /// Builds the service; hashes the timing dummy once.
    pub async fn new(
        store: Store,
        keys: JwtKeys,
        cost: u32,
        throttle: ThrottleConfig,
    ) -> anyhow::Result<Accounts> {
        let dummy_hash = password::hash(Uuid::new_v4().to_string(), cost).await?;
        Ok(Accounts {
            store,
            keys,
            cost,
            dummy_hash,
            users: RwLock::new(HashMap::new()),
            throttle: LoginThrottle::new(throttle),
        })
    }

    /// Creates an account.
    pub async fn register(&self, username: &str, password: &str) -> Result<User, AppError> {
        validate_username(username)?;
        validate_password(password)?;
        let hash = password::hash(password.to_owned(), self.cost).await?;
        match self.store.create_user(username, &hash).await {
            Ok(user) => Ok(user),
            Err(StoreError::Conflict) => Err(AppError::Conflict("Username already exists".into())),
            Err(other) => Err(other.into()),
        }
    }

    /// Checks credentials and issues a token. Unknown user and wrong password look the same.
    /// Repeated failures for a username or from an address are throttled.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        address: Option<IpAddr>,
    ) -> Result<Session, AppError> {
        if let Some(wait) = self.throttle.wait(username, address) {
            return Err(AppError::Throttled(
                wait.as_secs_f64().ceil().max(1.0) as u64
            ));
        }
        let result = self.check_credentials(username, password).await;
        match &result {
            Ok(_) => self.throttle.succeeded(username),
            Err(AppError::Unauthorized(_)) => self.throttle.failed(username, address),
            Err(_) => {}
        }
        result
    }

    async fn check_credentials(&self, username: &str, password: &str) -> Result<Session, AppError> {
        validate_username(username).map_err(|_| invalid_credentials())?;
        if password.is_empty() || password.len() > 72 {
            return Err(invalid_credentials());
        }
        let found = self.store.credentials(username).await?;
        let hash = found
            .as_ref()
            .map_or_else(|| self.dummy_hash.clone(), |c| c.password_hash.clone());
        let matches = password::verify(password.to_owned(), hash).await;
        match found {
            Some(creds) if matches => {
                let token = self.keys.issue(&creds.user)?;
                Ok(Session {
                    token,
                    user: creds.user,
                })
            }
            _ => Err(invalid_credentials()),
        }
    }

    /// The user a valid bearer token names.
    /// A token carrying the profile needs no database read, so handshakes keep succeeding while
    /// the database is slow or down; an older token is resolved (and cached) by id.
    pub async fn authenticate(&self, token: &str) -> Result<User, AppError> {
        let unauthorized = || AppError::Unauthorized("Unauthorized".into());
        match self.keys.verify(token).ok_or_else(unauthorized)? {
            TokenSubject::Profile(user) => Ok(user),
            TokenSubject::Id(id) => self.user(id).await?.ok_or_else(unauthorized),
        }
    }

    /// A user by id, from the cache when possible.
    pub async fn user(&self, id: Uuid) -> Result<Option<User>, AppError> {
        if let Some(user) = self.cached(id) {
            return Ok(Some(user));
        }
        let user = self.store.user(id).await?;
        if let Some(user) = &user {
            let mut cache = self.users.write().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= USER_CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(id, user.clone());
        }
        Ok(user)
    }

    fn cached(&self, id: Uuid) -> Option<User> {
        let cache = self.users.read().unwrap_or_else(|e| e.into_inner());
        cache.get(&id).cloned()
    }
}

/// The token of an `Authorization: Bearer <token>` header value (scheme in any case).
pub fn bearer_token(header: &axum::http::HeaderValue) -> Option<&str> {
    let (scheme, token) = header.to_str().ok()?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn invalid_credentials() -> AppError {
    AppError::Unauthorized("Invalid credentials".into())
}

/// 3 to 32 characters: ASCII letters, digits, `_`, `.` and `-`.
pub fn validate_username(name: &str) -> Result<(), AppError> {
    let ok = (3..=32).contains(&name.chars().count())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(AppError::Invalid(
            "username must be 3 to 32 characters: letters, digits, _ . or -".into(),
        ))
    }
}

/// 6 to 72 bytes (bcrypt ignores anything past 72).
pub fn validate_password(password: &str) -> Result<(), AppError> {
    if (6..=72).contains(&password.len()) {
        Ok(())
    } else {
        Err(AppError::Invalid(
            "password must be 6 to 72 bytes long".into(),
        ))
    }
}

/// The signing keys: `JWT_SECRET`, or a secret generated once and kept in the data folder so
/// tokens survive restarts of the embedded server.
pub fn load_keys(config: &Config) -> anyhow::Result<Arc<JwtKeys>> {
    let secret = match &config.jwt_secret {
        Some(secret) => secret.clone(),
        None => load_or_create_secret(&config.data_dir.join("jwt-secret"))?,
    };
    Ok(Arc::new(JwtKeys::new(secret.as_bytes(), config.jwt_ttl)))
}

fn load_or_create_secret(path: &Path) -> anyhow::Result<String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        let existing = existing.trim().to_owned();
        if existing.len() >= 32 {
            return Ok(existing);
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
    }
    let secret: String = {
        use rand::Rng;
        let mut rng = rand::rng();
        (0..64)
            .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
            .collect()
    };
    write_private(path, &secret)
        .with_context(|| format!("could not write the JWT secret to {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a JWT secret");
    Ok(secret)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_rules() {
        assert!(validate_username("alice_01.x-y").is_ok());
        assert!(validate_username("ab").is_err());
        assert!(validate_username(&"a".repeat(33)).is_err());
        assert!(validate_username("al ice").is_err());
        assert!(validate_username("ålice").is_err());
    }

    #[test]
    fn passwords_are_6_to_72_bytes() {
        assert!(validate_password("123456").is_ok());
        assert!(validate_password("12345").is_err());
        assert!(validate_password(&"x".repeat(73)).is_err());
    }

    #[test]
    fn a_generated_secret_is_kept_across_restarts() {
        let dir = std::env::temp_dir().join(format!("nexus-secret-{}", Uuid::new_v4()));
        let path = dir.join("jwt-secret");
        let first = load_or_create_secret(&path).unwrap();
        let second = load_or_create_secret(&path).unwrap();
        assert_eq!(first, second);
        assert_eq!(first.len(), 64);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
