//! Retry decisions, for every call type alike: whether a failed attempt runs again, and when.

use std::time::Duration;

use crate::app::retries::backoff_delay;
use crate::wire::pb;

/// What happens after an attempt ended with `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Run the input again after this delay.
    Retry(Duration),
    /// The result is final.
    Final,
}

/// Modal's rules: success and cancellation are final; internal failures are retried at once;
/// user errors, panics, timeouts and init failures after the backoff delay; each retry uses one
/// of the policy's `max_retries`.
pub(crate) fn after_attempt(
    status: pb::ResultStatus,
    attempt: u32,
    policy: Option<&pb::RetryPolicy>,
) -> Next {
    let Some(policy) = policy else {
        return Next::Final;
    };
    if attempt >= policy.max_retries {
        return Next::Final;
    }
    match status {
        pb::ResultStatus::Success | pb::ResultStatus::Terminated => Next::Final,
        pb::ResultStatus::InternalFailure => Next::Retry(Duration::ZERO),
        _ => Next::Retry(backoff_delay(
            Duration::from_millis(u64::from(policy.initial_delay_ms)),
            f64::from(policy.backoff_coefficient),
            Duration::from_millis(u64::from(policy.max_delay_ms)),
            attempt + 1,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::ResultStatus as S;

    fn fixed(n: u32) -> pb::RetryPolicy {
        pb::RetryPolicy {
            max_retries: n,
            backoff_coefficient: 1.0,
            initial_delay_ms: 1000,
            max_delay_ms: 60_000,
        }
    }

    #[test]
    fn table() {
        let p = fixed(2);
        let one = Duration::from_secs(1);
        let cases = [
            (S::UserError, 0, Next::Retry(one)),
            (S::Panic, 1, Next::Retry(one)),
            (S::Panic, 2, Next::Final),
            (S::Timeout, 0, Next::Retry(one)),
            (S::InitFailure, 0, Next::Retry(one)),
            (S::InternalFailure, 0, Next::Retry(Duration::ZERO)),
            (S::Terminated, 0, Next::Final),
            (S::Success, 0, Next::Final),
        ];
        for (status, attempt, want) in cases {
            assert_eq!(
                after_attempt(status, attempt, Some(&p)),
                want,
                "{status:?} #{attempt}"
            );
        }
        assert_eq!(after_attempt(S::Panic, 0, None), Next::Final);
    }

    #[test]
    fn backoff_grows_to_max() {
        let p = pb::RetryPolicy {
            max_retries: 10,
            backoff_coefficient: 2.0,
            initial_delay_ms: 1000,
            max_delay_ms: 3000,
        };
        let d = |a| after_attempt(S::UserError, a, Some(&p));
        assert_eq!(d(0), Next::Retry(Duration::from_secs(1)));
        assert_eq!(d(1), Next::Retry(Duration::from_secs(2)));
        assert_eq!(d(2), Next::Retry(Duration::from_secs(3)));
    }
}
