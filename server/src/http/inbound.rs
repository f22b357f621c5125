//! What providers post to us. `POST /v1/inbound/twilio`: a text a human sent back, signed
//! by Twilio with the account's auth token; the answer is TwiML whose message Twilio
//! texts back to them. A post Twilio did not sign is refused and records nothing.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;
use crate::channels::sms;

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
    let Some(twilio) = &state.app.config().twilio else {
        return Err(ApiError::not_found(
            "SMS replies need a Twilio account: set --twilio-account-sid, --twilio-auth-token and --twilio-from",
        ));
    };
    let forged = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            "this post is not signed by Twilio for this account",
        )
    };
    // Twilio signs the URL it was given: the public URL, this path and any query.
    let mut url = format!("{}{TWILIO_PATH}", state.public_url);
    if let Some(query) = query {
        url.push('?');
        url.push_str(&query);
    }
    let params: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&body).map_err(|_| forged())?;
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(forged)?;
    if !sms::signature_valid(twilio.auth_token.expose(), &url, &params, signature) {
        return Err(forged());
    }
    let field = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let answer = state
        .app
        .replies()
        .answer(field("From"), field("Body"))
        .await?;
    Ok(twiml(&answer))
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
