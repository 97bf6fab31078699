//! Application state and start-up: builds every service from a [`Config`], picks the adapter
//! (in-process or Redis) once, and serves HTTP and Socket.io on one port until a signal arrives.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{middleware, serve::ListenerExt};
use socketioxide::{SocketIo, SocketIoBuilder, adapter::Adapter, layer::SocketIoLayer};
use socketioxide_redis::FredAdapter;
use tokio::net::{TcpListener, TcpSocket};

use crate::{
    auth::{self, Accounts},
    chat::Chat,
    cluster::{self, Cluster, HistoryCache, RedisPresence},
    config::Config,
    http,
    metrics::Metrics,
    presence::{LocalPresence, Presence},
    socket::{self, HandshakeGate},
    store::{Store, writer::MessageWriter},
};

/// Shared state of the HTTP handlers and Socket.io handlers.
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Accounts and tokens.
    pub accounts: Arc<Accounts>,
    /// Sending and reading messages.
    pub chat: Arc<Chat>,
    /// Who is online.
    pub presence: Presence,
    /// The database (for readiness).
    pub store: Store,
    /// Redis, in cluster mode.
    pub cluster: Option<Cluster>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Handshakes in progress per client address.
    pub handshakes: Arc<HandshakeGate>,
}

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
    let accounts = Arc::new(
        Accounts::new(
            store.clone(),
            (*keys).clone(),
            config.bcrypt_cost,
            config.login_throttle,
        )
        .await?,
    );
    let metrics = Arc::new(Metrics::default());
    let writer = MessageWriter::spawn(store.clone(), metrics.clone());
    let cluster = match &config.redis_url {
        Some(url) => Some(Cluster::connect(url, &config.redis_prefix, &config.instance_id).await?),
        None => None,
    };
    let (presence, cache) = match &cluster {
        Some(c) => (
            Presence::Redis(RedisPresence::new(c.client.clone(), c.keys.clone())),
            Some(HistoryCache::new(
                c.client.clone(),
                c.keys.clone(),
                config.history_cache_size,
                metrics.clone(),
            )),
        ),
        None => (Presence::Local(LocalPresence::default()), None),
    };
    let chat = Chat::new(
        store.clone(),
        writer,
        accounts.clone(),
        cache.clone(),
        config.max_message_chars,
        metrics.clone(),
    );
    let state = AppState {
        config: config.clone(),
        accounts,
        chat: Arc::new(chat),
        presence: presence.clone(),
        store,
        cluster: cluster.clone(),
        metrics,
        handshakes: Arc::new(HandshakeGate::new(config.max_handshakes_per_ip)),
    };
    let listener = listen(SocketAddr::new(config.host, config.port))
        .with_context(|| format!("could not listen on {}:{}", config.host, config.port))?;
    let addr = listener.local_addr()?;

    let builder = socket_builder(&config).with_state(state.clone());
    let done = match (cluster, presence) {
        (Some(cluster), Presence::Redis(presence)) => {
            let adapter = cluster.adapter().await?;
            let (layer, io) = builder
                .with_adapter::<FredAdapter<_>>(adapter)
                .build_layer();
            socket::attach(&io)
                .await
                .context("could not start the Redis adapter")?;
            cluster::claim(&presence, cache.as_ref(), &io, config.presence_ttl).await?;
            let leases = cluster::spawn_lease_tasks(
                presence.clone(),
                cache,
                io.clone(),
                config.presence_ttl,
            );
            tracing::info!(instance = %config.instance_id, prefix = %config.redis_prefix, "cluster mode");
            tokio::spawn(run(
                listener,
                state,
                layer,
                io,
                shutdown,
                Some((presence, leases)),
            ))
        }
        _ => {
            let (layer, io) = builder.build_layer();
            socket::attach(&io);
            tokio::spawn(run(listener, state, layer, io, shutdown, None))
        }
    };
    tracing::info!(%addr, instance = %config.instance_id, backend = config.database_kind(), "listening");
    Ok(Running { addr, done })
}

/// Pending connections the kernel queues for `accept` (capped by `net.core.somaxconn`). tokio's
/// default is 1,024; a connect storm on a busy machine (the benchmark's 10,000 users in 10 s) can
/// outrun `accept` for a moment, and an overflowing queue turns into slow or failed connects.
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
    SocketIo::builder()
        .max_payload(config.max_payload.into())
        // socket.io's own defaults, which every client expects.
        .ping_interval(Duration::from_secs(25))
        .ping_timeout(Duration::from_secs(20))
        .max_buffer_size(config.socket_buffer_packets as usize)
        // Per socket; chat frames are small, and a larger frame still reads (in more calls).
        .ws_read_buffer_size(1024)
}

async fn run<A: Adapter>(
    listener: TcpListener,
    state: AppState,
    layer: SocketIoLayer<A>,
    io: SocketIo<A>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    cluster: Option<(RedisPresence, cluster::LeaseTasks)>,
) -> anyhow::Result<()> {
    let config = state.config.clone();
    let chat = state.chat.clone();
    let app = http::router(state)
        .layer(layer)
        .layer(middleware::from_fn(http::own_socket_request_head))
        .layer(http::cors(&config))
        .layer(middleware::from_fn(http::preflight_no_content));
    let io_for_shutdown = io.clone();
    // No Nagle: a small frame (an ack, a message:new) must leave at once, not wait for the
    // peer's delayed ACK (up to 40 ms).
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: closing sockets so clients reconnect elsewhere");
        io_for_shutdown.close().await;
    })
    .await
    .context("server error")?;
    chat.drain(Duration::from_secs(10)).await;
    if let Some((presence, leases)) = cluster {
        leases.stop().await;
        cluster::release(&presence).await;
    }
    tracing::info!("stopped");
    Ok(())
}

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
