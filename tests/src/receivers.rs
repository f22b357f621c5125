//! Real receivers on `127.0.0.1:0` for what the server sends: a stand-in for Twilio's
//! Messages API that checks what Twilio checks, a Slack incoming webhook, and a real SMTP
//! server. Each hands what it received to the test through a channel, and answers with
//! the statuses the test scripted (then 2xx).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Statuses to answer with, in order; 2xx once they run out.
type Script = Arc<Mutex<VecDeque<u16>>>;

fn next_status(script: &Script, success: u16) -> StatusCode {
    let status = script.lock().unwrap().pop_front().unwrap_or(success);
    StatusCode::from_u16(status).unwrap()
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

/// One message Twilio was asked to send: its form fields.
pub type Sms = HashMap<String, String>;

/// A stand-in for `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`.
pub struct FakeTwilio {
    pub url: String,
    pub sid: String,
    pub token: String,
    pub received: mpsc::UnboundedReceiver<Sms>,
}

#[derive(Clone)]
struct TwilioState {
    sid: String,
    token: String,
    script: Script,
    sent: mpsc::UnboundedSender<Sms>,
}

impl FakeTwilio {
    /// Answers the scripted statuses (503, 400…) before accepting with 201.
    pub async fn start(script: &[u16]) -> FakeTwilio {
        let (sent, received) = mpsc::unbounded_channel();
        let state = TwilioState {
            sid: "AC0123456789abcdef0123456789abcdef".into(),
            token: "twilio-secret-token".into(),
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            sent,
        };
        let router = Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                post(twilio_messages),
            )
            .with_state(state.clone());
        FakeTwilio {
            url: serve(router).await,
            sid: state.sid,
            token: state.token,
            received,
        }
    }

    /// The server's Twilio settings for this stand-in: its account, sending from
    /// +15550001111, fast enough that pacing never holds a test back.
    pub fn config(&self) -> pausepoint_server::config::TwilioConfig {
        pausepoint_server::config::TwilioConfig {
            account_sid: self.sid.clone(),
            auth_token: pausepoint_server::config::Secret::new(self.token.clone()),
            from: "+15550001111".into(),
            api_url: self.url.clone(),
            segments_per_second: 100.0,
        }
    }

    /// The next SMS the server sent, within 30 s.
    pub async fn next(&mut self) -> Sms {
        tokio::time::timeout(std::time::Duration::from_secs(30), self.received.recv())
            .await
            .expect("no SMS within 30 s")
            .unwrap()
    }

    /// Twilio's signature of a post of `params` to `url`, as Twilio documents it: the URL,
    /// then each parameter's name and value in the order of the names, HMAC-SHA1 keyed by
    /// the auth token, base64.
    pub fn sign(&self, url: &str, params: &[(&str, &str)]) -> String {
        use hmac::Mac;
        let mut sorted = params.to_vec();
        sorted.sort();
        let mut data = url.to_owned();
        for (name, value) in sorted {
            data.push_str(name);
            data.push_str(value);
        }
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(self.token.as_bytes()).unwrap();
        mac.update(data.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    /// Posts an incoming SMS from `from` saying `body` to the server's Twilio webhook
    /// (`{base}/v1/inbound/twilio`) as Twilio does, signed; returns the status and TwiML.
    pub async fn reply(&self, base: &str, from: &str, body: &str) -> (StatusCode, String) {
        let url = format!("{base}/v1/inbound/twilio");
        let sid = format!("SM{:032x}", rand_u128());
        let params = [
            ("ToCountry", "US"),
            ("SmsMessageSid", sid.as_str()),
            ("NumMedia", "0"),
            ("SmsSid", sid.as_str()),
            ("SmsStatus", "received"),
            ("Body", body),
            ("To", "+15550001111"),
            ("NumSegments", "1"),
            ("MessageSid", sid.as_str()),
            ("AccountSid", self.sid.as_str()),
            ("From", from),
            ("ApiVersion", "2010-04-01"),
        ];
        let signature = self.sign(&url, &params);
        self.post_signed(&url, &params, &signature).await
    }

    /// Reports on a message as Twilio does, to the `StatusCallback` it was sent with.
    pub async fn report(
        &self,
        sms: &Sms,
        status: &str,
        error_code: Option<&str>,
    ) -> (StatusCode, String) {
        let url = sms["StatusCallback"].clone();
        let mut params = vec![
            ("SmsSid", sms["MessageSid"].as_str()),
            ("SmsStatus", status),
            ("MessageStatus", status),
            ("To", sms["To"].as_str()),
            ("MessageSid", sms["MessageSid"].as_str()),
            ("AccountSid", self.sid.as_str()),
            ("From", "+15550001111"),
            ("ApiVersion", "2010-04-01"),
        ];
        if let Some(code) = error_code {
            params.push(("ErrorCode", code));
        }
        let signature = self.sign(&url, &params);
        self.post_signed(&url, &params, &signature).await
    }

    /// Posts `params` to `url` with `signature` as its `X-Twilio-Signature`.
    pub async fn post_signed(
        &self,
        url: &str,
        params: &[(&str, &str)],
        signature: &str,
    ) -> (StatusCode, String) {
        let response = reqwest::Client::new()
            .post(url)
            .header("X-Twilio-Signature", signature)
            .form(params)
            .send()
            .await
            .unwrap();
        let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
        (status, response.text().await.unwrap())
    }
}

fn rand_u128() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    u128::from(hasher.finish())
}

fn twilio_error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({ "code": code, "message": message, "more_info": format!("https://www.twilio.com/docs/errors/{code}"), "status": status.as_u16() });
    (status, Json(body)).into_response()
}

async fn twilio_messages(
    State(state): State<TwilioState>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", state.sid, state.token))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str())
        || sid != state.sid
    {
        return twilio_error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok())
        != Some("application/x-www-form-urlencoded")
    {
        return twilio_error(StatusCode::BAD_REQUEST, 20001, "Invalid content type");
    }
    let form: Sms = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let to = form.get("To").cloned().unwrap_or_default();
    if !to.starts_with('+') || to.len() < 8 || !to[1..].chars().all(|c| c.is_ascii_digit()) {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21211,
            &format!("The 'To' number {to} is not a valid phone number."),
        );
    }
    if !form.contains_key("From") && !form.contains_key("MessagingServiceSid") {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21603,
            "A 'From' or 'MessagingServiceSid' parameter is required to send a message",
        );
    }
    let text = form.get("Body").cloned().unwrap_or_default();
    if text.is_empty() {
        return twilio_error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    }
    if text.chars().count() > 1600 {
        return twilio_error(
            StatusCode::BAD_REQUEST,
            21617,
            "The concatenated message body exceeds the 1600 character limit.",
        );
    }
    let status = next_status(&state.script, 201);
    if !status.is_success() {
        return twilio_error(status, 20500, "Service is unavailable. Please try again");
    }
    // Each message its own id, as Twilio gives it; the test sees it as `MessageSid`.
    let sid = format!("SM{:032x}", rand_u128());
    let mut sent = form.clone();
    sent.insert("MessageSid".into(), sid.clone());
    let _ = state.sent.send(sent);
    let body = json!({
        "sid": sid,
        "account_sid": state.sid,
        "to": to,
        "from": form.get("From"),
        "body": text,
        "status": "queued",
        "num_segments": "1",
    });
    (StatusCode::CREATED, Json(body)).into_response()
}

/// A stand-in for ntfy's JSON publish API: `POST /` with `{"topic", "message", "title",
/// "click", "actions", …}`, checked as ntfy checks it (a topic of letters, digits, `-` and
/// `_`; at most three actions, each `view`, `http` or `broadcast` with a label and, for
/// `view` and `http`, a URL; the access token when the server has one).
pub struct NtfyReceiver {
    /// The server's root; a topic URL is this and the topic.
    pub base: String,
    pub received: mpsc::UnboundedReceiver<Value>,
}

#[derive(Clone)]
struct NtfyState {
    token: Option<String>,
    sent: mpsc::UnboundedSender<Value>,
}

impl NtfyReceiver {
    /// A server that requires `token` as `Authorization: Bearer`, or none.
    pub async fn start(token: Option<&str>) -> NtfyReceiver {
        let (sent, received) = mpsc::unbounded_channel();
        let state = NtfyState {
            token: token.map(str::to_owned),
            sent,
        };
        let router = Router::new()
            .route("/", post(ntfy_publish))
            .with_state(state);
        NtfyReceiver {
            base: serve(router).await,
            received,
        }
    }
}

fn ntfy_error(status: StatusCode, code: u32, error: &str) -> Response {
    let body = json!({ "code": code, "http": status.as_u16(), "error": error });
    (status, Json(body)).into_response()
}

async fn ntfy_publish(
    State(state): State<NtfyState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Some(token) = &state.token {
        let expected = format!("Bearer {token}");
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            return ntfy_error(StatusCode::UNAUTHORIZED, 40101, "unauthorized");
        }
    }
    let Ok(message) = serde_json::from_str::<Value>(&body) else {
        return ntfy_error(
            StatusCode::BAD_REQUEST,
            40017,
            "invalid request: request body must be message JSON",
        );
    };
    let topic = message["topic"].as_str().unwrap_or("");
    if topic.is_empty()
        || topic.len() > 64
        || !topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return ntfy_error(
            StatusCode::BAD_REQUEST,
            40009,
            "invalid request: topic invalid",
        );
    }
    let actions = message["actions"].as_array().cloned().unwrap_or_default();
    if actions.len() > 3 {
        return ntfy_error(
            StatusCode::BAD_REQUEST,
            40018,
            "invalid request: actions invalid: too many actions, only 3 allowed",
        );
    }
    for action in &actions {
        let kind = action["action"].as_str().unwrap_or("");
        let labelled = action["label"].as_str().is_some_and(|l| !l.is_empty());
        let has_url = action["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http"));
        if !matches!(kind, "view" | "http" | "broadcast")
            || !labelled
            || (kind != "broadcast" && !has_url)
        {
            return ntfy_error(
                StatusCode::BAD_REQUEST,
                40018,
                "invalid request: actions invalid",
            );
        }
    }
    let _ = state.sent.send(message.clone());
    let id = format!("{:012x}", rand_u128() & 0xffff_ffff_ffff);
    (
        StatusCode::OK,
        Json(json!({ "id": id, "time": 1_800_000_000, "event": "message", "topic": topic, "message": message["message"] })),
    )
        .into_response()
}

/// A stand-in for Slack's Web API (`chat.postMessage`, `chat.update`), answering as Slack
/// does (`{"ok": true, …}`, or `{"ok": false, "error"}` for a wrong token or a missing
/// field), and a signer of interactivity posts as Slack signs them.
pub struct SlackApi {
    /// The Web API base, like `https://slack.com/api`.
    pub url: String,
    pub bot_token: String,
    pub signing_secret: String,
    /// Each call: the method and its JSON body.
    pub calls: mpsc::UnboundedReceiver<(String, Value)>,
}

#[derive(Clone)]
struct SlackApiState {
    bot_token: String,
    sent: mpsc::UnboundedSender<(String, Value)>,
    ts: Arc<std::sync::atomic::AtomicU64>,
}

impl SlackApi {
    pub async fn start() -> SlackApi {
        let (sent, calls) = mpsc::unbounded_channel();
        let state = SlackApiState {
            bot_token: "xoxb-stand-in-bot-token".into(),
            sent,
            ts: Arc::new(std::sync::atomic::AtomicU64::new(100)),
        };
        let router = Router::new()
            .route("/api/{method}", post(slack_api))
            .with_state(state.clone());
        SlackApi {
            url: format!("{}/api", serve(router).await),
            bot_token: state.bot_token,
            signing_secret: "8f742231b10e8888abcd99yyyzzz85a5".into(),
            calls,
        }
    }

    /// Slack's signature of `body` sent at `timestamp`: `v0=` and the hex HMAC-SHA256 of
    /// `v0:{timestamp}:{body}` under the signing secret.
    pub fn sign(&self, timestamp: i64, body: &str) -> String {
        use hmac::Mac;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(self.signing_secret.as_bytes()).unwrap();
        mac.update(format!("v0:{timestamp}:{body}").as_bytes());
        format!("v0={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Clicks the button with `value` in the message `ts` of `channel` as `user`: the
    /// `block_actions` post Slack sends, signed at `now + skew` seconds. Returns the status.
    pub async fn click(
        &self,
        base: &str,
        user: &str,
        value: &str,
        (channel, ts): (&str, &str),
        skew: i64,
    ) -> StatusCode {
        let payload = json!({
            "type": "block_actions",
            "user": { "id": user, "username": "approver", "team_id": "T0STANDIN" },
            "api_app_id": "A0STANDIN",
            "container": { "type": "message", "message_ts": ts, "channel_id": channel, "is_ephemeral": false },
            "channel": { "id": channel },
            "message": { "ts": ts, "blocks": [{ "type": "section", "text": { "type": "mrkdwn", "text": "the question" } }] },
            "actions": [{ "type": "button", "action_id": "pausepoint_vote_0", "block_id": "pausepoint_vote", "value": value, "action_ts": "1700000000.000200" }],
        });
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + skew;
        let response = reqwest::Client::new()
            .post(format!("{base}/v1/inbound/slack"))
            .header("X-Slack-Request-Timestamp", timestamp.to_string())
            .header("X-Slack-Signature", self.sign(timestamp, &body))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        StatusCode::from_u16(response.status().as_u16()).unwrap()
    }
}

async fn slack_api(
    State(state): State<SlackApiState>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let authorized = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(format!("Bearer {}", state.bot_token).as_str());
    if !authorized {
        return Json(json!({ "ok": false, "error": "invalid_auth" })).into_response();
    }
    let Ok(message) = serde_json::from_str::<Value>(&body) else {
        return Json(json!({ "ok": false, "error": "invalid_json" })).into_response();
    };
    let channel = message["channel"].as_str().unwrap_or("").to_owned();
    if channel.is_empty() {
        return Json(json!({ "ok": false, "error": "channel_not_found" })).into_response();
    }
    let answer = match method.as_str() {
        "chat.postMessage" => {
            let n = state.ts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            json!({ "ok": true, "channel": channel, "ts": format!("1700000000.{n:06}"), "message": message })
        }
        "chat.update" => match message["ts"].as_str() {
            Some(ts) => {
                json!({ "ok": true, "channel": channel, "ts": ts, "text": message["text"] })
            }
            None => json!({ "ok": false, "error": "message_not_found" }),
        },
        _ => return Json(json!({ "ok": false, "error": "unknown_method" })).into_response(),
    };
    let _ = state.sent.send((method, message));
    Json(answer).into_response()
}

/// Slack's incoming webhooks: receive JSON posts, on any `/services/…` path (each path is
/// a webhook of its own, paced on its own).
pub struct SlackReceiver {
    pub url: String,
    pub received: mpsc::UnboundedReceiver<Value>,
    /// How long every answer takes, in milliseconds; changed while the receiver runs.
    pub delay_ms: Arc<std::sync::atomic::AtomicU64>,
    base: String,
}

#[derive(Clone)]
struct SlackState {
    script: Script,
    sent: mpsc::UnboundedSender<Value>,
    delay_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl SlackReceiver {
    pub async fn start(script: &[u16]) -> SlackReceiver {
        let (sent, received) = mpsc::unbounded_channel();
        let delay_ms = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let state = SlackState {
            script: Arc::new(Mutex::new(script.iter().copied().collect())),
            sent,
            delay_ms: delay_ms.clone(),
        };
        let router = Router::new()
            .route("/services/{team}/{bot}/{token}", post(slack_hook))
            .with_state(state);
        let base = serve(router).await;
        SlackReceiver {
            url: format!("{base}/services/T000/B000/XXXX"),
            received,
            delay_ms,
            base,
        }
    }

    /// The URL of another webhook on this receiver.
    pub fn webhook(&self, n: usize) -> String {
        format!("{}/services/T000/B000/X{n}", self.base)
    }
}

async fn slack_hook(State(state): State<SlackState>, Json(body): Json<Value>) -> Response {
    let delay = state.delay_ms.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    let status = next_status(&state.script, 200);
    if status == StatusCode::TOO_MANY_REQUESTS {
        // As Slack answers a webhook posting faster than its rate.
        return (status, [("retry-after", "2")], "rate_limited").into_response();
    }
    if !status.is_success() {
        return (status, "service_unavailable").into_response();
    }
    let _ = state.sent.send(body);
    (StatusCode::OK, "ok").into_response()
}

/// A real SMTP server (mailin), receiving whole messages.
pub struct SmtpReceiver {
    pub url: String,
    pub received: mpsc::UnboundedReceiver<String>,
    /// The user names of every AUTH the server was sent.
    pub auths: mpsc::UnboundedReceiver<String>,
}

#[derive(Clone)]
struct MailHandler {
    buffer: Vec<u8>,
    sent: mpsc::UnboundedSender<String>,
    /// Every AUTH the server was sent: the user name.
    auths: mpsc::UnboundedSender<String>,
}

impl mailin_embedded::Handler for MailHandler {
    fn auth_plain(
        &mut self,
        _authorization_id: &str,
        authentication_id: &str,
        _password: &str,
    ) -> mailin_embedded::Response {
        let _ = self.auths.send(authentication_id.to_owned());
        mailin_embedded::response::AUTH_OK
    }

    fn auth_login(&mut self, username: &str, _password: &str) -> mailin_embedded::Response {
        let _ = self.auths.send(username.to_owned());
        mailin_embedded::response::AUTH_OK
    }

    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> mailin_embedded::Response {
        self.buffer.clear();
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.buffer.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        let _ = self
            .sent
            .send(String::from_utf8_lossy(&self.buffer).into_owned());
        mailin_embedded::response::OK
    }
}

impl SmtpReceiver {
    /// A plain SMTP server on loopback (it offers no STARTTLS), which the server reaches
    /// with `tls=none`.
    pub fn start() -> SmtpReceiver {
        let (receiver, address) = SmtpReceiver::serve(false);
        SmtpReceiver {
            url: format!("smtp://{address}?tls=none"),
            ..receiver
        }
    }

    /// A plain SMTP server that takes AUTH and offers no STARTTLS; `url` is a plain
    /// `smtp://user:password@…`, which must not send it anything.
    pub fn without_starttls() -> SmtpReceiver {
        let (receiver, address) = SmtpReceiver::serve(true);
        SmtpReceiver {
            url: format!("smtp://mailer:hunter2@{address}"),
            ..receiver
        }
    }

    /// The server (taking AUTH PLAIN when `auth`), and where it listens.
    fn serve(auth: bool) -> (SmtpReceiver, std::net::SocketAddr) {
        let (sent, received) = mpsc::unbounded_channel();
        let (auths, auths_received) = mpsc::unbounded_channel();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let mut server = mailin_embedded::Server::new(MailHandler {
            buffer: Vec::new(),
            sent,
            auths,
        });
        server.with_name("mail.test").with_tcp_listener(listener);
        if auth {
            server.with_auth(mailin_embedded::AuthMechanism::Plain);
        }
        std::thread::spawn(move || {
            if let Err(e) = server.serve() {
                eprintln!("the test SMTP server stopped: {e}");
            }
        });
        let receiver = SmtpReceiver {
            url: String::new(),
            received,
            auths: auths_received,
        };
        (receiver, address)
    }
}

/// Undoes quoted-printable encoding (soft line breaks and `=XX` escapes).
pub fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first response link (`…/r/TOKEN`) in a text, without any `?choice=`.
pub fn find_link(text: &str) -> Option<String> {
    let start = text.find("http://")?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '?')
        .unwrap_or(rest.len());
    let link = &rest[..end];
    link.contains("/r/").then(|| link.to_owned())
}

/// One request a webhook receiver got: its headers (lower-case names) and exact body.
#[derive(Debug, Clone)]
pub struct ReceivedWebhook {
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl ReceivedWebhook {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// What a scripted webhook receiver answers.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16),
    /// A status with a `Retry-After` header in seconds.
    RetryAfter(u16, u64),
    /// 302 to another URL.
    Redirect(String),
}

/// An agent's webhook endpoint: records every request, answers as scripted (then 200).
pub struct WebhookReceiver {
    pub url: String,
    pub received: mpsc::UnboundedReceiver<ReceivedWebhook>,
}

#[derive(Clone)]
struct WebhookState {
    script: Arc<Mutex<VecDeque<Answer>>>,
    sent: mpsc::UnboundedSender<ReceivedWebhook>,
    /// How long every answer takes.
    delay: std::time::Duration,
}

impl WebhookReceiver {
    pub async fn start(script: Vec<Answer>) -> WebhookReceiver {
        WebhookReceiver::start_slow(script, std::time::Duration::ZERO).await
    }

    /// A receiver that takes `delay` over every answer.
    pub async fn start_slow(script: Vec<Answer>, delay: std::time::Duration) -> WebhookReceiver {
        let (sent, received) = mpsc::unbounded_channel();
        let state = WebhookState {
            script: Arc::new(Mutex::new(script.into())),
            sent,
            delay,
        };
        let router = Router::new()
            .route("/hooks/pausepoint", post(webhook_hook))
            .with_state(state);
        WebhookReceiver {
            url: format!("{}/hooks/pausepoint", serve(router).await),
            received,
        }
    }

    /// The next request, waiting up to `seconds`.
    pub async fn next(&mut self, seconds: u64) -> ReceivedWebhook {
        tokio::time::timeout(
            std::time::Duration::from_secs(seconds),
            self.received.recv(),
        )
        .await
        .expect("no webhook arrived in time")
        .unwrap()
    }
}

async fn webhook_hook(
    State(state): State<WebhookState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let headers = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    // Take the answer before any await: a sender killed mid-request must not leave it unused.
    let answer = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Answer::Status(200));
    let _ = state.sent.send(ReceivedWebhook { headers, body });
    tokio::time::sleep(state.delay).await;
    match answer {
        Answer::Status(code) => (
            StatusCode::from_u16(code).unwrap(),
            format!("answered {code}"),
        )
            .into_response(),
        Answer::RetryAfter(code, seconds) => (
            StatusCode::from_u16(code).unwrap(),
            [("retry-after", seconds.to_string())],
            "slow down",
        )
            .into_response(),
        Answer::Redirect(to) => (StatusCode::FOUND, [("location", to)], "moved").into_response(),
    }
}

/// A receiver that answers 500 and then streams an endless body (up to 4 GiB), to every
/// path: a webhook or Slack receiver trying to make the server hold its answer.
pub struct EndlessReceiver {
    pub url: String,
    /// One entry per request it was sent.
    pub requests: mpsc::UnboundedReceiver<String>,
}

impl EndlessReceiver {
    pub async fn start() -> EndlessReceiver {
        let (sent, requests) = mpsc::unbounded_channel();
        let router = Router::new().fallback(move |uri: axum::http::Uri| {
            let sent = sent.clone();
            async move {
                let _ = sent.send(uri.path().to_owned());
                let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
                let chunks = futures_util::stream::unfold(0u64, move |sent| {
                    let chunk = chunk.clone();
                    async move {
                        (sent < 4 << 30).then(|| {
                            (
                                Ok::<_, std::io::Error>(chunk.clone()),
                                sent + chunk.len() as u64,
                            )
                        })
                    }
                });
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    axum::body::Body::from_stream(chunks),
                )
            }
        });
        EndlessReceiver {
            url: serve(router).await,
            requests,
        }
    }
}
