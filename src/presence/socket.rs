//! One socket's life in presence: counted in by its handshake, announced when its connect handler
//! runs, counted out when it closes, or by a watchdog when its connection fails between the two.
//! These steps may run in any order; a lock per socket orders them, so observers always see
//! `user:online` and `user:offline` in pairs.

use std::{sync::Arc, time::Duration};

use socketioxide::{SocketIo, adapter::Adapter, extract::SocketRef};
use tokio::sync::Mutex;

use super::{Presence, announce};
use crate::{
    metrics::{Metrics, inc},
    store::User,
};

/// How long a counted socket may take to finish connecting before the watchdog counts it out.
const HANDSHAKE_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Counted by the handshake; `announce` when it was the user's first socket.
    Counted { announce: bool },
    /// Presence could not be updated (Redis down or slow): counted only on this instance, until
    /// the presence repair counts it cluster-wide and announces the user.
    Uncounted,
    /// The connect handler ran; `counted` says whether closing must count it out.
    Live { counted: bool },
    /// Counted out (or never counted); nothing more to do.
    Closed,
}

/// Where one socket is in its presence life; cheap to clone.
#[derive(Clone)]
pub struct SocketPresence {
    state: Arc<Mutex<State>>,
}

/// The outcome of counting a socket in.
pub enum Admission {
    /// The socket is counted (or, with Redis failing, will be by the repair).
    Admitted(SocketPresence),
    /// The user already has the most sockets allowed; nothing was counted.
    TooManySockets,
}

impl Presence {
    /// Counts a socket of `user` in, at its handshake, before the client hears it is connected:
    /// that keeps the per-user cap exact under simultaneous connects, and a disconnect can never
    /// overtake its own count. When presence cannot be updated the socket is still admitted.
    pub async fn admit(&self, user: &User, max_sockets: usize, metrics: &Metrics) -> Admission {
        let state = match self.connect(user).await {
            Ok(sockets) if sockets > max_sockets => {
                if let Err(err) = self.disconnect(user.id).await {
                    tracing::warn!(error = %err, "could not undo a refused socket's presence");
                }
                tracing::info!(user = %user.id, sockets, "handshake refused: too many sockets");
                return Admission::TooManySockets;
            }
            Ok(sockets) => State::Counted {
                announce: sockets == 1,
            },
            Err(err) => {
                inc(&metrics.redis_errors);
                tracing::warn!(error = %err, "presence update failed on connect");
                State::Uncounted
            }
        };
        Admission::Admitted(SocketPresence {
            state: Arc::new(Mutex::new(state)),
        })
    }
}

impl SocketPresence {
    /// The socket's connect handler ran: announces its user if this was their first socket.
    pub async fn connected<A: Adapter>(&self, io: &SocketIo<A>, user: &User) {
        let mut state = self.state.lock().await;
        let announce = match *state {
            State::Counted { announce } => {
                *state = State::Live { counted: true };
                announce
            }
            State::Uncounted => {
                *state = State::Live { counted: false };
                false
            }
            // Already gone: its disconnect was handled first.
            State::Live { .. } | State::Closed => false,
        };
        if announce {
            tracing::info!(username = %user.username, "user online");
            announce::online(io, user).await;
        }
    }

    /// The socket closed: counts it out, and announces its user offline if it was their last
    /// socket and they had been announced online.
    pub async fn disconnected<A: Adapter>(
        &self,
        io: &SocketIo<A>,
        socket: &SocketRef<A>,
        user: &User,
        presence: &Presence,
        metrics: &Metrics,
    ) {
        if self.count_out(user, presence, metrics).await {
            tracing::info!(user = %user.id, "user offline");
            announce::offline(io, user.id, Some(socket.id)).await;
        }
    }

    /// Counts the socket out, if it still counts; `true` when its user just went offline and had
    /// been announced online (a first socket that closes before its connect handler ran was never
    /// announced, so its user leaves silently). A socket whose count failed is left to the
    /// presence repair, which announces whatever it changes.
    async fn count_out(&self, user: &User, presence: &Presence, metrics: &Metrics) -> bool {
        let mut state = self.state.lock().await;
        let (counted, announced) = match *state {
            State::Counted { announce } => (true, !announce),
            State::Live { counted } => (counted, true),
            State::Uncounted => (false, false),
            State::Closed => return false,
        };
        *state = State::Closed;
        if !counted {
            presence.disconnect_uncertain(user.id).await;
            return false;
        }
        match presence.disconnect(user.id).await {
            Ok(gone) => gone && announced,
            Err(err) => {
                inc(&metrics.redis_errors);
                tracing::warn!(error = %err, user = %user.id, "presence update failed on disconnect");
                false
            }
        }
    }

    /// A socket counted by its handshake whose connection then fails never gets a connect or a
    /// disconnect handler call: this counts it out if it is not connected shortly after.
    ///
    /// One watchdog runs per socket for its first seconds, so its task is kept small: the rare
    /// slow path is boxed instead of being laid out inline in every watchdog's task.
    pub fn watch_handshake<A: Adapter>(
        &self,
        socket: SocketRef<A>,
        user: User,
        presence: Presence,
        metrics: Arc<Metrics>,
    ) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(HANDSHAKE_GRACE).await;
            if socket.connected() {
                return;
            }
            Box::pin(async move {
                let never_connected = matches!(
                    *me.state.lock().await,
                    State::Counted { .. } | State::Uncounted
                );
                if never_connected {
                    tracing::debug!(sid = %socket.id, "handshake never completed; counting the socket out");
                    // Never announced online by this socket, so no offline either.
                    me.count_out(&user, &presence, &metrics).await;
                }
            })
            .await;
        });
    }
}
