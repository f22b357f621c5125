//! `/v1/pause`: create, get with long-poll, cancel, list.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pausepoint_api::validation::{NewPause, Recipient};
use pausepoint_api::ErrorBody;
use pausepoint_api::{Channel, CreatePause, Pause, PauseList, PauseStatus};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::error::documented::{
    Invalid, InvalidJson, NotFound, TooLarge, TooManyLongPolls, Unauthorized, Unavailable,
};
use super::error::ApiError;
use super::extract::{time, Caller, JsonBody, QueryParams};
use super::AppState;
use crate::domain::pauses::Idempotency;
use crate::ids::PauseId;
use crate::outbound;
use crate::store::pauses::PauseFilter;

/// The longest a `GET /v1/pause/{id}?wait=` may hold, in seconds.
pub const MAX_WAIT_SECONDS: u64 = 60;
/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;
const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 100;

#[utoipa::path(
    post,
    path = "/v1/pause",
    tag = "pauses",
    operation_id = "create_pause",
    summary = "Ask a human",
    description = "Creates a pending pause and sends the human a message with a link to answer. With `Idempotency-Key`, a retry with the same body returns the first pause (`Idempotent-Replayed: true`); the same key with another body is a 409.",
    params(("Idempotency-Key" = Option<String>, Header, description = "Any unique string of 1 to 255 visible ASCII characters: makes retries safe")),
    request_body(content = CreatePause, examples(
        ("sms" = (summary = "SMS", value = json!({"recipient": "+15550100", "channel": "sms", "message": "Your agent wants to send a $340 wire to Acme Corp. Approve?", "options": ["Approve", "Reject"], "timeout_hours": 4, "timeout_default": "Reject", "metadata": {"amount": 340, "recipient_name": "Acme Corp"}}))),
        ("email" = (summary = "Email", value = json!({"recipient": "cfo@company.com", "channel": "email", "message": "The sales agent has drafted a campaign email to 200 leads. Send it?", "options": ["Send it", "Edit first", "Cancel"], "timeout_hours": 24, "timeout_default": "Cancel"}))),
        ("slack" = (summary = "Slack", value = json!({"recipient": "https://hooks.slack.com/services/T000/B000/XXXX", "channel": "slack", "message": "Delete 14,000 stale user records from the test environment?", "options": ["Delete", "Keep", "Ask me tomorrow"], "timeout_hours": 8}))),
        ("several" = (summary = "Two of three finance leads, escalating to the CFO", value = json!({"recipients": [{"recipient": "dana@company.com"}, {"recipient": "lee@company.com"}, {"recipient": "+15550100", "channel": "sms"}], "message": "Wire $84,000 to Meridian Freight?", "options": ["Approve", "Reject"], "quorum": {"option": "Approve", "count": 2}, "escalation": [{"after_seconds": 1800, "recipients": [{"recipient": "cfo@company.com"}]}], "remind_every_seconds": 900, "timeout_hours": 4, "timeout_default": "Reject"})))
    )),
    responses(
        (status = 201, description = "The pause, pending", body = Pause, headers(
            ("Location" = String, description = "`/v1/pause/{pause_id}`"),
            ("Idempotent-Replayed" = Option<String>, description = "`true` when an earlier request with this Idempotency-Key made the pause")
        )),
        InvalidJson,
        Unauthorized,
        (status = 409, description = "The Idempotency-Key was used with another body (`idempotency_key_reused`)", body = ErrorBody),
        TooLarge,
        Invalid,
        Unavailable
    ),
    security(("bearer" = []))
)]
/// `POST /v1/pause`
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<CreatePause>,
) -> Result<Response, ApiError> {
    let pause = NewPause::parse(body.value, caller.key.project_max_timeout)?;
    let allow_private = state.app.config().allow_private_network;
    for approver in &pause.approvers {
        if matches!(approver.recipient, Recipient::SlackChannel(_))
            && state.app.config().slack_app.is_none()
        {
            let field = if pause.approvers.len() == 1 {
                "recipient"
            } else {
                "recipients"
            };
            return Err(ApiError::invalid(
                field,
                "a Slack channel or user id needs the Slack app: start the server with --slack-bot-token and --slack-signing-secret, or give an incoming-webhook URL",
            ));
        }
        if let Recipient::Slack(url) | Recipient::Ntfy(url) = &approver.recipient {
            let field = if pause.approvers.len() == 1 {
                "recipient"
            } else {
                "recipients"
            };
            outbound::check_url(url, allow_private).map_err(|e| ApiError::invalid(field, e))?;
        }
    }
    if let Some(url) = &pause.webhook_url {
        outbound::check_url(url, allow_private).map_err(|e| ApiError::invalid("webhook_url", e))?;
    }
    let idempotency = idempotency(&headers, &body.raw)?;
    let created = state
        .app
        .pauses()
        .create(caller.project_id(), caller.actor(), pause, idempotency)
        .await?;
    let mut response = (StatusCode::CREATED, Json(&created.pause)).into_response();
    let location = format!("/v1/pause/{}", created.pause.pause_id);
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if created.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The `Idempotency-Key` header, with a hash of the canonical request body.
fn idempotency(
    headers: &HeaderMap,
    body: &serde_json::Value,
) -> Result<Option<Idempotency>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
        .ok_or_else(|| {
            ApiError::invalid(
                "Idempotency-Key",
                format!("the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
            )
        })?;
    let canonical = pausepoint_api::canonical::to_vec(body);
    Ok(Some(Idempotency {
        key: key.to_owned(),
        request_hash: hex::encode(Sha256::digest(canonical)),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GetQuery {
    /// Hold the request up to this many seconds (0 to 60) until the pause is decided.
    #[param(maximum = 60)]
    wait: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/v1/pause/{id}",
    tag = "pauses",
    operation_id = "get_pause",
    summary = "Read a pause, or wait for its decision",
    params(("id" = String, Path, description = "The pause's `pause_id`"), GetQuery),
    responses(
        (status = 200, description = "The pause: decided, or as it stands after `wait` seconds", body = Pause),
        Unauthorized,
        NotFound,
        (status = 422, description = "`wait` is over 60 (`validation_failed`)", body = ErrorBody),
        TooManyLongPolls,
        Unavailable
    ),
    security(("bearer" = []))
)]
/// `GET /v1/pause/{id}?wait=N`
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<GetQuery>,
) -> Result<Json<Pause>, ApiError> {
    let id = pause_id(&id)?;
    let wait = query.wait.unwrap_or(0);
    if wait > MAX_WAIT_SECONDS {
        return Err(ApiError::invalid(
            "wait",
            format!("wait is at most {MAX_WAIT_SECONDS} seconds; poll again to wait longer"),
        ));
    }
    let _open = if wait > 0 {
        let open = state.long_polls.open(caller.key.id);
        Some(open.ok_or_else(|| ApiError::too_many_long_polls(state.long_polls.limit()))?)
    } else {
        None
    };
    // Boxed, so that what thousands of waiting polls each hold is this small future and
    // the wait's own state, not every step's largest.
    let pause = Box::pin(state.app.pauses().wait(
        caller.project_id(),
        id,
        Duration::from_secs(wait),
        &state.stop,
    ))
    .await?;
    Ok(Json(pause))
}

#[utoipa::path(
    post,
    path = "/v1/pause/{id}/cancel",
    tag = "pauses",
    operation_id = "cancel_pause",
    summary = "Withdraw a pending pause",
    params(("id" = String, Path, description = "The pause's `pause_id`")),
    responses(
        (status = 200, description = "The pause, cancelled", body = Pause),
        Unauthorized,
        NotFound,
        (status = 409, description = "The pause is already decided (`pause_not_pending`, with its `status`) or expiring (`pause_expired`)", body = ErrorBody),
        Unavailable
    ),
    security(("bearer" = []))
)]
/// `POST /v1/pause/{id}/cancel`
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Pause>, ApiError> {
    let id = pause_id(&id)?;
    let pause = state
        .app
        .pauses()
        .cancel(caller.project_id(), id, caller.actor())
        .await?;
    Ok(Json(pause))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only pauses in this state.
    #[param(value_type = Option<PauseStatus>)]
    status: Option<String>,
    /// Only pauses sent on this channel.
    #[param(value_type = Option<Channel>)]
    channel: Option<String>,
    /// Only pauses created at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only pauses created before this time (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// How many, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/pause",
    tag = "pauses",
    operation_id = "list_pauses",
    summary = "List pauses, newest first",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of pauses, newest first", body = PauseList),
        Unauthorized,
        Invalid,
        Unavailable
    ),
    security(("bearer" = []))
)]
/// `GET /v1/pause?status=&channel=&since=&until=&limit=&cursor=`
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<PauseList>, ApiError> {
    let filter = PauseFilter {
        status: query
            .status
            .as_deref()
            .map(str::parse::<PauseStatus>)
            .transpose()
            .map_err(|message| ApiError::invalid("status", message))?,
        channel: query
            .channel
            .as_deref()
            .map(str::parse::<Channel>)
            .transpose()
            .map_err(|message| ApiError::invalid("channel", message))?,
        since: time("since", query.since.as_deref())?,
        until: time("until", query.until.as_deref())?,
        ..PauseFilter::default()
    };
    let limit = page_size(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let before = query
        .cursor
        .map(|c| c.parse::<PauseId>())
        .transpose()
        .map_err(|_| ApiError::invalid("cursor", "the cursor is not one this API returned"))?;
    let mut data = state
        .app
        .store()
        .pauses(caller.project_id(), filter, before, limit + 1)
        .await?;
    let next_cursor = if data.len() > limit as usize {
        data.truncate(limit as usize);
        data.last().map(|p| p.pause_id.to_string())
    } else {
        None
    };
    Ok(Json(PauseList { data, next_cursor }))
}

/// A `limit` parameter: `default` when absent, 1 to `max` otherwise.
pub fn page_size(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid("limit", format!("limit is 1 to {max}"))),
    }
}

/// A pause id from the path; one that is not a UUID names no pause.
pub fn pause_id(raw: &str) -> Result<PauseId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found("no pause with this id"))
}
