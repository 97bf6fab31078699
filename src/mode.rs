//! The deployment mode, decided once at start-up: one embedded process, or one of several
//! instances sharing PostgreSQL and Redis. Presence, the history cache and cross-instance delivery
//! take their behaviour from this one value.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::{
    cluster::{Bus, Cluster, HistoryCache, Inbound},
    config::Config,
    metrics::Metrics,
};

/// How this instance shares state with other instances.
#[derive(Clone)]
pub enum Mode {
    /// A single process: presence in memory, no history cache, nobody else to deliver to.
    Embedded,
    /// One of several instances: presence, the history cache and delivery go through Redis.
    Cluster(Arc<Cluster>),
}

impl Mode {
    /// Cluster mode when Redis is configured (connecting to it), else embedded. In cluster mode
    /// the queue of what other instances send this one comes with it.
    pub async fn start(
        config: &Config,
        metrics: &Arc<Metrics>,
    ) -> anyhow::Result<(Mode, Option<mpsc::Receiver<Inbound>>)> {
        Ok(match &config.redis_url {
            Some(url) => {
                let (cluster, inbound) = Cluster::connect(url, config, metrics.clone()).await?;
                (Mode::Cluster(Arc::new(cluster)), Some(inbound))
            }
            None => (Mode::Embedded, None),
        })
    }

    /// The bus to the other instances, in cluster mode.
    pub fn bus(&self) -> Option<&Bus> {
        match self {
            Mode::Embedded => None,
            Mode::Cluster(cluster) => Some(&cluster.bus),
        }
    }

    /// The Redis history cache, in cluster mode.
    pub fn history_cache(&self) -> Option<&HistoryCache> {
        match self {
            Mode::Embedded => None,
            Mode::Cluster(cluster) => Some(&cluster.cache),
        }
    }

    /// Whether the shared services answer: `None` when there are none (embedded).
    pub fn redis_ready(&self) -> Option<bool> {
        match self {
            Mode::Embedded => None,
            Mode::Cluster(cluster) => Some(cluster.is_ready()),
        }
    }

    /// "embedded" or "cluster", for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::Embedded => "embedded",
            Mode::Cluster(_) => "cluster",
        }
    }
}
