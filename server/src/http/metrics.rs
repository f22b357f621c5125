//! `/metrics`: the server's metrics (see [`crate::metrics`]) in the OpenMetrics text
//! format, and the layer that counts and times every request. Totals only, across
//! projects, so it needs no key; `--metrics-bind` serves it on a listener of its own.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::response::{IntoResponse, Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use super::AppState;
use crate::hub::Hub;
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

/// Counts and times every request, by its route's pattern (never its path: ids and link
/// tokens stay out of the metrics). A layer with a future of its own rather than
/// `middleware::from_fn`: a long-poll holds this future while it waits, and `from_fn`
/// boxes one sized for its every step (about 1.5 KiB a waiter, measured with massif);
/// this one is the inner future and four small fields.
#[derive(Clone)]
pub struct Measure {
    hub: Arc<Hub>,
}

impl Measure {
    pub fn new(hub: Arc<Hub>) -> Measure {
        Measure { hub }
    }
}

impl<S> Layer<S> for Measure {
    type Service = Measured<S>;

    fn layer(&self, inner: S) -> Measured<S> {
        Measured {
            inner,
            hub: Arc::clone(&self.hub),
        }
    }
}

/// A route's service, counted and timed.
#[derive(Clone)]
pub struct Measured<S> {
    inner: S,
    hub: Arc<Hub>,
}

impl<S> Service<Request> for Measured<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Measuring<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = request.method().clone();
        Measuring {
            inner: self.inner.call(request),
            hub: Arc::clone(&self.hub),
            route,
            method,
            started: Instant::now(),
        }
    }
}

pin_project! {
    /// A request on its way, to be counted when it is answered.
    pub struct Measuring<F> {
        #[pin]
        inner: F,
        hub: Arc<Hub>,
        route: Option<MatchedPath>,
        method: Method,
        started: Instant,
    }
}

impl<F, E> Future for Measuring<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answered = ready!(this.inner.poll(cx));
        if let Ok(response) = &answered {
            let route = this.route.as_ref().map_or("", MatchedPath::as_str);
            let metrics = this.hub.metrics();
            metrics
                .http_requests
                .get_or_create(&RequestLabels {
                    route: route.to_owned(),
                    method: this.method.as_str().to_owned(),
                    status: response.status().as_u16().to_string(),
                })
                .inc();
            metrics
                .http_seconds
                .get_or_create(&RouteLabel {
                    route: route.to_owned(),
                })
                .observe(this.started.elapsed().as_secs_f64());
        }
        Poll::Ready(answered)
    }
}
