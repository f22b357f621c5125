//! Signed webhooks (Standard Webhooks): the event a decided pause announces, written in
//! the transaction of the decision, and each project's signing secrets. The worker that
//! sends them is [`crate::work::webhooks`].

use jiff::{SignedDuration, Timestamp};
use pausepoint_api::webhooks::{secret_from_bytes, WebhookEvent};
use pausepoint_api::{Pause, PauseStatus};
use uuid::Uuid;

use crate::store::{Store, StoreError};
/// How long a rotated-out secret keeps signing beside the new one.
pub const ROTATION_OVERLAP: SignedDuration = SignedDuration::from_hours(24);

/// The event type announcing that a pause reached `status`.
pub fn event_type(status: PauseStatus) -> &'static str {
    match status {
        PauseStatus::Responded => "pause.responded",
        PauseStatus::TimedOut => "pause.timed_out",
        PauseStatus::Cancelled => "pause.cancelled",
        PauseStatus::Pending => "pause.pending",
    }
}

/// Writes the event announcing `pause`'s new status, inside `conn`'s transaction, when
/// the pause has a `webhook_url`. Returns whether it did.
pub async fn enqueue(
    conn: &mut sqlx::AnyConnection,
    project_id: Uuid,
    pause: &Pause,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let Some(url) = &pause.webhook_url else {
        return Ok(false);
    };
    let kind = event_type(pause.status);
    let event = WebhookEvent {
        kind: kind.to_owned(),
        timestamp: now,
        data: pause.clone(),
    };
    let payload = serde_json::to_string(&event).map_err(|e| StoreError::Corrupt {
        table: "webhook_events",
        detail: e.to_string(),
    })?;
    let id = format!("msg_{}", Uuid::now_v7().simple());
    Store::insert_webhook_event(
        conn,
        &id,
        project_id,
        pause.pause_id,
        kind,
        url,
        &payload,
        now,
    )
    .await?;
    Ok(true)
}

/// The project's signing secrets in use now, newest first (made on first need).
pub async fn signing_secrets(
    store: &Store,
    project_id: Uuid,
    now: Timestamp,
) -> Result<Vec<String>, StoreError> {
    store
        .webhook_signing_secrets(project_id, &secret_from_bytes(&rand::random()), now)
        .await
}

/// Makes a new secret for the project; the old one keeps signing for [`ROTATION_OVERLAP`].
pub async fn rotate_secret(
    store: &Store,
    project_id: Uuid,
    now: Timestamp,
) -> Result<String, StoreError> {
    signing_secrets(store, project_id, now).await?;
    let secret = secret_from_bytes(&rand::random());
    store
        .rotate_webhook_secret(project_id, &secret, now + ROTATION_OVERLAP, now)
        .await?;
    Ok(secret)
}
