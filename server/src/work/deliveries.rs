//! The delivery worker. Each approver of a pause has delivery rows, written with it: the
//! first notice (due at once, or when an escalation tier's time comes) and any
//! reminders. This worker sends each when it is due (a create never waits for a provider),
//! skips those no longer wanted (the pause decided or past its deadline, the approver
//! answered),
//! retries with backoff when a provider is down or slow (never when it refuses), and
//! records every attempt as an audit event and in the pause's `delivery` field. It runs
//! as an [`super::outbox`] pipeline: many sends at once, results recorded in batches.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use pausepoint_api::{AuditEventKind, Channel};
use serde_json::json;
use tokio::sync::Notify;

use super::handover::{Handed, Handover};
use super::outbox::OutboxWork;
use super::outcome::{self, SendOutcome};
use crate::channels::pace::WAIT_IN_FLIGHT;
use crate::channels::{Channels, Notice};
use crate::domain::links::{self, LinkTarget, Links};
use crate::domain::pauses::now;
use crate::domain::replies;
use crate::hub::Change;
use crate::ids::{PauseId, ProjectId};
use crate::store::deliveries::{DeliveryKey, DeliveryState, DueDelivery};
use crate::store::outbox::{Outbox, DELIVERIES};
use crate::store::{Actor, Store, StoreError};
use crate::views;

/// The delivery worker's state.
pub struct Deliveries {
    store: Store,
    links: Links,
    channels: Arc<Channels>,
    public_url: String,
    retry: Vec<Duration>,
    /// Project names by id, as of a version of the keys (see [`Deliveries::project_name`]).
    project_names: Mutex<(u64, HashMap<ProjectId, String>)>,
}

/// A claimed delivery: to send, or to skip (no longer wanted).
pub enum Due {
    /// With the reference of an SMS to a number that has other questions open.
    Send(Box<DueDelivery>, Option<String>),
    Skip(DeliveryKey),
}

/// One finished delivery.
pub enum Done {
    Attempted {
        due: Box<DueDelivery>,
        outcome: SendOutcome,
        at: Timestamp,
    },
    Skipped(DeliveryKey, Timestamp),
    /// Not sent yet: its provider's rate gives it a later start, when it is due again.
    Paced(DeliveryKey, Timestamp),
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
            project_names: Mutex::new((0, HashMap::new())),
        }
    }
}

impl Deliveries {
    /// Deliveries to send at `now`, or to skip when no longer wanted; an SMS to a number
    /// with other questions open gets its reference.
    async fn prepare(
        &self,
        found: Vec<DueDelivery>,
        now: Timestamp,
    ) -> Result<Vec<Due>, StoreError> {
        let mut due: Vec<Due> = found
            .into_iter()
            .map(|d| {
                let answered = d.approver().is_none_or(|a| a.vote.is_some());
                if d.pause.status.is_final() || d.pause.expires_at <= now || answered {
                    Due::Skip(d.key)
                } else {
                    Due::Send(Box::new(d), None)
                }
            })
            .collect();
        // An SMS to a number with other questions open carries its reference, for the
        // reply to name it. (Only where replies can come: Twilio is configured.)
        let replies = self.channels.configured(Channel::Sms);
        for item in due.iter_mut().filter(|_| replies) {
            if let Due::Send(d, reference) = item {
                let Some(approver) = d.approver().filter(|a| a.channel == Channel::Sms) else {
                    continue;
                };
                let number = approver.recipient.clone();
                let open = self
                    .store
                    .read(move |conn| {
                        Box::pin(async move { conn.open_sms_questions(&number, now, 2).await })
                    })
                    .await?;
                if open
                    .iter()
                    .any(|q| (q.pause_id, q.approver) != (d.key.pause_id, d.key.approver))
                {
                    *reference = Some(replies::reference(d.key.pause_id, d.key.approver));
                }
            }
        }
        Ok(due)
    }

    /// The name of the project, as notices show it: read once, and again after a key
    /// change (a rename changes its keys, on every server).
    async fn project_name(&self, id: ProjectId) -> Result<Option<String>, StoreError> {
        let version = self.store.hub().keys_version();
        {
            let names = self.project_names.lock().unwrap_or_else(|e| e.into_inner());
            if names.0 == version {
                if let Some(name) = names.1.get(&id) {
                    return Ok(Some(name.clone()));
                }
            }
        }
        let Some(project) = self.store.project(id).await? else {
            return Ok(None);
        };
        let mut names = self.project_names.lock().unwrap_or_else(|e| e.into_inner());
        if names.0 != version {
            *names = (version, HashMap::new());
        }
        names.1.insert(id, project.name.clone());
        Ok(Some(project.name))
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
        let mut due = self.prepare(found, now).await?;
        // A claimed row whose pause cannot be read is given up rather than left leased.
        for key in keys {
            if !due.iter().any(|d| Self::key(d) == key) {
                if let Ok(key) = key.parse() {
                    due.push(Due::Skip(key));
                }
            }
        }
        Ok(due)
    }

    fn handover(&self) -> Option<&Handover> {
        Some(self.store.hub().handover())
    }

    fn flush(&self) -> Option<&Notify> {
        Some(self.store.hub().unrecorded().flush())
    }

    async fn adopt(&self, handed: Vec<Handed>, now: Timestamp) -> Result<Vec<Due>, StoreError> {
        let mut found = Vec::with_capacity(handed.len());
        for notice in handed {
            let Some(project_name) = self.project_name(notice.project_id).await? else {
                // Its lease runs out, and a claim reads it afresh.
                continue;
            };
            found.push(DueDelivery {
                key: notice.key,
                project_id: notice.project_id,
                project_name,
                pause: notice.pause,
                attempts: 0,
            });
        }
        self.prepare(found, now).await
    }

    fn key(item: &Due) -> String {
        match item {
            Due::Send(d, _) => d.key.to_string(),
            Due::Skip(key) => key.to_string(),
        }
    }
    fn send(
        self: &Arc<Self>,
        item: Due,
    ) -> impl std::future::Future<Output = Done> + Send + 'static {
        let this = Arc::clone(self);
        async move {
            match item {
                Due::Skip(key) => Done::Skipped(key, now()),
                Due::Send(due, reference) => {
                    let Some(asked) = as_asked(&due, now()) else {
                        return Done::Skipped(due.key, now());
                    };
                    let target = LinkTarget {
                        pause_id: due.key.pause_id,
                        approver: due.key.approver,
                    };
                    let token = this.links.token_for(target, due.pause.expires_at);
                    let mut notice = Notice {
                        pause: &asked,
                        key: due.key,
                        project: &due.project_name,
                        link: links::link(&this.public_url, &token),
                        public_url: &this.public_url,
                        reference,
                        now: now(),
                    };
                    let start = this.channels.start(&notice);
                    let wait = super::until(notice.now, Some(start));
                    if wait > WAIT_IN_FLIGHT {
                        this.channels.hold(due.key, start);
                        return Done::Paced(due.key, start);
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
                    this.store.hub().unrecorded().sent(due.key.pause_id);
                    Done::Attempted { due, outcome, at }
                }
            }
        }
    }

    async fn record(&self, done: Vec<Done>) -> Result<(), StoreError> {
        let retry = self.retry.clone();
        let attempted: Vec<PauseId> = done
            .iter()
            .filter_map(|d| match d {
                Done::Attempted { due, .. } => Some(due.key.pause_id),
                Done::Skipped(..) | Done::Paced(..) => None,
            })
            .collect();
        let counted: Vec<(String, SendOutcome)> = done
            .iter()
            .filter_map(|d| match d {
                Done::Attempted { due, outcome, .. } => due
                    .approver()
                    .map(|a| (a.channel.to_string(), outcome.clone())),
                Done::Skipped(..) | Done::Paced(..) => None,
            })
            .collect();
        let written = self
            .store
            .write(move |tx| {
                Box::pin(async move {
                    for done in done {
                        match done {
                            Done::Skipped(key, at) => {
                                tx.skip_delivery(key, at);
                                tx.announce(Change::PauseChanged {
                                    pause_id: key.pause_id,
                                });
                            }
                            Done::Paced(key, start) => tx.pace_delivery(key, start),
                            Done::Attempted { due, outcome, at } => {
                                record_attempt(tx, &retry, &due, &outcome, at)
                            }
                        }
                    }
                    Ok::<_, StoreError>(())
                })
            })
            .await;
        // Written or not (then their leases run out and they go again), no answer waits
        // for these records any longer.
        self.store.hub().unrecorded().recorded(attempted);
        written?;
        let metrics = self.store.hub().metrics();
        for (channel, outcome) in &counted {
            metrics.delivery_attempt(channel, outcome);
        }
        Ok(())
    }

    fn done_key(done: &Done) -> String {
        match done {
            Done::Attempted { due, .. } => due.key.to_string(),
            Done::Skipped(key, _) | Done::Paced(key, _) => key.to_string(),
        }
    }
}

/// Why this notice comes, when it is not the first asking of tier 0: a reminder, the
/// earlier tiers' silence, or (before the tier's time) that they could not be reached.
fn reason(due: &DueDelivery, now: Timestamp) -> Option<String> {
    let approver = due.approver()?;
    if due.key.reminder > 0 {
        return Some("Reminder: this question is still waiting for your answer.".into());
    }
    if approver.tier == 0 {
        return None;
    }
    let earlier: Vec<String> = due
        .pause
        .approvers
        .iter()
        .filter(|a| a.tier < approver.tier)
        .map(|a| pausepoint_api::shown_recipient(a.channel, &a.recipient))
        .collect();
    if now < approver.notify_at {
        return Some(format!("{} could not be reached.", earlier.join(", ")));
    }
    let waited = approver.notify_at.duration_since(due.pause.created_at);
    Some(format!(
        "No answer from {} in {}.",
        earlier.join(", "),
        views::human_duration(waited)
    ))
}

/// The pause as this delivery's approver is asked it: to them, on their channel, and
/// with why it comes before the question when it is an escalation or a reminder.
fn as_asked(due: &DueDelivery, now: Timestamp) -> Option<pausepoint_api::Pause> {
    let approver = due.approver()?;
    let mut asked = due.pause.clone();
    asked.channel = approver.channel;
    asked.recipient = approver.recipient.clone();
    if let Some(reason) = reason(due, now) {
        asked.message = format!("{reason}\n\n{}", asked.message);
    }
    Some(asked)
}

/// Records one attempt: the delivery's new state and its audit event (`pause.notified`,
/// `pause.escalated` for an escalation tier's first notice, `pause.reminded` for a
/// reminder; `pause.notification_failed` for any that failed).
fn record_attempt(
    tx: &mut crate::store::Tx,
    retry: &[Duration],
    due: &DueDelivery,
    outcome: &SendOutcome,
    at: Timestamp,
) {
    let pause = &due.pause;
    let pause_id = due.key.pause_id;
    let Some(approver) = due.approver() else {
        return;
    };
    let attempt = due.attempts + 1;
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
        "channel": approver.channel,
        "recipient": pausepoint_api::shown_recipient(approver.channel, &approver.recipient),
        "attempt": attempt,
        "message": pause.message,
        "options": pause.options,
    });
    if pause.approvers.len() > 1 {
        data["approver"] = json!(due.key.approver);
        data["tier"] = json!(approver.tier);
    }
    if due.key.reminder > 0 {
        data["reminder"] = json!(due.key.reminder);
    }
    let reason = reason(due, at);
    if let Some(reason) = &reason {
        data["reason"] = json!(reason);
    }
    let sent = if due.key.reminder > 0 {
        AuditEventKind::PauseReminded
    } else if approver.tier > 0 {
        AuditEventKind::PauseEscalated
    } else {
        AuditEventKind::PauseNotified
    };
    let event = match outcome {
        SendOutcome::Delivered { via, reference } => {
            data["via"] = json!(via);
            data["reference"] = json!(reference);
            sent
        }
        SendOutcome::Logged => {
            data["via"] = json!("console");
            sent
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
            tracing::warn!(pause_id = %pause_id, channel = %approver.channel, attempt, error = %e, "delivery failed")
        }
        None => tracing::debug!(pause_id = %pause_id, channel = %approver.channel, "delivered"),
    }
    let reference = match outcome {
        SendOutcome::Delivered { reference, .. } => reference.as_deref(),
        _ => None,
    };
    tx.record_delivery_attempt(due.key, attempt, state, error, reference, at);
    if state == DeliveryState::Failed && due.key.reminder == 0 {
        tx.escalate_if_unreachable(pause_id, due.key.approver, &due.key.to_string(), at);
        tx.announce(Change::DeliveriesDue);
    }
    tx.append_audit(
        due.project_id,
        event,
        Some(pause_id),
        &Actor::System,
        data,
        at,
    );
    tx.announce(Change::PauseChanged { pause_id });
}
