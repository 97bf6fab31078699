//! `rooms`: R group rooms of M members (one socket per user, members spread round-robin over
//! the instances), messages sent into them with `room:send` at a fixed open-loop total rate,
//! each by a member of its room in turn. Every member's socket, the sender's included, should
//! receive each `room:message` once: delivery latency is measured per member delivery from the
//! message's intended send time; lost and duplicated deliveries, deliveries to non-members, and
//! server CPU per 1,000 deliveries are reported.

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use anyhow::bail;
use serde_json::json;

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
    /// Rooms.
    #[arg(long, default_value_t = 10)]
    rooms: usize,
    /// Members per room (the owner included). Room r is users r·M .. r·M+M-1 of the pool
    /// (wrapping around, so rooms overlap when R·M exceeds the pool).
    #[arg(long, default_value_t = 100)]
    room_size: usize,
    /// Messages per second into all rooms together.
    #[arg(long, default_value_t = 100.0)]
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
    /// Bytes of padding in each message's content.
    #[arg(long, default_value_t = 64)]
    content_bytes: usize,
    /// The side's database, to report PostgreSQL's CPU and writes (optional).
    #[arg(long)]
    database_url: Option<String>,
}

/// Who is where: room r's members are users (r·M + j) mod U, j < M.
#[derive(Clone, Copy)]
struct Layout {
    rooms: usize,
    size: usize,
    users: usize,
}

impl Layout {
    fn member(&self, room: usize, j: usize) -> usize {
        (room * self.size + j) % self.users
    }
    fn is_member(&self, room: usize, user: usize) -> bool {
        let first = room * self.size % self.users;
        (user + self.users - first) % self.users < self.size
    }
}

struct Rooms {
    ledger: Ledger,
    layout: Layout,
    /// Room of each slot.
    room_of: Vec<AtomicU32>,
    /// Deliveries to a socket whose user is not a member of the message's room.
    strays: AtomicU64,
}

impl Handler for Rooms {
    /// Slots this socket already received.
    type State = HashSet<u32>;

    fn event(&self, socket: u32, seen: &mut HashSet<u32>, body: &str, now: u64) -> Option<Emit> {
        if sio::event_name(body) != Some("room:message") {
            return None;
        }
        let slot = stamp_slot(body).filter(|&s| self.ledger.is_claimed(s))?;
        let room = self.room_of[slot as usize].load(Ordering::Relaxed) as usize;
        if !self.layout.is_member(room, socket as usize) {
            self.strays.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let duplicate = !seen.insert(slot);
        self.ledger.deliver(slot, now, duplicate);
        None
    }

    fn ack(&self, _: u32, _: &mut HashSet<u32>, (_, slot): (u8, u32), body: &str, now: u64) {
        self.ledger.ack(slot, body, now);
    }
}

/// Runs the scenario.
pub async fn run(a: Args) -> anyhow::Result<()> {
    let ctx = Ctx::new(&a.common)?;
    let users = (a.rooms * a.room_size).min(ctx.users.len());
    if a.room_size < 2 || a.rooms == 0 || a.room_size > users {
        bail!(
            "{} rooms of {} members need at least {} users in the pool (have {})",
            a.rooms,
            a.room_size,
            a.room_size,
            ctx.users.len()
        );
    }
    let layout = Layout {
        rooms: a.rooms,
        size: a.room_size,
        users,
    };
    let capacity = (a.rate * (a.duration + a.warmup) * 1.05) as usize + 1000;
    let state = Arc::new(Rooms {
        ledger: Ledger::new(capacity, 1),
        layout,
        room_of: (0..capacity).map(|_| AtomicU32::new(0)).collect(),
        strays: AtomicU64::new(0),
    });
    let ids: Vec<String> = ctx.users[..users].iter().map(|u| u.id.clone()).collect();
    let mut room_ids = Vec::with_capacity(a.rooms);
    let setup_started = sio::now_us();
    let fleet = fleet::start(&ctx, users, state.clone(), async |sockets| {
        // The first member of each room creates it with everyone else in it.
        for r in 0..layout.rooms {
            let members: Vec<&str> = (1..layout.size)
                .map(|j| ids[layout.member(r, j)].as_str())
                .collect();
            let payload = json!({ "name": format!("bench room {r}"), "memberIds": members });
            let owner = layout.member(r, 0);
            let body = fleet::call(
                &mut sockets[owner],
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
    let setup_secs = (sio::now_us() - setup_started) as f64 / 1e6;
    // The baseline joins members' sockets to the socket.io room through the adapter, without
    // waiting for it: give that a moment before the first message (the warm-up covers the rest).
    tokio::time::sleep(Duration::from_millis(500)).await;
    ctx.wait_for_quiet_servers().await;
    let padding = "x".repeat(a.content_bytes);
    let run_tag = format!("{:08x}", rand::random::<u32>());
    let offer = |secs: f64, phase: u32| {
        let (state, fleet, room_ids, padding, run_tag) =
            (&state, &fleet, &room_ids, &padding, &run_tag);
        async move {
            let first = state.ledger.len();
            let total = (a.rate * secs).round() as u64;
            open_loop(a.rate, total, |k, intended| {
                let room = (k as usize) % layout.rooms;
                let turn = (k as usize / layout.rooms) % layout.size;
                let Some(slot) = state.ledger.claim(intended, phase, layout.size as u32) else {
                    return false;
                };
                state.room_of[slot as usize].store(room as u32, Ordering::Relaxed);
                let json = format!(
                    "{{\"roomId\":\"{}\",\"content\":\"bench {slot} {intended} {padding}\",\"clientMsgId\":\"{run_tag}-{slot}\"}}",
                    room_ids[room]
                );
                fleet.send(
                    layout.member(room, turn),
                    Emit {
                        event: "room:send",
                        json,
                        ack: Some((0, slot)),
                    },
                );
                true
            })
            .await;
            (first, state.ledger.len())
        }
    };
    offer(a.warmup, WARMUP).await;
    let pg_before = a.database_url.as_deref().and_then(pgstat::sample);
    let before = ctx.sample();
    let started = sio::now_us();
    let (from, to) = offer(a.duration, 0).await;
    state.ledger.drain(a.drain, true).await;
    let after = ctx.sample();
    let tally = state.ledger.tally(0, from, to, started);
    let cpu = after.cpu_secs - before.cpu_secs;
    let pg = match (&a.database_url, &pg_before) {
        (Some(url), Some(b)) => pgstat::delta(url, b).await,
        _ => None,
    };
    let mut r = tally.to_json();
    let obj = r.as_object_mut().expect("object");
    obj.insert(
        "params".into(),
        json!({
            "rooms": a.rooms, "room_size": a.room_size, "users": users, "rate": a.rate,
            "duration": a.duration, "warmup": a.warmup, "content_bytes": a.content_bytes,
        }),
    );
    obj.insert("setup_secs".into(), json!(setup_secs));
    obj.insert("cpu_secs".into(), json!(cpu));
    obj.insert(
        "cpu_secs_per_1k_deliveries".into(),
        json!(cpu_per_thousand(cpu, tally.delivered)),
    );
    obj.insert(
        "cpu_secs_per_1k_messages".into(),
        json!(cpu_per_thousand(cpu, tally.acked)),
    );
    obj.insert(
        "stray_deliveries".into(),
        json!(state.strays.load(Ordering::Relaxed)),
    );
    obj.insert(
        "lost_including_warmup".into(),
        json!(state.ledger.lost_in(0, to)),
    );
    obj.insert(
        "sockets_closed".into(),
        json!(fleet.closed.load(Ordering::Relaxed)),
    );
    obj.insert("connect".into(), fleet.connect.to_json());
    obj.insert("rss_after_bytes".into(), json!(after.rss_bytes));
    if let Some(pg) = pg {
        obj.insert("postgres".into(), pg);
    }
    eprintln!(
        "[{}] rooms {}x{} at {} msg/s x {} s: {} msgs, {} of {} deliveries ({}/s), lost {} dup {} stray {}; delivery p50 {} p99 {} ms; ack p99 {} ms; CPU {:.3} s/1k deliveries",
        ctx.side,
        a.rooms,
        a.room_size,
        a.rate,
        a.duration,
        r["sent"],
        r["delivered"],
        r["expected_deliveries"],
        r["delivered_per_sec"],
        r["lost"],
        r["duplicated"],
        r["stray_deliveries"],
        r["delivery_ms"]["p50"],
        r["delivery_ms"]["p99"],
        r["ack_ms"]["p99"],
        r["cpu_secs_per_1k_deliveries"].as_f64().unwrap_or(0.0)
    );
    ctx.emit("rooms", r)?;
    let _ = fleet.stop.send(true);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_follows_the_layout_also_when_rooms_wrap() {
        let l = Layout {
            rooms: 3,
            size: 4,
            users: 10,
        };
        for r in 0..3 {
            let members: Vec<usize> = (0..4).map(|j| l.member(r, j)).collect();
            for u in 0..10 {
                assert_eq!(l.is_member(r, u), members.contains(&u), "room {r} user {u}");
            }
        }
        assert_eq!(l.member(2, 3), 1);
    }
}
