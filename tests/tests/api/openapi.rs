//! `GET /openapi.json`: the API described from the code, served without a key, the same as
//! the committed `openapi.json`, and naming every operation the server has.

use pausepoint_tests::TestServer;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn the_served_document_is_the_committed_one_and_describes_every_operation() {
    let server = TestServer::start().await;
    let response = reqwest::get(format!("{}/openapi.json", server.client.base))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "served without a key");
    assert_eq!(response.headers()["content-type"], "application/json");
    let served: Value = response.json().await.unwrap();

    let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.json");
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(&committed).unwrap()).unwrap();
    assert!(
        served == committed,
        "openapi.json is not what the server serves: run `cargo run -- openapi > openapi.json`"
    );

    assert_eq!(served["openapi"], "3.1.0");
    for (path, method) in [
        ("/v1/pause", "post"),
        ("/v1/pause", "get"),
        ("/v1/pause/{id}", "get"),
        ("/v1/pause/{id}/cancel", "post"),
        ("/v1/pause/{id}/webhooks", "get"),
        ("/v1/pause/{id}/webhooks/{event_id}/resend", "post"),
        ("/v1/audit", "get"),
        ("/v1/audit/export", "get"),
        ("/v1/audit/verify", "get"),
        ("/v1/audit/public-key", "get"),
        ("/v1/audit/checkpoints", "get"),
        ("/v1/audit/checkpoints", "post"),
        ("/v1/rules", "get"),
        ("/v1/rules/{id}/revoke", "post"),
        ("/v1/hooks/claude-code", "post"),
        ("/healthz", "get"),
        ("/metrics", "get"),
        ("/r/{token}", "get"),
        ("/r/{token}", "post"),
    ] {
        let operation = &served["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is described");
        assert!(
            operation["responses"].is_object(),
            "{method} {path} has responses"
        );
    }
    // The key is a bearer scheme, required where the server requires it.
    assert_eq!(
        served["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(
        served["paths"]["/v1/pause"]["post"]["security"][0]["bearer"],
        serde_json::json!([])
    );
    assert!(served["paths"]["/v1/audit/public-key"]["get"]["security"].is_null());
    // The create documents the idempotency headers and its errors.
    let create = &served["paths"]["/v1/pause"]["post"];
    assert_eq!(create["parameters"][0]["name"], "Idempotency-Key");
    assert!(create["responses"]["201"]["headers"]["Idempotent-Replayed"].is_object());
    for status in ["400", "401", "409", "413", "422"] {
        assert_eq!(
            create["responses"][status]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody",
            "{status}"
        );
    }
    // Examples are the specification's own bodies.
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["examples"]["sms"]["value"]["message"],
        "Your agent wants to send a $340 wire to Acme Corp. Approve?"
    );
    // Webhook events, with the Standard Webhooks headers.
    for event in ["pause.responded", "pause.timed_out", "pause.cancelled"] {
        let names: Vec<&str> = served["webhooks"][event]["post"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["webhook-id", "webhook-timestamp", "webhook-signature"]
        );
    }
    // A created pause links to the calls on it.
    assert_eq!(
        create["responses"]["201"]["links"]["GetPause"]["operationId"],
        "get_pause"
    );
}
