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
use crate::store::pauses::{Outcome, PreparedPause};
use crate::store::{Actor, Store, StoreError, Tx};
use crate::work::handover::Handed;

/// Why an operation on a pause did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PauseError {
    #[error("no such pause")]
    NotFound,
    #[error("the pause is already {0}")]
    NotPending(PauseStatus),
    #[error("the pause expired and is being timed out")]
    Expired,
    /// This approver answered before; one vote each.
    #[error("this approver has already answered")]
    AlreadyVoted,
    /// The link names an approver the pause does not have.
    #[error("no such approver")]
    NoSuchApprover,
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
        let hub = Arc::clone(self.store.hub());
        let handover = hub.handover().lease_until(now);
        // Built here, on the request's own task: the writer only adds it to its group.
        let mut prepared = PreparedPause::new(
            project_id,
            &pause,
            (now, expires_at),
            idempotency.as_ref(),
            handover,
        );
        let created = &prepared.pause;
        prepared.draft.append_audit(
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
                "approvers": shown_approvers(created),
                "quorum": created.quorum,
                "remind_every_seconds": created.remind_every_seconds,
            }),
            now,
        );
        prepared.draft.announce(Change::PauseCreated {
            pause_id: created.pause_id.into(),
            channel: created.channel,
            expires_at: created.expires_at,
            handed_over: handover.is_some(),
        });
        let (created, handed) = self
            .store
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
                            let replayed = Created {
                                pause: earlier.pause,
                                replayed: true,
                            };
                            return Ok((replayed, Vec::new()));
                        }
                    }
                    let (created, handed) = tx.insert_pause(prepared).await?;
                    let created = Created {
                        pause: created,
                        replayed: false,
                    };
                    Ok((created, handed))
                })
            })
            .await?;
        if let Some(lease_until) = handover {
            let handed = handed
                .into_iter()
                .map(|key| Handed {
                    key,
                    project_id,
                    pause: created.pause.clone(),
                    lease_until,
                })
                .collect();
            hub.handover().give(handed);
        }
        Ok(created)
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
        // A plain read is not a watcher: subscribing for it would count it in `watching`,
        // which says who is waiting, and take the hub's lock for nothing.
        if wait.is_zero() {
            return Box::pin(self.get(project_id, id)).await;
        }
        let subscription = self.store.hub().subscribe(id);
        let woken = subscription.notify().notified();
        tokio::pin!(woken);
        woken.as_mut().enable();

        // The reads are boxed: thousands of waiters each hold this future while they wait,
        // and a read's state is most of its size.
        let pause = Box::pin(self.get(project_id, id)).await?;
        if pause.status.is_final() {
            return Ok(pause);
        }
        // Not held while waiting: the answer is read again when the wait ends.
        drop(pause);
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

    /// The pause's first approver answers (see [`Pauses::vote`]).
    pub async fn respond(
        &self,
        project_id: ProjectId,
        id: PauseId,
        choice: &str,
        text: Option<&str>,
    ) -> Result<Pause, PauseError> {
        self.vote(project_id, id, 0, choice, text).await
    }

    /// An approver answers, with a choice among the options and a note only where the
    /// pause allows one. Without a quorum the vote decides the pause; with one, the
    /// quorum's option decides at its count and any other option at once (a veto). The
    /// count, the vote, its audit event and a decision it makes are one write, so racing
    /// votes are counted one after the other and decide once.
    pub async fn vote(
        &self,
        project_id: ProjectId,
        id: PauseId,
        approver: u32,
        choice: &str,
        text: Option<&str>,
    ) -> Result<Pause, PauseError> {
        self.vote_as(project_id, id, approver, choice, text, None)
            .await
    }

    /// [`Pauses::vote`], recorded with `actor` when the approver acted as someone more
    /// precise than their recipient (the Slack user who clicked in a channel).
    pub async fn vote_as(
        &self,
        project_id: ProjectId,
        id: PauseId,
        approver: u32,
        choice: &str,
        text: Option<&str>,
        actor: Option<Actor>,
    ) -> Result<Pause, PauseError> {
        let pause = self.get(project_id, id).await?;
        let voter = pause
            .approvers
            .get(approver as usize)
            .cloned()
            .ok_or(PauseError::NoSuchApprover)?;
        if pause.status.is_final() {
            return Err(PauseError::NotPending(pause.status));
        }
        if voter.vote.is_some() {
            return Err(PauseError::AlreadyVoted);
        }
        let decision = Decision::parse(&pause.options, pause.allow_text_response, choice, text)?;
        let several = pause.approvers.len() > 1;
        // A notice answered as soon as it came: its record first, so that the audit log
        // shows the question before its answer.
        self.store.hub().unrecorded().settle(id).await;
        let now = now();
        let pause = self
            .store
            .write(move |tx| {
                Box::pin(async move {
                    let Some(tally) = tx.count_vote(project_id, id, &decision.choice, now).await?
                    else {
                        return Err(not_pending(tx, project_id, id).await);
                    };
                    if !tx.record_vote(id, approver, &decision, now).await? {
                        return Err(PauseError::AlreadyVoted);
                    }
                    tx.skip_deliveries_of(id, Some(approver), now);
                    let actor = actor.unwrap_or_else(|| Actor::approver(&voter));
                    // One approver's vote is the decision itself: `pause.responded` says
                    // it all, as it always has.
                    if several || tally.quorum.is_some() {
                        tx.append_audit(
                            project_id,
                            AuditEventKind::PauseVoteRecorded,
                            Some(id),
                            &actor,
                            json!({
                                "approver": approver,
                                "tier": voter.tier,
                                "channel": voter.channel,
                                "recipient": shown_recipient(voter.channel, &voter.recipient),
                                "choice": decision.choice,
                                "text": decision.text,
                                "approvals": tally.approvals,
                                "quorum": tally.quorum.as_ref().map(|(option, count)| {
                                    json!({ "option": option, "count": count })
                                }),
                            }),
                            now,
                        );
                    }
                    if tally.decides(&decision.choice) {
                        decide(
                            tx,
                            project_id,
                            id,
                            &Outcome::Responded(decision),
                            &actor,
                            now,
                        )
                        .await
                    } else {
                        tx.announce(Change::PauseChanged { pause_id: id });
                        tx.pause(project_id, id).await?.ok_or(PauseError::NotFound)
                    }
                })
            })
            .await?;
        if pause.status.is_final() {
            self.with_receipt(project_id, pause).await
        } else {
            Ok(pause)
        }
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

    /// Records `pause.viewed` the first time an approver opens their link.
    pub async fn record_view(
        &self,
        project_id: ProjectId,
        pause: &Pause,
        approver: u32,
        user_agent: &str,
    ) -> Result<(), PauseError> {
        let now = now();
        let user_agent: String = user_agent.chars().take(200).collect();
        let id = PauseId::from(pause.pause_id);
        let viewer = pause
            .approvers
            .get(approver as usize)
            .ok_or(PauseError::NoSuchApprover)?;
        let actor = Actor::approver(viewer);
        let data = json!({
            "approver": approver,
            "channel": viewer.channel,
            "recipient": shown_recipient(viewer.channel, &viewer.recipient),
            "message": pause.message,
            "options": pause.options,
            "user_agent": user_agent,
        });
        self.store
            .write(move |tx| {
                Box::pin(async move {
                    if tx.mark_viewed(id, approver, now).await? {
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
        return Err(not_pending(tx, project_id, id).await);
    };
    tx.skip_deliveries_of(id, None, now);
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

/// Why a change that needed a pending pause found none: decided, or past its deadline.
async fn not_pending(tx: &mut Tx, project_id: ProjectId, id: PauseId) -> PauseError {
    match tx.pause(project_id, id).await {
        Ok(Some(current)) if current.status.is_final() => PauseError::NotPending(current.status),
        Ok(Some(_)) => PauseError::Expired,
        Ok(None) => PauseError::NotFound,
        Err(e) => e.into(),
    }
}

/// The approvers as an auditor may see them (a Slack URL only by its start).
fn shown_approvers(pause: &Pause) -> Value {
    pause
        .approvers
        .iter()
        .map(|a| {
            json!({
                "recipient": shown_recipient(a.channel, &a.recipient),
                "channel": a.channel,
                "tier": a.tier,
                "notify_at": pausepoint_api::time::format(&a.notify_at),
            })
        })
        .collect()
}

/// Every vote given, in the order given.
fn shown_votes(pause: &Pause) -> Value {
    let mut votes: Vec<(&pausepoint_api::Approver, &pausepoint_api::Vote)> = pause
        .approvers
        .iter()
        .filter_map(|a| a.vote.as_ref().map(|v| (a, v)))
        .collect();
    votes.sort_by_key(|(_, v)| v.at);
    votes
        .into_iter()
        .map(|(a, v)| {
            json!({
                "recipient": shown_recipient(a.channel, &a.recipient),
                "choice": v.choice,
                "text": v.text,
                "at": pausepoint_api::time::format(&v.at),
            })
        })
        .collect()
}

/// What an auditor needs to see about a decision: the outcome and what was asked.
fn decision_context(pause: &Pause) -> Value {
    json!({
        "votes": shown_votes(pause),
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
