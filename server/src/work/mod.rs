//! Background work, and the loop every worker runs: do one step, then sleep until the time
//! the step names, until someone rings the worker's bell (new work may be due sooner), or
//! until the server stops. A failed step is logged and retried shortly.
//!
//! - [`checkpoints`]: signs the audit chains' heads every minute.
//! - [`deliveries`]: sends each pause to its human.
//! - [`webhooks`]: sends signed webhook events to agents.
//! - [`outbox`]: the pipeline both of those run on.
//! - [`handover`]: a new pause's first notices, from its create to the delivery worker.
//! - [`unrecorded`]: notices sent and not yet recorded, which an answer waits for.
//! - [`outcome`]: what a send came to, and the retry rules.
//! - [`timeouts`]: times out pauses at their deadline.

pub mod checkpoints;
pub mod deliveries;
pub mod handover;
pub mod outbox;
pub mod outcome;
pub mod timeouts;
pub mod unrecorded;
pub mod webhooks;

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The longest a worker sleeps without looking, in case the clock jumps.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);
/// The pause after a failed step (the database being away, say).
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// Runs `step` until `stop` is cancelled. `step(now)` returns how long to sleep.
pub async fn run<S, F, E>(name: &'static str, bell: &Notify, stop: CancellationToken, mut step: S)
where
    S: FnMut(Timestamp) -> F,
    F: Future<Output = Result<Duration, E>>,
    E: Display,
{
    loop {
        let sleep = match step(crate::domain::pauses::now()).await {
            Ok(sleep) => sleep.min(MAX_SLEEP),
            Err(e) => {
                tracing::error!(worker = name, error = %e, "worker step failed; retrying");
                RETRY_AFTER_ERROR
            }
        };
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = bell.notified() => {}
            () = stop.cancelled() => return,
        }
    }
}

/// How long from `now` until `next`, or the longest sleep when there is nothing to wait for.
pub fn until(now: Timestamp, next: Option<Timestamp>) -> Duration {
    match next {
        Some(next) => {
            let millis = (next.as_millisecond() - now.as_millisecond()).max(0);
            Duration::from_millis(millis.unsigned_abs()).min(MAX_SLEEP)
        }
        None => MAX_SLEEP,
    }
}
