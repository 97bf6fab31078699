//! [`SocketUser`]: what each socket carries, from its handshake to its disconnect.

use std::sync::{Arc, Mutex};

use socketioxide::{adapter::Adapter, extract::SocketRef};

use super::ratelimit::TokenBucket;
use crate::{presence::SocketPresence, store::User};

/// What each socket carries, attached by the handshake.
#[derive(Clone)]
pub struct SocketUser {
    /// Who this socket belongs to.
    pub user: User,
    /// The socket's `message:send` budget.
    bucket: Arc<Mutex<TokenBucket>>,
    /// Where the socket is in its presence life.
    pub presence: SocketPresence,
}

impl SocketUser {
    /// A socket of `user` with a full send budget.
    pub fn new(user: User, bucket: TokenBucket, presence: SocketPresence) -> SocketUser {
        SocketUser {
            user,
            bucket: Arc::new(Mutex::new(bucket)),
            presence,
        }
    }

    /// Takes a token of the socket's send budget, if one is left.
    pub fn take_token(&self) -> bool {
        self.bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_take()
    }

    /// A span naming the socket and its user, for everything done on its behalf.
    pub fn span(&self, s: &SocketRef<impl Adapter>) -> tracing::Span {
        tracing::info_span!("socket", sid = %s.id, user = %self.user.id)
    }
}
