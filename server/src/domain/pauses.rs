//! The life of a pause: create, wait, and the one-way move from `pending` to responded,
//! timed out or cancelled. Every change is one write holding the status change, its audit
//! event and its webhook event; waiters are woken only after it commits.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use pausepoint_api::validation::NewPause;
use pausepoint_api::{
    shown_recipient, AuditEventKind, Decision, Pause, PauseStatus, ValidationError,
};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::domain::proof::Receipts;
use crate::domain::webhooks;
use crate::hub::Change;
use crate::ids::{PauseId, ProjectId};
pub use crate::store::pauses::Idempotency;
use crate::store::pauses::Outcome;
use crate::store::{Actor, Store, StoreError, Tx};

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

/// A create's result: the pause, and whether an earlier request had already made it.
pub struct Created {
    pub pause: Pause,
    pub replayed: bool,
}

/// Operations on pauses. Cheap to clone.
#[derive(Clone)]
pub struct Pauses {
    store: Store,
    receipts: Option<Arc<Receipts>>,
}

impl Pauses {
    pub fn new(store: Store) -> Pauses {
        Pauses {
            store,
            receipts: None,
        }
    }

    /// Decided pauses come with their receipt, signed by `receipts`.
    pub fn with_receipts(self, receipts: Arc<Receipts>) -> Pauses {
        Pauses {
            receipts: Some(receipts),
            ..self
        }
    }

    /// Puts its receipt on a decided pause.
    async fn with_receipt(
        &self,
        project_id: ProjectId,
        mut pause: Pause,
    ) -> Result<Pause, PauseError> {
        if let Some(receipts) = &self.receipts {
            receipts.attach(project_id, &mut pause).await?;
        }
        Ok(pause)
    }

    /// Stores a new pending pause and records `pause.created`. With an idempotency key
    /// that was seen before, returns the first pause instead (or a conflict, when the
    /// request differs).
    pub async fn create(
        &self,
        project_id: ProjectId,
        actor: Actor,
        pause: NewPause,
        idempotency: Option<Idempotency>,
    ) -> Result<Created, PauseError> {
        let retry = (pause.clone(), idempotency.clone(), actor.clone());
        match self.try_create(project_id, actor, pause, idempotency).await {
            // Another server's request with the same key committed between our look-up
            // and insert (PostgreSQL); on SQLite the one writer sees it first.
            Err(PauseError::Store(e)) if retry.1.is_some() && e.is_unique_violation() => {
                let (pause, idempotency, actor) = retry;
                self.try_create(project_id, actor, pause, idempotency).await
            }
            result => result,
        }
    }

    async fn try_create(
        &self,
        project_id: ProjectId,
        actor: Actor,
        pause: NewPause,
        idempotency: Option<Idempotency>,
    ) -> Result<Created, PauseError> {
        let now = now();
        let timeout = SignedDuration::try_from(pause.timeout).unwrap_or(SignedDuration::MAX);
        let expires_at = now
            .checked_add(timeout)
            .map_err(|e| ValidationError::new("timeout_seconds", e.to_string()))?;
        self.store
            .write(move |tx| {
                Box::pin(async move {
                    if let Some(idempotency) = &idempotency {
                        if let Some(earlier) = tx
                            .pause_by_idempotency_key(project_id, &idempotency.key)
                            .await?
                        {
                            if earlier.request_hash.as_deref()
                                != Some(idempotency.request_hash.as_str())
                            {
                                return Err(PauseError::IdempotencyConflict);
                            }
                            return Ok(Created {
                                pause: earlier.pause,
                                replayed: true,
                            });
                        }
                    }
                    let created = tx
                        .insert_pause(project_id, &pause, now, expires_at, idempotency.as_ref())
                        .await?;
                    tx.append_audit(
                        project_id,
                        AuditEventKind::PauseCreated,
                        Some(created.pause_id.into()),
                        &actor,
                        json!({
                            "channel": created.channel,
                            "recipient": shown_recipient(created.channel, &created.recipient),
                            "message": created.message,
                            "options": created.options,
                            "allow_text_response": created.allow_text_response,
                            "timeout_default": created.timeout_default,
                            "expires_at": pausepoint_api::time::format(&created.expires_at),
                            "metadata": created.metadata,
                            "webhook_url": created.webhook_url,
                        }),
                        now,
                    );
                    tx.announce(Change::PauseCreated {
                        pause_id: created.pause_id.into(),
                        channel: created.channel,
                        expires_at: created.expires_at,
                    });
                    Ok(Created {
                        pause: created,
                        replayed: false,
                    })
                })
            })
            .await
    }

    /// The project's pause: from the hub's cache when it holds it, else from the store.
    pub async fn get(&self, project_id: ProjectId, id: PauseId) -> Result<Pause, PauseError> {
        let cache = self.store.hub().pauses();
        if let Some(pause) = cache.get(project_id, id) {
            return Ok(pause);
        }
        let mark = cache.mark();
        let pause = self
            .store
            .pause(project_id, id)
            .await?
            .ok_or(PauseError::NotFound)?;
        let pause = self.with_receipt(project_id, pause).await?;
        cache.offer(mark, project_id, &pause);
        Ok(pause)
    }

    /// The project's pause once it has left `pending`, or as it stands after `wait`, or
    /// as soon as `stop` is cancelled (the server is shutting down).
    pub async fn wait(
        &self,
        project_id: ProjectId,
        id: PauseId,
        wait: Duration,
        stop: &CancellationToken,
    ) -> Result<Pause, PauseError> {
        let subscription = self.store.hub().subscribe(id);
        let woken = subscription.notify().notified();
        tokio::pin!(woken);
        woken.as_mut().enable();

        // The reads are boxed: thousands of waiters each hold this future while they wait,
        // and a read's state is most of its size.
        let pause = Box::pin(self.get(project_id, id)).await?;
        if pause.status.is_final() || wait.is_zero() {
            return Ok(pause);
        }
        tokio::select! {
            () = woken => {}
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => {}
        }
        Box::pin(self.get(project_id, id)).await
    }

    /// The agent withdraws the question: pending -> cancelled.
    pub async fn cancel(
        &self,
        project_id: ProjectId,
        id: PauseId,
        actor: Actor,
    ) -> Result<Pause, PauseError> {
        self.finish(project_id, id, Outcome::Cancelled, actor, now())
            .await
    }

    /// The human answers: pending -> responded, with a choice among the options and a
    /// note only where the pause allows one.
    pub async fn respond(
        &self,
        project_id: ProjectId,
        id: PauseId,
        choice: &str,
        text: Option<&str>,
        actor: Actor,
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
        project_id: ProjectId,
        id: PauseId,
        now: Timestamp,
    ) -> Result<Pause, PauseError> {
        self.finish(project_id, id, Outcome::TimedOut, Actor::System, now)
            .await
    }

    /// Times out pending pauses whose deadline has passed at `now`, a batch per write, up
    /// to `most`; returns how many, and whether some are left.
    pub async fn time_out_due(
        &self,
        now: Timestamp,
        most: usize,
    ) -> Result<(usize, bool), PauseError> {
        let mut timed_out = 0;
        let mut looked = 0;
        loop {
            let (due, done): (usize, usize) = self
                .store
                .write(move |tx| {
                    Box::pin(async move {
                        let due = tx.pauses_due(now, 500).await?;
                        let mut done = 0;
                        for (project_id, id) in &due {
                            match decide(
                                tx,
                                *project_id,
                                *id,
                                &Outcome::TimedOut,
                                &Actor::System,
                                now,
                            )
                            .await
                            {
                                Ok(_) => done += 1,
                                // Decided a moment ago by someone else: nothing left to do.
                                Err(PauseError::NotPending(_) | PauseError::Expired) => {}
                                Err(e) => return Err(e),
                            }
                        }
                        Ok((due.len(), done))
                    })
                })
                .await?;
            timed_out += done;
            looked += due;
            if due < 500 {
                return Ok((timed_out, false));
            }
            if looked >= most {
                return Ok((timed_out, true));
            }
        }
    }

    /// Records `pause.viewed` the first time the human opens the pause's link.
    pub async fn record_view(
        &self,
        project_id: ProjectId,
        pause: &Pause,
        user_agent: &str,
    ) -> Result<(), PauseError> {
        let now = now();
        let user_agent: String = user_agent.chars().take(200).collect();
        let id = PauseId::from(pause.pause_id);
        let actor = Actor::recipient(pause);
        let data = json!({
            "channel": pause.channel,
            "recipient": shown_recipient(pause.channel, &pause.recipient),
            "message": pause.message,
            "options": pause.options,
            "user_agent": user_agent,
        });
        self.store
            .write(move |tx| {
                Box::pin(async move {
                    if tx.mark_viewed(id, now).await? {
                        tx.append_audit(
                            project_id,
                            AuditEventKind::PauseViewed,
                            Some(id),
                            &actor,
                            data,
                            now,
                        );
                    }
                    Ok::<_, PauseError>(())
                })
            })
            .await
    }

    /// How many pauses have a long-poll waiting on them right now.
    pub fn watching(&self) -> usize {
        self.store.hub().watched()
    }

    /// The earliest deadline among pending pauses.
    pub async fn next_expiry(&self) -> Result<Option<Timestamp>, PauseError> {
        Ok(self.store.read(|conn| Box::pin(conn.next_expiry())).await?)
    }

    async fn finish(
        &self,
        project_id: ProjectId,
        id: PauseId,
        outcome: Outcome,
        actor: Actor,
        now: Timestamp,
    ) -> Result<Pause, PauseError> {
        let pause = self
            .store
            .write(move |tx| {
                Box::pin(async move { decide(tx, project_id, id, &outcome, &actor, now).await })
            })
            .await?;
        self.with_receipt(project_id, pause).await
    }
}

/// The decision itself: the conditional status change, its audit event, its webhook
/// event, and the news that the pause is decided.
async fn decide(
    tx: &mut Tx,
    project_id: ProjectId,
    id: PauseId,
    outcome: &Outcome,
    actor: &Actor,
    now: Timestamp,
) -> Result<Pause, PauseError> {
    let Some(pause) = tx.finish_pause(project_id, id, outcome, now).await? else {
        let current = tx
            .pause(project_id, id)
            .await?
            .ok_or(PauseError::NotFound)?;
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
    tx.append_audit(
        project_id,
        event,
        Some(id),
        actor,
        decision_context(&pause),
        now,
    );
    webhooks::enqueue(tx, project_id, &pause, now).await?;
    tx.announce(Change::PauseDecided {
        pause_id: id,
        channel: pause.channel,
        outcome: pause.status,
        waited_ms: (now.as_millisecond() - pause.created_at.as_millisecond()).max(0),
    });
    Ok(pause)
}

/// What an auditor needs to see about a decision: the outcome and what was asked.
fn decision_context(pause: &Pause) -> Value {
    json!({
        "status": pause.status,
        "response_choice": pause.response_choice,
        "response_text": pause.response_text,
        "channel": pause.channel,
        "recipient": shown_recipient(pause.channel, &pause.recipient),
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
