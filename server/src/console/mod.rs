//! `/console`: the operator's web view of one project. Signs in with an API key (see
//! [`session`]); shows the pauses live, a pause's timeline, the audit log with its
//! verify state, the keys, and charts. Server-rendered; its stylesheet and script are the
//! server's own files, and a strict Content-Security-Policy allows nothing else.
//!
//! - [`session`]: sign-in, sessions, CSRF tokens, the Origin check, failed sign-ins.
//! - [`pages`]: the handlers.
//! - [`views`]: the markup.
//! - [`charts`]: the SVG charts.

pub mod charts;
pub mod pages;
pub mod session;
pub mod views;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::http::AppState;

const STYLESHEET: &str = include_str!("console.css");
const SCRIPT: &str = include_str!("console.js");

/// The Content-Security-Policy of every console page: its own stylesheet and script,
/// inline SVG, the live list's connection back to this server, forms posting here, and
/// no framing.
const POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
                      connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes. Every page but the live list answers within `request_timeout`.
pub fn routes(state: &AppState, request_timeout: std::time::Duration) -> Router<AppState> {
    let pages = Router::new()
        .route("/console", get(pages::home))
        .route("/console/", get(pages::home))
        .route(
            "/console/sign-in",
            get(pages::sign_in_form).post(pages::sign_in),
        )
        .route("/console/sign-out", post(pages::sign_out))
        .route("/console/pauses", get(pages::pauses))
        .route("/console/pauses/{id}", get(pages::timeline))
        .route("/console/pauses/{id}/cancel", post(pages::cancel))
        .route(
            "/console/pauses/{id}/webhooks/{event_id}/resend",
            post(pages::resend),
        )
        .route("/console/audit", get(pages::audit))
        .route("/console/keys", get(pages::keys).post(pages::create_key))
        .route("/console/keys/{id}/revoke", post(pages::revoke_key))
        .route("/console/charts", get(pages::charts))
        .route("/console/console.css", get(stylesheet))
        .route("/console/console.js", get(script))
        .layer(middleware::from_fn(move |request, next| {
            crate::http::limits::within(request_timeout, request, next)
        }));
    Router::new()
        .route("/console/pauses/live", get(pages::live))
        // An export streams as long as the log is long: outside the request time limit.
        .route("/console/audit/export", get(pages::export))
        .merge(pages)
        .route_layer(middleware::map_response(with_console_headers))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            same_origin_posts,
        ))
}

/// Refuses a POST whose `Origin` is not this console's (see [`session::same_origin`]).
async fn same_origin_posts(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() == Method::POST && !session::same_origin(&state, request.headers()) {
        tracing::warn!(
            origin = ?request.headers().get(header::ORIGIN),
            path = request.uri().path(),
            "console: refused a POST from another origin"
        );
        return (
            StatusCode::FORBIDDEN,
            axum::response::Html(
                views::problem(
                    "Refused",
                    "This form was not sent from this console's own page.",
                )
                .into_string(),
            ),
        )
            .into_response();
    }
    next.run(request).await
}

/// The headers of every console answer: the policy, no caching (pages show secrets such
/// as a new key), no framing, no sniffing, and a referrer only to this server.
async fn with_console_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Not `no-referrer`: with it, browsers send `Origin: null` on a POST, and the Origin
    // check could not tell the console's own forms from anyone's.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        STYLESHEET,
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        SCRIPT,
    )
}
