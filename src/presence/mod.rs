//! Who is online. A user is online while at least one of their sockets is connected, on any
//! instance; `connect` and `disconnect` report the transitions, so `user:online` and
//! `user:offline` are sent once per user, not once per tab.

mod local;

use std::collections::HashSet;

use uuid::Uuid;

pub use local::LocalPresence;

use crate::{cluster::RedisPresence, error::AppError, store::User};

/// The presence registry of this deployment, chosen at start-up.
#[derive(Clone)]
pub enum Presence {
    /// In-process (single node).
    Local(LocalPresence),
    /// Shared through Redis (cluster).
    Redis(RedisPresence),
}

impl Presence {
    /// Records a connected socket; returns the user's socket count after it (1: they just came
    /// online).
    pub async fn connect(&self, user: &User) -> Result<usize, AppError> {
        match self {
            Presence::Local(p) => Ok(p.connect(user)),
            Presence::Redis(p) => p.connect(user).await,
        }
    }

    /// Records a closed socket; `true` when the user just went offline.
    pub async fn disconnect(&self, user_id: Uuid) -> Result<bool, AppError> {
        match self {
            Presence::Local(p) => Ok(p.disconnect(user_id)),
            Presence::Redis(p) => p.disconnect(user_id).await,
        }
    }

    /// Counts out a socket whose `connect` failed (it may or may not be counted cluster-wide);
    /// the cluster's presence repair announces what changed.
    pub async fn forget(&self, user_id: Uuid) {
        match self {
            Presence::Local(p) => {
                p.disconnect(user_id);
            }
            Presence::Redis(p) => p.forget(user_id).await,
        }
    }

    /// Everyone online now.
    pub async fn online_users(&self) -> Result<Vec<User>, AppError> {
        match self {
            Presence::Local(p) => Ok(p.online_users()),
            Presence::Redis(p) => p.online_users().await,
        }
    }

    /// How many sockets the user has open (all instances).
    pub async fn socket_count(&self, user_id: Uuid) -> Result<usize, AppError> {
        match self {
            Presence::Local(p) => Ok(p.socket_count(user_id)),
            Presence::Redis(p) => p.socket_count(user_id).await,
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
