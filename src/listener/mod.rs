//! The HTTP listener: our own accept loop over hyper, so that a flood of idle or half-sent
//! connections cannot starve the server (issue 13, case 5).
//!
//! - **Header-read timeout**: a connection must deliver a complete request head within
//!   `HTTP_HEADER_READ_TIMEOUT_SECS` of opening (or of its previous response, on keep-alive).
//!   Every response says so (`Keep-Alive: timeout=N`), so a pooling client retires a kept-alive
//!   connection before the server closes it, rather than reusing it as it closes.
//! - **Idle timeout**: a connection that is not a WebSocket is closed once no byte has moved
//!   either way for `HTTP_IDLE_TIMEOUT_SECS` (a slow body, a client that stopped reading).
//! - **Per-address cap**: at most `MAX_CONNECTIONS_PER_IP` open connections (WebSockets
//!   included) from one address, an IPv6 client counted by its /64.
//! - **Descriptor reserve**: at most `MAX_CONNECTIONS` open connections (default 90% of the
//!   open-file limit), so the database pool, Redis and files keep descriptors. At the cap a
//!   newcomer evicts the oldest idle HTTP connection; with none to evict, a reserve of
//!   [`PROBE_RESERVE`] connections answers `/health` and `/ready` only. Should `accept` still
//!   run out of descriptors, a spare descriptor held for the purpose is given up to accept the
//!   waiting connection and close it, instead of spinning on the error.

mod admission;
mod counting;
mod stream;

use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{Request, Response, StatusCode, header},
};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
};
use tower::ServiceExt;

pub use admission::{
    Admission, ConnFlags, ConnectionLimits, ConnectionStats, PROBE_RESERVE, Permit, Verdict,
    open_file_limit,
};
use counting::CountingIo;
pub use counting::SentBytes;
use stream::{Activity, TrackedStream};

/// How long a stopping server waits for HTTP requests in flight (after its sockets were closed).
const DRAIN_BOUND: Duration = Duration::from_secs(1);
/// Pause after an `accept` error other than a connection's own, so a persistent one cannot spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
/// How long, and how many times, a newcomer waits for evicted connections to close.
const CLOSING_WAIT: Duration = Duration::from_millis(5);
const CLOSING_WAITS: usize = 100;
/// At most one "out of file descriptors" warning per this long.
const FD_WARNING_EVERY: Duration = Duration::from_secs(10);

/// The paths a connection in the probe reserve may ask for.
const PROBE_PATHS: &[&str] = &["/health", "/ready"];

/// Serves `app` on `listener` until `shutdown` resolves, then lets requests in flight finish
/// (bounded) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    stats: Arc<ConnectionStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    // Turn every handler into its service once (as `into_make_service` does): otherwise a handler
    // route's layers, Socket.io's among them, would be built again for each request.
    let app = app.with_state(());
    let nofile = open_file_limit();
    let admission = Arc::new(Admission::new(&limits, nofile, stats.clone()));
    let keep_alive = keep_alive_hint(limits.header_read_timeout);
    tracing::info!(
        max_connections = admission.max_connections(),
        open_file_limit = nofile,
        per_address = limits.max_per_address,
        header_read_timeout_s = limits.header_read_timeout.as_secs(),
        idle_timeout_s = limits.idle_timeout.as_secs(),
        "connection limits"
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let mut spare = Spare::new();
    let mut fd_warned: Option<tokio::time::Instant> = None;
    let mut refused_since_warning = 0u64;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) if is_fd_exhaustion(&err) => {
                let closed = spare.accept_and_close(&listener).await;
                if closed {
                    stats.refused_fd_exhausted.fetch_add(1, Relaxed);
                    refused_since_warning += 1;
                }
                if fd_warned.is_none_or(|at| at.elapsed() >= FD_WARNING_EVERY) {
                    tracing::warn!(
                        error = %err,
                        refused = refused_since_warning,
                        "out of file descriptors at accept: closing new connections until some close (raise the open-file limit or lower MAX_CONNECTIONS)"
                    );
                    fd_warned = Some(tokio::time::Instant::now());
                    refused_since_warning = 0;
                }
                if !closed {
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
                continue;
            }
            Err(err) if is_connection_error(&err) => continue,
            Err(err) => {
                tracing::warn!(error = %err, "accept error");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let mut verdict = admission.admit(peer.ip());
        // Evicted connections still closing: accepting waits for them (the kernel queues the
        // rest), rather than run out of descriptors or refuse a probe.
        for _ in 0..CLOSING_WAITS {
            if !matches!(verdict, Verdict::Closing) {
                break;
            }
            tokio::time::sleep(CLOSING_WAIT).await;
            verdict = admission.admit(peer.ip());
        }
        let (permit, probes_only) = match verdict {
            Verdict::Serve(permit) => (permit, false),
            Verdict::ProbesOnly(permit) => (permit, true),
            Verdict::PerAddress => {
                refuse(
                    tcp,
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many connections from this address",
                );
                continue;
            }
            Verdict::Capacity | Verdict::Closing => {
                if matches!(verdict, Verdict::Closing) {
                    stats.refused_capacity.fetch_add(1, Relaxed);
                }
                refuse(
                    tcp,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The server is at its connection limit",
                );
                continue;
            }
        };
        // No Nagle: a small frame (an ack, a message:new) must leave at once, not wait for the
        // peer's delayed ACK (up to 40 ms).
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        let conn = Connection {
            app: app.clone(),
            peer,
            probes_only,
            limits,
            keep_alive: keep_alive.clone(),
            stats: stats.clone(),
        };
        let stop = stop_rx.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            conn.run(tcp, permit, stop).await;
            drop(done);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(done_tx);
    if tokio::time::timeout(DRAIN_BOUND, done_rx.recv())
        .await
        .is_err()
    {
        tracing::info!("stopped waiting for HTTP requests in flight");
    }
}

/// One admitted connection, served by hyper's HTTP/1.1 with upgrades (WebSocket).
struct Connection {
    app: Router,
    peer: SocketAddr,
    probes_only: bool,
    limits: ConnectionLimits,
    /// The `Keep-Alive` response header (the same for every connection).
    keep_alive: header::HeaderValue,
    stats: Arc<ConnectionStats>,
}

impl Connection {
    async fn run(self, tcp: TcpStream, permit: Permit, mut stop: watch::Receiver<bool>) {
        let flags = permit.flags();
        let activity = Arc::new(Activity::new());
        let stream = TrackedStream::new(tcp, activity.clone(), permit);
        // Each request learns how much its connection has written: a socket's backlog.
        let (stream, sent) = CountingIo::new(stream);
        let service = {
            let app = self.app;
            let peer = self.peer;
            let probes_only = self.probes_only;
            let flags = flags.clone();
            let keep_alive = self.keep_alive;
            hyper::service::service_fn(move |mut req: Request<Incoming>| {
                flags.served.store(true, Relaxed);
                let in_flight = InFlight::enter(flags.clone());
                req.extensions_mut().insert(ConnectInfo(peer));
                req.extensions_mut().insert(sent.clone());
                let app = app.clone();
                let keep_alive = keep_alive.clone();
                async move {
                    let _in_flight = in_flight;
                    if probes_only && !PROBE_PATHS.contains(&req.uri().path()) {
                        return Ok::<_, Infallible>(at_capacity());
                    }
                    let mut response = app.oneshot(req.map(Body::new)).await?;
                    // hyper closes a kept-alive connection that sends no new request head
                    // within the header-read timeout; saying so lets pooling clients (undici,
                    // reqwest, proxies) retire it first instead of racing the close.
                    if !probes_only && response.status() != StatusCode::SWITCHING_PROTOCOLS {
                        response
                            .headers_mut()
                            .entry(header::HeaderName::from_static("keep-alive"))
                            .or_insert_with(|| keep_alive.clone());
                    }
                    Ok(response)
                }
            })
        };
        // Whatever ends the loop (an upgrade to WebSocket included), the stream is no longer an
        // HTTP connection that could be evicted.
        let _not_http = NotHttpOnDrop(flags.clone());
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            // One request per connection in the probe reserve.
            .keep_alive(!self.probes_only);
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(conn);
        let mut stopping = *stop.borrow();
        if stopping {
            conn.as_mut().graceful_shutdown();
        }
        loop {
            // Until its first request, a connection has the header-read timeout to send one
            // (hyper times out a head it has begun waiting for, too); then the idle timeout runs.
            let deadline = if flags.served.load(Relaxed) {
                activity.last() + self.limits.idle_timeout
            } else {
                (activity.started() + self.limits.header_read_timeout)
                    .min(activity.last() + self.limits.idle_timeout)
            };
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(err) = result {
                        if err.is_timeout() {
                            self.stats.header_timeouts.fetch_add(1, Relaxed);
                        } else {
                            tracing::debug!(error = %err, peer = %self.peer, "connection error");
                        }
                    }
                    return;
                }
                () = tokio::time::sleep_until(deadline) => {
                    let now = tokio::time::Instant::now();
                    if !flags.served.load(Relaxed)
                        && now >= activity.started() + self.limits.header_read_timeout
                    {
                        self.stats.header_timeouts.fetch_add(1, Relaxed);
                        return;
                    }
                    if now >= activity.last() + self.limits.idle_timeout {
                        self.stats.idle_timeouts.fetch_add(1, Relaxed);
                        return;
                    }
                }
                () = flags.evict.notified() => {
                    tracing::debug!(peer = %self.peer, "idle connection closed to make room");
                    return;
                }
                changed = stop.changed(), if !stopping => {
                    stopping = true;
                    if changed.is_ok() {
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        }
    }
}

/// The `Keep-Alive: timeout=N` response header for a connection that hyper closes after `idle`
/// without a new request head (whole seconds, at least one).
fn keep_alive_hint(idle: std::time::Duration) -> header::HeaderValue {
    let secs = idle.as_secs().max(1);
    header::HeaderValue::from_str(&format!("timeout={secs}"))
        .expect("digits are a valid header value")
}

/// A request being answered on a connection; the connection cannot be evicted meanwhile.
struct InFlight(Arc<ConnFlags>);

impl InFlight {
    fn enter(flags: Arc<ConnFlags>) -> InFlight {
        flags.in_flight.fetch_add(1, Relaxed);
        InFlight(flags)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

/// Marks a connection as no longer served as HTTP when its task ends.
struct NotHttpOnDrop(Arc<ConnFlags>);

impl Drop for NotHttpOnDrop {
    fn drop(&mut self) {
        self.0.http.store(false, Relaxed);
    }
}

/// The NestJS-style body of a refusal.
fn error_body(status: StatusCode, message: &str) -> String {
    serde_json::json!({
        "statusCode": status.as_u16(),
        "message": message,
        "error": status.canonical_reason().unwrap_or("Error"),
    })
    .to_string()
}

/// The answer of a connection in the probe reserve to anything but `/health` and `/ready`.
fn at_capacity() -> Response<Body> {
    let status = StatusCode::SERVICE_UNAVAILABLE;
    let mut response = Response::new(Body::from(error_body(
        status,
        "The server is at its connection limit",
    )));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    headers.insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    response
}

/// Writes a short HTTP refusal without reading the request (as much as the socket takes at once,
/// never waiting) and closes the connection.
fn refuse(tcp: TcpStream, status: StatusCode, message: &str) {
    let body = error_body(status, message);
    let head = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nretry-after: 5\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        body.len(),
    );
    let _ = tcp.try_write(head.as_bytes());
}

/// `accept` failed because this process (EMFILE) or the system (ENFILE) has no descriptor left.
fn is_fd_exhaustion(err: &std::io::Error) -> bool {
    // EMFILE and ENFILE have these numbers on Linux, the BSDs and macOS.
    cfg!(unix) && matches!(err.raw_os_error(), Some(23 | 24))
}

/// `accept` failed for the connection's own reasons (it was reset before we took it).
fn is_connection_error(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        err.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// A descriptor held in reserve, to be given up when `accept` runs out of them: with it free,
/// the waiting connection can be accepted and closed, so it does not sit in the kernel's queue
/// while the accept loop spins on the error.
struct Spare(Option<std::fs::File>);

impl Spare {
    fn new() -> Spare {
        Spare(Self::open())
    }

    fn open() -> Option<std::fs::File> {
        let null = if cfg!(windows) { "NUL" } else { "/dev/null" };
        std::fs::File::open(null).ok()
    }

    /// Gives up the spare, accepts one connection and closes it, then takes the spare back.
    /// Returns whether a connection was closed.
    async fn accept_and_close(&mut self, listener: &TcpListener) -> bool {
        if self.0.take().is_none() {
            self.0 = Self::open();
            return false;
        }
        let closed = matches!(
            tokio::time::timeout(Duration::from_millis(10), listener.accept()).await,
            Ok(Ok(_))
        );
        self.0 = Self::open();
        closed
    }
}
