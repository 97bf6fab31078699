//! Handshake authentication: no handler ever runs for a socket without a valid token.

use std::fmt;

use serde_json::Value;
use socketioxide::{
    ProtocolVersion,
    adapter::Adapter,
    extract::{SocketRef, State, TryData},
};

use super::SocketUser;
use crate::{app::AppState, error::AppError};

/// Why a handshake was refused; its text is the client's `connect_error` message.
#[derive(Debug)]
pub enum HandshakeError {
    /// Missing, malformed, expired or foreign token, or an unknown user.
    Unauthorized,
    /// The database could not confirm the user; the client should retry, not sign out.
    Unavailable,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HandshakeError::Unauthorized => "Unauthorized",
            HandshakeError::Unavailable => "Service unavailable",
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

/// Connect middleware: verifies the token and attaches the user to the socket.
pub async fn authenticate<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    TryData(auth): TryData<Value>,
) -> Result<(), HandshakeError> {
    let token = find_token(&s, auth.as_ref().ok()).ok_or(HandshakeError::Unauthorized)?;
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
    let me = SocketUser::new(user, config.rate_limit_burst, config.rate_limit_per_sec);
    super::prepare(&s, &me);
    s.extensions.insert(me);
    Ok(())
}
