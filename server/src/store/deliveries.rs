//! Delivery rows: one per pause, written with it, so a notification survives a crash.
//! Workers claim a due row with a conditional UPDATE and a lease: of two servers that
//! reach for the same row one gets it, and a crashed holder's lease runs out.

use jiff::Timestamp;
use pausepoint_api::Channel;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use super::{uuid_column, Store, StoreError};

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

    /// Pauses whose delivery is due at `now` and held by nobody, earliest first.
    pub async fn due_deliveries(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError> {
        let rows = sqlx::query(
            "SELECT pause_id FROM deliveries \
             WHERE status = 'pending' AND next_attempt_at <= $1 \
               AND (lease_until IS NULL OR lease_until <= $1) \
             ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(now.as_millisecond())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| uuid_column(row, "deliveries", "pause_id"))
            .collect()
    }

    /// Takes the delivery until `lease_until`; false when someone else holds it or it is done.
    pub async fn claim_delivery(
        &self,
        pause_id: Uuid,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError> {
        let claimed = sqlx::query(
            "UPDATE deliveries SET lease_until = $3 \
             WHERE pause_id = $1 AND status = 'pending' \
               AND (lease_until IS NULL OR lease_until <= $2)",
        )
        .bind(pause_id.to_string())
        .bind(now.as_millisecond())
        .bind(lease_until.as_millisecond())
        .execute(self.pool())
        .await?;
        Ok(claimed.rows_affected() == 1)
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

    /// Releases every lease, at start. Only where one server owns the database (SQLite):
    /// then any lease left is a crashed process's, and its deliveries can go out at once.
    /// Servers sharing a database wait for leases to run out instead.
    pub async fn release_leases_of_a_crashed_server(&self) -> Result<u64, StoreError> {
        if !self.dialect().single_server() {
            return Ok(0);
        }
        let released = sqlx::query("UPDATE deliveries SET lease_until = NULL WHERE status = 'pending' AND lease_until IS NOT NULL")
            .execute(self.pool())
            .await?;
        Ok(released.rows_affected())
    }

    /// When the next pending delivery is due (or its lease runs out).
    pub async fn next_delivery_at(&self) -> Result<Option<Timestamp>, StoreError> {
        let row = sqlx::query(
            "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_attempt_at \
                             THEN lease_until ELSE next_attempt_at END) AS next \
             FROM deliveries WHERE status = 'pending'",
        )
        .fetch_one(self.pool())
        .await?;
        let next: Option<i64> = row.try_get("next")?;
        next.map(|ms| {
            Timestamp::from_millisecond(ms).map_err(|e| StoreError::corrupt("deliveries", e))
        })
        .transpose()
    }
}
