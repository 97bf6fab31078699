//! Cluster mode: the Redis connections, the Socket.io adapter on fred, cluster-wide presence with
//! per-instance leases, and the hot history cache. Every Redis key is built in `keys`.

mod cache;
mod keys;
mod lease;
mod presence;

use std::time::Duration;

use anyhow::Context;
use fred::{
    clients::SubscriberClient,
    prelude::{Builder, Client, ClientLike, Config as RedisConfig, ReconnectPolicy},
    types::RespVersion,
};
use socketioxide_redis::{RedisAdapterConfig, RedisAdapterCtr, drivers::fred::FredDriver};

pub use cache::HistoryCache;
pub use keys::Keys;
pub use lease::{LeaseTasks, claim, release, spawn_lease_tasks};
pub use presence::RedisPresence;

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

/// The Redis side of an instance.
#[derive(Clone)]
pub struct Cluster {
    /// Commands (presence, cache, leases).
    pub client: Client,
    /// The adapter's pub/sub connection; `/ready` watches it.
    pub subscriber: SubscriberClient,
    /// Key names for this deployment and instance.
    pub keys: Keys,
}

impl Cluster {
    /// Connects both clients; they reconnect (and resubscribe) by themselves after an outage.
    pub async fn connect(url: &str, prefix: &str, instance_id: &str) -> anyhow::Result<Cluster> {
        let mut config =
            RedisConfig::from_url(url).context("REDIS_URL is not a valid Redis URL")?;
        // The adapter's fred driver needs RESP3 (Redis 7+), for sharded pub/sub.
        config.version = RespVersion::RESP3;
        let mut builder = Builder::from_config(config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(3);
                c.internal_command_timeout = Duration::from_secs(3);
            })
            .with_performance_config(|p| {
                p.default_command_timeout = Duration::from_secs(3);
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
        let client = builder
            .build()
            .context("could not set up the Redis client")?;
        // fred hands pub/sub messages to the adapter through a broadcast channel that drops what
        // a busy receiver has not read yet; its default of 32 lost cross-instance messages under
        // load. Only the subscriber gets the big buffer: fred allocates every one of a client's
        // notification channels at this capacity up front (~40 MiB per client at 65,536).
        //
        // Its publishes carry every cross-instance `message:new` and presence event: in a
        // 10,000-user connect storm a starved instance saw hundreds of them time out at 3 s and
        // the event was lost for every other instance. A late event beats a lost one; acks never
        // wait for these.
        builder.with_performance_config(|p| {
            p.broadcast_channel_capacity = 65_536;
            p.default_command_timeout = Duration::from_secs(10);
        });
        let subscriber = builder
            .build_subscriber_client()
            .context("could not set up the Redis subscriber")?;
        client.init().await.context("could not connect to Redis")?;
        spawn_resubscriber(subscriber.clone());
        Ok(Cluster {
            client,
            subscriber,
            keys: Keys::new(prefix, instance_id),
        })
    }

    /// The adapter constructor for socketioxide (it initialises the subscriber).
    pub async fn adapter(&self) -> anyhow::Result<RedisAdapterCtr<FredDriver>> {
        let driver = FredDriver::new(self.subscriber.clone())
            .await
            .context("could not start the Redis pub/sub subscriber")?;
        let config = RedisAdapterConfig::new()
            .with_prefix(self.keys.channel_prefix())
            .with_stream_buffer(65_536);
        Ok(RedisAdapterCtr::new_with_driver(driver, config))
    }

    /// Both connections are up.
    pub fn is_ready(&self) -> bool {
        self.client.is_connected() && self.subscriber.is_connected()
    }
}
