//! The per-user send budget: one token bucket per user across all of their sockets, so that
//! reconnecting (or opening more tabs) does not multiply what one account may send.
//!
//! In cluster mode the bucket lives in Redis and is shared by every instance: each send costs
//! one script call (GCRA: one key holding the time at which the user's bucket will be full
//! again, read from Redis's own clock so instances' clocks do not matter). While Redis is
//! unreachable, or answers too slowly, each instance decides alone with a bucket of its own
//! (the same limits per instance), so sending keeps working and is still bounded.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use fred::{
    interfaces::{ClientLike, LuaInterface},
    types::config::Options,
};
use uuid::Uuid;

use super::SharedCounts;
use crate::{
    metrics::{Metrics, inc},
    socket::ratelimit::TokenBucket,
};

/// Longest a send waits for Redis's decision before deciding locally.
const REDIS_WAIT: Duration = Duration::from_millis(250);
/// Buckets kept per instance before full ones are forgotten.
const MAX_LOCAL: usize = 100_000;

/// GCRA on one key. KEYS[1]: the user's key; ARGV: µs per token, burst tolerance in µs.
/// Returns 1 when the send may go, 0 when it is over the budget (nothing is changed then).
const TAKE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
if tat - now > tolerance then return 0 end
local next = tat + interval
redis.call('SET', KEYS[1], string.format('%.0f', next), 'PX', math.floor((next - now) / 1000) + 1)
return 1
"#;

/// Gives back one token taken by `TAKE` (the send failed): moves the full-again time back by
/// one interval, never before now. KEYS and ARGV as for `TAKE`.
const GIVE_BACK: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') - tonumber(ARGV[1])
if tat <= now then redis.call('DEL', KEYS[1]) return 0 end
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1)
return 1
"#;

/// One attempt, bounded by `REDIS_WAIT`: past it the instance decides alone.
fn redis_options() -> Options {
    Options {
        timeout: Some(REDIS_WAIT),
        fail_fast: true,
        max_attempts: Some(1),
        ..Default::default()
    }
}

/// Sends per user: `burst` at once, refilled at `per_sec`.
pub struct SendBudget {
    burst: u32,
    per_sec: u32,
    local: Mutex<HashMap<Uuid, TokenBucket>>,
    shared: Option<SharedCounts>,
    metrics: Arc<Metrics>,
}

impl SendBudget {
    /// A budget of `burst` sends refilled at `per_sec` per user (`burst` 0: unlimited); shared
    /// through Redis when `shared` is given.
    pub fn new(
        burst: u32,
        per_sec: u32,
        shared: Option<SharedCounts>,
        metrics: Arc<Metrics>,
    ) -> SendBudget {
        SendBudget {
            burst,
            per_sec: per_sec.max(1),
            local: Mutex::new(HashMap::new()),
            shared,
            metrics,
        }
    }

    /// Takes one send from `user`'s budget: `false` when none is left.
    pub async fn take(&self, user: Uuid) -> bool {
        if self.burst == 0 {
            return true;
        }
        if let Some(shared) = &self.shared
            && shared.client.is_connected()
        {
            match self.take_shared(shared, user).await {
                Ok(allowed) => return allowed,
                Err(err) => {
                    inc(&self.metrics.redis_errors);
                    tracing::debug!(error = %err, "per-user budget decided locally");
                }
            }
        }
        if self.shared.is_some() {
            inc(&self.metrics.user_budget_local_decisions);
        }
        self.take_local(user, Instant::now())
    }

    /// Gives back a send taken from `user`'s budget whose send then failed, so that a failed
    /// send costs nothing. Best effort: while Redis is not connected, only the local bucket.
    pub async fn give_back(&self, user: Uuid) {
        if self.burst == 0 {
            return;
        }
        if let Some(shared) = &self.shared
            && shared.client.is_connected()
        {
            let given: Result<i64, _> = shared
                .client
                .with_options(&redis_options())
                .eval(
                    GIVE_BACK,
                    vec![shared.keys.send_budget(user)],
                    vec![self.interval_us().to_string()],
                )
                .await;
            if given.is_ok() {
                return;
            }
            inc(&self.metrics.redis_errors);
        }
        let mut buckets = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = buckets.get_mut(&user) {
            bucket.give_back();
        }
    }

    async fn take_shared(
        &self,
        shared: &SharedCounts,
        user: Uuid,
    ) -> Result<bool, fred::error::Error> {
        let interval = self.interval_us();
        let tolerance = interval * u64::from(self.burst - 1);
        let allowed: i64 = shared
            .client
            .with_options(&redis_options())
            .eval(
                TAKE,
                vec![shared.keys.send_budget(user)],
                vec![interval.to_string(), tolerance.to_string()],
            )
            .await?;
        Ok(allowed == 1)
    }

    /// Microseconds between two tokens.
    fn interval_us(&self) -> u64 {
        1_000_000 / u64::from(self.per_sec)
    }

    fn take_local(&self, user: Uuid, now: Instant) -> bool {
        let mut buckets = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_LOCAL && !buckets.contains_key(&user) {
            buckets.retain(|_, b| !b.is_full_at(now));
        }
        buckets
            .entry(user)
            .or_insert_with(|| TokenBucket::new(self.burst, self.per_sec))
            .try_take_at(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_budget_per_user_whatever_the_sockets() {
        let budget = SendBudget::new(5, 1, None, Arc::default());
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let now = Instant::now();
        assert_eq!((0..20).filter(|_| budget.take_local(alice, now)).count(), 5);
        assert_eq!((0..20).filter(|_| budget.take_local(bob, now)).count(), 5);
        assert!(budget.take_local(alice, now + Duration::from_secs(1)));
        assert!(!budget.take_local(alice, now + Duration::from_secs(1)));
    }
}
