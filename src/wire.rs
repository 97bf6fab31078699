//! The JSON shapes of the wire contract (`shared/CONTRACT.md`), built from domain types.
//! Keys are camelCase; times are ISO-8601 UTC with milliseconds.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use uuid::Uuid;

use crate::store::{Message, User};

fn iso_millis<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// `{"id","username","status","createdAt"}`: `user:online`, `user:init`, register.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// `id`.
    pub id: Uuid,
    /// `username`.
    pub username: String,
    /// `status`: "online" or "offline".
    pub status: &'static str,
    /// `createdAt`.
    #[serde(serialize_with = "iso_millis")]
    pub created_at: DateTime<Utc>,
}

impl UserView {
    /// The view of a user with the given presence.
    pub fn new(user: &User, online: bool) -> UserView {
        UserView {
            id: user.id,
            username: user.username.clone(),
            status: if online { "online" } else { "offline" },
            created_at: user.created_at,
        }
    }
}

/// `{"id","content","senderId","receiverId","createdAt"}`: acks and history.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    /// `id`.
    pub id: Uuid,
    /// `content`, as sent.
    pub content: String,
    /// `senderId`.
    pub sender_id: Uuid,
    /// `receiverId`.
    pub receiver_id: Uuid,
    /// `createdAt`.
    #[serde(serialize_with = "iso_millis")]
    pub created_at: DateTime<Utc>,
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> Self {
        MessageView {
            id: m.id,
            content: m.content.clone(),
            sender_id: m.sender_id,
            receiver_id: m.receiver_id,
            created_at: m.created_at,
        }
    }
}

/// `message:new`: the message plus the sender's name.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewMessageEvent {
    /// The message's own keys.
    #[serde(flatten)]
    pub message: MessageView,
    /// `senderUsername`.
    pub sender_username: String,
}

/// `{"messages": [...], "hasMore": bool}`: `message:sync` and REST paging.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    /// `messages`, oldest first.
    pub messages: Vec<MessageView>,
    /// `hasMore`: older (or, for sync, newer) messages exist.
    pub has_more: bool,
}

impl MessagePage {
    /// A page from domain messages.
    pub fn new(messages: &[Message], has_more: bool) -> MessagePage {
        MessagePage {
            messages: messages.iter().map(MessageView::from).collect(),
            has_more,
        }
    }
}

/// The peer of a conversation in `GET /api/conversations`.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    /// `id`.
    pub id: Uuid,
    /// `username`.
    pub username: String,
    /// `online`.
    pub online: bool,
}

/// One entry of `GET /api/conversations`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    /// `peer`.
    pub peer: PeerView,
    /// `lastMessage`.
    pub last_message: MessageView,
}

/// `{"id","username","createdAt"}`: `GET /api/me`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MeView {
    /// `id`.
    pub id: Uuid,
    /// `username`.
    pub username: String,
    /// `createdAt`.
    #[serde(serialize_with = "iso_millis")]
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_new_has_the_contract_keys_and_millisecond_times() {
        let at = DateTime::parse_from_rfc3339("2026-11-29T05:40:12.345Z")
            .unwrap()
            .with_timezone(&Utc);
        let id = Uuid::now_v7();
        let event = NewMessageEvent {
            message: MessageView {
                id,
                content: "hi".into(),
                sender_id: id,
                receiver_id: id,
                created_at: at,
            },
            sender_username: "alice".into(),
        };
        let json = serde_json::to_value(&event).unwrap();
        let mut keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "content",
                "createdAt",
                "id",
                "receiverId",
                "senderId",
                "senderUsername"
            ]
        );
        assert_eq!(json["createdAt"], "2026-11-29T05:40:12.345Z");
    }
}
