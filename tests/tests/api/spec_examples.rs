//! The examples of the spec (`pause-requests-api.txt`), sent as they are written.

use jiff::SignedDuration;
use pausepoint_api::PauseStatus;
use pausepoint_server::ids::PauseId;
use pausepoint_tests::{without_delivery, TestServer};
use reqwest::StatusCode;
use serde_json::json;

fn examples() -> Vec<(serde_json::Value, i64)> {
    vec![
        (
            json!({
                "recipient": "+15550100",
                "channel": "sms",
                "message": "Your agent wants to send a $340 wire to Acme Corp. Approve?",
                "options": ["Approve", "Reject"],
                "timeout_hours": 4,
                "timeout_default": "Reject",
                "metadata": {"amount": 340, "recipient_name": "Acme Corp"}
            }),
            4,
        ),
        (
            json!({
                "recipient": "cfo@company.com",
                "channel": "email",
                "message": "The sales agent has drafted a campaign email to 200 leads. Send it?",
                "options": ["Send it", "Edit first", "Cancel"],
                "timeout_hours": 24,
                "timeout_default": "Cancel"
            }),
            24,
        ),
        (
            json!({
                "recipient": "https://hooks.slack.com/services/T000/B000/XXXX",
                "channel": "slack",
                "message": "Delete 14,000 stale user records from the test environment?",
                "options": ["Delete", "Keep", "Ask me tomorrow"],
                "timeout_hours": 8
            }),
            8,
        ),
        (
            // The overview's example: no timeout given, so the default of 24 hours.
            json!({
                "recipient": "+1 (312) 847-1928",
                "channel": "sms",
                "message": "Deploy build #4712 to production?",
                "options": ["Deploy", "Abort"],
                "timeout_default": "Abort"
            }),
            24,
        ),
    ]
}

#[tokio::test]
async fn each_example_creates_a_pending_pause_that_expires_on_time() {
    let server = TestServer::start().await;
    for (body, hours) in examples() {
        let pause = server
            .client
            .create(body.clone())
            .await
            .pause(StatusCode::CREATED);
        assert_eq!(pause.status, PauseStatus::Pending);
        assert_eq!(pause.channel.as_str(), body["channel"]);
        assert_eq!(pause.message, body["message"]);
        assert_eq!(
            serde_json::to_value(&pause.options).unwrap(),
            body["options"]
        );
        assert_eq!(
            pause.timeout_default.as_deref(),
            body["timeout_default"].as_str()
        );
        assert_eq!(
            pause.expires_at.duration_since(pause.created_at),
            SignedDuration::from_hours(hours)
        );
        assert_eq!(pause.response_choice, None);
        assert_eq!(pause.response_at, None);
        assert!(!pause.allow_text_response);
        assert_eq!(
            pause
                .metadata
                .as_ref()
                .map(|m| serde_json::Value::Object(m.clone())),
            body.get("metadata").cloned()
        );
        // A poll returns the same pause.
        let polled = server
            .client
            .get(pause.pause_id)
            .await
            .pause(StatusCode::OK);
        assert_eq!(without_delivery(&polled), without_delivery(&pause));
    }
}

#[tokio::test]
async fn the_overview_phone_number_is_stored_in_e164() {
    let server = TestServer::start().await;
    let (body, _) = examples().pop().unwrap();
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    assert_eq!(pause.recipient, "+13128471928");
}

/// The spec's polling loop, as written: poll until the status leaves pending.
async fn spec_polling_loop(server: &TestServer, id: uuid::Uuid) -> (PauseStatus, Option<String>) {
    loop {
        let result = server.client.get(id).await.pause(StatusCode::OK);
        match result.status {
            PauseStatus::Responded | PauseStatus::TimedOut | PauseStatus::Cancelled => {
                return (result.status, result.response_choice)
            }
            PauseStatus::Pending => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test]
async fn the_spec_polling_loop_ends_with_the_humans_decision() {
    let server = TestServer::start().await;
    let (body, _) = examples().remove(0);
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    let pauses = server.app.pauses().clone();
    let project = server.project_id;
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        pauses
            .respond(project, PauseId::from(pause.pause_id), "Approve", None)
            .await
            .unwrap();
    });
    assert_eq!(
        spec_polling_loop(&server, pause.pause_id).await,
        (PauseStatus::Responded, Some("Approve".into()))
    );
}

#[tokio::test]
async fn the_spec_polling_loop_ends_with_the_default_on_timeout_and_none_on_cancel() {
    let server = TestServer::start().await;
    let timed = server
        .client
        .create(pausepoint_tests::sms_pause(Some(1)))
        .await
        .pause(StatusCode::CREATED);
    assert_eq!(
        spec_polling_loop(&server, timed.pause_id).await,
        (PauseStatus::TimedOut, Some("Reject".into()))
    );
    let cancelled = server
        .client
        .create(pausepoint_tests::sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    server
        .client
        .cancel(cancelled.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(
        spec_polling_loop(&server, cancelled.pause_id).await,
        (PauseStatus::Cancelled, None)
    );
}
