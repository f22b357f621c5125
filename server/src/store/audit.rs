//! The audit log's rows. Each project has one hash chain: `seq` from 1 with no gaps, each
//! event hashed onto the one before. On SQLite a write's events are put on the chain when
//! its group commit ends ([`chain`]): the project's head is read, each event is hashed
//! onto it, and the events and the new head are written in the same transaction. On
//! PostgreSQL they are queued with the write and put on the chain the same way, in
//! batches, by the [`super::sequencer`] after the commit; reads wait for it
//! ([`Store::settle_audit`]). The database refuses UPDATE and DELETE on `audit_events`.

use std::fmt;

use jiff::Timestamp;
use pausepoint_api::audit::{chain_hash, CanonicalData};
use pausepoint_api::{AuditEvent, AuditEventKind};
use uuid::Uuid;

use std::collections::BTreeMap;

use super::db::{args, Arg, Conn, OwnedArg, Query, Row};
use super::tx::Deferred;
use super::{Store, StoreError};
use crate::ids::{KeyId, PauseId, ProjectId, RuleId};

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
    /// A remembered approval, allowing a call the approver already allowed.
    Rule(RuleId),
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

    /// One of a pause's approvers, shown the same way.
    pub fn approver(approver: &pausepoint_api::Approver) -> Actor {
        Actor::Recipient(pausepoint_api::shown_recipient(
            approver.channel,
            &approver.recipient,
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
            Actor::Rule(id) => write!(f, "rule:{id}"),
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
    pub data: CanonicalData,
}

/// Which events to read. Every field narrows; none reads them all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub pause_id: Option<PauseId>,
    pub event: Option<AuditEventKind>,
    /// Exactly as events name it: `api_key:<id>`, `recipient:<who>`, `admin:<user>`, `system`.
    pub actor: Option<String>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

pub(super) const COLUMNS: &str =
    "seq, event_id, event, pause_id, actor, occurred_at, data, prev_hash, hash";
const TABLE: &str = "audit_events";

pub(super) fn from_row(row: &dyn Row) -> Result<AuditEvent, StoreError> {
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

/// The heads of projects' chains: (last seq, its hash) for each.
pub(super) type Heads = BTreeMap<ProjectId, (i64, String)>;

/// The projects of `events`, in id order.
pub(super) fn projects_of(events: &[PendingEvent]) -> Vec<ProjectId> {
    let mut projects: Vec<ProjectId> = events.iter().map(|e| e.project_id).collect();
    projects.sort();
    projects.dedup();
    projects
}

/// The query that reads the heads of `projects`. Only SQLite chains events as it writes
/// them, under the database's one write lock; on PostgreSQL the sequencer reads the heads
/// with its batch (see [`super::sequencer`]).
pub(super) fn heads_query(projects: &[ProjectId]) -> Deferred {
    let placeholders: Vec<String> = (1..=projects.len()).map(|i| format!("${i}")).collect();
    Deferred {
        sql: format!(
            "SELECT id, audit_seq, audit_head FROM projects WHERE id IN ({}) ORDER BY id",
            placeholders.join(", ")
        ),
        args: projects
            .iter()
            .map(|p| OwnedArg::Text(Some(p.to_string())))
            .collect(),
    }
}

/// One row of [`heads_query`].
pub(super) fn head_from_row(row: &dyn Row) -> Result<(ProjectId, (i64, String)), StoreError> {
    Ok((
        ProjectId::from(row.uuid("id")?),
        (row.int("audit_seq")?, row.text("audit_head")?),
    ))
}

/// The statements that put `events` on their projects' chains after `heads`, in order:
/// each event hashed onto the one before, then the moved heads.
pub(super) fn chained(
    mut heads: Heads,
    events: &[PendingEvent],
) -> Result<Vec<Deferred>, StoreError> {
    let mut statements = Vec::with_capacity(events.len() + heads.len());
    for event in events {
        let (seq, prev_hash) = heads.get_mut(&event.project_id).ok_or_else(|| {
            StoreError::corrupt("projects", "an audit event for a missing project")
        })?;
        *seq += 1;
        let pause_id = event.pause_id.map(Uuid::from);
        let hash = chain_hash(
            prev_hash,
            &event.event_id,
            *seq,
            event.event,
            &pause_id,
            &event.actor,
            &event.occurred_at,
            &event.data,
        );
        statements.push(insert_event(vec![
            OwnedArg::Text(Some(event.project_id.to_string())),
            OwnedArg::Int(Some(*seq)),
            OwnedArg::Text(Some(event.event_id.to_string())),
            OwnedArg::Text(Some(event.event.as_str().to_owned())),
            OwnedArg::Text(pause_id.map(|id| id.to_string())),
            OwnedArg::Text(Some(event.actor.clone())),
            OwnedArg::Int(Some(event.occurred_at.as_millisecond())),
            OwnedArg::Text(Some(event.data.as_str().to_owned())),
            OwnedArg::Text(Some(std::mem::replace(prev_hash, hash.clone()))),
            OwnedArg::Text(Some(hash)),
        ]));
    }
    for (project_id, (seq, hash)) in heads {
        statements.push(Deferred {
            sql: "UPDATE projects SET audit_seq = $2, audit_head = $3 WHERE id = $1".into(),
            args: vec![
                OwnedArg::Text(Some(project_id.to_string())),
                OwnedArg::Int(Some(seq)),
                OwnedArg::Text(Some(hash)),
            ],
        });
    }
    Ok(statements)
}

/// The statements that put `events` on their chains, reading the heads now (SQLite, in
/// the writer's transaction).
pub(super) async fn chain(
    conn: &mut Conn,
    events: &[PendingEvent],
) -> Result<Vec<Deferred>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let query = heads_query(&projects_of(events));
    let args: Vec<Arg<'_>> = query.args.iter().map(OwnedArg::as_arg).collect();
    let heads = conn
        .fetch_all("projects", &query.sql, &args, head_from_row)
        .await?;
    chained(heads.into_iter().collect(), events)
}

/// One event's insert; PostgreSQL gets a group's events as one (see the writer).
fn insert_event(args: Vec<OwnedArg>) -> Deferred {
    Deferred {
        sql: "INSERT INTO audit_events \
                 (project_id, seq, event_id, event, pause_id, actor, occurred_at, data, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            .into(),
        args,
    }
}

impl Store {
    /// Up to `limit` of the project's events matching `filter`, oldest first, after `after_seq`.
    pub async fn audit_events(
        &self,
        project_id: ProjectId,
        filter: AuditFilter,
        after_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.settle_audit(project_id).await?;
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
        // Not settled: a walk reads up to a head it read (and settled) first.
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
        self.settle_audit(project_id).await?;
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

/// The query for up to `limit` of the project's events matching `filter`, oldest first,
/// after `after_seq`: each filter is served by an index (`audit_events_by_pause`, `_by_event`,
/// `_by_actor`, `_by_time`), and pages are keyed by `seq`, never by offset.
pub fn audit_query(
    project_id: ProjectId,
    filter: &AuditFilter,
    after_seq: Option<i64>,
    limit: u32,
) -> Query {
    let text = |value: String| OwnedArg::Text(Some(value));
    let mut query = Query::new(format!("SELECT {COLUMNS} FROM audit_events WHERE "));
    query.push("project_id = ?", [text(project_id.to_string())]);
    if let Some(pause_id) = filter.pause_id {
        query.push(" AND pause_id = ?", [text(pause_id.to_string())]);
    }
    if let Some(event) = filter.event {
        query.push(" AND event = ?", [text(event.as_str().to_owned())]);
    }
    if let Some(actor) = &filter.actor {
        query.push(" AND actor = ?", [text(actor.clone())]);
    }
    if let Some(since) = filter.since {
        query.push(
            " AND occurred_at >= ?",
            [OwnedArg::Int(Some(since.as_millisecond()))],
        );
    }
    if let Some(until) = filter.until {
        query.push(
            " AND occurred_at < ?",
            [OwnedArg::Int(Some(until.as_millisecond()))],
        );
    }
    // With a time range, neither the cursor nor the order may lure the planner onto the
    // (project, seq) key, which would walk every event after the cursor filtering by time:
    // `+seq` is the same value to both databases but no index's column, so the time index
    // serves the range and only the range is sorted.
    let seq = match filter.since.is_some() || filter.until.is_some() {
        true => "+seq",
        false => "seq",
    };
    if let Some(after) = after_seq {
        query.push(&format!(" AND {seq} > ?"), [OwnedArg::Int(Some(after))]);
    }
    query.push(
        &format!(" ORDER BY {seq} LIMIT ?"),
        [OwnedArg::Int(Some(i64::from(limit)))],
    );
    query
}

/// Up to `limit` of the project's events matching `filter`, oldest first, after `after_seq`.
pub async fn audit_events(
    conn: &mut Conn,
    project_id: ProjectId,
    filter: AuditFilter,
    after_seq: Option<i64>,
    limit: u32,
) -> Result<Vec<AuditEvent>, StoreError> {
    let query = audit_query(project_id, &filter, after_seq, limit);
    conn.fetch_all(TABLE, query.sql(), &query.args(), from_row)
        .await
}
