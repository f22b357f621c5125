//! The typed async client of the PausePoint API, used by the `pp` CLI and the MCP server.
//! Every call returns the API's own types or a [`ClientError`] that reads as one sentence
//! a person can act on. [`Client::wait`] blocks until a human decides, riding out server
//! restarts and network blips.

use std::time::Duration;

use pausepoint_api::webhooks::{WebhookDelivery, WebhookDeliveryList};
use pausepoint_api::{
    AuditPage, CreatePause, ErrorBody, Pause, PauseList, PauseStatus, VerifyReport,
};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use uuid::Uuid;

pub use pausepoint_api as api;

/// The longest a single long-poll asks the server to hold (the API allows 60 s).
pub const POLL_SECONDS: u64 = 50;
/// The longest pause between retries while the server cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach PausePoint at {url}: is `pp server` running there? ({reason})")]
    Unreachable { url: String, reason: String },
    #[error("the API key was refused: {0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict {
        message: String,
        status: Option<PauseStatus>,
    },
    #[error("{field}: {message}", field = field.as_deref().unwrap_or("request"))]
    Invalid {
        field: Option<String>,
        message: String,
    },
    #[error("the server answered {status}: {message}")]
    Server { status: u16, message: String },
    #[error("the server's answer could not be read: {0}")]
    Decode(String),
    #[error("{0}")]
    Config(String),
}

impl ClientError {
    /// Worth trying again later: the server is away, restarting or overloaded.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Server { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// Filters of the pause list; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct PauseFilter {
    pub status: Option<PauseStatus>,
    pub channel: Option<pausepoint_api::Channel>,
    /// RFC 3339: created at or after.
    pub since: Option<String>,
    /// RFC 3339: created before.
    pub until: Option<String>,
}

/// Filters of the audit log; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub pause_id: Option<Uuid>,
    pub event: Option<String>,
    /// As events name it: `system`, `recipient:+1…`, `api_key:<id>`, `admin:<user>`.
    pub actor: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    /// For an export: the whole log as a bundle (public keys first, pauses after).
    pub bundle: bool,
}

impl AuditQuery {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(id) = self.pause_id {
            pairs.push(("pause_id", id.to_string()));
        }
        for (name, value) in [
            ("event", &self.event),
            ("actor", &self.actor),
            ("since", &self.since),
            ("until", &self.until),
            ("cursor", &self.cursor),
        ] {
            if let Some(value) = value {
                pairs.push((name, value.clone()));
            }
        }
        if let Some(limit) = self.limit {
            pairs.push(("limit", limit.to_string()));
        }
        if self.bundle {
            pairs.push(("bundle", "true".into()));
        }
        pairs
    }
}

/// A client of one server, acting with one API key.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Client {
    /// A client of the server at `base_url` (such as `http://127.0.0.1:8080`).
    pub fn new(base_url: &str, api_key: &str) -> Result<Client, ClientError> {
        let base = base_url.trim().trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Config(format!(
                "the server URL {base_url:?} must start with http:// or https://"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("pausepoint-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Config(format!("cannot set up HTTP: {e}")))?;
        Ok(Client {
            http,
            base,
            key: api_key.trim().to_owned(),
        })
    }

    /// The server this client talks to.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .timeout(Duration::from_secs(30))
    }

    async fn send<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, ClientError> {
        let response = self.respond(request).await?;
        let text = response.text().await.map_err(|e| self.unreachable(&e))?;
        serde_json::from_str(&text).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Sends the request; a non-2xx answer becomes the matching error.
    async fn respond(&self, request: RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        Err(error_from(status, &text))
    }

    fn unreachable(&self, error: &reqwest::Error) -> ClientError {
        let mut reason = if error.is_timeout() {
            "timed out".to_owned()
        } else {
            error.to_string()
        };
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            reason = cause.to_string();
            source = cause.source();
        }
        ClientError::Unreachable {
            url: self.base.clone(),
            reason,
        }
    }

    /// Creates a pause. With an idempotency key, a retry returns the first pause.
    pub async fn create(
        &self,
        pause: &CreatePause,
        idempotency_key: Option<&str>,
    ) -> Result<Pause, ClientError> {
        let mut request = self.request(Method::POST, "/v1/pause").json(pause);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        self.send(request).await
    }

    /// The pause as it stands.
    pub async fn get(&self, id: Uuid) -> Result<Pause, ClientError> {
        self.send(self.request(Method::GET, &format!("/v1/pause/{id}")))
            .await
    }

    /// One long-poll: the pause once decided, or after `wait` (at most 60 s).
    pub async fn poll(&self, id: Uuid, wait: Duration) -> Result<Pause, ClientError> {
        let seconds = wait.as_secs().min(60);
        let request = self
            .request(Method::GET, &format!("/v1/pause/{id}?wait={seconds}"))
            .timeout(Duration::from_secs(seconds + 15));
        self.send(request).await
    }

    /// Blocks until the pause leaves `pending`, long-polling. While the server cannot be
    /// reached (restarting, network down) it keeps trying with backoff, telling
    /// `on_retry` each time; errors that retrying cannot fix (401, 404) end the wait.
    pub async fn wait(
        &self,
        id: Uuid,
        mut on_retry: impl FnMut(&ClientError, Duration),
    ) -> Result<Pause, ClientError> {
        let mut backoff = Duration::from_millis(250);
        loop {
            match self.poll(id, Duration::from_secs(POLL_SECONDS)).await {
                Ok(pause) if pause.status.is_final() => return Ok(pause),
                Ok(_) => backoff = Duration::from_millis(250),
                Err(e) if e.is_transient() => {
                    on_retry(&e, backoff);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Withdraws the question.
    pub async fn cancel(&self, id: Uuid) -> Result<Pause, ClientError> {
        self.send(self.request(Method::POST, &format!("/v1/pause/{id}/cancel")))
            .await
    }

    /// One page of pauses, newest first.
    pub async fn list(
        &self,
        status: Option<PauseStatus>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<PauseList, ClientError> {
        let filter = PauseFilter {
            status,
            ..PauseFilter::default()
        };
        self.list_matching(&filter, limit, cursor).await
    }

    /// A page of the project's pauses matching `filter`, newest first.
    pub async fn list_matching(
        &self,
        filter: &PauseFilter,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<PauseList, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(status) = filter.status {
            query.push(("status", status.as_str().to_owned()));
        }
        if let Some(channel) = filter.channel {
            query.push(("channel", channel.as_str().to_owned()));
        }
        if let Some(since) = &filter.since {
            query.push(("since", since.clone()));
        }
        if let Some(until) = &filter.until {
            query.push(("until", until.clone()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        if let Some(cursor) = cursor {
            query.push(("cursor", cursor.to_owned()));
        }
        self.send(self.request(Method::GET, "/v1/pause").query(&query))
            .await
    }

    /// One page of audit events, oldest first.
    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage, ClientError> {
        self.send(self.request(Method::GET, "/v1/audit").query(&query.pairs()))
            .await
    }

    /// Streams every matching event as `jsonl` or `csv` into `out`.
    pub async fn export(
        &self,
        format: &str,
        query: &AuditQuery,
        out: &mut (impl std::io::Write + ?Sized),
    ) -> Result<u64, ClientError> {
        let mut pairs = query.pairs();
        pairs.push(("format", format.to_owned()));
        let request = self
            .request(Method::GET, "/v1/audit/export")
            .query(&pairs)
            .timeout(Duration::from_secs(3600));
        let mut response = self.respond(request).await?;
        let mut written = 0;
        while let Some(chunk) = response.chunk().await.map_err(|e| self.unreachable(&e))? {
            out.write_all(&chunk)
                .map_err(|e| ClientError::Config(format!("cannot write the export: {e}")))?;
            written += chunk.len() as u64;
        }
        Ok(written)
    }

    /// The pause's webhook events, each with its attempts.
    pub async fn webhooks(&self, id: Uuid) -> Result<WebhookDeliveryList, ClientError> {
        self.send(self.request(Method::GET, &format!("/v1/pause/{id}/webhooks")))
            .await
    }

    /// Sends a failed webhook event again.
    pub async fn resend_webhook(
        &self,
        id: Uuid,
        event_id: &str,
    ) -> Result<WebhookDelivery, ClientError> {
        self.send(self.request(
            Method::POST,
            &format!("/v1/pause/{id}/webhooks/{event_id}/resend"),
        ))
        .await
    }

    /// Walks the audit hash chain on the server.
    pub async fn public_key(&self) -> Result<pausepoint_api::proof::Jwks, ClientError> {
        self.send(self.request(Method::GET, "/v1/audit/public-key"))
            .await
    }

    /// A page of the project's signed checkpoints, oldest first.
    pub async fn checkpoints(
        &self,
        cursor: Option<&str>,
    ) -> Result<pausepoint_api::proof::CheckpointPage, ClientError> {
        let mut request = self.request(Method::GET, "/v1/audit/checkpoints");
        if let Some(cursor) = cursor {
            request = request.query(&[("cursor", cursor)]);
        }
        self.send(request).await
    }

    /// A checkpoint of the project's log as it stands now, signed by the server.
    pub async fn checkpoint_now(&self) -> Result<pausepoint_api::proof::Checkpoint, ClientError> {
        self.send(self.request(Method::POST, "/v1/audit/checkpoints"))
            .await
    }

    /// The server's verification of the log: from its newest checkpoint, or with `full`
    /// from the start.
    pub async fn verify(&self, full: bool) -> Result<VerifyReport, ClientError> {
        let path = match full {
            true => "/v1/audit/verify?full=true",
            false => "/v1/audit/verify",
        };
        // A full walk of a large log takes as long as the log is long.
        self.send(
            self.request(Method::GET, path)
                .timeout(Duration::from_secs(3600)),
        )
        .await
    }

    /// Posts a Claude Code hook event and returns the answer for Claude Code, once the
    /// approver has decided (or a rule decided for them). `approver` and `timeout` go in
    /// the query string; the server's defaults apply where they are None. The request is
    /// held for as long as the approver has, and `hold` more.
    pub async fn claude_code_hook(
        &self,
        event: &[u8],
        approver: &HookApprover,
        hold: Duration,
    ) -> Result<serde_json::Value, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(recipient) = &approver.recipient {
            query.push(("approver", recipient.clone()));
        }
        if let Some(channel) = &approver.channel {
            query.push(("channel", channel.clone()));
        }
        if let Some(timeout) = approver.timeout {
            query.push(("timeout", timeout.as_secs().max(1).to_string()));
        }
        let request = self
            .request(Method::POST, "/v1/hooks/claude-code")
            .query(&query)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(event.to_vec())
            .timeout(hold);
        self.send(request).await
    }

    /// The project's remembered approvals, newest first.
    pub async fn rules(
        &self,
        limit: Option<u32>,
    ) -> Result<pausepoint_api::rules::RuleList, ClientError> {
        let mut request = self.request(Method::GET, "/v1/rules");
        if let Some(limit) = limit {
            request = request.query(&[("limit", limit)]);
        }
        self.send(request).await
    }

    /// Ends a remembered approval before its time.
    pub async fn revoke_rule(&self, id: Uuid) -> Result<pausepoint_api::rules::Rule, ClientError> {
        self.send(self.request(Method::POST, &format!("/v1/rules/{id}/revoke")))
            .await
    }
}

/// Who a hook's question goes to; None leaves it to the server's defaults.
#[derive(Debug, Clone, Default)]
pub struct HookApprover {
    pub recipient: Option<String>,
    pub channel: Option<String>,
    pub timeout: Option<Duration>,
}

/// The API's error body, as an error.
fn error_from(status: StatusCode, text: &str) -> ClientError {
    let detail = serde_json::from_str::<ErrorBody>(text)
        .ok()
        .map(|b| b.error);
    let message = detail
        .as_ref()
        .map(|d| d.message.clone())
        .unwrap_or_else(|| text.chars().take(200).collect());
    match status {
        StatusCode::UNAUTHORIZED => ClientError::Unauthorized(message),
        StatusCode::NOT_FOUND => ClientError::NotFound(message),
        StatusCode::CONFLICT => ClientError::Conflict {
            message,
            status: detail.and_then(|d| d.status).and_then(|s| s.parse().ok()),
        },
        StatusCode::UNPROCESSABLE_ENTITY
        | StatusCode::BAD_REQUEST
        | StatusCode::PAYLOAD_TOO_LARGE => ClientError::Invalid {
            field: detail.and_then(|d| d.field),
            message,
        },
        other => ClientError::Server {
            status: other.as_u16(),
            message,
        },
    }
}
