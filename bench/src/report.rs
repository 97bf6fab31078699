//! `report`: reads the JSON lines written by the scenarios and writes the Markdown report
//! (a side-by-side table with ratios, the targets with verdicts, the machine, the command) and
//! the SVG plots it links to.

use std::{collections::HashMap, fmt::Write as _, path::PathBuf};

use anyhow::Context;
use serde_json::Value;

use crate::svg::{self, Plot, Scale, Series};

/// Options.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Results file (JSON lines).
    #[arg(long)]
    results: PathBuf,
    /// Markdown file to write.
    #[arg(long)]
    out: PathBuf,
    /// Folder for the SVG plots.
    #[arg(long)]
    plots_dir: PathBuf,
    /// How the Markdown links to the plots folder (relative to the Markdown file).
    #[arg(long)]
    plots_link: String,
    /// The exact command that produced the results.
    #[arg(long)]
    command: String,
    /// Versions of the software involved, one line.
    #[arg(long, default_value = "")]
    env_note: String,
    /// Extra Markdown lines appended under "Notes" (repeatable).
    #[arg(long)]
    note: Vec<String>,
}

const OURS: &str = "nexus";
const BASE: &str = "node";
const OURS_COLOR: &str = "#1f77b4";
const BASE_COLOR: &str = "#d62728";

struct Results {
    by_key: HashMap<(String, String, String), Value>,
    /// 1-minute load averages seen at scenario starts and ends.
    loads: Vec<f64>,
    /// The earliest result's timestamp.
    first_timestamp: Option<String>,
}

impl Results {
    fn get(&self, scenario: &str, side: &str) -> Option<&Value> {
        self.tagged(scenario, side, "")
    }
    fn tagged(&self, scenario: &str, side: &str, tag: &str) -> Option<&Value> {
        self.by_key
            .get(&(scenario.to_owned(), side.to_owned(), tag.to_owned()))
    }
}

fn num(v: Option<&Value>, path: &[&str]) -> Option<f64> {
    let mut cur = v?;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_f64()
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    match v {
        None => "—".into(),
        Some(x) if x.is_infinite() => "∞".into(),
        Some(x) => {
            let s = format!("{x:.digits$}");
            group_thousands(&s)
        }
    }
}

fn group_thousands(s: &str) -> String {
    let (int, frac) = s.split_once('.').map_or((s, None), |(a, b)| (a, Some(b)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{out}.{f}"),
        None => format!("{sign}{out}"),
    }
}

/// How many times better ours is: `base/ours` when lower is better, `ours/base` otherwise.
fn advantage(ours: Option<f64>, base: Option<f64>, lower_is_better: bool) -> Option<f64> {
    let (o, b) = (ours?, base?);
    let r = if lower_is_better { b / o } else { o / b };
    r.is_finite().then_some(r)
}

struct Table {
    out: String,
}

impl Table {
    fn new() -> Table {
        Table {
            out: "| scenario | metric | Nexus Chat | Node baseline | Nexus advantage |\n|---|---|---:|---:|---:|\n".into(),
        }
    }
    fn row(
        &mut self,
        scenario: &str,
        metric: &str,
        ours: Option<f64>,
        base: Option<f64>,
        digits: usize,
        lower: Option<bool>,
    ) {
        let adv = lower
            .and_then(|l| advantage(ours, base, l))
            .map_or("—".into(), |a| format!("{a:.2}×"));
        let _ = writeln!(
            self.out,
            "| {scenario} | {metric} | {} | {} | {adv} |",
            fmt(ours, digits),
            fmt(base, digits)
        );
    }
    fn text_row(&mut self, scenario: &str, metric: &str, ours: &str, base: &str) {
        let _ = writeln!(self.out, "| {scenario} | {metric} | {ours} | {base} | — |");
    }
}

fn machine() -> String {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_owned())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map(|k| k / 1024.0 / 1024.0)
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{nproc} CPU cores ({model}), {mem_gib:.1} GiB RAM, Linux {}",
        kernel.trim()
    )
}

/// Runs `report`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.results)
        .with_context(|| format!("reading {}", a.results.display()))?;
    let r = parse(&text)?;
    std::fs::create_dir_all(&a.plots_dir)?;
    let plots = write_plots(&r, &a)?;
    let md = markdown(&r, &a, &plots);
    if let Some(dir) = a.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&a.out, md).with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!(
        "report: wrote {} and {} plots in {}",
        a.out.display(),
        plots.len(),
        a.plots_dir.display()
    );
    Ok(())
}

/// Reads the JSON lines of a results file (a later line replaces an earlier one of the same
/// scenario, side and tag).
fn parse(text: &str) -> anyhow::Result<Results> {
    let mut by_key = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).context("a results line is not JSON")?;
        let key = (
            v["scenario"].as_str().unwrap_or("").to_owned(),
            v["side"].as_str().unwrap_or("").to_owned(),
            v["tag"].as_str().unwrap_or("").to_owned(),
        );
        by_key.insert(key, v);
    }
    let loads: Vec<f64> = by_key
        .values()
        .flat_map(|v: &Value| [v["loadavg_start"].as_f64(), v["loadavg_end"].as_f64()])
        .flatten()
        .collect();
    let first_timestamp = by_key
        .values()
        .filter_map(|v: &Value| v["timestamp"].as_str())
        .min()
        .map(str::to_owned);
    Ok(Results {
        by_key,
        loads,
        first_timestamp,
    })
}

fn markdown(r: &Results, a: &Args, plots: &[(String, String)]) -> String {
    let mut md = String::new();
    // The date of the measurements, not of this rendering (a report can be re-rendered).
    let now = r
        .first_timestamp
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(chrono::Utc::now)
        .format("%Y-%m-%d %H:%M UTC");
    let _ = writeln!(
        md,
        "# Benchmarks: Nexus Chat vs a Node.js Socket.IO baseline\n"
    );
    let _ = writeln!(
        md,
        "Generated by `bench/run.sh` — do not edit by hand; rerun it instead.\n"
    );
    let _ = writeln!(md, "- **Date:** {now}");
    let _ = writeln!(md, "- **Machine:** {}", machine());
    if !a.env_note.is_empty() {
        let _ = writeln!(md, "- **Software:** {}", a.env_note);
    }
    let _ = writeln!(md, "- **Command:** `{}`", a.command);
    if let (Some(lo), Some(hi)) = (
        r.loads.iter().copied().reduce(f64::min),
        r.loads.iter().copied().reduce(f64::max),
    ) {
        let _ = writeln!(
            md,
            "- **Load:** the 1-minute load average at scenario boundaries ranged from {lo:.1} to {hi:.1} on {} cores \
             (it includes this benchmark's own servers and generator, and any other work on the machine).",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0)
        );
    }
    let _ = writeln!(
        md,
        "- **Setup:** both sides run 3 instances (the scale runs: 1, 2 and 4) behind no proxy (the generator spreads sockets round-robin), \
         on this one machine, sharing it with PostgreSQL, Redis and the load generator. Each Nexus instance runs the \
         machine's cores ÷ instances worker threads, at least 1 (`WORKER_THREADS`, as `start-multi.sh` sets it), so \
         that together they use the cores once; each Node instance is one JavaScript thread. Each side has its own fresh database \
         and Redis key prefix. `BCRYPT_COST=4` on both sides (only makes creating test users fast; the handshake never hashes) \
         and Nexus's per-socket rate limiter and per-address handshake cap are raised out of the way \
         (the generator connects from a handful of loopback addresses, real clients from many).\n"
    );

    let mut t = Table::new();
    let (co, cb) = (r.get("connections", OURS), r.get("connections", BASE));
    let conn_label = co.or(cb).map_or("connections".to_string(), |v| {
        format!(
            "{} idle sockets ({} users)",
            fmt(num(Some(v), &["params", "count"]), 0),
            fmt(num(Some(v), &["params", "users"]), 0)
        )
    });
    t.row(
        &conn_label,
        "server RSS per connection (KiB)",
        num(co, &["rss_per_connection_bytes"]).map(|b| b / 1024.0),
        num(cb, &["rss_per_connection_bytes"]).map(|b| b / 1024.0),
        1,
        Some(true),
    );
    t.row(
        &conn_label,
        "connect latency p50 (ms)",
        num(co, &["connect", "latency_ms", "p50"]),
        num(cb, &["connect", "latency_ms", "p50"]),
        2,
        Some(true),
    );
    t.row(
        &conn_label,
        "connect latency p99 (ms)",
        num(co, &["connect", "latency_ms", "p99"]),
        num(cb, &["connect", "latency_ms", "p99"]),
        2,
        Some(true),
    );
    t.row(
        &conn_label,
        "failed connects",
        num(co, &["connect", "failed"]),
        num(cb, &["connect", "failed"]),
        0,
        None,
    );
    t.row(
        &conn_label,
        "server CPU for the connect wave (s)",
        num(co, &["cpu_secs"]),
        num(cb, &["cpu_secs"]),
        2,
        Some(true),
    );

    let (dmo, dmb) = (r.get("dm", OURS), r.get("dm", BASE));
    let dm_label = dmo.or(dmb).map_or("dm".to_string(), |v| {
        format!(
            "DM {} msg/s, {} users, {} s",
            fmt(num(Some(v), &["params", "rate"]), 0),
            fmt(num(Some(v), &["params", "senders"]), 0),
            fmt(num(Some(v), &["params", "duration"]), 0)
        )
    });
    for (k, name) in [
        ("p50", "p50"),
        ("p90", "p90"),
        ("p99", "p99"),
        ("p999", "p99.9"),
        ("max", "max"),
    ] {
        t.row(
            &dm_label,
            &format!("delivery latency {name} (ms)"),
            num(dmo, &["delivery_ms", k]),
            num(dmb, &["delivery_ms", k]),
            2,
            Some(true),
        );
    }
    t.row(
        &dm_label,
        "ack latency p50 (ms)",
        num(dmo, &["ack_ms", "p50"]),
        num(dmb, &["ack_ms", "p50"]),
        2,
        Some(true),
    );
    t.row(
        &dm_label,
        "ack latency p99 (ms)",
        num(dmo, &["ack_ms", "p99"]),
        num(dmb, &["ack_ms", "p99"]),
        2,
        Some(true),
    );
    t.text_row(
        &dm_label,
        "sent / acked / delivered / lost / duplicated",
        &dm_counts(dmo),
        &dm_counts(dmb),
    );
    t.row(
        &dm_label,
        "server CPU s per 1,000 messages",
        num(dmo, &["cpu_secs_per_1k"]),
        num(dmb, &["cpu_secs_per_1k"]),
        3,
        Some(true),
    );
    t.row(
        &dm_label,
        "PostgreSQL CPU s per 1,000 messages",
        num(dmo, &["postgres", "cpu_secs_per_1k"]),
        num(dmb, &["postgres", "cpu_secs_per_1k"]),
        3,
        Some(true),
    );
    t.row(
        &dm_label,
        "Redis CPU s per 1,000 messages",
        num(dmo, &["redis", "cpu_secs_per_1k"]),
        num(dmb, &["redis", "cpu_secs_per_1k"]),
        3,
        Some(true),
    );
    t.row(
        &dm_label,
        "servers + PostgreSQL + Redis CPU s per 1,000 messages",
        machine_cpu_per_1k(dmo),
        machine_cpu_per_1k(dmb),
        3,
        Some(true),
    );

    let (ro, rb) = (r.get("ramp", OURS), r.get("ramp", BASE));
    let ramp_label = ro.or(rb).map_or("ramp".to_string(), |v| {
        format!(
            "DM ramp (p99 ≤ {} ms, no loss)",
            fmt(num(Some(v), &["params", "p99_bound_ms"]), 0)
        )
    });
    t.row(
        &ramp_label,
        "max sustainable rate (msg/s)",
        num(ro, &["max_sustainable_per_sec"]),
        num(rb, &["max_sustainable_per_sec"]),
        0,
        Some(false),
    );
    t.text_row(
        &ramp_label,
        "stopped by",
        ro.and_then(|v| v["stopped_by"].as_str()).unwrap_or("—"),
        rb.and_then(|v| v["stopped_by"].as_str()).unwrap_or("—"),
    );

    let (so, sb) = (r.get("storm", OURS), r.get("storm", BASE));
    let storm_label = so.or(sb).map_or("storm".to_string(), |v| {
        format!(
            "storm: {} users in {} s{}",
            fmt(num(Some(v), &["params", "count"]), 0),
            fmt(num(Some(v), &["params", "within"]), 0),
            if v["params"]["user_init"].as_bool() == Some(true) {
                " + user:init"
            } else {
                ""
            }
        )
    });
    t.row(
        &storm_label,
        "failed connects",
        num(so, &["failed"]),
        num(sb, &["failed"]),
        0,
        None,
    );
    t.row(
        &storm_label,
        "time to settle (s)",
        num(so, &["settle_secs"]),
        num(sb, &["settle_secs"]),
        2,
        Some(true),
    );
    t.row(
        &storm_label,
        "server CPU (s)",
        num(so, &["cpu_secs"]),
        num(sb, &["cpu_secs"]),
        2,
        Some(true),
    );
    t.row(
        &storm_label,
        "connect latency p99 (ms)",
        num(so, &["connect", "latency_ms", "p99"]),
        num(sb, &["connect", "latency_ms", "p99"]),
        1,
        Some(true),
    );
    t.row(
        &storm_label,
        "user:online events received",
        num(so, &["presence_events"]),
        num(sb, &["presence_events"]),
        0,
        None,
    );

    failure_kinds(&mut t, &storm_label, so, sb);
    if let Some(big) = r.tagged("storm", OURS, "full-size") {
        let label = format!(
            "storm, Nexus only: {} users in {} s",
            fmt(num(Some(big), &["params", "count"]), 0),
            fmt(num(Some(big), &["params", "within"]), 0)
        );
        t.row(
            &label,
            "failed connects",
            num(Some(big), &["failed"]),
            None,
            0,
            None,
        );
        t.row(
            &label,
            "time to settle (s)",
            num(Some(big), &["settle_secs"]),
            None,
            2,
            None,
        );
        t.row(
            &label,
            "server CPU (s)",
            num(Some(big), &["cpu_secs"]),
            None,
            2,
            None,
        );
        t.row(
            &label,
            "user:online events received",
            num(Some(big), &["presence_events"]),
            None,
            0,
            None,
        );
        failure_kinds(&mut t, &label, Some(big), None);
        if big["timed_out"].as_bool() == Some(true) {
            t.text_row(&label, "settled", "no (gave up waiting)", "—");
        }
    }
    let (ho, hb) = (r.get("history", OURS), r.get("history", BASE));
    let hist_label = ho.or(hb).map_or("history".to_string(), |v| {
        format!(
            "history: {} msgs in {} conversations, pages of {}",
            fmt(num(Some(v), &["params", "messages"]), 0),
            fmt(num(Some(v), &["params", "conversations"]), 0),
            fmt(num(Some(v), &["params", "limit"]), 0)
        )
    });
    t.row(
        &hist_label,
        "page latency p50 (ms)",
        num(ho, &["page_ms", "p50"]),
        num(hb, &["page_ms", "p50"]),
        2,
        Some(true),
    );
    t.row(
        &hist_label,
        "page latency p99 (ms)",
        num(ho, &["page_ms", "p99"]),
        num(hb, &["page_ms", "p99"]),
        2,
        Some(true),
    );
    t.row(
        &hist_label,
        "latest page p99 (ms)",
        num(ho, &["latest_page_ms", "p99"]),
        num(hb, &["latest_page_ms", "p99"]),
        2,
        Some(true),
    );
    t.row(
        &hist_label,
        "older page p99 (ms)",
        num(ho, &["older_page_ms", "p99"]),
        num(hb, &["older_page_ms", "p99"]),
        2,
        Some(true),
    );
    t.row(
        &hist_label,
        "errors + wrong pages",
        sum2(ho, "errors", "wrong_pages"),
        sum2(hb, "errors", "wrong_pages"),
        0,
        None,
    );

    part3_rows(&mut t, r);

    let single = r.tagged("connections", OURS, "single-instance");
    if let Some(s) = single {
        let label = format!(
            "one Nexus instance, {} sockets wanted",
            fmt(num(Some(s), &["params", "count"]), 0)
        );
        t.row(
            &label,
            "sockets open",
            num(Some(s), &["open_at_measurement"]),
            None,
            0,
            None,
        );
        t.row(
            &label,
            "failed connects",
            num(Some(s), &["connect", "failed"]),
            None,
            0,
            None,
        );
        let _ = writeln!(
            t.out,
            "| {label} | server RSS per connection (KiB) | {} | — | — |",
            fmt(
                num(Some(s), &["rss_per_connection_bytes"]).map(|b| b / 1024.0),
                1
            )
        );
    }

    let _ = writeln!(md, "## Results (same run, 3 instances per side)\n");
    md.push_str(&t.out);
    md.push('\n');
    md.push_str("\"Nexus advantage\" is how many times better Nexus is on that line (baseline ÷ Nexus where lower is better, Nexus ÷ baseline where higher is better); below 1× the baseline wins.\n\n");

    scale_section(&mut md, r, a, plots);

    let _ = writeln!(md, "## Targets\n");
    md.push_str("| target | measured | verdict |\n|---|---|---|\n");
    targets(&mut md, r, single);
    md.push('\n');

    let _ = writeln!(md, "## Plots\n");
    for (file, title) in plots {
        let _ = writeln!(
            md,
            "![{title}]({}/{file})\n",
            a.plots_link.trim_end_matches('/')
        );
    }

    md.push_str(METHOD);
    if !a.note.is_empty() {
        let _ = writeln!(md, "\n## Notes from this run\n");
        for n in &a.note {
            let _ = writeln!(md, "- {n}");
        }
    }
    md
}

/// Rows of the rooms, read and typing scenarios.
fn part3_rows(t: &mut Table, r: &Results) {
    let (ro, rb) = (r.get("rooms", OURS), r.get("rooms", BASE));
    let label = ro.or(rb).map_or("rooms".to_string(), |v| {
        format!(
            "rooms: {} × {} members, {} msg/s, {} s",
            fmt(num(Some(v), &["params", "rooms"]), 0),
            fmt(num(Some(v), &["params", "room_size"]), 0),
            fmt(num(Some(v), &["params", "rate"]), 0),
            fmt(num(Some(v), &["params", "duration"]), 0)
        )
    });
    for (k, name) in [("p50", "p50"), ("p99", "p99"), ("max", "max")] {
        t.row(
            &label,
            &format!("delivery latency {name} (ms, per member delivery)"),
            num(ro, &["delivery_ms", k]),
            num(rb, &["delivery_ms", k]),
            2,
            Some(true),
        );
    }
    t.row(
        &label,
        "ack latency p99 (ms)",
        num(ro, &["ack_ms", "p99"]),
        num(rb, &["ack_ms", "p99"]),
        2,
        Some(true),
    );
    t.row(
        &label,
        "deliveries per second",
        num(ro, &["delivered_per_sec"]),
        num(rb, &["delivered_per_sec"]),
        0,
        Some(false),
    );
    t.text_row(
        &label,
        "messages / deliveries owed / delivered / lost / duplicated / to non-members",
        &counts(
            ro,
            &[
                "sent",
                "expected_deliveries",
                "delivered",
                "lost",
                "duplicated",
                "stray_deliveries",
            ],
        ),
        &counts(
            rb,
            &[
                "sent",
                "expected_deliveries",
                "delivered",
                "lost",
                "duplicated",
                "stray_deliveries",
            ],
        ),
    );
    t.row(
        &label,
        "server CPU s per 1,000 deliveries",
        num(ro, &["cpu_secs_per_1k_deliveries"]),
        num(rb, &["cpu_secs_per_1k_deliveries"]),
        4,
        Some(true),
    );
    t.row(
        &label,
        "PostgreSQL CPU s per 1,000 deliveries",
        per_1k(ro, &["postgres", "cpu_secs"], &["delivered"]),
        per_1k(rb, &["postgres", "cpu_secs"], &["delivered"]),
        4,
        Some(true),
    );

    let (eo, eb) = (r.get("read", OURS), r.get("read", BASE));
    let label = eo.or(eb).map_or("read".to_string(), |v| {
        format!(
            "read: {} readers marking each of {} msg/s, {} s",
            fmt(num(Some(v), &["params", "readers"]), 0),
            fmt(num(Some(v), &["params", "rate"]), 0),
            fmt(num(Some(v), &["params", "duration"]), 0)
        )
    });
    for (k, name) in [("p50", "p50"), ("p99", "p99")] {
        t.row(
            &label,
            &format!("mark ack latency {name} (ms, from the message's arrival)"),
            num(eo, &["marks", "ack_ms", k]),
            num(eb, &["marks", "ack_ms", k]),
            2,
            Some(true),
        );
    }
    t.row(
        &label,
        "receipt at the sender p99 (ms, from the message's arrival)",
        num(eo, &["marks", "receipt_ms", "p99"]),
        num(eb, &["marks", "receipt_ms", "p99"]),
        2,
        Some(true),
    );
    t.row(
        &label,
        "message delivery p99 while marking (ms)",
        num(eo, &["messages", "delivery_ms", "p99"]),
        num(eb, &["messages", "delivery_ms", "p99"]),
        2,
        Some(true),
    );
    t.text_row(
        &label,
        "marks acked / error acks / receipts / messages lost",
        &format!(
            "{} / {} / {} / {}",
            fmt(num(eo, &["marks", "acked"]), 0),
            fmt(num(eo, &["marks", "ack_errors"]), 0),
            fmt(num(eo, &["marks", "receipts"]), 0),
            fmt(num(eo, &["messages", "lost"]), 0)
        ),
        &format!(
            "{} / {} / {} / {}",
            fmt(num(eb, &["marks", "acked"]), 0),
            fmt(num(eb, &["marks", "ack_errors"]), 0),
            fmt(num(eb, &["marks", "receipts"]), 0),
            fmt(num(eb, &["messages", "lost"]), 0)
        ),
    );
    t.row(
        &label,
        "server CPU s per 1,000 marks (the message included)",
        num(eo, &["cpu_secs_per_1k_marks"]),
        num(eb, &["cpu_secs_per_1k_marks"]),
        3,
        Some(true),
    );
    // The dm scenario at the same rate sends the same messages without marks: the difference is
    // what a mark costs.
    let net = |v: Option<&Value>, side: &str| {
        let dm = r.get("dm", side);
        let same_rate = num(dm, &["params", "rate"]) == num(v, &["params", "rate"]);
        same_rate
            .then(|| Some(num(v, &["cpu_secs_per_1k_marks"])? - num(dm, &["cpu_secs_per_1k"])?))
            .flatten()
    };
    t.row(
        &label,
        "… minus the dm run's CPU per 1,000 messages (same rate)",
        net(eo, OURS),
        net(eb, BASE),
        3,
        Some(true),
    );
    t.row(
        &label,
        "PostgreSQL CPU s per 1,000 marks (the message included)",
        num(eo, &["postgres", "cpu_secs_per_1k_marks"]),
        num(eb, &["postgres", "cpu_secs_per_1k_marks"]),
        3,
        Some(true),
    );
    t.row(
        &label,
        "database rows written per mark (the message included)",
        num(eo, &["postgres", "rows_written_per_1k_marks"]).map(|v| v / 1000.0),
        num(eb, &["postgres", "rows_written_per_1k_marks"]).map(|v| v / 1000.0),
        2,
        Some(true),
    );
    t.row(
        &label,
        "cursor transactions per 1,000 marks (Nexus /metrics)",
        num(eo, &["cursor_batches_per_1k_marks"]),
        None,
        1,
        None,
    );
    t.row(
        &label,
        "marks stored per cursor transaction (Nexus /metrics)",
        num(eo, &["moves_per_batch"]),
        None,
        2,
        None,
    );

    let (yo, yb) = (r.get("typing", OURS), r.get("typing", BASE));
    let label = yo.or(yb).map_or("typing".to_string(), |v| {
        format!(
            "typing: {} typists at {}/s ({} in rooms of {}, {} in pairs), {} s",
            fmt(num(Some(v), &["params", "typists"]), 0),
            fmt(num(Some(v), &["params", "per_typist"]), 0),
            fmt(num(Some(v), &["params", "in_rooms"]), 0),
            fmt(num(Some(v), &["params", "room_size"]), 0),
            fmt(num(Some(v), &["params", "in_pairs"]), 0),
            fmt(num(Some(v), &["params", "duration"]), 0)
        )
    });
    for (k, name) in [("p50", "p50"), ("p99", "p99")] {
        t.row(
            &label,
            &format!("delivery latency {name} (ms)"),
            num(yo, &["delivery_ms", k]),
            num(yb, &["delivery_ms", k]),
            2,
            Some(true),
        );
    }
    t.text_row(
        &label,
        "events / deliveries owed / delivered / lost / to others",
        &counts(
            yo,
            &[
                "sent",
                "expected_deliveries",
                "delivered",
                "lost",
                "stray_deliveries",
            ],
        ),
        &counts(
            yb,
            &[
                "sent",
                "expected_deliveries",
                "delivered",
                "lost",
                "stray_deliveries",
            ],
        ),
    );
    t.row(
        &label,
        "server CPU s per 1,000 typing events",
        num(yo, &["cpu_secs_per_1k_events"]),
        num(yb, &["cpu_secs_per_1k_events"]),
        4,
        Some(true),
    );
    t.row(
        &label,
        "server CPU s per 1,000 typing deliveries",
        num(yo, &["cpu_secs_per_1k_deliveries"]),
        num(yb, &["cpu_secs_per_1k_deliveries"]),
        4,
        Some(true),
    );
    t.row(
        &label,
        "PostgreSQL transactions during the run",
        num(yo, &["postgres", "transactions"]),
        num(yb, &["postgres", "transactions"]),
        0,
        None,
    );
}

/// `a / b × 1000` of two numbers of one result.
fn per_1k(v: Option<&Value>, a: &[&str], b: &[&str]) -> Option<f64> {
    let d = num(v, b)?;
    (d > 0.0)
        .then(|| num(v, a).map(|x| x / (d / 1000.0)))
        .flatten()
}

/// "a / b / c" of some counts of one result.
fn counts(v: Option<&Value>, keys: &[&str]) -> String {
    match v {
        None => "—".into(),
        Some(v) => keys
            .iter()
            .map(|k| fmt(num(Some(v), &[k]), 0))
            .collect::<Vec<_>>()
            .join(" / "),
    }
}

/// A row naming why connects failed, when any did.
fn failure_kinds(t: &mut Table, label: &str, ours: Option<&Value>, base: Option<&Value>) {
    let kinds = |v: Option<&Value>| -> String {
        v.and_then(|v| v["connect"]["failures"].as_object())
            .filter(|m| !m.is_empty())
            .map(|m| {
                m.iter()
                    .map(|(k, n)| format!("{n} × `{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|| "—".into())
    };
    let (o, b) = (kinds(ours), kinds(base));
    if o != "—" || b != "—" {
        t.text_row(label, "why connects failed", &o, &b);
    }
}

fn sum2(v: Option<&Value>, a: &str, b: &str) -> Option<f64> {
    Some(num(v, &[a])? + num(v, &[b])?)
}

fn dm_counts(v: Option<&Value>) -> String {
    match v {
        None => "—".into(),
        Some(v) => format!(
            "{} / {} / {} / {} / {}",
            fmt(num(Some(v), &["sent"]), 0),
            fmt(num(Some(v), &["acked"]), 0),
            fmt(num(Some(v), &["delivered"]), 0),
            fmt(num(Some(v), &["lost"]), 0),
            fmt(num(Some(v), &["duplicated"]), 0)
        ),
    }
}

fn verdict(met: Option<bool>, miss: impl FnOnce() -> String) -> String {
    match met {
        Some(true) => "**met**".into(),
        Some(false) => format!("**missed** — {}", miss()),
        None => "not measured".into(),
    }
}

fn targets(md: &mut String, r: &Results, single: Option<&Value>) {
    let ours_mem = num(r.get("connections", OURS), &["rss_per_connection_bytes"]);
    let base_mem = num(r.get("connections", BASE), &["rss_per_connection_bytes"]);
    let ratio = advantage(ours_mem, base_mem, true);
    let _ = writeln!(
        md,
        "| memory per idle authenticated socket ≤ 1/3 of baseline | {} vs {} KiB (baseline ÷ Nexus = {}×) | {} |",
        fmt(ours_mem.map(|b| b / 1024.0), 1),
        fmt(base_mem.map(|b| b / 1024.0), 1),
        fmt(ratio, 2),
        verdict(ratio.map(|x| x >= 3.0), || format!(
            "needs ≤ {} KiB, {:.0}% over",
            fmt(base_mem.map(|b| b / 3.0 / 1024.0), 1),
            (ours_mem.unwrap_or(0.0) / (base_mem.unwrap_or(1.0) / 3.0) - 1.0) * 100.0
        ))
    );
    let single_text = single.map_or("not run".to_string(), |s| {
        format!(
            "{} of {} sockets open on one instance, {} KiB each",
            fmt(num(Some(s), &["open_at_measurement"]), 0),
            fmt(num(Some(s), &["params", "count"]), 0),
            fmt(
                num(Some(s), &["rss_per_connection_bytes"]).map(|b| b / 1024.0),
                1
            )
        )
    });
    let single_met = single
        .and_then(|s| num(Some(s), &["open_at_measurement"]))
        .map(|n| n >= 100_000.0);
    let _ = writeln!(
        md,
        "| 100,000 connections on one instance | {single_text} | {} |",
        verdict(single_met, || {
            "see the notes: the open-file limit of this sandbox caps a process at 20,000 descriptors".into()
        })
    );
    let (ro, rb) = (
        num(r.get("ramp", OURS), &["max_sustainable_per_sec"]),
        num(r.get("ramp", BASE), &["max_sustainable_per_sec"]),
    );
    let rr = advantage(ro, rb, false);
    let _ = writeln!(
        md,
        "| max sustainable DM rate ≥ 5× baseline | {} vs {} msg/s ({}×) | {} |",
        fmt(ro, 0),
        fmt(rb, 0),
        fmt(rr, 2),
        match (ro, rb) {
            (None, Some(b)) => verdict(Some(false), || format!(
                "no Nexus step passed (from {} msg/s down to {} msg/s) while the baseline sustained {}",
                fmt(num(r.get("ramp", OURS), &["params", "start"]), 0),
                fmt(num(r.get("ramp", OURS), &["params", "min_rate"]), 0),
                fmt(Some(b), 0)
            )),
            _ => verdict(rr.map(|x| x >= 5.0), || format!(
                "{:.2}× instead of 5× ({:.0}% short)",
                rr.unwrap_or(0.0),
                (1.0 - rr.unwrap_or(0.0) / 5.0) * 100.0
            )),
        }
    );
    let dm = r.get("dm", OURS);
    let p99 = num(dm, &["delivery_ms", "p99"]);
    let rate = num(dm, &["params", "rate"]);
    let lost = num(dm, &["lost"]).unwrap_or(0.0);
    let _ = writeln!(
        md,
        "| p99 delivery ≤ 10 ms at 1,000 msg/s over 3 instances | {} ms at {} msg/s, {} lost | {} |",
        fmt(p99, 2),
        fmt(rate, 0),
        fmt(Some(lost), 0),
        verdict(
            p99.map(|p| p <= 10.0 && lost == 0.0 && rate.unwrap_or(0.0) >= 1000.0),
            || {
                if rate.unwrap_or(0.0) < 1000.0 {
                    "measured at a lower rate (quick run)".into()
                } else {
                    format!("{:.1}× the bound", p99.unwrap_or(0.0) / 10.0)
                }
            }
        )
    );
    let (so, sb) = (r.get("storm", OURS), r.get("storm", BASE));
    let (cpu_o, cpu_b) = (num(so, &["cpu_secs"]), num(sb, &["cpu_secs"]));
    let failed = num(so, &["failed"]);
    let storm_n = num(so, &["params", "count"]);
    let sr = advantage(cpu_o, cpu_b, true);
    let _ = writeln!(
        md,
        "| storm of 10,000 users in 10 s: no failures, CPU ≤ 1/3 of baseline | {} users: {} failed, {} vs {} CPU s (baseline ÷ Nexus = {}×) | {} |",
        fmt(storm_n, 0),
        fmt(failed, 0),
        fmt(cpu_o, 2),
        fmt(cpu_b, 2),
        fmt(sr, 2),
        verdict(
            sr.map(|x| x >= 3.0 && failed == Some(0.0) && storm_n.unwrap_or(0.0) >= 10_000.0),
            || {
                let mut why = Vec::new();
                if storm_n.unwrap_or(0.0) < 10_000.0 {
                    why.push(format!("run with {} users, not 10,000", fmt(storm_n, 0)));
                }
                if failed != Some(0.0) {
                    why.push(format!("{} connects failed", fmt(failed, 0)));
                }
                if sr.unwrap_or(0.0) < 3.0 {
                    why.push(format!(
                        "CPU ratio {:.2}× instead of ≥ 3×",
                        sr.unwrap_or(0.0)
                    ));
                } else {
                    why.push(format!(
                        "the CPU ratio ({:.2}×) alone would pass",
                        sr.unwrap_or(0.0)
                    ));
                }
                why.join("; ")
            }
        )
    );
    if let Some(big) = r.tagged("storm", OURS, "full-size") {
        let n = num(Some(big), &["params", "count"]);
        let f = num(Some(big), &["failed"]);
        let _ = writeln!(
            md,
            "| … the same storm at full size (Nexus only) | {} users: {} failed, settled after {} s{}, {} CPU s | {} |",
            fmt(n, 0),
            fmt(f, 0),
            fmt(num(Some(big), &["settle_secs"]), 1),
            if big["timed_out"].as_bool() == Some(true) {
                " (gave up)"
            } else {
                ""
            },
            fmt(num(Some(big), &["cpu_secs"]), 1),
            verdict(
                Some(f == Some(0.0) && n.unwrap_or(0.0) >= 10_000.0),
                || format!("{} connects failed", fmt(f, 0))
            )
        );
    }
    let h = r.get("history", OURS);
    let hp = num(h, &["page_ms", "p99"]);
    let hm = num(h, &["params", "messages"]);
    let _ = writeln!(
        md,
        "| history with 1M messages: p99 ≤ 5 ms per page of 50 | {} ms with {} messages | {} |",
        fmt(hp, 2),
        fmt(hm, 0),
        verdict(
            hp.map(|p| p <= 5.0
                && hm.unwrap_or(0.0) >= 1_000_000.0
                && num(h, &["wrong_pages"]) == Some(0.0)),
            || if hm.unwrap_or(0.0) < 1_000_000.0 {
                "seeded fewer than 1M messages".into()
            } else {
                format!("{:.1}× the bound", hp.unwrap_or(0.0) / 5.0)
            }
        )
    );
    rooms_targets(md, r);
    scale_target(md, r);
}

/// The two targets of the rooms issue.
fn rooms_targets(md: &mut String, r: &Results) {
    let (ro, rb) = (r.get("rooms", OURS), r.get("rooms", BASE));
    let p99 = num(ro, &["delivery_ms", "p99"]);
    let lost = num(ro, &["lost"]);
    let rate = num(ro, &["params", "rate"]);
    let size = num(ro, &["params", "room_size"]);
    let full_size = rate.unwrap_or(0.0) >= 100.0 && size.unwrap_or(0.0) >= 100.0;
    let _ = writeln!(
        md,
        "| rooms: 100 msg/s into rooms of 100 (10,000 deliveries/s), p99 ≤ 50 ms, nothing lost | {} ms at {} msg/s into rooms of {} ({} deliveries/s), {} lost | {} |",
        fmt(p99, 2),
        fmt(rate, 0),
        fmt(size, 0),
        fmt(num(ro, &["delivered_per_sec"]), 0),
        fmt(lost, 0),
        verdict(
            p99.map(|p| p <= 50.0 && lost == Some(0.0) && full_size),
            || {
                let mut why = Vec::new();
                if !full_size {
                    why.push("measured at a smaller size (quick run)".to_string());
                }
                if p99.unwrap_or(f64::INFINITY) > 50.0 {
                    why.push(format!("{:.1}× the bound", p99.unwrap_or(0.0) / 50.0));
                }
                if lost != Some(0.0) {
                    why.push(format!("{} deliveries lost", fmt(lost, 0)));
                }
                why.join("; ")
            }
        )
    );
    let (co, cb) = (
        num(ro, &["cpu_secs_per_1k_deliveries"]),
        num(rb, &["cpu_secs_per_1k_deliveries"]),
    );
    let ratio = advantage(co, cb, true);
    let _ = writeln!(
        md,
        "| rooms: server CPU per 1,000 deliveries ≤ 1/3 of baseline | {} vs {} s (baseline ÷ Nexus = {}×) | {} |",
        fmt(co, 4),
        fmt(cb, 4),
        fmt(ratio, 2),
        verdict(ratio.map(|x| x >= 3.0), || format!(
            "{:.2}× instead of ≥ 3× ({:.0}% short)",
            ratio.unwrap_or(0.0),
            (1.0 - ratio.unwrap_or(0.0) / 3.0) * 100.0
        ))
    );
}

/// Server + PostgreSQL + Redis CPU seconds per 1,000 messages of a dm result (all three needed).
fn machine_cpu_per_1k(v: Option<&Value>) -> Option<f64> {
    Some(
        num(v, &["cpu_secs_per_1k"])?
            + num(v, &["postgres", "cpu_secs_per_1k"])?
            + num(v, &["redis", "cpu_secs_per_1k"])?,
    )
}

/// Instance counts the scale runs are meant to cover (more show up if they were run).
const SCALE_INSTANCES: [u32; 3] = [1, 2, 4];
/// Most server CPU per 1,000 messages at 4 instances, as a multiple of the figure at 1.
const SCALE_BOUND: f64 = 1.2;

/// The dm result tagged `scale-<n>` of `side`.
fn scale_run<'a>(r: &'a Results, side: &str, n: u32) -> Option<&'a Value> {
    r.tagged("dm", side, &format!("scale-{n}"))
}

/// Instance counts to show: the intended ones and any other that was run, in order.
fn scale_counts(r: &Results) -> Vec<u32> {
    let mut ns: Vec<u32> = SCALE_INSTANCES.to_vec();
    for (scenario, _, tag) in r.by_key.keys() {
        if let Some(n) = tag.strip_prefix("scale-").and_then(|n| n.parse().ok())
            && scenario == "dm"
            && !ns.contains(&n)
        {
            ns.push(n);
        }
    }
    ns.sort_unstable();
    ns
}

/// Server CPU per 1,000 messages of `side` at 1 and at 4 instances, and their ratio.
fn scale_ratio(r: &Results, side: &str) -> (Option<f64>, Option<f64>, Option<f64>) {
    let one = num(scale_run(r, side, 1), &["cpu_secs_per_1k"]).filter(|c| *c > 0.0);
    let four = num(scale_run(r, side, 4), &["cpu_secs_per_1k"]);
    let ratio = one.zip(four).map(|(o, f)| f / o);
    (one, four, ratio)
}

/// The table of the scale runs: one row per side and instance count.
fn scale_section(md: &mut String, r: &Results, a: &Args, plots: &[(String, String)]) {
    let ns = scale_counts(r);
    let first = [OURS, BASE]
        .iter()
        .flat_map(|side| ns.iter().filter_map(move |&n| scale_run(r, side, n)))
        .next();
    let _ = writeln!(md, "## Scale: the same DM load on 1, 2 and 4 instances\n");
    let Some(first) = first else {
        let _ = writeln!(md, "Not run.\n");
        return;
    };
    let _ = writeln!(
        md,
        "{} msg/s for {} s, {} users, on N instances of one side at a time (nothing else of the benchmark running); \
         user *i* sends to user *i+1*, which is on the next instance when N > 1.\n",
        fmt(num(Some(first), &["params", "rate"]), 0),
        fmt(num(Some(first), &["params", "duration"]), 0),
        fmt(num(Some(first), &["params", "senders"]), 0)
    );
    md.push_str(
        "| side | instances | server CPU s per 1,000 messages | ÷ 1 instance | delivery p99 (ms) | sent / lost / duplicated | PostgreSQL CPU s per 1,000 messages | Redis CPU s per 1,000 messages | servers + PostgreSQL + Redis CPU s per 1,000 messages |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (side, name) in [(OURS, "Nexus Chat"), (BASE, "Node baseline")] {
        let one = num(scale_run(r, side, 1), &["cpu_secs_per_1k"]).filter(|c| *c > 0.0);
        for &n in &ns {
            let Some(v) = scale_run(r, side, n) else {
                let _ = writeln!(md, "| {name} | {n} | not run | — | — | — | — | — | — |");
                continue;
            };
            let cpu = num(Some(v), &["cpu_secs_per_1k"]);
            let _ = writeln!(
                md,
                "| {name} | {n} | {} | {} | {} | {} | {} | {} | {} |",
                fmt(cpu, 3),
                one.zip(cpu)
                    .map_or("—".into(), |(o, c)| format!("{:.2}×", c / o)),
                fmt(num(Some(v), &["delivery_ms", "p99"]), 2),
                counts(Some(v), &["sent", "lost", "duplicated"]),
                fmt(num(Some(v), &["postgres", "cpu_secs_per_1k"]), 3),
                fmt(num(Some(v), &["redis", "cpu_secs_per_1k"]), 3),
                fmt(machine_cpu_per_1k(Some(v)), 3)
            );
        }
    }
    md.push('\n');
    if let Some((file, title)) = plots.iter().find(|(f, _)| f == SCALE_PLOT) {
        let _ = writeln!(
            md,
            "Plot: [{title}]({}/{file}).\n",
            a.plots_link.trim_end_matches('/')
        );
    }
}

/// The target of the efficiency issue: cost per message flat in the number of instances.
fn scale_target(md: &mut String, r: &Results) {
    let (one, four, ratio) = scale_ratio(r, OURS);
    let (_, _, base_ratio) = scale_ratio(r, BASE);
    let measured = match (one, four) {
        (Some(o), Some(f)) => format!(
            "{} s at 4 instances vs {} s at 1 (4 ÷ 1 = {}×; baseline {}×)",
            fmt(Some(f), 3),
            fmt(Some(o), 3),
            fmt(ratio, 2),
            fmt(base_ratio, 2)
        ),
        _ => {
            let missing: Vec<&str> = [
                (one.is_none(), "1 instance"),
                (four.is_none(), "4 instances"),
            ]
            .iter()
            .filter(|(m, _)| *m)
            .map(|(_, s)| *s)
            .collect();
            format!("{} not run", missing.join(" and "))
        }
    };
    // The target is stated for the full run's load, 1,000 msg/s.
    let full_rate = [1, 4].iter().all(|&n| {
        num(scale_run(r, OURS, n), &["params", "rate"]).is_some_and(|rate| rate >= 1000.0)
    });
    let verdict_text = match ratio {
        None => "not run".to_string(),
        Some(x) => verdict(Some(x <= SCALE_BOUND && full_rate), || {
            let mut why = Vec::new();
            if x > SCALE_BOUND {
                why.push(format!(
                    "{x:.2}× instead of ≤ {SCALE_BOUND}× ({:.0}% over the bound)",
                    (x / SCALE_BOUND - 1.0) * 100.0
                ));
            }
            if !full_rate {
                why.push("measured at a lower rate (quick run)".to_string());
            }
            why.join("; ")
        }),
    };
    let _ = writeln!(
        md,
        "| cost flat in the number of instances: server CPU per 1,000 msgs at 4 instances ≤ {SCALE_BOUND}× at 1 | {measured} | {verdict_text} |"
    );
}

/// File name of the scale plot.
const SCALE_PLOT: &str = "scale-cpu.svg";

/// CPU per 1,000 messages against the instance count, of one side (`total`: servers +
/// PostgreSQL + Redis instead of the servers alone).
fn scale_series(
    r: &Results,
    side: &str,
    total: bool,
    name: &str,
    color: &'static str,
) -> Option<Series> {
    let points: Vec<(f64, f64)> = scale_counts(r)
        .into_iter()
        .filter_map(|n| {
            let v = scale_run(r, side, n);
            let y = if total {
                machine_cpu_per_1k(v)
            } else {
                num(v, &["cpu_secs_per_1k"])
            };
            Some((f64::from(n), y?))
        })
        .collect();
    (!points.is_empty()).then(|| Series {
        name: name.into(),
        color,
        dashed: total,
        hollow: vec![],
        points,
    })
}

/// Builds one side's series from its result: (result, legend name, colour).
type SeriesFn = dyn Fn(Option<&Value>, &str, &'static str) -> Option<Series>;

fn cdf_series(v: Option<&Value>, key: &str, name: &str, color: &'static str) -> Option<Series> {
    let pts: Vec<(f64, f64)> = v?
        .get(key)?
        .as_array()?
        .iter()
        .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
        .collect();
    (!pts.is_empty()).then(|| Series {
        name: name.into(),
        color,
        dashed: false,
        hollow: vec![],
        points: pts,
    })
}

fn ramp_series(v: Option<&Value>, y: &[&str], name: &str, color: &'static str) -> Option<Series> {
    let steps = v?.get("steps")?.as_array()?;
    let mut points = Vec::new();
    let mut hollow = Vec::new();
    let mut rows = Vec::new();
    for s in steps {
        if let (Some(x), Some(yv)) = (num(Some(s), &["offered_per_sec"]), num(Some(s), y)) {
            rows.push((x, yv.max(0.001), s["pass"].as_bool() != Some(true)));
        }
    }
    // Bisection steps come after the step that failed: plot in order of the offered rate.
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (x, yv, failed) in rows {
        points.push((x, yv));
        hollow.push(failed);
    }
    (!points.is_empty()).then(|| Series {
        name: name.into(),
        color,
        dashed: false,
        points,
        hollow,
    })
}

fn write_plots(r: &Results, a: &Args) -> anyhow::Result<Vec<(String, String)>> {
    let mut written = Vec::new();
    let mut save = |file: &str, plot: Plot| -> anyhow::Result<()> {
        if plot.series.is_empty() {
            return Ok(());
        }
        std::fs::write(a.plots_dir.join(file), svg::render(&plot))?;
        written.push((file.to_owned(), plot.title.clone()));
        Ok(())
    };
    let both = |f: &SeriesFn, scenario: &str| -> Vec<Series> {
        [
            (OURS, "Nexus Chat", OURS_COLOR),
            (BASE, "Node baseline", BASE_COLOR),
        ]
        .iter()
        .filter_map(|(side, name, color)| f(r.get(scenario, side), name, color))
        .collect()
    };
    let rate = num(r.get("dm", OURS).or(r.get("dm", BASE)), &["params", "rate"]).unwrap_or(0.0);
    save(
        "dm-delivery-cdf.svg",
        Plot {
            title: format!(
                "DM delivery latency CDF at {} msg/s (3 instances each)",
                fmt(Some(rate), 0)
            ),
            x_label: "delivery latency (ms, log scale)".into(),
            y_label: "fraction of messages delivered".into(),
            x_scale: Scale::Log,
            y_scale: Scale::Nines,
            series: both(&|v, n, c| cdf_series(v, "delivery_cdf", n, c), "dm"),
            h_lines: vec![],
        },
    )?;
    let mut thr = both(
        &|v, n, c| ramp_series(v, &["delivered_per_sec"], n, c),
        "ramp",
    );
    if let Some(maxx) = thr
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .reduce(f64::max)
    {
        let minx = thr
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .fold(f64::MAX, f64::min);
        thr.push(Series {
            name: "offered = delivered".into(),
            color: "#888",
            dashed: true,
            points: vec![(minx, minx), (maxx, maxx)],
            hollow: vec![true, true],
        });
    }
    save(
        "ramp-throughput.svg",
        Plot {
            title: "Delivered vs offered DM rate (hollow: step failed)".into(),
            x_label: "offered rate (msg/s, log scale)".into(),
            y_label: "delivered rate (msg/s, log scale)".into(),
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            series: thr,
            h_lines: vec![],
        },
    )?;
    let bound = num(
        r.get("ramp", OURS).or(r.get("ramp", BASE)),
        &["params", "p99_bound_ms"],
    )
    .unwrap_or(50.0);
    save(
        "ramp-p99.svg",
        Plot {
            title: "p99 delivery latency vs offered DM rate".into(),
            x_label: "offered rate (msg/s, log scale)".into(),
            y_label: "p99 delivery latency (ms, log scale)".into(),
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            series: both(
                &|v, n, c| ramp_series(v, &["delivery_ms", "p99"], n, c),
                "ramp",
            ),
            h_lines: vec![(bound, format!("{bound} ms bound"))],
        },
    )?;
    let mut scale: Vec<Series> = [
        (OURS, false, "Nexus: servers", OURS_COLOR),
        (BASE, false, "Node: servers", BASE_COLOR),
        (
            OURS,
            true,
            "Nexus: servers + PostgreSQL + Redis",
            OURS_COLOR,
        ),
        (BASE, true, "Node: servers + PostgreSQL + Redis", BASE_COLOR),
    ]
    .iter()
    .filter_map(|&(side, total, name, color)| scale_series(r, side, total, name, color))
    .collect();
    // The bound, across the instance counts the target covers (also when fewer were run).
    if let (Some(one), false) = (scale_ratio(r, OURS).0, scale.is_empty()) {
        let top = scale_counts(r).last().copied().unwrap_or(4);
        scale.push(Series {
            name: format!("target: {SCALE_BOUND}× Nexus servers at 1 instance"),
            color: "#888",
            dashed: true,
            points: vec![
                (1.0, one * SCALE_BOUND),
                (f64::from(top), one * SCALE_BOUND),
            ],
            hollow: vec![true, true],
        });
    }
    save(
        SCALE_PLOT,
        Plot {
            title: "DM CPU per 1,000 messages vs instances (same load)".into(),
            x_label: "instances of the side".into(),
            y_label: "CPU s per 1,000 messages".into(),
            x_scale: Scale::Linear,
            y_scale: Scale::Linear,
            series: scale,
            h_lines: vec![],
        },
    )?;
    save(
        "history-cdf.svg",
        Plot {
            title: "message:history page latency CDF".into(),
            x_label: "page latency (ms, log scale)".into(),
            y_label: "fraction of pages".into(),
            x_scale: Scale::Log,
            y_scale: Scale::Nines,
            series: both(&|v, n, c| cdf_series(v, "page_cdf", n, c), "history"),
            h_lines: vec![],
        },
    )?;
    Ok(written)
}

const METHOD: &str = r#"
## What each scenario measures

The generator (`bench/`, crate `nexus-bench`) speaks Engine.IO v4 / Socket.IO v5 over raw WebSockets
(tokio + tokio-tungstenite, one task per socket), authenticates with `40{"token":...}` exactly like
`socket.io-client` with `auth: {token}`, and spreads sockets round-robin over the instances.

- **connections** — opens N sockets at a fixed rate and keeps them idle (answering pings). Memory per
  connection is the growth of the instances' summed VmRSS (from `/proc/PID/status`) divided by the
  sockets still open, read after the connect wave's presence broadcasts are over. Each reading,
  before and after, is the median of three samples 0.5 s apart, the same on both sides; the Node
  baseline runs with `--expose-gc` and collects its garbage fully before each sample, so V8's
  collection timing does not decide its figure. Users are reused
  for several sockets (tabs) so that the N²/2 `user:online` fan-out does not dominate the run.
- **dm** — one socket per user, user *i* sends to user *i+1* (always on another instance), open loop
  at a fixed total rate. Each content carries its intended send time, so a stalled generator or
  server shows as latency (no coordinated omission). *Delivery* = `message:new` arriving at the
  receiver's socket; *ack* = the `message:send` ack at the sender. *Lost* = not delivered within
  the drain period (5 s) after the last send. Server CPU = utime+stime of the server processes
  over the measured period, divided by the acked messages. PostgreSQL's CPU is that of the
  backends connected to the side's database (as for rooms, below); Redis's is the change of
  `used_cpu_sys + used_cpu_user` in `INFO cpu` over the measured period. Redis is one server
  shared by both sides (under separate key prefixes), so its figure is the whole server's: the
  sides run one after another, which makes it the measured side's, plus the other side's idle
  instances' background traffic and anything else using that Redis meanwhile. The three added up
  are the machine's cost per message except for the load generator.
- **ramp** — the dm scenario in steps (×1.5 each, same sockets); a step passes when p99 delivery ≤
  the bound, nothing is lost and no ack is an error. A failed step is run once more before it
  counts (the machine is shared); when the very first step fails, the rate is halved until one
  passes. After the first failure, two more steps bisect (geometrically) between the last rate
  that passed and the lowest that failed, so the result is within ~11%, not one ×1.5 step. The
  maximum sustainable rate is the highest passing step.
- **scale** — the dm load (same rate, users and databases) on 1, 2 and 4 fresh instances of one
  side at a time, with every other server of the benchmark stopped; user *i* sends to user *i+1*
  on the next instance, so with 1 instance nothing crosses instances and with 4 every message
  does. The target compares server CPU per 1,000 messages at 4 instances with 1; here the
  Redis figure has no other side's traffic in it.
- **storm** — N distinct users connect evenly within T seconds; every connect broadcasts
  `user:online` to everyone already online (≈N²/2 frames). Settled = every connect done and no
  presence event for 1 s; CPU is counted from the first connect to that moment.
- Connect failures are labelled by how they ended: `refused:<message>` is the server's
  `connect_error`, `protocol` a connect that timed out (30 s; 60 s in the storm) or was closed
  mid-handshake, `upgrade`/`tcp:*` a failed WebSocket upgrade or TCP connect.
- **history** — messages are bulk-loaded with `COPY` into each side's `messages` table
  (same columns; Nexus's `conversations` summary rebuilt from them), then readers page back through
  conversations with `message:history {receiverId, before, limit: 50}`, half the walks from the
  latest message and half from a random depth. Every page is checked against the seeded ids.

- **rooms** — R rooms of M members (room *r* is users *r·M* … *r·M+M−1*, one socket each, spread
  round-robin over the instances), created with `room:create` by their first member; messages go
  out with `room:send` at a fixed open-loop total rate, room after room, each sent by the room's
  next member in turn. A *delivery* is one `room:message` arriving at one member's socket, the
  sender's included (the contract sends it to every socket of every member); latency runs from the
  message's intended send time; *lost* = a member that never got it within the drain period, *to
  non-members* = a `room:message` at a socket whose user is not in that room. CPU is divided by
  the deliveries.
- **read** — N direct pairs (sender and reader on different instances), the dm load at a fixed
  rate, and every reader emits `conversation:read {receiverId, upTo: <the message's id>}` the
  moment each `message:new` arrives, like a client that marks what it displays. The mark's ack
  latency and the receipt (`conversation:read` at the sender) run from that arrival. CPU per
  1,000 marks includes the message itself; the next row subtracts the dm run's CPU per message
  when both ran at the same rate, which leaves what marking costs. PostgreSQL's CPU is the
  utime+stime of the backends connected to the side's database (PIDs from `pg_stat_activity`),
  its rows written `tup_inserted + tup_updated + tup_deleted` of `pg_stat_database`; Nexus's
  cursor transactions come from `nexus_read_cursor_batches_total` on `/metrics`.
- **typing** — K typists send `typing: true` at a fixed rate each (3/s, under the 5/s limit),
  half of them in rooms (everyone in the room types) and half in direct pairs typing to each
  other. `typing` carries no client data, so the n-th event a socket gets from a typist is matched
  to that typist's n-th send (a dropped event could only make later latencies look worse).
  PostgreSQL's transactions during the run should be none: a keystroke needs no query.

The baseline (`bench/baseline-node/`) is a plain Node.js 20 deployment: Express REST with bcryptjs
and jsonwebtoken (with the secret as a `KeyObject` made once: given a string, jsonwebtoken 9 re-parses it
on every call, which cost about 1 ms of CPU per handshake), Socket.IO 4 with `@socket.io/redis-adapter` (ioredis), a `pg` Pool with named
prepared statements, a JWT handshake middleware, presence in a Redis hash, and messages stored in
PostgreSQL before `message:new` is emitted to the `user:<id>` rooms (indexes mirror Nexus's).
Part 3 the socket.io way: every socket joins a socket.io room per group room at connect, and
`room:create`/`room:add` join the members' sockets on every instance with `socketsJoin` through the
Redis adapter; `room:send` inserts (with the membership check in the same statement), acks, then
emits to the socket.io room; `conversation:read` moves a cursor row forward with one upsert per
call and emits to the peer's `user:<id>` room and the reader's other sockets; `typing` checks the
room from the socket's own socket.io rooms (no query), at most 5 a second per socket.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_ratios_point_towards_nexus() {
        assert_eq!(group_thousands("1234567.891"), "1,234,567.891");
        assert_eq!(group_thousands("-1234"), "-1,234");
        assert_eq!(fmt(None, 1), "—");
        assert_eq!(advantage(Some(2.0), Some(8.0), true), Some(4.0));
        assert_eq!(advantage(Some(8.0), Some(2.0), false), Some(4.0));
        assert_eq!(advantage(None, Some(2.0), false), None);
    }

    fn results(lines: &[Value]) -> Results {
        let text: Vec<String> = lines.iter().map(Value::to_string).collect();
        parse(&text.join("\n")).unwrap()
    }

    fn dm(side: &str, tag: Option<&str>, cpu_per_1k: f64) -> Value {
        serde_json::json!({
            "scenario": "dm", "side": side, "tag": tag,
            "params": { "rate": 1000.0, "duration": 10.0, "senders": 300 },
            "sent": 10000, "acked": 10000, "delivered": 10000, "lost": 0, "duplicated": 0,
            "delivery_ms": { "p99": 4.5 },
            "cpu_secs_per_1k": cpu_per_1k,
            "postgres": { "cpu_secs": 2.0, "cpu_secs_per_1k": 0.2 },
            "redis": { "cpu_secs": 0.5, "cpu_secs_per_1k": 0.05 },
        })
    }

    fn args(dir: &std::path::Path) -> Args {
        Args {
            results: dir.join("results.jsonl"),
            out: dir.join("benchmarks.md"),
            plots_dir: dir.to_path_buf(),
            plots_link: "plots/".into(),
            command: "bench/run.sh".into(),
            env_note: String::new(),
            note: vec![],
        }
    }

    fn scale_target_line(r: &Results) -> String {
        let mut md = String::new();
        scale_target(&mut md, r);
        md
    }

    #[test]
    fn scale_target_compares_four_instances_with_one() {
        let met = results(&[
            dm(OURS, Some("scale-1"), 0.5),
            dm(OURS, Some("scale-4"), 0.55),
            dm(BASE, Some("scale-1"), 1.0),
            dm(BASE, Some("scale-4"), 2.0),
        ]);
        let line = scale_target_line(&met);
        assert!(
            line.contains("0.550 s at 4 instances vs 0.500 s at 1 (4 ÷ 1 = 1.10×; baseline 2.00×)"),
            "{line}"
        );
        assert!(line.ends_with("| **met** |\n"), "{line}");

        let missed = results(&[
            dm(OURS, Some("scale-1"), 0.5),
            dm(OURS, Some("scale-4"), 0.75),
        ]);
        let line = scale_target_line(&missed);
        assert!(
            line.contains("**missed** — 1.50× instead of ≤ 1.2× (25% over the bound)"),
            "{line}"
        );
        assert!(line.contains("baseline —×"), "{line}");

        let mut slow = [
            dm(OURS, Some("scale-1"), 0.5),
            dm(OURS, Some("scale-4"), 0.55),
        ];
        for v in &mut slow {
            v["params"]["rate"] = serde_json::json!(200.0);
        }
        let line = scale_target_line(&results(&slow));
        assert!(
            line.contains("| **missed** — measured at a lower rate (quick run) |"),
            "{line}"
        );

        // A quick run stops at 2 instances: nothing to compare, and no panic.
        let quick = results(&[
            dm(OURS, Some("scale-1"), 0.5),
            dm(OURS, Some("scale-2"), 0.6),
        ]);
        let line = scale_target_line(&quick);
        assert!(line.contains("| 4 instances not run | not run |"), "{line}");
        assert!(
            scale_target_line(&results(&[]))
                .contains("| 1 instance and 4 instances not run | not run |")
        );
    }

    #[test]
    fn dm_rows_show_postgres_redis_and_the_whole_machine() {
        let dir = std::env::temp_dir().join(format!("nexus-report-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = results(&[
            dm(OURS, None, 0.4),
            dm(BASE, None, 1.2),
            dm(OURS, Some("scale-1"), 0.4),
            dm(OURS, Some("scale-2"), 0.44),
            dm(BASE, Some("scale-1"), 1.0),
        ]);
        let a = args(&dir);
        let plots = write_plots(&r, &a).unwrap();
        assert!(plots.iter().any(|(f, _)| f == SCALE_PLOT));
        let svg = std::fs::read_to_string(dir.join(SCALE_PLOT)).unwrap();
        assert!(svg.contains("Nexus: servers + PostgreSQL + Redis") && !svg.contains("NaN"));
        // The bound spans 1 to 4 instances although only 1 and 2 were run.
        assert!(
            svg.contains("target: 1.2× Nexus servers at 1 instance") && svg.contains(">4</text>")
        );
        let md = markdown(&r, &a, &plots);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            md.contains("| PostgreSQL CPU s per 1,000 messages | 0.200 | 0.200 | 1.00× |"),
            "{md}"
        );
        assert!(
            md.contains("| Redis CPU s per 1,000 messages | 0.050 | 0.050 | 1.00× |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| servers + PostgreSQL + Redis CPU s per 1,000 messages | 0.650 | 1.450 | 2.23× |"
            ),
            "{md}"
        );
        // Scale table: measured rows, the ratio to one instance, and what was not run.
        assert!(
            md.contains(
                "| Nexus Chat | 2 | 0.440 | 1.10× | 4.50 | 10,000 / 0 / 0 | 0.200 | 0.050 | 0.690 |"
            ),
            "{md}"
        );
        assert!(md.contains("| Nexus Chat | 4 | not run |"), "{md}");
        assert!(md.contains("| Node baseline | 2 | not run |"), "{md}");
        assert!(
            md.contains(
                "Plot: [DM CPU per 1,000 messages vs instances (same load)](plots/scale-cpu.svg)"
            ),
            "{md}"
        );
    }

    #[test]
    fn a_report_without_scale_runs_says_so() {
        let r = results(&[dm(OURS, None, 0.4)]);
        let dir = std::env::temp_dir();
        let md = markdown(&r, &args(&dir), &[]);
        assert!(md.contains("## Scale: the same DM load on 1, 2 and 4 instances\n\nNot run."));
        assert!(md.contains("| cost flat in the number of instances"));
        // Without PostgreSQL or Redis figures the whole-machine row has no number.
        let bare = results(&[
            serde_json::json!({"scenario": "dm", "side": "nexus", "cpu_secs_per_1k": 0.4}),
        ]);
        assert_eq!(machine_cpu_per_1k(bare.get("dm", OURS)), None);
    }
}
