//! `read`: N direct pairs (sender and reader on different instances); senders send at a fixed
//! open-loop total rate, and each reader marks every message read the moment it arrives
//! (`conversation:read {receiverId, upTo}` per message, like a client that marks on display).
//! Reported: the mark's ack latency (from the message's arrival at the reader), the receipt's
//! latency at the sender, the message delivery latency with marks going on, server CPU per
//! 1,000 marks, Nexus's cursor batching from `/metrics`, and PostgreSQL's CPU and writes per
//! 1,000 marks when the side's database is given.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
};

use anyhow::bail;
use serde_json::{Value, json};

use super::{
    fleet::{self, Emit, Handler},
    load::{Ledger, WARMUP, cpu_per_thousand, open_loop, stamp_slot, str_field},
};
use crate::{
    context::{Common, Ctx},
    pgstat, sio,
};

/// Options.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    /// Readers (each paired with its own sender: 2·N users).
    #[arg(long, default_value_t = 150)]
    readers: usize,
    /// Messages per second, all senders together (each one marked read once).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds sent at the same rate before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds to wait after the last send for outstanding acks and deliveries.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// The side's database, to report PostgreSQL's CPU and writes (optional).
    #[arg(long)]
    database_url: Option<String>,
}

/// Ack kinds.
const SEND: u8 = 0;
const MARK: u8 = 1;

struct Reads {
    /// One entry per message: its ack at the sender, its delivery at the reader.
    messages: Ledger,
    /// One entry per mark, intended = the message's arrival: its ack at the reader, the
    /// receipt at the sender as its delivery.
    marks: Ledger,
    /// Mark slot of each message slot (+1; 0 = not marked yet).
    mark_of: Vec<AtomicU32>,
    /// User ids, socket i = user i.
    ids: Vec<String>,
    /// Receipts naming a message this sender does not know (yet).
    unmatched_receipts: AtomicU64,
}

/// Per socket: the sender's messages by id (from their acks), to match receipts.
#[derive(Default)]
struct Sent {
    by_id: HashMap<String, u32>,
}

impl Handler for Reads {
    type State = Sent;

    fn event(&self, socket: u32, sent: &mut Sent, body: &str, now: u64) -> Option<Emit> {
        match sio::event_name(body) {
            Some("message:new") => {
                let slot = stamp_slot(body).filter(|&s| self.messages.is_claimed(s))?;
                // The reader is the odd socket of the pair; the sender's own copy is not marked.
                if socket.is_multiple_of(2) {
                    return None;
                }
                let first = self.messages.delivered(slot) == 0;
                self.messages.deliver(slot, now, !first);
                if !first {
                    return None;
                }
                let id = str_field(body, "id")?;
                let phase = self.messages.phase_of(slot).unwrap_or(WARMUP);
                let mark = self.marks.claim(now, phase, 1)?;
                self.mark_of[slot as usize].store(mark + 1, Ordering::Relaxed);
                let peer = &self.ids[socket as usize - 1];
                Some(Emit {
                    event: "conversation:read",
                    json: format!("{{\"receiverId\":\"{peer}\",\"upTo\":\"{id}\"}}"),
                    ack: Some((MARK, mark)),
                })
            }
            Some("conversation:read") if socket.is_multiple_of(2) => {
                let up_to = str_field(body, "upTo")?;
                match sent
                    .by_id
                    .remove(up_to)
                    .map(|s| self.mark_of[s as usize].load(Ordering::Relaxed))
                {
                    Some(m) if m > 0 => self.marks.deliver(m - 1, now, false),
                    _ => {
                        self.unmatched_receipts.fetch_add(1, Ordering::Relaxed);
                    }
                }
                None
            }
            _ => None,
        }
    }

    fn ack(&self, _: u32, sent: &mut Sent, (kind, slot): (u8, u32), body: &str, now: u64) {
        if kind == SEND {
            self.messages.ack(slot, body, now);
            if let Some(id) = str_field(body, "id") {
                sent.by_id.insert(id.to_owned(), slot);
            }
        } else {
            self.marks.ack(slot, body, now);
        }
    }
}

/// Sums a Nexus counter over the instances (None for the baseline).
async fn cursor_counters(ctx: &Ctx) -> (Option<f64>, Option<f64>) {
    (
        fleet::metric_sum(ctx, "nexus_read_cursor_moves_total").await,
        fleet::metric_sum(ctx, "nexus_read_cursor_batches_total").await,
    )
}

fn diff(after: Option<f64>, before: Option<f64>) -> Option<f64> {
    Some(after? - before?)
}

/// Runs the scenario.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let ctx = Ctx::new(&a.common)?;
    let n = a.readers.max(1);
    if ctx.users.len() < 2 * n {
        bail!("{n} readers need {} users, have {}", 2 * n, ctx.users.len());
    }
    let capacity = (a.rate * (a.duration + a.warmup) * 1.05) as usize + 1000;
    let state = Arc::new(Reads {
        messages: Ledger::new(capacity, 1),
        marks: Ledger::new(capacity, 1),
        mark_of: (0..capacity).map(|_| AtomicU32::new(0)).collect(),
        ids: ctx.users[..2 * n].iter().map(|u| u.id.clone()).collect(),
        unmatched_receipts: AtomicU64::new(0),
    });
    let fleet = fleet::start(&ctx, 2 * n, state.clone(), async |_| Ok(())).await?;
    ctx.wait_for_quiet_servers().await;
    let run_tag = format!("{:08x}", rand::random::<u32>());
    let rate = a.rate;
    let offer = |secs: f64, phase: u32| {
        let (state, fleet, run_tag) = (&state, &fleet, &run_tag);
        async move {
            let first = state.messages.len();
            open_loop(rate, (rate * secs).round() as u64, |k, intended| {
                let pair = (k as usize) % n;
                let Some(slot) = state.messages.claim(intended, phase, 1) else {
                    return false;
                };
                let reader = &state.ids[2 * pair + 1];
                fleet.send(
                    2 * pair,
                    Emit {
                        event: "message:send",
                        json: format!(
                            "{{\"receiverId\":\"{reader}\",\"content\":\"bench {slot} {intended} read\",\"clientMsgId\":\"{run_tag}-{slot}\"}}"
                        ),
                        ack: Some((SEND, slot)),
                    },
                );
                true
            })
            .await;
            (first, state.messages.len())
        }
    };
    offer(a.warmup, WARMUP).await;
    state.messages.drain(a.drain, true).await;
    let marks_from = state.marks.len();
    let counters_before = cursor_counters(&ctx).await;
    let pg_before = a.database_url.as_deref().and_then(pgstat::sample);
    let before = ctx.sample();
    let started = sio::now_us();
    let (from, to) = offer(a.duration, 0).await;
    state.messages.drain(a.drain, true).await;
    state.marks.drain(a.drain, true).await;
    let after = ctx.sample();
    let counters_after = cursor_counters(&ctx).await;
    let pg = match (&a.database_url, &pg_before) {
        (Some(url), Some(b)) => pgstat::delta(url, b).await,
        _ => None,
    };
    let msgs = state.messages.tally(0, from, to, started);
    let marks = state.marks.tally(0, marks_from, state.marks.len(), started);
    let cpu = after.cpu_secs - before.cpu_secs;
    let moves = diff(counters_after.0, counters_before.0);
    let batches = diff(counters_after.1, counters_before.1);
    let per_1k_marks = |v: Option<f64>| v.map(|v| cpu_per_thousand(v, marks.acked));
    let pg_json = pg.map(|p| {
        let mut p = p;
        let per = |k: &str| p[k].as_f64().map(|v| cpu_per_thousand(v, marks.acked));
        let extra = json!({
            "cpu_secs_per_1k_marks": per("cpu_secs"),
            "transactions_per_1k_marks": per("transactions"),
            "rows_written_per_1k_marks": per("rows_written"),
        });
        if let (Some(o), Value::Object(e)) = (p.as_object_mut(), extra) {
            o.extend(e);
        }
        p
    });
    let mut m = marks.to_json();
    if let Some(o) = m.as_object_mut() {
        // For a mark, "delivery" is the receipt reaching the sender.
        for (from_key, to_key) in [
            ("delivered", "receipts"),
            ("delivery_ms", "receipt_ms"),
            ("lost", "receipts_missing"),
        ] {
            if let Some(v) = o.remove(from_key) {
                o.insert(to_key.into(), v);
            }
        }
        for k in [
            "delivery_cdf",
            "lost_after_ack",
            "expected_deliveries",
            "delivered_per_sec",
        ] {
            o.remove(k);
        }
    }
    let r = json!({
        "params": { "readers": n, "rate": a.rate, "duration": a.duration, "warmup": a.warmup },
        "messages": msgs.to_json(),
        "marks": m,
        "unmatched_receipts": state.unmatched_receipts.load(Ordering::Relaxed),
        "cpu_secs": cpu,
        "cpu_secs_per_1k_marks": cpu_per_thousand(cpu, marks.acked),
        "cursor_moves": moves,
        "cursor_batches": batches,
        "moves_per_batch": match (moves, batches) { (Some(m), Some(b)) if b > 0.0 => Some(m / b), _ => None },
        "cursor_batches_per_1k_marks": per_1k_marks(batches),
        "postgres": pg_json,
        "sockets_closed": fleet.closed.load(Ordering::Relaxed),
        "connect": fleet.connect.to_json(),
    });
    eprintln!(
        "[{}] read {} msg/s x {} s, {n} readers: {} marks acked ({} errors), mark ack p50 {} p99 {} ms; receipts {} p99 {} ms; delivery p99 {} ms; CPU {:.3} s/1k marks; moves/batch {:?}; postgres {}",
        ctx.side,
        a.rate,
        a.duration,
        r["marks"]["acked"],
        r["marks"]["ack_errors"],
        r["marks"]["ack_ms"]["p50"],
        r["marks"]["ack_ms"]["p99"],
        r["marks"]["receipts"],
        r["marks"]["receipt_ms"]["p99"],
        r["messages"]["delivery_ms"]["p99"],
        r["cpu_secs_per_1k_marks"].as_f64().unwrap_or(0.0),
        r["moves_per_batch"].as_f64(),
        r["postgres"]
    );
    ctx.emit("read", r)?;
    let _ = fleet.stop.send(true);
    Ok(())
}
