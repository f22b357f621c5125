//! The sequencer (PostgreSQL): puts the audit events that requests wrote unsequenced onto
//! their projects' chains, in commit order and in batches, within milliseconds of the
//! commit. Every server runs one; the project's row lock makes sure one at a time chains a
//! project, and a server that dies mid-batch loses nothing (its transaction rolls back
//! and the events wait for the next sequencer). On SQLite events are chained at commit,
//! so this worker is not started.

use std::time::Duration;

use crate::store::{Store, StoreError};

/// How often the sequencer looks even when no notice came (a notice can be missed while
/// the listener reconnects).
pub const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Chains every project's pending events; says how long to sleep.
pub async fn step(store: &Store) -> Result<Duration, StoreError> {
    for project_id in store.projects_with_pending_events().await? {
        store.sequence_pending(project_id, true).await?;
    }
    Ok(LOOK_EVERY)
}
