//! `GET /api/rooms/{roomId}`, `GET /api/rooms/{roomId}/messages` and the user directory
//! `GET /api/users`. A room the caller is not in answers exactly like one that does not exist.

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{
    body::{CurrentUser, Path, Query},
    conversations::PageQuery,
};
use crate::{
    chat::{MAX_DIRECTORY_PAGE, requests::RoomHistory},
    error::AppError,
    state::AppState,
    wire::{MessagePage, PeerView, RoomView},
};

/// The room id of a path; any other text is a room that does not exist.
fn room_id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw).map_err(|_| AppError::room_not_found())
}

/// A room the caller is in, with its members.
pub async fn room(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let room = app.chat.room(me.id, room_id(&id)?).await?;
    Ok(Json(RoomView::with_read_state(&room)).into_response())
}

/// A page of a room the caller is in, oldest first.
pub async fn messages(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, AppError> {
    let request = RoomHistory::from_query(
        room_id(&id)?,
        query.before.as_deref(),
        query.limit.as_deref(),
    )?;
    let (messages, has_more) = app.chat.room_history(me.id, request).await?;
    Ok(Json(MessagePage::new(&messages, has_more)).into_response())
}

/// Query of the user directory.
#[derive(Deserialize)]
pub struct DirectoryQuery {
    q: Option<String>,
    limit: Option<String>,
}

/// Users whose name starts with `q` (any case), the caller excluded, online first then by name.
pub async fn users(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    Query(query): Query<DirectoryQuery>,
) -> Result<Response, AppError> {
    let limit = match query.limit.as_deref().filter(|l| !l.is_empty()) {
        None => 20,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_DIRECTORY_PAGE).contains(n))
            .ok_or_else(|| {
                AppError::Invalid(format!(
                    "limit must be an integer from 1 to {MAX_DIRECTORY_PAGE}"
                ))
            })?,
    };
    let prefix = query.q.unwrap_or_default();
    let found = app
        .chat
        .find_users(&app.presence, me.id, prefix.trim(), limit)
        .await?;
    let views: Vec<PeerView> = found
        .into_iter()
        .map(|(user, online)| PeerView {
            id: user.id,
            username: user.username,
            online,
        })
        .collect();
    Ok(Json(views).into_response())
}
