//! What `pp server` is told: where the data lives, where to listen, how humans are reached.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

/// The default address: loopback only, so a fresh server is not exposed by accident.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
/// Twilio's API.
pub const TWILIO_API_URL: &str = "https://api.twilio.com";
/// The waits between delivery attempts when a provider is down: the first retries come
/// in seconds, the last half an hour later.
pub const DELIVERY_RETRY: [Duration; 5] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(120),
    Duration::from_secs(600),
    Duration::from_secs(1800),
];

/// The waits before each retry of a webhook event (the first attempt is immediate):
/// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, each give or take a fifth.
pub const WEBHOOK_RETRY: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(300),
    Duration::from_secs(1800),
    Duration::from_secs(7200),
    Duration::from_secs(18_000),
    Duration::from_secs(36_000),
    Duration::from_secs(36_000),
];

/// How long a server holds work it claimed: more than one attempt (15 s) can take.
pub const WORK_LEASE: Duration = Duration::from_secs(60);
/// Sends in flight at once, per worker (deliveries, webhooks).
pub const SEND_CONCURRENCY: usize = 64;
/// How long sends in flight may finish once the server is told to stop.
pub const STOP_GRACE: Duration = Duration::from_secs(2);
/// Connections open at once.
pub const MAX_CONNECTIONS: usize = 16_384;
/// How long a client has to send a request's headers (and an idle connection stays open).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long any request but a long-poll may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How often audit chains are checkpointed, at most.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);
/// Long-polls one key may hold open at once.
pub const MAX_LONG_POLLS_PER_KEY: usize = 2_000;
/// How long a hook's approver has, unless told otherwise: well inside Claude Code's
/// default hook timeout (600 s), so the deny arrives before the hook would fail open.
pub const APPROVAL_TIMEOUT: Duration = Duration::from_secs(300);

/// A value that must not reach a log: Debug shows only that it is there.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A Twilio account that sends the SMS.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: Secret,
    /// A phone number in E.164, or a Messaging Service SID (`MG…`).
    pub from: String,
    pub api_url: String,
    /// The sender's throughput in message segments per second (Twilio's MPS): 1 for a US
    /// long code, more for toll-free, short codes and Messaging Services with several numbers.
    pub segments_per_second: f64,
}

/// The SMTP server that sends the email.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// `smtp://user:pass@host:port` or `smtps://…`; may hold a password.
    pub url: Secret,
    /// The sender, such as `PausePoint <approvals@example.com>`.
    pub from: String,
}

/// The server's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Send all outbound HTTP through this proxy (the environment's proxy variables are
    /// ignored); targets are still checked here first.
    pub outbound_proxy: Option<Url>,
    /// A SQLite file path or a database URL.
    pub database: String,
    /// The master key file; by default `pausepoint.key` beside the SQLite file (or in the
    /// data folder, for PostgreSQL).
    pub master_key_file: Option<PathBuf>,
    pub bind: SocketAddr,
    /// The address humans reach this server at, for the links sent to them. Defaults to
    /// `http://` and the address the server listens on.
    pub public_url: Option<Url>,
    /// Allow webhook and Slack targets on loopback or private networks.
    pub allow_private_network: bool,
    /// SMS go through Twilio when set; otherwise their links are printed on the console.
    pub twilio: Option<TwilioConfig>,
    /// Email goes through SMTP when set; otherwise links are printed on the console.
    pub smtp: Option<SmtpConfig>,
    /// The access token sent to ntfy servers that require one (`tk_…`).
    pub ntfy_token: Option<Secret>,
    /// The Slack app, for Slack recipients given as channel or user ids, whose buttons
    /// decide inside Slack.
    pub slack_app: Option<SlackAppConfig>,
    /// The waits between delivery attempts; after the last, the delivery has failed.
    pub delivery_retry: Vec<Duration>,
    /// The waits between webhook attempts; after the last, the event has failed.
    pub webhook_retry: Vec<Duration>,
    /// How long a server holds a delivery or webhook it is sending. If it dies, another
    /// server takes the work over once this runs out; it must outlast one attempt.
    pub work_lease: Duration,
    /// Sends in flight at once, per worker.
    pub send_concurrency: usize,
    /// How long sends in flight may finish once the server is told to stop.
    pub stop_grace: Duration,
    /// Connections open at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// How long a client has to send a request's headers, and an idle keep-alive
    /// connection stays open.
    pub header_read_timeout: Duration,
    /// How long any request but a long-poll may take.
    pub request_timeout: Duration,
    /// Long-polls one key may hold open at once; more get 429.
    pub max_long_polls_per_key: usize,
    /// Serve `/metrics` on this address only, rather than beside the API.
    pub metrics_bind: Option<SocketAddr>,
    /// How often each project's audit chain is checkpointed while events arrive (at most
    /// [`CHECKPOINT_EVERY`]: verification expects no older event without one).
    pub checkpoint_every: Duration,
    /// Where each checkpoint is POSTed, signed like a webhook: the outside witness.
    pub checkpoint_url: Option<Url>,
    /// Who a coding agent's hook asks when its request names nobody (its timeout is
    /// `default_approval_timeout`).
    pub default_approver: Option<crate::domain::approvals::Approver>,
    /// How long a hook's approver has when the request does not say.
    pub default_approval_timeout: Duration,
}

impl Config {
    /// Settings for a server on `database` and `bind`, with everything else at its default.
    pub fn new(database: impl Into<String>, bind: SocketAddr) -> Config {
        Config {
            database: database.into(),
            master_key_file: None,
            bind,
            public_url: None,
            allow_private_network: false,
            outbound_proxy: None,
            twilio: None,
            smtp: None,
            ntfy_token: None,
            slack_app: None,
            delivery_retry: DELIVERY_RETRY.to_vec(),
            webhook_retry: WEBHOOK_RETRY.to_vec(),
            work_lease: WORK_LEASE,
            send_concurrency: SEND_CONCURRENCY,
            stop_grace: STOP_GRACE,
            max_connections: MAX_CONNECTIONS,
            header_read_timeout: HEADER_READ_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            max_long_polls_per_key: MAX_LONG_POLLS_PER_KEY,
            metrics_bind: None,
            checkpoint_every: CHECKPOINT_EVERY,
            checkpoint_url: None,
            default_approver: None,
            default_approval_timeout: APPROVAL_TIMEOUT,
        }
    }
}

/// A Slack app installed in the workspace: its bot token posts and updates messages, its
/// signing secret proves that button clicks come from Slack.
#[derive(Debug, Clone)]
pub struct SlackAppConfig {
    /// `xoxb-…`
    pub bot_token: Secret,
    pub signing_secret: Secret,
    /// Slack's Web API (`https://slack.com/api`); another for a stand-in.
    pub api_url: String,
}

/// Slack's Web API.
pub const SLACK_API_URL: &str = "https://slack.com/api";

impl Config {
    /// The URL humans and providers reach this server at, without a trailing slash:
    /// `--public-url`, else the address it listens on.
    pub fn public_url_or(&self, local: std::net::SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.as_str().trim_end_matches('/').to_owned(),
            None => format!("http://{local}"),
        }
    }

    /// Where outbound HTTP may go, and through what.
    pub fn outbound_policy(&self) -> crate::outbound::Policy {
        crate::outbound::Policy {
            allow_private_network: self.allow_private_network,
            proxy: self.outbound_proxy.clone(),
        }
    }
}

/// The SQLite file used when no database is given: `pausepoint.db` in the user's data
/// folder (`~/.local/share/pausepoint` on Linux).
pub fn default_database() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("pausepoint")
        .join("pausepoint.db")
}
