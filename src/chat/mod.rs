//! The chat service: sending, history, catch-up and the conversation list. Transports (REST and
//! Socket.io) parse their input into the requests of `requests` and map the results; the rules
//! live here.

pub mod requests;

use std::sync::Arc;

use uuid::Uuid;

pub use self::requests::{HistoryRequest, SendMessage, SyncRequest};
use crate::{
    auth::Accounts,
    error::AppError,
    metrics::{Metrics, inc},
    mode::Mode,
    store::{Message, NewMessage, Store, User, conversation_key, writer::MessageWriter},
};

/// Largest page of history or sync.
pub const MAX_PAGE: usize = 100;

/// The result of a send: the stored message and whether this call stored it (a retry did not).
#[derive(Debug, Clone)]
pub struct Sent {
    /// The stored message.
    pub message: Message,
    /// `false` for a retry of a message stored before (same sender and `clientMsgId`).
    pub created: bool,
}

/// Chat operations over the store.
pub struct Chat {
    store: Store,
    writer: MessageWriter,
    accounts: Arc<Accounts>,
    mode: Mode,
    max_chars: usize,
    metrics: Arc<Metrics>,
}

impl Chat {
    /// The service; in cluster mode it reads and fills the Redis history cache.
    pub fn new(
        store: Store,
        writer: MessageWriter,
        accounts: Arc<Accounts>,
        mode: Mode,
        max_chars: usize,
        metrics: Arc<Metrics>,
    ) -> Chat {
        Chat {
            store,
            writer,
            accounts,
            mode,
            max_chars,
            metrics,
        }
    }

    /// Validates and durably stores a message. Returns only after the commit.
    pub async fn send(&self, sender: &User, req: SendMessage) -> Result<Sent, AppError> {
        let trimmed = req.content.trim();
        if trimmed.is_empty() {
            return Err(AppError::Invalid("content must not be empty".into()));
        }
        if trimmed.chars().count() > self.max_chars {
            return Err(AppError::ContentTooLong(format!(
                "content is longer than {} characters",
                self.max_chars
            )));
        }
        if req.receiver_id == sender.id {
            return Err(AppError::Invalid("receiverId must be another user".into()));
        }
        if self.accounts.user(req.receiver_id).await?.is_none() {
            return Err(AppError::UnknownReceiver("receiverId names no user".into()));
        }
        inc(&self.metrics.messages_accepted);
        let new = NewMessage::new(sender.id, req.receiver_id, req.content, req.client_msg_id);
        let (message, created) = self.writer.write(new).await?;
        if let (true, Some(cache)) = (created, self.mode.history_cache()) {
            // After the commit and before the ack and message:new, so that whoever hears of the
            // message finds it in history; a slow Redis delays the ack by at most PUSH_WAIT.
            cache.push(message.clone()).await;
        }
        Ok(Sent { message, created })
    }

    /// Up to `limit` messages between `me` and `peer` before the message `before` (or the
    /// latest), oldest first, and whether older ones exist.
    pub async fn history(
        &self,
        me: Uuid,
        HistoryRequest {
            peer,
            before,
            limit,
        }: HistoryRequest,
    ) -> Result<(Vec<Message>, bool), AppError> {
        let before_seq = match before {
            None => None,
            Some(id) => {
                let cursor = self.store.message(id).await?;
                match cursor {
                    Some(m)
                        if conversation_key(m.sender_id, m.receiver_id)
                            == conversation_key(me, peer) =>
                    {
                        Some(m.seq)
                    }
                    _ => {
                        return Err(AppError::Invalid(
                            "before is not a message of this conversation".into(),
                        ));
                    }
                }
            }
        };
        if let Some(cache) = self.mode.history_cache()
            && let Some(page) = cache.page(me, peer, before_seq, limit).await
        {
            return Ok(page);
        }
        let mut page = self
            .store
            .conversation_page(me, peer, before_seq, limit + 1)
            .await?;
        let has_more = page.len() > limit;
        if has_more {
            page.remove(0);
        }
        if let (None, Some(cache)) = (before_seq, self.mode.history_cache()) {
            cache.refill(me, peer, &page, has_more).await;
        }
        Ok((page, has_more))
    }

    /// Messages to or from `me` committed after the message `after`, oldest first, and whether
    /// more follow. Never skips one: `seq` is commit order.
    pub async fn sync(
        &self,
        me: Uuid,
        SyncRequest { after, limit }: SyncRequest,
    ) -> Result<(Vec<Message>, bool), AppError> {
        let cursor = self.store.message(after).await?;
        let after_seq = match cursor {
            Some(m) if m.sender_id == me || m.receiver_id == me => m.seq,
            _ => {
                return Err(AppError::Invalid(
                    "after is not one of your messages".into(),
                ));
            }
        };
        let mut page = self.store.messages_after(me, after_seq, limit + 1).await?;
        let has_more = page.len() > limit;
        page.truncate(limit);
        Ok((page, has_more))
    }

    /// Waits for sends in flight to be committed and cached (bounded), for a graceful shutdown.
    pub async fn drain(&self, limit: std::time::Duration) {
        self.writer.drain(limit).await;
        if let Some(cache) = self.mode.history_cache() {
            cache.drain(limit).await;
        }
    }

    /// The user's conversations, most recent first.
    pub async fn conversations(&self, me: Uuid) -> Result<Vec<(User, Message)>, AppError> {
        Ok(self.store.conversations(me, 500).await?)
    }
}
