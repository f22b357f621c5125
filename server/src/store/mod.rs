//! Storage: one [`Store`] over SQLite (the default) or PostgreSQL (for several servers),
//! chosen by the URL scheme. SQL is written once with `$1…` placeholders against sqlx's `Any` driver,
//! using only portable column types: UUID text, integer milliseconds, JSON text. The few
//! statements that differ per database live in [`Dialect`].
//!
//! - [`projects`]: tenants, their limits and the head of their audit chain.
//! - [`keys`]: API keys, stored as SHA-256 hashes only.
//! - [`pauses`]: pause rows and their one-way status change.
//! - [`audit`]: the append-only, hash-chained audit log.
//! - [`deliveries`]: the durable notification of each pause's human.
//! - [`outbox`]: how workers claim rows of work (deliveries, webhook events).
//! - [`webhooks`]: webhook events, their attempts, and each project's signing secrets.
//! - [`settings`]: server-wide values such as the link-signing key.

pub mod audit;
pub mod deliveries;
pub mod keys;
pub mod metrics;
pub mod outbox;
pub mod pauses;
pub mod projects;
pub mod settings;
pub mod webhooks;

use std::path::Path;
use std::str::FromStr;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, Executor, Row, Transaction};
use uuid::Uuid;

/// What went wrong below the domain: the database, or a row it holds that makes no sense.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("could not apply the database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use a file path, sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
}

impl StoreError {
    fn corrupt(table: &'static str, detail: impl ToString) -> StoreError {
        StoreError::Corrupt {
            table,
            detail: detail.to_string(),
        }
    }

    /// True when the statement broke a UNIQUE constraint (a racing duplicate).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
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

    /// Opens a write transaction. SQLite takes the write lock up front (`BEGIN
    /// IMMEDIATE`): a transaction that reads and then writes would otherwise fail with
    /// SQLITE_BUSY when another writer got there between the two.
    fn begin_statement(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
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

/// The database behind the service. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    location: String,
    /// The URL, for the PostgreSQL connection that listens for other servers' news.
    url: String,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL channel on which servers tell each other what happened: a pause id when
/// it was decided, [`NEW_PAUSE`] when a pause was created.
pub const NOTIFY_CHANNEL: &str = "pausepoint";
/// The payload announcing a new pause (a deadline and a delivery for some worker).
pub const NEW_PAUSE: &str = "created";

impl Store {
    /// Connects to `database` (a file path, `sqlite://PATH` or `postgres://…`), creating a
    /// SQLite file and its folder when missing, without touching the schema.
    pub async fn connect(database: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (dialect, url, location) = resolve(database)?;
        let pool = match dialect {
            Dialect::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(8)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // WAL lets readers run beside the writer; FULL makes every
                            // acknowledged commit survive a crash or a power cut.
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                                 PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await?
            }
            Dialect::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(std::time::Duration::from_secs(10))
                    .connect(&url)
                    .await?
            }
        };
        Ok(Store {
            pool,
            dialect,
            location,
            url,
        })
    }

    /// Opens the database and brings its schema up to date.
    pub async fn open(database: &str) -> Result<Store, StoreError> {
        let store = Store::connect(database).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Applies the migrations this version has and the database lacks. Safe to run from
    /// several servers at once: the migrator takes a lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.dialect {
            Dialect::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Dialect::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// The database URL, for a PostgreSQL listener.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Tells every server sharing the database `news` (a decided pause's id, or
    /// [`NEW_PAUSE`]) when the transaction on `conn` commits, and not if it rolls back.
    /// Only PostgreSQL has other servers to tell.
    pub(crate) async fn notify(
        &self,
        conn: &mut AnyConnection,
        news: &str,
    ) -> Result<(), StoreError> {
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(news)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    /// Where the data lives, for people: the SQLite file path, or the URL without password.
    pub fn location(&self) -> &str {
        &self.location
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Starts a transaction that will write.
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(self.pool.begin_with(self.dialect.begin_statement()).await?)
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection, waiting for those in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Turns what a user passed as `--db` into a dialect, a driver URL and a display location.
fn resolve(database: &str) -> Result<(Dialect, String, String), StoreError> {
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        // Show where the data is, never the password.
        let location = match url::Url::parse(database) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                url.to_string()
            }
            Err(_) => "postgres://…".to_owned(),
        };
        return Ok((Dialect::Postgres, database.to_owned(), location));
    }
    let path = if let Some(rest) = database.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = database.strip_prefix("sqlite:") {
        rest
    } else if database.contains("://") {
        return Err(StoreError::UnsupportedUrl(database.to_owned()));
    } else {
        database
    };
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::UnsupportedUrl(database.to_owned()));
    }
    if let Some(parent) = Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            StoreError::Database(sqlx::Error::Configuration(
                format!("cannot create the folder {}: {e}", parent.display()).into(),
            ))
        })?;
    }
    let query = if query.contains("mode=") {
        query.to_owned()
    } else if query.is_empty() {
        "mode=rwc".to_owned()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok((
        Dialect::Sqlite,
        format!("sqlite://{path}?{query}"),
        path.to_owned(),
    ))
}

/// Reads a UUID column.
fn uuid_column(row: &AnyRow, table: &'static str, column: &str) -> Result<Uuid, StoreError> {
    let text: String = row.try_get(column)?;
    Uuid::from_str(&text).map_err(|e| StoreError::corrupt(table, format!("{column}: {e}")))
}

/// Reads an optional UUID column.
fn optional_uuid_column(
    row: &AnyRow,
    table: &'static str,
    column: &str,
) -> Result<Option<Uuid>, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| {
        Uuid::from_str(&t).map_err(|e| StoreError::corrupt(table, format!("{column}: {e}")))
    })
    .transpose()
}

/// Reads a millisecond column as a timestamp.
fn time_column(
    row: &AnyRow,
    table: &'static str,
    column: &str,
) -> Result<jiff::Timestamp, StoreError> {
    let millis: i64 = row.try_get(column)?;
    jiff::Timestamp::from_millisecond(millis)
        .map_err(|e| StoreError::corrupt(table, format!("{column}: {e}")))
}

/// Reads an optional millisecond column as a timestamp.
fn optional_time_column(
    row: &AnyRow,
    table: &'static str,
    column: &str,
) -> Result<Option<jiff::Timestamp>, StoreError> {
    let millis: Option<i64> = row.try_get(column)?;
    millis
        .map(|m| {
            jiff::Timestamp::from_millisecond(m)
                .map_err(|e| StoreError::corrupt(table, format!("{column}: {e}")))
        })
        .transpose()
}
