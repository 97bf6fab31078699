//! A token bucket per socket for `message:send`, and a sliding window for `typing`.

use std::time::{Duration, Instant};

/// `burst` tokens, refilled at `per_sec` a second.
#[derive(Debug)]
pub struct TokenBucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: u32, per_sec: u32) -> TokenBucket {
        TokenBucket {
            capacity: burst.into(),
            per_sec: per_sec.into(),
            tokens: burst.into(),
            updated: Instant::now(),
        }
    }

    /// Takes a token if there is one.
    pub fn try_take(&mut self) -> bool {
        self.try_take_at(Instant::now())
    }

    /// Gives back a token taken for something that then failed (never above a full bucket).
    pub fn give_back(&mut self) {
        self.tokens = (self.tokens + 1.0).min(self.capacity);
    }

    /// Whether the bucket has refilled completely by `now`: forgetting it changes nothing.
    pub fn is_full_at(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens + elapsed * self.per_sec >= self.capacity
    }

    /// Takes a token at `now` if there is one.
    pub fn try_take_at(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// At most `N` events in any window of one second: the times of the last `N` accepted ones.
#[derive(Debug)]
pub struct Window<const N: usize> {
    accepted: [Option<Instant>; N],
    next: usize,
}

impl<const N: usize> Default for Window<N> {
    fn default() -> Self {
        Window {
            accepted: [None; N],
            next: 0,
        }
    }
}

impl<const N: usize> Window<N> {
    /// Accepts an event now if fewer than `N` were accepted in the last second.
    pub fn try_take(&mut self) -> bool {
        self.try_take_at(Instant::now())
    }

    fn try_take_at(&mut self, now: Instant) -> bool {
        // The slot to reuse holds the oldest of the last N accepted events.
        match self.accepted[self.next] {
            Some(oldest) if now.saturating_duration_since(oldest) < Duration::from_secs(1) => false,
            _ => {
                self.accepted[self.next] = Some(now);
                self.next = (self.next + 1) % N;
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_takes_n_per_second_whatever_the_timing() {
        let mut window = Window::<5>::default();
        let t0 = Instant::now();
        assert_eq!((0..50).filter(|_| window.try_take_at(t0)).count(), 5);
        assert!(!window.try_take_at(t0 + Duration::from_millis(999)));
        assert_eq!(
            (0..50)
                .filter(|_| window.try_take_at(t0 + Duration::from_secs(1)))
                .count(),
            5
        );
    }

    #[test]
    fn a_burst_is_allowed_then_refilled_at_the_rate() {
        let mut bucket = TokenBucket::new(3, 2);
        let t0 = bucket.updated;
        assert!((0..3).all(|_| bucket.try_take_at(t0)));
        assert!(!bucket.try_take_at(t0));
        assert!(bucket.try_take_at(t0 + Duration::from_millis(500)));
        assert!(!bucket.try_take_at(t0 + Duration::from_millis(500)));
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(3600);
        assert!((0..3).all(|_| bucket.try_take_at(later)));
        assert!(!bucket.try_take_at(later));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn never_more_than_the_burst_plus_what_the_rate_refilled(
            burst in 1u32..50,
            rate in 1u32..50,
            gaps in prop::collection::vec(0u64..200, 1..300),
        ) {
            let mut bucket = TokenBucket::new(burst, rate);
            let start = bucket.updated;
            let mut now = start;
            let mut taken = 0u64;
            for gap in gaps {
                now += Duration::from_millis(gap);
                if bucket.try_take_at(now) {
                    taken += 1;
                }
            }
            let elapsed = now.duration_since(start).as_secs_f64();
            prop_assert!(taken as f64 <= f64::from(burst) + elapsed * f64::from(rate) + 1e-6);
        }

        #[test]
        fn a_window_never_accepts_more_than_n_in_any_second(
            gaps in prop::collection::vec(0u64..400, 1..300),
        ) {
            let mut window = Window::<5>::default();
            let mut now = Instant::now();
            let mut accepted = Vec::new();
            for gap in gaps {
                now += Duration::from_millis(gap);
                if window.try_take_at(now) {
                    accepted.push(now);
                }
            }
            for pair in accepted.windows(6) {
                prop_assert!(pair[5].duration_since(pair[0]) >= Duration::from_secs(1));
            }
        }
    }
}
