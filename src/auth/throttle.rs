//! Login throttling: after a number of free failures, a username (or a client address) must wait
//! before its next attempt, twice as long after each further failure. A username's count holds
//! whatever address its attempts come from.
//!
//! In cluster mode the counts live in Redis, shared by every instance (one script call per check
//! and per failure), so N instances do not give an attacker N times the allowance. Each instance
//! also counts locally, and answers from its own counts while Redis is unreachable.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use fred::{
    interfaces::{ClientLike, KeysInterface, LuaInterface},
    types::config::Options,
};

use super::SharedCounts;
use crate::{
    config::ThrottleConfig,
    metrics::{Metrics, inc},
};

/// Longest a login waits for Redis before the instance answers from its own counts.
const REDIS_WAIT: Duration = Duration::from_millis(500);

/// KEYS: the entries to check. Returns the longest wait still due, in ms (0: none).
const WAIT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
for _, key in ipairs(KEYS) do
  local due = tonumber(redis.call('HGET', key, 'until') or '0')
  if due - now > wait then wait = due - now end
end
return wait
"#;

/// KEYS: the entries to count a failure in; ARGV: base ms, max ms, then the free failures of
/// each key. An entry is forgotten 2 × max after its last failure.
const FAIL: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local base = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  local free = tonumber(ARGV[i + 2])
  local failures = redis.call('HINCRBY', key, 'failures', 1)
  if failures >= free then
    local wait = math.min(base * 2 ^ math.min(failures - free, 30), max)
    redis.call('HSET', key, 'until', string.format('%.0f', now + wait))
  end
  redis.call('PEXPIRE', key, string.format('%.0f', 2 * max))
end
return 1
"#;

/// Entries kept before idle ones are dropped.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    blocked_until: Option<Instant>,
    last: Instant,
}

struct Table<K> {
    free: u32,
    entries: Mutex<HashMap<K, Entry>>,
}

impl<K: Eq + Hash + Clone> Table<K> {
    fn new(free: u32) -> Self {
        Table {
            free,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        let until = self.lock().get(key)?.blocked_until?;
        (until > now).then(|| until - now)
    }

    fn fail(&self, key: K, now: Instant, config: &ThrottleConfig) {
        let mut entries = self.lock();
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| now.saturating_duration_since(e.last) < config.max);
        }
        let entry = entries.entry(key).or_insert(Entry {
            failures: 0,
            blocked_until: None,
            last: now,
        });
        entry.failures += 1;
        entry.last = now;
        if entry.failures >= self.free {
            let doublings = (entry.failures - self.free).min(30);
            let wait = config.base.saturating_mul(1 << doublings).min(config.max);
            entry.blocked_until = Some(now + wait);
        }
    }

    fn clear(&self, key: &K) {
        self.lock().remove(key);
    }
}

/// Failed-login bookkeeping per username and per client address, in this instance's memory.
pub struct LocalThrottle {
    config: ThrottleConfig,
    users: Table<String>,
    addresses: Table<IpAddr>,
}

impl LocalThrottle {
    /// A throttle with the given limits.
    pub fn new(config: ThrottleConfig) -> LocalThrottle {
        LocalThrottle {
            users: Table::new(config.per_user),
            addresses: Table::new(config.per_address),
            config,
        }
    }

    /// How long this attempt must still wait, if it is throttled. `user`: the lowercased
    /// username, when it could name an account.
    pub fn wait(&self, user: Option<&str>, address: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let user = user.and_then(|u| self.users.wait(&u.to_owned(), now));
        let addr = address.and_then(|a| self.addresses.wait(&a, now));
        user.max(addr)
    }

    /// Records a failed attempt.
    pub fn failed(&self, user: Option<&str>, address: Option<IpAddr>) {
        let now = Instant::now();
        if let Some(user) = user {
            self.users.fail(user.to_owned(), now, &self.config);
        }
        if let Some(addr) = address {
            self.addresses.fail(addr, now, &self.config);
        }
    }

    /// Records a success: the username starts afresh (the address keeps its count).
    pub fn succeeded(&self, user: &str) {
        self.users.clear(&user.to_owned());
    }
}

/// The login throttle: counted in Redis in cluster mode (once for the whole cluster), and in
/// this instance's memory always (its answer while Redis is unreachable).
pub struct LoginThrottle {
    config: ThrottleConfig,
    local: LocalThrottle,
    shared: Option<SharedCounts>,
    metrics: std::sync::Arc<Metrics>,
}

/// The throttle's keys for one attempt: the username's when it could name an account (a name
/// that breaks the username rules is never stored, so a huge one cannot fill memory), and the
/// address's.
fn entries(shared: &SharedCounts, username: Option<&str>, address: Option<IpAddr>) -> Vec<String> {
    let mut keys = Vec::with_capacity(2);
    if let Some(name) = username {
        keys.push(shared.keys.login_user(name));
    }
    if let Some(addr) = address {
        keys.push(shared.keys.login_address(addr));
    }
    keys
}

fn options() -> Options {
    Options {
        timeout: Some(REDIS_WAIT),
        fail_fast: true,
        max_attempts: Some(1),
        ..Default::default()
    }
}

/// The lowercased username, when it follows the username rules.
fn user_key(username: &str) -> Option<String> {
    super::validate_username(username)
        .is_ok()
        .then(|| username.to_lowercase())
}

impl LoginThrottle {
    /// A throttle with the given limits, shared through Redis when `shared` is given.
    pub fn new(
        config: ThrottleConfig,
        shared: Option<SharedCounts>,
        metrics: std::sync::Arc<Metrics>,
    ) -> LoginThrottle {
        LoginThrottle {
            config,
            local: LocalThrottle::new(config),
            shared,
            metrics,
        }
    }

    fn connected(&self) -> Option<&SharedCounts> {
        self.shared.as_ref().filter(|s| s.client.is_connected())
    }

    fn fell_back(&self, err: Option<fred::error::Error>) {
        if let Some(err) = err {
            inc(&self.metrics.redis_errors);
            tracing::debug!(error = %err, "login throttle answered from local counts");
        }
        inc(&self.metrics.login_throttle_local_decisions);
    }

    /// How long this attempt must still wait, if it is throttled.
    pub async fn wait(&self, username: &str, address: Option<IpAddr>) -> Option<Duration> {
        let user = user_key(username);
        if let Some(shared) = self.connected() {
            let keys = entries(shared, user.as_deref(), address);
            if keys.is_empty() {
                return None;
            }
            let answer: Result<i64, _> = shared
                .client
                .with_options(&options())
                .eval(WAIT, keys, Vec::<String>::new())
                .await;
            match answer {
                Ok(ms) => return (ms > 0).then(|| Duration::from_millis(ms as u64)),
                Err(err) => self.fell_back(Some(err)),
            }
        } else if self.shared.is_some() {
            self.fell_back(None);
        }
        self.local.wait(user.as_deref(), address)
    }

    /// Records a failed attempt.
    pub async fn failed(&self, username: &str, address: Option<IpAddr>) {
        let user = user_key(username);
        self.local.failed(user.as_deref(), address);
        let Some(shared) = self.connected() else {
            return;
        };
        let keys = entries(shared, user.as_deref(), address);
        if keys.is_empty() {
            return;
        }
        let mut args = vec![
            self.config.base.as_millis().to_string(),
            self.config.max.as_millis().to_string(),
        ];
        if user.is_some() {
            args.push(self.config.per_user.to_string());
        }
        if address.is_some() {
            args.push(self.config.per_address.to_string());
        }
        let done: Result<i64, _> = shared
            .client
            .with_options(&options())
            .eval(FAIL, keys, args)
            .await;
        if let Err(err) = done {
            inc(&self.metrics.redis_errors);
            tracing::debug!(error = %err, "could not count a failed login in Redis");
        }
    }

    /// Records a success: the username starts afresh (the address keeps its count).
    pub async fn succeeded(&self, username: &str) {
        let Some(user) = user_key(username) else {
            return;
        };
        self.local.succeeded(&user);
        if let Some(shared) = self.connected() {
            let done: Result<i64, _> = shared
                .client
                .with_options(&options())
                .del(shared.keys.login_user(&user))
                .await;
            if let Err(err) = done {
                inc(&self.metrics.redis_errors);
                tracing::debug!(error = %err, "could not clear a username's failed logins in Redis");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        let config = ThrottleConfig {
            per_user: 3,
            per_address: 5,
            base: Duration::from_secs(1),
            max: Duration::from_secs(8),
        };
        LoginThrottle::new(config, None, Default::default())
    }

    #[tokio::test]
    async fn a_username_waits_after_its_free_failures_and_the_wait_doubles() {
        let t = throttle();
        for _ in 0..2 {
            t.failed("Alice", None).await;
            assert!(t.wait("alice", None).await.is_none());
        }
        t.failed("alice", None).await;
        let first = t.wait("ALICE", None).await.unwrap();
        assert!(first <= Duration::from_secs(1) && first > Duration::from_millis(900));
        t.failed("alice", None).await;
        assert!(t.wait("alice", None).await.unwrap() > Duration::from_millis(1900));
        for _ in 0..10 {
            t.failed("alice", None).await;
        }
        assert!(
            t.wait("alice", None).await.unwrap() <= Duration::from_secs(8),
            "capped at max"
        );
        assert!(
            t.wait("bob", None).await.is_none(),
            "other users are not affected"
        );
        t.succeeded("alice").await;
        assert!(t.wait("alice", None).await.is_none());
    }

    #[tokio::test]
    async fn a_username_is_throttled_from_any_address() {
        let t = throttle();
        for i in 0..3 {
            let ip: IpAddr = format!("127.0.0.{}", i + 2).parse().unwrap();
            t.failed("carol", Some(ip)).await;
        }
        let elsewhere: IpAddr = "127.0.0.200".parse().unwrap();
        assert!(t.wait("Carol", Some(elsewhere)).await.is_some());
    }

    #[tokio::test]
    async fn an_address_is_throttled_across_usernames() {
        let t = throttle();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        for i in 0..5 {
            t.failed(&format!("user{i}"), Some(ip)).await;
        }
        assert!(t.wait("fresh", Some(ip)).await.is_some());
        assert!(
            t.wait("fresh", Some("127.0.0.10".parse().unwrap()))
                .await
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_name_no_account_can_have_is_not_kept() {
        let t = throttle();
        let huge = "x".repeat(100_000);
        for _ in 0..10 {
            t.failed(&huge, None).await;
        }
        assert!(t.wait(&huge, None).await.is_none());
        assert!(t.local.users.lock().is_empty());
    }
}
