//! Riding out a control plane that went away (a restart, a network blip): a request that could
//! not reach it is sent again, with backoff, for a bounded time (`MODAL_RECONNECT_TIMEOUT`
//! seconds, 60 by default); the channel reconnects by itself. Only requests that are safe to
//! send twice go through here: reads, cancels, and calls that carry their own call id.

use std::future::Future;
use std::time::{Duration, Instant};

use tonic::Status;

/// The environment variable that bounds how long a client waits for its control plane.
pub(crate) const RECONNECT_TIMEOUT_ENV: &str = "MODAL_RECONNECT_TIMEOUT";
const DEFAULT_BUDGET: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How long to keep trying: `MODAL_RECONNECT_TIMEOUT` (seconds; 0: not at all), else 60 s.
fn budget() -> Duration {
    std::env::var(RECONNECT_TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(DEFAULT_BUDGET, Duration::from_secs_f64)
}

/// Whether `status` says the control plane could not be reached (rather than that it answered).
/// A status the control plane sent has no source error; one made here from a failed connection
/// has one (or, from some paths, only tonic's words for it).
fn is_disconnect(status: &Status) -> bool {
    // A plain connection that met a TLS control plane meets it again.
    if crate::wire::met_tls(status) {
        return false;
    }
    let local = std::error::Error::source(status).is_some();
    match status.code() {
        tonic::Code::Unavailable => true,
        tonic::Code::Unknown | tonic::Code::Cancelled => {
            local || {
                let m = status.message();
                m.contains("transport error") || m.contains("h2 protocol error")
            }
        }
        // A control plane's own `internal` (a failed write) must not be sent again.
        tonic::Code::Internal => local,
        _ => false,
    }
}

/// Runs `attempt` until it reaches the control plane, waiting between tries (100 ms doubling to
/// 2 s) for at most [`budget`]. Once the budget is spent the last error comes back, saying how
/// long it tried and how to wait longer.
pub(crate) async fn reconnecting<T, F, Fut>(what: &str, attempt: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    reconnecting_until(what, None, attempt).await
}

/// [`reconnecting`], giving up at `deadline` too (the caller's own timeout): then the error is
/// `deadline exceeded`.
pub(crate) async fn reconnecting_until<T, F, Fut>(
    what: &str,
    deadline: Option<Instant>,
    mut attempt: F,
) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Status>>,
{
    let start = Instant::now();
    // Read when first needed: most requests reach the control plane at once.
    let mut budget = None;
    let mut backoff = FIRST_BACKOFF;
    let mut warned = false;
    loop {
        match attempt().await {
            Err(status) if is_disconnect(&status) => {
                let budget = *budget.get_or_insert_with(self::budget);
                if deadline.is_some_and(|d| Instant::now() + backoff >= d) {
                    return Err(Status::deadline_exceeded(format!(
                        "{what}: the control plane could not be reached before the timeout ({})",
                        status.message()
                    )));
                }
                let waited = start.elapsed();
                if waited + backoff > budget {
                    return Err(Status::unavailable(format!(
                        "{what}: the control plane could not be reached for {:.0} s ({}); is it running? Set {RECONNECT_TIMEOUT_ENV}=SECONDS to wait longer",
                        waited.as_secs_f64(),
                        status.message()
                    )));
                }
                if !warned {
                    tracing::warn!(
                        "{what}: lost the control plane ({}); reconnecting for up to {:.0} s",
                        status.message(),
                        budget.as_secs_f64()
                    );
                    warned = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            other => {
                if warned && other.is_ok() {
                    tracing::info!("{what}: reconnected to the control plane");
                }
                return other;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn disconnects_are_told_from_answers() {
        assert!(is_disconnect(&Status::unavailable("down")));
        assert!(is_disconnect(&Status::unknown("transport error")));
        assert!(!is_disconnect(&Status::not_found("no such call")));
        assert!(!is_disconnect(&Status::permission_denied("no")));
        assert!(!is_disconnect(&Status::unknown("the function panicked")));
        assert!(
            !is_disconnect(&Status::internal(
                "the control plane could not save the change: connection refused"
            )),
            "a failed write on the control plane is its answer"
        );
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(is_disconnect(&Status::from_error(Box::new(io))));
    }

    #[tokio::test]
    async fn a_request_is_sent_again_until_it_gets_through() {
        let tries = AtomicU32::new(0);
        let r = reconnecting("test", || async {
            if tries.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(Status::unavailable("down"))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(tries.load(Ordering::SeqCst), 3);
        // An answer is not retried.
        let tries = AtomicU32::new(0);
        let r: Result<(), _> = reconnecting("test", || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(Status::not_found("gone"))
        })
        .await;
        assert_eq!(r.unwrap_err().code(), tonic::Code::NotFound);
        assert_eq!(tries.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_callers_deadline_ends_the_wait() {
        let deadline = Instant::now() + Duration::from_millis(250);
        let r: Result<(), _> = reconnecting_until("test", Some(deadline), || async {
            Err(Status::unavailable("down"))
        })
        .await;
        assert_eq!(r.unwrap_err().code(), tonic::Code::DeadlineExceeded);
        assert!(Instant::now() < deadline + Duration::from_secs(2));
    }
}
