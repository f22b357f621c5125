//! `pp audit`: read, export and verify the audit log.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use pausepoint_client::AuditQuery;
use uuid::Uuid;

use crate::connection::ConnectionArgs;
use crate::{output, Outcome};

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

#[derive(Args)]
pub struct AuditArgs {
    /// Only the events of this pause
    #[arg(long = "pause", value_name = "PAUSE_ID")]
    pause_id: Option<Uuid>,
    /// Only this kind of event, such as pause.responded
    #[arg(long)]
    event: Option<String>,
    /// Only events from this time on: RFC 3339 (2026-11-22T09:00:00Z) or a duration ago (2h, 7d)
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// How many events to show
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
    /// Write every matching event in this format instead of a table
    #[arg(long, value_enum, value_name = "FORMAT")]
    export: Option<ExportFormat>,
    /// Where the export goes [default: stdout]
    #[arg(short = 'o', long = "output", value_name = "FILE", requires = "export")]
    output: Option<PathBuf>,
    /// Check the hash chain instead: exit 0 when intact, 1 when not
    #[arg(long, conflicts_with = "export")]
    verify: bool,
    /// Print the events (or the verification) as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: ConnectionArgs,
}

/// "2h" means two hours ago; anything else is passed on as an RFC 3339 time.
fn since(raw: &str) -> anyhow::Result<String> {
    if let Ok(ago) = humantime::parse_duration(raw) {
        let ago = jiff::SignedDuration::try_from(ago).context("that duration is too long")?;
        return Ok((jiff::Timestamp::now() - ago).to_string());
    }
    Ok(raw.to_owned())
}

pub async fn run(args: AuditArgs) -> anyhow::Result<Outcome> {
    let client = args.connection.client()?;
    if args.verify {
        let report = client.verify().await?;
        if args.json {
            output::json(&report)?;
        } else if report.ok {
            println!(
                "The audit chain is intact: {} events, head {}.",
                report.events_checked, report.head_hash
            );
        }
        if !report.ok {
            anyhow::bail!(
                "the audit chain is broken at event {}: {}",
                report
                    .first_bad_seq
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                report.problem.unwrap_or_default()
            );
        }
        return Ok(Outcome::Done);
    }
    let query = AuditQuery {
        pause_id: args.pause_id,
        event: args.event,
        since: args.since.as_deref().map(since).transpose()?,
        until: None,
        limit: Some(args.limit),
        cursor: None,
    };
    if let Some(format) = args.export {
        let format = match format {
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Csv => "csv",
        };
        let query = AuditQuery {
            limit: None,
            ..query
        };
        match &args.output {
            Some(path) => {
                let mut file = std::fs::File::create(path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                let bytes = client.export(format, &query, &mut file).await?;
                file.flush()?;
                eprintln!("Wrote {bytes} bytes to {}.", path.display());
            }
            None => {
                let mut stdout = std::io::stdout().lock();
                client.export(format, &query, &mut stdout).await?;
                stdout.flush()?;
            }
        }
        return Ok(Outcome::Done);
    }
    let page = client.audit(&query).await?;
    if args.json {
        output::json(&page.data)?;
    } else if page.data.is_empty() {
        eprintln!("No matching events.");
    } else {
        output::audit_rows(&page.data);
        if page.next_cursor.is_some() {
            eprintln!("More events match: raise --limit, or export them all with --export jsonl.");
        }
    }
    Ok(Outcome::Done)
}
