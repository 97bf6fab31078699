//! A socket's connection and its end: the handshake middleware (no handler ever runs for a socket
//! without a valid token; caps are enforced; the socket is counted into presence), the connect and
//! disconnect handlers.

use std::{fmt, net::SocketAddr, sync::atomic::Ordering::Relaxed};

use axum::extract::ConnectInfo;
use serde_json::Value;
use socketioxide::{
    ProtocolVersion, SocketIo,
    adapter::Adapter,
    extract::{Extension, SocketRef, State, TryData},
};
use tracing::Instrument;

use super::{backlog::Backlog, events, ratelimit::TokenBucket, user::SocketUser, user_room};
use crate::{auth, error::AppError, metrics::inc, presence::Admission, state::AppState};

/// Why a handshake was refused; its text is the client's `connect_error` message.
#[derive(Debug)]
pub enum HandshakeError {
    /// Missing, malformed, expired or foreign token, or an unknown user.
    Unauthorized,
    /// The database could not confirm the user; the client should retry, not sign out.
    Unavailable,
    /// The user has `MAX_SOCKETS_PER_USER` sockets open, or the address too many handshakes
    /// in progress.
    TooManyConnections,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::Unauthorized => "Unauthorized",
            HandshakeError::Unavailable => "Service unavailable",
            HandshakeError::TooManyConnections => "Too many connections",
        })
    }
}

/// The token, from (in order) `auth.token`, an `Authorization: Bearer` header, or — for
/// protocol v4 clients only, which have no `auth` payload — the `token` query parameter.
fn find_token<A: Adapter>(s: &SocketRef<A>, auth: Option<&Value>) -> Option<String> {
    if let Some(token) = auth.and_then(|a| a.get("token")).and_then(Value::as_str) {
        return Some(token.to_owned());
    }
    let parts = s.req_parts();
    if let Some(header) = parts.headers.get(axum::http::header::AUTHORIZATION) {
        return auth::bearer_token(header).map(str::to_owned);
    }
    if s.protocol() == ProtocolVersion::V4 {
        return parts.uri.query().and_then(|q| {
            q.split('&')
                .find_map(|pair| pair.strip_prefix("token="))
                .map(str::to_owned)
        });
    }
    None
}

/// Connect middleware: verifies the token and the caps, attaches the user to the socket and
/// prepares it. Refusals are counted.
pub async fn authenticate<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    TryData(auth): TryData<Value>,
) -> Result<(), HandshakeError> {
    let result = admit(&s, &app, auth.ok()).await;
    if result.is_err() {
        inc(&app.metrics.handshakes_refused);
    }
    result
}

async fn admit<A: Adapter>(
    s: &SocketRef<A>,
    app: &AppState,
    auth: Option<Value>,
) -> Result<(), HandshakeError> {
    let peer = s
        .req_parts()
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let _pass = match peer {
        Some(ip) => Some(
            app.handshakes
                .enter(ip)
                .ok_or(HandshakeError::TooManyConnections)?,
        ),
        None => None,
    };
    let token = find_token(s, auth.as_ref()).ok_or(HandshakeError::Unauthorized)?;
    let user = match app.accounts.authenticate(&token).await {
        Ok(user) => user,
        Err(AppError::Unauthorized(_)) => {
            tracing::debug!(sid = %s.id, "handshake refused");
            return Err(HandshakeError::Unauthorized);
        }
        Err(err) => {
            err.log();
            return Err(HandshakeError::Unavailable);
        }
    };
    let config = &app.config;
    let presence = match app
        .presence
        .admit(&user, config.max_sockets_per_user as usize, &app.metrics)
        .await
    {
        Admission::Admitted(presence) => presence,
        Admission::TooManySockets => return Err(HandshakeError::TooManyConnections),
    };
    // Before the client hears it is connected: every instance then publishes this user's
    // deliveries here too (cluster mode).
    let route = match app.mode.bus() {
        Some(bus) => Some(bus.host(user.id).await),
        None => None,
    };
    let bucket = TokenBucket::new(config.rate_limit_burst, config.rate_limit_per_sec);
    let me = SocketUser::new(user, bucket, presence, route);
    // Before the socket joins its rooms, so that every delivery to it is charged.
    s.extensions
        .insert(std::sync::Arc::new(Backlog::for_handshake(s.req_parts())));
    join_and_listen(s, &me);
    app.metrics.sockets_connected.fetch_add(1, Relaxed);
    me.presence.watch_handshake(
        s.clone(),
        me.user.clone(),
        app.presence.clone(),
        app.metrics.clone(),
    );
    s.extensions.insert(me);
    Ok(())
}

/// Joins the socket's rooms and registers its handlers. Runs in the handshake middleware, before
/// the client is told it is connected: socketioxide runs the connect handler on a task of its
/// own, and an event that arrived before that task registered its handler would be dropped.
fn join_and_listen<A: Adapter>(s: &SocketRef<A>, me: &SocketUser) {
    // The id room lets a cluster broadcast leave out sockets already served (see deliver.rs).
    s.join([user_room(me.user.id), s.id.to_string()]);
    events::listen(s);
    s.on_disconnect(on_disconnect::<A>);
}

/// The client heard it is connected: its user is announced if this was their first socket.
pub async fn on_connect<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    Extension(me): Extension<SocketUser>,
) {
    let span = me.span(&s);
    async move {
        tracing::debug!(transport = ?s.transport_type(), protocol = ?s.protocol(), "connected");
        me.presence.connected(&io, &me.user).await;
    }
    .instrument(span)
    .await
}

async fn on_disconnect<A: Adapter>(
    s: SocketRef<A>,
    io: SocketIo<A>,
    State(app): State<AppState>,
    Extension(me): Extension<SocketUser>,
) {
    app.metrics.sockets_connected.fetch_sub(1, Relaxed);
    events::stopped_typing(&io, &app, &me).await;
    me.presence
        .disconnected(&io, &s, &me.user, &app.presence, &app.metrics)
        .await;
}
