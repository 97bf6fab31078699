//! The application state shared by every HTTP and Socket.io handler. It is built once at start-up
//! (`app.rs`) and passed explicitly; it names services, never handlers.

use std::sync::Arc;

use crate::{
    auth::Accounts, chat::Chat, config::Config, limits::HandshakeGate, metrics::Metrics,
    mode::Mode, presence::Presence, socket::Upgrades, store::Store,
};

/// Shared state of the HTTP and Socket.io handlers; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// Registration, sign-in and token verification.
    pub accounts: Arc<Accounts>,
    /// Sending and reading messages.
    pub chat: Arc<Chat>,
    /// Who is online (this instance's sockets, and in cluster mode everyone's).
    pub presence: Presence,
    /// The database, for readiness checks.
    pub store: Store,
    /// Embedded or cluster, decided at start-up.
    pub mode: Mode,
    /// Counters and histograms for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Socket.io handshakes in progress per client address.
    pub handshakes: Arc<HandshakeGate>,
    /// The connections of WebSocket upgrades, for the sockets' byte backlogs.
    pub upgrades: Upgrades,
}
