//! `pp`, the PausePoint command line. It runs the server (`pp server`), administers its
//! database (`pp admin`), and, as a client of a running server, asks humans questions and
//! waits for their answers (`pp ask --wait`), shows and cancels pauses, and reads the audit
//! log.
//!
//! - `server`, `admin`: the server side.
//! - `connection`: which server and key the client commands use (`pp login`).
//! - `ask`: `pp ask` and `pp wait`. - `pauses`: status, cancel, list. - `audit`: `pp audit`.
//! - `mcp`: `pp mcp`, the MCP stdio server.
//! - `hook`: `pp hook claude-code`, Claude Code's permission hook. - `rules`: `pp rules`.
//! - `webhook`: `pp webhook list|resend|verify`.
//! - `output`: tables and JSON.

#![forbid(unsafe_code)]

mod admin;
mod ask;
mod audit;
mod connection;
mod hook;
mod mcp;
mod output;
mod pauses;
mod receipt;
mod rules;
mod server;
mod webhook;

/// jemalloc rather than glibc's allocator. The server holds thousands of idle long-polls,
/// each with hyper's two 8 KiB connection buffers that stay mostly unwritten: jemalloc hands
/// them out from slabs whose unwritten pages are not resident, and returns freed pages to
/// the system, where glibc's heap reuses pages already written. Measured with
/// `scripts/bench --sections waiters`: 23.6 KiB a waiter with glibc, 16.2 with jemalloc
/// (and 35.1 with mimalloc), before the waiters' futures were made smaller; creates and
/// polls no slower.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  pp server                                   run the service on 127.0.0.1:8080
  choice=$(pp ask \"Deploy build #4712 to production?\" --to ops@example.com \\
            -o Deploy -o Abort --default Abort --timeout 30m --wait)
  pp list --status pending
  pp audit --pause PAUSE_ID
Exit codes: 0 answered (or done), 10 timed out, 11 cancelled, 1 error, 2 usage, 130 interrupted.";

#[derive(Parser)]
#[command(
    name = "pp",
    version,
    about = "PausePoint: pause an AI agent until a human decides",
    after_help = EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ask a human; with --wait, block until they answer and print the answer
    #[command(
        after_help = "Examples:\n  pp ask \"Wire $8,400 to Meridian?\" --to \"+1 (312) 847-1928\" -o Approve -o Reject --default Reject --timeout 4h --wait\n  id=$(pp ask \"Send the campaign?\" --to cfo@company.com -o Send -o Hold)\n\nExit codes with --wait: 0 answered, 10 timed out (stdout has the default, if any), 11 cancelled, 1 error, 130 interrupted."
    )]
    Ask(Box<ask::AskArgs>),
    /// Wait for a pause to be decided and print the answer
    Wait(ask::WaitArgs),
    /// Show one pause
    Status(pauses::StatusArgs),
    /// Withdraw a pending pause
    Cancel(pauses::CancelArgs),
    /// List pauses, newest first
    List(pauses::ListArgs),
    /// Read, export (--export jsonl|csv [--bundle]), verify or checkpoint the audit log
    Audit(audit::AuditArgs),
    /// A pause's webhook events: list, resend a failed one, verify a received one
    Webhook(webhook::WebhookArgs),
    /// Check a decision receipt with the audit public key, offline
    Receipt(receipt::ReceiptArgs),
    /// Serve PausePoint as MCP tools over stdio, for Claude Code and other MCP clients
    #[command(
        after_help = "Example:\n  claude mcp add pausepoint --env PAUSEPOINT_URL=http://127.0.0.1:8080 --env PAUSEPOINT_API_KEY=pp_live_… -- pp mcp"
    )]
    Mcp(mcp::McpArgs),
    /// Answer a coding agent's permission hook by asking a person (pp hook claude-code)
    Hook(hook::HookArgs),
    /// Remembered approvals ("Allow for 1 hour"): list them, revoke one
    Rules(rules::RulesArgs),
    /// Print the API's OpenAPI 3.1 document (what a server serves at /openapi.json)
    #[command(after_help = "Example:\n  pp openapi > openapi.json")]
    Openapi,
    /// Save the server URL and API key for the other commands (mode 0600)
    Login(LoginArgs),
    /// Print a shell completion script: pp completions bash > ~/.local/share/bash-completion/completions/pp
    Completions(CompletionsArgs),
    /// Run the PausePoint service (REST API, response page, delivery, timeouts, audit log)
    #[command(
        after_help = "Examples:\n  pp server\n  pp server --bind 0.0.0.0:8080 --public-url https://pause.example.com\n  pp server --db /var/lib/pausepoint/pausepoint.db"
    )]
    Server(Box<server::ServerArgs>),
    /// Administer the server's database directly (API keys)
    Admin(admin::AdminArgs),
}

#[derive(Args)]
struct LoginArgs {
    /// The PausePoint server, such as https://pause.example.com
    #[arg(long)]
    url: String,
    /// An API key (pp_live_…)
    #[arg(long)]
    key: String,
}

#[derive(Args)]
struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell
    shell: clap_complete::Shell,
}

/// The database option shared by every command that opens the database itself.
#[derive(Args, Clone)]
pub struct DatabaseArg {
    /// SQLite file path or database URL [default: pausepoint.db in your data folder]
    #[arg(
        long = "db",
        env = "PAUSEPOINT_DATABASE_URL",
        value_name = "PATH|URL",
        hide_env_values = true
    )]
    pub db: Option<String>,
    /// The master key file that seals the database's secrets [default: pausepoint.key beside a SQLite file]
    #[arg(long, env = "PAUSEPOINT_MASTER_KEY_FILE", value_name = "PATH")]
    pub master_key_file: Option<std::path::PathBuf>,
}

impl DatabaseArg {
    /// The database to open: the one given, or the default SQLite file.
    pub fn resolve(&self) -> String {
        self.db.clone().unwrap_or_else(|| {
            pausepoint_server::config::default_database()
                .display()
                .to_string()
        })
    }
}

/// How a command ended, as the exit code scripts branch on.
pub enum Outcome {
    /// Answered, or simply done.
    Done,
    TimedOut,
    Cancelled,
    /// Ctrl-C while waiting.
    Interrupted,
    /// A hook blocked the call: exit 2, which Claude Code reads as "block".
    Blocked,
}

impl Outcome {
    fn exit_code(self) -> ExitCode {
        ExitCode::from(match self {
            Outcome::Done => 0,
            Outcome::TimedOut => 10,
            Outcome::Cancelled => 11,
            Outcome::Interrupted => 130,
            Outcome::Blocked => 2,
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PAUSEPOINT_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Ask(args) => ask::ask(*args).await,
            Command::Wait(args) => ask::wait(args).await,
            Command::Status(args) => pauses::status(args).await,
            Command::Cancel(args) => pauses::cancel(args).await,
            Command::List(args) => pauses::list(args).await,
            Command::Audit(args) => audit::run(args).await,
            Command::Receipt(args) => receipt::run(args),
            Command::Webhook(args) => webhook::run(args).await,
            Command::Mcp(args) => mcp::run(args).await.map(|()| Outcome::Done),
            Command::Hook(args) => hook::run(args).await,
            Command::Rules(args) => rules::run(args).await,
            Command::Openapi => {
                output::json(&pausepoint_server::http::openapi::document()).map(|()| Outcome::Done)
            }
            Command::Login(args) => connection::login(&args.url, &args.key)
                .await
                .map(|()| Outcome::Done),
            Command::Completions(args) => {
                clap_complete::generate(
                    args.shell,
                    &mut Cli::command(),
                    "pp",
                    &mut std::io::stdout(),
                );
                Ok(Outcome::Done)
            }
            Command::Server(args) => server::run(*args).await.map(|()| Outcome::Done),
            Command::Admin(args) => admin::run(args).await.map(|()| Outcome::Done),
        }
    });
    // Leave no waiting task (a spinner, a long-poll) holding the process open.
    runtime.shutdown_background();
    match result {
        Ok(outcome) => outcome.exit_code(),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
