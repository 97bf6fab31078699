//! Handshake authentication: no handler ever runs for a socket without a valid token.

use std::{
    collections::HashMap,
    fmt,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
};

use axum::extract::ConnectInfo;

use serde_json::Value;
use socketioxide::{
    ProtocolVersion,
    adapter::Adapter,
    extract::{SocketRef, State, TryData},
};

use super::{PresenceState, SocketUser};
use crate::{app::AppState, error::AppError, metrics::inc};

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
        let value = header.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
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

/// Counts the handshakes in progress per client address.
pub struct HandshakeGate {
    max: u32,
    in_progress: Mutex<HashMap<IpAddr, u32>>,
}

/// One handshake in progress; leaves the gate when dropped.
pub struct GatePass {
    gate: Arc<HandshakeGate>,
    ip: IpAddr,
}

impl HandshakeGate {
    /// At most `max` handshakes at once per address.
    pub fn new(max: u32) -> HandshakeGate {
        HandshakeGate {
            max,
            in_progress: Mutex::new(HashMap::new()),
        }
    }

    fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<GatePass> {
        let mut map = self.in_progress.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(GatePass {
            gate: self.clone(),
            ip,
        })
    }
}

impl Drop for GatePass {
    fn drop(&mut self) {
        let mut map = self
            .gate
            .in_progress
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
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
    // Counting the socket in before the client hears it is connected keeps the cap exact under
    // simultaneous connects, and a disconnect can never overtake its own count.
    let config = &app.config;
    let state = match app.presence.connect(&user).await {
        Ok(sockets) if sockets > config.max_sockets_per_user as usize => {
            if let Err(err) = app.presence.disconnect(user.id).await {
                tracing::warn!(error = %err, "could not undo a refused socket's presence");
            }
            tracing::info!(user = %user.id, sockets, "handshake refused: too many sockets");
            return Err(HandshakeError::TooManyConnections);
        }
        Ok(sockets) => PresenceState::Counted {
            announce: sockets == 1,
        },
        Err(err) => {
            inc(&app.metrics.redis_errors);
            tracing::warn!(error = %err, "presence update failed on connect");
            PresenceState::Uncounted
        }
    };
    let me = SocketUser::new(
        user,
        config.rate_limit_burst,
        config.rate_limit_per_sec,
        state,
    );
    super::prepare(s, &me, &app.metrics);
    super::watch_handshake(s.clone(), app.clone(), me.clone());
    s.extensions.insert(me);
    Ok(())
}
