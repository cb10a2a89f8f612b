//! Pauses before retrying an account: exponential, capped, with jitter.
//!
//! Jitter matters with thousands of accounts: when a server drops every connection at once,
//! retrying them all after exactly the same pause would hit it with the same wave again. Each
//! pause is drawn uniformly from the upper half of its exponential step ("equal jitter"), so it
//! never shrinks below half the step and waves spread out.

use std::time::Duration;

use super::task::RetryPolicy;

/// A small xorshift generator: jitter needs spread, not cryptographic quality.
#[derive(Clone, Debug)]
pub(crate) struct Jitter(u64);

impl Jitter {
    /// Seeded from the clock and the process, so two schedulers do not jitter alike.
    pub(crate) fn seeded() -> Jitter {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9_7F4A_7C15);
        Jitter::with_seed(nanos ^ (u64::from(std::process::id()) << 32))
    }

    pub(crate) fn with_seed(seed: u64) -> Jitter {
        Jitter(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `[0, 1)`.
    pub(crate) fn fraction(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The pause before retry number `attempt` (1 for the first): `base · 2^(attempt-1)` capped at
/// `max`, then jittered into its upper half. A pause the server asked for is honoured when it
/// is longer (capped at `max` too).
pub(crate) fn retry_delay(
    policy: &RetryPolicy,
    attempt: u32,
    suggested: Option<Duration>,
    jitter: &mut Jitter,
) -> Duration {
    let step = policy
        .base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(policy.max);
    let half = step / 2;
    let jittered = half + half.mul_f64(jitter.fraction());
    jittered.max(suggested.unwrap_or_default()).min(policy.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }

    #[test]
    fn grows_exponentially_within_its_bounds() {
        let mut j = Jitter::with_seed(42);
        for (attempt, step) in [
            (1, 10),
            (2, 20),
            (3, 40),
            (4, 80),
            (5, 160),
            (6, 300),
            (40, 300),
        ] {
            for _ in 0..50 {
                let d = retry_delay(&policy(), attempt, None, &mut j);
                let step = Duration::from_secs(step);
                assert!(d >= step / 2 && d <= step, "attempt {attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn jitter_spreads_and_server_hints_win() {
        let mut j = Jitter::with_seed(7);
        let delays: std::collections::HashSet<u128> = (0..100)
            .map(|_| retry_delay(&policy(), 3, None, &mut j).as_millis())
            .collect();
        assert!(delays.len() > 50, "{}", delays.len());
        let d = retry_delay(&policy(), 1, Some(Duration::from_secs(120)), &mut j);
        assert_eq!(d, Duration::from_secs(120));
        let d = retry_delay(&policy(), 1, Some(Duration::from_secs(9999)), &mut j);
        assert_eq!(d, Duration::from_secs(300));
    }
}
