//! `POST /auth/register`, `POST /auth/login`, `GET /api/me`.

use std::net::SocketAddr;

use axum::{
    Json,
    extract::{ConnectInfo, State},
    http::StatusCode,
};
use serde_json::{Value, json};

use super::body::{CurrentUser, JsonObject};
use crate::{
    error::AppError,
    metrics::inc,
    state::AppState,
    wire::{MeView, UserView},
};

/// Creates an account: 201 with the user (never a password or hash).
pub async fn register(
    State(app): State<AppState>,
    body: JsonObject,
) -> Result<(StatusCode, Json<UserView>), AppError> {
    let user = app
        .accounts
        .register(body.string("username")?, body.string("password")?)
        .await?;
    Ok((StatusCode::CREATED, Json(UserView::new(&user, false))))
}

/// Signs in: 201 (NestJS's default for POST) with the token and the user.
pub async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: JsonObject,
) -> Result<(StatusCode, Json<Value>), AppError> {
    let result = app
        .accounts
        .login(
            body.string("username")?,
            body.string("password")?,
            Some(peer.ip()),
        )
        .await;
    if let Err(AppError::Throttled(_)) = &result {
        inc(&app.metrics.logins_throttled);
    }
    let session = result?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "access_token": session.token,
            "user": { "id": session.user.id, "username": session.user.username },
        })),
    ))
}

/// The signed-in user.
pub async fn me(CurrentUser(user): CurrentUser) -> Json<MeView> {
    Json(MeView {
        id: user.id,
        username: user.username,
        created_at: user.created_at,
    })
}
