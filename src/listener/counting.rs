//! Counting what a connection writes: every connection the listener serves is wrapped in a
//! [`CountingIo`], whose [`SentBytes`] each request carries, so that a socket's backlog
//! (`socket/backlog.rs`) is what was charged to it minus what its connection wrote.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes written to one connection's transport so far. Shared by the connection's I/O and every
/// request (and so socket) that came on it.
#[derive(Debug, Clone, Default)]
pub struct SentBytes(Arc<AtomicU64>);

impl SentBytes {
    /// Bytes written so far.
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }

    /// Counts `n` more bytes written.
    pub fn add(&self, n: usize) {
        self.0.fetch_add(n as u64, Relaxed);
    }

    /// Whether the connection is gone (only this handle and its copies outside it remain).
    pub fn is_orphan(&self) -> bool {
        Arc::strong_count(&self.0) <= 1
    }
}

/// A connection's I/O that counts what it writes.
#[derive(Debug)]
pub struct CountingIo<T> {
    inner: T,
    sent: SentBytes,
}

impl<T> CountingIo<T> {
    /// Wraps `inner`; the returned handle reads its count.
    pub fn new(inner: T) -> (CountingIo<T>, SentBytes) {
        let sent = SentBytes::default();
        (
            CountingIo {
                inner,
                sent: sent.clone(),
            },
            sent,
        )
    }
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
