//! Counts for `/metrics`: how many rows of each kind stand in each status.

use sqlx::Row;

use super::{Store, StoreError};

impl Store {
    /// (status, count) for every status present in `table`: pauses, deliveries or
    /// webhook_events.
    pub async fn status_counts(
        &self,
        table: &'static str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let sql =
            format!("SELECT status, COUNT(*) AS n FROM {table} GROUP BY status ORDER BY status");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        rows.iter()
            .map(|row| Ok((row.try_get("status")?, row.try_get("n")?)))
            .collect()
    }
}
