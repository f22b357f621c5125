//! The life of a pause: create, wait, and the one-way move from `pending` to responded,
//! timed out or cancelled. Every change is one transaction holding the status change and
//! its audit event; waiters are woken only after it commits.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use pausepoint_api::validation::NewPause;
use pausepoint_api::{AuditEventKind, Decision, Pause, PauseStatus, ValidationError};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::domain::webhooks;
use crate::hub::Wakeups;
use crate::store::pauses::Outcome;
use crate::store::{Store, StoreError};
use crate::Bells;

/// Why an operation on a pause did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("no such pause")]
    NotFound,
    #[error("the pause is already {0}")]
    NotPending(PauseStatus),
    #[error("the pause expired and is being timed out")]
    Expired,
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyConflict,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The `Idempotency-Key` of a create, with a hash of the request it came with.
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
}

/// A create's result: the pause, and whether an earlier request had already made it.
pub struct Created {
    pub pause: Pause,
    pub replayed: bool,
}

/// Operations on pauses. Cheap to clone.
#[derive(Clone)]
pub struct Pauses {
    store: Store,
    wakeups: Arc<Wakeups>,
    bells: Arc<Bells>,
}

impl Pauses {
    pub fn new(store: Store, wakeups: Arc<Wakeups>, bells: Arc<Bells>) -> Pauses {
        Pauses {
            store,
            wakeups,
            bells,
        }
    }

    /// Stores a new pending pause and records `pause.created`. With an idempotency key
    /// that was seen before, returns the first pause instead (or a conflict, when the
    /// request differs).
    pub async fn create(
        &self,
        project_id: Uuid,
        actor: &str,
        pause: &NewPause,
        idempotency: Option<&Idempotency>,
    ) -> Result<Created, PauseError> {
        match self.try_create(project_id, actor, pause, idempotency).await {
            // Another request with the same key committed between our look-up and insert.
            Err(PauseError::Store(e)) if idempotency.is_some() && e.is_unique_violation() => {
                self.try_create(project_id, actor, pause, idempotency).await
            }
            result => result,
        }
    }

    async fn try_create(
        &self,
        project_id: Uuid,
        actor: &str,
        pause: &NewPause,
        idempotency: Option<&Idempotency>,
    ) -> Result<Created, PauseError> {
        let now = now();
        let mut tx = self.store.begin().await?;
        if let Some(idempotency) = idempotency {
            if let Some(earlier) =
                Store::pause_by_idempotency_key(&mut tx, project_id, &idempotency.key).await?
            {
                if earlier.request_hash.as_deref() != Some(idempotency.request_hash.as_str()) {
                    return Err(PauseError::IdempotencyConflict);
                }
                return Ok(Created {
                    pause: earlier.pause,
                    replayed: true,
                });
            }
        }
        let timeout = SignedDuration::try_from(pause.timeout).unwrap_or(SignedDuration::MAX);
        let expires_at = now
            .checked_add(timeout)
            .map_err(|e| ValidationError::new("timeout_seconds", e.to_string()))?;
        let created = Store::insert_pause(
            &mut tx,
            project_id,
            Uuid::now_v7(),
            pause,
            now,
            expires_at,
            idempotency.map(|i| i.key.as_str()),
            idempotency.map(|i| i.request_hash.as_str()),
        )
        .await?;
        Store::append_audit(
            &mut tx,
            project_id,
            AuditEventKind::PauseCreated,
            Some(created.pause_id),
            actor,
            json!({
                "channel": created.channel,
                "recipient": created.recipient,
                "message": created.message,
                "options": created.options,
                "allow_text_response": created.allow_text_response,
                "timeout_default": created.timeout_default,
                "expires_at": created.expires_at,
                "metadata": created.metadata,
                "webhook_url": created.webhook_url,
            }),
            now,
        )
        .await?;
        self.store.notify(&mut tx, crate::store::NEW_PAUSE).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.bells.deliveries.notify_one();
        self.bells.deadlines.notify_one();
        Ok(Created {
            pause: created,
            replayed: false,
        })
    }

    /// The project's pause.
    pub async fn get(&self, project_id: Uuid, id: Uuid) -> Result<Pause, PauseError> {
        self.store
            .pause(project_id, id)
            .await?
            .ok_or(PauseError::NotFound)
    }

    /// The project's pause once it has left `pending`, or as it stands after `wait`, or
    /// as soon as `stop` is cancelled (the server is shutting down).
    pub async fn wait(
        &self,
        project_id: Uuid,
        id: Uuid,
        wait: Duration,
        stop: &CancellationToken,
    ) -> Result<Pause, PauseError> {
        let subscription = self.wakeups.subscribe(id);
        let woken = subscription.notify().notified();
        tokio::pin!(woken);
        woken.as_mut().enable();

        let pause = self.get(project_id, id).await?;
        if pause.status.is_final() || wait.is_zero() {
            return Ok(pause);
        }
        tokio::select! {
            () = woken => {}
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => {}
        }
        self.get(project_id, id).await
    }

    /// The agent withdraws the question: pending -> cancelled.
    pub async fn cancel(
        &self,
        project_id: Uuid,
        id: Uuid,
        actor: &str,
    ) -> Result<Pause, PauseError> {
        self.finish(project_id, id, Outcome::Cancelled, actor, now())
            .await
    }

    /// The human answers: pending -> responded, with a choice among the options and a
    /// note only where the pause allows one.
    pub async fn respond(
        &self,
        project_id: Uuid,
        id: Uuid,
        choice: &str,
        text: Option<&str>,
        actor: &str,
    ) -> Result<Pause, PauseError> {
        let pause = self.get(project_id, id).await?;
        if pause.status.is_final() {
            return Err(PauseError::NotPending(pause.status));
        }
        let decision = Decision::parse(&pause.options, pause.allow_text_response, choice, text)?;
        self.finish(project_id, id, Outcome::Responded(decision), actor, now())
            .await
    }

    /// Nobody answered: pending -> timed_out, allowed once `now` reaches `expires_at`.
    pub async fn time_out(
        &self,
        project_id: Uuid,
        id: Uuid,
        now: Timestamp,
    ) -> Result<Pause, PauseError> {
        self.finish(project_id, id, Outcome::TimedOut, "system", now)
            .await
    }

    /// Times out every pending pause whose deadline has passed at `now`; returns how many.
    pub async fn time_out_due(&self, now: Timestamp) -> Result<usize, PauseError> {
        let mut timed_out = 0;
        loop {
            let due = self.store.pauses_due(now, 100).await?;
            if due.is_empty() {
                return Ok(timed_out);
            }
            for (project_id, id) in due {
                match self.time_out(project_id, id, now).await {
                    Ok(_) => timed_out += 1,
                    // Decided a moment ago by someone else: nothing left to do.
                    Err(PauseError::NotPending(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Records `pause.viewed` the first time the human opens the pause's link.
    pub async fn record_view(
        &self,
        project_id: Uuid,
        pause: &Pause,
        user_agent: &str,
    ) -> Result<(), PauseError> {
        let now = now();
        let mut tx = self.store.begin().await?;
        if Store::mark_viewed(&mut tx, pause.pause_id, now).await? {
            let user_agent: String = user_agent.chars().take(200).collect();
            Store::append_audit(
                &mut tx,
                project_id,
                AuditEventKind::PauseViewed,
                Some(pause.pause_id),
                &format!("recipient:{}", pause.recipient),
                json!({
                    "channel": pause.channel,
                    "recipient": pause.recipient,
                    "message": pause.message,
                    "options": pause.options,
                    "user_agent": user_agent,
                }),
                now,
            )
            .await?;
            tx.commit().await.map_err(StoreError::from)?;
        }
        Ok(())
    }

    /// Wakes this server's long-polls on `pause_id` (decided on another server).
    pub fn wake(&self, pause_id: Uuid) {
        self.wakeups.wake(pause_id);
    }

    /// How many pauses have a long-poll waiting on them right now.
    pub fn watching(&self) -> usize {
        self.wakeups.watched()
    }

    /// The earliest deadline among pending pauses.
    pub async fn next_expiry(&self) -> Result<Option<Timestamp>, PauseError> {
        Ok(self.store.next_expiry().await?)
    }

    async fn finish(
        &self,
        project_id: Uuid,
        id: Uuid,
        outcome: Outcome,
        actor: &str,
        now: Timestamp,
    ) -> Result<Pause, PauseError> {
        let mut tx = self.store.begin().await?;
        let Some(pause) = Store::finish_pause(&mut tx, project_id, id, &outcome, now).await? else {
            drop(tx);
            let current = self.get(project_id, id).await?;
            return Err(if current.status.is_final() {
                PauseError::NotPending(current.status)
            } else {
                PauseError::Expired
            });
        };
        let event = match outcome {
            Outcome::Responded(_) => AuditEventKind::PauseResponded,
            Outcome::TimedOut => AuditEventKind::PauseTimedOut,
            Outcome::Cancelled => AuditEventKind::PauseCancelled,
        };
        Store::append_audit(
            &mut tx,
            project_id,
            event,
            Some(id),
            actor,
            decision_context(&pause),
            now,
        )
        .await?;
        let webhook = webhooks::enqueue(&mut tx, project_id, &pause, now).await?;
        self.store.notify(&mut tx, &id.to_string()).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.wakeups.wake(id);
        if webhook {
            self.bells.webhooks.notify_one();
        }
        Ok(pause)
    }
}

/// What an auditor needs to see about a decision: the outcome and what was asked.
fn decision_context(pause: &Pause) -> Value {
    json!({
        "status": pause.status,
        "response_choice": pause.response_choice,
        "response_text": pause.response_text,
        "channel": pause.channel,
        "recipient": pause.recipient,
        "message": pause.message,
        "options": pause.options,
        "timeout_default": pause.timeout_default,
    })
}

/// The current time, to the millisecond the database keeps.
pub fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now)
}
