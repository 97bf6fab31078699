//! Start-up and shutdown: builds every service from a [`Config`], decides the [`Mode`] once, and
//! serves HTTP and Socket.io on one port until a signal arrives; then drains what is in flight.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::middleware;
use socketioxide::{SocketIo, SocketIoBuilder, adapter::Adapter, layer::SocketIoLayer};
use tokio::net::{TcpListener, TcpSocket};

use crate::{
    auth::{self, Accounts},
    chat::{Chat, ChatLimits},
    cluster::RedisAdapter,
    config::Config,
    http,
    limits::HandshakeGate,
    listener,
    metrics::Metrics,
    mode::Mode,
    presence::{Presence, Upkeep},
    socket,
    state::AppState,
    store::{Store, writer::MessageWriter},
};

/// Connects to the database and applies pending migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(config).await?;
    let applied = store.migrate().await.with_context(|| {
        format!(
            "could not apply migrations to the {} database",
            store.kind()
        )
    })?;
    tracing::info!(backend = store.kind(), applied, "database ready");
    Ok(store)
}

/// A running server: its address, and a handle that stops it.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Resolves when the server has stopped.
    pub done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Builds the application and serves it until `shutdown` resolves.
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let config = Arc::new(config);
    let store = open_store(&config).await?;
    let keys = auth::load_keys(&config)?;
    let metrics = Arc::new(Metrics::default());
    let (mode, inbound) = Mode::start(&config, &metrics).await?;
    let accounts = Arc::new(
        Accounts::new(
            store.clone(),
            (*keys).clone(),
            &config,
            &mode,
            metrics.clone(),
        )
        .await?,
    );
    let writer = MessageWriter::spawn(store.clone(), metrics.clone());
    let limits = ChatLimits {
        max_chars: config.max_message_chars,
        rooms: config.rooms,
    };
    let chat = Chat::new(
        store.clone(),
        writer,
        accounts.clone(),
        mode.clone(),
        limits,
        metrics.clone(),
    );
    let state = AppState {
        config: config.clone(),
        accounts,
        chat: Arc::new(chat),
        presence: Presence::for_mode(&mode),
        store,
        mode: mode.clone(),
        metrics,
        handshakes: Arc::new(HandshakeGate::new(config.max_handshakes_per_ip)),
        upgrades: socket::Upgrades::default(),
    };
    let listener = listen(SocketAddr::new(config.host, config.port))
        .with_context(|| format!("could not listen on {}:{}", config.host, config.port))?;
    let addr = listener.local_addr()?;

    let builder = socket_builder(&config).with_state(state.clone());
    let done = match &mode {
        Mode::Embedded => {
            let (layer, io) = builder.build_layer();
            socket::attach(&io);
            start(listener, state, layer, io, shutdown).await?
        }
        Mode::Cluster(cluster) => {
            let (layer, io) = builder
                .with_adapter::<RedisAdapter<_>>(cluster.adapter())
                .build_layer();
            socket::attach(&io)
                .await
                .context("could not start the Redis adapter")?;
            if let Some(inbound) = inbound {
                tokio::spawn(socket::serve_bus(io.clone(), state.clone(), inbound));
            }
            tracing::info!(instance = %config.instance_id, prefix = %config.redis_prefix, "cluster mode");
            start(listener, state, layer, io, shutdown).await?
        }
    };
    tracing::info!(%addr, instance = %config.instance_id, backend = config.database_kind(), mode = mode.name(), "listening");
    Ok(Running { addr, done })
}

/// Pending connections the kernel queues for `accept` (capped by `net.core.somaxconn`). tokio's
/// default is 1,024; a connect storm on a busy machine can outrun `accept` for a moment, and an
/// overflowing queue turns into slow or failed connects.
const ACCEPT_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted server can bind while old connections linger.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

fn socket_builder(config: &Config) -> SocketIoBuilder {
    let max_payload = config.max_payload as usize;
    SocketIo::builder()
        // Polling bodies...
        .max_payload(config.max_payload.into())
        // ...and WebSocket messages, whole and per frame: engineioxide's WebSocket defaults
        // (64 MiB, 16 MiB) would let a frame far past MAX_PAYLOAD_BYTES be read and handled. A
        // larger frame closes the connection before its payload is buffered.
        .ws_max_message_size(max_payload)
        .ws_max_frame_size(max_payload)
        // socket.io's own defaults, which every client expects.
        .ping_interval(Duration::from_secs(25))
        .ping_timeout(Duration::from_secs(20))
        .max_buffer_size(config.socket_buffer_packets as usize)
        // Per socket; chat frames are small, and a larger frame still reads (in more calls).
        .ws_read_buffer_size(1024)
}

/// Starts presence's upkeep (in cluster mode: claims this instance's lease), then serves on a task
/// of its own.
async fn start<A: Adapter>(
    listener: TcpListener,
    state: AppState,
    layer: SocketIoLayer<A>,
    io: SocketIo<A>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let upkeep = state
        .presence
        .start_upkeep(&io, state.mode.history_cache(), state.config.presence_ttl)
        .await?;
    tokio::spawn(socket::watch_access(io.clone(), state.clone()));
    Ok(tokio::spawn(run(
        listener, state, layer, io, upkeep, shutdown,
    )))
}

async fn run<A: Adapter>(
    listener: TcpListener,
    state: AppState,
    layer: SocketIoLayer<A>,
    io: SocketIo<A>,
    upkeep: Upkeep,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = state.config.clone();
    let chat = state.chat.clone();
    let upgrades = state.upgrades.clone();
    let state_metrics = state.metrics.clone();
    let app = http::router(state)
        .layer(layer)
        .layer(middleware::from_fn(http::own_socket_request_head))
        .layer(middleware::from_fn_with_state(
            upgrades,
            socket::track_upgrades,
        ))
        .layer(http::cors(&config))
        .layer(middleware::from_fn(http::preflight_no_content));
    let io_for_shutdown = io.clone();
    listener::serve(
        listener,
        app,
        config.connections,
        state_metrics.connections.clone(),
        async move {
            shutdown.await;
            tracing::info!("shutting down: closing sockets so clients reconnect elsewhere");
            // Closing the sockets is local and quick; closing the adapter unsubscribes from Redis,
            // which an unreachable Redis would hold for the whole publish timeout.
            if tokio::time::timeout(CLOSE_BOUND, io_for_shutdown.close())
                .await
                .is_err()
            {
                tracing::warn!("the Socket.io adapter did not close in time (Redis unreachable?)");
            }
        },
    )
    .await;
    let started = std::time::Instant::now();
    chat.drain(DRAIN_LIMIT).await;
    upkeep.stop().await;
    tracing::info!(drain_ms = started.elapsed().as_millis() as u64, "stopped");
    Ok(())
}

/// Longest wait for the sockets to close and the adapter to unsubscribe, at shutdown.
const CLOSE_BOUND: Duration = Duration::from_secs(1);
/// Longest wait for each queue of work in flight (writes, read cursors, cache pushes) at
/// shutdown, as long as it keeps moving; one that stops moving is given up after a second.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
