//! `/v1/rules`: the approvals people asked to remember ("Allow for 1 hour"), and revoking
//! one before its time.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use pausepoint_api::rules::{Rule, RuleList, RuleStatus};
use pausepoint_api::ErrorBody;
use serde::Deserialize;

use super::error::documented::{Invalid, NotFound, Unauthorized, Unavailable};
use super::error::ApiError;
use super::extract::{Caller, QueryParams};
use super::pauses::page_size;
use super::AppState;
use crate::domain::approvals::RuleError;
use crate::domain::pauses::now;
use crate::ids::RuleId;
use crate::store::rules::RuleRecord;

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// How many, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/v1/rules",
    tag = "rules",
    operation_id = "list_rules",
    summary = "Remembered approvals, newest first",
    params(ListQuery),
    responses(
        (status = 200, description = "The project's rules", body = RuleList),
        Unauthorized,
        Invalid,
        Unavailable
    ),
    security(("bearer" = []))
)]
/// `GET /v1/rules?limit=`
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<RuleList>, ApiError> {
    let limit = page_size(query.limit, 50, 200)?;
    let rules = state
        .app
        .approvals()
        .rules(caller.project_id(), limit)
        .await?;
    let now = now();
    Ok(Json(RuleList {
        data: rules.into_iter().map(|r| rule(r, now)).collect(),
    }))
}

#[utoipa::path(
    post,
    path = "/v1/rules/{id}/revoke",
    tag = "rules",
    operation_id = "revoke_rule",
    summary = "End a remembered approval now",
    params(("id" = String, Path, description = "The rule's `rule_id`")),
    responses(
        (status = 200, description = "The rule, revoked", body = Rule),
        (status = 409, description = "The rule has already expired or been revoked (`rule_not_active`)", body = ErrorBody),
        Unauthorized,
        NotFound,
        Unavailable
    ),
    security(("bearer" = []))
)]
/// `POST /v1/rules/{id}/revoke`
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Rule>, ApiError> {
    let id: RuleId = id
        .parse()
        .map_err(|_| ApiError::not_found("no rule with this id"))?;
    match state
        .app
        .approvals()
        .revoke(caller.project_id(), id, caller.actor())
        .await
    {
        Ok(revoked) => Ok(Json(rule(revoked, now()))),
        Err(RuleError::NotInForce) => {
            match state.app.store().rule(caller.project_id(), id).await? {
                None => Err(ApiError::not_found("no rule with this id")),
                Some(_) => Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "rule_not_active",
                    "the rule has already expired or been revoked",
                )),
            }
        }
        Err(RuleError::Pause(e)) => Err(e.into()),
    }
}

fn rule(record: RuleRecord, now: jiff::Timestamp) -> Rule {
    let status = if record.revoked_at.is_some() {
        RuleStatus::Revoked
    } else if record.expires_at <= now {
        RuleStatus::Expired
    } else {
        RuleStatus::Active
    };
    Rule {
        rule_id: record.id.as_uuid(),
        status,
        tool_name: record.tool_name,
        question: record.question,
        approved_by: record.approved_by,
        pause_id: record.pause_id.as_uuid(),
        created_at: record.created_at,
        expires_at: record.expires_at,
        revoked_at: record.revoked_at,
    }
}
