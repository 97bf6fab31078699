//! A fleet of connected sockets driven by commands, for the Part 3 scenarios (rooms, read,
//! typing): each socket task writes the frames it is told to, correlates acks with the ledger
//! entries they belong to, and hands every event to the scenario's [`Handler`], which may answer
//! at once (a reader marking a message read the moment it arrives).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    context::{ConnectStats, Ctx, connect_many},
    sio::{self, Packet, Ws},
};

/// A frame for a socket to send: `event` with a JSON payload, asking for an ack when `ack`
/// names what it acknowledges (a kind chosen by the scenario and a ledger slot).
pub struct Emit {
    /// Event name.
    pub event: &'static str,
    /// The payload (a JSON value).
    pub json: String,
    /// What the ack is for, if one is asked.
    pub ack: Option<(u8, u32)>,
}

/// What a scenario does with what its sockets receive.
pub trait Handler: Send + Sync + 'static {
    /// Per-socket state (e.g. what this socket already received, for duplicates).
    type State: Default + Send + 'static;
    /// An event `body` (`["name", ...]`) arrived at socket `socket` at `now_us`; may answer.
    fn event(&self, socket: u32, state: &mut Self::State, body: &str, now_us: u64) -> Option<Emit>;
    /// The ack of an [`Emit`] tagged `tag` arrived with argument array `body`.
    fn ack(&self, socket: u32, state: &mut Self::State, tag: (u8, u32), body: &str, now_us: u64);
}

/// The connected sockets and their command channels.
pub struct Fleet {
    /// Socket `i`'s commands.
    pub txs: Vec<mpsc::UnboundedSender<Emit>>,
    /// Turns true at the end: tasks close their sockets.
    pub stop: watch::Sender<bool>,
    /// How the connects went.
    pub connect: Arc<ConnectStats>,
    /// Socket tasks that ended before the stop signal (server closed or socket failed).
    pub closed: Arc<AtomicU64>,
}

impl Fleet {
    /// Tells socket `i` to send `emit` (ignored if the socket is gone).
    pub fn send(&self, i: usize, emit: Emit) {
        let _ = self.txs[i].send(emit);
    }
}

/// Connects one socket per user of `ctx` (socket `i` is user `i`, on endpoint `i % instances`);
/// fails when any connect fails. `setup` gets the raw sockets before their tasks start (room
/// creation and the like, with [`call`]).
pub async fn start<H: Handler>(
    ctx: &Ctx,
    n: usize,
    handler: Arc<H>,
    setup: impl AsyncFnOnce(&mut [Ws]) -> anyhow::Result<()>,
) -> anyhow::Result<Fleet> {
    if ctx.users.len() < n {
        bail!("need {n} users in the pool, have {}", ctx.users.len());
    }
    let connect = Arc::new(ConnectStats::default());
    let sockets = connect_many(ctx, n, 64, connect.clone()).await;
    if connect.failed() > 0 {
        bail!(
            "{} of {n} sockets failed to connect: {:?}",
            connect.failed(),
            connect.failures.lock().unwrap()
        );
    }
    let mut sockets: Vec<Ws> = sockets.into_iter().map(|s| s.expect("connected")).collect();
    setup(&mut sockets).await?;
    let (stop, stop_rx) = watch::channel(false);
    let closed = Arc::new(AtomicU64::new(0));
    let mut txs = Vec::with_capacity(n);
    for (i, ws) in sockets.into_iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel();
        let (handler, stop_rx, closed) = (handler.clone(), stop_rx.clone(), closed.clone());
        tokio::spawn(async move {
            let stopped = stop_rx.clone();
            socket_loop(ws, i as u32, handler, rx, stop_rx).await;
            if !*stopped.borrow() {
                closed.fetch_add(1, Ordering::Relaxed);
            }
        });
        txs.push(tx);
    }
    Ok(Fleet {
        txs,
        stop,
        connect,
        closed,
    })
}

async fn socket_loop<H: Handler>(
    mut ws: Ws,
    idx: u32,
    handler: Arc<H>,
    mut cmds: mpsc::UnboundedReceiver<Emit>,
    mut stop: watch::Receiver<bool>,
) {
    let mut state = H::State::default();
    let mut pending: HashMap<u64, (u8, u32)> = HashMap::new();
    let mut next_ack: u64 = 1;
    let mut batch = Vec::with_capacity(64);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            n = cmds.recv_many(&mut batch, 64) => {
                if n == 0 {
                    break;
                }
                for emit in batch.drain(..) {
                    if feed(&mut ws, &mut pending, &mut next_ack, emit).await.is_err() {
                        return;
                    }
                }
                if ws.flush().await.is_err() {
                    return;
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let now = sio::now_us();
                    match sio::parse(t.as_str()) {
                        Packet::Ping if ws.send(sio::pong()).await.is_err() => return,
                        Packet::Ack(id, body) => {
                            if let Some(tag) = pending.remove(&id) {
                                handler.ack(idx, &mut state, tag, body, now);
                            }
                        }
                        Packet::Event(body) => {
                            if let Some(answer) = handler.event(idx, &mut state, body, now)
                                && (feed(&mut ws, &mut pending, &mut next_ack, answer).await.is_err()
                                    || ws.flush().await.is_err())
                            {
                                return;
                            }
                        }
                        Packet::Close | Packet::Disconnect => return,
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                _ => return,
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_millis(200), ws.close(None)).await;
}

async fn feed(
    ws: &mut Ws,
    pending: &mut HashMap<u64, (u8, u32)>,
    next_ack: &mut u64,
    emit: Emit,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let frame = match emit.ack {
        Some(tag) => {
            let id = *next_ack;
            *next_ack += 1;
            pending.insert(id, tag);
            sio::emit_with_ack(id, emit.event, &emit.json)
        }
        None => Message::text(format!("42[\"{}\",{}]", emit.event, emit.json)),
    };
    ws.feed(frame).await
}

/// Sends `event` with `json` on a raw socket and waits (up to 30 s, answering pings and
/// skipping other events) for its ack; returns the ack's argument array, or an error for an
/// error ack.
pub async fn call(ws: &mut Ws, id: u64, event: &str, json: &str) -> anyhow::Result<String> {
    ws.send(sio::emit_with_ack(id, event, json))
        .await
        .with_context(|| format!("sending {event}"))?;
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => match sio::parse(t.as_str()) {
                    Packet::Ack(got, body) if got == id => return Ok(body.to_owned()),
                    Packet::Ping => {
                        ws.send(sio::pong()).await?;
                    }
                    Packet::Close | Packet::Disconnect => bail!("socket closed"),
                    _ => {}
                },
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => bail!("socket closed"),
            }
        }
    };
    let body = tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .with_context(|| format!("{event}: no ack within 30 s"))??;
    if body.starts_with("[{\"error\"") {
        bail!(
            "{event} failed: {}",
            body.chars().take(200).collect::<String>()
        );
    }
    Ok(body)
}

/// Reads every instance's Prometheus `name` (summed); None when no endpoint serves it (the
/// baseline has no /metrics).
pub async fn metric_sum(ctx: &Ctx, name: &str) -> Option<f64> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let mut total = None;
    for ep in &ctx.endpoints {
        let Ok(resp) = client.get(format!("{}/metrics", ep.base)).send().await else {
            continue;
        };
        if !resp.status().is_success() {
            continue;
        }
        let text = resp.text().await.unwrap_or_default();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            if parts.next() == Some(name)
                && let Some(v) = parts.next().and_then(|v| v.parse::<f64>().ok())
            {
                *total.get_or_insert(0.0) += v;
            }
        }
    }
    total
}
