//! Delivery end to end: the server sends to a real receiver, the test follows the link it
//! received, taps an answer on the page, and the agent's poll sees it.

use std::time::Duration;

use pausepoint_api::DeliveryStatus;
use pausepoint_api::{AuditEventKind, Pause, PauseStatus};
use pausepoint_server::config::{Secret, SmtpConfig, TwilioConfig};
use pausepoint_tests::receivers::{
    decode_quoted_printable, find_link, FakeTwilio, SlackReceiver, SmtpReceiver,
};
use pausepoint_tests::{sms_pause, TestServer};
use reqwest::StatusCode;
use serde_json::json;
use tokio::sync::mpsc;

const FROM: &str = "+15550001111";

async fn received<T>(receiver: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), receiver.recv())
        .await
        .expect("nothing arrived within 30 s")
        .unwrap()
}

fn twilio(fake: &FakeTwilio) -> TwilioConfig {
    TwilioConfig {
        account_sid: fake.sid.clone(),
        auth_token: Secret::new(fake.token.clone()),
        from: FROM.into(),
        api_url: fake.url.clone(),
        segments_per_second: 1.0,
    }
}

/// Follows a link as the human: opens the page, taps `choice` with `note`.
async fn answer(link: &str, choice: &str, note: Option<&str>) -> String {
    let http = reqwest::Client::new();
    let page = http.get(link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("value=\"{choice}\"")), "{html}");
    let mut form = vec![("choice", choice)];
    if let Some(note) = note {
        form.push(("note", note));
    }
    let done = http.post(link).form(&form).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::OK);
    done.text().await.unwrap()
}

fn kinds(events: &[pausepoint_api::AuditEvent]) -> Vec<AuditEventKind> {
    events.iter().map(|e| e.event).collect()
}

#[tokio::test]
async fn sms_through_twilio_reaches_the_human_who_answers_with_a_note() {
    let mut fake = FakeTwilio::start(&[]).await;
    let config = twilio(&fake);
    let server = TestServer::start_with(|c| c.twilio = Some(config)).await;
    let mut body = sms_pause(None);
    body["allow_text_response"] = json!(true);
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);

    let sms = received(&mut fake.received).await;
    assert_eq!(sms["To"], "+13128471928");
    assert_eq!(sms["From"], FROM);
    assert!(
        sms["Body"].starts_with("Wire $8,400 to Meridian?\n\nReply 1 Approve, 2 Reject (within 23 hours 59 minutes)\nhttp://"),
        "{}",
        sms["Body"]
    );
    let link = find_link(&sms["Body"]).unwrap();
    assert!(
        !server
            .client
            .get(pause.pause_id)
            .await
            .body
            .to_string()
            .contains(&link),
        "the API never shows the link"
    );
    // The server records the provider's acceptance a moment after the provider has the
    // message; the audit order below is the order of those records.
    server.client.delivered(pause.pause_id).await;

    let done = answer(&link, "Reject", Some("Wrong account number")).await;
    assert!(done.contains("Your answer was recorded: Reject"));
    let decided = server
        .client
        .wait(pause.pause_id, 10)
        .await
        .pause(StatusCode::OK);
    assert_eq!(decided.status, PauseStatus::Responded);
    assert_eq!(decided.response_choice.as_deref(), Some("Reject"));
    assert_eq!(
        decided.response_text.as_deref(),
        Some("Wrong account number")
    );
    // The provider answered before the server recorded it: wait for the record.
    let delivery = server
        .client
        .delivered(pause.pause_id)
        .await
        .delivery
        .unwrap();
    assert_eq!(
        (
            delivery.status.as_str(),
            delivery.attempts,
            delivery.last_error
        ),
        ("sent", 1, None)
    );

    let events = server
        .client
        .audit(&format!("pause_id={}", pause.pause_id))
        .await;
    assert_eq!(
        kinds(&events),
        [
            AuditEventKind::PauseCreated,
            AuditEventKind::PauseNotified,
            AuditEventKind::PauseViewed,
            AuditEventKind::PauseResponded
        ]
    );
    assert_eq!(events[1].data["via"], "twilio");
    assert_eq!(events[1].data["reference"], sms["MessageSid"].as_str());
    let export = server.client.get_path("/v1/audit/export").await;
    let token = link.rsplit('/').next().unwrap();
    assert!(
        !export.body.to_string().contains(token),
        "the audit log never holds a link"
    );
}

#[tokio::test]
async fn a_messaging_service_sends_as_messaging_service_sid() {
    let mut fake = FakeTwilio::start(&[]).await;
    let mut config = twilio(&fake);
    config.from = "MG0123456789abcdef0123456789abcdef".into();
    let server = TestServer::start_with(|c| c.twilio = Some(config)).await;
    server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let sms = received(&mut fake.received).await;
    assert_eq!(
        sms["MessagingServiceSid"],
        "MG0123456789abcdef0123456789abcdef"
    );
    assert!(!sms.contains_key("From"));
}

#[tokio::test]
async fn a_long_message_is_cut_but_never_its_link() {
    let mut fake = FakeTwilio::start(&[]).await;
    let config = twilio(&fake);
    let server = TestServer::start_with(|c| c.twilio = Some(config)).await;
    let mut body = sms_pause(None);
    body["message"] = json!("Approve the following. ".repeat(86).trim_end().to_owned());
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    let sms = received(&mut fake.received).await;
    let text = &sms["Body"];
    assert!(text.chars().count() <= 1600);
    let link = find_link(text).unwrap();
    assert!(text.ends_with(&link));
    assert!(text.contains("…\n\nReply 1 Approve, 2 Reject (within "));
    assert!(answer(&link, "Approve", None).await.contains("recorded"));
    assert_eq!(
        server.client.status(pause.pause_id).await,
        PauseStatus::Responded
    );
}

async fn settled(server: &TestServer, pause: &Pause) -> Pause {
    server.client.delivered(pause.pause_id).await
}

#[tokio::test]
async fn a_provider_that_fails_twice_then_accepts_delivers_on_the_third_attempt() {
    let mut fake = FakeTwilio::start(&[503, 503]).await;
    let config = twilio(&fake);
    let server = TestServer::start_with(|c| {
        c.twilio = Some(config);
        c.delivery_retry = vec![Duration::from_millis(50); 3];
    })
    .await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let sms = received(&mut fake.received).await;
    assert_eq!(sms["To"], "+13128471928");
    let delivered = settled(&server, &pause).await;
    let delivery = delivered.delivery.unwrap();
    assert_eq!((delivery.status.as_str(), delivery.attempts), ("sent", 3));
    let events = server
        .client
        .audit(&format!("pause_id={}", pause.pause_id))
        .await;
    assert_eq!(
        kinds(&events),
        [
            AuditEventKind::PauseCreated,
            AuditEventKind::PauseNotificationFailed,
            AuditEventKind::PauseNotificationFailed,
            AuditEventKind::PauseNotified
        ]
    );
    for (attempt, failed) in events[1..3].iter().enumerate() {
        assert_eq!(failed.data["attempt"], attempt + 1);
        let error = failed.data["error"].as_str().unwrap();
        assert!(
            error.contains("503") && error.contains("Service is unavailable"),
            "{error}"
        );
        assert!(failed.data["next_attempt_at"].is_string());
        assert!(!error.contains("/r/"));
    }
}

#[tokio::test]
async fn a_refusal_is_not_retried() {
    let fake = FakeTwilio::start(&[400]).await;
    let config = twilio(&fake);
    let server = TestServer::start_with(|c| {
        c.twilio = Some(config);
        c.delivery_retry = vec![Duration::from_millis(50); 3];
    })
    .await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let delivery = settled(&server, &pause).await.delivery.unwrap();
    assert_eq!((delivery.status.as_str(), delivery.attempts), ("failed", 1));
    assert!(delivery.last_error.unwrap().contains("400"));
    let failed = server.client.audit("event=pause.notification_failed").await;
    assert_eq!(failed.len(), 1);
    assert!(failed[0].data["next_attempt_at"].is_null());
}

#[tokio::test]
async fn wrong_twilio_credentials_fail_with_twilios_reason() {
    let fake = FakeTwilio::start(&[]).await;
    let mut config = twilio(&fake);
    config.auth_token = Secret::new("not-the-token");
    let server = TestServer::start_with(|c| c.twilio = Some(config)).await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let delivery = settled(&server, &pause).await.delivery.unwrap();
    assert_eq!(delivery.status, DeliveryStatus::Failed);
    assert!(delivery
        .last_error
        .unwrap()
        .contains("Authenticate (Twilio error 20003)"));
}

#[tokio::test]
async fn email_over_smtp_has_a_subject_text_html_and_a_button_per_option() {
    let mut smtp = SmtpReceiver::start();
    let config = SmtpConfig {
        url: Secret::new(smtp.url.clone()),
        from: "PausePoint <approvals@pausepoint.test>".into(),
    };
    let server = TestServer::start_with(|c| c.smtp = Some(config)).await;
    let pause = server
        .client
        .create(json!({
            "recipient": "cfo@company.com",
            "channel": "email",
            "message": "The sales agent has drafted a campaign email to 200 leads. Send it?",
            "options": ["Send it", "Edit first", "Cancel"],
            "timeout_hours": 24,
            "timeout_default": "Cancel",
            "allow_text_response": true
        }))
        .await
        .pause(StatusCode::CREATED);

    let raw = received(&mut smtp.received).await;
    // Unfold long header lines (RFC 5322) and undo quoted-printable.
    let mail = decode_quoted_printable(&raw.replace("\r\n ", " "));

    assert!(
        mail.contains("From: PausePoint <approvals@pausepoint.test>"),
        "{mail}"
    );
    assert!(mail.contains("To: cfo@company.com"));
    assert!(mail.contains("Subject: Decision needed: The sales agent has drafted a campaign email to 200 leads. Send it?"));
    assert!(mail.contains("multipart/alternative"));
    assert!(mail.contains("Content-Type: text/plain; charset=utf-8"));
    assert!(mail.contains("Content-Type: text/html; charset=utf-8"));
    for (option, encoded) in [
        ("Send it", "Send+it"),
        ("Edit first", "Edit+first"),
        ("Cancel", "Cancel"),
    ] {
        assert!(
            mail.contains(&format!("?choice={encoded}\"")),
            "an HTML button for {option}"
        );
        assert!(
            mail.contains(&format!("{option}: http://")),
            "a text link for {option}"
        );
    }
    let link = find_link(&mail).unwrap();

    // The "Edit first" button opens the page with it picked; one more tap confirms.
    let page = reqwest::get(format!("{link}?choice=Edit+first"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("You picked “Edit first”"));
    answer(&link, "Edit first", Some("Shorten the subject line")).await;
    let decided = server
        .client
        .wait(pause.pause_id, 10)
        .await
        .pause(StatusCode::OK);
    assert_eq!(decided.response_choice.as_deref(), Some("Edit first"));
    assert_eq!(
        decided.response_text.as_deref(),
        Some("Shorten the subject line")
    );
    let delivered = server.client.delivered(pause.pause_id).await;
    assert_eq!(delivered.delivery.unwrap().status, DeliveryStatus::Sent);
}

#[tokio::test]
async fn an_unreachable_mail_server_is_retried_then_fails() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("smtp://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = SmtpConfig {
        url: Secret::new(url),
        from: "approvals@pausepoint.test".into(),
    };
    let server = TestServer::start_with(|c| {
        c.smtp = Some(config);
        c.delivery_retry = vec![Duration::from_millis(20); 2];
    })
    .await;
    let pause = server
        .client
        .create(json!({"recipient": "cfo@company.com", "channel": "email", "message": "Send?", "options": ["Yes", "No"]}))
        .await
        .pause(StatusCode::CREATED);
    let delivery = settled(&server, &pause).await.delivery.unwrap();
    assert_eq!((delivery.status.as_str(), delivery.attempts), ("failed", 3));
    assert_eq!(
        server
            .client
            .audit("event=pause.notification_failed")
            .await
            .len(),
        3
    );
}

#[tokio::test]
async fn a_mail_server_without_starttls_gets_neither_the_password_nor_the_mail() {
    let mut smtp = SmtpReceiver::without_starttls();
    let config = SmtpConfig {
        url: Secret::new(smtp.url.clone()),
        from: "approvals@pausepoint.test".into(),
    };
    let server = TestServer::start_with(|c| {
        c.smtp = Some(config);
        c.delivery_retry = vec![Duration::from_millis(20); 2];
    })
    .await;
    let pause = server
        .client
        .create(json!({"recipient": "cfo@company.com", "channel": "email", "message": "Send?", "options": ["Yes", "No"]}))
        .await
        .pause(StatusCode::CREATED);
    let delivery = settled(&server, &pause).await.delivery.unwrap();
    assert_eq!(delivery.status, DeliveryStatus::Failed);
    let error = delivery.last_error.unwrap();
    assert!(error.contains("STARTTLS"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
    assert!(
        smtp.auths.try_recv().is_err(),
        "AUTH reached a server without TLS"
    );
    assert!(
        smtp.received.try_recv().is_err(),
        "the mail went out in the clear"
    );
}

#[tokio::test]
async fn plain_smtp_must_be_asked_for_and_only_to_this_machine() {
    let config = |url: &str| SmtpConfig {
        url: Secret::new(url.to_owned()),
        from: "approvals@pausepoint.test".into(),
    };
    let mut refused = pausepoint_server::Config::new("unused.db", "127.0.0.1:0".parse().unwrap());
    refused.smtp = Some(config("smtp://93.184.215.14:25?tls=none"));
    let error = pausepoint_server::channels::Channels::from_config(&refused)
        .err()
        .expect("plain SMTP to another host is refused");
    assert!(error.contains("tls=none"), "{error}");
    let mut loopback = refused.clone();
    loopback.smtp = Some(config("smtp://127.0.0.1:2525?tls=none"));
    assert!(pausepoint_server::channels::Channels::from_config(&loopback).is_ok());
}

#[tokio::test]
async fn slack_gets_block_kit_with_a_url_button_per_option() {
    let mut slack = SlackReceiver::start(&[]).await;
    let server = TestServer::start_with(|c| c.allow_private_network = true).await;
    let pause = server
        .client
        .create(json!({
            "recipient": slack.url,
            "channel": "slack",
            "message": "Delete 14,000 stale user records from the <test> environment?",
            "options": ["Delete", "Keep", "Ask me tomorrow"],
            "timeout_hours": 8
        }))
        .await
        .pause(StatusCode::CREATED);
    let message = received(&mut slack.received).await;
    assert!(message["text"]
        .as_str()
        .unwrap()
        .starts_with("Decision needed: Delete 14,000"));
    let blocks = message["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "section");
    assert_eq!(
        blocks[0]["text"]["text"],
        "Delete 14,000 stale user records from the &lt;test&gt; environment?"
    );
    let buttons = blocks[1]["elements"].as_array().unwrap();
    assert_eq!(blocks[1]["type"], "actions");
    assert_eq!(buttons.len(), 3);
    let labels: Vec<&str> = buttons
        .iter()
        .map(|b| b["text"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Delete", "Keep", "Ask me tomorrow"]);
    let keep = buttons[1]["url"].as_str().unwrap();
    assert!(keep.ends_with("?choice=Keep"));
    let link = keep.trim_end_matches("?choice=Keep");
    answer(link, "Keep", None).await;
    let decided = server
        .client
        .wait(pause.pause_id, 10)
        .await
        .pause(StatusCode::OK);
    assert_eq!(decided.response_choice.as_deref(), Some("Keep"));
    let delivered = server.client.delivered(pause.pause_id).await;
    assert_eq!(delivered.delivery.unwrap().status, DeliveryStatus::Sent);
}

#[tokio::test]
async fn private_network_targets_are_refused_unless_allowed() {
    let slack = SlackReceiver::start(&[]).await;
    let server = TestServer::start().await;
    let slack_pause = |recipient: &str| json!({"recipient": recipient, "channel": "slack", "message": "Go?", "options": ["Yes", "No"]});
    for target in [
        slack.url.as_str(),
        "http://localhost:9/hook",
        "http://169.254.169.254/latest",
        "http://[::1]/x",
        "http://10.0.0.8/hook",
    ] {
        let reply = server.client.create(slack_pause(target)).await;
        reply.assert_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            Some("recipient"),
        );
        assert!(reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--allow-private-network"));
    }
    let mut webhook = sms_pause(None);
    webhook["webhook_url"] = json!("http://127.0.0.1:8081/hooks");
    server.client.create(webhook).await.assert_error(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        Some("webhook_url"),
    );
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_at_send_time() {
    // The machine's own name resolves to loopback here: it passes the create (DNS may
    // change) but every attempt to send checks where it resolves now.
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_owned();
    let resolved: Vec<_> = tokio::net::lookup_host((name.as_str(), 80))
        .await
        .unwrap()
        .collect();
    assert!(
        resolved.iter().all(|a| a.ip().is_loopback()),
        "this test needs the host name {name} to resolve to loopback, as it does on the CI machines: {resolved:?}"
    );
    let mut slack = SlackReceiver::start(&[]).await;
    let server =
        TestServer::start_with(|c| c.delivery_retry = vec![Duration::from_millis(20)]).await;
    let sneaky = slack.url.replace("127.0.0.1", &name);
    let pause = server
        .client
        .create(json!({"recipient": sneaky, "channel": "slack", "message": "Go?", "options": ["Yes", "No"]}))
        .await
        .pause(StatusCode::CREATED);
    let delivery = settled(&server, &pause).await.delivery.unwrap();
    assert_eq!((delivery.status.as_str(), delivery.attempts), ("failed", 2));
    let error = delivery.last_error.unwrap();
    assert!(
        error.contains("loopback or private address") && error.contains("--allow-private-network"),
        "{error}"
    );
    assert!(
        slack.received.try_recv().is_err(),
        "nothing reached the private address"
    );
}

#[tokio::test]
async fn the_slack_receiver_answering_500_is_retried() {
    let mut slack = SlackReceiver::start(&[500]).await;
    let server = TestServer::start_with(|c| {
        c.allow_private_network = true;
        c.delivery_retry = vec![Duration::from_millis(50)];
    })
    .await;
    let pause = server
        .client
        .create(json!({"recipient": slack.url, "channel": "slack", "message": "Go?", "options": ["Yes", "No"]}))
        .await
        .pause(StatusCode::CREATED);
    received(&mut slack.received).await;
    let delivery = settled(&server, &pause).await.delivery.unwrap();
    assert_eq!((delivery.status.as_str(), delivery.attempts), ("sent", 2));
}

#[tokio::test]
async fn a_pause_decided_before_its_delivery_is_not_sent() {
    // Twilio down for the first attempt; the agent cancels before the retry.
    let mut fake = FakeTwilio::start(&[503]).await;
    let config = twilio(&fake);
    let server = TestServer::start_with(|c| {
        c.twilio = Some(config);
        c.delivery_retry = vec![Duration::from_millis(300)];
    })
    .await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    while server
        .client
        .audit("event=pause.notification_failed")
        .await
        .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server
        .client
        .cancel(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    let delivery = settled(&server, &pause).await.delivery.unwrap();
    assert_eq!(delivery.status, DeliveryStatus::Skipped);
    assert!(fake.received.try_recv().is_err(), "nothing was sent");
}

#[tokio::test]
async fn slack_is_sent_at_its_rate_per_webhook_and_nothing_is_lost_or_failed() {
    let mut slack = SlackReceiver::start(&[]).await;
    let server = TestServer::start_with(|c| c.allow_private_network = true).await;
    let mut pauses = Vec::new();
    for n in 0..7 {
        pauses.push(
            server
                .client
                .create(json!({"recipient": slack.url, "channel": "slack", "message": format!("Deploy shard {n}?"), "options": ["Yes", "No"]}))
                .await
                .pause(StatusCode::CREATED),
        );
    }
    let mut arrivals = Vec::new();
    for _ in &pauses {
        received(&mut slack.received).await;
        arrivals.push(std::time::Instant::now());
    }
    // Slack's short burst goes at once; the rest at about one a second.
    let paced = arrivals[6].duration_since(arrivals[0]);
    assert!(paced >= Duration::from_millis(2500), "sent 7 in {paced:?}");
    for pause in &pauses {
        let delivery = settled(&server, pause).await.delivery.unwrap();
        assert_eq!(
            (delivery.status, delivery.attempts),
            (DeliveryStatus::Sent, 1)
        );
    }
    // Waiting for its turn is neither an attempt nor a failure.
    assert_eq!(server.client.audit("event=pause.notified").await.len(), 7);
    assert!(server
        .client
        .audit("event=pause.notification_failed")
        .await
        .is_empty());
    assert!(slack.received.try_recv().is_err(), "each sent once");
}

#[tokio::test]
async fn slacks_retry_after_holds_back_every_message_to_that_webhook() {
    let mut slack = SlackReceiver::start(&[429]).await;
    let server = TestServer::start_with(|c| {
        c.allow_private_network = true;
        c.delivery_retry = vec![Duration::from_millis(50)];
    })
    .await;
    let create = |message: &str| json!({"recipient": slack.url, "channel": "slack", "message": message, "options": ["Yes", "No"]});
    let first = server
        .client
        .create(create("First?"))
        .await
        .pause(StatusCode::CREATED);
    let failed = loop {
        let failed = server.client.audit("event=pause.notification_failed").await;
        if let Some(event) = failed.into_iter().next() {
            break event;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(failed.data["error"]
        .as_str()
        .unwrap()
        .contains("429 Too Many Requests"));
    let asked: jiff::Timestamp = failed.data["next_attempt_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let failed_at = failed.occurred_at;
    assert!(
        asked.duration_since(failed_at) >= jiff::SignedDuration::from_secs(2),
        "Retry-After: 2 is honoured over the 50 ms schedule: {failed_at} then {asked}"
    );
    let second = server
        .client
        .create(create("Second?"))
        .await
        .pause(StatusCode::CREATED);
    received(&mut slack.received).await;
    received(&mut slack.received).await;
    for pause in [&first, &second] {
        settled(&server, pause).await;
    }
    let notified = server.client.audit("event=pause.notified").await;
    assert_eq!(notified.len(), 2);
    for event in notified {
        let at = event.occurred_at;
        assert!(
            at.duration_since(failed_at) >= jiff::SignedDuration::from_millis(1990),
            "nothing went to the webhook before Slack said: {at}"
        );
    }
}
