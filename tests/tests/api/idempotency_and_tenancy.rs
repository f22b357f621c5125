//! A retried create makes one pause; one project never sees another's data.

use pausepoint_api::PauseStatus;
use pausepoint_tests::{sms_pause, without_delivery, TestServer};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_returns_the_first_pause() {
    let server = TestServer::start().await;
    let first = server
        .client
        .create_with_key(sms_pause(None), "run-42-step-7")
        .await;
    let pause = first.pause(StatusCode::CREATED);
    assert!(first.headers.get("idempotent-replayed").is_none());

    // The same request, even with its keys in another order, is a retry.
    let mut reordered = serde_json::Map::new();
    for (k, v) in sms_pause(None).as_object().unwrap().iter().rev() {
        reordered.insert(k.clone(), v.clone());
    }
    let retry = server
        .client
        .create_with_key(reordered.into(), "run-42-step-7")
        .await;
    assert_eq!(
        without_delivery(&retry.pause(StatusCode::CREATED)),
        without_delivery(&pause)
    );
    assert_eq!(retry.headers["idempotent-replayed"], "true");

    // Concurrent retries too: still one pause.
    let attempts = (0..10).map(|_| {
        server
            .client
            .create_with_key(sms_pause(None), "run-42-step-8")
    });
    let replies = futures_util::future::join_all(attempts).await;
    let ids: std::collections::HashSet<_> = replies
        .iter()
        .map(|r| r.pause(StatusCode::CREATED).pause_id)
        .collect();
    assert_eq!(ids.len(), 1);

    let list = server.client.get_path("/v1/pause?limit=100").await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 2);
    let created = server.client.audit("event=pause.created").await;
    assert_eq!(created.len(), 2, "one pause.created per pause");
}

#[tokio::test]
async fn the_same_idempotency_key_with_another_body_is_a_conflict() {
    let server = TestServer::start().await;
    server
        .client
        .create_with_key(sms_pause(None), "k1")
        .await
        .pause(StatusCode::CREATED);
    let mut other = sms_pause(None);
    other["message"] = json!("Wire $9,999 to Meridian?");
    let reply = server.client.create_with_key(other, "k1").await;
    reply.assert_error(
        StatusCode::CONFLICT,
        "idempotency_key_reused",
        Some("Idempotency-Key"),
    );
    let reply = server
        .client
        .create_with_key(sms_pause(None), &"k".repeat(300))
        .await;
    reply.assert_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("Idempotency-Key"),
    );
}

#[tokio::test]
async fn idempotency_keys_belong_to_one_project() {
    let server = TestServer::start().await;
    let (other_key, _) = server.key_for_project("other").await;
    let other = server.client.with_key(&other_key);
    let a = server
        .client
        .create_with_key(sms_pause(None), "shared")
        .await
        .pause(StatusCode::CREATED);
    let b = other
        .create_with_key(sms_pause(None), "shared")
        .await
        .pause(StatusCode::CREATED);
    assert_ne!(a.pause_id, b.pause_id);
}

#[tokio::test]
async fn another_projects_key_sees_nothing_of_this_project() {
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let (other_key, _) = server.key_for_project("acme").await;
    let other = server.client.with_key(&other_key);

    other
        .get(pause.pause_id)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    other
        .wait(pause.pause_id, 1)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    other
        .cancel(pause.pause_id)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    assert_eq!(other.get_path("/v1/pause").await.body["data"], json!([]));
    let events = other.audit(&format!("pause_id={}", pause.pause_id)).await;
    assert!(events.is_empty());
    let all = other.audit("").await;
    assert!(
        all.iter().all(|e| e.pause_id.is_none()),
        "only its own key.created: {all:?}"
    );
    let export = other.get_path("/v1/audit/export").await;
    assert!(!export
        .body
        .to_string()
        .contains(&pause.pause_id.to_string()));

    // And the first project's pause is untouched.
    assert_eq!(
        server.client.status(pause.pause_id).await,
        PauseStatus::Pending
    );
}

#[tokio::test]
async fn lists_page_newest_first_with_a_cursor_and_filter_by_status() {
    let server = TestServer::start().await;
    let mut ids = Vec::new();
    for _ in 0..7 {
        ids.push(
            server
                .client
                .create(sms_pause(None))
                .await
                .pause(StatusCode::CREATED)
                .pause_id,
        );
    }
    server.client.cancel(ids[2]).await.pause(StatusCode::OK);
    let mut seen = Vec::new();
    let mut path = "/v1/pause?limit=3".to_owned();
    loop {
        let page = server.client.get_path(&path).await;
        assert_eq!(page.status, StatusCode::OK);
        for pause in page.body["data"].as_array().unwrap() {
            seen.push(
                pause["pause_id"]
                    .as_str()
                    .unwrap()
                    .parse::<uuid::Uuid>()
                    .unwrap(),
            );
        }
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/pause?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let cancelled = server.client.get_path("/v1/pause?status=cancelled").await;
    let cancelled = cancelled.body["data"].as_array().unwrap().clone();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["status"], "cancelled");
}
