//! A token bucket per socket for `message:send`.

use std::time::Instant;

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

    fn try_take_at(&mut self, now: Instant) -> bool {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

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
    use std::time::Duration;

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
    }
}
