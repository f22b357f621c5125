//! Signed webhooks end to end: a real receiver on a port, verifying as the Standard
//! Webhooks specification tells receivers to, with retries, 410, redirects and resends.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use pausepoint_api::{AuditEventKind, PauseStatus};
use pausepoint_server::domain::{pauses, webhooks};
use pausepoint_tests::receivers::{Answer, ReceivedWebhook, WebhookReceiver};
use pausepoint_tests::{sms_pause, TestServer};
use reqwest::StatusCode;
use serde_json::json;
use sha2::Sha256;

/// A receiver written from the specification alone: the key is the base64 after
/// `whsec_`, the signed content is `id.timestamp.body`, any `v1,` entry may match, and
/// the timestamp must be within five minutes.
fn receiver_accepts(
    secret: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: &str,
    now: i64,
) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let Ok(sent) = timestamp.parse::<i64>() else {
        return false;
    };
    if (now - sent).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    signatures
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

fn accepts(secret: &str, hook: &ReceivedWebhook) -> bool {
    let now = jiff::Timestamp::now().as_second();
    receiver_accepts(
        secret,
        hook.header("webhook-id"),
        hook.header("webhook-timestamp"),
        hook.header("webhook-signature"),
        &hook.body,
        now,
    )
}

async fn server(retry: Vec<Duration>) -> TestServer {
    TestServer::start_with(|c| {
        c.allow_private_network = true;
        c.webhook_retry = retry;
    })
    .await
}

async fn secret(server: &TestServer) -> String {
    webhooks::signing_secrets(server.app.store(), server.project_id, pauses::now())
        .await
        .unwrap()
        .remove(0)
}

/// A pause with a webhook, cancelled at once: its event is on its way.
async fn cancelled_with_webhook(server: &TestServer, url: &str) -> pausepoint_api::Pause {
    let pause = server
        .client
        .create(with_webhook(url))
        .await
        .pause(StatusCode::CREATED);
    server
        .client
        .cancel(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    pause
}

fn with_webhook(url: &str) -> serde_json::Value {
    let mut body = sms_pause(None);
    body["webhook_url"] = json!(url);
    body
}

#[tokio::test]
async fn each_ending_is_announced_signed_as_the_specification_says() {
    let mut receiver = WebhookReceiver::start(vec![]).await;
    let server = server(vec![Duration::from_millis(50)]).await;
    let secret = secret(&server).await;
    assert!(secret.starts_with("whsec_") && STANDARD.decode(&secret[6..]).unwrap().len() == 32);

    // Responded, through the page.
    let mut body = with_webhook(&receiver.url);
    body["metadata"] = json!({"run_id": "run_abc123"});
    let responded = server.client.create(body).await.pause(StatusCode::CREATED);
    let page = reqwest::Client::new()
        .post(server.link(&responded))
        .form(&[("choice", "Approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let hook = receiver.next(30).await;
    assert!(accepts(&secret, &hook), "{hook:?}");
    assert!(hook.header("webhook-id").starts_with("msg_"));
    assert_eq!(hook.header("content-type"), "application/json");
    let event = hook.json();
    assert_eq!(event["type"], "pause.responded");
    assert_eq!(event["data"]["pause_id"], responded.pause_id.to_string());
    assert_eq!(event["data"]["status"], "responded");
    assert_eq!(event["data"]["response_choice"], "Approve");
    assert_eq!(event["data"]["metadata"]["run_id"], "run_abc123");
    assert!(event["timestamp"].is_string());
    // The receipt: the service that acts on the webhook can prove the approval.
    let keys: pausepoint_api::proof::Jwks =
        serde_json::from_value(server.client.get_path("/v1/audit/public-key").await.body).unwrap();
    let claims = pausepoint_api::proof::ReceiptClaims::verify(
        event["data"]["receipt"]
            .as_str()
            .expect("the webhook carries the receipt"),
        &keys,
    )
    .unwrap();
    assert_eq!(claims.pause_id, responded.pause_id);
    assert_eq!(claims.response_choice.as_deref(), Some("Approve"));

    // What a receiver must refuse: a changed body, a changed timestamp, a replay.
    let now = jiff::Timestamp::now().as_second();
    let (id, ts, sig) = (
        hook.header("webhook-id"),
        hook.header("webhook-timestamp"),
        hook.header("webhook-signature"),
    );
    assert!(!receiver_accepts(
        &secret,
        id,
        ts,
        sig,
        &hook.body.replace("Approve", "Reject"),
        now
    ));
    let other_ts = (ts.parse::<i64>().unwrap() + 1).to_string();
    assert!(!receiver_accepts(
        &secret, id, &other_ts, sig, &hook.body, now
    ));
    assert!(
        !receiver_accepts(&secret, id, ts, sig, &hook.body, now + 301),
        "a replay after five minutes"
    );
    // Our own verifier (what `pp webhook verify` runs) agrees.
    assert!(
        pausepoint_api::webhooks::verify(&secret, id, ts, sig, hook.body.as_bytes(), now).is_ok()
    );

    // Cancelled, by the agent; timed out, by the clock.
    let cancelled = server
        .client
        .create(with_webhook(&receiver.url))
        .await
        .pause(StatusCode::CREATED);
    server
        .client
        .cancel(cancelled.pause_id)
        .await
        .pause(StatusCode::OK);
    let hook = receiver.next(30).await;
    assert!(accepts(&secret, &hook));
    assert_eq!(hook.json()["type"], "pause.cancelled");
    let mut body = with_webhook(&receiver.url);
    body["timeout_seconds"] = json!(1);
    let timed = server.client.create(body).await.pause(StatusCode::CREATED);
    let hook = receiver.next(30).await;
    assert!(accepts(&secret, &hook));
    assert_eq!(hook.json()["type"], "pause.timed_out");
    assert_eq!(hook.json()["data"]["pause_id"], timed.pause_id.to_string());
    assert_eq!(hook.json()["data"]["response_choice"], "Reject");

    // The receiver has the last event a moment before the server records its answer.
    let mut delivered = server.client.audit("event=webhook.delivered").await;
    for _ in 0..200 {
        if delivered.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        delivered = server.client.audit("event=webhook.delivered").await;
    }
    assert_eq!(delivered.len(), 3);
    assert_eq!(delivered[0].data["attempts"], 1);
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_event_three_times_with_one_id() {
    let mut receiver = WebhookReceiver::start(vec![Answer::Status(500), Answer::Status(500)]).await;
    let server = server(vec![Duration::from_millis(50); 7]).await;
    let pause = cancelled_with_webhook(&server, &receiver.url).await;
    let hooks = [
        receiver.next(30).await,
        receiver.next(30).await,
        receiver.next(30).await,
    ];
    let id = hooks[0].header("webhook-id").to_owned();
    assert!(
        hooks.iter().all(|h| h.header("webhook-id") == id),
        "one webhook-id on every retry"
    );
    assert!(
        hooks.iter().all(|h| h.body == hooks[0].body),
        "the same body on every retry"
    );
    let secret = secret(&server).await;
    assert!(hooks.iter().all(|h| accepts(&secret, h)));

    let mut list = server
        .client
        .get_path(&format!("/v1/pause/{}/webhooks", pause.pause_id))
        .await;
    for _ in 0..100 {
        if list.body["data"][0]["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        list = server
            .client
            .get_path(&format!("/v1/pause/{}/webhooks", pause.pause_id))
            .await;
    }
    let event = &list.body["data"][0];
    assert_eq!(event["event_id"], id);
    assert_eq!(event["status"], "delivered");
    assert_eq!(event["attempts"], 3);
    let codes: Vec<u64> = event["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [500, 500, 200]);
    assert_eq!(event["attempt_log"][0]["response"], "answered 500");
    let audit = server.client.audit("event=webhook.delivered").await;
    assert_eq!(
        audit.len(),
        1,
        "recorded with the attempt that delivered it"
    );
    assert_eq!(audit[0].data["attempts"], 3);
}

#[tokio::test]
async fn a_410_stops_at_once_and_a_failed_event_can_be_resent() {
    let mut receiver = WebhookReceiver::start(vec![Answer::Status(410)]).await;
    let server = server(vec![Duration::from_millis(50); 7]).await;
    let pause = cancelled_with_webhook(&server, &receiver.url).await;
    let first = receiver.next(30).await;
    let event_id = first.header("webhook-id").to_owned();
    let path = format!("/v1/pause/{}/webhooks", pause.pause_id);
    let mut failed = server.client.get_path(&path).await;
    while failed.body["data"][0]["status"] != "failed" {
        tokio::time::sleep(Duration::from_millis(20)).await;
        failed = server.client.get_path(&path).await;
    }
    assert_eq!(failed.body["data"][0]["attempts"], 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.received.try_recv().is_err(), "nothing after a 410");
    let audit = server.client.audit("event=webhook.failed").await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].data["status_code"], 410);

    // By hand, once the receiver is back.
    let resend = format!("{path}/{event_id}/resend");
    let reply = server
        .client
        .send(reqwest::Method::POST, &resend, None, &[])
        .await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.body);
    let again = receiver.next(30).await;
    assert_eq!(again.header("webhook-id"), event_id);
    let mut list = server.client.get_path(&path).await;
    while list.body["data"][0]["status"] != "delivered" {
        tokio::time::sleep(Duration::from_millis(20)).await;
        list = server.client.get_path(&path).await;
    }
    let reply = server
        .client
        .send(reqwest::Method::POST, &resend, None, &[])
        .await;
    reply.assert_error(StatusCode::CONFLICT, "webhook_not_failed", None);
    let reply = server
        .client
        .send(
            reqwest::Method::POST,
            &format!("{path}/msg_nope/resend"),
            None,
            &[],
        )
        .await;
    reply.assert_error(StatusCode::NOT_FOUND, "not_found", None);
    // Another project sees none of it.
    let (other, _) = server.key_for_project("other").await;
    server
        .client
        .with_key(&other)
        .get_path(&path)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let mut elsewhere = WebhookReceiver::start(vec![]).await;
    let mut receiver = WebhookReceiver::start(vec![Answer::Redirect(elsewhere.url.clone())]).await;
    let server = server(vec![Duration::from_millis(50)]).await;
    let pause = cancelled_with_webhook(&server, &receiver.url).await;
    receiver.next(30).await;
    receiver.next(30).await; // the retry, after a redirect counted as a failure
    let path = format!("/v1/pause/{}/webhooks", pause.pause_id);
    let list = server.client.get_path(&path).await;
    let attempt = &list.body["data"][0]["attempt_log"][0];
    assert_eq!(attempt["status_code"], 302);
    assert!(attempt["error"]
        .as_str()
        .unwrap()
        .contains("redirects are not followed"));
    assert!(
        elsewhere.received.try_recv().is_err(),
        "the redirect target got nothing"
    );
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let mut receiver = WebhookReceiver::start(vec![Answer::RetryAfter(429, 2)]).await;
    let server = server(vec![Duration::from_millis(50)]).await;
    cancelled_with_webhook(&server, &receiver.url).await;
    let first = receiver.next(30).await;
    let second = receiver.next(30).await;
    let gap = second.header("webhook-timestamp").parse::<i64>().unwrap()
        - first.header("webhook-timestamp").parse::<i64>().unwrap();
    assert!(
        gap >= 1,
        "waited as asked, not the 50 ms of the schedule: {gap} s"
    );
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_new_one() {
    let mut receiver = WebhookReceiver::start(vec![]).await;
    let server = server(vec![Duration::from_millis(50)]).await;
    let old = secret(&server).await;
    let new = webhooks::rotate_secret(server.app.store(), server.project_id, pauses::now())
        .await
        .unwrap();
    assert_ne!(old, new);
    cancelled_with_webhook(&server, &receiver.url).await;
    let hook = receiver.next(30).await;
    assert_eq!(hook.header("webhook-signature").split(' ').count(), 2);
    assert!(
        accepts(&old, &hook) && accepts(&new, &hook),
        "receivers with either secret accept it"
    );
    assert!(!accepts(
        &pausepoint_api::webhooks::secret_from_bytes(&[7; 32]),
        &hook
    ));
}

#[tokio::test]
async fn no_webhook_url_no_event() {
    let server = server(vec![]).await;
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
    let list = server
        .client
        .get_path(&format!("/v1/pause/{}/webhooks", pause.pause_id))
        .await;
    assert_eq!(list.body["data"], json!([]));
    assert_eq!(
        server.client.status(pause.pause_id).await,
        PauseStatus::Cancelled
    );
    assert!(server
        .client
        .audit("")
        .await
        .iter()
        .all(|e| e.event != AuditEventKind::WebhookDelivered));
}
