//! What a socket has queued: the bytes of the events we emitted to it that its connection has not
//! written yet, so that a reader that stopped reading is disconnected once that passes
//! `SOCKET_BUFFER_BYTES`, whatever the number of packets (which `SOCKET_BUFFER_PACKETS` bounds).
//!
//! Neither socketioxide nor engineioxide tells how much a socket has queued (engineioxide's
//! buffer is a channel bounded in packets), so we count both ends ourselves: every connection's
//! I/O is wrapped by [`CountingListener`], which counts the bytes written to the kernel
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
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    },
    task::{Context, Poll},
};

use axum::{
    extract::{ConnectInfo, Request, connect_info::Connected},
    middleware::Next,
    response::Response,
    serve::{IncomingStream, Listener},
};
use socketioxide::{TransportType, adapter::Adapter, extract::SocketRef};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes written to one connection's transport so far. Shared by the connection's I/O and every
/// request (and so socket) that came on it.
#[derive(Debug, Clone, Default)]
pub struct SentBytes(Arc<AtomicU64>);

impl SentBytes {
    fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }

    fn add(&self, n: usize) {
        self.0.fetch_add(n as u64, Relaxed);
    }

    /// Whether the connection is gone (only this handle and its copies outside it remain).
    fn is_orphan(&self) -> bool {
        Arc::strong_count(&self.0) <= 1
    }
}

/// A connection's I/O that counts what it writes.
#[derive(Debug)]
pub struct CountingIo<T> {
    inner: T,
    sent: SentBytes,
}

impl<T: AsyncRead + Unpin> AsyncRead for CountingIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CountingIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.sent.add(n);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            this.sent.add(n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A listener whose connections count the bytes they write.
#[derive(Debug)]
pub struct CountingListener<L>(pub L);

impl<L> Listener for CountingListener<L>
where
    L: Listener,
{
    type Io = CountingIo<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (inner, addr) = self.0.accept().await;
        let io = CountingIo {
            inner,
            sent: SentBytes::default(),
        };
        (io, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// What the server knows of a connection: the peer's address and its written-bytes count.
/// [`split_peer`] turns it into the `ConnectInfo<SocketAddr>` the rest of the code reads.
#[derive(Debug, Clone)]
pub struct Peer {
    addr: SocketAddr,
    sent: SentBytes,
}

impl<L> Connected<IncomingStream<'_, CountingListener<L>>> for Peer
where
    L: Listener<Addr = SocketAddr>,
{
    fn connect_info(stream: IncomingStream<'_, CountingListener<L>>) -> Self {
        Peer {
            addr: *stream.remote_addr(),
            sent: stream.io().sent.clone(),
        }
    }
}

/// Middleware (outermost): gives each request `ConnectInfo<SocketAddr>` and its connection's
/// [`SentBytes`].
pub async fn split_peer(mut req: Request, next: Next) -> Response {
    if let Some(ConnectInfo(peer)) = req.extensions_mut().remove::<ConnectInfo<Peer>>() {
        req.extensions_mut().insert(ConnectInfo(peer.addr));
        req.extensions_mut().insert(peer.sent);
    }
    next.run(req).await
}

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
