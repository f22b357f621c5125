//! Remembered approvals: an approver answered "Allow for 1 hour", and the same call is
//! allowed without asking until the rule expires or is revoked.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where a rule stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleStatus {
    /// Allowing the call now.
    Active,
    Expired,
    Revoked,
}

impl RuleStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleStatus::Active => "active",
            RuleStatus::Expired => "expired",
            RuleStatus::Revoked => "revoked",
        }
    }
}

/// A rule, as `GET /v1/rules` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rule {
    pub rule_id: Uuid,
    pub status: RuleStatus,
    /// The tool it allows, with exactly the input and folder of `question`.
    pub tool_name: String,
    /// What the approver was asked.
    pub question: String,
    /// Who allowed it, as the audit log names them.
    pub approved_by: String,
    /// The decision that made it.
    pub pause_id: Uuid,
    #[serde(with = "crate::time::millis")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[serde(with = "crate::time::millis")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
    #[serde(with = "crate::time::millis_opt", default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
}

/// `GET /v1/rules`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RuleList {
    pub data: Vec<Rule>,
}
