//! `dm` and `ramp`: users exchange direct messages at a fixed open-loop rate, sender and
//! receiver on different instances. Each message carries its intended send time (µs on the
//! process clock) in its content, so delivery latency is measured at the receiver from the time
//! the message *should* have left — a slow generator or server shows up as latency, never as a
//! lower offered rate (no coordinated omission).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU8, AtomicU32, Ordering},
    },
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use super::load::{Ledger, WARMUP, cpu_per_thousand, open_loop, stamp_slot};
use crate::{
    context::{Common, ConnectStats, Ctx, connect_many},
    pgstat, redisstat,
    sio::{self, Packet, Ws},
    stats,
};

/// Options of `dm`.
#[derive(Debug, clap::Args)]
pub struct DmArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    shape: Shape,
    /// Messages per second, all senders together.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds sent at the same rate before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// The side's database, to report PostgreSQL's CPU and writes (optional).
    #[arg(long)]
    database_url: Option<String>,
    /// The Redis the side uses, to report Redis's CPU over the measured period (optional; the
    /// whole Redis server is counted, so nothing else should be using it meanwhile).
    #[arg(long)]
    redis_url: Option<String>,
}

/// Options of `ramp`.
#[derive(Debug, clap::Args)]
pub struct RampArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    shape: Shape,
    /// First rate, messages per second.
    #[arg(long, default_value_t = 500.0)]
    start: f64,
    /// Each step multiplies the rate by this.
    #[arg(long, default_value_t = 1.5)]
    factor: f64,
    /// Highest rate tried.
    #[arg(long, default_value_t = 100_000.0)]
    max: f64,
    /// Seconds per step.
    #[arg(long, default_value_t = 5.0)]
    step_secs: f64,
    /// A failed step is run again this many times (0 or 1) before it counts as failed.
    #[arg(long, default_value_t = 1)]
    retries: u32,
    /// When the first step fails, rates are halved down to this one.
    #[arg(long, default_value_t = 25.0)]
    min_rate: f64,
    /// After the first failed step, this many more steps bisect (geometrically) between the last
    /// rate that passed and the lowest that failed, so the result is not quantised to `factor`
    /// (two steps at factor 1.5: within 11%).
    #[arg(long, default_value_t = 2)]
    refine: u32,
    /// A step passes while p99 delivery stays at or below this many milliseconds.
    #[arg(long, default_value_t = 50.0)]
    p99_bound_ms: f64,
}

/// What both share.
#[derive(Debug, Clone, clap::Args)]
struct Shape {
    /// Users (one socket each); user i sends to user i+1, which is on the next instance.
    #[arg(long, default_value_t = 100)]
    senders: usize,
    /// Bytes of padding in each message's content (after the stamp).
    #[arg(long, default_value_t = 64)]
    content_bytes: usize,
    /// Seconds to wait after the last send for outstanding acks and deliveries.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
}

/// Who sends and receives one message (index = ledger slot, also embedded in the content).
#[derive(Default)]
struct Route {
    sender: AtomicU32,
    receiver: AtomicU32,
    /// Copies delivered to the sender's own socket.
    echoed: AtomicU8,
}

/// Shared by the scheduler and every socket task: the common ledger plus each message's route.
struct Tracker {
    ledger: Ledger,
    routes: Vec<Route>,
}

impl Tracker {
    fn new(capacity: usize, phases: usize) -> Tracker {
        Tracker {
            ledger: Ledger::new(capacity, phases),
            routes: (0..capacity).map(|_| Route::default()).collect(),
        }
    }
}

/// Commands to a socket task: send the message of this slot.
type Cmd = u32;

struct SocketCtx {
    idx: u32,
    tracker: Arc<Tracker>,
    peer_ids: Arc<Vec<String>>,
    padding: Arc<str>,
    run_tag: Arc<str>,
}

async fn socket_task(
    ws: Ws,
    sc: SocketCtx,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    stop: watch::Receiver<bool>,
) {
    let tracker = sc.tracker.clone();
    let stopped = stop.clone();
    socket_loop(ws, sc, cmds, stop).await;
    if !*stopped.borrow() {
        tracker.ledger.closed.fetch_add(1, Ordering::Relaxed);
    }
}

async fn socket_loop(
    mut ws: Ws,
    sc: SocketCtx,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    mut stop: watch::Receiver<bool>,
) {
    let mut pending: HashMap<u64, u32> = HashMap::new();
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
                for slot in batch.drain(..) {
                    let s = &sc.tracker.routes[slot as usize];
                    let receiver = &sc.peer_ids[s.receiver.load(Ordering::Relaxed) as usize];
                    let json = format!(
                        "{{\"receiverId\":\"{receiver}\",\"content\":\"bench {slot} {} {}\",\"clientMsgId\":\"{}-{slot}\"}}",
                        sc.tracker.ledger.intended_us(slot).unwrap_or(0),
                        sc.padding,
                        sc.run_tag
                    );
                    pending.insert(next_ack, slot);
                    if ws.feed(sio::emit_with_ack(next_ack, "message:send", &json)).await.is_err() {
                        return;
                    }
                    next_ack += 1;
                }
                if ws.flush().await.is_err() {
                    return;
                }
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if !on_frame(&mut ws, &sc, &mut pending, t.as_str()).await {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                _ => return,
            }
        }
    }
}

/// Handles one incoming frame; false when the socket is unusable.
async fn on_frame(
    ws: &mut Ws,
    sc: &SocketCtx,
    pending: &mut HashMap<u64, u32>,
    text: &str,
) -> bool {
    let now = sio::now_us();
    match sio::parse(text) {
        Packet::Ping => return ws.send(sio::pong()).await.is_ok(),
        Packet::Ack(id, body) => {
            if let Some(slot) = pending.remove(&id) {
                sc.tracker.ledger.ack(slot, body, now);
            }
        }
        Packet::Event(body) => {
            if sio::event_name(body) != Some("message:new") {
                return true;
            }
            let Some(slot) = stamp_slot(body).filter(|&s| sc.tracker.ledger.is_claimed(s)) else {
                return true;
            };
            let s = &sc.tracker.routes[slot as usize];
            if s.receiver.load(Ordering::Relaxed) == sc.idx {
                let ledger = &sc.tracker.ledger;
                ledger.deliver(slot, now, ledger.delivered(slot) > 0);
            } else if s.sender.load(Ordering::Relaxed) == sc.idx {
                s.echoed.fetch_add(1, Ordering::Relaxed);
            }
        }
        Packet::Close | Packet::Disconnect => return false,
        _ => {}
    }
    true
}

/// The connected senders and their command channels.
struct Fleet {
    txs: Vec<mpsc::UnboundedSender<Cmd>>,
    tracker: Arc<Tracker>,
    stop: watch::Sender<bool>,
    connect: Arc<ConnectStats>,
}

async fn start_fleet(
    ctx: &Ctx,
    shape: &Shape,
    capacity: usize,
    phases: usize,
) -> anyhow::Result<Fleet> {
    let n = shape.senders.max(2);
    if ctx.users.len() < n {
        anyhow::bail!("need {n} users in the pool, have {}", ctx.users.len());
    }
    let tracker = Arc::new(Tracker::new(capacity, phases));
    let connect = Arc::new(ConnectStats::default());
    let sockets = connect_many(ctx, n, 64, connect.clone()).await;
    if connect.failed() > 0 {
        anyhow::bail!(
            "{} of {n} sockets failed to connect: {:?}",
            connect.failed(),
            connect.failures.lock().unwrap()
        );
    }
    let peer_ids: Arc<Vec<String>> =
        Arc::new(ctx.users[..n].iter().map(|u| u.id.clone()).collect());
    let padding: Arc<str> = "x".repeat(shape.content_bytes).into();
    let run_tag: Arc<str> = format!("{:08x}", rand::random::<u32>()).into();
    let (stop, stop_rx) = watch::channel(false);
    let mut txs = Vec::with_capacity(n);
    for (i, ws) in sockets.into_iter().enumerate() {
        let (tx, rx) = mpsc::unbounded_channel();
        let sc = SocketCtx {
            idx: i as u32,
            tracker: tracker.clone(),
            peer_ids: peer_ids.clone(),
            padding: padding.clone(),
            run_tag: run_tag.clone(),
        };
        tokio::spawn(socket_task(
            ws.expect("all connected"),
            sc,
            rx,
            stop_rx.clone(),
        ));
        txs.push(tx);
    }
    Ok(Fleet {
        txs,
        tracker,
        stop,
        connect,
    })
}

impl Fleet {
    /// Offers `rate` messages per second for `secs`, stamping each with its intended time;
    /// returns the range of ledger slots used.
    async fn offer(&self, rate: f64, secs: f64, phase: u32) -> (u64, u64) {
        let n = self.txs.len() as u64;
        let total = (rate * secs).round() as u64;
        let ledger = &self.tracker.ledger;
        let first_slot = ledger.len();
        open_loop(rate, total, |_, intended| {
            let Some(slot) = ledger.claim(intended, phase, 1) else {
                return false;
            };
            let sender = u64::from(slot) % n;
            let receiver = (sender + 1) % n;
            let s = &self.tracker.routes[slot as usize];
            s.sender.store(sender as u32, Ordering::Relaxed);
            s.receiver.store(receiver as u32, Ordering::Relaxed);
            let _ = self.txs[sender as usize].send(slot);
            true
        })
        .await;
        (first_slot, ledger.len())
    }

    /// Waits until every slot so far is acked and delivered, or `drain` seconds pass.
    async fn drain(&self, drain: f64) {
        self.tracker.ledger.drain(drain, true).await;
    }

    /// Counts and histograms of slots `from..to` in `phase`.
    fn phase_result(&self, phase: u32, from: u64, to: u64, started_us: u64) -> Value {
        let ledger = &self.tracker.ledger;
        let mut r = ledger.tally(phase, from, to, started_us).to_json();
        let mut lost_samples = Vec::new();
        let mut echoes = 0u64;
        for slot in from..to {
            let route = &self.tracker.routes[slot as usize];
            echoes += u64::from(route.echoed.load(Ordering::Relaxed));
            if lost_samples.len() < 10 && ledger.lost_in(slot, slot + 1) > 0 {
                lost_samples.push(json!({
                    "slot": slot,
                    "sender": route.sender.load(Ordering::Relaxed),
                    "receiver": route.receiver.load(Ordering::Relaxed),
                    "echoed_to_sender": route.echoed.load(Ordering::Relaxed),
                    "intended_us": ledger.intended_us(slot as u32),
                }));
            }
        }
        let obj = r.as_object_mut().expect("object");
        obj.insert("lost_samples".into(), json!(lost_samples));
        obj.insert(
            "sockets_closed".into(),
            json!(ledger.closed.load(Ordering::Relaxed)),
        );
        obj.insert("sender_echoes".into(), json!(echoes));
        r
    }
}

/// Runs `dm`.
pub async fn run_dm(a: DmArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(&a.common)?;
    for url in a.database_url.iter().chain(&a.redis_url) {
        redisstat::check_loopback_url(url)?;
    }
    let capacity = (a.rate * (a.duration + a.warmup) * 1.05) as usize + 1000;
    let fleet = start_fleet(&ctx, &a.shape, capacity, 1).await?;
    ctx.wait_for_quiet_servers().await;
    fleet.offer(a.rate, a.warmup, WARMUP).await;
    let pg_before = a.database_url.as_deref().and_then(pgstat::sample);
    let redis_before = a.redis_url.as_deref().and_then(redisstat::cpu_secs);
    let before = ctx.sample();
    let started = sio::now_us();
    let (from, to) = fleet.offer(a.rate, a.duration, 0).await;
    fleet.drain(a.shape.drain).await;
    let after = ctx.sample();
    let redis_after = a.redis_url.as_deref().and_then(redisstat::cpu_secs);
    let mut r = fleet.phase_result(0, from, to, started);
    let acked = r["acked"].as_u64().unwrap_or(0);
    let cpu = after.cpu_secs - before.cpu_secs;
    let pg = match (&a.database_url, &pg_before) {
        (Some(url), Some(b)) => pgstat::delta(url, b).await,
        _ => None,
    };
    let redis_cpu = redis_before
        .zip(redis_after)
        .map(|(start, end)| (end - start).max(0.0));
    let lost_all = fleet.tracker.ledger.lost_in(0, to);
    let obj = r.as_object_mut().expect("object");
    obj.insert(
        "params".into(),
        json!({
            "rate": a.rate, "duration": a.duration, "warmup": a.warmup, "senders": fleet.txs.len(),
            "content_bytes": a.shape.content_bytes,
        }),
    );
    obj.insert("cpu_secs".into(), json!(cpu));
    obj.insert(
        "cpu_secs_per_1k".into(),
        json!(cpu_per_thousand(cpu, acked)),
    );
    obj.insert("lost_including_warmup".into(), json!(lost_all));
    obj.insert("connect".into(), fleet.connect.to_json());
    obj.insert("rss_after_bytes".into(), json!(after.rss_bytes));
    if let Some(mut pg) = pg {
        let per_1k = cpu_per_thousand(pg["cpu_secs"].as_f64().unwrap_or(0.0), acked);
        pg["cpu_secs_per_1k"] = json!(per_1k);
        obj.insert("postgres".into(), pg);
    }
    if let Some(c) = redis_cpu {
        obj.insert(
            "redis".into(),
            json!({ "cpu_secs": c, "cpu_secs_per_1k": cpu_per_thousand(c, acked) }),
        );
    }
    eprintln!(
        "[{}] dm {} msg/s x {} s on {} instances: sent {} acked {} delivered {} lost {} dup {}; delivery p50 {} p99 {} p99.9 {} max {} ms; ack p99 {} ms; CPU {:.3} s/1k msgs (PostgreSQL {}, Redis {})",
        ctx.side,
        a.rate,
        a.duration,
        ctx.endpoints.len(),
        r["sent"],
        r["acked"],
        r["delivered"],
        r["lost"],
        r["duplicated"],
        r["delivery_ms"]["p50"],
        r["delivery_ms"]["p99"],
        r["delivery_ms"]["p999"],
        r["delivery_ms"]["max"],
        r["ack_ms"]["p99"],
        r["cpu_secs_per_1k"].as_f64().unwrap_or(0.0),
        r["postgres"]["cpu_secs_per_1k"],
        r["redis"]["cpu_secs_per_1k"]
    );
    ctx.emit("dm", r)?;
    let _ = fleet.stop.send(true);
    Ok(())
}

/// The geometric middle of two rates, if it differs from both once rounded.
fn midpoint(lo: f64, hi: f64) -> Option<f64> {
    let mid = (lo * hi).sqrt().round();
    (mid > lo && mid < hi).then_some(mid)
}

/// Runs `ramp`.
pub async fn run_ramp(a: RampArgs) -> anyhow::Result<()> {
    let ctx = Ctx::new(&a.common)?;
    let mut rates = Vec::new();
    let mut r = a.start;
    while r <= a.max * 1.0001 {
        rates.push(r.round());
        r *= a.factor.max(1.01);
    }
    // Rates below the start are only tried (halving) when the first step fails.
    let capacity = rates
        .iter()
        .map(|r| (r * a.step_secs * 1.05) as usize + 100)
        .sum::<usize>()
        * 2
        + (a.start * a.step_secs * 2.1) as usize
        + 1000;
    let max_phases = 2 * rates.len() + 16;
    let fleet = start_fleet(&ctx, &a.shape, capacity, max_phases).await?;
    let mut steps = Vec::new();
    let mut best: Option<f64> = None;
    let mut stopped_by = String::from("max rate reached");
    let mut next = 0usize;
    let mut rate = a.start.round();
    let mut probing_down = false;
    let mut retried: Option<f64> = None;
    // (highest rate that passed, lowest that failed, bisection steps left) once a step failed.
    let mut bisect: Option<(f64, f64, u32)> = None;
    for i in 0..max_phases {
        ctx.wait_for_quiet_servers().await;
        let before = ctx.sample();
        let started = sio::now_us();
        let (from, to) = fleet.offer(rate, a.step_secs, i as u32).await;
        fleet.drain(a.shape.drain).await;
        let after = ctx.sample();
        let mut step = fleet.phase_result(i as u32, from, to, started);
        let p99 = stats::pick(&step["delivery_ms"], "p99").unwrap_or(f64::INFINITY);
        let lost = step["lost"].as_u64().unwrap_or(0);
        let errors = step["ack_errors"].as_u64().unwrap_or(0);
        let acked = step["acked"].as_u64().unwrap_or(0);
        let cpu = after.cpu_secs - before.cpu_secs;
        let pass = p99 <= a.p99_bound_ms && lost == 0 && errors == 0 && to - from > 0;
        let obj = step.as_object_mut().expect("object");
        obj.insert("offered_per_sec".into(), json!(rate));
        obj.insert("pass".into(), json!(pass));
        obj.insert("cpu_secs".into(), json!(cpu));
        obj.insert(
            "cpu_secs_per_1k".into(),
            json!(cpu_per_thousand(cpu, acked)),
        );
        obj.remove("delivery_cdf");
        eprintln!(
            "[{}] ramp step {rate} msg/s: delivered {}/{} ({}/s), lost {lost}, errors {errors}, p99 {p99} ms, CPU {:.2} s -> {}",
            ctx.side,
            step["delivered"],
            step["sent"],
            step["delivered_per_sec"],
            cpu,
            if pass { "pass" } else { "FAIL" }
        );
        steps.push(step);
        if pass {
            best = Some(best.map_or(rate, |b: f64| b.max(rate)));
        } else {
            // One bad step can be a hiccup of a shared machine: a failed rate is tried once more.
            if retried != Some(rate) && a.retries > 0 {
                retried = Some(rate);
                eprintln!("[{}] ramp: retrying {rate} msg/s once", ctx.side);
                continue;
            }
            if !probing_down {
                stopped_by = if lost > 0 {
                    format!("{lost} messages lost at {rate} msg/s")
                } else if errors > 0 {
                    format!("{errors} error acks at {rate} msg/s")
                } else {
                    format!(
                        "p99 delivery {p99} ms > {} ms at {rate} msg/s",
                        a.p99_bound_ms
                    )
                };
            }
        }
        // Bisecting: move the bound this step settled, then try the middle of what is left.
        if let Some((lo, hi, left)) = bisect {
            let (lo, hi) = if pass { (rate, hi) } else { (lo, rate) };
            match midpoint(lo, hi) {
                Some(mid) if left > 0 => {
                    bisect = Some((lo, hi, left - 1));
                    rate = mid;
                    continue;
                }
                _ => break,
            }
        }
        if pass {
            if probing_down {
                break;
            }
            next += 1;
            match rates.get(next) {
                Some(&r) => rate = r,
                None => {
                    stopped_by = "max rate reached".into();
                    break;
                }
            }
        } else {
            // Nothing passed yet: halve the rate to find what is sustainable at all.
            if best.is_none() && (rate / 2.0).round() >= a.min_rate {
                probing_down = true;
                rate = (rate / 2.0).round();
                continue;
            }
            // Narrow the gap between the last rate that passed and this one.
            if let (Some(lo), false, true) = (best, probing_down, a.refine > 0)
                && let Some(mid) = midpoint(lo, rate)
            {
                bisect = Some((lo, rate, a.refine - 1));
                rate = mid;
                continue;
            }
            break;
        }
    }
    if best.is_none() {
        stopped_by = format!("{stopped_by}; nothing passed down to {} msg/s", rate);
    }
    let result = json!({
        "params": { "start": a.start, "factor": a.factor, "max": a.max, "step_secs": a.step_secs,
                    "p99_bound_ms": a.p99_bound_ms, "min_rate": a.min_rate, "retries": a.retries, "refine": a.refine, "senders": fleet.txs.len(),
                    "content_bytes": a.shape.content_bytes },
        "max_sustainable_per_sec": best,
        "stopped_by": stopped_by,
        "steps": steps,
    });
    eprintln!(
        "[{}] ramp: max sustainable {:?} msg/s ({stopped_by})",
        ctx.side, best
    );
    ctx.emit("ramp", result)?;
    let _ = fleet.stop.send(true);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bisection_narrows_between_a_pass_and_a_fail() {
        assert_eq!(midpoint(7689.0, 11533.0), Some(9417.0));
        assert_eq!(midpoint(100.0, 101.0), None);
    }
}
