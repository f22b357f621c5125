//! `/metrics`: the server's metrics (see [`crate::metrics`]) in the OpenMetrics text
//! format, and the layer that counts and times every request. Totals only, across
//! projects, so it needs no key; `--metrics-bind` serves it on a listener of its own.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::metrics::{RequestLabels, RouteLabel};

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    operation_id = "metrics",
    summary = "Prometheus metrics",
    description = "OpenMetrics text, totals only, no key (see the README's Metrics). With `--metrics-bind` it is served on that address instead.",
    responses((status = 200, description = "The metrics", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String))
)]
/// `GET /metrics`
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let metrics = state.app.store().hub().metrics();
    metrics
        .long_polls
        .set(i64::try_from(state.long_polls.total()).unwrap_or(i64::MAX));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.render(),
    )
}

/// Counts and times a request, by its route's pattern (never its path: ids and link
/// tokens stay out of the metrics).
pub async fn measure(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("", MatchedPath::as_str)
        .to_owned();
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let metrics = state.app.store().hub().metrics();
    metrics
        .http_requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method,
            status: response.status().as_u16().to_string(),
        })
        .inc();
    metrics
        .http_seconds
        .get_or_create(&RouteLabel { route })
        .observe(started.elapsed().as_secs_f64());
    response
}
