//! The API's one error type. Client errors say what to fix in a stable
//! `{"error": {"code", "message", "field"}}` body; internal errors are logged in full and
//! answered with an opaque 500.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pausepoint_api::{ErrorBody, ErrorDetail, PauseStatus, ValidationError};

use crate::domain::pauses::PauseError;
use crate::store::StoreError;

/// A failed request, ready to become a response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    pause_status: Option<PauseStatus>,
    /// Seconds to wait before trying again, sent as `Retry-After`.
    retry_after: Option<u32>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            pause_status: None,
            retry_after: None,
        }
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What went wrong, in words for a person.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// 400: the body is not the JSON object the call takes.
    pub fn invalid_json(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    /// 401: no key, or a key that is unknown or revoked.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404: nothing here, or nothing this project may see (the two look the same).
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the request conflicts with the state of what it names.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    /// 405: the path exists, the method does not.
    pub fn method_not_allowed() -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this path does not take that method",
        )
    }

    /// 413: the body is over the cap.
    pub fn payload_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is over the limit of {limit} bytes"),
        )
    }

    /// 422: a field breaks a rule.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            message,
        );
        error.field = Some(field.into());
        error
    }

    /// 429: the key holds as many long-polls as it may.
    pub fn too_many_long_polls(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_long_polls",
            format!(
                "this key already holds {limit} long-polls open; wait for one to end, or poll without wait"
            ),
        )
    }

    /// 503: the request took longer than the server allows.
    pub fn timeout(limit: std::time::Duration) -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than {} seconds; try again",
                limit.as_secs()
            ),
        )
    }

    /// 503: the database could not take the request just now (a conflict it broke by
    /// rolling this request back, a lock, a restart, no connection); trying again may
    /// work, and `Retry-After` says when.
    pub fn busy(error: &dyn std::error::Error) -> ApiError {
        tracing::warn!(error = %error, "request failed for a reason that passes; answered 503");
        let mut busy = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "the database could not take this request just now; try again in a second \
             (a create sent again with the same Idempotency-Key is not made twice)",
        );
        busy.retry_after = Some(1);
        busy
    }

    /// 500: something broke on our side. The details go to the log, not the client.
    pub fn internal(error: &dyn std::error::Error) -> ApiError {
        tracing::error!(error = %error, "request failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on the server; its log has the details",
        )
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> ApiError {
        ApiError::invalid(e.field, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        if e.is_transient() {
            ApiError::busy(&e)
        } else {
            ApiError::internal(&e)
        }
    }
}

impl From<PauseError> for ApiError {
    fn from(e: PauseError) -> ApiError {
        match e {
            PauseError::NotFound => ApiError::not_found("no pause with this id"),
            PauseError::NotPending(status) => {
                let mut error = ApiError::new(
                    StatusCode::CONFLICT,
                    "pause_not_pending",
                    format!("the pause is already {status}; it can no longer change"),
                );
                error.pause_status = Some(status);
                error
            }
            PauseError::Expired => ApiError::new(
                StatusCode::CONFLICT,
                "pause_expired",
                "the pause has expired and is being timed out",
            ),
            PauseError::Invalid(e) => e.into(),
            PauseError::IdempotencyConflict => {
                let mut error = ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_key_reused",
                    "this Idempotency-Key was already used with a different request body; use a new key for a new pause",
                );
                error.field = Some("Idempotency-Key".into());
                error
            }
            PauseError::AlreadyVoted => ApiError::new(
                StatusCode::CONFLICT,
                "already_voted",
                "this approver has already answered; each approver answers once",
            ),
            PauseError::NoSuchApprover => ApiError::not_found("no such approver of this pause"),
            PauseError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                field: self.field,
                status: self.pause_status.map(|s| s.as_str().to_owned()),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The error answers operations share, as the OpenAPI document describes them (each is
/// the one error body; its doc comment is the response's description).
// Types that only describe answers: never built.
#[allow(dead_code)]
pub mod documented {
    use pausepoint_api::ErrorBody;

    /// The body is not the JSON object the call takes (`invalid_json`).
    #[derive(utoipa::IntoResponses)]
    #[response(status = 400)]
    pub struct InvalidJson(ErrorBody);

    /// No API key, or an unknown or revoked one (`unauthorized`).
    #[derive(utoipa::IntoResponses)]
    #[response(status = 401)]
    pub struct Unauthorized(ErrorBody);

    /// No such thing in this project (`not_found`).
    #[derive(utoipa::IntoResponses)]
    #[response(status = 404)]
    pub struct NotFound(ErrorBody);

    /// The body is too large (`payload_too_large`).
    #[derive(utoipa::IntoResponses)]
    #[response(status = 413)]
    pub struct TooLarge(ErrorBody);

    /// A field or parameter breaks a rule (`validation_failed`, with `field`).
    #[derive(utoipa::IntoResponses)]
    #[response(status = 422)]
    pub struct Invalid(ErrorBody);

    /// The key already holds its limit of waiting polls (`too_many_long_polls`).
    #[derive(utoipa::IntoResponses)]
    #[response(status = 429)]
    pub struct TooManyLongPolls(ErrorBody);

    /// The request took longer than the time limit (`timeout`), the database could not
    /// take it just now (`busy`, with `Retry-After`), or the server is stopping. Worth
    /// trying again.
    #[derive(utoipa::IntoResponses)]
    #[response(status = 503)]
    pub struct Unavailable(ErrorBody);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// What a client sees of a store error: 503 with `Retry-After` when trying again may
    /// work, an opaque 500 otherwise.
    #[test]
    fn a_failure_that_passes_is_503_with_retry_after_and_others_500() {
        let busy_sqlite = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        let transient = [
            StoreError::Database(sqlx::Error::PoolTimedOut),
            StoreError::Sqlite(busy_sqlite),
            StoreError::not_committed(&StoreError::Database(sqlx::Error::PoolTimedOut)),
        ];
        for error in transient {
            let response = ApiError::from(error).into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        }
        let lasting = [
            StoreError::corrupt("pauses", "a bad row"),
            StoreError::not_committed(&StoreError::corrupt("pauses", "a bad row")),
            StoreError::Closed,
        ];
        for error in lasting {
            let response = ApiError::from(error).into_response();
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert!(response.headers().get(header::RETRY_AFTER).is_none());
        }
    }
}
