//! The cluster bus: our own messages between instances, on sharded pub/sub beside the adapter's.
//! It carries deliveries (an event for the sockets of some users, decided on the sending
//! instance and emitted by each instance to its own sockets, so that a socket that cannot take
//! it is found where it is) and membership changes, which every live instance applies before the
//! change is acknowledged.
//!
//! A delivery is published only to the instances that host one of its users' sockets
//! (`routes.rs`), on each one's own channel; membership changes go to every instance.
//!
//! The bus emits no Socket.io event itself: what arrives is handed to the consumer of
//! [`Inbound`] (`socket/deliver.rs`).

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use fred::{
    prelude::{Client, HashesInterface, SortedSetsInterface},
    types::config::Server,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

use super::{
    Keys,
    pubsub::Pubsub,
    routes::{Routes, Targets},
};
use crate::metrics::{Metrics, inc};

/// Longest a membership change waits for the other instances to apply it. An instance that has
/// not answered by then is stalled or dead (its lease will say which); the change is committed
/// and applied everywhere else, so the caller is not held up longer.
const APPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// A route announcement that did not get through is published again this often, this many times.
const ANNOUNCE_RETRY_EVERY: Duration = Duration::from_secs(1);
const ANNOUNCE_RETRIES: u32 = 60;
/// How often routes to instances without a lease are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(10);
/// How long after a reconnect the routes are reloaded (the channels are subscribed again first).
const RESUBSCRIBE_SETTLE: Duration = Duration::from_secs(1);
/// Bus messages queued for this instance's consumer before they are dropped (with a warning).
const INBOUND_QUEUE: usize = 65_536;

/// What travels on the bus (externally tagged: serde_json can then borrow the raw payload).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Wire<'a> {
    /// An event for every socket of `users`.
    Deliver {
        from: &'a str,
        event: &'a str,
        users: Vec<Uuid>,
        room: Option<RoomVersion>,
        #[serde(borrow)]
        payload: &'a RawValue,
    },
    /// A room's membership changed; apply it and answer on the sender's own channel.
    Members {
        from: &'a str,
        request: u64,
        room: Uuid,
        version: i64,
        /// `None`: the room was deleted.
        members: Option<Vec<Uuid>>,
    },
    /// A `Members` or `Host` request was applied.
    Applied { request: u64 },
    /// `from` now hosts a socket of `user` (`on`, answered when `request` is set), or no longer
    /// does, as of `version` (see `routes.rs`).
    Host {
        from: &'a str,
        user: Uuid,
        version: u64,
        on: bool,
        request: Option<u64>,
    },
    /// Every user `from` hosts, as of `version`: sent after its pub/sub connection came back,
    /// when some of its `Host` messages may have been lost.
    Hosts {
        from: &'a str,
        version: u64,
        users: Vec<Uuid>,
    },
}

/// A room and the membership version an event was decided under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomVersion {
    /// The room.
    pub room: Uuid,
    /// Its membership version.
    pub version: i64,
}

/// What another instance sent this one.
#[derive(Debug)]
pub enum Inbound {
    /// Emit `event` with `payload` (JSON) to this instance's sockets of `users`.
    Deliver {
        /// The event name.
        event: String,
        /// Whose sockets.
        users: Vec<Uuid>,
        /// The room it belongs to, if any, and its membership version.
        room: Option<RoomVersion>,
        /// The event's payload, serialized once by the sender.
        payload: Box<RawValue>,
    },
    /// A room's membership changed: apply it, then call [`Applied::done`].
    Members {
        /// The room.
        room: Uuid,
        /// Its new membership version.
        version: i64,
        /// Its members now (`None`: deleted).
        members: Option<Vec<Uuid>>,
        /// Answers the sender.
        applied: Applied,
    },
    /// The pub/sub connection came back after an outage: bus messages may have been missed.
    Reconnected,
}

/// The answer to a membership change, sent by [`Applied::done`].
#[derive(Debug)]
pub struct Applied {
    bus: Option<Bus>,
    to: String,
    request: u64,
}

impl Applied {
    /// Tells the sender this instance has applied the change.
    pub async fn done(mut self) {
        if let Some(bus) = self.bus.take() {
            let reply = Wire::Applied {
                request: self.request,
            };
            bus.send(bus.keys.bus_instance(&self.to), &reply).await;
        }
    }
}

/// Encodes a bus message (`None`, logged, if it cannot be).
fn encode(message: &Wire<'_>) -> Option<Vec<u8>> {
    serde_json::to_vec(message)
        .map_err(|err| tracing::error!(error = %err, "could not encode a bus message"))
        .ok()
}

/// The instances that hold a lease.
async fn live_instances(client: &Client, keys: &Keys) -> Result<Vec<String>, fred::error::Error> {
    client
        .zrange(keys.leases(), 0, -1, None, false, None, false)
        .await
}

/// A socket's route: while it lives, deliveries for its user are published to this instance.
#[derive(Debug)]
pub struct Hosted {
    bus: Bus,
    user: Uuid,
}

impl Drop for Hosted {
    fn drop(&mut self) {
        self.bus.unhost(self.user);
    }
}

/// A bus failure: nothing was sent.
#[derive(Debug, thiserror::Error)]
#[error("cluster bus: {0}")]
pub struct BusError(String);

/// One delivery's bus message, encoded, and the channels it goes to.
#[derive(Debug)]
pub struct Publish {
    /// The instances' channels (or the one every instance hears).
    pub channels: Vec<String>,
    /// The encoded bus message.
    pub bytes: Vec<u8>,
}

/// This instance's end of the bus; cheap to clone.
#[derive(Clone, Debug)]
pub struct Bus {
    inner: Arc<Inner>,
    keys: Keys,
}

#[derive(Debug)]
struct Inner {
    pubsub: PubsubHandle,
    /// Commands: reads the other instances' socket counts for the routes.
    client: Client,
    next_request: AtomicU64,
    /// Membership and route changes waiting for answers.
    waiting: Mutex<HashMap<u64, Waiting>>,
    /// Which instances host whose sockets.
    routes: Routes,
    metrics: MetricsHandle,
}

/// `Metrics` is not `Debug`; the bus only needs to be printable for its own errors.
struct MetricsHandle(Arc<Metrics>);

impl std::fmt::Debug for MetricsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// One membership or route change waiting for the other instances.
#[derive(Debug)]
struct Waiting {
    /// Answers received so far (some may arrive before the publish has returned).
    answered: usize,
    /// How many instances received it; known once the publish returns.
    expected: Option<usize>,
    wake: Option<oneshot::Sender<()>>,
}

impl Waiting {
    fn complete(&self) -> bool {
        self.expected.is_some_and(|n| self.answered >= n)
    }
}

/// `Pubsub` is not `Debug`; the bus only needs to be printable for its own errors.
struct PubsubHandle(Pubsub);

impl std::fmt::Debug for PubsubHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pubsub")
    }
}

impl Bus {
    /// Subscribes to the bus's channels; what arrives for this instance comes out of the
    /// returned queue.
    pub async fn start(
        pubsub: Pubsub,
        client: Client,
        keys: Keys,
        reconnects: broadcast::Receiver<Server>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<(Bus, mpsc::Receiver<Inbound>)> {
        let all = pubsub.subscribe(keys.bus_all(), INBOUND_QUEUE).await?;
        let mine = pubsub
            .subscribe(keys.bus_instance(keys.instance()), INBOUND_QUEUE)
            .await?;
        let bus = Bus {
            inner: Arc::new(Inner {
                pubsub: PubsubHandle(pubsub),
                client,
                next_request: AtomicU64::new(1),
                waiting: Mutex::default(),
                routes: Routes::new(),
                metrics: MetricsHandle(metrics),
            }),
            keys,
        };
        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
        tokio::spawn(bus.clone().receive(all, mine, reconnects, tx));
        // Subscribed first: a route announced from now on arrives; one announced before is in
        // Redis's counts.
        if let Err(err) = bus.load_routes().await {
            tracing::warn!(error = %err, "could not load the cluster's routes; delivering to every instance until they are");
            tokio::spawn(bus.clone().resync_routes());
        }
        tokio::spawn(bus.clone().prune_routes());
        Ok((bus, rx))
    }

    /// Every `PRUNE_EVERY`, forgets the routes to instances that hold no lease any more (stopped,
    /// or crashed and swept). Every instance takes its lease before it accepts a socket, so a
    /// live instance is never pruned. Ends when the bus is dropped.
    async fn prune_routes(self) {
        let inner = Arc::downgrade(&self.inner);
        let keys = self.keys;
        drop(self.inner);
        loop {
            tokio::time::sleep(PRUNE_EVERY).await;
            let Some(inner) = inner.upgrade() else {
                return;
            };
            if let Ok(live) = live_instances(&inner.client, &keys).await {
                inner.routes.keep_only(&live);
            }
        }
    }

    /// Adds every other live instance's users, from Redis's per-instance socket counts, and marks
    /// the routes complete.
    async fn load_routes(&self) -> Result<(), fred::error::Error> {
        let client = &self.inner.client;
        let instances = live_instances(client, &self.keys).await?;
        let prefix = self.keys.instance_sockets_prefix();
        for instance in instances.iter().filter(|i| *i != self.keys.instance()) {
            let users: Vec<String> = client.hkeys(format!("{prefix}{instance}")).await?;
            let users = users.iter().filter_map(|u| Uuid::parse_str(u).ok());
            self.inner.routes.load(instance, users);
        }
        self.inner.routes.set_complete(true);
        Ok(())
    }

    /// After this instance's pub/sub connection came back: route messages may have been lost both
    /// ways, so it reloads the others' routes and tells them every user it hosts, retrying until
    /// Redis answers; deliveries go to every instance meanwhile.
    async fn resync_routes(self) {
        let mut wait = Duration::from_millis(100);
        loop {
            self.inner.routes.set_complete(false);
            // The channels are subscribed again shortly after a reconnect (`spawn_resubscriber`);
            // loading before that could miss a route announced in between.
            tokio::time::sleep(RESUBSCRIBE_SETTLE).await;
            let snapshot = Wire::Hosts {
                from: self.keys.instance(),
                version: self.inner.routes.version(),
                users: self.inner.routes.local_users(),
            };
            let told = self.send(self.keys.bus_all(), &snapshot).await.is_some();
            if told && self.load_routes().await.is_ok() {
                tracing::info!("cluster routes reloaded");
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }

    /// A socket of `user` joins this instance. For the user's first socket here, tells every
    /// other instance and waits (at most `APPLY_TIMEOUT`) until each will publish the user's
    /// deliveries here too. Call it before the client hears it is connected.
    pub async fn host(&self, user: Uuid) -> Hosted {
        let announced = self.inner.routes.socket_in(user);
        // Made first, so that the count is undone even if this future is dropped while waiting.
        let hosted = Hosted {
            bus: self.clone(),
            user,
        };
        // A second socket that joins while the first one's announcement is on its way waits for
        // it too: its client must not hear it is connected before the route is in force.
        announced.get_or_init(|| self.announce(user)).await;
        hosted
    }

    /// Tells every other instance that `user` has a socket here and waits until each applied it.
    async fn announce(&self, user: Uuid) {
        let request = self.inner.next_request.fetch_add(1, Relaxed);
        let message = self.route(user, self.inner.routes.version(), true, Some(request));
        match self.publish_and_wait(request, &message).await {
            Ok(None) => {}
            Ok(Some(missing)) => {
                tracing::warn!(%user, missing, "instances did not confirm a route in time");
            }
            // Redis is stalled or gone: the client goes on (its messages are in
            // `message:sync`), and the route is announced again until it gets through or the
            // user has left (a reconnect's resync tells the others too).
            Err(err) => {
                tracing::warn!(error = %err, %user, "could not announce a route; retrying");
                self.announce_later(user);
            }
        }
    }

    /// Publishes `user`'s route here again, once a second, until a publish gets through, the
    /// user has no socket here any more, or `ANNOUNCE_RETRIES` have failed.
    fn announce_later(&self, user: Uuid) {
        self.spawn(|bus| async move {
            for _ in 0..ANNOUNCE_RETRIES {
                tokio::time::sleep(ANNOUNCE_RETRY_EVERY).await;
                if !bus.inner.routes.is_local(user) {
                    return;
                }
                let message = bus.route(user, bus.inner.routes.version(), true, None);
                if bus.send(bus.keys.bus_all(), &message).await.is_some() {
                    return;
                }
            }
        });
    }

    /// A route message: `user` has (`on`) or no longer has a socket here, as of `version`.
    fn route(&self, user: Uuid, version: u64, on: bool, request: Option<u64>) -> Wire<'_> {
        Wire::Host {
            from: self.keys.instance(),
            user,
            version,
            on,
            request,
        }
    }

    /// Runs `work` on the current runtime with a handle of the bus (nothing outside one).
    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, work: impl FnOnce(Bus) -> F) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(work(self.clone()));
        }
    }

    /// A socket of `user` left this instance; for the user's last socket here, tells the others
    /// (without waiting: a route left behind only costs a publish).
    fn unhost(&self, user: Uuid) {
        if !self.inner.routes.socket_out(user) {
            return;
        }
        let version = self.inner.routes.version();
        self.spawn(|bus| async move {
            let message = bus.route(user, version, false, None);
            bus.send(bus.keys.bus_all(), &message).await;
        });
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiting>> {
        self.inner.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn send(&self, channel: String, message: &Wire<'_>) -> Option<usize> {
        self.publish(channel, encode(message)?).await
    }

    /// Publishes an encoded bus message; how many subscribers received it, `None` on failure.
    async fn publish(&self, channel: String, bytes: Vec<u8>) -> Option<usize> {
        match self.inner.pubsub.0.publish(channel, bytes).await {
            Ok(receivers) => Some(receivers),
            Err(err) => {
                tracing::warn!(error = %err, "bus publish failed");
                None
            }
        }
    }

    /// Sends `event` (its payload already serialized) to every other instance, for the sockets
    /// of `users` there. `room` lets each instance leave out users it knows have left since.
    pub async fn deliver(
        &self,
        event: &str,
        users: &[Uuid],
        room: Option<RoomVersion>,
        payload: &RawValue,
    ) -> Result<(), BusError> {
        match self.prepare(event, users, room, payload)? {
            Some(publish) => self.publish_all(publish).await,
            None => Ok(()),
        }
    }

    /// The publishes that [`Bus::deliver`] makes, encoded, for whoever sends them (the history
    /// cache carries them in the same round trip as its push); `None` when no other instance
    /// hosts any of `users`.
    pub fn prepare(
        &self,
        event: &str,
        users: &[Uuid],
        room: Option<RoomVersion>,
        payload: &RawValue,
    ) -> Result<Option<Publish>, BusError> {
        let targets = self.inner.routes.targets(users);
        if targets == Targets::Only(Vec::new()) {
            return Ok(None);
        }
        let message = Wire::Deliver {
            from: self.keys.instance(),
            event,
            users: users.to_vec(),
            room,
            payload,
        };
        // Encoded once, whichever channels it goes to.
        let bytes = encode(&message).ok_or_else(|| BusError("unencodable delivery".into()))?;
        let metrics = &self.inner.metrics.0;
        let channels = match targets {
            Targets::Everyone => {
                inc(&metrics.bus_deliveries_to_everyone);
                vec![self.keys.bus_all()]
            }
            Targets::Only(instances) => {
                metrics
                    .bus_deliveries_targeted
                    .fetch_add(instances.len() as u64, Relaxed);
                instances
                    .iter()
                    .map(|instance| self.keys.bus_instance(instance))
                    .collect()
            }
        };
        Ok(Some(Publish { channels, bytes }))
    }

    /// Sends prepared publishes on the pub/sub connection.
    pub async fn publish_all(&self, publish: Publish) -> Result<(), BusError> {
        let mut failed = false;
        for channel in publish.channels {
            // Nobody listening (0) may be an instance that stopped, or a shard failing over;
            // routes to stopped instances are pruned by their lease.
            failed |= self.publish(channel, publish.bytes.clone()).await.is_none();
        }
        if failed {
            Err(BusError("publish failed".into()))
        } else {
            Ok(())
        }
    }

    /// Tells every other instance that a room's membership changed and waits (at most
    /// `APPLY_TIMEOUT`) until each has applied it.
    pub async fn members_changed(
        &self,
        room: Uuid,
        version: i64,
        members: Option<Vec<Uuid>>,
    ) -> Result<(), BusError> {
        let request = self.inner.next_request.fetch_add(1, Relaxed);
        let message = Wire::Members {
            from: self.keys.instance(),
            request,
            room,
            version,
            members,
        };
        if let Some(missing) = self.publish_and_wait(request, &message).await? {
            tracing::warn!(%room, missing, "instances did not confirm a membership change in time");
        }
        Ok(())
    }

    /// Publishes `message` (a request numbered `request`) to every instance and waits, at most
    /// `APPLY_TIMEOUT`, until each other instance has answered it; `Some(n)`: `n` did not.
    async fn publish_and_wait(
        &self,
        request: u64,
        message: &Wire<'_>,
    ) -> Result<Option<usize>, BusError> {
        let (wake, woken) = oneshot::channel();
        // Registered before publishing: an answer may come back before `send` returns.
        self.waiting().insert(
            request,
            Waiting {
                answered: 0,
                expected: None,
                wake: Some(wake),
            },
        );
        // The publish itself is bounded too: a Redis that stalls must not hold a handshake (or a
        // membership ack) for the client's whole command timeout.
        let published =
            tokio::time::timeout(APPLY_TIMEOUT, self.send(self.keys.bus_all(), message));
        let Ok(Some(receivers)) = published.await else {
            self.waiting().remove(&request);
            return Err(BusError("publish failed or timed out".into()));
        };
        {
            let mut waiting = self.waiting();
            if let Some(entry) = waiting.get_mut(&request) {
                // Every subscriber of the channel received it, this instance included.
                entry.expected = Some(receivers.saturating_sub(1));
                if entry.complete() {
                    waiting.remove(&request);
                    return Ok(None);
                }
            }
        }
        if tokio::time::timeout(APPLY_TIMEOUT, woken).await.is_err() {
            let missing = self
                .waiting()
                .remove(&request)
                .map_or(0, |w| w.expected.unwrap_or(0).saturating_sub(w.answered));
            return Ok(Some(missing));
        }
        Ok(None)
    }

    fn answered(&self, request: u64) {
        let mut waiting = self.waiting();
        let Some(entry) = waiting.get_mut(&request) else {
            return;
        };
        entry.answered += 1;
        if entry.complete() {
            if let Some(wake) = entry.wake.take() {
                let _ = wake.send(());
            }
            waiting.remove(&request);
        }
    }

    async fn receive(
        self,
        mut all: mpsc::Receiver<(String, Vec<u8>)>,
        mut mine: mpsc::Receiver<(String, Vec<u8>)>,
        mut reconnects: broadcast::Receiver<Server>,
        out: mpsc::Sender<Inbound>,
    ) {
        loop {
            let bytes = tokio::select! {
                Some((_, bytes)) = all.recv() => bytes,
                Some((_, bytes)) = mine.recv() => bytes,
                reconnected = reconnects.recv() => {
                    if let Err(broadcast::error::RecvError::Closed) = reconnected {
                        return;
                    }
                    self.inner.routes.set_complete(false);
                    tokio::spawn(self.clone().resync_routes());
                    let _ = out.try_send(Inbound::Reconnected);
                    continue;
                }
                else => return,
            };
            let message = match serde_json::from_slice::<Wire<'_>>(&bytes) {
                Ok(message) => message,
                Err(err) => {
                    tracing::warn!(error = %err, "unreadable bus message");
                    continue;
                }
            };
            let inbound = match message {
                Wire::Deliver { from, .. }
                | Wire::Members { from, .. }
                | Wire::Host { from, .. }
                | Wire::Hosts { from, .. }
                    if from == self.keys.instance() =>
                {
                    continue;
                }
                Wire::Applied { request } => {
                    self.answered(request);
                    continue;
                }
                Wire::Host {
                    from,
                    user,
                    version,
                    on,
                    request,
                } => {
                    self.inner.routes.heard(from, user, version, on);
                    if let Some(request) = request {
                        let bus = self.clone();
                        let to = bus.keys.bus_instance(from);
                        tokio::spawn(async move {
                            bus.send(to, &Wire::Applied { request }).await;
                        });
                    }
                    continue;
                }
                Wire::Hosts {
                    from,
                    version,
                    users,
                } => {
                    for user in users {
                        self.inner.routes.heard(from, user, version, true);
                    }
                    continue;
                }
                Wire::Deliver {
                    event,
                    users,
                    room,
                    payload,
                    ..
                } => Inbound::Deliver {
                    event: event.to_owned(),
                    users,
                    room,
                    payload: payload.to_owned(),
                },
                Wire::Members {
                    from,
                    request,
                    room,
                    version,
                    members,
                } => Inbound::Members {
                    room,
                    version,
                    members,
                    applied: Applied {
                        bus: Some(self.clone()),
                        to: from.to_owned(),
                        request,
                    },
                },
            };
            if out.try_send(inbound).is_err() {
                tracing::warn!("bus consumer is behind; a bus message was dropped");
            }
        }
    }
}
