//! The hot history cache: the newest `HISTORY_CACHE_SIZE` messages of each conversation in a
//! Redis sorted set (score = commit seq), written after the database commit and read first by
//! `message:history`.
//!
//! The database stays the source of truth. A conversation's cache is trusted only down to its
//! *floor*: every message with seq >= floor is in the set (floor 0: the whole conversation). The
//! floor is set only by a refill from the database, so a flushed or restarted Redis simply misses
//! and refills; a push that fails drops the floor, so a message missing from the set can never be
//! served as "complete".
//!
//! Pushes are queued to one task that writes whatever has accumulated as one pipeline. A send
//! waits for its push (at most `PUSH_WAIT`) before it is acked and its `message:new` goes out, so
//! whoever learns of a message finds it in history at once (DECISIONS.md, "An ack waits for the
//! history cache").

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::sync::{Notify, mpsc, oneshot};

use chrono::{DateTime, Utc};
use fred::{
    prelude::{Client, ClientLike, KeysInterface, LuaInterface, PubsubInterface},
    types::{ClusterHash, CustomCommand, Value},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{bus::Publish, keys::Keys};
use crate::{
    metrics::{Metrics, inc},
    store::{Conversation, Message, Recipient},
};

/// Idle conversations leave the cache after this long.
const CACHE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Committed messages waiting to be pushed; past this a message is not cached (its
/// conversation's floor is dropped instead).
const PUSH_QUEUE: usize = 16_384;
/// Most pushes in one pipeline.
const PUSH_BATCH: usize = 256;
/// Longest a send waits for its push: a slow Redis delays acks by this much at most (the push
/// still completes, or drops the floor, afterwards).
const PUSH_WAIT: Duration = Duration::from_millis(100);

/// A queued push, the publishes to send right after it, and who waits for it.
type Push = (Message, Option<Publish>, oneshot::Sender<()>);

/// What became of the publishes handed to [`HistoryCache::push`].
#[derive(Debug)]
pub enum Carried {
    /// Sent in the push's pipeline, right after it (a failure is counted and logged there).
    Sent,
    /// Not carried: for the bus to send.
    Left(Option<Publish>),
}

/// How many commands a push's publishes add to its pipeline.
fn publishes(publish: &Option<Publish>) -> usize {
    publish.as_ref().map_or(0, |p| p.channels.len())
}

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

/// `s` with the glob characters of Redis `SCAN MATCH` escaped.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[derive(Serialize, Deserialize)]
struct Cached<'a> {
    seq: i64,
    id: Uuid,
    sender_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    receiver_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room_id: Option<Uuid>,
    #[serde(borrow)]
    content: std::borrow::Cow<'a, str>,
    created_at_ms: i64,
}

impl<'a> From<&'a Message> for Cached<'a> {
    fn from(m: &'a Message) -> Self {
        let (receiver_id, room_id) = match m.to {
            Recipient::User(id) => (Some(id), None),
            Recipient::Room(id) => (None, Some(id)),
        };
        Cached {
            seq: m.seq,
            id: m.id,
            sender_id: m.sender_id,
            receiver_id,
            room_id,
            content: std::borrow::Cow::Borrowed(&m.content),
            created_at_ms: m.created_at.timestamp_millis(),
        }
    }
}

impl From<Cached<'_>> for Message {
    fn from(c: Cached<'_>) -> Self {
        let to = match (c.room_id, c.receiver_id) {
            (Some(room), _) => Recipient::Room(room),
            (None, receiver) => Recipient::User(receiver.unwrap_or_default()),
        };
        Message {
            seq: c.seq,
            id: c.id,
            sender_id: c.sender_id,
            to,
            content: c.content.into_owned(),
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
    /// To the push task; `None` in that task's own copy, so the queue closes with the last handle.
    pushes: Option<mpsc::Sender<Push>>,
    /// Pushes queued or being written.
    in_flight: Arc<AtomicUsize>,
    invalidations: Arc<Invalidations>,
}

/// Unlinks `keys` and returns those that are gone. On a Redis Cluster each key is its own command
/// (a conversation's keys have a hash tag of their own, and one command may not span slots), 64
/// at a time; on one Redis server they go in batches.
async fn unlink_each(client: &Client, keys: &[String]) -> Vec<String> {
    let mut gone = Vec::with_capacity(keys.len());
    if client.is_clustered() {
        for chunk in keys.chunks(64) {
            let results = futures_util::future::join_all(
                chunk.iter().map(|key| client.unlink::<i64, _>(key.clone())),
            )
            .await;
            for (key, result) in chunk.iter().zip(results) {
                if result.is_ok() {
                    gone.push(key.clone());
                }
            }
        }
    } else {
        for chunk in keys.chunks(1000) {
            if client.unlink::<i64, _>(chunk.to_vec()).await.is_ok() {
                gone.extend_from_slice(chunk);
            }
        }
    }
    gone
}

/// Floor keys to delete, retried until Redis answers: a floor left in place would claim the cache
/// holds a message it does not. One set and one task, however many pushes fail during an outage.
#[derive(Default)]
struct Invalidations {
    floors: Mutex<HashSet<String>>,
    wake: Notify,
}

impl Invalidations {
    fn floors(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.floors.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn run(self: Arc<Self>, client: Client) {
        loop {
            self.wake.notified().await;
            loop {
                let floors: Vec<String> = self.floors().iter().cloned().collect();
                if floors.is_empty() {
                    break;
                }
                let deleted = unlink_each(&client, &floors).await;
                {
                    let mut pending = self.floors();
                    for floor in &deleted {
                        pending.remove(floor);
                    }
                }
                if deleted.len() < floors.len() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

impl HistoryCache {
    /// A cache of `size` messages per conversation; starts its push task on the current runtime.
    pub fn new(client: Client, keys: Keys, size: usize, metrics: Arc<Metrics>) -> HistoryCache {
        let (tx, rx) = mpsc::channel(PUSH_QUEUE);
        let invalidations = Arc::new(Invalidations::default());
        tokio::spawn(invalidations.clone().run(client.clone()));
        let cache = HistoryCache {
            client,
            keys,
            size,
            metrics,
            pushes: None,
            in_flight: Arc::default(),
            invalidations,
        };
        tokio::spawn(cache.clone().push_loop(rx));
        HistoryCache {
            pushes: Some(tx),
            ..cache
        }
    }

    fn conv_keys(&self, conversation: Conversation) -> Vec<String> {
        let (lo, hi) = conversation.key();
        vec![self.keys.history(lo, hi), self.keys.history_floor(lo, hi)]
    }

    /// The arguments of `STORE` for `messages` (and a refill's `floor`).
    fn store_args(&self, floor: Option<i64>, messages: &[Message]) -> Vec<String> {
        let mut args = vec![
            self.size.to_string(),
            CACHE_TTL.as_secs().to_string(),
            floor.map(|f| f.to_string()).unwrap_or_default(),
        ];
        for m in messages {
            args.push(m.seq.to_string());
            args.push(serde_json::to_string(&Cached::from(m)).unwrap_or_default());
        }
        args
    }

    /// Adds a just-committed message to the cache, waiting until Redis has it (at most
    /// `PUSH_WAIT`; not at all while Redis is unreachable). If it cannot be cached, the
    /// conversation's floor is dropped (or, if Redis is unreachable, expires with the TTL), so the
    /// cache misses rather than lies.
    ///
    /// `publish`, the message's delivery to the other instances, goes out in the same pipeline
    /// right after the push: one round trip for both, and since Redis runs a connection's
    /// commands in order, no instance hears of the message before the cache has it. It is left
    /// for the bus to send on a Redis Cluster (the channel and the conversation may be on
    /// different nodes), while Redis is unreachable, and when the message cannot be queued.
    pub async fn push(&self, message: Message, publish: Option<Publish>) -> Carried {
        let Some(queue) = self.pushes.as_ref().filter(|_| self.size > 0) else {
            return Carried::Left(publish);
        };
        let connected = self.client.is_connected();
        let (carried, left) = match publish {
            Some(p) if connected && !self.client.is_clustered() => (Some(p), None),
            other => (None, other),
        };
        let carrying = carried.is_some();
        let (done, written) = oneshot::channel();
        self.in_flight.fetch_add(1, Relaxed);
        if let Err(err) = queue.try_send((message, carried, done)) {
            self.in_flight.fetch_sub(1, Relaxed);
            let (message, carried, _) = match err {
                mpsc::error::TrySendError::Full(p) | mpsc::error::TrySendError::Closed(p) => p,
            };
            tracing::warn!("history cache push queue full; invalidating the conversation");
            self.invalidate(&message);
            return Carried::Left(carried.or(left));
        }
        if !connected {
            return Carried::Left(left);
        }
        let _ = tokio::time::timeout(PUSH_WAIT, written).await;
        if carrying {
            Carried::Sent
        } else {
            Carried::Left(left)
        }
    }

    /// Waits (at most `limit`, and only while pushes keep completing) until every queued push
    /// has been written: at shutdown, so the cache holds every message this instance committed.
    pub async fn drain(&self, limit: Duration) {
        // With Redis unreachable nothing queued can be written: the lease this instance fails to
        // release expires, and the instance that sweeps it invalidates the cache.
        if !self.client.is_connected() {
            return;
        }
        crate::drain::while_progressing(|| self.in_flight.load(Relaxed), limit).await;
    }

    async fn push_loop(self, mut queue: mpsc::Receiver<Push>) {
        let mut batch = Vec::with_capacity(PUSH_BATCH);
        while queue.recv_many(&mut batch, PUSH_BATCH).await > 0 {
            let pipeline = self.client.pipeline();
            for (m, publish, _) in &batch {
                // EVAL script 2 set floor args… (routed by the set's key on a Redis Cluster).
                let mut args = vec![Value::from_static_str(STORE), Value::from_static_str("2")];
                let keys = self.conv_keys(m.conversation());
                let argv = self.store_args(None, std::slice::from_ref(m));
                args.extend(keys.into_iter().chain(argv).map(Value::from));
                let eval = CustomCommand::new("EVAL", ClusterHash::Offset(2), false);
                // Queued, not sent: a pipeline's commands go out together in `try_all`.
                let _: Result<(), _> = pipeline.custom(eval, args).await;
                if let Some(publish) = publish {
                    for channel in &publish.channels {
                        let bytes = publish.bytes.clone();
                        let _: Result<(), _> = pipeline.spublish(channel.as_str(), bytes).await;
                    }
                }
            }
            let results: Vec<Result<Value, fred::error::Error>> = pipeline.try_all().await;
            let sent: usize = batch.iter().map(|(_, p, _)| 1 + publishes(p)).sum();
            let all_failed = results.len() != sent;
            let mut results = results.into_iter();
            for (m, publish, done) in batch.drain(..) {
                let failed = match results.next() {
                    Some(Ok(_)) => all_failed,
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, "history cache push failed; invalidating the conversation");
                        true
                    }
                    None => true,
                };
                if failed {
                    inc(&self.metrics.redis_errors);
                    self.invalidate(&m);
                }
                let n = publishes(&publish);
                let published = results.by_ref().take(n).filter(Result::is_ok).count();
                if published < n || (n > 0 && all_failed) {
                    // What was stored stays stored; receivers elsewhere recover it with sync.
                    inc(&self.metrics.redis_errors);
                    tracing::warn!("cross-instance delivery failed");
                }
                let _ = done.send(());
                self.in_flight.fetch_sub(1, Relaxed);
            }
        }
    }

    /// Drops every conversation's floor, so each is read from the database (and refilled) next
    /// time; returns how many were dropped. On a Redis Cluster the floors are spread over every
    /// master (each conversation has a hash tag of its own): each master is scanned.
    pub async fn invalidate_all(&self) -> Result<usize, fred::error::Error> {
        use futures_util::TryStreamExt;
        let pattern = format!("{}*", glob_escape(&self.keys.history_floor_prefix()));
        let keys: Vec<fred::types::Key> = if self.client.is_clustered() {
            self.client
                .scan_cluster_buffered(pattern, Some(1000), None)
                .try_collect()
                .await?
        } else {
            self.client
                .scan_buffered(pattern, Some(1000), None)
                .try_collect()
                .await?
        };
        let keys: Vec<String> = keys
            .iter()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect();
        let deleted = unlink_each(&self.client, &keys).await;
        if deleted.len() < keys.len() {
            return Err(fred::error::Error::new(
                fred::error::ErrorKind::IO,
                format!(
                    "{} of {} floors could not be dropped",
                    keys.len() - deleted.len(),
                    keys.len()
                ),
            ));
        }
        Ok(keys.len())
    }

    /// Drops the floor of `message`'s conversation (in the background, until Redis answers).
    fn invalidate(&self, message: &Message) {
        let (lo, hi) = message.conversation().key();
        self.invalidations
            .floors()
            .insert(self.keys.history_floor(lo, hi));
        self.invalidations.wake.notify_one();
    }

    /// Forgets a conversation that no longer exists (a deleted room).
    pub async fn forget(&self, conversation: Conversation) {
        if let Err(err) = self
            .client
            .del::<i64, _>(self.conv_keys(conversation))
            .await
        {
            tracing::debug!(error = %err, "history cache forget failed");
        }
    }

    /// Stores the latest page read from the database (oldest first) and marks the cache complete
    /// from its oldest message (or from the start when `has_more` is false).
    pub async fn refill(&self, conversation: Conversation, latest: &[Message], has_more: bool) {
        if self.size == 0 {
            return;
        }
        let floor = match (has_more, latest.first()) {
            (false, _) => 0,
            (true, Some(oldest)) => oldest.seq,
            (true, None) => return,
        };
        let stored = self
            .client
            .eval::<i64, _, _, _>(
                STORE,
                self.conv_keys(conversation),
                self.store_args(Some(floor), latest),
            )
            .await;
        if let Err(err) = stored {
            tracing::debug!(error = %err, "history cache refill failed");
        }
    }

    /// A page served from the cache, or `None` when the cache cannot answer it completely.
    pub async fn page(
        &self,
        conversation: Conversation,
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
                self.conv_keys(conversation),
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
