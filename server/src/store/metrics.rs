//! Counts for `/metrics`: how many rows of each kind stand in each status.

use super::{Store, StoreError};

impl Store {
    /// (status, count) for every status present in `table`: pauses, deliveries or
    /// webhook_events.
    pub async fn status_counts(
        &self,
        table: &'static str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(move |conn| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT status, COUNT(*) AS n FROM {table} GROUP BY status ORDER BY status"
                );
                conn.fetch_all(table, &sql, &[], |row| {
                    Ok((row.text("status")?, row.int("n")?))
                })
                .await
            })
        })
        .await
    }
}
