//! `/v1/pause`: create, get with long-poll, cancel, list.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pausepoint_api::validation::{NewPause, Recipient};
use pausepoint_api::{Channel, CreatePause, Pause, PauseList, PauseStatus};
use serde::Deserialize;
use sha2::{Digest, Sha256};

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

/// `POST /v1/pause`
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: JsonBody<CreatePause>,
) -> Result<Response, ApiError> {
    let pause = NewPause::parse(body.value, caller.key.project_max_timeout)?;
    let allow_private = state.app.config().allow_private_network;
    if let Recipient::Slack(url) = &pause.recipient {
        outbound::check_url(url, allow_private).map_err(|e| ApiError::invalid("recipient", e))?;
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
    let canonical = serde_jcs::to_vec(body).map_err(|e| ApiError::internal(&e))?;
    Ok(Some(Idempotency {
        key: key.to_owned(),
        request_hash: hex::encode(Sha256::digest(canonical)),
    }))
}

#[derive(Deserialize)]
pub struct GetQuery {
    wait: Option<u64>,
}

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
    let pause = state
        .app
        .pauses()
        .wait(
            caller.project_id(),
            id,
            Duration::from_secs(wait),
            &state.stop,
        )
        .await?;
    Ok(Json(pause))
}

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

#[derive(Deserialize)]
pub struct ListQuery {
    status: Option<String>,
    channel: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

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
