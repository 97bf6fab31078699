//! Group commit: concurrent `message:send`s are queued to one writer task, which stores whatever
//! has accumulated in a single transaction and answers each sender. Under load a commit carries
//! many messages, so durable acks do not cap throughput; when idle a message is committed alone,
//! at once.
//!
//! Under sustained load (this instance receiving ≥ `LINGER_MIN_RATE` messages a second) a small
//! batch waits up to `LINGER` for company before it commits, because a commit costs the database
//! about as much as the rows in it at these sizes (DECISIONS.md, "Group commit"). Below the rate
//! nothing waits.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use tracing::Instrument;

use super::{HeldConnection, NewMessage, Store, StoreError, Written, recv_holding};
use crate::metrics::Metrics;

/// Largest number of messages in one transaction.
const MAX_BATCH: usize = 256;
/// Sends waiting for the writer; past this, senders wait (back-pressure) instead of piling up memory.
const QUEUE_DEPTH: usize = 8192;
/// Arrival rate (messages per second on this instance) from which small batches linger.
const LINGER_MIN_RATE: f64 = 1000.0;
/// How long a small batch may wait for more messages, and what counts as small.
const LINGER: Duration = Duration::from_millis(1);
const LINGER_BATCH: usize = 32;
/// The window over which the arrival rate is measured.
const RATE_WINDOW: Duration = Duration::from_millis(100);

/// Messages per second arriving at the writer, over windows of `RATE_WINDOW`.
struct ArrivalRate {
    since: Instant,
    count: usize,
    rate: f64,
}

impl ArrivalRate {
    fn new() -> ArrivalRate {
        ArrivalRate {
            since: Instant::now(),
            count: 0,
            rate: 0.0,
        }
    }

    fn record(&mut self, n: usize) {
        self.count += n;
        let elapsed = self.since.elapsed();
        if elapsed >= RATE_WINDOW {
            self.rate = self.count as f64 / elapsed.as_secs_f64();
            self.count = 0;
            self.since = Instant::now();
        }
    }

    /// Whether the last full window was busy. A pause longer than a window counts as idle.
    fn busy(&self) -> bool {
        self.rate >= LINGER_MIN_RATE && self.since.elapsed() < 2 * RATE_WINDOW
    }
}

/// The outcome of a write: the stored message (and whether this send created it), or why not.
pub type WriteResult = Result<Written, StoreError>;

struct Job {
    message: NewMessage,
    reply: oneshot::Sender<WriteResult>,
}

/// Handle to the writer task; cheap to clone.
#[derive(Clone)]
pub struct MessageWriter {
    jobs: mpsc::Sender<Job>,
    /// Writes submitted and not yet answered.
    pending: Arc<AtomicUsize>,
}

impl MessageWriter {
    /// Starts the writer task on the current runtime.
    pub fn spawn(store: Store, metrics: Arc<Metrics>) -> MessageWriter {
        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(store, rx, metrics));
        MessageWriter {
            jobs,
            pending: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Stores one message; resolves once its transaction has committed (or failed).
    pub async fn write(&self, message: NewMessage) -> WriteResult {
        let (reply, answer) = oneshot::channel();
        self.pending.fetch_add(1, Relaxed);
        let sent = self.jobs.send(Job { message, reply }).await;
        let result = match sent {
            Ok(()) => answer
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("the writer has stopped".into()))),
            Err(_) => Err(StoreError::Unavailable("the writer has stopped".into())),
        };
        self.pending.fetch_sub(1, Relaxed);
        result
    }

    /// Waits (at most `limit`, and only while writes keep completing) until every submitted write
    /// has been answered: at shutdown, so that sends already received are committed before the
    /// process exits, without waiting out the timeouts of a database that stopped answering.
    pub async fn drain(&self, limit: Duration) {
        crate::drain::while_progressing(|| self.pending.load(Relaxed), limit).await;
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Job>, metrics: Arc<Metrics>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    let mut arrivals = ArrivalRate::new();
    // The connection kept between commits while messages keep coming: checking one out of the
    // pool verifies it with a round trip (`SELECT 1`), which at one commit per message doubled
    // the database's transactions. After a second without work it goes back to the pool.
    let mut held: Option<HeldConnection> = None;
    while recv_holding(&mut rx, &mut jobs, MAX_BATCH, &mut held).await > 0 {
        if arrivals.busy() && jobs.len() < LINGER_BATCH {
            let deadline = Instant::now() + LINGER;
            while jobs.len() < LINGER_BATCH {
                let room = MAX_BATCH - jobs.len();
                match tokio::time::timeout_at(deadline, rx.recv_many(&mut jobs, room)).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        arrivals.record(jobs.len());
        let batch = std::mem::replace(&mut jobs, Vec::with_capacity(MAX_BATCH));
        if let Some(StoreError::Unavailable(why)) = commit(&store, &mut held, batch, &metrics).await
        {
            // The database just timed out or dropped us: answer everyone who queued up
            // meanwhile at once, rather than making each wait for a timeout of its own.
            while let Ok(job) = rx.try_recv() {
                let _ = job.reply.send(Err(StoreError::Unavailable(why.clone())));
            }
        }
    }
}

/// Commits `jobs` as one transaction and answers each; returns the error if the batch failed.
/// A batch refused for its content (not for the database being down) is retried message by
/// message, so one bad message fails alone. The messages move into the batch (no copy).
async fn commit(
    store: &Store,
    held: &mut Option<HeldConnection>,
    jobs: Vec<Job>,
    metrics: &Metrics,
) -> Option<StoreError> {
    let (batch, replies): (Vec<NewMessage>, Vec<_>) =
        jobs.into_iter().map(|j| (j.message, j.reply)).unzip();
    metrics.commit_batch.observe(batch.len() as f64);
    let span = tracing::debug_span!("group_commit", size = batch.len());
    match store
        .insert_messages_held(held, &batch)
        .instrument(span)
        .await
    {
        Ok(results) => {
            let created = results
                .iter()
                .filter(|r| r.as_ref().is_ok_and(|w| w.created))
                .count();
            metrics.messages_stored.fetch_add(created as u64, Relaxed);
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
            None
        }
        Err(StoreError::Internal(why)) if batch.len() > 1 => {
            tracing::warn!(error = %why, size = batch.len(), "group commit refused; retrying one by one");
            for (message, reply) in batch.into_iter().zip(replies) {
                Box::pin(commit(store, held, vec![Job { message, reply }], metrics)).await;
            }
            None
        }
        Err(err) => {
            tracing::warn!(error = %err, size = batch.len(), "group commit failed");
            for reply in replies {
                let _ = reply.send(Err(err.clone()));
            }
            Some(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn small_batches_linger_only_under_sustained_load() {
        let mut arrivals = ArrivalRate::new();
        assert!(!arrivals.busy(), "a new writer commits at once");

        // 50 messages in a 100 ms window: 500/s, below the rate.
        tokio::time::advance(RATE_WINDOW).await;
        arrivals.record(50);
        assert!(!arrivals.busy());

        // 150 in the next window: 1,500/s.
        tokio::time::advance(RATE_WINDOW).await;
        arrivals.record(150);
        assert!(arrivals.busy(), "sustained load lingers");

        // The load stops: after two quiet windows the next message commits at once.
        tokio::time::advance(RATE_WINDOW * 2).await;
        assert!(!arrivals.busy());
        arrivals.record(1);
        assert!(!arrivals.busy());
    }
}
