//! One pub/sub connection for the whole instance: the Socket.io adapter's channels and the bus's
//! (`bus.rs`) share it. A single task reads what fred receives and hands each message to the
//! queue of its channel; the adapter reaches it through socketioxide-redis's `Driver` trait.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use fred::{
    clients::SubscriberClient,
    interfaces::{EventInterface, PubsubInterface},
    types::Message,
};
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::{broadcast, mpsc};

type Handlers = Arc<RwLock<HashMap<String, mpsc::Sender<ChanItem>>>>;

/// The instance's pub/sub connection, shared by the adapter and the bus; cheap to clone.
#[derive(Clone)]
pub struct Pubsub {
    subscriber: SubscriberClient,
    handlers: Handlers,
}

/// A pub/sub failure.
#[derive(Debug, thiserror::Error)]
#[error("redis pub/sub: {0}")]
pub struct PubsubError(#[from] fred::error::Error);

impl Pubsub {
    /// Starts dispatching what `subscriber` receives (connect it with `init` afterwards).
    pub fn new(subscriber: SubscriberClient) -> Pubsub {
        let handlers: Handlers = Arc::default();
        tokio::spawn(dispatch(subscriber.message_rx(), handlers.clone()));
        Pubsub {
            subscriber,
            handlers,
        }
    }

    /// Publishes on a sharded channel; returns how many subscribers received it.
    pub async fn publish(&self, channel: String, payload: Vec<u8>) -> Result<usize, PubsubError> {
        let receivers: i64 = self.subscriber.spublish(channel, payload).await?;
        Ok(receivers.max(0) as usize)
    }

    /// Subscribes to a sharded channel; its messages arrive on the returned queue (`size` deep:
    /// past that, messages are dropped with a warning).
    pub async fn subscribe(
        &self,
        channel: String,
        size: usize,
    ) -> Result<mpsc::Receiver<ChanItem>, PubsubError> {
        let (tx, rx) = mpsc::channel(size);
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(channel.clone(), tx);
        self.subscriber.ssubscribe(channel).await?;
        Ok(rx)
    }
}

async fn dispatch(mut rx: broadcast::Receiver<Message>, handlers: Handlers) {
    loop {
        let message = match rx.recv().await {
            Ok(message) => message,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(lost = n, "pub/sub receiver lagged; messages were lost");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let channel = message.channel.to_string();
        let Some(payload) = message.value.into_owned_bytes() else {
            continue;
        };
        let handler = handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&channel)
            .cloned();
        match handler {
            Some(tx) => {
                if let Err(err) = tx.try_send((channel, payload)) {
                    tracing::warn!(error = %err, "pub/sub queue full; a message was dropped");
                }
            }
            None => tracing::debug!(channel, "pub/sub message for no subscriber"),
        }
    }
}

impl Driver for Pubsub {
    type Error = PubsubError;

    async fn publish(&self, chan: String, val: Vec<u8>) -> Result<(), Self::Error> {
        Pubsub::publish(self, chan, val).await.map(drop)
    }

    async fn subscribe(
        &self,
        chan: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        Pubsub::subscribe(self, chan, size)
            .await
            .map(MessageStream::new)
    }

    async fn unsubscribe(&self, chan: String) -> Result<(), Self::Error> {
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&chan);
        self.subscriber.sunsubscribe(chan).await?;
        Ok(())
    }

    async fn num_serv(&self, chan: &str) -> Result<u16, Self::Error> {
        let (_, n): (String, u16) = self.subscriber.pubsub_shardnumsub(chan).await?;
        Ok(n)
    }
}
