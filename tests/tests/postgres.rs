//! Several `pp server` processes on one PostgreSQL database: each timeout happens once,
//! with one audit event and one webhook; a decision made through one server wakes a
//! long-poll held by another; a server killed mid-send has its work finished by another
//! once its lease runs out. Needs `PAUSEPOINT_TEST_POSTGRES_URL` (CI sets it).

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pausepoint_api::{AuditEvent, AuditEventKind, Pause, PauseStatus};
use pausepoint_tests::receivers::WebhookReceiver;
use pausepoint_tests::{
    admin_create_key, fresh_postgres, metric, sms_pause, Client, ServerProcess,
};
use reqwest::StatusCode;
use serde_json::json;

const FLAGS: &[&str] = &["--allow-private-network", "--work-lease", "3s"];

/// Every audit event of the key's project, through all pages.
async fn all_events(client: &Client) -> Vec<AuditEvent> {
    let mut events = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = client
            .get_path(&format!("/v1/audit?limit=1000{cursor}"))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        events
            .extend(serde_json::from_value::<Vec<AuditEvent>>(page.body["data"].clone()).unwrap());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => return events,
        }
    }
}

/// One server on the database, a client with a key of its project, and a pool on the
/// database for what a test reads or writes behind the server's back.
async fn one_server(database: &str) -> (ServerProcess, Client, sqlx::PgPool) {
    let key = admin_create_key(database, "agents", "default").await;
    let server = ServerProcess::start_with(database, 0, FLAGS).await;
    let client = Client::new(&server.base, &key);
    let db = sqlx::PgPool::connect(database).await.unwrap();
    (server, client, db)
}

async fn pending(client: &Client) -> usize {
    let page = client.get_path("/v1/pause?status=pending&limit=100").await;
    page.body["data"].as_array().unwrap().len()
}

#[tokio::test]
async fn two_servers_time_out_200_pauses_once_each() {
    let Some(database) = fresh_postgres().await else {
        return;
    };
    let key = admin_create_key(&database, "agents", "default").await;
    let mut receiver = WebhookReceiver::start(vec![]).await;
    let a = ServerProcess::start_with(&database, 0, FLAGS).await;
    let b = ServerProcess::start_with(&database, 0, FLAGS).await;
    let clients = [Client::new(&a.base, &key), Client::new(&b.base, &key)];

    let creates = (0..200).map(|i| {
        let client = clients[i % 2].clone();
        let mut body = sms_pause(Some(6));
        body["webhook_url"] = json!(receiver.url);
        async move {
            client
                .create(body)
                .await
                .pause(StatusCode::CREATED)
                .pause_id
        }
    });
    let ids: Vec<_> = futures_util::stream::iter(creates)
        .buffer_unordered(20)
        .collect()
        .await;
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 200);

    let started = Instant::now();
    while pending(&clients[0]).await > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "pauses never timed out"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut hooks = HashSet::new();
    while hooks.len() < 200 {
        let hook = receiver.next(60).await;
        assert_eq!(hook.json()["type"], "pause.timed_out");
        assert!(
            hooks.insert(hook.header("webhook-id").to_owned()),
            "a webhook arrived twice"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        receiver.received.try_recv().is_err(),
        "no more than one webhook per pause"
    );

    let events = all_events(&clients[1]).await;
    let timed_out: Vec<_> = events
        .iter()
        .filter(|e| e.event == AuditEventKind::PauseTimedOut)
        .collect();
    assert_eq!(timed_out.len(), 200, "one pause.timed_out per pause");
    assert_eq!(
        timed_out
            .iter()
            .map(|e| e.pause_id)
            .collect::<HashSet<_>>()
            .len(),
        200
    );
    for id in &ids {
        let pause = clients[0].get(*id).await.pause(StatusCode::OK);
        assert_eq!(
            (pause.status, pause.response_choice.as_deref()),
            (PauseStatus::TimedOut, Some("Reject"))
        );
    }
    let report = clients[0].get_path("/v1/audit/verify?full=true").await;
    assert_eq!(
        report.body["ok"], true,
        "the chain stays one line under two writers: {}",
        report.body
    );
    assert_eq!(report.body["events_checked"], events.len());
    a.terminate().await;
    b.terminate().await;
}

#[tokio::test]
async fn a_decision_through_one_server_wakes_a_long_poll_on_another() {
    let Some(database) = fresh_postgres().await else {
        return;
    };
    let key = admin_create_key(&database, "agents", "default").await;
    let a = ServerProcess::start_with(&database, 0, FLAGS).await;
    let b = ServerProcess::start_with(&database, 0, FLAGS).await;
    let (on_a, on_b) = (Client::new(&a.base, &key), Client::new(&b.base, &key));
    for _ in 0..3 {
        let pause = on_a
            .create(sms_pause(None))
            .await
            .pause(StatusCode::CREATED);
        let waiting = {
            let on_b = on_b.clone();
            tokio::spawn(async move {
                let reply = on_b.wait(pause.pause_id, 30).await;
                (reply, Instant::now())
            })
        };
        // Let B's long-poll start, then decide through A.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let decided_at = Instant::now();
        on_a.cancel(pause.pause_id).await.pause(StatusCode::OK);
        let (reply, woke_at) = waiting.await.unwrap();
        let seen: Pause = reply.pause(StatusCode::OK);
        assert_eq!(seen.status, PauseStatus::Cancelled);
        let lag = woke_at.saturating_duration_since(decided_at);
        eprintln!("decision on A to long-poll on B: {} ms", lag.as_millis());
        assert!(
            lag < Duration::from_secs(10),
            "woken by the decision, not by the end of its wait"
        );
    }
    a.terminate().await;
    b.terminate().await;
}

#[tokio::test]
async fn a_server_killed_mid_send_has_its_work_finished_by_the_other() {
    let Some(database) = fresh_postgres().await else {
        return;
    };
    let key = admin_create_key(&database, "agents", "default").await;
    // Every answer takes 4 s: longer than the 3 s lease, so A dies holding work.
    let mut receiver = WebhookReceiver::start_slow(vec![], Duration::from_secs(4)).await;
    let a = ServerProcess::start_with(&database, 0, FLAGS).await;
    let on_a = Client::new(&a.base, &key);
    let mut ids = Vec::new();
    for _ in 0..6 {
        let mut body = sms_pause(None);
        body["webhook_url"] = json!(receiver.url);
        let pause = on_a.create(body).await.pause(StatusCode::CREATED);
        on_a.cancel(pause.pause_id).await.pause(StatusCode::OK);
        ids.push(pause.pause_id);
    }
    receiver.next(30).await; // A is in the middle of sending.
    let b = ServerProcess::start_with(&database, 0, FLAGS).await;
    a.kill().await;

    let on_b = Client::new(&b.base, &key);
    let started = Instant::now();
    for id in &ids {
        loop {
            let list = on_b.get_path(&format!("/v1/pause/{id}/webhooks")).await;
            if list.body["data"][0]["status"] == "delivered" {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "B never finished A's work: {}",
                list.body
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let events = all_events(&on_b).await;
    let delivered: HashSet<_> = events
        .iter()
        .filter(|e| e.event == AuditEventKind::WebhookDelivered)
        .map(|e| e.pause_id)
        .collect();
    assert_eq!(delivered.len(), ids.len());
    let report = on_b.get_path("/v1/audit/verify?full=true").await;
    assert_eq!(report.body["ok"], true, "{}", report.body);
    b.terminate().await;
}

/// What one client's creates came to: the ids acknowledged, and why it stopped early if
/// the server refused one or did not answer.
struct Load {
    acknowledged: Vec<uuid::Uuid>,
    refused: Option<String>,
}

/// Creates through `client` until `stop` says so, or until a create is not acknowledged.
async fn create_until(client: Client, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Load {
    let mut acknowledged = Vec::new();
    let mut refused = None;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) && acknowledged.len() < 2000 {
        let response = client
            .http
            .post(format!("{}/v1/pause", client.base))
            .bearer_auth(&client.key)
            .json(&sms_pause(None))
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(e) => {
                refused = Some(format!("no answer: {e}"));
                break;
            }
        };
        let status = response.status();
        if status != StatusCode::CREATED {
            let body = response.text().await.unwrap_or_default();
            refused = Some(format!("{status}: {body}"));
            break;
        }
        let Ok(pause) = response.json::<Pause>().await else {
            refused = Some("an unreadable answer".to_owned());
            break;
        };
        acknowledged.push(pause.pause_id);
    }
    Load {
        acknowledged,
        refused,
    }
}

/// Every acknowledged create is there with one `pause.created`, its delivery recorded
/// once and after it, and the chain verifies.
async fn all_present_once(client: &Client, acknowledged: &[uuid::Uuid]) {
    let events = all_events(client).await;
    for id in acknowledged {
        let mine: Vec<&AuditEvent> = events.iter().filter(|e| e.pause_id == Some(*id)).collect();
        let created: Vec<_> = mine
            .iter()
            .filter(|e| e.event == AuditEventKind::PauseCreated)
            .collect();
        assert_eq!(created.len(), 1, "{id}: {mine:?}");
        let notified: Vec<_> = mine
            .iter()
            .filter(|e| e.event == AuditEventKind::PauseNotified)
            .collect();
        assert!(notified.len() <= 1, "{id} was notified twice: {mine:?}");
        if let Some(notified) = notified.first() {
            assert!(notified.seq > created[0].seq, "{id}: {mine:?}");
        }
    }
    let report = client.get_path("/v1/audit/verify?full=true").await;
    assert_eq!(report.body["ok"], true, "{}", report.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_under_load_keep_one_chain_and_every_create() {
    let Some(database) = fresh_postgres().await else {
        return;
    };
    let key = admin_create_key(&database, "agents", "default").await;
    let a = ServerProcess::start_with(&database, 0, FLAGS).await;
    let b = ServerProcess::start_with(&database, 0, FLAGS).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loads = Vec::new();
    for i in 0..8 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        loads.push(tokio::spawn(create_until(
            Client::new(base, &key),
            stop.clone(),
        )));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for load in loads {
        let load = load.await.unwrap();
        // Two servers' groups must never fail each other (they once deadlocked on the
        // audit head): every create is acknowledged.
        assert_eq!(
            load.refused, None,
            "a create failed under two servers' load"
        );
        acknowledged.extend(load.acknowledged);
    }
    assert!(acknowledged.len() > 100, "the load did not get going");
    let client = Client::new(&a.base, &key);
    for id in &acknowledged {
        assert_eq!(client.get(*id).await.status, StatusCode::OK);
    }
    all_present_once(&client, &acknowledged).await;
    a.terminate().await;
    b.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_batch_loses_and_repeats_nothing() {
    let Some(database) = fresh_postgres().await else {
        return;
    };
    let key = admin_create_key(&database, "agents", "default").await;
    let a = ServerProcess::start_with(&database, 0, FLAGS).await;
    let b = ServerProcess::start_with(&database, 0, FLAGS).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut on_a = Vec::new();
    let mut on_b = Vec::new();
    for _ in 0..6 {
        on_a.push(tokio::spawn(create_until(
            Client::new(&a.base, &key),
            stop.clone(),
        )));
        on_b.push(tokio::spawn(create_until(
            Client::new(&b.base, &key),
            stop.clone(),
        )));
    }
    // Kill one writer in the middle of its groups, while the other keeps writing.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.kill().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut acknowledged = Vec::new();
    for load in on_a {
        // The killed server's clients stop when it dies; what it acknowledged must stay.
        acknowledged.extend(load.await.unwrap().acknowledged);
    }
    for load in on_b {
        let load = load.await.unwrap();
        assert_eq!(load.refused, None, "the surviving server refused a create");
        acknowledged.extend(load.acknowledged);
    }
    let client = Client::new(&b.base, &key);
    for id in &acknowledged {
        assert_eq!(
            client.get(*id).await.status,
            StatusCode::OK,
            "{id} was lost"
        );
    }
    // The killed server's leased deliveries come back to the other once their lease ends:
    // every pause gets its one pause.notified.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let notified: HashSet<uuid::Uuid> = all_events(&client)
            .await
            .iter()
            .filter(|e| e.event == AuditEventKind::PauseNotified)
            .filter_map(|e| e.pause_id)
            .collect();
        let missing = acknowledged
            .iter()
            .filter(|id| !notified.contains(id))
            .count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} pauses were never notified"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    all_present_once(&client, &acknowledged).await;
    b.terminate().await;
}

/// A sequencer that dies in the middle of its batch (another server's, holding the
/// sequencing lock, having put queued events on the chain in its transaction) leaves
/// nothing behind: PostgreSQL rolls its batch back and frees the lock when its connection
/// ends, and the server's own sequencer puts every event on the chain once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequencer_killed_mid_batch_has_its_batch_taken_over() {
    use sqlx::Connection;
    let Some(database) = fresh_postgres().await else {
        return;
    };
    let (a, client, db) = one_server(&database).await;

    // The other server's sequencer, mid-batch.
    let mut dying = sqlx::PgConnection::connect(&database).await.unwrap();
    sqlx::query("BEGIN").execute(&mut dying).await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(pausepoint_server::store::AUDIT_SEQUENCER_LOCK)
        .execute(&mut dying)
        .await
        .unwrap();
    let dying_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut dying)
        .await
        .unwrap();

    let mut created = Vec::new();
    for _ in 0..20 {
        let response = client.create(sms_pause(None)).await;
        created.push(response.pause(StatusCode::CREATED).pause_id);
    }
    // Committed and acknowledged, queued, not on the chain: the lock is held.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let queued: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_queue WHERE event = 'pause.created'")
                .fetch_one(&db)
                .await
                .unwrap();
        if queued == 20 {
            break;
        }
        assert!(Instant::now() < deadline, "{queued} of 20 creates queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The dying batch puts them on the chain, wrongly hashed, and removes them from the
    // queue; then its server dies before the commit.
    sqlx::query(
        "INSERT INTO audit_events (project_id, seq, event_id, event, pause_id, actor, \
         occurred_at, data, prev_hash, hash) \
         SELECT project_id, 1000 + id, event_id, event, pause_id, actor, occurred_at, data, \
         'forged', 'forged' FROM audit_queue",
    )
    .execute(&mut dying)
    .await
    .unwrap();
    sqlx::query("DELETE FROM audit_queue")
        .execute(&mut dying)
        .await
        .unwrap();
    let on_chain: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE event = 'pause.created'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        on_chain, 0,
        "nothing is on the chain while the batch is open"
    );
    // An operator sees the lag on /metrics.
    let deadline = Instant::now() + Duration::from_secs(20);
    while audit_backlog(&a.base).await < 20.0 {
        assert!(
            Instant::now() < deadline,
            "/metrics never showed the queued events"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(dying_pid)
        .execute(&db)
        .await
        .unwrap();

    // Every event once, in order, and the chain verifies.
    all_present_once(&client, &created).await;
    let events = all_events(&client).await;
    let created_events = events
        .iter()
        .filter(|e| e.event == AuditEventKind::PauseCreated)
        .count();
    assert_eq!(created_events, 20, "{events:?}");
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<i64> = (1..=events.len() as i64).collect();
    assert_eq!(seqs, expected, "one line, no gaps");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_queue")
            .fetch_one(&db)
            .await
            .unwrap();
        if queued == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{queued} events left queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while audit_backlog(&a.base).await > 0.0 {
        assert!(Instant::now() < deadline, "/metrics still shows a backlog");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    a.terminate().await;
}

/// Each batch a sequencer commits is announced to the other servers (their readers waiting
/// for the chain wake at once instead of at their next look), and what it announces is on
/// the chain by the time it is heard.
#[tokio::test]
async fn a_sequenced_batch_is_announced_to_the_other_servers() {
    let Some(database) = fresh_postgres().await else {
        return;
    };
    let (a, client, db) = one_server(&database).await;
    // Listening as another server does.
    let mut other = sqlx::postgres::PgListener::connect(&database)
        .await
        .unwrap();
    other.listen("pausepoint_sequenced").await.unwrap();

    let pause = client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let heard = tokio::time::timeout_at(deadline.into(), other.recv())
            .await
            .expect("no batch was announced")
            .unwrap();
        assert!(
            uuid::Uuid::parse_str(heard.payload()).is_ok(),
            "the notice names the server whose sequencer sent it: {}",
            heard.payload()
        );
        let on_chain: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_events WHERE pause_id = $1 AND event = 'pause.created'",
        )
        .bind(pause.pause_id.to_string())
        .fetch_one(&db)
        .await
        .unwrap();
        // The first notice may be of a batch before the create (the server's own start).
        if on_chain == 1 {
            break;
        }
    }
    a.terminate().await;
}

/// During a rolling deploy a server of the version before queues events as serde_json
/// writes their `data`, which is not always the canonical form their hash covers (here
/// `1e21`, which RFC 8785 spells `1e+21`). The sequencer puts such text in canonical form
/// before it hashes and stores it, so the chain still verifies.
#[tokio::test]
async fn events_queued_by_the_version_before_are_hashed_in_canonical_form() {
    let Some(database) = fresh_postgres().await else {
        return;
    };
    let (a, client, db) = one_server(&database).await;
    let pause = client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let before = all_events(&client).await;
    let project_id: String = sqlx::query_scalar(
        "SELECT project_id FROM audit_events WHERE pause_id = $1 AND event = 'pause.created'",
    )
    .bind(pause.pause_id.to_string())
    .fetch_one(&db)
    .await
    .unwrap();

    // As the version before queues an event: no `data_canonical` column.
    let event_id = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO audit_queue (project_id, event_id, event, pause_id, actor, occurred_at, data) \
         VALUES ($1, $2, 'pause.viewed', $3, 'recipient:+1312***28', $4, $5)",
    )
    .bind(&project_id)
    .bind(event_id.to_string())
    .bind(pause.pause_id.to_string())
    .bind(jiff::Timestamp::now().as_millisecond())
    .bind(r#"{"b":"caf\u00e9","a":1e21,"c":1.50}"#)
    .execute(&db)
    .await
    .unwrap();

    let after = all_events(&client).await;
    let old = after
        .iter()
        .find(|e| e.event_id == event_id)
        .unwrap_or_else(|| panic!("the queued event was never sequenced: {after:?}"));
    assert!(old.seq > before.len() as i64, "{after:?}");
    assert_eq!(old.data, json!({"a": 1e21, "b": "café", "c": 1.5}));
    let stored: String = sqlx::query_scalar("SELECT data FROM audit_events WHERE event_id = $1")
        .bind(event_id.to_string())
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(stored, r#"{"a":1e+21,"b":"café","c":1.5}"#);
    let report = client.get_path("/v1/audit/verify?full=true").await;
    assert_eq!(report.body["ok"], true, "{}", report.body);
    a.terminate().await;
}

/// A trigger that fails every insert of a pause as PostgreSQL fails a deadlock's victim
/// (`40P01`), the first `times` times: a sequence counts the tries, since it keeps its
/// count through the rollbacks.
async fn lose_deadlocks(db: &sqlx::PgPool, times: i64) {
    for sql in [
        "CREATE SEQUENCE IF NOT EXISTS test_tries".to_owned(),
        "ALTER SEQUENCE test_tries RESTART".to_owned(),
        format!(
            "CREATE OR REPLACE FUNCTION test_lose_a_deadlock() RETURNS trigger \
             LANGUAGE plpgsql AS $$ BEGIN \
                 IF nextval('test_tries') <= {times} THEN \
                     RAISE EXCEPTION 'deadlock detected (test)' USING ERRCODE = '40P01'; \
                 END IF; \
                 RETURN NEW; \
             END $$"
        ),
        "CREATE OR REPLACE TRIGGER test_lose_a_deadlock BEFORE INSERT ON pauses \
         FOR EACH ROW EXECUTE FUNCTION test_lose_a_deadlock()"
            .to_owned(),
    ] {
        sqlx::query(&sql).execute(db).await.unwrap();
    }
}

async fn tries(db: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT last_value FROM test_tries")
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_group_chosen_as_a_deadlock_victim_is_run_again() {
    let Some(database) = fresh_postgres().await else {
        return;
    };
    let (a, client, db) = one_server(&database).await;

    // Twice a deadlock's victim, then through: the agent sees one create, stored once.
    lose_deadlocks(&db, 2).await;
    let pause = client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    assert_eq!(tries(&db).await, 3, "the create was not run again");
    assert_eq!(client.get(pause.pause_id).await.status, StatusCode::OK);
    all_present_once(&client, &[pause.pause_id]).await;

    // A deadlock that keeps choosing it: the create fails after a bounded number of
    // tries, saying so (503, try again in a second: it is a failure that passes), and
    // leaves nothing behind.
    lose_deadlocks(&db, 1_000).await;
    let refused = client.create(sms_pause(None)).await;
    assert_eq!(
        (refused.status, &refused.body["error"]["code"]),
        (StatusCode::SERVICE_UNAVAILABLE, &json!("busy")),
        "{}",
        refused.body
    );
    assert_eq!(refused.headers["retry-after"], "1");
    let tried = tries(&db).await;
    assert!((2..=5).contains(&tried), "tried {tried} times");
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pauses")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(stored, 1);

    sqlx::query("DROP TRIGGER test_lose_a_deadlock ON pauses")
        .execute(&db)
        .await
        .unwrap();
    let after = client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    all_present_once(&client, &[pause.pause_id, after.pause_id]).await;
    a.terminate().await;
}

/// The server's `pausepoint_backlog{queue="audit_queue"}` gauge: events committed and
/// not yet on their chains.
async fn audit_backlog(base: &str) -> f64 {
    metric(base, r#"pausepoint_backlog{queue="audit_queue"}"#)
        .await
        .unwrap_or(0.0)
}

#[tokio::test]
async fn pp_admin_migrate_and_keys_work_on_postgres() {
    let Some(database) = fresh_postgres().await else {
        return;
    };
    let (code, out, err) = pausepoint_tests::run_pp(&["admin", "migrate", "--db", &database]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("The database postgres://"), "{out}");
    let (code, again, _) = pausepoint_tests::run_pp(&["admin", "migrate", "--db", &database]).await;
    assert_eq!((code, again), (0, out), "migrating twice is harmless");
    let key = admin_create_key(&database, "ops", "default").await;
    let (code, listed, _) =
        pausepoint_tests::run_pp(&["admin", "keys", "list", "--db", &database]).await;
    assert_eq!(code, 0);
    assert!(listed.contains("ops") && listed.contains(&key[..12]));
    // The audit log refuses changes on PostgreSQL too.
    sqlx::any::install_default_drivers();
    let db = sqlx::AnyPool::connect(&database).await.unwrap();
    let refused = sqlx::query("UPDATE audit_events SET actor = 'nobody'")
        .execute(&db)
        .await;
    assert!(refused.unwrap_err().to_string().contains("append-only"));
    let refused = sqlx::query("DELETE FROM audit_events").execute(&db).await;
    assert!(refused.unwrap_err().to_string().contains("append-only"));
    let refused = sqlx::query("TRUNCATE audit_events").execute(&db).await;
    assert!(refused.unwrap_err().to_string().contains("append-only"));
}

/// A server of the version before, restarting in the middle of a rolling deploy, starts
/// on a database a later version migrated, beside the servers of that version.
#[tokio::test]
async fn a_server_starts_on_a_database_a_later_version_migrated_on_postgres() {
    let Some(database) = fresh_postgres().await else {
        return;
    };
    let key = admin_create_key(&database, "agents", "default").await;
    pausepoint_tests::apply_a_later_migration(&database).await;
    let (code, out, err) = pausepoint_tests::run_pp(&["admin", "migrate", "--db", &database]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("is ahead of this version") && out.contains("9999"),
        "{out}"
    );
    let server = ServerProcess::start_with(&database, 0, FLAGS).await;
    Client::new(&server.base, &key)
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let log = server.log.lock().unwrap().clone();
    assert!(
        log.contains("migrations this version does not know"),
        "{log}"
    );
}

#[tokio::test]
async fn votes_through_two_servers_are_all_counted_and_decide_once() {
    let Some(database) = fresh_postgres().await else {
        return;
    };
    let key = admin_create_key(&database, "agents", "default").await;
    let a = ServerProcess::start_with(&database, 0, FLAGS).await;
    let b = ServerProcess::start_with(&database, 0, FLAGS).await;
    let on_a = Client::new(&a.base, &key);
    for round in 0..3 {
        let recipients: Vec<String> = (0..6)
            .map(|i| format!("lead{i}.r{round}@example.com"))
            .collect();
        let pause = on_a
            .create(json!({
                "recipients": recipients.iter().map(|r| json!({"recipient": r})).collect::<Vec<_>>(),
                "message": format!("Release {round}?"),
                "options": ["Approve", "Reject"],
                "quorum": {"option": "Approve", "count": 3},
            }))
            .await
            .pause(StatusCode::CREATED);
        // No mail provider: each server prints the links it delivers. Gather every
        // approver's token from either server's console.
        let started = Instant::now();
        let tokens: Vec<String> = loop {
            let printed = format!("{}\n{}", a.printed(), b.printed());
            let found: Vec<Option<String>> = recipients
                .iter()
                .map(|r| {
                    let at = printed.find(&format!("email to {r},"))?;
                    let rest = &printed[at..];
                    let link = rest[rest.find("Answer at ")? + 10..].lines().next()?;
                    Some(link.rsplit('/').next()?.trim().to_owned())
                })
                .collect();
            if found.iter().all(Option::is_some) {
                break found.into_iter().flatten().collect();
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "links within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // Every approver approves at once, half through each server.
        let http = reqwest::Client::new();
        let taps = tokens.iter().enumerate().map(|(i, token)| {
            let base = if i % 2 == 0 { &a.base } else { &b.base };
            let request = http
                .post(format!("{base}/r/{token}"))
                .form(&[("choice", "Approve")]);
            async move { request.send().await.unwrap().status() }
        });
        let statuses = futures_util::future::join_all(taps).await;
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
            "{statuses:?}"
        );
        let recorded = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        let decided = on_a.get(pause.pause_id).await.pause(StatusCode::OK);
        assert_eq!(decided.status, PauseStatus::Responded);
        let votes = decided
            .approvers
            .iter()
            .filter(|a| a.vote.is_some())
            .count();
        assert_eq!((votes, recorded), (3, 3), "{statuses:?}");
        let events: Vec<AuditEvent> = all_events(&on_a)
            .await
            .into_iter()
            .filter(|e| e.pause_id == Some(pause.pause_id))
            .collect();
        let count = |kind| events.iter().filter(|e| e.event == kind).count();
        assert_eq!(count(AuditEventKind::PauseVoteRecorded), 3);
        assert_eq!(count(AuditEventKind::PauseResponded), 1);
    }
    a.terminate().await;
    b.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sequencer_vacuums_the_queue_it_empties() {
    let Some(database) = fresh_postgres().await else {
        return;
    };
    let (server, client, db) = one_server(&database).await;
    let vacuums = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'audit_queue'",
        )
        .fetch_one(&db)
        .await
        .unwrap()
    };
    assert_eq!(vacuums().await, 0);
    // More events than a sweep waits for (a thousand), each queued and then sequenced.
    let creates = (0..8).map(|_| {
        let client = Client::new(&server.base, &client.key);
        tokio::spawn(async move {
            for _ in 0..140 {
                let response = client
                    .http
                    .post(format!("{}/v1/pause", client.base))
                    .bearer_auth(&client.key)
                    .json(&sms_pause(None))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::CREATED);
            }
        })
    });
    for create in futures_util::future::join_all(creates).await {
        create.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while vacuums().await == 0 {
        assert!(
            Instant::now() < deadline,
            "the queue was not vacuumed after 1,120 creates"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What it swept was sequenced: every create is on the chain, which verifies.
    let events = all_events(&client).await;
    let created = events
        .iter()
        .filter(|e| e.event == AuditEventKind::PauseCreated)
        .count();
    assert_eq!(created, 1_120);
    let report = client.get_path("/v1/audit/verify?full=true").await;
    assert_eq!(report.body["ok"], true, "{}", report.body);
    server.terminate().await;
}
