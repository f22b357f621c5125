//! API key rows. Only the SHA-256 hash of a key is stored; a key is found by its hash.

use jiff::Timestamp;

use super::db::{args, Conn, Row};
use super::{Store, StoreError, Tx};
use crate::ids::{KeyId, ProjectId};

/// An API key as stored: everything but the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: KeyId,
    pub project_id: ProjectId,
    pub project_name: String,
    /// The longest timeout a pause of the key's project may ask for.
    pub project_max_timeout: std::time::Duration,
    pub name: String,
    /// The key's first characters, enough for a person to tell keys apart.
    pub prefix: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

const SELECT: &str = "SELECT k.id, k.project_id, p.name AS project_name, \
                      p.max_timeout_seconds AS project_max_timeout, k.name, k.prefix, \
                      k.created_at, k.revoked_at \
                      FROM api_keys k JOIN projects p ON p.id = k.project_id";

fn from_row(row: &dyn Row) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        id: row.uuid("id")?.into(),
        project_id: row.uuid("project_id")?.into(),
        project_name: row.text("project_name")?,
        project_max_timeout: std::time::Duration::from_secs(
            row.int("project_max_timeout")?.max(0).unsigned_abs(),
        ),
        name: row.text("name")?,
        prefix: row.text("prefix")?,
        created_at: row.time("created_at")?,
        revoked_at: row.opt_time("revoked_at")?,
    })
}

impl Conn {
    /// The live (not revoked) key whose hash is `key_hash`.
    pub async fn live_key_by_hash(
        &mut self,
        key_hash: &str,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let sql = format!("{SELECT} WHERE k.key_hash = $1 AND k.revoked_at IS NULL");
        self.fetch_optional("api_keys", &sql, args![key_hash], from_row)
            .await
    }

    /// Every key, revoked ones included, oldest first.
    pub async fn keys(&mut self) -> Result<Vec<KeyRecord>, StoreError> {
        let sql = format!("{SELECT} ORDER BY k.created_at, k.id");
        self.fetch_all("api_keys", &sql, &[], from_row).await
    }

    /// The key with this id, revoked or not.
    pub async fn key(&mut self, id: KeyId) -> Result<Option<KeyRecord>, StoreError> {
        let sql = format!("{SELECT} WHERE k.id = $1");
        self.fetch_optional("api_keys", &sql, args![&id.to_string()], from_row)
            .await
    }
}

/// The setting every key change moves, so that servers (and other processes) see that
/// their cached keys are out of date.
const KEYS_VERSION: &str = "keys_version";

impl Tx {
    /// Marks the keys as changed, for every server's cache.
    pub fn keys_changed(&mut self) {
        self.defer(
            "INSERT INTO settings (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = $2",
            args![KEYS_VERSION, &uuid::Uuid::now_v7().to_string()],
        );
        self.announce(crate::hub::Change::KeysChanged);
    }

    /// Stores a new key by its hash.
    pub async fn insert_key(
        &mut self,
        project_id: ProjectId,
        name: &str,
        prefix: &str,
        key_hash: &str,
        now: Timestamp,
    ) -> Result<KeyId, StoreError> {
        let id = KeyId::new();
        self.execute(
            "INSERT INTO api_keys (id, project_id, name, prefix, key_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            args![
                &id.to_string(),
                &project_id.to_string(),
                name,
                prefix,
                key_hash,
                now
            ],
        )
        .await?;
        Ok(id)
    }

    /// Marks the key revoked; None when there is no such live key.
    pub async fn revoke_key(
        &mut self,
        id: KeyId,
        now: Timestamp,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let updated = self
            .execute(
                "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                args![&id.to_string(), now],
            )
            .await?;
        if updated == 0 {
            return Ok(None);
        }
        self.key(id).await
    }
}

impl Store {
    /// The live (not revoked) key whose hash is `key_hash`.
    pub async fn live_key_by_hash(&self, key_hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        let key_hash = key_hash.to_owned();
        self.read(move |conn| Box::pin(async move { conn.live_key_by_hash(&key_hash).await }))
            .await
    }

    /// Every key, revoked ones included, oldest first.
    pub async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(|conn| Box::pin(conn.keys())).await
    }

    /// What the keys' version is now (see [`Tx::keys_changed`]).
    pub async fn keys_version(&self) -> Result<String, StoreError> {
        self.read(|conn| {
            Box::pin(async move {
                let version = conn
                    .fetch_optional(
                        "settings",
                        "SELECT value FROM settings WHERE name = $1",
                        args![KEYS_VERSION],
                        |row| row.text("value"),
                    )
                    .await?;
                Ok(version.unwrap_or_default())
            })
        })
        .await
    }

    /// How many keys exist, revoked ones included.
    pub async fn key_count(&self) -> Result<i64, StoreError> {
        self.read(|conn| {
            Box::pin(async move {
                conn.fetch_one(
                    "api_keys",
                    "SELECT COUNT(*) AS n FROM api_keys",
                    &[],
                    |row| row.int("n"),
                )
                .await
            })
        })
        .await
    }
}
