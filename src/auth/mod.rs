//! Accounts: registration, sign-in, token verification, and who may still use their tokens
//! (disabled and deleted accounts are refused), with the per-user limits that hold across all
//! of an account's sockets and addresses.

pub mod budget;
pub mod jwt;
pub mod password;
pub mod revocation;
mod throttle;

use std::{
    collections::HashMap,
    net::IpAddr,
    path::Path,
    sync::{Arc, RwLock},
};

use anyhow::Context;
use uuid::Uuid;

use budget::SendBudget;
pub use jwt::{JwtKeys, TokenSubject};
use revocation::Revocations;
use throttle::LoginThrottle;

use crate::{
    cluster::Keys,
    config::{Config, UserCommand},
    error::AppError,
    metrics::{Metrics, inc},
    mode::Mode,
    store::{Store, StoreError, User},
};

/// The Redis connection and key names through which cluster mode shares per-user counts.
#[derive(Clone)]
pub struct SharedCounts {
    /// The command connection.
    pub client: fred::prelude::Client,
    /// Key names.
    pub keys: Keys,
}

impl SharedCounts {
    /// The shared counts of cluster mode; `None` when embedded.
    pub fn for_mode(mode: &Mode) -> Option<SharedCounts> {
        match mode {
            Mode::Embedded => None,
            Mode::Cluster(cluster) => Some(SharedCounts {
                client: cluster.client.clone(),
                keys: cluster.keys.clone(),
            }),
        }
    }
}

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
    revoked: Revocations,
    budget: SendBudget,
    metrics: Arc<Metrics>,
}

/// A signed-in user and their token.
pub struct Session {
    /// The access token.
    pub token: String,
    /// The user it names.
    pub user: User,
}

impl Accounts {
    /// Builds the service: hashes the timing dummy once and reads the revoked accounts.
    pub async fn new(
        store: Store,
        keys: JwtKeys,
        config: &Config,
        mode: &Mode,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Accounts> {
        let cost = config.bcrypt_cost;
        let dummy_hash = password::hash(Uuid::new_v4().to_string(), cost).await?;
        let shared = SharedCounts::for_mode(mode);
        let revoked = Revocations::default();
        revoked
            .refresh(&store)
            .await
            .context("could not read the disabled and deleted accounts")?;
        Ok(Accounts {
            store,
            keys,
            cost,
            dummy_hash,
            users: RwLock::new(HashMap::new()),
            throttle: LoginThrottle::new(config.login_throttle, shared.clone(), metrics.clone()),
            revoked,
            budget: SendBudget::new(
                config.user_rate_limit_burst,
                config.user_rate_limit_per_sec,
                shared,
                metrics.clone(),
            ),
            metrics,
        })
    }

    /// Whether `id` is a disabled or deleted account (its tokens are refused).
    pub fn is_revoked(&self, id: Uuid) -> bool {
        self.revoked.is_revoked(id)
    }

    /// Reads the access changes committed since the last call; returns the accounts that lost
    /// access (their sockets are to be closed). On an error the known revocations stay.
    pub async fn refresh_access(&self) -> Result<Vec<Uuid>, StoreError> {
        let newly = self.revoked.refresh(&self.store).await.inspect_err(|_| {
            inc(&self.metrics.access_refresh_errors);
        })?;
        if !newly.is_empty() {
            let mut cache = self.users.write().unwrap_or_else(|e| e.into_inner());
            for id in &newly {
                cache.remove(id);
            }
        }
        Ok(newly)
    }

    /// Takes one send from `user`'s budget across all their sockets: `false` when none is left.
    pub async fn take_send(&self, user: Uuid) -> bool {
        self.budget.take(user).await
    }

    /// Gives back a send taken by [`Accounts::take_send`] whose send failed.
    pub async fn give_back_send(&self, user: Uuid) {
        self.budget.give_back(user).await
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
        if let Some(wait) = self.throttle.wait(username, address).await {
            return Err(AppError::Throttled(
                wait.as_secs_f64().ceil().max(1.0) as u64
            ));
        }
        let result = self.check_credentials(username, password).await;
        match &result {
            Ok(_) => self.throttle.succeeded(username).await,
            Err(AppError::Unauthorized(_)) => self.throttle.failed(username, address).await,
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
            // A disabled account answers as a wrong password does (the contract's one 401).
            Some(creds) if matches && (creds.disabled || self.is_revoked(creds.user.id)) => {
                inc(&self.metrics.revoked_refused);
                Err(invalid_credentials())
            }
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
    /// A disabled or deleted account's token is refused (a lookup in memory, so this holds while
    /// the database is down).
    pub async fn authenticate(&self, token: &str) -> Result<User, AppError> {
        let unauthorized = || AppError::Unauthorized("Unauthorized".into());
        let subject = self.keys.verify(token).ok_or_else(unauthorized)?;
        let id = match &subject {
            TokenSubject::Profile(user) => user.id,
            TokenSubject::Id(id) => *id,
        };
        if self.is_revoked(id) {
            inc(&self.metrics.revoked_refused);
            return Err(unauthorized());
        }
        match subject {
            TokenSubject::Profile(user) => Ok(user),
            TokenSubject::Id(id) => self.user(id).await?.ok_or_else(unauthorized),
        }
    }

    /// A user by id, from the cache when possible. A disabled or deleted account is `None`.
    pub async fn user(&self, id: Uuid) -> Result<Option<User>, AppError> {
        if self.is_revoked(id) {
            return Ok(None);
        }
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

/// Runs `nexus-chat user disable|enable <name>` against the configured database. Running
/// instances notice within `ACCESS_REFRESH_MS` (they poll the database's access log), refuse
/// the account's tokens and close its sockets.
pub async fn run_user_command(config: &Config, command: UserCommand) -> anyhow::Result<()> {
    let (username, disable) = match &command {
        UserCommand::Disable { username } => (username.as_str(), true),
        UserCommand::Enable { username } => (username.as_str(), false),
    };
    let store = crate::app::open_store(config).await?;
    let update = store
        .set_disabled(username, disable)
        .await
        .with_context(|| format!("could not update the account {username:?}"))?
        .ok_or_else(|| anyhow::anyhow!("no account is named {username:?}"))?;
    let user = &update.user;
    let refresh = config.access_refresh.as_millis();
    match (disable, update.changed) {
        (true, true) => println!(
            "disabled {} ({}): its tokens are refused and its sockets close within {refresh} ms \
             on every running instance",
            user.username, user.id
        ),
        (false, true) => println!(
            "enabled {} ({}): it can sign in again, and its unexpired tokens work within \
             {refresh} ms",
            user.username, user.id
        ),
        (true, false) => println!("{} ({}) was already disabled", user.username, user.id),
        (false, false) => println!("{} ({}) was not disabled", user.username, user.id),
    }
    Ok(())
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
