//! The scenarios, one module each, and the idle-socket loop they share.

pub mod connections;
pub mod dm;
pub mod fleet;
pub mod history;
pub mod load;
pub mod read;
pub mod rooms;
pub mod storm;
pub mod typing;

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::sio::{self, Packet, Ws};

/// Counts of what idle sockets received.
#[derive(Default)]
pub struct EventCounts {
    /// `user:online` events.
    pub online: AtomicU64,
    /// `user:offline` events.
    pub offline: AtomicU64,
    /// Any other event.
    pub other: AtomicU64,
    /// Arrival of the latest event (µs, shared clock).
    pub last_event_us: AtomicU64,
    /// Sockets the server closed (or that failed) before the end.
    pub dropped: AtomicU64,
}

/// Keeps `ws` open, answering pings and counting events, until `stop` turns true.
pub async fn hold(mut ws: Ws, mut stop: watch::Receiver<bool>, counts: Arc<EventCounts>) {
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => match sio::parse(t.as_str()) {
                    Packet::Ping if ws.send(sio::pong()).await.is_err() => {
                        counts.dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    Packet::Event(body) => {
                        let c = match sio::event_name(body) {
                            Some("user:online") => &counts.online,
                            Some("user:offline") => &counts.offline,
                            _ => &counts.other,
                        };
                        c.fetch_add(1, Ordering::Relaxed);
                        counts.last_event_us.fetch_max(sio::now_us(), Ordering::Relaxed);
                    }
                    Packet::Close | Packet::Disconnect => {
                        counts.dropped.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    _ => {}
                },
                Some(Ok(_)) => {}
                _ => {
                    counts.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
    // Ending the process closes the socket anyway; an orderly close is best effort.
    let _ = tokio::time::timeout(std::time::Duration::from_millis(200), ws.close(None)).await;
}
