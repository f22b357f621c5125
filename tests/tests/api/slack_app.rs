//! The Slack app: a question to a Slack user or channel id is posted with buttons that
//! decide inside Slack; Slack's signed click votes and the message is updated in place.

use std::time::Duration;

use pausepoint_api::{AuditEventKind, PauseStatus};
use pausepoint_server::config::{Secret, SlackAppConfig};
use pausepoint_tests::receivers::SlackApi;
use pausepoint_tests::TestServer;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn next_call(api: &mut SlackApi) -> (String, Value) {
    tokio::time::timeout(Duration::from_secs(30), api.calls.recv())
        .await
        .expect("no Slack call within 30 s")
        .unwrap()
}

fn app(api: &SlackApi) -> SlackAppConfig {
    SlackAppConfig {
        bot_token: Secret::new(api.bot_token.clone()),
        signing_secret: Secret::new(api.signing_secret.clone()),
        api_url: api.url.clone(),
    }
}

/// The value of the button labelled `label` in a posted message.
fn button(message: &Value, label: &str) -> String {
    message["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|block| block["elements"].as_array().cloned().unwrap_or_default())
        .find(|element| element["text"]["text"] == label)
        .unwrap_or_else(|| panic!("no button {label}: {message}"))["value"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_click_in_slack_decides_and_updates_the_message() {
    let mut api = SlackApi::start().await;
    let config = app(&api);
    let server = TestServer::start_with(|c| c.slack_app = Some(config)).await;
    let base = server.client.base.clone();
    let pause = server
        .client
        .create(json!({
            "recipient": "U0APPROVER", "channel": "slack",
            "message": "Merge <release/4.2> & deploy?",
            "options": ["Approve", "Reject"],
            "timeout_seconds": 600
        }))
        .await
        .pause(StatusCode::CREATED);
    let (method, message) = next_call(&mut api).await;
    assert_eq!(method, "chat.postMessage");
    assert_eq!(message["channel"], "U0APPROVER");
    assert_eq!(
        message["blocks"][0]["text"]["text"], "Merge &lt;release/4.2&gt; &amp; deploy?",
        "user text is escaped for mrkdwn"
    );
    assert!(
        message.to_string().contains(&server.link(&pause)),
        "the page stays the fallback"
    );
    let approve = button(&message, "Approve");
    let posted = ("U0APPROVER", "1700000000.000100");

    // Forged, stale and someone else's clicks record nothing.
    let stale = api.click(&base, "U0APPROVER", &approve, posted, -301).await;
    assert_eq!(stale, StatusCode::FORBIDDEN);
    let mut wrong = SlackApi::start().await;
    wrong.signing_secret = "another-apps-secret".into();
    let forged = wrong.click(&base, "U0APPROVER", &approve, posted, 0).await;
    assert_eq!(forged, StatusCode::FORBIDDEN);
    let other = api.click(&base, "U0SOMEONE", &approve, posted, 0).await;
    assert_eq!(other, StatusCode::OK);
    assert_eq!(
        server.client.status(pause.pause_id).await,
        PauseStatus::Pending
    );
    let tampered = format!("{}x.0", &approve[..approve.len() - 2]);
    assert_eq!(
        api.click(&base, "U0APPROVER", &tampered, posted, 0).await,
        StatusCode::OK
    );
    assert_eq!(
        server.client.status(pause.pause_id).await,
        PauseStatus::Pending
    );

    // The approver clicks: decided, with the Slack user as the actor; the message says so.
    assert_eq!(
        api.click(&base, "U0APPROVER", &approve, posted, 0).await,
        StatusCode::OK
    );
    let decided = server
        .client
        .get(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(decided.status, PauseStatus::Responded);
    assert_eq!(decided.response_choice.as_deref(), Some("Approve"));
    let events = server
        .client
        .audit(&format!(
            "pause_id={}&event=pause.responded",
            pause.pause_id
        ))
        .await;
    assert_eq!(events[0].actor, "recipient:slack:U0APPROVER");
    let (method, update) = next_call(&mut api).await;
    assert_eq!(method, "chat.update");
    assert_eq!(
        (update["channel"].as_str(), update["ts"].as_str()),
        (Some(posted.0), Some(posted.1))
    );
    assert_eq!(update["text"], "Decided: *Approve* by <@U0APPROVER>");
    assert!(
        !update.to_string().contains("pausepoint_vote"),
        "no buttons left: {update}"
    );
    assert!(events
        .iter()
        .all(|e| e.event == AuditEventKind::PauseResponded));
}

#[tokio::test]
async fn in_a_channel_anyone_may_vote_and_the_message_shows_the_count() {
    let mut api = SlackApi::start().await;
    let config = app(&api);
    let server = TestServer::start_with(|c| c.slack_app = Some(config)).await;
    let base = server.client.base.clone();
    let pause = server
        .client
        .create(json!({
            "recipients": [{"recipient": "C0FINANCE"}, {"recipient": "U0CFOUSER"}],
            "message": "Wire $84,000?",
            "options": ["Approve", "Reject"],
            "quorum": {"option": "Approve", "count": 2},
        }))
        .await
        .pause(StatusCode::CREATED);
    let mut posted = Vec::new();
    for _ in 0..2 {
        posted.push(next_call(&mut api).await.1);
    }
    let to = |channel: &str| {
        posted
            .iter()
            .find(|m| m["channel"] == channel)
            .unwrap()
            .clone()
    };
    let in_channel = button(&to("C0FINANCE"), "Approve");
    assert_eq!(
        api.click(
            &base,
            "U0ANYLEAD",
            &in_channel,
            ("C0FINANCE", "1700000000.000100"),
            0
        )
        .await,
        StatusCode::OK
    );
    let (_, update) = next_call(&mut api).await;
    assert_eq!(
        update["text"],
        "<@U0ANYLEAD> chose *Approve* · 1 of 2 approvals"
    );
    assert_eq!(
        server.client.status(pause.pause_id).await,
        PauseStatus::Pending
    );
    let cfo = button(&to("U0CFOUSER"), "Approve");
    api.click(
        &base,
        "U0CFOUSER",
        &cfo,
        ("U0CFOUSER", "1700000000.000101"),
        0,
    )
    .await;
    assert_eq!(
        server.client.status(pause.pause_id).await,
        PauseStatus::Responded
    );

    // Without the app, ids are refused at create; webhook URLs work as before.
    let plain = TestServer::start().await;
    let reply = plain
        .client
        .create(json!({
            "recipient": "C0FINANCE", "channel": "slack",
            "message": "Deploy?", "options": ["Yes", "No"],
        }))
        .await;
    reply.assert_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("recipient"),
    );
}
