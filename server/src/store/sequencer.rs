//! Sequencing after commit (PostgreSQL): how servers sharing a database keep each
//! project's audit chain one line without making every write wait for it.
//!
//! A write inserts its events into `audit_queue` with the rest of its rows, taking no lock
//! (see the writer): creates commit side by side, on every server, as fast as PostgreSQL
//! commits. The sequencer then puts queued events on their chains, in batches: under a
//! transaction-scoped advisory lock (so one batch at a time across every server), it reads
//! the oldest queued events, reads and locks their projects' heads, hashes each event onto
//! the one before, inserts them into `audit_events`, moves the heads and deletes them from
//! the queue, all in one transaction. This is how Certificate Transparency logs sequence
//! their entries.
//!
//! - Every server runs a sequencer. It is woken when its own writer commits events (a
//!   batch at most every [`BATCH_EVERY`], so that under load one batch takes many
//!   commits' events), at once when a reader waits for events, and once a second (for
//!   events another server committed and did not sequence before it died). A batch holds
//!   the lock only for its own few round trips, so no server owns the sequencing: if one
//!   dies mid-batch, PostgreSQL rolls its batch back and frees the lock, and the next
//!   server's batch takes the same events.
//! - Events are sequenced in queue order. A write that depends on another (the decision
//!   of a pause on its creation) starts after that one committed, so its events come later
//!   in the queue and on the chain.
//! - Audit reads show sequenced events only; before reading, they wait until every event
//!   of the project committed before they asked is sequenced ([`settle`]): an agent that
//!   cancels a pause and then reads the log sees the cancellation.
//! - The sequencer vacuums the queue itself ([`Sweeper`]): every row is deleted moments
//!   after it is inserted, and autovacuum looks at a database once a minute.
//! - The heads are locked as the inline chaining of older versions locks them, so a
//!   server of the version before this one, in a rolling deploy, takes turns with the
//!   sequencer instead of forking the chain.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::audit::{chained, Heads, PendingEvent};
use super::db::{args, Conn, OwnedArg, PgHandle, Row};
use super::notices::Notices;
use super::tx::Deferred;
use super::StoreError;
use crate::hub::Hub;
use crate::ids::{PauseId, ProjectId};
use pausepoint_api::audit::CanonicalData;

/// The most events sequenced in one transaction.
pub(super) const BATCH: u32 = 2_000;

/// The advisory lock every sequencer takes for a batch ("pp-audit" in ASCII).
pub const LOCK: i64 = 0x7070_2d61_7564_6974;

/// The channel a sequencer announces each batch on, for readers on other servers waiting
/// for events to be sequenced ([`settle`]). Its own, not the servers' channel of changes:
/// a server of the version before ignores it instead of warning of a notice it cannot
/// read.
pub(super) const SEQUENCED_CHANNEL: &str = "pausepoint_sequenced";

/// How often a sequencer looks at the queue without being woken.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Batches for writers' commits start at most this often. Under load a writer commits
/// every millisecond or two, and a batch per commit made the sequencer's transactions as
/// many as the writers': each with its lock, its round trips and its own flush of the
/// log, for a handful of events. Waiting this long gathers several commits' events into
/// one batch. A reader waiting for its events is not made to wait: it asks, and the
/// batch starts at once.
const BATCH_EVERY: Duration = Duration::from_millis(10);

/// How long a reader waits for events committed before it asked to be sequenced, before
/// it reads what is sequenced and says so in the log. Under any load a batch takes
/// milliseconds; this is for a database that stopped answering.
const SETTLE_AT_MOST: Duration = Duration::from_secs(10);

/// A sequencer vacuums the queue after deleting at least this many events from it…
const SWEEP_AFTER: usize = 1_000;
/// …and at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What a server's sequencer hears and says.
#[derive(Default)]
pub(super) struct Bells {
    /// Rung when this server's writers committed events: a batch within [`BATCH_EVERY`].
    pub committed: Notify,
    /// Rung when a reader waits for events to be sequenced: a batch at once.
    pub asked: Notify,
    /// Rung after each batch committed, by this server's sequencer or (through a notice)
    /// another's, for waiting readers.
    pub sequenced: Notify,
}

/// The statements that queue `events`: one row each, merged into one `INSERT … UNNEST`
/// by the writer.
pub(super) fn queue(events: &[PendingEvent]) -> Vec<Deferred> {
    events
        .iter()
        .map(|event| Deferred {
            sql: "INSERT INTO audit_queue \
                     (project_id, event_id, event, pause_id, actor, occurred_at, data, data_canonical) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                .into(),
            args: vec![
                OwnedArg::Text(Some(event.project_id.to_string())),
                OwnedArg::Text(Some(event.event_id.to_string())),
                OwnedArg::Text(Some(event.event.as_str().to_owned())),
                OwnedArg::Text(event.pause_id.map(|id| id.to_string())),
                OwnedArg::Text(Some(event.actor.clone())),
                OwnedArg::Int(Some(event.occurred_at.as_millisecond())),
                OwnedArg::Text(Some(event.data.as_str().to_owned())),
                OwnedArg::Int(Some(1)),
            ],
        })
        .collect()
}

/// Runs this server's sequencer until `stop`: a batch whenever a reader asks, one at most
/// every [`BATCH_EVERY`] while writers commit, and a look at the queue every second. On
/// stop, sequences what is left (this server's last writes, or a `pp admin` command's,
/// when no server runs). Each batch is told to the other servers through `notices`.
pub(super) async fn run(
    pool: PgPool,
    hub: Arc<Hub>,
    bells: Arc<Bells>,
    notices: Notices,
    stop: CancellationToken,
) {
    let mut measured: Option<Instant> = None;
    let mut kept = Kept::default();
    let mut last_batch: Option<Instant> = None;
    let mut sweeper = Sweeper::default();
    loop {
        if measured.is_none_or(|at| at.elapsed() >= LOOK_EVERY) {
            measure(&pool, &hub).await;
            measured = Some(Instant::now());
        }
        let woken = tokio::select! {
            () = bells.asked.notified() => true,
            () = bells.committed.notified() => {
                let wait = last_batch.map_or(Duration::ZERO, |at| BATCH_EVERY.saturating_sub(at.elapsed()));
                if !wait.is_zero() {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = bells.asked.notified() => {}
                        () = stop.cancelled() => {}
                    }
                }
                true
            }
            () = tokio::time::sleep(LOOK_EVERY) => false,
            () = stop.cancelled() => break,
        };
        let started = Instant::now();
        match drain(&pool, &mut kept, &bells, woken, &notices).await {
            Ok(0) => {}
            Ok(events) => {
                last_batch = Some(started);
                sweeper.deleted(events, &pool);
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not sequence audit events; trying again");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    () = stop.cancelled() => break,
                }
            }
        }
    }
    if let Err(e) = drain(&pool, &mut kept, &bells, false, &notices).await {
        tracing::warn!(error = %e, "audit events left queued at stop; the next server sequences them");
    }
    sweeper.finish().await;
}

/// The queue's own vacuum. Autovacuum visits a database once a minute
/// (`autovacuum_naptime`), whatever a table's thresholds: under load the queue, which
/// holds a few milliseconds' events, grew to 116 MB of dead rows between two visits,
/// each insert extending the table by new pages and each batch's read stepping over the
/// dead. Vacuumed every second instead, it stays a few hundred pages that PostgreSQL
/// keeps in memory and reuses: 15 % more creates/s at 16 connections, in runs of
/// `pp-bench --sections create` with and without a `VACUUM audit_queue` every second.
/// In a task of its own, so that batches do not wait for it; `SKIP_LOCKED` leaves the
/// table to a vacuum already running (autovacuum's, or another server's).
#[derive(Default)]
struct Sweeper {
    /// Events deleted from the queue since the last sweep began.
    deleted: usize,
    last: Option<Instant>,
    running: Option<JoinHandle<()>>,
}

impl Sweeper {
    /// Counts `events` deleted, and sweeps when there are enough and it is time.
    fn deleted(&mut self, events: usize, pool: &PgPool) {
        self.deleted += events;
        let due = self.deleted >= SWEEP_AFTER
            && self.last.is_none_or(|at| at.elapsed() >= SWEEP_EVERY)
            && self.running.as_ref().is_none_or(JoinHandle::is_finished);
        if !due {
            return;
        }
        self.deleted = 0;
        self.last = Some(Instant::now());
        let pool = pool.clone();
        self.running = Some(tokio::spawn(async move {
            let swept = async {
                let mut connection = pool.acquire().await?;
                sqlx::Executor::execute(&mut *connection, "VACUUM (SKIP_LOCKED) audit_queue").await
            };
            // Autovacuum still comes by: a sweep missed costs space and time, not data.
            if let Err(e) = swept.await {
                tracing::debug!(error = %e, "could not vacuum the audit queue");
            }
        }));
    }

    /// Waits for a sweep under way, so that it ends before the pool closes.
    async fn finish(self) {
        if let Some(sweep) = self.running {
            let _ = sweep.await;
        }
    }
}

/// Puts the queue's length and the age of its oldest event on `/metrics`, as the
/// `audit_queue` backlog: how far sequencing is behind, on every server.
async fn measure(pool: &PgPool, hub: &Hub) {
    let measured = async {
        let mut conn = Conn::Postgres(PgHandle::reading(pool.acquire().await?));
        conn.fetch_one(
            "audit_queue",
            // Counted up to a bound: the count is for a dashboard, not worth a long scan.
            "SELECT COUNT(*) AS queued, MIN(occurred_at) AS oldest \
             FROM (SELECT occurred_at FROM audit_queue LIMIT 100000) AS q",
            &[],
            |row| Ok((row.int("queued")?, row.opt_time("oldest")?)),
        )
        .await
    };
    let Ok((queued, oldest)) = measured.await else {
        return;
    };
    hub.metrics()
        .set_backlog("audit_queue", queued, oldest, Timestamp::now());
}

/// Sequences batches until the queue is empty; returns how many events. Unless `woken`,
/// first looks whether there is anything to do (one cheap read), so that an idle server's
/// look costs no lock.
async fn drain(
    pool: &PgPool,
    kept: &mut Kept,
    bells: &Bells,
    woken: bool,
    notices: &Notices,
) -> Result<usize, StoreError> {
    if !woken && !queued(pool).await? {
        return Ok(0);
    }
    let mut total = 0;
    loop {
        let sequenced = sequence_batch(pool, kept, notices).await?;
        total += sequenced;
        if sequenced > 0 {
            bells.sequenced.notify_waiters();
        }
        if sequenced < BATCH as usize {
            return Ok(total);
        }
    }
}

async fn queued(pool: &PgPool) -> Result<bool, StoreError> {
    let mut conn = Conn::Postgres(PgHandle::reading(pool.acquire().await?));
    let any = conn
        .fetch_optional(
            "audit_queue",
            "SELECT id FROM audit_queue LIMIT 1",
            &[],
            |row| row.int("id"),
        )
        .await?;
    Ok(any.is_some())
}

/// The connection a sequencer keeps between batches, as the writer keeps its own: a
/// batch then needs no check of a connection from the pool (a round trip) and finds its
/// statements prepared.
type Kept = Option<sqlx::pool::PoolConnection<sqlx::Postgres>>;

/// Puts up to [`BATCH`] queued events on their chains in one transaction, and tells the
/// other servers when it commits; returns how many. A batch that fails gives up its
/// connection.
async fn sequence_batch(
    pool: &PgPool,
    kept: &mut Kept,
    notices: &Notices,
) -> Result<usize, StoreError> {
    let connection = match kept.take() {
        Some(connection) => connection,
        None => pool.acquire().await?,
    };
    let mut conn = Conn::Postgres(PgHandle::writing(connection));
    let mut sequenced = sequence_on(&mut conn).await;
    if let Conn::Postgres(mut handle) = conn {
        let ended = handle.finish(sequenced.is_ok()).await;
        if let (Ok(_), Err(e)) = (&sequenced, ended) {
            sequenced = Err(e);
        }
        if let Ok(events) = sequenced {
            *kept = handle.into_inner();
            // After the commit, and only then: a reader woken by it finds the events
            // sequenced.
            if events > 0 {
                notices.sequenced();
            }
        }
    }
    sequenced
}

async fn sequence_on(conn: &mut Conn) -> Result<usize, StoreError> {
    // A batch that waits longer than this for another server's is given up and retried,
    // rather than hold a connection on a lock that something outside holds.
    // The lock is taken in a statement of its own: the read below must see the queue as
    // the batch before this one (on any server) left it, so its snapshot is taken after.
    // The batch's plans never scan a table whole: the queue's rows come and go by the
    // thousand between vacuums, and a plan made while it looked small scanned every dead
    // row of it on each delete (seen with `perf`: most of PostgreSQL's time under load).
    // So its statements can stay prepared, planned once (planning each batch's anew cost
    // about a tenth of its time, seen in `pg_stat_statements`), and generic: with a plan
    // for its actual rows, chosen when batches of one or two events made it look
    // cheaper, every batch was planned again.
    conn.execute(
        "SELECT set_config('lock_timeout', '5s', true), \
                set_config('enable_seqscan', 'off', true), \
                set_config('plan_cache_mode', 'force_generic_plan', true), \
                pg_advisory_xact_lock($1)",
        args![LOCK],
    )
    .await?;
    // The batch with its projects' heads, in one round trip. Only batches move the heads,
    // one at a time under the lock, so they need no row lock here; the UPDATE that moves
    // them takes one.
    let queued = conn
        .fetch_all(
            "audit_queue",
            "SELECT q.id, q.project_id, q.event_id, q.event, q.pause_id, q.actor, \
                    q.occurred_at, q.data, q.data_canonical, p.audit_seq, p.audit_head \
             FROM (SELECT * FROM audit_queue ORDER BY id LIMIT $1) q \
             LEFT JOIN projects p ON p.id = q.project_id \
             ORDER BY q.id",
            args![BATCH],
            |row| {
                let head = match row.opt_int("audit_seq")? {
                    Some(seq) => Some((seq, row.text("audit_head")?)),
                    None => None,
                };
                Ok((queued_from_row(row)?, head))
            },
        )
        .await?;
    if queued.is_empty() {
        return Ok(0);
    }
    let mut heads = Heads::new();
    let mut ids = Vec::with_capacity(queued.len());
    let mut events = Vec::with_capacity(queued.len());
    for ((id, event), head) in queued {
        // An event of a missing project finds no head: `chained` refuses the batch.
        if let Some(head) = head {
            heads.entry(event.project_id).or_insert(head);
        }
        ids.push(Some(id));
        events.push(event);
    }
    let mut statements = chained(heads, &events)?;
    statements.push(Deferred {
        sql: "DELETE FROM audit_queue WHERE id = ANY($1::int8[])".into(),
        args: vec![OwnedArg::Ints(ids)],
    });
    super::writer::send(conn, statements).await?;
    Ok(events.len())
}

fn queued_from_row(row: &dyn Row) -> Result<(i64, PendingEvent), StoreError> {
    let corrupt = |detail: String| StoreError::corrupt("audit_queue", detail);
    let text = row.text("data")?;
    let data = if row.int("data_canonical")? == 1 {
        CanonicalData::from_stored(text)
    } else {
        // Queued by a server of an earlier version, as serde_json writes it.
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| corrupt(format!("data: {e}")))?;
        CanonicalData::of(&value)
    };
    Ok((
        row.int("id")?,
        PendingEvent {
            project_id: ProjectId::from(row.uuid("project_id")?),
            event_id: row.uuid("event_id")?,
            event: row.text("event")?.parse().map_err(corrupt)?,
            pause_id: row.opt_uuid("pause_id")?.map(PauseId::from),
            actor: row.text("actor")?,
            occurred_at: row.time("occurred_at")?,
            data,
        },
    ))
}

/// Waits until every event of `project_id` committed before the call is on the chain,
/// waking this server's sequencer so that it takes them if no other has. It waits for the
/// events of every project committed before the call: batches take the queue in its
/// order, whatever the project, so the project's events are on their chain no sooner
/// than the others before them, and the queue needs no index by project. After
/// [`SETTLE_AT_MOST`] it gives up and says so: the read that follows shows what is
/// sequenced.
pub(super) async fn settle(
    pool: &PgPool,
    bells: &Bells,
    project_id: ProjectId,
) -> Result<(), StoreError> {
    let Some(target) = queue_end(pool, "MAX").await? else {
        return Ok(());
    };
    let started = Instant::now();
    // Short at first, in case the notice of another server's batch is missed.
    let mut pause = Duration::from_millis(1);
    loop {
        // Until a sequencer ends a batch (this server's, or another's through its notice),
        // or a while: a notice missed while the listener reconnects costs only time. No
        // connection is held while waiting: hundreds of long-polls woken by one decision
        // may wait here at once.
        let sequenced = bells.sequenced.notified();
        bells.asked.notify_one();
        tokio::select! {
            () = sequenced => {}
            () = tokio::time::sleep(pause) => pause = (pause * 2).min(Duration::from_millis(50)),
        }
        let oldest = queue_end(pool, "MIN").await?;
        if oldest.is_none_or(|oldest| oldest > target) {
            return Ok(());
        }
        if started.elapsed() >= SETTLE_AT_MOST {
            tracing::warn!(
                project_id = %project_id,
                "audit events committed {} s ago are not sequenced yet; reading what is",
                SETTLE_AT_MOST.as_secs()
            );
            return Ok(());
        }
    }
}

/// The first (`MIN`) or last (`MAX`) position of the queued events.
async fn queue_end(pool: &PgPool, end: &'static str) -> Result<Option<i64>, StoreError> {
    let mut conn = Conn::Postgres(PgHandle::reading(pool.acquire().await?));
    let sql = format!("SELECT {end}(id) AS id FROM audit_queue");
    conn.fetch_one("audit_queue", &sql, &[], |row| row.opt_int("id"))
        .await
}
