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
