//! `pp mcp`: PausePoint's tools over stdio. Logs go to stderr; stdout is the protocol.

use std::time::Duration;

use clap::Args;
use pausepoint_client::ClientError;
use pausepoint_mcp::Approver;

use crate::connection::ConnectionArgs;

#[derive(Args)]
pub struct McpArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Who request_permission asks: a phone number, an email address or a Slack webhook URL
    #[arg(long, env = "PAUSEPOINT_APPROVER", value_name = "RECIPIENT")]
    approver: Option<String>,
    /// How to reach the approver: sms, email, slack or ntfy [default: inferred]
    #[arg(long, env = "PAUSEPOINT_APPROVER_CHANNEL", value_name = "CHANNEL")]
    approver_channel: Option<String>,
    /// How long the approver has before request_permission denies
    #[arg(long, env = "PAUSEPOINT_APPROVAL_TIMEOUT", value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    approval_timeout: Duration,
}

pub async fn run(args: McpArgs) -> anyhow::Result<()> {
    let client = args.connection.client()?;
    let approver = args.approver.map(|recipient| Approver {
        recipient,
        channel: args.approver_channel,
        timeout: args.approval_timeout,
    });
    // A refused key is said at once, where the person setting this up looks (Claude
    // Code shows the server as failed, with this on stderr), not at the first tool call.
    match client.list(None, Some(1), None).await {
        Ok(_) => {}
        Err(ClientError::Unauthorized(message)) => anyhow::bail!(
            "PausePoint at {} refused the API key ({message}); check PAUSEPOINT_API_KEY",
            client.base_url()
        ),
        Err(e) => tracing::warn!("{e}; the tools will say so until the server answers"),
    }
    tracing::info!(
        url = client.base_url(),
        "serving PausePoint tools over stdio"
    );
    pausepoint_mcp::serve_stdio(client, approver)
        .await
        .map_err(|e| anyhow::anyhow!("the MCP connection failed: {e}"))
}
