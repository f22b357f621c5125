//! Server-wide values kept in the database, so that every server sharing it agrees.

use sqlx::Row;

use super::{Store, StoreError};

impl Store {
    /// The value of `name`, set to `initial` first if it has none. Safe when several
    /// servers start at once: the first write wins and everyone reads it.
    pub async fn setting_or_init(&self, name: &str, initial: &str) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(initial)
        .execute(self.pool())
        .await?;
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("value")?)
    }
}
