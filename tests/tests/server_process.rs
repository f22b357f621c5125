//! `pp server` as a user runs it: a real process on a real port and SQLite file, killed
//! with `kill -9`, stopped with SIGTERM and started again.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use pausepoint_api::{AuditEvent, AuditEventKind, DeliveryStatus, PauseStatus};
use pausepoint_tests::receivers::{find_link, FakeTwilio};
use pausepoint_tests::{admin_create_key, metric, run_pp, sms_pause, Client, ServerProcess};
use reqwest::StatusCode;

#[tokio::test]
async fn nothing_acknowledged_before_a_kill_9_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let key = admin_create_key(&database, "agent", "default").await;
    let server = ServerProcess::start(&database, 0).await;
    let client = Client::new(&server.base, &key);

    let mut acknowledged = Vec::new();
    for i in 0..30 {
        let pause = client
            .create(sms_pause(None))
            .await
            .pause(StatusCode::CREATED);
        if i % 3 == 0 {
            client.cancel(pause.pause_id).await.pause(StatusCode::OK);
        }
        acknowledged.push(pause.pause_id);
    }
    server.kill().await;

    let server = ServerProcess::start(&database, 0).await;
    let client = Client::new(&server.base, &key);
    for (i, id) in acknowledged.iter().enumerate() {
        let pause = client.get(*id).await.pause(StatusCode::OK);
        let expected = if i % 3 == 0 {
            PauseStatus::Cancelled
        } else {
            PauseStatus::Pending
        };
        assert_eq!(pause.status, expected);
    }
    // Deliveries the killed server had not finished are finished now: every pending

    // pause's link was printed (logged), every cancelled one skipped.
    for (i, id) in acknowledged.iter().enumerate() {
        let delivery = client.delivered(*id).await.delivery.unwrap();

        if i % 3 != 0 {
            assert_eq!(delivery.status, DeliveryStatus::Logged);
        }
    }
    let report = client.get_path("/v1/audit/verify?full=true").await;

    assert_eq!(report.body["ok"], true, "{}", report.body);
    let events = client.audit("").await;
    let lifecycle = events
        .iter()
        .filter(|e| !pausepoint_tests::is_delivery_event(e))
        .filter(|e| e.event != AuditEventKind::AuditCheckpoint)
        .count();
    assert_eq!(
        lifecycle,
        1 + 30 + 10,
        "key.created, 30 pause.created, 10 pause.cancelled"
    );
    assert_eq!(report.body["events_checked"], events.len());
    server.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_create_acknowledged_during_a_burst_survives_a_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let key = admin_create_key(&database, "agent", "default").await;
    let server = ServerProcess::start(&database, 0).await;
    let client = Client::new(&server.base, &key);

    // Many clients create at once, so that writes share group commits when the kill comes.
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicBool::new(true));
    let mut clients = Vec::new();
    for _ in 0..16 {
        let (client, acknowledged, count, running) = (
            client.clone(),
            Arc::clone(&acknowledged),
            Arc::clone(&count),
            Arc::clone(&running),
        );
        clients.push(tokio::spawn(async move {
            while running.load(Ordering::SeqCst) {
                let response = client
                    .http
                    .post(format!("{}/v1/pause", client.base))
                    .bearer_auth(&client.key)
                    .json(&sms_pause(None))
                    .send()
                    .await;
                let Ok(response) = response else { break };
                if response.status() != StatusCode::CREATED {
                    break;
                }
                let Ok(pause) = response.json::<pausepoint_api::Pause>().await else {
                    break;
                };
                acknowledged.lock().unwrap().push(pause.pause_id);
                count.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    // Kill in the middle of the burst, once a good number of creates were acknowledged.
    for _ in 0..3000 {
        if count.load(Ordering::SeqCst) >= 400 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        count.load(Ordering::SeqCst) >= 400,
        "the burst did not get going"
    );
    server.kill().await;
    running.store(false, Ordering::SeqCst);
    for task in clients {
        task.await.unwrap();
    }
    let acknowledged: Vec<_> = acknowledged.lock().unwrap().clone();

    let server = ServerProcess::start(&database, 0).await;
    let client = Client::new(&server.base, &key);
    for id in &acknowledged {
        assert_eq!(
            client.get(*id).await.status,
            StatusCode::OK,
            "{id} was lost"
        );
    }
    let export = client
        .get_path("/v1/audit/export?format=jsonl&event=pause.created")
        .await;
    let created: HashSet<_> = export
        .body
        .as_str()
        .unwrap_or_default()
        .lines()
        .map(|line| {
            serde_json::from_str::<AuditEvent>(line)
                .unwrap()
                .pause_id
                .unwrap()
        })
        .collect();
    for id in &acknowledged {
        assert!(created.contains(id), "{id} has no pause.created event");
    }
    let report = client.get_path("/v1/audit/verify?full=true").await;
    assert_eq!(report.body["ok"], true, "{}", report.body);
    server.terminate().await;
}

#[tokio::test]
async fn a_pause_that_expires_while_the_server_is_down_times_out_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let key = admin_create_key(&database, "agent", "default").await;
    let server = ServerProcess::start(&database, 0).await;
    let client = Client::new(&server.base, &key);
    let pause = client
        .create(sms_pause(Some(1)))
        .await
        .pause(StatusCode::CREATED);
    server.kill().await;

    // Stay down until the deadline has passed.
    let remaining = pause.expires_at.duration_since(jiff::Timestamp::now());
    tokio::time::sleep(
        Duration::try_from(remaining).unwrap_or_default() + Duration::from_millis(200),
    )
    .await;

    let server = ServerProcess::start(&database, 0).await;
    let client = Client::new(&server.base, &key);
    let done = client.wait(pause.pause_id, 30).await.pause(StatusCode::OK);
    assert_eq!(done.status, PauseStatus::TimedOut);
    assert_eq!(done.response_choice.as_deref(), Some("Reject"));
    let events = client.audit(&format!("pause_id={}", pause.pause_id)).await;
    assert_eq!(events.last().unwrap().event, AuditEventKind::PauseTimedOut);
    server.terminate().await;
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly_even_with_a_poll_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let key = admin_create_key(&database, "agent", "default").await;
    let server = ServerProcess::start(&database, 0).await;
    let client = Client::new(&server.base, &key);
    let pause = client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let poller = client.clone();
    let waiting = tokio::spawn(async move { poller.wait(pause.pause_id, 60).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.terminate().await, Some(0));
    let reply = waiting.await.unwrap();
    assert_eq!(reply.pause(StatusCode::OK).status, PauseStatus::Pending);

    // The stop signed the log as it left it: the last event is a checkpoint of the one
    // before, and the next start finds nothing new to sign.
    let server = ServerProcess::start(&database, 0).await;
    let client = Client::new(&server.base, &key);
    let events = client.audit("").await;
    let (last, before) = (&events[events.len() - 1], &events[events.len() - 2]);
    assert_eq!(last.event, AuditEventKind::AuditCheckpoint, "{events:?}");
    assert_eq!(
        (last.data["seq"].as_i64(), last.data["head_hash"].as_str()),
        (Some(before.seq), Some(before.hash.as_str()))
    );
    let report = client.get_path("/v1/audit/verify").await;
    assert_eq!(report.body["ok"], true, "{}", report.body);
    server.terminate().await;
}

#[tokio::test]
async fn a_new_database_gets_a_first_key_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("fresh.db");
    let server = ServerProcess::start(&database, 0).await;
    let printed = server.printed();
    assert!(
        printed.contains(&format!("Database: {}", database.display())),
        "{printed}"
    );
    let key = printed
        .split_whitespace()
        .find(|w| w.starts_with("pp_live_"))
        .expect("the first key is printed")
        .to_owned();
    let client = Client::new(&server.base, &key);
    assert_eq!(
        client.create(sms_pause(None)).await.status,
        StatusCode::CREATED
    );
    let key_lines = printed.lines().filter(|l| l.contains(&key)).count();
    server.terminate().await;

    // The second start prints no key.
    let server = ServerProcess::start(&database, 0).await;
    assert!(
        !server.printed().contains("pp_live_"),
        "{}",
        server.printed()
    );
    server.terminate().await;
    assert!(key_lines >= 1);
}

#[tokio::test]
async fn admin_keys_create_list_and_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let db = database.display().to_string();
    let key = admin_create_key(&database, "deploy-bot", "default").await;
    assert!(
        key.starts_with("pp_live_") && !key.contains('\n'),
        "stdout is the key alone: {key:?}"
    );

    let (code, listed, _) = run_pp(&["admin", "keys", "list", "--db", &db]).await;
    assert_eq!(code, 0);
    assert!(
        listed.contains("deploy-bot") && listed.contains(&key[..12]),
        "{listed}"
    );
    assert!(!listed.contains(&key), "the list never shows a key");

    let server = ServerProcess::start(&database, 0).await;
    let client = Client::new(&server.base, &key);
    assert_eq!(
        client.create(sms_pause(None)).await.status,
        StatusCode::CREATED
    );

    let id = listed
        .lines()
        .find(|l| l.contains("deploy-bot"))
        .and_then(|l| {
            l.split(|c: char| c.is_whitespace() || c == '│')
                .find(|w| w.len() == 36)
        })
        .unwrap()
        .to_owned();
    let (code, out, err) = run_pp(&["admin", "keys", "revoke", &id, "--db", &db]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Revoked"));
    // The server keeps keys in memory and sees a change made by another process within a
    // second: wait until it has, then it refuses the key for good.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let refused_after = loop {
        let started = std::time::Instant::now();
        let reply = client.create(sms_pause(None)).await;
        if reply.status == StatusCode::UNAUTHORIZED {
            break started;
        }
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        assert!(started < deadline, "the revoked key is still accepted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(refused_after < deadline);
    for _ in 0..5 {
        client.create(sms_pause(None)).await.assert_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            None,
        );
    }

    let (code, _, err) = run_pp(&["admin", "keys", "revoke", &id, "--db", &db]).await;
    assert_eq!(code, 1);
    assert!(err.starts_with("error: there is no live key"), "{err}");
    let (code, _, _) = run_pp(&["admin", "keys", "revoke", "not-an-id", "--db", &db]).await;
    assert_eq!(code, 2, "a malformed id is a usage error");
    server.terminate().await;
}

#[tokio::test]
async fn links_reach_the_human_and_never_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let key = admin_create_key(&database, "agent", "default").await;
    let mut twilio = FakeTwilio::start(&[503]).await;
    let server = ServerProcess::start_with(
        &database,
        0,
        &[
            "--twilio-account-sid",
            &twilio.sid,
            "--twilio-auth-token",
            &twilio.token,
            "--twilio-from",
            "+15550001111",
            "--twilio-api-url",
            &twilio.url,
        ],
    )
    .await;
    let client = Client::new(&server.base, &key);

    // SMS through Twilio (after one 503), email printed on the console.
    let sms = client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let email = client
        .create(serde_json::json!({"recipient": "cfo@company.com", "channel": "email", "message": "Send the campaign?", "options": ["Send", "Hold"]}))
        .await
        .pause(StatusCode::CREATED);
    let received = tokio::time::timeout(Duration::from_secs(60), twilio.received.recv())
        .await
        .unwrap()
        .unwrap();
    let sms_link = find_link(&received["Body"]).unwrap();
    let delivered = client.delivered(email.pause_id).await;
    assert_eq!(delivered.delivery.unwrap().status, DeliveryStatus::Logged);
    let printed = server.printed();
    let email_link = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("Answer at "))
        .expect("the console shows the email's link")
        .to_owned();

    // Open and answer both, the way a human would.
    let http = reqwest::Client::new();
    for (link, choice) in [(&sms_link, "Approve"), (&email_link, "Hold")] {
        assert_eq!(
            http.get(link.as_str()).send().await.unwrap().status(),
            StatusCode::OK
        );
        let done = http
            .post(link.as_str())
            .form(&[("choice", choice)])
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), StatusCode::OK);
    }
    assert_eq!(
        client
            .wait(sms.pause_id, 10)
            .await
            .pause(StatusCode::OK)
            .response_choice
            .as_deref(),
        Some("Approve")
    );
    assert_eq!(
        client
            .wait(email.pause_id, 10)
            .await
            .pause(StatusCode::OK)
            .response_choice
            .as_deref(),
        Some("Hold")
    );

    let log = server.logged();
    server.terminate().await;
    assert!(
        log.contains("delivery failed") && log.contains("503"),
        "the failed attempt is logged: {log}"
    );
    for link in [&sms_link, &email_link] {
        let token = link.rsplit('/').next().unwrap();
        assert!(!log.contains(token), "a token reached the log:\n{log}");
    }
    assert!(
        !log.contains(&twilio.token),
        "the Twilio token reached the log"
    );
}

#[tokio::test]
async fn the_server_log_holds_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let key = admin_create_key(&database, "agent", "default").await;
    let server = ServerProcess::start(&database, 0).await;
    let client = Client::new(&server.base, &key);
    let pause = client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    client.cancel(pause.pause_id).await;
    client
        .with_key("pp_live_wrongwrongwrongwrongwrongwrong00")
        .get(pause.pause_id)
        .await;
    let printed = server.printed();
    server.terminate().await;
    assert!(!printed.contains(&key));
    assert!(!printed.contains("pp_live_wrong"));
}

#[tokio::test]
async fn webhook_events_undelivered_at_a_kill_9_arrive_after_restart() {
    use pausepoint_tests::receivers::{Answer, WebhookReceiver};
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let db = database.display().to_string();
    let key = admin_create_key(&database, "agent", "default").await;
    let (code, secret, _) = run_pp(&["admin", "webhook-secret", "--db", &db]).await;
    assert_eq!(code, 0);
    let secret = secret.trim().to_owned();
    assert!(secret.starts_with("whsec_") && !secret.contains('\n'));

    // The receiver is down (503) for the first attempt of each event.
    let mut receiver = WebhookReceiver::start(vec![Answer::Status(503), Answer::Status(503)]).await;
    let server = ServerProcess::start_with(&database, 0, &["--allow-private-network"]).await;
    let client = Client::new(&server.base, &key);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let mut body = sms_pause(None);
        body["webhook_url"] = serde_json::json!(receiver.url);
        let pause = client.create(body).await.pause(StatusCode::CREATED);
        client.cancel(pause.pause_id).await.pause(StatusCode::OK);
        ids.push(pause.pause_id);
    }
    let first = [receiver.next(30).await, receiver.next(30).await];
    // The server records each attempt a moment after the receiver answered: once the
    // 503s are on record, kill it before the retries come due.
    for id in &ids {
        for _ in 0..500 {
            let list = client.get_path(&format!("/v1/pause/{id}/webhooks")).await;
            if list.body["data"][0]["attempts"] == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    server.kill().await;

    // Nothing is lost: after the restart both events arrive, with their first ids. (One
    // in flight at the kill may come twice: receivers drop repeats by webhook-id.)
    let server = ServerProcess::start_with(&database, 0, &["--allow-private-network"]).await;
    let wanted: std::collections::HashSet<String> = first
        .iter()
        .map(|h| h.header("webhook-id").to_owned())
        .collect();
    assert_eq!(wanted.len(), 2);
    let mut again = Vec::new();
    let mut seen = std::collections::HashSet::new();
    while seen != wanted {
        let hook = receiver.next(60).await;
        assert!(
            wanted.contains(hook.header("webhook-id")),
            "an event nobody made: {hook:?}"
        );
        seen.insert(hook.header("webhook-id").to_owned());
        again.push(hook);
    }
    let now = jiff::Timestamp::now().as_second();
    for hook in &again {
        let verified = pausepoint_api::webhooks::verify(
            &secret,
            hook.header("webhook-id"),
            hook.header("webhook-timestamp"),
            hook.header("webhook-signature"),
            hook.body.as_bytes(),
            now,
        );
        assert_eq!(verified, Ok(()), "signed with the secret pp admin printed");
    }

    // `pp webhook list` shows both attempts.
    let listed = tokio::process::Command::new(pausepoint_tests::pp_binary())
        .args(["webhook", "list", &ids[0].to_string(), "--json"])
        .env("PAUSEPOINT_URL", &server.base)
        .env("PAUSEPOINT_API_KEY", &key)
        .output()
        .await
        .unwrap();
    let events: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let attempts = events[0]["attempt_log"].as_array().unwrap();
    assert_eq!(attempts[0]["status_code"], 503);
    server.terminate().await;
}

#[tokio::test]
async fn rotating_the_webhook_secret_prints_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pp.db").display().to_string();
    let (_, first, _) = run_pp(&["admin", "webhook-secret", "--db", &db]).await;
    let (_, same, _) = run_pp(&["admin", "webhook-secret", "--db", &db]).await;
    assert_eq!(first, same);
    let (code, rotated, note) = run_pp(&["admin", "webhook-secret", "--rotate", "--db", &db]).await;
    assert_eq!(code, 0);
    assert_ne!(rotated, first);
    assert!(note.contains("keeps signing until"), "{note}");
    let (_, now_current, _) = run_pp(&["admin", "webhook-secret", "--db", &db]).await;
    assert_eq!(now_current, rotated);
}

#[tokio::test]
async fn pp_webhook_verify_says_whether_a_signature_holds_and_why_not() {
    // The Standard Webhooks specification's test vector, checked at its own time.
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(&body, r#"{"test": 2432232314}"#).unwrap();
    let headers = dir.path().join("headers.txt");
    std::fs::write(
        &headers,
        "HTTP/1.1 POST /hooks\r\nwebhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek\r\nWebhook-Timestamp: 1614265330\r\nwebhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\r\n",
    )
    .unwrap();
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let args = |body: &str, now: &str| {
        vec![
            "webhook".to_owned(),
            "verify".into(),
            "--secret".into(),
            secret.into(),
            "--headers".into(),
            headers.display().to_string(),
            "--now".into(),
            now.into(),
            body.into(),
        ]
    };
    let run = |args: Vec<String>| async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run_pp(&refs).await
    };
    let (code, out, _) = run(args(&body.display().to_string(), "1614265340")).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("valid: the signature matches"), "{out}");

    std::fs::write(&body, r#"{"test": 2432232315}"#).unwrap();
    let (code, _, err) = run(args(&body.display().to_string(), "1614265340")).await;
    assert_eq!(code, 1);
    assert!(err.contains("not valid: no signature matches"), "{err}");

    std::fs::write(&body, r#"{"test": 2432232314}"#).unwrap();
    let (code, _, err) = run(args(&body.display().to_string(), "1614266000")).await;
    assert_eq!(code, 1);
    assert!(err.contains("a replay, or a clock that is off"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_backlog_stops_within_5_s_and_the_restart_notifies_each_pause_once() {
    use pausepoint_tests::receivers::SlackReceiver;
    const PAUSES: usize = 1200;
    // Slack answers in a second: the server sends about 64 at a time, and the rest wait.
    let mut slack = SlackReceiver::start(&[]).await;
    slack.delay_ms.store(1000, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let db = database.display().to_string();
    let key = admin_create_key(&database, "agent", "default").await;
    let server = ServerProcess::start_with(&database, 0, &["--allow-private-network"]).await;
    let client = Client::new(&server.base, &key);

    // Each pause to a webhook of its own, so that Slack's per-webhook rate holds none back.
    let next = Arc::new(AtomicUsize::new(0));
    let mut creators = Vec::new();
    for _ in 0..8 {
        let (client, next, webhooks) = (
            client.clone(),
            Arc::clone(&next),
            (0..PAUSES).map(|n| slack.webhook(n)).collect::<Vec<_>>(),
        );
        creators.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= PAUSES {
                    break;
                }
                client
                    .create(serde_json::json!({
                        "recipient": webhooks[n], "channel": "slack",
                        "message": format!("Deploy shard {n}?"), "options": ["Yes", "No"]
                    }))
                    .await
                    .pause(StatusCode::CREATED);
            }
        }));
    }
    for creator in creators {
        creator.await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(30), slack.received.recv())
        .await
        .expect("the first messages went out")
        .unwrap();

    // What waits shows on /metrics: here the notices handed over to the worker at their
    // creation, held by this server and leased, which the table does not count as due.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (backlog, oldest) = loop {
        let backlog = metric(&server.base, r#"pausepoint_backlog{queue="deliveries"}"#).await;
        let oldest = metric(
            &server.base,
            r#"pausepoint_backlog_oldest_seconds{queue="deliveries"}"#,
        )
        .await;
        let (backlog, oldest) = (backlog.unwrap_or(0.0), oldest.unwrap_or(0.0));
        if (backlog >= 100.0 && oldest > 0.0) || std::time::Instant::now() > deadline {
            break (backlog, oldest);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        backlog >= 100.0 && backlog <= PAUSES as f64 && oldest > 0.0,
        "the deliveries' backlog on /metrics: {backlog} waiting, the oldest for {oldest} s"
    );

    let log = server.log.clone();
    let stopping = std::time::Instant::now();
    let code = server.terminate().await;
    let took = stopping.elapsed();
    assert_eq!(code, Some(0));
    assert!(
        took < Duration::from_secs(5),
        "stopped {took:?} after SIGTERM"
    );
    let log = log.lock().unwrap().clone();
    assert!(
        log.contains("left queued for the next start") && log.contains("queue=\"deliveries\""),
        "the server says what it left: {log}"
    );

    // `pp admin status` shows what waits.
    let (code, status, stderr) = run_pp(&["admin", "status", "--json", "--db", &db]).await;
    assert_eq!(code, 0, "{stderr}");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let queued = status["deliveries"]["queued"].as_i64().unwrap();
    assert!(queued > 0 && queued < PAUSES as i64, "{status}");
    assert_eq!(
        status["deliveries"]["due"], queued,
        "given back due at once"
    );
    assert_eq!(status["pauses_pending"], PAUSES);

    // The next start sends the rest; every pause is notified exactly once.
    slack.delay_ms.store(0, Ordering::SeqCst);
    let server = ServerProcess::start_with(&database, 0, &["--allow-private-network"]).await;
    let client = Client::new(&server.base, &key);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let notified = loop {
        let export = client
            .get_path("/v1/audit/export?format=jsonl&event=pause.notified")
            .await;
        let notified: Vec<AuditEvent> = export
            .body
            .as_str()
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        if notified.len() >= PAUSES || std::time::Instant::now() > deadline {
            break notified;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let once: HashSet<_> = notified.iter().map(|e| e.pause_id.unwrap()).collect();
    assert_eq!((notified.len(), once.len()), (PAUSES, PAUSES));
    assert!(client
        .audit("event=pause.notification_failed")
        .await
        .is_empty());
    let mut messages = std::collections::HashMap::new();
    while let Ok(message) = slack.received.try_recv() {
        *messages
            .entry(
                message["blocks"][0]["text"]["text"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
            .or_insert(0) += 1;
    }
    // The first message was taken off the receiver above.
    assert_eq!(messages.len(), PAUSES - 1);
    assert!(
        messages.values().all(|&n| n == 1),
        "a human was sent one twice"
    );
    server.terminate().await;
}

/// The link the server printed for the last pause (the console channel).
async fn printed_link(server: &ServerProcess) -> String {
    for _ in 0..500 {
        if let Some(link) = server
            .printed()
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("Answer at ").map(str::to_owned))
        {
            return link;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no link was printed: {}", server.printed());
}

#[tokio::test]
async fn projects_are_named_for_the_people_asked() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let db = database.display().to_string();
    let server = ServerProcess::start_with(&database, 0, &["--project-name", "Acme Finance"]).await;
    let printed = server.printed();
    assert!(
        printed.contains("it now has the project \"Acme Finance\""),
        "{printed}"
    );
    let key = printed
        .split_whitespace()
        .find(|w| w.starts_with("pp_live_"))
        .unwrap()
        .to_owned();
    let client = Client::new(&server.base, &key);
    client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let page = reqwest::get(printed_link(&server).await)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Decision requested by <strong>Acme Finance</strong>"));

    // Renamed while the server runs: its keys keep working, the page says the new name.
    let (code, out, err) = run_pp(&[
        "admin",
        "projects",
        "rename",
        "Acme Finance",
        "Acme Treasury",
        "--db",
        &db,
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is now called \"Acme Treasury\""), "{out}");
    let (code, _, err) = run_pp(&["admin", "projects", "rename", "Nobody", "X", "--db", &db]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("there is no project named \"Nobody\""),
        "{err}"
    );
    client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let page = reqwest::get(printed_link(&server).await)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("Decision requested by <strong>Acme Treasury</strong>"),
        "{page}"
    );
    let renamed = client.audit("event=project.renamed").await;
    assert_eq!(renamed.len(), 1);
    assert_eq!(renamed[0].data["to"], "Acme Treasury");

    // A key made without --project goes to the first project; listed piped, no boxes.
    let (code, _, err) = run_pp(&["admin", "keys", "create", "--name", "ci", "--db", &db]).await;
    assert_eq!(code, 0, "{err}");
    let (_, listed, _) = run_pp(&["admin", "projects", "list", "--json", "--db", &db]).await;
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["live_keys"], 2);
    let pp_list = tokio::process::Command::new(pausepoint_tests::pp_binary())
        .args(["list"])
        .env("PAUSEPOINT_URL", &server.base)
        .env("PAUSEPOINT_API_KEY", &key)
        .output()
        .await
        .unwrap();
    let table = String::from_utf8(pp_list.stdout).unwrap();
    assert!(table.contains("pending"), "{table}");
    assert!(
        !table
            .chars()
            .any(|c| ('\u{2500}'..='\u{257f}').contains(&c)),
        "piped, pp list draws no boxes: {table}"
    );
    server.terminate().await;
}

#[tokio::test]
async fn an_unnamed_first_project_can_be_named_at_a_later_start() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let server = ServerProcess::start(&database, 0).await;
    assert!(server
        .printed()
        .contains("pp admin projects rename default"));
    server.terminate().await;
    let server = ServerProcess::start_with(&database, 0, &["--project-name", "Ops"]).await;
    assert!(
        server
            .printed()
            .contains("The project \"default\" is now called \"Ops\"."),
        "{}",
        server.printed()
    );
    server.terminate().await;
    // Only once: the next start finds nothing called "default".
    let server = ServerProcess::start_with(&database, 0, &["--project-name", "Ops"]).await;
    assert!(!server.printed().contains("is now called"));
    server.terminate().await;
}

/// The server's `pausepoint_long_polls_waiting` gauge.
async fn long_polls_waiting(base: &str) -> usize {
    pausepoint_tests::metric(base, "pausepoint_long_polls_waiting")
        .await
        .unwrap() as usize
}

/// Thousands of agents long-poll one `pp server` at once, each on a connection of its
/// own, fifty to a pause: all of them wait, and each returns with its own pause's decision
/// as soon as it is made, leaving nobody waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_long_polls_all_return_with_their_decisions() {
    const PAUSES: usize = 60;
    const EACH: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let key = admin_create_key(&database, "agent", "default").await;
    let server =
        ServerProcess::start_with(&database, 0, &["--max-long-polls-per-key", "5000"]).await;
    let client = Client::new(&server.base, &key);
    let mut pauses = Vec::with_capacity(PAUSES);
    for _ in 0..PAUSES {
        let pause = client
            .create(sms_pause(None))
            .await
            .pause(StatusCode::CREATED);
        pauses.push(pause.pause_id);
    }
    let waiters: Vec<_> = (0..PAUSES * EACH)
        .map(|i| {
            let client = client.clone();
            let id = pauses[i % PAUSES];
            tokio::spawn(async move { (id, client.wait(id, 60).await) })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while long_polls_waiting(&server.base).await < PAUSES * EACH {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {} long-polls are waiting",
            long_polls_waiting(&server.base).await,
            PAUSES * EACH
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "{} long-polls waiting; server RSS {:.1} MB",
        PAUSES * EACH,
        server.rss() as f64 / 1e6
    );
    for id in &pauses {
        client.cancel(*id).await.pause(StatusCode::OK);
    }
    for waiter in waiters {
        let (id, reply) = waiter.await.unwrap();
        let pause = reply.pause(StatusCode::OK);
        assert_eq!(pause.pause_id, id);
        assert_eq!(pause.status, PauseStatus::Cancelled);
    }
    assert_eq!(long_polls_waiting(&server.base).await, 0);
    server.terminate().await;
}

/// A server of the version before, restarting in the middle of a rolling deploy (or after
/// a rollback), starts on a database a later version migrated, and says so.
#[tokio::test]
async fn a_server_starts_on_a_database_a_later_version_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("pp.db");
    let db = database.display().to_string();
    let key = admin_create_key(&database, "agent", "default").await;
    pausepoint_tests::apply_a_later_migration(&format!("sqlite://{db}")).await;

    let (code, out, err) = run_pp(&["admin", "migrate", "--db", &db]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("is ahead of this version") && out.contains("9999"),
        "{out}"
    );
    let server = ServerProcess::start(&database, 0).await;
    let client = Client::new(&server.base, &key);
    client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let log = server.log.lock().unwrap().clone();
    assert!(
        log.contains("migrations this version does not know") && log.contains("9999"),
        "{log}"
    );
}
