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

/// A query string; one that does not fit `T` (a parameter given twice, say) is a 400.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|e| AppError::Invalid(e.body_text()))
    }
}

/// Path parameters; ones that do not decode (percent-escapes that are not UTF-8) are a 400.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|e| AppError::Invalid(e.body_text()))
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
