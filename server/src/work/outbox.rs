//! The loop of a worker over an outbox (deliveries, webhook events): a pipeline that keeps
//! up to `concurrency` sends in flight, claims new rows as sends finish (so one slow
//! receiver does not hold up the rest), and records finished sends in batches, one
//! write for many. On stop it starts nothing new, gives the sends in flight a short grace,
//! records what finished and gives back the rest unsent, due at once for the next start or
//! another server; nothing unsent is ever marked sent.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use jiff::{SignedDuration, Timestamp};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::pauses::now;
use crate::store::outbox::Outbox;
use crate::store::{Store, StoreError};

/// What one kind of outbox work does with its rows.
pub trait OutboxWork: Send + Sync + 'static {
    /// A claimed row with what sending it needs.
    type Item: Send + 'static;
    /// A finished send, to record.
    type Done: Send + 'static;

    /// The table the rows live in.
    fn outbox(&self) -> Outbox;
    /// The claimed rows with these keys, ready to send.
    fn load(
        &self,
        keys: Vec<String>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<Self::Item>, StoreError>> + Send;
    /// The key of a loaded row.
    fn key(item: &Self::Item) -> String;
    /// Sends one row; never fails (a failure is an outcome to record).
    fn send(
        self: &Arc<Self>,
        item: Self::Item,
    ) -> impl Future<Output = Self::Done> + Send + 'static;
    /// Records finished sends, in one write.
    fn record(&self, done: Vec<Self::Done>) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The key of a finished send.
    fn done_key(done: &Self::Done) -> String;
}

/// How the pipeline runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sends in flight at once.
    pub concurrency: usize,
    /// How long a claim holds a row: more than one send can take.
    pub lease: Duration,
    /// How long sends in flight may finish after the server is told to stop.
    pub grace: Duration,
}

/// Finished sends are recorded when this many wait, or when the oldest has waited this long.
const RECORD_BATCH: usize = 256;
const RECORD_AFTER: Duration = Duration::from_millis(10);
/// While new rows trickle in, claims come at most this often (each claim is a write).
const CLAIM_EVERY: Duration = Duration::from_millis(5);
/// How often a busy pipeline looks for rows that came due by the clock.
const LOOK_AGAIN: Duration = Duration::from_secs(1);
/// The pause after a failed claim or record (the database being away, say).
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// Runs the pipeline of `work` until `stop`; returns how many rows it gave back unsent.
pub async fn run<W: OutboxWork>(
    work: Arc<W>,
    store: Store,
    bell: &Notify,
    settings: Settings,
    stop: CancellationToken,
) -> usize {
    let name = work.outbox().name();
    let lease = SignedDuration::try_from(settings.lease).unwrap_or(SignedDuration::from_secs(60));
    let mut in_flight = FuturesUnordered::new();
    let mut keys_in_flight: HashSet<String> = HashSet::new();
    let mut finished: Vec<W::Done> = Vec::new();
    let mut oldest_finished: Option<Instant> = None;
    // Unknown until the first claim: assume there is work.
    let mut maybe_due = true;
    // When the last claim found fewer rows than it had room for: then new rows trickle in,
    // and waiting a moment lets one claim take many of them.
    let mut last_partial_claim: Option<Instant> = None;
    let mut stopping_since: Option<Instant> = None;

    loop {
        // Take new work while there is room and rows may be due.
        if stopping_since.is_none() && maybe_due && in_flight.len() < settings.concurrency {
            if let Some(wait) =
                last_partial_claim.map(|at| CLAIM_EVERY.saturating_sub(at.elapsed()))
            {
                if !wait.is_zero() {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = stop.cancelled() => {}
                    }
                }
            }
            let room = u32::try_from(settings.concurrency - in_flight.len()).unwrap_or(u32::MAX);
            match claim(&work, &store, room, lease).await {
                Ok(items) => {
                    maybe_due = items.len() as u32 >= room;
                    last_partial_claim = (!maybe_due).then(Instant::now);
                    for item in items {
                        keys_in_flight.insert(W::key(&item));
                        in_flight.push(work.send(item));
                    }
                }
                Err(e) => {
                    tracing::error!(worker = name, error = %e, "cannot claim work; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(RETRY_AFTER_ERROR) => {}
                        () = stop.cancelled() => {}
                    }
                    if stop.is_cancelled() && stopping_since.is_none() {
                        stopping_since = Some(Instant::now());
                    }
                    continue;
                }
            }
        }

        // Record what finished, in batches.
        let record_now = !finished.is_empty()
            && (finished.len() >= RECORD_BATCH
                || in_flight.is_empty()
                || oldest_finished.is_some_and(|t| t.elapsed() >= RECORD_AFTER)
                || stopping_since.is_some());
        if record_now {
            let batch = std::mem::take(&mut finished);
            let count = batch.len();
            if let Err(e) = work.record(batch).await {
                // Their leases run out and they go again: at least once, never lost.
                tracing::error!(worker = name, count, error = %e, "cannot record finished sends");
            }
            oldest_finished = None;
        }

        if let Some(since) = stopping_since {
            let grace_left = settings.grace.saturating_sub(since.elapsed());
            if in_flight.is_empty() || grace_left.is_zero() {
                break;
            }
            tokio::select! {
                Some(done) = in_flight.next() => {
                    keys_in_flight.remove(&W::done_key(&done));
                    finished.push(done);
                }
                () = tokio::time::sleep(grace_left) => {}
            }
            continue;
        }

        if in_flight.is_empty() && !maybe_due {
            // Idle: sleep until the next row is due, the bell rings, or the server stops.
            let sleep = match next_due(&work, &store).await {
                Ok(sleep) => sleep,
                Err(e) => {
                    tracing::error!(worker = name, error = %e, "cannot read when work is next due");
                    RETRY_AFTER_ERROR
                }
            };
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                () = bell.notified() => {}
                () = stop.cancelled() => stopping_since = Some(Instant::now()),
            }
            maybe_due = true;
            continue;
        }

        let flush_in = oldest_finished.map(|t| RECORD_AFTER.saturating_sub(t.elapsed()));
        tokio::select! {
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                keys_in_flight.remove(&W::done_key(&done));
                finished.push(done);
                oldest_finished.get_or_insert_with(Instant::now);
            }
            () = bell.notified(), if !maybe_due => maybe_due = true,
            // Retries come due by the clock, with no bell: look again now and then.
            () = tokio::time::sleep(LOOK_AGAIN), if !maybe_due => maybe_due = true,
            () = tokio::time::sleep(flush_in.unwrap_or(super::MAX_SLEEP)), if flush_in.is_some() => {}
            () = stop.cancelled() => stopping_since = Some(Instant::now()),
        }
    }

    // Whatever did not finish in the grace goes back, due at once.
    let unsent: Vec<String> = keys_in_flight.into_iter().collect();
    let count = unsent.len();
    if count > 0 {
        let outbox = work.outbox();
        let released = store
            .write(move |tx| Box::pin(async move { tx.release(outbox, &unsent).await }))
            .await;
        if let Err(e) = released {
            tracing::error!(worker = name, error = %e, "cannot give back unsent work; its leases will run out");
        }
    }
    count
}

/// Claims up to `room` due rows and loads them.
async fn claim<W: OutboxWork>(
    work: &Arc<W>,
    store: &Store,
    room: u32,
    lease: SignedDuration,
) -> Result<Vec<W::Item>, StoreError> {
    let outbox = work.outbox();
    let now = now();
    let keys = store
        .write(move |tx| {
            Box::pin(async move { tx.claim_due(outbox, now, now + lease, room).await })
        })
        .await?;
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    work.load(keys, now).await
}

/// How long until the next row is due (or a lease runs out).
async fn next_due<W: OutboxWork>(work: &Arc<W>, store: &Store) -> Result<Duration, StoreError> {
    let outbox = work.outbox();
    let next = store
        .read(move |conn| Box::pin(conn.outbox_next_at(outbox)))
        .await?;
    Ok(super::until(now(), next))
}
