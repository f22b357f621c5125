//! `pp webhook`: see what was sent to a pause's webhook, send a failed event again, and
//! check a received webhook's signature (for whoever writes the receiver).

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use pausepoint_api::webhooks;
use uuid::Uuid;

use crate::connection::ConnectionArgs;
use crate::{output, Outcome};

#[derive(Args)]
pub struct WebhookArgs {
    #[command(subcommand)]
    command: WebhookCommand,
}

#[derive(Subcommand)]
enum WebhookCommand {
    /// The events sent (or to send) to a pause's webhook_url, with every attempt
    List {
        /// The pause
        id: Uuid,
        /// Print them as JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Send a failed event again now
    Resend {
        /// The pause
        id: Uuid,
        /// The event (its webhook-id, msg_…), as `pp webhook list` shows it
        event_id: String,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Check a received webhook: does its signature hold under the secret, and is it fresh?
    #[command(
        after_help = "Examples:\n  pp webhook verify --secret whsec_… --headers headers.txt body.json\n  pp webhook verify --secret whsec_… --id msg_… --timestamp 1700000000 --signature 'v1,…' < body.json\n\nExit codes: 0 valid, 1 not valid (the reason on stderr)."
    )]
    Verify(VerifyArgs),
}

#[derive(Args)]
struct VerifyArgs {
    /// The endpoint's secret (pp admin webhook-secret prints it)
    #[arg(long, env = "PAUSEPOINT_WEBHOOK_SECRET", hide_env_values = true)]
    secret: String,
    /// A file of the request's headers, one "name: value" per line (as curl -D writes them)
    #[arg(long, value_name = "FILE")]
    headers: Option<PathBuf>,
    /// The webhook-id header
    #[arg(long)]
    id: Option<String>,
    /// The webhook-timestamp header
    #[arg(long)]
    timestamp: Option<String>,
    /// The webhook-signature header
    #[arg(long)]
    signature: Option<String>,
    /// Check as if the time were this (Unix seconds), to look at a captured request later
    #[arg(long, value_name = "UNIX_SECONDS")]
    now: Option<i64>,
    /// The exact body received [default: stdin]
    body: Option<PathBuf>,
}

pub async fn run(args: WebhookArgs) -> anyhow::Result<Outcome> {
    match args.command {
        WebhookCommand::List {
            id,
            json,
            connection,
        } => {
            let events = connection.client()?.webhooks(id).await?.data;
            if json {
                output::json(&events)?;
            } else if events.is_empty() {
                eprintln!("No webhook events for this pause (it has no webhook_url, or is still pending).");
            } else {
                let mut table = output::table(&[
                    "EVENT ID", "TYPE", "STATUS", "ATTEMPT", "WHEN", "ANSWER", "ERROR",
                ]);
                for event in &events {
                    for attempt in &event.attempt_log {
                        table.add_row(vec![
                            event.event_id.clone(),
                            event.kind.to_string(),
                            event.status.to_string(),
                            attempt.attempt.to_string(),
                            output::when(attempt.attempted_at),
                            attempt
                                .status_code
                                .map(|c| c.to_string())
                                .unwrap_or_else(|| "-".into()),
                            output::cut(attempt.error.as_deref().unwrap_or(""), 60),
                        ]);
                    }
                    if event.attempt_log.is_empty() {
                        table.add_row(vec![
                            event.event_id.clone(),
                            event.kind.to_string(),
                            event.status.to_string(),
                            "-".into(),
                            "-".into(),
                            "-".into(),
                            String::new(),
                        ]);
                    }
                }
                println!("{table}");
            }
            Ok(Outcome::Done)
        }
        WebhookCommand::Resend {
            id,
            event_id,
            connection,
        } => {
            let event = connection.client()?.resend_webhook(id, &event_id).await?;
            println!(
                "Sending {} ({}) to {} again.",
                event.event_id, event.kind, event.url
            );
            Ok(Outcome::Done)
        }
        WebhookCommand::Verify(args) => verify(args),
    }
}

fn verify(args: VerifyArgs) -> anyhow::Result<Outcome> {
    let mut headers: HashMap<String, String> = HashMap::new();
    if let Some(path) = &args.headers {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for line in text.lines() {
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
    }
    let header = |flag: &Option<String>, name: &str| {
        flag.clone()
            .or_else(|| headers.get(name).cloned())
            .unwrap_or_default()
    };
    let id = header(&args.id, "webhook-id");
    let timestamp = header(&args.timestamp, "webhook-timestamp");
    let signature = header(&args.signature, "webhook-signature");
    let mut body = Vec::new();
    match &args.body {
        Some(path) if path.as_os_str() != "-" => {
            body =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        }
        _ => {
            std::io::stdin()
                .read_to_end(&mut body)
                .context("cannot read the body from stdin")?;
        }
    }
    let now = args
        .now
        .unwrap_or_else(|| jiff::Timestamp::now().as_second());
    match webhooks::verify(&args.secret, &id, &timestamp, &signature, &body, now) {
        Ok(()) => {
            let age = timestamp
                .trim()
                .parse::<i64>()
                .map(|t| now - t)
                .unwrap_or_default();
            println!(
                "valid: the signature matches, and the webhook was signed {age} s before the check"
            );
            Ok(Outcome::Done)
        }
        Err(e) => bail!("not valid: {e}"),
    }
}
