//! API keys: required, checked, revocable, and never stored in the clear.

use pausepoint_server::domain::keys;
use pausepoint_server::domain::pauses;
use pausepoint_server::ids::PauseId;
use pausepoint_server::store::Actor;
use pausepoint_tests::{sms_pause, TestServer};
use reqwest::StatusCode;

#[tokio::test]
async fn a_request_without_a_valid_key_is_401() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let bare = http
        .get(format!("{}/v1/pause", server.client.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bare.headers()["www-authenticate"], "Bearer");
    let body: serde_json::Value = bare.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");

    for key in [
        "pp_live_notarealkeyatall0000000000000000",
        "sk_test_123",
        "",
    ] {
        let reply = server.client.with_key(key).create(sms_pause(None)).await;
        reply.assert_error(StatusCode::UNAUTHORIZED, "unauthorized", None);
    }
    let basic = http
        .get(format!("{}/v1/pause", server.client.base))
        .basic_auth("user", Some(&server.client.key))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_revoked_key_gets_401_and_both_changes_are_audited() {
    let server = TestServer::start().await;
    let store = server.app.store();
    let new = keys::create_key(
        store,
        "default",
        "ci-bot",
        Actor::Admin(Some("ops".into())),
        pauses::now(),
    )
    .await
    .unwrap();
    assert!(new.key.starts_with("pp_live_") && new.key.len() == "pp_live_".len() + 32);
    let bot = server.client.with_key(&new.key);
    assert_eq!(
        bot.create(sms_pause(None)).await.status,
        StatusCode::CREATED
    );

    keys::revoke_key(
        store,
        new.record.id,
        Actor::Admin(Some("ops".into())),
        pauses::now(),
    )
    .await
    .unwrap()
    .unwrap();
    bot.create(sms_pause(None))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthorized", None);
    assert!(keys::revoke_key(
        store,
        new.record.id,
        Actor::Admin(Some("ops".into())),
        pauses::now()
    )
    .await
    .unwrap()
    .is_none());

    let created = server.client.audit("event=key.created").await;
    assert!(created
        .iter()
        .any(|e| e.data["key_id"] == new.record.id.to_string() && e.actor == "admin:ops"));
    let revoked = server.client.audit("event=key.revoked").await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].data["name"], "ci-bot");
}

#[tokio::test]
async fn health_and_metrics_need_no_key_and_count_what_happened() {
    use pausepoint_tests::receivers::{Answer, WebhookReceiver};
    let mut receiver = WebhookReceiver::start(vec![Answer::Status(410)]).await;
    let server = TestServer::start_with(|c| c.allow_private_network = true).await;
    // The story: three questions; one answered (its webhook refused), one timed out, one
    // still waiting.
    let mut answered = sms_pause(None);
    answered["webhook_url"] = serde_json::json!(receiver.url);
    let answered = server
        .client
        .create(answered)
        .await
        .pause(StatusCode::CREATED);
    let timing_out = server
        .client
        .create(sms_pause(Some(1)))
        .await
        .pause(StatusCode::CREATED);
    let waiting = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    for pause in [&answered, &timing_out, &waiting] {
        server.client.delivered(pause.pause_id).await;
    }
    server
        .app
        .pauses()
        .respond(
            server.project_id,
            PauseId::from(answered.pause_id),
            "Approve",
            None,
        )
        .await
        .unwrap();
    receiver.next(30).await;
    let done = server.client.wait(timing_out.pause_id, 30).await;
    assert_eq!(
        done.pause(StatusCode::OK).status,
        pausepoint_api::PauseStatus::TimedOut
    );
    // The refusal is recorded a moment after the receiver answered.
    for _ in 0..500 {
        let list = server
            .client
            .get_path(&format!("/v1/pause/{}/webhooks", answered.pause_id))
            .await;
        if list.body["data"][0]["status"] == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    let http = reqwest::Client::new();
    let health = http
        .get(format!("{}/healthz", server.client.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(
        health.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );
    let metrics = http
        .get(format!("{}/metrics", server.client.base))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(metrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = metrics.text().await.unwrap();
    for line in [
        "# TYPE pausepoint_pauses_created counter",
        "pausepoint_pauses_created_total{channel=\"sms\"} 3",
        "pausepoint_pauses_decided_total{channel=\"sms\",outcome=\"responded\"} 1",
        "pausepoint_pauses_decided_total{channel=\"sms\",outcome=\"timed_out\"} 1",
        "pausepoint_decision_seconds_count{outcome=\"responded\"} 1",
        "pausepoint_decision_seconds_count{outcome=\"timed_out\"} 1",
        "pausepoint_pauses_pending 1",
        "pausepoint_delivery_attempts_total{channel=\"sms\",outcome=\"logged\"} 3",
        "pausepoint_webhook_attempts_total{outcome=\"refused\"} 1",
        "pausepoint_http_requests_total{route=\"/v1/pause\",method=\"POST\",status=\"201\"} 3",
        "pausepoint_long_polls_waiting 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from:\n{text}"
        );
    }
    assert!(text.contains("pausepoint_http_request_duration_seconds_bucket"));
    // The writer's own figures: every create went through it, in groups, taking time.
    let series = |name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
    };
    let (groups, writes) = (
        series("pausepoint_writer_group_writes_count"),
        series("pausepoint_writer_group_writes_sum"),
    );
    assert!(
        groups >= 1.0 && writes >= 3.0 && writes >= groups,
        "{groups} groups, {writes} writes"
    );
    assert!(series("pausepoint_writer_busy_seconds_total") > 0.0);
    for pause in [&answered, &timing_out, &waiting] {
        assert!(!text.contains(&pause.pause_id.to_string()), "totals only");
    }
}

#[tokio::test]
async fn keys_are_stored_only_as_hashes() {
    let server = TestServer::start().await;
    match server.backend {
        pausepoint_tests::Backend::Sqlite => {
            let raw = std::fs::read(&server.database).unwrap();
            let wal = std::fs::read(format!("{}-wal", server.database)).unwrap_or_default();
            let needle = server.client.key.as_bytes();
            let contains = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
            assert!(
                !contains(&raw) && !contains(&wal),
                "the key is in the database file"
            );
        }
        pausepoint_tests::Backend::Postgres => {
            sqlx::any::install_default_drivers();
            let db = sqlx::AnyPool::connect(&server.database).await.unwrap();
            let found: i64 = sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM api_keys WHERE key_hash = $1 OR prefix = $1 OR name = $1 \
                 UNION ALL SELECT COUNT(*) FROM settings WHERE value = $1",
            )
            .bind(&server.client.key)
            .fetch_all(&db)
            .await
            .unwrap()
            .into_iter()
            .sum();
            assert_eq!(found, 0, "the key is stored in the clear");
        }
    }
    let hash = keys::hash_key(&server.client.key);
    let listed = server.app.store().keys().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(server.client.key.starts_with(&listed[0].prefix));
    assert!(server
        .app
        .store()
        .live_key_by_hash(&hash)
        .await
        .unwrap()
        .is_some());
}
