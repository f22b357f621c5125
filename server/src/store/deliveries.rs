//! Delivery rows: one per pause, written with it, so a notification survives a crash.
//! Workers take them through the [`super::outbox`] like any other pending work.

use jiff::Timestamp;
use pausepoint_api::Channel;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use super::{Store, StoreError};

/// Where a delivery ends after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Try again at the given time.
    Retry(Timestamp),
    Sent,
    Logged,
    Failed,
}

impl Store {
    /// Writes the pending delivery of a new pause, inside `conn`'s transaction.
    pub(crate) async fn insert_delivery(
        conn: &mut AnyConnection,
        project_id: Uuid,
        pause_id: Uuid,
        channel: Channel,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO deliveries (pause_id, project_id, channel, status, next_attempt_at, updated_at) \
             VALUES ($1, $2, $3, 'pending', $4, $4)",
        )
        .bind(pause_id.to_string())
        .bind(project_id.to_string())
        .bind(channel.as_str())
        .bind(now.as_millisecond())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Records one attempt and releases the lease, inside `conn`'s transaction; returns
    /// the number of attempts so far.
    pub async fn record_delivery_attempt(
        conn: &mut AnyConnection,
        pause_id: Uuid,
        state: DeliveryState,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        let (status, next) = match state {
            DeliveryState::Retry(at) => ("pending", at),
            DeliveryState::Sent => ("sent", now),
            DeliveryState::Logged => ("logged", now),
            DeliveryState::Failed => ("failed", now),
        };
        let row = sqlx::query(
            "UPDATE deliveries \
             SET status = $2, attempts = attempts + 1, last_error = $3, next_attempt_at = $4, \
                 lease_until = NULL, updated_at = $5 \
             WHERE pause_id = $1 RETURNING attempts",
        )
        .bind(pause_id.to_string())
        .bind(status)
        .bind(error)
        .bind(next.as_millisecond())
        .bind(now.as_millisecond())
        .fetch_one(&mut *conn)
        .await?;
        let attempts: i64 = row.try_get("attempts")?;
        Ok(u32::try_from(attempts).unwrap_or(u32::MAX))
    }

    /// Gives up on a delivery whose pause was decided before it could be sent.
    pub async fn skip_delivery(&self, pause_id: Uuid, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deliveries SET status = 'skipped', lease_until = NULL, updated_at = $2 \
             WHERE pause_id = $1 AND status = 'pending'",
        )
        .bind(pause_id.to_string())
        .bind(now.as_millisecond())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
