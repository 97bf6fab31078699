//! What a socket has queued: the bytes of the events we emitted to it that its connection has not
//! written yet, so that a reader that stopped reading is disconnected once that passes
//! `SOCKET_BUFFER_BYTES`, whatever the number of packets (which `SOCKET_BUFFER_PACKETS` bounds).
//!
//! Neither socketioxide nor engineioxide tells how much a socket has queued (engineioxide's
//! buffer is a channel bounded in packets), so we count both ends ourselves: every connection's
//! I/O is wrapped by the listener's `CountingIo`, which counts the bytes written to the kernel
//! ([`SentBytes`]); every event `deliver` writes to a socket is [`Backlog::charge`]d with its
//! encoded size. What was charged and not yet written is queued. Written bytes we did not charge
//! (acks, presence broadcasts, pings, framing) only ever make the estimate lower, and it never
//! goes below zero, so such traffic cannot build up credit: at any moment the estimate is at most
//! the real backlog and at least it minus the uncharged bytes written since the backlog began.
//!
//! A socket's connection is the handshake's when the handshake was a WebSocket; a socket that
//! began on long-polling and upgraded writes on the upgrade request's connection, which
//! [`track_upgrades`] remembers by session id. A socket still on long-polling is not bounded in
//! bytes (its requests may each come on another connection); its packets are.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
};

use crate::listener::SentBytes;
use axum::{extract::Request, middleware::Next, response::Response};
use socketioxide::{TransportType, adapter::Adapter, extract::SocketRef};

/// The connections of WebSocket upgrades, by Engine.IO session id, until their socket picks
/// theirs up. An entry whose connection closed is dropped at the next upgrade.
#[derive(Debug, Clone, Default)]
pub struct Upgrades(Arc<Mutex<HashMap<String, SentBytes>>>);

impl Upgrades {
    fn insert(&self, sid: &str, sent: SentBytes) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| !s.is_orphan());
        map.insert(sid.to_owned(), sent);
    }

    fn take(&self, sid: &str) -> Option<SentBytes> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).remove(sid)
    }
}

/// Middleware (inside [`split_peer`]): remembers the connection of each WebSocket upgrade of a
/// polling session, so that socket's backlog is counted on the connection it now writes to.
pub async fn track_upgrades(
    axum::extract::State(upgrades): axum::extract::State<Upgrades>,
    req: Request,
    next: Next,
) -> Response {
    if req.uri().path().starts_with("/socket.io")
        && let Some(query) = req.uri().query()
        && query.split('&').any(|p| p == "transport=websocket")
        && let Some(sid) = query.split('&').find_map(|p| p.strip_prefix("sid="))
        && let Some(sent) = req.extensions().get::<SentBytes>()
    {
        upgrades.insert(sid, sent.clone());
    }
    next.run(req).await
}

/// One socket's account of queued bytes.
#[derive(Debug, Default)]
pub struct Backlog {
    /// The connection the socket writes to, once known.
    sent: OnceLock<SentBytes>,
    /// `SentBytes` when last charged.
    seen: AtomicU64,
    /// Bytes charged and not yet written (an estimate, see the module's doc).
    queued: AtomicU64,
    /// Set once the socket is found slow, so it is counted and logged once.
    tripped: AtomicBool,
}

impl Backlog {
    /// The account of a socket whose handshake request was `parts`: bound to the handshake's
    /// connection when the handshake was a WebSocket.
    pub fn for_handshake(parts: &axum::http::request::Parts) -> Backlog {
        let backlog = Backlog::default();
        let websocket = parts
            .uri
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "transport=websocket"));
        if websocket && let Some(sent) = parts.extensions.get::<SentBytes>() {
            backlog.bind(sent.clone());
        }
        backlog
    }

    fn bind(&self, sent: SentBytes) {
        let now = sent.get();
        if self.sent.set(sent).is_ok() {
            self.seen.store(now, Relaxed);
        }
    }

    /// Charges `bytes` just emitted to the socket; returns the bytes now queued, or `None` when
    /// the socket's connection is not known (long-polling).
    pub fn charge<A: Adapter>(
        &self,
        socket: &SocketRef<A>,
        upgrades: &Upgrades,
        bytes: usize,
    ) -> Option<u64> {
        let sent = match self.sent.get() {
            Some(sent) => sent,
            None => {
                if socket.transport_type() != TransportType::Websocket {
                    return None;
                }
                self.bind(upgrades.take(&socket.id.to_string())?);
                self.sent.get()?
            }
        };
        Some(self.charge_on(sent, bytes))
    }

    fn charge_on(&self, sent: &SentBytes, bytes: usize) -> u64 {
        let written = sent.get();
        let before = self.seen.swap(written, Relaxed);
        let drained = written.saturating_sub(before);
        let mut queued = 0;
        // One socket's deliveries can run on several tasks at once; each sees a consistent sum.
        let _ = self.queued.fetch_update(Relaxed, Relaxed, |q| {
            queued = q.saturating_add(bytes as u64).saturating_sub(drained);
            Some(queued)
        });
        queued
    }

    /// Marks the socket slow; `true` the first time only.
    pub fn trip(&self) -> bool {
        !self.tripped.swap(true, Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_is_charged_minus_written_never_below_zero() {
        let sent = SentBytes::default();
        let backlog = Backlog::default();
        backlog.bind(sent.clone());
        let charge = |n: usize| backlog.charge_on(&sent, n);
        assert_eq!(charge(1000), 1000);
        assert_eq!(charge(1000), 2000);
        sent.add(1500);
        assert_eq!(charge(0), 500);
        // Uncharged traffic written (acks, pings) cannot make it negative or build credit.
        sent.add(10_000);
        assert_eq!(charge(0), 0);
        assert_eq!(charge(700), 700);
    }

    #[test]
    fn a_slow_socket_trips_once() {
        let backlog = Backlog::default();
        assert!(backlog.trip());
        assert!(!backlog.trip());
    }
}
