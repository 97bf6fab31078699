//! Waiting for a queue to empty at shutdown, for as long as it makes progress: a queue whose
//! service (PostgreSQL, Redis) has stopped answering would otherwise hold the stop until each of
//! its calls timed out (DECISIONS.md, "Stopping fast").

use std::time::Duration;

/// Longest a draining queue may go without finishing a single job before the wait gives up.
pub const STALL: Duration = Duration::from_secs(1);

/// How often the queue length is looked at.
const POLL: Duration = Duration::from_millis(10);

/// Waits until `pending()` is 0, at most `limit`, and no longer than [`STALL`] without it going
/// down. Returns how many jobs were left.
pub async fn while_progressing(pending: impl Fn() -> usize, limit: Duration) -> usize {
    let start = tokio::time::Instant::now();
    let deadline = start + limit;
    let mut left = pending();
    let mut progressed_at = start;
    while left > 0 {
        let now = tokio::time::Instant::now();
        if now >= deadline || now.duration_since(progressed_at) >= STALL {
            break;
        }
        tokio::time::sleep(POLL).await;
        let now_left = pending();
        if now_left < left {
            progressed_at = tokio::time::Instant::now();
        }
        left = now_left;
    }
    left
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering::Relaxed},
    };

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_queue_that_moves_is_waited_for_and_a_stuck_one_is_not() {
        let queue = Arc::new(AtomicUsize::new(50));
        let worker = queue.clone();
        // One job every 100 ms: 5 s in all, never a second without progress.
        tokio::spawn(async move {
            while worker.load(Relaxed) > 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                worker.fetch_sub(1, Relaxed);
            }
        });
        let t0 = tokio::time::Instant::now();
        assert_eq!(
            while_progressing(|| queue.load(Relaxed), Duration::from_secs(10)).await,
            0
        );
        assert!(t0.elapsed() >= Duration::from_secs(5));

        let stuck = AtomicUsize::new(3);
        let t0 = tokio::time::Instant::now();
        assert_eq!(
            while_progressing(|| stuck.load(Relaxed), Duration::from_secs(10)).await,
            3
        );
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "gave up after the stall"
        );
    }
}
