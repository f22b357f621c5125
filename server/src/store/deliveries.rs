//! Delivery rows: one per pause, written with it, so a notification survives a crash.
//! Workers take them through the [`super::outbox`] like any other pending work.

use jiff::Timestamp;
use pausepoint_api::{Channel, DeliveryStatus, Pause};

use super::db::{args, Arg, Conn};
use super::{StoreError, Tx};
use crate::ids::{PauseId, ProjectId};

/// Where a delivery ends after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Try again at the given time.
    Retry(Timestamp),
    Sent,
    Logged,
    Failed,
}

impl DeliveryState {
    /// The status it leaves the delivery in, and when the delivery is next due.
    fn status(self, now: Timestamp) -> (DeliveryStatus, Timestamp) {
        match self {
            DeliveryState::Retry(at) => (DeliveryStatus::Pending, at),
            DeliveryState::Sent => (DeliveryStatus::Sent, now),
            DeliveryState::Logged => (DeliveryStatus::Logged, now),
            DeliveryState::Failed => (DeliveryStatus::Failed, now),
        }
    }
}

/// A claimed delivery, with what sending it needs.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub project_id: ProjectId,
    pub project_name: String,
    pub pause: Pause,
}

impl Tx {
    /// Writes the pending delivery of a new pause.
    pub(crate) async fn insert_delivery(
        &mut self,
        project_id: ProjectId,
        pause_id: PauseId,
        channel: Channel,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO deliveries (pause_id, project_id, channel, status, next_attempt_at, updated_at) \
             VALUES ($1, $2, $3, 'pending', $4, $4)",
            args![&pause_id.to_string(), &project_id.to_string(), channel.as_str(), now],
        )
        .await?;
        Ok(())
    }

    /// Records one attempt and releases the lease; returns the number of attempts so far.
    pub async fn record_delivery_attempt(
        &mut self,
        pause_id: PauseId,
        state: DeliveryState,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        let (status, next) = state.status(now);
        self.fetch_one(
            "deliveries",
            "UPDATE deliveries \
             SET status = $2, attempts = attempts + 1, last_error = $3, next_attempt_at = $4, \
                 lease_until = NULL, updated_at = $5 \
             WHERE pause_id = $1 RETURNING attempts",
            args![&pause_id.to_string(), status.as_str(), error, next, now],
            |row| row.count("attempts"),
        )
        .await
    }

    /// Gives up on a delivery whose pause was decided before it could be sent.
    pub async fn skip_delivery(
        &mut self,
        pause_id: PauseId,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE deliveries SET status = 'skipped', lease_until = NULL, updated_at = $2 \
             WHERE pause_id = $1 AND status = 'pending'",
            args![&pause_id.to_string(), now],
        )
        .await?;
        Ok(())
    }
}

impl Conn {
    /// The pauses of claimed deliveries, with their projects' names.
    pub async fn due_deliveries(
        &mut self,
        pause_ids: &[String],
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let mut due = Vec::with_capacity(pause_ids.len());
        for chunk in pause_ids.chunks(100) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "{} WHERE p.id IN ({})",
                super::pauses::SELECT_WITH_PROJECT,
                placeholders.join(", ")
            );
            let args: Vec<Arg<'_>> = chunk.iter().map(Arg::from).collect();
            due.extend(
                self.fetch_all("pauses", &sql, &args, |row| {
                    let (project_id, pause) = super::pauses::with_project(row)?;
                    Ok(DueDelivery {
                        project_id,
                        project_name: row.text("project_name")?,
                        pause,
                    })
                })
                .await?,
            );
        }
        Ok(due)
    }
}
