//! Counters and histograms for `GET /metrics` (Prometheus text format), kept in atomics so the hot
//! path pays one relaxed increment per event.

use std::{
    fmt::Write,
    sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
    time::Duration,
};

/// A histogram with fixed upper bounds.
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum of observations, in millionths of the unit.
    sum_micros: AtomicU64,
    total: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|b| value <= *b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.sum_micros.fetch_add((value * 1e6) as u64, Relaxed);
        self.total.fetch_add(1, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = self.total.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {total}");
    }
}

const LATENCY_BOUNDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

/// Everything `/metrics` reports, besides the presence count it reads at scrape time.
pub struct Metrics {
    /// Sockets connected to this instance now.
    pub sockets_connected: AtomicI64,
    /// `message:send`s that passed validation.
    pub messages_accepted: AtomicU64,
    /// Messages this instance committed.
    pub messages_stored: AtomicU64,
    /// `message:new` fan-outs started.
    pub messages_delivered: AtomicU64,
    /// Seconds from receiving a send to its ack.
    pub ack_latency: Histogram,
    /// Messages per group commit.
    pub commit_batch: Histogram,
    /// Redis operations that failed.
    pub redis_errors: AtomicU64,
    /// Deliveries published to one other instance that hosts a recipient.
    pub bus_deliveries_targeted: AtomicU64,
    /// Deliveries published to every instance (the routes were not known complete).
    pub bus_deliveries_to_everyone: AtomicU64,
    /// Database operations that failed or timed out.
    pub database_errors: AtomicU64,
    /// Sends refused by the rate limit.
    pub rate_limited: AtomicU64,
    /// Handshakes refused (token, caps).
    pub handshakes_refused: AtomicU64,
    /// Logins answered 429.
    pub logins_throttled: AtomicU64,
    /// Sockets disconnected because they could not take what was sent to them.
    pub slow_consumers_disconnected: AtomicU64,
    /// Of those, the sockets whose queued bytes passed `SOCKET_BUFFER_BYTES`.
    pub socket_buffer_bytes_exceeded: AtomicU64,
    /// `conversation:read` calls that reached the cursor writer.
    pub cursor_moves: AtomicU64,
    /// Batches the cursor writer stored (one transaction each).
    pub cursor_batches: AtomicU64,
    /// `typing` events dropped by the per-socket limit.
    pub typing_dropped: AtomicU64,
    /// Sends refused by the per-user budget (all of a user's sockets).
    pub user_rate_limited: AtomicU64,
    /// Per-user budget decisions taken by this instance alone because Redis did not answer.
    pub user_budget_local_decisions: AtomicU64,
    /// Login throttle decisions taken by this instance alone because Redis did not answer.
    pub login_throttle_local_decisions: AtomicU64,
    /// Handshakes, requests and sends refused because the account is disabled or deleted.
    pub revoked_refused: AtomicU64,
    /// Sockets closed because their account was disabled or deleted.
    pub revoked_sockets_closed: AtomicU64,
    /// Polls of the access log that failed (the last known revocations stay in force).
    pub access_refresh_errors: AtomicU64,
    /// The HTTP listener's connection counts.
    pub connections: std::sync::Arc<crate::listener::ConnectionStats>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            sockets_connected: AtomicI64::new(0),
            messages_accepted: AtomicU64::new(0),
            messages_stored: AtomicU64::new(0),
            messages_delivered: AtomicU64::new(0),
            ack_latency: Histogram::new(LATENCY_BOUNDS),
            commit_batch: Histogram::new(BATCH_BOUNDS),
            redis_errors: AtomicU64::new(0),
            bus_deliveries_targeted: AtomicU64::new(0),
            bus_deliveries_to_everyone: AtomicU64::new(0),
            database_errors: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            handshakes_refused: AtomicU64::new(0),
            logins_throttled: AtomicU64::new(0),
            slow_consumers_disconnected: AtomicU64::new(0),
            socket_buffer_bytes_exceeded: AtomicU64::new(0),
            cursor_moves: AtomicU64::new(0),
            cursor_batches: AtomicU64::new(0),
            typing_dropped: AtomicU64::new(0),
            user_rate_limited: AtomicU64::new(0),
            user_budget_local_decisions: AtomicU64::new(0),
            login_throttle_local_decisions: AtomicU64::new(0),
            revoked_refused: AtomicU64::new(0),
            revoked_sockets_closed: AtomicU64::new(0),
            access_refresh_errors: AtomicU64::new(0),
            connections: Default::default(),
        }
    }
}

/// Adds one to a counter.
pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl Metrics {
    /// Records the time from receiving a send to its ack.
    pub fn ack_after(&self, elapsed: Duration) {
        self.ack_latency.observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition.
    pub fn render(&self, users_online: Option<usize>) -> String {
        let mut out = String::with_capacity(4096);
        let gauge = |out: &mut String, name: &str, help: &str, v: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        };
        gauge(
            &mut out,
            "nexus_sockets_connected",
            "Sockets connected to this instance.",
            self.sockets_connected.load(Relaxed),
        );
        if let Some(n) = users_online {
            gauge(
                &mut out,
                "nexus_users_online",
                "Users online (cluster-wide in cluster mode).",
                n as i64,
            );
        }
        counter(
            &mut out,
            "nexus_messages_accepted_total",
            "message:send events that passed validation.",
            &self.messages_accepted,
        );
        counter(
            &mut out,
            "nexus_messages_stored_total",
            "Messages committed to the database by this instance.",
            &self.messages_stored,
        );
        counter(
            &mut out,
            "nexus_messages_delivered_total",
            "message:new broadcasts handed to the adapter.",
            &self.messages_delivered,
        );
        self.ack_latency.render(
            &mut out,
            "nexus_ack_latency_seconds",
            "Time from receiving message:send to its ack.",
        );
        self.commit_batch.render(
            &mut out,
            "nexus_commit_batch_size",
            "Messages per group-commit transaction.",
        );
        counter(
            &mut out,
            "nexus_redis_errors_total",
            "Failed Redis operations (presence, cache, broadcast).",
            &self.redis_errors,
        );
        counter(
            &mut out,
            "nexus_bus_deliveries_targeted_total",
            "Cross-instance deliveries published to one instance hosting a recipient.",
            &self.bus_deliveries_targeted,
        );
        counter(
            &mut out,
            "nexus_bus_deliveries_to_everyone_total",
            "Cross-instance deliveries published to every instance (routes not yet known).",
            &self.bus_deliveries_to_everyone,
        );
        counter(
            &mut out,
            "nexus_database_errors_total",
            "Database operations that failed or timed out.",
            &self.database_errors,
        );
        counter(
            &mut out,
            "nexus_rate_limited_total",
            "message:send refused by the per-socket rate limit.",
            &self.rate_limited,
        );
        counter(
            &mut out,
            "nexus_handshakes_refused_total",
            "Socket.io handshakes refused (token, caps).",
            &self.handshakes_refused,
        );
        counter(
            &mut out,
            "nexus_logins_throttled_total",
            "Logins answered 429 by the throttle.",
            &self.logins_throttled,
        );
        counter(
            &mut out,
            "nexus_read_cursor_moves_total",
            "conversation:read calls stored by the cursor writer.",
            &self.cursor_moves,
        );
        counter(
            &mut out,
            "nexus_read_cursor_batches_total",
            "Transactions of the cursor writer (moves per batch = moves / batches).",
            &self.cursor_batches,
        );
        counter(
            &mut out,
            "nexus_typing_dropped_total",
            "typing events dropped by the per-socket limit (5 per second).",
            &self.typing_dropped,
        );
        counter(
            &mut out,
            "nexus_slow_consumers_disconnected_total",
            "Sockets disconnected because their outgoing buffer was full (packets or bytes).",
            &self.slow_consumers_disconnected,
        );
        counter(
            &mut out,
            "nexus_user_rate_limited_total",
            "message:send and room:send refused by the per-user budget (USER_RATE_LIMIT_*).",
            &self.user_rate_limited,
        );
        counter(
            &mut out,
            "nexus_user_budget_local_decisions_total",
            "Per-user budget decisions this instance took alone because Redis did not answer (cluster mode).",
            &self.user_budget_local_decisions,
        );
        counter(
            &mut out,
            "nexus_login_throttle_local_decisions_total",
            "Login throttle checks this instance answered alone because Redis did not answer (cluster mode).",
            &self.login_throttle_local_decisions,
        );
        counter(
            &mut out,
            "nexus_revoked_refused_total",
            "Handshakes, REST requests, logins and sends refused because the account is disabled or deleted.",
            &self.revoked_refused,
        );
        counter(
            &mut out,
            "nexus_revoked_sockets_closed_total",
            "Disconnects of a disabled or deleted account's sockets on this instance (one per account and sweep).",
            &self.revoked_sockets_closed,
        );
        counter(
            &mut out,
            "nexus_access_refresh_errors_total",
            "Polls of the database's access log that failed; the revocations known before stay in force.",
            &self.access_refresh_errors,
        );
        counter(
            &mut out,
            "nexus_socket_buffer_bytes_exceeded_total",
            "Sockets disconnected because their queued bytes passed SOCKET_BUFFER_BYTES.",
            &self.socket_buffer_bytes_exceeded,
        );
        self.connections.render(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.commit_batch.observe(1.0);
        m.commit_batch.observe(3.0);
        m.commit_batch.observe(300.0);
        let text = m.render(Some(2));
        assert!(
            text.contains("nexus_commit_batch_size_bucket{le=\"1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("nexus_commit_batch_size_bucket{le=\"4\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("nexus_commit_batch_size_bucket{le=\"+Inf\"} 3"),
            "{text}"
        );
        assert!(text.contains("nexus_commit_batch_size_count 3"), "{text}");
        assert!(text.contains("nexus_users_online 2"), "{text}");
    }
}
