//! The Redis side of cluster mode: the two connections (commands, and the adapter's pub/sub), the
//! Socket.io adapter on fred, the name of every key and channel, and the hot history cache. It
//! emits no Socket.io event itself: presence (`crate::presence`) and delivery (`crate::socket`)
//! use what is here.

mod cache;
mod keys;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use fred::{
    clients::SubscriberClient,
    prelude::{Builder, Client, ClientLike, Config as RedisConfig, ReconnectPolicy},
    types::RespVersion,
};
use socketioxide_redis::{RedisAdapterConfig, RedisAdapterCtr, drivers::fred::FredDriver};

pub use cache::HistoryCache;
pub use keys::Keys;

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

/// The Redis side of an instance; cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    /// Commands: presence scripts, leases, the history cache.
    pub client: Client,
    /// The adapter's pub/sub connection; `/ready` watches it.
    pub subscriber: SubscriberClient,
    /// Key names for this deployment and instance.
    pub keys: Keys,
    /// The newest messages of each conversation.
    pub cache: HistoryCache,
}

impl Cluster {
    /// Connects both clients (they reconnect, and resubscribe, by themselves after an outage) and
    /// starts the history cache.
    pub async fn connect(
        url: &str,
        config: &Config,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Cluster> {
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
        spawn_resubscriber(subscriber.clone());
        let keys = Keys::new(&config.redis_prefix, &config.instance_id);
        let cache = HistoryCache::new(
            client.clone(),
            keys.clone(),
            config.history_cache_size,
            metrics,
        );
        Ok(Cluster {
            client,
            subscriber,
            keys,
            cache,
        })
    }

    /// The adapter constructor for socketioxide (it initialises the subscriber).
    pub async fn adapter(&self) -> anyhow::Result<RedisAdapterCtr<FredDriver>> {
        let driver = FredDriver::new(self.subscriber.clone())
            .await
            .context("could not start the Redis pub/sub subscriber")?;
        let config = RedisAdapterConfig::new()
            .with_prefix(self.keys.channel_prefix())
            .with_stream_buffer(SUBSCRIBER_BUFFER);
        Ok(RedisAdapterCtr::new_with_driver(driver, config))
    }

    /// Both connections are up.
    pub fn is_ready(&self) -> bool {
        self.client.is_connected() && self.subscriber.is_connected()
    }
}
