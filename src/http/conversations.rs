//! `GET /api/conversations` and `GET /api/conversations/{peerId}/messages`.

use axum::{
    Json,
    extract::{Path, Query, State},
};
use serde::Deserialize;
use uuid::Uuid;

use super::body::CurrentUser;
use crate::{
    chat::HistoryRequest,
    error::AppError,
    state::AppState,
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
    let request =
        HistoryRequest::from_query(peer, query.before.as_deref(), query.limit.as_deref())?;
    let (messages, has_more) = app.chat.history(me.id, request).await?;
    Ok(Json(MessagePage::new(&messages, has_more)))
}
