//! Server-wide values kept in the database, so that every server sharing it agrees.

use super::db::args;
use super::{Store, StoreError};

impl Store {
    /// The value of `name`, set to `initial` first if it has none. Safe when several
    /// servers start at once: the first write wins and everyone reads it.
    pub async fn setting_or_init(&self, name: &str, initial: &str) -> Result<String, StoreError> {
        let (name, initial) = (name.to_owned(), initial.to_owned());
        self.write(move |tx| {
            Box::pin(async move {
                tx.execute(
                    "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                    args![&name, &initial],
                )
                .await?;
                tx.fetch_one(
                    "settings",
                    "SELECT value FROM settings WHERE name = $1",
                    args![&name],
                    |row| row.text("value"),
                )
                .await
            })
        })
        .await
    }
}
