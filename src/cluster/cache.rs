//! The hot history cache: the newest `HISTORY_CACHE_SIZE` messages of each conversation in a
//! Redis sorted set (score = commit seq), written after the database commit and read first by
//! `message:history`.
//!
//! The database stays the source of truth. A conversation's cache is trusted only down to its
//! *floor*: every message with seq >= floor is in the set (floor 0: the whole conversation). The
//! floor is set only by a refill from the database, so a flushed or restarted Redis simply misses
//! and refills; a push that fails drops the floor, so a message missing from the set can never be
//! served as "complete".

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use fred::prelude::{Client, KeysInterface, LuaInterface};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::keys::Keys;
use crate::{
    metrics::{Metrics, inc},
    store::{Message, conversation_key},
};

/// Idle conversations leave the cache after this long.
const CACHE_TTL: Duration = Duration::from_secs(24 * 3600);

/// KEYS: set, floor. ARGV: size, ttl, floor of a refill ('' for a push), then (seq, json)
/// pairs. Adds the messages, lowers the floor to a refill's, trims the set to `size` and raises
/// the floor past whatever the trim removed.
const STORE: &str = r#"
for i = 4, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
end
local floor = redis.call('GET', KEYS[2])
if ARGV[3] ~= '' and ((not floor) or tonumber(ARGV[3]) < tonumber(floor)) then
  floor = ARGV[3]
end
local excess = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[1])
if excess > 0 then
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, excess - 1)
  local lowest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if floor and lowest[2] and tonumber(floor) < tonumber(lowest[2]) then floor = lowest[2] end
end
if floor then redis.call('SET', KEYS[2], floor, 'EX', ARGV[2]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"#;

/// KEYS: set, floor. ARGV: before (exclusive; '+inf' for the latest), count. Returns
/// [floor, json...] newest first, or [] when nothing is trusted.
const PAGE: &str = r#"
local floor = redis.call('GET', KEYS[2])
if not floor then return {} end
local items = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[1], floor, 'LIMIT', 0, tonumber(ARGV[2]))
table.insert(items, 1, floor)
return items
"#;

#[derive(Serialize, Deserialize)]
struct Cached {
    seq: i64,
    id: Uuid,
    sender_id: Uuid,
    receiver_id: Uuid,
    content: String,
    created_at_ms: i64,
}

impl From<&Message> for Cached {
    fn from(m: &Message) -> Self {
        Cached {
            seq: m.seq,
            id: m.id,
            sender_id: m.sender_id,
            receiver_id: m.receiver_id,
            content: m.content.clone(),
            created_at_ms: m.created_at.timestamp_millis(),
        }
    }
}

impl From<Cached> for Message {
    fn from(c: Cached) -> Self {
        Message {
            seq: c.seq,
            id: c.id,
            sender_id: c.sender_id,
            receiver_id: c.receiver_id,
            content: c.content,
            created_at: DateTime::<Utc>::from_timestamp_millis(c.created_at_ms).unwrap_or_default(),
        }
    }
}

/// The Redis history cache.
#[derive(Clone)]
pub struct HistoryCache {
    client: Client,
    keys: Keys,
    size: usize,
    metrics: Arc<Metrics>,
}

impl HistoryCache {
    /// A cache of `size` messages per conversation.
    pub fn new(client: Client, keys: Keys, size: usize, metrics: Arc<Metrics>) -> HistoryCache {
        HistoryCache {
            client,
            keys,
            size,
            metrics,
        }
    }

    fn conv_keys(&self, a: Uuid, b: Uuid) -> Vec<String> {
        let (lo, hi) = conversation_key(a, b);
        vec![self.keys.history(lo, hi), self.keys.history_floor(lo, hi)]
    }

    async fn store(
        &self,
        keys: Vec<String>,
        floor: Option<i64>,
        messages: &[Message],
    ) -> Result<(), fred::error::Error> {
        let mut args = vec![
            self.size.to_string(),
            CACHE_TTL.as_secs().to_string(),
            floor.map(|f| f.to_string()).unwrap_or_default(),
        ];
        for m in messages {
            args.push(m.seq.to_string());
            args.push(serde_json::to_string(&Cached::from(m)).unwrap_or_default());
        }
        self.client
            .eval::<i64, _, _, _>(STORE, keys, args)
            .await
            .map(drop)
    }

    /// Adds a just-committed message. On failure the conversation's floor is dropped (or, if Redis
    /// is unreachable, expires with the TTL), so the cache misses rather than lies.
    pub async fn push(&self, message: &Message) {
        if self.size == 0 {
            return;
        }
        let keys = self.conv_keys(message.sender_id, message.receiver_id);
        if let Err(err) = self
            .store(keys.clone(), None, std::slice::from_ref(message))
            .await
        {
            tracing::warn!(error = %err, "history cache push failed; invalidating the conversation");
            inc(&self.metrics.redis_errors);
            // Keep trying until Redis answers: a floor left in place would claim completeness.
            let client = self.client.clone();
            let floor_key = keys[1].clone();
            tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + CACHE_TTL;
                while tokio::time::Instant::now() < deadline {
                    if client.del::<i64, _>(floor_key.clone()).await.is_ok() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            });
        }
    }

    /// Stores the latest page read from the database (oldest first) and marks the cache complete
    /// from its oldest message (or from the start when `has_more` is false).
    pub async fn refill(&self, a: Uuid, b: Uuid, latest: &[Message], has_more: bool) {
        if self.size == 0 {
            return;
        }
        let floor = match (has_more, latest.first()) {
            (false, _) => 0,
            (true, Some(oldest)) => oldest.seq,
            (true, None) => return,
        };
        if let Err(err) = self.store(self.conv_keys(a, b), Some(floor), latest).await {
            tracing::debug!(error = %err, "history cache refill failed");
        }
    }

    /// A page served from the cache, or `None` when the cache cannot answer it completely.
    pub async fn page(
        &self,
        a: Uuid,
        b: Uuid,
        before_seq: Option<i64>,
        limit: usize,
    ) -> Option<(Vec<Message>, bool)> {
        if self.size == 0 {
            return None;
        }
        let before = before_seq.map_or_else(|| "+inf".to_owned(), |s| format!("({s}"));
        let reply: Vec<String> = self
            .client
            .eval(
                PAGE,
                self.conv_keys(a, b),
                vec![before, (limit + 1).to_string()],
            )
            .await
            .map_err(|err| tracing::debug!(error = %err, "history cache read failed"))
            .ok()?;
        let (floor, items) = reply.split_first()?;
        let floor: i64 = floor.parse().ok()?;
        let mut page: Vec<Message> = items
            .iter()
            .map(|j| serde_json::from_str::<Cached>(j).map(Message::from))
            .collect::<Result<_, _>>()
            .ok()?;
        let has_more = if page.len() > limit {
            page.truncate(limit);
            true
        } else if floor == 0 {
            false
        } else if page.len() == limit {
            // Older messages exist below the floor.
            true
        } else {
            return None;
        };
        page.reverse();
        Some((page, has_more))
    }
}
