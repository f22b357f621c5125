//! `pp`, the PausePoint command line: runs the server (`pp server`) and administers its
//! database (`pp admin`).
//!
//! - `server`: the `pp server` command.
//! - `admin`: `pp admin keys create|list|revoke`.

#![forbid(unsafe_code)]

mod admin;
mod server;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "pp",
    version,
    about = "PausePoint: pause an AI agent until a human decides",
    long_about = "PausePoint pauses an AI agent until a human decides. `pp server` runs the \
                  service (REST API, timeouts, audit log) on a SQLite file by default; \
                  `pp admin` manages its API keys."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the PausePoint service (REST API, timeouts, audit log)
    #[command(
        after_help = "Examples:\n  pp server\n  pp server --bind 0.0.0.0:8080 --public-url https://pause.example.com\n  pp server --db /var/lib/pausepoint/pausepoint.db"
    )]
    Server(Box<server::ServerArgs>),
    /// Administer the server's database directly (API keys)
    Admin(admin::AdminArgs),
}

/// The database option shared by every command that opens the database itself.
#[derive(Args, Clone)]
pub struct DatabaseArg {
    /// SQLite file path or database URL [default: pausepoint.db in your data folder]
    #[arg(long = "db", env = "PAUSEPOINT_DATABASE_URL", value_name = "PATH|URL")]
    pub db: Option<String>,
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
            Command::Server(args) => server::run(*args).await,

            Command::Admin(args) => admin::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
