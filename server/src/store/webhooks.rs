//! Webhook rows: events written in the transaction of the status change they announce,
//! a row per attempt to send one, and each project's signing secrets (several sign at
//! once while a rotation overlaps).

use jiff::Timestamp;
use pausepoint_api::webhooks::{WebhookAttempt, WebhookDelivery};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use super::{optional_time_column, time_column, uuid_column, Store, StoreError};

/// An event as the worker needs it to send.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: String,
    pub project_id: Uuid,
    pub pause_id: Uuid,
    pub kind: String,
    pub url: String,
    pub payload: String,
    pub status: String,
    pub attempts: u32,
}

/// What one attempt found.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    pub response: Option<String>,
    pub error: Option<String>,
}

/// Where an event stands after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookState {
    Retry(Timestamp),
    Delivered,
    Failed,
}

fn count(row: &AnyRow, column: &str) -> Result<u32, StoreError> {
    let n: i64 = row.try_get(column)?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

impl Store {
    /// Writes an event to send, inside the transaction of the change it announces.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_webhook_event(
        conn: &mut AnyConnection,
        id: &str,
        project_id: Uuid,
        pause_id: Uuid,
        kind: &str,
        url: &str,
        payload: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webhook_events (id, project_id, pause_id, type, url, payload, status, \
                 next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7, $7)",
        )
        .bind(id)
        .bind(project_id.to_string())
        .bind(pause_id.to_string())
        .bind(kind)
        .bind(url)
        .bind(payload)
        .bind(now.as_millisecond())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The event with this id.
    pub async fn webhook_event(&self, id: &str) -> Result<Option<StoredEvent>, StoreError> {
        let row = sqlx::query(
            "SELECT id, project_id, pause_id, type, url, payload, status, attempts FROM webhook_events WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(StoredEvent {
                id: row.try_get("id")?,
                project_id: uuid_column(&row, "webhook_events", "project_id")?,
                pause_id: uuid_column(&row, "webhook_events", "pause_id")?,
                kind: row.try_get("type")?,
                url: row.try_get("url")?,
                payload: row.try_get("payload")?,
                status: row.try_get("status")?,
                attempts: count(&row, "attempts")?,
            })
        })
        .transpose()
    }

    /// Records attempt number `attempt` and where the event now stands, releasing the
    /// lease, inside `conn`'s transaction.
    pub async fn record_webhook_attempt(
        conn: &mut AnyConnection,
        id: &str,
        attempt: u32,
        record: &AttemptRecord,
        state: WebhookState,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO webhook_attempts (event_id, attempt, attempted_at, status_code, latency_ms, response, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(i64::from(attempt))
        .bind(now.as_millisecond())
        .bind(record.status_code.map(i64::from))
        .bind(i64::try_from(record.latency_ms).unwrap_or(i64::MAX))
        .bind(record.response.as_deref())
        .bind(record.error.as_deref())
        .execute(&mut *conn)
        .await?;
        let (status, next) = match state {
            WebhookState::Retry(at) => ("pending", at),
            WebhookState::Delivered => ("delivered", now),
            WebhookState::Failed => ("failed", now),
        };
        sqlx::query(
            "UPDATE webhook_events SET status = $2, attempts = $3, next_attempt_at = $4, \
                 lease_until = NULL, updated_at = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(i64::from(attempt))
        .bind(next.as_millisecond())
        .bind(now.as_millisecond())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The project's pause's events, oldest first, each with its attempts.
    pub async fn webhook_deliveries(
        &self,
        project_id: Uuid,
        pause_id: Uuid,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        let events = sqlx::query(
            "SELECT id, type, url, status, attempts, next_attempt_at, created_at FROM webhook_events \
             WHERE project_id = $1 AND pause_id = $2 ORDER BY created_at, id",
        )
        .bind(project_id.to_string())
        .bind(pause_id.to_string())
        .fetch_all(self.pool())
        .await?;
        let mut deliveries = Vec::with_capacity(events.len());
        for row in events {
            let id: String = row.try_get("id")?;
            let status: String = row.try_get("status")?;
            let attempts = sqlx::query(
                "SELECT attempt, attempted_at, status_code, latency_ms, response, error \
                 FROM webhook_attempts WHERE event_id = $1 ORDER BY attempt",
            )
            .bind(&id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|a| {
                let code: Option<i64> = a.try_get("status_code")?;
                let latency: i64 = a.try_get("latency_ms")?;
                Ok(WebhookAttempt {
                    attempt: count(a, "attempt")?,
                    attempted_at: time_column(a, "webhook_attempts", "attempted_at")?,
                    status_code: code.and_then(|c| u16::try_from(c).ok()),
                    latency_ms: latency.max(0).unsigned_abs(),
                    response: a.try_get("response")?,
                    error: a.try_get("error")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
            let next = if status == "pending" {
                optional_time_column(&row, "webhook_events", "next_attempt_at")?
            } else {
                None
            };
            deliveries.push(WebhookDelivery {
                event_id: id,
                kind: row.try_get("type")?,
                url: row.try_get("url")?,
                status,
                attempts: count(&row, "attempts")?,
                next_attempt_at: next,
                created_at: time_column(&row, "webhook_events", "created_at")?,
                attempt_log: attempts,
            });
        }
        Ok(deliveries)
    }

    /// Queues a failed event of the project's pause to be sent again now. Returns the
    /// status it had (None when there is no such event).
    pub async fn resend_webhook(
        &self,
        project_id: Uuid,
        pause_id: Uuid,
        event_id: &str,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT status FROM webhook_events WHERE id = $1 AND project_id = $2 AND pause_id = $3",
        )
        .bind(event_id)
        .bind(project_id.to_string())
        .bind(pause_id.to_string())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let status: String = row.try_get("status")?;
        if status == "failed" {
            sqlx::query(
                "UPDATE webhook_events SET status = 'pending', next_attempt_at = $2, lease_until = NULL, updated_at = $2 \
                 WHERE id = $1 AND status = 'failed'",
            )
            .bind(event_id)
            .bind(now.as_millisecond())
            .execute(self.pool())
            .await?;
        }
        Ok(Some(status))
    }

    /// The secrets that sign now, newest first; the first one is made from `initial`
    /// when the project has none yet.
    pub async fn webhook_signing_secrets(
        &self,
        project_id: Uuid,
        initial: &str,
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin().await?;
        // Lock the project's row, so two servers making its first secret take turns.
        sqlx::query("UPDATE projects SET audit_seq = audit_seq WHERE id = $1")
            .bind(project_id.to_string())
            .execute(&mut *tx)
            .await?;
        let existing: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM webhook_secrets WHERE project_id = $1")
                .bind(project_id.to_string())
                .fetch_one(&mut *tx)
                .await?
                .try_get("n")?;
        if existing == 0 {
            insert_secret(&mut tx, project_id, initial, now).await?;
        }
        let rows = sqlx::query(
            "SELECT secret FROM webhook_secrets WHERE project_id = $1 AND (retires_at IS NULL OR retires_at > $2) \
             ORDER BY created_at DESC, id DESC",
        )
        .bind(project_id.to_string())
        .bind(now.as_millisecond())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter().map(|row| Ok(row.try_get("secret")?)).collect()
    }

    /// Makes `secret` the project's newest; the ones before it keep signing until
    /// `old_ones_retire_at`.
    pub async fn rotate_webhook_secret(
        &self,
        project_id: Uuid,
        secret: &str,
        old_ones_retire_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE webhook_secrets SET retires_at = $2 WHERE project_id = $1 AND (retires_at IS NULL OR retires_at > $2)",
        )
        .bind(project_id.to_string())
        .bind(old_ones_retire_at.as_millisecond())
        .execute(&mut *tx)
        .await?;
        insert_secret(&mut tx, project_id, secret, now).await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_secret(
    conn: &mut AnyConnection,
    project_id: Uuid,
    secret: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_secrets (id, project_id, secret, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(Uuid::now_v7().to_string())
    .bind(project_id.to_string())
    .bind(secret)
    .bind(now.as_millisecond())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
