//! Login throttling: after a number of free failures, a username (or a client address) must wait
//! before its next attempt, twice as long after each further failure. Kept per instance.

use std::{
    collections::HashMap,
    hash::Hash,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::config::ThrottleConfig;

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

/// Failed-login bookkeeping per username and per client address.
pub struct LoginThrottle {
    config: ThrottleConfig,
    users: Table<String>,
    addresses: Table<IpAddr>,
}

impl LoginThrottle {
    /// A throttle with the given limits.
    pub fn new(config: ThrottleConfig) -> LoginThrottle {
        LoginThrottle {
            users: Table::new(config.per_user),
            addresses: Table::new(config.per_address),
            config,
        }
    }

    /// How long this attempt must still wait, if it is throttled.
    pub fn wait(&self, username: &str, address: Option<IpAddr>) -> Option<Duration> {
        let now = Instant::now();
        let user = self.users.wait(&username.to_lowercase(), now);
        let addr = address.and_then(|a| self.addresses.wait(&a, now));
        user.max(addr)
    }

    /// Records a failed attempt.
    pub fn failed(&self, username: &str, address: Option<IpAddr>) {
        let now = Instant::now();
        self.users.fail(username.to_lowercase(), now, &self.config);
        if let Some(addr) = address {
            self.addresses.fail(addr, now, &self.config);
        }
    }

    /// Records a success: the username starts afresh (the address keeps its count).
    pub fn succeeded(&self, username: &str) {
        self.users.clear(&username.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(ThrottleConfig {
            per_user: 3,
            per_address: 5,
            base: Duration::from_secs(1),
            max: Duration::from_secs(8),
        })
    }

    #[test]
    fn a_username_waits_after_its_free_failures_and_the_wait_doubles() {
        let t = throttle();
        for _ in 0..2 {
            t.failed("Alice", None);
            assert!(t.wait("alice", None).is_none());
        }
        t.failed("alice", None);
        let first = t.wait("ALICE", None).unwrap();
        assert!(first <= Duration::from_secs(1) && first > Duration::from_millis(900));
        t.failed("alice", None);
        assert!(t.wait("alice", None).unwrap() > Duration::from_millis(1900));
        for _ in 0..10 {
            t.failed("alice", None);
        }
        assert!(
            t.wait("alice", None).unwrap() <= Duration::from_secs(8),
            "capped at max"
        );
        assert!(
            t.wait("bob", None).is_none(),
            "other users are not affected"
        );
        t.succeeded("alice");
        assert!(t.wait("alice", None).is_none());
    }

    #[test]
    fn an_address_is_throttled_across_usernames() {
        let t = throttle();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        for i in 0..5 {
            t.failed(&format!("user{i}"), Some(ip));
        }
        assert!(t.wait("fresh", Some(ip)).is_some());
        assert!(
            t.wait("fresh", Some("127.0.0.10".parse().unwrap()))
                .is_none()
        );
    }
}
