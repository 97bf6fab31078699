//! `GET /api/conversations` and `GET /api/conversations/{peerId}/messages`.

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::body::{CurrentUser, Path, Query};
use crate::{
    chat::{ConversationEntry, HistoryRequest, MAX_UNREAD},
    error::AppError,
    state::AppState,
    wire::{ConversationView, ErrorBody, MessagePage, MessageView, PeerView, RoomBrief},
};

/// The user's direct conversations and rooms, most recent first.
#[utoipa::path(
    get,
    path = "/api/conversations",
    operation_id = "listConversations",
    tag = "conversations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Direct conversations and rooms, most recent first; a room \
            without messages sorts by its creation", body = Vec<ConversationView>),
        (status = 401, description = "The token is missing or invalid", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
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
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// A message id of the conversation: the page is the messages just older than it (default:
    /// the latest).
    #[param(value_type = Option<Uuid>)]
    pub(super) before: Option<String>,
    /// How many messages, 1 to 100 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub(super) limit: Option<String>,
}

/// A page of the caller's conversation with a peer, oldest first.
#[utoipa::path(
    get,
    path = "/api/conversations/{peerId}/messages",
    operation_id = "getConversationMessages",
    tag = "conversations",
    security(("bearer" = [])),
    params(
        ("peerId" = Uuid, Path, description = "The other user of the conversation"),
        PageQuery,
    ),
    responses(
        (status = 200, description = "The page, oldest first; `hasMore` when older messages exist", body = MessagePage),
        (status = 400, description = "`before` is not a message id, or `limit` is not 1 to 100", body = ErrorBody),
        (status = 401, description = "The token is missing or invalid", body = ErrorBody),
        (status = 404, description = "`Unknown peer`: no user has this id", body = ErrorBody),
        (status = 503, description = "The database is unavailable", body = ErrorBody),
    )
)]
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
