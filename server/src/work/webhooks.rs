//! The webhook worker: sends each event, signed with every secret of the project still in
//! use, retries on a jittered schedule (the first retries within seconds), stops at 2xx
//! or 410, honours `Retry-After`, records every attempt, and ends with
//! `webhook.delivered` or `webhook.failed` in the audit log. It runs as an
//! [`super::outbox`] pipeline: many sends at once, results recorded in batches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use pausepoint_api::webhooks::{decode_secret, signature_header, WebhookEvent};
use pausepoint_api::AuditEventKind;
use serde_json::json;

use super::outbox::OutboxWork;
use super::outcome::{self, webhook_verdict, SendOutcome, Verdict};
use crate::domain::pauses::now;
use crate::domain::proof::Receipts;
use crate::domain::webhooks::signing_secrets;
use crate::ids::ProjectId;
use crate::outbound;
use crate::store::outbox::{Outbox, WEBHOOK_EVENTS};
use crate::store::webhooks::{AttemptRecord, StoredEvent, WebhookState};
use crate::store::{Actor, Store, StoreError};

/// How much of a receiver's answer is read, and kept with the attempt.
const ANSWER_BYTES: usize = 1024;

/// The webhook worker's state.
pub struct Webhooks {
    store: Store,
    http: reqwest::Client,
    policy: outbound::Policy,
    lookup: outbound::Lookup,
    /// Waits before the 2nd, 3rd… attempt; after the last, the event has failed.
    retry: Vec<Duration>,
    /// Signs the receipt each decision event carries.
    receipts: Arc<Receipts>,
}

/// A claimed event and the keys that sign it.
pub struct Due {
    event: StoredEvent,
    keys: Arc<Vec<Vec<u8>>>,
}

/// One finished attempt.
pub struct Done {
    event: StoredEvent,
    record: AttemptRecord,
    outcome: SendOutcome,
    at: Timestamp,
}

impl Webhooks {
    /// The worker; fails rather than send without the guarded client.
    pub fn new(
        store: Store,
        policy: outbound::Policy,
        retry: Vec<Duration>,
        receipts: Arc<Receipts>,
    ) -> Result<Webhooks, String> {
        let lookup = outbound::system_lookup();
        Ok(Webhooks {
            store,
            http: outbound::client(&policy, lookup.clone())?,
            policy,
            lookup,
            retry,
            receipts,
        })
    }

    /// A decision's event with the pause's receipt in its `data`. The receipt is signed
    /// at send time: the decision's place on the audit chain is known only once its
    /// transaction has committed. (Signatures are deterministic, so every attempt sends
    /// the same body unless the audit key was rotated in between.)
    async fn with_receipt(&self, mut event: StoredEvent) -> Result<StoredEvent, StoreError> {
        if event.pause_id.is_none() {
            return Ok(event);
        }
        let Ok(mut body) = serde_json::from_str::<WebhookEvent>(&event.payload) else {
            return Ok(event);
        };
        if body.data.receipt.is_some() {
            return Ok(event);
        }
        self.receipts
            .attach(event.project_id, &mut body.data)
            .await?;
        if body.data.receipt.is_some() {
            event.payload = serde_json::to_string(&body)
                .map_err(|e| StoreError::corrupt("webhook_events", e))?;
        }
        Ok(event)
    }

    /// POSTs the event, signed; what happened.
    async fn post(&self, due: &Due, now: Timestamp) -> (AttemptRecord, SendOutcome) {
        let event = &due.event;
        let failed = |error: String| AttemptRecord {
            status_code: None,
            latency_ms: 0,
            response: None,
            error: Some(error),
        };
        let refused = |error: String| (failed(error.clone()), SendOutcome::Refused { error });
        let url = match url::Url::parse(&event.url) {
            Ok(url) => url,
            Err(e) => return refused(format!("refused: {e}")),
        };
        // The URL was checked at create; the server may have restarted with stricter settings.
        if let Err(e) = outbound::check_url(&url, self.policy.allow_private_network) {
            return refused(format!("refused: {e}"));
        }
        if let Err(e) = outbound::check_through_proxy(&url, &self.policy, &self.lookup).await {
            return refused(format!("refused: {e}"));
        }
        if due.keys.is_empty() {
            let error = "the project has no signing secret".to_owned();
            return (
                failed(error.clone()),
                SendOutcome::RetryLater { error, after: None },
            );
        }
        let timestamp = now.as_second();
        let signature = signature_header(&due.keys, &event.id, timestamp, event.payload.as_bytes());
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
                let retry_after = outbound::retry_after(&response, now);
                let (text, _) = outbound::read_capped(response, ANSWER_BYTES).await;
                let error = (!status.is_success()).then(|| {
                    if status.is_redirection() {
                        format!("answered {status}; redirects are not followed")
                    } else {
                        format!("answered {status}")
                    }
                });
                let outcome = match (webhook_verdict(status.as_u16()), &error) {
                    (Verdict::Accepted, _) | (_, None) => SendOutcome::Delivered {
                        via: "webhook",
                        reference: None,
                    },
                    (Verdict::Permanent, Some(error)) => SendOutcome::Refused {
                        error: error.clone(),
                    },
                    (Verdict::Transient, Some(error)) => SendOutcome::RetryLater {
                        error: error.clone(),
                        after: retry_after,
                    },
                };
                let record = AttemptRecord {
                    status_code: Some(status.as_u16()),
                    latency_ms,
                    response: (!text.is_empty()).then_some(text),
                    error,
                };
                (record, outcome)
            }
            Err(e) => {
                let error = outbound::describe(&e);
                let record = AttemptRecord {
                    latency_ms,
                    ..failed(error.clone())
                };
                (record, SendOutcome::RetryLater { error, after: None })
            }
        }
    }
}

impl OutboxWork for Webhooks {
    type Item = Due;
    type Done = Done;

    fn outbox(&self) -> Outbox {
        WEBHOOK_EVENTS
    }

    async fn load(&self, keys: Vec<String>, now: Timestamp) -> Result<Vec<Due>, StoreError> {
        let events = self
            .store
            .read(move |conn| Box::pin(async move { conn.webhook_events(&keys).await }))
            .await?;
        let mut keys_of: HashMap<ProjectId, Arc<Vec<Vec<u8>>>> = HashMap::new();
        let mut due = Vec::with_capacity(events.len());
        for event in events {
            let keys = match keys_of.get(&event.project_id) {
                Some(keys) => Arc::clone(keys),
                None => {
                    let secrets = signing_secrets(&self.store, event.project_id, now).await?;
                    let keys: Arc<Vec<Vec<u8>>> = Arc::new(
                        secrets
                            .iter()
                            .filter_map(|s| decode_secret(s).ok())
                            .collect(),
                    );
                    keys_of.insert(event.project_id, Arc::clone(&keys));
                    keys
                }
            };
            let event = self.with_receipt(event).await?;
            due.push(Due { event, keys });
        }
        Ok(due)
    }

    fn key(item: &Due) -> String {
        item.event.id.clone()
    }

    fn send(
        self: &Arc<Self>,
        item: Due,
    ) -> impl std::future::Future<Output = Done> + Send + 'static {
        let this = Arc::clone(self);
        async move {
            let at = now();
            let (record, outcome) = this.post(&item, at).await;
            Done {
                event: item.event,
                record,
                outcome,
                at,
            }
        }
    }

    async fn record(&self, done: Vec<Done>) -> Result<(), StoreError> {
        let retry = self.retry.clone();
        let counted: Vec<SendOutcome> = done.iter().map(|d| d.outcome.clone()).collect();
        self.store
            .write(move |tx| {
                Box::pin(async move {
                    for done in done {
                        let Done {
                            event,
                            record,
                            outcome,
                            at,
                        } = done;
                        let attempt = event.attempts + 1;
                        let state = match &outcome {
                            SendOutcome::Delivered { .. } | SendOutcome::Logged => {
                                WebhookState::Delivered
                            }
                            SendOutcome::Refused { .. } => WebhookState::Failed,
                            SendOutcome::RetryLater { after, .. } => outcome::retry_at(
                                &retry,
                                attempt,
                                at,
                                outcome::jitter(),
                                *after,
                                None,
                            )
                            .map_or(WebhookState::Failed, WebhookState::Retry),
                        };
                        match state {
                            WebhookState::Delivered => {
                                tracing::info!(event_id = event.id, attempt, "webhook delivered")
                            }
                            _ => tracing::warn!(
                                event_id = event.id,
                                attempt,
                                status = ?record.status_code,
                                error = record.error.as_deref().unwrap_or(""),
                                "webhook attempt failed"
                            ),
                        }
                        tx.record_webhook_attempt(&event.id, attempt, &record, state, at)
                            .await?;
                        let ending = match state {
                            WebhookState::Delivered => Some(AuditEventKind::WebhookDelivered),
                            WebhookState::Failed => Some(AuditEventKind::WebhookFailed),
                            WebhookState::Retry(_) => None,
                        };
                        // A checkpoint's push is no event of the log: recording it would
                        // call for another checkpoint, and so on every minute.
                        let ending = ending.filter(|_| event.pause_id.is_some());
                        if let Some(kind) = ending {
                            let data = json!({
                                "event_id": event.id,
                                "type": event.kind,
                                "url": event.url,
                                "attempts": attempt,
                                "status_code": record.status_code,
                                "error": record.error,
                            });
                            tx.append_audit(
                                event.project_id,
                                kind,
                                event.pause_id,
                                &Actor::System,
                                data,
                                at,
                            );
                        }
                    }
                    Ok::<_, StoreError>(())
                })
            })
            .await?;
        let metrics = self.store.hub().metrics();
        for outcome in &counted {
            metrics.webhook_attempt(outcome);
        }
        Ok(())
    }

    fn done_key(done: &Done) -> String {
        done.event.id.clone()
    }
}
