//! Proof end to end: decision receipts, signed checkpoints (on the chain, listed, pushed
//! to a witness), key rotation, and every tampering an attacker with the database can do,
//! each caught online by the server and offline from an export with a checkpoint kept
//! before the tampering.

use std::time::Duration;

use pausepoint_api::audit::GENESIS_HASH;
use pausepoint_api::proof::{
    sha256_hex, verify_export, Checkpoint, CheckpointPage, Jwks, ReceiptClaims,
};
use pausepoint_api::{AuditEvent, AuditEventKind, Pause, PauseStatus, VerifyReport};
use pausepoint_server::domain::{pauses, proof, webhooks};
use pausepoint_tests::receivers::WebhookReceiver;
use pausepoint_tests::{sms_pause, TestServer};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Executor;

async fn public_key(server: &TestServer) -> Jwks {
    let answer = server.client.get_path("/v1/audit/public-key").await;
    assert_eq!(answer.status, StatusCode::OK);
    serde_json::from_value(answer.body).unwrap()
}

async fn checkpoint_now(server: &TestServer) -> Checkpoint {
    let answer = server
        .client
        .send(reqwest::Method::POST, "/v1/audit/checkpoints", None, &[])
        .await;
    assert!(
        answer.status == StatusCode::CREATED || answer.status == StatusCode::OK,
        "{}",
        answer.body
    );
    serde_json::from_value(answer.body).unwrap()
}

async fn verify_online(server: &TestServer) -> VerifyReport {
    let answer = server.client.get_path("/v1/audit/verify?full=true").await;
    assert_eq!(answer.status, StatusCode::OK);
    serde_json::from_value(answer.body).unwrap()
}

async fn bundle(server: &TestServer) -> Vec<u8> {
    let answer = server
        .client
        .http
        .get(format!(
            "{}/v1/audit/export?bundle=true",
            server.client.base
        ))
        .bearer_auth(&server.client.key)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    answer.bytes().await.unwrap().to_vec()
}

/// Three pauses: one approved, one cancelled, one left pending.
async fn history(server: &TestServer) -> [Pause; 3] {
    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(
            server
                .client
                .create({
                    let mut body = sms_pause(None);
                    body["metadata"] = json!({"vendor": "Meridian", "amount": 8400});
                    body
                })
                .await
                .pause(StatusCode::CREATED),
        );
    }
    for pause in &made {
        server.client.delivered(pause.pause_id).await;
    }
    let approved = server.respond(made[0].pause_id, "Approve").await;
    let cancelled = server
        .client
        .cancel(made[1].pause_id)
        .await
        .pause(StatusCode::OK);
    [approved, cancelled, made.remove(2)]
}

#[tokio::test]
async fn a_decided_pause_carries_a_receipt_any_holder_of_the_key_can_check() {
    let server = TestServer::start().await;
    let [approved, cancelled, pending] = history(&server).await;
    let keys = public_key(&server).await;
    assert_eq!(keys.keys.len(), 1);
    assert_eq!(keys.keys[0].alg, "EdDSA");

    // The answer to the decision itself, and every poll after it, carry the receipt.
    let receipt = approved
        .receipt
        .clone()
        .expect("the respond answer has a receipt");
    let polled = server
        .client
        .get(approved.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(polled.receipt.as_deref(), Some(receipt.as_str()));
    assert!(
        cancelled.receipt.is_some(),
        "the cancel answer has a receipt"
    );
    let pending = server.client.get(pending.pause_id).await;
    assert_eq!(pending.status, StatusCode::OK);
    assert!(pending.body.get("receipt").is_none(), "{}", pending.body);

    let claims = ReceiptClaims::verify(&receipt, &keys).unwrap();
    assert_eq!(claims.pause_id, approved.pause_id);
    assert_eq!(claims.project_id, uuid::Uuid::from(server.project_id));
    assert_eq!(claims.status, PauseStatus::Responded);
    assert_eq!(claims.response_choice.as_deref(), Some("Approve"));
    assert_eq!(claims.decided_by, "recipient:+13128471928");
    assert_eq!(claims.options, ["Approve", "Reject"]);
    assert_eq!(
        claims.message_sha256,
        sha256_hex(approved.message.as_bytes())
    );
    assert_eq!(
        claims.metadata_sha256.as_deref(),
        Some(sha256_hex(br#"{"amount":8400,"vendor":"Meridian"}"#).as_str())
    );
    // It names the decision's place on the chain.
    let events = server
        .client
        .audit(&format!(
            "pause_id={}&event=pause.responded",
            approved.pause_id
        ))
        .await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        (claims.audit_seq, claims.audit_hash.as_str()),
        (events[0].seq, events[0].hash.as_str())
    );

    // A payment service checking "was exactly this message approved?" is told no for
    // another message, another choice or other metadata.
    assert_ne!(
        claims.message_sha256,
        sha256_hex(b"Wire $84,000 to Meridian?")
    );
    let forged = |change: &dyn Fn(&mut serde_json::Value)| {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine;
        let parts: Vec<&str> = receipt.split('.').collect();
        let mut payload: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        change(&mut payload);
        let payload = URL_SAFE_NO_PAD.encode(serde_jcs::to_vec(&payload).unwrap());
        format!("{}.{payload}.{}", parts[0], parts[2])
    };
    for changed in [
        forged(&|p| p["response_choice"] = json!("Reject")),
        forged(&|p| p["message_sha256"] = json!(sha256_hex(b"Wire $84,000 to Meridian?"))),
        forged(&|p| p["metadata_sha256"] = json!(sha256_hex(b"{}"))),
    ] {
        assert!(ReceiptClaims::verify(&changed, &keys).is_err());
    }
    // Another server's key does not verify it.
    let other = TestServer::start().await;
    assert!(ReceiptClaims::verify(&receipt, &public_key(&other).await).is_err());
}

#[tokio::test]
async fn checkpoints_are_signed_listed_and_pushed_to_the_witness() {
    let mut witness = WebhookReceiver::start(Vec::new()).await;
    let url = url::Url::parse(&witness.url).unwrap();
    let server = TestServer::start_with(|c| {
        c.allow_private_network = true;
        c.checkpoint_url = Some(url);
        c.checkpoint_every = Duration::from_millis(200);
    })
    .await;
    history(&server).await;
    let keys = public_key(&server).await;
    let secret = webhooks::signing_secrets(server.app.store(), server.project_id, pauses::now())
        .await
        .unwrap()
        .remove(0);

    // The witness gets each checkpoint, signed like a webhook; it verifies there with
    // the public key alone.
    let hook = witness.next(10).await;
    assert_eq!(hook.json()["type"], "audit.checkpoint");
    pausepoint_api::webhooks::verify(
        &secret,
        hook.header("webhook-id"),
        hook.header("webhook-timestamp"),
        hook.header("webhook-signature"),
        hook.body.as_bytes(),
        jiff::Timestamp::now().as_second(),
    )
    .unwrap();
    let pushed = Checkpoint::from_json(&hook.json()).unwrap();
    pushed.verify(&keys).unwrap();
    assert_eq!(pushed.project_id, uuid::Uuid::from(server.project_id));

    // A quiet log gets no more checkpoints: the last event is the checkpoint itself.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let page: CheckpointPage =
            serde_json::from_value(server.client.get_path("/v1/audit/checkpoints").await.body)
                .unwrap();
        let head = server.client.audit("").await.last().unwrap().clone();
        if head.event == AuditEventKind::AuditCheckpoint {
            break page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no checkpoint of the head"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(listed.data.iter().any(|c| c == &pushed));
    for checkpoint in &listed.data {
        checkpoint.verify(&keys).unwrap();
    }
    // An idle log is not checkpointed again: after three more rounds of the checkpointer,
    // no checkpoint names a checkpoint (a chain whose head is one is left alone).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let events = server.client.audit("").await;
    for event in events
        .iter()
        .filter(|e| e.event == AuditEventKind::AuditCheckpoint)
    {
        let named = Checkpoint::from_json(&event.data).unwrap().seq;
        let named = events.iter().find(|e| e.seq == named).unwrap();
        assert_ne!(
            named.event,
            AuditEventKind::AuditCheckpoint,
            "a checkpoint of a checkpoint: {events:?}"
        );
    }
    let report = verify_online(&server).await;
    assert!(report.ok, "{report:?}");
    assert!(report.checkpoints_checked >= 1);
    assert_eq!(report.pauses_checked, Some(3));
}

#[tokio::test]
async fn after_a_key_rotation_old_checkpoints_and_receipts_still_verify() {
    let server = TestServer::start().await;
    let [approved, _, pending] = history(&server).await;
    let old_receipt = approved.receipt.clone().unwrap();
    let old_checkpoint = checkpoint_now(&server).await;
    let old_key = public_key(&server).await.keys[0].kid.clone();

    let new_key = proof::rotate(server.app.store(), pauses::now())
        .await
        .unwrap();
    assert_ne!(new_key.kid, old_key);
    // The server takes the new key up with its next checkpoint.
    let newer = server.respond(pending.pause_id, "Reject").await;
    let new_checkpoint = checkpoint_now(&server).await;
    assert_eq!(new_checkpoint.key_id, new_key.kid);
    let keys = public_key(&server).await;
    assert_eq!(keys.keys[0].kid, new_key.kid, "the signing key comes first");
    assert!(keys.keys[1].retired_at.is_some());

    old_checkpoint.verify(&keys).unwrap();
    new_checkpoint.verify(&keys).unwrap();
    ReceiptClaims::verify(&old_receipt, &keys).unwrap();
    let polled = server
        .client
        .get(newer.pause_id)
        .await
        .pause(StatusCode::OK);
    ReceiptClaims::verify(polled.receipt.as_deref().unwrap(), &keys).unwrap();
    let report = verify_online(&server).await;
    assert!(report.ok, "{report:?}");
    assert!(report.checkpoints_checked >= 2);
    let offline = verify_export(
        bundle(&server).await.as_slice(),
        Some(&keys),
        vec![old_checkpoint, new_checkpoint],
    )
    .unwrap();
    assert!(offline.ok, "{offline:?}");
}

// ---------------------------------------------------------------------------------------
// Tampering, as an attacker with write access to the database would do it.

/// A SQL string literal.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The events re-numbered and re-hashed from `from` (an index) on, as the documented
/// algorithm lets anyone do.
fn rehash(events: &mut [AuditEvent], from: usize) {
    let mut prev = if from == 0 {
        GENESIS_HASH.to_owned()
    } else {
        events[from - 1].hash.clone()
    };
    for (i, event) in events.iter_mut().enumerate().skip(from) {
        event.seq = i as i64 + 1;
        event.prev_hash = prev.clone();
        event.hash = event.chain_hash(&prev);
        prev = event.hash.clone();
    }
}

/// Replaces the project's whole log with `events` and moves its head to their end.
async fn rewrite(server: &TestServer, events: &[AuditEvent]) {
    let db = server.behind_its_back().await;
    let project = server.project_id.to_string();
    let mut sql = format!(
        "{} {} DELETE FROM audit_events WHERE project_id = {};",
        server.drop_trigger("audit_events_refuse_delete"),
        server.drop_trigger("audit_events_refuse_update"),
        quoted(&project)
    );
    for e in events {
        sql.push_str(&format!(
            " INSERT INTO audit_events (project_id, seq, event_id, event, pause_id, actor, occurred_at, data, prev_hash, hash) \
              VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {});",
            quoted(&project),
            e.seq,
            quoted(&e.event_id.to_string()),
            quoted(e.event.as_str()),
            e.pause_id.map_or("NULL".into(), |id| quoted(&id.to_string())),
            quoted(&e.actor),
            e.occurred_at.as_millisecond(),
            quoted(&e.data.to_string()),
            quoted(&e.prev_hash),
            quoted(&e.hash),
        ));
    }
    let (seq, head) = events
        .last()
        .map_or((0, GENESIS_HASH.to_owned()), |e| (e.seq, e.hash.clone()));
    sql.push_str(&format!(
        " UPDATE projects SET audit_seq = {seq}, audit_head = {} WHERE id = {};",
        quoted(&head),
        quoted(&project)
    ));
    db.execute(sql.as_str()).await.unwrap();
}

/// What an attacker does to the database.
enum Tampering {
    /// Rewrites the log (then moves the head to its end).
    Log(fn(&mut Vec<AuditEvent>, &[Pause; 3])),
    /// Edits the database directly.
    Sql(fn(&[Pause; 3]) -> String),
}

struct Scenario {
    name: &'static str,
    tampering: Tampering,
    /// Only evidence kept outside the database can show it (a cut tail leaves a whole,
    /// shorter chain); everything else the export shows on its own.
    needs_kept: bool,
}

fn position(events: &[AuditEvent], kind: AuditEventKind) -> usize {
    events.iter().position(|e| e.event == kind).unwrap()
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "the last 3 events cut, the head set back to match",
            needs_kept: true,
            tampering: Tampering::Log(|events, _| {
                events.truncate(events.len() - 3);
            }),
        },
        Scenario {
            name: "pause.cancelled turned into pause.responded/Approve, everything after re-hashed",
            needs_kept: false,
            tampering: Tampering::Log(|events, _| {
                let i = position(events, AuditEventKind::PauseCancelled);
                events[i].event = AuditEventKind::PauseResponded;
                events[i].data["status"] = json!("responded");
                events[i].data["response_choice"] = json!("Approve");
                rehash(events, i);
            }),
        },
        Scenario {
            name: "only the pauses row edited (cancelled shown as approved)",
            needs_kept: false,
            tampering: Tampering::Sql(|pauses| {
                format!(
                    "UPDATE pauses SET status = 'responded', response_choice = 'Approve' WHERE id = {};",
                    quoted(&pauses[1].pause_id.to_string())
                )
            }),
        },
        Scenario {
            name: "a field edited",
            needs_kept: false,
            tampering: Tampering::Log(|events, _| {
                let i = position(events, AuditEventKind::PauseResponded);
                events[i].data["response_choice"] = json!("Reject");
            }),
        },
        Scenario {
            name: "an event deleted",
            needs_kept: false,
            tampering: Tampering::Log(|events, _| {
                events.remove(2);
            }),
        },
        Scenario {
            name: "an event inserted",
            needs_kept: false,
            tampering: Tampering::Log(|events, _| {
                let mut extra = events[2].clone();
                extra.event_id = uuid::Uuid::now_v7();
                events.insert(3, extra);
                for (i, e) in events.iter_mut().enumerate() {
                    e.seq = i as i64 + 1;
                }
            }),
        },
        Scenario {
            name: "two events swapped",
            needs_kept: false,
            tampering: Tampering::Log(|events, _| {
                events.swap(2, 3);
                events[2].seq = 3;
                events[3].seq = 4;
            }),
        },
        Scenario {
            name: "a forged decision appended, hashed and the head moved",
            needs_kept: false,
            tampering: Tampering::Log(|events, pauses| {
                let mut forged = events[position(events, AuditEventKind::PauseResponded)].clone();
                forged.event_id = uuid::Uuid::now_v7();
                forged.pause_id = Some(pauses[2].pause_id);
                forged.occurred_at = jiff::Timestamp::now();
                events.push(forged);
                let last = events.len() - 1;
                rehash(events, last);
            }),
        },
        Scenario {
            name: "the tail cut back behind a checkpoint, re-hashed to look whole",
            needs_kept: true,
            tampering: Tampering::Log(|events, _| {
                let last_checkpoint = events
                    .iter()
                    .rposition(|e| e.event == AuditEventKind::AuditCheckpoint)
                    .unwrap();
                events.truncate(last_checkpoint - 1);
                rehash(events, 0);
            }),
        },
    ]
}

/// Each scenario on a fresh server: the auditor keeps the public key and a checkpoint
/// taken before the tampering; afterwards the server's own verify and the offline verify
/// of a fresh export must each name a problem.
#[tokio::test]
async fn every_tampering_is_caught_online_and_offline() {
    let mut table = Vec::new();
    for scenario in scenarios() {
        let server = TestServer::start().await;
        let pauses = history(&server).await;
        let kept = checkpoint_now(&server).await;
        let keys = public_key(&server).await;
        assert!(verify_online(&server).await.ok);
        let intact = verify_export(
            bundle(&server).await.as_slice(),
            Some(&keys),
            vec![kept.clone()],
        )
        .unwrap();
        assert!(intact.ok, "{}: before tampering {intact:?}", scenario.name);

        match scenario.tampering {
            Tampering::Log(change) => {
                let mut events = server.client.audit("").await;
                change(&mut events, &pauses);
                rewrite(&server, &events).await;
            }
            Tampering::Sql(statement) => {
                let db = server.behind_its_back().await;
                db.execute(statement(&pauses).as_str()).await.unwrap();
            }
        }

        let online = verify_online(&server).await;
        let export = bundle(&server).await;
        let offline = verify_export(export.as_slice(), Some(&keys), vec![kept]).unwrap();
        let alone = verify_export(export.as_slice(), Some(&keys), Vec::new()).unwrap();
        table.push(format!(
            "{:<80} online: {:<5} offline: {:<5} export alone: {:<5} ({})",
            scenario.name,
            !online.ok,
            !offline.ok,
            !alone.ok,
            online.problem.clone().unwrap_or_default()
        ));
        assert!(
            !online.ok,
            "{}: not caught online: {online:?}",
            scenario.name
        );
        assert!(online.first_bad_seq.is_some() && online.problem.is_some());
        assert!(
            !offline.ok,
            "{}: not caught offline: {offline:?}",
            scenario.name
        );
        if !scenario.needs_kept {
            assert!(
                !alone.ok,
                "{}: not caught from the export alone: {alone:?}",
                scenario.name
            );
        }
    }
    eprintln!("{}", table.join("\n"));
}

/// A server never signs over a chain that no longer holds: after an event written since
/// the last checkpoint is edited, asking for a checkpoint is refused with the reason.
#[tokio::test]
async fn no_checkpoint_is_signed_over_a_broken_chain() {
    let server = TestServer::start().await;
    history(&server).await;
    checkpoint_now(&server).await;
    let later = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    // Its delivery written first: the attacker's rewrite below must not race the server's
    // own append (on PostgreSQL the two can deadlock, and the rewrite would drop it).
    server.client.delivered(later.pause_id).await;
    let mut events = server.client.audit("").await;
    let i = events
        .iter()
        .position(|e| e.pause_id == Some(later.pause_id))
        .unwrap();
    events[i].data["message"] = json!("Wire $84,000 to Meridian?");
    rewrite(&server, &events).await;

    let refused = server
        .client
        .send(reqwest::Method::POST, "/v1/audit/checkpoints", None, &[])
        .await;
    refused.assert_error(StatusCode::CONFLICT, "audit_chain_broken", None);
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("event {}", events[i].seq)),
        "{message}"
    );
}

/// The default verify walks only from the newest valid checkpoint, and says so: tampering
/// after it is found there; tampering before it (an event edited without re-hashing, which
/// leaves the checkpoint's own event whole) needs the full walk, which finds it.
#[tokio::test]
async fn verify_walks_from_the_newest_checkpoint_unless_asked_for_all() {
    let server = TestServer::start().await;
    history(&server).await;
    let kept = checkpoint_now(&server).await;
    let later = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    server.client.delivered(later.pause_id).await;

    let quick: VerifyReport =
        serde_json::from_value(server.client.get_path("/v1/audit/verify").await.body).unwrap();
    assert!(quick.ok, "{quick:?}");
    assert_eq!(quick.walked_from_seq, kept.seq);
    let head = server.client.audit("").await.last().unwrap().seq;
    assert_eq!(quick.events_checked, (head - kept.seq) as u64);
    assert_eq!(
        quick.pauses_checked,
        Some(1),
        "only the pause written since"
    );
    let all = verify_online(&server).await;
    assert!(all.ok && all.walked_from_seq == 0 && all.events_checked == head as u64);

    // Edited after the checkpoint: the quick walk finds it.
    let mut events = server.client.audit("").await;
    let after = events
        .iter()
        .position(|e| e.pause_id == Some(later.pause_id))
        .unwrap();
    events[after].data["message"] = json!("Wire $84,000 to Meridian?");
    // And before it, without re-hashing: only the full walk goes there.
    let before = events
        .iter()
        .position(|e| e.event == AuditEventKind::PauseResponded)
        .unwrap();
    assert!(events[before].seq < kept.seq);
    events[before].data["response_text"] = json!("edited");
    rewrite(&server, &events).await;
    let quick: VerifyReport =
        serde_json::from_value(server.client.get_path("/v1/audit/verify").await.body).unwrap();
    assert_eq!(quick.first_bad_seq, Some(events[after].seq), "{quick:?}");
    let all = verify_online(&server).await;
    assert_eq!(all.first_bad_seq, Some(events[before].seq), "{all:?}");
}
