//! Request extractors that fail with the API's error body: the caller's key, a JSON
//! body, and query parameters.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;
use super::{AppState, BODY_LIMIT};
use crate::ids::ProjectId;
use crate::store::keys::KeyRecord;
use crate::store::Actor;

/// The project and key behind a request, from `Authorization: Bearer <key>`.
pub struct Caller {
    pub key: KeyRecord,
}

impl Caller {
    pub fn project_id(&self) -> ProjectId {
        self.key.project_id
    }

    /// Who the audit log says acted.
    pub fn actor(&self) -> Actor {
        Actor::ApiKey(self.key.id)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "missing API key: send the header Authorization: Bearer pp_live_… \
                     (create a key with `pp admin keys create --name NAME`)",
                )
            })?;
        let presented = match header.split_once(' ') {
            Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") => key.trim(),
            _ => {
                return Err(ApiError::unauthorized(
                    "the Authorization header must be: Bearer pp_live_…",
                ))
            }
        };
        // Boxed: every request's future is as large as its largest step, and a long-poll
        // holds its future while it waits; a key read from the store is a large step.
        match Box::pin(state.app.keys().authenticate(state.app.store(), presented)).await? {
            Some(key) => Ok(Caller { key }),
            None => Err(ApiError::unauthorized(
                "the API key is not valid or has been revoked",
            )),
        }
    }
}

/// A JSON object body, deserialized into `T`, kept also as the raw value.
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Value,
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<JsonBody<T>, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::payload_too_large(BODY_LIMIT)
                } else {
                    ApiError::invalid_json(format!("could not read the request body: {rejection}"))
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::invalid_json(
                "the request body is empty; send a JSON object",
            ));
        }
        let raw: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::invalid_json(format!("the request body is not valid JSON: {e}"))
        })?;
        if !raw.is_object() {
            return Err(ApiError::invalid_json(
                "the request body must be a JSON object",
            ));
        }
        let value = serde_path_to_error::deserialize(&raw).map_err(|e| {
            let field = e.path().to_string();
            let message = format!(
                "{field} has the wrong type: {}",
                plain_words(&e.inner().to_string())
            );
            ApiError::invalid(field, message)
        })?;
        Ok(JsonBody { value, raw })
    }
}

/// Query parameters deserialized into `T`; a bad one is a 422 naming it.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<QueryParams<T>, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(QueryParams)
            .map_err(|e| {
                let field = e.path().to_string();
                let message = format!(
                    "the query parameter {field} is not valid: {}",
                    plain_words(&e.inner().to_string())
                );
                ApiError::invalid(field, message)
            })
    }
}

/// Serde speaks Rust ("expected u64"); the API speaks JSON.
fn plain_words(message: &str) -> String {
    message
        .replace("u64", "a whole number")
        .replace("u32", "a whole number")
        .replace("a boolean", "true or false")
        .replace("a sequence", "an array")
}

/// A time parameter (`since`, `until`): RFC 3339, or a clear 422 naming `field`.
pub fn time(
    field: &str,
    raw: Option<&str>,
) -> Result<Option<jiff::Timestamp>, super::error::ApiError> {
    raw.map(|t| {
        t.parse::<jiff::Timestamp>().map_err(|_| {
            super::error::ApiError::invalid(
                field,
                format!("{field} must be an RFC 3339 time such as 2026-11-22T09:30:00Z"),
            )
        })
    })
    .transpose()
}
