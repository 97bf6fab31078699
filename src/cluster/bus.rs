//! The cluster bus: our own messages between instances, on sharded pub/sub beside the adapter's.
//! It carries deliveries (an event for the sockets of some users, decided on the sending
//! instance and emitted by each instance to its own sockets, so that a socket that cannot take
//! it is found where it is) and membership changes, which every live instance applies before the
//! change is acknowledged.
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

use fred::types::config::Server;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{broadcast, mpsc, oneshot};
use uuid::Uuid;

use super::{Keys, pubsub::Pubsub};

/// Longest a membership change waits for the other instances to apply it. An instance that has
/// not answered by then is stalled or dead (its lease will say which); the change is committed
/// and applied everywhere else, so the caller is not held up longer.
const APPLY_TIMEOUT: Duration = Duration::from_secs(2);
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
    /// A `Members` request was applied.
    Applied { request: u64 },
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

/// A bus failure: nothing was sent.
#[derive(Debug, thiserror::Error)]
#[error("cluster bus: {0}")]
pub struct BusError(String);

/// This instance's end of the bus; cheap to clone.
#[derive(Clone, Debug)]
pub struct Bus {
    inner: Arc<Inner>,
    keys: Keys,
}

#[derive(Debug)]
struct Inner {
    pubsub: PubsubHandle,
    next_request: AtomicU64,
    /// Membership changes waiting for answers.
    waiting: Mutex<HashMap<u64, Waiting>>,
}

/// One membership change waiting for the other instances.
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
        keys: Keys,
        reconnects: broadcast::Receiver<Server>,
    ) -> anyhow::Result<(Bus, mpsc::Receiver<Inbound>)> {
        let all = pubsub.subscribe(keys.bus_all(), INBOUND_QUEUE).await?;
        let mine = pubsub
            .subscribe(keys.bus_instance(keys.instance()), INBOUND_QUEUE)
            .await?;
        let bus = Bus {
            inner: Arc::new(Inner {
                pubsub: PubsubHandle(pubsub),
                next_request: AtomicU64::new(1),
                waiting: Mutex::default(),
            }),
            keys,
        };
        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
        tokio::spawn(bus.clone().receive(all, mine, reconnects, tx));
        Ok((bus, rx))
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiting>> {
        self.inner.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn send(&self, channel: String, message: &Wire<'_>) -> Option<usize> {
        let bytes = match serde_json::to_vec(message) {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::error!(error = %err, "could not encode a bus message");
                return None;
            }
        };
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
        let message = Wire::Deliver {
            from: self.keys.instance(),
            event,
            users: users.to_vec(),
            room,
            payload,
        };
        match self.send(self.keys.bus_all(), &message).await {
            Some(_) => Ok(()),
            None => Err(BusError("publish failed".into())),
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
        let message = Wire::Members {
            from: self.keys.instance(),
            request,
            room,
            version,
            members,
        };
        let Some(receivers) = self.send(self.keys.bus_all(), &message).await else {
            self.waiting().remove(&request);
            return Err(BusError("publish failed".into()));
        };
        {
            let mut waiting = self.waiting();
            if let Some(entry) = waiting.get_mut(&request) {
                // Every subscriber of the channel received it, this instance included.
                entry.expected = Some(receivers.saturating_sub(1));
                if entry.complete() {
                    waiting.remove(&request);
                    return Ok(());
                }
            }
        }
        if tokio::time::timeout(APPLY_TIMEOUT, woken).await.is_err() {
            let missing = self
                .waiting()
                .remove(&request)
                .map_or(0, |w| w.expected.unwrap_or(0).saturating_sub(w.answered));
            tracing::warn!(%room, missing, "instances did not confirm a membership change in time");
        }
        Ok(())
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
                Wire::Deliver { from, .. } | Wire::Members { from, .. }
                    if from == self.keys.instance() =>
                {
                    continue;
                }
                Wire::Applied { request } => {
                    self.answered(request);
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
