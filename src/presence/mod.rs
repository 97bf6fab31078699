//! Who is online, end to end. A user is online while at least one of their sockets is connected,
//! on any instance. This module counts each socket in at its handshake and out when it closes
//! ([`SocketPresence`]), keeps the counts (in process, or in Redis with a lease per instance and a
//! sweep of dead instances), and is the only code that emits `user:online` and `user:offline`
//! ([`announce`]), once per user, not once per tab.

mod announce;
mod lease;
mod local;
mod redis;
mod socket;

use std::collections::HashSet;

use uuid::Uuid;

pub use lease::Upkeep;
pub use local::LocalPresence;
pub use socket::{Admission, SocketPresence};

pub use self::redis::RedisPresence;
use crate::{error::AppError, mode::Mode, store::User};

/// The presence registry of this instance, built from the [`Mode`].
#[derive(Clone)]
pub enum Presence {
    /// In-process counts (embedded mode).
    Local(LocalPresence),
    /// Counts shared by every instance through Redis (cluster mode).
    Redis(RedisPresence),
}

impl Presence {
    /// The registry that `mode` calls for.
    pub fn for_mode(mode: &Mode) -> Presence {
        match mode {
            Mode::Embedded => Presence::Local(LocalPresence::default()),
            Mode::Cluster(cluster) => Presence::Redis(RedisPresence::new(
                cluster.client.clone(),
                cluster.keys.clone(),
            )),
        }
    }

    /// Records a connected socket; returns the user's socket count after it (1: they just came
    /// online).
    async fn connect(&self, user: &User) -> Result<usize, AppError> {
        match self {
            Presence::Local(p) => Ok(p.connect(user)),
            Presence::Redis(p) => p.connect(user).await,
        }
    }

    /// Records a closed socket; `true` when the user just went offline.
    async fn disconnect(&self, user_id: Uuid) -> Result<bool, AppError> {
        match self {
            Presence::Local(p) => Ok(p.disconnect(user_id)),
            Presence::Redis(p) => p.disconnect(user_id).await,
        }
    }

    /// Counts out a socket whose count-in failed (Redis may or may not count it); the cluster's
    /// presence repair announces whatever this changes.
    async fn disconnect_uncertain(&self, user_id: Uuid) {
        match self {
            Presence::Local(p) => {
                p.disconnect(user_id);
            }
            Presence::Redis(p) => p.disconnect_uncertain(user_id).await,
        }
    }

    /// Everyone online now.
    pub async fn online_users(&self) -> Result<Vec<User>, AppError> {
        match self {
            Presence::Local(p) => Ok(p.online_users()),
            Presence::Redis(p) => p.online_users().await,
        }
    }

    /// How many users are online.
    pub async fn online_count(&self) -> Result<usize, AppError> {
        match self {
            Presence::Local(p) => Ok(p.online_count()),
            Presence::Redis(p) => p.online_count().await,
        }
    }

    /// Which of `ids` are online.
    pub async fn online_among(&self, ids: &[Uuid]) -> Result<HashSet<Uuid>, AppError> {
        match self {
            Presence::Local(p) => Ok(p.online_among(ids)),
            Presence::Redis(p) => p.online_among(ids).await,
        }
    }
}
