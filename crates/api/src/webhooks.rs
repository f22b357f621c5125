//! Webhooks as the Standard Webhooks specification defines them: the event body, the
//! `whsec_` secret, and the `v1,` signature over `id.timestamp.body`, made and checked
//! here so that the server, `pp webhook verify` and receivers all agree.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::pause::{Pause, PauseStatus};

/// Every secret starts with this.
pub const SECRET_PREFIX: &str = "whsec_";
/// How far a `webhook-timestamp` may be from the receiver's clock (the spec's 5 minutes).
pub const TOLERANCE_SECONDS: i64 = 5 * 60;

/// What a webhook event announces: the decision a pause came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum WebhookEventType {
    #[serde(rename = "pause.responded")]
    Responded,
    #[serde(rename = "pause.timed_out")]
    TimedOut,
    #[serde(rename = "pause.cancelled")]
    Cancelled,
    /// A signed audit checkpoint, pushed to the project's outside witness.
    #[serde(rename = "audit.checkpoint")]
    AuditCheckpoint,
}

impl WebhookEventType {
    pub const ALL: [WebhookEventType; 4] = [
        WebhookEventType::Responded,
        WebhookEventType::TimedOut,
        WebhookEventType::Cancelled,
        WebhookEventType::AuditCheckpoint,
    ];

    /// The event announcing that a pause reached `status`; none for `pending`, which is
    /// never announced.
    pub fn for_status(status: PauseStatus) -> Option<WebhookEventType> {
        match status {
            PauseStatus::Pending => None,
            PauseStatus::Responded => Some(WebhookEventType::Responded),
            PauseStatus::TimedOut => Some(WebhookEventType::TimedOut),
            PauseStatus::Cancelled => Some(WebhookEventType::Cancelled),
        }
    }

    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEventType::Responded => "pause.responded",
            WebhookEventType::TimedOut => "pause.timed_out",
            WebhookEventType::Cancelled => "pause.cancelled",
            WebhookEventType::AuditCheckpoint => "audit.checkpoint",
        }
    }
}

impl fmt::Display for WebhookEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for WebhookEventType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WebhookEventType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| format!("unknown webhook event type {s:?}"))
    }
}

/// The body of every webhook: `{"type", "timestamp", "data": <the pause>}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookEvent {
    #[serde(rename = "type")]
    pub kind: WebhookEventType,
    #[serde(with = "crate::time::millis")]
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: Timestamp,
    pub data: Pause,
}

/// Where a webhook event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookStatus {
    /// Not sent yet, or waiting to be tried again.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: 410 Gone, a refused URL, or every retry failed.
    Failed,
}

impl WebhookStatus {
    pub const ALL: [WebhookStatus; 3] = [
        WebhookStatus::Pending,
        WebhookStatus::Delivered,
        WebhookStatus::Failed,
    ];

    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookStatus::Pending => "pending",
            WebhookStatus::Delivered => "delivered",
            WebhookStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for WebhookStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for WebhookStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WebhookStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown webhook status {s:?}"))
    }
}

/// One event of a pause on its way to the pause's `webhook_url`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookDelivery {
    /// The `webhook-id` header: the same on every attempt.
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: WebhookEventType,
    pub url: String,
    pub status: WebhookStatus,
    pub attempts: u32,
    #[serde(default, with = "crate::time::millis_opt")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<Timestamp>,
    #[serde(with = "crate::time::millis")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub attempt_log: Vec<WebhookAttempt>,
}

/// One try at sending an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookAttempt {
    pub attempt: u32,
    #[serde(with = "crate::time::millis")]
    #[schema(value_type = String, format = DateTime)]
    pub attempted_at: Timestamp,
    /// The receiver's HTTP status; null when no answer came.
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    /// The start of the receiver's answer.
    pub response: Option<String>,
    /// Why no answer came, or why it counts as a failure.
    pub error: Option<String>,
}

/// `GET /v1/pause/{id}/webhooks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WebhookDeliveryList {
    pub data: Vec<WebhookDelivery>,
}

/// Why a webhook does not verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyError {
    BadSecret(String),
    MissingHeader(&'static str),
    BadTimestamp(String),
    /// The timestamp is older than the tolerance: a replay, or a very late delivery.
    TooOld {
        age_seconds: i64,
    },
    TooNew {
        ahead_seconds: i64,
    },
    /// No `v1,` signature in the header matches the body under the secret.
    NoMatch,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::BadSecret(why) => write!(f, "the secret is not a whsec_ secret: {why}"),
            VerifyError::MissingHeader(name) => write!(f, "the {name} header is missing"),
            VerifyError::BadTimestamp(raw) => write!(f, "webhook-timestamp {raw:?} is not a Unix time in seconds"),
            VerifyError::TooOld { age_seconds } => write!(
                f,
                "webhook-timestamp is {age_seconds} s old, more than the {TOLERANCE_SECONDS} s allowed: a replay, or a clock that is off"
            ),
            VerifyError::TooNew { ahead_seconds } => write!(
                f,
                "webhook-timestamp is {ahead_seconds} s in the future, more than the {TOLERANCE_SECONDS} s allowed: check the clocks"
            ),
            VerifyError::NoMatch => write!(
                f,
                "no signature matches: the body, id or timestamp was changed, or the secret is not this endpoint's"
            ),
        }
    }
}

impl std::error::Error for VerifyError {}

/// A new secret: `whsec_` and the base64 of 32 random bytes given by the caller.
pub fn secret_from_bytes(bytes: &[u8; 32]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The key inside a `whsec_` secret (the prefix may be left off).
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, VerifyError> {
    let encoded = secret.trim();
    let encoded = encoded.strip_prefix(SECRET_PREFIX).unwrap_or(encoded);
    let key = STANDARD
        .decode(encoded)
        .map_err(|e| VerifyError::BadSecret(e.to_string()))?;
    if key.len() < 16 {
        return Err(VerifyError::BadSecret("it is shorter than 16 bytes".into()));
    }
    Ok(key)
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header for every key in use (one per key, space-separated),
/// so receivers holding an old or a new secret both verify during a rotation.
pub fn signature_header(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|key| sign(key, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks a received webhook as the specification says: the timestamp within the
/// tolerance of `now`, then any `v1,` signature matching, compared in constant time.
pub fn verify(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    let key = decode_secret(secret)?;
    if id.is_empty() {
        return Err(VerifyError::MissingHeader("webhook-id"));
    }
    if signatures.trim().is_empty() {
        return Err(VerifyError::MissingHeader("webhook-signature"));
    }
    let sent: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp(timestamp.to_owned()))?;
    if now - sent > TOLERANCE_SECONDS {
        return Err(VerifyError::TooOld {
            age_seconds: now - sent,
        });
    }
    if sent - now > TOLERANCE_SECONDS {
        return Err(VerifyError::TooNew {
            ahead_seconds: sent - now,
        });
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(format!("{id}.{sent}.").as_bytes());
    mac.update(body);
    let matches = signatures.split_whitespace().any(|entry| {
        entry
            .strip_prefix("v1,")
            .and_then(|b64| STANDARD.decode(b64).ok())
            .is_some_and(|tag| mac.clone().verify_slice(&tag).is_ok())
    });
    if matches {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks specification's published test vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_like_the_specifications_test_vector() {
        let key = decode_secret(SECRET).unwrap();
        assert_eq!(sign(&key, ID, TIMESTAMP, BODY), SIGNATURE);
        assert_eq!(
            verify(SECRET, ID, "1614265330", SIGNATURE, BODY, TIMESTAMP),
            Ok(())
        );
    }

    #[test]
    fn refuses_what_was_changed_or_replayed() {
        let at = TIMESTAMP.to_string();
        assert_eq!(
            verify(
                SECRET,
                ID,
                &at,
                SIGNATURE,
                br#"{"test": 2432232315}"#,
                TIMESTAMP
            ),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(SECRET, "msg_other", &at, SIGNATURE, BODY, TIMESTAMP),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(SECRET, ID, "1614265331", SIGNATURE, BODY, TIMESTAMP),
            Err(VerifyError::NoMatch)
        );
        assert_eq!(
            verify(SECRET, ID, &at, SIGNATURE, BODY, TIMESTAMP + 301),
            Err(VerifyError::TooOld { age_seconds: 301 })
        );
        assert_eq!(
            verify(SECRET, ID, &at, SIGNATURE, BODY, TIMESTAMP - 301),
            Err(VerifyError::TooNew { ahead_seconds: 301 })
        );
        assert!(verify("whsec_c2hvcnQ=", ID, &at, SIGNATURE, BODY, TIMESTAMP).is_err());
        // During a rotation any one matching signature is enough.
        let both = format!("v1,AAAA {SIGNATURE}");
        assert_eq!(verify(SECRET, ID, &at, &both, BODY, TIMESTAMP), Ok(()));
    }
}
