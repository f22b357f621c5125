//! Pause rows. A pause leaves `pending` through [`Store::finish_pause`], one conditional
//! UPDATE, so of any number of racing decisions exactly one changes the row.

use jiff::Timestamp;
use pausepoint_api::validation::NewPause;
use pausepoint_api::{Decision, Delivery, Pause, PauseStatus};
use serde_json::{Map, Value};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use super::{optional_time_column, time_column, uuid_column, Store, StoreError};

/// How a pending pause ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The human answered. Only before `expires_at`.
    Responded(Decision),
    /// Nobody answered in time; the choice becomes `timeout_default`. Only from `expires_at` on.
    TimedOut,
    /// The agent withdrew the question.
    Cancelled,
}

impl Outcome {
    pub fn status(&self) -> PauseStatus {
        match self {
            Outcome::Responded(_) => PauseStatus::Responded,
            Outcome::TimedOut => PauseStatus::TimedOut,
            Outcome::Cancelled => PauseStatus::Cancelled,
        }
    }
}

/// A pause found by its idempotency key, with the hash of the request that created it.
pub struct IdempotentPause {
    pub pause: Pause,
    pub request_hash: Option<String>,
}

/// Every read of a pause goes through this, so a pause always carries its delivery.
const SELECT: &str = "SELECT p.id, p.project_id, p.status, p.channel, p.recipient, p.message, \
    p.options, p.allow_text_response, p.timeout_default, p.response_choice, p.response_text, \
    p.response_at, p.created_at, p.expires_at, p.metadata, p.webhook_url, p.request_hash, \
    d.status AS delivery_status, d.attempts AS delivery_attempts, d.last_error AS delivery_last_error \
    FROM pauses p LEFT JOIN deliveries d ON d.pause_id = p.id";

fn from_row(row: &AnyRow) -> Result<Pause, StoreError> {
    let corrupt = |detail: String| StoreError::corrupt("pauses", detail);
    let status: String = row.try_get("status")?;
    let channel: String = row.try_get("channel")?;
    let options: String = row.try_get("options")?;
    let metadata: Option<String> = row.try_get("metadata")?;
    let allow_text_response: i64 = row.try_get("allow_text_response")?;
    Ok(Pause {
        pause_id: uuid_column(row, "pauses", "id")?,
        status: status.parse().map_err(corrupt)?,
        channel: channel.parse().map_err(corrupt)?,
        recipient: row.try_get("recipient")?,
        message: row.try_get("message")?,
        options: serde_json::from_str(&options).map_err(|e| corrupt(format!("options: {e}")))?,
        allow_text_response: allow_text_response != 0,
        timeout_default: row.try_get("timeout_default")?,
        response_choice: row.try_get("response_choice")?,
        response_text: row.try_get("response_text")?,
        response_at: optional_time_column(row, "pauses", "response_at")?,
        created_at: time_column(row, "pauses", "created_at")?,
        expires_at: time_column(row, "pauses", "expires_at")?,
        metadata: metadata
            .map(|m| serde_json::from_str::<Map<String, Value>>(&m))
            .transpose()
            .map_err(|e| corrupt(format!("metadata: {e}")))?,
        webhook_url: row.try_get("webhook_url")?,
        delivery: delivery_from_row(row)?,
    })
}

fn delivery_from_row(row: &AnyRow) -> Result<Option<Delivery>, StoreError> {
    let Some(status) = row.try_get::<Option<String>, _>("delivery_status")? else {
        return Ok(None);
    };
    let attempts: i64 = row.try_get("delivery_attempts")?;
    Ok(Some(Delivery {
        status,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        last_error: row.try_get("delivery_last_error")?,
    }))
}

impl Store {
    /// Stores a new pending pause inside `conn`'s transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_pause(
        conn: &mut AnyConnection,
        project_id: Uuid,
        id: Uuid,
        pause: &NewPause,
        created_at: Timestamp,
        expires_at: Timestamp,
        idempotency_key: Option<&str>,
        request_hash: Option<&str>,
    ) -> Result<Pause, StoreError> {
        sqlx::query(
            "INSERT INTO pauses (id, project_id, status, channel, recipient, message, options, \
                 allow_text_response, timeout_default, created_at, expires_at, metadata, \
                 webhook_url, idempotency_key, request_hash) \
             VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(id.to_string())
        .bind(project_id.to_string())
        .bind(pause.channel().as_str())
        .bind(pause.recipient.as_str())
        .bind(&pause.message)
        .bind(Value::from(pause.options.as_slice().to_vec()).to_string())
        .bind(i64::from(pause.allow_text_response))
        .bind(pause.timeout_default.as_deref())
        .bind(created_at.as_millisecond())
        .bind(expires_at.as_millisecond())
        .bind(
            pause
                .metadata
                .as_ref()
                .map(|m| Value::Object(m.clone()).to_string()),
        )
        .bind(pause.webhook_url.as_ref().map(|u| u.to_string()))
        .bind(idempotency_key)
        .bind(request_hash)
        .execute(&mut *conn)
        .await?;
        Store::insert_delivery(&mut *conn, project_id, id, pause.channel(), created_at).await?;
        Store::pause_in(conn, id).await?.ok_or_else(|| {
            StoreError::corrupt("pauses", "a pause vanished inside its own transaction")
        })
    }

    /// The pause with this id inside `conn`'s transaction, whatever its project.
    async fn pause_in(conn: &mut AnyConnection, id: Uuid) -> Result<Option<Pause>, StoreError> {
        let sql = format!("{SELECT} WHERE p.id = $1");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The pause with this id and the project it belongs to. Only for callers that proved
    /// their right to it some other way (a signed link).
    pub async fn pause_anywhere(&self, id: Uuid) -> Result<Option<(Uuid, Pause)>, StoreError> {
        let sql = format!("{SELECT} WHERE p.id = $1");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.map(|row| Ok((uuid_column(&row, "pauses", "project_id")?, from_row(&row)?)))
            .transpose()
    }

    /// Marks the pause as opened by its human; true only the first time.
    pub async fn mark_viewed(
        conn: &mut AnyConnection,
        id: Uuid,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let updated =
            sqlx::query("UPDATE pauses SET viewed_at = $2 WHERE id = $1 AND viewed_at IS NULL")
                .bind(id.to_string())
                .bind(now.as_millisecond())
                .execute(&mut *conn)
                .await?;
        Ok(updated.rows_affected() == 1)
    }

    /// The project's pause with this id.
    pub async fn pause(&self, project_id: Uuid, id: Uuid) -> Result<Option<Pause>, StoreError> {
        let sql = format!("{SELECT} WHERE p.id = $1 AND p.project_id = $2");
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .bind(project_id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The project's pause created with this `Idempotency-Key`.
    pub async fn pause_by_idempotency_key(
        conn: &mut AnyConnection,
        project_id: Uuid,
        key: &str,
    ) -> Result<Option<IdempotentPause>, StoreError> {
        let sql = format!("{SELECT} WHERE p.project_id = $1 AND p.idempotency_key = $2");
        let row = sqlx::query(&sql)
            .bind(project_id.to_string())
            .bind(key)
            .fetch_optional(&mut *conn)
            .await?;
        row.map(|row| {
            Ok(IdempotentPause {
                pause: from_row(&row)?,
                request_hash: row.try_get("request_hash")?,
            })
        })
        .transpose()
    }

    /// A page of the project's pauses, newest first, optionally of one status, strictly
    /// older than the pause `before`.
    pub async fn pauses(
        &self,
        project_id: Uuid,
        status: Option<PauseStatus>,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Pause>, StoreError> {
        let sql = format!(
            "{SELECT} \
             WHERE p.project_id = $1 \
               AND (CAST($2 AS TEXT) IS NULL OR p.status = $2) \
               AND (CAST($3 AS TEXT) IS NULL OR p.id < $3) \
             ORDER BY p.id DESC LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(project_id.to_string())
            .bind(status.map(PauseStatus::as_str))
            .bind(before.map(|id| id.to_string()))
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Moves the pause from `pending` to the outcome's status, inside `conn`'s
    /// transaction. None when it was not pending, or the outcome is not allowed at `now`
    /// (a response after `expires_at`, a timeout before it).
    pub async fn finish_pause(
        conn: &mut AnyConnection,
        project_id: Uuid,
        id: Uuid,
        outcome: &Outcome,
        now: Timestamp,
    ) -> Result<Option<Pause>, StoreError> {
        let (choice, text) = match outcome {
            Outcome::Responded(decision) => {
                (Some(decision.choice.as_str()), decision.text.as_deref())
            }
            Outcome::TimedOut | Outcome::Cancelled => (None, None),
        };
        let updated = sqlx::query(
            "UPDATE pauses \
             SET status = $3, \
                 response_choice = CASE WHEN $3 = 'timed_out' THEN timeout_default ELSE $4 END, \
                 response_text = $5, \
                 response_at = $6 \
             WHERE id = $1 AND project_id = $2 AND status = 'pending' \
               AND ($3 <> 'responded' OR expires_at > $6) \
               AND ($3 <> 'timed_out' OR expires_at <= $6)",
        )
        .bind(id.to_string())
        .bind(project_id.to_string())
        .bind(outcome.status().as_str())
        .bind(choice)
        .bind(text)
        .bind(now.as_millisecond())
        .execute(&mut *conn)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        Store::pause_in(conn, id).await
    }

    /// Pending pauses whose deadline has passed at `now`, earliest first, as (project, pause).
    pub async fn pauses_due(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
        let rows = sqlx::query(
            "SELECT project_id, id FROM pauses \
             WHERE status = 'pending' AND expires_at <= $1 \
             ORDER BY expires_at LIMIT $2",
        )
        .bind(now.as_millisecond())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    uuid_column(row, "pauses", "project_id")?,
                    uuid_column(row, "pauses", "id")?,
                ))
            })
            .collect()
    }

    /// The earliest deadline of any pending pause.
    pub async fn next_expiry(&self) -> Result<Option<Timestamp>, StoreError> {
        let row =
            sqlx::query("SELECT MIN(expires_at) AS next FROM pauses WHERE status = 'pending'")
                .fetch_one(self.pool())
                .await?;
        let next: Option<i64> = row.try_get("next")?;
        next.map(|ms| Timestamp::from_millisecond(ms).map_err(|e| StoreError::corrupt("pauses", e)))
            .transpose()
    }
}
