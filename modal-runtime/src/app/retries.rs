//! `Retries`: how often and how fast a failed input is tried again.

use std::time::Duration;

/// Retry policy for a function's inputs, with Modal's semantics.
///
/// `retries = N` on a function means `Retries::fixed(N)`: N retries, 1 s apart. A full policy
/// grows the delay by `backoff_coefficient` after each failure, from `initial_delay` up to
/// `max_delay`. The control plane owns retries for every kind of call.
///
/// ```
/// use std::time::Duration;
/// let policy = modal::Retries::new(4)
///     .backoff_coefficient(2.0)
///     .initial_delay(Duration::from_millis(500))
///     .max_delay(Duration::from_secs(10));
/// assert_eq!(policy.delay_before_retry(1), Duration::from_millis(500));
/// assert_eq!(policy.delay_before_retry(3), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retries {
    pub(crate) max_retries: i64,
    pub(crate) backoff_coefficient: f64,
    pub(crate) initial_delay: Duration,
    pub(crate) max_delay: Duration,
}

impl Retries {
    /// Up to `max_retries` retries with Modal's defaults: backoff 2.0, initial delay 1 s, max delay 60 s.
    pub fn new(max_retries: i64) -> Self {
        Retries {
            max_retries,
            backoff_coefficient: 2.0,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }

    /// `max_retries` retries, a fixed 1 s apart (what `retries = N` means).
    pub fn fixed(max_retries: i64) -> Self {
        Retries {
            backoff_coefficient: 1.0,
            ..Retries::new(max_retries)
        }
    }

    /// Multiplier applied to the delay after each retry (1.0–10.0).
    pub fn backoff_coefficient(mut self, c: f64) -> Self {
        self.backoff_coefficient = c;
        self
    }

    /// Delay before the first retry (0–60 s).
    pub fn initial_delay(mut self, d: Duration) -> Self {
        self.initial_delay = d;
        self
    }

    /// Longest delay between retries (1–60 s).
    pub fn max_delay(mut self, d: Duration) -> Self {
        self.max_delay = d;
        self
    }

    /// The number of retries.
    pub fn max_retries(&self) -> i64 {
        self.max_retries
    }

    /// The delay before retry number `n` (1-based): `initial × coefficientⁿ⁻¹`, at most `max_delay`.
    pub fn delay_before_retry(&self, n: u32) -> Duration {
        backoff_delay(
            self.initial_delay,
            self.backoff_coefficient,
            self.max_delay,
            n,
        )
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        super::rules::check_retries(
            self.max_retries,
            self.backoff_coefficient,
            self.initial_delay.as_secs_f64(),
            self.max_delay.as_secs_f64(),
        )
    }
}

impl From<i64> for Retries {
    fn from(n: i64) -> Self {
        Retries::fixed(n)
    }
}

impl From<i32> for Retries {
    fn from(n: i32) -> Self {
        Retries::fixed(i64::from(n))
    }
}

impl From<u32> for Retries {
    fn from(n: u32) -> Self {
        Retries::fixed(i64::from(n))
    }
}

/// `initial × coefficientⁿ⁻¹`, capped at `max_delay` (retry numbers are 1-based).
pub(crate) fn backoff_delay(
    initial: Duration,
    coefficient: f64,
    max_delay: Duration,
    n: u32,
) -> Duration {
    let exponent = i32::try_from(n.saturating_sub(1)).unwrap_or(i32::MAX);
    let secs = initial.as_secs_f64() * coefficient.max(1.0).powi(exponent);
    if !secs.is_finite() || secs >= max_delay.as_secs_f64() {
        max_delay.max(Duration::ZERO)
    } else {
        Duration::from_secs_f64(secs.max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_is_one_second_apart() {
        let r = Retries::fixed(3);
        for n in 1..=3 {
            assert_eq!(r.delay_before_retry(n), Duration::from_secs(1));
        }
    }

    #[test]
    fn exponential_is_capped() {
        let r = Retries::new(10).max_delay(Duration::from_secs(5));
        assert_eq!(r.delay_before_retry(1), Duration::from_secs(1));
        assert_eq!(r.delay_before_retry(2), Duration::from_secs(2));
        assert_eq!(r.delay_before_retry(3), Duration::from_secs(4));
        assert_eq!(r.delay_before_retry(4), Duration::from_secs(5));
        assert_eq!(r.delay_before_retry(40), Duration::from_secs(5));
        let zero = Retries::new(2).initial_delay(Duration::ZERO);
        assert_eq!(zero.delay_before_retry(2), Duration::ZERO);
    }
}
