//! The requests of the chat service, and their parsing from both transports: Socket.io event
//! payloads (JSON) and REST queries. Anything that does not parse becomes `invalid_payload` (or a
//! 400) with a message that says what was wrong.

use serde_json::Value;
use uuid::Uuid;

use super::MAX_PAGE;
use crate::{error::AppError, store::Recipient};

/// Longest `clientMsgId`.
pub const MAX_CLIENT_MSG_ID: usize = 64;

/// A validated `message:send`.
#[derive(Debug, Clone)]
pub struct SendMessage {
    /// Who gets it.
    pub receiver_id: Uuid,
    /// The text, as sent (its length is checked by the chat service).
    pub content: String,
    /// The sender's idempotency key.
    pub client_msg_id: Option<String>,
}

/// A page of a conversation: `message:history` or `GET /api/conversations/{peerId}/messages`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRequest {
    /// The other participant.
    pub peer: Uuid,
    /// The page ends just before this message (`None`: the latest).
    pub before: Option<Uuid>,
    /// At most this many messages.
    pub limit: usize,
}

/// `message:sync`.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRequest {
    /// Messages committed after this one.
    pub after: Uuid,
    /// At most this many messages.
    pub limit: usize,
}

fn invalid(msg: impl Into<String>) -> AppError {
    AppError::Invalid(msg.into())
}

fn object(payload: &Value) -> Result<&serde_json::Map<String, Value>, AppError> {
    payload
        .as_object()
        .ok_or_else(|| invalid("payload must be a JSON object"))
}

fn uuid_field(obj: &serde_json::Map<String, Value>, name: &str) -> Result<Option<Uuid>, AppError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Uuid::parse_str(s)
            .map(Some)
            .map_err(|_| invalid(format!("{name} must be a UUID"))),
        Some(_) => Err(invalid(format!("{name} must be a UUID string"))),
    }
}

fn required_uuid(obj: &serde_json::Map<String, Value>, name: &str) -> Result<Uuid, AppError> {
    uuid_field(obj, name)?.ok_or_else(|| invalid(format!("{name} is required")))
}

/// The rule for `limit`, on both transports: absent → the largest page; otherwise a whole number
/// from 1 to `MAX_PAGE`. `given` is `None` when absent and `Some(None)` when present but not a
/// whole number.
fn page_limit(given: Option<Option<u64>>) -> Result<usize, AppError> {
    match given {
        None => Ok(MAX_PAGE),
        Some(n) => n
            .filter(|n| (1..=MAX_PAGE as u64).contains(n))
            .map(|n| n as usize)
            .ok_or_else(|| invalid(format!("limit must be an integer from 1 to {MAX_PAGE}"))),
    }
}

/// `limit` of an event payload.
fn parse_limit(value: Option<&Value>) -> Result<usize, AppError> {
    page_limit(match value {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64()),
    })
}

impl HistoryRequest {
    /// The query `?before=<id>&limit=<n>` of a REST history page. A parameter given empty is
    /// invalid, as any other value that is not an id or a number in range.
    pub fn from_query(
        peer: Uuid,
        before: Option<&str>,
        limit: Option<&str>,
    ) -> Result<HistoryRequest, AppError> {
        let before = match before {
            None => None,
            Some(b) => {
                Some(Uuid::parse_str(b).map_err(|_| invalid("before must be a message id"))?)
            }
        };
        let limit = page_limit(limit.map(|l| l.parse().ok()))?;
        Ok(HistoryRequest {
            peer,
            before,
            limit,
        })
    }
}

/// `content` (a string without NUL) and the optional `clientMsgId` of a send.
fn content_and_client_id(
    obj: &serde_json::Map<String, Value>,
) -> Result<(String, Option<String>), AppError> {
    let content = match obj.get("content") {
        Some(Value::String(s)) if s.contains('\0') => {
            return Err(invalid("content must not contain NUL characters"));
        }
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => return Err(invalid("content is required")),
        Some(_) => return Err(invalid("content must be a string")),
    };
    let client_msg_id = match obj.get("clientMsgId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s))
            if !s.is_empty() && s.chars().count() <= MAX_CLIENT_MSG_ID && !s.contains('\0') =>
        {
            Some(s.clone())
        }
        Some(_) => {
            return Err(invalid(format!(
                "clientMsgId must be a string of 1 to {MAX_CLIENT_MSG_ID} characters"
            )));
        }
    };
    Ok((content, client_msg_id))
}

impl SendMessage {
    /// Parses `{"receiverId", "content", "clientMsgId"?}`.
    pub fn from_payload(payload: &Value) -> Result<SendMessage, AppError> {
        let obj = object(payload)?;
        let receiver_id = required_uuid(obj, "receiverId")?;
        let (content, client_msg_id) = content_and_client_id(obj)?;
        Ok(SendMessage {
            receiver_id,
            content,
            client_msg_id,
        })
    }
}

impl HistoryRequest {
    /// Parses `{"receiverId", "before"?, "limit"?}`.
    pub fn from_payload(payload: &Value) -> Result<HistoryRequest, AppError> {
        let obj = object(payload)?;
        Ok(HistoryRequest {
            peer: required_uuid(obj, "receiverId")?,
            before: uuid_field(obj, "before")?,
            limit: parse_limit(obj.get("limit"))?,
        })
    }
}

impl SyncRequest {
    /// Parses `{"after", "limit"?}`.
    pub fn from_payload(payload: &Value) -> Result<SyncRequest, AppError> {
        let obj = object(payload)?;
        Ok(SyncRequest {
            after: required_uuid(obj, "after")?,
            limit: parse_limit(obj.get("limit"))?,
        })
    }
}

/// Longest room name, in characters after trimming.
pub const MAX_ROOM_NAME: usize = 100;

/// `room:create`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRoom {
    /// The name, trimmed.
    pub name: String,
    /// The first members besides the caller, distinct.
    pub member_ids: Vec<Uuid>,
}

/// `room:rename`.
#[derive(Debug, Clone, PartialEq)]
pub struct RenameRoom {
    /// The room.
    pub room_id: Uuid,
    /// The new name, trimmed.
    pub name: String,
}

/// `room:add`.
#[derive(Debug, Clone, PartialEq)]
pub struct AddMembers {
    /// The room.
    pub room_id: Uuid,
    /// Who to add, distinct.
    pub user_ids: Vec<Uuid>,
}

/// `room:remove`.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoveMember {
    /// The room.
    pub room_id: Uuid,
    /// Who leaves (the caller) or is removed (by the owner).
    pub user_id: Uuid,
}

/// `room:send`.
#[derive(Debug, Clone)]
pub struct SendToRoom {
    /// The room.
    pub room_id: Uuid,
    /// The text, as sent.
    pub content: String,
    /// The sender's idempotency key.
    pub client_msg_id: Option<String>,
}

/// A page of a room: `room:history` or `GET /api/rooms/{roomId}/messages`.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomHistory {
    /// The room.
    pub room_id: Uuid,
    /// The page ends just before this message (`None`: the latest).
    pub before: Option<Uuid>,
    /// At most this many messages.
    pub limit: usize,
}

/// A room name: a string of 1 to `MAX_ROOM_NAME` characters after trimming, kept trimmed.
fn room_name(obj: &serde_json::Map<String, Value>) -> Result<String, AppError> {
    match obj.get("name") {
        Some(Value::String(s)) => {
            let name = super::trim(s);
            let chars = name.chars().count();
            if chars == 0 || chars > MAX_ROOM_NAME || name.contains('\0') {
                Err(invalid(format!(
                    "name must be 1 to {MAX_ROOM_NAME} characters"
                )))
            } else {
                Ok(name.to_owned())
            }
        }
        None | Some(Value::Null) => Err(invalid("name is required")),
        Some(_) => Err(invalid("name must be a string")),
    }
}

/// An array of distinct user ids. `required`: absent is an error, else an empty list.
fn user_ids(
    obj: &serde_json::Map<String, Value>,
    name: &str,
    required: bool,
) -> Result<Vec<Uuid>, AppError> {
    let items = match obj.get(name) {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) if !required => return Ok(Vec::new()),
        None | Some(Value::Null) => return Err(invalid(format!("{name} is required"))),
        Some(_) => return Err(invalid(format!("{name} must be an array of user ids"))),
    };
    let mut ids = Vec::with_capacity(items.len());
    for item in items {
        let id = item
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or_else(|| invalid(format!("{name} must be an array of user ids")))?;
        if ids.contains(&id) {
            return Err(invalid(format!("{name} has a duplicate id")));
        }
        ids.push(id);
    }
    Ok(ids)
}

/// The most ids one `room:create` or `room:add` may name, whatever the room's cap: beyond it
/// the list is refused before anything is looked up.
pub const MAX_IDS_PER_REQUEST: usize = 10_000;

impl CreateRoom {
    /// Parses `{"name", "memberIds"?}`.
    pub fn from_payload(payload: &Value) -> Result<CreateRoom, AppError> {
        let obj = object(payload)?;
        let name = room_name(obj)?;
        let member_ids = user_ids(obj, "memberIds", false)?;
        if member_ids.len() > MAX_IDS_PER_REQUEST {
            return Err(AppError::RoomFull("too many members".into()));
        }
        Ok(CreateRoom { name, member_ids })
    }
}

impl RenameRoom {
    /// Parses `{"roomId", "name"}`.
    pub fn from_payload(payload: &Value) -> Result<RenameRoom, AppError> {
        let obj = object(payload)?;
        Ok(RenameRoom {
            room_id: required_uuid(obj, "roomId")?,
            name: room_name(obj)?,
        })
    }
}

impl AddMembers {
    /// Parses `{"roomId", "userIds"}`.
    pub fn from_payload(payload: &Value) -> Result<AddMembers, AppError> {
        let obj = object(payload)?;
        let room_id = required_uuid(obj, "roomId")?;
        let user_ids = user_ids(obj, "userIds", true)?;
        if user_ids.is_empty() {
            return Err(invalid("userIds must name at least one user"));
        }
        if user_ids.len() > MAX_IDS_PER_REQUEST {
            return Err(AppError::RoomFull("too many members".into()));
        }
        Ok(AddMembers { room_id, user_ids })
    }
}

impl RemoveMember {
    /// Parses `{"roomId", "userId"}`.
    pub fn from_payload(payload: &Value) -> Result<RemoveMember, AppError> {
        let obj = object(payload)?;
        Ok(RemoveMember {
            room_id: required_uuid(obj, "roomId")?,
            user_id: required_uuid(obj, "userId")?,
        })
    }
}

impl SendToRoom {
    /// Parses `{"roomId", "content", "clientMsgId"?}`.
    pub fn from_payload(payload: &Value) -> Result<SendToRoom, AppError> {
        let obj = object(payload)?;
        let room_id = required_uuid(obj, "roomId")?;
        let (content, client_msg_id) = content_and_client_id(obj)?;
        Ok(SendToRoom {
            room_id,
            content,
            client_msg_id,
        })
    }
}

impl RoomHistory {
    /// Parses `{"roomId", "before"?, "limit"?}`.
    pub fn from_payload(payload: &Value) -> Result<RoomHistory, AppError> {
        let obj = object(payload)?;
        Ok(RoomHistory {
            room_id: required_uuid(obj, "roomId")?,
            before: uuid_field(obj, "before")?,
            limit: parse_limit(obj.get("limit"))?,
        })
    }

    /// The query `?before=<id>&limit=<n>` of a REST room page.
    pub fn from_query(
        room_id: Uuid,
        before: Option<&str>,
        limit: Option<&str>,
    ) -> Result<RoomHistory, AppError> {
        let page = HistoryRequest::from_query(room_id, before, limit)?;
        Ok(RoomHistory {
            room_id,
            before: page.before,
            limit: page.limit,
        })
    }
}

/// `conversation:read`: the caller has read the conversation up to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkRead {
    /// The conversation, as the caller sees it: the peer, or the room.
    pub of: Recipient,
    /// The newest message read.
    pub up_to: Uuid,
}

/// `typing`: the caller started or stopped typing in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypingRequest {
    /// The conversation, as the caller sees it: the peer, or the room.
    pub of: Recipient,
    /// Whether they are typing now.
    pub typing: bool,
}

/// The conversation a read-state or typing event names: exactly one of `receiverId` and `roomId`.
fn conversation(obj: &serde_json::Map<String, Value>) -> Result<Recipient, AppError> {
    match (uuid_field(obj, "receiverId")?, uuid_field(obj, "roomId")?) {
        (Some(peer), None) => Ok(Recipient::User(peer)),
        (None, Some(room)) => Ok(Recipient::Room(room)),
        (Some(_), Some(_)) => Err(invalid("give receiverId or roomId, not both")),
        (None, None) => Err(invalid("receiverId or roomId is required")),
    }
}

impl MarkRead {
    /// Parses `{"receiverId" or "roomId", "upTo"}`.
    pub fn from_payload(payload: &Value) -> Result<MarkRead, AppError> {
        let obj = object(payload)?;
        Ok(MarkRead {
            of: conversation(obj)?,
            up_to: required_uuid(obj, "upTo")?,
        })
    }
}

impl TypingRequest {
    /// Parses `{"receiverId" or "roomId", "typing": bool}`.
    pub fn from_payload(payload: &Value) -> Result<TypingRequest, AppError> {
        let obj = object(payload)?;
        let of = conversation(obj)?;
        let typing = match obj.get("typing") {
            Some(Value::Bool(typing)) => *typing,
            None | Some(Value::Null) => return Err(invalid("typing is required")),
            Some(_) => return Err(invalid("typing must be true or false")),
        };
        Ok(TypingRequest { of, typing })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_send_needs_an_object_with_a_uuid_and_a_string() {
        let id = Uuid::now_v7().to_string();
        assert!(SendMessage::from_payload(&json!({"receiverId": id, "content": "hi"})).is_ok());
        for bad in [
            json!(null),
            json!("text"),
            json!([1, 2]),
            json!({"content": "hi"}),
            json!({"receiverId": "nope", "content": "hi"}),
            json!({"receiverId": 5, "content": "hi"}),
            json!({"receiverId": id, "content": 5}),
            json!({"receiverId": id}),
            json!({"receiverId": id, "content": "x", "clientMsgId": "a".repeat(65)}),
            json!({"receiverId": id, "content": "x", "clientMsgId": 7}),
            json!({"receiverId": id, "content": "nul\u{0}byte"}),
            json!({"receiverId": id, "content": "x", "clientMsgId": "a\u{0}"}),
        ] {
            assert!(
                matches!(SendMessage::from_payload(&bad), Err(AppError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn limits_are_1_to_100() {
        assert_eq!(parse_limit(None).unwrap(), 100);
        assert_eq!(parse_limit(Some(&json!(1))).unwrap(), 1);
        for bad in [json!(0), json!(101), json!(2.5), json!("10"), json!(-1)] {
            assert!(parse_limit(Some(&bad)).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    /// Any JSON value, nested a few levels.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            ".{0,80}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::hash_map("[a-zA-Z]{1,12}", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Objects with the real field names and arbitrary values.
    fn shaped() -> impl Strategy<Value = Value> {
        let field = prop_oneof![
            any_json(),
            Just(json!(Uuid::now_v7().to_string())),
            (0u64..200).prop_map(Value::from)
        ];
        prop::collection::hash_map(
            prop::sample::select(vec![
                "receiverId",
                "content",
                "clientMsgId",
                "before",
                "limit",
                "after",
            ]),
            field,
            0..6,
        )
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
    }

    proptest! {
        #[test]
        fn parsers_never_panic_and_only_accept_what_they_validated(v in prop_oneof![any_json(), shaped()]) {
            if let Ok(req) = SendMessage::from_payload(&v) {
                prop_assert_eq!(Some(req.receiver_id.to_string()), v["receiverId"].as_str().map(str::to_owned));
                prop_assert_eq!(Some(req.content.as_str()), v["content"].as_str());
                if let Some(id) = &req.client_msg_id {
                    prop_assert!(!id.is_empty() && id.chars().count() <= MAX_CLIENT_MSG_ID);
                }
            }
            if let Ok(req) = HistoryRequest::from_payload(&v) {
                prop_assert!((1..=MAX_PAGE).contains(&req.limit));
            }
            if let Ok(req) = SyncRequest::from_payload(&v) {
                prop_assert!((1..=MAX_PAGE).contains(&req.limit));
                prop_assert_eq!(Some(req.after.to_string()), v["after"].as_str().map(str::to_owned));
            }
        }

        #[test]
        fn a_valid_send_round_trips(content in "[^\\x00]{1,200}", client in proptest::option::of("[a-zA-Z0-9-]{1,64}")) {
            let receiver = Uuid::now_v7();
            let mut v = json!({"receiverId": receiver.to_string(), "content": content.clone()});
            if let Some(c) = &client {
                v["clientMsgId"] = json!(c);
            }
            let req = SendMessage::from_payload(&v).unwrap();
            prop_assert_eq!(req.receiver_id, receiver);
            prop_assert_eq!(req.content, content);
            prop_assert_eq!(req.client_msg_id, client);
        }
    }

    #[test]
    fn read_and_typing_name_exactly_one_conversation() {
        let id = Uuid::now_v7();
        let m = Uuid::now_v7();
        assert_eq!(
            MarkRead::from_payload(&json!({"roomId": id, "upTo": m})).unwrap(),
            MarkRead {
                of: Recipient::Room(id),
                up_to: m
            }
        );
        assert_eq!(
            TypingRequest::from_payload(&json!({"receiverId": id, "typing": false})).unwrap(),
            TypingRequest {
                of: Recipient::User(id),
                typing: false
            }
        );
        for bad in [
            json!({"upTo": m}),
            json!({"receiverId": id, "roomId": id, "upTo": m}),
            json!({"receiverId": id}),
            json!({"receiverId": id, "upTo": "x"}),
            json!({"roomId": 3, "upTo": m}),
        ] {
            assert!(MarkRead::from_payload(&bad).is_err(), "{bad}");
        }
        for bad in [
            json!({"receiverId": id}),
            json!({"receiverId": id, "typing": "yes"}),
            json!({"typing": true}),
            json!([]),
        ] {
            assert!(TypingRequest::from_payload(&bad).is_err(), "{bad}");
        }
    }
}
