//! What a function's finished inputs add up to, for the dashboard and
//! `Function::get_current_stats`: succeeded and failed counts since the control plane started,
//! and the recent results (bounded) that give latency percentiles and inputs per second.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The most recent results kept per function.
const RECENT: usize = 4096;

/// One function's finished inputs.
#[derive(Debug, Default, Clone)]
pub(crate) struct CallStats {
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    /// `(when it finished, from its acceptance to its result, whether it succeeded)`, oldest first.
    recent: VecDeque<(Instant, Duration, bool)>,
}

/// A window of recent results, summed up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Window {
    pub(crate) inputs: usize,
    pub(crate) failed: usize,
    pub(crate) p50: Option<Duration>,
    pub(crate) p99: Option<Duration>,
    /// Inputs finished per second over the window.
    pub(crate) per_second: f64,
}

impl CallStats {
    /// Counts an input that finished at `now`, `latency` after it was accepted.
    pub(crate) fn record(&mut self, now: Instant, latency: Duration, ok: bool) {
        if ok {
            self.succeeded += 1;
        } else {
            self.failed += 1;
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((now, latency, ok));
    }

    /// The results of the last `span` before `now`.
    pub(crate) fn window(&self, now: Instant, span: Duration) -> Window {
        let mut latencies: Vec<Duration> = Vec::new();
        let mut failed = 0;
        for (at, latency, ok) in self.recent.iter().rev() {
            if now.saturating_duration_since(*at) > span {
                break;
            }
            latencies.push(*latency);
            failed += usize::from(!ok);
        }
        latencies.sort_unstable();
        let pick = |q: f64| {
            let last = latencies.len().checked_sub(1)?;
            // Nearest rank.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let i = ((q * latencies.len() as f64).ceil() as usize).saturating_sub(1);
            latencies.get(i.min(last)).copied()
        };
        #[allow(clippy::cast_precision_loss)]
        let per_second = latencies.len() as f64 / span.as_secs_f64().max(f64::EPSILON);
        Window {
            inputs: latencies.len(),
            failed,
            p50: pick(0.5),
            p99: pick(0.99),
            per_second,
        }
    }

    /// Inputs finished in each of `buckets` slices of `span` before `now`, oldest first (what a
    /// small plot draws).
    pub(crate) fn series(&self, now: Instant, span: Duration, buckets: usize) -> Vec<u32> {
        let mut out = vec![0u32; buckets];
        if buckets == 0 {
            return out;
        }
        let slice = span.as_secs_f64() / buckets as f64;
        for (at, _, _) in self.recent.iter().rev() {
            let age = now.saturating_duration_since(*at).as_secs_f64();
            if age >= span.as_secs_f64() {
                break;
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let back = (age / slice) as usize;
            if let Some(b) = out.get_mut(buckets - 1 - back.min(buckets - 1)) {
                *b += 1;
            }
        }
        out
    }

    /// Failures among the results of the last `span`.
    pub(crate) fn failed_within(&self, now: Instant, span: Duration) -> usize {
        self.recent
            .iter()
            .rev()
            .take_while(|(at, _, _)| now.saturating_duration_since(*at) <= span)
            .filter(|(_, _, ok)| !ok)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_its_results_and_their_percentiles() {
        let t0 = Instant::now();
        let mut s = CallStats::default();
        for i in 1..=100u64 {
            s.record(
                t0 + Duration::from_millis(i * 10),
                Duration::from_millis(i),
                i % 10 != 0,
            );
        }
        assert_eq!((s.succeeded, s.failed), (90, 10));
        let now = t0 + Duration::from_secs(1);
        let w = s.window(now, Duration::from_secs(60));
        assert_eq!((w.inputs, w.failed), (100, 10));
        assert_eq!(w.p50, Some(Duration::from_millis(50)));
        assert_eq!(w.p99, Some(Duration::from_millis(99)));
        assert!((w.per_second - 100.0 / 60.0).abs() < 1e-9);
        // Only the last half second: the 50 newest.
        let w = s.window(now, Duration::from_millis(495));
        assert_eq!(w.inputs, 50);
        assert_eq!(w.p50, Some(Duration::from_millis(75)));
        assert_eq!(
            CallStats::default().window(now, Duration::from_secs(1)).p50,
            None
        );
    }

    #[test]
    fn the_series_puts_results_in_their_slices_and_memory_is_bounded() {
        let t0 = Instant::now();
        let mut s = CallStats::default();
        s.record(t0, Duration::ZERO, true);
        s.record(t0 + Duration::from_secs(5), Duration::ZERO, true);
        s.record(t0 + Duration::from_secs(9), Duration::ZERO, false);
        let now = t0 + Duration::from_millis(9500);
        assert_eq!(
            s.series(now, Duration::from_secs(10), 5),
            vec![1, 0, 1, 0, 1]
        );
        for _ in 0..10_000 {
            s.record(now, Duration::ZERO, true);
        }
        assert_eq!(s.recent.len(), RECENT);
        assert_eq!(s.succeeded, 10_002);
    }
}
