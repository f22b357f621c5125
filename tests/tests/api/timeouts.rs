//! The timeout worker: pauses time out at their deadline, with the default or without.

use pausepoint_api::{AuditEventKind, PauseStatus};
use pausepoint_server::ids::PauseId;
use pausepoint_tests::{sms_pause, TestServer};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn a_pause_times_out_with_its_default() {
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(Some(1)))
        .await
        .pause(StatusCode::CREATED);
    let done = server
        .client
        .wait(pause.pause_id, 30)
        .await
        .pause(StatusCode::OK);
    assert_eq!(done.status, PauseStatus::TimedOut);
    assert_eq!(done.response_choice.as_deref(), Some("Reject"));
    assert_eq!(done.response_text, None);
    let at = done.response_at.unwrap();
    assert!(
        at >= done.expires_at,
        "timed out at {at}, before its deadline {}",
        done.expires_at
    );

    let events = server
        .client
        .audit(&format!("pause_id={}", pause.pause_id))
        .await;
    let timed_out: Vec<_> = events
        .iter()
        .filter(|e| e.event == AuditEventKind::PauseTimedOut)
        .collect();
    assert_eq!(timed_out.len(), 1);
    assert_eq!(timed_out[0].actor, "system");
    assert_eq!(timed_out[0].data["response_choice"], "Reject");
    assert_eq!(timed_out[0].data["message"], "Wire $8,400 to Meridian?");
}

#[tokio::test]
async fn a_pause_without_a_default_times_out_with_no_choice() {
    let server = TestServer::start().await;
    let mut body = sms_pause(Some(1));
    body["timeout_default"] = Value::Null;
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    let done = server
        .client
        .wait(pause.pause_id, 30)
        .await
        .pause(StatusCode::OK);
    assert_eq!(done.status, PauseStatus::TimedOut);
    assert_eq!(done.response_choice, None);
}

#[tokio::test]
async fn a_nearer_deadline_wakes_the_sleeping_worker() {
    let server = TestServer::start().await;
    // The worker now sleeps towards an hour away…
    let far = server
        .client
        .create(sms_pause(Some(3600)))
        .await
        .pause(StatusCode::CREATED);
    // …and must still catch this one on time.
    let near = server
        .client
        .create(sms_pause(Some(1)))
        .await
        .pause(StatusCode::CREATED);
    let done = server
        .client
        .wait(near.pause_id, 30)
        .await
        .pause(StatusCode::OK);
    assert_eq!(done.status, PauseStatus::TimedOut);
    assert_eq!(
        server.client.status(far.pause_id).await,
        PauseStatus::Pending
    );
}

#[tokio::test]
async fn a_human_cannot_answer_after_the_deadline() {
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(Some(3600)))
        .await
        .pause(StatusCode::CREATED);
    let pauses = server.app.pauses();
    // One step of the worker, run as if an hour and a second had passed.
    let later = pause.expires_at + std::time::Duration::from_secs(1);
    let sleep = pausepoint_server::work::timeouts::step(pauses, server.app.store().hub(), later)
        .await
        .unwrap();
    assert!(sleep.as_secs() <= 60);
    let done = server
        .client
        .get(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(done.status, PauseStatus::TimedOut);
    let err = pauses
        .respond(
            server.project_id,
            PauseId::from(pause.pause_id),
            "Approve",
            None,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("timed_out"), "{err}");
}
