//! Cluster-wide presence in Redis: a socket count per user (cluster-wide and per instance) and the
//! online users' profiles for `user:init`. Every transition runs in a Lua script, so exactly one
//! instance sees a user come online or go offline.
//!
//! This instance's own sockets (`LocalPresence`) are the truth its share of Redis copies. A
//! script that fails or times out leaves that copy uncertain (a timed-out script may still have
//! run), so the user is queued for [`RedisPresence::repair`]: once Redis answers again, one
//! script sets this instance's counts to its real sockets and the queued users' state is
//! announced again. Repairs exclude the per-socket scripts (`gate`), so none is lost in between.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use fred::prelude::{Client, ClientLike, HashesInterface, LuaInterface};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::local::LocalPresence;
use crate::{cluster::Keys, error::AppError, store::User};

const CONNECT: &str = r#"
redis.call('HINCRBY', KEYS[3], ARGV[1], 1)
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if n == 1 then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
return n
"#;

const DISCONNECT: &str = r#"
local mine = redis.call('HINCRBY', KEYS[3], ARGV[1], -1)
if mine <= 0 then redis.call('HDEL', KEYS[3], ARGV[1]) end
if mine < 0 then return -1 end
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)
if n <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 0
end
return n
"#;

/// Removes every instance whose lease expired before ARGV[1] (epoch ms), with its sockets;
/// returns `{crashed, gone}`: how many of them died without releasing their lease (a released
/// lease has score 0), and the users who thereby went offline.
const SWEEP: &str = r#"
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'WITHSCORES')
local gone = {}
local crashed = 0
for j = 1, #dead, 2 do
  local inst = dead[j]
  if tonumber(dead[j + 1]) > 0 then crashed = crashed + 1 end
  local h = ARGV[2] .. inst
  local entries = redis.call('HGETALL', h)
  for i = 1, #entries, 2 do
    local uid = entries[i]
    local n = redis.call('HINCRBY', KEYS[1], uid, -tonumber(entries[i + 1]))
    if n <= 0 then
      redis.call('HDEL', KEYS[1], uid)
      redis.call('HDEL', KEYS[2], uid)
      table.insert(gone, uid)
    end
  end
  redis.call('DEL', h)
  redis.call('ZREM', KEYS[3], inst)
end
return {crashed, gone}
"#;

/// Makes this instance's counts exactly its sockets: ARGV[1] = n, then n triples (user id,
/// sockets here, profile), then the uncertain user ids. Users counted here but absent from the
/// triples are counted out; the cluster-wide counts move by each difference. Returns
/// `{online, offline}`: the users who thereby came online or went offline, plus each uncertain
/// user's state as it now is (online if they have a socket here; offline if nobody counts them).
const RESYNC: &str = r#"
local n = tonumber(ARGV[1])
local want = {}
for i = 2, 1 + 3 * n, 3 do want[ARGV[i]] = true end
local online, offline = {}, {}
local function set(uid, count, profile)
  local delta = count - tonumber(redis.call('HGET', KEYS[3], uid) or '0')
  if delta == 0 then return end
  if count > 0 then redis.call('HSET', KEYS[3], uid, count) else redis.call('HDEL', KEYS[3], uid) end
  local all = redis.call('HINCRBY', KEYS[1], uid, delta)
  if all <= 0 then
    redis.call('HDEL', KEYS[1], uid)
    redis.call('HDEL', KEYS[2], uid)
    if all - delta > 0 then offline[uid] = true end
  elseif all - delta <= 0 then
    redis.call('HSET', KEYS[2], uid, profile)
    online[uid] = true
  end
end
local here = redis.call('HGETALL', KEYS[3])
for i = 1, #here, 2 do
  if not want[here[i]] then set(here[i], 0, '') end
end
for i = 2, 1 + 3 * n, 3 do set(ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]) end
for i = 2 + 3 * n, #ARGV do
  local uid = ARGV[i]
  if want[uid] then
    online[uid] = true
  elseif tonumber(redis.call('HGET', KEYS[1], uid) or '0') <= 0 then
    offline[uid] = true
  end
end
local on, off = {}, {}
for uid in pairs(online) do table.insert(on, uid) end
for uid in pairs(offline) do table.insert(off, uid) end
return {on, off}
"#;

/// How long presence must have been error-free before a repair runs, and the wait after a
/// repair failed: a repair excludes connects while it runs, so it is not retried in a tight loop
/// against a Redis that is still struggling.
const REPAIR_QUIET: Duration = Duration::from_secs(1);
const REPAIR_RETRY: Duration = Duration::from_secs(3);

#[derive(Serialize, Deserialize)]
struct StoredUser {
    id: Uuid,
    username: String,
    created_at_ms: i64,
}

/// Presence shared by every instance through Redis.
#[derive(Clone)]
pub struct RedisPresence {
    pub(super) client: Client,
    pub(super) keys: Keys,
    /// This instance's own sockets: the truth its counts in Redis are repaired to.
    local: LocalPresence,
    /// Shared by the per-socket scripts, exclusive for a repair.
    gate: Arc<tokio::sync::RwLock<()>>,
    pending: Arc<Mutex<PendingRepair>>,
}

/// What a repair has to do.
#[derive(Default)]
struct PendingRepair {
    requested: bool,
    /// Users whose presence script failed: their state is announced again after the repair.
    uncertain: HashSet<Uuid>,
    /// No repair before this instant.
    not_before: Option<Instant>,
}

/// What a sweep removed.
#[derive(Debug, Default)]
pub struct Swept {
    /// Instances that died without releasing their lease (crashed, killed, cut off).
    pub crashed: usize,
    /// Users who went offline with them.
    pub gone: Vec<Uuid>,
}

/// What a repair changed: who is to be announced online and offline.
#[derive(Debug, Default)]
pub struct Repaired {
    /// Users online now who may not have been announced (a repeat is harmless).
    pub online: Vec<User>,
    /// Users offline now who may not have been announced.
    pub offline: Vec<Uuid>,
}

fn profile(user: &User) -> Result<String, AppError> {
    serde_json::to_string(&StoredUser {
        id: user.id,
        username: user.username.clone(),
        created_at_ms: user.created_at.timestamp_millis(),
    })
    .map_err(|e| AppError::Internal(e.to_string()))
}

fn redis_err(err: fred::error::Error) -> AppError {
    AppError::Unavailable(format!("redis: {err}"))
}

impl RedisPresence {
    /// Presence through `client`.
    pub fn new(client: Client, keys: Keys) -> RedisPresence {
        RedisPresence {
            client,
            keys,
            local: LocalPresence::default(),
            gate: Arc::default(),
            pending: Arc::default(),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, PendingRepair> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a repair for `user`, whose count in Redis is now uncertain.
    fn uncertain(&self, user: Uuid) {
        let mut pending = self.pending();
        pending.requested = true;
        pending.uncertain.insert(user);
        pending.not_before = Some(Instant::now() + REPAIR_QUIET);
    }

    /// Queues a repair of every count of this instance (its lease had expired and was swept).
    pub(super) fn request_repair(&self) {
        self.pending().requested = true;
    }

    fn script_keys(&self) -> Vec<String> {
        vec![
            self.keys.presence_counts(),
            self.keys.presence_users(),
            self.keys.instance_sockets(),
        ]
    }

    /// Counts a socket in; returns the user's sockets cluster-wide now (1: just came online).
    /// On an error the socket is still counted here, and a repair will count it in Redis.
    pub async fn connect(&self, user: &User) -> Result<usize, AppError> {
        let _shared = self.gate.read().await;
        self.local.connect(user);
        let n: Result<i64, _> = self
            .client
            .eval(
                CONNECT,
                self.script_keys(),
                vec![user.id.to_string(), profile(user)?],
            )
            .await;
        match n {
            Ok(n) => Ok(n.max(0) as usize),
            Err(err) => {
                self.uncertain(user.id);
                Err(redis_err(err))
            }
        }
    }

    /// Counts a socket out; `true` when the user just went offline cluster-wide. On an error the
    /// socket is still counted out here, and a repair will count it out of Redis.
    pub async fn disconnect(&self, user_id: Uuid) -> Result<bool, AppError> {
        let _shared = self.gate.read().await;
        self.local.disconnect(user_id);
        let n: Result<i64, _> = self
            .client
            .eval(DISCONNECT, self.script_keys(), vec![user_id.to_string()])
            .await;
        match n {
            Ok(n) => Ok(n == 0),
            Err(err) => {
                self.uncertain(user_id);
                Err(redis_err(err))
            }
        }
    }

    /// Counts out a socket whose `connect` failed: Redis may or may not count it, so only the
    /// repair may touch Redis for it.
    pub async fn disconnect_uncertain(&self, user_id: Uuid) {
        let _shared = self.gate.read().await;
        self.local.disconnect(user_id);
        self.uncertain(user_id);
    }

    /// Everyone online, from one hash: O(online users), no question to other instances.
    pub async fn online_users(&self) -> Result<Vec<User>, AppError> {
        let profiles: Vec<String> = self
            .client
            .hvals(self.keys.presence_users())
            .await
            .map_err(redis_err)?;
        let mut users: Vec<User> = profiles
            .iter()
            .filter_map(|p| serde_json::from_str::<StoredUser>(p).ok())
            .map(|s| User {
                id: s.id,
                username: s.username,
                created_at: DateTime::<Utc>::from_timestamp_millis(s.created_at_ms)
                    .unwrap_or_default(),
            })
            .collect();
        users.sort_by_key(|u| u.created_at);
        Ok(users)
    }

    /// How many users are online on all instances.
    pub async fn online_count(&self) -> Result<usize, AppError> {
        let n: i64 = self
            .client
            .hlen(self.keys.presence_counts())
            .await
            .map_err(redis_err)?;
        Ok(n.max(0) as usize)
    }

    /// Which of `ids` are online.
    pub async fn online_among(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>, AppError> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let fields: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        let counts: Vec<Option<i64>> = self
            .client
            .hmget(self.keys.presence_counts(), fields)
            .await
            .map_err(redis_err)?;
        Ok(ids
            .iter()
            .zip(counts)
            .filter(|(_, c)| c.unwrap_or(0) > 0)
            .map(|(id, _)| *id)
            .collect())
    }

    /// Removes expired instances; returns how many had crashed and the users who went offline.
    pub(super) async fn sweep(&self, now_ms: i64) -> Result<Swept, AppError> {
        let keys = vec![
            self.keys.presence_counts(),
            self.keys.presence_users(),
            self.keys.leases(),
        ];
        let (crashed, gone): (i64, Vec<String>) = self
            .client
            .eval(
                SWEEP,
                keys,
                vec![now_ms.to_string(), self.keys.instance_sockets_prefix()],
            )
            .await
            .map_err(redis_err)?;
        Ok(Swept {
            crashed: crashed.max(0) as usize,
            gone: gone
                .iter()
                .filter_map(|g| Uuid::parse_str(g).ok())
                .collect(),
        })
    }

    /// Sets this instance's counts in Redis to its real sockets, if a repair is due (a script
    /// failed, or the lease was lost) and presence has been quiet long enough; returns who is to
    /// be announced, or `None` when nothing was due.
    pub(super) async fn repair(&self) -> Result<Option<Repaired>, AppError> {
        // While Redis is unreachable a repair would only hold up connects until it timed out.
        if !self.client.is_connected() {
            return Ok(None);
        }
        let uncertain = {
            let mut pending = self.pending();
            let due = pending.requested && pending.not_before.is_none_or(|t| Instant::now() >= t);
            if !due {
                return Ok(None);
            }
            pending.requested = false;
            std::mem::take(&mut pending.uncertain)
        };
        let result = self.resync(&uncertain).await;
        if result.is_err() {
            let mut pending = self.pending();
            pending.requested = true;
            pending.uncertain.extend(uncertain);
            pending.not_before = Some(Instant::now() + REPAIR_RETRY);
        }
        result.map(Some)
    }

    async fn resync(&self, uncertain: &HashSet<Uuid>) -> Result<Repaired, AppError> {
        let _exclusive = self.gate.write().await;
        let sockets = self.local.sockets_per_user();
        let mut args = Vec::with_capacity(1 + sockets.len() * 3 + uncertain.len());
        args.push(sockets.len().to_string());
        for (user, count) in &sockets {
            args.push(user.id.to_string());
            args.push(count.to_string());
            args.push(profile(user)?);
        }
        args.extend(uncertain.iter().map(Uuid::to_string));
        let (online, offline): (Vec<String>, Vec<String>) = self
            .client
            .eval(RESYNC, self.script_keys(), args)
            .await
            .map_err(redis_err)?;
        let online: HashSet<Uuid> = online.iter().filter_map(|u| u.parse().ok()).collect();
        Ok(Repaired {
            online: sockets
                .into_iter()
                .map(|(user, _)| user)
                .filter(|u| online.contains(&u.id))
                .collect(),
            offline: offline.iter().filter_map(|u| u.parse().ok()).collect(),
        })
    }
}
