//! API key rows. Only the SHA-256 hash of a key is stored; a key is found by its hash.

use jiff::Timestamp;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use super::{optional_time_column, time_column, uuid_column, Store, StoreError};

/// An API key as stored: everything but the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: Uuid,
    pub project_id: Uuid,
    pub project_name: String,
    pub name: String,
    /// The key's first characters, enough for a person to tell keys apart.
    pub prefix: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

const COLUMNS: &str = "k.id, k.project_id, p.name AS project_name, k.name, k.prefix, \
                       k.created_at, k.revoked_at";

fn from_row(row: &AnyRow) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        id: uuid_column(row, "api_keys", "id")?,
        project_id: uuid_column(row, "api_keys", "project_id")?,
        project_name: row.try_get("project_name")?,
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        created_at: time_column(row, "api_keys", "created_at")?,
        revoked_at: optional_time_column(row, "api_keys", "revoked_at")?,
    })
}

impl Store {
    /// Stores a new key by its hash, inside `conn`'s transaction.
    pub async fn insert_key(
        conn: &mut AnyConnection,
        project_id: Uuid,
        name: &str,
        prefix: &str,
        key_hash: &str,
        now: Timestamp,
    ) -> Result<Uuid, StoreError> {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO api_keys (id, project_id, name, prefix, key_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id.to_string())
        .bind(project_id.to_string())
        .bind(name)
        .bind(prefix)
        .bind(key_hash)
        .bind(now.as_millisecond())
        .execute(&mut *conn)
        .await?;
        Ok(id)
    }

    /// The live (not revoked) key whose hash is `key_hash`.
    pub async fn live_key_by_hash(&self, key_hash: &str) -> Result<Option<KeyRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM api_keys k JOIN projects p ON p.id = k.project_id \
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
        );
        let row = sqlx::query(&sql)
            .bind(key_hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every key, revoked ones included, oldest first.
    pub async fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM api_keys k JOIN projects p ON p.id = k.project_id \
             ORDER BY k.created_at, k.id"
        );
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        rows.iter().map(from_row).collect()
    }

    /// How many keys exist, revoked ones included.
    pub async fn key_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) AS n FROM api_keys")
            .fetch_one(self.pool())
            .await?
            .try_get("n")?)
    }

    /// Marks the key revoked inside `conn`'s transaction; None when there is no such live key.
    pub async fn revoke_key(
        conn: &mut AnyConnection,
        id: Uuid,
        now: Timestamp,
    ) -> Result<Option<KeyRecord>, StoreError> {
        let updated =
            sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id.to_string())
                .bind(now.as_millisecond())
                .execute(&mut *conn)
                .await?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM api_keys k JOIN projects p ON p.id = k.project_id WHERE k.id = $1"
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_one(&mut *conn)
            .await?;
        from_row(&row).map(Some)
    }
}
