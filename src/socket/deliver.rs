//! Delivery of `message:new`. This instance writes to its own sockets one by one so that a socket
//! whose outgoing buffer is full (a reader that stopped reading) is found, counted, logged and
//! disconnected instead of silently missing messages; the other instances get one broadcast
//! through the adapter, which excludes the sockets already served here. A direct message reaches
//! at most two users' tabs, so the per-socket encoding here stays small.

use std::time::Duration;

use socketioxide::{SendError, SocketError, SocketIo, adapter::Adapter, extract::SocketRef};

use crate::{
    metrics::{Metrics, inc},
    mode::Mode,
    wire::NewMessageEvent,
};

/// Sends `message:new` to every socket in `rooms`, on every instance.
pub async fn message_new<A: Adapter>(
    io: &SocketIo<A>,
    rooms: [String; 2],
    event: &NewMessageEvent,
    mode: &Mode,
    metrics: &Metrics,
) {
    // `None` once the namespace is closed: shutting down. The message is stored; clients sync
    // when they reconnect.
    let Some(all) = io.of("/") else {
        return;
    };
    let local = all.clone().local().within(rooms.clone()).sockets();
    let mut slow = Vec::new();
    for socket in &local {
        match socket.emit("message:new", event) {
            Ok(()) => {}
            Err(SendError::Socket(SocketError::InternalChannelFull)) => slow.push(socket.clone()),
            Err(err) => tracing::debug!(sid = %socket.id, error = %err, "message:new not sent"),
        }
    }
    match mode {
        Mode::Embedded => {}
        Mode::Cluster(_) => {
            // Each socket is also in a room named by its id, so `except` leaves out exactly the
            // sockets served above; other instances have no such rooms and serve all of theirs.
            let remote = local
                .iter()
                .fold(all.within(rooms), |op, socket| op.except(socket.id));
            if let Err(err) = remote.emit("message:new", event).await {
                // The message is stored; receivers elsewhere recover it with message:sync.
                inc(&metrics.redis_errors);
                tracing::warn!(error = %err, id = %event.message.id, "message:new broadcast failed");
            }
        }
    }
    inc(&metrics.messages_delivered);
    for socket in slow {
        inc(&metrics.slow_consumers_disconnected);
        tracing::warn!(sid = %socket.id, "slow consumer: outgoing buffer full, disconnecting");
        disconnect_when_possible(socket);
    }
}

/// A disconnect is itself a packet, so it waits for room in the full buffer; a reader that never
/// drains it is closed by the ping timeout instead.
fn disconnect_when_possible<A: Adapter>(socket: SocketRef<A>) {
    tokio::spawn(async move {
        for _ in 0..100 {
            if socket.clone().disconnect().is_ok() || !socket.connected() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}
