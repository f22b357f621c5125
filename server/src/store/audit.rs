//! The audit log's rows. Each project has one hash chain: `seq` from 1 with no gaps, each
//! event hashed onto the one before. Events are put on the chain in groups, by
//! [`append_to_chains`]: it reads the project's head (locking the project's row on
//! PostgreSQL), hashes each event onto it, inserts them and moves the head, in one
//! transaction. On SQLite that happens when each group commit ends; on PostgreSQL
//! requests write their events to `audit_pending` and the sequencer
//! ([`Store::sequence_pending`]) chains them after the commit, so that no request waits on
//! the project's lock. Reads show only chained events. The database refuses UPDATE and
//! DELETE on `audit_events`.

use std::fmt;

use jiff::Timestamp;
use pausepoint_api::audit::chain_hash;
use pausepoint_api::{AuditEvent, AuditEventKind};
use serde_json::Value;
use uuid::Uuid;

use super::db::{args, Arg, Conn, Row};
use super::{Dialect, Store, StoreError};
use crate::ids::{KeyId, PauseId, ProjectId};

/// Who did what an audit event records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A request made with this API key.
    ApiKey(KeyId),
    /// The human a pause was sent to, as they may be shown (see [`Actor::recipient`]).
    Recipient(String),
    /// Someone running `pp admin` on the server's machine, by operating-system user.
    Admin(Option<String>),
    /// The service itself: timeouts, deliveries, webhooks.
    System,
}

impl Actor {
    /// The human `pause` was sent to, a Slack webhook URL shown only by its start (it is a
    /// credential).
    pub fn recipient(pause: &pausepoint_api::Pause) -> Actor {
        Actor::Recipient(pausepoint_api::shown_recipient(
            pause.channel,
            &pause.recipient,
        ))
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::ApiKey(id) => write!(f, "api_key:{id}"),
            Actor::Recipient(recipient) => write!(f, "recipient:{recipient}"),
            Actor::Admin(Some(user)) => write!(f, "admin:{user}"),
            Actor::Admin(None) => f.write_str("admin"),
            Actor::System => f.write_str("system"),
        }
    }
}

/// An event appended by a transaction, not yet on its chain.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub project_id: ProjectId,
    pub event_id: Uuid,
    pub event: AuditEventKind,
    pub pause_id: Option<PauseId>,
    pub actor: String,
    pub occurred_at: Timestamp,
    pub data: Value,
}

/// Which events to read. Every field narrows; none reads them all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub pause_id: Option<PauseId>,
    pub event: Option<AuditEventKind>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

const COLUMNS: &str = "seq, event_id, event, pause_id, actor, occurred_at, data, prev_hash, hash";
const TABLE: &str = "audit_events";
/// Rows per multi-row INSERT.
const INSERT_CHUNK: usize = 100;

fn from_row(row: &dyn Row) -> Result<AuditEvent, StoreError> {
    let corrupt = |detail: String| StoreError::corrupt(TABLE, detail);
    let data = row.text("data")?;
    Ok(AuditEvent {
        event_id: row.uuid("event_id")?,
        seq: row.int("seq")?,
        event: row.text("event")?.parse().map_err(corrupt)?,
        pause_id: row.opt_uuid("pause_id")?,
        actor: row.text("actor")?,
        occurred_at: row.time("occurred_at")?,
        data: serde_json::from_str(&data).map_err(|e| corrupt(format!("data: {e}")))?,
        prev_hash: row.text("prev_hash")?,
        hash: row.text("hash")?,
    })
}

/// Puts `events` on their projects' chains, in order, inside `conn`'s transaction.
pub(super) async fn append_to_chains(
    conn: &mut Conn,
    events: &[PendingEvent],
) -> Result<(), StoreError> {
    let mut projects: Vec<ProjectId> = Vec::new();
    for event in events {
        if !projects.contains(&event.project_id) {
            projects.push(event.project_id);
        }
    }
    for project_id in projects {
        let own: Vec<&PendingEvent> = events
            .iter()
            .filter(|e| e.project_id == project_id)
            .collect();
        let head = lock_head(conn, project_id, false).await?;
        let Some(head) = head else {
            return Err(StoreError::corrupt(
                "projects",
                "an event for a missing project",
            ));
        };
        chain(conn, project_id, head, &own).await?;
    }
    Ok(())
}

/// The head of a project's chain, (last seq, its hash), locking the project's row on
/// PostgreSQL until the transaction ends. With `skip_if_locked`, None when another
/// transaction holds it.
async fn lock_head(
    conn: &mut Conn,
    project_id: ProjectId,
    skip_if_locked: bool,
) -> Result<Option<(i64, String)>, StoreError> {
    let lock = match (conn.dialect(), skip_if_locked) {
        (Dialect::Sqlite, _) => "",
        (Dialect::Postgres, false) => "FOR UPDATE",
        (Dialect::Postgres, true) => "FOR UPDATE SKIP LOCKED",
    };
    let sql = format!("SELECT audit_seq, audit_head FROM projects WHERE id = $1 {lock}");
    conn.fetch_optional("projects", &sql, args![&project_id.to_string()], |row| {
        Ok((row.int("audit_seq")?, row.text("audit_head")?))
    })
    .await
}

/// Hashes `events` onto `head`, inserts them and moves the project's head.
async fn chain(
    conn: &mut Conn,
    project_id: ProjectId,
    head: (i64, String),
    events: &[&PendingEvent],
) -> Result<(), StoreError> {
    let (mut seq, mut prev_hash) = head;
    let project = project_id.to_string();
    struct Chained {
        seq: i64,
        event_id: String,
        event: &'static str,
        pause_id: Option<String>,
        data: String,
        prev_hash: String,
        hash: String,
    }
    let mut rows = Vec::with_capacity(events.len());
    for event in events {
        seq += 1;
        let pause_id = event.pause_id.map(Uuid::from);
        let hash = chain_hash(
            &prev_hash,
            &event.event_id,
            seq,
            event.event,
            &pause_id,
            &event.actor,
            &event.occurred_at,
            &event.data,
        )
        .map_err(|e| StoreError::corrupt(TABLE, format!("cannot hash an event: {e}")))?;
        rows.push(Chained {
            seq,
            event_id: event.event_id.to_string(),
            event: event.event.as_str(),
            pause_id: pause_id.map(|id| id.to_string()),
            data: event.data.to_string(),
            prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
            hash,
        });
    }
    for (chunk, source) in rows.chunks(INSERT_CHUNK).zip(events.chunks(INSERT_CHUNK)) {
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 10);
        for (row, event) in chunk.iter().zip(source) {
            args.extend([
                Arg::from(project.as_str()),
                Arg::from(row.seq),
                Arg::from(row.event_id.as_str()),
                Arg::from(row.event),
                Arg::from(row.pause_id.as_deref()),
                Arg::from(event.actor.as_str()),
                Arg::from(event.occurred_at),
                Arg::from(row.data.as_str()),
                Arg::from(row.prev_hash.as_str()),
                Arg::from(row.hash.as_str()),
            ]);
        }
        let sql = format!(
            "INSERT INTO audit_events \
                 (project_id, seq, event_id, event, pause_id, actor, occurred_at, data, prev_hash, hash) \
             VALUES {}",
            values(chunk.len(), 10)
        );
        conn.execute(&sql, &args).await?;
    }
    conn.execute(
        "UPDATE projects SET audit_seq = $2, audit_head = $3 WHERE id = $1",
        args![project.as_str(), seq, prev_hash.as_str()],
    )
    .await?;
    Ok(())
}

/// `($1, $2), ($3, $4)`: the placeholders of `rows` rows of `columns` values.
pub(super) fn values(rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(row * columns + column + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

/// Writes events to be chained by the sequencer (PostgreSQL), inside `conn`'s transaction.
pub(super) async fn insert_pending(
    conn: &mut Conn,
    events: &[PendingEvent],
) -> Result<(), StoreError> {
    for chunk in events.chunks(INSERT_CHUNK) {
        let texts: Vec<[String; 4]> = chunk
            .iter()
            .map(|e| {
                [
                    e.project_id.to_string(),
                    e.event_id.to_string(),
                    e.pause_id.map(|id| id.to_string()).unwrap_or_default(),
                    e.data.to_string(),
                ]
            })
            .collect();
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 7);
        for (event, text) in chunk.iter().zip(&texts) {
            args.extend([
                Arg::from(text[0].as_str()),
                Arg::from(text[1].as_str()),
                Arg::from(event.event.as_str()),
                Arg::from(event.pause_id.map(|_| text[2].as_str())),
                Arg::from(event.actor.as_str()),
                Arg::from(event.occurred_at),
                Arg::from(text[3].as_str()),
            ]);
        }
        let sql = format!(
            "INSERT INTO audit_pending (project_id, event_id, event, pause_id, actor, occurred_at, data) \
             VALUES {}",
            values(chunk.len(), 7)
        );
        conn.execute(&sql, &args).await?;
    }
    Ok(())
}

/// The pending events of one project, oldest first.
async fn pending_of(
    conn: &mut Conn,
    project_id: ProjectId,
    limit: u32,
) -> Result<Vec<(i64, PendingEvent)>, StoreError> {
    conn.fetch_all(
        "audit_pending",
        "SELECT id, event_id, event, pause_id, actor, occurred_at, data FROM audit_pending \
         WHERE project_id = $1 ORDER BY id LIMIT $2",
        args![&project_id.to_string(), limit],
        |row| {
            let corrupt = |detail: String| StoreError::corrupt("audit_pending", detail);
            Ok((
                row.int("id")?,
                PendingEvent {
                    project_id,
                    event_id: row.uuid("event_id")?,
                    event: row.text("event")?.parse().map_err(corrupt)?,
                    pause_id: row.opt_uuid("pause_id")?.map(PauseId::from),
                    actor: row.text("actor")?,
                    occurred_at: row.time("occurred_at")?,
                    data: serde_json::from_str(&row.text("data")?)
                        .map_err(|e| corrupt(format!("data: {e}")))?,
                },
            ))
        },
    )
    .await
}

/// Events a sequencer chains in one transaction.
const SEQUENCE_BATCH: u32 = 5000;

impl Store {
    /// Chains the project's pending events (PostgreSQL), in batches until none is left.
    /// With `skip_if_busy`, leaves them to whoever is chaining them already. Returns how
    /// many it chained. On SQLite every event is chained at commit: there is nothing to do.
    pub async fn sequence_pending(
        &self,
        project_id: ProjectId,
        skip_if_busy: bool,
    ) -> Result<usize, StoreError> {
        if self.dialect() == Dialect::Sqlite || !self.has_pending_events(project_id).await? {
            return Ok(0);
        }
        let mut total = 0;
        loop {
            let chained: usize = self
                .write(move |tx| {
                    Box::pin(async move {
                        let Some(head) = lock_head(tx, project_id, skip_if_busy).await? else {
                            return Ok::<_, StoreError>(0);
                        };
                        let pending = pending_of(tx, project_id, SEQUENCE_BATCH).await?;
                        let Some(last) = pending.last().map(|(id, _)| *id) else {
                            return Ok(0);
                        };
                        let events: Vec<&PendingEvent> = pending.iter().map(|(_, e)| e).collect();
                        chain(tx, project_id, head, &events).await?;
                        tx.execute(
                            "DELETE FROM audit_pending WHERE project_id = $1 AND id <= $2",
                            args![&project_id.to_string(), last],
                        )
                        .await?;
                        Ok(pending.len())
                    })
                })
                .await?;
            total += chained;
            if chained < SEQUENCE_BATCH as usize {
                return Ok(total);
            }
        }
    }

    /// Whether the project has events waiting to be chained.
    async fn has_pending_events(&self, project_id: ProjectId) -> Result<bool, StoreError> {
        self.read(move |conn| {
            Box::pin(async move {
                let found = conn
                    .fetch_optional(
                        "audit_pending",
                        "SELECT 1 AS one FROM audit_pending WHERE project_id = $1 LIMIT 1",
                        args![&project_id.to_string()],
                        |row| row.int("one"),
                    )
                    .await?;
                Ok(found.is_some())
            })
        })
        .await
    }

    /// Projects with events waiting to be chained.
    pub async fn projects_with_pending_events(&self) -> Result<Vec<ProjectId>, StoreError> {
        self.read(|conn| {
            Box::pin(async move {
                conn.fetch_all(
                    "audit_pending",
                    "SELECT DISTINCT project_id FROM audit_pending",
                    &[],
                    |row| Ok(ProjectId::from(row.uuid("project_id")?)),
                )
                .await
            })
        })
        .await
    }

    /// Up to `limit` of the project's events matching `filter`, oldest first, after `after_seq`.
    pub async fn audit_events(
        &self,
        project_id: ProjectId,
        filter: AuditFilter,
        after_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.read(move |conn| Box::pin(audit_events(conn, project_id, filter, after_seq, limit)))
            .await
    }

    /// Up to `limit` of the project's events after `after_seq`, in order, each read on its
    /// own: a row whose fields no longer parse comes back as its seq and what is wrong,
    /// so that verification names it.
    pub async fn audit_rows(
        &self,
        project_id: ProjectId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<Result<AuditEvent, (i64, String)>>, StoreError> {
        self.read(move |conn| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {COLUMNS} FROM audit_events WHERE project_id = $1 AND seq > $2 \
                     ORDER BY seq LIMIT $3"
                );
                conn.fetch_all(
                    TABLE,
                    &sql,
                    args![&project_id.to_string(), after_seq, limit],
                    |row| {
                        let seq = row.int("seq")?;
                        Ok(from_row(row).map_err(|e| (seq, e.to_string())))
                    },
                )
                .await
            })
        })
        .await
    }

    /// The last sequence number on the project's chain, and its hash.
    pub async fn audit_head(&self, project_id: ProjectId) -> Result<(i64, String), StoreError> {
        self.read(move |conn| {
            Box::pin(async move {
                conn.fetch_one(
                    "projects",
                    "SELECT audit_seq, audit_head FROM projects WHERE id = $1",
                    args![&project_id.to_string()],
                    |row| Ok((row.int("audit_seq")?, row.text("audit_head")?)),
                )
                .await
            })
        })
        .await
    }
}

/// Up to `limit` of the project's events matching `filter`, oldest first, after `after_seq`.
pub async fn audit_events(
    conn: &mut Conn,
    project_id: ProjectId,
    filter: AuditFilter,
    after_seq: Option<i64>,
    limit: u32,
) -> Result<Vec<AuditEvent>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM audit_events \
         WHERE project_id = $1 \
           AND (CAST($2 AS TEXT) IS NULL OR pause_id = $2) \
           AND (CAST($3 AS TEXT) IS NULL OR event = $3) \
           AND (CAST($4 AS BIGINT) IS NULL OR occurred_at >= $4) \
           AND (CAST($5 AS BIGINT) IS NULL OR occurred_at < $5) \
           AND seq > $6 \
         ORDER BY seq LIMIT $7"
    );
    let pause_id = filter.pause_id.map(|id| id.to_string());
    conn.fetch_all(
        TABLE,
        &sql,
        args![
            &project_id.to_string(),
            pause_id.as_deref(),
            filter.event.map(AuditEventKind::as_str),
            filter.since,
            filter.until,
            after_seq.unwrap_or(0),
            limit,
        ],
        from_row,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_of_many_rows() {
        assert_eq!(values(2, 3), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values(1, 1), "($1)");
    }
}
