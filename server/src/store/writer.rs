//! The writer: group commit, the same on both databases. Each server has one writer,
//! which takes every write waiting in its queue and commits them together in one
//! transaction: one fsync for many requests. Each request runs in its own savepoint, so
//! that its failure undoes only its own statements, and is answered only after the
//! commit that holds it.
//!
//! The steps differ a little per database, each for a reason:
//! - SQLite takes its write lock up front (`BEGIN IMMEDIATE`), gives every request a
//!   savepoint (they cost nothing), and runs a request's deferred statements at its end,
//!   so that the next request in the group reads them.
//! - PostgreSQL opens the transaction and a request's savepoint only when a statement
//!   needs an answer, and sends every deferred statement of the group and its audit
//!   events (into the queue the [`super::sequencer`] takes them from, with no lock) as
//!   one statement at the end: a group of creates is one round trip whatever its size
//!   (a group that read nothing opens no transaction: its one statement is one), and
//!   groups of several writers and servers commit side by side. Rows of the same kind
//!   go as one `INSERT … SELECT FROM UNNEST(…)`, and changes of rows by key as one
//!   `UPDATE … FROM UNNEST(…)`, whose texts do not change with their number, so that
//!   PostgreSQL plans them once. What other servers need to hear of goes to them after
//!   the commit (see [`super::notices`]).

use std::collections::HashSet;
use std::time::Instant;

use futures_util::future::BoxFuture;

use super::db::{Arg, Conn, OwnedArg};
use super::tx::{Deferred, Tx};
use super::{Dialect, StoreError};
use crate::hub::{Change, Hub};

/// The most writes committed together.
pub(super) const MAX_GROUP: usize = 512;

/// A write as the writer runs it: the request's closure, type-erased.
pub(super) struct Job {
    pub run: RunWrite,
    pub answer: Answer,
}

/// A write's closure: says whether to keep what it wrote.
pub(super) type RunWrite = Box<dyn for<'t> FnOnce(&'t mut Tx) -> BoxFuture<'t, bool> + Send>;
/// Tells a write's caller how it ended: committed, or why not (its own statements failed,
/// or its group did).
pub(super) type Answer = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// What the writer's queue carries.
pub(super) enum Message {
    Write(Job),
    Stop,
}

/// What a group committed.
#[derive(Default)]
pub(super) struct Committed {
    /// The changes, announced on this server already.
    pub changes: Vec<Change>,
    /// Whether there were audit events (on PostgreSQL, queued for the sequencer).
    pub audit: bool,
}

/// Runs `jobs` as one group and commits it; tells each job's caller how it ended, and
/// the hub what changed. Returns what committed: nothing when the group failed.
pub(super) async fn commit_group(tx: &mut Tx, jobs: Vec<Job>, hub: &Hub) -> Committed {
    let started = Instant::now();
    let writes = jobs.len();
    let dialect = tx.dialect();
    // Each job's answer, and the reason it alone failed, if it did.
    let mut answers: Vec<(Answer, Option<StoreError>)> = Vec::with_capacity(jobs.len());
    let mut failed = begin(tx).await.err();
    for job in jobs {
        // Once the group has failed, the jobs left are not run: they share its fate.
        if failed.is_some() {
            answers.push((job.answer, None));
            continue;
        }
        let mark = tx.mark();
        if let Err(e) = start_request(tx).await {
            failed = Some(e);
            answers.push((job.answer, None));
            continue;
        }
        let keep = (job.run)(tx).await;
        let own = match (keep, dialect) {
            // Deferred statements go now, inside the request's savepoint: the next request
            // reads them, and their failure is this request's alone.
            (true, Dialect::Sqlite) => tx.send_deferred().await.err(),
            _ => None,
        };
        let keep = keep && own.is_none();
        if !keep {
            tx.forget_since(mark);
        }
        failed = end_request(tx, keep).await.err();
        answers.push((job.answer, own));
    }
    let committed = match failed {
        Some(e) => Err(e),
        None => finish(tx).await,
    };
    let mut kept = Committed::default();
    let changes = match committed {
        Ok(committed) => {
            hub.publish_local(&committed.changes);
            kept = committed;
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "a group commit failed; its writes are rolled back");
            tx.discard();
            abort(tx).await;
            Err(e)
        }
    };
    for (answer, own) in answers {
        answer(match (own, &changes) {
            (Some(own), _) => Err(own),
            (None, Ok(())) => Ok(()),
            (None, Err(e)) => Err(StoreError::not_committed(e)),
        });
    }
    hub.metrics().writer_group(writes, started.elapsed());
    kept
}

async fn begin(tx: &mut Tx) -> Result<(), StoreError> {
    match tx.conn_mut() {
        Conn::Sqlite(_) => tx.conn_mut().sqlite_batch("BEGIN IMMEDIATE"),
        // Opened by the first statement that needs it.
        Conn::Postgres(_) => Ok(()),
    }
}

async fn start_request(tx: &mut Tx) -> Result<(), StoreError> {
    match tx.conn_mut() {
        Conn::Sqlite(_) => tx.conn_mut().sqlite_batch("SAVEPOINT request"),
        Conn::Postgres(handle) => {
            handle.start_request();
            Ok(())
        }
    }
}

async fn end_request(tx: &mut Tx, keep: bool) -> Result<(), StoreError> {
    match tx.conn_mut() {
        Conn::Sqlite(_) => tx.conn_mut().sqlite_batch(if keep {
            "RELEASE request"
        } else {
            "ROLLBACK TO request; RELEASE request"
        }),
        Conn::Postgres(handle) => handle.end_request(keep).await,
    }
}

/// Chains (SQLite) or queues (PostgreSQL) the group's audit events, sends what was
/// deferred, commits; returns what committed.
async fn finish(tx: &mut Tx) -> Result<Committed, StoreError> {
    let events = tx.take_audit();
    let changes = tx.take_changes();
    match tx.conn_mut() {
        Conn::Sqlite(_) => {
            let conn = tx.conn_mut();
            for statement in super::audit::chain(conn, &events).await? {
                let args: Vec<Arg<'_>> = statement.args.iter().map(OwnedArg::as_arg).collect();
                conn.execute(&statement.sql, &args).await?;
            }
            conn.sqlite_batch("COMMIT")?;
        }
        Conn::Postgres(_) => {
            let mut statements = tx.take_deferred();
            // The events are queued with the rest, taking no lock; the sequencer puts
            // them on their chains after the commit. A group of creates is one statement.
            statements.extend(super::sequencer::queue(&events));
            let conn = tx.conn_mut();
            send(conn, statements).await?;
            if let Conn::Postgres(handle) = conn {
                handle.finish(true).await?;
            }
        }
    }
    Ok(Committed {
        changes,
        audit: !events.is_empty(),
    })
}

/// Sends `statements`, combined.
pub(super) async fn send(conn: &mut Conn, statements: Vec<Deferred>) -> Result<(), StoreError> {
    let combined = combine(statements);
    // A group that read nothing has no transaction open yet: its one statement is one.
    let alone = combined.len() == 1;
    for (sql, args) in combined {
        let args: Vec<Arg<'_>> = args.iter().map(OwnedArg::as_arg).collect();
        conn.execute_once(&sql, &args, kept(&sql), alone).await?;
    }
    Ok(())
}

/// Groups of the usual kinds give the same few texts: kept prepared, they are planned
/// once. Unusual mixes are planned each time rather than crowd them out.
fn kept(sql: &str) -> bool {
    sql.matches(" AS (").count() <= KEPT_PARTS
}

/// Statements of up to this many parts are kept prepared.
const KEPT_PARTS: usize = 6;

async fn abort(tx: &mut Tx) {
    let aborted = match tx.conn_mut() {
        // Nothing to roll back when BEGIN itself failed; the error is expected then.
        Conn::Sqlite(_) => {
            let _ = tx.conn_mut().sqlite_batch("ROLLBACK");
            Ok(())
        }
        Conn::Postgres(handle) => handle.finish(false).await,
    };
    if let Err(e) = aborted {
        tracing::warn!(error = %e, "a rollback failed; the connection is dropped");
    }
}

/// PostgreSQL takes at most 65,535 arguments in one statement.
const MAX_ARGS: usize = 30_000;

/// `statements` as few statements as possible: the writes as data-modifying `WITH` parts
/// of one statement (PostgreSQL runs it atomically), split only when there are too many
/// arguments for one.
fn combine(statements: Vec<Deferred>) -> Vec<(String, Vec<OwnedArg>)> {
    let mut combined = Vec::new();
    let mut parts: Vec<String> = Vec::new();
    let mut args: Vec<OwnedArg> = Vec::new();
    for statement in merge_rows(statements) {
        if !parts.is_empty() && args.len() + statement.args.len() > MAX_ARGS {
            combined.extend(one_statement(&mut parts, &mut args));
        }
        parts.push(renumber(&statement.sql, args.len()));
        args.extend(statement.args);
    }
    combined.extend(one_statement(&mut parts, &mut args));
    combined
}

/// Single-row writes of one text, merged into one statement whatever their number, so
/// that PostgreSQL plans a group's statement once (its text does not change with the
/// group's size) and runs each kind of row once:
/// - every `INSERT INTO t (c…) VALUES ($1, …, $n)` becomes `INSERT INTO t (c…) SELECT *
///   FROM UNNEST($1::T[], …)`, with a column of values per argument;
/// - every `UPDATE t SET … WHERE k = $1 [AND …]` (no subquery) becomes `UPDATE t SET …
///   FROM UNNEST($1::T[], …) AS merged (v1, …) WHERE k = merged.v1 [AND …]`, its `$i`
///   read from `merged.vi`. Rows with different `$1` change different rows; a row whose
///   `$1` is already in the merged statement starts another, because PostgreSQL changes a
///   row at most once per statement.
///
/// Each merged statement stands where the first of its rows stood; other statements keep
/// their place. The rows' values are moved, not copied: a group's are most of what it
/// sends.
///
/// A merged update's rows go in the order of their keys: PostgreSQL locks the rows as it
/// reads `UNNEST` (the writer's plans loop over it, looking each row up by its key), so
/// two groups of two servers that change the same rows lock them in the same order, and
/// neither can hold a row the other waits for while waiting for one the other holds. (A
/// deadlock across tables is still possible; a lone statement that loses one runs again,
/// see [`Conn::execute_once`].)
fn merge_rows(statements: Vec<Deferred>) -> Vec<Deferred> {
    let mut merged: Vec<Deferred> = Vec::with_capacity(statements.len());
    // Where each mergeable text's latest statement is in `merged`, and (for an update)
    // the `$1` of the rows it holds. A text found here had its shape checked when its
    // statement was started: the next rows of a group (most of them) skip that check.
    let mut at: Vec<(String, usize, Option<HashSet<OwnedArg>>)> = Vec::new();
    // The merged updates, whose rows are put in key order at the end.
    let mut updates: Vec<usize> = Vec::new();
    for statement in statements {
        if single_valued(&statement.args) {
            let open = at
                .iter_mut()
                .find(|(sql, index, _)| {
                    *sql == statement.sql && merged[*index].args.len() == statement.args.len()
                })
                .filter(|(_, _, keys)| match keys {
                    Some(keys) => !keys.contains(&statement.args[0]),
                    None => true,
                });
            if let Some((_, index, keys)) = open {
                if let Some(keys) = keys {
                    keys.insert(statement.args[0].clone());
                }
                for (column, arg) in merged[*index].args.iter_mut().zip(statement.args) {
                    match (column, arg) {
                        (OwnedArg::Texts(values), OwnedArg::Text(value)) => values.push(value),
                        (OwnedArg::Ints(values), OwnedArg::Int(value)) => values.push(value),
                        // Rows of one text bind the same types: each call site binds
                        // its columns one way.
                        _ => unreachable!("a column changed type between rows"),
                    }
                }
                continue;
            }
        }
        let Some(shape) = Mergeable::of(&statement.sql, &statement.args) else {
            merged.push(statement);
            continue;
        };
        let keys = matches!(shape, Mergeable::Update { .. })
            .then(|| HashSet::from([statement.args[0].clone()]));
        let mut casts = Vec::with_capacity(statement.args.len());
        let mut columns = Vec::with_capacity(statement.args.len());
        for (i, arg) in statement.args.into_iter().enumerate() {
            match arg {
                OwnedArg::Text(value) => {
                    casts.push(format!("${}::text[]", i + 1));
                    columns.push(OwnedArg::Texts(vec![value]));
                }
                OwnedArg::Int(value) => {
                    casts.push(format!("${}::int8[]", i + 1));
                    columns.push(OwnedArg::Ints(vec![value]));
                }
                OwnedArg::Texts(_) | OwnedArg::Ints(_) => {
                    unreachable!("Mergeable::of refuses arrays")
                }
            }
        }
        let sql = match shape {
            Mergeable::Insert(target) => {
                format!("{target} SELECT * FROM UNNEST({})", casts.join(", "))
            }
            Mergeable::Update { set, filter } => {
                let names: Vec<String> = (1..=casts.len()).map(|i| format!("v{i}")).collect();
                format!(
                    "{} FROM UNNEST({}) AS merged ({}) WHERE {}",
                    from_merged(set),
                    casts.join(", "),
                    names.join(", "),
                    from_merged(filter)
                )
            }
        };
        at.retain(|(sql, _, _)| *sql != statement.sql);
        if keys.is_some() {
            updates.push(merged.len());
        }
        at.push((statement.sql, merged.len(), keys));
        merged.push(Deferred { sql, args: columns });
    }
    for index in updates {
        sort_rows_by_key(&mut merged[index].args);
    }
    merged
}

/// The rows of merged columns reordered by the first column's values (the keys; each
/// once in a merged update). Any one order does, as long as every server uses it: Rust's,
/// bytewise.
fn sort_rows_by_key(columns: &mut [OwnedArg]) {
    let order = match columns.first() {
        Some(OwnedArg::Texts(keys)) => order_of(keys),
        Some(OwnedArg::Ints(keys)) => order_of(keys),
        _ => return,
    };
    if order.iter().enumerate().all(|(at, from)| at == *from) {
        return;
    }
    for column in columns {
        match column {
            OwnedArg::Texts(values) => {
                let mut taken = std::mem::take(values);
                *values = order.iter().map(|i| taken[*i].take()).collect();
            }
            OwnedArg::Ints(values) => *values = order.iter().map(|i| values[*i]).collect(),
            OwnedArg::Text(_) | OwnedArg::Int(_) => {}
        }
    }
}

/// The indexes of `keys` in the keys' order.
fn order_of<T: Ord>(keys: &[T]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|a, b| keys[*a].cmp(&keys[*b]));
    order
}

/// Whether every argument is one value (not an array), as a merged row's must be.
fn single_valued(args: &[OwnedArg]) -> bool {
    !args.is_empty()
        && !args
            .iter()
            .any(|a| matches!(a, OwnedArg::Texts(_) | OwnedArg::Ints(_)))
}

/// The shapes of statement [`merge_rows`] merges, split where it rewrites them.
enum Mergeable<'s> {
    /// `INSERT INTO t (c…)`, before its `VALUES ($1, …, $n)`.
    Insert(&'s str),
    /// `UPDATE t SET …`, and what follows its ` WHERE `, which starts with `k = $1`.
    Update { set: &'s str, filter: &'s str },
}

impl<'s> Mergeable<'s> {
    /// How a statement of `sql` with `args` can be merged, if it can: one single-valued
    /// argument per placeholder, and one of the two shapes.
    fn of(sql: &'s str, args: &[OwnedArg]) -> Option<Mergeable<'s>> {
        if !single_valued(args) {
            return None;
        }
        if sql.starts_with("INSERT INTO ") {
            let (target, values) = sql.split_once(" VALUES ")?;
            // `($1, $2, …, $n)`, one placeholder per argument, in order.
            let inner = values.trim().strip_prefix('(')?.strip_suffix(')')?;
            let mut placeholders = 0;
            for (i, placeholder) in inner.split(", ").enumerate() {
                if placeholder.strip_prefix('$')?.parse::<usize>().ok()? != i + 1 {
                    return None;
                }
                placeholders += 1;
            }
            return (placeholders == args.len()).then_some(Mergeable::Insert(target.trim_end()));
        }
        if sql.starts_with("UPDATE ")
            && sql.contains(" SET ")
            && ![" FROM ", "SELECT", "RETURNING", "merged"]
                .iter()
                .any(|word| sql.contains(word))
            && highest_placeholder(sql) <= args.len()
        {
            let (set, filter) = sql.split_once(" WHERE ")?;
            let (column, rest) = filter.split_once(" = $1")?;
            let keyed = !column.is_empty()
                && column
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
                && (rest.is_empty() || rest.starts_with(" AND "))
                && !filter.contains(" OR ");
            return keyed.then_some(Mergeable::Update { set, filter });
        }
        None
    }
}

/// `sql` with every `$i` read from the merged rows' column `vi`.
fn from_merged(sql: &str) -> String {
    rewrite_placeholders(sql, |n| format!("merged.v{n}"))
}

/// The highest `$n` in `sql`.
fn highest_placeholder(sql: &str) -> usize {
    let mut highest = 0;
    rewrite_placeholders(sql, |n| {
        highest = highest.max(n);
        String::new()
    });
    highest
}

/// `parts` as one statement: the part itself when it is alone, else the `WITH` parts of
/// a statement.
fn one_statement(
    parts: &mut Vec<String>,
    args: &mut Vec<OwnedArg>,
) -> Option<(String, Vec<OwnedArg>)> {
    let sql = match parts.len() {
        0 => return None,
        1 => parts.remove(0),
        _ => {
            let with: Vec<String> = parts
                .iter()
                .enumerate()
                .map(|(i, part)| format!("w{i} AS ({part})"))
                .collect();
            format!("WITH {} SELECT 1", with.join(", "))
        }
    };
    parts.clear();
    Some((sql, std::mem::take(args)))
}

/// `sql` with every `$n` moved up by `offset`.
fn renumber(sql: &str, offset: usize) -> String {
    if offset == 0 {
        return sql.to_owned();
    }
    rewrite_placeholders(sql, |n| format!("${}", n + offset))
}

/// `sql` with every placeholder `$n` replaced by `with(n)`.
fn rewrite_placeholders(sql: &str, mut with: impl FnMut(usize) -> String) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut digits = String::new();
        while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            digits.push(*d);
            chars.next();
        }
        match digits.parse::<usize>() {
            Ok(n) => out.push_str(&with(n)),
            Err(_) => out.push('$'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferred_writes_become_one_statement() {
        let deferred = |sql: &str, n: i64| Deferred {
            sql: sql.to_owned(),
            args: (0..n).map(|i| OwnedArg::Int(Some(i))).collect(),
        };
        let statements = [
            deferred("INSERT INTO a (x, y) VALUES ($1, $2)", 2),
            deferred("INSERT INTO b (x) VALUES ($1)", 1),
        ];
        let combined = combine(statements.to_vec());
        assert_eq!(combined.len(), 1);
        assert_eq!(
            combined[0].0,
            "WITH w0 AS (INSERT INTO a (x, y) SELECT * FROM UNNEST($1::int8[], $2::int8[])), \
             w1 AS (INSERT INTO b (x) SELECT * FROM UNNEST($3::int8[])) \
             SELECT 1"
        );
        assert_eq!(combined[0].1.len(), 3);
        let alone = combine(statements[..1].to_vec());
        assert_eq!(
            alone[0].0,
            "INSERT INTO a (x, y) SELECT * FROM UNNEST($1::int8[], $2::int8[])"
        );
        assert!(combine(Vec::new()).is_empty());
        assert_eq!(renumber("$1 $10 $2", 10), "$11 $20 $12");
    }

    #[test]
    fn rows_of_one_kind_become_one_insert_whatever_their_number() {
        let row = |id: &str, n: i64| Deferred {
            sql: "INSERT INTO t (a, b) VALUES ($1, $2)".into(),
            args: vec![OwnedArg::Text(Some(id.into())), OwnedArg::Int(Some(n))],
        };
        let other = Deferred {
            sql: "UPDATE u SET x = $1".into(),
            args: vec![OwnedArg::Int(Some(7))],
        };
        let merged = merge_rows(vec![row("a", 1), other.clone(), row("b", 2)]);
        assert_eq!(merged.len(), 2);
        assert_eq!(
            merged[0].sql,
            "INSERT INTO t (a, b) SELECT * FROM UNNEST($1::text[], $2::int8[])"
        );
        assert_eq!(
            merged[0].args,
            [
                OwnedArg::Texts(vec![Some("a".into()), Some("b".into())]),
                OwnedArg::Ints(vec![Some(1), Some(2)])
            ]
        );
        assert_eq!(merged[1].sql, other.sql);
        let one = merge_rows(vec![row("a", 1)]);
        assert_eq!(
            one[0].sql, merged[0].sql,
            "the text does not depend on the count"
        );
        let literal = Deferred {
            sql: "INSERT INTO t (a, b) VALUES ($1, 'x')".into(),
            args: vec![OwnedArg::Int(Some(1))],
        };
        assert_eq!(merge_rows(vec![literal.clone()])[0].sql, literal.sql);
        // Placeholders out of order, or fewer than the arguments: kept as they are.
        for sql in [
            "INSERT INTO t (a, b) VALUES ($2, $1)",
            "INSERT INTO t (a, b) VALUES ($1)",
        ] {
            let odd = Deferred {
                sql: sql.into(),
                args: vec![OwnedArg::Int(Some(1)), OwnedArg::Int(Some(2))],
            };
            let kept = merge_rows(vec![odd.clone(), odd.clone()]);
            assert_eq!(kept.len(), 2, "{sql}");
            assert!(kept.iter().all(|k| k.sql == sql), "{sql}");
        }
    }

    #[test]
    fn keyed_updates_of_one_text_become_one_update_and_a_repeated_key_another() {
        let update = |id: &str, status: &str| Deferred {
            sql: "UPDATE d SET status = $2, lease_until = NULL WHERE id = $1 AND status <> $2"
                .into(),
            args: vec![
                OwnedArg::Text(Some(id.into())),
                OwnedArg::Text(Some(status.into())),
            ],
        };
        let merged = merge_rows(vec![
            update("a", "sent"),
            update("b", "failed"),
            update("a", "skipped"),
            update("c", "sent"),
        ]);
        assert_eq!(merged.len(), 2, "{merged:?}");
        assert_eq!(
            merged[0].sql,
            "UPDATE d SET status = merged.v2, lease_until = NULL \
             FROM UNNEST($1::text[], $2::text[]) AS merged (v1, v2) \
             WHERE id = merged.v1 AND status <> merged.v2"
        );
        assert_eq!(
            merged[0].args,
            [
                OwnedArg::Texts(vec![Some("a".into()), Some("b".into())]),
                OwnedArg::Texts(vec![Some("sent".into()), Some("failed".into())])
            ]
        );
        // The second change of "a" comes after the first, in a statement of its own, and
        // the rows after it join that one.
        assert_eq!(merged[1].sql, merged[0].sql);
        assert_eq!(
            merged[1].args[0],
            OwnedArg::Texts(vec![Some("a".into()), Some("c".into())])
        );

        let unmergeable = [
            "UPDATE d SET x = $1",
            "UPDATE d SET x = $2 WHERE id = $10",
            "UPDATE d SET x = $2 WHERE id = $1 OR y = $2",
            "UPDATE d SET x = $2 WHERE id = $1 AND y IN (SELECT y FROM e)",
            "UPDATE d SET x = $2 WHERE id = $1 RETURNING id",
            "UPDATE d SET x = $3 WHERE id = $1",
        ];
        for sql in unmergeable {
            let statement = Deferred {
                sql: sql.into(),
                args: vec![OwnedArg::Int(Some(1)), OwnedArg::Int(Some(2))],
            };
            let kept = merge_rows(vec![statement.clone(), statement.clone()]);
            assert_eq!(kept, [statement.clone(), statement], "{sql}");
        }
    }

    #[test]
    fn a_merged_update_changes_its_rows_in_key_order() {
        let update = |id: &str, attempts: i64| Deferred {
            sql: "UPDATE d SET attempts = $2 WHERE id = $1".into(),
            args: vec![
                OwnedArg::Text(Some(id.into())),
                OwnedArg::Int(Some(attempts)),
            ],
        };
        let merged = merge_rows(vec![update("c", 3), update("a", 1), update("b", 2)]);
        assert_eq!(merged.len(), 1, "{merged:?}");
        assert_eq!(
            merged[0].args,
            [
                OwnedArg::Texts(vec![Some("a".into()), Some("b".into()), Some("c".into())]),
                OwnedArg::Ints(vec![Some(1), Some(2), Some(3)])
            ],
            "each row keeps its values"
        );
        // Integer keys too; and inserts keep the order they were written in.
        let by_number = |key: i64| Deferred {
            sql: "UPDATE d SET x = 1 WHERE n = $1".into(),
            args: vec![OwnedArg::Int(Some(key))],
        };
        let merged = merge_rows(vec![by_number(10), by_number(2)]);
        assert_eq!(merged[0].args, [OwnedArg::Ints(vec![Some(2), Some(10)])]);
        let insert = |id: &str| Deferred {
            sql: "INSERT INTO t (a) VALUES ($1)".into(),
            args: vec![OwnedArg::Text(Some(id.into()))],
        };
        let merged = merge_rows(vec![insert("b"), insert("a")]);
        assert_eq!(
            merged[0].args,
            [OwnedArg::Texts(vec![Some("b".into()), Some("a".into())])]
        );
    }

    #[test]
    fn too_many_arguments_split_into_several_statements() {
        let big = Deferred {
            sql: "INSERT INTO a VALUES ($1)".into(),
            args: vec![OwnedArg::Int(Some(1)); 20_000],
        };
        let combined = combine(vec![big.clone(), big.clone(), big]);
        assert_eq!(combined.len(), 3);
        assert!(combined.iter().all(|(_, args)| args.len() <= MAX_ARGS));
    }
}
