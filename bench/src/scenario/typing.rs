//! `typing`: K typists each sending `typing: true` at a fixed open-loop rate (3 per second by
//! default, as a client re-announcing while the user types), half of them in group rooms (where
//! every member types, and each event goes to the other members) and half in direct pairs
//! (typing to each other). `typing` carries no client data, so an arrival is matched to the
//! typist's sends in order: the n-th `typing` a socket gets from a typist is that typist's n-th
//! send. A dropped event would shift later matches to older sends, so the latency can only be
//! overstated, never understated. Reported: delivery latency, lost and misdirected deliveries,
//! server CPU per 1,000 typing events and per 1,000 deliveries, and PostgreSQL's transactions
//! during the run (a keystroke should cost none).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::bail;
use serde_json::json;

use super::{
    fleet::{self, Emit, Handler},
    load::{Ledger, WARMUP, cpu_per_thousand, open_loop, str_field},
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
    /// Typists (one socket each): about half in rooms, the rest in direct pairs.
    #[arg(long, default_value_t = 200)]
    typists: usize,
    /// Members per room.
    #[arg(long, default_value_t = 10)]
    room_size: usize,
    /// `typing` events per second per typist (the server allows 5).
    #[arg(long, default_value_t = 3.0)]
    per_typist: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds sent at the same rate before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds to wait after the last send for outstanding deliveries.
    #[arg(long, default_value_t = 3.0)]
    drain: f64,
    /// The side's database, to count PostgreSQL's transactions during the run (optional).
    #[arg(long)]
    database_url: Option<String>,
}

/// Typists 0..in_rooms are in rooms of `size` (room t / size); the others are in pairs
/// (in_rooms + 2j, in_rooms + 2j + 1).
#[derive(Clone, Copy)]
struct Layout {
    in_rooms: usize,
    size: usize,
    total: usize,
}

impl Layout {
    fn new(typists: usize, size: usize) -> Layout {
        let in_rooms = (typists / 2) / size * size;
        let pairs = (typists - in_rooms) / 2;
        Layout {
            in_rooms,
            size,
            total: in_rooms + 2 * pairs,
        }
    }
    fn rooms(&self) -> usize {
        self.in_rooms / self.size
    }
    /// Who hears typist `t`.
    fn audience(&self, t: usize) -> usize {
        if t < self.in_rooms { self.size - 1 } else { 1 }
    }
    /// Whether `listener` should hear typist `t`.
    fn hears(&self, listener: usize, t: usize) -> bool {
        if listener == t {
            return false;
        }
        if t < self.in_rooms {
            listener < self.in_rooms && listener / self.size == t / self.size
        } else {
            listener >= self.in_rooms && (listener - self.in_rooms) / 2 == (t - self.in_rooms) / 2
        }
    }
}

struct Typing {
    ledger: Ledger,
    layout: Layout,
    index: HashMap<String, usize>,
    /// Events from someone this socket should not hear of.
    strays: AtomicU64,
    /// Arrivals that match no send yet (more arrivals than sends: duplicates).
    unmatched: AtomicU64,
}

impl Handler for Typing {
    /// Arrivals so far per typist.
    type State = HashMap<usize, u64>;

    fn event(&self, socket: u32, seen: &mut Self::State, body: &str, now: u64) -> Option<Emit> {
        if sio::event_name(body) != Some("typing") || !body.contains("\"typing\":true") {
            return None;
        }
        let typist = *self.index.get(str_field(body, "userId")?)?;
        if !self.layout.hears(socket as usize, typist) {
            self.strays.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let n = seen.entry(typist).or_default();
        let slot = *n * self.layout.total as u64 + typist as u64;
        match u32::try_from(slot).ok().and_then(|s| {
            self.ledger
                .intended_us(s)
                .filter(|&at| self.ledger.is_claimed(s) && at <= now)
                .map(|_| s)
        }) {
            Some(s) => {
                *n += 1;
                self.ledger.deliver(s, now, false);
            }
            None => {
                self.unmatched.fetch_add(1, Ordering::Relaxed);
            }
        }
        None
    }

    fn ack(&self, _: u32, _: &mut Self::State, _: (u8, u32), _: &str, _: u64) {}
}

/// Runs the scenario.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let ctx = Ctx::new(&a.common)?;
    let layout = Layout::new(a.typists.min(ctx.users.len()), a.room_size.max(2));
    if layout.total < 2 {
        bail!("{} typists are too few", a.typists);
    }
    let rate = a.per_typist * layout.total as f64;
    let warm_total = (rate * a.warmup).round() as u64;
    let total = warm_total + (rate * a.duration).round() as u64;
    let ids: Vec<String> = ctx.users[..layout.total]
        .iter()
        .map(|u| u.id.clone())
        .collect();
    let state = Arc::new(Typing {
        ledger: Ledger::new(total as usize + 16, 1),
        layout,
        index: ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect(),
        strays: AtomicU64::new(0),
        unmatched: AtomicU64::new(0),
    });
    let mut room_ids = Vec::new();
    let fleet = fleet::start(&ctx, layout.total, state.clone(), async |sockets| {
        for r in 0..layout.rooms() {
            let members: Vec<&str> = (1..layout.size)
                .map(|j| ids[r * layout.size + j].as_str())
                .collect();
            let payload = json!({ "name": format!("typing room {r}"), "memberIds": members });
            let body = fleet::call(
                &mut sockets[r * layout.size],
                r as u64 + 1,
                "room:create",
                &payload.to_string(),
            )
            .await?;
            let Some(id) = str_field(&body, "id") else {
                bail!("room:create acked without an id: {body}");
            };
            room_ids.push(id.to_owned());
        }
        Ok(())
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    ctx.wait_for_quiet_servers().await;
    let payloads: Vec<String> = (0..layout.total)
        .map(|t| {
            if t < layout.in_rooms {
                format!(
                    "{{\"roomId\":\"{}\",\"typing\":true}}",
                    room_ids[t / layout.size]
                )
            } else {
                let peer = layout.in_rooms + ((t - layout.in_rooms) ^ 1);
                format!("{{\"receiverId\":\"{}\",\"typing\":true}}", ids[peer])
            }
        })
        .collect();
    let mut measured: Option<(u64, crate::procstat::Sample, Option<pgstat::PgSample>)> = None;
    open_loop(rate, total, |k, intended| {
        if k == warm_total {
            measured = Some((
                sio::now_us(),
                ctx.sample(),
                a.database_url.as_deref().and_then(pgstat::sample),
            ));
        }
        let t = (k % layout.total as u64) as usize;
        let phase = if k < warm_total { WARMUP } else { 0 };
        if state
            .ledger
            .claim(intended, phase, layout.audience(t) as u32)
            .is_none()
        {
            return false;
        }
        fleet.send(
            t,
            Emit {
                event: "typing",
                json: payloads[t].clone(),
                ack: None,
            },
        );
        true
    })
    .await;
    state.ledger.drain(a.drain, false).await;
    let after = ctx.sample();
    let Some((started, before, pg_before)) = measured else {
        bail!("nothing was measured (duration too short)");
    };
    let pg = match (&a.database_url, &pg_before) {
        (Some(url), Some(b)) => pgstat::delta(url, b).await,
        _ => None,
    };
    let tally = state.ledger.tally(0, warm_total, total, started);
    let cpu = after.cpu_secs - before.cpu_secs;
    let mut r = tally.to_json();
    let obj = r.as_object_mut().expect("object");
    for k in [
        "acked",
        "ack_errors",
        "first_error",
        "unacked",
        "ack_ms",
        "lost_after_ack",
    ] {
        obj.remove(k);
    }
    obj.insert(
        "params".into(),
        json!({
            "typists": layout.total, "in_rooms": layout.in_rooms, "rooms": layout.rooms(),
            "room_size": layout.size, "in_pairs": layout.total - layout.in_rooms,
            "per_typist": a.per_typist, "rate": rate, "duration": a.duration, "warmup": a.warmup,
        }),
    );
    obj.insert("cpu_secs".into(), json!(cpu));
    obj.insert(
        "cpu_secs_per_1k_events".into(),
        json!(cpu_per_thousand(cpu, tally.sent)),
    );
    obj.insert(
        "cpu_secs_per_1k_deliveries".into(),
        json!(cpu_per_thousand(cpu, tally.delivered)),
    );
    obj.insert(
        "stray_deliveries".into(),
        json!(state.strays.load(Ordering::Relaxed)),
    );
    obj.insert(
        "unmatched_arrivals".into(),
        json!(state.unmatched.load(Ordering::Relaxed)),
    );
    obj.insert(
        "sockets_closed".into(),
        json!(fleet.closed.load(Ordering::Relaxed)),
    );
    obj.insert("connect".into(), fleet.connect.to_json());
    if let Some(pg) = pg {
        obj.insert("postgres".into(), pg);
    }
    eprintln!(
        "[{}] typing: {} typists at {}/s x {} s: {} events, {} of {} deliveries, lost {} stray {} unmatched {}; delivery p50 {} p99 {} ms; CPU {:.3} s/1k events; postgres {}",
        ctx.side,
        layout.total,
        a.per_typist,
        a.duration,
        r["sent"],
        r["delivered"],
        r["expected_deliveries"],
        r["lost"],
        r["stray_deliveries"],
        r["unmatched_arrivals"],
        r["delivery_ms"]["p50"],
        r["delivery_ms"]["p99"],
        r["cpu_secs_per_1k_events"].as_f64().unwrap_or(0.0),
        r.get("postgres").cloned().unwrap_or_default()
    );
    ctx.emit("typing", r)?;
    let _ = fleet.stop.send(true);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typists_are_heard_by_their_conversation_only() {
        let l = Layout::new(21, 4);
        // 10 would go to rooms: 8 (two rooms of 4); 13 left: 6 pairs.
        assert_eq!((l.in_rooms, l.total, l.rooms()), (8, 20, 2));
        assert!(l.hears(1, 0) && l.hears(3, 0) && !l.hears(4, 0) && !l.hears(0, 0));
        assert!(l.hears(9, 8) && l.hears(8, 9) && !l.hears(10, 8) && !l.hears(8, 10));
        assert_eq!((l.audience(0), l.audience(8)), (3, 1));
    }
}
