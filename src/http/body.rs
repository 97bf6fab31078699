//! Request input: bodies, path parameters, query strings and the bearer-token extractor. Input
//! that is not what a route expects becomes a 400 with the NestJS error body (axum's own
//! rejections are plain text).

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{header::AUTHORIZATION, request::Parts},
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::{auth, error::AppError, state::AppState, store::User};

/// A JSON object body.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| AppError::Invalid(format!("Unreadable body: {}", e.body_text())))?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(AppError::Invalid("Body must be a JSON object".into())),
            Err(_) if bytes.is_empty() => {
                Err(AppError::Invalid("Body must be a JSON object".into()))
            }
            Err(_) => Err(AppError::Invalid("Malformed JSON body".into())),
        }
    }
}

impl JsonObject {
    /// A required string field.
    pub fn string(&self, name: &str) -> Result<&str, AppError> {
        match self.0.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            Some(Value::String(_)) => Err(AppError::Invalid(format!("{name} should not be empty"))),
            None | Some(Value::Null) => Err(AppError::Invalid(format!("{name} is required"))),
            Some(_) => Err(AppError::Invalid(format!("{name} must be a string"))),
        }
    }
}

/// A query string; one that does not fit `T` (a repeated or malformed parameter) is a 400 with
/// the NestJS body.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(AppError::Invalid(format!(
                "Invalid query string: {}",
                // "Failed to deserialize query string: duplicate field `limit`" -> the cause.
                rejection
                    .body_text()
                    .rsplit_once(": ")
                    .map_or_else(|| rejection.body_text(), |(_, cause)| cause.to_owned())
            ))),
        }
    }
}

/// A path parameter; one that cannot be decoded (percent-encoded bytes that are not UTF-8) is a
/// 400 with the NestJS body.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use axum::extract::rejection::PathRejection;
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(PathRejection::FailedToDeserializePathParams(_)) => Err(AppError::Invalid(
                "Invalid URL: a path parameter is not valid UTF-8 or not of the expected form"
                    .into(),
            )),
            Err(rejection) => Err(AppError::Internal(format!(
                "path parameters unavailable: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// The user named by the request's `Authorization: Bearer` token.
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(auth::bearer_token)
            .ok_or_else(|| AppError::Unauthorized("Unauthorized".into()))?;
        state.accounts.authenticate(token).await.map(CurrentUser)
    }
}
