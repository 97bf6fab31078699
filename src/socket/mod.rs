//! The Socket.io surface. `connection` authenticates each handshake, counts the socket into
//! presence and registers the handlers of `events` (one per client event); `deliver` sends
//! events to every socket of some users, on every instance. Everything is generic over the adapter,
//! so the same code serves the in-process adapter (embedded) and the Redis adapter (cluster).

mod access;
mod backlog;
mod connection;
mod deliver;
mod events;
pub(crate) mod ratelimit;
mod user;

pub use access::watch_access;
pub use backlog::{Upgrades, track_upgrades};
pub use deliver::serve_bus;
use socketioxide::{SocketIo, adapter::Adapter, handler::ConnectHandler};
use socketioxide_core::adapter::DefinedAdapter;
use uuid::Uuid;

/// Registers the `/` namespace on `io`. The returned value is the adapter's initialisation
/// (a future for the Redis adapter, nothing for the local one).
pub fn attach<A: Adapter + DefinedAdapter>(io: &SocketIo<A>) -> A::InitRes {
    io.ns(
        "/",
        connection::on_connect::<A>.with(connection::authenticate::<A>),
    )
}

/// The room every socket of one user joins: a message is emitted to the sender's and the
/// receiver's rooms and so reaches all their tabs, on every instance.
pub fn user_room(id: Uuid) -> String {
    format!("user:{id}")
}
