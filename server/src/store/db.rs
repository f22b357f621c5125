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

/// A PostgreSQL connection: borrowed from the pool for reads, or holding a transaction.
pub enum PgHandle {
    Pooled(sqlx::pool::PoolConnection<Postgres>),
    Transaction(sqlx::Transaction<'static, Postgres>),
}

impl PgHandle {
    fn connection(&mut self) -> &mut sqlx::PgConnection {
        match self {
            PgHandle::Pooled(conn) => conn,
            PgHandle::Transaction(tx) => tx,
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
                    .execute(handle.connection())
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
                    .fetch_all(handle.connection())
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

    pub(super) fn postgres(&mut self) -> Option<&mut sqlx::PgConnection> {
        match self {
            Conn::Sqlite(_) => None,
            Conn::Postgres(handle) => Some(handle.connection()),
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
        }
    }
    Ok(())
}

fn pg_arguments(args: &[Arg<'_>]) -> Result<PgArguments, StoreError> {
    let mut arguments = PgArguments::default();
    for arg in args {
        let added = match *arg {
            Arg::Text(value) => arguments.add(value.map(str::to_owned)),
            Arg::Int(value) => arguments.add(value),
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
