//! `/mcp`: the MCP tools over Streamable HTTP, so that any MCP client connects with a URL
//! and an API key, without installing `pp`. The key is checked here, before the MCP
//! layer: a missing or wrong one gets 401 when the client connects, not at its first
//! tool call. The tools are the same as `pp mcp`'s, a thin layer over this server's own
//! API, which each call reaches over loopback with its request's key.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use super::extract::Caller;
use super::AppState;

pub const PATH: &str = "/mcp";

/// The `/mcp` route, for a server listening on `local`.
pub fn routes(state: &AppState, local: SocketAddr) -> Router<AppState> {
    let config = state.app.config();
    let approver = config
        .default_approver
        .as_ref()
        .map(|a| pausepoint_mcp::Approver {
            recipient: a.recipient.clone(),
            channel: a.channel.map(|c| c.as_str().to_owned()),
            timeout: a.timeout,
        });
    let service = pausepoint_mcp::streamable_http(
        &format!("http://{}", loopback(local)),
        approver,
        allowed_hosts(config.public_url.as_ref(), local),
        state.stop.clone(),
    );
    Router::new()
        .route_service(PATH, service)
        .layer(middleware::from_fn_with_state(state.clone(), require_key))
}

/// Lets only requests with a live API key through.
async fn require_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match Caller::from_request_parts(&mut parts, &state).await {
        Ok(_) => next.run(Request::from_parts(parts, body)).await,
        Err(error) => {
            let mut response = error.into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"pausepoint\""),
            );
            response
        }
    }
}

/// Where this server can reach itself: its own address, or loopback when it listens on
/// every address.
fn loopback(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

/// The `Host`s `/mcp` answers, against DNS rebinding: loopback, the listening address and
/// the public URL's host. A server listening on every address with no public URL is
/// reached by names it cannot know, so it accepts any (every request needs a key anyway).
fn allowed_hosts(public_url: Option<&url::Url>, local: SocketAddr) -> Vec<String> {
    if public_url.is_none() && local.ip().is_unspecified() {
        return Vec::new();
    }
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
        local.ip().to_string(),
    ];
    if let Some(host) = public_url.and_then(url::Url::host_str) {
        hosts.push(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        );
    }
    hosts
}
