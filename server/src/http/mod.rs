//! The REST API. Handlers are thin: extract, call the domain, shape the answer.
//!
//! - [`pauses`]: create, get (with long-poll), cancel and list pauses.
//! - [`audit`]: query, export and verify the audit log.
//! - [`webhooks`]: a pause's webhook events, and resending one.
//! - [`page`]: the response page humans open from their message.
//! - [`extract`]: the caller's key, JSON bodies and query parameters.
//! - [`error`]: the one error type and body.

pub mod audit;
pub mod error;
pub mod extract;
pub mod page;
pub mod pauses;
pub mod webhooks;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::App;
use error::ApiError;

/// The largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub app: App,
    /// Cancelled when the server shuts down, so long-polls answer at once.
    pub stop: CancellationToken,
}

/// Every route of the service.
pub fn router(app: App, stop: CancellationToken) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/pause", post(pauses::create).get(pauses::list))
        .route("/v1/pause/{id}", get(pauses::get))
        .route("/v1/pause/{id}/cancel", post(pauses::cancel))
        .route("/v1/pause/{id}/webhooks", get(webhooks::list))
        .route(
            "/v1/pause/{id}/webhooks/{event_id}/resend",
            post(webhooks::resend),
        )
        .route("/v1/audit", get(audit::query))
        .route("/v1/audit/export", get(audit::export))
        .route("/v1/audit/verify", get(audit::verify))
        .route("/r/{token}", get(page::show).post(page::answer))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(AppState { app, stop })
}

/// Prometheus text: how many pauses, deliveries and webhook events stand in each status,
/// and how many long-polls wait. Totals only, across projects, so it needs no key.
async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    use std::fmt::Write;
    let store = state.app.store();
    let mut text = String::new();
    let families = [
        ("pausepoint_pauses", "Pauses by status.", "pauses"),
        (
            "pausepoint_deliveries",
            "Deliveries to humans by status.",
            "deliveries",
        ),
        (
            "pausepoint_webhook_events",
            "Webhook events by status.",
            "webhook_events",
        ),
    ];
    for (name, help, table) in families {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (status, count) in store.status_counts(table).await? {
            let _ = writeln!(text, "{name}{{status=\"{status}\"}} {count}");
        }
    }
    let _ = writeln!(
        text,
        "# HELP pausepoint_long_polls_waiting Pauses with a long-poll waiting on this server.\n\
         # TYPE pausepoint_long_polls_waiting gauge\npausepoint_long_polls_waiting {}",
        state.app.pauses().watching()
    );
    let _ = writeln!(
        text,
        "# HELP pausepoint_build_info The running version.\n# TYPE pausepoint_build_info gauge\n\
         pausepoint_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

/// Liveness: answers 200 while the database answers.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.app.store().key_count().await {
        Ok(_) => (StatusCode::OK, Json(json!({ "status": "ok" }))),
        Err(e) => {
            tracing::error!(error = %e, "health check: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable" })),
            )
        }
    }
}
