//! Hardening as seen from outside the process: `pp server` with receivers that try to make
//! it hold their answers, with proxy variables in its environment, and its output when it
//! is given secrets.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use pausepoint_api::DeliveryStatus;
use pausepoint_tests::receivers::{EndlessReceiver, SlackReceiver};
use pausepoint_tests::{admin_create_key, run_pp, sms_pause, Client, ServerProcess};
use reqwest::StatusCode;
use serde_json::json;

/// The webhook attempts of a pause, once there are `count` of them.
async fn attempts(client: &Client, id: uuid::Uuid, count: usize) -> serde_json::Value {
    for _ in 0..600 {
        let list = client.get_path(&format!("/v1/pause/{id}/webhooks")).await;
        let log = &list.body["data"][0]["attempt_log"];
        if log.as_array().is_some_and(|a| a.len() >= count) {
            return log.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no webhook attempt was recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_streaming_an_endless_answer_cannot_grow_the_servers_memory() {
    let mut endless = EndlessReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let key = admin_create_key(&database, "agent", "default").await;
    let server = ServerProcess::start_with(&database, 0, &["--allow-private-network"]).await;
    let client = Client::new(&server.base, &key);
    let before = server.rss();

    // A webhook receiver and a Slack recipient, both answering 500 with an endless body.
    let mut body = sms_pause(None);
    body["webhook_url"] = json!(format!("{}/hook", endless.url));
    let pause = client.create(body).await.pause(StatusCode::CREATED);
    client.cancel(pause.pause_id).await.pause(StatusCode::OK);
    let slack = client
        .create(json!({"recipient": format!("{}/services/T1/B1/X1", endless.url), "channel": "slack", "message": "Deploy?", "options": ["Yes", "No"]}))
        .await
        .pause(StatusCode::CREATED);

    let log = attempts(&client, pause.pause_id, 1).await;
    let excerpt = log[0]["response"].as_str().unwrap_or_default();
    assert!(
        excerpt.len() <= 1100,
        "kept {} bytes of the answer",
        excerpt.len()
    );
    assert_eq!(log[0]["status_code"], 500);
    // The Slack attempt failed (500: it will be retried) with a short excerpt.
    let mut error = None;
    for _ in 0..600 {
        let pause = client.get(slack.pause_id).await.pause(StatusCode::OK);
        if let Some(e) = pause.delivery.and_then(|d| d.last_error) {
            error = Some(e);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let error = error.expect("the Slack attempt was not recorded");
    assert!(error.starts_with("Slack answered 500"), "{error}");
    assert!(error.len() < 400, "kept {} bytes", error.len());
    assert!(endless.requests.recv().await.is_some());

    let after = server.rss();
    let grown = after.saturating_sub(before);
    eprintln!(
        "server RSS {} MB before, {} MB after reading two endless answers",
        before / 1_000_000,
        after / 1_000_000
    );
    assert!(
        grown < 32 * 1024 * 1024,
        "the server grew by {} MB reading an endless answer",
        grown / 1024 / 1024
    );
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_variables_in_the_environment_are_ignored() {
    // A stand-in proxy that records whatever reaches it.
    let mut proxy = SlackReceiver::start(&[]).await;
    let proxy_url = proxy.url.split("/services").next().unwrap().to_owned();
    let mut receiver = SlackReceiver::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let key = admin_create_key(&database, "agent", "default").await;
    let env = [
        ("HTTP_PROXY", proxy_url.as_str()),
        ("http_proxy", proxy_url.as_str()),
        ("HTTPS_PROXY", proxy_url.as_str()),
        ("ALL_PROXY", proxy_url.as_str()),
        ("NO_PROXY", ""),
    ];
    let server =
        ServerProcess::start_with_env(&database, 0, &["--allow-private-network"], &env).await;
    let client = Client::new(&server.base, &key);
    let pause = client
        .create(json!({"recipient": receiver.url, "channel": "slack", "message": "Deploy?", "options": ["Yes", "No"]}))
        .await
        .pause(StatusCode::CREATED);
    let delivered = client.delivered(pause.pause_id).await.delivery.unwrap();
    assert_eq!(delivered.status, DeliveryStatus::Sent);
    assert!(
        receiver.received.try_recv().is_ok(),
        "the message went elsewhere"
    );
    assert!(
        proxy.received.try_recv().is_err(),
        "the message went through the proxy"
    );
    server.terminate().await;
}

#[tokio::test]
async fn secrets_never_appear_in_what_pp_prints() {
    // A database password in an error.
    let (code, out, err) = run_pp(&[
        "server",
        "--db",
        "postgres://pausepoint:hunter2@127.0.0.1:1/pausepoint",
        "--bind",
        "127.0.0.1:0",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(
        !out.contains("hunter2") && !err.contains("hunter2"),
        "{out}{err}"
    );
    assert!(err.contains("***"), "{err}");

    // Secret environment variables in --help.
    let output = tokio::process::Command::new(pausepoint_tests::pp_binary())
        .args(["server", "--help"])
        .env("PAUSEPOINT_DATABASE_URL", "postgres://u:hunter2@db/pp")
        .env("PAUSEPOINT_SMTP_URL", "smtp://u:hunter3@mail:587")
        .env("PAUSEPOINT_TWILIO_AUTH_TOKEN", "hunter4")
        .env("PAUSEPOINT_OUTBOUND_PROXY", "http://u:hunter5@proxy:3128")
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for secret in ["hunter2", "hunter3", "hunter4", "hunter5"] {
        assert!(!help.contains(secret), "--help shows {secret}");
    }
}

#[tokio::test]
async fn pp_admin_keys_list_speaks_json() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let key = admin_create_key(&database, "deploy-bot", "default").await;
    let database = database.display().to_string();
    let (code, out, err) = run_pp(&["admin", "keys", "list", "--json", "--db", &database]).await;
    assert_eq!(code, 0, "{err}");
    let keys: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(keys[0]["name"], "deploy-bot");
    assert!(key.starts_with(keys[0]["prefix"].as_str().unwrap()));
    assert!(!out.contains(&key), "the key itself is never listed");
    // Piped, the table has no box drawing.
    let (_, table, _) = run_pp(&["admin", "keys", "list", "--db", &database]).await;
    assert!(table.contains("deploy-bot"));
    assert!(!table.contains('│') && !table.contains('─'), "{table}");
}
