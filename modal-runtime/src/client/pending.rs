//! Apps whose functions are published in the background: on the first run of a new binary on
//! the embedded control plane, the app starts while the binary is hashed (its digest is in every
//! definition), and the calls of its functions wait for the publish.

use std::sync::Mutex;

use tokio::sync::watch;

use crate::error::{Error, Result};

/// How a background publish ended (`None`: still going).
type Outcome = Option<std::result::Result<(), String>>;

static PENDING: Mutex<Vec<(String, watch::Receiver<Outcome>)>> = Mutex::new(Vec::new());

/// A publish under way for an app; say how it ended with [`Publishing::done`].
pub(crate) struct Publishing {
    tx: watch::Sender<Outcome>,
}

impl Publishing {
    /// Registers a publish of app `app` (replacing an earlier one's).
    pub(crate) fn start(app: &str) -> Publishing {
        let (tx, rx) = watch::channel(None);
        if let Ok(mut pending) = PENDING.lock() {
            pending.retain(|(a, _)| a != app);
            pending.push((app.to_owned(), rx));
        }
        Publishing { tx }
    }

    /// The publish ended: the calls waiting for it go on (or fail with `outcome`'s error).
    pub(crate) fn done(self, outcome: std::result::Result<(), String>) {
        let _ = self.tx.send(Some(outcome));
    }
}

impl Drop for Publishing {
    fn drop(&mut self) {
        // Ended without a word (its task was aborted): waiters hear so rather than hang.
        self.tx.send_if_modified(|o| {
            if o.is_none() {
                *o = Some(Err(
                    "the app stopped before its functions were published".into()
                ));
                true
            } else {
                false
            }
        });
    }
}

/// Forgets app `app`'s publish (its run ended).
pub(crate) fn forget(app: &str) {
    if let Ok(mut pending) = PENDING.lock() {
        pending.retain(|(a, _)| a != app);
    }
}

/// Waits for app `app`'s background publish, if one is under way or ended failing: `Ok(true)`
/// once it succeeded, `Ok(false)` when there is none.
pub(crate) async fn wait(app: &str) -> Result<bool> {
    let rx = PENDING
        .lock()
        .ok()
        .and_then(|p| p.iter().find(|(a, _)| a == app).map(|(_, rx)| rx.clone()));
    let Some(mut rx) = rx else {
        return Ok(false);
    };
    let outcome = rx
        .wait_for(Option::is_some)
        .await
        .map(|o| o.clone())
        .unwrap_or(Some(Err("the app's publish stopped".into())));
    match outcome {
        Some(Ok(())) => Ok(true),
        Some(Err(e)) => Err(Error::ControlPlane(format!(
            "the functions of app `{app}` could not be published: {e}"
        ))),
        None => Ok(false),
    }
}
