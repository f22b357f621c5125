//! Remembered approvals ("Allow for 1 hour"): one row per decision that asked for it,
//! found by the project and the exact call it allows.

use jiff::Timestamp;

use super::db::{args, Conn, OwnedArg, Query, Row};
use super::{Store, StoreError, Tx};
use crate::ids::{PauseId, ProjectId, RuleId};

/// A rule as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRecord {
    pub id: RuleId,
    pub project_id: ProjectId,
    /// The decision that made it.
    pub pause_id: PauseId,
    pub tool_name: String,
    /// What the approver was asked.
    pub question: String,
    /// Who allowed it, as the audit log names them.
    pub approved_by: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A new rule, before it is stored.
#[derive(Debug, Clone)]
pub struct NewRule {
    pub pause_id: PauseId,
    pub tool_name: String,
    pub match_key: String,
    pub question: String,
    pub approved_by: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

const SELECT: &str = "SELECT id, project_id, pause_id, tool_name, question, approved_by, \
                      created_at, expires_at, revoked_at FROM approval_rules";

/// The query for the project's rule allowing the call `match_key` at `now`.
pub fn live_rule_query(project_id: ProjectId, match_key: &str, now: Timestamp) -> Query {
    let mut query = Query::new(format!("{SELECT} WHERE "));
    query.push(
        "project_id = ? AND match_key = ? AND expires_at > ? AND revoked_at IS NULL \
         ORDER BY expires_at DESC LIMIT 1",
        [
            OwnedArg::Text(Some(project_id.to_string())),
            OwnedArg::Text(Some(match_key.to_owned())),
            OwnedArg::Int(Some(now.as_millisecond())),
        ],
    );
    query
}

/// The query for the project's rules, newest first.
pub fn rules_query(project_id: ProjectId, limit: u32) -> Query {
    let mut query = Query::new(format!("{SELECT} WHERE "));
    query.push(
        "project_id = ? ORDER BY id DESC LIMIT ?",
        [
            OwnedArg::Text(Some(project_id.to_string())),
            OwnedArg::Int(Some(i64::from(limit))),
        ],
    );
    query
}

fn from_row(row: &dyn Row) -> Result<RuleRecord, StoreError> {
    Ok(RuleRecord {
        id: row.uuid("id")?.into(),
        project_id: row.uuid("project_id")?.into(),
        pause_id: row.uuid("pause_id")?.into(),
        tool_name: row.text("tool_name")?,
        question: row.text("question")?,
        approved_by: row.text("approved_by")?,
        created_at: row.time("created_at")?,
        expires_at: row.time("expires_at")?,
        revoked_at: row.opt_time("revoked_at")?,
    })
}

impl Conn {
    /// The project's rule allowing the call `match_key` at `now`, if any.
    pub async fn live_rule(
        &mut self,
        project_id: ProjectId,
        match_key: &str,
        now: Timestamp,
    ) -> Result<Option<RuleRecord>, StoreError> {
        let query = live_rule_query(project_id, match_key, now);
        self.fetch_optional("approval_rules", query.sql(), &query.args(), from_row)
            .await
    }

    /// The project's rules, newest first, at most `limit`.
    pub async fn rules(
        &mut self,
        project_id: ProjectId,
        limit: u32,
    ) -> Result<Vec<RuleRecord>, StoreError> {
        let query = rules_query(project_id, limit);
        self.fetch_all("approval_rules", query.sql(), &query.args(), from_row)
            .await
    }

    /// The project's rule with this id.
    pub async fn rule(
        &mut self,
        project_id: ProjectId,
        id: RuleId,
    ) -> Result<Option<RuleRecord>, StoreError> {
        let sql = format!("{SELECT} WHERE project_id = $1 AND id = $2");
        self.fetch_optional(
            "approval_rules",
            &sql,
            args![&project_id.to_string(), &id.to_string()],
            from_row,
        )
        .await
    }
}

impl Tx {
    /// Stores the rule a decision asked for; None when that decision already made one.
    pub async fn insert_rule(
        &mut self,
        project_id: ProjectId,
        rule: &NewRule,
    ) -> Result<Option<RuleRecord>, StoreError> {
        let id = RuleId::at(rule.created_at);
        let inserted = self
            .execute(
                "INSERT INTO approval_rules (id, project_id, pause_id, tool_name, match_key, \
                 question, approved_by, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (pause_id) DO NOTHING",
                args![
                    &id.to_string(),
                    &project_id.to_string(),
                    &rule.pause_id.to_string(),
                    rule.tool_name.as_str(),
                    rule.match_key.as_str(),
                    rule.question.as_str(),
                    rule.approved_by.as_str(),
                    rule.created_at,
                    rule.expires_at
                ],
            )
            .await?;
        if inserted == 0 {
            return Ok(None);
        }
        self.rule(project_id, id).await
    }

    /// Revokes the project's rule; None when there is no such rule still in force.
    pub async fn revoke_rule(
        &mut self,
        project_id: ProjectId,
        id: RuleId,
        now: Timestamp,
    ) -> Result<Option<RuleRecord>, StoreError> {
        let updated = self
            .execute(
                "UPDATE approval_rules SET revoked_at = $3 \
                 WHERE project_id = $1 AND id = $2 AND revoked_at IS NULL AND expires_at > $3",
                args![&project_id.to_string(), &id.to_string(), now],
            )
            .await?;
        if updated == 0 {
            return Ok(None);
        }
        self.rule(project_id, id).await
    }
}

impl Store {
    /// The project's rule allowing the call `match_key` at `now`, if any.
    pub async fn live_rule(
        &self,
        project_id: ProjectId,
        match_key: &str,
        now: Timestamp,
    ) -> Result<Option<RuleRecord>, StoreError> {
        let match_key = match_key.to_owned();
        self.read(move |conn| {
            Box::pin(async move { conn.live_rule(project_id, &match_key, now).await })
        })
        .await
    }

    /// The project's rules, newest first, at most `limit`.
    pub async fn rules(
        &self,
        project_id: ProjectId,
        limit: u32,
    ) -> Result<Vec<RuleRecord>, StoreError> {
        self.read(move |conn| Box::pin(async move { conn.rules(project_id, limit).await }))
            .await
    }

    /// The project's rule with this id.
    pub async fn rule(
        &self,
        project_id: ProjectId,
        id: RuleId,
    ) -> Result<Option<RuleRecord>, StoreError> {
        self.read(move |conn| Box::pin(async move { conn.rule(project_id, id).await }))
            .await
    }
}
