//! Console sessions: an operator signed in with an API key. Only the SHA-256 of the
//! session token is stored; the token lives in the browser's cookie.

use jiff::Timestamp;

use super::db::{args, Conn, Row};
use super::{Store, StoreError, Tx};
use crate::ids::{KeyId, ProjectId};

/// A live session: not ended, not expired, and its key not revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub project_id: ProjectId,
    pub key_id: KeyId,
    pub expires_at: Timestamp,
}

impl Conn {
    /// The live session whose token hashes to `token_hash`, at `now`.
    pub async fn live_session(
        &mut self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        self.fetch_optional(
            "console_sessions",
            "SELECT s.project_id, s.key_id, s.expires_at FROM console_sessions s \
             JOIN api_keys k ON k.id = s.key_id \
             WHERE s.token_hash = $1 AND s.ended_at IS NULL AND s.expires_at > $2 \
             AND k.revoked_at IS NULL",
            args![token_hash, now],
            |row: &dyn Row| {
                Ok(SessionRecord {
                    project_id: row.uuid("project_id")?.into(),
                    key_id: row.uuid("key_id")?.into(),
                    expires_at: row.time("expires_at")?,
                })
            },
        )
        .await
    }
}

impl Tx {
    /// Stores a new session by its token's hash, and forgets sessions long expired.
    pub fn start_session(&mut self, token_hash: &str, session: &SessionRecord, now: Timestamp) {
        self.defer(
            "INSERT INTO console_sessions (token_hash, project_id, key_id, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
            args![
                token_hash,
                &session.project_id.to_string(),
                &session.key_id.to_string(),
                now,
                session.expires_at
            ],
        );
        // A day past expiry, a session row says nothing a person needs.
        self.defer(
            "DELETE FROM console_sessions WHERE expires_at < $1",
            args![now - jiff::SignedDuration::from_hours(24)],
        );
    }

    /// Ends the session (signing out); ending one already ended changes nothing.
    pub fn end_session(&mut self, token_hash: &str, now: Timestamp) {
        self.defer(
            "UPDATE console_sessions SET ended_at = $2 WHERE token_hash = $1 AND ended_at IS NULL",
            args![token_hash, now],
        );
    }
}

impl Store {
    /// The live session whose token hashes to `token_hash`, at `now`.
    pub async fn live_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let token_hash = token_hash.to_owned();
        self.read(move |conn| Box::pin(async move { conn.live_session(&token_hash, now).await }))
            .await
    }
}
