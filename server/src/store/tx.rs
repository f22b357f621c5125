//! [`Tx`]: the one way to change the database. Every write in the service is a closure
//! given a `Tx` by [`super::Store::write`]; it uses the typed operations of the store's
//! modules (insert a pause, decide one, record a delivery attempt…), appends audit events
//! with [`Tx::append_audit`] and announces what it changed with [`Tx::announce`]. The
//! store commits, and only after the commit are the changes handed to the hub.
//!
//! Audit events are put on their project's chain when the transaction ends: on SQLite
//! in the same transaction (one writer, so the chain is never contended); on PostgreSQL
//! they are written unsequenced and the sequencer chains them after the commit, so no
//! request waits on the project's lock.

use std::ops::{Deref, DerefMut};

use jiff::Timestamp;
use pausepoint_api::AuditEventKind;
use serde_json::Value;
use uuid::Uuid;

use super::audit::{Actor, PendingEvent};
use super::db::Conn;
use super::{Dialect, StoreError};
use crate::hub::Change;
use crate::ids::{PauseId, ProjectId};

/// A transaction in progress. Reads through it see its own writes.
pub struct Tx {
    conn: Conn,
    audit: Vec<PendingEvent>,
    changes: Vec<Change>,
}

/// How far a transaction had got, to undo one request's part of a group commit.
#[derive(Debug, Clone, Copy)]
pub(super) struct Mark {
    audit: usize,
    changes: usize,
}

impl Tx {
    pub(super) fn new(conn: Conn) -> Tx {
        Tx {
            conn,
            audit: Vec::new(),
            changes: Vec::new(),
        }
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
            data,
        });
    }

    /// Tells the hub (and the other servers) about `change` once the transaction commits.
    pub fn announce(&mut self, change: Change) {
        self.changes.push(change);
    }

    pub fn dialect(&self) -> Dialect {
        self.conn.dialect()
    }

    pub(super) fn mark(&self) -> Mark {
        Mark {
            audit: self.audit.len(),
            changes: self.changes.len(),
        }
    }

    /// Forgets what was appended and announced since `mark` (its statements were rolled
    /// back to a savepoint).
    pub(super) fn forget_since(&mut self, mark: Mark) {
        self.audit.truncate(mark.audit);
        self.changes.truncate(mark.changes);
    }

    /// Writes the audit events appended so far, just before the commit: onto their chains
    /// (SQLite), or unsequenced for the sequencer (PostgreSQL), which is then told.
    pub(super) async fn flush(&mut self) -> Result<(), StoreError> {
        let events = std::mem::take(&mut self.audit);
        if events.is_empty() {
            return Ok(());
        }
        match self.conn.dialect() {
            Dialect::Sqlite => super::audit::append_to_chains(&mut self.conn, &events).await,
            Dialect::Postgres => {
                super::audit::insert_pending(&mut self.conn, &events).await?;
                let mut projects: Vec<ProjectId> = events.iter().map(|e| e.project_id).collect();
                projects.sort();
                projects.dedup();
                for project_id in projects {
                    self.changes.push(Change::AuditPending { project_id });
                }
                Ok(())
            }
        }
    }

    /// The changes to announce, leaving none behind.
    pub(super) fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    /// Drops whatever a failed transaction appended and announced.
    pub(super) fn discard(&mut self) {
        self.audit.clear();
        self.changes.clear();
    }

    pub(super) fn into_conn(self) -> Conn {
        self.conn
    }

    pub(super) fn conn_mut(&mut self) -> &mut Conn {
        &mut self.conn
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
