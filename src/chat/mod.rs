//! The chat service: sending, history, catch-up, rooms, read state and the conversation list. Transports
//! (REST and Socket.io) parse their input into the requests of `requests` and map the results;
//! the rules live here (`rooms.rs` for rooms, `members.rs` for who is in which room, `read.rs` for read
//! cursors and typing).

pub mod members;
mod read;
pub mod requests;
mod rooms;

use std::sync::Arc;

use uuid::Uuid;

pub use self::{
    members::{Members, RoomDirectory},
    read::{Audience, Read},
    requests::{HistoryRequest, SendMessage, SyncRequest},
    rooms::{RoomChange, RoomSent},
};
use crate::{
    auth::Accounts,
    cluster::{Carried, Publish},
    error::AppError,
    metrics::{Metrics, inc},
    mode::Mode,
    presence::Presence,
    store::{
        Conversation, DirectSummary, Message, NewMessage, Recipient, RoomSummary, Store, User,
        cursors::CursorWriter, rooms::RoomLimits, writer::MessageWriter,
    },
};

/// Largest page of history or sync.
pub const MAX_PAGE: usize = 100;
/// Most conversations `GET /api/conversations` lists.
const MAX_CONVERSATIONS: usize = 500;
/// Unread counts are reported up to this.
pub const MAX_UNREAD: i64 = 1000;
/// Largest page of the user directory.
pub const MAX_DIRECTORY_PAGE: usize = 50;

/// The result of a send: the stored message and whether this call stored it (a retry did not).
#[derive(Debug, Clone)]
pub struct Sent {
    /// The stored message.
    pub message: Message,
    /// `false` for a retry of a message stored before (same sender and `clientMsgId`).
    pub created: bool,
}

/// One entry of the conversation list.
#[derive(Debug, Clone)]
pub enum ConversationEntry {
    /// A direct conversation.
    Direct(DirectSummary),
    /// A room the user is in.
    Room(RoomSummary),
}

impl ConversationEntry {
    /// What the list sorts by, newest first: the newest message's time (a room without messages:
    /// its creation), then commit order.
    fn recency(&self) -> (chrono::DateTime<chrono::Utc>, i64) {
        match self {
            ConversationEntry::Direct(direct) => (direct.last.created_at, direct.last.seq),
            ConversationEntry::Room(room) => match &room.last_message {
                Some(last) => (last.created_at, last.seq),
                None => (room.created_at, 0),
            },
        }
    }
}

/// The limits the chat service enforces.
#[derive(Debug, Clone, Copy)]
pub struct ChatLimits {
    /// Longest content, in characters after trimming (`MAX_MESSAGE_CHARS`).
    pub max_chars: usize,
    /// Room sizes.
    pub rooms: RoomLimits,
}

/// A send whose `clientMsgId` the sender already used for a message of the other kind: acking
/// that message would break the event's ack shape (a room message has no `receiverId`), and
/// storing a second one would break the key's promise. Nothing is stored.
fn key_taken(kind: &str) -> AppError {
    AppError::Invalid(format!("clientMsgId is already the key of {kind} of yours"))
}

/// `text` without the whitespace around it, as JavaScript's `String.prototype.trim` sees it
/// (what the clients and the app we replace trim): Unicode white space and the byte-order mark
/// U+FEFF, but not U+0085 (NEL), which JavaScript keeps.
pub fn trim(text: &str) -> &str {
    text.trim_matches(|c: char| c == '\u{feff}' || (c.is_whitespace() && c != '\u{85}'))
}

/// The content rule of every send: 1 to `max_chars` characters after trimming, and at most
/// `4 × max_chars` before (the content is stored as sent, so whitespace around it must not be
/// a way to store megabytes in a "1-character" message).
pub fn check_content(content: &str, max_chars: usize) -> Result<(), AppError> {
    let max_raw = max_chars.saturating_mul(4);
    // A character is at least one byte: short content needs no count.
    if content.len() > max_raw && content.chars().count() > max_raw {
        return Err(AppError::ContentTooLong(format!(
            "content is longer than {max_raw} characters before trimming"
        )));
    }
    let trimmed = trim(content);
    if trimmed.is_empty() {
        return Err(AppError::Invalid("content must not be empty".into()));
    }
    if trimmed.len() > max_chars && trimmed.chars().count() > max_chars {
        return Err(AppError::ContentTooLong(format!(
            "content is longer than {max_chars} characters"
        )));
    }
    Ok(())
}

/// Chat operations over the store.
pub struct Chat {
    store: Store,
    writer: MessageWriter,
    cursors: CursorWriter,
    accounts: Arc<Accounts>,
    mode: Mode,
    rooms: RoomDirectory,
    limits: ChatLimits,
    metrics: Arc<Metrics>,
}

impl Chat {
    /// The service; in cluster mode it reads and fills the Redis history cache and tells the
    /// other instances of membership changes.
    pub fn new(
        store: Store,
        writer: MessageWriter,
        accounts: Arc<Accounts>,
        mode: Mode,
        limits: ChatLimits,
        metrics: Arc<Metrics>,
    ) -> Chat {
        Chat {
            rooms: RoomDirectory::new(store.clone()),
            cursors: CursorWriter::spawn(store.clone(), metrics.clone()),
            store,
            writer,
            accounts,
            mode,
            limits,
            metrics,
        }
    }

    /// Who is in which room, in memory.
    pub fn rooms(&self) -> &RoomDirectory {
        &self.rooms
    }

    /// The content rule of every send (see [`check_content`]).
    fn check_content(&self, content: &str) -> Result<(), AppError> {
        check_content(content, self.limits.max_chars)
    }

    /// Stores a validated message through the group commit; returns only after the commit. A
    /// new message is then announced ([`Chat::announce`]) before anyone hears of it.
    async fn store(&self, new: NewMessage) -> Result<crate::store::Written, AppError> {
        inc(&self.metrics.messages_accepted);
        Ok(self.writer.write(new).await?)
    }

    /// Puts a newly stored message in the history cache (cluster mode), with `publish`, its
    /// delivery to the other instances, in the same Redis round trip where it can. Called after
    /// the commit and before the ack and any event, so that whoever hears of the message finds it
    /// in history; a slow Redis delays the ack by at most the cache's `PUSH_WAIT`.
    pub async fn announce(&self, message: &Message, publish: Option<Publish>) -> Carried {
        match self.mode.history_cache() {
            Some(cache) => cache.push(message.clone(), publish).await,
            None => Carried::Left(publish),
        }
    }

    /// Validates and durably stores a direct message. Returns only after the commit.
    pub async fn send(&self, sender: &User, req: SendMessage) -> Result<Sent, AppError> {
        self.check_content(&req.content)?;
        if req.receiver_id == sender.id {
            return Err(AppError::Invalid("receiverId must be another user".into()));
        }
        if self.accounts.user(req.receiver_id).await?.is_none() {
            return Err(AppError::UnknownReceiver("receiverId names no user".into()));
        }
        let new = NewMessage::new(
            sender.id,
            Recipient::User(req.receiver_id),
            req.content,
            req.client_msg_id,
        );
        let written = self.store(new).await?;
        if let Recipient::Room(_) = written.message.to {
            return Err(key_taken("a room message"));
        }
        Ok(Sent {
            message: written.message,
            created: written.created,
        })
    }

    /// Up to `limit` messages between `me` and `peer` before the message `before` (or the
    /// latest), oldest first, and whether older ones exist.
    pub async fn history(
        &self,
        me: Uuid,
        HistoryRequest {
            peer,
            before,
            limit,
        }: HistoryRequest,
    ) -> Result<(Vec<Message>, bool), AppError> {
        self.page(Conversation::direct(me, peer), before, limit)
            .await
    }

    /// A page of `conversation` (the caller may read it): from the history cache when it can
    /// answer, else from the database (refilling the cache with the latest page).
    async fn page(
        &self,
        conversation: Conversation,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<Message>, bool), AppError> {
        let before_seq = match before {
            None => None,
            Some(id) => match self.store.message(id).await? {
                Some(m) if m.conversation() == conversation => Some(m.seq),
                _ => {
                    return Err(AppError::Invalid(
                        "before is not a message of this conversation".into(),
                    ));
                }
            },
        };
        let cache = self.mode.history_cache();
        if let Some(cache) = cache
            && let Some(page) = cache.page(conversation, before_seq, limit).await
        {
            return Ok(page);
        }
        let mut page = self
            .store
            .conversation_page(conversation, before_seq, limit + 1)
            .await?;
        let has_more = page.len() > limit;
        if has_more {
            page.remove(0);
        }
        if let (None, Some(cache)) = (before_seq, cache) {
            cache.refill(conversation, &page, has_more).await;
        }
        Ok((page, has_more))
    }

    /// Messages `me` may read committed after the message `after`, oldest first, and whether more
    /// follow: direct messages to or from them and the messages of their rooms. Never skips one:
    /// `seq` is commit order.
    pub async fn sync(
        &self,
        me: Uuid,
        SyncRequest { after, limit }: SyncRequest,
    ) -> Result<(Vec<Message>, bool), AppError> {
        let invalid = || AppError::Invalid("after is not one of your messages".into());
        let cursor = self.store.message(after).await?.ok_or_else(invalid)?;
        // The caller's own message is a position it may sync from even after it left that
        // message's room (a client offline when it was removed keeps its cursor): it knows the
        // message exists, and the page holds only what it may read now.
        let readable = cursor.sender_id == me
            || match cursor.to {
                Recipient::User(_) => cursor.is_direct_with(me),
                Recipient::Room(room) => self
                    .rooms
                    .members(room)
                    .await?
                    .is_some_and(|m| m.contains(me)),
            };
        if !readable {
            return Err(invalid());
        }
        let mut page = self.store.messages_after(me, cursor.seq, limit + 1).await?;
        let has_more = page.len() > limit;
        page.truncate(limit);
        Ok((page, has_more))
    }

    /// Waits for sends in flight to be committed and cached, for a graceful shutdown: each queue
    /// at most `limit`, and only while it makes progress (a database or Redis that stopped
    /// answering does not hold the stop).
    pub async fn drain(&self, limit: std::time::Duration) {
        tokio::join!(self.writer.drain(limit), self.cursors.drain(limit));
        if let Some(cache) = self.mode.history_cache() {
            cache.drain(limit).await;
        }
    }

    /// The user's direct conversations and rooms, most recent first.
    pub async fn conversations(&self, me: Uuid) -> Result<Vec<ConversationEntry>, AppError> {
        let direct = self.store.conversations(me, MAX_CONVERSATIONS).await?;
        let rooms = self.store.rooms_of(me, MAX_CONVERSATIONS).await?;
        let mut entries: Vec<ConversationEntry> = direct
            .into_iter()
            .map(ConversationEntry::Direct)
            .chain(rooms.into_iter().map(ConversationEntry::Room))
            .collect();
        entries.sort_by_key(|e| std::cmp::Reverse(e.recency()));
        entries.truncate(MAX_CONVERSATIONS);
        Ok(entries)
    }

    /// The user directory: users whose name starts with `prefix` (any case), `me` excluded,
    /// online first, then by name; at most `limit`. Returns each with whether they are online.
    pub async fn find_users(
        &self,
        presence: &Presence,
        me: Uuid,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<(User, bool)>, AppError> {
        // No name holds a NUL (PostgreSQL text cannot), and PostgreSQL refuses one in a query.
        if prefix.contains('\0') {
            return Ok(Vec::new());
        }
        let wanted = prefix.to_lowercase();
        let mut online: Vec<User> = presence
            .online_users()
            .await?
            .into_iter()
            .filter(|u| u.id != me && u.username.to_lowercase().starts_with(&wanted))
            .collect();
        online.sort_by_key(|u| u.username.to_lowercase());
        online.truncate(limit);
        // Enough offline candidates even if every online match comes back from the query too.
        let more = self
            .store
            .users_with_prefix(prefix, me, limit + online.len())
            .await?;
        let mut found: Vec<(User, bool)> = online.iter().cloned().map(|u| (u, true)).collect();
        for user in more {
            if found.len() >= limit {
                break;
            }
            if !online.iter().any(|o| o.id == user.id) {
                found.push((user, false));
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(content: &str, max: usize) -> Option<&'static str> {
        check_content(content, max).err().map(|e| e.code())
    }

    #[test]
    fn content_is_bounded_after_and_before_trimming() {
        assert_eq!(code("x", 10), None);
        assert_eq!(code(&"x".repeat(10), 10), None);
        assert_eq!(code(&"x".repeat(11), 10), Some("content_too_long"));
        assert_eq!(code("   ", 10), Some("invalid_payload"));
        // 4 x max before trimming is still fine...
        assert_eq!(code(&format!("{}x", " ".repeat(39)), 10), None);
        // ...one more character of whitespace is not, whatever is left after trimming.
        assert_eq!(
            code(&format!("{}x", " ".repeat(40)), 10),
            Some("content_too_long")
        );
        assert_eq!(code(&" ".repeat(41), 10), Some("content_too_long"));
        // The case at the default limit: 900,000 spaces and one character.
        let padded = format!("{}x", " ".repeat(900_000));
        assert_eq!(code(&padded, 10_000), Some("content_too_long"));
    }

    #[test]
    fn content_limits_count_characters_not_bytes() {
        // 10 four-byte characters are 10 characters, 40 bytes.
        assert_eq!(code(&"😀".repeat(10), 10), None);
        assert_eq!(code(&"😀".repeat(11), 10), Some("content_too_long"));
        // 30 spaces around 10 emoji: 40 characters (70 bytes) before trimming.
        let padded = format!("{}{}{}", " ".repeat(15), "😀".repeat(10), " ".repeat(15));
        assert_eq!(code(&padded, 10), None);
    }

    #[test]
    fn trimming_is_javascripts() {
        // What `String.prototype.trim` removes: white space, line ends, no-break and
        // ideographic spaces, and the byte-order mark; not NEL (U+0085).
        assert_eq!(
            trim("\u{feff} \t\n\u{a0}\u{3000}\u{2028}x\u{feff}\r\n"),
            "x"
        );
        assert_eq!(code("\u{feff}", 10), Some("invalid_payload"));
        assert_eq!(trim("\u{85}x\u{85}"), "\u{85}x\u{85}");
    }
}
