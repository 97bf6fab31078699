//! Every Redis key and channel name, in one place. Presence keys share the hash tag
//! `{<prefix>:presence}` so its scripts touch one slot on a Redis Cluster; each conversation's
//! cache keys share a tag of their own.

use uuid::Uuid;

/// Key names for one deployment (prefix) and instance.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
    instance: String,
}

impl Keys {
    /// Keys under `prefix` for instance `instance`.
    pub fn new(prefix: &str, instance: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
            instance: instance.to_owned(),
        }
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Prefix of the Socket.io adapter's channels.
    pub fn channel_prefix(&self) -> String {
        format!("{}:sio", self.prefix)
    }

    /// The bus channel every instance subscribes to.
    pub fn bus_all(&self) -> String {
        format!("{}:bus", self.prefix)
    }

    /// The bus channel of one instance (answers to its requests).
    pub fn bus_instance(&self, instance: &str) -> String {
        format!("{}:bus:{instance}", self.prefix)
    }

    /// HASH user id → sockets cluster-wide.
    pub fn presence_counts(&self) -> String {
        format!("{{{}:presence}}:counts", self.prefix)
    }

    /// HASH user id → user JSON, for `user:init`.
    pub fn presence_users(&self) -> String {
        format!("{{{}:presence}}:users", self.prefix)
    }

    /// ZSET instance id → lease expiry (epoch ms).
    pub fn leases(&self) -> String {
        format!("{{{}:presence}}:leases", self.prefix)
    }

    /// Prefix of the per-instance HASH user id → sockets on that instance.
    pub fn instance_sockets_prefix(&self) -> String {
        format!("{{{}:presence}}:inst:", self.prefix)
    }

    /// This instance's HASH user id → sockets.
    pub fn instance_sockets(&self) -> String {
        format!("{}{}", self.instance_sockets_prefix(), self.instance)
    }

    /// ZSET seq → message JSON: the newest messages of a conversation.
    pub fn history(&self, lo: Uuid, hi: Uuid) -> String {
        format!("{}:history:{{{lo}:{hi}}}", self.prefix)
    }

    /// The seq from which the cached conversation is complete (0: from its first message).
    pub fn history_floor(&self, lo: Uuid, hi: Uuid) -> String {
        format!("{}{{{lo}:{hi}}}", self.history_floor_prefix())
    }

    /// STRING: the theoretical arrival time (µs, Redis clock) of a user's next `message:send`
    /// under the per-user budget (GCRA); one key per user, so it lives on one slot.
    pub fn send_budget(&self, user: Uuid) -> String {
        format!("{}:send-budget:{user}", self.prefix)
    }

    /// HASH `failures`, `until` (epoch ms) of failed logins for one username (lowercased).
    /// Login keys share the hash tag `{<prefix>:login}` so one script updates a username's and
    /// an address's entries together on a Redis Cluster.
    pub fn login_user(&self, username: &str) -> String {
        format!("{{{}:login}}:user:{username}", self.prefix)
    }

    /// HASH `failures`, `until` of failed logins from one client address.
    pub fn login_address(&self, address: std::net::IpAddr) -> String {
        format!("{{{}:login}}:addr:{address}", self.prefix)
    }

    /// What every conversation's floor key starts with.
    pub fn history_floor_prefix(&self) -> String {
        format!("{}:history-floor:", self.prefix)
    }
}
