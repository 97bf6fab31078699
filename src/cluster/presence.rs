//! Cluster-wide presence in Redis: a socket count per user (cluster-wide and per instance), the
//! online users' profiles for `user:init`, and a lease per instance. Every transition runs in a
//! Lua script, so exactly one instance sees a user come online or go offline.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use fred::prelude::{Client, HashesInterface, LuaInterface};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::keys::Keys;
use crate::{error::AppError, presence::LocalPresence, store::User};

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
/// returns the users who thereby went offline.
const SWEEP: &str = r#"
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1])
local gone = {}
for _, inst in ipairs(dead) do
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
return gone
"#;

/// Sets this instance's count of each user in ARGV (triples: id, sockets, profile) to the given
/// number, adjusting the cluster-wide counts by the difference; returns who came back online.
const RESYNC: &str = r#"
local back = {}
for i = 1, #ARGV, 3 do
  local uid = ARGV[i]
  local delta = tonumber(ARGV[i + 1]) - tonumber(redis.call('HGET', KEYS[3], uid) or '0')
  if delta ~= 0 then
    redis.call('HINCRBY', KEYS[3], uid, delta)
    local n = redis.call('HINCRBY', KEYS[1], uid, delta)
    if n > 0 and n == delta then
      redis.call('HSET', KEYS[2], uid, ARGV[i + 2])
      table.insert(back, uid)
    end
  end
end
return back
"#;

#[derive(Serialize, Deserialize)]
struct StoredUser {
    id: Uuid,
    username: String,
    created_at_ms: i64,
}

/// Presence shared by every instance through Redis.
#[derive(Clone)]
pub struct RedisPresence {
    client: Client,
    keys: Keys,
    /// This instance's own sockets, to re-register them if our lease was ever lost.
    local: LocalPresence,
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
        }
    }

    fn script_keys(&self) -> Vec<String> {
        vec![
            self.keys.presence_counts(),
            self.keys.presence_users(),
            self.keys.instance_sockets(),
        ]
    }

    /// Counts a socket in; returns the user's sockets cluster-wide now (1: just came online).
    pub async fn connect(&self, user: &User) -> Result<usize, AppError> {
        self.local.connect(user);
        let n: i64 = self
            .client
            .eval(
                CONNECT,
                self.script_keys(),
                vec![user.id.to_string(), profile(user)?],
            )
            .await
            .map_err(redis_err)?;
        Ok(n.max(0) as usize)
    }

    /// Counts a socket out; `true` when the user just went offline cluster-wide.
    pub async fn disconnect(&self, user_id: Uuid) -> Result<bool, AppError> {
        self.local.disconnect(user_id);
        let n: i64 = self
            .client
            .eval(DISCONNECT, self.script_keys(), vec![user_id.to_string()])
            .await
            .map_err(redis_err)?;
        Ok(n == 0)
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

    /// How many sockets the user has open on all instances.
    pub async fn socket_count(&self, user_id: Uuid) -> Result<usize, AppError> {
        let n: Option<i64> = self
            .client
            .hget(self.keys.presence_counts(), user_id.to_string())
            .await
            .map_err(redis_err)?;
        Ok(n.unwrap_or(0).max(0) as usize)
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

    /// Removes expired instances; returns the users who went offline with them.
    pub(super) async fn sweep(&self, now_ms: i64) -> Result<Vec<Uuid>, AppError> {
        let keys = vec![
            self.keys.presence_counts(),
            self.keys.presence_users(),
            self.keys.leases(),
        ];
        let gone: Vec<String> = self
            .client
            .eval(
                SWEEP,
                keys,
                vec![now_ms.to_string(), self.keys.instance_sockets_prefix()],
            )
            .await
            .map_err(redis_err)?;
        Ok(gone
            .iter()
            .filter_map(|g| Uuid::parse_str(g).ok())
            .collect())
    }

    /// Sets this instance's counts back to its real sockets after its lease was lost (it was
    /// paused or cut off longer than the lease); returns the users who came back online.
    pub(super) async fn reregister(&self) -> Result<Vec<User>, AppError> {
        let sockets = self.local.sockets_per_user();
        if sockets.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = Vec::with_capacity(sockets.len() * 3);
        for (user, count) in &sockets {
            args.push(user.id.to_string());
            args.push(count.to_string());
            args.push(profile(user)?);
        }
        let back: Vec<String> = self
            .client
            .eval(RESYNC, self.script_keys(), args)
            .await
            .map_err(redis_err)?;
        Ok(sockets
            .into_iter()
            .map(|(user, _)| user)
            .filter(|u| back.contains(&u.id.to_string()))
            .collect())
    }

    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    pub(super) fn keys(&self) -> &Keys {
        &self.keys
    }
}
