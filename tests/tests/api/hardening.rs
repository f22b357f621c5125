//! What a hostile caller, receiver or local user can do, and what stops them: connection
//! and request limits, SSRF refusals, secrets sealed at rest, validation that matches
//! what can be sent, and secrets kept out of what the service shows.

use std::time::{Duration, Instant};

use pausepoint_api::AuditEventKind;
use pausepoint_tests::receivers::SlackReceiver;
use pausepoint_tests::{sms_pause, Backend, TestServer};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Row;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn address(server: &TestServer) -> String {
    server.client.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or `limit` passes); how long it took.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + limit),
            stream.read(&mut buffer),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_dropped() {
    let server =
        TestServer::start_with(|c| c.header_read_timeout = Duration::from_millis(500)).await;
    let mut slow = TcpStream::connect(address(&server)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let closed = closed_within(&mut slow, Duration::from_secs(10))
        .await
        .expect("the half-sent request was kept open");
    assert!(
        closed >= Duration::from_millis(400),
        "closed after {closed:?}"
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let server =
        TestServer::start_with(|c| c.header_read_timeout = Duration::from_millis(500)).await;
    let mut idle = TcpStream::connect(address(&server)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 1024];
    let n = idle.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut idle, Duration::from_secs(10))
            .await
            .is_some(),
        "the idle connection stayed open"
    );
}

#[tokio::test]
async fn beyond_the_connection_cap_new_connections_wait_for_a_free_one() {
    let server = TestServer::start_with(|c| {
        c.max_connections = 2;
        c.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(address(&server)).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        held.push(stream);
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    let url = format!("{}/healthz", server.client.base);
    assert!(
        http.get(&url).send().await.is_err(),
        "a third connection was served"
    );
    held.pop();
    let answered = reqwest::Client::new().get(&url).send().await.unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_key_may_hold_only_so_many_long_polls() {
    let server = TestServer::start_with(|c| c.max_long_polls_per_key = 2).await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let id = pause.pause_id;
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let client = server.client.clone();
            tokio::spawn(async move { client.wait(id, 30).await })
        })
        .collect();
    for _ in 0..500 {
        if server.app.pauses().watching() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Both are registered once the hub watches the pause; give the second a moment more.
    let mut refused = server.client.wait(id, 30).await;
    for _ in 0..100 {
        if refused.status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        refused = server.client.wait(id, 1).await;
    }
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_long_polls", None);
    // A poll without wait, and another key, are not limited.
    assert_eq!(server.client.get(id).await.status, StatusCode::OK);
    server.client.cancel(id).await.pause(StatusCode::OK);
    for wait in waiting {
        assert_eq!(wait.await.unwrap().status, StatusCode::OK);
    }
    // The places are free again once the polls ended.
    assert_eq!(server.client.wait(id, 1).await.status, StatusCode::OK);
}

#[tokio::test]
async fn every_form_of_an_internal_address_is_refused_at_create() {
    let server = TestServer::start().await;
    for url in [
        "http://[::127.0.0.1]/hook",
        "http://[::ffff:0:7f00:1]/hook",
        "http://[64:ff9b::a9fe:a9fe]/hook",
        "http://[2002:7f00:1::1]/hook",
        "http://[fec0::1]/hook",
        "http://[100::1]/hook",
        "http://192.0.0.8/hook",
        "http://240.0.0.1/hook",
        "http://0.0.0.0/hook",
    ] {
        let mut body = sms_pause(None);
        body["webhook_url"] = json!(url);
        server.client.create(body).await.assert_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("webhook_url"),
        );
    }
}

#[tokio::test]
async fn options_that_look_the_same_are_the_same() {
    let server = TestServer::start().await;
    let mut body = sms_pause(None);
    body["options"] = json!(["Approve", "Approve\u{200b}"]);
    body["timeout_default"] = json!(null);
    server.client.create(body).await.assert_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("options"),
    );
    let mut body = sms_pause(None);
    body["options"] = json!(["Approve\u{200b}", "Ｒｅｊｅｃｔ"]);
    body["timeout_default"] = json!("Reject");
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    assert_eq!(pause.options, ["Approve", "Reject"]);
    assert_eq!(pause.timeout_default.as_deref(), Some("Reject"));
}

#[tokio::test]
async fn a_message_must_show_something_and_hold_no_control_characters() {
    let server = TestServer::start().await;
    for message in ["\u{200b}\u{2060}\u{feff}", "Deploy?\u{1b}[2J", "a\u{0}b"] {
        let mut body = sms_pause(None);
        body["message"] = json!(message);
        server.client.create(body).await.assert_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("message"),
        );
    }
}

#[tokio::test]
async fn only_addresses_a_mail_server_takes_are_accepted() {
    let server = TestServer::start().await;
    let email = |recipient: &str| json!({"recipient": recipient, "channel": "email", "message": "Send?", "options": ["Yes", "No"]});
    for bad in ["\"a b\"@example.com", "a@[127.0.0.1]", "jürgen@example.com"] {
        server.client.create(email(bad)).await.assert_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("recipient"),
        );
    }
    let pause = server
        .client
        .create(email("anna@münchen.de"))
        .await
        .pause(StatusCode::CREATED);
    assert_eq!(pause.recipient, "anna@xn--mnchen-3ya.de");
}

#[tokio::test]
async fn a_too_large_answer_to_a_link_keeps_the_page_headers() {
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let link = server.link(&pause);
    let response = reqwest::Client::new()
        .post(&link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 200 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let headers = response.headers();
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    // The page's own empty icon is allowed by its policy.
    let page = reqwest::get(&link).await.unwrap();
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.contains("img-src data:"), "{policy}");
    assert!(page.text().await.unwrap().contains(r#"href="data:,""#));
}

#[tokio::test]
async fn verify_names_the_event_that_no_longer_parses() {
    let server = TestServer::start().await;
    for _ in 0..4 {
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
    }
    let events = server.client.audit("").await;
    assert!(events.len() >= 8);
    let db = server.behind_its_back().await;
    sqlx::query(&server.drop_trigger("audit_events_refuse_update"))
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_events SET data = 'not json' WHERE seq = 6")
        .execute(&db)
        .await
        .unwrap();
    let report = server.client.get_path("/v1/audit/verify?full=true").await;
    assert_eq!(report.body["ok"], false);
    assert_eq!(report.body["first_bad_seq"], 6, "{}", report.body);
}

#[tokio::test]
async fn a_slack_url_is_shown_only_by_its_start_in_the_audit_log() {
    let mut slack = SlackReceiver::start(&[]).await;
    let server = TestServer::start_with(|c| c.allow_private_network = true).await;
    // The receiver's URL ends in /services/T000/B000/XXXX, as Slack's do.
    let recipient = slack.url.clone();
    let pause = server
        .client
        .create(json!({"recipient": recipient, "channel": "slack", "message": "Deploy?", "options": ["Yes", "No"]}))
        .await
        .pause(StatusCode::CREATED);
    tokio::time::timeout(Duration::from_secs(30), slack.received.recv())
        .await
        .expect("the Slack message never came");
    let link = server.link(&pause);
    let tapped = reqwest::Client::new()
        .post(&link)
        .form(&[("choice", "Yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(tapped.status(), StatusCode::OK);
    let events = server
        .client
        .audit(&format!("pause_id={}", pause.pause_id))
        .await;
    let responded = events
        .iter()
        .find(|e| e.event == AuditEventKind::PauseResponded)
        .unwrap();
    assert!(
        responded.actor.ends_with("/services/T…/…"),
        "{}",
        responded.actor
    );
    let everything = serde_json::to_string(&events).unwrap();
    assert!(
        !everything.contains("XXXX") && !everything.contains("B000"),
        "{everything}"
    );
}

#[tokio::test]
async fn metrics_can_live_on_a_listener_of_their_own() {
    let metrics = port_no_one_else_is_given();
    let server = TestServer::start_with(|c| c.metrics_bind = Some(metrics)).await;
    let on_api = server.client.get_path("/metrics").await;
    assert_eq!(on_api.status, StatusCode::NOT_FOUND);
    let mut text = None;
    for _ in 0..200 {
        if let Ok(response) = reqwest::get(format!("http://{metrics}/metrics")).await {
            text = Some(response.text().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(text.unwrap().contains("pausepoint_"), "no metrics there");
}

/// A free port the server can bind itself. Not one the kernel picked (`bind(":0")`): the
/// kernel hands the same range to every other test's listeners and connections, and once
/// took the port between this test's check and the server's bind, so that the server never
/// started. Below that range (`ip_local_port_range`, 32768 and up here) only an explicit
/// bind takes a port, and no test makes one.
fn port_no_one_else_is_given() -> std::net::SocketAddr {
    let start = 20_000 + (std::process::id() % 10_000) as u16;
    (0..2_000)
        .map(|i| 20_000 + (start - 20_000 + i * 7) % 12_000)
        .find_map(|port| {
            let free = std::net::TcpListener::bind(("127.0.0.1", port)).ok()?;
            free.local_addr().ok()
        })
        .expect("no free port below the ephemeral range")
}

#[tokio::test]
async fn the_database_alone_forges_no_link_and_holds_no_secret_in_the_clear() {
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let secrets = pausepoint_server::domain::webhooks::signing_secrets(
        server.app.store(),
        server.project_id,
        pausepoint_server::domain::pauses::now(),
    )
    .await
    .unwrap();
    let db = server.behind_its_back().await;
    let stored: String = sqlx::query("SELECT value FROM settings WHERE name = 'link_signing_key'")
        .fetch_one(&db)
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with("sealed:v1:"), "{stored}");
    let webhook: String = sqlx::query("SELECT secret FROM webhook_secrets")
        .fetch_one(&db)
        .await
        .unwrap()
        .get(0);
    assert!(webhook.starts_with("sealed:v1:"), "{webhook}");
    assert!(!webhook.contains(&secrets[0]));

    // An attacker tries what they hold as the signing key: it opens nothing.
    let mut candidates: Vec<[u8; 32]> = Vec::new();
    let mut hex_key = [0u8; 32];
    if hex::decode_to_slice(stored.trim(), &mut hex_key).is_ok() {
        candidates.push(hex_key);
    }
    use sha2::Digest;
    candidates.push(sha2::Sha256::digest(stored.as_bytes()).into());
    let mut raw = [0u8; 32];
    raw.copy_from_slice(&stored.as_bytes()[..32]);
    candidates.push(raw);
    for key in candidates {
        let forged = pausepoint_server::Links::from_key(key).token_for(
            pausepoint_server::ids::PauseId::from(pause.pause_id).into(),
            pause.expires_at,
        );
        let page = reqwest::get(format!("{}/r/{forged}", server.client.base))
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::NOT_FOUND);
    }
    if server.backend == Backend::Sqlite {
        let mut bytes = std::fs::read(&server.database).unwrap();
        bytes.extend(std::fs::read(format!("{}-wal", server.database)).unwrap_or_default());
        let needle = secrets[0].as_bytes();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "the webhook secret is in the database file"
        );
    }
}

#[cfg(unix)]
#[tokio::test]
async fn the_database_its_companions_and_the_key_file_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("data").join("pp.db");
    let mut config = pausepoint_server::Config::new(
        database.display().to_string(),
        "127.0.0.1:0".parse().unwrap(),
    );
    config.allow_private_network = false;
    let app = pausepoint_server::App::open(config).await.unwrap();
    // A write, so that the WAL and its index exist.
    pausepoint_server::domain::keys::create_key(
        app.store(),
        "default",
        "perms",
        pausepoint_server::store::Actor::System,
        pausepoint_server::domain::pauses::now(),
    )
    .await
    .unwrap();
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("data")), 0o700);
    for file in ["pp.db", "pp.db-wal", "pp.db-shm", "pausepoint.key"] {
        let path = dir.path().join("data").join(file);
        assert!(path.exists(), "{file} is missing");
        assert_eq!(mode(&path), 0o600, "{file}");
    }
    app.store().close().await;
}

#[tokio::test]
async fn secrets_an_older_version_kept_in_the_clear_are_sealed_at_start() {
    if pausepoint_tests::backend() != Backend::Sqlite {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("old.db");
    let config = || {
        pausepoint_server::Config::new(
            database.display().to_string(),
            "127.0.0.1:0".parse().unwrap(),
        )
    };
    let old_key = [7u8; 32];
    {
        let app = pausepoint_server::App::open(config()).await.unwrap();
        pausepoint_server::domain::keys::create_key(
            app.store(),
            "default",
            "old",
            pausepoint_server::store::Actor::System,
            pausepoint_server::domain::pauses::now(),
        )
        .await
        .unwrap();
        app.store().close().await;
    }
    // As an older version kept them: the link key and a webhook secret in the clear.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", database.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE settings SET value = $1 WHERE name = 'link_signing_key'")
        .bind(hex::encode(old_key))
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE webhook_secrets SET secret = 'whsec_b2xkIHNlY3JldCBpbiB0aGUgY2xlYXIgZm9yIHRlc3Rz'",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let app = pausepoint_server::App::open(config()).await.unwrap();
    let id = pausepoint_server::ids::PauseId::new();
    let now = pausepoint_server::domain::pauses::now();
    let token = pausepoint_server::Links::from_key(old_key)
        .token(id.into(), now + Duration::from_secs(3600));
    assert_eq!(
        app.links()
            .verify(&token, now)
            .map(|target| target.pause_id),
        Ok(id),
        "links made before the upgrade still open"
    );
    let project = app.store().projects().await.unwrap()[0].id;
    let secrets = pausepoint_server::domain::webhooks::signing_secrets(app.store(), project, now)
        .await
        .unwrap();
    assert_eq!(
        secrets,
        ["whsec_b2xkIHNlY3JldCBpbiB0aGUgY2xlYXIgZm9yIHRlc3Rz"]
    );
    app.store().close().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", database.display()))
        .await
        .unwrap();
    let values: Vec<String> = sqlx::query_scalar(
        "SELECT value FROM settings WHERE name = 'link_signing_key' \
         UNION ALL SELECT secret FROM webhook_secrets",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(values.len(), 2);
    assert!(
        values.iter().all(|v| v.starts_with("sealed:v1:")),
        "{values:?}"
    );
}

/// Writes `head` and `body` whole, as a naive client does, then reads the answer to the end.
/// Its send buffer is small, as across a real network: the body goes only as fast as the
/// server reads it.
async fn send_whole(server: &TestServer, head: String, body: &[u8]) -> String {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(128 * 1024).unwrap();
    let mut stream = socket
        .connect(address(server).parse().unwrap())
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
        .write_all(body)
        .await
        .expect("the server read the whole body before answering");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
        .await
        .expect("the server answered and closed")
        .expect("the answer was readable");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_client_that_writes_3_mb_before_reading_always_reads_its_413() {
    let server = TestServer::start().await;
    let body = vec![b'x'; 3 * 1024 * 1024];
    for attempt in 0..20 {
        // With a length, and (every other time) chunked with none.
        let head = if attempt % 2 == 0 {
            format!(
                "POST /v1/pause HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                server.client.key,
                body.len()
            )
        } else {
            format!(
                "POST /v1/pause HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
                server.client.key,
                body.len()
            )
        };
        let mut whole = body.clone();
        if attempt % 2 == 1 {
            whole.extend_from_slice(b"\r\n0\r\n\r\n");
        }
        let answer = send_whole(&server, head, &whole).await;
        assert!(
            answer.starts_with("HTTP/1.1 413"),
            "try {attempt}: {answer}"
        );
        assert!(answer.contains("\"payload_too_large\""), "{answer}");
    }
    // A client that asks before sending is refused before it sends.
    let mut stream = TcpStream::connect(address(&server)).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /v1/pause HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
                 Content-Length: 3145728\r\nExpect: 100-continue\r\n\r\n",
                server.client.key
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 413"));
    // Nothing was created, and the server is fine.
    assert!(server.client.audit("event=pause.created").await.is_empty());
    assert_eq!(
        server.client.create(sms_pause(None)).await.status,
        StatusCode::CREATED
    );
}
