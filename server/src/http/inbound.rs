//! What providers post to us, each signed by Twilio with the account's auth token; a post
//! Twilio did not sign is refused and records nothing.
//! - `POST /v1/inbound/twilio`: a text a human sent back; the answer is TwiML whose
//!   message Twilio texts back to them.
//! - `POST /v1/inbound/twilio/status`: whether an SMS reached the phone.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::channels::sms;
use crate::domain::clicks::{self, Clicked};
use crate::domain::reports;

pub const TWILIO_PATH: &str = "/v1/inbound/twilio";

/// The fields of Twilio's incoming-message post this endpoint reads (Twilio sends more,
/// and signs them all).
// Only described: the post is read as its signed list of parameters.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)]
pub struct TwilioMessage {
    /// The sender's number, in E.164.
    #[schema(example = "+13128471928")]
    from: String,
    /// What they wrote: "1", "approve", or a reference then the answer ("K7 1").
    #[schema(example = "1")]
    body: String,
}

#[utoipa::path(
    post,
    path = "/v1/inbound/twilio",
    tag = "inbound",
    operation_id = "twilio_inbound",
    summary = "An SMS reply, from Twilio",
    description = "Set as the Messaging webhook of the Twilio number (`{public_url}/v1/inbound/twilio`). A reply of an option's number or text from an approver's number is their vote on the question open to it; with several open, the reply starts with the reference their SMS carried. The answer is TwiML confirming or explaining.",
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's signature of the post: base64 HMAC-SHA1 of the URL and the sorted parameters, keyed by the auth token")),
    request_body(content = TwilioMessage, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "TwiML with the message to text back", content_type = "text/xml", body = String),
        (status = 403, description = "Not signed by Twilio with this account's auth token (`invalid_signature`)", body = pausepoint_api::ErrorBody),
        (status = 404, description = "No Twilio account is configured", body = pausepoint_api::ErrorBody)
    )
)]
/// `POST /v1/inbound/twilio`
pub async fn twilio(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = signed_by_twilio(&state, TWILIO_PATH, query, &headers, &body)?;
    let answer = state
        .app
        .replies()
        .answer(field(&params, "From"), field(&params, "Body"))
        .await?;
    Ok(twiml(&answer))
}

/// The fields of Twilio's status post this endpoint reads.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
#[allow(dead_code)]
pub struct TwilioStatus {
    /// The message's id, as Twilio answered the send.
    #[schema(example = "SM0123456789abcdef0123456789abcdef")]
    message_sid: String,
    /// `queued`, `sent`, `delivered`, `undelivered`, `failed`, …
    #[schema(example = "delivered")]
    message_status: String,
    /// Twilio's error code when undelivered or failed.
    #[schema(example = "30003")]
    error_code: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/inbound/twilio/status",
    tag = "inbound",
    operation_id = "twilio_status",
    summary = "A delivery report, from Twilio",
    description = "Every SMS is sent with this URL as its `StatusCallback`: Twilio reports here whether it reached the phone. `delivered` and `undelivered`/`failed` (with the error code) become the delivery's status and an audit event.",
    params(("X-Twilio-Signature" = String, Header, description = "Twilio's signature of the post")),
    request_body(content = TwilioStatus, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 204, description = "Taken (a report on a message that is not ours changes nothing)"),
        (status = 403, description = "Not signed by Twilio with this account's auth token (`invalid_signature`)", body = pausepoint_api::ErrorBody),
        (status = 404, description = "No Twilio account is configured", body = pausepoint_api::ErrorBody)
    )
)]
/// `POST /v1/inbound/twilio/status`
pub async fn twilio_status(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let params = signed_by_twilio(&state, sms::STATUS_PATH, query, &headers, &body)?;
    let error_code = Some(field(&params, "ErrorCode")).filter(|c| !c.is_empty() && *c != "0");
    reports::record_twilio(
        state.app.store(),
        field(&params, "MessageSid"),
        field(&params, "MessageStatus"),
        error_code,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Slack's interactivity post: `payload`, the JSON of the `block_actions` event.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct SlackInteraction {
    /// `{"type": "block_actions", "user": {"id"}, "actions": [{"value"}], "container":
    /// {"channel_id", "message_ts"}, …}`
    payload: String,
}

/// How old a Slack request may be: Slack's own advice against replays.
const SLACK_TOLERANCE_SECONDS: i64 = 5 * 60;

#[utoipa::path(
    post,
    path = "/v1/inbound/slack",
    tag = "inbound",
    operation_id = "slack_inbound",
    summary = "A button clicked in Slack",
    description = "Set as the Slack app's Interactivity Request URL. A click on a question's button votes as the approver the message was sent to, with the Slack user as the actor (a question sent to a user id is answered by that user only), and the message is updated in place.",
    params(
        ("X-Slack-Signature" = String, Header, description = "`v0=` and the hex HMAC-SHA256 of `v0:{timestamp}:{body}` under the app's signing secret"),
        ("X-Slack-Request-Timestamp" = String, Header, description = "Unix seconds; more than 5 minutes off is refused")
    ),
    request_body(content = SlackInteraction, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Taken"),
        (status = 403, description = "Not signed by Slack with this app's signing secret, or too old (`invalid_signature`)", body = pausepoint_api::ErrorBody),
        (status = 404, description = "No Slack app is configured", body = pausepoint_api::ErrorBody)
    )
)]
/// `POST /v1/inbound/slack`
pub async fn slack(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let forged = |why: &str| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            format!("this post is not signed by Slack for this app: {why}"),
        )
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(signature), Some(timestamp)) = (
        header("x-slack-signature"),
        header("x-slack-request-timestamp"),
    ) else {
        return Err(forged("no signature"));
    };
    let Some(app) = state.app.channels().slack_app() else {
        return Err(ApiError::not_found(
            "Slack buttons need the Slack app: set --slack-bot-token and --slack-signing-secret",
        ));
    };
    let sent_at: i64 = timestamp.parse().map_err(|_| forged("no timestamp"))?;
    if (jiff::Timestamp::now().as_second() - sent_at).abs() > SLACK_TOLERANCE_SECONDS {
        return Err(forged("the request is more than 5 minutes old"));
    }
    if !app.signature_valid(timestamp, &body, signature) {
        return Err(forged("the signature does not match"));
    }
    let form: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&body).map_err(|_| forged("not a form"))?;
    let Some(payload) = form
        .iter()
        .find(|(name, _)| name == "payload")
        .and_then(|(_, payload)| serde_json::from_str::<serde_json::Value>(payload).ok())
    else {
        return Ok(StatusCode::OK);
    };
    if payload["type"] != "block_actions" {
        return Ok(StatusCode::OK);
    }
    let user = payload["user"]["id"].as_str().unwrap_or("");
    let Some(value) = payload["actions"][0]["value"].as_str() else {
        return Ok(StatusCode::OK);
    };
    let clicked = clicks::click(
        state.app.store(),
        state.app.links(),
        state.app.pauses(),
        user,
        value,
    )
    .await?;
    if let Clicked::Refused(why) = &clicked {
        tracing::info!(user, why, "a Slack click was refused");
    }
    let channel = payload["container"]["channel_id"].as_str();
    let ts = payload["container"]["message_ts"].as_str();
    let question = payload["message"]["blocks"][0]["text"]["text"]
        .as_str()
        .unwrap_or("");
    if let (Some(line), Some(channel), Some(ts)) = (clicks::shown(&clicked, user), channel, ts) {
        // The click is recorded; a failed update only leaves the old message standing.
        if let Err(e) = app.update(channel, ts, &line, question).await {
            tracing::warn!(error = %e, "could not update the Slack message");
        }
    }
    Ok(StatusCode::OK)
}

/// The parameters of a post to `path`, once its `X-Twilio-Signature` is found to be
/// Twilio's for this account; otherwise 403 (404 when signed but no Twilio account is
/// configured).
fn signed_by_twilio(
    state: &AppState,
    path: &str,
    query: Option<String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Vec<(String, String)>, ApiError> {
    let forged = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            "this post is not signed by Twilio for this account",
        )
    };
    // Unsigned is refused before anything else is said.
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(forged)?;
    let Some(twilio) = &state.app.config().twilio else {
        return Err(ApiError::not_found(
            "SMS replies need a Twilio account: set --twilio-account-sid, --twilio-auth-token and --twilio-from",
        ));
    };
    // Twilio signs the URL it was given: the public URL, the path and any query.
    let mut url = format!("{}{path}", state.public_url);
    if let Some(query) = query {
        url.push('?');
        url.push_str(&query);
    }
    let params: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|_| forged())?;
    if !sms::signature_valid(twilio.auth_token.expose(), &url, &params, signature) {
        return Err(forged());
    }
    Ok(params)
}

/// The value of the parameter `name`, or "".
fn field<'p>(params: &'p [(String, String)], name: &str) -> &'p str {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// A TwiML answer that texts `message` back.
fn twiml(message: &str) -> Response {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;");
    (
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>{escaped}</Message></Response>"
        ),
    )
        .into_response()
}
