//! The JSON shapes of the protocol (`docs/protocol.md`), built from domain types. Keys are
//! camelCase; times are ISO-8601 UTC with milliseconds. The REST shapes derive `ToSchema`, so the
//! OpenAPI description (`GET /api/openapi.json`) is generated from these very types.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::{Member, Message, Recipient, Room, User};

fn iso_millis<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// `{"id","username","status","createdAt"}`: `user:online`, `user:init`, register.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// `id`.
    pub id: Uuid,
    /// `username`.
    pub username: String,
    /// `status`: "online" or "offline".
    #[schema(value_type = String, pattern = "^(online|offline)$")]
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

/// `{"id","content","senderId","receiverId","createdAt"}` for a direct message, and
/// `{"id","content","senderId","roomId","createdAt"}` for a room message: acks and history.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageView<'a> {
    /// `id`.
    pub id: Uuid,
    /// `content`, as sent.
    pub content: &'a str,
    /// `senderId`.
    pub sender_id: Uuid,
    /// `receiverId` (direct messages only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiver_id: Option<Uuid>,
    /// `roomId` (room messages only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_id: Option<Uuid>,
    /// `createdAt`.
    #[serde(serialize_with = "iso_millis")]
    pub created_at: DateTime<Utc>,
}

impl<'a> From<&'a Message> for MessageView<'a> {
    fn from(m: &'a Message) -> Self {
        let (receiver_id, room_id) = match m.to {
            Recipient::User(id) => (Some(id), None),
            Recipient::Room(id) => (None, Some(id)),
        };
        MessageView {
            id: m.id,
            content: &m.content,
            sender_id: m.sender_id,
            receiver_id,
            room_id,
            created_at: m.created_at,
        }
    }
}

/// `message:new` and `room:message`: the message plus the sender's name.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewMessageEvent<'a> {
    /// The message's own keys.
    #[serde(flatten)]
    pub message: MessageView<'a>,
    /// `senderUsername`.
    pub sender_username: &'a str,
}

/// `{"messages": [...], "hasMore": bool}`: `message:sync` and REST paging.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagePage<'a> {
    /// `messages`, oldest first.
    pub messages: Vec<MessageView<'a>>,
    /// `hasMore`: older (or, for sync, newer) messages exist.
    pub has_more: bool,
}

impl<'a> MessagePage<'a> {
    /// A page from domain messages.
    pub fn new(messages: &'a [Message], has_more: bool) -> MessagePage<'a> {
        MessagePage {
            messages: messages.iter().map(MessageView::from).collect(),
            has_more,
        }
    }
}

/// The peer of a conversation in `GET /api/conversations`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PeerView {
    /// `id`.
    pub id: Uuid,
    /// `username`.
    pub username: String,
    /// `online`.
    pub online: bool,
}

/// One entry of `GET /api/conversations`: a direct conversation or a room.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ConversationView<'a> {
    /// `{"peer", "lastMessage", "unread", "peerReadUpTo"}`.
    #[serde(rename_all = "camelCase")]
    Direct {
        /// `peer`.
        peer: PeerView,
        /// `lastMessage`.
        last_message: MessageView<'a>,
        /// `unread`: messages from the peer after the caller's cursor, up to 1,000.
        unread: i64,
        /// `peerReadUpTo`: the peer's cursor, or `null`.
        #[schema(required = true)]
        peer_read_up_to: Option<Uuid>,
    },
    /// `{"room": {"id","name","memberCount"}, "lastMessage", "unread"}`.
    #[serde(rename_all = "camelCase")]
    Room {
        /// `room`.
        room: RoomBrief<'a>,
        /// `lastMessage`: `null` while the room has no messages.
        #[schema(required = true)]
        last_message: Option<MessageView<'a>>,
        /// `unread`: messages from others after the caller's cursor, up to 1,000.
        unread: i64,
    },
}

/// `{"id","name","memberCount"}`: a room in the conversation list.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomBrief<'a> {
    /// `id`.
    pub id: Uuid,
    /// `name`.
    pub name: &'a str,
    /// `memberCount`.
    pub member_count: i64,
    /// `createdAt` (beyond the contract: lets a client place a room without messages).
    #[serde(serialize_with = "iso_millis")]
    pub created_at: DateTime<Utc>,
}

/// `{"id","name","ownerId","createdAt","members"}`: acks of the room events, `room:updated`,
/// `GET /api/rooms/{roomId}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoomView<'a> {
    /// `id`.
    pub id: Uuid,
    /// `name`.
    pub name: &'a str,
    /// `ownerId`.
    #[schema(required = true)]
    pub owner_id: Option<Uuid>,
    /// `createdAt`.
    #[serde(serialize_with = "iso_millis")]
    pub created_at: DateTime<Utc>,
    /// `members`, earliest first.
    pub members: Vec<MemberView<'a>>,
}

impl<'a> From<&'a Room> for RoomView<'a> {
    fn from(room: &'a Room) -> Self {
        RoomView {
            id: room.id,
            name: &room.name,
            owner_id: room.owner_id(),
            created_at: room.created_at,
            members: room.members.iter().map(MemberView::from).collect(),
        }
    }
}

impl<'a> RoomView<'a> {
    /// The room with each member's read cursor (`GET /api/rooms/{roomId}`).
    pub fn with_read_state(room: &'a Room) -> RoomView<'a> {
        let mut view = RoomView::from(room);
        for (member, of) in view.members.iter_mut().zip(&room.members) {
            member.read_up_to = Some(of.read_up_to);
        }
        view
    }
}

/// `{"id","username","role","joinedAt"}`: one member of a room.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemberView<'a> {
    /// `id`.
    pub id: Uuid,
    /// `username`.
    pub username: &'a str,
    /// `role`: "owner" or "member".
    #[schema(value_type = String, pattern = "^(owner|member)$")]
    pub role: &'static str,
    /// `joinedAt`.
    #[serde(serialize_with = "iso_millis")]
    pub joined_at: DateTime<Utc>,
    /// `readUpTo` (an id or `null`), in `GET /api/rooms/{roomId}` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Uuid>)]
    pub read_up_to: Option<Option<Uuid>>,
}

impl<'a> From<&'a Member> for MemberView<'a> {
    fn from(m: &'a Member) -> Self {
        MemberView {
            id: m.user.id,
            username: &m.user.username,
            role: m.role.as_str(),
            joined_at: m.joined_at,
            read_up_to: None,
        }
    }
}

/// `conversation:read` `{"readerId", "peerId" or "roomId", "upTo", "readAt"}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadEvent {
    /// `readerId`.
    pub reader_id: Uuid,
    /// `peerId`: the reader's peer (direct conversations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<Uuid>,
    /// `roomId` (rooms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_id: Option<Uuid>,
    /// `upTo`: the cursor now.
    pub up_to: Uuid,
    /// `readAt`.
    #[serde(serialize_with = "iso_millis")]
    pub read_at: DateTime<Utc>,
}

/// `typing` `{"userId", "username", "peerId" or "roomId", "typing"}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TypingEvent<'a> {
    /// `userId`: the typist.
    pub user_id: Uuid,
    /// `username`: the typist's name.
    pub username: &'a str,
    /// `peerId`: the typist's peer, who hears it (direct conversations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<Uuid>,
    /// `roomId` (rooms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room_id: Option<Uuid>,
    /// `typing`.
    pub typing: bool,
}

/// `room:removed` `{"roomId"}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomRemovedEvent {
    /// `roomId`.
    pub room_id: Uuid,
}

/// The body of `POST /auth/register`. The handler reads it field by field (to name the field at
/// fault), so this type only describes it.
#[derive(Debug, Clone, ToSchema)]
pub struct Registration {
    /// `username`: 3 to 32 characters, letters, digits, `_`, `.` or `-`; unique without regard
    /// to case.
    #[schema(pattern = "^[A-Za-z0-9_.-]{3,32}$", example = "alice")]
    pub username: String,
    /// `password`: 6 to 72 bytes of UTF-8 (bcrypt reads no further).
    #[schema(min_length = 6, max_length = 72, example = "correct horse")]
    pub password: String,
}

/// The body of `POST /auth/login`. Names compare without regard to case.
#[derive(Debug, Clone, ToSchema)]
pub struct LoginRequest {
    /// `username`.
    #[schema(min_length = 1, example = "alice")]
    pub username: String,
    /// `password`.
    #[schema(min_length = 1, example = "correct horse")]
    pub password: String,
}

/// `{"access_token", "user": {"id","username"}}`: `POST /auth/login`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    /// `access_token`: the JWT to send as `Authorization: Bearer` or the socket's `auth.token`.
    pub access_token: String,
    /// `user`.
    pub user: SessionUser,
}

/// `{"id","username"}`: the user of a [`SessionView`].
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionUser {
    /// `id`.
    pub id: Uuid,
    /// `username`, as registered.
    pub username: String,
}

/// The NestJS error body `{"statusCode","message","error"}` of every failed request (the 500 body
/// has no `error`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"statusCode": 409, "message": "Username already exists", "error": "Conflict"}))]
pub struct ErrorBody {
    /// `statusCode`: the HTTP status again.
    #[schema(value_type = u16, minimum = 400, maximum = 599)]
    pub status_code: u16,
    /// `message`: what went wrong, for a person.
    pub message: String,
    /// `error`: the status's reason phrase (`Bad Request`, `Not Found`...); absent from a 500.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub error: Option<&'static str>,
}

/// `{"status": "ok"}`: `GET /health`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HealthView {
    /// `status`: always "ok" (the process answers).
    #[schema(value_type = String, pattern = "^ok$")]
    pub status: &'static str,
}

/// What `GET /ready` found of each dependency.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReadyChecks {
    /// `database`: "up" or "down".
    #[schema(value_type = String, pattern = "^(up|down)$")]
    pub database: &'static str,
    /// `redis`: "up", "down", or "not configured" (embedded mode).
    #[schema(value_type = String, pattern = "^(up|down|not configured)$")]
    pub redis: &'static str,
}

/// `{"status": "ok", "checks"}`: `GET /ready` when every dependency answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReadyView {
    /// `status`: "ok".
    #[schema(value_type = String, pattern = "^ok$")]
    pub status: &'static str,
    /// `checks`.
    pub checks: ReadyChecks,
}

/// `GET /ready` when a dependency is down: the error body plus `checks`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NotReadyView {
    /// `statusCode` (503), `message` (naming what is down) and `error`.
    #[serde(flatten)]
    pub error: ErrorBody,
    /// `checks`.
    pub checks: ReadyChecks,
}

/// `{"instanceId", "version"}`: `GET /api/instance`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    /// `instanceId`: `INSTANCE_ID`, or one made at start-up.
    pub instance_id: String,
    /// `version`: the server's version.
    #[schema(value_type = String)]
    pub version: &'static str,
}

/// `{"id","username","createdAt"}`: `GET /api/me`.
#[derive(Debug, Clone, Serialize, ToSchema)]
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
                content: "hi",
                sender_id: id,
                receiver_id: Some(id),
                room_id: None,
                created_at: at,
            },
            sender_username: "alice",
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
