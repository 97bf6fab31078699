//! `storm`: N users connect within T seconds, every connect broadcasting `user:online` to
//! everyone already online. Reports failures, the time until the servers settle (all connected
//! and no presence event for a quiet period) and the servers' CPU seconds for the whole storm.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::{EventCounts, hold, load::open_loop};
use crate::{
    context::{Common, ConnectStats, Ctx},
    sio::{self, Packet, Ws},
};

/// Options.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// Users connecting (one socket each).
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Seconds over which the connects are spread evenly.
    #[arg(long, default_value_t = 10.0)]
    within: f64,
    /// Settled = no presence event for this many seconds.
    #[arg(long, default_value_t = 1.0)]
    quiet: f64,
    /// Give up waiting for the storm to settle after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    max_settle: f64,
    /// Each socket sends `user:init` right after connecting, as the web client does.
    #[arg(long)]
    user_init: bool,
}

/// Runs the scenario.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let ctx = Ctx::new(&a.common)?;
    if ctx.users.len() < a.count {
        anyhow::bail!(
            "storm of {} users needs as many in the pool (have {})",
            a.count,
            ctx.users.len()
        );
    }
    ctx.wait_for_quiet_servers().await;
    let before = ctx.sample();
    let stats = Arc::new(ConnectStats::default());
    let counts = Arc::new(EventCounts::default());
    let init_ok = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = sio::now_us();
    let rate = a.count.max(1) as f64 / a.within.max(1e-3);
    open_loop(rate, a.count as u64, |k, _| {
        let i = k as usize;
        let ep = ctx.endpoint(i).clone();
        let source = ctx.source(i);
        let token = ctx.users[i].token.clone();
        let (stats, counts, stop, init_ok) = (
            stats.clone(),
            counts.clone(),
            stop_rx.clone(),
            init_ok.clone(),
        );
        let user_init = a.user_init;
        tokio::spawn(async move {
            let t0 = sio::now_us();
            let r = sio::connect_timeout(&ep, source, &token, Duration::from_secs(60)).await;
            stats.record(t0, &r);
            if let Ok(mut ws) = r {
                if user_init {
                    match init(&mut ws, &counts).await {
                        Some(()) => {
                            init_ok.fetch_add(1, Ordering::Relaxed);
                        }
                        None => return,
                    }
                }
                hold(ws, stop, counts).await;
            }
        });
        true
    })
    .await;
    let connects_started_secs = (sio::now_us() - started) as f64 / 1e6;
    let give_up = started + ((a.within + a.max_settle) * 1e6) as u64;
    let quiet_us = (a.quiet * 1e6) as u64;
    let mut timed_out = false;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = sio::now_us();
        let done = stats.ok.load(Ordering::Relaxed) + stats.failed() >= a.count;
        let inits_done =
            !a.user_init || init_ok.load(Ordering::Relaxed) as usize + stats.failed() >= a.count;
        let last = counts
            .last_event_us
            .load(Ordering::Relaxed)
            .max(stats.last_done_us.load(Ordering::Relaxed));
        if done && inits_done && now.saturating_sub(last) >= quiet_us {
            break;
        }
        if now >= give_up {
            timed_out = true;
            break;
        }
    }
    let after = ctx.sample();
    let last_activity = counts
        .last_event_us
        .load(Ordering::Relaxed)
        .max(stats.last_done_us.load(Ordering::Relaxed));
    let settle_secs = (last_activity.saturating_sub(started)) as f64 / 1e6;
    let ok = stats.ok.load(Ordering::Relaxed);
    let online = counts.online.load(Ordering::Relaxed);
    // Socket k (in connect order) can see the user:online of the N-1-k users after it.
    let ideal = (a.count as u64) * (a.count as u64).saturating_sub(1) / 2;
    let failed = stats.failed();
    let result = json!({
        "params": { "count": a.count, "within": a.within, "quiet": a.quiet, "user_init": a.user_init,
                    "source_ips": ctx.sources.len() },
        "connect": stats.to_json(),
        "failed": failed,
        "dropped": counts.dropped.load(Ordering::Relaxed),
        "timed_out": timed_out,
        "connects_started_secs": connects_started_secs,
        "settle_secs": settle_secs,
        "cpu_secs": after.cpu_secs - before.cpu_secs,
        "presence_events": online,
        "presence_events_ideal": ideal,
        "user_init_ok": init_ok.load(Ordering::Relaxed),
        "rss_after_bytes": after.rss_bytes,
    });
    eprintln!(
        "[{}] storm {} users in {} s: {} ok, {} failed; settled after {:.1} s{}; server CPU {:.2} s; presence events {} of ~{}",
        ctx.side,
        a.count,
        a.within,
        ok,
        failed,
        settle_secs,
        if timed_out { " (TIMED OUT)" } else { "" },
        after.cpu_secs - before.cpu_secs,
        online,
        ideal
    );
    ctx.emit("storm", result)?;
    let _ = stop_tx.send(true);
    Ok(())
}

/// Sends `user:init` and waits for its ack (counting presence events meanwhile).
async fn init(ws: &mut Ws, counts: &EventCounts) -> Option<()> {
    ws.send(sio::emit_with_ack(1, "user:init", "null"))
        .await
        .ok()?;
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => match sio::parse(t.as_str()) {
                    Packet::Ack(1, _) => return Some(()),
                    Packet::Ping => {
                        ws.send(sio::pong()).await.ok()?;
                    }
                    Packet::Event(body) if sio::event_name(body) == Some("user:online") => {
                        counts.online.fetch_add(1, Ordering::Relaxed);
                        counts
                            .last_event_us
                            .fetch_max(sio::now_us(), Ordering::Relaxed);
                    }
                    Packet::Close | Packet::Disconnect => return None,
                    _ => {}
                },
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .ok()
        .flatten()
}
