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
    pub(crate) fn insert_delivery(
        &mut self,
        project_id: ProjectId,
        pause_id: PauseId,
        channel: Channel,
        now: Timestamp,
    ) {
        self.defer(
            "INSERT INTO deliveries (pause_id, project_id, channel, status, next_attempt_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            args![
                &pause_id.to_string(),
                &project_id.to_string(),
                channel.as_str(),
                DeliveryStatus::Pending.as_str(),
                now,
                now
            ],
        );
    }

    /// Records attempt number `attempt` and releases the lease.
    pub fn record_delivery_attempt(
        &mut self,
        pause_id: PauseId,
        attempt: u32,
        state: DeliveryState,
        error: Option<&str>,
        now: Timestamp,
    ) {
        let (status, next) = state.status(now);
        self.defer(
            "UPDATE deliveries \
             SET status = $2, attempts = $3, last_error = $4, next_attempt_at = $5, \
                 lease_until = NULL, updated_at = $6 \
             WHERE pause_id = $1",
            args![
                &pause_id.to_string(),
                status.as_str(),
                attempt,
                error,
                next,
                now
            ],
        );
    }

    /// Puts a delivery back unsent and unattempted, due at `start`: its provider's rate
    /// gives it that turn.
    pub fn pace_delivery(&mut self, pause_id: PauseId, start: Timestamp) {
        self.defer(
            "UPDATE deliveries SET next_attempt_at = $2, lease_until = NULL \
             WHERE pause_id = $1 AND status = 'pending'",
            args![&pause_id.to_string(), start],
        );
    }

    /// Gives up on a delivery whose pause was decided before it could be sent.
    pub fn skip_delivery(&mut self, pause_id: PauseId, now: Timestamp) {
        self.defer(
            "UPDATE deliveries SET status = 'skipped', lease_until = NULL, updated_at = $2 \
             WHERE pause_id = $1 AND status = 'pending'",
            args![&pause_id.to_string(), now],
        );
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
