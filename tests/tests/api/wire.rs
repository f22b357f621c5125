//! How the API writes what it answers, whatever the answer: one spelling per time.

use std::time::Duration;

use pausepoint_api::PauseStatus;
use pausepoint_tests::receivers::{Answer, WebhookReceiver};
use pausepoint_tests::{sms_pause, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Every string in `value` that starts like a time, with where it was found.
fn times<'v>(value: &'v Value, at: &str, found: &mut Vec<(String, &'v str)>) {
    match value {
        Value::String(s) => {
            let bytes = s.as_bytes();
            if bytes.len() >= 11
                && bytes[..4].iter().all(u8::is_ascii_digit)
                && bytes[4] == b'-'
                && bytes[10] == b'T'
            {
                found.push((at.to_owned(), s));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                times(item, &format!("{at}[{i}]"), found);
            }
        }
        Value::Object(fields) => {
            for (name, item) in fields {
                times(item, &format!("{at}.{name}"), found);
            }
        }
        _ => {}
    }
}

fn three_digits(time: &str) -> bool {
    let Some(rest) = time.strip_suffix('Z') else {
        return false;
    };
    let Some((_, fraction)) = rest.rsplit_once('.') else {
        return false;
    };
    fraction.len() == 3 && fraction.bytes().all(|b| b.is_ascii_digit())
}

#[tokio::test]
async fn every_time_in_every_answer_has_three_fractional_digits() {
    let mut receiver = WebhookReceiver::start(vec![Answer::Status(503)]).await;
    let server = TestServer::start_with(|c| {
        c.allow_private_network = true;
        c.webhook_retry = vec![Duration::from_millis(50)];
        c.delivery_retry = vec![Duration::from_millis(50)];
    })
    .await;

    // One pause answered with a note, one timed out, one cancelled; webhooks for each.
    let mut answered = sms_pause(None);
    answered["allow_text_response"] = json!(true);
    answered["webhook_url"] = json!(receiver.url);
    let answered = server
        .client
        .create(answered)
        .await
        .pause(StatusCode::CREATED);
    let link = server.link(&answered);
    let http = reqwest::Client::new();
    let done = http
        .post(&link)
        .form(&[("choice", "Approve"), ("note", "ok")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    let mut timing_out = sms_pause(Some(1));
    timing_out["webhook_url"] = json!(receiver.url);
    let timing_out = server
        .client
        .create(timing_out)
        .await
        .pause(StatusCode::CREATED);
    let cancelled = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    server
        .client
        .cancel(cancelled.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(
        server
            .client
            .wait(timing_out.pause_id, 10)
            .await
            .pause(StatusCode::OK)
            .status,
        PauseStatus::TimedOut
    );
    // The first webhook is refused once, so that an attempt log with a retry exists.
    let mut bodies = Vec::new();
    for _ in 0..3 {
        bodies.push(receiver.next(30).await.json());
    }

    let mut answers: Vec<(String, Value)> = Vec::new();
    for pause in [&answered, &timing_out, &cancelled] {
        let id = pause.pause_id;
        server.client.delivered(id).await;
        answers.push((
            format!("GET /v1/pause/{id}"),
            server.client.get(id).await.body,
        ));
        answers.push((
            format!("GET /v1/pause/{id}/webhooks"),
            server
                .client
                .get_path(&format!("/v1/pause/{id}/webhooks"))
                .await
                .body,
        ));
    }
    answers.push((
        "GET /v1/pause".into(),
        server.client.get_path("/v1/pause?limit=100").await.body,
    ));
    answers.push((
        "GET /v1/audit".into(),
        server.client.get_path("/v1/audit?limit=1000").await.body,
    ));
    let export = server
        .client
        .get_path("/v1/audit/export?format=jsonl")
        .await;
    for (i, line) in export.body.as_str().unwrap().lines().enumerate() {
        answers.push((
            format!("export line {i}"),
            serde_json::from_str(line).unwrap(),
        ));
    }
    for (i, body) in bodies.into_iter().enumerate() {
        answers.push((format!("webhook {i}"), body));
    }

    let mut found = Vec::new();
    for (name, answer) in &answers {
        times(answer, name, &mut found);
    }
    assert!(
        found.len() > 50,
        "the answers hold many times: {}",
        found.len()
    );
    let odd: Vec<_> = found.iter().filter(|(_, t)| !three_digits(t)).collect();
    assert!(odd.is_empty(), "times not written as …SS.mmmZ: {odd:?}");
    // And the chain, hashed over those spellings, verifies.
    let report = server.client.get_path("/v1/audit/verify?full=true").await;
    assert_eq!(report.body["ok"], true, "{}", report.body);
}
