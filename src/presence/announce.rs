//! The only place that emits `user:online` and `user:offline`. Presence transitions reach here
//! from a socket's own life (`socket.rs`) and from the cluster's sweep and repair (`lease.rs`).

use socketioxide::{SocketIo, adapter::Adapter, socket::Sid};
use uuid::Uuid;

use crate::{store::User, wire::UserView};

/// `user:online` with the user's profile, to every socket (the user's own included).
pub async fn online<A: Adapter>(io: &SocketIo<A>, user: &User) {
    // `io.of("/")` is `None` once the namespace is closed (shutdown): socketioxide's `io.emit`
    // would panic there instead.
    let Some(everyone) = io.of("/") else { return };
    if let Err(err) = everyone
        .emit("user:online", &UserView::new(user, true))
        .await
    {
        tracing::warn!(error = %err, user = %user.id, "could not announce user:online");
    }
}

/// `user:offline` with the bare id, to every socket but `closing` (which can no longer receive).
pub async fn offline<A: Adapter>(io: &SocketIo<A>, user_id: Uuid, closing: Option<Sid>) {
    let Some(everyone) = io.of("/") else { return };
    let receivers = match closing {
        Some(sid) => everyone.except(sid),
        None => everyone,
    };
    if let Err(err) = receivers.emit("user:offline", &user_id.to_string()).await {
        // Expected during a mass disconnect (shutdown): some receivers are closing too.
        tracing::debug!(error = %err, user = %user_id, "user:offline not delivered to every socket");
    }
}
