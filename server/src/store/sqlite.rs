//! SQLite: one writer, many readers.
//!
//! A single thread owns the write connection and runs the [`super::writer`]'s group
//! commits on it: one fsync for many requests. `synchronous=FULL` stays: every
//! acknowledged write survives a crash or a power cut. Reads run on a small pool of their
//! own connections, beside the writer (WAL).
//!
//! The store's statements are `async` so that they are written once for both databases;
//! on SQLite they never wait for anything, so this module runs them to completion in one
//! poll, on the thread that owns the connection.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use super::db::Conn;
use super::tx::Tx;
use super::writer::{commit_group, Job, Message, MAX_GROUP};
use super::StoreError;
use crate::hub::Hub;

/// Read connections open at once.
const READERS: usize = 8;
/// How long a statement waits for a lock held by another process (`pp admin`).
const BUSY_TIMEOUT_MS: u32 = 10_000;

/// A read as a reader thread runs it.
pub(super) type ReadJob<T> =
    Box<dyn for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, StoreError>> + Send>;

/// A SQLite database file: its writer thread and its readers.
pub(super) struct Sqlite {
    path: PathBuf,
    writer: mpsc::Sender<Message>,
    thread: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
    read_permits: Semaphore,
}

impl Sqlite {
    /// Opens `path` (made owner-only when new) and starts its writer thread.
    pub fn open(path: &Path, hub: Arc<Hub>) -> Result<Sqlite, StoreError> {
        let connection = open_connection(path)?;
        // WAL lets readers run beside the writer.
        connection.pragma_update(None, "journal_mode", "WAL")?;
        let (writer, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("pausepoint-writer".into())
            .spawn(move || write_loop(connection, &queue, &hub))
            .map_err(|e| StoreError::Io(format!("cannot start the writer thread: {e}")))?;
        Ok(Sqlite {
            path: path.to_owned(),
            writer,
            thread: Mutex::new(Some(thread)),
            readers: Mutex::new(Vec::new()),
            read_permits: Semaphore::new(READERS),
        })
    }

    /// Queues a write; the answer comes through the job's own channel after the commit.
    pub fn submit(&self, job: Job) -> Result<(), StoreError> {
        self.writer
            .send(Message::Write(job))
            .map_err(|_| StoreError::Closed)
    }

    /// Runs a read on a reader connection, off the async threads.
    pub async fn read<T: Send + 'static>(&self, job: ReadJob<T>) -> Result<T, StoreError> {
        let _permit = self
            .read_permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let idle = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let connection = match idle {
            Some(connection) => connection,
            None => open_connection(&self.path)?,
        };
        let (connection, result) = tokio::task::spawn_blocking(move || {
            let mut conn = Conn::Sqlite(connection);
            let result = run_now(job(&mut conn)).unwrap_or_else(|| Err(waited()));
            let Conn::Sqlite(connection) = conn else {
                unreachable!("a SQLite read holds a SQLite connection")
            };
            (connection, result)
        })
        .await
        .map_err(|e| StoreError::Io(format!("a read task failed: {e}")))?;
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(connection);
        result
    }

    /// Lets queued writes finish, stops the writer and closes every connection.
    pub fn close(&self) {
        let _ = self.writer.send(Message::Stop);
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // FULL makes every acknowledged commit survive a crash or a power cut.
    connection.execute_batch(&format!(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};"
    ))?;
    connection.set_prepared_statement_cache_capacity(128);
    Ok(connection)
}

/// Polls a store future once. Statements on SQLite complete synchronously, so a future
/// that is not ready after one poll waited on something outside the database.
fn run_now<T>(future: BoxFuture<'_, T>) -> Option<T> {
    future.now_or_never()
}

fn waited() -> StoreError {
    StoreError::Io("a SQLite statement waited on something outside the database".into())
}

/// The writer thread: takes every write waiting, commits them together, answers each.
fn write_loop(connection: Connection, queue: &mpsc::Receiver<Message>, hub: &Hub) {
    let mut tx = Tx::new(Conn::Sqlite(connection));
    let mut stopping = false;
    while !stopping {
        let mut jobs = match queue.recv() {
            Ok(Message::Write(job)) => vec![job],
            Ok(Message::Stop) | Err(_) => break,
        };
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
        if run_now(Box::pin(commit_group(&mut tx, jobs, hub))).is_none() {
            // Dropping the group dropped its answers: each caller learns it failed.
            tracing::error!("a write waited on something outside the database");
            tx.discard();
            let _ = tx.conn_mut().sqlite_batch("ROLLBACK");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::super::db::args;
    use super::super::{Store, StoreError};
    use crate::hub::Change;
    use crate::ids::PauseId;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db").display().to_string(), None)
            .await
            .unwrap();
        store
            .write(|tx| {
                Box::pin(async move {
                    tx.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)", &[])
                        .await
                })
            })
            .await
            .unwrap();
        (dir, store)
    }

    async fn values(store: &Store) -> Vec<String> {
        store
            .read(|conn| {
                Box::pin(async move {
                    conn.fetch_all("t", "SELECT v FROM t ORDER BY id", &[], |row| row.text("v"))
                        .await
                })
            })
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_write_in_a_group_fails_alone() {
        let (_dir, store) = store().await;
        // The first write holds the writer, so the ones after it queue and commit together.
        let holder = store.clone();
        let first = tokio::spawn(async move {
            holder
                .write(|tx| {
                    Box::pin(async move {
                        std::thread::sleep(Duration::from_millis(300));
                        tx.execute("INSERT INTO t (v) VALUES ('first')", &[]).await
                    })
                })
                .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut writes = Vec::new();
        for i in 0..20 {
            let store = store.clone();
            writes.push(tokio::spawn(async move {
                store
                    .write(move |tx| {
                        Box::pin(async move {
                            let v = format!("w{i}");
                            tx.execute("INSERT INTO t (v) VALUES ($1)", args![&v])
                                .await?;
                            tx.announce(Change::PauseChanged {
                                pause_id: PauseId::new(),
                            });
                            if i % 5 == 0 {
                                // Written, then refused: nothing of it may remain.
                                return Err(StoreError::Io(format!("refused {i}")));
                            }
                            Ok(i)
                        })
                    })
                    .await
            }));
        }
        first.await.unwrap().unwrap();
        let mut refused = Vec::new();
        for write in writes {
            match write.await.unwrap() {
                Ok(_) => {}
                Err(StoreError::Io(message)) => refused.push(message),
                Err(e) => panic!("unexpected: {e}"),
            }
        }
        assert_eq!(
            refused,
            ["refused 0", "refused 5", "refused 10", "refused 15"]
        );
        // The writes queued in whatever order their tasks ran.
        let mut kept = values(&store).await;
        kept.sort();
        let mut expected: Vec<String> = std::iter::once("first".to_owned())
            .chain((0..20).filter(|i| i % 5 != 0).map(|i| format!("w{i}")))
            .collect();
        expected.sort();
        assert_eq!(kept, expected);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_is_answered_only_after_its_commit() {
        let (dir, store) = store().await;
        store
            .write(|tx| {
                Box::pin(async move {
                    tx.execute("INSERT INTO t (v) VALUES ('durable')", &[])
                        .await
                })
            })
            .await
            .unwrap();
        // Another connection, as another process would open the file, sees it at once.
        let other = rusqlite::Connection::open(dir.path().join("t.db")).unwrap();
        let seen: String = other
            .query_row("SELECT v FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(seen, "durable");
        store.close().await;
    }
}
