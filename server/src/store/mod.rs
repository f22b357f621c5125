//! Storage: one [`Store`] over SQLite (the default) or PostgreSQL (for several servers),
//! chosen by the URL scheme. SQL is written once with `$1…` placeholders (see [`db`]),
//! using only portable column types: UUID text, integer milliseconds, JSON text.
//!
//! Every read is [`Store::read`] and every change is [`Store::write`], a closure given a
//! [`Tx`]: each server's one writer commits many of them together (a thread on SQLite, a
//! task on PostgreSQL). After the commit the changes go to the [`crate::hub`].
//!
//! - [`db`]: running a statement on either database.
//! - [`tx`]: the transaction type every write goes through.
//! - [`writer`]: the group commit that runs every write.
//! - [`sqlite`], [`postgres`]: the two databases.
//! - [`projects`]: tenants, their limits and the head of their audit chain.
//! - [`keys`]: API keys, stored as SHA-256 hashes only.
//! - [`pauses`]: pause rows and their one-way status change.
//! - [`audit`]: the append-only, hash-chained audit log.
//! - [`sequencer`]: on PostgreSQL, puts committed events on their chains after the commit.
//! - [`approvers`]: who is asked to decide a pause, and their votes.
//! - [`deliveries`]: the durable notifications of each approver.
//! - [`outbox`]: how workers claim rows of work (deliveries, webhook events).
//! - [`webhooks`]: webhook events, their attempts, and each project's signing secrets.
//! - [`proof`]: the keys that sign checkpoints and receipts, and the reads proofs need.
//! - [`sessions`]: the console's sign-ins, stored as hashes of their tokens.
//! - [`activity`]: what the console's charts count.
//! - [`settings`]: server-wide values such as the link-signing key.

pub mod activity;
pub mod approvers;
pub mod audit;
pub mod db;
pub mod deliveries;
pub mod keys;
mod notices;
pub mod outbox;
pub mod pauses;
pub mod postgres;
pub mod projects;
pub mod proof;
pub mod rules;
mod sequencer;
pub mod sessions;
pub mod settings;
pub mod sqlite;
pub mod tx;
pub mod webhooks;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use sqlx::{ConnectOptions, Connection};
use tokio::sync::oneshot;

use crate::hub::Hub;
use crate::ids::ProjectId;
use crate::secrets::MasterKey;
pub use audit::Actor;
pub use db::Conn;
/// The PostgreSQL advisory lock a sequencer holds for a batch.
pub use sequencer::LOCK as AUDIT_SEQUENCER_LOCK;
pub use tx::Tx;

/// What went wrong below the domain: the database, or a row it holds that makes no sense.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("could not apply the database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use a file path, sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
    #[error("the write was not committed: {reason}")]
    NotCommitted {
        reason: String,
        /// Whether the group failed for a reason that passes ([`StoreError::is_transient`]).
        transient: bool,
    },
    #[error("{0}")]
    Io(String),
    #[error("the database is closed")]
    Closed,
    #[error(transparent)]
    Secrets(#[from] crate::secrets::SecretsError),
}

impl StoreError {
    pub(crate) fn corrupt(table: &'static str, detail: impl ToString) -> StoreError {
        StoreError::Corrupt {
            table,
            detail: detail.to_string(),
        }
    }

    /// The error a write's caller gets when its group failed with `cause`.
    pub(crate) fn not_committed(cause: &StoreError) -> StoreError {
        StoreError::NotCommitted {
            reason: cause.to_string(),
            transient: cause.is_transient(),
        }
    }

    /// True when trying again may work: the database chose this request to break a
    /// deadlock or a serialization conflict, was busy, or could not be reached.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(e) => db::is_transient(e),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            StoreError::NotCommitted { transient, .. } => *transient,
            _ => false,
        }
    }

    /// True when the statement broke a UNIQUE constraint (a racing duplicate).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => e.is_unique_violation(),
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ),
            _ => false,
        }
    }
}

/// Which SQL database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// True when one server owns the database: a SQLite file is not shared between hosts.
    pub fn single_server(self) -> bool {
        matches!(self, Dialect::Sqlite)
    }

    /// What a claim adds to its row lookup so that several servers claiming at once skip
    /// each other's rows instead of queueing behind them. SQLite has one writer at a time.
    pub(crate) fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
        }
    }
}

enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

struct Inner {
    backend: Backend,
    hub: Arc<Hub>,
    /// Seals what the database keeps secret.
    secrets: Arc<MasterKey>,
    /// Where the data lives, for people: the SQLite file path, or the URL without password.
    location: String,
}

/// The database behind the service. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The migrations a database has applied.
const APPLIED: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";

/// `migrations`, run without refusing a database that has applied migrations they lack
/// (see [`Store::migrate`]).
fn tolerant(migrations: &sqlx::migrate::Migrator) -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate::Migrator {
        migrations: migrations.migrations.clone(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    migrator.set_ignore_missing(true);
    migrator
}

/// The `applied` versions that `migrations` lack.
fn unknown(migrations: &sqlx::migrate::Migrator, applied: Vec<i64>) -> Vec<i64> {
    applied
        .into_iter()
        .filter(|version| !migrations.iter().any(|m| m.version == *version))
        .collect()
}

impl Store {
    /// Connects to `database` (a file path, `sqlite://PATH` or `postgres://…`), creating a
    /// SQLite file and its folder (owner-only) when missing, without touching the schema.
    /// `key_file` is the master key file; by default `pausepoint.key` beside a SQLite
    /// file, or in the data folder for PostgreSQL.
    pub async fn connect(database: &str, key_file: Option<&Path>) -> Result<Store, StoreError> {
        // The URL first: a key file is made only for a database that can be opened (a bad
        // URL once left `mysql:/nowhere/pausepoint.key` in the working folder).
        let location = resolve(database)?;
        let key_file = key_file
            .map(Path::to_owned)
            .unwrap_or_else(|| crate::secrets::default_key_file(database));
        let secrets = Arc::new(MasterKey::load_or_create(&key_file)?);
        let hub = Hub::new();
        let (backend, location) = match location {
            Location::Sqlite(path) => {
                let location = path.display().to_string();
                let sqlite = sqlite::Sqlite::open(&path, Arc::clone(&hub))?;
                (Backend::Sqlite(sqlite), location)
            }
            Location::Postgres { url, shown } => {
                hub.pauses().set_shared(true);
                let pg = postgres::Postgres::connect(&url, Arc::clone(&hub)).await?;
                (Backend::Postgres(pg), shown)
            }
        };
        Ok(Store {
            inner: Arc::new(Inner {
                backend,
                hub,
                secrets,
                location,
            }),
        })
    }

    /// Opens the database, brings its schema up to date, checks that the master key is
    /// the one its secrets were sealed with, and seals any secret an older version kept in
    /// the clear.
    pub async fn open(database: &str, key_file: Option<&Path>) -> Result<Store, StoreError> {
        let store = Store::connect(database, key_file).await?;
        store.migrate().await?;
        store.check_master_key().await?;
        store.seal_plaintext_secrets().await?;
        Ok(store)
    }

    /// The key that seals the secrets this database keeps.
    pub fn secrets(&self) -> &Arc<MasterKey> {
        &self.inner.secrets
    }

    /// Applies the migrations this version has and the database lacks. Safe to run from
    /// several servers at once: the migrator takes a lock.
    ///
    /// A database a later version migrated (during a rolling deploy, or before a rollback)
    /// has migrations this version does not know. Each migration keeps the version before
    /// it working (their comments say how), so they are left as they are and this version
    /// runs on the database, saying so: a server of the version before that restarts in
    /// the middle of a deploy comes back up. Returns the versions of those migrations.
    /// A migration both versions know but whose text differs still stops it.
    pub async fn migrate(&self) -> Result<Vec<i64>, StoreError> {
        let ahead = match &self.inner.backend {
            Backend::Sqlite(_) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(&self.inner.location)
                    .busy_timeout(std::time::Duration::from_secs(10));
                let mut conn = options.connect().await?;
                tolerant(&SQLITE_MIGRATIONS).run(&mut conn).await?;
                let applied = sqlx::query_scalar(APPLIED).fetch_all(&mut conn).await?;
                conn.close().await?;
                unknown(&SQLITE_MIGRATIONS, applied)
            }
            Backend::Postgres(pg) => {
                tolerant(&POSTGRES_MIGRATIONS).run(&pg.pool).await?;
                let applied = sqlx::query_scalar(APPLIED).fetch_all(&pg.pool).await?;
                unknown(&POSTGRES_MIGRATIONS, applied)
            }
        };
        if !ahead.is_empty() {
            tracing::warn!(
                migrations = ?ahead,
                "the database has migrations this version does not know: a later version \
                 migrated it; this one runs on it as the version before, until it is upgraded"
            );
        }
        Ok(ahead)
    }

    /// The hub that hears of every change committed through this store.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.inner.hub
    }

    /// Where the data lives, for people: the SQLite file path, or the URL without password.
    pub fn location(&self) -> &str {
        &self.inner.location
    }

    pub fn dialect(&self) -> Dialect {
        match self.inner.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Runs `read` on a connection of its own.
    pub async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static,
    {
        match &self.inner.backend {
            Backend::Sqlite(sqlite) => sqlite.read(Box::new(read)).await,
            Backend::Postgres(pg) => {
                let mut conn = pg.read_conn().await?;
                read(&mut conn).await
            }
        }
    }

    /// Runs `write` in a transaction and commits it; answers only after the commit. When
    /// `write` fails, nothing it did is kept.
    pub async fn write<T, E, F>(&self, write: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, Result<T, E>> + Send + 'static,
    {
        let (reply, answered) = oneshot::channel();
        let outcome: Arc<Mutex<Option<Result<T, E>>>> = Arc::new(Mutex::new(None));
        let written = Arc::clone(&outcome);
        let job = writer::Job {
            run: Box::new(move |tx| {
                Box::pin(async move {
                    let result = write(tx).await;
                    let keep = result.is_ok();
                    *written.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                    keep
                })
            }),
            answer: Box::new(move |ended: Result<(), StoreError>| {
                let result = outcome.lock().unwrap_or_else(|p| p.into_inner()).take();
                let answer = match (ended, result) {
                    // Its own failure says more than the group's.
                    (_, Some(Err(e))) => Err(e),
                    (Ok(()), Some(Ok(value))) => Ok(value),
                    (Err(e), _) => Err(E::from(e)),
                    (Ok(()), None) => Err(E::from(StoreError::NotCommitted {
                        reason: "the write did not run".into(),
                        transient: false,
                    })),
                };
                let _ = reply.send(answer);
            }),
        };
        match &self.inner.backend {
            Backend::Sqlite(sqlite) => sqlite.submit(job)?,
            Backend::Postgres(pg) => pg.submit(job)?,
        }
        answered.await.map_err(|_| E::from(StoreError::Closed))?
    }

    /// Waits until every audit event of `project_id` committed before the call is on its
    /// chain, so that a read after it sees them. On SQLite events are chained as they
    /// commit; on PostgreSQL the sequencer takes them within milliseconds.
    pub async fn settle_audit(&self, project_id: ProjectId) -> Result<(), StoreError> {
        match &self.inner.backend {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(pg) => pg.settle(project_id).await,
        }
    }

    /// On PostgreSQL, hears what other servers changed until `stop`; on SQLite there are
    /// no other servers and this returns at once.
    pub async fn listen(&self, stop: tokio_util::sync::CancellationToken) {
        if let Backend::Postgres(pg) = &self.inner.backend {
            pg.listen(Arc::clone(&self.inner.hub), stop).await;
        }
    }

    /// Lets queued writes finish and closes every connection.
    pub async fn close(&self) {
        match &self.inner.backend {
            Backend::Sqlite(_) => {
                // Joining the writer blocks until its last group commits: off the async threads.
                let inner = Arc::clone(&self.inner);
                let _ = tokio::task::spawn_blocking(move || {
                    if let Backend::Sqlite(sqlite) = &inner.backend {
                        sqlite.close();
                    }
                })
                .await;
            }
            Backend::Postgres(pg) => pg.close().await,
        }
    }
}

/// Where a database is.
enum Location {
    Sqlite(PathBuf),
    Postgres { url: String, shown: String },
}

/// The SQLite file `database` names, or `None` for a PostgreSQL URL; an error for what is
/// neither.
pub fn sqlite_path(database: &str) -> Result<Option<PathBuf>, StoreError> {
    Ok(match locate(database)? {
        Location::Sqlite(path) => Some(path),
        Location::Postgres { .. } => None,
    })
}

/// Turns what a user passed as `--db` into a location, preparing a SQLite file (see
/// [`owner_only`]).
fn resolve(database: &str) -> Result<Location, StoreError> {
    let location = locate(database)?;
    if let Location::Sqlite(path) = &location {
        owner_only(path)?;
    }
    Ok(location)
}

/// What a user passed as `--db`, read as a location, touching nothing.
fn locate(database: &str) -> Result<Location, StoreError> {
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        return Ok(Location::Postgres {
            url: database.to_owned(),
            shown: mask_password(database),
        });
    }
    let path = if let Some(rest) = database.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = database.strip_prefix("sqlite:") {
        rest
    } else if database.contains("://") {
        return Err(StoreError::UnsupportedUrl(mask_password(database)));
    } else {
        database
    };
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::UnsupportedUrl(database.to_owned()));
    }
    Ok(Location::Sqlite(PathBuf::from(path)))
}

/// Makes the SQLite file (and its folder, when missing) owner-only: the database holds
/// the audit log and every question asked. SQLite gives its `-wal` and `-shm` files the
/// database file's permissions; ones left by an older version are made owner-only too.
fn owner_only(path: &Path) -> Result<(), StoreError> {
    let io = |what: &Path, e: std::io::Error| {
        StoreError::Io(format!("cannot prepare {}: {e}", what.display()))
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
            crate::secrets::restrict(parent, 0o700).map_err(|e| io(parent, e))?;
        }
    }
    if !path.exists() {
        match crate::secrets::owner_only_file(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(path, e)),
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            crate::secrets::restrict(&file, 0o600).map_err(|e| io(&file, e))?;
        }
    }
    Ok(())
}

/// A database URL as it may be shown: the password replaced by `***`.
pub fn mask_password(database: &str) -> String {
    match url::Url::parse(database) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(_) => database.to_owned(),
        Err(_) if database.contains('@') => "postgres://…".to_owned(),
        Err(_) => database.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Executor;

    /// A database made by the version before audit proofs (migrations 1–3), with a
    /// webhook event and its attempt, migrates with both intact, its foreign keys whole,
    /// and takes events of no pause (checkpoints for the witness) afterwards.
    #[tokio::test]
    async fn a_database_with_webhook_history_migrates_to_audit_proofs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let mut conn = options.connect().await.unwrap();
        let older = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Owned(SQLITE_MIGRATIONS.migrations[..3].to_vec()),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        older.run(&mut conn).await.unwrap();
        conn.execute(
            "INSERT INTO projects (id, name, max_timeout_seconds, audit_seq, audit_head, created_at) \
                 VALUES ('p', 'default', 3600, 0, 'x', 0); \
             INSERT INTO pauses (id, project_id, status, channel, recipient, message, options, \
                 allow_text_response, created_at, expires_at) \
                 VALUES ('a', 'p', 'responded', 'sms', 'r', 'm', '[]', 0, 0, 1); \
             INSERT INTO webhook_events VALUES ('e1', 'p', 'a', 'pause.responded', 'u', '{}', \
                 'pending', 1, 0, NULL, 0, 0); \
             INSERT INTO webhook_attempts VALUES ('e1', 1, 0, 500, 3, NULL, NULL);",
        )
        .await
        .unwrap();
        SQLITE_MIGRATIONS.run(&mut conn).await.unwrap();
        let kept: (String, String, i64) = sqlx::query_as(
            "SELECT e.id, e.pause_id, a.status_code FROM webhook_events e \
             JOIN webhook_attempts a ON a.event_id = e.id",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(kept, ("e1".into(), "a".into(), 500));
        let broken: Vec<(String,)> =
            sqlx::query_as("SELECT \"table\" FROM pragma_foreign_key_check")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert!(broken.is_empty(), "{broken:?}");
        conn.execute(
            "INSERT INTO webhook_events VALUES ('e2', 'p', NULL, 'audit.checkpoint', 'u', '{}', \
                 'pending', 0, 0, NULL, 0, 0)",
        )
        .await
        .unwrap();
        // The attempts still point at the events table that is there.
        let orphan = conn
            .execute("INSERT INTO webhook_attempts VALUES ('nope', 1, 0, 500, 3, NULL, NULL)")
            .await;
        assert!(orphan.is_err());
    }

    /// A database made by the version before several approvers (migrations 1–6) migrates
    /// with each pause's one recipient as its first approver (their view and answer kept)
    /// and each delivery as that approver's first notice, still due and still claimable.
    #[tokio::test]
    async fn a_database_of_one_recipient_pauses_migrates_to_approvers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let mut conn = options.connect().await.unwrap();
        let older = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Owned(SQLITE_MIGRATIONS.migrations[..6].to_vec()),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        older.run(&mut conn).await.unwrap();
        let pending = "0192f7d8-0000-7000-8000-000000000001";
        let answered = "0192f7d8-0000-7000-8000-000000000002";
        conn.execute(
            format!(
                "INSERT INTO projects (id, name, max_timeout_seconds, audit_seq, audit_head, created_at) \
                     VALUES ('0192f7d8-0000-7000-8000-00000000000f', 'default', 3600, 0, 'x', 0); \
                 INSERT INTO pauses (id, project_id, status, channel, recipient, message, options, \
                     allow_text_response, created_at, expires_at, viewed_at) \
                     VALUES ('{pending}', '0192f7d8-0000-7000-8000-00000000000f', 'pending', 'sms', \
                             '+13128471928', 'Deploy?', '[\"Yes\",\"No\"]', 0, 10, 9999999999999, 20); \
                 INSERT INTO pauses (id, project_id, status, channel, recipient, message, options, \
                     allow_text_response, created_at, expires_at, response_choice, response_text, \
                     response_at) \
                     VALUES ('{answered}', '0192f7d8-0000-7000-8000-00000000000f', 'responded', 'email', \
                             'cfo@example.com', 'Wire?', '[\"Approve\",\"Reject\"]', 1, 10, \
                             9999999999999, 'Approve', 'ok', 30); \
                 INSERT INTO deliveries (pause_id, project_id, channel, status, attempts, \
                     next_attempt_at, updated_at) \
                     VALUES ('{pending}', '0192f7d8-0000-7000-8000-00000000000f', 'sms', 'pending', 1, 15, 15); \
                 INSERT INTO deliveries (pause_id, project_id, channel, status, attempts, \
                     next_attempt_at, updated_at) \
                     VALUES ('{answered}', '0192f7d8-0000-7000-8000-00000000000f', 'email', 'sent', 1, 11, 11);"
            )
            .as_str(),
        )
        .await
        .unwrap();
        drop(conn);

        let store = Store::open(&path.display().to_string(), None)
            .await
            .unwrap();
        let (_, pause) = store
            .pause_anywhere(pending.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(pause.approvers.len(), 1);
        let first = &pause.approvers[0];
        assert_eq!(first.recipient, "+13128471928");
        assert_eq!(first.viewed_at.map(|t| t.as_millisecond()), Some(20));
        assert_eq!(
            first.delivery.as_ref().map(|d| (d.status, d.attempts)),
            Some((pausepoint_api::DeliveryStatus::Pending, 1))
        );
        assert_eq!(pause.delivery, first.delivery);
        let (_, pause) = store
            .pause_anywhere(answered.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        let vote = pause.approvers[0].vote.clone().unwrap();
        assert_eq!(
            (vote.choice.as_str(), vote.text.as_deref()),
            ("Approve", Some("ok"))
        );
        // The pending delivery is due, under its new key.
        let now = jiff::Timestamp::from_millisecond(100).unwrap();
        let claimed = store
            .write(move |tx| {
                Box::pin(async move { tx.claim_due(outbox::DELIVERIES, now, now, 10).await })
            })
            .await
            .unwrap();
        assert_eq!(claimed, [format!("{pending}:0:0")]);
    }
}
