//! `pp status`, `pp cancel`, `pp list`: look at and withdraw pauses.

use clap::Args;
use pausepoint_api::PauseStatus;
use pausepoint_client::ClientError;
use uuid::Uuid;

use crate::connection::ConnectionArgs;
use crate::{output, Outcome};

#[derive(Args)]
pub struct StatusArgs {
    /// The pause to show
    id: Uuid,
    /// Print the whole pause as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: ConnectionArgs,
}

#[derive(Args)]
pub struct CancelArgs {
    /// The pause to withdraw
    id: Uuid,
    /// Print the whole pause as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: ConnectionArgs,
}

#[derive(Args)]
pub struct ListArgs {
    /// Only pauses in this state: pending, responded, timed_out or cancelled
    #[arg(long, value_parser = |s: &str| s.parse::<PauseStatus>())]
    status: Option<PauseStatus>,
    /// Only pauses sent on this channel: sms, email, slack or ntfy
    #[arg(long, value_parser = |s: &str| s.parse::<pausepoint_api::Channel>())]
    channel: Option<pausepoint_api::Channel>,
    /// Only pauses created from this time on: RFC 3339 or a duration ago (2h, 7d)
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// How many, newest first (1 to 100)
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100))]
    limit: u32,
    /// Every page, not just the first
    #[arg(long)]
    all: bool,
    /// Print the pauses as a JSON array
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: ConnectionArgs,
}

pub async fn status(args: StatusArgs) -> anyhow::Result<Outcome> {
    let pause = args.connection.client()?.get(args.id).await?;
    if args.json {
        output::json(&pause)?;
    } else {
        output::pause_details(&pause);
    }
    Ok(Outcome::Done)
}

pub async fn cancel(args: CancelArgs) -> anyhow::Result<Outcome> {
    let client = args.connection.client()?;
    let pause = match client.cancel(args.id).await {
        Ok(pause) => pause,
        Err(ClientError::Conflict { message, .. }) => {
            anyhow::bail!("cannot cancel pause {}: {message}", args.id)
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        output::json(&pause)?;
    } else {
        println!("Cancelled pause {}.", pause.pause_id);
    }
    Ok(Outcome::Done)
}

pub async fn list(args: ListArgs) -> anyhow::Result<Outcome> {
    let client = args.connection.client()?;
    let filter = pausepoint_client::PauseFilter {
        status: args.status,
        channel: args.channel,
        since: args.since.as_deref().map(crate::audit::since).transpose()?,
        until: None,
    };
    let mut pauses = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = client
            .list_matching(&filter, Some(args.limit), cursor.as_deref())
            .await?;
        pauses.extend(page.data);
        match page.next_cursor {
            Some(next) if args.all => cursor = Some(next),
            _ => break,
        }
    }
    if args.json {
        output::json(&pauses)?;
    } else if pauses.is_empty() {
        eprintln!("No pauses yet.");
    } else {
        output::pause_rows(&pauses);
    }
    Ok(Outcome::Done)
}
