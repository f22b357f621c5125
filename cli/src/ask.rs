//! `pp ask` and `pp wait`: put a question to a human and, with `--wait`, block until they
//! decide. Only the decision goes to stdout, so `choice=$(pp ask … --wait)` works; the exit
//! code says how it ended.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use pausepoint_api::{
    Channel, CreatePause, EscalationTier, Pause, PauseStatus, Quorum, RecipientSpec,
};
use pausepoint_client::{Client, ClientError};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::connection::ConnectionArgs;
use crate::output;
use crate::Outcome;

#[derive(Clone, Copy, ValueEnum)]
pub enum ChannelArg {
    Sms,
    Email,
    Slack,
    Ntfy,
}

#[derive(Args)]
pub struct AskArgs {
    /// The question the human sees
    message: String,
    /// Who answers: a phone number (sms), an email address (email), a Slack webhook URL
    /// (slack) or an ntfy topic URL (ntfy); give it again to ask several people, each with their own link and vote
    #[arg(long, value_name = "RECIPIENT", required = true)]
    to: Vec<String>,
    /// How to reach them [default: inferred from each --to]
    #[arg(long, value_enum)]
    channel: Option<ChannelArg>,
    /// An option that needs several votes, such as Approve=2; any other answer decides at once
    #[arg(long, value_name = "OPTION=COUNT", value_parser = parse_quorum)]
    quorum: Option<Quorum>,
    /// Also ask RECIPIENT when nobody has decided after DURATION, such as 30m:boss@example.com;
    /// give it again for more people or later tiers
    #[arg(long = "escalate", value_name = "DURATION:RECIPIENT", value_parser = parse_escalation)]
    escalate: Vec<(Duration, String)>,
    /// Ask again those who have not answered this often (at least 1m; at most 5 times)
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    remind: Option<Duration>,
    /// An answer the human can tap; give 2 to 5
    #[arg(short = 'o', long = "option", value_name = "OPTION", required = true)]
    options: Vec<String>,
    /// How long the human has: 30s, 90m, 4h, 2d [default: 24h]
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    timeout: Option<Duration>,
    /// The option to take when nobody answers in time
    #[arg(long, value_name = "OPTION")]
    default: Option<String>,
    /// Let the human add a written note
    #[arg(long)]
    allow_text: bool,
    /// Metadata returned with the pause; VALUE is JSON when it parses, else a string
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = parse_meta)]
    meta: Vec<(String, Value)>,
    /// Send signed events about this pause to this URL
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    /// Makes retries of this command create one pause, not several
    #[arg(long, value_name = "KEY")]
    idempotency_key: Option<String>,
    /// Block until the human decides; print the decision
    #[arg(long)]
    wait: bool,
    #[command(flatten)]
    waiting: WaitOptions,
    /// Print the whole pause as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: ConnectionArgs,
}

#[derive(Args)]
pub struct WaitOptions {
    /// On Ctrl-C, cancel the pause instead of leaving it pending
    #[arg(long)]
    cancel_on_interrupt: bool,
}

#[derive(Args)]
pub struct WaitArgs {
    /// The pause to wait for
    id: Uuid,
    #[command(flatten)]
    waiting: WaitOptions,
    /// Print the whole pause as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: ConnectionArgs,
}

/// "30s", "90m", "4h", "2d", "1h 30m".
fn parse_timeout(raw: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(raw)
        .map_err(|e| format!("{e}; use a duration such as 30s, 90m, 4h or 2d"))?;
    if duration.as_secs() == 0 {
        return Err("the timeout must be at least one second".into());
    }
    Ok(duration)
}

/// "Approve=2".
fn parse_quorum(raw: &str) -> Result<Quorum, String> {
    let (option, count) = raw
        .rsplit_once('=')
        .ok_or("expected OPTION=COUNT, such as Approve=2")?;
    let count = count
        .trim()
        .parse()
        .map_err(|_| format!("{count:?} is not a number of votes"))?;
    Ok(Quorum {
        option: option.trim().to_owned(),
        count,
    })
}

/// "30m:boss@example.com" -> (30 minutes, "boss@example.com").
fn parse_escalation(raw: &str) -> Result<(Duration, String), String> {
    let (after, recipient) = raw
        .split_once(':')
        .ok_or("expected DURATION:RECIPIENT, such as 30m:boss@example.com")?;
    let after = parse_timeout(after.trim())?;
    if recipient.trim().is_empty() {
        return Err("the recipient after : is empty".into());
    }
    Ok((after, recipient.trim().to_owned()))
}

/// The `--escalate` flags as tiers: one per distinct delay, in order.
/// Their channels are inferred from each recipient.
fn tiers(escalate: Vec<(Duration, String)>) -> Vec<EscalationTier> {
    let mut tiers: Vec<EscalationTier> = Vec::new();
    let mut escalate = escalate;
    escalate.sort_by_key(|(after, _)| *after);
    for (after, recipient) in escalate {
        let spec = RecipientSpec {
            recipient,
            channel: None,
        };
        match tiers.last_mut() {
            Some(tier) if tier.after_seconds == after.as_secs() => tier.recipients.push(spec),
            _ => tiers.push(EscalationTier {
                after_seconds: after.as_secs(),
                recipients: vec![spec],
            }),
        }
    }
    tiers
}

/// "amount=340" -> ("amount", 340); "name=Acme" -> ("name", "Acme").
fn parse_meta(raw: &str) -> Result<(String, Value), String> {
    let (key, value) = raw.split_once('=').ok_or("expected KEY=VALUE")?;
    if key.trim().is_empty() {
        return Err("the key before = is empty".into());
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((key.trim().to_owned(), value))
}

pub async fn ask(args: AskArgs) -> anyhow::Result<Outcome> {
    let client = args.connection.client()?;
    let channel = args.channel.map(|channel| match channel {
        ChannelArg::Sms => "sms",
        ChannelArg::Email => "email",
        ChannelArg::Slack => "slack",
        ChannelArg::Ntfy => "ntfy",
    });
    let metadata = (!args.meta.is_empty())
        .then(|| Value::Object(args.meta.into_iter().collect::<Map<_, _>>()));
    // One person: the original form, `recipient` and `channel`. Several: `recipients`.
    let (recipient, recipient_channel, recipients) = match args.to.as_slice() {
        [one] => (
            Some(one.clone()),
            Some(channel.unwrap_or(Channel::infer(one).as_str()).to_owned()),
            None,
        ),
        several => (
            None,
            None,
            Some(
                several
                    .iter()
                    .map(|recipient| RecipientSpec {
                        recipient: recipient.clone(),
                        channel: channel.map(str::to_owned),
                    })
                    .collect(),
            ),
        ),
    };
    let escalation = (!args.escalate.is_empty()).then(|| tiers(args.escalate));
    let request = CreatePause {
        recipient,
        channel: recipient_channel,
        recipients,
        quorum: args.quorum,
        escalation,
        remind_every_seconds: args.remind.map(|every| every.as_secs()),
        message: Some(args.message),
        options: Some(args.options),
        allow_text_response: args.allow_text.then_some(true),
        timeout_seconds: args.timeout.map(|t| t.as_secs()),
        timeout_default: args.default,
        metadata,
        webhook_url: args.webhook,
        ..CreatePause::default()
    };
    let pause = client
        .create(&request, args.idempotency_key.as_deref())
        .await?;
    if !args.wait {
        if args.json {
            output::json(&pause)?;
        } else {
            println!("{}", pause.pause_id);
        }
        return Ok(Outcome::Done);
    }
    wait_for(&client, pause, &args.waiting, args.json).await
}

pub async fn wait(args: WaitArgs) -> anyhow::Result<Outcome> {
    let client = args.connection.client()?;
    let pause = client.get(args.id).await?;
    wait_for(&client, pause, &args.waiting, args.json).await
}

/// Waits for the decision (or Ctrl-C) and prints it.
async fn wait_for(
    client: &Client,
    pause: Pause,
    options: &WaitOptions,
    json: bool,
) -> anyhow::Result<Outcome> {
    let id = pause.pause_id;
    let spinner = Spinner::start(&pause);
    let interactive = std::io::stderr().is_terminal();
    let mut lost = false;
    let waited = client.wait(id, |error, _| {
        if let Some(spinner) = &spinner {
            spinner.bar.set_message(format!("{error}; retrying"));
        } else if !lost && !interactive {
            eprintln!("pp: {error}; still waiting for pause {id} and retrying");
        }
        lost = true;
    });
    // Ctrl-C first: its handler is installed when first polled, and must be before the
    // wait sends its request, or a Ctrl-C right after the server sees the wait kills the
    // process instead of saying how to resume.
    let decided = tokio::select! {
        biased;
        interrupted = tokio::signal::ctrl_c() => {
            interrupted.context("cannot listen for Ctrl-C")?;
            if let Some(spinner) = &spinner {
                spinner.bar.finish_and_clear();
            }
            if options.cancel_on_interrupt {
                match client.cancel(id).await {
                    Ok(_) | Err(ClientError::Conflict { .. }) => eprintln!("Cancelled pause {id}."),
                    Err(e) => return Err(e).context(format!("could not cancel pause {id}")),
                }
                return Ok(Outcome::Cancelled);
            }
            eprintln!("Stopped waiting; the pause is still pending. Resume with: pp wait {id}");
            return Ok(Outcome::Interrupted);
        }
        decided = waited => decided,
    };
    if let Some(spinner) = &spinner {
        spinner.bar.finish_and_clear();
    }
    let pause = decided.with_context(|| format!("stopped waiting for pause {id}"))?;
    report(&pause, json)
}

/// Prints a decided pause: the decision alone, or the whole pause with `--json`.
pub fn report(pause: &Pause, json: bool) -> anyhow::Result<Outcome> {
    if json {
        output::json(pause)?;
    } else if let Some(choice) = &pause.response_choice {
        println!("{choice}");
    }
    if !json && std::io::stderr().is_terminal() {
        match pause.status {
            PauseStatus::TimedOut => eprintln!("Nobody answered in time."),
            PauseStatus::Cancelled => eprintln!("The pause was cancelled."),
            _ => {}
        }
        if let Some(text) = &pause.response_text {
            eprintln!("Note: {text}");
        }
    }
    Ok(match pause.status {
        PauseStatus::Responded | PauseStatus::Pending => Outcome::Done,
        PauseStatus::TimedOut => Outcome::TimedOut,
        PauseStatus::Cancelled => Outcome::Cancelled,
    })
}

/// The spinner on stderr while waiting, only when a person is watching.
struct Spinner {
    bar: ProgressBar,
    _ticker: tokio::task::JoinHandle<()>,
}

impl Spinner {
    fn start(pause: &Pause) -> Option<Spinner> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = ProgressBar::new_spinner();
        let style = ProgressStyle::with_template("{spinner} {prefix} · {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_prefix(format!(
            "Waiting for {} ({}) to answer",
            pause.recipient, pause.channel
        ));
        bar.enable_steady_tick(Duration::from_millis(120));
        let expires = pause.expires_at;
        let ticking = bar.clone();
        let started = Instant::now();
        let ticker = tokio::spawn(async move {
            loop {
                let left = expires.as_second() - jiff::Timestamp::now().as_second();
                ticking.set_message(format!(
                    "{} elapsed · {} left · Ctrl-C to stop",
                    output::short_duration(started.elapsed().as_secs()),
                    output::short_duration(left.max(0).unsigned_abs())
                ));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Some(Spinner {
            bar,
            _ticker: ticker,
        })
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self._ticker.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_like_people_write_them() {
        assert_eq!(parse_timeout("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_timeout("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_timeout("4h").unwrap(), Duration::from_secs(14_400));
        assert_eq!(parse_timeout("2d").unwrap(), Duration::from_secs(172_800));
        assert!(parse_timeout("soon").is_err());
        assert!(parse_timeout("0s").is_err());
    }

    #[test]
    fn metadata_values_are_json_when_they_parse() {
        assert_eq!(
            parse_meta("amount=340").unwrap(),
            ("amount".into(), Value::from(340))
        );
        assert_eq!(
            parse_meta("name=Acme Corp").unwrap(),
            ("name".into(), Value::from("Acme Corp"))
        );
        assert_eq!(
            parse_meta("ok=true").unwrap(),
            ("ok".into(), Value::from(true))
        );
        assert!(parse_meta("novalue").is_err());
    }
}
