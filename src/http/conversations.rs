//! `GET /api/conversations` and `GET /api/conversations/{peerId}/messages`.

use axum::{
    Json,
    extract::{Path, Query, State},
};
use serde::Deserialize;
use uuid::Uuid;

use super::body::CurrentUser;
use crate::{
    app::AppState,
    chat::MAX_PAGE,
    error::AppError,
    wire::{ConversationView, MessagePage, MessageView, PeerView},
};

/// The user's conversations, most recent first.
pub async fn list(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
) -> Result<Json<Vec<ConversationView>>, AppError> {
    let conversations = app.chat.conversations(me.id).await?;
    let peers: Vec<Uuid> = conversations.iter().map(|(u, _)| u.id).collect();
    let online = app.presence.online_among(&peers).await?;
    Ok(Json(
        conversations
            .iter()
            .map(|(peer, last)| ConversationView {
                peer: PeerView {
                    id: peer.id,
                    username: peer.username.clone(),
                    online: online.contains(&peer.id),
                },
                last_message: MessageView::from(last),
            })
            .collect(),
    ))
}

/// Query of a history page.
#[derive(Deserialize)]
pub struct PageQuery {
    before: Option<String>,
    limit: Option<String>,
}

/// A page of the conversation with `peer_id`, oldest first.
pub async fn messages(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(peer_id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<MessagePage>, AppError> {
    let unknown = || AppError::NotFound("Unknown peer".into());
    let peer = Uuid::parse_str(&peer_id).map_err(|_| unknown())?;
    if app.accounts.user(peer).await?.is_none() {
        return Err(unknown());
    }
    let before = match query.before.as_deref().filter(|b| !b.is_empty()) {
        None => None,
        Some(b) => Some(
            Uuid::parse_str(b)
                .map_err(|_| AppError::Invalid("before must be a message id".into()))?,
        ),
    };
    let limit = match query.limit.as_deref().filter(|l| !l.is_empty()) {
        None => MAX_PAGE,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                AppError::Invalid(format!("limit must be an integer from 1 to {MAX_PAGE}"))
            })?,
    };
    let (messages, has_more) = app.chat.history(me.id, peer, before, limit).await?;
    Ok(Json(MessagePage::new(&messages, has_more)))
}
