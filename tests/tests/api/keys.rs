//! API keys: required, checked, revocable, and never stored in the clear.

use pausepoint_server::domain::keys;
use pausepoint_server::domain::pauses;
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
async fn health_and_metrics_need_no_key() {
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    server.client.delivered(pause.pause_id).await;
    server
        .client
        .cancel(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
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
        .starts_with("text/plain; version=0.0.4"));
    let text = metrics.text().await.unwrap();
    for line in [
        "# TYPE pausepoint_pauses gauge",
        "pausepoint_pauses{status=\"cancelled\"} 1",
        "pausepoint_pauses{status=\"pending\"} 1",
        "pausepoint_long_polls_waiting 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from:\n{text}"
        );
    }
    assert!(text.contains("pausepoint_deliveries{status="));
    assert!(!text.contains(&pause.pause_id.to_string()), "totals only");
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
