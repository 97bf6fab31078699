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
    pub receiver_id: Option<DbId>,
    pub room_id: Option<DbId>,
    pub content: String,
    pub client_msg_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// What the group commit did with one message.
#[derive(Debug)]
pub enum Inserted {
    /// Stored now; for a room message, the room's membership version at the commit.
    New(MessageRow, Option<i64>),
    /// A retry: the message stored before with the same `(sender, clientMsgId)`.
    Existing(MessageRow),
    /// Not stored: the sender is not a member of the room.
    Refused,
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
    /// An operator disabled it (`nexus-chat user disable`): it may not sign in.
    pub disabled: bool,
}

/// Where a message goes: one user (a direct message) or a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Recipient {
    /// A direct message to this user.
    User(Uuid),
    /// A message to every member of this room.
    Room(Uuid),
}

/// A conversation: two users, or a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Conversation {
    /// The direct conversation of two users, in canonical order (lo <= hi).
    Direct(Uuid, Uuid),
    /// A room.
    Room(Uuid),
}

impl Conversation {
    /// The direct conversation of `a` and `b`, in either order.
    pub fn direct(a: Uuid, b: Uuid) -> Conversation {
        if a <= b {
            Conversation::Direct(a, b)
        } else {
            Conversation::Direct(b, a)
        }
    }

    /// The key stored on each of its messages (`peer_lo`, `peer_hi`): the two users, or the
    /// room's id twice, so one index serves both kinds.
    pub fn key(&self) -> (Uuid, Uuid) {
        match *self {
            Conversation::Direct(lo, hi) => (lo, hi),
            Conversation::Room(id) => (id, id),
        }
    }
}

/// A stored message, direct or to a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Commit order; used for cursors, never shown to clients.
    pub seq: i64,
    /// The public id (UUID v7).
    pub id: Uuid,
    /// Who sent it.
    pub sender_id: Uuid,
    /// Who it is for.
    pub to: Recipient,
    /// The text, as sent.
    pub content: String,
    /// When it was committed (millisecond precision; an imported message: the old app's time).
    pub created_at: DateTime<Utc>,
}

impl Message {
    /// The conversation it belongs to.
    pub fn conversation(&self) -> Conversation {
        match self.to {
            Recipient::User(receiver) => Conversation::direct(self.sender_id, receiver),
            Recipient::Room(room) => Conversation::Room(room),
        }
    }

    /// Whether `user` is the sender or the receiver of this direct message.
    pub fn is_direct_with(&self, user: Uuid) -> bool {
        matches!(self.to, Recipient::User(receiver) if receiver == user || self.sender_id == user)
    }
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Its public id, chosen before the insert.
    pub id: Uuid,
    /// Who sends it.
    pub sender_id: Uuid,
    /// Who it is for.
    pub to: Recipient,
    /// The text, as sent.
    pub content: String,
    /// The sender's idempotency key.
    pub client_msg_id: Option<String>,
    /// When it was created, if it already has a time (an imported message); `None` for a new
    /// one, which gets its commit's time, so that `createdAt` never decreases in commit order.
    pub created_at: Option<DateTime<Utc>>,
}

impl NewMessage {
    /// A new message with a fresh time-ordered id, to be stamped with its commit's time.
    pub fn new(
        sender_id: Uuid,
        to: Recipient,
        content: String,
        client_msg_id: Option<String>,
    ) -> Self {
        NewMessage {
            id: Uuid::now_v7(),
            sender_id,
            to,
            content,
            client_msg_id,
            created_at: None,
        }
    }

    /// The conversation it belongs to.
    pub fn conversation(&self) -> Conversation {
        match self.to {
            Recipient::User(receiver) => Conversation::direct(self.sender_id, receiver),
            Recipient::Room(room) => Conversation::Room(room),
        }
    }

    /// The receiver of a direct message.
    pub fn receiver_id(&self) -> Option<Uuid> {
        match self.to {
            Recipient::User(id) => Some(id),
            Recipient::Room(_) => None,
        }
    }

    /// The room of a room message.
    pub fn room_id(&self) -> Option<Uuid> {
        match self.to {
            Recipient::Room(id) => Some(id),
            Recipient::User(_) => None,
        }
    }
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
        // The schema's CHECK guarantees exactly one of the two.
        let to = match (row.room_id, row.receiver_id) {
            (Some(room), _) => Recipient::Room(room.0),
            (None, Some(receiver)) => Recipient::User(receiver.0),
            (None, None) => Recipient::User(Uuid::nil()),
        };
        Message {
            seq: row.seq,
            id: row.id.0,
            sender_id: row.sender_id.0,
            to,
            content: row.content,
            created_at: row.created_at,
        }
    }
}

/// A member's role in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// May rename the room and add or remove members; exactly one per room.
    Owner,
    /// May send, read and leave.
    Member,
}

impl Role {
    /// As stored and as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Member => "member",
        }
    }

    fn parse(s: &str) -> Role {
        if s == "owner" {
            Role::Owner
        } else {
            Role::Member
        }
    }
}

/// One member of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member.
    pub user: User,
    /// Owner or member.
    pub role: Role,
    /// When they joined (the earliest remaining member inherits the room when its owner leaves).
    pub joined_at: DateTime<Utc>,
    /// The message of their read cursor, if they have read anything.
    pub read_up_to: Option<Uuid>,
}

/// A group conversation and its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// The room's id.
    pub id: Uuid,
    /// Its name (1 to 100 characters).
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Counts membership changes (see the migration).
    pub version: i64,
    /// Members, earliest first.
    pub members: Vec<Member>,
}

impl Room {
    /// The owner's id.
    pub fn owner_id(&self) -> Option<Uuid> {
        self.members
            .iter()
            .find(|m| m.role == Role::Owner)
            .map(|m| m.user.id)
    }

    /// Every member's id.
    pub fn member_ids(&self) -> Vec<Uuid> {
        self.members.iter().map(|m| m.user.id).collect()
    }
}

/// A direct conversation as the conversation list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectSummary {
    /// The other participant.
    pub peer: User,
    /// The newest message between them.
    pub last: Message,
    /// Messages from the peer after the owner's read cursor.
    pub unread: i64,
    /// The peer's read cursor (a message id), if they have read anything.
    pub peer_read_up_to: Option<Uuid>,
}

/// A room as the conversation list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSummary {
    /// The room's id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// When it was created (a room without messages sorts by this).
    pub created_at: DateTime<Utc>,
    /// How many members it has.
    pub member_count: i64,
    /// Its newest message.
    pub last_message: Option<Message>,
    /// Messages from others after the member's read cursor.
    pub unread: i64,
}

/// A `room_members` row joined with its user and the message of its read cursor.
#[derive(Debug, Clone, Queryable)]
pub struct MemberRow {
    pub user: UserRow,
    pub role: String,
    pub joined_at: DateTime<Utc>,
    pub read_up_to: Option<DbId>,
}

impl From<MemberRow> for Member {
    fn from(row: MemberRow) -> Self {
        Member {
            user: row.user.into(),
            role: Role::parse(&row.role),
            joined_at: row.joined_at,
            read_up_to: row.read_up_to.map(|id| id.0),
        }
    }
}

/// A `rooms` row.
#[derive(Debug, Clone, Queryable)]
pub struct RoomRow {
    pub id: DbId,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub version: i64,
}

/// A read cursor to move forward: `reader` has read `of` (a peer or a room) up to `up_to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorMove {
    /// Who read.
    pub reader: Uuid,
    /// The conversation, as seen by the reader: the peer, or the room.
    pub of: Recipient,
    /// The message read up to (it must be of that conversation).
    pub up_to: Uuid,
}

impl CursorMove {
    /// The peer's or the room's id.
    pub fn other(&self) -> Uuid {
        match self.of {
            Recipient::User(id) | Recipient::Room(id) => id,
        }
    }
}

/// A read cursor after a move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Commit order of the message it points at.
    pub seq: i64,
    /// That message's id.
    pub id: Uuid,
    /// Whether this call moved it (an older or equal `up_to` leaves it where it was).
    pub moved: bool,
}
