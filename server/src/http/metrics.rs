//! `/metrics`: Prometheus text.

use axum::extract::State;
use axum::response::IntoResponse;

use super::error::ApiError;
use super::AppState;

/// Prometheus text: how many pauses, deliveries and webhook events stand in each status,
/// and how many long-polls wait. Totals only, across projects, so it needs no key.
pub async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
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
