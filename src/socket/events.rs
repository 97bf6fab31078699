//! One handler per client event. Each is thin: parse the payload into a request of the chat
//! service, call it, and ack the result (the value, or `{"error": {...}}`).

use std::time::Instant;

use serde_json::Value;
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{AckSender, Extension, SocketRef, State, TryData},
};
use tracing::Instrument;

use serde_json::json;
use uuid::Uuid;

use super::{deliver, user::SocketUser};
use crate::{
    chat::{
        Audience, HistoryRequest, RoomChange, SendMessage, SyncRequest,
        requests::{
            AddMembers, CreateRoom, MarkRead, RemoveMember, RenameRoom, RoomHistory, SendToRoom,
            TypingRequest,
        },
    },
    cluster::RoomVersion,
    error::AppError,
    metrics::{Metrics, inc},
    state::AppState,
    store::{Message, Recipient, Room},
    wire::{
        MessagePage, MessageView, NewMessageEvent, ReadEvent, RoomRemovedEvent, RoomView,
        TypingEvent, UserView,
    },
};

/// Registers the handler of every client event on a new socket.
pub fn listen<A: Adapter>(s: &SocketRef<A>) {
    s.on("user:init", on_user_init::<A>);
    s.on("message:send", on_send::<A>);
    s.on("message:history", on_history::<A>);
    s.on("message:sync", on_sync::<A>);
    s.on("room:create", on_room_create::<A>);
    s.on("room:rename", on_room_rename::<A>);
    s.on("room:add", on_room_add::<A>);
    s.on("room:remove", on_room_remove::<A>);
    s.on("room:send", on_room_send::<A>);
    s.on("room:history", on_room_history::<A>);
    s.on("conversation:read", on_read::<A>);
    s.on("typing", on_typing::<A>);
}

/// Sends `result` as the ack: the value, or `{"error": {...}}`.
/// A server-side failure is logged naming the user even at the default log level, where the
/// per-event `socket` span (debug) is not recorded.
fn reply<A: Adapter, T: serde::Serialize, E: std::borrow::Borrow<AppError>>(
    me: &SocketUser,
    ack: AckSender<A>,
    result: Result<T, E>,
    metrics: &Metrics,
) {
    match result {
        Ok(value) => send_ack(ack, &value),
        Err(err) => {
            let err = err.borrow();
            let _who = if matches!(err, AppError::Unavailable(_) | AppError::Internal(_)) {
                inc(&metrics.database_errors);
                tracing::Span::current()
                    .is_disabled()
                    .then(|| tracing::info_span!("socket", user = %me.user.id).entered())
            } else {
                None
            };
            send_ack(ack, &err.to_ack());
        }
    }
}

/// Sends an ack (a client that left meanwhile does not get it).
fn send_ack<A: Adapter>(ack: AckSender<A>, value: &impl serde::Serialize) {
    if let Err(err) = ack.send(value) {
        tracing::debug!(error = %err, "ack not delivered");
    }
}

fn require_payload(payload: Result<Value, impl std::fmt::Display>) -> Result<Value, AppError> {
    payload.map_err(|_| AppError::Invalid("payload must be a JSON object".into()))
}

async fn on_user_init<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    Extension(me): Extension<SocketUser>,
    ack: AckSender<A>,
) {
    let result: Result<Vec<UserView>, AppError> = async {
        let mut users = app.presence.online_users().await?;
        // A disabled or deleted account's sockets are closing (see access.rs): not online.
        users.retain(|u| !app.accounts.is_revoked(u.id));
        // The caller is online by definition, even if its presence write is still in flight.
        if !users.iter().any(|u| u.id == me.user.id) {
            users.push(me.user.clone());
        }
        Ok(users
            .iter()
            .map(|u| UserView::new(u, true))
            .collect::<Vec<_>>())
    }
    .instrument(me.span(&s))
    .await;
    reply(&me, ack, result, &app.metrics);
}

async fn on_send<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(app): State<AppState>,
    Extension(me): Extension<SocketUser>,
    ack: AckSender<A>,
    TryData(payload): TryData<Value>,
) {
    let span = me.span(&s);
    let received = Instant::now();
    async move {
        let metrics = &app.metrics;
        let result = async {
            let request = SendMessage::from_payload(&require_payload(payload)?)?;
            take_token(&me, &app).await?;
            let sent = app.chat.send(&me.user, request).await;
            if !matches!(&sent, Ok(sent) if sent.created) {
                give_back_token(&me, &app).await;
            }
            sent
        }
        .await;
        let sent = match result {
            Ok(sent) => sent,
            Err(err) => return reply::<A, (), _>(&me, ack, Err(err), metrics),
        };
        if !sent.created {
            // A retry of a stored message: its message:new went out the first time.
            return ack_stored(ack, &sent.message, metrics, received);
        }
        let event = NewMessageEvent {
            message: MessageView::from(&sent.message),
            sender_username: &me.user.username,
        };
        let users = [sent.message.sender_id, me_or_receiver(&sent.message)];
        let ack = || ack_stored(ack, &sent.message, metrics, received);
        let event = ("message:new", &event);
        deliver::stored(&io, &app, event, &sent.message, &users, None, ack).await;
    }
    .instrument(span)
    .await
}

/// Acks a stored message (`message:send`, `room:send`) and records how long the ack took.
fn ack_stored<A: Adapter>(
    ack: AckSender<A>,
    message: &Message,
    metrics: &Metrics,
    received: Instant,
) {
    send_ack(ack, &MessageView::from(message));
    metrics.ack_after(received.elapsed());
}

/// The receiver of a direct message.
fn me_or_receiver(message: &Message) -> Uuid {
    match message.to {
        Recipient::User(receiver) => receiver,
        Recipient::Room(_) => message.sender_id,
    }
}

/// Takes a token of the socket's send budget and one of its user's (shared by all of the user's
/// sockets, on every instance): `rate_limited` when either is spent (a token taken from the
/// other is given back). A send that then fails, or that is a retry of a stored message, gives
/// both back ([`give_back_token`]): only what is stored costs, as an error ack has no other
/// effect. A malformed payload is refused before it reaches the budgets. A disabled or deleted
/// account's send is refused (`unauthorized`) even before its socket is closed.
async fn take_token(me: &SocketUser, app: &AppState) -> Result<(), AppError> {
    let metrics = &app.metrics;
    if app.accounts.is_revoked(me.user.id) {
        inc(&metrics.revoked_refused);
        return Err(AppError::Unauthorized("Unauthorized".into()));
    }
    if !me.take_token() {
        inc(&metrics.rate_limited);
        return Err(AppError::RateLimited("Too many messages; slow down".into()));
    }
    if !app.accounts.take_send(me.user.id).await {
        me.give_back_token();
        inc(&metrics.user_rate_limited);
        return Err(AppError::RateLimited(
            "Too many messages from this account; slow down".into(),
        ));
    }
    Ok(())
}

/// Gives back what [`take_token`] took, for a send that stored nothing new.
async fn give_back_token(me: &SocketUser, app: &AppState) {
    me.give_back_token();
    app.accounts.give_back_send(me.user.id).await;
}

async fn on_history<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    Extension(me): Extension<SocketUser>,
    ack: AckSender<A>,
    TryData(payload): TryData<Value>,
) {
    let result = async {
        let request = HistoryRequest::from_payload(&require_payload(payload)?)?;
        app.chat.history(me.user.id, request).await
    }
    .instrument(me.span(&s))
    .await;
    let view = result
        .as_ref()
        .map(|(messages, _)| messages.iter().map(MessageView::from).collect::<Vec<_>>());
    reply(&me, ack, view, &app.metrics);
}

async fn on_sync<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    Extension(me): Extension<SocketUser>,
    ack: AckSender<A>,
    TryData(payload): TryData<Value>,
) {
    let result = async {
        let request = SyncRequest::from_payload(&require_payload(payload)?)?;
        app.chat.sync(me.user.id, request).await
    }
    .instrument(me.span(&s))
    .await;
    let view = result
        .as_ref()
        .map(|(messages, has_more)| MessagePage::new(messages, *has_more));
    reply(&me, ack, view, &app.metrics);
}

async fn on_room_create<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(app): State<AppState>,
    Extension(me): Extension<SocketUser>,
    ack: AckSender<A>,
    TryData(payload): TryData<Value>,
) {
    let result = async {
        let request = CreateRoom::from_payload(&require_payload(payload)?)?;
        app.chat.create_room(&me.user, request).await
    }
    .instrument(me.span(&s))
    .await;
    answer_room_change(&io, &app, &me, ack, result).await;
}

async fn on_room_rename<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(app): State<AppState>,
    Extension(me): Extension<SocketUser>,
    ack: AckSender<A>,
    TryData(payload): TryData<Value>,
) {
    let result = async {
        let request = RenameRoom::from_payload(&require_payload(payload)?)?;
        app.chat.rename_room(&me.user, request).await
    }
    .instrument(me.span(&s))
    .await;
    answer_room_change(&io, &app, &me, ack, result).await;
}

async fn on_room_add<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(app): State<AppState>,
    Extension(me): Extension<SocketUser>,
    ack: AckSender<A>,
    TryData(payload): TryData<Value>,
) {
    let result = async {
        let request = AddMembers::from_payload(&require_payload(payload)?)?;
        app.chat.add_members(&me.user, request).await
    }
    .instrument(me.span(&s))
    .await;
    answer_room_change(&io, &app, &me, ack, result).await;
}

async fn on_room_remove<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(app): State<AppState>,
    Extension(me): Extension<SocketUser>,
    ack: AckSender<A>,
    TryData(payload): TryData<Value>,
) {
    let result = async {
        let request = RemoveMember::from_payload(&require_payload(payload)?)?;
        app.chat.remove_member(&me.user, request).await
    }
    .instrument(me.span(&s))
    .await;
    answer_room_change(&io, &app, &me, ack, result).await;
}

/// Acks a membership change, then tells whom it concerns: `room:updated` to every member (the
/// added included), `room:removed` to every socket of who left or was removed.
async fn answer_room_change<A: Adapter>(
    io: &SocketIo<A>,
    app: &AppState,
    me: &SocketUser,
    ack: AckSender<A>,
    result: Result<RoomChange, AppError>,
) {
    let change = match result {
        Ok(change) => change,
        Err(err) => return reply::<A, (), _>(me, ack, Err(err), &app.metrics),
    };
    match &change {
        RoomChange::Updated { room, changed } => {
            let view = RoomView::from(room);
            send_ack(ack, &view);
            if *changed {
                updated(io, app, room, &view).await;
            }
        }
        RoomChange::Removed {
            room_id,
            removed,
            room,
        } => {
            match room {
                Some(room) if *removed != me.user.id => {
                    send_ack(ack, &RoomView::from(room));
                }
                _ => send_ack(ack, &json!({ "left": true })),
            }
            let gone = RoomRemovedEvent { room_id: *room_id };
            deliver::to_users(io, app, "room:removed", &gone, &[*removed], None).await;
            if let Some(room) = room {
                updated(io, app, room, &RoomView::from(room)).await;
            }
        }
    }
}

/// `room:updated` to every member of `room`.
async fn updated<A: Adapter>(io: &SocketIo<A>, app: &AppState, room: &Room, view: &RoomView<'_>) {
    let chosen_under = RoomVersion {
        room: room.id,
        version: room.version,
    };
    let members = room.member_ids();
    deliver::to_users(io, app, "room:updated", view, &members, Some(chosen_under)).await;
}

async fn on_room_send<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(app): State<AppState>,
    Extension(me): Extension<SocketUser>,
    ack: AckSender<A>,
    TryData(payload): TryData<Value>,
) {
    let span = me.span(&s);
    let received = Instant::now();
    async move {
        let metrics = &app.metrics;
        let result = async {
            let request = SendToRoom::from_payload(&require_payload(payload)?)?;
            take_token(&me, &app).await?;
            let sent = app.chat.send_to_room(&me.user, request).await;
            if !matches!(&sent, Ok(sent) if sent.created) {
                give_back_token(&me, &app).await;
            }
            sent
        }
        .await;
        let sent = match result {
            Ok(sent) => sent,
            Err(err) => return reply::<A, (), _>(&me, ack, Err(err), metrics),
        };
        let (Some(members), Recipient::Room(room)) = (&sent.members, sent.message.to) else {
            // A retry of a stored message: its room:message went out the first time.
            return ack_stored(ack, &sent.message, metrics, received);
        };
        let event = NewMessageEvent {
            message: MessageView::from(&sent.message),
            sender_username: &me.user.username,
        };
        let chosen_under = Some(RoomVersion {
            room,
            version: members.version,
        });
        let ack = || ack_stored(ack, &sent.message, metrics, received);
        let (event, ids) = (("room:message", &event), members.ids());
        deliver::stored(&io, &app, event, &sent.message, ids, chosen_under, ack).await;
    }
    .instrument(span)
    .await
}

async fn on_room_history<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    Extension(me): Extension<SocketUser>,
    ack: AckSender<A>,
    TryData(payload): TryData<Value>,
) {
    let result = async {
        let request = RoomHistory::from_payload(&require_payload(payload)?)?;
        app.chat.room_history(me.user.id, request).await
    }
    .instrument(me.span(&s))
    .await;
    let view = result
        .as_ref()
        .map(|(messages, _)| messages.iter().map(MessageView::from).collect::<Vec<_>>());
    reply(&me, ack, view, &app.metrics);
}

/// The peer or the room of a read-state or typing event, as its two optional fields.
fn peer_or_room(of: Recipient) -> (Option<Uuid>, Option<Uuid>) {
    match of {
        Recipient::User(peer) => (Some(peer), None),
        Recipient::Room(room) => (None, Some(room)),
    }
}

async fn on_read<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(app): State<AppState>,
    Extension(me): Extension<SocketUser>,
    ack: AckSender<A>,
    TryData(payload): TryData<Value>,
) {
    let span = me.span(&s);
    async move {
        let result = async {
            let request = MarkRead::from_payload(&require_payload(payload)?)?;
            let read = app.chat.mark_read(me.user.id, request).await?;
            Ok::<_, AppError>((request, read))
        }
        .await;
        let (request, read) = match result {
            Ok(done) => done,
            Err(err) => return reply::<A, (), _>(&me, ack, Err(err), &app.metrics),
        };
        send_ack(ack, &json!({ "upTo": read.up_to }));
        if !read.moved {
            return;
        }
        let (peer_id, room_id) = peer_or_room(request.of);
        let event = ReadEvent {
            reader_id: me.user.id,
            peer_id,
            room_id,
            up_to: read.up_to,
            read_at: chrono::Utc::now(),
        };
        let users = read.audience.users();
        let room = read.audience.room;
        let event = ("conversation:read", &event);
        deliver::to_users_but(&io, &app, event, &users, room, s.id).await;
    }
    .instrument(span)
    .await
}

/// `typing`: beyond the socket's rate it is dropped without an answer; else it goes to the other
/// participants, and the ack (if one is asked) is `{}` or the error.
async fn on_typing<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(app): State<AppState>,
    Extension(me): Extension<SocketUser>,
    ack: AckSender<A>,
    TryData(payload): TryData<Value>,
) {
    if !me.take_typing_token() {
        inc(&app.metrics.typing_dropped);
        return;
    }
    let span = me.span(&s);
    async move {
        let result = async {
            let request = TypingRequest::from_payload(&require_payload(payload)?)?;
            let audience = app.chat.typing_audience(me.user.id, &request).await?;
            Ok::<_, AppError>((request, audience))
        }
        .await;
        let (request, audience) = match result {
            Ok(done) => done,
            Err(err) => return reply::<A, (), _>(&me, ack, Err(err), &app.metrics),
        };
        me.set_typing(request.of, request.typing);
        send_ack(ack, &json!({}));
        announce_typing(&io, &app, &me, request, &audience).await;
    }
    .instrument(span)
    .await
}

/// Emits `typing` for `me` to `audience` (the other participants).
async fn announce_typing<A: Adapter>(
    io: &SocketIo<A>,
    app: &AppState,
    me: &SocketUser,
    request: TypingRequest,
    audience: &Audience,
) {
    let (peer_id, room_id) = peer_or_room(request.of);
    let event = TypingEvent {
        user_id: me.user.id,
        username: &me.user.username,
        peer_id,
        room_id,
        typing: request.typing,
    };
    deliver::to_users(io, app, "typing", &event, &audience.users(), audience.room).await;
}

/// `typing: false` for every conversation a disconnecting socket was typing in.
pub async fn stopped_typing<A: Adapter>(io: &SocketIo<A>, app: &AppState, me: &SocketUser) {
    for of in me.stop_typing() {
        let request = TypingRequest { of, typing: false };
        // A room the user has left meanwhile has nobody left to tell.
        if let Ok(audience) = app.chat.typing_audience(me.user.id, &request).await {
            announce_typing(io, app, me, request, &audience).await;
        }
    }
}
