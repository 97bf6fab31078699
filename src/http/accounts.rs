//! `POST /auth/register`, `POST /auth/login`, `GET /api/me`.

use std::net::SocketAddr;

use axum::{
    Json,
    extract::{ConnectInfo, State},
    http::StatusCode,
};

use super::body::{CurrentUser, JsonObject};
use crate::{
    error::AppError,
    metrics::inc,
    state::AppState,
    wire::{ErrorBody, LoginRequest, MeView, Registration, SessionUser, SessionView, UserView},
};

/// Creates an account: 201 with the user (never a password or hash).
#[utoipa::path(
    post,
    path = "/auth/register",
    operation_id = "register",
    tag = "accounts",
    request_body = Registration,
    responses(
        (status = 201, description = "The account, offline", body = UserView),
        (status = 400, description = "Not a JSON object, or a username or password that breaks the rules", body = ErrorBody),
        (status = 409, description = "`Username already exists` (names compare without regard to case)", body = ErrorBody),
        (status = 503, description = "The database is unavailable; nothing was created", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    post,
    path = "/auth/login",
    operation_id = "login",
    tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 201, description = "A token (NestJS's default status for POST)", body = SessionView),
        (status = 400, description = "Not a JSON object, or a field missing, empty or not a string", body = ErrorBody),
        (status = 401, description = "`Invalid credentials`: the same for an unknown user and a wrong password", body = ErrorBody),
        (status = 429, description = "Too many failed sign-ins for this username or address", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the next attempt is allowed"))),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: JsonObject,
) -> Result<(StatusCode, Json<SessionView>), AppError> {
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
        Json(SessionView {
            access_token: session.token,
            user: SessionUser {
                id: session.user.id,
                username: session.user.username,
            },
        }),
    ))
}

/// The signed-in user.
#[utoipa::path(
    get,
    path = "/api/me",
    operation_id = "getMe",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user the token names", body = MeView),
        (status = 401, description = "The token is missing, malformed, expired or foreign", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
pub async fn me(CurrentUser(user): CurrentUser) -> Json<MeView> {
    Json(MeView {
        id: user.id,
        username: user.username,
        created_at: user.created_at,
    })
}
