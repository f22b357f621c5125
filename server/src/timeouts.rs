//! The timeout worker: sleeps until the earliest deadline of any pending pause (woken
//! early when a pause is created, since its deadline may be nearer), then times out
//! everything due. Pauses that expired while the server was down are due at the first
//! pass, right after start.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::pauses::{self, PauseError, Pauses};

/// The longest the worker sleeps without looking, in case the clock jumps.
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// The pause after a failed pass (the database being away, say).
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// Runs until `stop` is cancelled.
pub async fn run(pauses: Pauses, new_deadline: Arc<Notify>, stop: CancellationToken) {
    loop {
        let sleep = match step(&pauses, pauses::now()).await {
            Ok(sleep) => sleep,
            Err(e) => {
                tracing::error!(error = %e, "timing out expired pauses failed; retrying");
                RETRY_AFTER_ERROR
            }
        };
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = new_deadline.notified() => {}
            () = stop.cancelled() => return,
        }
    }
}

/// One pass at `now`: times out every pause due, and says how long to sleep before the
/// next deadline.
pub async fn step(pauses: &Pauses, now: Timestamp) -> Result<Duration, PauseError> {
    let count = pauses.time_out_due(now).await?;
    if count > 0 {
        tracing::info!(count, "timed out expired pauses");
    }
    Ok(match pauses.next_expiry().await? {
        Some(next) => {
            let millis = (next.as_millisecond() - now.as_millisecond()).max(0);
            Duration::from_millis(millis.unsigned_abs()).min(MAX_SLEEP)
        }
        None => MAX_SLEEP,
    })
}
