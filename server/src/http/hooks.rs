//! `POST /v1/hooks/claude-code`: Claude Code's `"type": "http"` permission hooks. The
//! request is held until the approver answers (or their time is up: a deny), and the
//! answer is the JSON Claude Code reads. `pp hook claude-code` posts here too.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pausepoint_api::claude_code::{HookEvent, HookInput, Verdict};
use pausepoint_api::Channel;
use serde::Deserialize;

use super::error::documented::{InvalidJson, TooLarge, Unauthorized, Unavailable};
use super::error::ApiError;
use super::extract::{Caller, QueryParams};
use super::AppState;
use crate::domain::approvals::{check_approver, Approver};

pub const CLAUDE_CODE_PATH: &str = "/v1/hooks/claude-code";

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HookQuery {
    /// Who is asked; the server's `--default-approver` when absent.
    approver: Option<String>,
    channel: Option<String>,
    /// How long they have, in seconds; the server's `--default-approval-timeout` when
    /// absent.
    #[param(minimum = 1)]
    timeout: Option<u64>,
}

#[utoipa::path(
    post,
    path = "/v1/hooks/claude-code",
    tag = "hooks",
    operation_id = "claude_code_hook",
    request_body(content = HookInput, example = json!({"session_id": "abc123", "transcript_path": "/home/ana/.claude/projects/shop/abc123.jsonl", "cwd": "/home/ana/work/shop", "permission_mode": "default", "hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": "rm -rf build/", "description": "clean the build"}, "tool_use_id": "toolu_01ABC"})),
    summary = "Answer a Claude Code permission hook by asking a person",
    description = "Holds the request until the approver answers (or their time is up: a deny). The body is Claude Code's hook event, up to 1 MiB.",
    params(HookQuery),
    responses(
        (status = 200, description = "Claude Code's hook answer: `hookSpecificOutput` with `permissionDecision` (PreToolUse) or `decision.behavior` (PermissionRequest); `{\"systemMessage\"}` leaves the choice to the local prompt", body = Object),
        InvalidJson,
        Unauthorized,
        TooLarge,
        Unavailable
    ),
    security(("bearer" = []))
)]
/// `POST /v1/hooks/claude-code?approver=&channel=&timeout=`
pub async fn claude_code(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<HookQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input = match HookInput::parse(&body) {
        Ok(input) => input,
        // A tool call that cannot be read is not let through: a PreToolUse is denied.
        // Anything else gets a 400, which Claude Code reports and then ignores.
        Err(error) => {
            return match error.event {
                Some(event) => Ok(answer_without_input(event, &error.message)),
                None => Err(ApiError::invalid_json(error.message)),
            }
        }
    };
    let approver = match approver(&state, &query) {
        Ok(approver) => approver,
        Err(reason) => return Ok(Json(input.answer(&Verdict::deny(reason))).into_response()),
    };
    let verdict = state
        .app
        .approvals()
        .decide(
            caller.project_id(),
            caller.actor(),
            caller.key.project_max_timeout,
            &input,
            &approver,
            &state.stop,
        )
        .await;
    match verdict {
        Ok(Some(verdict)) => Ok(Json(input.answer(&verdict)).into_response()),
        // The server is stopping: asking again (to this or another server) finds the same
        // question, by the tool use's id.
        Ok(None) => {
            let mut response = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down; send the same hook event again",
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            Ok(response)
        }
        // An approver the API refuses (a bad phone number, a timeout over the project's
        // cap) is a deny that says why, not an error Claude Code would let through.
        Err(crate::domain::pauses::PauseError::Invalid(e)) => Ok(Json(
            input.answer(&Verdict::deny(format!("PausePoint could not ask: {e}"))),
        )
        .into_response()),
        Err(e) => Err(e.into()),
    }
}

/// The deny for an event whose input could not be read.
fn answer_without_input(event: HookEvent, message: &str) -> Response {
    let verdict = Verdict::deny(format!(
        "PausePoint could not read the hook input: {message}"
    ));
    Json(verdict.answer(event, &serde_json::Map::new())).into_response()
}

/// A phone number's `+` written unescaped in a hook URL (`?approver=+1312…`) arrives as
/// a space; put it back, rather than refuse the number people paste.
fn plus_restored(recipient: &str) -> String {
    match recipient.strip_prefix(' ') {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => format!("+{rest}"),
        _ => recipient.to_owned(),
    }
}

/// Who is asked and for how long: the query string, else the server's defaults.
fn approver(state: &AppState, query: &HookQuery) -> Result<Approver, String> {
    let config = state.app.config();
    let timeout = match query.timeout {
        Some(0) => return Err("timeout must be at least 1 second".into()),
        Some(seconds) => Duration::from_secs(seconds),
        None => config.default_approval_timeout,
    };
    let channel = query
        .channel
        .as_deref()
        .map(str::parse::<Channel>)
        .transpose()?;
    let approver = match (&query.approver, &config.default_approver) {
        (Some(recipient), _) => Approver {
            recipient: plus_restored(recipient),
            channel,
            timeout,
        },
        (None, Some(default)) => Approver {
            channel: channel.or(default.channel),
            timeout,
            ..default.clone()
        },
        (None, None) => {
            return Err(
                "no approver: add ?approver=… to the hook's URL, or start the server \
                        with --default-approver"
                    .into(),
            )
        }
    };
    check_approver(&approver)?;
    Ok(approver)
}
