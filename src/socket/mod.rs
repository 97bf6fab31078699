//! The Socket.io surface: a connect middleware that authenticates the handshake, then one handler
//! per event. Handlers are generic over the adapter, so the same code serves the in-process
//! adapter (single node) and the Redis adapter (cluster).

mod deliver;
mod handshake;
mod payload;
mod ratelimit;

use std::{
    sync::{Arc, Mutex, atomic::Ordering::Relaxed},
    time::Instant,
};

use serde_json::Value;
use socketioxide::{
    SocketIo,
    adapter::Adapter,
    extract::{AckSender, Extension, SocketRef, State, TryData},
    handler::ConnectHandler,
    operators::BroadcastOperators,
};
use socketioxide_core::adapter::DefinedAdapter;
use tracing::Instrument;
use uuid::Uuid;

pub use self::handshake::HandshakeGate;
use self::ratelimit::TokenBucket;
use crate::{
    app::AppState,
    error::AppError,
    metrics::{Metrics, inc},
    store::User,
    wire::{MessagePage, MessageView, NewMessageEvent, UserView},
};

/// Every socket of the default namespace, on every instance; `None` once the server is closing.
/// (socketioxide's `io.emit`/`io.within` panic when the namespace is gone, which a disconnect
/// handler running during shutdown did.)
pub fn everyone<A: Adapter>(io: &SocketIo<A>) -> Option<BroadcastOperators<A>> {
    io.of("/")
}

/// The room every socket of one user joins: a message is emitted to the sender's and the
/// receiver's rooms and so reaches all their tabs, on every instance.
pub fn user_room(id: Uuid) -> String {
    format!("user:{id}")
}

/// Per-socket state, attached by the handshake.
#[derive(Clone)]
pub struct SocketUser {
    /// Who this socket belongs to.
    pub user: User,
    bucket: Arc<Mutex<TokenBucket>>,
    /// Where this socket is in its presence life; the lock orders the handshake, the connect
    /// handler, the disconnect handler and the watchdog, which may run in any order.
    presence: Arc<tokio::sync::Mutex<PresenceState>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PresenceState {
    /// Counted by the handshake; `announce` when it was the user's first socket.
    Counted { announce: bool },
    /// Presence could not be updated (Redis down or slow): counted only on this instance, until
    /// the presence repair counts it cluster-wide and announces the user.
    Uncounted,
    /// The connect handler ran; `counted` says whether a disconnect must count it out.
    Live { counted: bool },
    /// Counted out (or never counted); nothing more to do.
    Closed,
}

impl SocketUser {
    fn new(user: User, burst: u32, per_sec: u32, state: PresenceState) -> SocketUser {
        SocketUser {
            user,
            bucket: Arc::new(Mutex::new(TokenBucket::new(burst, per_sec))),
            presence: Arc::new(tokio::sync::Mutex::new(state)),
        }
    }

    fn take_token(&self) -> bool {
        self.bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_take()
    }
}

/// Registers the `/` namespace on `io`. The returned value is the adapter's initialisation
/// (a future for the Redis adapter, nothing for the local one).
pub fn attach<A: Adapter + DefinedAdapter>(io: &SocketIo<A>) -> A::InitRes {
    io.ns("/", on_connect::<A>.with(handshake::authenticate::<A>))
}

fn span(s: &SocketRef<impl Adapter>, me: &SocketUser) -> tracing::Span {
    tracing::info_span!("socket", sid = %s.id, user = %me.user.id)
}

/// Joins the user's room and registers the event handlers. Called by the handshake middleware,
/// before the client is told it is connected: socketioxide runs the connect handler on a task of
/// its own, and an event that arrived before that task registered its handler would be dropped.
fn prepare<A: Adapter>(s: &SocketRef<A>, me: &SocketUser, metrics: &Metrics) {
    metrics.sockets_connected.fetch_add(1, Relaxed);
    // The id room lets a cluster broadcast leave out sockets already served (see deliver.rs).
    s.join([user_room(me.user.id), s.id.to_string()]);
    s.on("user:init", on_user_init::<A>);
    s.on("message:send", on_send::<A>);
    s.on("message:history", on_history::<A>);
    s.on("message:sync", on_sync::<A>);
    s.on_disconnect(on_disconnect::<A>);
}

/// Announces the user when the handshake counted their first socket.
async fn on_connect<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    Extension(me): Extension<SocketUser>,
) {
    let span = span(&s, &me);
    async move {
        tracing::debug!(transport = ?s.transport_type(), protocol = ?s.protocol(), "connected");
        let mut state = me.presence.lock().await;
        let announce = match *state {
            PresenceState::Counted { announce } => {
                *state = PresenceState::Live { counted: true };
                announce
            }
            PresenceState::Uncounted => {
                *state = PresenceState::Live { counted: false };
                false
            }
            // Already gone: its disconnect was handled first.
            PresenceState::Live { .. } | PresenceState::Closed => false,
        };
        if announce {
            tracing::info!(username = %me.user.username, "user online");
            let online = UserView::new(&me.user, true);
            if let Some(all) = everyone(&io)
                && let Err(err) = all.emit("user:online", &online).await
            {
                tracing::warn!(error = %err, "could not broadcast user:online");
            }
        }
    }
    .instrument(span)
    .await
}

/// Counts the socket out, if it still counts; `true` when its user just went offline and had
/// been announced online (a first socket that closes before its connect handler ran was never
/// announced, so its user leaves silently: observers see online/offline in pairs). A socket whose
/// count failed is left to the presence repair, which announces whatever it changes.
async fn count_out(app: &AppState, me: &SocketUser) -> bool {
    let mut state = me.presence.lock().await;
    let (counted, announced) = match *state {
        PresenceState::Counted { announce } => (true, !announce),
        PresenceState::Live { counted } => (counted, true),
        PresenceState::Uncounted => (false, false),
        PresenceState::Closed => return false,
    };
    *state = PresenceState::Closed;
    if !counted {
        app.presence.forget(me.user.id).await;
        return false;
    }
    match app.presence.disconnect(me.user.id).await {
        Ok(gone) => gone && announced,
        Err(err) => {
            inc(&app.metrics.redis_errors);
            tracing::warn!(error = %err, user = %me.user.id, "presence update failed on disconnect");
            false
        }
    }
}

/// A socket counted by its handshake whose connection then failed never gets a connect or a
/// disconnect handler call; this counts it out if it is not connected shortly after.
///
/// One such watchdog exists per socket for its first seconds, so its task is kept small: the
/// rare slow path is boxed instead of being laid out inline in every watchdog's task.
fn watch_handshake<A: Adapter>(s: SocketRef<A>, app: AppState, me: SocketUser) {
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        if s.connected() {
            return;
        }
        Box::pin(async move {
            let never_connected = matches!(
                *me.presence.lock().await,
                PresenceState::Counted { .. } | PresenceState::Uncounted
            );
            if never_connected {
                tracing::debug!(sid = %s.id, "handshake never completed; counting the socket out");
                // The user was never announced online by this socket, so no offline either.
                count_out(&app, &me).await;
            }
        })
        .await;
    });
}

async fn on_disconnect<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(app): State<AppState>,
    Extension(me): Extension<SocketUser>,
) {
    app.metrics.sockets_connected.fetch_sub(1, Relaxed);
    if count_out(&app, &me).await {
        tracing::info!(user = %me.user.id, "user offline");
        // Not to the closing socket itself: it can no longer receive.
        let Some(everyone_else) = everyone(&io).map(|all| all.except(s.id)) else {
            return;
        };
        if let Err(err) = everyone_else
            .emit("user:offline", &me.user.id.to_string())
            .await
        {
            // Expected during a mass disconnect (shutdown): some receivers are closing too.
            tracing::debug!(error = %err, "user:offline not delivered to every socket");
        }
    }
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
    .instrument(span(&s, &me))
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
    let span = span(&s, &me);
    let received = Instant::now();
    async move {
        let metrics = &app.metrics;
        let result = async {
            if !me.take_token() {
                inc(&metrics.rate_limited);
                return Err(AppError::RateLimited("Too many messages; slow down".into()));
            }
            let request = payload::send(&require_payload(payload)?)?;
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
        deliver::message_new(&io, rooms, &event, app.cluster.is_some(), metrics).await;
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
        let req = payload::history(&require_payload(payload)?)?;
        let (messages, _) = app
            .chat
            .history(me.user.id, req.peer, req.before, req.limit)
            .await?;
        Ok(messages.iter().map(MessageView::from).collect::<Vec<_>>())
    }
    .instrument(span(&s, &me))
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
        let req = payload::sync(&require_payload(payload)?)?;
        let (messages, has_more) = app.chat.sync(me.user.id, req.after, req.limit).await?;
        Ok(MessagePage::new(&messages, has_more))
    }
    .instrument(span(&s, &me))
    .await;
    reply(ack, result, &app.metrics);
}
