//! `pp audit`: read, export and verify the audit log; `pp audit verify` checks it online
//! or offline from an export, and `pp audit checkpoint` gives a signed checkpoint to keep.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use pausepoint_api::proof::{checkpoints_in, verify_export, Checkpoint, Jwks};
use pausepoint_api::VerifyReport;
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
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    action: Option<AuditAction>,
    /// Only the events of this pause
    #[arg(long = "pause", value_name = "PAUSE_ID")]
    pause_id: Option<Uuid>,
    /// Only this kind of event, such as pause.responded
    #[arg(long)]
    event: Option<String>,
    /// Only events by this actor, as the log names it: system, recipient:+13128471928, api_key:ID, admin:USER
    #[arg(long)]
    actor: Option<String>,
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
    /// Export the whole log as one file an auditor can verify offline: the public keys
    /// first, the events, then every pause's state
    #[arg(long, requires = "export", conflicts_with_all = ["pause_id", "event", "actor", "since"])]
    bundle: bool,
    /// Verify the log instead (as `pp audit verify`): exit 0 when intact, 1 when not
    #[arg(long, conflicts_with = "export")]
    verify: bool,
    /// With --verify: walk the whole log and every pause, not only what came after the newest checkpoint
    #[arg(long, requires = "verify")]
    full: bool,
    /// Print the events (or the verification) as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: ConnectionArgs,
}

/// "2h" means two hours ago; anything else is passed on as an RFC 3339 time.
pub fn since(raw: &str) -> anyhow::Result<String> {
    if let Ok(ago) = humantime::parse_duration(raw) {
        let ago = jiff::SignedDuration::try_from(ago).context("that duration is too long")?;
        return Ok((jiff::Timestamp::now() - ago).to_string());
    }
    Ok(raw.to_owned())
}

#[derive(Subcommand)]
enum AuditAction {
    /// Verify the log: every hash, every signed checkpoint, every pause against its events
    #[command(after_help = VERIFY_HELP)]
    Verify(VerifyArgs),
    /// Sign the log as it stands now and print the checkpoint, to keep outside the database
    #[command(after_help = "Example:
  pp audit checkpoint >> checkpoints.jsonl

A checkpoint kept elsewhere proves later that nothing before it was changed or cut:
  pp audit verify --checkpoint checkpoints.jsonl")]
    Checkpoint {
        #[command(flatten)]
        connection: ConnectionArgs,
    },
}

const VERIFY_HELP: &str = "Examples:
  pp audit verify
  pp audit --export jsonl --bundle -o audit.jsonl
  pp audit verify --file audit.jsonl --public-key audit-key.json --checkpoint checkpoints.jsonl

Online, the server walks its database. With --file nothing is asked of any server: the
export is checked here with the public key (a JWK set, one JWK, or the bare base64url key;
a file or the text itself). Exit 0 when everything holds, 1 when not.";

#[derive(Args)]
struct VerifyArgs {
    /// Verify this export (JSON lines, best a --bundle) offline, with no server
    #[arg(long, value_name = "EXPORT")]
    file: Option<PathBuf>,
    /// The audit public key: a file, or the key itself [default: the bundle's own keys]
    #[arg(long, value_name = "KEY")]
    public_key: Option<String>,
    /// A signed checkpoint kept outside the database (a file of one or more); repeatable
    #[arg(long, value_name = "FILE")]
    checkpoint: Vec<PathBuf>,
    /// Online: walk the whole log and every pause, not only what came after the newest checkpoint
    #[arg(long, conflicts_with = "file")]
    full: bool,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: ConnectionArgs,
}

/// A key set given as a file or as the text itself.
pub fn read_keys(given: &str) -> anyhow::Result<Jwks> {
    let path = std::path::Path::new(given);
    let text = if path.is_file() {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {given}"))?
    } else {
        given.to_owned()
    };
    Jwks::parse(&text).map_err(|e| anyhow::anyhow!("the public key: {e}"))
}

fn read_checkpoints(files: &[PathBuf]) -> anyhow::Result<Vec<Checkpoint>> {
    let mut all = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let found =
            checkpoints_in(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        all.extend(found);
    }
    Ok(all)
}

async fn verify(args: VerifyArgs) -> anyhow::Result<Outcome> {
    let keys = args.public_key.as_deref().map(read_keys).transpose()?;
    let outside = read_checkpoints(&args.checkpoint)?;
    let report = match &args.file {
        Some(file) => {
            let reader = std::fs::File::open(file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            if keys.is_none() && !args.json {
                eprintln!(
                    "No --public-key: using the keys the bundle carries. Give the key you keep to be sure it is the server's."
                );
            }
            verify_export(std::io::BufReader::new(reader), keys.as_ref(), outside)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
        }
        None if outside.is_empty() && keys.is_none() => {
            args.connection.client()?.verify(args.full).await?
        }
        None => {
            // Checkpoints or a key of the caller's own: check the server's export here,
            // against them, besides the server's own walk.
            let client = args.connection.client()?;
            let online = client.verify(args.full).await?;
            if !online.ok {
                online
            } else {
                let mut export = Vec::new();
                let query = AuditQuery {
                    bundle: true,
                    ..AuditQuery::default()
                };
                client.export("jsonl", &query, &mut export).await?;
                let mut report = verify_export(export.as_slice(), keys.as_ref(), outside)
                    .map_err(|e| anyhow::anyhow!("the server's export: {e}"))?;
                report.pauses_checked = online.pauses_checked;
                report
            }
        }
    };
    print_report(&report, args.json)?;
    Ok(Outcome::Done)
}

/// The verdict for people (or as JSON); an error when the log does not hold.
fn print_report(report: &VerifyReport, json: bool) -> anyhow::Result<()> {
    if json {
        output::json(report)?;
    } else if report.ok {
        let covered = match report.covered_to_seq {
            Some(seq) => format!(", signed up to event {seq}"),
            None => String::new(),
        };
        println!(
            "The audit chain is intact: {} events, {} signed checkpoints{covered}, head {}.",
            report.events_checked, report.checkpoints_checked, report.head_hash
        );
        if report.outside_checkpoints_checked > 0 {
            println!(
                "{} checkpoints kept outside the log agree with it.",
                report.outside_checkpoints_checked
            );
        }
        if let Some(pauses) = report.pauses_checked {
            println!("{pauses} pauses agree with their audit events.");
        }
        if report.walked_from_seq > 0 {
            println!(
                "Walked from event {} (named by the newest signed checkpoint; --full walks everything).",
                report.walked_from_seq
            );
        }
    }
    if !report.ok {
        anyhow::bail!(
            "the audit chain is broken at event {}: {}",
            report
                .first_bad_seq
                .map(|s| s.to_string())
                .unwrap_or_default(),
            report.problem.clone().unwrap_or_default()
        );
    }
    Ok(())
}

pub async fn run(args: AuditArgs) -> anyhow::Result<Outcome> {
    match args.action {
        Some(AuditAction::Verify(verify_args)) => return verify(verify_args).await,
        Some(AuditAction::Checkpoint { connection }) => {
            let checkpoint = connection.client()?.checkpoint_now().await?;
            println!("{}", serde_json::to_string(&checkpoint)?);
            return Ok(Outcome::Done);
        }
        None => {}
    }
    let client = args.connection.client()?;
    if args.verify {
        let report = client.verify(args.full).await?;
        print_report(&report, args.json)?;
        return Ok(Outcome::Done);
    }
    let query = AuditQuery {
        pause_id: args.pause_id,
        event: args.event,
        actor: args.actor,
        since: args.since.as_deref().map(since).transpose()?,
        until: None,
        limit: Some(args.limit),
        cursor: None,
        bundle: args.bundle,
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
