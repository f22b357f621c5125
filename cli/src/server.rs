//! `pp server`: opens the database, makes the first key on an empty one, and serves until
//! Ctrl-C or SIGTERM.

use std::net::SocketAddr;

use anyhow::{bail, Context};
use clap::Args;
use pausepoint_api::Channel;
use pausepoint_server::config::{
    self, Secret, SlackAppConfig, SmtpConfig, TwilioConfig, DEFAULT_BIND, SLACK_API_URL,
    TWILIO_API_URL,
};
use pausepoint_server::domain::approvals::{check_approver, Approver};
use pausepoint_server::domain::keys::{self, DEFAULT_PROJECT};
use pausepoint_server::domain::{pauses, projects};
use pausepoint_server::store::mask_password;
use pausepoint_server::store::Actor;
use pausepoint_server::{App, Config};
use tokio::net::TcpListener;
use url::Url;

use crate::DatabaseArg;

#[derive(Args)]
pub struct ServerArgs {
    #[command(flatten)]
    database: DatabaseArg,
    /// The name people see for who asks ("Decision requested by …"), given to the first project: on a new database, or when it is still called "default"
    #[arg(long, env = "PAUSEPOINT_PROJECT_NAME", value_name = "NAME")]
    project_name: Option<String>,
    /// Address and port to listen on (port 0 picks a free one)
    #[arg(long, env = "PAUSEPOINT_BIND", default_value = DEFAULT_BIND)]
    bind: SocketAddr,
    /// The address humans reach this server at, used in the links sent to them [default: http://BIND]
    #[arg(long, env = "PAUSEPOINT_PUBLIC_URL", value_name = "URL")]
    public_url: Option<Url>,
    /// Allow webhook and Slack targets on loopback and private networks
    #[arg(long, env = "PAUSEPOINT_ALLOW_PRIVATE_NETWORK")]
    allow_private_network: bool,
    /// Send outbound HTTP (webhooks, Slack, Twilio) through this proxy; HTTP(S)_PROXY in the environment is ignored
    #[arg(
        long,
        env = "PAUSEPOINT_OUTBOUND_PROXY",
        value_name = "URL",
        hide_env_values = true
    )]
    outbound_proxy: Option<Url>,
    /// POST every signed audit checkpoint here (signed like webhooks, retried until it lands), so a copy lives outside the database
    #[arg(long, env = "PAUSEPOINT_CHECKPOINT_URL", value_name = "URL")]
    checkpoint_url: Option<Url>,
    /// How often each project's audit log is checkpointed while events arrive (at most 60s)
    #[arg(long, env = "PAUSEPOINT_CHECKPOINT_EVERY", value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    checkpoint_every: std::time::Duration,
    /// Who a Claude Code HTTP hook asks when its URL names no approver: a phone number, an email address or a Slack webhook URL
    #[arg(long, env = "PAUSEPOINT_DEFAULT_APPROVER", value_name = "RECIPIENT")]
    default_approver: Option<String>,
    /// How to reach the default approver: sms, email, slack or ntfy [default: inferred]
    #[arg(
        long,
        env = "PAUSEPOINT_DEFAULT_APPROVER_CHANNEL",
        value_name = "CHANNEL",
        requires = "default_approver"
    )]
    default_approver_channel: Option<String>,
    /// How long a hook's approver has when its URL does not say; keep it under the hook's own timeout
    #[arg(long, env = "PAUSEPOINT_DEFAULT_APPROVAL_TIMEOUT", value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    default_approval_timeout: std::time::Duration,
    /// Serve /metrics on this address only (for example 127.0.0.1:9090), not beside the API
    #[arg(long, env = "PAUSEPOINT_METRICS_BIND", value_name = "ADDR")]
    metrics_bind: Option<SocketAddr>,
    /// Connections open at once; more wait in the kernel's backlog
    #[arg(long, env = "PAUSEPOINT_MAX_CONNECTIONS", value_name = "N", default_value_t = config::MAX_CONNECTIONS, help_heading = "Limits")]
    max_connections: usize,
    /// How long a client has to send a request's headers; idle keep-alive connections close after it too
    #[arg(long, env = "PAUSEPOINT_HEADER_READ_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration, help_heading = "Limits")]
    header_read_timeout: std::time::Duration,
    /// How long any request but a long-poll may take before it is answered 503
    #[arg(long, env = "PAUSEPOINT_REQUEST_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration, help_heading = "Limits")]
    request_timeout: std::time::Duration,
    /// Long-polls (GET /v1/pause/{id}?wait=) one API key may hold open at once; more get 429
    #[arg(long, env = "PAUSEPOINT_MAX_LONG_POLLS_PER_KEY", value_name = "N", default_value_t = config::MAX_LONG_POLLS_PER_KEY, help_heading = "Limits")]
    max_long_polls_per_key: usize,
    /// Twilio account SID: SMS are sent through Twilio when this, the token and --twilio-from are set
    #[arg(
        long,
        env = "PAUSEPOINT_TWILIO_ACCOUNT_SID",
        value_name = "SID",
        help_heading = "SMS (Twilio)"
    )]
    twilio_account_sid: Option<String>,
    /// Twilio auth token
    #[arg(
        long,
        env = "PAUSEPOINT_TWILIO_AUTH_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        help_heading = "SMS (Twilio)"
    )]
    twilio_auth_token: Option<String>,
    /// The sending number (E.164) or Messaging Service SID (MG…)
    #[arg(
        long,
        env = "PAUSEPOINT_TWILIO_FROM",
        value_name = "NUMBER|MG…",
        help_heading = "SMS (Twilio)"
    )]
    twilio_from: Option<String>,
    /// Twilio's API address (change it only to test against a stand-in)
    #[arg(long, env = "PAUSEPOINT_TWILIO_API_URL", value_name = "URL", default_value = TWILIO_API_URL, help_heading = "SMS (Twilio)")]
    twilio_api_url: String,
    /// The sender's throughput in message segments per second (1 for a US long code); SMS beyond it wait their turn here, not in Twilio's queue
    #[arg(long, env = "PAUSEPOINT_TWILIO_MPS", value_name = "N", default_value_t = 1.0, value_parser = positive_rate, help_heading = "SMS (Twilio)")]
    twilio_mps: f64,
    /// How long a server holds a delivery or webhook it claimed before another may take it
    #[arg(long, env = "PAUSEPOINT_WORK_LEASE", value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration, hide = true)]
    work_lease: std::time::Duration,
    /// SMTP server for email: smtp://user:pass@host:587 (STARTTLS when offered) or smtps://…:465
    #[arg(
        long,
        env = "PAUSEPOINT_SMTP_URL",
        value_name = "URL",
        hide_env_values = true,
        help_heading = "Email (SMTP)"
    )]
    smtp_url: Option<String>,
    /// The sender of the email, such as "PausePoint <approvals@example.com>"
    #[arg(
        long,
        env = "PAUSEPOINT_EMAIL_FROM",
        value_name = "ADDRESS",
        help_heading = "Email (SMTP)"
    )]
    email_from: Option<String>,
    /// An access token for ntfy servers that require one (tk_…)
    #[arg(
        long,
        env = "PAUSEPOINT_NTFY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        help_heading = "Push (ntfy)"
    )]
    ntfy_token: Option<String>,
    /// The Slack app's bot token (xoxb-…): Slack recipients may then be channel or user ids, and buttons decide in Slack
    #[arg(
        long,
        env = "PAUSEPOINT_SLACK_BOT_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        help_heading = "Slack app"
    )]
    slack_bot_token: Option<String>,
    /// The Slack app's signing secret, which proves button clicks come from Slack
    #[arg(
        long,
        env = "PAUSEPOINT_SLACK_SIGNING_SECRET",
        value_name = "SECRET",
        hide_env_values = true,
        help_heading = "Slack app"
    )]
    slack_signing_secret: Option<String>,
    /// Slack's Web API address (change it only to test against a stand-in)
    #[arg(long, env = "PAUSEPOINT_SLACK_API_URL", value_name = "URL", default_value = SLACK_API_URL, help_heading = "Slack app")]
    slack_api_url: String,
}

/// A rate: a positive number.
fn positive_rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("{value:?} is not a positive number")),
    }
}

impl ServerArgs {
    fn twilio(&self) -> anyhow::Result<Option<TwilioConfig>> {
        match (&self.twilio_account_sid, &self.twilio_auth_token, &self.twilio_from) {
            (None, None, None) => Ok(None),
            (Some(sid), Some(token), Some(from)) => Ok(Some(TwilioConfig {
                account_sid: sid.clone(),
                auth_token: Secret::new(token.clone()),
                from: from.clone(),
                api_url: self.twilio_api_url.clone(),
                segments_per_second: self.twilio_mps,
            })),
            _ => bail!("to send SMS through Twilio, give all three of --twilio-account-sid, --twilio-auth-token and --twilio-from"),
        }
    }

    fn slack_app(&self) -> anyhow::Result<Option<SlackAppConfig>> {
        match (&self.slack_bot_token, &self.slack_signing_secret) {
            (None, None) => Ok(None),
            (Some(token), Some(secret)) => Ok(Some(SlackAppConfig {
                bot_token: Secret::new(token.clone()),
                signing_secret: Secret::new(secret.clone()),
                api_url: self.slack_api_url.clone(),
            })),
            (Some(_), None) => {
                bail!("--slack-bot-token needs --slack-signing-secret, which proves clicks come from Slack")
            }
            (None, Some(_)) => {
                bail!("--slack-signing-secret needs --slack-bot-token, which posts the messages")
            }
        }
    }

    fn smtp(&self) -> anyhow::Result<Option<SmtpConfig>> {
        match (&self.smtp_url, &self.email_from) {
            (None, None) => Ok(None),
            (Some(url), Some(from)) => Ok(Some(SmtpConfig {
                url: Secret::new(url.clone()),
                from: from.clone(),
            })),
            (Some(_), None) => {
                bail!("--smtp-url needs --email-from, the address the email comes from")
            }
            (None, Some(_)) => {
                bail!("--email-from needs --smtp-url, the server that sends the email")
            }
        }
    }
}

impl ServerArgs {
    fn default_approver(&self) -> anyhow::Result<Option<Approver>> {
        let Some(recipient) = &self.default_approver else {
            return Ok(None);
        };
        let channel = self
            .default_approver_channel
            .as_deref()
            .map(str::parse::<Channel>)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--default-approver-channel: {e}"))?;
        let approver = Approver {
            recipient: recipient.clone(),
            channel,
            timeout: self.default_approval_timeout,
        };
        check_approver(&approver).map_err(|e| anyhow::anyhow!("--default-approver: {e}"))?;
        Ok(Some(approver))
    }
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let database = args.database.resolve();
    let mut config = Config::new(database.clone(), args.bind);
    config.master_key_file = args.database.master_key_file.clone();
    config.public_url = args.public_url.clone();
    config.ntfy_token = args.ntfy_token.clone().map(Secret::new);
    config.slack_app = args.slack_app()?;
    config.allow_private_network = args.allow_private_network;
    config.outbound_proxy = args.outbound_proxy.clone();
    config.metrics_bind = args.metrics_bind;
    if let Some(url) = &args.checkpoint_url {
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!("--checkpoint-url must be an http or https URL");
        }
    }
    config.checkpoint_url = args.checkpoint_url.clone();
    config.checkpoint_every = args.checkpoint_every;
    config.default_approver = args.default_approver()?;
    config.default_approval_timeout = args.default_approval_timeout;
    config.max_connections = args.max_connections;
    config.header_read_timeout = args.header_read_timeout;
    config.request_timeout = args.request_timeout;
    config.max_long_polls_per_key = args.max_long_polls_per_key;
    config.twilio = args.twilio()?;
    config.smtp = args.smtp()?;
    config.work_lease = args.work_lease;
    let app = App::open(config)
        .await
        .with_context(|| format!("cannot open the database {}", mask_password(&database)))?;
    let listener = TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let base = format!("http://{address}");

    let project_name = args
        .project_name
        .as_deref()
        .map(projects::valid_name)
        .transpose()
        .context("--project-name")?;
    if app.store().key_count().await? == 0 {
        let project = project_name.as_deref().unwrap_or(DEFAULT_PROJECT);
        let first = keys::create_key(
            app.store(),
            project,
            "first key",
            Actor::System,
            pauses::now(),
        )
        .await
        .context("cannot create the first API key")?;
        print_first_key(&first.key, project, &base);
    } else if let Some(name) = &project_name {
        name_first_project(&app, name).await?;
    }
    println!("PausePoint is listening on {base}");
    if let Some(metrics) = args.metrics_bind {
        println!("Metrics: http://{metrics}/metrics");
    }
    println!("Database: {}", app.store().location());
    for channel in [Channel::Sms, Channel::Email] {
        if !app.channels().configured(channel) {
            println!("{channel}: no provider configured; links will be printed here instead");
        }
    }
    if args.public_url.is_none() && args.bind.ip().is_unspecified() {
        println!("Note: set --public-url to the address people reach this server at; links now say {base}");
    }
    tracing::info!(%address, "serving; press Ctrl-C to stop");
    app.serve(listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Gives the project still called "default" the name `--project-name` asks for.
async fn name_first_project(app: &App, name: &str) -> anyhow::Result<()> {
    let store = app.store();
    let projects = store.projects().await?;
    let unnamed = projects.iter().any(|p| p.name == DEFAULT_PROJECT);
    if !unnamed || projects.iter().any(|p| p.name == name) {
        return Ok(());
    }
    projects::rename(store, DEFAULT_PROJECT, name, Actor::System, pauses::now())
        .await
        .context("cannot name the project")?;
    println!("The project \"{DEFAULT_PROJECT}\" is now called \"{name}\".");
    Ok(())
}

/// The first key of a new database, shown once with what to do next.
fn print_first_key(key: &str, project: &str, base: &str) {
    let named = if project == DEFAULT_PROJECT {
        "\nName it for the people you ask (\"Decision requested by …\"): pp admin projects rename default \"Acme Finance\"\n"
    } else {
        ""
    };
    println!(
        "\nThis database is new: it now has the project \"{project}\" and its first API key.\n\
         The key is shown only this once; keep it somewhere safe:\n\n    {key}\n\n\
         Try it:\n\n    export PAUSEPOINT_API_KEY={key}\n    \
         curl -X POST {base}/v1/pause -H \"Authorization: Bearer $PAUSEPOINT_API_KEY\" \\\n      \
         -H \"Content-Type: application/json\" \\\n      \
         -d '{{\"recipient\": \"+15550100\", \"channel\": \"sms\", \"message\": \"Deploy build #4712?\", \"options\": [\"Deploy\", \"Abort\"]}}'\n\n\
         More keys: pp admin keys create --name NAME\n{named}"
    );
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}
