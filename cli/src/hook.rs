//! `pp hook claude-code`: a Claude Code command hook for `PreToolUse` and
//! `PermissionRequest`. It reads the hook event on stdin, has the server ask the approver
//! (`POST /v1/hooks/claude-code`, where rules are applied and the question is held), and
//! prints the answer Claude Code reads. It never lets a call through by mistake: input it
//! cannot read blocks (exit 2), and a server it cannot reach denies, unless `--fail-open`
//! hands the choice back to the local prompt.

use std::io::Read;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use pausepoint_api::claude_code::{HookInput, Verdict};
use pausepoint_client::{ClientError, HookApprover};

use crate::connection::ConnectionArgs;
use crate::Outcome;

/// The largest hook event read (the server takes as much).
const MOST_INPUT: u64 = 1024 * 1024;
/// How long a lost server is tried again (a restart) before the hook gives up on it.
const RETRY_FOR: Duration = Duration::from_secs(10);

#[derive(Args)]
pub struct HookArgs {
    #[command(subcommand)]
    command: HookCommand,
}

#[derive(Subcommand)]
enum HookCommand {
    /// Answer Claude Code's PreToolUse and PermissionRequest hooks by asking a person
    #[command(after_help = CLAUDE_CODE_HELP)]
    ClaudeCode(ClaudeCodeArgs),
}

const CLAUDE_CODE_HELP: &str = "\
In .claude/settings.json:
  {\"hooks\": {\"PreToolUse\": [{\"matcher\": \"Bash|Write|Edit|MultiEdit|NotebookEdit|mcp__.*\",
    \"hooks\": [{\"type\": \"command\", \"command\": \"pp hook claude-code\", \"timeout\": 330}]}]}}
with PAUSEPOINT_URL, PAUSEPOINT_API_KEY and PAUSEPOINT_APPROVER in the environment.

No answer in time, or PausePoint unreachable: deny, with the reason (--fail-open: ask
instead). Input that cannot be read: exit 2, which blocks the call.";

#[derive(Args)]
struct ClaudeCodeArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Who is asked: a phone number, an email address or a Slack webhook URL [default: the server's --default-approver]
    #[arg(long, env = "PAUSEPOINT_APPROVER", value_name = "RECIPIENT")]
    approver: Option<String>,
    /// How to reach the approver: sms, email, slack or ntfy [default: inferred]
    #[arg(long, env = "PAUSEPOINT_APPROVER_CHANNEL", value_name = "CHANNEL")]
    approver_channel: Option<String>,
    /// How long the approver has before the call is denied; keep it under the hook's timeout [default: the server's, 5m]
    #[arg(long, env = "PAUSEPOINT_APPROVAL_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    approval_timeout: Option<Duration>,
    /// When PausePoint cannot be reached or refuses the key, leave the choice to Claude Code's own prompt instead of denying
    #[arg(long)]
    fail_open: bool,
}

pub async fn run(args: HookArgs) -> anyhow::Result<Outcome> {
    match args.command {
        HookCommand::ClaudeCode(args) => claude_code(args).await,
    }
}

async fn claude_code(args: ClaudeCodeArgs) -> anyhow::Result<Outcome> {
    let mut raw = Vec::new();
    let read = std::io::stdin().take(MOST_INPUT + 1).read_to_end(&mut raw);
    let input = match read {
        Err(e) => {
            return Ok(blocked(&format!(
                "cannot read the hook input on stdin: {e}"
            )))
        }
        Ok(_) if raw.len() as u64 > MOST_INPUT => {
            return Ok(blocked(&format!(
                "the hook input is over {} KiB",
                MOST_INPUT / 1024
            )))
        }
        Ok(_) => match HookInput::parse(&raw) {
            Ok(input) => input,
            Err(error) => return Ok(blocked(&error.message)),
        },
    };
    let verdict = match ask(&args, &raw, &input).await {
        Ok(answer) => {
            println!("{answer}");
            return Ok(Outcome::Done);
        }
        Err(reason) if args.fail_open => Verdict::ask(format!(
            "{reason} Falling back to Claude Code's own prompt."
        )),
        Err(reason) => Verdict::deny(format!("{reason} Denied, to be safe.")),
    };
    tracing::warn!("{}", verdict.reason());
    println!("{}", input.answer(&verdict));
    Ok(Outcome::Done)
}

/// Exit 2 with the reason on stderr: Claude Code blocks the call and shows the reason.
fn blocked(reason: &str) -> Outcome {
    eprintln!("pp hook claude-code: {reason}");
    Outcome::Blocked
}

/// The server's answer for Claude Code, or why there is none.
async fn ask(args: &ClaudeCodeArgs, raw: &[u8], input: &HookInput) -> Result<String, String> {
    let client = args
        .connection
        .client()
        .map_err(|e| format!("PausePoint is not set up for this hook: {e}."))?;
    let approver = HookApprover {
        recipient: args.approver.clone(),
        channel: args.approver_channel.clone(),
        timeout: args.approval_timeout,
    };
    // The server answers by the approver's deadline; this is only a backstop.
    let hold = args
        .approval_timeout
        .map_or(Duration::from_secs(3600), |t| t + Duration::from_secs(30));
    let mut failing_since: Option<Instant> = None;
    let mut backoff = Duration::from_millis(250);
    loop {
        match client.claude_code_hook(raw, &approver, hold).await {
            Ok(answer) => return Ok(answer.to_string()),
            // Asking again finds the same question (the tool use is the idempotency key),
            // so a server restart mid-question costs nothing.
            Err(e) if e.is_transient() && input.tool_use_id.is_some() => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= RETRY_FOR {
                    return Err(unreachable(&e));
                }
                tracing::debug!(error = %e, "asking PausePoint again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(unreachable(&e)),
        }
    }
}

fn unreachable(error: &ClientError) -> String {
    match error {
        ClientError::Unauthorized(message) => {
            format!("PausePoint refused the API key ({message}); check PAUSEPOINT_API_KEY.")
        }
        ClientError::Unreachable { .. } => format!("{error}."),
        other => format!("PausePoint could not ask the approver: {other}."),
    }
}
