//! One way to run SQL on either database. A statement is written once with `$1…`
//! placeholders and bound with [`Arg`]s; a row is read through [`Row`] by column name,
//! whatever driver produced it. SQLite runs through rusqlite, synchronously, on the
//! thread that owns the connection (the writer, or a reader); PostgreSQL runs through
//! sqlx. Only the store sees this module: everything above it speaks in typed operations.

use std::borrow::Cow;

use jiff::Timestamp;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Arguments, Postgres, Row as _};
use uuid::Uuid;

use super::StoreError;

/// A value bound to a placeholder. NULLs carry their type, which PostgreSQL needs.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    /// A column of texts, for `UNNEST` (PostgreSQL only).
    Texts(&'a [Option<String>]),
    /// A column of integers, for `UNNEST` (PostgreSQL only).
    Ints(&'a [Option<i64>]),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(value: &'a str) -> Self {
        Arg::Text(Some(value))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(value: &'a String) -> Self {
        Arg::Text(Some(value))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Arg::Text(value)
    }
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Arg::Int(Some(value))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(value: Option<i64>) -> Self {
        Arg::Int(value)
    }
}

impl From<u32> for Arg<'_> {
    fn from(value: u32) -> Self {
        Arg::Int(Some(i64::from(value)))
    }
}

impl From<bool> for Arg<'_> {
    fn from(value: bool) -> Self {
        Arg::Int(Some(i64::from(value)))
    }
}

impl From<Timestamp> for Arg<'_> {
    fn from(value: Timestamp) -> Self {
        Arg::Int(Some(value.as_millisecond()))
    }
}

impl From<Option<Timestamp>> for Arg<'_> {
    fn from(value: Option<Timestamp>) -> Self {
        Arg::Int(value.map(|t| t.as_millisecond()))
    }
}

/// An argument kept until a deferred statement is sent. The arrays exist only where
/// PostgreSQL gets many rows in one statement (`UNNEST`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OwnedArg {
    Text(Option<String>),
    Int(Option<i64>),
    Texts(Vec<Option<String>>),
    Ints(Vec<Option<i64>>),
}

impl From<Arg<'_>> for OwnedArg {
    fn from(arg: Arg<'_>) -> OwnedArg {
        match arg {
            Arg::Text(text) => OwnedArg::Text(text.map(str::to_owned)),
            Arg::Int(int) => OwnedArg::Int(int),
            Arg::Texts(texts) => OwnedArg::Texts(texts.to_vec()),
            Arg::Ints(ints) => OwnedArg::Ints(ints.to_vec()),
        }
    }
}

impl OwnedArg {
    pub fn as_arg(&self) -> Arg<'_> {
        match self {
            OwnedArg::Text(text) => Arg::Text(text.as_deref()),
            OwnedArg::Int(int) => Arg::Int(*int),
            OwnedArg::Texts(texts) => Arg::Texts(texts),
            OwnedArg::Ints(ints) => Arg::Ints(ints),
        }
    }
}

/// `args![a, b, c]`: the arguments of a statement, in placeholder order.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        &[$($crate::store::db::Arg::from($value)),*]
    };
}
pub(crate) use args;

/// A row being read, from either driver. Columns are named as the statement names them.
pub trait Row {
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    /// The table the row comes from, to name it when a value makes no sense.
    fn table(&self) -> &'static str;

    fn text(&self, column: &str) -> Result<String, StoreError> {
        self.opt_text(column)?
            .ok_or_else(|| StoreError::corrupt(self.table(), format!("{column} is null")))
    }

    fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.opt_int(column)?
            .ok_or_else(|| StoreError::corrupt(self.table(), format!("{column} is null")))
    }

    fn uuid(&self, column: &str) -> Result<Uuid, StoreError> {
        parse_uuid(self.table(), column, &self.text(column)?)
    }

    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>, StoreError> {
        self.opt_text(column)?
            .map(|text| parse_uuid(self.table(), column, &text))
            .transpose()
    }

    /// A millisecond column as a timestamp.
    fn time(&self, column: &str) -> Result<Timestamp, StoreError> {
        millis(self.table(), column, self.int(column)?)
    }

    fn opt_time(&self, column: &str) -> Result<Option<Timestamp>, StoreError> {
        self.opt_int(column)?
            .map(|ms| millis(self.table(), column, ms))
            .transpose()
    }

    /// A count or small number that must fit a `u32`.
    fn count(&self, column: &str) -> Result<u32, StoreError> {
        let n = self.int(column)?;
        u32::try_from(n).map_err(|_| StoreError::corrupt(self.table(), format!("{column}: {n}")))
    }
}

fn parse_uuid(table: &'static str, column: &str, text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|e| StoreError::corrupt(table, format!("{column}: {e}")))
}

fn millis(table: &'static str, column: &str, ms: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(ms)
        .map_err(|e| StoreError::corrupt(table, format!("{column}: {e}")))
}

struct SqliteRow<'r, 's> {
    row: &'r rusqlite::Row<'s>,
    table: &'static str,
}

impl Row for SqliteRow<'_, '_> {
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.row.get(column)?)
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.row.get(column)?)
    }

    fn table(&self) -> &'static str {
        self.table
    }
}

struct PostgresRow<'r> {
    row: &'r PgRow,
    table: &'static str,
}

impl Row for PostgresRow<'_> {
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        Ok(self.row.try_get(column)?)
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        // Columns are BIGINT; an expression such as `1` or `COUNT(*)` may be narrower.
        match self.row.try_get::<Option<i64>, _>(column) {
            Ok(value) => Ok(value),
            Err(sqlx::Error::ColumnDecode { .. }) => {
                Ok(self.row.try_get::<Option<i32>, _>(column)?.map(i64::from))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn table(&self) -> &'static str {
        self.table
    }
}

/// A PostgreSQL connection from the pool. For writes (the writer's connection), the
/// transaction is opened only when a statement needs an answer, and within a group commit
/// each request gets a savepoint only then too: a request made only of deferred
/// statements (a create) costs no round trip of its own.
pub struct PgHandle {
    conn: Option<sqlx::pool::PoolConnection<Postgres>>,
    write: bool,
    begun: bool,
    savepoint: Savepoint,
}

/// Where the current request of a group stands with its savepoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Savepoint {
    /// Not in a request, or one that has not needed one yet.
    None,
    /// In a request that will open one before its first statement.
    Wanted,
    Open,
}

impl PgHandle {
    /// A connection for reads.
    pub(super) fn reading(conn: sqlx::pool::PoolConnection<Postgres>) -> PgHandle {
        PgHandle {
            conn: Some(conn),
            write: false,
            begun: false,
            savepoint: Savepoint::None,
        }
    }

    /// The writer's connection, outside any transaction.
    pub(super) fn writing(conn: sqlx::pool::PoolConnection<Postgres>) -> PgHandle {
        PgHandle {
            conn: Some(conn),
            write: true,
            begun: false,
            savepoint: Savepoint::None,
        }
    }

    fn connection(&mut self) -> Result<&mut sqlx::PgConnection, StoreError> {
        self.conn.as_deref_mut().ok_or(StoreError::Closed)
    }

    /// The connection, inside the transaction and the request's savepoint (opened now if
    /// need be).
    async fn ready(&mut self) -> Result<&mut sqlx::PgConnection, StoreError> {
        if self.write && !self.begun {
            sqlx::Executor::execute(self.connection()?, "BEGIN").await?;
            self.begun = true;
        }
        if self.savepoint == Savepoint::Wanted {
            sqlx::Executor::execute(self.connection()?, "SAVEPOINT request").await?;
            self.savepoint = Savepoint::Open;
        }
        self.connection()
    }

    /// A request of the group starts: it opens a savepoint before its first statement.
    pub(super) fn start_request(&mut self) {
        self.savepoint = Savepoint::Wanted;
    }

    /// The request ends: its statements are kept or undone.
    pub(super) async fn end_request(&mut self, keep: bool) -> Result<(), StoreError> {
        let open = self.savepoint == Savepoint::Open;
        self.savepoint = Savepoint::None;
        if open {
            let end = if keep {
                "RELEASE SAVEPOINT request"
            } else {
                "ROLLBACK TO SAVEPOINT request; RELEASE SAVEPOINT request"
            };
            sqlx::Executor::execute(self.connection()?, end).await?;
        }
        Ok(())
    }

    /// Ends the transaction, if one was opened.
    pub(super) async fn finish(&mut self, commit: bool) -> Result<(), StoreError> {
        self.savepoint = Savepoint::None;
        if self.begun {
            let end = if commit { "COMMIT" } else { "ROLLBACK" };
            let ended = sqlx::Executor::execute(self.connection()?, end).await;
            if ended.is_ok() {
                self.begun = false;
            }
            ended?;
        }
        Ok(())
    }

    /// Gives the connection back, unless it may still be inside a transaction.
    pub(super) fn into_inner(mut self) -> Option<sqlx::pool::PoolConnection<Postgres>> {
        if self.begun {
            return None;
        }
        self.conn.take()
    }
}

impl Drop for PgHandle {
    fn drop(&mut self) {
        // Abandoned half way: the connection may be inside a transaction, so it must not
        // go back to the pool.
        if self.begun {
            if let Some(conn) = self.conn.as_mut() {
                conn.close_on_drop();
            }
        }
    }
}

/// A connection to run statements on. It owns its driver's connection, so that the
/// closures the store runs on it borrow one thing only.
pub enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres(PgHandle),
}

impl Conn {
    /// Runs a statement; returns how many rows it changed.
    pub async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        match self {
            Conn::Sqlite(conn) => {
                let mut statement = conn.prepare_cached(&sqlite_sql(sql))?;
                bind_sqlite(&mut statement, args)?;
                Ok(statement.raw_execute()? as u64)
            }
            Conn::Postgres(handle) => {
                let done = sqlx::query_with(sql, pg_arguments(args)?)
                    .execute(handle.ready().await?)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    }

    /// Runs a statement whose text is seldom the same twice (a batch of any size): on
    /// PostgreSQL it is kept prepared only when `keep` says it will come again. With
    /// `alone`, and no transaction open, it opens none: PostgreSQL runs a lone statement
    /// as a transaction of its own, as atomic as one between `BEGIN` and `COMMIT`, without
    /// their two round trips.
    ///
    /// Such a lone statement is run again when PostgreSQL chose it as a deadlock's victim:
    /// it rolled back whole, and nothing the writer's requests decided depends on what it
    /// would have read (they read nothing). Inside a transaction the group's reads may be
    /// stale after a rollback, so there the error stands.
    pub(super) async fn execute_once(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        keep: bool,
        alone: bool,
    ) -> Result<u64, StoreError> {
        match self {
            Conn::Sqlite(_) => self.execute(sql, args).await,
            Conn::Postgres(handle) if alone && !handle.begun => {
                let conn = handle.connection()?;
                let mut tries = 1;
                loop {
                    let ran = sqlx::query_with(sql, pg_arguments(args)?)
                        .persistent(keep)
                        .execute(&mut *conn)
                        .await;
                    match ran {
                        Ok(done) => return Ok(done.rows_affected()),
                        Err(e) if tries < LONE_TRIES && lost_to_a_deadlock(&e) => {
                            tracing::warn!(error = %e, tries, "a group lost a deadlock; running it again");
                            tries += 1;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Conn::Postgres(handle) => {
                let done = sqlx::query_with(sql, pg_arguments(args)?)
                    .persistent(keep)
                    .execute(handle.ready().await?)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    }

    /// Runs a query and maps every row it returns.
    pub async fn fetch_all<T>(
        &mut self,
        table: &'static str,
        sql: &str,
        args: &[Arg<'_>],
        mut map: impl FnMut(&dyn Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        match self {
            Conn::Sqlite(conn) => {
                let mut statement = conn.prepare_cached(&sqlite_sql(sql))?;
                bind_sqlite(&mut statement, args)?;
                let mut rows = statement.raw_query();
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(map(&SqliteRow { row, table })?);
                }
                Ok(out)
            }
            Conn::Postgres(handle) => {
                let rows = sqlx::query_with(sql, pg_arguments(args)?)
                    .fetch_all(handle.ready().await?)
                    .await?;
                rows.iter()
                    .map(|row| map(&PostgresRow { row, table }))
                    .collect()
            }
        }
    }

    /// Runs a query that returns at most one row.
    pub async fn fetch_optional<T>(
        &mut self,
        table: &'static str,
        sql: &str,
        args: &[Arg<'_>],
        map: impl FnMut(&dyn Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        Ok(self
            .fetch_all(table, sql, args, map)
            .await?
            .into_iter()
            .next())
    }

    /// Runs a query that returns exactly one row.
    pub async fn fetch_one<T>(
        &mut self,
        table: &'static str,
        sql: &str,
        args: &[Arg<'_>],
        map: impl FnMut(&dyn Row) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.fetch_optional(table, sql, args, map)
            .await?
            .ok_or_else(|| StoreError::corrupt(table, "a query that returns one row returned none"))
    }

    /// Runs SQLite statements with no arguments, such as `BEGIN` or `SAVEPOINT`, for the
    /// writer that manages its own transaction.
    pub(super) fn sqlite_batch(&mut self, sql: &str) -> Result<(), StoreError> {
        match self {
            Conn::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Conn::Postgres(_) => Err(StoreError::corrupt(
                "transaction",
                "a SQLite statement on PostgreSQL",
            )),
        }
    }

    pub fn dialect(&self) -> super::Dialect {
        match self {
            Conn::Sqlite(_) => super::Dialect::Sqlite,
            Conn::Postgres(_) => super::Dialect::Postgres,
        }
    }
}

/// SQLite reads `$1` as a named parameter numbered by first appearance; `?1` is the
/// explicit position, which is what `$1` means everywhere else.
fn sqlite_sql(sql: &str) -> Cow<'_, str> {
    if sql.contains('$') {
        Cow::Owned(sql.replace('$', "?"))
    } else {
        Cow::Borrowed(sql)
    }
}

fn bind_sqlite(
    statement: &mut rusqlite::CachedStatement<'_>,
    args: &[Arg<'_>],
) -> Result<(), StoreError> {
    for (i, arg) in args.iter().enumerate() {
        match *arg {
            Arg::Text(value) => statement.raw_bind_parameter(i + 1, value)?,
            Arg::Int(value) => statement.raw_bind_parameter(i + 1, value)?,
            Arg::Texts(_) | Arg::Ints(_) => {
                return Err(StoreError::corrupt(
                    "statement",
                    "arrays are for PostgreSQL only",
                ))
            }
        }
    }
    Ok(())
}

/// How many times a lone statement is run when deadlocks keep choosing it.
const LONE_TRIES: u32 = 3;

/// Whether trying again may work: a deadlock or serialization conflict lost, a lock not
/// had in time (`55P03`), a database shutting down or starting (`57P01`, `57P03`), or no
/// connection (the pool's wait ran out, or the connection broke).
pub(super) fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        _ => {
            lost_to_a_deadlock(error)
                || error
                    .as_database_error()
                    .and_then(|e| e.code())
                    .is_some_and(|code| ["55P03", "57P01", "57P03"].contains(&code.as_ref()))
        }
    }
}

/// Whether PostgreSQL rolled the statement back to break a deadlock (`40P01`), or to keep
/// transactions serializable (`40001`): the error is the timing's, and the same statement
/// can succeed when run again.
fn lost_to_a_deadlock(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "40P01" || code == "40001")
}

fn pg_arguments(args: &[Arg<'_>]) -> Result<PgArguments, StoreError> {
    let mut arguments = PgArguments::default();
    for arg in args {
        let added = match *arg {
            // Encoded into the arguments' buffer as they are added: borrowed, not copied
            // first (a group's columns are most of what the writer sends).
            Arg::Text(value) => arguments.add(value),
            Arg::Int(value) => arguments.add(value),
            Arg::Texts(values) => arguments.add(values),
            Arg::Ints(values) => arguments.add(values),
        };
        added.map_err(|e| StoreError::Database(sqlx::Error::Encode(e)))?;
    }
    Ok(arguments)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_placeholders_become_explicit_positions() {
        assert_eq!(
            sqlite_sql("SELECT $2, $1 WHERE a = $1"),
            "SELECT ?2, ?1 WHERE a = ?1"
        );
        assert!(matches!(sqlite_sql("SELECT 1"), Cow::Borrowed(_)));
    }
}

/// A query's text and arguments, built from only the conditions it has: a condition left
/// out is not in the SQL at all (an `(? IS NULL OR col = ?)` would keep a planner from
/// using the column's index).
#[derive(Debug, Clone, Default)]
pub struct Query {
    sql: String,
    args: Vec<OwnedArg>,
}

impl Query {
    pub fn new(sql: impl Into<String>) -> Query {
        Query {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    /// Appends `text`, each `?` in it becoming the next placeholder, bound to `args` in
    /// order.
    pub fn push(&mut self, text: &str, args: impl IntoIterator<Item = OwnedArg>) -> &mut Query {
        for (i, part) in text.split('?').enumerate() {
            if i > 0 {
                self.sql.push_str(&format!("${}", self.args.len() + i));
            }
            self.sql.push_str(part);
        }
        self.args.extend(args);
        self
    }

    pub fn sql(&self) -> &str {
        &self.sql
    }

    pub fn args(&self) -> Vec<Arg<'_>> {
        self.args.iter().map(OwnedArg::as_arg).collect()
    }
}

impl Conn {
    /// How the database would run `query`: SQLite's `EXPLAIN QUERY PLAN` details, or
    /// PostgreSQL's `EXPLAIN` lines with sequential scans discouraged (so that a scan shows
    /// only where no index can serve, however small the tables are now).
    pub async fn query_plan(&mut self, query: &Query) -> Result<Vec<String>, StoreError> {
        match self.dialect() {
            super::Dialect::Sqlite => {
                let sql = format!("EXPLAIN QUERY PLAN {}", query.sql());
                self.fetch_all("explain", &sql, &query.args(), |row| row.text("detail"))
                    .await
            }
            super::Dialect::Postgres => {
                self.execute("SET enable_seqscan = off", &[]).await?;
                let sql = format!("EXPLAIN {}", query.sql());
                let plan = self
                    .fetch_all("explain", &sql, &query.args(), |row| row.text("QUERY PLAN"))
                    .await;
                self.execute("RESET enable_seqscan", &[]).await?;
                plan
            }
        }
    }
}
