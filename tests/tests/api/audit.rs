//! The audit log: full context for every change, append-only in the database, a hash
//! chain that finds an edited or removed row, and exports in JSONL and CSV.

use pausepoint_api::audit::GENESIS_HASH;
use pausepoint_api::DeliveryStatus;
use pausepoint_api::{AuditEvent, AuditEventKind};
use pausepoint_server::ids::PauseId;
use pausepoint_tests::{is_delivery_event, sms_pause, TestServer};
use reqwest::StatusCode;
use sqlx::{AnyPool, Executor};

async fn a_decided_history(server: &TestServer) -> Vec<uuid::Uuid> {
    let mut ids = Vec::new();
    for i in 0..4 {
        let pause = server
            .client
            .create(sms_pause(None))
            .await
            .pause(StatusCode::CREATED);
        // As a person would: the message arrives, then they answer.
        let delivered = server.client.delivered(pause.pause_id).await;
        assert_eq!(delivered.delivery.unwrap().status, DeliveryStatus::Logged);
        if i % 2 == 0 {
            server
                .client
                .cancel(pause.pause_id)
                .await
                .pause(StatusCode::OK);
        } else {
            server
                .app
                .pauses()
                .respond(
                    server.project_id,
                    PauseId::from(pause.pause_id),
                    "Approve",
                    None,
                )
                .await
                .unwrap();
        }
        ids.push(pause.pause_id);
    }
    ids
}

/// A second connection to the server's database, as someone editing it by hand.
async fn behind_the_servers_back(server: &TestServer) -> AnyPool {
    server.behind_its_back().await
}

/// The statement that removes one of the audit log's guard triggers.
fn drop_trigger(server: &TestServer, name: &str) -> String {
    server.drop_trigger(name)
}

#[tokio::test]
async fn every_change_is_an_event_with_actor_and_full_context() {
    let server = TestServer::start().await;
    let ids = a_decided_history(&server).await;
    let all = server.client.audit("").await;

    for (i, event) in all.iter().enumerate() {
        assert_eq!(event.seq, i as i64 + 1);
        let prev = if i == 0 {
            GENESIS_HASH.to_owned()
        } else {
            all[i - 1].hash.clone()
        };
        assert_eq!(event.prev_hash, prev);
        assert_eq!(event.chain_hash(&prev), event.hash);
    }
    // key.created, then created, notified (on the console) and ended for each pause;
    // besides them, the server's signed checkpoints of the chain (one at its start).
    let (everything, head_hash) = (all.len(), all.last().unwrap().hash.clone());
    let all: Vec<AuditEvent> = all
        .into_iter()
        .filter(|e| e.event != AuditEventKind::AuditCheckpoint)
        .collect();
    assert_eq!(all.len(), 1 + 3 * ids.len());
    assert_eq!(
        all.iter()
            .filter(|e| e.event == AuditEventKind::PauseNotified)
            .count(),
        ids.len()
    );
    let events: Vec<AuditEvent> = all
        .iter()
        .filter(|e| !is_delivery_event(e))
        .cloned()
        .collect();
    assert_eq!(events.len(), 1 + 2 * ids.len());
    assert_eq!(events[0].event, AuditEventKind::KeyCreated);
    for (i, event) in events.iter().enumerate() {
        if i > 0 {
            assert!(event.seq > events[i - 1].seq);
        }
    }
    for event in &events {
        assert!(!event.actor.is_empty());
    }
    let created = &events[1];
    assert_eq!(created.event, AuditEventKind::PauseCreated);
    assert_eq!(created.pause_id, Some(ids[0]));
    assert!(created.actor.starts_with("api_key:"));
    assert_eq!(created.data["message"], "Wire $8,400 to Meridian?");
    assert_eq!(
        created.data["options"],
        serde_json::json!(["Approve", "Reject"])
    );
    assert_eq!(created.data["recipient"], "+13128471928");
    let responded = events
        .iter()
        .find(|e| e.event == AuditEventKind::PauseResponded)
        .unwrap();
    assert_eq!(responded.actor, "recipient:+13128471928");
    assert_eq!(responded.data["response_choice"], "Approve");
    assert_eq!(
        responded.data["options"],
        serde_json::json!(["Approve", "Reject"])
    );

    // Filters and the cursor.
    let mut one = server.client.audit(&format!("pause_id={}", ids[1])).await;
    one.retain(|e| !is_delivery_event(e));
    assert_eq!(
        one.iter().map(|e| e.event).collect::<Vec<_>>(),
        [AuditEventKind::PauseCreated, AuditEventKind::PauseResponded]
    );
    assert_eq!(server.client.audit("event=pause.cancelled").await.len(), 2);
    let since = events[3].occurred_at;
    assert!(server
        .client
        .audit(&format!("since={since}"))
        .await
        .iter()
        .all(|e| e.occurred_at >= since));
    assert!(server
        .client
        .audit("since=2999-01-01T00:00:00Z")
        .await
        .is_empty());
    let page = server.client.get_path("/v1/audit?limit=4").await;
    let cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let next = server
        .client
        .get_path(&format!("/v1/audit?limit=4&cursor={cursor}"))
        .await;
    assert_eq!(next.body["data"][0]["seq"], 5);

    let report = server.client.get_path("/v1/audit/verify?full=true").await;
    assert_eq!(report.status, StatusCode::OK);
    assert_eq!(report.body["ok"], true);
    assert_eq!(report.body["events_checked"], everything);
    assert_eq!(report.body["head_hash"], head_hash);
    assert_eq!(report.body["first_bad_seq"], serde_json::Value::Null);
}

#[tokio::test]
async fn the_database_refuses_to_change_or_remove_an_event() {
    let server = TestServer::start().await;
    a_decided_history(&server).await;
    let db = behind_the_servers_back(&server).await;
    let update = db
        .execute("UPDATE audit_events SET actor = 'nobody' WHERE seq = 2")
        .await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = db.execute("DELETE FROM audit_events WHERE seq = 2").await;
    assert!(delete.unwrap_err().to_string().contains("append-only"));
    let report = server.client.get_path("/v1/audit/verify?full=true").await;
    assert_eq!(report.body["ok"], true);
}

#[tokio::test]
async fn verify_finds_a_row_edited_behind_the_servers_back() {
    let server = TestServer::start().await;
    a_decided_history(&server).await;
    // The second pause's creation, whose options hold "Approve". (Where it lands depends
    // on when the periodic checkpoint's event comes, so it is looked up.)
    let seq = server.client.audit("event=pause.created").await[1].seq;
    let db = behind_the_servers_back(&server).await;
    let edit = format!(
        "{} UPDATE audit_events SET data = replace(data, 'Approve', 'Reject') WHERE seq = {seq};",
        drop_trigger(&server, "audit_events_refuse_update")
    );
    db.execute(edit.as_str()).await.unwrap();
    let report = server.client.get_path("/v1/audit/verify?full=true").await;
    assert_eq!(report.body["ok"], false, "{}", report.body);
    assert_eq!(report.body["first_bad_seq"], seq);
    assert_eq!(report.body["events_checked"], seq - 1);
}

#[tokio::test]
async fn verify_finds_a_row_deleted_behind_the_servers_back() {
    let server = TestServer::start().await;
    a_decided_history(&server).await;
    let db = behind_the_servers_back(&server).await;
    let delete = format!(
        "{} DELETE FROM audit_events WHERE seq = 3;",
        drop_trigger(&server, "audit_events_refuse_delete")
    );
    db.execute(delete.as_str()).await.unwrap();
    let report = server.client.get_path("/v1/audit/verify?full=true").await;
    assert_eq!(report.body["ok"], false);
    assert_eq!(report.body["first_bad_seq"], 3);

    // Cutting off the end is found too: the project's head remembers how far the log went.
    let server = TestServer::start().await;
    a_decided_history(&server).await;
    let db = behind_the_servers_back(&server).await;
    let delete = format!(
        "{} DELETE FROM audit_events WHERE seq >= 8;",
        drop_trigger(&server, "audit_events_refuse_delete")
    );
    db.execute(delete.as_str()).await.unwrap();
    let report = server.client.get_path("/v1/audit/verify?full=true").await;
    assert_eq!(report.body["ok"], false);
    assert_eq!(report.body["first_bad_seq"], 8);
}

#[tokio::test]
async fn exports_hold_every_event_in_jsonl_and_csv() {
    let server = TestServer::start().await;
    a_decided_history(&server).await;
    let events = server.client.audit("").await;

    let http = reqwest::Client::new();
    let export = |format: &'static str| {
        let request = http
            .get(format!(
                "{}/v1/audit/export?format={format}",
                server.client.base
            ))
            .bearer_auth(&server.client.key);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let content_type = response.headers()["content-type"]
                .to_str()
                .unwrap()
                .to_owned();
            (content_type, response.text().await.unwrap())
        }
    };

    let (content_type, jsonl) = export("jsonl").await;
    assert_eq!(content_type, "application/x-ndjson");
    let exported: Vec<AuditEvent> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(exported, events);

    let (content_type, csv) = export("csv").await;
    assert!(content_type.starts_with("text/csv"));
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "seq",
            "event_id",
            "occurred_at",
            "event",
            "pause_id",
            "actor",
            "data",
            "prev_hash",
            "hash"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), events.len());
    for (row, event) in rows.iter().zip(&events) {
        assert_eq!(row[0], event.seq.to_string());
        assert_eq!(row[3], *event.event.as_str());
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&row[6]).unwrap(),
            event.data
        );
        assert_eq!(row[8], event.hash);
    }

    // Filters apply to exports too.
    let filtered = server
        .client
        .get_path("/v1/audit/export?event=pause.created")
        .await;
    assert_eq!(filtered.status, StatusCode::OK);
}

#[tokio::test]
async fn a_large_export_streams_every_event() {
    let server = TestServer::start().await;
    for _ in 0..600 {
        server
            .client
            .create(sms_pause(None))
            .await
            .pause(StatusCode::CREATED);
    }
    let response = reqwest::Client::new()
        .get(format!("{}/v1/audit/export", server.client.base))
        .bearer_auth(&server.client.key)
        .send()
        .await
        .unwrap();
    let body = response.text().await.unwrap();
    let events: Vec<AuditEvent> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as i64).collect::<Vec<_>>(),
        "every event, in order, none twice"
    );
    let created = events
        .iter()
        .filter(|e| e.event == AuditEventKind::PauseCreated)
        .count();
    assert_eq!(created, 600);
}

#[tokio::test]
async fn verify_is_ok_while_events_are_being_written() {
    let server = TestServer::start().await;
    let writer = {
        let client = server.client.clone();
        tokio::spawn(async move {
            let creates = (0..200).map(|_| client.create(sms_pause(None)));
            futures_util::future::join_all(creates).await
        })
    };
    let mut checks = 0;
    while !writer.is_finished() {
        let report = server.client.get_path("/v1/audit/verify").await;
        assert_eq!(
            report.body["ok"], true,
            "a chain still being written is not broken: {}",
            report.body
        );
        checks += 1;
    }
    assert!(writer
        .await
        .unwrap()
        .iter()
        .all(|r| r.status == StatusCode::CREATED));
    assert!(checks > 0);
    let report = server.client.get_path("/v1/audit/verify").await;
    assert_eq!(report.body["ok"], true);
}

/// Found by Schemathesis: an export with nothing in it, asked for gzipped, panicked the
/// connection's task (the gzip layer polls a body again after its end).
#[tokio::test]
async fn an_empty_export_gzipped_answers_and_the_connection_lives_on() {
    let server = pausepoint_tests::TestServer::start().await;
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let response = http
            .get(format!(
                "{}/v1/audit/export?until=2000-01-01T00%3A00%3A00Z",
                server.client.base
            ))
            .bearer_auth(&server.client.key)
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        let body = response.bytes().await.unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&body[..]), &mut text)
            .unwrap();
        assert_eq!(text, "", "nothing before 2000");
    }
}
