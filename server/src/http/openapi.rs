//! `GET /openapi.json`: the API described from the code (OpenAPI 3.1). The paths come
//! from each handler's `#[utoipa::path]`, the schemas from the wire types themselves, so
//! the document cannot drift from what the server does. What utoipa does not model is
//! added here: the webhook events under `webhooks`, and the links that chain a create to
//! the calls on the pause it made.

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{json, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

pub const PATH: &str = "/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "PausePoint",
        description = "Pause an AI agent until a human decides. An agent creates a pause; the human gets a text, email or Slack message with a link, answers on a mobile page, and the agent reads the decision (or the default when nobody answers in time). Every step lands in a signed, hash-chained audit log.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        super::pauses::create,
        super::pauses::get,
        super::pauses::cancel,
        super::pauses::list,
        super::webhooks::list,
        super::webhooks::resend,
        super::audit::query,
        super::audit::export,
        super::audit::verify,
        super::audit::public_key,
        super::audit::checkpoints,
        super::audit::checkpoint_now,
        super::rules::list,
        super::rules::revoke,
        super::hooks::claude_code,
        super::inbound::twilio,
        super::inbound::twilio_status,
        super::inbound::slack,
        super::healthz,
        super::metrics::metrics,
        super::page::show,
        super::page::answer,
    ),
    components(schemas(pausepoint_api::webhooks::WebhookEvent)),
    modifiers(&Bearer),
    tags(
        (name = "pauses", description = "Ask a human, wait for the decision, withdraw, list"),
        (name = "webhooks", description = "A pause's signed webhook events"),
        (name = "audit", description = "The hash-chained, signed audit log"),
        (name = "rules", description = "Remembered approvals (\"Allow for 1 hour\")"),
        (name = "hooks", description = "Coding agents' permission hooks"),
        (name = "inbound", description = "What messaging providers post back: replies, delivery reports and button clicks"),
        (name = "page", description = "The page humans answer on, reached by the signed link in their message"),
        (name = "service", description = "Health and metrics")
    )
)]
struct Api;

/// The bearer API key (`Authorization: Bearer pp_live_…`).
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("pp_live_…")
                    .description(Some(
                        "An API key: `pp admin keys create --name NAME` makes one; a new `pp server` prints the first.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The whole document.
pub fn document() -> Value {
    let mut document = serde_json::to_value(Api::openapi()).unwrap_or(Value::Null);
    document["webhooks"] = webhooks();
    add_links(&mut document);
    document
}

/// The events a decided pause (and, with `--checkpoint-url`, a checkpoint) sends, signed
/// as Standard Webhooks.
fn webhooks() -> Value {
    let header = |name: &str, description: &str| {
        json!({ "name": name, "in": "header", "required": true, "description": description,
                "schema": { "type": "string" } })
    };
    let event = |summary: &str| {
        json!({ "post": {
            "summary": summary,
            "description": "Sent to the pause's `webhook_url`, retried with backoff until a 2xx (a 410 stops it). Verify the signature before trusting the body: `pp webhook verify`, or any Standard Webhooks library with the project's secret.",
            "parameters": [
                header("webhook-id", "The event's id: the same on every attempt, for deduplication"),
                header("webhook-timestamp", "Unix seconds when this attempt was signed"),
                header("webhook-signature", "`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, space-separated when two secrets sign during a rotation"),
            ],
            "requestBody": { "required": true, "content": { "application/json": {
                "schema": { "$ref": "#/components/schemas/WebhookEvent" } } } },
            "responses": {
                "2XX": { "description": "Received; not sent again" },
                "410": { "description": "Gone: never sent again" },
                "default": { "description": "Any other answer is retried" },
            },
        }})
    };
    json!({
        "pause.responded": event("A human answered"),
        "pause.timed_out": event("Nobody answered in time"),
        "pause.cancelled": event("The pause was withdrawn"),
    })
}

/// Links from a create's answer to the calls on the pause it made, for clients and for
/// stateful testing.
fn add_links(document: &mut Value) {
    let link = |operation: &str| json!({ "operationId": operation, "parameters": { "id": "$response.body#/pause_id" } });
    let created = &mut document["paths"]["/v1/pause"]["post"]["responses"]["201"];
    if created.is_object() {
        created["links"] = json!({
            "GetPause": link("get_pause"),
            "CancelPause": link("cancel_pause"),
            "ListWebhookEvents": link("list_webhook_events"),
        });
    }
    let events = &mut document["paths"]["/v1/pause/{id}/webhooks"]["get"]["responses"]["200"];
    if events.is_object() {
        events["links"] = json!({ "ResendWebhookEvent": {
            "operationId": "resend_webhook_event",
            "parameters": { "id": "$request.path.id", "event_id": "$response.body#/data/0/event_id" },
        }});
    }
    let rules = &mut document["paths"]["/v1/rules"]["get"]["responses"]["200"];
    if rules.is_object() {
        rules["links"] = json!({ "RevokeRule": {
            "operationId": "revoke_rule",
            "parameters": { "id": "$response.body#/data/0/rule_id" },
        }});
    }
}

/// `GET /openapi.json`, no key needed. Built on the first request, then kept.
pub async fn serve() -> impl IntoResponse {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text =
        DOCUMENT.get_or_init(|| serde_json::to_string_pretty(&document()).unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], text.as_str())
}
