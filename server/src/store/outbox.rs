//! Rows of work that must survive a crash (deliveries to humans, webhook events) and the
//! one way workers take them: a row is due at `next_attempt_at`, a worker claims it with
//! a conditional UPDATE and a lease, so of several servers one gets it, and a crashed
//! holder's lease runs out.

use jiff::Timestamp;
use sqlx::Row;

use super::{Store, StoreError};

/// A table of pending work, and the column that names a row.
#[derive(Debug, Clone, Copy)]
pub struct Outbox {
    table: &'static str,
    key: &'static str,
}

/// One delivery per pause, to its human.
pub const DELIVERIES: Outbox = Outbox {
    table: "deliveries",
    key: "pause_id",
};
/// Webhook events, to the pause's `webhook_url`.
pub const WEBHOOK_EVENTS: Outbox = Outbox {
    table: "webhook_events",
    key: "id",
};

impl Store {
    /// Rows due at `now` and held by nobody, earliest first.
    pub async fn outbox_due(
        &self,
        outbox: Outbox,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let sql = format!(
            "SELECT {key} AS key FROM {table} \
             WHERE status = 'pending' AND next_attempt_at <= $1 \
               AND (lease_until IS NULL OR lease_until <= $1) \
             ORDER BY next_attempt_at LIMIT $2",
            key = outbox.key,
            table = outbox.table
        );
        let rows = sqlx::query(&sql)
            .bind(now.as_millisecond())
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(|row| Ok(row.try_get("key")?)).collect()
    }

    /// Takes the row until `lease_until`; false when someone else holds it or it is done.
    pub async fn outbox_claim(
        &self,
        outbox: Outbox,
        key: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE {table} SET lease_until = $3 \
             WHERE {key} = $1 AND status = 'pending' AND (lease_until IS NULL OR lease_until <= $2)",
            key = outbox.key,
            table = outbox.table
        );
        let claimed = sqlx::query(&sql)
            .bind(key)
            .bind(now.as_millisecond())
            .bind(lease_until.as_millisecond())
            .execute(self.pool())
            .await?;
        Ok(claimed.rows_affected() == 1)
    }

    /// Releases every lease, at start. Only where one server owns the database (SQLite):
    /// then any lease left is a crashed process's, and its work can go out at once.
    /// Servers sharing a database wait for leases to run out instead.
    pub async fn release_leases_of_a_crashed_server(
        &self,
        outbox: Outbox,
    ) -> Result<u64, StoreError> {
        if !self.dialect().single_server() {
            return Ok(0);
        }
        let sql = format!(
            "UPDATE {} SET lease_until = NULL WHERE status = 'pending' AND lease_until IS NOT NULL",
            outbox.table
        );
        Ok(sqlx::query(&sql)
            .execute(self.pool())
            .await?
            .rows_affected())
    }

    /// When the next pending row is due (or its lease runs out).
    pub async fn outbox_next_at(&self, outbox: Outbox) -> Result<Option<Timestamp>, StoreError> {
        let sql = format!(
            "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_attempt_at \
                             THEN lease_until ELSE next_attempt_at END) AS next \
             FROM {} WHERE status = 'pending'",
            outbox.table
        );
        let row = sqlx::query(&sql).fetch_one(self.pool()).await?;
        let next: Option<i64> = row.try_get("next")?;
        next.map(|ms| Timestamp::from_millisecond(ms).map_err(|e| StoreError::corrupt("outbox", e)))
            .transpose()
    }
}
