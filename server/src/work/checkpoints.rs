//! The checkpointer: signs every project's audit chain head at start and then every
//! `every` while new events arrive (a chain whose head is already a checkpoint is left
//! alone, so an idle server adds nothing). The last checkpoint is made at stop, after the
//! other workers have recorded what they did (see [`crate::App::serve`]).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::domain::pauses::now;
use crate::domain::proof::Checkpoints;

/// Checkpoints until `stop` is cancelled.
pub async fn run(checkpoints: &Checkpoints, every: Duration, stop: CancellationToken) {
    loop {
        match checkpoints.make_all(now()).await {
            Ok(0) => {}
            Ok(made) => tracing::debug!(count = made, "audit checkpoints signed"),
            Err(e) => tracing::error!(error = %e, "audit checkpoints failed; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stop.cancelled() => return,
        }
    }
}
