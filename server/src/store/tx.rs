//! [`Tx`]: the one way to change the database. Every write in the service is a closure
//! given a `Tx` by [`super::Store::write`]; it uses the typed operations of the store's
//! modules (insert a pause, decide one, record a delivery attempt…), appends audit events
//! with [`Tx::append_audit`] and announces what it changed with [`Tx::announce`]. The
//! store commits, and only after the commit are the changes handed to the hub.
//!
//! Statements whose result nobody needs (inserts, the record of an attempt) are deferred
//! ([`Tx::defer`]) and sent when the write ends: on PostgreSQL all together as one
//! statement, so that a create costs one round trip; on SQLite one after the other, at the
//! end of the request's own savepoint. A statement that needs an answer (a conditional
//! status change) runs at once, and on PostgreSQL opens the transaction.
//!
//! A write whose statements do not depend on what it reads (a create) builds them before
//! it reaches the writer, in a [`Draft`], and hands the draft to its `Tx`: the writer runs
//! one write after another, so what it does for each is what limits a group's rate.
//!
//! Audit events are put on their project's chain when the group commit that holds the
//! write ends on SQLite (see [`super::audit::chain`]), and by the sequencer moments after
//! it on PostgreSQL (see [`super::sequencer`]).

use std::ops::{Deref, DerefMut};

use jiff::Timestamp;
use pausepoint_api::AuditEventKind;
use serde_json::Value;
use uuid::Uuid;

use super::audit::{Actor, PendingEvent};
use super::db::{Arg, Conn, OwnedArg};
use super::{Dialect, StoreError};
use crate::hub::Change;
use crate::ids::{PauseId, ProjectId};
use pausepoint_api::audit::CanonicalData;

/// A statement kept for the end of the write.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Deferred {
    pub sql: String,
    pub args: Vec<OwnedArg>,
}

/// What a write will make, built before it runs: its deferred statements, audit events
/// and changes, in the order a [`Tx`] would have taken them. [`Tx::include`] takes them.
#[derive(Default)]
pub struct Draft {
    deferred: Vec<Deferred>,
    audit: Vec<PendingEvent>,
    changes: Vec<Change>,
}

impl Draft {
    /// Sends `sql` when the write ends; its result is not needed.
    pub(super) fn defer(&mut self, sql: impl Into<String>, args: &[Arg<'_>]) {
        self.deferred.push(Deferred {
            sql: sql.into(),
            args: args.iter().copied().map(OwnedArg::from).collect(),
        });
    }

    /// Appends an event to the project's audit chain when the transaction commits.
    pub fn append_audit(
        &mut self,
        project_id: ProjectId,
        event: AuditEventKind,
        pause_id: Option<PauseId>,
        actor: &Actor,
        data: Value,
        at: Timestamp,
    ) {
        // Stored to the millisecond, so hashed to the millisecond.
        let occurred_at = Timestamp::from_millisecond(at.as_millisecond()).unwrap_or(at);
        self.audit.push(PendingEvent {
            project_id,
            event_id: Uuid::now_v7(),
            event,
            pause_id,
            actor: actor.to_string(),
            occurred_at,
            data: CanonicalData::of(&data),
        });
    }

    /// Tells the hub (and, for what they care about, the other servers) about `change`
    /// once the transaction commits.
    pub fn announce(&mut self, change: Change) {
        self.changes.push(change);
    }
}

/// A transaction in progress. Reads through it see its own writes, but not its deferred
/// statements (they are not sent yet).
pub struct Tx {
    conn: Conn,
    draft: Draft,
}

/// How far a transaction had got, to undo one request's part of a group commit.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    deferred: usize,
    audit: usize,
    changes: usize,
}

impl Tx {
    pub(super) fn new(conn: Conn) -> Tx {
        Tx {
            conn,
            draft: Draft::default(),
        }
    }

    /// Sends `sql` when the write ends; its result is not needed.
    pub(super) fn defer(&mut self, sql: impl Into<String>, args: &[Arg<'_>]) {
        self.draft.defer(sql, args);
    }

    /// Sends `statement` when the write ends.
    pub(super) fn defer_owned(&mut self, statement: Deferred) {
        self.draft.deferred.push(statement);
    }

    /// Appends an event to the project's audit chain when the transaction commits.
    pub fn append_audit(
        &mut self,
        project_id: ProjectId,
        event: AuditEventKind,
        pause_id: Option<PauseId>,
        actor: &Actor,
        data: Value,
        at: Timestamp,
    ) {
        self.draft
            .append_audit(project_id, event, pause_id, actor, data, at);
    }

    /// Tells the hub (and, for what they care about, the other servers) about `change`
    /// once the transaction commits.
    pub fn announce(&mut self, change: Change) {
        self.draft.announce(change);
    }

    /// Takes what `draft` holds, after what the transaction holds already.
    pub(super) fn include(&mut self, draft: Draft) {
        let Draft {
            deferred,
            audit,
            changes,
        } = draft;
        self.draft.deferred.extend(deferred);
        self.draft.audit.extend(audit);
        self.draft.changes.extend(changes);
    }

    pub fn dialect(&self) -> Dialect {
        self.conn.dialect()
    }

    pub(super) fn mark(&self) -> Mark {
        Mark {
            deferred: self.draft.deferred.len(),
            audit: self.draft.audit.len(),
            changes: self.draft.changes.len(),
        }
    }

    /// Forgets what was deferred, appended and announced since `mark` (its statements
    /// were rolled back to a savepoint).
    pub(super) fn forget_since(&mut self, mark: Mark) {
        self.draft.deferred.truncate(mark.deferred);
        self.draft.audit.truncate(mark.audit);
        self.draft.changes.truncate(mark.changes);
    }

    /// Sends the deferred statements one by one (SQLite, at the end of a request).
    pub(super) async fn send_deferred(&mut self) -> Result<(), StoreError> {
        for statement in std::mem::take(&mut self.draft.deferred) {
            let args: Vec<Arg<'_>> = statement.args.iter().map(OwnedArg::as_arg).collect();
            self.conn.execute(&statement.sql, &args).await?;
        }
        Ok(())
    }

    /// The deferred statements, leaving none behind.
    pub(super) fn take_deferred(&mut self) -> Vec<Deferred> {
        std::mem::take(&mut self.draft.deferred)
    }

    /// The audit events appended so far, leaving none behind.
    pub(super) fn take_audit(&mut self) -> Vec<PendingEvent> {
        std::mem::take(&mut self.draft.audit)
    }

    /// The changes to announce, leaving none behind.
    pub(super) fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.draft.changes)
    }

    /// Drops whatever a failed transaction deferred, appended and announced.
    pub(super) fn discard(&mut self) {
        self.draft.deferred.clear();
        self.draft.audit.clear();
        self.draft.changes.clear();
    }

    pub(super) fn conn_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }

    pub(super) fn into_conn(self) -> Conn {
        self.conn
    }
}

/// Reads inside a transaction use the same statements as reads outside one.
impl Deref for Tx {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}
