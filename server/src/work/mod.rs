//! Background work, and the loop every worker runs: do one step, then sleep until the time
//! the step names, until someone rings the worker's bell (new work may be due sooner), or
//! until the server stops. A failed step is logged and retried shortly.
//!
//! - [`deliveries`]: sends each pause to its human.
//! - [`webhooks`]: sends signed webhook events to agents.
//! - [`timeouts`]: times out pauses at their deadline.

pub mod deliveries;
pub mod timeouts;
pub mod webhooks;

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::outbox::Outbox;
use crate::store::{Store, StoreError};

/// The longest a worker sleeps without looking, in case the clock jumps.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);
/// The pause after a failed step (the database being away, say).
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// Runs `step` until `stop` is cancelled. `step(now)` returns how long to sleep.
pub async fn run<S, F, E>(
    name: &'static str,
    bell: Arc<Notify>,
    stop: CancellationToken,
    mut step: S,
) where
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

/// One step of a worker over an outbox: claims the rows due at `now` in batches, handles
/// each batch's rows at once, until none is due, and says how long until the next one is.
pub async fn drain_outbox<H, F>(
    store: &Store,
    outbox: Outbox,
    now: Timestamp,
    lease: SignedDuration,
    batch: u32,
    handle: H,
) -> Result<Duration, StoreError>
where
    H: Fn(String) -> F,
    F: Future<Output = Result<(), StoreError>>,
{
    loop {
        let claimed = store
            .outbox_claim_due(outbox, now, now + lease, batch)
            .await?;
        if claimed.is_empty() {
            break;
        }
        for result in futures_util::future::join_all(claimed.into_iter().map(&handle)).await {
            result?;
        }
    }
    Ok(until(now, store.outbox_next_at(outbox).await?))
}
