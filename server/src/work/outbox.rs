//! The loop of a worker over an outbox (deliveries, webhook events): a pipeline that keeps
//! up to `concurrency` sends in flight, claims new rows as sends finish (so one slow
//! receiver does not hold up the rest), takes rows handed over at their creation with no
//! claim (a new pause's first notices), and records finished sends in batches, one
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

use super::handover::{Handed, Handover};
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
    /// Where rows come already leased to this server, at their creation, with what
    /// sending them needs (see [`super::handover`]); none by default.
    fn handover(&self) -> Option<&Handover> {
        None
    }
    /// Rung when something waits for the records of sends that finished: they are
    /// written at once rather than in the batch's time; none by default.
    fn flush(&self) -> Option<&Notify> {
        None
    }
    /// Handed-over rows, ready to send.
    fn adopt(
        &self,
        handed: Vec<Handed>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<Self::Item>, StoreError>> + Send {
        let _ = (handed, now);
        async { Ok(Vec::new()) }
    }
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

/// The time, as the pipeline reads it (injected in tests).
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The clock on the wall.
pub fn system_clock() -> Clock {
    Arc::new(now)
}

/// How the pipeline runs.
#[derive(Clone)]
pub struct Settings {
    /// Sends in flight at once.
    pub concurrency: usize,
    /// How long a claim holds a row: more than one send can take.
    pub lease: Duration,
    /// How long sends in flight may finish after the server is told to stop.
    pub grace: Duration,
    /// What "now" is when rows are claimed and measured.
    pub clock: Clock,
}

/// Finished sends are recorded when this many wait, or when the oldest has waited this long.
const RECORD_BATCH: usize = 256;
const RECORD_AFTER: Duration = Duration::from_millis(10);
/// While new rows trickle in, claims come at most this often (each claim is a write).
const CLAIM_EVERY: Duration = Duration::from_millis(5);
/// How often the pipeline measures its backlog for `/metrics`.
const MEASURE_EVERY: Duration = Duration::from_secs(1);
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
    let mut measured: Option<Instant> = None;
    let handover = work.handover();
    let flush = work.flush();
    let mut flush_asked = false;
    if let Some(handover) = handover {
        handover.open(lease);
    }

    loop {
        if measured.is_none_or(|at| at.elapsed() >= MEASURE_EVERY) {
            measure(&work, &store, (settings.clock)()).await;
            measured = Some(Instant::now());
        }
        // Rows handed over at their creation need no claim: take them whenever there is
        // room. While claimable rows may wait, only up to half the room, so that a claim
        // gets its turn (see below).
        if let Some(handover) = handover.filter(|_| stopping_since.is_none()) {
            let now = (settings.clock)();
            let limit = match maybe_due {
                true => settings.concurrency / 2,
                false => settings.concurrency,
            };
            let handed = handover.take(limit.saturating_sub(in_flight.len()), now);
            if !handed.is_empty() {
                match work.adopt(handed, now).await {
                    Ok(items) => {
                        for item in items {
                            keys_in_flight.insert(W::key(&item));
                            in_flight.push(work.send(item));
                        }
                    }
                    // Their leases run out, and a claim takes them.
                    Err(e) => {
                        tracing::error!(worker = name, error = %e, "cannot take handed-over work")
                    }
                }
            }
        }
        // Take new work while rows may be due and half the room is free: a claim is a
        // write, and claiming a row or two each time one send finishes would make the
        // claims, not the sends, the limit.
        if stopping_since.is_none() && maybe_due && in_flight.len() <= settings.concurrency / 2 {
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
            match claim(&work, &store, room, lease, (settings.clock)()).await {
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

        // While claimable rows wait, creates write theirs for a claim too, and they queue
        // behind the waiting ones in the order they came due (see `super::handover`).
        if let Some(handover) = handover {
            handover.accept(!maybe_due && stopping_since.is_none());
        }

        // Record what finished, in batches: even when nothing else is in flight, since a
        // record is a write (and its audit events a pass of the sequencer), and new pauses
        // coming one at a time would each pay for one of their own. An answer that waits
        // for a record asks for it at once (see `super::unrecorded`).
        let record_now = !finished.is_empty()
            && (finished.len() >= RECORD_BATCH
                || flush_asked
                || oldest_finished.is_some_and(|t| t.elapsed() >= RECORD_AFTER)
                || stopping_since.is_some());
        if record_now {
            let batch = std::mem::take(&mut finished);
            flush_asked = false;
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

        if in_flight.is_empty() && !maybe_due && finished.is_empty() {
            // Idle: sleep until the next row is due, the bell rings, or the server stops.
            let sleep = match next_due(&work, &store, (settings.clock)()).await {
                Ok(sleep) => sleep,
                Err(e) => {
                    tracing::error!(worker = name, error = %e, "cannot read when work is next due");
                    RETRY_AFTER_ERROR
                }
            };
            tokio::select! {
                biased;
                () = stop.cancelled() => stopping_since = Some(Instant::now()),
                () = bell.notified() => maybe_due = true,
                // Handed-over rows are taken at the top of the loop, with no claim.
                () = rung(handover) => {}
                () = tokio::time::sleep(sleep.min(MEASURE_EVERY)) => maybe_due = true,
            }
            continue;
        }

        let flush_in = oldest_finished.map(|t| RECORD_AFTER.saturating_sub(t.elapsed()));
        tokio::select! {
            // A stop is seen first, however busy the pipeline is.
            biased;
            () = stop.cancelled() => stopping_since = Some(Instant::now()),
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                keys_in_flight.remove(&W::done_key(&done));
                finished.push(done);
                oldest_finished.get_or_insert_with(Instant::now);
            }
            () = bell.notified(), if !maybe_due => maybe_due = true,
            () = rung(handover), if in_flight.len() < settings.concurrency => {}
            // Retries come due by the clock, with no bell: look again now and then.
            () = tokio::time::sleep(LOOK_AGAIN), if !maybe_due => maybe_due = true,
            () = tokio::time::sleep(flush_in.unwrap_or(super::MAX_SLEEP)), if flush_in.is_some() => {}
            () = asked_to_flush(flush), if !finished.is_empty() => flush_asked = true,
        }
    }

    // Whatever did not finish in the grace goes back, due at once, with whatever was
    // handed over and not taken.
    let mut unsent: Vec<String> = keys_in_flight.into_iter().collect();
    if let Some(handover) = handover {
        unsent.extend(handover.close().iter().map(|h| h.key.to_string()));
    }
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

/// Waits for a request to record now, or forever when the work takes none.
async fn asked_to_flush(flush: Option<&Notify>) {
    match flush {
        Some(flush) => flush.notified().await,
        None => std::future::pending().await,
    }
}

/// Waits for rows to be handed over, or forever when the work has no handover.
async fn rung(handover: Option<&Handover>) {
    match handover {
        Some(handover) => handover.bell().notified().await,
        None => std::future::pending().await,
    }
}

/// Claims up to `room` due rows and loads them.
async fn claim<W: OutboxWork>(
    work: &Arc<W>,
    store: &Store,
    room: u32,
    lease: SignedDuration,
    now: Timestamp,
) -> Result<Vec<W::Item>, StoreError> {
    let outbox = work.outbox();
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
async fn next_due<W: OutboxWork>(
    work: &Arc<W>,
    store: &Store,
    now: Timestamp,
) -> Result<Duration, StoreError> {
    let outbox = work.outbox();
    let next = store
        .read(move |conn| Box::pin(conn.outbox_next_at(outbox)))
        .await?;
    Ok(super::until(now, next))
}

/// Sets the backlog gauges of the queue: what waits to be sent (rows due and not taken,
/// and the notices handed over to this server and not sent yet), and the oldest's age.
async fn measure<W: OutboxWork>(work: &Arc<W>, store: &Store, now: Timestamp) {
    let outbox = work.outbox();
    let backlog = store
        .read(move |conn| Box::pin(conn.backlog(outbox, now)))
        .await;
    let Ok(backlog) = backlog else { return };
    let (handed, handed_since) = work.handover().map_or((0, None), Handover::waiting);
    let oldest = match (backlog.oldest, handed_since) {
        (Some(due), Some(handed)) => Some(due.min(handed)),
        (due, handed) => due.or(handed),
    };
    let waiting = backlog
        .due
        .saturating_add(i64::try_from(handed).unwrap_or(i64::MAX));
    store
        .hub()
        .metrics()
        .set_backlog(outbox.name(), waiting, oldest, now);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashSet;

    use pausepoint_api::{CreatePause, NewPause};
    use serde_json::json;
    use tokio::sync::mpsc;

    use super::*;
    use crate::domain::keys;
    use crate::domain::pauses::Pauses;
    use crate::store::deliveries::{DeliveryKey, DeliveryState};
    use crate::store::outbox::{Backlog, DELIVERIES};
    use crate::store::Actor;

    /// Sends that finish at once for the keys in `finish`, and never for the others.
    struct Gated {
        store: Store,
        finish: HashSet<String>,
        started: mpsc::UnboundedSender<String>,
        now: Timestamp,
        /// Whether it takes rows handed over at their creation.
        handover: bool,
    }

    impl OutboxWork for Gated {
        type Item = String;
        type Done = String;

        fn outbox(&self) -> Outbox {
            DELIVERIES
        }

        async fn load(&self, keys: Vec<String>, _: Timestamp) -> Result<Vec<String>, StoreError> {
            Ok(keys)
        }

        fn handover(&self) -> Option<&Handover> {
            self.handover.then(|| self.store.hub().handover())
        }

        async fn adopt(
            &self,
            handed: Vec<Handed>,
            _: Timestamp,
        ) -> Result<Vec<String>, StoreError> {
            Ok(handed.iter().map(|h| h.key.to_string()).collect())
        }

        fn key(item: &String) -> String {
            item.clone()
        }

        fn send(self: &Arc<Self>, item: String) -> impl Future<Output = String> + Send + 'static {
            let finishes = self.finish.contains(&item);
            let started = self.started.clone();
            async move {
                started.send(item.clone()).unwrap();
                if !finishes {
                    std::future::pending::<()>().await;
                }
                item
            }
        }

        async fn record(&self, done: Vec<String>) -> Result<(), StoreError> {
            let now = self.now;
            self.store
                .write(move |tx| {
                    Box::pin(async move {
                        for key in done {
                            let key: DeliveryKey = key.parse().unwrap();
                            tx.record_delivery_attempt(
                                key,
                                1,
                                DeliveryState::Sent,
                                None,
                                None,
                                now,
                            );
                        }
                        Ok::<_, StoreError>(())
                    })
                })
                .await
        }

        fn done_key(done: &String) -> String {
            done.clone()
        }
    }

    async fn backlog(store: &Store, now: Timestamp) -> Backlog {
        store
            .read(move |conn| Box::pin(conn.backlog(DELIVERIES, now)))
            .await
            .unwrap()
    }

    async fn statuses(store: &Store) -> Vec<(String, String, Option<i64>)> {
        store
            .read(|conn| {
                Box::pin(conn.fetch_all(
                    "deliveries",
                    "SELECT id, status, lease_until FROM deliveries ORDER BY id",
                    &[],
                    |row| {
                        Ok((
                            row.text("id")?,
                            row.text("status")?,
                            row.opt_int("lease_until")?,
                        ))
                    },
                ))
            })
            .await
            .unwrap()
    }

    /// A new SQLite store in its own directory (kept as long as the store is used), with
    /// a project whose key was made at `now`.
    async fn store_with_project(
        now: Timestamp,
    ) -> (tempfile::TempDir, Store, crate::ids::ProjectId) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db").display().to_string(), None)
            .await
            .unwrap();
        let key = keys::create_key(&store, "default", "test", Actor::System, now)
            .await
            .unwrap();
        (dir, store, key.record.project_id)
    }

    /// Creates an SMS pause; returns the key of its first notice.
    async fn create_sms(pauses: &Pauses, project_id: crate::ids::ProjectId, n: usize) -> String {
        let request: CreatePause = serde_json::from_value(json!({
            "recipient": "+15550100", "channel": "sms",
            "message": format!("Deploy {n}?"), "options": ["Yes", "No"]
        }))
        .unwrap();
        let pause = NewPause::parse(request, Duration::from_secs(86_400)).unwrap();
        let created = pauses
            .create(project_id, Actor::System, pause, None)
            .await
            .unwrap();
        format!("{}:0:0", created.pause.pause_id)
    }

    /// Runs the pipeline of `work` until the returned token is cancelled.
    fn start(
        work: Arc<Gated>,
        store: &Store,
        settings: Settings,
    ) -> (CancellationToken, tokio::task::JoinHandle<usize>) {
        let stop = CancellationToken::new();
        let pipeline = tokio::spawn({
            let (store, stop) = (store.clone(), stop.clone());
            async move { run(work, store, &Notify::new(), settings, stop).await }
        });
        (stop, pipeline)
    }

    /// A pipeline with room for `concurrency` sends, which never finish, taking handed-over
    /// notices; with the keys of the sends as they start.
    fn start_hanging(
        store: &Store,
        concurrency: usize,
    ) -> (
        mpsc::UnboundedReceiver<String>,
        CancellationToken,
        tokio::task::JoinHandle<usize>,
    ) {
        let (started, starts) = mpsc::unbounded_channel();
        let work = Arc::new(Gated {
            store: store.clone(),
            finish: HashSet::new(),
            started,
            now: now(),
            handover: true,
        });
        let settings = Settings {
            concurrency,
            lease: Duration::from_secs(3600),
            grace: Duration::from_millis(50),
            clock: system_clock(),
        };
        let (stop, pipeline) = start(work, store, settings);
        (starts, stop, pipeline)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stop_mid_batch_records_what_finished_and_gives_the_rest_back_due_at_once() {
        let now = Timestamp::from_second(1_900_000_000).unwrap();
        let (_dir, store, project_id) = store_with_project(now).await;
        let pauses = Pauses::new(store.clone());
        let mut ids = Vec::new();
        for n in 0..10 {
            ids.push(create_sms(&pauses, project_id, n).await);
        }
        // The clock stands still a minute after the creates: every row is due.
        let clock_now = now_plus(60);
        assert_eq!(backlog(&store, clock_now).await.due, 10);

        let finish: HashSet<String> = ids.iter().take(4).cloned().collect();
        let (started, mut starts) = mpsc::unbounded_channel();
        let work = Arc::new(Gated {
            store: store.clone(),
            finish: finish.clone(),
            started,
            now: clock_now,
            handover: false,
        });
        let settings = Settings {
            concurrency: 64,
            lease: Duration::from_secs(3600),
            grace: Duration::from_millis(50),
            clock: Arc::new(move || clock_now),
        };
        let (stop, pipeline) = start(work, &store, settings);
        // Stop once every row is in flight: four finished, six hang.
        let mut seen = HashSet::new();
        while seen.len() < 10 {
            seen.insert(
                tokio::time::timeout(Duration::from_secs(10), starts.recv())
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        stop.cancel();
        let given_back = tokio::time::timeout(Duration::from_secs(10), pipeline)
            .await
            .expect("the pipeline stops within its grace")
            .unwrap();
        assert_eq!(given_back, 6);

        // What finished is recorded; the rest is pending, held by nobody, due now rather
        // than when its hour-long lease would have run out.
        for (id, status, lease) in statuses(&store).await {
            if finish.contains(&id) {
                assert_eq!(status, "sent", "{id}");
            } else {
                assert_eq!((status.as_str(), lease), ("pending", None), "{id}");
            }
        }
        let left = backlog(&store, clock_now).await;
        assert_eq!((left.due, left.queued), (6, 6));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn new_pauses_are_handed_over_with_no_claim_and_a_stop_gives_back_what_was_not_sent() {
        let (_dir, store, project_id) = store_with_project(now()).await;
        // Two sends at once, and none finishes: the third notice on waits in the handover.
        let (mut starts, stop, pipeline) = start_hanging(&store, 2);
        // The pipeline opens the handover as it starts.
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.hub().handover().lease_until(now()).is_none() {
            assert!(Instant::now() < deadline, "the handover never opened");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let pauses = Pauses::new(store.clone());
        let mut ids = HashSet::new();
        for n in 0..5 {
            ids.insert(create_sms(&pauses, project_id, n).await);
        }
        let mut seen = HashSet::new();
        while seen.len() < 2 {
            let started = tokio::time::timeout(Duration::from_secs(10), starts.recv())
                .await
                .unwrap()
                .unwrap();
            assert!(
                ids.contains(&started),
                "{started} is not a new pause's notice"
            );
            seen.insert(started);
        }
        // Every notice is leased to this server as it was written: no claim can take one,
        // here or on another server.
        let written = backlog(&store, now()).await;
        assert_eq!((written.due, written.queued), (0, 5));
        for (id, status, lease) in statuses(&store).await {
            assert_eq!(
                (status.as_str(), lease.is_some()),
                ("pending", true),
                "{id}"
            );
        }

        stop.cancel();
        let given_back = tokio::time::timeout(Duration::from_secs(10), pipeline)
            .await
            .expect("the pipeline stops within its grace")
            .unwrap();
        // The two in flight and the three never taken go back, due at once.
        assert_eq!(given_back, 5);
        for (id, status, lease) in statuses(&store).await {
            assert_eq!((status.as_str(), lease), ("pending", None), "{id}");
        }
        assert_eq!(backlog(&store, now()).await.due, 5);
        // A create after the stop leaves its notice for a claim.
        assert_eq!(store.hub().handover().lease_until(now()), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn while_notices_wait_for_a_claim_new_ones_queue_behind_them() {
        let (_dir, store, project_id) = store_with_project(now()).await;
        let pauses = Pauses::new(store.clone());
        // Three notices written while no worker runs: due, for a claim.
        let mut waiting = HashSet::new();
        for n in 0..3 {
            waiting.insert(create_sms(&pauses, project_id, n).await);
        }
        // A worker with room for two, whose sends never finish, claims two of them: a
        // full claim, so more may wait.
        let (mut starts, stop, pipeline) = start_hanging(&store, 2);
        for _ in 0..2 {
            let started = tokio::time::timeout(Duration::from_secs(10), starts.recv())
                .await
                .unwrap()
                .unwrap();
            assert!(waiting.remove(&started), "{started} was not waiting");
        }
        // A pause created now is not handed over: its notice goes behind the one still
        // waiting, for a claim, rather than overtake it.
        let late = create_sms(&pauses, project_id, 3).await;
        for (id, status, lease) in statuses(&store).await {
            if waiting.contains(&id) || id == late {
                assert_eq!((status.as_str(), lease), ("pending", None), "{id}");
            }
        }
        assert_eq!(backlog(&store, now()).await.due, 2);
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), pipeline)
            .await
            .expect("the pipeline stops within its grace")
            .unwrap();
    }

    #[tokio::test]
    async fn the_next_row_due_is_read_past_the_held_ones_and_none_once_all_are_sent() {
        let (_dir, store, project_id) = store_with_project(now()).await;
        let pauses = Pauses::new(store.clone());
        for n in 0..3 {
            create_sms(&pauses, project_id, n).await;
        }
        assert!(next_at(&store).await.unwrap() <= now());
        // Two held for an hour: the third is due, and held by nobody.
        let (mut keys, first_lease) = claim(&store, 2, 3600).await;
        assert_eq!(keys.len(), 2);
        assert!(next_at(&store).await.unwrap() <= now());
        // All three held: the next is when the first lease runs out.
        keys.extend(claim(&store, 1, 7200).await.0);
        assert_eq!(next_at(&store).await, Some(first_lease));
        // All three sent: nothing is due, ever.
        let at = now();
        store
            .write(move |tx| {
                Box::pin(async move {
                    for key in keys {
                        let key: DeliveryKey = key.parse().unwrap();
                        tx.record_delivery_attempt(key, 1, DeliveryState::Sent, None, None, at);
                    }
                    Ok::<_, StoreError>(())
                })
            })
            .await
            .unwrap();
        assert_eq!(next_at(&store).await, None);
    }

    #[tokio::test]
    async fn the_next_row_due_is_the_first_lease_to_end_when_more_are_held_than_read_first() {
        let (_dir, store, project_id) = store_with_project(now()).await;
        let pauses = Pauses::new(store.clone());
        for n in 0..40 {
            create_sms(&pauses, project_id, n).await;
        }
        let (claimed, lease) = claim(&store, 40, 3600).await;
        assert_eq!(claimed.len(), 40);
        // Not the due time of a held row (the worker would wake, claim nothing and read
        // again at once): when the leases run out.
        assert_eq!(next_at(&store).await, Some(lease));
    }

    /// When the next delivery is due, as the worker reads it.
    async fn next_at(store: &Store) -> Option<Timestamp> {
        store
            .read(|conn| Box::pin(conn.outbox_next_at(DELIVERIES)))
            .await
            .unwrap()
    }

    /// Claims up to `limit` due deliveries for `seconds`; their keys, and the lease's end.
    async fn claim(store: &Store, limit: u32, seconds: i64) -> (Vec<String>, Timestamp) {
        let lease = Timestamp::from_second(now().as_second() + seconds).unwrap();
        let claimed = store
            .write(move |tx| {
                Box::pin(async move { tx.claim_due(DELIVERIES, now(), lease, limit).await })
            })
            .await
            .unwrap();
        (claimed, lease)
    }

    fn now_plus(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_900_000_000 + seconds).unwrap()
    }
}
