//! Every validation rule and error status, with the error body a client gets.

use pausepoint_server::ids::PauseId;
use pausepoint_tests::{sms_pause, TestServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn with(field: &str, value: Value) -> Value {
    let mut body = sms_pause(None);
    body[field] = value;
    body
}

fn without(field: &str) -> Value {
    let mut body = sms_pause(None);
    body.as_object_mut().unwrap().remove(field);
    body
}

#[tokio::test]
async fn each_rule_answers_422_naming_its_field() {
    let server = TestServer::start().await;
    let long_message = "x".repeat(2001);
    let cases: Vec<(Value, &str)> = vec![
        (without("recipient"), "recipient"),
        (without("channel"), "channel"),
        (without("message"), "message"),
        (without("options"), "options"),
        (with("channel", json!("fax")), "channel"),
        (with("recipient", json!("312 847 1928")), "recipient"),
        (with("recipient", json!("+1 (312) CALL-NOW")), "recipient"),
        (with("recipient", json!("")), "recipient"),
        (
            json!({"channel": "email", "recipient": "not-an-address", "message": "m", "options": ["A", "B"]}),
            "recipient",
        ),
        (
            json!({"channel": "slack", "recipient": "hooks.slack.com/x", "message": "m", "options": ["A", "B"]}),
            "recipient",
        ),
        (
            json!({"channel": "slack", "recipient": "ftp://hooks.slack.com/x", "message": "m", "options": ["A", "B"]}),
            "recipient",
        ),
        (with("message", json!("")), "message"),
        (with("message", json!("   ")), "message"),
        (with("message", json!(long_message)), "message"),
        (with("options", json!(["Only one"])), "options"),
        (
            with("options", json!(["A", "B", "C", "D", "E", "F"])),
            "options",
        ),
        (with("options", json!(["A", ""])), "options"),
        (with("options", json!(["Approve", "Approve"])), "options"),
        (with("timeout_default", json!("Maybe")), "timeout_default"),
        (with("timeout_hours", json!(0)), "timeout_hours"),
        (with("timeout_hours", json!(24 * 31)), "timeout_hours"),
        (with("timeout_seconds", json!(0)), "timeout_seconds"),
        (
            with("timeout_seconds", json!(31 * 86_400)),
            "timeout_seconds",
        ),
        (
            {
                let mut b = with("timeout_hours", json!(1));
                b["timeout_seconds"] = json!(60);
                b
            },
            "timeout_seconds",
        ),
        (with("metadata", json!([1, 2])), "metadata"),
        (with("metadata", json!("text")), "metadata"),
        (
            with("metadata", json!({"blob": "y".repeat(17 * 1024)})),
            "metadata",
        ),
        (with("webhook_url", json!("not a url")), "webhook_url"),
        (
            with("webhook_url", json!("ftp://example.com/hook")),
            "webhook_url",
        ),
        // Wrong JSON types name the field too.
        (with("options", json!("Approve,Reject")), "options"),
        (with("timeout_hours", json!("4")), "timeout_hours"),
        (with("timeout_hours", json!(1.5)), "timeout_hours"),
        (
            with("allow_text_response", json!("yes")),
            "allow_text_response",
        ),
        (with("message", json!(42)), "message"),
    ];
    for (body, field) in cases {
        let reply = server.client.create(body.clone()).await;
        reply.assert_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some(field),
        );
    }
    // Nothing invalid was stored.
    let list = server.client.get_path("/v1/pause").await;
    assert_eq!(list.body["data"], json!([]));
}

#[tokio::test]
async fn valid_edge_values_are_accepted() {
    let server = TestServer::start().await;
    for body in [
        with("message", json!("é".repeat(2000))),
        with("options", json!(["Approve", "Reject", "C", "D", "E"])),
        with("timeout_hours", json!(24 * 30)),
        with("timeout_default", Value::Null),
        with("metadata", Value::Null),
        with(
            "webhook_url",
            json!("https://agent.example.com/hooks/pausepoint"),
        ),
        with("unknown_field", json!({"is": "ignored"})),
    ] {
        let reply = server.client.create(body.clone()).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{body}: {}", reply.body);
    }
}

#[tokio::test]
async fn malformed_json_is_400_and_an_oversized_body_413() {
    let server = TestServer::start().await;
    for raw in [
        &b"{\"recipient\": "[..],
        b"not json",
        b"",
        b"[1, 2]",
        b"\"text\"",
    ] {
        let reply = server
            .client
            .send(Method::POST, "/v1/pause", Some(raw.to_vec()), &[])
            .await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_json", None);
    }
    let mut body = sms_pause(None);
    body["metadata"] = json!({ "padding": "z".repeat(100 * 1024) });
    let reply = server.client.create(body).await;
    reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None);
    // The server is still fine afterwards.
    assert_eq!(
        server.client.create(sms_pause(None)).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn unknown_ids_and_paths_are_404_and_bad_queries_422() {
    let server = TestServer::start().await;
    let client = &server.client;
    client
        .get(uuid::Uuid::now_v7())
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    client.get_path("/v1/pause/not-a-uuid").await.assert_error(
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    client.cancel(uuid::Uuid::now_v7()).await.assert_error(
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    client
        .get_path("/v1/nothing")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    let pause = client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    for (path, field) in [
        (format!("/v1/pause/{}?wait=61", pause.pause_id), "wait"),
        (format!("/v1/pause/{}?wait=soon", pause.pause_id), "wait"),
        ("/v1/pause?status=done".into(), "status"),
        ("/v1/pause?limit=0".into(), "limit"),
        ("/v1/pause?limit=101".into(), "limit"),
        ("/v1/pause?cursor=zzz".into(), "cursor"),
        ("/v1/audit?event=pause.exploded".into(), "event"),
        ("/v1/audit?since=yesterday".into(), "since"),
        ("/v1/audit?pause_id=12".into(), "pause_id"),
        ("/v1/audit/export?format=xml".into(), "format"),
    ] {
        client.get_path(&path).await.assert_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some(field),
        );
    }
    let reply = client.send(Method::DELETE, "/v1/pause", None, &[]).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_decided_pause_answers_409_with_its_status() {
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    server
        .client
        .cancel(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    let reply = server.client.cancel(pause.pause_id).await;
    reply.assert_error(StatusCode::CONFLICT, "pause_not_pending", None);
    assert_eq!(reply.body["error"]["status"], "cancelled");
}

#[tokio::test]
async fn respond_checks_the_choice_and_the_note() {
    let server = TestServer::start().await;
    let pauses = server.app.pauses();
    let plain = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let err = pauses
        .respond(
            server.project_id,
            PauseId::from(plain.pause_id),
            "Maybe",
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not one of the options"), "{err}");
    let err = pauses
        .respond(
            server.project_id,
            PauseId::from(plain.pause_id),
            "Approve",
            Some("ok"),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("note"), "{err}");

    let mut body = sms_pause(None);
    body["allow_text_response"] = json!(true);
    let noted = server.client.create(body).await.pause(StatusCode::CREATED);
    pauses
        .respond(
            server.project_id,
            PauseId::from(noted.pause_id),
            "Reject",
            Some("Wrong account number"),
        )
        .await
        .unwrap();
    let got = server
        .client
        .get(noted.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(got.response_choice.as_deref(), Some("Reject"));
    assert_eq!(got.response_text.as_deref(), Some("Wrong account number"));
    assert!(got.response_at.is_some());
    // Nothing once it has left pending.
    let err = pauses
        .respond(
            server.project_id,
            PauseId::from(noted.pause_id),
            "Approve",
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already responded"), "{err}");
}
