//! PostgreSQL, for several servers on one database. Each server's [`super::writer`]s run
//! group commits, each on a connection of its own, and its [`super::sequencer`] puts the
//! audit events they queued on their chains; reads use the pool. What other servers need to
//! hear of (a decision, a key change) goes to them with `NOTIFY`, sent once the
//! transaction that made it committed (see [`super::notices`]).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use std::sync::Mutex;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::db::{Conn, PgHandle};
use super::notices::Notices;
use super::tx::Tx;
use super::writer::{commit_group, Job, Message, MAX_GROUP};
use super::{sequencer, StoreError};
use crate::hub::{Change, Hub};
use crate::ids::ProjectId;

/// The channel on which servers tell each other what changed.
pub const NOTIFY_CHANNEL: &str = "pausepoint";
/// PostgreSQL refuses `NOTIFY` payloads from 8000 bytes on.
const MAX_PAYLOAD: usize = 7900;

/// What one commit tells the other servers.
#[derive(Serialize, Deserialize)]
struct Notice<C> {
    /// The server that made the changes; it has acted on them already.
    origin: Uuid,
    changes: C,
}

/// A notice's sender alone: a server reads its own notices this far, and no further.
#[derive(Deserialize)]
struct Sender {
    origin: Uuid,
}

/// A PostgreSQL database: its pool for reads, and this server's writer.
pub(super) struct Postgres {
    pub pool: PgPool,
    /// This server, as named in its notices.
    origin: Uuid,
    writer: mpsc::UnboundedSender<Message>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Wakes this server's sequencer.
    sequencer_bells: Arc<sequencer::Bells>,
    sequencer: Mutex<Option<(CancellationToken, JoinHandle<()>)>>,
    /// What this server tells the others, and the task that sends it.
    notices: Notices,
    notifier: Mutex<Option<JoinHandle<()>>>,
}

/// Writers per server. One: a second measured 5–10 % more creates/s at 16 connections,
/// within the bench's noise, for about 5 % more CPU each, even when it waited to gather
/// a group as large as the first's. Merged updates lock their rows in key order, and a
/// lone group that loses a deadlock runs again, but two groups of one server that read
/// inside their transactions could still deadlock each other and fail; one writer never
/// does.
const WRITERS: usize = 1;

impl Postgres {
    pub async fn connect(url: &str, hub: Arc<Hub>) -> Result<Postgres, StoreError> {
        // This server, as named in the notices it sends the others.
        let origin = Uuid::now_v7();
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        let (writer, queue) = mpsc::unbounded_channel();
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        let sequencer_bells = Arc::new(sequencer::Bells::default());
        let (notices, notifier) = Notices::start(pool.clone(), origin);
        let tasks = (0..WRITERS)
            .map(|_| {
                let (pool, queue, hub) = (pool.clone(), Arc::clone(&queue), Arc::clone(&hub));
                let bells = Arc::clone(&sequencer_bells);
                tokio::spawn(write_loop(pool, queue, hub, notices.clone(), bells))
            })
            .collect();
        let stop = CancellationToken::new();
        let sequencer = tokio::spawn(sequencer::run(
            pool.clone(),
            Arc::clone(&hub),
            Arc::clone(&sequencer_bells),
            notices.clone(),
            stop.clone(),
        ));
        Ok(Postgres {
            pool,
            origin,
            writer,
            tasks: Mutex::new(tasks),
            sequencer_bells,
            sequencer: Mutex::new(Some((stop, sequencer))),
            notices,
            notifier: Mutex::new(Some(notifier)),
        })
    }

    pub async fn read_conn(&self) -> Result<Conn, StoreError> {
        Ok(Conn::Postgres(PgHandle::reading(
            self.pool.acquire().await?,
        )))
    }

    /// Waits until the project's audit events committed so far are on its chain (see
    /// [`sequencer::settle`]).
    pub async fn settle(&self, project_id: ProjectId) -> Result<(), StoreError> {
        sequencer::settle(&self.pool, &self.sequencer_bells, project_id).await
    }

    /// Queues a write for this server's writer.
    pub fn submit(&self, job: Job) -> Result<(), StoreError> {
        self.writer
            .send(Message::Write(job))
            .map_err(|_| StoreError::Closed)
    }

    /// Hears what other servers changed and hands it to `hub`, and when their sequencers
    /// put events on the chains, until `stop`. A notice missed while reconnecting costs
    /// only time: waits run out and workers look at the database at least once a minute.
    pub async fn listen(&self, hub: Arc<Hub>, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let listening = async {
                let mut listener = PgListener::connect_with(&self.pool).await?;
                listener
                    .listen_all([NOTIFY_CHANNEL, sequencer::SEQUENCED_CHANNEL])
                    .await?;
                tracing::info!("listening for changes made on other servers");
                loop {
                    let notification = listener.recv().await?;
                    if notification.channel() == sequencer::SEQUENCED_CHANNEL {
                        if notification.payload() != self.origin.to_string() {
                            self.sequencer_bells.sequenced.notify_waiters();
                        }
                        continue;
                    }
                    let payload = notification.payload();
                    if serde_json::from_str::<Sender>(payload)
                        .is_ok_and(|sender| sender.origin == self.origin)
                    {
                        continue;
                    }
                    match serde_json::from_str::<Notice<Vec<Change>>>(payload) {
                        Ok(notice) => hub.publish(&notice.changes),
                        Err(e) => {
                            tracing::warn!(error = %e, "ignoring a notice this server cannot read")
                        }
                    }
                }
                #[allow(unreachable_code)]
                Ok::<(), sqlx::Error>(())
            };
            tokio::select! {
                result = listening => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "lost the PostgreSQL listener; reconnecting");
                    }
                }
                () = stop.cancelled() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stop.cancelled() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    /// Lets queued writes finish, stops the writer and closes every connection.
    pub async fn close(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for _ in &tasks {
            let _ = self.writer.send(Message::Stop);
        }
        for task in tasks {
            let _ = task.await;
        }
        // After the writers: the sequencer's last batch takes their last events.
        let sequencer = self
            .sequencer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some((stop, task)) = sequencer {
            stop.cancel();
            let _ = task.await;
        }
        // Last: the notices of the last groups and batch go out before the pool closes.
        let notifier = self
            .notifier
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = notifier {
            self.notices.stop();
            let _ = task.await;
        }
        self.pool.close().await;
    }
}

/// A writer: takes every write waiting in the shared queue, commits them together,
/// answers each. It keeps one connection from the pool while that connection is healthy.
async fn write_loop(
    pool: PgPool,
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Message>>>,
    hub: Arc<Hub>,
    notices: Notices,
    sequencer_bells: Arc<sequencer::Bells>,
) {
    let mut kept: Option<sqlx::pool::PoolConnection<sqlx::Postgres>> = None;
    let mut stopping = false;
    while !stopping {
        let mut jobs = Vec::new();
        {
            let mut queue = queue.lock().await;
            match queue.recv().await {
                Some(Message::Write(job)) => jobs.push(job),
                Some(Message::Stop) | None => break,
            }
            while jobs.len() < MAX_GROUP {
                match queue.try_recv() {
                    Ok(Message::Write(job)) => jobs.push(job),
                    Ok(Message::Stop) => {
                        stopping = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        let connection = match kept.take() {
            Some(connection) => connection,
            None => match writer_connection(&pool).await {
                Ok(connection) => connection,
                Err(e) => {
                    tracing::error!(error = %e, "the writer cannot reach PostgreSQL");
                    let error = StoreError::from(e);
                    for job in jobs {
                        (job.answer)(Err(StoreError::not_committed(&error)));
                    }
                    continue;
                }
            },
        };
        let mut tx = Tx::new(Conn::Postgres(PgHandle::writing(connection)));
        let committed = commit_group(&mut tx, jobs, &hub).await;
        if committed.audit {
            sequencer_bells.committed.notify_one();
        }
        notices.changed(committed.changes);
        if let Conn::Postgres(handle) = tx.into_conn() {
            kept = handle.into_inner();
        }
    }
    // Its session setting is the writer's alone: the connection does not go back to the
    // pool.
    if let Some(mut connection) = kept {
        connection.close_on_drop();
    }
}

/// A connection for the writer. Its statements never scan a table whole: they write and
/// read rows by key. A group's statement is planned once per connection and kept (its
/// generic plan, whatever the group's size: a plan for its actual rows, chosen when a
/// few rows made it look cheaper, was made again for every group), so a plan made while
/// the tables were small (PostgreSQL had not analyzed them yet) would stay: the merged
/// update of a group's deliveries was planned as a scan of every delivery, hashed
/// against the group's rows, and on a new database groups took 3.7 ms instead of 0.4 ms
/// within seconds (`pp-bench`, `pg_stat_statements`).
async fn writer_connection(
    pool: &PgPool,
) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, sqlx::Error> {
    let mut connection = pool.acquire().await?;
    if let Err(e) = sqlx::Executor::execute(
        &mut *connection,
        "SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan",
    )
    .await
    {
        connection.close_on_drop();
        return Err(e);
    }
    Ok(connection)
}

/// The notices that carry `changes`, each under PostgreSQL's payload limit. A notice's
/// length is known from its changes' own (`{"origin":…,"changes":[` and `]}` around them,
/// a comma between two), so each change is encoded once to measure and once in its notice.
pub(super) fn payloads(origin: Uuid, changes: &[Change]) -> Result<Vec<String>, StoreError> {
    let around = encode(origin, &[])?.len();
    let mut payloads = Vec::new();
    // The notice being filled holds changes[start..], and would be `length` long.
    let mut start = 0;
    let mut length = around;
    for (i, change) in changes.iter().enumerate() {
        let own = serde_json::to_string(change)
            .map_err(|e| StoreError::corrupt("notice", e))?
            .len();
        if i > start && length + 1 + own > MAX_PAYLOAD {
            payloads.push(encode(origin, &changes[start..i])?);
            start = i;
            length = around;
        }
        length += usize::from(i > start) + own;
    }
    if start < changes.len() {
        payloads.push(encode(origin, &changes[start..])?);
    }
    Ok(payloads)
}

fn encode(origin: Uuid, changes: &[Change]) -> Result<String, StoreError> {
    serde_json::to_string(&Notice { origin, changes }).map_err(|e| StoreError::corrupt("notice", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PauseId;

    #[test]
    fn many_changes_are_split_under_the_payload_limit() {
        let changes: Vec<Change> = (0..500)
            .map(|_| Change::PauseChanged {
                pause_id: PauseId::new(),
            })
            .collect();
        let origin = Uuid::now_v7();
        let notices = payloads(origin, &changes).unwrap();
        assert!(notices.len() > 1);
        let mut back = Vec::new();
        for payload in &notices {
            assert!(payload.len() <= MAX_PAYLOAD);
            let notice: Notice<Vec<Change>> = serde_json::from_str(payload).unwrap();
            let sender: Sender = serde_json::from_str(payload).unwrap();
            assert_eq!((notice.origin, sender.origin), (origin, origin));
            back.extend(notice.changes);
        }
        assert_eq!(back, changes);
        // Each notice but the last is full: the next change would not have fitted.
        let one = serde_json::to_string(&changes[0]).unwrap().len();
        for payload in &notices[..notices.len() - 1] {
            assert!(payload.len() + 1 + one > MAX_PAYLOAD, "{}", payload.len());
        }
        assert_eq!(payloads(origin, &changes[..1]).unwrap().len(), 1);
        assert!(payloads(origin, &[]).unwrap().is_empty());
    }
}
