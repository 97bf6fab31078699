//! What every scenario shares: the targets, the observed server processes, the user pool,
//! source addresses, and where results go.

use std::{
    io::Write,
    net::IpAddr,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use clap::Args;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::{
    procstat,
    sio::{self, ConnectError, Endpoint, Ws},
    stats,
    users::{self, BenchUser},
};

/// Options common to every scenario.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Server base URLs (comma separated); sockets are spread over them round-robin.
    #[arg(long, value_delimiter = ',', required = true)]
    pub urls: Vec<String>,
    /// PIDs of the server processes, for RSS and CPU (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub pids: Vec<u32>,
    /// Which side this run measures (a label: "nexus" or "node").
    #[arg(long, default_value = "nexus")]
    pub side: String,
    /// User pool written by `nexus-bench users`.
    #[arg(long)]
    pub users: PathBuf,
    /// Number of loopback source addresses (127.0.0.1, .2, ...) sockets are spread over.
    #[arg(long, default_value_t = 1)]
    pub source_ips: usize,
    /// Append the JSON result line to this file.
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// A free-form tag stored with the result (e.g. "single-instance").
    #[arg(long)]
    pub tag: Option<String>,
    /// Before starting, wait (up to this many seconds) for the servers' CPU to go quiet.
    #[arg(long, default_value_t = 30.0)]
    pub settle_max_secs: f64,
}

/// Parses and checks target URLs.
pub fn endpoints(urls: &[String]) -> anyhow::Result<Vec<Endpoint>> {
    urls.iter().map(|u| Endpoint::parse(u)).collect()
}

/// The resolved common options.
pub struct Ctx {
    /// Targets.
    pub endpoints: Vec<Endpoint>,
    /// Observed server processes.
    pub pids: Vec<u32>,
    /// Side label.
    pub side: String,
    /// The user pool.
    pub users: Arc<Vec<BenchUser>>,
    /// Source addresses.
    pub sources: Vec<IpAddr>,
    results: Option<PathBuf>,
    settle_max: Duration,
    tag: Option<String>,
    load_at_start: Option<f64>,
}

/// The 1-minute load average: other work on the machine skews every number, so it is recorded.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Ctx {
    /// Resolves `common`.
    pub fn new(common: &Common) -> anyhow::Result<Ctx> {
        Ok(Ctx {
            endpoints: endpoints(&common.urls)?,
            pids: common.pids.clone(),
            side: common.side.clone(),
            users: Arc::new(users::load(&common.users)?),
            sources: sio::source_ips(common.source_ips),
            results: common.results.clone(),
            settle_max: Duration::from_secs_f64(common.settle_max_secs),
            tag: common.tag.clone(),
            load_at_start: loadavg(),
        })
    }

    /// The same targets with a pool made of the users at `indexes`, in that order.
    pub fn subset(&self, indexes: &[usize]) -> Ctx {
        Ctx {
            endpoints: self.endpoints.clone(),
            pids: self.pids.clone(),
            side: self.side.clone(),
            users: Arc::new(indexes.iter().map(|&i| self.users[i].clone()).collect()),
            sources: self.sources.clone(),
            results: None,
            settle_max: self.settle_max,
            tag: self.tag.clone(),
            load_at_start: self.load_at_start,
        }
    }

    /// Endpoint of socket `i` (round-robin).
    pub fn endpoint(&self, i: usize) -> &Endpoint {
        &self.endpoints[i % self.endpoints.len()]
    }

    /// Source address of socket `i` (round-robin).
    pub fn source(&self, i: usize) -> Option<IpAddr> {
        if self.sources.len() <= 1 {
            None
        } else {
            Some(self.sources[i % self.sources.len()])
        }
    }

    /// A sample of the observed processes.
    pub fn sample(&self) -> procstat::Sample {
        procstat::sample(&self.pids)
    }

    /// Resident memory of the observed processes, sampled the same way on both sides: three
    /// samples half a second apart, the median of their sums, each sample taken (on the Node
    /// side) right after a full garbage collection in every process, asked for through the
    /// baseline's `POST /debug/gc` (it exists when Node runs with `--expose-gc`). Returns the
    /// median sum and the per-process RSS of that sample.
    pub async fn settled_rss(&self) -> (u64, Vec<u64>) {
        let mut samples = Vec::with_capacity(3);
        for round in 0..3 {
            if round > 0 {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            if self.side == "node" {
                self.collect_garbage().await;
            }
            let each = procstat::rss_each(&self.pids);
            samples.push((each.iter().sum::<u64>(), each));
        }
        samples.sort_by_key(|(sum, _)| *sum);
        samples.swap_remove(1)
    }

    /// Asks every Node process for a full collection and waits for the answers; a process that
    /// does not answer is reported, and its sample is taken as it is.
    async fn collect_garbage(&self) {
        let client = reqwest::Client::new();
        for ep in &self.endpoints {
            let url = format!("{}/debug/gc", ep.base);
            let answered = client
                .post(&url)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if !answered {
                eprintln!(
                    "[{}] {url} did not collect garbage (is node started with --expose-gc?)",
                    self.side
                );
            }
        }
    }

    /// Waits until the servers use less than 5% of a core over half a second (earlier
    /// scenarios' disconnect storms must not be billed to this one).
    pub async fn wait_for_quiet_servers(&self) {
        if self.pids.is_empty() {
            return;
        }
        let deadline = tokio::time::Instant::now() + self.settle_max;
        let mut last = self.sample().cpu_secs;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = self.sample().cpu_secs;
            if now - last < 0.025 || tokio::time::Instant::now() >= deadline {
                return;
            }
            last = now;
        }
    }

    /// Prints `result` (with side and scenario) on stdout and appends it to the results file.
    pub fn emit(&self, scenario: &str, mut result: Value) -> anyhow::Result<()> {
        let obj = result.as_object_mut().context("result must be an object")?;
        obj.insert("scenario".into(), json!(scenario));
        obj.insert("side".into(), json!(self.side));
        obj.insert("instances".into(), json!(self.endpoints.len()));
        obj.insert("tag".into(), json!(self.tag));
        obj.insert("loadavg_start".into(), json!(self.load_at_start));
        obj.insert("loadavg_end".into(), json!(loadavg()));
        obj.insert("timestamp".into(), json!(chrono::Utc::now().to_rfc3339()));
        let line = serde_json::to_string(&result)?;
        println!("{line}");
        if let Some(path) = &self.results {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// Outcome counters of a batch of connects.
#[derive(Default)]
pub struct ConnectStats {
    /// Successful connects.
    pub ok: AtomicUsize,
    /// Failures by kind.
    pub failures: std::sync::Mutex<std::collections::BTreeMap<String, usize>>,
    /// Connect latency (µs).
    pub latency: std::sync::Mutex<Option<Histogram<u64>>>,
    /// When the last connect finished (µs on the shared clock).
    pub last_done_us: AtomicU64,
}

impl ConnectStats {
    /// Records one attempt.
    pub fn record(&self, started_us: u64, result: &Result<Ws, ConnectError>) {
        let now = sio::now_us();
        self.last_done_us.fetch_max(now, Ordering::Relaxed);
        match result {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                let mut h = self.latency.lock().unwrap();
                stats::record(h.get_or_insert_with(stats::new_hist), now - started_us);
            }
            Err(e) => {
                *self.failures.lock().unwrap().entry(e.kind()).or_default() += 1;
            }
        }
    }

    /// Total failures.
    pub fn failed(&self) -> usize {
        self.failures.lock().unwrap().values().sum()
    }

    /// `{ok, failed, failures, latency_ms}`.
    pub fn to_json(&self) -> Value {
        let h = self.latency.lock().unwrap();
        json!({
            "ok": self.ok.load(Ordering::Relaxed),
            "failed": self.failed(),
            "failures": *self.failures.lock().unwrap(),
            "latency_ms": h.as_ref().map(stats::summary).unwrap_or(json!({"count": 0})),
        })
    }
}

/// Connects sockets `0..n` (socket i as user `i % users`) with at most `parallel` handshakes in
/// flight; returns the sockets in order (None where the connect failed).
pub async fn connect_many(
    ctx: &Ctx,
    n: usize,
    parallel: usize,
    stats: Arc<ConnectStats>,
) -> Vec<Option<Ws>> {
    let gate = Arc::new(Semaphore::new(parallel.max(1)));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let permit = gate.clone().acquire_owned().await.expect("semaphore open");
        let ep = ctx.endpoint(i).clone();
        let source = ctx.source(i);
        let token = ctx.users[i % ctx.users.len()].token.clone();
        let stats = stats.clone();
        tasks.push(tokio::spawn(async move {
            let started = sio::now_us();
            let r = sio::connect_timeout(&ep, source, &token, Duration::from_secs(30)).await;
            stats.record(started, &r);
            drop(permit);
            r.ok()
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.ok().flatten());
    }
    out
}
