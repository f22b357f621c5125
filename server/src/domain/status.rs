//! How the service stands, for operators (`pp admin status`): pauses waiting for people,
//! and how far behind the delivery and webhook queues are. Read from the database, so it
//! covers every server sharing it.

use jiff::Timestamp;
use serde::Serialize;

use crate::store::outbox::{Outbox, DELIVERIES, WEBHOOK_EVENTS};
use crate::store::{Store, StoreError};

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The SQLite file, or the PostgreSQL URL without its password.
    pub database: String,
    /// Pauses waiting for a decision.
    pub pauses_pending: i64,
    /// When the next of them times out.
    #[serde(with = "pausepoint_api::time::millis_opt")]
    pub next_deadline: Option<Timestamp>,
    pub deliveries: Queue,
    pub webhook_events: Queue,
}

/// One queue of work (deliveries to humans, webhook events).
#[derive(Debug, Clone, Serialize)]
pub struct Queue {
    /// Rows due now and taken by no server: the lag.
    pub due: i64,
    /// How long the oldest of them has been due, in seconds.
    pub oldest_due_seconds: f64,
    /// Rows not done yet: due, in flight, or waiting for a retry or their turn.
    pub queued: i64,
    /// When the next row not yet due comes due.
    #[serde(with = "pausepoint_api::time::millis_opt")]
    pub next_at: Option<Timestamp>,
}

/// The status at `now`.
pub async fn read(store: &Store, now: Timestamp) -> Result<Status, StoreError> {
    let next_deadline = store
        .read(|conn| Box::pin(async move { conn.next_expiry().await }))
        .await?;
    Ok(Status {
        database: store.location().to_owned(),
        pauses_pending: store.pending_count().await?,
        next_deadline,
        deliveries: queue(store, DELIVERIES, now).await?,
        webhook_events: queue(store, WEBHOOK_EVENTS, now).await?,
    })
}

async fn queue(store: &Store, outbox: Outbox, now: Timestamp) -> Result<Queue, StoreError> {
    let (backlog, next_at) = store
        .read(move |conn| {
            Box::pin(async move {
                let backlog = conn.backlog(outbox, now).await?;
                let next = conn.outbox_next_at(outbox).await?;
                Ok::<_, StoreError>((backlog, next))
            })
        })
        .await?;
    Ok(Queue {
        due: backlog.due,
        oldest_due_seconds: backlog
            .oldest
            .map_or(0.0, |oldest| seconds_between(oldest, now)),
        queued: backlog.queued,
        next_at: next_at.filter(|at| *at > now),
    })
}

/// Seconds from `earlier` to `later`, never negative.
pub fn seconds_between(earlier: Timestamp, later: Timestamp) -> f64 {
    (later.as_millisecond() - earlier.as_millisecond()).max(0) as f64 / 1000.0
}
