//! Rows behind the audit log's proofs: the Ed25519 keys that sign checkpoints and
//! receipts (the private half sealed, dropped once retired), and the reads verification
//! and receipts need (a pause's decision event, the newest checkpoint).

use jiff::Timestamp;
use pausepoint_api::{AuditEvent, AuditEventKind};

use super::audit::{audit_events, from_row, AuditFilter, COLUMNS};
use super::db::{args, Conn, OwnedArg, Query, Row};
use super::{StoreError, Tx};
use crate::ids::{PauseId, ProjectId};

/// An audit key as stored.
#[derive(Debug, Clone)]
pub struct StoredAuditKey {
    /// Its RFC 7638 thumbprint.
    pub id: String,
    /// The public key's 32 bytes, base64url.
    pub public_key: String,
    /// The sealed 32-byte seed; `None` once retired.
    pub private_key: Option<String>,
    pub created_at: Timestamp,
    pub retired_at: Option<Timestamp>,
}

fn key_from_row(row: &dyn Row) -> Result<StoredAuditKey, StoreError> {
    Ok(StoredAuditKey {
        id: row.text("id")?,
        public_key: row.text("public_key")?,
        private_key: row.opt_text("private_key")?,
        created_at: row.time("created_at")?,
        retired_at: row.opt_time("retired_at")?,
    })
}

/// The query for the decision events of `pauses`: one search of `audit_events_by_pause`
/// per pause. (`event || ''` is the same text but no index's column, and the order by pause
/// is that index's own: both keep the planners off the indexes that would read every
/// decision, or every event, of the project instead. The caller sorts by seq.)
pub fn decision_events_query(project_id: ProjectId, pauses: &[PauseId]) -> Query {
    let text = |value: String| OwnedArg::Text(Some(value));
    let mut query = Query::new(format!("SELECT {COLUMNS} FROM audit_events WHERE "));
    query.push("project_id = ?", [text(project_id.to_string())]);
    let marks = vec!["?"; pauses.len()].join(", ");
    query.push(
        &format!(" AND pause_id IN ({marks})"),
        pauses.iter().map(|id| text(id.to_string())),
    );
    query.push(
        " AND event || '' IN ('pause.responded', 'pause.timed_out', 'pause.cancelled') \
         ORDER BY pause_id",
        [],
    );
    query
}

impl Conn {
    /// Every audit key, oldest first; the current one has no `retired_at`.
    pub async fn audit_keys(&mut self) -> Result<Vec<StoredAuditKey>, StoreError> {
        self.fetch_all(
            "audit_keys",
            "SELECT id, public_key, private_key, created_at, retired_at FROM audit_keys \
             ORDER BY created_at, id",
            &[],
            key_from_row,
        )
        .await
    }

    /// The events of `pause_id` that record its decision (one, unless the log was forged).
    pub async fn decision_events(
        &mut self,
        project_id: ProjectId,
        pause_id: PauseId,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let events = audit_events(
            self,
            project_id,
            AuditFilter {
                pause_id: Some(pause_id),
                ..AuditFilter::default()
            },
            None,
            1000,
        )
        .await?;
        Ok(events
            .into_iter()
            .filter(|e| pausepoint_api::proof::is_decision(e.event))
            .collect())
    }

    /// The decision events of `pauses`, in chain order.
    pub async fn decision_events_of(
        &mut self,
        project_id: ProjectId,
        pauses: &[PauseId],
    ) -> Result<Vec<AuditEvent>, StoreError> {
        if pauses.is_empty() {
            return Ok(Vec::new());
        }
        let query = decision_events_query(project_id, pauses);
        let mut events = self
            .fetch_all("audit_events", query.sql(), &query.args(), from_row)
            .await?;
        events.sort_by_key(|e| e.seq);
        Ok(events)
    }

    /// The project's newest `audit.checkpoint` event.
    pub async fn newest_checkpoint_event(
        &mut self,
        project_id: ProjectId,
    ) -> Result<Option<AuditEvent>, StoreError> {
        let seq = self
            .fetch_one(
                "audit_events",
                "SELECT MAX(seq) AS seq FROM audit_events WHERE project_id = $1 AND event = $2",
                args![
                    &project_id.to_string(),
                    AuditEventKind::AuditCheckpoint.as_str()
                ],
                |row| row.opt_int("seq"),
            )
            .await?;
        let Some(seq) = seq else { return Ok(None) };
        let mut events =
            audit_events(self, project_id, AuditFilter::default(), Some(seq - 1), 1).await?;
        Ok(events.pop())
    }
}

impl Tx {
    /// Makes `key` the one that signs, if no key does yet (another server may have been
    /// first: then it is left out, and false).
    pub async fn insert_first_audit_key(
        &mut self,
        key: &StoredAuditKey,
    ) -> Result<bool, StoreError> {
        let inserted = self
            .execute(
                "INSERT INTO audit_keys (id, public_key, private_key, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                args![
                    &key.id,
                    &key.public_key,
                    key.private_key.as_deref(),
                    key.created_at
                ],
            )
            .await?;
        Ok(inserted == 1)
    }

    /// Retires the signing key (its private half is dropped) and makes `key` the one that
    /// signs.
    pub async fn rotate_audit_key(
        &mut self,
        key: &StoredAuditKey,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.execute(
            "UPDATE audit_keys SET retired_at = $1, private_key = NULL WHERE retired_at IS NULL",
            args![now],
        )
        .await?;
        self.execute(
            "INSERT INTO audit_keys (id, public_key, private_key, created_at) \
             VALUES ($1, $2, $3, $4)",
            args![
                &key.id,
                &key.public_key,
                key.private_key.as_deref(),
                key.created_at
            ],
        )
        .await?;
        Ok(())
    }
}
