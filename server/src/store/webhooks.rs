//! Webhook rows: events written in the transaction of the status change they announce,
//! a row per attempt to send one, and each project's signing secrets (several sign at
//! once while a rotation overlaps).

use jiff::Timestamp;
use pausepoint_api::webhooks::{WebhookAttempt, WebhookDelivery, WebhookEventType, WebhookStatus};

use super::db::{args, Arg, Conn, Row};
use super::{StoreError, Tx};
use crate::ids::{PauseId, ProjectId};

/// An event as the worker needs it to send.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub id: String,
    pub project_id: ProjectId,
    /// `None` for an event of the project (an audit checkpoint for the witness).
    pub pause_id: Option<PauseId>,
    pub kind: WebhookEventType,
    pub url: String,
    pub payload: String,
    pub status: WebhookStatus,
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

/// A project's signing secret as stored.
#[derive(Debug, Clone)]
pub struct StoredSecret {
    /// The secret, in the form the store was given it (sealed, see `crate::secrets`).
    pub secret: String,
    pub created_at: Timestamp,
}

fn parse<T: std::str::FromStr<Err = String>>(row: &dyn Row, column: &str) -> Result<T, StoreError> {
    row.text(column)?
        .parse()
        .map_err(|e: String| StoreError::corrupt("webhook_events", e))
}

fn event_from_row(row: &dyn Row) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        id: row.text("id")?,
        project_id: row.uuid("project_id")?.into(),
        pause_id: row.opt_uuid("pause_id")?.map(PauseId::from),
        kind: parse(row, "type")?,
        url: row.text("url")?,
        payload: row.text("payload")?,
        status: parse(row, "status")?,
        attempts: row.count("attempts")?,
    })
}

impl Tx {
    /// Writes an event to send, inside the transaction of the change it announces.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_webhook_event(
        &mut self,
        id: &str,
        project_id: ProjectId,
        pause_id: Option<PauseId>,
        kind: WebhookEventType,
        url: &str,
        payload: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.defer(
            "INSERT INTO webhook_events (id, project_id, pause_id, type, url, payload, status, \
                 next_attempt_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            args![
                id,
                &project_id.to_string(),
                pause_id.map(|id| id.to_string()).as_deref(),
                kind.as_str(),
                url,
                payload,
                WebhookStatus::Pending.as_str(),
                now,
                now,
                now
            ],
        );
        Ok(())
    }

    /// Records attempt number `attempt` and where the event now stands, releasing the lease.
    pub async fn record_webhook_attempt(
        &mut self,
        id: &str,
        attempt: u32,
        record: &AttemptRecord,
        state: WebhookState,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.defer(
            "INSERT INTO webhook_attempts (event_id, attempt, attempted_at, status_code, latency_ms, response, error) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            args![
                id,
                attempt,
                now,
                record.status_code.map(i64::from),
                i64::try_from(record.latency_ms).unwrap_or(i64::MAX),
                record.response.as_deref(),
                record.error.as_deref(),
            ],
        );
        let (status, next) = match state {
            WebhookState::Retry(at) => (WebhookStatus::Pending, at),
            WebhookState::Delivered => (WebhookStatus::Delivered, now),
            WebhookState::Failed => (WebhookStatus::Failed, now),
        };
        self.defer(
            "UPDATE webhook_events SET status = $2, attempts = $3, next_attempt_at = $4, \
                 lease_until = NULL, updated_at = $5 WHERE id = $1",
            args![id, status.as_str(), attempt, next, now],
        );
        Ok(())
    }

    /// Queues a failed event of the project's pause to be sent again now. Returns the
    /// status it had (None when there is no such event).
    pub async fn resend_webhook(
        &mut self,
        project_id: ProjectId,
        pause_id: PauseId,
        event_id: &str,
        now: Timestamp,
    ) -> Result<Option<WebhookStatus>, StoreError> {
        let status = self
            .fetch_optional(
                "webhook_events",
                "SELECT status FROM webhook_events WHERE id = $1 AND project_id = $2 AND pause_id = $3",
                args![event_id, &project_id.to_string(), &pause_id.to_string()],
                |row| parse::<WebhookStatus>(row, "status"),
            )
            .await?;
        if status == Some(WebhookStatus::Failed) {
            self.execute(
                "UPDATE webhook_events SET status = 'pending', next_attempt_at = $2, lease_until = NULL, updated_at = $2 \
                 WHERE id = $1 AND status = 'failed'",
                args![event_id, now],
            )
            .await?;
        }
        Ok(status)
    }

    /// Adds a signing secret to the project.
    pub async fn insert_webhook_secret(
        &mut self,
        project_id: ProjectId,
        secret: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO webhook_secrets (id, project_id, secret, created_at) VALUES ($1, $2, $3, $4)",
            args![&uuid::Uuid::now_v7().to_string(), &project_id.to_string(), secret, now],
        )
        .await?;
        Ok(())
    }

    /// Makes the project's secrets in use retire at `retire_at`, unless they retire sooner.
    pub async fn retire_webhook_secrets(
        &mut self,
        project_id: ProjectId,
        retire_at: Timestamp,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE webhook_secrets SET retires_at = $2 WHERE project_id = $1 AND (retires_at IS NULL OR retires_at > $2)",
            args![&project_id.to_string(), retire_at],
        )
        .await?;
        Ok(())
    }
}

impl Conn {
    /// The events with these ids.
    pub async fn webhook_events(&mut self, ids: &[String]) -> Result<Vec<StoredEvent>, StoreError> {
        let mut events = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(100) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT id, project_id, pause_id, type, url, payload, status, attempts \
                 FROM webhook_events WHERE id IN ({})",
                placeholders.join(", ")
            );
            let args: Vec<Arg<'_>> = chunk.iter().map(Arg::from).collect();
            events.extend(
                self.fetch_all("webhook_events", &sql, &args, event_from_row)
                    .await?,
            );
        }
        Ok(events)
    }

    /// The project's pause's events, oldest first, each with its attempts.
    pub async fn webhook_deliveries(
        &mut self,
        project_id: ProjectId,
        pause_id: PauseId,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        let mut deliveries = self
            .fetch_all(
                "webhook_events",
                "SELECT id, type, url, status, attempts, next_attempt_at, created_at FROM webhook_events \
                 WHERE project_id = $1 AND pause_id = $2 ORDER BY created_at, id",
                args![&project_id.to_string(), &pause_id.to_string()],
                |row| {
                    let status: WebhookStatus = parse(row, "status")?;
                    Ok(WebhookDelivery {
                        event_id: row.text("id")?,
                        kind: parse(row, "type")?,
                        url: row.text("url")?,
                        status,
                        attempts: row.count("attempts")?,
                        next_attempt_at: if status == WebhookStatus::Pending {
                            row.opt_time("next_attempt_at")?
                        } else {
                            None
                        },
                        created_at: row.time("created_at")?,
                        attempt_log: Vec::new(),
                    })
                },
            )
            .await?;
        for delivery in &mut deliveries {
            delivery.attempt_log = self
                .fetch_all(
                    "webhook_attempts",
                    "SELECT attempt, attempted_at, status_code, latency_ms, response, error \
                     FROM webhook_attempts WHERE event_id = $1 ORDER BY attempt",
                    args![&delivery.event_id],
                    |a| {
                        Ok(WebhookAttempt {
                            attempt: a.count("attempt")?,
                            attempted_at: a.time("attempted_at")?,
                            status_code: a
                                .opt_int("status_code")?
                                .and_then(|c| u16::try_from(c).ok()),
                            latency_ms: a.int("latency_ms")?.max(0).unsigned_abs(),
                            response: a.opt_text("response")?,
                            error: a.opt_text("error")?,
                        })
                    },
                )
                .await?;
        }
        Ok(deliveries)
    }

    /// The project's secrets that sign at `now`, newest first.
    pub async fn webhook_secrets(
        &mut self,
        project_id: ProjectId,
        now: Timestamp,
    ) -> Result<Vec<StoredSecret>, StoreError> {
        self.fetch_all(
            "webhook_secrets",
            "SELECT secret, created_at FROM webhook_secrets \
             WHERE project_id = $1 AND (retires_at IS NULL OR retires_at > $2) \
             ORDER BY created_at DESC, id DESC",
            args![&project_id.to_string(), now],
            |row| {
                Ok(StoredSecret {
                    secret: row.text("secret")?,
                    created_at: row.time("created_at")?,
                })
            },
        )
        .await
    }

    /// Projects without any signing secret (made before secrets were made with projects).
    pub async fn projects_without_webhook_secret(&mut self) -> Result<Vec<ProjectId>, StoreError> {
        self.fetch_all(
            "projects",
            "SELECT id FROM projects p WHERE NOT EXISTS \
                 (SELECT 1 FROM webhook_secrets s WHERE s.project_id = p.id)",
            &[],
            |row| Ok(row.uuid("id")?.into()),
        )
        .await
    }
}
