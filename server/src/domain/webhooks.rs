//! Signed webhooks (Standard Webhooks): the event a decided pause announces, written in
//! the transaction of the decision, and each project's signing secrets, made with the
//! project. The worker that sends the events is [`crate::work::webhooks`].

use jiff::{SignedDuration, Timestamp};
use pausepoint_api::webhooks::{
    secret_from_bytes, WebhookDelivery, WebhookEvent, WebhookEventType, WebhookStatus,
};
use pausepoint_api::Pause;
use uuid::Uuid;

use crate::hub::Change;
use crate::ids::{PauseId, ProjectId};
use std::sync::Arc;

use crate::secrets::MasterKey;
use crate::store::settings::webhook_secret_purpose;
use crate::store::{Store, StoreError, Tx};

/// How long a rotated-out secret keeps signing beside the new one.
pub const ROTATION_OVERLAP: SignedDuration = SignedDuration::from_hours(24);

/// Writes the event announcing `pause`'s decision when the pause has a `webhook_url`.
pub async fn enqueue(
    tx: &mut Tx,
    project_id: ProjectId,
    pause: &Pause,
    now: Timestamp,
) -> Result<(), StoreError> {
    let (Some(url), Some(kind)) = (
        &pause.webhook_url,
        WebhookEventType::for_status(pause.status),
    ) else {
        return Ok(());
    };
    let event = WebhookEvent {
        kind,
        timestamp: now,
        data: pause.clone(),
    };
    let payload =
        serde_json::to_string(&event).map_err(|e| StoreError::corrupt("webhook_events", e))?;
    let id = format!("msg_{}", Uuid::now_v7().simple());
    tx.insert_webhook_event(
        &id,
        project_id,
        Some(PauseId::from(pause.pause_id)),
        kind,
        url,
        &payload,
        now,
    )
    .await?;
    tx.announce(Change::WebhooksDue);
    Ok(())
}

/// A new `whsec_` secret.
pub fn new_secret() -> String {
    secret_from_bytes(&rand::random())
}

/// Gives the project a new signing secret, sealed.
async fn add_secret(
    tx: &mut Tx,
    secrets: &MasterKey,
    project_id: ProjectId,
    secret: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let sealed = secrets.seal(&webhook_secret_purpose(project_id), secret.as_bytes())?;
    tx.insert_webhook_secret(project_id, &sealed, now).await
}

/// Gives the project its first signing secret.
pub async fn add_first_secret(
    tx: &mut Tx,
    secrets: &MasterKey,
    project_id: ProjectId,
    now: Timestamp,
) -> Result<(), StoreError> {
    add_secret(tx, secrets, project_id, &new_secret(), now).await
}

/// Gives every project made before secrets came with projects its first secret.
pub async fn add_missing_secrets(store: &Store, now: Timestamp) -> Result<(), StoreError> {
    let secrets = Arc::clone(store.secrets());
    store
        .write(move |tx| {
            Box::pin(async move {
                for project_id in tx.projects_without_webhook_secret().await? {
                    add_first_secret(tx, &secrets, project_id, now).await?;
                }
                Ok::<_, StoreError>(())
            })
        })
        .await
}

/// The project's signing secrets in use now, newest first.
pub async fn signing_secrets(
    store: &Store,
    project_id: ProjectId,
    now: Timestamp,
) -> Result<Vec<String>, StoreError> {
    let stored = store
        .read(move |conn| Box::pin(conn.webhook_secrets(project_id, now)))
        .await?;
    let purpose = webhook_secret_purpose(project_id);
    stored
        .into_iter()
        .map(|s| {
            let secret = store.secrets().open(&purpose, &s.secret)?;
            String::from_utf8(secret).map_err(|e| StoreError::corrupt("webhook_secrets", e))
        })
        .collect()
}

/// Makes a new secret for the project; the old ones keep signing for [`ROTATION_OVERLAP`].
pub async fn rotate_secret(
    store: &Store,
    project_id: ProjectId,
    now: Timestamp,
) -> Result<String, StoreError> {
    let secret = new_secret();
    let stored = secret.clone();
    let secrets = Arc::clone(store.secrets());
    store
        .write(move |tx| {
            Box::pin(async move {
                tx.retire_webhook_secrets(project_id, now + ROTATION_OVERLAP)
                    .await?;
                add_secret(tx, &secrets, project_id, &stored, now).await
            })
        })
        .await?;
    Ok(secret)
}

/// Why a webhook event could not be sent again.
#[derive(Debug, thiserror::Error)]
pub enum ResendError {
    #[error("no such event")]
    NotFound,
    #[error("the event is {0}")]
    NotFailed(WebhookStatus),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The pause's webhook events, each with every attempt.
pub async fn deliveries(
    store: &Store,
    project_id: ProjectId,
    pause_id: PauseId,
) -> Result<Vec<WebhookDelivery>, StoreError> {
    store
        .read(move |conn| Box::pin(conn.webhook_deliveries(project_id, pause_id)))
        .await
}

/// Queues a failed event to be sent again now; the event as it then stands.
pub async fn resend(
    store: &Store,
    project_id: ProjectId,
    pause_id: PauseId,
    event_id: String,
    now: Timestamp,
) -> Result<WebhookDelivery, ResendError> {
    let id = event_id.clone();
    store
        .write(move |tx| {
            Box::pin(async move {
                match tx.resend_webhook(project_id, pause_id, &id, now).await? {
                    None => Err(ResendError::NotFound),
                    Some(WebhookStatus::Failed) => {
                        tx.announce(Change::WebhooksDue);
                        Ok(())
                    }
                    Some(status) => Err(ResendError::NotFailed(status)),
                }
            })
        })
        .await?;
    deliveries(store, project_id, pause_id)
        .await?
        .into_iter()
        .find(|e| e.event_id == event_id)
        .ok_or(ResendError::NotFound)
}
