//! `connections`: N authenticated idle sockets opened at a given rate; connect latency,
//! failures, and the servers' resident memory per connection (VmRSS after minus before, each
//! the median of three samples, Node's after a full garbage collection: [`Ctx::settled_rss`]).

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use serde_json::json;
use tokio::sync::watch;

use super::{EventCounts, hold, load::open_loop};
use crate::{
    context::{Common, ConnectStats, Ctx},
    sio,
};

/// Options.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// Sockets to open.
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Connect attempts started per second.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Use only the first K users of the pool (socket i is user i % K): several sockets per
    /// user (tabs) keep the N²/2 presence fan-out of a connect wave manageable.
    #[arg(long)]
    users_limit: Option<usize>,
    /// Seconds to wait after the last connect before measuring memory.
    #[arg(long, default_value_t = 5.0)]
    settle_secs: f64,
}

/// Runs the scenario.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let ctx = Ctx::new(&a.common)?;
    ctx.wait_for_quiet_servers().await;
    let distinct_users = a
        .users_limit
        .unwrap_or(usize::MAX)
        .min(ctx.users.len())
        .min(a.count)
        .max(1);
    let (rss_before_sum, rss_before) = ctx.settled_rss().await;
    let before = ctx.sample();
    let stats = Arc::new(ConnectStats::default());
    let counts = Arc::new(EventCounts::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = sio::now_us();
    let mut tasks = Vec::with_capacity(a.count);
    open_loop(a.rate.max(1.0), a.count as u64, |k, _| {
        let i = k as usize;
        let ep = ctx.endpoint(i).clone();
        let source = ctx.source(i);
        let token = ctx.users[i % distinct_users].token.clone();
        let (stats, counts, stop) = (stats.clone(), counts.clone(), stop_rx.clone());
        tasks.push(tokio::spawn(async move {
            let t0 = sio::now_us();
            let r = sio::connect_timeout(&ep, source, &token, Duration::from_secs(30)).await;
            stats.record(t0, &r);
            if let Ok(ws) = r {
                hold(ws, stop, counts).await;
            }
        }));
        true
    })
    .await;
    // Wait for every attempt to finish.
    while stats.ok.load(Ordering::Relaxed) + stats.failed() < a.count {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connect_secs = (sio::now_us() - started) as f64 / 1e6;
    // Presence broadcasts of the connect wave must be over before memory is read.
    tokio::time::sleep(Duration::from_secs_f64(a.settle_secs)).await;
    ctx.wait_for_quiet_servers().await;
    // CPU first: the collections asked of Node while sampling memory are not the connect wave's.
    let after = ctx.sample();
    let (rss_after_sum, rss_after) = ctx.settled_rss().await;
    let established = stats.ok.load(Ordering::Relaxed);
    let still_open = established as u64 - counts.dropped.load(Ordering::Relaxed);
    let delta = rss_after_sum as i64 - rss_before_sum as i64;
    let per_conn = if still_open > 0 {
        delta as f64 / still_open as f64
    } else {
        0.0
    };
    let result = json!({
        "params": { "count": a.count, "rate": a.rate, "users": distinct_users,
                    "sockets_per_user": a.count as f64 / distinct_users as f64,
                    "source_ips": ctx.sources.len() },
        "connect": stats.to_json(),
        "connect_secs": connect_secs,
        "open_at_measurement": still_open,
        "rss_before_bytes": rss_before_sum,
        "rss_after_bytes": rss_after_sum,
        "rss_sampling": "median of 3 samples 0.5 s apart, Node after a full GC each",
        "rss_before_each": rss_before,
        "rss_after_each": rss_after,
        "rss_per_connection_bytes": per_conn.round(),
        "cpu_secs": after.cpu_secs - before.cpu_secs,
        "presence_events": counts.online.load(Ordering::Relaxed),
    });
    eprintln!(
        "[{}] connections: {}/{} ok ({} failed) in {:.1} s; connect p50 {} ms p99 {} ms; RSS {:.1} -> {:.1} MiB = {:.0} bytes/connection",
        ctx.side,
        established,
        a.count,
        stats.failed(),
        connect_secs,
        result["connect"]["latency_ms"]["p50"],
        result["connect"]["latency_ms"]["p99"],
        rss_before_sum as f64 / 1048576.0,
        rss_after_sum as f64 / 1048576.0,
        per_conn
    );
    ctx.emit("connections", result)?;
    let _ = stop_tx.send(true);
    drop(tasks);
    Ok(())
}
