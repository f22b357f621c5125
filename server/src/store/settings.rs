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

/// The setting that holds the master key's check value.
const MASTER_KEY_CHECK: &str = "master_key_check";
/// The setting that holds the (sealed) link-signing key.
pub const LINK_SIGNING_KEY: &str = "link_signing_key";
/// What the link-signing key is sealed for.
pub const LINK_SIGNING_KEY_PURPOSE: &str = "link-signing-key";

/// What a project's webhook secret is sealed for: bound to its project.
pub fn webhook_secret_purpose(project_id: crate::ids::ProjectId) -> String {
    format!("webhook-secret/{project_id}")
}

impl Store {
    /// Fails when this database's secrets were sealed with another master key; records the
    /// key's check value on first use.
    pub(super) async fn check_master_key(&self) -> Result<(), StoreError> {
        let expected = self.secrets().check_value().to_owned();
        let stored = self.setting_or_init(MASTER_KEY_CHECK, &expected).await?;
        if stored != expected {
            return Err(self.secrets().wrong_key().into());
        }
        Ok(())
    }

    /// Seals every secret an older version kept in the clear (the link-signing key,
    /// webhook secrets), in place.
    pub(super) async fn seal_plaintext_secrets(&self) -> Result<(), StoreError> {
        let secrets = std::sync::Arc::clone(self.secrets());
        self.write(move |tx| {
            Box::pin(async move {
                let link = tx
                    .fetch_optional(
                        "settings",
                        "SELECT value FROM settings WHERE name = $1",
                        args![LINK_SIGNING_KEY],
                        |row| row.text("value"),
                    )
                    .await?;
                if let Some(link) = link.filter(|v| !crate::secrets::is_sealed(v)) {
                    let sealed = secrets.seal(LINK_SIGNING_KEY_PURPOSE, link.trim().as_bytes())?;
                    tx.execute(
                        "UPDATE settings SET value = $2 WHERE name = $1",
                        args![LINK_SIGNING_KEY, &sealed],
                    )
                    .await?;
                }
                let webhook = tx
                    .fetch_all(
                        "webhook_secrets",
                        "SELECT id, project_id, secret FROM webhook_secrets",
                        &[],
                        |row| {
                            Ok((
                                row.text("id")?,
                                crate::ids::ProjectId::from(row.uuid("project_id")?),
                                row.text("secret")?,
                            ))
                        },
                    )
                    .await?;
                for (id, project_id, secret) in webhook {
                    if crate::secrets::is_sealed(&secret) {
                        continue;
                    }
                    let sealed =
                        secrets.seal(&webhook_secret_purpose(project_id), secret.as_bytes())?;
                    tx.execute(
                        "UPDATE webhook_secrets SET secret = $2 WHERE id = $1",
                        args![&id, &sealed],
                    )
                    .await?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .await
    }
}
