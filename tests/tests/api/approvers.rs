//! Several approvers: each with their own link and vote, a quorum with a veto, escalation
//! tiers and reminders, end to end through the real server, its page and real receivers.

use std::time::Duration;

use pausepoint_api::{AuditEventKind, DeliveryStatus, Pause, PauseStatus};
use pausepoint_tests::receivers::{find_link, Answer, FakeTwilio, WebhookReceiver};
use pausepoint_tests::TestServer;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Three finance leads by email; "Approve" needs two of them.
fn two_of_three() -> Value {
    json!({
        "recipients": [
            {"recipient": "dana@example.com"},
            {"recipient": "lee@example.com"},
            {"recipient": "sam@example.com", "channel": "email"}
        ],
        "message": "Wire $84,000 to Meridian Freight?",
        "options": ["Approve", "Reject"],
        "quorum": {"option": "Approve", "count": 2},
        "allow_text_response": true,
        "timeout_seconds": 600
    })
}

struct Tapped {
    status: StatusCode,
    html: String,
}

async fn tap(link: &str, choice: &str, note: Option<&str>) -> Tapped {
    let mut form = vec![("choice", choice)];
    if let Some(note) = note {
        form.push(("note", note));
    }
    let response = reqwest::Client::new()
        .post(link)
        .form(&form)
        .send()
        .await
        .unwrap();
    Tapped {
        status: response.status(),
        html: response.text().await.unwrap(),
    }
}

async fn open(link: &str) -> Tapped {
    let response = reqwest::get(link).await.unwrap();
    Tapped {
        status: response.status(),
        html: response.text().await.unwrap(),
    }
}

fn kinds(events: &[pausepoint_api::AuditEvent]) -> Vec<AuditEventKind> {
    events
        .iter()
        .map(|e| e.event)
        .filter(|e| {
            !matches!(
                e,
                AuditEventKind::PauseNotified
                    | AuditEventKind::PauseViewed
                    | AuditEventKind::WebhookDelivered
            )
        })
        .collect()
}

#[tokio::test]
async fn each_rule_of_several_approvers_is_a_422_naming_its_field() {
    let server = TestServer::start().await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"recipient": "+13128471928", "channel": "sms"}),
            "recipients",
        ),
        (json!({"recipients": []}), "recipients"),
        (
            json!({"recipients": [{"recipient": "Dana@Example.com"}, {"recipient": "dana@example.com"}]}),
            "recipients[1].recipient",
        ),
        (
            json!({"quorum": {"option": "Maybe", "count": 1}}),
            "quorum.option",
        ),
        (
            json!({"quorum": {"option": "Approve", "count": 4}}),
            "quorum.count",
        ),
        (
            json!({"escalation": [
                {"after_seconds": 300, "recipients": [{"recipient": "a@example.com"}]},
                {"after_seconds": 120, "recipients": [{"recipient": "b@example.com"}]}
            ]}),
            "escalation[1].after_seconds",
        ),
        (
            json!({"escalation": [{"after_seconds": 600, "recipients": [{"recipient": "a@example.com"}]}]}),
            "escalation[0].after_seconds",
        ),
        (
            json!({"escalation": [{"after_seconds": 60, "recipients": (0..18).map(|i| json!({"recipient": format!("e{i}@example.com")})).collect::<Vec<_>>()}]}),
            "escalation",
        ),
        (json!({"remind_every_seconds": 30}), "remind_every_seconds"),
    ];
    for (change, field) in cases {
        let mut body = two_of_three();
        for (name, value) in change.as_object().unwrap() {
            body[name] = value.clone();
        }
        let reply = server.client.create(body.clone()).await;
        reply.assert_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some(field),
        );
    }
    // Nothing was created by any of them.
    let list = server.client.get_path("/v1/pause").await;
    assert_eq!(list.body["data"], json!([]));
}

#[tokio::test]
async fn two_of_three_approve_each_through_their_own_link_and_the_webhook_names_every_vote() {
    let mut receiver = WebhookReceiver::start(vec![Answer::Status(200)]).await;
    let server = TestServer::start_with(|c| c.allow_private_network = true).await;
    let mut body = two_of_three();
    body["webhook_url"] = json!(receiver.url);
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    assert_eq!(pause.recipient, "dana@example.com");
    let shown: Vec<(&str, u32)> = pause
        .approvers
        .iter()
        .map(|a| (a.recipient.as_str(), a.tier))
        .collect();
    assert_eq!(
        shown,
        [
            ("dana@example.com", 0),
            ("lee@example.com", 0),
            ("sam@example.com", 0)
        ]
    );
    let quorum = pause.quorum.clone().unwrap();
    assert_eq!((quorum.option.as_str(), quorum.count), ("Approve", 2));

    let links: Vec<String> = (0..3).map(|i| server.approver_link(&pause, i)).collect();
    assert_eq!(
        links.iter().collect::<std::collections::HashSet<_>>().len(),
        3
    );

    // Dana approves: recorded, one of two, still pending.
    let page = open(&links[0]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("0 of 2 approvals"), "{}", page.html);
    let first = tap(&links[0], "Approve", Some("Invoice matches PO 1042")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.html.contains("Your answer was recorded: Approve"));
    assert!(first.html.contains("1 of 2 approvals"), "{}", first.html);
    let after_one = server
        .client
        .get(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(after_one.status, PauseStatus::Pending);
    let vote = after_one.approvers[0].vote.clone().unwrap();
    assert_eq!(vote.choice, "Approve");
    assert_eq!(vote.text.as_deref(), Some("Invoice matches PO 1042"));
    assert!(after_one.approvers[0].viewed_at.is_some());
    assert!(after_one.approvers[1].vote.is_none());

    // A second tap by Dana is refused: one vote each.
    let again = tap(&links[0], "Approve", None).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(
        again.html.contains("You already answered"),
        "{}",
        again.html
    );

    // Lee sees Dana's vote, and approves: that is the quorum.
    let page = open(&links[1]).await;
    assert!(
        page.html.contains("dana@example.com chose"),
        "{}",
        page.html
    );
    let second = tap(&links[1], "Approve", None).await;
    assert_eq!(second.status, StatusCode::OK);
    let decided = server
        .client
        .get(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(decided.status, PauseStatus::Responded);
    assert_eq!(decided.response_choice.as_deref(), Some("Approve"));
    assert!(decided.receipt.is_some());

    // Sam's link shows the outcome and who decided it; a vote now changes nothing.
    let page = open(&links[2]).await;
    assert!(
        page.html.contains("already answered") && page.html.contains("by lee@example.com"),
        "{}",
        page.html
    );
    let late = tap(&links[2], "Reject", None).await;
    assert_eq!(late.status, StatusCode::CONFLICT);
    let still = server
        .client
        .get(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(still.response_choice.as_deref(), Some("Approve"));
    assert!(still.approvers[2].vote.is_none());

    // The webhook's pause carries every vote.
    let event = receiver.next(30).await.json();
    assert_eq!(event["type"], "pause.responded");
    let votes: Vec<&Value> = event["data"]["approvers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["vote"]["choice"])
        .collect();
    assert_eq!(votes, [&json!("Approve"), &json!("Approve"), &Value::Null]);

    // The audit log: every vote with its voter, then the decision naming both votes.
    let events = server
        .client
        .audit(&format!("pause_id={}", pause.pause_id))
        .await;
    assert_eq!(
        kinds(&events),
        [
            AuditEventKind::PauseCreated,
            AuditEventKind::PauseVoteRecorded,
            AuditEventKind::PauseVoteRecorded,
            AuditEventKind::PauseResponded
        ]
    );
    let votes: Vec<&pausepoint_api::AuditEvent> = events
        .iter()
        .filter(|e| e.event == AuditEventKind::PauseVoteRecorded)
        .collect();
    assert_eq!(votes[0].actor, "recipient:dana@example.com");
    assert_eq!(votes[0].data["approvals"], 1);
    assert_eq!(votes[1].actor, "recipient:lee@example.com");
    let responded = events
        .iter()
        .find(|e| e.event == AuditEventKind::PauseResponded)
        .unwrap();
    assert_eq!(responded.actor, "recipient:lee@example.com");
    assert_eq!(responded.data["votes"].as_array().unwrap().len(), 2);
    let verify = server.client.get_path("/v1/audit/verify").await;
    assert_eq!(verify.body["ok"], true);
}

#[tokio::test]
async fn any_other_option_is_a_veto_and_without_a_quorum_the_first_answer_decides() {
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(two_of_three())
        .await
        .pause(StatusCode::CREATED);
    let approve = tap(&server.approver_link(&pause, 0), "Approve", None).await;
    assert_eq!(approve.status, StatusCode::OK);
    let veto = tap(
        &server.approver_link(&pause, 2),
        "Reject",
        Some("Wrong account"),
    )
    .await;
    assert_eq!(veto.status, StatusCode::OK);
    let decided = server
        .client
        .get(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(decided.status, PauseStatus::Responded);
    assert_eq!(decided.response_choice.as_deref(), Some("Reject"));
    assert_eq!(decided.response_text.as_deref(), Some("Wrong account"));

    let mut first_wins = two_of_three();
    first_wins.as_object_mut().unwrap().remove("quorum");
    let pause = server
        .client
        .create(first_wins)
        .await
        .pause(StatusCode::CREATED);
    let tapped = tap(&server.approver_link(&pause, 1), "Approve", None).await;
    assert_eq!(tapped.status, StatusCode::OK);
    let decided = server
        .client
        .get(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(decided.response_choice.as_deref(), Some("Approve"));
    // Those who did not answer are not asked any more.
    for approver in [&decided.approvers[0], &decided.approvers[2]] {
        assert!(approver.vote.is_none());
    }
}

#[tokio::test]
async fn racing_votes_are_all_counted_and_decide_exactly_once() {
    let server = TestServer::start().await;
    for round in 0..5 {
        let body = json!({
            "recipients": (0..6).map(|i| json!({"recipient": format!("lead{i}@example.com")})).collect::<Vec<_>>(),
            "message": format!("Release {round}?"),
            "options": ["Approve", "Reject"],
            "quorum": {"option": "Approve", "count": 3},
        });
        let pause = server.client.create(body).await.pause(StatusCode::CREATED);
        let taps = (0..6u32).map(|i| {
            let link = server.approver_link(&pause, i);
            async move { tap(&link, "Approve", None).await.status }
        });
        let statuses = futures_util::future::join_all(taps).await;
        let recorded = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
            "{statuses:?}"
        );
        let decided = server
            .client
            .get(pause.pause_id)
            .await
            .pause(StatusCode::OK);
        assert_eq!(decided.status, PauseStatus::Responded);
        let votes = decided
            .approvers
            .iter()
            .filter(|a| a.vote.is_some())
            .count();
        // Every vote acknowledged is on the pause, and the decision came at the third.
        assert_eq!(votes, recorded);
        assert_eq!(votes, 3, "{statuses:?}");
        let events = server
            .client
            .audit(&format!("pause_id={}", pause.pause_id))
            .await;
        let count = |kind| events.iter().filter(|e| e.event == kind).count();
        assert_eq!(count(AuditEventKind::PauseVoteRecorded), 3);
        assert_eq!(count(AuditEventKind::PauseResponded), 1);
    }
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(std::time::Instant::now() < deadline, "{what} within 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_escalation_tier_is_asked_when_nobody_answered_and_says_why() {
    let mut fake = FakeTwilio::start(&[]).await;
    let config = fake.config();
    let server = TestServer::start_with(|c| c.twilio = Some(config)).await;
    let body = json!({
        "recipient": "+13125550101", "channel": "sms",
        "message": "Roll back the payments deploy?",
        "options": ["Roll back", "Leave it"],
        "escalation": [{"after_seconds": 1, "recipients": [{"recipient": "+13125550202"}]}],
        "timeout_seconds": 300
    });
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    assert_eq!(pause.approvers.len(), 2);
    assert_eq!(pause.approvers[1].tier, 1);
    assert_eq!(
        pause.approvers[1].notify_at,
        pause.created_at + jiff::SignedDuration::from_secs(1)
    );

    let first = fake.next().await;
    assert_eq!(first["To"], "+13125550101");
    let second = fake.next().await;
    assert_eq!(second["To"], "+13125550202");
    assert!(
        second["Body"].starts_with("No answer from +13125550101 in 1 second"),
        "{}",
        second["Body"]
    );
    // The manager answers through the link in their own message.
    let link = find_link(&second["Body"]).unwrap();
    assert_ne!(link, find_link(&first["Body"]).unwrap());
    assert_eq!(tap(&link, "Roll back", None).await.status, StatusCode::OK);
    let decided = server
        .client
        .get(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(decided.response_choice.as_deref(), Some("Roll back"));
    let events = server
        .client
        .audit(&format!("pause_id={}", pause.pause_id))
        .await;
    let escalated = events
        .iter()
        .find(|e| e.event == AuditEventKind::PauseEscalated)
        .expect("a pause.escalated event");
    assert_eq!(escalated.data["recipient"], "+13125550202");
    assert!(escalated.data["reason"]
        .as_str()
        .unwrap()
        .starts_with("No answer from +13125550101"));
    let responded = events.last().unwrap();
    assert_eq!(responded.event, AuditEventKind::PauseResponded);
    assert_eq!(responded.actor, "recipient:+13125550202");

    // Decided before its tier is due: the tier is never asked.
    let body = json!({
        "recipient": "+13125550101", "channel": "sms",
        "message": "Restart the queue?", "options": ["Yes", "No"],
        "escalation": [{"after_seconds": 2, "recipients": [{"recipient": "+13125550303"}]}],
        "timeout_seconds": 300
    });
    let quick = server.client.create(body).await.pause(StatusCode::CREATED);
    server.respond(quick.pause_id, "Yes").await;
    let skipped = server
        .client
        .get(quick.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(
        skipped.approvers[1].delivery.as_ref().unwrap().status,
        DeliveryStatus::Skipped
    );
}

/// Moves the pause's notices due after now to now, as the clock would in a minute.
async fn bring_forward(server: &TestServer, pause: &Pause, reminder: i64) {
    let pool = server.behind_its_back().await;
    sqlx::query("UPDATE deliveries SET next_attempt_at = $1 WHERE pause_id = $2 AND reminder = $3")
        .bind(jiff::Timestamp::now().as_millisecond())
        .bind(pause.pause_id.to_string())
        .bind(reminder)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

#[tokio::test]
async fn reminders_go_to_those_who_have_not_answered_and_stop_at_the_decision() {
    let mut fake = FakeTwilio::start(&[]).await;
    let config = fake.config();
    let server = TestServer::start_with(|c| c.twilio = Some(config)).await;
    let body = json!({
        "recipients": [{"recipient": "+13125550101"}, {"recipient": "+13125550202"}],
        "message": "Ship 4.2 to all customers?",
        "options": ["Ship", "Hold"],
        "quorum": {"option": "Ship", "count": 2},
        "remind_every_seconds": 60,
        "timeout_seconds": 200
    });
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    assert_eq!(pause.remind_every_seconds, Some(60));
    let mut first = Vec::new();
    for _ in 0..2 {
        first.push(fake.next().await);
    }
    let link_of = |to: &str| {
        let sms = first.iter().find(|s| s["To"] == to).unwrap();
        find_link(&sms["Body"]).unwrap()
    };
    // One approver answers; the first reminder comes due (a minute on): only the other
    // is reminded.
    assert_eq!(
        tap(&link_of("+13125550101"), "Ship", None).await.status,
        StatusCode::OK
    );
    bring_forward(&server, &pause, 1).await;
    let reminder = fake.next().await;
    assert_eq!(reminder["To"], "+13125550202");
    assert!(
        reminder["Body"].starts_with("Reminder: this question is still waiting"),
        "{}",
        reminder["Body"]
    );
    until("the reminder is recorded", async || {
        server
            .client
            .audit(&format!("pause_id={}&event=pause.reminded", pause.pause_id))
            .await
            .len()
            == 1
    })
    .await;
    // Three reminders fit before the 200 s deadline (at 60, 120 and 180 s). The second
    // approver decides; the rest are never sent.
    assert_eq!(
        tap(&link_of("+13125550202"), "Ship", None).await.status,
        StatusCode::OK
    );
    bring_forward(&server, &pause, 2).await;
    bring_forward(&server, &pause, 3).await;
    until("the reminders left are skipped", async || {
        let pool = server.behind_its_back().await;
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries WHERE pause_id = $1 AND status = 'pending'",
        )
        .bind(pause.pause_id.to_string())
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        pending == 0
    })
    .await;
    let events = server
        .client
        .audit(&format!("pause_id={}", pause.pause_id))
        .await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event == AuditEventKind::PauseReminded)
            .count(),
        1
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(500), fake.received.recv())
            .await
            .is_err(),
        "nothing more was sent"
    );
}

#[tokio::test]
async fn a_tier_nobody_can_reach_escalates_at_once() {
    // Twilio refuses the first SMS outright.
    let mut fake = FakeTwilio::start(&[400]).await;
    let config = fake.config();
    let server = TestServer::start_with(|c| c.twilio = Some(config)).await;
    let body = json!({
        "recipient": "+13125550101", "channel": "sms",
        "message": "Roll back the payments deploy?",
        "options": ["Roll back", "Leave it"],
        "escalation": [{"after_seconds": 1800, "recipients": [{"recipient": "+13125550202"}]}],
        "timeout_seconds": 3600
    });
    let refused = server.client.create(body).await.pause(StatusCode::CREATED);
    // Not in 30 minutes: now, saying why.
    let sms = fake.next().await;
    assert_eq!(sms["To"], "+13125550202");
    assert!(
        sms["Body"].starts_with("+13125550101 could not be reached."),
        "{}",
        sms["Body"]
    );
    let first = server
        .client
        .get(refused.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(
        first.approvers[0].delivery.as_ref().unwrap().status,
        DeliveryStatus::Failed
    );

    // Accepted, then reported undelivered by Twilio: the same.
    let body = json!({
        "recipient": "+13125550303", "channel": "sms",
        "message": "Restart the queue?",
        "options": ["Yes", "No"],
        "escalation": [{"after_seconds": 1800, "recipients": [{"recipient": "+13125550404"}]}],
        "timeout_seconds": 3600
    });
    let lost = server.client.create(body).await.pause(StatusCode::CREATED);
    let sms = fake.next().await;
    assert_eq!(sms["To"], "+13125550303");
    server.client.delivered(lost.pause_id).await;
    let (status, _) = fake.report(&sms, "undelivered", Some("30005")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let sms = fake.next().await;
    assert_eq!(sms["To"], "+13125550404");
    // The server records the send a moment after Twilio has it.
    let query = format!("pause_id={}&event=pause.escalated", lost.pause_id);
    until("the escalation is recorded", async || {
        server.client.audit(&query).await.len() == 1
    })
    .await;
    let events = server.client.audit(&query).await;
    assert_eq!(
        events[0].data["reason"],
        "+13125550303 could not be reached."
    );
}
