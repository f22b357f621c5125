//! `pp server`: opens the database, makes the first key on an empty one, and serves until
//! Ctrl-C or SIGTERM.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;
use pausepoint_server::config::DEFAULT_BIND;
use pausepoint_server::keys::{self, DEFAULT_PROJECT};
use pausepoint_server::{pauses, App, Config};
use tokio::net::TcpListener;
use url::Url;

use crate::DatabaseArg;

#[derive(Args)]
pub struct ServerArgs {
    #[command(flatten)]
    database: DatabaseArg,
    /// Address and port to listen on (port 0 picks a free one)
    #[arg(long, env = "PAUSEPOINT_BIND", default_value = DEFAULT_BIND)]
    bind: SocketAddr,
    /// The address humans reach this server at, used in the links sent to them [default: http://BIND]
    #[arg(long, env = "PAUSEPOINT_PUBLIC_URL", value_name = "URL")]
    public_url: Option<Url>,
    /// Allow webhook and Slack targets on loopback and private networks
    #[arg(long, env = "PAUSEPOINT_ALLOW_PRIVATE_NETWORK")]
    allow_private_network: bool,
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let database = args.database.resolve();
    let config = Config {
        database: database.clone(),
        bind: args.bind,
        public_url: args.public_url,
        allow_private_network: args.allow_private_network,
    };
    let app = App::open(config)
        .await
        .with_context(|| format!("cannot open the database {database}"))?;
    let listener = TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let base = format!("http://{address}");

    if app.store().key_count().await? == 0 {
        let first = keys::create_key(
            app.store(),
            DEFAULT_PROJECT,
            "first key",
            "system",
            pauses::now(),
        )
        .await
        .context("cannot create the first API key")?;
        print_first_key(&first.key, &base);
    }
    println!("PausePoint is listening on {base}");
    println!("Database: {}", app.store().location());
    tracing::info!(%address, "serving; press Ctrl-C to stop");
    app.serve(listener, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The first key of a new database, shown once with what to do next.
fn print_first_key(key: &str, base: &str) {
    println!(
        "\nThis database is new: it now has the project \"{DEFAULT_PROJECT}\" and its first API key.\n\
         The key is shown only this once; keep it somewhere safe:\n\n    {key}\n\n\
         Try it:\n\n    export PAUSEPOINT_API_KEY={key}\n    \
         curl -X POST {base}/v1/pause -H \"Authorization: Bearer $PAUSEPOINT_API_KEY\" \\\n      \
         -H \"Content-Type: application/json\" \\\n      \
         -d '{{\"recipient\": \"+15550100\", \"channel\": \"sms\", \"message\": \"Deploy build #4712?\", \"options\": [\"Deploy\", \"Abort\"]}}'\n\n\
         More keys: pp admin keys create --name NAME\n"
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
