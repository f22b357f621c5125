//! The console over HTTP, as a browser would drive it: sign-in for a session cookie, CSRF
//! tokens and the Origin check on every POST, one project per session, user strings kept
//! as text, sessions that end, capped failed sign-ins, keys, the live list, the audit
//! page and the charts. The browser suite drives the same pages in Chromium.

use std::time::{Duration, Instant};

use pausepoint_tests::receivers::{Answer, WebhookReceiver};
use pausepoint_tests::{sms_pause, TestServer};
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A browser's view of the console: its cookie and the page's CSRF token.
struct Console {
    http: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

/// The value of the cookie `name` a response sets, with its attributes.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn cookie_value(set_cookie: &str) -> String {
    let pair = set_cookie.split(';').next().unwrap();
    pair.split_once('=').unwrap().1.to_owned()
}

/// The value of the page's first `csrf` field.
fn csrf_in(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..at + page[at..].find('"').unwrap()].to_owned()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Loads the sign-in form and posts `key` from it: the answer.
async fn try_sign_in(http: &reqwest::Client, base: &str, key: &str) -> reqwest::Response {
    try_sign_in_at(http, base, "/console/sign-in", key).await
}

/// Loads the sign-in form at `path` and posts `key` from it, with its hidden fields.
async fn try_sign_in_at(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    key: &str,
) -> reqwest::Response {
    let form = http.get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let nonce = cookie_value(&set_cookie(form.headers(), "pp_console_sign_in").unwrap());
    let page = form.text().await.unwrap();
    assert_eq!(csrf_in(&page), nonce);
    let mut fields = vec![("key", key.to_owned()), ("csrf", nonce.clone())];
    if let Some(at) = page.find("name=\"next\" value=\"") {
        let at = at + 19;
        let next = page[at..at + page[at..].find('"').unwrap()].replace("&amp;", "&");
        fields.push(("next", next));
    }
    http.post(format!("{base}/console/sign-in"))
        .header("origin", base)
        .header("cookie", format!("pp_console_sign_in={nonce}"))
        .form(&fields)
        .send()
        .await
        .unwrap()
}

impl Console {
    async fn sign_in(base: &str, key: &str) -> Console {
        let http = no_redirects();
        let answer = try_sign_in(&http, base, key).await;
        assert_eq!(answer.status(), StatusCode::SEE_OTHER);
        assert_eq!(answer.headers()[LOCATION], "/console/pauses");
        let cookie = cookie_value(&set_cookie(answer.headers(), "pp_console").unwrap());
        let mut console = Console {
            http,
            base: base.to_owned(),
            cookie,
            csrf: String::new(),
        };
        let (status, page) = console.get("/console/pauses").await;
        assert_eq!(status, StatusCode::OK);
        console.csrf = csrf_in(&page);
        console
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let answer = self.open(path).await;
        let status = answer.status();
        (status, answer.text().await.unwrap())
    }

    /// The answer to a GET with the session's cookie, unread.
    async fn open(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header("cookie", format!("pp_console={}", self.cookie))
            .send()
            .await
            .unwrap()
    }

    /// Posts a form as the console's own page does: its Origin, its token.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut fields = vec![("csrf", self.csrf.as_str())];
        fields.extend_from_slice(form);
        self.post_raw(path, &fields, Some(&self.base)).await
    }

    async fn post_raw(
        &self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", format!("pp_console={}", self.cookie))
            .form(form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send().await.unwrap()
    }
}

/// A redirect to the sign-in page (which, after a GET, returns to the page asked for).
fn redirects_to_sign_in(status: StatusCode, headers: &HeaderMap) -> bool {
    let to = headers[LOCATION].to_str().unwrap();
    status == StatusCode::SEE_OTHER
        && (to == "/console/sign-in" || to.starts_with("/console/sign-in?next="))
}

#[tokio::test]
async fn signing_in_exchanges_the_key_for_a_session_cookie() {
    let server = TestServer::start().await;
    let base = &server.client.base;
    let http = no_redirects();

    let signed_out = http
        .get(format!("{base}/console/pauses"))
        .send()
        .await
        .unwrap();
    assert!(redirects_to_sign_in(
        signed_out.status(),
        signed_out.headers()
    ));

    let wrong = try_sign_in(&http, base, "pp_live_notarealkeyatall0000000000000000").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(wrong.headers(), "pp_console").is_none());
    assert!(wrong
        .text()
        .await
        .unwrap()
        .contains("That key is not valid"));

    let answer = try_sign_in(&http, base, &server.client.key).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let cookie = set_cookie(answer.headers(), "pp_console").unwrap();
    for attribute in [
        "Path=/console",
        "Max-Age=43200",
        "HttpOnly",
        "SameSite=Strict",
    ] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(!cookie.contains("Secure"), "served over http here");
    assert!(
        !cookie.contains(&server.client.key),
        "the key is not the cookie"
    );

    let console = Console::sign_in(base, &server.client.key).await;
    let answer = console.open("/console/pauses").await;
    let headers = answer.headers().clone();
    let page = answer.text().await.unwrap();
    assert!(!page.contains(&server.client.key), "the key is on no page");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"));
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-frame-options"], "DENY");
}

#[tokio::test]
async fn signing_in_returns_to_the_console_page_asked_for_and_nowhere_else() {
    let server = TestServer::start().await;
    let base = &server.client.base;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let http = no_redirects();
    let asked = format!("/console/pauses/{}?done=cancelled", pause.pause_id);
    let answer = http.get(format!("{base}{asked}")).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let sign_in = answer.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        sign_in.starts_with("/console/sign-in?next=%2Fconsole%2Fpauses%2F"),
        "{sign_in}"
    );
    let answer = try_sign_in_at(&http, base, &sign_in, &server.client.key).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(answer.headers()[LOCATION], asked.as_str());

    for elsewhere in [
        "https%3A%2F%2Fevil.example%2F",
        "%2F%2Fevil.example%2Fconsole%2F",
        "%2Fv1%2Fpause",
    ] {
        let path = format!("/console/sign-in?next={elsewhere}");
        let answer = try_sign_in_at(&http, base, &path, &server.client.key).await;
        assert_eq!(answer.headers()[LOCATION], "/console/pauses", "{elsewhere}");
    }
}

#[tokio::test]
async fn behind_an_https_public_url_the_cookie_is_secure_and_that_origin_is_the_one() {
    let server = TestServer::start_with(|c| {
        c.public_url = Some("https://pp.example.com".parse().unwrap());
    })
    .await;
    let base = &server.client.base;
    let http = no_redirects();
    let form = http
        .get(format!("{base}/console/sign-in"))
        .send()
        .await
        .unwrap();
    let nonce_cookie = set_cookie(form.headers(), "pp_console_sign_in").unwrap();
    assert!(nonce_cookie.contains("; Secure"), "{nonce_cookie}");
    let nonce = cookie_value(&nonce_cookie);
    let post = |origin: &'static str| {
        http.post(format!("{base}/console/sign-in"))
            .header("origin", origin)
            .header("cookie", format!("pp_console_sign_in={nonce}"))
            .form(&[
                ("key", server.client.key.as_str()),
                ("csrf", nonce.as_str()),
            ])
            .send()
    };
    // The address the server listens on is not the public origin over plain http.
    let answer = post("http://pp.example.com").await.unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    let answer = post("https://pp.example.com").await.unwrap();
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let cookie = set_cookie(answer.headers(), "pp_console").unwrap();
    assert!(
        cookie.contains("; Secure") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
}

#[tokio::test]
async fn a_post_without_the_token_or_from_another_origin_is_refused() {
    let server = TestServer::start().await;
    let base = &server.client.base;
    let pause = server
        .client
        .create(sms_pause(None))
        .await
        .pause(StatusCode::CREATED);
    let console = Console::sign_in(base, &server.client.key).await;
    let cancel = format!("/console/pauses/{}/cancel", pause.pause_id);

    let refused = [
        ("no token", vec![], Some(base.as_str())),
        (
            "a wrong token",
            vec![("csrf", "forged")],
            Some(base.as_str()),
        ),
        (
            "another origin",
            vec![("csrf", console.csrf.as_str())],
            Some("https://evil.example"),
        ),
        ("no origin", vec![("csrf", console.csrf.as_str())], None),
        (
            "a null origin",
            vec![("csrf", console.csrf.as_str())],
            Some("null"),
        ),
    ];
    for (what, form, origin) in refused {
        let answer = console.post_raw(&cancel, &form, origin).await;
        assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{what}");
    }
    // The sign-in form is held to the same rules.
    let foreign = console
        .http
        .post(format!("{base}/console/sign-in"))
        .header("origin", "https://evil.example")
        .form(&[("key", server.client.key.as_str()), ("csrf", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        server.client.status(pause.pause_id).await,
        pausepoint_api::PauseStatus::Pending,
        "nothing refused changed anything"
    );

    let answer = console.post(&cancel, &[]).await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        server.client.status(pause.pause_id).await,
        pausepoint_api::PauseStatus::Cancelled
    );
    let (_, page) = console
        .get(answer.headers()[LOCATION].to_str().unwrap())
        .await;
    assert!(page.contains("The pause is cancelled."));
    assert!(page.contains("pause.cancelled"), "on the timeline");
}

#[tokio::test]
async fn a_session_sees_nothing_of_another_project() {
    let server = TestServer::start().await;
    let base = &server.client.base;
    let mut body = sms_pause(None);
    body["message"] = json!("Ours: deploy web-7 to production?");
    let ours = server.client.create(body).await.pause(StatusCode::CREATED);
    let (other_key, _) = server.key_for_project("other").await;
    let theirs = Console::sign_in(base, &other_key).await;

    let (status, list) = theirs.get("/console/pauses").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!list.contains("deploy web-7"));
    assert!(list.contains("No pauses match."));
    let (status, _) = theirs
        .get(&format!("/console/pauses/{}", ours.pause_id))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let answer = theirs
        .post(&format!("/console/pauses/{}/cancel", ours.pause_id), &[])
        .await;
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    let (_, audit) = theirs.get("/console/audit").await;
    assert!(!audit.contains(&ours.pause_id.to_string()));
    let (_, keys) = theirs.get("/console/keys").await;
    let ours_key = server.app.store().keys().await.unwrap();
    let ours_key = ours_key
        .iter()
        .find(|k| k.project_id == server.project_id)
        .unwrap();
    assert!(!keys.contains(&ours_key.id.to_string()));
    let answer = theirs
        .post(&format!("/console/keys/{}/revoke", ours_key.id), &[])
        .await;
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        server.client.status(ours.pause_id).await,
        pausepoint_api::PauseStatus::Pending
    );
    server.client.get(ours.pause_id).await.pause(StatusCode::OK);
}

#[tokio::test]
async fn scripts_in_messages_options_notes_and_metadata_stay_text() {
    let server = TestServer::start().await;
    let base = &server.client.base;
    let mut body = sms_pause(None);
    body["message"] = json!("<script>alert('message')</script>");
    body["options"] = json!(["<img src=x onerror=alert(1)>", "no"]);
    body["timeout_default"] = json!("no");
    body["metadata"] = json!({ "<b>key</b>": "<script>alert('metadata')</script>" });
    body["allow_text_response"] = json!(true);
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    server
        .app
        .pauses()
        .respond(
            server.project_id,
            pause.pause_id.into(),
            "<img src=x onerror=alert(1)>",
            Some("<script>alert('note')</script>"),
        )
        .await
        .unwrap();
    let console = Console::sign_in(base, &server.client.key).await;
    for path in [
        "/console/pauses".to_owned(),
        format!("/console/pauses/{}", pause.pause_id),
        "/console/audit".to_owned(),
        "/console/charts".to_owned(),
    ] {
        let (status, page) = console.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(
            page.matches("<script").count(),
            1,
            "{path}: only the console's own script"
        );
        assert!(
            page.contains("<script src=\"/console/console.js\">"),
            "{path}"
        );
        assert!(!page.contains("<img"), "{path}");
        assert!(!page.contains("<b>"), "{path}");
    }
    let (_, timeline) = console
        .get(&format!("/console/pauses/{}", pause.pause_id))
        .await;
    assert!(timeline.contains("&lt;script&gt;alert('message')&lt;/script&gt;"));
    assert!(timeline.contains("&lt;script&gt;alert('note')&lt;/script&gt;"));
    assert!(timeline.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(timeline.contains("alert('metadata')"));
}

#[tokio::test]
async fn a_session_ends_on_sign_out_expiry_or_revocation() {
    let server = TestServer::start().await;
    let base = &server.client.base;

    let console = Console::sign_in(base, &server.client.key).await;
    let answer = console.post("/console/sign-out", &[]).await;
    assert!(redirects_to_sign_in(answer.status(), answer.headers()));
    let cleared = set_cookie(answer.headers(), "pp_console").unwrap();
    assert!(cleared.contains("Max-Age=0"));
    let answer = console.open("/console/pauses").await;
    assert!(
        redirects_to_sign_in(answer.status(), answer.headers()),
        "the old cookie no longer works"
    );

    let console = Console::sign_in(base, &server.client.key).await;
    let db = server.behind_its_back().await;
    sqlx::query("UPDATE console_sessions SET expires_at = 1")
        .execute(&db)
        .await
        .unwrap();
    let answer = console.open("/console/keys").await;
    assert!(
        redirects_to_sign_in(answer.status(), answer.headers()),
        "expired"
    );

    let (key, _) = server.key_for_project("default").await;
    let console = Console::sign_in(base, &key).await;
    let other = Console::sign_in(base, &server.client.key).await;
    // Revoked from another session: this one ends with its key.
    let mine = server
        .app
        .store()
        .keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.prefix == key[..12])
        .unwrap();
    let answer = other
        .post(&format!("/console/keys/{}/revoke", mine.id), &[])
        .await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let (_, page) = other
        .get(answer.headers()[LOCATION].to_str().unwrap())
        .await;
    assert!(page.contains("The key is revoked"));
    let answer = console.open("/console/pauses").await;
    assert!(
        redirects_to_sign_in(answer.status(), answer.headers()),
        "revoked"
    );
}

#[tokio::test]
async fn failed_sign_ins_are_capped_per_address() {
    let server = TestServer::start().await;
    let base = &server.client.base;
    let http = no_redirects();
    for attempt in 0..10 {
        let answer = try_sign_in(&http, base, "pp_live_guess").await;
        assert_eq!(
            answer.status(),
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    let answer = try_sign_in(&http, base, &server.client.key).await;
    assert_eq!(answer.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = answer.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 15 * 60);
    assert!(answer
        .text()
        .await
        .unwrap()
        .contains("Too many failed sign-ins"));
    assert!(
        server
            .client
            .get_path("/v1/pause")
            .await
            .status
            .is_success(),
        "the API is not capped"
    );
}

#[tokio::test]
async fn a_key_made_in_the_console_is_shown_once_works_and_can_be_revoked() {
    let server = TestServer::start().await;
    let console = Console::sign_in(&server.client.base, &server.client.key).await;
    let answer = console
        .post("/console/keys", &[("name", "deploy <bot>")])
        .await;
    assert_eq!(answer.status(), StatusCode::CREATED);
    let page = answer.text().await.unwrap();
    assert!(page.contains("deploy &lt;bot&gt;"));
    let at = page.find("pp_live_").unwrap();
    let key = &page[at..at + 40];
    assert!(
        key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "{key}"
    );
    let client = server.client.with_key(key);
    assert!(client.get_path("/v1/pause").await.status.is_success());

    let (_, list) = console.get("/console/keys").await;
    assert!(!list.contains(key), "shown only once");
    let record = server
        .app
        .store()
        .keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name == "deploy <bot>")
        .unwrap();
    let answer = console
        .post(&format!("/console/keys/{}/revoke", record.id), &[])
        .await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        client.get_path("/v1/pause").await.status,
        StatusCode::UNAUTHORIZED
    );
    let audit = server.client.audit("event=key.revoked").await;
    assert_eq!(audit.len(), 1);
    assert!(audit[0].actor.starts_with("api_key:"), "who revoked it");

    let answer = console.post("/console/keys", &[("name", "  ")]).await;
    assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// Reads the event stream until an event holds `text`, within `seconds`.
async fn until_sent(answer: &mut reqwest::Response, text: &str, seconds: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut seen = String::new();
    while Instant::now() < deadline {
        let left = deadline - Instant::now();
        match tokio::time::timeout(left, answer.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                seen.push_str(&String::from_utf8_lossy(&chunk));
                if seen.contains(text) {
                    return seen;
                }
            }
            _ => break,
        }
    }
    panic!("no event with {text:?} within {seconds} s; saw {seen:?}");
}

#[tokio::test]
async fn the_live_list_sends_the_rows_again_when_a_pause_is_created() {
    let server = TestServer::start().await;
    let console = Console::sign_in(&server.client.base, &server.client.key).await;
    let mut answer = console.open("/console/pauses/live?status=pending").await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["content-type"], "text/event-stream");
    let mut body = sms_pause(None);
    body["message"] = json!("Live: rotate the <db> password?");
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    let sent = until_sent(&mut answer, "rotate the", 10).await;
    assert!(sent.contains("event: rows"));
    assert!(sent.contains("rotate the &lt;db&gt; password?"));
    assert!(sent.contains(&pause.pause_id.to_string()));
}

#[tokio::test]
async fn a_failed_webhook_is_resent_from_the_timeline() {
    let mut receiver = WebhookReceiver::start(vec![Answer::Status(410)]).await;
    let server = TestServer::start_with(|c| c.allow_private_network = true).await;
    let mut body = sms_pause(None);
    body["webhook_url"] = json!(receiver.url);
    let pause = server.client.create(body).await.pause(StatusCode::CREATED);
    server
        .client
        .cancel(pause.pause_id)
        .await
        .pause(StatusCode::OK);
    let event_id = receiver.next(30).await.header("webhook-id").to_owned();
    let console = Console::sign_in(&server.client.base, &server.client.key).await;
    let timeline = format!("/console/pauses/{}", pause.pause_id);
    let deadline = Instant::now() + Duration::from_secs(10);
    let page = loop {
        let (_, page) = console.get(&timeline).await;
        if page.contains("status-failed") || Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(page.contains("HTTP 410"), "the receiver's answer is shown");
    assert!(page.contains("Resend"));
    let answer = console
        .post(&format!("{timeline}/webhooks/{event_id}/resend"), &[])
        .await;
    assert_eq!(answer.status(), StatusCode::SEE_OTHER);
    let again = receiver.next(30).await;
    assert_eq!(again.header("webhook-id"), event_id);
}

#[tokio::test]
async fn the_audit_page_verifies_and_exports_and_the_charts_draw() {
    let server = TestServer::start().await;
    for choice in ["Approve", "Reject"] {
        let pause = server
            .client
            .create(sms_pause(None))
            .await
            .pause(StatusCode::CREATED);
        server.respond(pause.pause_id, choice).await;
    }
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
    server
        .client
        .send(Method::POST, "/v1/audit/checkpoints", None, &[])
        .await;
    let console = Console::sign_in(&server.client.base, &server.client.key).await;

    let (status, audit) = console.get("/console/audit").await;
    assert_eq!(status, StatusCode::OK);
    assert!(audit.contains("Verifies"), "the chain's state at a glance");
    assert!(audit.contains("pause.responded"));
    assert!(
        !audit.contains("None yet."),
        "the newest checkpoint is shown"
    );
    let (status, filtered) = console.get("/console/audit?event=pause.cancelled").await;
    assert_eq!(status, StatusCode::OK);
    assert!(filtered.contains("<td>pause.cancelled") && !filtered.contains("<td>pause.responded"));
    let (status, _) = console.get("/console/audit?event=nope").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = console.get("/console/audit?since=last+week").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // The export link carries the page's filters, in the form the export takes them.
    let (status, page) = console
        .get("/console/audit?event=pause.responded&since=2000-01-01&actor=system")
        .await;
    assert_eq!(status, StatusCode::OK);
    let at = page.find("/console/audit/export?format=csv").unwrap();
    let link = page[at..at + page[at..].find('"').unwrap()].replace("&amp;", "&");
    assert!(link.contains("since=2000-01-01T00%3A00%3A00Z"), "{link}");
    let (status, csv) = console.get(&link).await;
    assert_eq!(status, StatusCode::OK, "{csv}");
    assert_eq!(
        csv.lines().count(),
        1,
        "system decided nothing: the header alone\n{csv}"
    );
    let (_, csv) = console
        .get(&link.replace("actor=system", "actor=recipient%3A%2B13128471928"))
        .await;
    assert_eq!(csv.lines().count(), 3, "the two answers\n{csv}");

    let (status, export) = console.get("/console/audit/export?format=jsonl").await;
    assert_eq!(status, StatusCode::OK);
    let events: Vec<serde_json::Value> = export
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(events.iter().any(|e| e["event"] == "pause.responded"));

    let (status, charts) = console.get("/console/charts").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(charts.matches("<svg").count(), 5);
    assert!(charts.contains("Time to decision") && charts.contains("Outcomes per day"));
    assert!(charts.contains("1 responded") || charts.contains("2 responded"));
    assert!(charts.contains("1 cancelled"));
    assert!(charts.matches("<rect").count() >= 3, "bars are drawn");
}

#[tokio::test]
async fn the_list_filters_by_status_recipient_and_message_text() {
    let server = TestServer::start().await;
    let mut body = sms_pause(None);
    body["message"] = json!("Refund order 100% of #42_b?");
    let refund = server.client.create(body).await.pause(StatusCode::CREATED);
    let mut body = sms_pause(None);
    body["message"] = json!("Delete the staging database?");
    body["recipient"] = json!("+14155550100");
    let delete = server.client.create(body).await.pause(StatusCode::CREATED);
    server
        .client
        .cancel(delete.pause_id)
        .await
        .pause(StatusCode::OK);
    let console = Console::sign_in(&server.client.base, &server.client.key).await;

    let shows = |page: &str| {
        (
            page.contains("Refund order"),
            page.contains("Delete the staging"),
        )
    };
    let (_, page) = console.get("/console/pauses?q=REFUND").await;
    assert_eq!(shows(&page), (true, false), "any case");
    let (_, page) = console.get("/console/pauses?q=100%25+of+%2342_b").await;
    assert_eq!(shows(&page), (true, false), "% and _ are literal");
    let (_, page) = console.get("/console/pauses?q=100%25x").await;
    assert_eq!(shows(&page), (false, false));
    let (_, page) = console.get("/console/pauses?status=cancelled").await;
    assert_eq!(shows(&page), (false, true));
    let (_, page) = console
        .get("/console/pauses?recipient=%2B14155550100")
        .await;
    assert_eq!(shows(&page), (false, true));
    let (_, page) = console
        .get("/console/pauses?channel=sms&since=2000-01-01")
        .await;
    assert_eq!(shows(&page), (true, true));
    let (status, page) = console.get("/console/pauses?since=yesterday").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("must be a date"));
    assert_eq!(refund.status, pausepoint_api::PauseStatus::Pending);
}
