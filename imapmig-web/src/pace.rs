//! How fast a task moves: throughput now, the estimated end of the first passes, and when the
//! incremental passes stop.
//!
//! * **Throughput** comes from sampling the store's totals (messages and bytes on the
//!   destination, [`BatchStore::summary`]) every [`SAMPLE_EVERY`] and comparing the newest
//!   sample with the oldest of the last [`WINDOW`]. It reads the store, not a scheduler's
//!   memory, so it is right whether this process or a separate `imapmig run` migrates.
//! * **ETA**: accounts whose first pass has not completed, divided by the pace of the last
//!   hour (first passes completed in it, [`BatchStore::first_passes_since`]). No first pass
//!   in the last hour: no estimate.
//! * **Window end**: incremental passes of an account end `window` after its first complete
//!   pass, so the task's last one ends `window` after the latest first pass. That time is
//!   found by bisecting [`BatchStore::first_passes_since`] (an indexed count), which costs a
//!   few dozen index lookups instead of reading every account.
//!
//! The arithmetic is pure and tested here; only [`Throughput::run`] touches the store.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use imapmig_core::batch::BatchStore;
use serde::Serialize;

/// How often the sampler reads the totals.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(3);
/// The span throughput is measured over.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The span the ETA's pace is measured over.
pub const PACE_WINDOW: Duration = Duration::from_secs(3600);

/// One reading of a task's totals.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// When it was read.
    pub at: Instant,
    /// Messages on the destination, all accounts.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Messages and bytes per second.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Rate {
    /// Messages per second.
    pub messages_per_second: f64,
    /// Bytes per second.
    pub bytes_per_second: f64,
    /// The span measured, in seconds.
    pub over_seconds: f64,
}

/// The rate between the oldest and the newest sample (a shrinking total, after accounts
/// were removed or re-counted, counts as no progress). `None` with fewer than two samples or
/// less than a second between them.
pub fn rate(samples: &[Sample]) -> Option<Rate> {
    let (first, last) = (samples.first()?, samples.last()?);
    let secs = last.at.checked_duration_since(first.at)?.as_secs_f64();
    if secs < 1.0 {
        return None;
    }
    Some(Rate {
        messages_per_second: last.messages.saturating_sub(first.messages) as f64 / secs,
        bytes_per_second: last.bytes.saturating_sub(first.bytes) as f64 / secs,
        over_seconds: secs,
    })
}

/// Seconds until `remaining` accounts have completed their first pass, at the pace of
/// `done_in_window` first passes per `window`. `Some(0)` when nothing remains; `None` when
/// there is no pace to go by.
pub fn eta_seconds(remaining: u64, done_in_window: u64, window: Duration) -> Option<u64> {
    if remaining == 0 {
        return Some(0);
    }
    if done_in_window == 0 {
        return None;
    }
    let secs = u128::from(remaining) * window.as_secs() as u128 / u128::from(done_in_window);
    Some(u64::try_from(secs).unwrap_or(u64::MAX))
}

/// The latest time `t` in `lo..=hi` with `count_since(t) > 0`, where `count_since` counts the
/// events at `t` or later (so it never grows with `t`): the time of the latest event.
/// `None` when there is no event at `lo` or later.
pub fn latest_event<E>(
    lo: i64,
    hi: i64,
    mut count_since: impl FnMut(i64) -> Result<u64, E>,
) -> Result<Option<i64>, E> {
    if lo > hi || count_since(lo)? == 0 {
        return Ok(None);
    }
    // Invariant: count_since(lo) > 0; count_since(t) == 0 for t > hi.
    let (mut lo, mut hi) = (lo, hi);
    while lo < hi {
        let mid = lo + (hi - lo + 1) / 2;
        if count_since(mid)? > 0 {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(Some(lo))
}

/// The store's totals per task, sampled in the background (see the module documentation).
#[derive(Default)]
pub struct Throughput {
    samples: Arc<Mutex<HashMap<String, VecDeque<Sample>>>>,
    started: AtomicBool,
}

impl Throughput {
    /// The task's throughput over the last [`WINDOW`], once there are two samples.
    pub fn rate(&self, task: &str) -> Option<Rate> {
        let m = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        let s: Vec<Sample> = m.get(task)?.iter().copied().collect();
        rate(&s)
    }

    /// Records a reading, keeping the last [`WINDOW`] of them.
    pub fn record(&self, task: &str, messages: u64, bytes: u64) {
        record(&self.samples, task, messages, bytes, Instant::now());
    }

    /// Starts the sampler (once; later calls do nothing). Needs a Tokio runtime.
    pub fn start(&self, store: Arc<BatchStore>) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let samples = self.samples.clone();
        tokio::spawn(Self::run(store, samples));
    }

    async fn run(store: Arc<BatchStore>, samples: Arc<Mutex<HashMap<String, VecDeque<Sample>>>>) {
        loop {
            let s = store.clone();
            let read = tokio::task::spawn_blocking(move || {
                let mut out = Vec::new();
                for t in s.tasks()? {
                    let sum = s.summary(&t)?;
                    out.push((t, sum.messages, sum.bytes));
                }
                Ok::<_, imapmig_core::batch::BatchError>(out)
            })
            .await;
            match read {
                Ok(Ok(totals)) => {
                    let now = Instant::now();
                    for (t, m, b) in totals {
                        record(&samples, &t, m, b, now);
                    }
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "throughput sample failed"),
                Err(e) => tracing::debug!(error = %e, "throughput sample failed"),
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    }
}

fn record(
    samples: &Mutex<HashMap<String, VecDeque<Sample>>>,
    task: &str,
    messages: u64,
    bytes: u64,
    at: Instant,
) {
    let mut m = samples.lock().unwrap_or_else(|p| p.into_inner());
    let q = m.entry(task.to_string()).or_default();
    q.push_back(Sample {
        at,
        messages,
        bytes,
    });
    while q
        .front()
        .is_some_and(|s| at.saturating_duration_since(s.at) > WINDOW)
    {
        q.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, secs: u64, messages: u64, bytes: u64) -> Sample {
        Sample {
            at: base + Duration::from_secs(secs),
            messages,
            bytes,
        }
    }

    #[test]
    fn rate_is_newest_minus_oldest_over_the_span() {
        let t = Instant::now();
        let r = rate(&[
            at(t, 0, 100, 1000),
            at(t, 5, 150, 1500),
            at(t, 10, 200, 3000),
        ])
        .unwrap();
        assert_eq!(r.messages_per_second, 10.0);
        assert_eq!(r.bytes_per_second, 200.0);
        assert_eq!(r.over_seconds, 10.0);
    }

    #[test]
    fn no_rate_without_two_samples_a_second_apart() {
        let t = Instant::now();
        assert_eq!(rate(&[]), None);
        assert_eq!(rate(&[at(t, 0, 1, 1)]), None);
        assert_eq!(rate(&[at(t, 0, 1, 1), at(t, 0, 5, 5)]), None);
    }

    #[test]
    fn a_shrinking_total_is_no_progress_not_a_negative_rate() {
        let t = Instant::now();
        let r = rate(&[at(t, 0, 100, 100), at(t, 10, 50, 50)]).unwrap();
        assert_eq!(r.messages_per_second, 0.0);
    }

    #[test]
    fn old_samples_leave_the_window() {
        let m = Mutex::new(HashMap::new());
        let t = Instant::now();
        record(&m, "t", 0, 0, t);
        record(&m, "t", 10, 10, t + Duration::from_secs(30));
        record(&m, "t", 20, 20, t + WINDOW + Duration::from_secs(5));
        let q = &m.lock().unwrap()["t"];
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].messages, 10);
    }

    #[test]
    fn eta_divides_what_remains_by_the_pace() {
        let hour = PACE_WINDOW;
        assert_eq!(eta_seconds(0, 0, hour), Some(0));
        assert_eq!(eta_seconds(10, 0, hour), None);
        assert_eq!(eta_seconds(100, 50, hour), Some(7200));
        assert_eq!(eta_seconds(1, 3600, hour), Some(1));
        assert_eq!(eta_seconds(u64::MAX, 1, hour), Some(u64::MAX));
    }

    #[test]
    fn latest_event_is_found_by_bisection() {
        let events = [5i64, 17, 17, 40];
        let mut calls = 0;
        let count = |t: i64| {
            calls += 1;
            Ok::<_, ()>(events.iter().filter(|e| **e >= t).count() as u64)
        };
        assert_eq!(latest_event(0, 1_000_000, count), Ok(Some(40)));
        assert!(calls < 30, "{calls} lookups");
        let none = |_t: i64| Ok::<_, ()>(0);
        assert_eq!(latest_event(0, 100, none), Ok(None));
        let at_lo = |t: i64| Ok::<_, ()>(u64::from(t <= 3));
        assert_eq!(latest_event(3, 100, at_lo), Ok(Some(3)));
        assert_eq!(latest_event(5, 4, at_lo), Ok(None));
    }
}
