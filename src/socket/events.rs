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

use super::{deliver, user::SocketUser, user_room};
use crate::{
    chat::{HistoryRequest, SendMessage, SyncRequest},
    error::AppError,
    metrics::{Metrics, inc},
    state::AppState,
    wire::{MessagePage, MessageView, NewMessageEvent, UserView},
};

/// Registers the handler of every client event on a new socket.
pub fn listen<A: Adapter>(s: &SocketRef<A>) {
    s.on("user:init", on_user_init::<A>);
    s.on("message:send", on_send::<A>);
    s.on("message:history", on_history::<A>);
    s.on("message:sync", on_sync::<A>);
}

/// Sends `result` as the ack: the value, or `{"error": {...}}`.
fn reply<A: Adapter, T: serde::Serialize>(
    ack: AckSender<A>,
    result: Result<T, AppError>,
    metrics: &Metrics,
) {
    let sent = match result {
        Ok(value) => ack.send(&value),
        Err(err) => {
            if matches!(err, AppError::Unavailable(_) | AppError::Internal(_)) {
                inc(&metrics.database_errors);
            }
            ack.send(&err.to_ack())
        }
    };
    if let Err(err) = sent {
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
    let result = async {
        let mut users = app.presence.online_users().await?;
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
    reply(ack, result, &app.metrics);
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
            if !me.take_token() {
                inc(&metrics.rate_limited);
                return Err(AppError::RateLimited("Too many messages; slow down".into()));
            }
            let request = SendMessage::from_payload(&require_payload(payload)?)?;
            app.chat.send(&me.user, request).await
        }
        .await;
        let sent = match result {
            Ok(sent) => sent,
            Err(err) => return reply::<A, ()>(ack, Err(err), metrics),
        };
        let view = MessageView::from(&sent.message);
        reply::<A, _>(ack, Ok(&view), metrics);
        metrics.ack_after(received.elapsed());
        if !sent.created {
            // A retry of a stored message: its message:new went out the first time.
            return;
        }
        let event = NewMessageEvent {
            message: view,
            sender_username: me.user.username.clone(),
        };
        let rooms = [
            user_room(sent.message.sender_id),
            user_room(sent.message.receiver_id),
        ];
        deliver::message_new(&io, rooms, &event, &app.mode, metrics).await;
    }
    .instrument(span)
    .await
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
        let (messages, _) = app.chat.history(me.user.id, request).await?;
        Ok(messages.iter().map(MessageView::from).collect::<Vec<_>>())
    }
    .instrument(me.span(&s))
    .await;
    reply(ack, result, &app.metrics);
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
        let (messages, has_more) = app.chat.sync(me.user.id, request).await?;
        Ok(MessagePage::new(&messages, has_more))
    }
    .instrument(me.span(&s))
    .await;
    reply(ack, result, &app.metrics);
}
