//! What every load-generating scenario shares: the open-loop pacing of starts (connects,
//! sends, typing events) and the bookkeeping of what was sent, acked and delivered.
//!
//! Pacing is open loop: the `k`-th start is due at `start + k / rate` whatever happened to the
//! earlier ones, and each start carries that intended time, so a slow generator or server shows
//! up as latency, never as a lower offered rate (no coordinated omission).
//!
//! The [`Ledger`] has one entry per start (a message, a mark, a typing event): its intended time,
//! its phase (warm-up or a measured step), its ack, and how many deliveries it expects and got.
//! Socket tasks report acks and deliveries into it; [`Ledger::tally`] turns a range of entries
//! into the counts and latency histograms every scenario reports.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::{sio, stats};

/// Calls `start(k, intended_us)` for `k` in `0..total`, each when it is due at `rate` per
/// second from now (every start that fell due since the last wake-up is released at once).
/// Stops early when `start` returns false. Returns how many were started.
pub async fn open_loop(rate: f64, total: u64, mut start: impl FnMut(u64, u64) -> bool) -> u64 {
    let rate = rate.max(1e-3);
    let begin = sio::now_us() + 1000;
    let mut k = 0u64;
    while k < total {
        let now = sio::now_us();
        let due = if now < begin {
            0
        } else {
            (((now - begin) as f64 * rate / 1e6) as u64 + 1).min(total)
        };
        while k < due {
            if !start(k, begin + (k as f64 * 1e6 / rate) as u64) {
                return k;
            }
            k += 1;
        }
        if k < total {
            // Sleep until the next start is due (at least the timer's resolution).
            let next = begin + (k as f64 * 1e6 / rate) as u64;
            let wait = next.saturating_sub(sio::now_us()).clamp(500, 50_000);
            tokio::time::sleep(Duration::from_micros(wait)).await;
        }
    }
    k
}

/// Server CPU seconds per 1,000 of something (0 when there were none).
pub fn cpu_per_thousand(cpu_secs: f64, count: u64) -> f64 {
    if count > 0 {
        cpu_secs / (count as f64 / 1000.0)
    } else {
        0.0
    }
}

/// Phase number of warm-up entries: tracked for loss, never recorded in histograms.
pub const WARMUP: u32 = u32::MAX;

/// Ack states of an entry.
const UNACKED: u8 = 0;
const ACKED: u8 = 1;
const ACK_ERROR: u8 = 2;

/// One start's fate.
#[derive(Default)]
struct Entry {
    intended_us: AtomicU64,
    phase: AtomicU32,
    acked: AtomicU8,
    /// Deliveries this entry should get (recipients).
    expected: AtomicU32,
    /// Distinct recipients that got it.
    delivered: AtomicU32,
    /// Copies beyond the first per recipient.
    duplicates: AtomicU32,
}

#[derive(Default)]
struct PhaseData {
    ack: Option<Histogram<u64>>,
    delivery: Option<Histogram<u64>>,
    last_delivery_us: u64,
    first_error: Option<String>,
}

/// Shared by the scheduler and every socket task of a scenario.
pub struct Ledger {
    entries: Vec<Entry>,
    next: AtomicU64,
    phases: Vec<Mutex<PhaseData>>,
    acked: AtomicU64,
    expected: AtomicU64,
    delivered: AtomicU64,
    /// Socket tasks that ended before the stop signal (server closed or socket failed).
    pub closed: AtomicU64,
}

impl Ledger {
    /// Room for `capacity` entries in `phases` measured phases (plus the warm-up).
    pub fn new(capacity: usize, phases: usize) -> Ledger {
        Ledger {
            entries: (0..capacity).map(|_| Entry::default()).collect(),
            next: AtomicU64::new(0),
            phases: (0..phases)
                .map(|_| Mutex::new(PhaseData::default()))
                .collect(),
            acked: AtomicU64::new(0),
            expected: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            closed: AtomicU64::new(0),
        }
    }

    /// Entries claimed so far (the next entry's number).
    pub fn len(&self) -> u64 {
        self.next
            .load(Ordering::Relaxed)
            .min(self.entries.len() as u64)
    }

    /// Claims the next entry, due at `intended_us`, expecting `expected` deliveries; None when
    /// the ledger is full.
    pub fn claim(&self, intended_us: u64, phase: u32, expected: u32) -> Option<u32> {
        let slot = self.next.fetch_add(1, Ordering::Relaxed);
        let e = self.entries.get(slot as usize)?;
        e.intended_us.store(intended_us, Ordering::Relaxed);
        e.phase.store(phase, Ordering::Relaxed);
        e.expected.store(expected, Ordering::Relaxed);
        self.expected
            .fetch_add(u64::from(expected), Ordering::Relaxed);
        Some(slot as u32)
    }

    /// When entry `slot` was due (µs on the shared clock).
    pub fn intended_us(&self, slot: u32) -> Option<u64> {
        self.entries
            .get(slot as usize)
            .map(|e| e.intended_us.load(Ordering::Relaxed))
    }

    /// The phase of entry `slot`.
    pub fn phase_of(&self, slot: u32) -> Option<u32> {
        self.entries
            .get(slot as usize)
            .map(|e| e.phase.load(Ordering::Relaxed))
    }

    /// Whether `slot` names a claimed entry.
    pub fn is_claimed(&self, slot: u32) -> bool {
        u64::from(slot) < self.len()
    }

    fn phase(&self, e: &Entry) -> Option<&Mutex<PhaseData>> {
        self.phases.get(e.phase.load(Ordering::Relaxed) as usize)
    }

    /// Records the ack of `slot` at `now_us`; `body` is its argument array (an error ack starts
    /// with `[{"error"`). Ack latency runs from the intended time.
    pub fn ack(&self, slot: u32, body: &str, now_us: u64) {
        let Some(e) = self.entries.get(slot as usize) else {
            return;
        };
        let failed = body.starts_with("[{\"error\"");
        e.acked
            .store(if failed { ACK_ERROR } else { ACKED }, Ordering::Relaxed);
        self.acked.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = self.phase(e) {
            let mut p = p.lock().unwrap();
            if failed {
                p.first_error
                    .get_or_insert_with(|| body.chars().take(200).collect());
            } else {
                let lat = now_us.saturating_sub(e.intended_us.load(Ordering::Relaxed));
                stats::record(p.ack.get_or_insert_with(stats::new_hist), lat);
            }
        }
    }

    /// Records one delivery of `slot` at `now_us`; `duplicate` when this recipient already had
    /// it (the caller knows its recipients). Delivery latency runs from the intended time.
    pub fn deliver(&self, slot: u32, now_us: u64, duplicate: bool) {
        let Some(e) = self.entries.get(slot as usize) else {
            return;
        };
        if duplicate {
            e.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        e.delivered.fetch_add(1, Ordering::Relaxed);
        self.delivered.fetch_add(1, Ordering::Relaxed);
        if let Some(p) = self.phase(e) {
            let mut p = p.lock().unwrap();
            let lat = now_us.saturating_sub(e.intended_us.load(Ordering::Relaxed));
            stats::record(p.delivery.get_or_insert_with(stats::new_hist), lat);
            p.last_delivery_us = p.last_delivery_us.max(now_us);
        }
    }

    /// Deliveries of `slot` so far (distinct recipients).
    pub fn delivered(&self, slot: u32) -> u32 {
        self.entries
            .get(slot as usize)
            .map_or(0, |e| e.delivered.load(Ordering::Relaxed))
    }

    /// Waits until every entry so far is acked (when `acks`) and fully delivered, or `secs`
    /// pass; then a little longer for duplicates to show up.
    pub async fn drain(&self, secs: f64, acks: bool) {
        let deadline = sio::now_us() + (secs * 1e6) as u64;
        let total = self.len();
        while sio::now_us() < deadline {
            let acked = !acks || self.acked.load(Ordering::Relaxed) >= total;
            let delivered =
                self.delivered.load(Ordering::Relaxed) >= self.expected.load(Ordering::Relaxed);
            if acked && delivered {
                tokio::time::sleep(Duration::from_millis(100)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Counts and histograms of the entries `from..to` of `phase`.
    pub fn tally(&self, phase: u32, from: u64, to: u64, started_us: u64) -> Tally {
        let mut t = Tally::default();
        let to = to.min(self.entries.len() as u64);
        for e in &self.entries[from as usize..to as usize] {
            if e.phase.load(Ordering::Relaxed) != phase {
                continue;
            }
            t.sent += 1;
            let expected = u64::from(e.expected.load(Ordering::Relaxed));
            let delivered = u64::from(e.delivered.load(Ordering::Relaxed));
            let acked = e.acked.load(Ordering::Relaxed);
            match acked {
                ACKED => t.acked += 1,
                ACK_ERROR => t.ack_errors += 1,
                UNACKED => t.unacked += 1,
                _ => unreachable!("ack states are 0, 1 and 2"),
            }
            t.expected += expected;
            t.delivered += delivered.min(expected);
            t.duplicated += u64::from(e.duplicates.load(Ordering::Relaxed))
                + delivered.saturating_sub(expected);
            // An error ack means "not stored": nothing is owed for it.
            if acked != ACK_ERROR {
                let missing = expected.saturating_sub(delivered);
                t.lost += missing;
                if acked == ACKED {
                    t.lost_after_ack += missing;
                }
            }
        }
        if let Some(p) = self.phases.get(phase as usize) {
            let p = p.lock().unwrap();
            t.ack = p.ack.clone();
            t.delivery = p.delivery.clone();
            t.first_error = p.first_error.clone();
            t.span_secs = p.last_delivery_us.saturating_sub(started_us).max(1) as f64 / 1e6;
        }
        t
    }

    /// Deliveries owed but missing over entries `from..to` of every phase, warm-up included.
    pub fn lost_in(&self, from: u64, to: u64) -> u64 {
        let to = to.min(self.entries.len() as u64);
        self.entries[from as usize..to as usize]
            .iter()
            .filter(|e| e.acked.load(Ordering::Relaxed) != ACK_ERROR)
            .map(|e| {
                u64::from(
                    e.expected
                        .load(Ordering::Relaxed)
                        .saturating_sub(e.delivered.load(Ordering::Relaxed)),
                )
            })
            .sum()
    }
}

/// What [`Ledger::tally`] found.
#[derive(Default)]
pub struct Tally {
    /// Entries started.
    pub sent: u64,
    /// Entries acked with a result.
    pub acked: u64,
    /// Entries acked with an error.
    pub ack_errors: u64,
    /// Entries without an ack.
    pub unacked: u64,
    /// The first error ack seen (truncated).
    pub first_error: Option<String>,
    /// Deliveries owed (recipients of every entry).
    pub expected: u64,
    /// Deliveries that arrived (distinct recipients).
    pub delivered: u64,
    /// Deliveries owed that never arrived (entries acked with an error owe none).
    pub lost: u64,
    /// ... of which the entry was acked as stored.
    pub lost_after_ack: u64,
    /// Copies beyond the first per recipient.
    pub duplicated: u64,
    /// Ack latency from the intended time.
    pub ack: Option<Histogram<u64>>,
    /// Delivery latency from the intended time.
    pub delivery: Option<Histogram<u64>>,
    /// From the phase start to its last delivery, seconds.
    pub span_secs: f64,
}

impl Tally {
    /// The JSON every scenario reports.
    pub fn to_json(&self) -> Value {
        let summary = |h: &Option<Histogram<u64>>| {
            h.as_ref()
                .map(stats::summary)
                .unwrap_or(json!({"count": 0}))
        };
        json!({
            "sent": self.sent,
            "acked": self.acked,
            "ack_errors": self.ack_errors,
            "first_error": self.first_error,
            "unacked": self.unacked,
            "expected_deliveries": self.expected,
            "delivered": self.delivered,
            "lost": self.lost,
            "lost_after_ack": self.lost_after_ack,
            "duplicated": self.duplicated,
            "delivered_per_sec": (self.delivered as f64 / self.span_secs.max(1e-6)).round(),
            "ack_ms": summary(&self.ack),
            "delivery_ms": summary(&self.delivery),
            "delivery_cdf": self.delivery.as_ref().map(stats::cdf).unwrap_or(json!([])),
        })
    }
}

/// The slot number from an event body whose content is `bench <slot> ...`.
pub fn stamp_slot(body: &str) -> Option<u32> {
    let at = body.find("\"bench ")? + 7;
    let digits = &body[at..];
    let end = digits.find(' ')?;
    digits[..end].parse().ok()
}

/// The string value of the first `"key":"..."` in a JSON text (ids: no escapes inside).
pub fn str_field<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":\"");
    let at = body.find(&pat)? + pat.len();
    let rest = &body[at..];
    rest.find('"').map(|end| &rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slot_and_fields_are_read_back_from_an_event() {
        let body = r#"["message:new",{"id":"x1","content":"bench 42 123456 xxxx","senderId":"a"}]"#;
        assert_eq!(stamp_slot(body), Some(42));
        assert_eq!(stamp_slot(r#"["message:new",{"content":"hello"}]"#), None);
        assert_eq!(str_field(body, "id"), Some("x1"));
        assert_eq!(str_field(body, "senderId"), Some("a"));
        assert_eq!(str_field(body, "roomId"), None);
    }

    #[test]
    fn a_tally_counts_losses_duplicates_and_errors() {
        let l = Ledger::new(10, 1);
        let a = l.claim(0, 0, 3).unwrap();
        let b = l.claim(0, 0, 1).unwrap();
        let c = l.claim(0, 0, 2).unwrap();
        let w = l.claim(0, WARMUP, 1).unwrap();
        l.ack(a, "[{\"id\":\"1\"}]", 10);
        l.ack(b, "[{\"error\":{\"code\":\"x\"}}]", 10);
        l.deliver(a, 20, false);
        l.deliver(a, 20, false);
        l.deliver(a, 21, true);
        l.deliver(c, 30, false);
        let t = l.tally(0, 0, l.len(), 0);
        assert_eq!((t.sent, t.acked, t.ack_errors, t.unacked), (3, 1, 1, 1));
        assert_eq!((t.expected, t.delivered, t.duplicated), (6, 3, 1));
        // a misses one (after its ack), b owes nothing (error), c misses one (never acked).
        assert_eq!((t.lost, t.lost_after_ack), (2, 1));
        assert_eq!(t.delivery.as_ref().unwrap().len(), 3);
        assert_eq!(l.lost_in(0, l.len()), 3);
        assert_eq!(l.delivered(w), 0);
    }

    #[tokio::test]
    async fn the_open_loop_starts_everything_in_order_at_its_intended_time() {
        let mut seen = Vec::new();
        let n = open_loop(2000.0, 20, |k, at| {
            seen.push((k, at));
            true
        })
        .await;
        assert_eq!(n, 20);
        assert!(
            seen.windows(2)
                .all(|w| w[1].0 == w[0].0 + 1 && w[1].1 > w[0].1)
        );
        assert_eq!(seen[10].1 - seen[0].1, 5000);
        let stopped = open_loop(1e6, 100, |k, _| k < 4).await;
        assert_eq!(stopped, 4);
    }
}
