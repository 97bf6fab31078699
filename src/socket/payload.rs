//! Typed event payloads. Every payload is parsed here into a request of the chat service;
//! anything else becomes `invalid_payload` with a message that says what was wrong.

use serde_json::Value;
use uuid::Uuid;

use crate::{
    chat::{MAX_PAGE, SendMessage},
    error::AppError,
};

/// Longest `clientMsgId`.
pub const MAX_CLIENT_MSG_ID: usize = 64;

/// `message:history`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRequest {
    pub peer: Uuid,
    pub before: Option<Uuid>,
    pub limit: usize,
}

/// `message:sync`.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncRequest {
    pub after: Uuid,
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

/// `limit`: absent → the maximum; else an integer from 1 to 100.
pub fn parse_limit(value: Option<&Value>) -> Result<usize, AppError> {
    match value {
        None | Some(Value::Null) => Ok(MAX_PAGE),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=MAX_PAGE as u64).contains(n))
            .map(|n| n as usize)
            .ok_or_else(|| invalid(format!("limit must be an integer from 1 to {MAX_PAGE}"))),
    }
}

/// Parses `{"receiverId", "content", "clientMsgId"?}`.
pub fn send(payload: &Value) -> Result<SendMessage, AppError> {
    let obj = object(payload)?;
    let receiver_id = required_uuid(obj, "receiverId")?;
    let content = match obj.get("content") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => return Err(invalid("content is required")),
        Some(_) => return Err(invalid("content must be a string")),
    };
    let client_msg_id = match obj.get("clientMsgId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_CLIENT_MSG_ID => {
            Some(s.clone())
        }
        Some(_) => {
            return Err(invalid(format!(
                "clientMsgId must be a string of 1 to {MAX_CLIENT_MSG_ID} characters"
            )));
        }
    };
    Ok(SendMessage {
        receiver_id,
        content,
        client_msg_id,
    })
}

/// Parses `{"receiverId", "before"?, "limit"?}`.
pub fn history(payload: &Value) -> Result<HistoryRequest, AppError> {
    let obj = object(payload)?;
    Ok(HistoryRequest {
        peer: required_uuid(obj, "receiverId")?,
        before: uuid_field(obj, "before")?,
        limit: parse_limit(obj.get("limit"))?,
    })
}

/// Parses `{"after", "limit"?}`.
pub fn sync(payload: &Value) -> Result<SyncRequest, AppError> {
    let obj = object(payload)?;
    Ok(SyncRequest {
        after: required_uuid(obj, "after")?,
        limit: parse_limit(obj.get("limit"))?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_send_needs_an_object_with_a_uuid_and_a_string() {
        let id = Uuid::now_v7().to_string();
        assert!(send(&json!({"receiverId": id, "content": "hi"})).is_ok());
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
        ] {
            assert!(matches!(send(&bad), Err(AppError::Invalid(_))), "{bad}");
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
