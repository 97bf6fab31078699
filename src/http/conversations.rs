//! `GET /api/conversations` and `GET /api/conversations/{peerId}/messages`.

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use uuid::Uuid;

use super::body::{CurrentUser, Path, Query};
use crate::{
    chat::{ConversationEntry, HistoryRequest, MAX_UNREAD},
    error::AppError,
    state::AppState,
    wire::{ConversationView, MessagePage, MessageView, PeerView, RoomBrief},
};

/// The user's direct conversations and rooms, most recent first.
pub async fn list(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
) -> Result<Response, AppError> {
    let entries = app.chat.conversations(me.id).await?;
    let peers: Vec<Uuid> = entries
        .iter()
        .filter_map(|e| match e {
            ConversationEntry::Direct(direct) => Some(direct.peer.id),
            ConversationEntry::Room(_) => None,
        })
        .collect();
    let online = app.presence.online_among(&peers).await?;
    let views: Vec<ConversationView<'_>> = entries
        .iter()
        .map(|entry| match entry {
            ConversationEntry::Direct(direct) => ConversationView::Direct {
                peer: PeerView {
                    id: direct.peer.id,
                    username: direct.peer.username.clone(),
                    online: online.contains(&direct.peer.id),
                },
                last_message: MessageView::from(&direct.last),
                unread: direct.unread.min(MAX_UNREAD),
                peer_read_up_to: direct.peer_read_up_to,
            },
            ConversationEntry::Room(room) => ConversationView::Room {
                room: RoomBrief {
                    id: room.id,
                    name: &room.name,
                    member_count: room.member_count,
                    created_at: room.created_at,
                },
                last_message: room.last_message.as_ref().map(MessageView::from),
                unread: room.unread.min(MAX_UNREAD),
            },
        })
        .collect();
    Ok(Json(views).into_response())
}

/// Query of a history page.
#[derive(Deserialize)]
pub struct PageQuery {
    pub(super) before: Option<String>,
    pub(super) limit: Option<String>,
}

/// A page of the conversation with `peer_id`, oldest first.
pub async fn messages(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    Path(peer_id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Response, AppError> {
    let unknown = || AppError::NotFound("Unknown peer".into());
    let peer = Uuid::parse_str(&peer_id).map_err(|_| unknown())?;
    if app.accounts.user(peer).await?.is_none() {
        return Err(unknown());
    }
    let request =
        HistoryRequest::from_query(peer, query.before.as_deref(), query.limit.as_deref())?;
    let (messages, has_more) = app.chat.history(me.id, request).await?;
    Ok(Json(MessagePage::new(&messages, has_more)).into_response())
}
