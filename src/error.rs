//! `AppError`: the one error type of the service layer, mapped once to each transport — an HTTP
//! status with the NestJS JSON body, or a Socket.io ack `{"error": {"code", "message"}}`.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::{
    store::{Refusal, StoreError},
    wire::ErrorBody,
};

/// Everything a request or event can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Malformed or invalid input (400 / `invalid_payload`).
    #[error("{0}")]
    Invalid(String),
    /// Content longer than allowed (400 / `content_too_long`).
    #[error("{0}")]
    ContentTooLong(String),
    /// The receiver does not exist (404 / `unknown_receiver`).
    #[error("{0}")]
    UnknownReceiver(String),
    /// A resource that does not exist, or that the caller may not see (404 / `not_found`).
    #[error("{0}")]
    NotFound(String),
    /// A member tried what only a room's owner may do (403 / `forbidden`).
    #[error("{0}")]
    Forbidden(String),
    /// An id names no user, or no member of the room (404 / `unknown_user`).
    #[error("{0}")]
    UnknownUser(String),
    /// The room would exceed `ROOM_MAX_MEMBERS` (409 / `room_full`).
    #[error("{0}")]
    RoomFull(String),
    /// A user would exceed `MAX_ROOMS_PER_USER` (409 / `too_many_rooms`).
    #[error("{0}")]
    TooManyRooms(String),
    /// A unique value already taken (409).
    #[error("{0}")]
    Conflict(String),
    /// Missing or bad credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Too many requests (429 / `rate_limited`).
    #[error("{0}")]
    RateLimited(String),
    /// Too many failed logins: retry after this many seconds (429 with `Retry-After`).
    #[error("Too many login attempts; try again in {0} seconds")]
    Throttled(u64),
    /// The database is down or too slow; nothing was stored (503 / `unavailable`).
    #[error("storage unavailable")]
    Unavailable(String),
    /// A bug; details are logged, never shown (500 / `internal`).
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Refused(why) => AppError::from(why),
            StoreError::Conflict => AppError::Conflict("Already exists".into()),
            StoreError::Unavailable(why) => AppError::Unavailable(why),
            StoreError::Internal(why) => AppError::Internal(why),
        }
    }
}

impl From<Refusal> for AppError {
    fn from(why: Refusal) -> Self {
        match why {
            Refusal::NotFound => AppError::room_not_found(),
            Refusal::Forbidden => AppError::Forbidden("Only the room's owner may do that".into()),
            Refusal::UnknownUser => AppError::UnknownUser("An id names no user".into()),
            Refusal::NotAMember => {
                AppError::UnknownUser("userId is not a member of this room".into())
            }
            Refusal::RoomFull => AppError::RoomFull("The room is full".into()),
            Refusal::TooManyRooms => AppError::TooManyRooms("A user is in too many rooms".into()),
        }
    }
}

impl From<anyhow::Error> for AppError {
    fn from(err: anyhow::Error) -> Self {
        AppError::Internal(format!("{err:#}"))
    }
}

impl AppError {
    /// The answer for a room that does not exist and for one the caller is not in, alike.
    pub fn room_not_found() -> AppError {
        AppError::NotFound("Room not found".into())
    }

    /// The contract's ack error code.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Invalid(_) | AppError::Conflict(_) => "invalid_payload",
            AppError::NotFound(_) => "not_found",
            AppError::Forbidden(_) => "forbidden",
            AppError::UnknownUser(_) => "unknown_user",
            AppError::RoomFull(_) => "room_full",
            AppError::TooManyRooms(_) => "too_many_rooms",
            AppError::ContentTooLong(_) => "content_too_long",
            AppError::UnknownReceiver(_) => "unknown_receiver",
            AppError::Unauthorized(_) => "unauthorized",
            AppError::RateLimited(_) | AppError::Throttled(_) => "rate_limited",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    /// Text safe to show a client: internal details stay in the logs.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Unavailable(_) => "Storage is unavailable; nothing was stored".into(),
            AppError::Internal(_) => "Internal server error".into(),
            other => other.to_string(),
        }
    }

    /// Logs server-side failures with their cause (client mistakes are not logged as errors).
    pub fn log(&self) {
        match self {
            AppError::Unavailable(why) => tracing::warn!(cause = %why, "storage unavailable"),
            AppError::Internal(why) => tracing::error!(cause = %why, "internal error"),
            _ => {}
        }
    }

    /// The ack payload `{"error": {"code", "message"}}`.
    pub fn to_ack(&self) -> serde_json::Value {
        self.log();
        json!({ "error": { "code": self.code(), "message": self.public_message() } })
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Invalid(_) | AppError::ContentTooLong(_) => StatusCode::BAD_REQUEST,
            AppError::UnknownReceiver(_) | AppError::NotFound(_) | AppError::UnknownUser(_) => {
                StatusCode::NOT_FOUND
            }
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::Conflict(_) | AppError::RoomFull(_) | AppError::TooManyRooms(_) => {
                StatusCode::CONFLICT
            }
            AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::RateLimited(_) | AppError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl AppError {
    /// The NestJS error body; as NestJS's, the 500 body has no `error` field.
    pub fn body(&self) -> ErrorBody {
        let status = self.status();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            ErrorBody {
                status_code: 500,
                message: "Internal server error".into(),
                error: None,
            }
        } else {
            ErrorBody {
                status_code: status.as_u16(),
                message: self.public_message(),
                error: Some(status.canonical_reason().unwrap_or("Error")),
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.log();
        let status = self.status();
        let mut response = (status, Json(self.body())).into_response();
        if let AppError::Throttled(secs) = self {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_body_is_nestjs_shaped_and_a_500_tells_nothing() {
        let conflict =
            serde_json::to_string(&AppError::Conflict("Username already exists".into()).body())
                .unwrap();
        assert_eq!(
            conflict,
            r#"{"statusCode":409,"message":"Username already exists","error":"Conflict"}"#
        );
        let internal =
            serde_json::to_string(&AppError::Internal("SELECT secret".into()).body()).unwrap();
        assert_eq!(
            internal,
            r#"{"statusCode":500,"message":"Internal server error"}"#
        );
    }
}
