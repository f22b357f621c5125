//! The delivery worker. Each pause has a delivery row, written with it; this worker sends
//! it right after the create is acknowledged (a create never waits for a provider),
//! retries with backoff when a provider is down or slow (never when it refuses), and
//! records every attempt as an audit event and in the pause's `delivery` field.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use pausepoint_api::AuditEventKind;
use serde_json::json;
use uuid::Uuid;

use crate::channels::{Attempt, Channels, Notice};
use crate::domain::links::{self, Links};
use crate::store::deliveries::DeliveryState;
use crate::store::outbox::DELIVERIES;
use crate::store::{Store, StoreError};
use crate::work;

/// Deliveries sent at once.
const BATCH: u32 = 20;

/// The delivery worker's state.
pub struct Deliveries {
    store: Store,
    links: Links,
    channels: Arc<Channels>,
    public_url: String,
    retry: Vec<Duration>,
    lease: SignedDuration,
}

impl Deliveries {
    pub fn new(
        store: Store,
        links: Links,
        channels: Arc<Channels>,
        public_url: String,
        retry: Vec<Duration>,
        lease: Duration,
    ) -> Deliveries {
        Deliveries {
            store,
            links,
            channels,
            public_url,
            retry,
            lease: SignedDuration::try_from(lease).unwrap_or(SignedDuration::from_secs(60)),
        }
    }

    /// Sends every delivery due at `now`, and says how long until the next is due.
    pub async fn step(&self, now: Timestamp) -> Result<Duration, StoreError> {
        work::drain_outbox(
            &self.store,
            DELIVERIES,
            now,
            self.lease,
            BATCH,
            |key| async move {
                let pause_id = Uuid::parse_str(&key).map_err(|e| StoreError::Corrupt {
                    table: "deliveries",
                    detail: e.to_string(),
                })?;
                self.deliver(pause_id, now).await
            },
        )
        .await
    }

    /// One attempt at one claimed delivery.
    async fn deliver(&self, pause_id: Uuid, now: Timestamp) -> Result<(), StoreError> {
        let Some((project_id, pause)) = self.store.pause_anywhere(pause_id).await? else {
            return Ok(());
        };
        if pause.status.is_final() || pause.expires_at <= now {
            return self.store.skip_delivery(pause_id, now).await;
        }
        let project = self
            .store
            .project(project_id)
            .await?
            .map(|p| p.name)
            .unwrap_or_default();
        let token = self.links.token_for(pause_id, pause.expires_at);
        let notice = Notice {
            pause: &pause,
            project: &project,
            link: links::link(&self.public_url, &token),
            now,
        };
        let attempt = self.channels.send(&notice).await;
        // A provider's error may quote what it was sent: keep the token out of the record.
        let scrub = |e: &str| e.replace(&token, "[link]");
        let attempt_number = pause.delivery.as_ref().map_or(0, |d| d.attempts) + 1;

        let (state, event, error) = match &attempt {
            Attempt::Sent { .. } => (DeliveryState::Sent, AuditEventKind::PauseNotified, None),
            Attempt::Logged => (DeliveryState::Logged, AuditEventKind::PauseNotified, None),
            Attempt::Transient(e) => {
                let retry_at = self
                    .retry
                    .get(attempt_number as usize - 1)
                    .and_then(|delay| SignedDuration::try_from(*delay).ok())
                    .map(|delay| now + delay)
                    .filter(|at| *at < pause.expires_at);
                let state = retry_at.map_or(DeliveryState::Failed, DeliveryState::Retry);
                (
                    state,
                    AuditEventKind::PauseNotificationFailed,
                    Some(scrub(e)),
                )
            }
            Attempt::Permanent(e) => (
                DeliveryState::Failed,
                AuditEventKind::PauseNotificationFailed,
                Some(scrub(e)),
            ),
        };
        let mut data = json!({
            "channel": pause.channel,
            "recipient": pause.recipient,
            "attempt": attempt_number,
            "message": pause.message,
            "options": pause.options,
        });
        match (&attempt, state) {
            (Attempt::Sent { via, reference }, _) => {
                data["via"] = json!(via);
                data["reference"] = json!(reference);
            }
            (Attempt::Logged, _) => data["via"] = json!("console"),
            (_, DeliveryState::Retry(at)) => {
                data["error"] = json!(error);
                data["next_attempt_at"] = json!(at);
            }
            _ => {
                data["error"] = json!(error);
                data["next_attempt_at"] = json!(null);
            }
        }
        match &error {
            Some(e) => {
                tracing::warn!(pause_id = %pause_id, channel = %pause.channel, attempt = attempt_number, error = %e, "delivery failed")
            }
            None => tracing::info!(pause_id = %pause_id, channel = %pause.channel, "delivered"),
        }

        let mut tx = self.store.begin().await?;
        Store::record_delivery_attempt(&mut tx, pause_id, state, error.as_deref(), now).await?;
        Store::append_audit(
            &mut tx,
            project_id,
            event,
            Some(pause_id),
            "system",
            data,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
