//! `history`: seeds a large message table straight into PostgreSQL (COPY through `psql`), then
//! pages conversations back with `message:history` `{receiverId, before, limit}` and reports
//! per-page latency. Pages are checked against the seeded ids, so a fast wrong answer fails.

use std::{
    io::Write,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use rand::Rng;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::{
    context::{Common, ConnectStats, Ctx, connect_many},
    sio::{self, Packet, Ws},
    stats,
};

/// Which server's tables to seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Schema {
    /// Nexus Chat: `messages` (seq = commit order) plus the `conversations` summary.
    Nexus,
    /// The Node.js baseline: `messages` only.
    Node,
}

/// Options.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// PostgreSQL URL of the server's database (for seeding).
    #[arg(long)]
    database_url: String,
    /// Whose schema the database has.
    #[arg(long, value_enum)]
    schema: Schema,
    /// Messages to seed, spread over the conversations.
    #[arg(long, default_value_t = 100_000)]
    messages: usize,
    /// Conversations (pairs of users taken from the end of the pool).
    #[arg(long, default_value_t = 100)]
    conversations: usize,
    /// Concurrent readers.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Measured requests.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Unmeasured requests first.
    #[arg(long, default_value_t = 100)]
    warmup_requests: usize,
    /// Pages read per walk before starting another one.
    #[arg(long, default_value_t = 20)]
    pages: usize,
    /// Page size.
    #[arg(long, default_value_t = 50)]
    limit: usize,
}

struct Conversation {
    /// The user whose socket reads (index in the pool).
    reader: usize,
    /// The other participant's id.
    peer: String,
    /// Seeded message ids, oldest first.
    ids: Vec<Uuid>,
}

/// Runs the scenario.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let ctx = Ctx::new(&a.common)?;
    let c = a.conversations.max(1);
    if ctx.users.len() < 2 * c {
        bail!(
            "{c} conversations need {} users in the pool (have {})",
            2 * c,
            ctx.users.len()
        );
    }
    let base = ctx.users.len() - 2 * c;
    let mut convs: Vec<Conversation> = (0..c)
        .map(|k| Conversation {
            reader: base + 2 * k,
            peer: ctx.users[base + 2 * k + 1].id.clone(),
            ids: Vec::with_capacity(a.messages / c + 1),
        })
        .collect();
    let seed_started = Instant::now();
    seed(&ctx, &a, &mut convs)?;
    let seed_secs = seed_started.elapsed().as_secs_f64();
    eprintln!(
        "[{}] history: seeded {} messages in {seed_secs:.1} s",
        ctx.side, a.messages
    );
    let convs = Arc::new(convs);

    // One socket per conversation reader; walker j owns conversations j, j+K, ...
    let readers: Vec<usize> = convs.iter().map(|cv| cv.reader).collect();
    let connect = Arc::new(ConnectStats::default());
    let mut sockets = connect_readers(&ctx, &readers, connect.clone()).await?;
    ctx.wait_for_quiet_servers().await;
    let k = a.clients.clamp(1, c);
    let mut owned: Vec<Vec<(usize, Ws)>> = (0..k).map(|_| Vec::new()).collect();
    for (i, ws) in sockets.drain(..).enumerate() {
        owned[i % k].push((i, ws));
    }
    let total = a.requests + a.warmup_requests;
    let per_walker = total.div_ceil(k);
    let warm_per_walker = a.warmup_requests.div_ceil(k);
    let before = ctx.sample();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mine in owned {
        let convs = convs.clone();
        let (pages, limit) = (a.pages, a.limit);
        tasks.push(tokio::spawn(walker(
            mine,
            convs,
            per_walker,
            warm_per_walker,
            pages,
            limit,
        )));
    }
    let mut all = stats::new_hist();
    let mut first = stats::new_hist();
    let mut deep = stats::new_hist();
    let (mut errors, mut wrong, mut done) = (0u64, 0u64, 0u64);
    let mut first_problem: Option<String> = None;
    for t in tasks {
        let w = t.await?;
        all.add(&w.all)?;
        first.add(&w.first)?;
        deep.add(&w.deep)?;
        errors += w.errors;
        wrong += w.wrong;
        done += w.done;
        if first_problem.is_none() {
            first_problem = w.problem;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let after = ctx.sample();
    let result = json!({
        "params": { "messages": a.messages, "conversations": c, "clients": k, "requests": a.requests,
                    "pages_per_walk": a.pages, "limit": a.limit },
        "seed_secs": seed_secs,
        "requests_done": done,
        "errors": errors,
        "wrong_pages": wrong,
        "first_problem": first_problem,
        "pages_per_sec": (done as f64 / secs).round(),
        "page_ms": stats::summary(&all),
        "latest_page_ms": stats::summary(&first),
        "older_page_ms": stats::summary(&deep),
        "page_cdf": stats::cdf(&all),
        "cpu_secs": after.cpu_secs - before.cpu_secs,
        "connect": connect.to_json(),
    });
    eprintln!(
        "[{}] history: {} pages of {} ({} errors, {} wrong): p50 {} ms p99 {} ms max {} ms ({}/s)",
        ctx.side,
        done,
        a.limit,
        errors,
        wrong,
        result["page_ms"]["p50"],
        result["page_ms"]["p99"],
        result["page_ms"]["max"],
        result["pages_per_sec"]
    );
    ctx.emit("history", result)
}

async fn connect_readers(
    ctx: &Ctx,
    readers: &[usize],
    stats: Arc<ConnectStats>,
) -> anyhow::Result<Vec<Ws>> {
    // connect_many maps socket i to user i; build a view of the pool with the readers first.
    let mut sockets = Vec::with_capacity(readers.len());
    let sub = ctx.subset(readers);
    for ws in connect_many(&sub, readers.len(), 32, stats.clone()).await {
        sockets.push(ws.context("a history reader failed to connect")?);
    }
    Ok(sockets)
}

struct WalkResult {
    all: Histogram<u64>,
    first: Histogram<u64>,
    deep: Histogram<u64>,
    errors: u64,
    wrong: u64,
    done: u64,
    problem: Option<String>,
}

async fn walker(
    mut mine: Vec<(usize, Ws)>,
    convs: Arc<Vec<Conversation>>,
    requests: usize,
    warmup: usize,
    pages: usize,
    limit: usize,
) -> WalkResult {
    let mut r = WalkResult {
        all: stats::new_hist(),
        first: stats::new_hist(),
        deep: stats::new_hist(),
        errors: 0,
        wrong: 0,
        done: 0,
        problem: None,
    };
    let mut ack_id = 0u64;
    let mut n = 0usize;
    while n < requests {
        let pick = rand::rng().random_range(0..mine.len());
        let (ci, ws) = &mut mine[pick];
        let cv = &convs[*ci];
        // Half the walks start at the latest message, half at a random depth.
        let mut end = if rand::rng().random_bool(0.5) || cv.ids.len() <= limit {
            cv.ids.len()
        } else {
            rand::rng().random_range(limit..cv.ids.len())
        };
        for _ in 0..pages {
            if n >= requests || end == 0 {
                break;
            }
            let latest = end == cv.ids.len();
            let payload = if latest {
                format!("{{\"receiverId\":\"{}\",\"limit\":{limit}}}", cv.peer)
            } else {
                format!(
                    "{{\"receiverId\":\"{}\",\"before\":\"{}\",\"limit\":{limit}}}",
                    cv.peer, cv.ids[end]
                )
            };
            ack_id += 1;
            let t0 = Instant::now();
            let reply = request(ws, ack_id, &payload).await;
            let us = t0.elapsed().as_micros() as u64;
            n += 1;
            let measured = n > warmup;
            let want_from = end.saturating_sub(limit);
            match reply {
                Ok(body) => {
                    if let Err(why) = check_page(&body, &cv.ids[want_from..end]) {
                        r.wrong += 1;
                        r.problem.get_or_insert(why);
                    }
                }
                Err(e) => {
                    r.errors += 1;
                    r.problem.get_or_insert(e.to_string());
                    break;
                }
            }
            if measured {
                r.done += 1;
                stats::record(&mut r.all, us);
                stats::record(if latest { &mut r.first } else { &mut r.deep }, us);
            }
            end = want_from;
        }
    }
    r
}

/// Sends one `message:history` and waits for its ack, answering pings meanwhile.
async fn request(ws: &mut Ws, id: u64, payload: &str) -> anyhow::Result<String> {
    ws.send(sio::emit_with_ack(id, "message:history", payload))
        .await?;
    let wait = async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => match sio::parse(t.as_str()) {
                    Packet::Ack(got, body) if got == id => return Ok(body.to_owned()),
                    Packet::Ping => ws.send(sio::pong()).await?,
                    Packet::Close | Packet::Disconnect => bail!("server closed the socket"),
                    _ => {}
                },
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => bail!("socket closed"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .context("history ack timed out")?
}

/// The ack `[[m, ...]]` must hold exactly `want`, oldest first.
fn check_page(body: &str, want: &[Uuid]) -> Result<(), String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("bad ack JSON: {e}"))?;
    let page = v.get(0).and_then(Value::as_array).ok_or_else(|| {
        format!(
            "ack is not a list of messages: {}",
            body.chars().take(200).collect::<String>()
        )
    })?;
    let got: Vec<&str> = page
        .iter()
        .filter_map(|m| m.get("id").and_then(Value::as_str))
        .collect();
    if got.len() != want.len() {
        return Err(format!(
            "expected {} messages, got {}",
            want.len(),
            got.len()
        ));
    }
    for (g, w) in got.iter().zip(want) {
        if *g != w.to_string() {
            return Err(format!("expected message {w}, got {g}"));
        }
    }
    Ok(())
}

/// COPYs the messages into the server's database through `psql`, then updates derived tables.
fn seed(ctx: &Ctx, a: &Args, convs: &mut [Conversation]) -> anyhow::Result<()> {
    let mut child = Command::new("psql")
        .arg(&a.database_url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c"])
        .arg("COPY messages (id, sender_id, receiver_id, peer_lo, peer_hi, content, created_at) FROM STDIN")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("starting psql (is it installed?)")?;
    let stdin = child.stdin.take().context("psql stdin")?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdin);
    let c = convs.len();
    let ids: Vec<(Uuid, Uuid)> = convs
        .iter()
        .map(|cv| -> anyhow::Result<(Uuid, Uuid)> {
            Ok((ctx.users[cv.reader].id.parse()?, cv.peer.parse()?))
        })
        .collect::<anyhow::Result<_>>()?;
    // Spaced 1 ms apart, ending an hour ago, so the ids' v7 timestamps are increasing too.
    let base_ms = chrono::Utc::now().timestamp_millis() - 3_600_000 - a.messages as i64;
    for i in 0..a.messages {
        let k = i % c;
        let (reader, peer) = ids[k];
        let (sender, receiver) = if (i / c).is_multiple_of(2) {
            (reader, peer)
        } else {
            (peer, reader)
        };
        let (lo, hi) = if reader < peer {
            (reader, peer)
        } else {
            (peer, reader)
        };
        let ms = base_ms + i as i64;
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            (ms / 1000) as u64,
            ((ms % 1000) * 1_000_000) as u32,
        );
        let id = Uuid::new_v7(ts);
        convs[k].ids.push(id);
        let at = chrono::DateTime::from_timestamp_millis(ms).context("timestamp")?;
        writeln!(
            out,
            "{id}\t{sender}\t{receiver}\t{lo}\t{hi}\tseeded message {i} of the history benchmark, some ordinary chat text\t{}",
            at.format("%Y-%m-%d %H:%M:%S%.3f+00")
        )?;
    }
    out.flush()?;
    drop(out);
    let status = child.wait()?;
    if !status.success() {
        bail!("psql COPY failed: {status}");
    }
    // Nexus's conversation summaries, derived from the seeded rows; the baseline has none.
    let (derive, tables): (Option<&str>, &[&str]) = match a.schema {
        // Direct conversations only: the rooms scenario may have left room messages (no receiver).
        Schema::Nexus => (
            Some(
                "INSERT INTO conversations (owner_id, peer_id, last_seq) \
                 SELECT o, p, max(seq) FROM (SELECT sender_id o, receiver_id p, seq FROM messages \
                 WHERE receiver_id IS NOT NULL \
                 UNION ALL SELECT receiver_id, sender_id, seq FROM messages WHERE receiver_id IS NOT NULL) x \
                 GROUP BY o, p \
                 ON CONFLICT (owner_id, peer_id) DO UPDATE SET last_seq = GREATEST(conversations.last_seq, EXCLUDED.last_seq)",
            ),
            &["messages", "conversations"],
        ),
        Schema::Node => (None, &["messages"]),
    };
    // Vacuumed here, not by autovacuum some time later: a million new rows start it within a
    // minute, and its pass over them landed in whatever ran next (the one-instance scale run:
    // 0.505 s of CPU per 1,000 messages and p99 479 ms, against 0.230 s and 6.9 ms once the
    // seeding vacuums). Each -c is its own transaction, as VACUUM needs.
    let mut psql = Command::new("psql");
    psql.arg(&a.database_url)
        .args(["-v", "ON_ERROR_STOP=1", "-q"]);
    if let Some(sql) = derive {
        psql.args(["-c", sql]);
    }
    for table in tables {
        psql.args(["-c", &format!("VACUUM (ANALYZE) {table}")]);
    }
    let status = psql.stdout(Stdio::null()).status()?;
    if !status.success() {
        bail!("psql post-seed step failed: {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_must_match_the_seeded_ids_in_order() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let body = format!(r#"[[{{"id":"{a}"}},{{"id":"{b}"}}]]"#);
        assert!(check_page(&body, &[a, b]).is_ok());
        assert!(check_page(&body, &[b, a]).is_err());
        assert!(check_page(&body, &[a]).is_err());
        assert!(check_page(r#"[{"error":{"code":"internal"}}]"#, &[a]).is_err());
    }
}
