//! The delivery worker. Each pause has a delivery row, written with it; this worker sends
//! it right after the create is acknowledged (a create never waits for a provider),
//! retries with backoff when a provider is down or slow (never when it refuses), and
//! records every attempt as an audit event and in the pause's `delivery` field. It runs
//! as an [`super::outbox`] pipeline: many sends at once, results recorded in batches.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use pausepoint_api::AuditEventKind;
use serde_json::json;

use super::outbox::OutboxWork;
use super::outcome::{self, SendOutcome};
use crate::channels::pace::WAIT_IN_FLIGHT;
use crate::channels::{Channels, Notice};
use crate::domain::links::{self, Links};
use crate::domain::pauses::now;
use crate::hub::Change;
use crate::ids::{PauseId, ProjectId};
use crate::store::deliveries::{DeliveryState, DueDelivery};
use crate::store::outbox::{Outbox, DELIVERIES};
use crate::store::{Actor, Store, StoreError};

/// The delivery worker's state.
pub struct Deliveries {
    store: Store,
    links: Links,
    channels: Arc<Channels>,
    public_url: String,
    retry: Vec<Duration>,
}

/// A claimed delivery: to send, or to skip (its pause was decided first).
pub enum Due {
    Send(Box<DueDelivery>),
    Skip(PauseId),
}

/// One finished delivery.
pub enum Done {
    Attempted {
        project_id: ProjectId,
        pause: Box<pausepoint_api::Pause>,
        outcome: SendOutcome,
        at: Timestamp,
    },
    Skipped(PauseId, Timestamp),
    /// Not sent yet: its provider's rate gives it a later start, when it is due again.
    Paced(PauseId, Timestamp),
}

impl Deliveries {
    pub fn new(
        store: Store,
        links: Links,
        channels: Arc<Channels>,
        public_url: String,
        retry: Vec<Duration>,
    ) -> Deliveries {
        Deliveries {
            store,
            links,
            channels,
            public_url,
            retry,
        }
    }
}

impl OutboxWork for Deliveries {
    type Item = Due;
    type Done = Done;

    fn outbox(&self) -> Outbox {
        DELIVERIES
    }

    async fn load(&self, keys: Vec<String>, now: Timestamp) -> Result<Vec<Due>, StoreError> {
        let claimed = keys.clone();
        let found = self
            .store
            .read(move |conn| Box::pin(async move { conn.due_deliveries(&claimed).await }))
            .await?;
        let mut due: Vec<Due> = found
            .into_iter()
            .map(|d| {
                if d.pause.status.is_final() || d.pause.expires_at <= now {
                    Due::Skip(PauseId::from(d.pause.pause_id))
                } else {
                    Due::Send(Box::new(d))
                }
            })
            .collect();
        // A claimed row whose pause cannot be read is given up rather than left leased.
        for key in keys {
            if !due.iter().any(|d| Self::key(d) == key) {
                if let Ok(id) = key.parse() {
                    due.push(Due::Skip(id));
                }
            }
        }
        Ok(due)
    }

    fn key(item: &Due) -> String {
        match item {
            Due::Send(d) => d.pause.pause_id.to_string(),
            Due::Skip(id) => id.to_string(),
        }
    }

    fn send(
        self: &Arc<Self>,
        item: Due,
    ) -> impl std::future::Future<Output = Done> + Send + 'static {
        let this = Arc::clone(self);
        async move {
            match item {
                Due::Skip(id) => Done::Skipped(id, now()),
                Due::Send(due) => {
                    let due = *due;
                    let pause_id = PauseId::from(due.pause.pause_id);
                    let token = this.links.token_for(pause_id, due.pause.expires_at);
                    let mut notice = Notice {
                        pause: &due.pause,
                        project: &due.project_name,
                        link: links::link(&this.public_url, &token),
                        now: now(),
                    };
                    let start = this.channels.start(&notice);
                    let wait = super::until(notice.now, Some(start));
                    if wait > WAIT_IN_FLIGHT {
                        this.channels.hold(pause_id, start);
                        return Done::Paced(pause_id, start);
                    }
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                        notice.now = now();
                    }
                    let at = notice.now;
                    let outcome = match this.channels.send(&notice).await {
                        // A provider's error may quote what it was sent: keep the token out.
                        SendOutcome::RetryLater { error, after } => SendOutcome::RetryLater {
                            error: error.replace(&token, "[link]"),
                            after,
                        },
                        SendOutcome::Refused { error } => SendOutcome::Refused {
                            error: error.replace(&token, "[link]"),
                        },
                        other => other,
                    };
                    Done::Attempted {
                        project_id: due.project_id,
                        pause: Box::new(due.pause),
                        outcome,
                        at,
                    }
                }
            }
        }
    }

    async fn record(&self, done: Vec<Done>) -> Result<(), StoreError> {
        let retry = self.retry.clone();
        let counted: Vec<(String, SendOutcome)> = done
            .iter()
            .filter_map(|d| match d {
                Done::Attempted { pause, outcome, .. } => {
                    Some((pause.channel.to_string(), outcome.clone()))
                }
                Done::Skipped(..) | Done::Paced(..) => None,
            })
            .collect();
        self.store
            .write(move |tx| {
                Box::pin(async move {
                    for done in done {
                        match done {
                            Done::Skipped(id, at) => {
                                tx.skip_delivery(id, at);
                                tx.announce(Change::PauseChanged { pause_id: id });
                            }
                            Done::Paced(id, start) => tx.pace_delivery(id, start),
                            Done::Attempted {
                                project_id,
                                pause,
                                outcome,
                                at,
                            } => record_attempt(tx, &retry, project_id, &pause, &outcome, at),
                        }
                    }
                    Ok::<_, StoreError>(())
                })
            })
            .await?;
        let metrics = self.store.hub().metrics();
        for (channel, outcome) in &counted {
            metrics.delivery_attempt(channel, outcome);
        }
        Ok(())
    }

    fn done_key(done: &Done) -> String {
        match done {
            Done::Attempted { pause, .. } => pause.pause_id.to_string(),
            Done::Skipped(id, _) | Done::Paced(id, _) => id.to_string(),
        }
    }
}

/// Records one attempt: the delivery's new state and its audit event.
fn record_attempt(
    tx: &mut crate::store::Tx,
    retry: &[Duration],
    project_id: ProjectId,
    pause: &pausepoint_api::Pause,
    outcome: &SendOutcome,
    at: Timestamp,
) {
    let pause_id = PauseId::from(pause.pause_id);
    let attempt = pause.delivery.as_ref().map_or(0, |d| d.attempts) + 1;
    let state = match outcome {
        SendOutcome::Delivered { .. } => DeliveryState::Sent,
        SendOutcome::Logged => DeliveryState::Logged,
        SendOutcome::RetryLater { after, .. } => {
            outcome::retry_at(retry, attempt, at, 1.0, *after, Some(pause.expires_at))
                .map_or(DeliveryState::Failed, DeliveryState::Retry)
        }
        SendOutcome::Refused { .. } => DeliveryState::Failed,
    };
    let error = outcome.error();
    let mut data = json!({
        "channel": pause.channel,
        "recipient": pausepoint_api::shown_recipient(pause.channel, &pause.recipient),
        "attempt": attempt,
        "message": pause.message,
        "options": pause.options,
    });
    let event = match outcome {
        SendOutcome::Delivered { via, reference } => {
            data["via"] = json!(via);
            data["reference"] = json!(reference);
            AuditEventKind::PauseNotified
        }
        SendOutcome::Logged => {
            data["via"] = json!("console");
            AuditEventKind::PauseNotified
        }
        SendOutcome::RetryLater { .. } | SendOutcome::Refused { .. } => {
            data["error"] = json!(error);
            data["next_attempt_at"] = match state {
                DeliveryState::Retry(at) => json!(pausepoint_api::time::format(&at)),
                _ => json!(null),
            };
            AuditEventKind::PauseNotificationFailed
        }
    };
    match error {
        Some(e) => {
            tracing::warn!(pause_id = %pause_id, channel = %pause.channel, attempt, error = %e, "delivery failed")
        }
        None => tracing::debug!(pause_id = %pause_id, channel = %pause.channel, "delivered"),
    }
    tx.record_delivery_attempt(pause_id, attempt, state, error, at);
    tx.append_audit(project_id, event, Some(pause_id), &Actor::System, data, at);
    tx.announce(Change::PauseChanged { pause_id });
}
