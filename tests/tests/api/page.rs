//! The response page: what the human sees and taps, through the signed link.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use pausepoint_api::{AuditEventKind, PauseStatus};
use pausepoint_server::ids::PauseId;
use pausepoint_tests::{sms_pause, TestServer};
use reqwest::StatusCode;
use serde_json::json;

/// What a browser gets: status, headers, HTML.
struct Page {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    html: String,
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) Mobile Safari")
        .build()
        .unwrap()
}

async fn open(url: &str) -> Page {
    let response = browser().get(url).send().await.unwrap();
    Page {
        status: response.status(),
        headers: response.headers().clone(),
        html: response.text().await.unwrap(),
    }
}

async fn tap(link: &str, choice: &str, note: Option<&str>) -> Page {
    let mut form = vec![("choice", choice)];
    if let Some(note) = note {
        form.push(("note", note));
    }
    let response = browser().post(link).form(&form).send().await.unwrap();
    Page {
        status: response.status(),
        headers: response.headers().clone(),
        html: response.text().await.unwrap(),
    }
}

fn has_form(html: &str) -> bool {
    html.contains("<form")
}

#[tokio::test]
async fn the_page_shows_the_question_with_a_button_per_option() {
    let server = TestServer::start().await;
    let mut body = sms_pause(Some(4 * 3600));
    body["options"] = json!(["Approve", "Reject", "Ask the CFO"]);
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    let page = open(&server.link(&pause)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("Wire $8,400 to Meridian?"));
    // The first project is called "default" until it is named: nobody is named then.
    assert!(
        !page.html.contains("Decision requested by"),
        "{}",
        page.html
    );
    for option in ["Approve", "Reject", "Ask the CFO"] {
        assert!(
            page.html
                .contains(&format!("name=\"choice\" value=\"{option}\"")),
            "{option}"
        );
    }
    // The time left first, then the deadline (in UTC until a script rewrites it).
    assert!(
        page.html
            .contains("<strong>3 hours 59 minutes left</strong> · answer by <time datetime=\""),
        "{}",
        page.html
    );
    assert!(page.html.contains(" UTC</time>"));
    assert!(page
        .html
        .contains("If nobody answers by then: <strong>Reject</strong>."));
    assert!(!page.html.contains("<textarea"), "no note unless allowed");
    // One inline script, pinned by the policy below; nothing is loaded from anywhere.
    assert_eq!(page.html.matches("<script>").count(), 1);
    assert!(!page.html.contains("src="), "loads nothing");
    assert!(page.html.contains("name=\"viewport\""));

    let header = |name: &str| page.headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert!(header("x-robots-tag").contains("noindex"));
    assert_eq!(header("x-frame-options"), "DENY");
    let csp = header("content-security-policy");
    assert!(
        csp.starts_with("default-src 'none'; style-src 'sha256-")
            && csp.contains("; script-src 'sha256-"),
        "{csp}"
    );
    assert!(csp.contains("form-action 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(header("content-type").starts_with("text/html"));
}

#[tokio::test]
async fn a_note_field_only_when_allowed() {
    let server = TestServer::start().await;
    let mut body = sms_pause(None);
    body["allow_text_response"] = json!(true);
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    let page = open(&server.link(&pause)).await;
    assert!(page.html.contains("<textarea id=\"note\" name=\"note\""));
}

#[tokio::test]
async fn opening_the_link_never_decides_and_the_first_view_is_recorded_once() {
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let link = server.link(&pause);
    for _ in 0..3 {
        // A link scanner or chat unfurler fetching the link, with or without a choice.
        assert_eq!(open(&link).await.status, StatusCode::OK);
        assert_eq!(
            open(&format!("{link}?choice=Approve")).await.status,
            StatusCode::OK
        );
        let _ = browser().head(&link).send().await.unwrap();
    }
    assert_eq!(
        server.client.status(pause.pause_id).await,
        PauseStatus::Pending
    );
    let viewed = server.client.audit("event=pause.viewed").await;
    assert_eq!(viewed.len(), 1);
    assert_eq!(viewed[0].actor, "recipient:+13128471928");
    assert!(viewed[0].data["user_agent"]
        .as_str()
        .unwrap()
        .contains("iPhone"));
}

#[tokio::test]
async fn a_choice_in_the_link_is_preselected_but_needs_the_tap() {
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let page = open(&format!("{}?choice=Reject", server.link(&pause))).await;
    assert!(page
        .html
        .contains("You picked “Reject”. Tap it again to confirm."));
    assert!(
        page.html.contains("value=\"Reject\" class=\"chosen\""),
        "{}",
        page.html
    );
    // An option that does not exist preselects nothing.
    let page = open(&format!("{}?choice=Maybe", server.link(&pause))).await;
    assert!(!page.html.contains("You picked"));
    assert_eq!(
        server.client.status(pause.pause_id).await,
        PauseStatus::Pending
    );
}

#[tokio::test]
async fn a_tap_decides_and_then_every_link_shows_the_decision() {
    let server = TestServer::start().await;
    let mut body = sms_pause(None);
    body["allow_text_response"] = json!(true);
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    let link = server.link(&pause);

    let done = tap(&link, "Reject", Some("Wrong account number")).await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(done.html.contains("Your answer was recorded: Reject"));
    assert!(done.html.contains("Wrong account number"));
    assert!(!has_form(&done.html));

    let polled = server
        .client
        .get(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(polled.status, PauseStatus::Responded);
    assert_eq!(polled.response_choice.as_deref(), Some("Reject"));
    assert_eq!(
        polled.response_text.as_deref(),
        Some("Wrong account number")
    );
    let responded = server.client.audit("event=pause.responded").await;
    assert_eq!(responded[0].actor, "recipient:+13128471928");

    // Reloading (a second POST) and reopening both show the decision, with no form.
    let again = tap(&link, "Approve", None).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.html.contains("already answered") && again.html.contains("Reject"));
    assert!(!has_form(&again.html));
    let reopened = open(&link).await;
    assert_eq!(reopened.status, StatusCode::OK);
    assert!(reopened.html.contains("already answered"));
    assert!(!has_form(&reopened.html));
    assert_eq!(
        server
            .client
            .get(pause.pause_id)
            .await
            .pause(StatusCode::OK)
            .response_choice
            .as_deref(),
        Some("Reject")
    );
}

#[tokio::test]
async fn cancelled_and_timed_out_pauses_say_so_without_a_form() {
    let server = TestServer::start().await;
    let cancelled = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    server
        .client
        .cancel(cancelled.pause_id)
        .await
        .pause(StatusCode::OK);
    let page = open(&server.link(&cancelled)).await;
    assert!(page.html.contains("withdrawn"));
    assert!(!has_form(&page.html));
    assert_eq!(
        tap(&server.link(&cancelled), "Approve", None).await.status,
        StatusCode::CONFLICT
    );

    let timed = server
        .client
        .create(sms_pause(Some(1)))
        .await
        .pause(StatusCode::CREATED);
    server
        .client
        .wait(timed.pause_id, 30)
        .await
        .pause(StatusCode::OK);
    let page = open(&server.link(&timed)).await;
    assert!(page.html.contains("Nobody answered in time"));
    assert!(page
        .html
        .contains("The default was applied: <strong>Reject</strong>"));
    assert!(!has_form(&page.html));
    let late = tap(&server.link(&timed), "Approve", None).await;
    assert_eq!(late.status, StatusCode::CONFLICT);
    assert_eq!(
        server.client.status(timed.pause_id).await,
        PauseStatus::TimedOut
    );
}

#[tokio::test]
async fn a_changed_character_or_a_cut_link_opens_nothing_and_reveals_nothing() {
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let link = server.link(&pause);
    let (base, token) = link.rsplit_once('/').unwrap();
    let mut forged_links: Vec<String> = (0..token.len())
        .map(|i| {
            let mut chars: Vec<char> = token.chars().collect();
            chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
            format!("{base}/{}", chars.into_iter().collect::<String>())
        })
        .collect();
    forged_links.push(format!("{base}/{}", &token[..40]));
    forged_links.push(format!("{base}/{token}x"));
    forged_links.push(format!("{base}/"));
    forged_links.push(format!("{base}/{}", "A".repeat(48)));
    for forged in &forged_links {
        let page = open(forged).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{forged}");
        assert!(
            !page.html.contains("Meridian"),
            "a forged link reveals nothing"
        );
        assert!(!has_form(&page.html));
        let tapped = tap(forged, "Approve", None).await;
        assert!(
            tapped.status == StatusCode::NOT_FOUND
                || tapped.status == StatusCode::METHOD_NOT_ALLOWED,
            "{forged}"
        );
    }
    assert_eq!(
        server.client.status(pause.pause_id).await,
        PauseStatus::Pending
    );
}

#[tokio::test]
async fn one_pauses_link_cannot_answer_another() {
    let server = TestServer::start().await;
    let mine = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let theirs = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let link = server.link(&mine);
    let (base, token) = link.rsplit_once('/').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(token).unwrap();
    bytes[..16].copy_from_slice(theirs.pause_id.as_bytes());
    let swapped = format!("{base}/{}", URL_SAFE_NO_PAD.encode(&bytes));
    assert_eq!(
        tap(&swapped, "Approve", None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server.client.status(theirs.pause_id).await,
        PauseStatus::Pending
    );
    // A link of another server (another key) opens nothing here either.
    let foreign = pausepoint_server::Links::from_key([9; 32])
        .token_for(PauseId::from(mine.pause_id).into(), mine.expires_at);
    assert_eq!(
        open(&format!("{base}/{foreign}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_expired_link_says_so_and_decides_nothing() {
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let token = server.app.links().token(
        PauseId::from(pause.pause_id).into(),
        jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1),
    );
    let link = pausepoint_server::domain::links::link(&server.client.base, &token);
    let page = open(&link).await;
    assert_eq!(page.status, StatusCode::GONE);
    assert!(page.html.contains("expired") && !page.html.contains("Meridian"));
    assert_eq!(tap(&link, "Approve", None).await.status, StatusCode::GONE);
    assert_eq!(
        server.client.status(pause.pause_id).await,
        PauseStatus::Pending
    );
}

#[tokio::test]
async fn ten_racing_taps_make_exactly_one_decision() {
    let server = TestServer::start().await;
    let mut body = sms_pause(None);
    body["options"] = json!(["A", "B", "C", "D", "E"]);
    body["timeout_default"] = json!(null);
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    let link = server.link(&pause);
    let taps = (0..10).map(|i| {
        let link = link.clone();
        tokio::spawn(async move { tap(&link, ["A", "B", "C", "D", "E"][i % 5], None).await })
    });
    let pages: Vec<Page> = futures_util::future::join_all(taps)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners: Vec<&Page> = pages
        .iter()
        .filter(|p| p.status == StatusCode::OK)
        .collect();
    assert_eq!(winners.len(), 1);
    assert_eq!(
        pages
            .iter()
            .filter(|p| p.status == StatusCode::CONFLICT)
            .count(),
        9
    );
    let decided = server
        .client
        .get(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    let choice = decided.response_choice.unwrap();
    assert!(winners[0]
        .html
        .contains(&format!("Your answer was recorded: {choice}")));
    let responded = server.client.audit("event=pause.responded").await;
    assert_eq!(responded.len(), 1);
}

#[tokio::test]
async fn every_user_string_stays_text() {
    let server = TestServer::start().await;
    let mut body = sms_pause(None);
    body["message"] = json!("<script>alert('msg')</script> & \"quoted\"");
    body["options"] = json!(["<b>Yes</b>", "No\"><script>alert(1)</script>"]);
    body["timeout_default"] = json!("<b>Yes</b>");
    body["allow_text_response"] = json!(true);
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    let link = server.link(&pause);
    let page = open(&link).await;
    assert!(!page.html.contains("<script>alert"), "{}", page.html);
    assert!(!page.html.contains("<b>Yes</b>"));
    assert!(
        page.html
            .contains("&lt;script&gt;alert('msg')&lt;/script&gt; &amp; &quot;quoted&quot;"),
        "{}",
        page.html
    );
    assert!(
        page.html
            .contains("value=\"No&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""),
        "{}",
        page.html
    );
    let done = tap(
        &link,
        "No\"><script>alert(1)</script>",
        Some("<img src=x onerror=alert(2)>"),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(!done.html.contains("<img") && !done.html.contains("<script>alert"));
    assert!(done.html.contains("&lt;img src=x onerror=alert(2)&gt;"));
    let decided = server
        .client
        .get(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    assert_eq!(
        decided.response_choice.as_deref(),
        Some("No\"><script>alert(1)</script>")
    );
}

#[tokio::test]
async fn a_forged_form_is_refused_and_the_pause_stays_pending() {
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let link = server.link(&pause);
    let page = tap(&link, "Transfer everything", None).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.html.contains("not one of the options") && has_form(&page.html));
    let page = tap(&link, "Approve", Some("a note nobody asked for")).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    let garbage = browser().post(&link).body("%%%").send().await.unwrap();
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        server.client.status(pause.pause_id).await,
        PauseStatus::Pending
    );
    let events = server
        .client
        .audit(&format!("pause_id={}", pause.pause_id))
        .await;
    assert!(events
        .iter()
        .all(|e| e.event != AuditEventKind::PauseResponded));
}

/// `path` fetched as a phone's browser does, asking for gzip: the encoding, and the
/// answer's bytes on the wire and once decoded.
async fn gzipped(url: &str, key: Option<&str>) -> (Option<String>, usize, String) {
    use std::io::Read;
    let mut request = browser()
        .get(url)
        .header("accept-encoding", "gzip, deflate, br");
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let encoding = response
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_owned());
    let wire = response.bytes().await.unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&wire[..])
        .read_to_string(&mut text)
        .unwrap();
    (encoding, wire.len(), text)
}

#[tokio::test]
async fn the_page_and_the_api_are_gzipped_for_clients_that_take_it() {
    let server = TestServer::start().await;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let link = server.link(&pause);
    let (encoding, wire, html) = gzipped(&link, None).await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    assert!(html.contains("Wire $8,400 to Meridian?"));
    assert!(
        wire * 2 < html.len(),
        "the page shrinks: {wire} bytes sent for {}",
        html.len()
    );
    let list = format!("{}/v1/pause?limit=100", server.client.base);
    let (encoding, _, json) = gzipped(&list, Some(&server.client.key)).await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(list["data"][0]["pause_id"], pause.pause_id.to_string());
    // A client that does not ask gets it plain.
    let plain = browser().get(&link).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn a_named_project_is_shown_and_no_default_is_said_plainly() {
    let server = TestServer::start().await;
    let (key, _) = server.key_for_project("Acme Finance").await;
    let client = server.client.with_key(&key);
    let mut body = sms_pause(None);
    body.as_object_mut().unwrap().remove("timeout_default");
    let pause = client.create(body).await.pause(StatusCode::CREATED);
    let page = open(&server.link(&pause)).await;
    assert!(
        page.html
            .contains("Decision requested by <strong>Acme Finance</strong>"),
        "{}",
        page.html
    );
    assert!(
        page.html
            .contains("If nobody answers by then, the request ends without an answer."),
        "{}",
        page.html
    );
    // Timed out with no default, the page says so too.
    let mut body = sms_pause(Some(1));
    body.as_object_mut().unwrap().remove("timeout_default");
    let pause = client.create(body).await.pause(StatusCode::CREATED);
    let done = client.wait(pause.pause_id, 10).await.pause(StatusCode::OK);
    assert_eq!(done.status, PauseStatus::TimedOut);
    let page = open(&server.link(&pause)).await;
    assert!(page
        .html
        .contains("Decision requested by <strong>Acme Finance</strong>"));
    assert!(
        page.html.contains("Nobody answered in time")
            && page.html.contains("The request ended without an answer."),
        "{}",
        page.html
    );
}
