//! Verifying a project's audit log so that someone who can write the database cannot fool
//! it: every event in place and hashed onto the one before, every signed checkpoint on the
//! chain naming the hash its event has, the chain ending where the project's head and the
//! newest checkpoint this server signed say, no old event left without a checkpoint, and
//! every pause's row agreeing with its decision event. Events appended while it walks are
//! left for the next walk.

use std::collections::{HashMap, HashSet};

use jiff::Timestamp;
use pausepoint_api::proof::{pause_agrees_with, ChainCheck, Checkpoint, Jwks};
use pausepoint_api::{AuditEvent, Pause, VerifyReport};
use uuid::Uuid;

use super::pauses::now;
use super::proof::{newest_trusted_checkpoint, walk, Checkpoints};
use crate::ids::{PauseId, ProjectId};
use crate::store::pauses::PauseFilter;
use crate::store::{Store, StoreError};

/// Pauses cross-checked per round trip.
const PAUSE_PAGE: u32 = 500;

/// Verifies the whole log of `project_id`, and its pauses against it, as this running
/// server: with the newest checkpoint it signed as evidence kept outside the database, and
/// old events measured against the clock.
pub async fn verify(
    store: &Store,
    checkpoints: &Checkpoints,
    project_id: ProjectId,
    walk: Walk,
) -> Result<VerifyReport, StoreError> {
    // What this server signed is read before the head, so it never names a later event.
    let outside: Vec<_> = checkpoints.made(project_id).into_iter().collect();
    let keys = checkpoints.keys().public();
    verify_with(store, project_id, &keys, outside, Some(now()), walk).await
}

/// How much of a chain a verification walks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// Every event, and every pause: finds tampering anywhere. Streams, in constant memory.
    Full,
    /// From the event the newest valid checkpoint names (everything before was verified
    /// when it was signed), and the pauses those events concern: its cost follows what was
    /// written since, not the size of the log. Without such a checkpoint, the whole chain.
    SinceCheckpoint,
}

/// Verifies the log of `project_id` and its pauses with `keys`, the checkpoints kept
/// outside, and `now` (or, for a copy at rest, the newest event) as the reference for
/// events that must be covered.
pub async fn verify_with(
    store: &Store,
    project_id: ProjectId,
    keys: &Jwks,
    outside: Vec<Checkpoint>,
    now: Option<Timestamp>,
    how: Walk,
) -> Result<VerifyReport, StoreError> {
    let (head_seq, head_hash) = store.audit_head(project_id).await?;
    let mut check = ChainCheck::new(keys, Some(Uuid::from(project_id)), outside);
    let mut from = 0;
    if how == Walk::SinceCheckpoint {
        if let Some((seq, hash)) = newest_trusted_checkpoint(store, project_id, keys).await? {
            check = check.starting_after(seq, &hash);
            from = seq;
        }
    }
    let mut touched = HashSet::new();
    walk(
        store,
        project_id,
        &mut check,
        from,
        head_seq,
        Some(&mut touched),
    )
    .await?;
    let mut report = check.finish(Some((head_seq, &head_hash)), now);
    if report.ok {
        let (checked, problem) = match from {
            0 => cross_check_pauses(store, project_id).await?,
            _ => {
                let ids: Vec<PauseId> = touched.into_iter().map(PauseId::from).collect();
                cross_check_some(store, project_id, ids).await?
            }
        };
        report.pauses_checked = Some(checked);
        if let Some((seq, problem)) = problem {
            report.ok = false;
            report.first_bad_seq = seq;
            report.problem = Some(problem);
        }
    }
    Ok(report)
}

/// Every pause's row against its decision event; how many were checked, and the first
/// that disagrees (with the seq of its decision event, when it has one).
async fn cross_check_pauses(
    store: &Store,
    project_id: ProjectId,
) -> Result<(u64, Option<(Option<i64>, String)>), StoreError> {
    let mut checked = 0;
    let mut before = None;
    loop {
        let pauses = store
            .pauses(project_id, PauseFilter::default(), before, PAUSE_PAGE)
            .await?;
        let Some(last) = pauses.last() else {
            return Ok((checked, None));
        };
        before = Some(PauseId::from(last.pause_id));
        if let Some(problem) = check_batch(store, project_id, &pauses).await? {
            return Ok((checked + pauses.len() as u64, Some(problem)));
        }
        checked += pauses.len() as u64;
    }
}

/// The pauses with these ids against their decision events.
async fn cross_check_some(
    store: &Store,
    project_id: ProjectId,
    ids: Vec<PauseId>,
) -> Result<(u64, Option<(Option<i64>, String)>), StoreError> {
    let mut checked = 0;
    for chunk in ids.chunks(PAUSE_PAGE as usize) {
        let chunk = chunk.to_vec();
        let pauses = store
            .read(move |conn| {
                Box::pin(async move { conn.pauses_with_ids(project_id, &chunk).await })
            })
            .await?;
        checked += pauses.len() as u64;
        if let Some(problem) = check_batch(store, project_id, &pauses).await? {
            return Ok((checked, Some(problem)));
        }
    }
    Ok((checked, None))
}

/// A batch of pause rows against their decision events: the first that disagrees.
async fn check_batch(
    store: &Store,
    project_id: ProjectId,
    pauses: &[Pause],
) -> Result<Option<(Option<i64>, String)>, StoreError> {
    let ids: Vec<PauseId> = pauses.iter().map(|p| PauseId::from(p.pause_id)).collect();
    let events = store
        .read(move |conn| Box::pin(async move { conn.decision_events_of(project_id, &ids).await }))
        .await?;
    let mut decisions: HashMap<Uuid, Vec<AuditEvent>> = HashMap::new();
    for event in events {
        if let Some(id) = event.pause_id {
            decisions.entry(id).or_default().push(event);
        }
    }
    for pause in pauses {
        let found = decisions.remove(&pause.pause_id).unwrap_or_default();
        if pause_agrees_with(pause, &found).is_ok() {
            continue;
        }
        // The row and its events were read apart: a decision may have committed in
        // between. Read both again, now that it would have.
        let id = PauseId::from(pause.pause_id);
        let Some(pause) = store.pause(project_id, id).await? else {
            continue;
        };
        store.settle_audit(project_id).await?;
        let found = store
            .read(move |conn| Box::pin(conn.decision_events(project_id, id)))
            .await?;
        if let Err(problem) = pause_agrees_with(&pause, &found) {
            return Ok(Some((found.first().map(|e| e.seq), problem)));
        }
    }
    Ok(None)
}
