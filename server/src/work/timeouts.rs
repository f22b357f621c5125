//! The timeout worker: sleeps until the earliest deadline of any pending pause (woken
//! early when a pause is created with a sooner deadline), then times out everything due.
//! Pauses that expired while the server was down are due at the first step, right after
//! start.

use std::time::Duration;

use jiff::Timestamp;

use crate::domain::pauses::{PauseError, Pauses};
use crate::hub::Hub;
use crate::work;

/// How often a server sharing the database looks for deadlines of pauses other servers
/// created (they are not announced across servers).
pub const SHARED_LOOK_EVERY: Duration = Duration::from_secs(2);

/// The most pauses one step times out, so that a stop is seen between steps.
const STEP_MOST: usize = 5_000;

/// One step at `now`: times out every pause due, tells the hub the next deadline, and
/// says how long to sleep until it.
pub async fn step(pauses: &Pauses, hub: &Hub, now: Timestamp) -> Result<Duration, PauseError> {
    let (count, more) = pauses.time_out_due(now, STEP_MOST).await?;
    if count > 0 {
        tracing::info!(count, "timed out expired pauses");
    }
    if more {
        // Go again at once, but let a stop in between.
        return Ok(Duration::ZERO);
    }
    let next = pauses.next_expiry().await?;
    hub.set_next_deadline(next);
    Ok(work::until(now, next))
}
