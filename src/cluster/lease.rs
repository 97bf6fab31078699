//! Instance leases. Each instance renews its lease in a sorted set; every instance sweeps the set
//! once a second, and whoever removes an expired instance (one script, so exactly one) announces
//! `user:offline` for its users who are now gone. An instance that finds its own lease was swept
//! (it was paused or cut off too long) counts its sockets in again.

use std::time::Duration;

use fred::prelude::LuaInterface;
use socketioxide::{SocketIo, adapter::Adapter};

use super::presence::RedisPresence;
use crate::{error::AppError, wire::UserView};

/// Renews ARGV[1]'s lease to ARGV[2]; returns 1 when the lease was still there.
const RENEW: &str = r#"
local had = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
if had then return 1 else return 0 end
"#;

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
    let had: i64 = presence
        .client()
        .eval(
            RENEW,
            vec![presence.keys().leases()],
            vec![
                presence.keys().instance().to_owned(),
                (now_ms() + lease.as_millis() as i64).to_string(),
            ],
        )
        .await
        .map_err(|e| AppError::Unavailable(format!("redis: {e}")))?;
    Ok(had == 1)
}

/// Clears what an earlier run of this instance id left behind, then takes the lease. Call before
/// accepting sockets.
pub async fn claim<A: Adapter>(
    presence: &RedisPresence,
    io: &SocketIo<A>,
    bound: Duration,
) -> Result<(), AppError> {
    let timing = Timing::from_bound(bound);
    // Expire our own old lease (if any) and sweep it like a dead instance's.
    expire(presence)
        .await
        .map_err(|e| AppError::Unavailable(format!("redis: {e}")))?;
    announce_offline(io, presence.sweep(now_ms()).await?).await;
    renew(presence, timing.lease).await?;
    Ok(())
}

async fn announce_offline<A: Adapter>(io: &SocketIo<A>, gone: Vec<uuid::Uuid>) {
    for id in gone {
        tracing::info!(user = %id, "user offline (their instance's lease expired)");
        if let Err(err) = io.emit("user:offline", &id.to_string()).await {
            tracing::warn!(error = %err, "could not announce user:offline");
        }
    }
}

/// Starts the renew and sweep loops; they stop when the returned guard is dropped.
pub fn spawn_lease_tasks<A: Adapter>(
    presence: RedisPresence,
    io: SocketIo<A>,
    bound: Duration,
) -> CancelOnDrop {
    let timing = Timing::from_bound(bound);
    let renewer = {
        let presence = presence.clone();
        let io = io.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(timing.renew_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match renew(&presence, timing.lease).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(
                            "this instance's lease had expired; re-registering its sockets"
                        );
                        match presence.reregister().await {
                            Ok(back) => {
                                for user in back {
                                    let _ =
                                        io.emit("user:online", &UserView::new(&user, true)).await;
                                }
                            }
                            Err(err) => tracing::warn!(error = %err, "re-registration failed"),
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "lease renewal failed"),
                }
            }
        })
    };
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(timing.sweep_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match presence.sweep(now_ms()).await {
                Ok(gone) => announce_offline(&io, gone).await,
                Err(err) => tracing::debug!(error = %err, "presence sweep failed"),
            }
        }
    });
    CancelOnDrop(vec![renewer, sweeper])
}

/// Gives up this instance's lease at shutdown: it is marked expired, so the next sweep (by any
/// instance, within a second) subtracts whatever sockets it still counts and announces the users
/// who are gone. The sweep and the per-socket disconnect scripts are atomic, so a socket is never
/// counted out twice.
pub async fn release(presence: &RedisPresence) {
    if let Err(err) = expire(presence).await {
        tracing::warn!(error = %err, "could not release the presence lease; it will expire");
    }
}

/// Marks this instance's lease as expired (score 0), so the next sweep removes it.
async fn expire(presence: &RedisPresence) -> Result<(), fred::error::Error> {
    let keys = presence.keys();
    presence
        .client()
        .eval::<i64, _, _, _>(
            RENEW,
            vec![keys.leases()],
            vec![keys.instance().to_owned(), "0".to_owned()],
        )
        .await
        .map(drop)
}

/// Aborts the lease tasks when dropped.
pub struct CancelOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
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
