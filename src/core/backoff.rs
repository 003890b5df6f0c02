//! Reconnect backoff: exponential with jitter, so that many clients losing one server do not
//! come back in lockstep, and a dead server is not hammered.

use std::time::Duration;

/// Delays uniformly in [d/2, d], d = min(max, min * 2^attempt).
pub struct Backoff {
    min: Duration,
    max: Duration,
    random: u64,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            min,
            max,
            random: seed | 1,
        }
    }

    /// The delay before attempt number `attempt` (0 = the first retry).
    pub fn delay(&mut self, attempt: u32) -> Duration {
        let full = self
            .min
            .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max);
        // xorshift64: jitter needs spread, not cryptographic quality.
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        let half = full / 2;
        let jitter_ns = (self.random % (half.as_nanos().max(1) as u64)) as u32;
        half + Duration::from_nanos(jitter_ns as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum_with_jitter_in_the_upper_half() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        let mut backoff = Backoff::new(min, max, 42);
        for attempt in 0..40 {
            let full = (min * 2u32.saturating_pow(attempt.min(20))).min(max);
            let d = backoff.delay(attempt);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
    }
}
