//! Read cursors are written in batches: `conversation:read` calls are queued to one task that
//! waits `LINGER` for company and then moves every queued cursor in one transaction (at most two
//! statements), answering each caller only after the commit. Clients mark messages read as they
//! are shown, often several times a second per reader; repeated calls for one cursor in a batch
//! cost one row update, and a batch costs the same few statements whatever its size. An ack
//! means the cursor is stored, so a crash loses none.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::Relaxed},
    },
    time::Duration,
};

use tokio::sync::{mpsc, oneshot};

use super::{
    Backend, Cursor, CursorMove, Held, HeldConnection, Result, Store, StoreError, pg, recv_holding,
    sqlite,
};
use crate::metrics::Metrics;

/// How long a batch waits for more calls before it is written.
const LINGER: Duration = Duration::from_millis(10);
/// Most cursor moves in one transaction.
const MAX_BATCH: usize = 1024;
/// Calls waiting for the writer; past this, callers wait (back-pressure).
const QUEUE_DEPTH: usize = 8192;

/// What a cursor move comes to: the cursor after it, `None` when its message is not of that
/// conversation.
pub type CursorResult = Result<Option<Cursor>>;

struct Job {
    change: CursorMove,
    reply: oneshot::Sender<CursorResult>,
}

impl Store {
    /// Moves read cursors forward; per input, the cursor after the call (an older `up_to` leaves
    /// it where it was), or `None` when `up_to` is not a message of that conversation.
    pub async fn move_read_cursors(&self, moves: &[CursorMove]) -> Result<Vec<Option<Cursor>>> {
        with_conn!(self, |conn, q| q::move_read_cursors(conn, moves))
    }

    /// [`Store::move_read_cursors`] on a connection kept between batches (see `with_held!`).
    async fn move_read_cursors_held(
        &self,
        held: &mut Option<HeldConnection>,
        moves: &[CursorMove],
    ) -> Result<Vec<Option<Cursor>>> {
        with_held!(self, held, |conn, q| q::move_read_cursors(conn, moves))
    }
}

/// The handle that queues cursor moves; cheap to clone.
#[derive(Clone)]
pub struct CursorWriter {
    jobs: mpsc::Sender<Job>,
    pending: Arc<AtomicUsize>,
}

impl CursorWriter {
    /// Starts the writer task on the current runtime.
    pub fn spawn(store: Store, metrics: Arc<Metrics>) -> CursorWriter {
        let (jobs, rx) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(run(store, rx, metrics));
        CursorWriter {
            jobs,
            pending: Arc::default(),
        }
    }

    /// Moves one cursor; resolves once its batch has committed.
    pub async fn write(&self, change: CursorMove) -> CursorResult {
        let stopped = || StoreError::Unavailable("the cursor writer has stopped".into());
        let (reply, answer) = oneshot::channel();
        self.pending.fetch_add(1, Relaxed);
        let result = match self.jobs.send(Job { change, reply }).await {
            Ok(()) => answer.await.unwrap_or_else(|_| Err(stopped())),
            Err(_) => Err(stopped()),
        };
        self.pending.fetch_sub(1, Relaxed);
        result
    }

    /// Waits (at most `limit`, and only while moves keep completing) until every queued move is
    /// answered, for a graceful shutdown.
    pub async fn drain(&self, limit: Duration) {
        crate::drain::while_progressing(|| self.pending.load(Relaxed), limit).await;
    }
}

async fn run(store: Store, mut rx: mpsc::Receiver<Job>, metrics: Arc<Metrics>) {
    let mut jobs = Vec::with_capacity(64);
    // Kept between batches while marks keep coming, as the message writer does.
    let mut held = None;
    while recv_holding(&mut rx, &mut jobs, MAX_BATCH, &mut held).await > 0 {
        let deadline = tokio::time::Instant::now() + LINGER;
        while jobs.len() < MAX_BATCH {
            let room = MAX_BATCH - jobs.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut jobs, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let (moves, replies): (Vec<CursorMove>, Vec<_>) =
            jobs.drain(..).map(|j| (j.change, j.reply)).unzip();
        metrics.cursor_batches.fetch_add(1, Relaxed);
        metrics.cursor_moves.fetch_add(moves.len() as u64, Relaxed);
        match store.move_read_cursors_held(&mut held, &moves).await {
            Ok(cursors) => {
                for (reply, cursor) in replies.into_iter().zip(cursors) {
                    let _ = reply.send(Ok(cursor));
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, size = moves.len(), "read cursors not stored");
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}
