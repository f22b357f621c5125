//! The REST API and the response page. Handlers are thin: extract, call the domain,
//! shape the answer.
//!
//! - [`pauses`]: create, get (with long-poll), cancel and list pauses.
//! - [`audit`]: query, export and verify the audit log.
//! - [`webhooks`]: a pause's webhook events, and resending one.
//! - [`hooks`]: Claude Code's permission hooks, answered by a person.
//! - [`rules`]: the approvals people asked to remember, and revoking one.
//! - [`mcp`]: the MCP tools over Streamable HTTP, with the API key as the bearer.
//! - [`openapi`]: the API described from the code, at `/openapi.json`.
//! - [`page`]: the response page humans open from their message.
//! - the operator's console is [`crate::console`], on the same router.
//! - [`metrics`]: Prometheus text, on the main listener or its own.
//! - [`extract`]: the caller's key, JSON bodies and query parameters.
//! - [`limits`]: the body cap, the request time limit and the cap on long-polls per key.
//! - [`connections`]: accepting connections, with their limits.
//! - [`error`]: the one error type and body.

pub mod audit;
pub mod connections;
pub mod error;
pub mod extract;
pub mod hooks;
pub mod inbound;
pub mod limits;
pub mod mcp;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod pauses;
pub mod rules;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tower_http::compression::CompressionLayer;

use crate::App;
use error::ApiError;

/// The largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 64 * 1024;
/// The largest hook event accepted: it holds the tool's whole input.
pub const HOOK_BODY_LIMIT: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub app: App,
    /// Cancelled when the server shuts down, so long-polls answer at once.
    pub stop: CancellationToken,
    /// Long-polls open, per key.
    pub long_polls: Arc<limits::LongPolls>,
    /// The server's public URL, without a trailing slash: what providers sign.
    pub public_url: String,
    /// Failed console sign-ins, per client address.
    pub sign_ins: Arc<crate::console::session::SignInAttempts>,
}

/// Every route of the service. `/metrics` is here unless it has a listener of its own.
pub fn router(app: App, stop: CancellationToken, local: std::net::SocketAddr) -> Router {
    let config = app.config();
    let state = AppState {
        long_polls: Arc::new(limits::LongPolls::new(config.max_long_polls_per_key)),
        stop,
        app: app.clone(),
        public_url: config.public_url_or(local),
        sign_ins: Arc::default(),
    };
    let request_timeout = config.request_timeout;
    // Everything but the long-poll and the audit walk answers within the request time limit.
    let mut bounded = Router::new()
        .route("/healthz", get(healthz))
        .route(openapi::PATH, get(openapi::serve))
        .route("/v1/pause", post(pauses::create).get(pauses::list))
        .route("/v1/pause/{id}/cancel", post(pauses::cancel))
        .route("/v1/pause/{id}/webhooks", get(webhooks::list))
        .route(
            "/v1/pause/{id}/webhooks/{event_id}/resend",
            post(webhooks::resend),
        )
        .route(inbound::TWILIO_PATH, post(inbound::twilio))
        .route("/v1/inbound/slack", post(inbound::slack))
        .route(
            crate::channels::sms::STATUS_PATH,
            post(inbound::twilio_status),
        )
        .route("/v1/rules", get(rules::list))
        .route("/v1/rules/{id}/revoke", post(rules::revoke))
        .route("/v1/audit", get(audit::query))
        .route("/v1/audit/export", get(audit::export))
        .route("/v1/audit/public-key", get(audit::public_key))
        .route(
            "/v1/audit/checkpoints",
            get(audit::checkpoints).post(audit::checkpoint_now),
        );
    if config.metrics_bind.is_none() {
        bounded = bounded.route("/metrics", get(metrics::metrics));
    }
    let bounded = bounded.layer(middleware::from_fn(move |request, next| {
        limits::within(request_timeout, request, next)
    }));
    // The page's headers go on every answer under /r/, errors included.
    let page = Router::new()
        .route("/r/{token}", get(page::show).post(page::answer))
        .layer(middleware::map_response(page::with_page_headers));
    Router::new()
        .route("/v1/pause/{id}", get(pauses::get))
        // A full walk takes as long as the log is long: outside the request time limit.
        .route("/v1/audit/verify", get(audit::verify))
        // Held until the person answers, within the hook's own timeout.
        .route(hooks::CLAUDE_CODE_PATH, post(hooks::claude_code))
        .merge(bounded)
        .merge(page)
        .merge(crate::console::routes(&state, request_timeout))
        // MCP calls wait as long as their tools do (a poll up to 50 s).
        .merge(mcp::routes(&state, local))
        // Inside the routes, where the matched route is known.
        .route_layer(metrics::Measure::new(Arc::clone(state.app.store().hub())))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(HOOK_BODY_LIMIT))
        .layer(limits::BoundedBody)
        // The page, JSON and exports, gzipped for clients that accept it (the page goes
        // from about 2.5 KB to 1 KB over a phone's network).
        .layer(CompressionLayer::new().gzip(true))
        .with_state(state)
}

/// `/metrics` alone, for its own listener (`--metrics-bind`), so it need not be public.
pub fn metrics_router(app: App, stop: CancellationToken) -> Router {
    let public_url = app.config().public_url_or(([127, 0, 0, 1], 0).into());
    let state = AppState {
        long_polls: Arc::new(limits::LongPolls::new(0)),
        stop,
        app,
        public_url,
        sign_ins: Arc::default(),
    };
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .fallback(|| async { ApiError::not_found("only /metrics is served here") })
        .with_state(state)
}

/// Liveness: answers 200 while the database answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "service",
    operation_id = "health",
    summary = "Is the service up",
    responses(
        (status = 200, description = "`{\"status\": \"ok\"}` while the database answers", body = Object),
        (status = 503, description = "`{\"status\": \"unavailable\"}`: the database does not answer", body = Object)
    )
)]
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
