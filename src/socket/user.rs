//! [`SocketUser`]: what each socket carries, from its handshake to its disconnect.

use std::sync::{Arc, Mutex};

use socketioxide::{adapter::Adapter, extract::SocketRef};

use super::ratelimit::{TokenBucket, Window};
use crate::{
    cluster::Hosted,
    presence::SocketPresence,
    store::{Recipient, User},
};

/// Most `typing` events a socket may send in one second (the contract's rule).
const TYPING_PER_SEC: usize = 5;

/// A socket's typing: its rate and where it said it is typing.
#[derive(Debug, Default)]
struct Typing {
    window: Window<TYPING_PER_SEC>,
    /// Conversations it said `typing: true` in and has not stopped since.
    active: Vec<Recipient>,
}

/// What each socket carries, attached by the handshake: a handle, so that handing it to each
/// event's handler (socketioxide clones extensions) costs no allocation.
#[derive(Clone)]
pub struct SocketUser(Arc<Carried>);

/// The state behind a [`SocketUser`], one allocation per socket.
pub struct Carried {
    /// Who this socket belongs to.
    pub user: User,
    /// The socket's `message:send` budget.
    bucket: Mutex<TokenBucket>,
    /// Where the socket is in its presence life.
    pub presence: SocketPresence,
    /// Its `typing` rate and the conversations it is typing in.
    typing: Mutex<Typing>,
    /// Cluster mode: while the socket lives, its user's deliveries come to this instance.
    _route: Option<Hosted>,
}

impl std::ops::Deref for SocketUser {
    type Target = Carried;

    fn deref(&self) -> &Carried {
        &self.0
    }
}

impl SocketUser {
    /// A socket of `user` with a full send budget.
    pub fn new(
        user: User,
        bucket: TokenBucket,
        presence: SocketPresence,
        route: Option<Hosted>,
    ) -> SocketUser {
        SocketUser(Arc::new(Carried {
            user,
            bucket: Mutex::new(bucket),
            presence,
            typing: Mutex::default(),
            _route: route,
        }))
    }

    /// Counts a `typing` event against the socket's rate: `false` when it is to be dropped.
    pub fn take_typing_token(&self) -> bool {
        self.typing_state().window.try_take()
    }

    /// Records whether the socket is typing in `of` now.
    pub fn set_typing(&self, of: Recipient, typing: bool) {
        let mut state = self.typing_state();
        state.active.retain(|c| *c != of);
        if typing {
            state.active.push(of);
        }
    }

    fn typing_state(&self) -> std::sync::MutexGuard<'_, Typing> {
        self.typing.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The conversations the socket said it is typing in (for `typing: false` at its
    /// disconnect), forgetting them.
    pub fn stop_typing(&self) -> Vec<Recipient> {
        std::mem::take(&mut self.typing_state().active)
    }

    /// Takes a token of the socket's send budget, if one is left.
    pub fn take_token(&self) -> bool {
        self.bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_take()
    }

    /// Gives back a token of the socket's send budget (the send it was taken for failed).
    pub fn give_back_token(&self) {
        self.bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .give_back();
    }

    /// A span naming the socket and its user, for everything done on its behalf. At debug
    /// level: at the default `info`, creating and formatting it for every event cost 3.7% of a
    /// message's instructions; server-side errors name the user anyway (`events::reply`).
    pub fn span(&self, s: &SocketRef<impl Adapter>) -> tracing::Span {
        tracing::debug_span!("socket", sid = %s.id, user = %self.user.id)
    }
}
