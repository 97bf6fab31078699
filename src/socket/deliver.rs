//! Delivery of server events to the sockets of some users, on every instance: `message:new`,
//! `room:message`, `room:updated`, `room:removed`, `conversation:read`, `typing`. The payload is serialized once; this instance
//! writes to its own sockets one by one, and in cluster mode one bus message asks every other
//! instance to do the same for theirs. Writing socket by socket is how a socket whose outgoing
//! buffer is full (a reader that stopped reading) is found, counted, logged and disconnected,
//! on whichever instance it is, instead of silently missing events. Full means
//! `SOCKET_BUFFER_PACKETS` packets, or more than `SOCKET_BUFFER_BYTES` bytes not yet written to
//! its connection (see `backlog.rs`).
//!
//! An event of a room carries the membership version it was decided under; an instance that
//! already knows a later membership leaves out whoever is no longer a member.

use std::{sync::Arc, time::Duration};

use serde::Serialize;
use serde_json::value::RawValue;
use socketioxide::{
    SendError, SocketError, SocketIo, adapter::Adapter, extract::SocketRef, socket::Sid,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{backlog::Backlog, user_room};
use crate::{
    cluster::{Carried, Inbound, RoomVersion},
    metrics::inc,
    state::AppState,
    store::Message,
};

/// Whom one event goes to.
#[derive(Debug, Clone, Copy)]
struct Recipients<'a> {
    /// Every socket of these users...
    users: &'a [Uuid],
    /// ...who are still members of this room under a later membership, if one is known here...
    room: Option<RoomVersion>,
    /// ...but this socket of this instance.
    except: Option<Sid>,
}

/// Sends `event` with `payload` to every socket of `users`, on every instance. `room`: the room
/// and membership version the recipients were chosen under.
pub async fn to_users<A: Adapter, T: Serialize + ?Sized>(
    io: &SocketIo<A>,
    app: &AppState,
    event: &str,
    payload: &T,
    users: &[Uuid],
    room: Option<RoomVersion>,
) {
    let to = Recipients {
        users,
        room,
        except: None,
    };
    send(io, app, event, payload, to).await;
}

/// As [`to_users`], leaving out the socket `except` (the one whose call caused the event).
pub async fn to_users_but<A: Adapter, T: Serialize + ?Sized>(
    io: &SocketIo<A>,
    app: &AppState,
    (event, payload): (&str, &T),
    users: &[Uuid],
    room: Option<RoomVersion>,
    except: Sid,
) {
    let to = Recipients {
        users,
        room,
        except: Some(except),
    };
    send(io, app, event, payload, to).await;
}

/// Delivers the event of a message just stored. The message is announced first (the history
/// cache, with the publish to the other instances in the same Redis round trip), then `ack`
/// runs, then this instance's sockets are written; a publish the announcement could not carry
/// goes out last. So the sender's ack still comes before its own sockets' event, and nobody
/// hears of the message before it is in history.
pub async fn stored<A: Adapter, T: Serialize + ?Sized>(
    io: &SocketIo<A>,
    app: &AppState,
    (event, payload): (&str, &T),
    message: &Message,
    users: &[Uuid],
    room: Option<RoomVersion>,
    ack: impl FnOnce(),
) {
    let Some(payload) = encode(event, payload) else {
        app.chat.announce(message, None).await;
        return ack();
    };
    let publish = match app
        .mode
        .bus()
        .map(|bus| bus.prepare(event, users, room, &payload))
    {
        Some(Ok(publish)) => publish,
        Some(Err(err)) => {
            delivery_failed(app, event, &err);
            None
        }
        None => None,
    };
    let carried = app.chat.announce(message, publish).await;
    ack();
    let to = Recipients {
        users,
        room,
        except: None,
    };
    to_local_sockets(io, app, event, &payload, to);
    if let (Carried::Left(Some(publish)), Some(bus)) = (carried, app.mode.bus())
        && let Err(err) = bus.publish_all(publish).await
    {
        delivery_failed(app, event, &err);
    }
}

/// `payload` as raw JSON, or `None` (logged) if it cannot be encoded.
fn encode<T: Serialize + ?Sized>(event: &str, payload: &T) -> Option<Box<RawValue>> {
    serde_json::value::to_raw_value(payload)
        .map_err(|err| tracing::error!(error = %err, event, "could not encode an event"))
        .ok()
}

/// What was stored stays stored; receivers elsewhere recover it with message:sync.
fn delivery_failed(app: &AppState, event: &str, err: &dyn std::fmt::Display) {
    inc(&app.metrics.redis_errors);
    tracing::warn!(error = %err, event, "cross-instance delivery failed");
}

async fn send<A: Adapter, T: Serialize + ?Sized>(
    io: &SocketIo<A>,
    app: &AppState,
    event: &str,
    payload: &T,
    to: Recipients<'_>,
) {
    let Some(payload) = encode(event, payload) else {
        return;
    };
    to_local_sockets(io, app, event, &payload, to);
    // The socket left out is on this instance, so the others serve every socket they have.
    if let Some(bus) = app.mode.bus()
        && let Err(err) = bus.deliver(event, to.users, to.room, &payload).await
    {
        delivery_failed(app, event, &err);
    }
}

/// Writes the event to this instance's sockets of `to`.
fn to_local_sockets<A: Adapter>(
    io: &SocketIo<A>,
    app: &AppState,
    event: &str,
    payload: &RawValue,
    to: Recipients<'_>,
) {
    let metrics = &app.metrics;
    let rooms = app.chat.rooms();
    // `None` once the namespace is closed: shutting down. Stored messages are recovered with
    // message:sync after the reconnect.
    let Some(all) = io.of("/") else {
        return;
    };
    let users = match to.room {
        Some(RoomVersion { room, version }) => rooms.still_members(room, version, to.users),
        None => std::borrow::Cow::Borrowed(to.users),
    };
    if users.is_empty() {
        return;
    }
    let sockets = all
        .local()
        .within(users.iter().map(|u| user_room(*u)).collect::<Vec<_>>())
        .sockets();
    // What the socket's connection writes for this event: `42["<event>",<payload>]` in a
    // WebSocket frame (header of at most 10 bytes).
    let size = payload.get().len() + event.len() + 16;
    let bound = app.config.socket_buffer_bytes;
    let mut slow = Vec::new();
    for socket in sockets {
        if Some(socket.id) == to.except {
            continue;
        }
        let backlog = socket.extensions.get::<Arc<Backlog>>();
        match socket.emit(event, payload) {
            Ok(()) => {
                if let Some(backlog) = backlog
                    && let Some(queued) = backlog.charge(&socket, &app.upgrades, size)
                    && queued > bound
                {
                    slow.push((socket, Some(backlog), Some(queued)));
                }
            }
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                slow.push((socket, backlog, None));
            }
            Err(err) => tracing::debug!(sid = %socket.id, error = %err, event, "event not sent"),
        }
    }
    inc(&metrics.messages_delivered);
    for (socket, backlog, queued) in slow {
        // A socket found slow by several deliveries before its disconnect is counted once.
        if backlog.is_some_and(|b| !b.trip()) {
            continue;
        }
        inc(&metrics.slow_consumers_disconnected);
        match queued {
            Some(bytes) => {
                inc(&metrics.socket_buffer_bytes_exceeded);
                tracing::warn!(sid = %socket.id, queued_bytes = bytes, bound, "slow consumer: queued bytes over SOCKET_BUFFER_BYTES, disconnecting");
            }
            None => {
                tracing::warn!(sid = %socket.id, "slow consumer: outgoing buffer full, disconnecting")
            }
        }
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

/// Serves what the other instances send this one (cluster mode), until the bus closes:
/// deliveries for sockets here, and membership changes to apply before their sender acks them.
pub async fn serve_bus<A: Adapter>(
    io: SocketIo<A>,
    app: AppState,
    mut inbound: mpsc::Receiver<Inbound>,
) {
    while let Some(message) = inbound.recv().await {
        match message {
            Inbound::Deliver {
                event,
                users,
                room,
                payload,
            } => {
                let to = Recipients {
                    users: &users,
                    room,
                    except: None,
                };
                to_local_sockets(&io, &app, &event, &payload, to);
            }
            Inbound::Members {
                room,
                version,
                members,
                applied,
            } => {
                app.chat.rooms().apply(room, version, members);
                applied.done().await;
            }
            Inbound::Reconnected => {
                tracing::info!("cluster bus reconnected; reloading room memberships on demand");
                app.chat.rooms().clear();
            }
        }
    }
}
