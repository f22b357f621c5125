//! The webhook worker: sends each event, signed with every secret of the project still in
//! use, retries on a jittered schedule (the first retries within seconds), stops at 2xx
//! or 410, honours `Retry-After`, records every attempt, and ends with
//! `webhook.delivered` or `webhook.failed` in the audit log.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use pausepoint_api::webhooks::{decode_secret, signature_header};
use pausepoint_api::AuditEventKind;
use serde_json::json;

use crate::domain::webhooks::signing_secrets;
use crate::outbound;
use crate::store::outbox::WEBHOOK_EVENTS;
use crate::store::webhooks::{AttemptRecord, StoredEvent, WebhookState};
use crate::store::{Store, StoreError};
use crate::work;

const BATCH: u32 = 20;
/// How much of a receiver's answer is kept with the attempt.
const RESPONSE_CHARS: usize = 1024;
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The webhook worker's state.
pub struct Webhooks {
    store: Store,
    http: reqwest::Client,
    allow_private_network: bool,
    /// Waits before the 2nd, 3rd… attempt; after the last, the event has failed.
    retry: Vec<Duration>,
    lease: SignedDuration,
}

impl Webhooks {
    pub fn new(
        store: Store,
        allow_private_network: bool,
        retry: Vec<Duration>,
        lease: Duration,
    ) -> Webhooks {
        Webhooks {
            store,
            http: outbound::client(allow_private_network),
            allow_private_network,
            retry,
            lease: SignedDuration::try_from(lease).unwrap_or(SignedDuration::from_secs(60)),
        }
    }

    /// Sends every event due at `now`, and says how long until the next is due.
    pub async fn step(&self, now: Timestamp) -> Result<Duration, StoreError> {
        work::drain_outbox(
            &self.store,
            WEBHOOK_EVENTS,
            now,
            self.lease,
            BATCH,
            |id| async move { self.send(&id, now).await },
        )
        .await
    }

    /// One attempt at one claimed event.
    async fn send(&self, id: &str, now: Timestamp) -> Result<(), StoreError> {
        let Some(event) = self.store.webhook_event(id).await? else {
            return Ok(());
        };
        let attempt = event.attempts + 1;
        let (record, retry_after) = self.post(&event, now).await;
        let state = match record.status_code {
            Some(code) if (200..300).contains(&code) => WebhookState::Delivered,
            // 410 Gone: the receiver says this endpoint is no more.
            Some(410) => WebhookState::Failed,
            _ if record
                .error
                .as_deref()
                .is_some_and(|e| e.starts_with("refused:")) =>
            {
                WebhookState::Failed
            }
            _ => match self.retry.get(attempt as usize - 1) {
                Some(delay) => {
                    let delay = jitter(*delay).max(retry_after.unwrap_or_default());
                    WebhookState::Retry(
                        now + SignedDuration::try_from(delay).unwrap_or(SignedDuration::MAX),
                    )
                }
                None => WebhookState::Failed,
            },
        };
        match state {
            WebhookState::Delivered => tracing::info!(event_id = id, attempt, "webhook delivered"),
            _ => tracing::warn!(
                event_id = id,
                attempt,
                status = ?record.status_code,
                error = record.error.as_deref().unwrap_or(""),
                "webhook attempt failed"
            ),
        }
        let mut tx = self.store.begin().await?;
        Store::record_webhook_attempt(&mut tx, id, attempt, &record, state, now).await?;
        let ending = match state {
            WebhookState::Delivered => Some(AuditEventKind::WebhookDelivered),
            WebhookState::Failed => Some(AuditEventKind::WebhookFailed),
            WebhookState::Retry(_) => None,
        };
        if let Some(kind) = ending {
            let data = json!({
                "event_id": event.id,
                "type": event.kind,
                "url": event.url,
                "attempts": attempt,
                "status_code": record.status_code,
                "error": record.error,
            });
            Store::append_audit(
                &mut tx,
                event.project_id,
                kind,
                Some(event.pause_id),
                "system",
                data,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// POSTs the event, signed; what happened, and any `Retry-After` the receiver asked for.
    async fn post(&self, event: &StoredEvent, now: Timestamp) -> (AttemptRecord, Option<Duration>) {
        let failed = |error: String| AttemptRecord {
            status_code: None,
            latency_ms: 0,
            response: None,
            error: Some(error),
        };
        let url = match url::Url::parse(&event.url) {
            Ok(url) => url,
            Err(e) => return (failed(format!("refused: {e}")), None),
        };
        // The URL was checked at create; the server may have restarted with stricter settings.
        if let Err(e) = outbound::check_url(&url, self.allow_private_network) {
            return (failed(format!("refused: {e}")), None);
        }
        let keys: Vec<Vec<u8>> = match signing_secrets(&self.store, event.project_id, now).await {
            Ok(secrets) => secrets
                .iter()
                .filter_map(|s| decode_secret(s).ok())
                .collect(),
            Err(e) => {
                return (
                    failed(format!("could not read the signing secret: {e}")),
                    None,
                )
            }
        };
        let timestamp = now.as_second();
        let signature = signature_header(&keys, &event.id, timestamp, event.payload.as_bytes());
        let started = Instant::now();
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(event.payload.clone())
            .send()
            .await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match response {
            Ok(response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                let text: String = response
                    .text()
                    .await
                    .unwrap_or_default()
                    .chars()
                    .take(RESPONSE_CHARS)
                    .collect();
                let error = (!status.is_success()).then(|| {
                    if status.is_redirection() {
                        format!("answered {status}; redirects are not followed")
                    } else {
                        format!("answered {status}")
                    }
                });
                let record = AttemptRecord {
                    status_code: Some(status.as_u16()),
                    latency_ms,
                    response: (!text.is_empty()).then_some(text),
                    error,
                };
                (record, retry_after)
            }
            Err(e) => (
                AttemptRecord {
                    latency_ms,
                    ..failed(outbound::describe(&e))
                },
                None,
            ),
        }
    }
}

/// `delay` give or take a fifth, so retries from many pauses do not arrive together.
fn jitter(delay: Duration) -> Duration {
    let factor = 0.8 + rand::random::<f64>() * 0.4;
    delay.mul_f64(factor)
}
