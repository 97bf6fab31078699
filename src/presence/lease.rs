//! Instance leases (cluster mode). Each instance renews its lease in a sorted set; every instance
//! sweeps the set once a second, and whoever removes an expired instance (one script, so exactly
//! one) announces `user:offline` for its users who are now gone. An instance that finds its own
//! lease was swept (it was paused or cut off too long) counts its sockets in again; the same tick
//! repairs this instance's counts after a failed presence script (see `redis.rs`).
//!
//! The lease says "this process is alive", not "its runtime is idle", so it is renewed from a
//! thread and Redis connection of its own (DECISIONS.md, "Presence leases").

use std::time::Duration;

use fred::prelude::{Client, ClientLike, LuaInterface, SortedSetsInterface};
use socketioxide::{SocketIo, adapter::Adapter};
use tokio::sync::{oneshot, watch};

use super::{
    Presence, announce,
    redis::{RedisPresence, Repaired, Swept},
};
use crate::{
    cluster::{HistoryCache, Keys},
    error::AppError,
};

/// Renews ARGV[1]'s lease to ARGV[2]; returns 1 when the lease was still there.
const RENEW: &str = r#"
local had = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if had then return 1 else return 0 end
"#;

/// What keeps presence true while the server runs: in cluster mode, this instance's lease
/// (renewed on a thread of its own) and the sweep of dead instances; nothing in embedded mode.
pub struct Upkeep {
    leases: Option<(RedisPresence, LeaseTasks)>,
}

impl Presence {
    /// Starts the upkeep. In cluster mode it first clears what an earlier run of this instance id
    /// left behind and takes the lease; call it before accepting sockets.
    pub async fn start_upkeep<A: Adapter>(
        &self,
        io: &SocketIo<A>,
        cache: Option<&HistoryCache>,
        bound: Duration,
    ) -> Result<Upkeep, AppError> {
        match self {
            Presence::Local(_) => Ok(Upkeep { leases: None }),
            Presence::Redis(presence) => {
                claim(presence, cache, io, bound).await?;
                let tasks = spawn_lease_tasks(presence.clone(), cache.cloned(), io.clone(), bound);
                Ok(Upkeep {
                    leases: Some((presence.clone(), tasks)),
                })
            }
        }
    }
}

/// Longest a stopping instance waits for its lease thread's last renewal, and for the release.
/// Redis answers in milliseconds; past this it is not answering, and the lease will expire.
const STOP_BOUND: Duration = Duration::from_millis(500);

impl Upkeep {
    /// Stops the upkeep and gives up the lease: within a second another instance's sweep counts
    /// out whatever sockets this one still held and announces the users who are gone. Bounded:
    /// with Redis unreachable the lease is left to expire (its sweep then also invalidates the
    /// history cache, as for a crash), so a stop never waits out Redis timeouts.
    pub async fn stop(self) {
        if let Some((presence, tasks)) = self.leases {
            tasks.stop().await;
            if !presence.client.is_connected() {
                tracing::warn!(
                    "Redis is unreachable: the presence lease is not released; it expires by itself"
                );
                return;
            }
            if tokio::time::timeout(STOP_BOUND, release(&presence))
                .await
                .is_err()
            {
                tracing::warn!(
                    "Redis did not answer the lease release in time; the lease expires by itself"
                );
            }
        }
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Lease timing derived from the configured detection bound: a dead instance's users are
/// announced offline at most `bound` after it died.
#[derive(Clone, Copy)]
struct Timing {
    lease: Duration,
    renew_every: Duration,
    sweep_every: Duration,
}

impl Timing {
    fn from_bound(bound: Duration) -> Timing {
        let sweep_every = Duration::from_secs(1).min(bound / 4);
        let lease = bound.saturating_sub(sweep_every) * 3 / 4;
        Timing {
            lease,
            renew_every: lease / 4,
            sweep_every,
        }
    }
}

async fn renew(presence: &RedisPresence, lease: Duration) -> Result<bool, AppError> {
    renew_with(&presence.client, &presence.keys, lease).await
}

async fn renew_with(client: &Client, keys: &Keys, lease: Duration) -> Result<bool, AppError> {
    let had: i64 = client
        .eval(
            RENEW,
            vec![keys.leases()],
            vec![
                keys.instance().to_owned(),
                (now_ms() + lease.as_millis() as i64).to_string(),
            ],
        )
        .await
        .map_err(|e| AppError::Unavailable(format!("redis: {e}")))?;
    Ok(had == 1)
}

/// Clears what an earlier run of this instance id left behind, then takes the lease. Call before
/// accepting sockets.
async fn claim<A: Adapter>(
    presence: &RedisPresence,
    cache: Option<&HistoryCache>,
    io: &SocketIo<A>,
    bound: Duration,
) -> Result<(), AppError> {
    let timing = Timing::from_bound(bound);
    // An earlier run that still holds a live-looking lease did not stop cleanly.
    let earlier: Option<f64> = presence
        .client
        .zscore(presence.keys.leases(), presence.keys.instance())
        .await
        .map_err(|e| AppError::Unavailable(format!("redis: {e}")))?;
    // Expire our own old lease (if any) and sweep it like a dead instance's.
    expire(presence)
        .await
        .map_err(|e| AppError::Unavailable(format!("redis: {e}")))?;
    let mut swept = presence.sweep(now_ms()).await?;
    swept.crashed += usize::from(earlier.is_some_and(|score| score > 0.0));
    after_sweep(io, cache, swept).await;
    renew(presence, timing.lease).await?;
    Ok(())
}

/// Announces the users a sweep took offline. If an instance had crashed, the history cache is
/// invalidated: messages it had committed but not yet pushed to the cache would otherwise be
/// missing from conversations whose cache still claims to be complete.
async fn after_sweep<A: Adapter>(io: &SocketIo<A>, cache: Option<&HistoryCache>, swept: Swept) {
    if swept.crashed > 0
        && let Some(cache) = cache
    {
        match cache.invalidate_all().await {
            Ok(n) => tracing::warn!(
                crashed = swept.crashed,
                conversations = n,
                "an instance crashed; history cache invalidated (it refills from the database)"
            ),
            Err(err) => tracing::warn!(error = %err, "could not invalidate the history cache"),
        }
    }
    announce_offline(io, swept.gone).await;
}

async fn announce_offline<A: Adapter>(io: &SocketIo<A>, gone: Vec<uuid::Uuid>) {
    for id in gone {
        tracing::info!(user = %id, "user offline (their instance's lease expired)");
        announce::offline(io, id, None).await;
    }
}

/// Announces what a presence repair found: users who came online, or went offline, without
/// (surely) having been announced.
async fn announce_repaired<A: Adapter>(io: &SocketIo<A>, repaired: Repaired) {
    tracing::info!(
        online = repaired.online.len(),
        offline = repaired.offline.len(),
        "presence repaired"
    );
    for user in &repaired.online {
        announce::online(io, user).await;
    }
    announce_offline(io, repaired.offline).await;
}

/// Starts the renew loop (on its own thread) and the sweep loop; stop them with
/// [`LeaseTasks::stop`] before releasing the lease.
fn spawn_lease_tasks<A: Adapter>(
    presence: RedisPresence,
    cache: Option<HistoryCache>,
    io: SocketIo<A>,
    bound: Duration,
) -> LeaseTasks {
    let timing = Timing::from_bound(bound);
    let (stop, stop_rx) = watch::channel(());
    let (stopped_tx, stopped) = oneshot::channel();
    let client = presence.client.clone_new();
    let keys = presence.keys.clone();
    let owner = presence.clone();
    let renewer = std::thread::Builder::new()
        .name("nexus-lease".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(renew_loop(client, keys, timing, owner, stop_rx)),
                Err(err) => tracing::error!(error = %err, "could not start the lease thread"),
            }
            let _ = stopped_tx.send(());
        });
    if let Err(err) = renewer {
        tracing::error!(error = %err, "could not start the lease thread");
    }
    let presence_for_watch = presence.clone();
    let cache_for_watch = cache.clone();
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(timing.sweep_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match presence.sweep(now_ms()).await {
                Ok(swept) => after_sweep(&io, cache.as_ref(), swept).await,
                Err(err) => tracing::debug!(error = %err, "presence sweep failed"),
            }
            match presence.repair().await {
                Ok(Some(repaired)) => announce_repaired(&io, repaired).await,
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, "presence repair failed; will retry"),
            }
        }
    });
    let watcher = tokio::spawn(after_reconnects(presence_for_watch, cache_for_watch));
    LeaseTasks {
        sweeper,
        watcher,
        stop: Some(stop),
        stopped: Some(stopped),
    }
}

/// Renews the lease every `renew_every` until `stop` is dropped. A lease that had expired before
/// a renewal was swept with this instance's sockets: `presence` is asked for a repair, which the
/// sweep tick on the main runtime carries out.
async fn renew_loop(
    client: Client,
    keys: Keys,
    timing: Timing,
    presence: RedisPresence,
    mut stop: watch::Receiver<()>,
) {
    if let Err(err) = client.init().await {
        tracing::warn!(error = %err, "lease connection failed; retrying in the background");
    }
    let mut tick = tokio::time::interval(timing.renew_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        match renew_with(&client, &keys, timing.lease).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!("this instance's lease had expired; re-registering its sockets");
                presence.request_repair();
            }
            Err(err) => tracing::warn!(error = %err, "lease renewal failed"),
        }
    }
    let _ = client.quit().await;
}

/// After every reconnect of the command connection: a Redis that restarted, or a Redis Cluster
/// whose master failed over to a replica, may have lost writes it had acknowledged (replication
/// is asynchronous). This instance's presence counts are repaired to its own sockets, and every
/// conversation's cache floor is dropped, so no cache claims a message it lost.
async fn after_reconnects(presence: RedisPresence, cache: Option<HistoryCache>) {
    use fred::interfaces::EventInterface;
    let mut reconnects = presence.client.reconnect_rx();
    loop {
        match reconnects.recv().await {
            Ok(server) => {
                tracing::info!(server = %server, "Redis reconnected: repairing presence, dropping the history cache's floors")
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
        presence.request_repair();
        if let Some(cache) = &cache {
            // Until Redis answers (the reconnect may be followed by more trouble).
            for attempt in 0..30 {
                match cache.invalidate_all().await {
                    Ok(_) => break,
                    Err(err) => {
                        tracing::debug!(error = %err, attempt, "history cache invalidation after a reconnect failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    }
}

/// The lease loops of a running instance.
struct LeaseTasks {
    sweeper: tokio::task::JoinHandle<()>,
    watcher: tokio::task::JoinHandle<()>,
    stop: Option<watch::Sender<()>>,
    stopped: Option<oneshot::Receiver<()>>,
}

impl LeaseTasks {
    /// Stops the loops and waits (briefly) until the renewal thread has made its last renewal,
    /// so that a lease released afterwards stays released.
    async fn stop(mut self) {
        self.stop.take();
        self.sweeper.abort();
        if let Some(stopped) = self.stopped.take() {
            let _ = tokio::time::timeout(STOP_BOUND, stopped).await;
        }
    }
}

impl Drop for LeaseTasks {
    fn drop(&mut self) {
        self.sweeper.abort();
        self.watcher.abort();
    }
}

/// Gives up this instance's lease at shutdown: it is marked expired, so the next sweep (by any
/// instance, within a second) subtracts whatever sockets it still counts and announces the users
/// who are gone. The sweep and the per-socket disconnect scripts are atomic, so a socket is never
/// counted out twice.
async fn release(presence: &RedisPresence) {
    if let Err(err) = expire(presence).await {
        tracing::warn!(error = %err, "could not release the presence lease; it will expire");
    }
}

/// Marks this instance's lease as expired (score 0), so the next sweep removes it.
async fn expire(presence: &RedisPresence) -> Result<(), fred::error::Error> {
    let keys = &presence.keys;
    presence
        .client
        .eval::<i64, _, _, _>(
            RENEW,
            vec![keys.leases()],
            vec![keys.instance().to_owned(), "0".to_owned()],
        )
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_bound_announces_a_dead_instance_within_15_seconds() {
        let t = Timing::from_bound(Duration::from_secs(15));
        // Worst case: died right after renewing; the lease runs out, then the next sweep sees it.
        assert!(t.lease + t.sweep_every <= Duration::from_secs(15));
        assert!(t.renew_every < t.lease / 2);
    }
}
