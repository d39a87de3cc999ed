//! Retry decisions, for every call type alike: whether a failed attempt runs again, and when.

use std::time::Duration;

use crate::app::Retries;
use crate::model::ResultStatus;

/// What happens after an attempt ended with `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Run the input again after this delay.
    Retry(Duration),
    /// The result is final.
    Final,
}

/// Modal's rules: success, cancellation and an undecodable input are final; internal failures
/// are retried at once;
/// user errors, panics, timeouts and init failures after the backoff delay; each retry uses one
/// of the policy's `max_retries`.
pub(crate) fn after_attempt(status: ResultStatus, attempt: u32, policy: Option<&Retries>) -> Next {
    let Some(policy) = policy else {
        return Next::Final;
    };
    if i64::from(attempt) >= policy.max_retries {
        return Next::Final;
    }
    match status {
        // An input that cannot be decoded fails the same way every time.
        ResultStatus::Success | ResultStatus::Cancelled | ResultStatus::InvalidInput => Next::Final,
        ResultStatus::InternalFailure => Next::Retry(Duration::ZERO),
        _ => Next::Retry(policy.delay_before_retry(attempt + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ResultStatus as S;

    #[test]
    fn table() {
        let p = Retries::fixed(2);
        let one = Duration::from_secs(1);
        let cases = [
            (S::UserError, 0, Next::Retry(one)),
            (S::Panic, 1, Next::Retry(one)),
            (S::Panic, 2, Next::Final),
            (S::Timeout, 0, Next::Retry(one)),
            (S::InitFailure, 0, Next::Retry(one)),
            (S::InternalFailure, 0, Next::Retry(Duration::ZERO)),
            (S::Cancelled, 0, Next::Final),
            (S::InvalidInput, 0, Next::Final),
            (S::OutOfMemory, 0, Next::Retry(one)),
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
        let p = Retries::new(10)
            .backoff_coefficient(2.0)
            .initial_delay(Duration::from_secs(1))
            .max_delay(Duration::from_secs(3));
        let d = |a| after_attempt(S::UserError, a, Some(&p));
        assert_eq!(d(0), Next::Retry(Duration::from_secs(1)));
        assert_eq!(d(1), Next::Retry(Duration::from_secs(2)));
        assert_eq!(d(2), Next::Retry(Duration::from_secs(3)));
    }
}
