//! Rows as the database returns them, and the domain types the rest of the server uses.
//! Rows never leave the store: a `UserRow` carries the password hash and has no `Serialize`.

use chrono::{DateTime, Utc};
use diesel::Queryable;
use uuid::Uuid;

use super::types::DbId;

/// A `users` row, hash included.
#[derive(Debug, Clone, Queryable)]
pub struct UserRow {
    pub id: DbId,
    pub username: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

/// A `messages` row (the columns the server reads).
#[derive(Debug, Clone, Queryable)]
pub struct MessageRow {
    pub seq: i64,
    pub id: DbId,
    pub sender_id: DbId,
    pub receiver_id: DbId,
    pub content: String,
    pub client_msg_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// A registered account, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The account's id.
    pub id: Uuid,
    /// The name as spelled at registration.
    pub username: String,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// An account with its bcrypt hash, for login only.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The account.
    pub user: User,
    /// Its bcrypt hash.
    pub password_hash: String,
}

/// A stored direct message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Commit order; used for cursors, never shown to clients.
    pub seq: i64,
    /// The public id (UUID v7).
    pub id: Uuid,
    /// Who sent it.
    pub sender_id: Uuid,
    /// Who it is for.
    pub receiver_id: Uuid,
    /// The text, as sent.
    pub content: String,
    /// When it was accepted (millisecond precision).
    pub created_at: DateTime<Utc>,
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Its public id, chosen before the insert.
    pub id: Uuid,
    /// Who sends it.
    pub sender_id: Uuid,
    /// Who it is for.
    pub receiver_id: Uuid,
    /// The text, as sent.
    pub content: String,
    /// The sender's idempotency key.
    pub client_msg_id: Option<String>,
    /// When it was accepted.
    pub created_at: DateTime<Utc>,
}

impl NewMessage {
    /// A new message with a fresh time-ordered id, stamped now (millisecond precision, as on the wire).
    pub fn new(
        sender_id: Uuid,
        receiver_id: Uuid,
        content: String,
        client_msg_id: Option<String>,
    ) -> Self {
        let now = Utc::now();
        let created_at = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        NewMessage {
            id: Uuid::now_v7(),
            sender_id,
            receiver_id,
            content,
            client_msg_id,
            created_at,
        }
    }

    /// The conversation key: both participants in canonical order.
    pub fn peers(&self) -> (Uuid, Uuid) {
        conversation_key(self.sender_id, self.receiver_id)
    }
}

/// The canonical (low, high) pair of a direct conversation.
pub fn conversation_key(a: Uuid, b: Uuid) -> (Uuid, Uuid) {
    if a <= b { (a, b) } else { (b, a) }
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        User {
            id: row.id.0,
            username: row.username,
            created_at: row.created_at,
        }
    }
}

impl From<MessageRow> for Message {
    fn from(row: MessageRow) -> Self {
        Message {
            seq: row.seq,
            id: row.id.0,
            sender_id: row.sender_id.0,
            receiver_id: row.receiver_id.0,
            content: row.content,
            created_at: row.created_at,
        }
    }
}
