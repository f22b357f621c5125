//! Answering by SMS reply: the text lists the options by number, a signed reply from the
//! approver's number votes, and what comes back is TwiML saying what happened. A stand-in
//! for Twilio sends the messages and signs its posts exactly as Twilio documents.

use pausepoint_api::{AuditEventKind, DeliveryStatus, PauseStatus};
use pausepoint_tests::receivers::{find_link, FakeTwilio};
use pausepoint_tests::TestServer;
use reqwest::StatusCode;
use serde_json::json;

fn question(to: &str, message: &str) -> serde_json::Value {
    json!({
        "recipient": to, "channel": "sms",
        "message": message,
        "options": ["Approve", "Reject"],
        "timeout_seconds": 3600
    })
}

/// The TwiML's one message.
fn said(twiml: &str) -> &str {
    let start = twiml.find("<Message>").expect(twiml) + "<Message>".len();
    let end = twiml.find("</Message>").expect(twiml);
    &twiml[start..end]
}

#[tokio::test]
async fn a_reply_of_the_options_number_decides_and_is_confirmed() {
    let mut fake = FakeTwilio::start(&[]).await;
    let config = fake.config();
    let server = TestServer::start_with(|c| c.twilio = Some(config)).await;
    let base = server.client.base.clone();
    let pause = server
        .client
        .create(question("+13125550101", "Wire $8,400 to Meridian?"))
        .await
        .pause(StatusCode::CREATED);
    let sms = fake.next().await;
    let body = &sms["Body"];
    assert!(
        body.starts_with(
            "Wire $8,400 to Meridian?\n\nReply 1 Approve, 2 Reject (within 59 minutes"
        ),
        "{body}"
    );
    assert!(
        find_link(body).is_some(),
        "the link stays the fallback: {body}"
    );
    assert_eq!(
        pausepoint_server::channels::pace::sms_segments(body),
        1,
        "one segment: {body}"
    );

    // A stranger's number votes nothing.
    let (status, twiml) = fake.reply(&base, "+13125559999", "1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(said(&twiml).contains("no open question"), "{twiml}");

    // Something that is not an option: the options again.
    let (_, twiml) = fake.reply(&base, "+13125550101", "maybe").await;
    assert_eq!(said(&twiml), "Reply 1 Approve, 2 Reject.");
    assert_eq!(
        server.client.status(pause.pause_id).await,
        PauseStatus::Pending
    );

    // A forged post is refused and records nothing.
    let url = format!("{base}/v1/inbound/twilio");
    let params = [("From", "+13125550101"), ("Body", "1")];
    let (status, _) = fake
        .post_signed(&url, &params, "bm90IGEgc2lnbmF0dXJl")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let signed_for_another_url = fake.sign(&format!("{base}/elsewhere"), &params);
    let (status, _) = fake
        .post_signed(&url, &params, &signed_for_another_url)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = fake
        .post_signed(
            &url,
            &[("From", "+13125550101"), ("Body", "2")],
            &fake.sign(&url, &params),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the body was changed after signing"
    );
    assert_eq!(
        server.client.status(pause.pause_id).await,
        PauseStatus::Pending
    );

    let (status, twiml) = fake.reply(&base, "+1 312 555 0101", "1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(twiml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>"));
    assert_eq!(said(&twiml), "Recorded: Approve.");
    let decided = server
        .client
        .get(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(decided.status, PauseStatus::Responded);
    assert_eq!(decided.response_choice.as_deref(), Some("Approve"));
    let events = server
        .client
        .audit(&format!(
            "pause_id={}&event=pause.responded",
            pause.pause_id
        ))
        .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor, "recipient:+13125550101");

    // Too late: the outcome, not a second decision.
    let (_, twiml) = fake.reply(&base, "+13125550101", "reject").await;
    assert_eq!(said(&twiml), "That question was already answered: Approve.");
}

#[tokio::test]
async fn with_several_questions_open_each_sms_carries_a_reference_to_reply_with() {
    let mut fake = FakeTwilio::start(&[]).await;
    let config = fake.config();
    let server = TestServer::start_with(|c| c.twilio = Some(config)).await;
    let base = server.client.base.clone();
    let first = server
        .client
        .create(question("+13125550101", "Deploy 4.2?"))
        .await
        .pause(StatusCode::CREATED);
    let first_sms = fake.next().await;
    assert!(first_sms["Body"].contains("Reply 1 Approve, 2 Reject"));
    let second = server
        .client
        .create(question("+13125550101", "Rotate the database password?"))
        .await
        .pause(StatusCode::CREATED);
    let second_sms = fake.next().await;
    let reference = pausepoint_server::domain::replies::reference(second.pause_id.into(), 0);
    assert!(
        second_sms["Body"].contains(&format!(
            "Reply {reference} 1 Approve, {reference} 2 Reject"
        )),
        "{}",
        second_sms["Body"]
    );

    // "1" alone is ambiguous now: the reply says how to name one.
    let (_, twiml) = fake.reply(&base, "+13125550101", "1").await;
    let text = said(&twiml);
    assert!(
        text.starts_with("You have 2 open questions.") && text.contains(&reference),
        "{text}"
    );
    assert_eq!(
        server.client.status(first.pause_id).await,
        PauseStatus::Pending
    );
    assert_eq!(
        server.client.status(second.pause_id).await,
        PauseStatus::Pending
    );

    let (_, twiml) = fake
        .reply(
            &base,
            "+13125550101",
            &format!("{} reject", reference.to_lowercase()),
        )
        .await;
    assert_eq!(said(&twiml), "Recorded: Reject.");
    let decided = server
        .client
        .get(second.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(decided.response_choice.as_deref(), Some("Reject"));
    // One question left: a bare answer goes to it.
    let (_, twiml) = fake.reply(&base, "+13125550101", "Approve").await;
    assert_eq!(said(&twiml), "Recorded: Approve.");
    assert_eq!(
        server
            .client
            .get(first.pause_id)
            .await
            .pause(StatusCode::OK)
            .response_choice
            .as_deref(),
        Some("Approve")
    );
}

#[tokio::test]
async fn a_reply_is_one_approvers_vote_toward_a_quorum() {
    let mut fake = FakeTwilio::start(&[]).await;
    let config = fake.config();
    let server = TestServer::start_with(|c| c.twilio = Some(config)).await;
    let base = server.client.base.clone();
    let pause = server
        .client
        .create(json!({
            "recipients": [{"recipient": "+13125550101"}, {"recipient": "+13125550202"}],
            "message": "Ship 4.2?",
            "options": ["Ship", "Hold"],
            "quorum": {"option": "Ship", "count": 2},
            "timeout_seconds": 3600
        }))
        .await
        .pause(StatusCode::CREATED);
    for _ in 0..2 {
        fake.next().await;
    }
    let (_, twiml) = fake.reply(&base, "+13125550101", "1").await;
    assert_eq!(said(&twiml), "Recorded: Ship. 1 of 2 approvals so far.");
    let (_, twiml) = fake.reply(&base, "+13125550101", "1").await;
    assert_eq!(said(&twiml), "You already answered this question.");
    let (_, twiml) = fake.reply(&base, "+13125550202", "ship").await;
    assert_eq!(said(&twiml), "Recorded: Ship.");
    let decided = server
        .client
        .get(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(decided.status, PauseStatus::Responded);
    let events = server
        .client
        .audit(&format!("pause_id={}", pause.pause_id))
        .await;
    let votes: Vec<&str> = events
        .iter()
        .filter(|e| e.event == AuditEventKind::PauseVoteRecorded)
        .map(|e| e.actor.as_str())
        .collect();
    assert_eq!(votes, ["recipient:+13125550101", "recipient:+13125550202"]);
}

#[tokio::test]
async fn without_twilio_configured_the_endpoint_is_not_there() {
    let server = TestServer::start().await;
    let post = |signature: Option<&str>| {
        let mut request = reqwest::Client::new()
            .post(format!("{}/v1/inbound/twilio", server.client.base))
            .form(&[("From", "+13125550101"), ("Body", "1")]);
        if let Some(signature) = signature {
            request = request.header("X-Twilio-Signature", signature);
        }
        request.send()
    };
    // Unsigned is refused first, whatever is configured.
    assert_eq!(post(None).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(
        post(Some("c2lnbmVk")).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn twilios_delivery_reports_become_the_deliverys_status() {
    let mut fake = FakeTwilio::start(&[]).await;
    let config = fake.config();
    let server = TestServer::start_with(|c| c.twilio = Some(config)).await;
    let reached = server
        .client
        .create(question("+13125550101", "Deploy 4.2?"))
        .await
        .pause(StatusCode::CREATED);
    let reached_sms = fake.next().await;
    let lost = server
        .client
        .create(question("+13125550202", "Rotate the keys?"))
        .await
        .pause(StatusCode::CREATED);
    let lost_sms = fake.next().await;
    assert_eq!(
        reached_sms["StatusCallback"],
        format!("{}/v1/inbound/twilio/status", server.client.base)
    );
    // Reports come only for messages the server has recorded as sent.
    server.client.delivered(reached.pause_id).await;
    server.client.delivered(lost.pause_id).await;

    // Steps on the way change nothing; the end does.
    let (status, _) = fake.report(&reached_sms, "sent", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = fake.report(&reached_sms, "delivered", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = fake.report(&lost_sms, "undelivered", Some("30003")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let delivery = |pause: pausepoint_api::Pause| pause.approvers[0].delivery.clone().unwrap();
    let reached_now = server
        .client
        .get(reached.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(
        delivery(reached_now.clone()).status,
        DeliveryStatus::Delivered
    );
    assert_eq!(
        reached_now.delivery.unwrap().status,
        DeliveryStatus::Delivered
    );
    let lost_now = server.client.get(lost.pause_id).await.pause(StatusCode::OK);
    let lost_delivery = delivery(lost_now);
    assert_eq!(lost_delivery.status, DeliveryStatus::Undelivered);
    assert!(
        lost_delivery
            .last_error
            .as_deref()
            .unwrap()
            .contains("30003"),
        "{lost_delivery:?}"
    );
    let events = server
        .client
        .audit(&format!("pause_id={}", reached.pause_id))
        .await;
    assert!(events
        .iter()
        .any(|e| e.event == AuditEventKind::PauseDelivered));
    let events = server
        .client
        .audit(&format!(
            "pause_id={}&event=pause.notification_failed",
            lost.pause_id
        ))
        .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].data["error_code"], "30003");

    // A repeated report changes nothing more; a forged one is refused.
    fake.report(&lost_sms, "undelivered", Some("30003")).await;
    let events = server
        .client
        .audit(&format!(
            "pause_id={}&event=pause.notification_failed",
            lost.pause_id
        ))
        .await;
    assert_eq!(events.len(), 1);
    let (status, _) = fake
        .post_signed(
            &reached_sms["StatusCallback"],
            &[
                ("MessageSid", reached_sms["MessageSid"].as_str()),
                ("MessageStatus", "failed"),
            ],
            "Zm9yZ2Vk",
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let reached_now = server
        .client
        .get(reached.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(delivery(reached_now).status, DeliveryStatus::Delivered);
}
