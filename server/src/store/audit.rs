//! The audit log's rows. Appending takes the next sequence number and the previous hash
//! from the project's row in the same transaction, so the chain stays one line however
//! many writers there are. The database refuses UPDATE and DELETE on `audit_events`.

use jiff::Timestamp;
use pausepoint_api::audit::chain_hash;
use pausepoint_api::{AuditEvent, AuditEventKind};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use super::{optional_uuid_column, time_column, uuid_column, Store, StoreError};

/// Which events to read. Every field narrows; none reads them all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub pause_id: Option<Uuid>,
    pub event: Option<AuditEventKind>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

const COLUMNS: &str = "seq, event_id, event, pause_id, actor, occurred_at, data, prev_hash, hash";

fn from_row(row: &AnyRow) -> Result<AuditEvent, StoreError> {
    let corrupt = |detail: String| StoreError::corrupt("audit_events", detail);
    let event: String = row.try_get("event")?;
    let data: String = row.try_get("data")?;
    Ok(AuditEvent {
        event_id: uuid_column(row, "audit_events", "event_id")?,
        seq: row.try_get("seq")?,
        event: event.parse().map_err(corrupt)?,
        pause_id: optional_uuid_column(row, "audit_events", "pause_id")?,
        actor: row.try_get("actor")?,
        occurred_at: time_column(row, "audit_events", "occurred_at")?,
        data: serde_json::from_str(&data).map_err(|e| corrupt(format!("data: {e}")))?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

impl Store {
    /// Appends an event to the project's chain inside `conn`'s transaction.
    pub async fn append_audit(
        conn: &mut AnyConnection,
        project_id: Uuid,
        event: AuditEventKind,
        pause_id: Option<Uuid>,
        actor: &str,
        data: Value,
        now: Timestamp,
    ) -> Result<AuditEvent, StoreError> {
        let head = sqlx::query(
            "UPDATE projects SET audit_seq = audit_seq + 1 WHERE id = $1 \
             RETURNING audit_seq, audit_head",
        )
        .bind(project_id.to_string())
        .fetch_one(&mut *conn)
        .await?;
        let seq: i64 = head.try_get("audit_seq")?;
        let prev_hash: String = head.try_get("audit_head")?;

        // Stored to the millisecond, so hash it to the millisecond.
        let occurred_at = Timestamp::from_millisecond(now.as_millisecond())
            .map_err(|e| StoreError::corrupt("audit_events", e))?;
        let event_id = Uuid::now_v7();
        let hash = chain_hash(
            &prev_hash,
            &event_id,
            seq,
            event,
            &pause_id,
            actor,
            &occurred_at,
            &data,
        );

        sqlx::query(
            "INSERT INTO audit_events \
                 (project_id, seq, event_id, event, pause_id, actor, occurred_at, data, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(project_id.to_string())
        .bind(seq)
        .bind(event_id.to_string())
        .bind(event.as_str())
        .bind(pause_id.map(|id| id.to_string()))
        .bind(actor)
        .bind(occurred_at.as_millisecond())
        .bind(data.to_string())
        .bind(&prev_hash)
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
        sqlx::query("UPDATE projects SET audit_head = $2 WHERE id = $1")
            .bind(project_id.to_string())
            .bind(&hash)
            .execute(&mut *conn)
            .await?;

        Ok(AuditEvent {
            event_id,
            seq,
            event,
            pause_id,
            actor: actor.to_owned(),
            occurred_at,
            data,
            prev_hash,
            hash,
        })
    }

    /// Up to `limit` of the project's events matching `filter`, oldest first, after `after_seq`.
    pub async fn audit_events(
        &self,
        project_id: Uuid,
        filter: &AuditFilter,
        after_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM audit_events \
             WHERE project_id = $1 \
               AND (CAST($2 AS TEXT) IS NULL OR pause_id = $2) \
               AND (CAST($3 AS TEXT) IS NULL OR event = $3) \
               AND (CAST($4 AS BIGINT) IS NULL OR occurred_at >= $4) \
               AND (CAST($5 AS BIGINT) IS NULL OR occurred_at < $5) \
               AND seq > $6 \
             ORDER BY seq LIMIT $7"
        );
        let rows = sqlx::query(&sql)
            .bind(project_id.to_string())
            .bind(filter.pause_id.map(|id| id.to_string()))
            .bind(filter.event.map(AuditEventKind::as_str))
            .bind(filter.since.map(|t| t.as_millisecond()))
            .bind(filter.until.map(|t| t.as_millisecond()))
            .bind(after_seq.unwrap_or(0))
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// The last sequence number handed out in the project's chain, and its hash.
    pub async fn audit_head(&self, project_id: Uuid) -> Result<(i64, String), StoreError> {
        let row = sqlx::query("SELECT audit_seq, audit_head FROM projects WHERE id = $1")
            .bind(project_id.to_string())
            .fetch_one(self.pool())
            .await?;
        Ok((row.try_get("audit_seq")?, row.try_get("audit_head")?))
    }
}
