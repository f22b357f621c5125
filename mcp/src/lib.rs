//! PausePoint as MCP tools over stdio (`pp mcp`), a thin layer over `pausepoint-client`:
//! a model creates a pause, waits for the human's decision, cancels, lists and reads the
//! audit log without writing HTTP code. `request_permission` answers Claude Code's
//! `--permission-prompt-tool` by asking a human. Nothing here prints to stdout: stdout is
//! the protocol.

use std::time::{Duration, Instant};

use pausepoint_api::claude_code::{self, Verdict};
use pausepoint_api::{
    Channel, CreatePause, EscalationTier, Pause, PauseStatus, Quorum, RecipientSpec,
};
use pausepoint_client::{AuditQuery, Client, ClientError};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, ProgressNotificationParam, ServerCapabilities,
    ServerConfig,
};
use rmcp::schemars::JsonSchema;
use rmcp::service::RequestContext;
use rmcp::task_manager::{TaskContext, TaskExit, TaskManager, TaskOptions};
use rmcp::{tool, tool_handler, tool_router, RoleServer, ServerHandler, ServiceExt};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

pub mod schemas;

/// How long `request_permission`'s approver has when nothing says.
pub const DEFAULT_APPROVAL_TIMEOUT: Duration = Duration::from_secs(600);

/// The HTTP request a call came in, when it came over Streamable HTTP.
fn http_parts(context: &RequestContext<RoleServer>) -> Option<&http::request::Parts> {
    context.extensions.get::<http::request::Parts>()
}

/// The longest one `poll_pause_request` call waits.
pub const MAX_WAIT_SECONDS: u64 = 50;
/// How often a waiting call reports progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Who `request_permission` asks, and how long they have.
#[derive(Debug, Clone)]
pub struct Approver {
    /// A phone number, an email address or a Slack webhook URL.
    pub recipient: String,
    /// `sms`, `email` or `slack`; inferred from the recipient when None.
    pub channel: Option<String>,
    pub timeout: Duration,
}

/// Whom the tools act as.
#[derive(Clone)]
enum Connection {
    /// `pp mcp`: one client, from the command line's settings.
    Fixed(Client),
    /// `/mcp` on the server: each request's own bearer key (checked before the request
    /// gets here), against the server's own API at `base`.
    PerRequest { base: String },
}

/// The MCP server.
#[derive(Clone)]
pub struct PausePointTools {
    connection: Connection,
    approver: Option<Approver>,
    tool_router: ToolRouter<Self>,
    /// The waits running as MCP tasks (shared by every clone).
    tasks: TaskManager,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = schemas::strict)]
pub struct CreatePauseArgs {
    /// Who answers. A phone number in international form for SMS ("+13128471928"; spaces,
    /// dashes and parentheses are fine), an email address, or a Slack incoming-webhook URL.
    /// Give recipient, or recipients to ask several people; not both.
    pub recipient: Option<String>,
    /// "sms", "email", "slack" or "ntfy". Leave out to infer it from the recipient.
    #[schemars(extend("enum" = schemas::channels()))]
    pub channel: Option<String>,
    /// The question the human sees, 1 to 2000 characters. Say what will happen and why,
    /// with the numbers that matter ("Wire $8,400 to Meridian Supplies for invoice 1042?").
    #[schemars(length(min = 1, max = 2000))]
    pub message: String,
    /// 2 to 5 short, distinct answers, such as ["Approve", "Reject"].
    #[schemars(length(min = 2, max = 5))]
    pub options: Vec<String>,
    /// How long the human has, in hours (may be fractional, e.g. 0.5). Default 24, at most 720.
    #[schemars(range(max = 720.0), extend("exclusiveMinimum" = 0))]
    pub timeout_hours: Option<f64>,
    /// How long the human has, in seconds, instead of timeout_hours.
    #[schemars(range(min = 1, max = 2_592_000))]
    pub timeout_seconds: Option<u64>,
    /// The option to take if nobody answers in time (must be one of options). Leave out to
    /// get status "timed_out" with no choice.
    pub timeout_default: Option<String>,
    /// Let the human add a written note to their answer.
    pub allow_text_response: Option<bool>,
    /// Any JSON object; returned unchanged with the pause (use it for your run or task ids).
    pub metadata: Option<Map<String, Value>>,
    /// An https URL to receive a signed event when the pause is decided.
    #[schemars(url)]
    pub webhook_url: Option<String>,
    /// Any unique string; calling again with the same key returns the first pause instead
    /// of asking the human twice.
    pub idempotency_key: Option<String>,
    /// Several people to ask instead of recipient (1 to 20), each with their own link and
    /// vote. Without quorum the first answer decides.
    #[schemars(length(min = 1, max = 20))]
    pub recipients: Option<Vec<RecipientArg>>,
    /// An option that needs several votes, such as {"option": "Approve", "count": 2}; any
    /// approver choosing another option decides at once (a veto).
    pub quorum: Option<QuorumArg>,
    /// Up to 5 tiers of people also asked when nobody has decided some seconds after the
    /// question was created, such as
    /// `[{"after_seconds": 1800, "recipients": [{"recipient": "boss@example.com"}]}]`.
    #[schemars(length(max = 5))]
    pub escalation: Option<Vec<EscalationArg>>,
    /// Ask those who have not answered again this often, in seconds (at least 60; at most
    /// 5 times, never after the deadline).
    #[schemars(range(min = 60, max = 2_592_000))]
    pub remind_every_seconds: Option<u64>,
}

/// One person to ask.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = schemas::strict)]
pub struct RecipientArg {
    /// A phone number, an email address, or a Slack incoming-webhook URL.
    pub recipient: String,
    /// "sms", "email", "slack" or "ntfy". Leave out to infer it from the recipient.
    #[schemars(extend("enum" = schemas::channels()))]
    pub channel: Option<String>,
}

/// How many votes an option needs.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = schemas::strict)]
pub struct QuorumArg {
    /// One of the options.
    pub option: String,
    /// Votes it needs, at most the number of people asked.
    #[schemars(range(min = 1, max = 20))]
    pub count: u32,
}

/// People also asked when the question is still open after a while.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = schemas::strict)]
pub struct EscalationArg {
    /// Seconds after creation, before the deadline; tiers in increasing order.
    #[schemars(range(min = 1, max = 2_592_000))]
    pub after_seconds: u64,
    #[schemars(length(min = 1, max = 20))]
    pub recipients: Vec<RecipientArg>,
}

impl RecipientArg {
    fn spec(self) -> RecipientSpec {
        RecipientSpec {
            recipient: self.recipient,
            channel: self.channel,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = schemas::strict)]
pub struct PollArgs {
    /// The pause_id that create_pause_request returned.
    pub pause_id: String,
    /// How long to wait for the decision in this call, 0 to 50 seconds (default 30). 0
    /// answers at once.
    #[schemars(range(min = 0, max = 50))]
    pub wait_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = schemas::strict)]
pub struct PauseIdArgs {
    /// The pause_id that create_pause_request returned.
    pub pause_id: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = schemas::strict)]
pub struct ListArgs {
    /// Only pauses in this state: "pending", "responded", "timed_out" or "cancelled".
    #[schemars(extend("enum" = schemas::statuses()))]
    pub status: Option<String>,
    /// How many, newest first: 1 to 100 (default 20).
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
    /// The next_cursor of a previous call, for the next page.
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = schemas::strict)]
pub struct AuditArgs {
    /// Only the events of this pause.
    pub pause_id: Option<String>,
    /// Only one kind of event, such as "pause.responded" or "pause.timed_out".
    #[schemars(extend("enum" = schemas::events()))]
    pub event: Option<String>,
    /// Only events at or after this time, RFC 3339 ("2026-11-22T09:00:00Z").
    #[schemars(extend("format" = "date-time"))]
    pub since: Option<String>,
    /// How many events, oldest first: 1 to 1000 (default 100).
    #[schemars(range(min = 1, max = 1000))]
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(crate = "rmcp::schemars", transform = schemas::strict)]
pub struct PermissionArgs {
    /// The tool that wants to run.
    pub tool_name: String,
    /// The input it would run with.
    #[serde(default)]
    pub input: Value,
    /// The id of this tool use, when the caller has one.
    pub tool_use_id: Option<String>,
}

/// A tool's answer: a short text, then the JSON as text too (for clients that ignore
/// `structuredContent`, as the MCP specification asks), and the JSON as structured content.
fn answer(summary: String, structured: Value) -> CallToolResult {
    let json = structured.to_string();
    let mut content = vec![ContentBlock::text(summary.clone())];
    if summary != json {
        content.push(ContentBlock::text(json));
    }
    let mut result = CallToolResult::success(content);
    result.structured_content = Some(structured);
    result
}

/// A tool error a model can read and act on.
fn failure(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

fn client_failure(error: &ClientError) -> CallToolResult {
    failure(match error {
        ClientError::Unreachable { .. } => format!(
            "{error}. Check that the PausePoint server is running and PAUSEPOINT_URL points at it."
        ),
        ClientError::Unauthorized(_) => format!("{error}. Check PAUSEPOINT_API_KEY."),
        _ => error.to_string(),
    })
}

fn parse_id(raw: &str) -> Result<Uuid, CallToolResult> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        failure(format!(
            "{raw:?} is not a pause_id; use the pause_id that create_pause_request returned"
        ))
    })
}

use pausepoint_api::time::short_duration as short;

/// One line on where a pause stands and what to do next.
pub fn summary(pause: &Pause) -> String {
    match pause.status {
        PauseStatus::Pending => {
            let left = pause.expires_at.as_second() - jiff::Timestamp::now().as_second();
            format!(
                "Still pending; expires in {}. Call poll_pause_request again to keep waiting.",
                short(left)
            )
        }
        PauseStatus::Responded => {
            let choice = pause.response_choice.as_deref().unwrap_or("");
            match &pause.response_text {
                Some(note) => format!("Responded: {choice} (note: {note})"),
                None => format!("Responded: {choice}"),
            }
        }
        PauseStatus::TimedOut => match &pause.response_choice {
            Some(default) => format!("Timed out with no answer; the default applies: {default}"),
            None => "Timed out with no answer and no default.".into(),
        },
        PauseStatus::Cancelled => "Cancelled; nobody will answer it.".into(),
    }
}

fn pause_value(pause: &Pause) -> Value {
    serde_json::to_value(pause).unwrap_or(Value::Null)
}

impl PausePointTools {
    pub fn new(client: Client, approver: Option<Approver>) -> PausePointTools {
        PausePointTools::with(Connection::Fixed(client), approver)
    }

    /// The tools for `/mcp` on a server whose API is at `base`: each call acts with the
    /// bearer key of its own HTTP request. `approver` is who `request_permission` asks
    /// when the URL's `?approver=` does not say.
    pub fn per_request(base: &str, approver: Option<Approver>) -> PausePointTools {
        PausePointTools::with(
            Connection::PerRequest {
                base: base.trim_end_matches('/').to_owned(),
            },
            approver,
        )
    }

    fn with(connection: Connection, approver: Option<Approver>) -> PausePointTools {
        let mut tool_router = Self::tool_router();
        for route in tool_router.map.values_mut() {
            route.attr.output_schema = schemas::output(&route.attr.name).map(std::sync::Arc::new);
        }
        PausePointTools {
            connection,
            approver,
            tool_router,
            tasks: TaskManager::new(),
        }
    }

    /// The client a call acts with.
    fn client(&self, context: &RequestContext<RoleServer>) -> Result<Client, CallToolResult> {
        match &self.connection {
            Connection::Fixed(client) => Ok(client.clone()),
            Connection::PerRequest { base } => {
                let key = http_parts(context)
                    .and_then(|parts| parts.headers.get(http::header::AUTHORIZATION))
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.split_once(' '))
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, key)| key.trim().to_owned())
                    .ok_or_else(|| failure("this call carries no API key"))?;
                Client::new(base, &key).map_err(|e| client_failure(&e))
            }
        }
    }

    /// Who `request_permission` asks: for `/mcp`, the URL's `?approver=&channel=&timeout=`
    /// (seconds) first.
    fn approver(&self, context: &RequestContext<RoleServer>) -> Option<Approver> {
        let query = http_parts(context).and_then(|parts| parts.uri.query().map(str::to_owned));
        let Some(query) =
            query.filter(|_| matches!(self.connection, Connection::PerRequest { .. }))
        else {
            return self.approver.clone();
        };
        let mut approver = self.approver.clone();
        let mut timeout = None;
        let mut channel = None;
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "approver" => {
                    approver = Some(Approver {
                        recipient: value.into_owned(),
                        channel: None,
                        timeout: DEFAULT_APPROVAL_TIMEOUT,
                    })
                }
                "channel" => channel = Some(value.into_owned()),
                "timeout" => timeout = value.parse::<u64>().ok().map(Duration::from_secs),
                _ => {}
            }
        }
        approver.map(|mut approver| {
            approver.channel = channel.or(approver.channel);
            approver.timeout = timeout.unwrap_or(approver.timeout);
            approver
        })
    }

    /// Long-polls until the pause is decided or `wait` passes, reporting progress while it
    /// waits and stopping as soon as the call (or task) is cancelled.
    async fn wait_with_progress(
        &self,
        client: &Client,
        id: Uuid,
        wait: Duration,
        waiting: &Waiting<'_>,
    ) -> Result<Pause, ClientError> {
        let started = Instant::now();
        let mut pause = client.get(id).await?;
        loop {
            let elapsed = started.elapsed();
            if pause.status.is_final() || elapsed >= wait || waiting.is_cancelled() {
                return Ok(pause);
            }
            // Report where things stand now, then again after every slice of waiting.
            let left = pause.expires_at.as_second() - jiff::Timestamp::now().as_second();
            let message = format!(
                "waited {}s; the human has {} left",
                elapsed.as_secs(),
                short(left)
            );
            waiting.report(elapsed, wait, message).await;
            let slice = (wait - elapsed).min(PROGRESS_EVERY);
            tokio::select! {
                polled = client.poll(id, slice.max(Duration::from_secs(1))) => pause = polled?,
                () = waiting.cancelled() => return Ok(pause),
            }
        }
    }

    /// Asks the approver whether `args.tool_name` may run, and waits for the answer.
    async fn ask_permission(
        &self,
        client: &Client,
        approver: &Approver,
        args: &PermissionArgs,
        waiting: &Waiting<'_>,
    ) -> CallToolResult {
        let deny = |message: String| {
            let decision = json!({ "behavior": "deny", "message": message });
            answer(decision.to_string(), decision)
        };
        let tool_input = match &args.input {
            Value::Object(map) => map.clone(),
            Value::Null => Map::new(),
            other => Map::from_iter([("input".to_owned(), other.clone())]),
        };
        let message = claude_code::question(&args.tool_name, &tool_input, None);
        let request = CreatePause {
            recipient: Some(approver.recipient.clone()),
            channel: Some(
                approver
                    .channel
                    .clone()
                    .unwrap_or_else(|| Channel::infer(&approver.recipient).as_str().to_owned()),
            ),
            message: Some(message),
            options: Some(claude_code::options(false)),
            // A note lets the approver say why, and the reason goes back to the model.
            allow_text_response: Some(true),
            timeout_seconds: Some(approver.timeout.as_secs().max(1)),
            timeout_default: Some(claude_code::DENY.into()),
            metadata: Some(json!({ "tool_name": args.tool_name, "tool_use_id": args.tool_use_id })),
            ..CreatePause::default()
        };
        let pause = match client.create(&request, args.tool_use_id.as_deref()).await {
            Ok(pause) => pause,
            Err(e) => return deny(format!("Could not ask the approver: {e}")),
        };
        let wait = Duration::from_secs(approver.timeout.as_secs() + 30);
        let decided = match self
            .wait_with_progress(client, pause.pause_id, wait, waiting)
            .await
        {
            Ok(decided) => decided,
            Err(e) => return deny(format!("Lost the approver's answer: {e}")),
        };
        // Nobody waits for this answer any more: withdraw the question, so the approver's
        // link says so rather than asking on.
        if waiting.is_cancelled() && !decided.status.is_final() {
            if let Err(e) = client.cancel(decided.pause_id).await {
                tracing::warn!(error = %e, "could not withdraw an abandoned permission question");
            }
        }
        match Verdict::of(&decided) {
            Verdict::Allow { .. } => {
                let decision = json!({ "behavior": "allow", "updatedInput": args.input });
                answer(decision.to_string(), decision)
            }
            other => deny(other.reason().to_owned()),
        }
    }

    /// Runs a call that waits for a person as an MCP task (for clients that support
    /// tasks): the call returns a task at once, and the task completes when the person
    /// decides, with no per-call limit on the wait. None for a call that is not one.
    fn as_task(
        &self,
        request: &rmcp::model::CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Option<Result<rmcp::model::CallToolResponse, rmcp::ErrorData>> {
        let arguments = Value::Object(request.arguments.clone().unwrap_or_default());
        let invalid = |e: serde_json::Error| rmcp::ErrorData::invalid_params(e.to_string(), None);
        let client = match self.client(context) {
            Ok(client) => client,
            Err(error) => return Some(Ok(error.into())),
        };
        let this = self.clone();
        let (ttl, make): (Duration, TaskBody) = match request.name.as_ref() {
            "poll_pause_request" => {
                let args: PollArgs = match serde_json::from_value(arguments) {
                    Ok(args) => args,
                    Err(e) => return Some(Err(invalid(e))),
                };
                let id = match parse_id(&args.pause_id) {
                    Ok(id) => id,
                    Err(error) => return Some(Ok(error.into())),
                };
                // Pauses last at most 30 days; a task that outlives its pause has failed.
                (
                    Duration::from_secs(31 * 86_400),
                    Box::new(move |task| {
                        Box::pin(async move {
                            let waiting = Waiting::Task(&task);
                            let forever = Duration::from_secs(31 * 86_400);
                            match this
                                .wait_with_progress(&client, id, forever, &waiting)
                                .await
                            {
                                _ if task.is_cancel_requested() => Err(TaskExit::Cancelled),
                                Ok(pause) => Ok(answer(summary(&pause), pause_value(&pause))),
                                Err(e) => Ok(client_failure(&e)),
                            }
                        })
                    }),
                )
            }
            "request_permission" => {
                let args: PermissionArgs = match serde_json::from_value(arguments) {
                    Ok(args) => args,
                    Err(e) => return Some(Err(invalid(e))),
                };
                let approver = self.approver(context)?;
                (
                    approver.timeout + Duration::from_secs(300),
                    Box::new(move |task| {
                        Box::pin(async move {
                            let waiting = Waiting::Task(&task);
                            let answer = this
                                .ask_permission(&client, &approver, &args, &waiting)
                                .await;
                            match task.is_cancel_requested() {
                                true => Err(TaskExit::Cancelled),
                                false => Ok(answer),
                            }
                        })
                    }),
                )
            }
            _ => return None,
        };
        let options = TaskOptions::new()
            .with_ttl_ms(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .with_poll_interval_ms(2_000)
            .with_status_message("waiting for the human");
        let task = self.tasks.spawn(options, make);
        Some(Ok(rmcp::model::CallToolResponse::Task(
            rmcp::model::CreateTaskResult::new(task),
        )))
    }
}

/// The body of a task, given its context.
type TaskBody = Box<dyn FnOnce(TaskContext) -> rmcp::task_manager::TaskFuture + Send>;

/// Where a waiting call reports to and learns it should stop: a plain call sends
/// progress notifications (when the client asked for them) and stops when the client
/// cancels it; a task sets its status message and stops on `tasks/cancel`.
enum Waiting<'a> {
    Call(&'a RequestContext<RoleServer>),
    Task(&'a TaskContext),
}

impl Waiting<'_> {
    fn is_cancelled(&self) -> bool {
        match self {
            Waiting::Call(context) => context.ct.is_cancelled(),
            Waiting::Task(task) => task.is_cancel_requested(),
        }
    }

    async fn cancelled(&self) {
        match self {
            Waiting::Call(context) => context.ct.cancelled().await,
            Waiting::Task(task) => task.cancelled().await,
        }
    }

    async fn report(&self, elapsed: Duration, wait: Duration, message: String) {
        match self {
            Waiting::Call(context) => {
                if let Some(token) = context.meta.get_progress_token() {
                    let progress =
                        ProgressNotificationParam::new(token, elapsed.as_secs_f64().round())
                            .with_total(wait.as_secs_f64())
                            .with_message(message);
                    let _ = context.peer.notify_progress(progress).await;
                }
            }
            Waiting::Task(task) => task.set_status_message(message),
        }
    }
}

#[tool_router]
impl PausePointTools {
    /// Ask a human to decide before you do something irreversible (move money, send to
    /// many people, delete data, deploy). Returns at once with a pause_id while the human
    /// gets a text, email or Slack message with a link to answer; then call
    /// poll_pause_request with that pause_id to wait for the decision. Do not go ahead
    /// until the answer allows it.
    #[tool(name = "create_pause_request")]
    async fn create_pause_request(
        &self,
        Parameters(args): Parameters<CreatePauseArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let client = match self.client(&context) {
            Ok(client) => client,
            Err(error) => return error,
        };
        let timeout_seconds = match (args.timeout_seconds, args.timeout_hours) {
            (Some(seconds), _) => Some(seconds),
            (None, Some(hours)) if hours.is_finite() && hours > 0.0 => {
                Some((hours * 3600.0).round() as u64)
            }
            (None, Some(_)) => return failure("timeout_hours must be a positive number of hours"),
            (None, None) => None,
        };
        // The channel of a lone recipient is inferred here, as the API needs it with
        // `recipient`; the server infers those of `recipients`.
        let channel = match (&args.recipient, &args.channel) {
            (_, Some(channel)) => Some(channel.clone()),
            (Some(recipient), None) => Some(Channel::infer(recipient).as_str().to_owned()),
            (None, None) => None,
        };
        let request = CreatePause {
            recipient: args.recipient,
            channel,
            recipients: args
                .recipients
                .map(|list| list.into_iter().map(RecipientArg::spec).collect()),
            quorum: args.quorum.map(|quorum| Quorum {
                option: quorum.option,
                count: quorum.count,
            }),
            escalation: args.escalation.map(|tiers| {
                tiers
                    .into_iter()
                    .map(|tier| EscalationTier {
                        after_seconds: tier.after_seconds,
                        recipients: tier
                            .recipients
                            .into_iter()
                            .map(RecipientArg::spec)
                            .collect(),
                    })
                    .collect()
            }),
            remind_every_seconds: args.remind_every_seconds,
            message: Some(args.message),
            options: Some(args.options),
            allow_text_response: args.allow_text_response,
            timeout_seconds,
            timeout_default: args.timeout_default,
            metadata: args.metadata.map(Value::Object),
            webhook_url: args.webhook_url,
            ..CreatePause::default()
        };
        match client
            .create(&request, args.idempotency_key.as_deref())
            .await
        {
            Ok(pause) => {
                let left = pause.expires_at.as_second() - pause.created_at.as_second();
                let text = format!(
                    "Created pause {id}: asked {to} ({channel}) to choose {options}; expires in {left}. \
                     Call poll_pause_request with pause_id {id} to wait for the decision.",
                    id = pause.pause_id,
                    to = pause.recipient,
                    channel = pause.channel,
                    options = pause.options.join(" / "),
                    left = short(left),
                );
                answer(text, pause_value(&pause))
            }
            Err(e) => client_failure(&e),
        }
    }

    /// Wait for the human's decision on a pause, up to wait_seconds (at most 50) per call.
    /// Returns the pause and a one-line summary. While status is "pending", call again; once
    /// it is "responded" use response_choice (and response_text); "timed_out" means nobody
    /// answered (response_choice is the timeout_default, if any); "cancelled" means the
    /// question was withdrawn.
    #[tool(name = "poll_pause_request")]
    async fn poll_pause_request(
        &self,
        Parameters(args): Parameters<PollArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let id = match parse_id(&args.pause_id) {
            Ok(id) => id,
            Err(error) => return error,
        };
        let wait = args.wait_seconds.unwrap_or(30).min(MAX_WAIT_SECONDS);
        let client = match self.client(&context) {
            Ok(client) => client,
            Err(error) => return error,
        };
        match self
            .wait_with_progress(
                &client,
                id,
                Duration::from_secs(wait),
                &Waiting::Call(&context),
            )
            .await
        {
            Ok(pause) => answer(summary(&pause), pause_value(&pause)),
            Err(e) => client_failure(&e),
        }
    }

    /// Withdraw a pending question, for example when it no longer matters. The human's
    /// link then says it was withdrawn. Fails if the pause was already decided.
    #[tool(name = "cancel_pause_request")]
    async fn cancel_pause_request(
        &self,
        Parameters(args): Parameters<PauseIdArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let client = match self.client(&context) {
            Ok(client) => client,
            Err(error) => return error,
        };
        let id = match parse_id(&args.pause_id) {
            Ok(id) => id,
            Err(error) => return error,
        };
        match client.cancel(id).await {
            Ok(pause) => answer(format!("Cancelled pause {id}."), pause_value(&pause)),
            Err(e) => client_failure(&e),
        }
    }

    /// List pause requests, newest first, optionally only those in one status. Returns
    /// {data, next_cursor}; pass next_cursor back as cursor for the next page.
    #[tool(name = "list_pause_requests")]
    async fn list_pause_requests(
        &self,
        Parameters(args): Parameters<ListArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let client = match self.client(&context) {
            Ok(client) => client,
            Err(error) => return error,
        };
        let status = match args
            .status
            .as_deref()
            .map(str::parse::<PauseStatus>)
            .transpose()
        {
            Ok(status) => status,
            Err(e) => return failure(e),
        };
        match client
            .list(status, args.limit, args.cursor.as_deref())
            .await
        {
            Ok(page) => {
                let mut lines: Vec<String> = page
                    .data
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {} {}: {}",
                            p.pause_id,
                            p.status,
                            p.recipient,
                            p.message.chars().take(80).collect::<String>()
                        )
                    })
                    .collect();
                if lines.is_empty() {
                    lines.push("No pauses.".into());
                }
                if page.next_cursor.is_some() {
                    lines.push("More: call again with cursor = next_cursor.".into());
                }
                answer(
                    lines.join("\n"),
                    serde_json::to_value(&page).unwrap_or(Value::Null),
                )
            }
            Err(e) => client_failure(&e),
        }
    }

    /// Read the tamper-evident audit log, oldest first: who asked what, who answered what,
    /// timeouts and cancellations, with times and the exact message and options.
    #[tool(name = "get_audit_log")]
    async fn get_audit_log(
        &self,
        Parameters(args): Parameters<AuditArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let client = match self.client(&context) {
            Ok(client) => client,
            Err(error) => return error,
        };
        let pause_id = match args.pause_id.as_deref().map(parse_id).transpose() {
            Ok(id) => id,
            Err(error) => return error,
        };
        let query = AuditQuery {
            pause_id,
            event: args.event,
            actor: None,
            since: args.since,
            until: None,
            limit: args.limit,
            cursor: None,
            bundle: false,
        };
        match client.audit(&query).await {
            Ok(page) => {
                let mut lines: Vec<String> = page
                    .data
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {} {} by {}",
                            pausepoint_api::time::format(&e.occurred_at),
                            e.event,
                            e.pause_id.map(|p| p.to_string()).unwrap_or_default(),
                            e.actor
                        )
                    })
                    .collect();
                if lines.is_empty() {
                    lines.push("No matching events.".into());
                }
                answer(
                    lines.join("\n"),
                    serde_json::to_value(&page).unwrap_or(Value::Null),
                )
            }
            Err(e) => client_failure(&e),
        }
    }

    /// Ask the configured human approver whether a tool may run (Claude Code's
    /// --permission-prompt-tool). Blocks until they answer Allow or Deny; no answer in time
    /// means deny. Returns {"behavior":"allow","updatedInput":…} or {"behavior":"deny","message":…}.
    #[tool(name = "request_permission")]
    async fn request_permission(
        &self,
        Parameters(args): Parameters<PermissionArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let deny = |message: String| {
            let decision = json!({ "behavior": "deny", "message": message });
            answer(decision.to_string(), decision)
        };
        let Some(approver) = self.approver(&context) else {
            return deny(
                "No approver is configured: set PAUSEPOINT_APPROVER for pp mcp, or add \
                 ?approver=… to the /mcp URL."
                    .into(),
            );
        };
        let client = match self.client(&context) {
            Ok(client) => client,
            Err(error) => return error,
        };
        self.ask_permission(&client, &approver, &args, &Waiting::Call(&context))
            .await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for PausePointTools {
    async fn call_tool(
        &self,
        request: rmcp::model::CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
        let tasks = context
            .client_capabilities()
            .is_some_and(|capabilities| capabilities.supports_tasks());
        if tasks {
            if let Some(task) = self.as_task(&request, &context) {
                return task;
            }
        }
        let call = rmcp::handler::server::tool::ToolCallContext::new(self, request, context);
        self.tool_router.call(call).await
    }

    async fn get_task(
        &self,
        request: rmcp::model::GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::GetTaskResult, rmcp::ErrorData> {
        Ok(rmcp::model::GetTaskResult::new(
            self.tasks.get_task(&request.task_id)?,
        ))
    }

    async fn cancel_task(
        &self,
        request: rmcp::model::CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), rmcp::ErrorData> {
        self.tasks.cancel_task(&request.task_id)
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new("pausepoint", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "PausePoint asks a human before an irreversible action. Call create_pause_request \
                 with the question and options, then poll_pause_request until the status is no \
                 longer pending, and act only on the decision.",
        )
    }
}

/// The tools over Streamable HTTP, for `pp server` to serve at `/mcp`. `base` is the
/// server's own API, which each call uses with its request's bearer key (the server checks
/// the key before the request gets here); `allowed_hosts` are the `Host`s accepted (the
/// public URL's and the listening address's). Stateless, so that any of several servers
/// can answer any request; a waiting call streams its progress notifications.
pub fn streamable_http(
    base: &str,
    approver: Option<Approver>,
    allowed_hosts: Vec<String>,
    stop: tokio_util::sync::CancellationToken,
) -> rmcp::transport::StreamableHttpService<
    PausePointTools,
    rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
> {
    let tools = PausePointTools::per_request(base, approver);
    let config = rmcp::transport::StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_allowed_hosts(allowed_hosts)
        .with_cancellation_token(stop);
    rmcp::transport::StreamableHttpService::new(
        move || Ok(tools.clone()),
        std::sync::Arc::default(),
        config,
    )
}

/// Serves the tools over stdin/stdout until the client goes away.
pub async fn serve_stdio(
    client: Client,
    approver: Option<Approver>,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let service = PausePointTools::new(client, approver)
        .serve(rmcp::transport::stdio())
        .await?;
    service.waiting().await?;
    Ok(())
}
