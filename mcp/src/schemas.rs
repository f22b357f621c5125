//! The tools' JSON Schemas, in the plain JSON Schema 2020-12 that strict clients (Ajv's
//! 2020 mode, OpenAI's strict tools) accept: no formats outside the standard's list, no
//! `["T", "null"]` types for optional fields (some clients then send the string "null"),
//! enums for closed sets and bounds for numbers; and an `outputSchema` for each tool,
//! describing the `structuredContent` it returns.

use pausepoint_api::{AuditEventKind, Channel, PauseStatus};
use rmcp::model::JsonObject;
use rmcp::schemars::Schema;
use serde_json::{json, Map, Value};

/// The formats JSON Schema 2020-12 defines that these schemas use.
const STANDARD_FORMATS: [&str; 4] = ["date-time", "uri", "email", "uuid"];

/// `#[schemars(transform = strict)]`: rewrites what schemars generates into strict
/// JSON Schema (see the module's doc).
pub fn strict(schema: &mut Schema) {
    if let Some(object) = schema.as_object_mut() {
        strict_object(object);
    }
}

fn strict_object(node: &mut Map<String, Value>) {
    // `"type": ["integer", "null"]` for an Option: optional fields are simply left out
    // of `required`, so the null adds nothing but a type some clients get wrong.
    if let Some(Value::Array(types)) = node.get("type") {
        let mut kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        if kept.len() == 1 {
            node.insert("type".into(), kept.remove(0));
        }
    }
    if let Some(Value::String(format)) = node.get("format") {
        if !STANDARD_FORMATS.contains(&format.as_str()) {
            // "uint32" and the like: what they meant is a lower bound.
            let unsigned = format.starts_with("uint");
            node.remove("format");
            if unsigned && !node.contains_key("minimum") {
                node.insert("minimum".into(), json!(0));
            }
        }
    }
    for (key, value) in node.iter_mut() {
        match (key.as_str(), value) {
            ("properties" | "$defs" | "definitions", Value::Object(children)) => {
                for child in children.values_mut() {
                    if let Value::Object(child) = child {
                        strict_object(child);
                    }
                }
            }
            ("items" | "additionalProperties" | "not", Value::Object(child)) => {
                strict_object(child)
            }
            ("anyOf" | "oneOf" | "allOf" | "prefixItems", Value::Array(children)) => {
                for child in children {
                    if let Value::Object(child) = child {
                        strict_object(child);
                    }
                }
            }
            _ => {}
        }
    }
}

/// `channel`'s values.
pub fn channels() -> Value {
    json!([
        Channel::Sms.as_str(),
        Channel::Email.as_str(),
        Channel::Slack.as_str(),
        Channel::Ntfy.as_str()
    ])
}

/// `status`'s values.
pub fn statuses() -> Value {
    json!([
        PauseStatus::Pending.as_str(),
        PauseStatus::Responded.as_str(),
        PauseStatus::TimedOut.as_str(),
        PauseStatus::Cancelled.as_str()
    ])
}

/// The audit event names.
pub fn events() -> Value {
    Value::Array(
        AuditEventKind::ALL
            .iter()
            .map(|kind| json!(kind.as_str()))
            .collect(),
    )
}

/// A time as the API writes it.
fn time() -> Value {
    json!({ "type": "string", "format": "date-time" })
}

fn nullable(schema: Value) -> Value {
    json!({ "anyOf": [schema, { "type": "null" }] })
}

/// A pause, as `GET /v1/pause/{id}` returns it.
fn pause() -> Value {
    json!({
        "type": "object",
        "required": ["pause_id", "status", "channel", "recipient", "message", "options",
                     "allow_text_response", "created_at", "expires_at"],
        "properties": {
            "pause_id": { "type": "string", "format": "uuid" },
            "status": { "type": "string", "enum": statuses() },
            "channel": { "type": "string", "enum": channels() },
            "recipient": { "type": "string" },
            "message": { "type": "string" },
            "options": { "type": "array", "items": { "type": "string" }, "minItems": 2, "maxItems": 5 },
            "allow_text_response": { "type": "boolean" },
            "timeout_default": nullable(json!({ "type": "string" })),
            "response_choice": nullable(json!({ "type": "string" })),
            "response_text": nullable(json!({ "type": "string" })),
            "response_at": nullable(time()),
            "created_at": time(),
            "expires_at": time(),
            "metadata": nullable(json!({ "type": "object" })),
            "webhook_url": nullable(json!({ "type": "string" })),
            "delivery": nullable(json!({
                "type": "object",
                "required": ["status", "attempts"],
                "properties": {
                    "status": { "type": "string",
                                "enum": ["pending", "sent", "logged", "failed", "skipped"] },
                    "attempts": { "type": "integer", "minimum": 0 },
                    "last_error": nullable(json!({ "type": "string" })),
                },
            })),
            "receipt": { "type": "string" },
        },
    })
}

fn audit_event() -> Value {
    json!({
        "type": "object",
        "required": ["event_id", "seq", "event", "actor", "occurred_at", "data", "prev_hash", "hash"],
        "properties": {
            "event_id": { "type": "string", "format": "uuid" },
            "seq": { "type": "integer", "minimum": 1 },
            "event": { "type": "string", "enum": events() },
            "pause_id": nullable(json!({ "type": "string", "format": "uuid" })),
            "actor": { "type": "string" },
            "occurred_at": time(),
            "data": {},
            "prev_hash": { "type": "string" },
            "hash": { "type": "string" },
        },
    })
}

fn page(item: Value) -> Value {
    json!({
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": { "type": "array", "items": item },
            "next_cursor": nullable(json!({ "type": "string" })),
        },
    })
}

/// What `request_permission` returns: Claude Code's permission-prompt answer.
fn permission() -> Value {
    json!({
        "type": "object",
        "required": ["behavior"],
        "properties": {
            "behavior": { "type": "string", "enum": ["allow", "deny"] },
            "updatedInput": {},
            "message": { "type": "string" },
        },
    })
}

/// The `outputSchema` of each tool, by name.
pub fn output(tool: &str) -> Option<JsonObject> {
    let schema = match tool {
        "create_pause_request" | "poll_pause_request" | "cancel_pause_request" => pause(),
        "list_pause_requests" => page(pause()),
        "get_audit_log" => page(audit_event()),
        "request_permission" => permission(),
        _ => return None,
    };
    match schema {
        Value::Object(mut object) => {
            object.insert(
                "$schema".into(),
                json!("https://json-schema.org/draft/2020-12/schema"),
            );
            Some(object)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_schemas_lose_their_nonstandard_formats_and_nulls() {
        let mut schema = Schema::try_from(json!({
            "type": "object",
            "properties": {
                "wait": { "type": ["integer", "null"], "format": "uint64" },
                "hours": { "type": ["number", "null"], "format": "double", "minimum": 0.1 },
                "since": { "type": ["string", "null"], "format": "date-time" },
                "tags": { "type": "array", "items": { "type": "integer", "format": "uint32" } },
            },
        }))
        .unwrap();
        strict(&mut schema);
        assert_eq!(
            schema.as_value(),
            &json!({
                "type": "object",
                "properties": {
                    "wait": { "type": "integer", "minimum": 0 },
                    "hours": { "type": "number", "minimum": 0.1 },
                    "since": { "type": "string", "format": "date-time" },
                    "tags": { "type": "array", "items": { "type": "integer", "minimum": 0 } },
                },
            })
        );
    }
}
