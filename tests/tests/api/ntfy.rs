//! ntfy push: the notification carries the question and one action per option; pressing
//! an action sends the request the action describes, and that decides.

use std::time::Duration;

use pausepoint_api::{DeliveryStatus, PauseStatus};
use pausepoint_tests::receivers::NtfyReceiver;
use pausepoint_tests::TestServer;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn published(receiver: &mut NtfyReceiver) -> Value {
    tokio::time::timeout(Duration::from_secs(30), receiver.received.recv())
        .await
        .expect("nothing published within 30 s")
        .unwrap()
}

/// Presses an ntfy `http` action as the app does: its method, URL, headers and body.
async fn press(action: &Value) -> StatusCode {
    assert_eq!(action["action"], "http");
    let http = reqwest::Client::new();
    let method =
        reqwest::Method::from_bytes(action["method"].as_str().unwrap().as_bytes()).unwrap();
    let mut request = http.request(method, action["url"].as_str().unwrap());
    for (name, value) in action["headers"].as_object().unwrap() {
        request = request.header(name, value.as_str().unwrap());
    }
    let response = request
        .body(action["body"].as_str().unwrap().to_owned())
        .send()
        .await
        .unwrap();
    response.status()
}

#[tokio::test]
async fn one_tap_on_an_action_decides() {
    let mut ntfy = NtfyReceiver::start(Some("tk_stand_in_token")).await;
    let server = TestServer::start_with(|c| {
        c.allow_private_network = true;
        c.ntfy_token = Some(pausepoint_server::config::Secret::new("tk_stand_in_token"));
    })
    .await;
    let topic_url = format!("{}/approvals-7f3k", ntfy.base);
    let pause = server
        .client
        .create(json!({
            "recipient": topic_url, "channel": "ntfy",
            "message": "Restart the payments queue?",
            "options": ["Restart", "Leave it"],
            "timeout_seconds": 600
        }))
        .await
        .pause(StatusCode::CREATED);
    assert_eq!(pause.channel.as_str(), "ntfy");

    let message = published(&mut ntfy).await;
    assert_eq!(message["topic"], "approvals-7f3k");
    assert!(message["message"]
        .as_str()
        .unwrap()
        .starts_with("Restart the payments queue?\n\n"));
    let link = server.link(&pause);
    assert_eq!(message["click"], link.as_str());
    let actions = message["actions"].as_array().unwrap();
    let kinds: Vec<&str> = actions
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["http", "http", "view"]);
    assert_eq!(actions[1]["label"], "Leave it");
    assert_eq!(actions[1]["body"], "choice=Leave+it");

    let delivered = server.client.delivered(pause.pause_id).await;
    assert_eq!(delivered.delivery.unwrap().status, DeliveryStatus::Sent);
    assert_eq!(press(&actions[0]).await, StatusCode::OK);
    let decided = server
        .client
        .get(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(decided.status, PauseStatus::Responded);
    assert_eq!(decided.response_choice.as_deref(), Some("Restart"));
    // A second press (another device) changes nothing.
    assert_eq!(press(&actions[1]).await, StatusCode::CONFLICT);

    // The topic is a secret: the audit log shows only its start.
    let events = server
        .client
        .audit(&format!("pause_id={}&event=pause.created", pause.pause_id))
        .await;
    let shown = events[0].data["recipient"].as_str().unwrap();
    assert!(
        shown.ends_with("/a…") && !shown.contains("approvals-7f3k"),
        "{shown}"
    );
}

#[tokio::test]
async fn options_that_do_not_fit_open_the_page_and_a_refusal_is_not_retried() {
    let mut ntfy = NtfyReceiver::start(Some("tk_right")).await;
    let server = TestServer::start_with(|c| {
        c.allow_private_network = true;
        c.ntfy_token = Some(pausepoint_server::config::Secret::new("tk_wrong"));
    })
    .await;
    let pause = server
        .client
        .create(json!({
            "recipient": format!("{}/ops", ntfy.base), "channel": "ntfy",
            "message": "Which region first?",
            "options": ["us-east", "us-west", "eu-central", "ap-south"],
        }))
        .await
        .pause(StatusCode::CREATED);
    let delivery = server
        .client
        .delivered(pause.pause_id)
        .await
        .delivery
        .unwrap();
    assert_eq!(delivery.status, DeliveryStatus::Failed);
    assert_eq!(delivery.attempts, 1);
    assert!(
        delivery.last_error.as_deref().unwrap().contains("401"),
        "{delivery:?}"
    );
    assert!(ntfy.received.try_recv().is_err());

    let mut open = NtfyReceiver::start(None).await;
    let server = TestServer::start_with(|c| c.allow_private_network = true).await;
    server
        .client
        .create(json!({
            "recipient": format!("{}/ops", open.base), "channel": "ntfy",
            "message": "Which region first?",
            "options": ["us-east", "us-west", "eu-central", "ap-south"],
        }))
        .await
        .pause(StatusCode::CREATED);
    let message = published(&mut open).await;
    let kinds: Vec<&str> = message["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["view"]);
}

#[tokio::test]
async fn a_topic_url_on_a_private_network_is_refused_unless_allowed() {
    let server = TestServer::start().await;
    let reply = server
        .client
        .create(json!({
            "recipient": "http://127.0.0.1:9/approvals", "channel": "ntfy",
            "message": "Deploy?", "options": ["Yes", "No"],
        }))
        .await;
    reply.assert_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("recipient"),
    );
    let reply = server
        .client
        .create(json!({
            "recipient": "https://ntfy.sh/", "channel": "ntfy",
            "message": "Deploy?", "options": ["Yes", "No"],
        }))
        .await;
    reply.assert_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("recipient"),
    );
}
