//! The timeout worker: sleeps until the earliest deadline of any pending pause (woken
//! early when a pause is created, since its deadline may be nearer), then times out
//! everything due. Pauses that expired while the server was down are due at the first
//! step, right after start.

use std::time::Duration;

use jiff::Timestamp;

use crate::domain::pauses::{PauseError, Pauses};
use crate::work;

/// One step at `now`: times out every pause due, and says how long to sleep before the
/// next deadline.
pub async fn step(pauses: &Pauses, now: Timestamp) -> Result<Duration, PauseError> {
    let count = pauses.time_out_due(now).await?;
    if count > 0 {
        tracing::info!(count, "timed out expired pauses");
    }
    Ok(work::until(now, pauses.next_expiry().await?))
}
