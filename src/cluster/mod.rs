//! The Redis side of cluster mode: the two connections (commands, and the adapter's pub/sub), the
//! Socket.io adapter on fred, the name of every key and channel, and the hot history cache. It
//! emits no Socket.io event itself: presence (`crate::presence`) and delivery (`crate::socket`)
//! use what is here.

mod bus;
mod cache;
mod keys;
mod pubsub;
mod routes;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use fred::{
    clients::SubscriberClient,
    prelude::{Builder, Client, ClientLike, Config as RedisConfig, ReconnectPolicy},
    types::RespVersion,
};
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use tokio::sync::mpsc;

pub use bus::{Applied, Bus, BusError, Hosted, Inbound, Publish, RoomVersion};
pub use cache::{Carried, HistoryCache};
pub use keys::Keys;
pub use pubsub::Pubsub;

use crate::{config::Config, metrics::Metrics};

/// Bound on a command of the command connection.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// Bound on a publish of the subscriber connection: a late cross-instance event beats a lost
/// one, and no ack waits for these (see DECISIONS.md, "Redis publishes").
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// Pub/sub messages fred buffers for the adapter before dropping them (its default is 32).
const SUBSCRIBER_BUFFER: usize = 65_536;

/// Re-subscribes the adapter's (sharded) channels after every reconnect of the subscriber.
/// fred's own `manage_subscriptions` sends an empty `SUBSCRIBE` first when only sharded channels
/// are tracked, which Redis refuses, and then gives up before the `SSUBSCRIBE`s.
fn spawn_resubscriber(subscriber: SubscriberClient) {
    use fred::interfaces::{EventInterface, PubsubInterface};
    tokio::spawn(async move {
        let mut reconnects = subscriber.reconnect_rx();
        loop {
            match reconnects.recv().await {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
            let channels = subscriber.tracked_shard_channels();
            tracing::info!(
                channels = channels.len(),
                "Redis reconnected; re-subscribing"
            );
            for channel in channels {
                if let Err(err) = subscriber.ssubscribe(channel.to_string()).await {
                    tracing::warn!(error = %err, "re-subscribe failed");
                }
            }
        }
    });
}

/// The Socket.io adapter of cluster mode: socketioxide-redis on our shared pub/sub connection.
pub type RedisAdapter<E> = CustomRedisAdapter<E, Pubsub>;

/// The Redis side of an instance; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    /// Commands: presence scripts, leases, the history cache.
    pub client: Client,
    /// The pub/sub connection (adapter and bus); `/ready` watches it.
    pub subscriber: SubscriberClient,
    pubsub: Pubsub,
    /// Our messages between instances.
    pub bus: Bus,
    /// Key names for this deployment and instance.
    pub keys: Keys,
    /// The newest messages of each conversation.
    pub cache: HistoryCache,
}

impl Cluster {
    /// Connects both clients (they reconnect, and resubscribe, by themselves after an outage),
    /// starts the history cache and the bus; what the bus receives comes out of the returned
    /// queue.
    pub async fn connect(
        url: &str,
        config: &Config,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<(Cluster, mpsc::Receiver<Inbound>)> {
        let mut redis_config =
            RedisConfig::from_url(url).context("REDIS_URL is not a valid Redis URL")?;
        // The adapter's fred driver needs RESP3 (Redis 7+), for sharded pub/sub.
        redis_config.version = RespVersion::RESP3;
        let mut builder = Builder::from_config(redis_config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = COMMAND_TIMEOUT;
                c.internal_command_timeout = COMMAND_TIMEOUT;
            })
            .with_performance_config(|p| {
                p.default_command_timeout = COMMAND_TIMEOUT;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
        let client = builder
            .build()
            .context("could not set up the Redis client")?;
        // Only the subscriber gets the big buffer: fred allocates every notification channel of
        // a client at this capacity up front.
        builder.with_performance_config(|p| {
            p.broadcast_channel_capacity = SUBSCRIBER_BUFFER;
            p.default_command_timeout = PUBLISH_TIMEOUT;
        });
        let subscriber = builder
            .build_subscriber_client()
            .context("could not set up the Redis subscriber")?;
        client.init().await.context("could not connect to Redis")?;
        let pubsub = Pubsub::new(subscriber.clone());
        subscriber
            .init()
            .await
            .context("could not start the Redis pub/sub subscriber")?;
        let keys = Keys::new(&config.redis_prefix, &config.instance_id);
        let (bus, inbound) = Bus::start(
            pubsub.clone(),
            client.clone(),
            keys.clone(),
            fred::interfaces::EventInterface::reconnect_rx(&subscriber),
            metrics.clone(),
        )
        .await
        .context("could not subscribe to the cluster bus")?;
        spawn_resubscriber(subscriber.clone());
        let cache = HistoryCache::new(
            client.clone(),
            keys.clone(),
            config.history_cache_size,
            metrics,
        );
        let cluster = Cluster {
            client,
            subscriber,
            pubsub,
            bus,
            keys,
            cache,
        };
        Ok((cluster, inbound))
    }

    /// The adapter constructor for socketioxide, on the shared pub/sub connection.
    pub fn adapter(&self) -> RedisAdapterCtr<Pubsub> {
        let config = RedisAdapterConfig::new()
            .with_prefix(self.keys.channel_prefix())
            .with_stream_buffer(SUBSCRIBER_BUFFER);
        RedisAdapterCtr::new_with_driver(self.pubsub.clone(), config)
    }

    /// Both connections are up.
    pub fn is_ready(&self) -> bool {
        self.client.is_connected() && self.subscriber.is_connected()
    }
}
