//! `pp admin`: works on the database directly, on the machine that runs the server.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use pausepoint_api::time;
use pausepoint_server::backup;
use pausepoint_server::domain::keys::{self, DEFAULT_PROJECT};
use pausepoint_server::domain::{pauses, projects, proof, status, webhooks};
use pausepoint_server::ids::KeyId;
use pausepoint_server::store::mask_password;
use pausepoint_server::store::Actor;
use pausepoint_server::Store;
use uuid::Uuid;

use crate::{output, DatabaseArg};

#[derive(Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create, list and revoke API keys
    #[command(subcommand)]
    Keys(KeysCommand),
    /// List projects, or rename one (the name people see for who asks)
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// Show pending pauses and how far behind deliveries and webhooks are
    #[command(
        after_help = "\"due\" rows are waiting for a server to take them: a count that grows, or an oldest\nthat is more than a few seconds old, means humans are notified late."
    )]
    Status {
        /// Print the status as JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Apply the database migrations and exit (run it before a rolling deploy)
    Migrate {
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Print the project's webhook signing secret (alone, on stdout); --rotate makes a new one
    #[command(
        after_help = "After --rotate the old secret keeps signing beside the new one for 24 hours,\nso receivers can switch without missing an event."
    )]
    WebhookSecret {
        /// Make a new secret; the old one keeps signing for 24 hours
        #[arg(long)]
        rotate: bool,
        /// The project whose secret to print [default: the first project]
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Print the audit public keys (a JWK set, on stdout) that verify checkpoints and receipts
    #[command(
        after_help = "Example:\n  pp admin audit-key > audit-key.json\n\nAfter --rotate the new key signs; the old ones stay in the set and keep verifying\nwhat they signed."
    )]
    AuditKey {
        /// Make a new signing key; the old one is retired (its private half deleted)
        #[arg(long)]
        rotate: bool,
        /// Print the key set indented, and nothing else
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Copy a running server's SQLite database to FILE, consistent and checked
    #[command(
        after_help = "Example (cron, nightly at 03:17):\n  17 3 * * * pp admin backup /var/backups/pausepoint/pp-$(date +\\%F).db --db /var/lib/pausepoint/pausepoint.db\n\nThe copy is taken while servers run, passes PRAGMA integrity_check and a verification of\nevery audit chain before it gets its name. The master key file is not in it: keep that\nfile apart. PostgreSQL: use pg_dump."
    )]
    Backup {
        /// Where the backup goes (must not exist)
        file: std::path::PathBuf,
        /// Print what was written as JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Check a backup file as a restore would (integrity, every audit chain), changing nothing
    VerifyBackup {
        file: std::path::PathBuf,
        /// Print what it holds as JSON
        #[arg(long)]
        json: bool,
    },
    /// Put a checked backup in place of the database; no server may be running on it
    #[command(
        after_help = "The database it replaces is moved aside (DB.replaced-TIME), not deleted. Start the server\nwith the master key file this backup's database was made with."
    )]
    Restore {
        /// The backup to restore
        file: std::path::PathBuf,
        /// Print what was restored as JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

#[derive(Subcommand)]
enum ProjectsCommand {
    /// List every project: name, id, created, live keys
    List {
        /// Print the projects as a JSON array
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Rename a project; its keys, pauses and audit log stay with it
    #[command(after_help = "Example:\n  pp admin projects rename default \"Acme Finance\"")]
    Rename {
        /// The project's name now
        from: String,
        /// Its new name, shown to the people asked ("Decision requested by Acme Finance")
        to: String,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key and print it (alone, on stdout); it is not shown again
    #[command(
        after_help = "Example:\n  export PAUSEPOINT_API_KEY=$(pp admin keys create --name deploy-bot)"
    )]
    Create {
        /// A name that says who or what uses the key
        #[arg(long)]
        name: String,
        /// The project the key belongs to, created when it does not exist [default: the first project]
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// List every key: id, name, project, prefix, created, revoked (never the key)
    List {
        /// Print the keys as a JSON array
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        database: DatabaseArg,
    },
    /// Revoke a key: requests made with it get 401 from now on
    Revoke {
        /// The key's id, as `pp admin keys list` shows it
        id: Uuid,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    match args.command {
        AdminCommand::Keys(command) => keys_command(command).await,
        AdminCommand::Projects(command) => projects_command(command).await,
        AdminCommand::Status { json, database } => status(json, &database).await,
        AdminCommand::Migrate { database } => {
            let url = database.resolve();
            let store = Store::connect(&url, database.master_key_file.as_deref())
                .await
                .with_context(|| format!("cannot connect to {}", mask_password(&url)))?;
            let ahead = store.migrate().await.context("the migrations failed")?;
            if ahead.is_empty() {
                println!("The database {} is up to date.", store.location());
            } else {
                let versions: Vec<String> = ahead.iter().map(i64::to_string).collect();
                println!(
                    "The database {} is ahead of this version: a later version applied \
                     migrations {} it does not know. This version runs on it as the version \
                     before; upgrade it.",
                    store.location(),
                    versions.join(", ")
                );
            }
            store.close().await;
            Ok(())
        }
        AdminCommand::WebhookSecret {
            rotate,
            project,
            database,
        } => webhook_secret(rotate, project, &database).await,
        AdminCommand::AuditKey {
            rotate,
            json,
            database,
        } => audit_key(rotate, json, &database).await,
        AdminCommand::Backup {
            file,
            json,
            database,
        } => {
            let summary = backup::backup(&database.resolve(), &file).await?;
            let key_file = database.master_key_file.clone().unwrap_or_else(|| {
                pausepoint_server::secrets::default_key_file(&database.resolve())
            });
            if json {
                return output::json(&serde_json::json!({
                    "backup": summary,
                    "master_key_file": key_file.display().to_string(),
                }));
            }
            println!("Backed up to {}: {}.", summary.file, describe(&summary));
            println!("Integrity: ok. Audit log: every chain and its signed checkpoints verify; every pause agrees with its events.");
            eprintln!(
                "The master key file is not in the backup. Keep a copy of {} apart from it: without it the backup's secrets (link and webhook keys, the audit key) cannot be opened.",
                key_file.display()
            );
            Ok(())
        }
        AdminCommand::VerifyBackup { file, json } => {
            let summary = backup::check(&file).await?;
            if json {
                return output::json(&summary);
            }
            println!("{} holds: {}.", summary.file, describe(&summary));
            println!("Integrity: ok. Audit log: every chain and its signed checkpoints verify; every pause agrees with its events.");
            Ok(())
        }
        AdminCommand::Restore {
            file,
            json,
            database,
        } => {
            let restored = backup::restore(&file, &database.resolve()).await?;
            if json {
                return output::json(&restored);
            }
            println!(
                "Restored {} into {}: {}.",
                file.display(),
                restored.summary.file,
                describe(&restored.summary)
            );
            if let Some(aside) = &restored.replaced {
                println!("The database it replaced is now {aside}.");
            }
            eprintln!(
                "Start the server with the master key file this backup's database was made with."
            );
            Ok(())
        }
    }
}

async fn keys_command(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create {
            name,
            project,
            database,
        } => {
            let name = name.trim();
            if name.is_empty() {
                bail!("--name must not be empty");
            }
            let store = open(&database).await?;
            let project = match project {
                Some(project) => project.trim().to_owned(),
                None => first_project(&store).await?,
            };
            let new = keys::create_key(&store, &project, name, actor(), pauses::now())
                .await
                .context("cannot create the key")?;
            println!("{}", new.key);
            eprintln!(
                "Created key {} ({}…) for project \"{}\". It is not shown again.",
                new.record.id, new.record.prefix, new.record.project_name
            );
            close_signed(store).await;
        }
        KeysCommand::List { json, database } => {
            let store = open(&database).await?;
            let keys = store.keys().await?;
            store.close().await;
            if json {
                let listed: Vec<serde_json::Value> = keys
                    .iter()
                    .map(|key| {
                        serde_json::json!({
                            "id": key.id,
                            "name": key.name,
                            "project": key.project_name,
                            "prefix": key.prefix,
                            "created_at": time::format(&key.created_at),
                            "revoked_at": key.revoked_at.as_ref().map(time::format),
                        })
                    })
                    .collect();
                return output::json(&listed);
            }
            let mut table =
                output::table(&["ID", "NAME", "PROJECT", "PREFIX", "CREATED", "REVOKED"]);
            for key in keys {
                table.add_row([
                    key.id.to_string(),
                    key.name,
                    key.project_name,
                    format!("{}…", key.prefix),
                    key.created_at.to_string(),
                    key.revoked_at
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "-".into()),
                ]);
            }
            println!("{table}");
        }
        KeysCommand::Revoke { id, database } => {
            let store = open(&database).await?;
            let revoked = keys::revoke_key(&store, KeyId::from(id), actor(), pauses::now()).await?;
            close_signed(store).await;
            match revoked {
                Some(key) => println!("Revoked key {} ({}).", key.id, key.name),
                None => bail!("there is no live key with id {id} (see `pp admin keys list`)"),
            }
        }
    }
    Ok(())
}

async fn projects_command(command: ProjectsCommand) -> anyhow::Result<()> {
    match command {
        ProjectsCommand::List { json, database } => {
            let store = open(&database).await?;
            let projects = store.projects().await?;
            let keys = store.keys().await?;
            store.close().await;
            let live = |id| {
                keys.iter()
                    .filter(|k| k.project_id == id && k.revoked_at.is_none())
                    .count()
            };
            if json {
                let listed: Vec<serde_json::Value> = projects
                    .iter()
                    .map(|p| {
                        serde_json::json!({
                            "id": p.id,
                            "name": p.name,
                            "created_at": time::format(&p.created_at),
                            "live_keys": live(p.id),
                        })
                    })
                    .collect();
                return output::json(&listed);
            }
            let mut table = output::table(&["NAME", "ID", "CREATED", "LIVE KEYS"]);
            for p in &projects {
                table.add_row([
                    p.name.clone(),
                    p.id.to_string(),
                    time::format(&p.created_at),
                    live(p.id).to_string(),
                ]);
            }
            println!("{table}");
        }
        ProjectsCommand::Rename { from, to, database } => {
            let store = open(&database).await?;
            let renamed = projects::rename(&store, &from, &to, actor(), pauses::now()).await;
            close_signed(store).await;
            let project = renamed?;
            println!(
                "The project \"{}\" is now called \"{}\".",
                from.trim(),
                project.name
            );
        }
    }
    Ok(())
}

/// The oldest project: where keys go when no project is named.
async fn first_project(store: &Store) -> anyhow::Result<String> {
    Ok(store
        .projects()
        .await?
        .into_iter()
        .next()
        .map_or_else(|| DEFAULT_PROJECT.to_owned(), |p| p.name))
}

async fn webhook_secret(
    rotate: bool,
    project: Option<String>,
    database: &DatabaseArg,
) -> anyhow::Result<()> {
    let store = open(database).await?;
    let now = pauses::now();
    let name = match project {
        Some(project) => project.trim().to_owned(),
        None => first_project(&store).await?,
    };
    let secrets = std::sync::Arc::clone(store.secrets());
    let project = store
        .write(move |tx| {
            Box::pin(async move { keys::ensure_project(tx, &secrets, &name, now).await })
        })
        .await?;
    let secret = if rotate {
        let secret = webhooks::rotate_secret(&store, project.id, now).await?;
        eprintln!(
            "New secret for project \"{}\". The previous one keeps signing until {}.",
            project.name,
            (now + webhooks::ROTATION_OVERLAP).strftime("%Y-%m-%d %H:%M UTC")
        );
        secret
    } else {
        let secrets = webhooks::signing_secrets(&store, project.id, now).await?;
        secrets
            .into_iter()
            .next()
            .context("the project has no webhook secret")?
    };
    println!("{secret}");
    store.close().await;
    Ok(())
}

async fn status(json: bool, database: &DatabaseArg) -> anyhow::Result<()> {
    let store = open(database).await?;
    let status = status::read(&store, pauses::now()).await;
    store.close().await;
    let status = status.context("cannot read the status")?;
    if json {
        return output::json(&status);
    }
    println!("Database:        {}", status.database);
    let deadline = status
        .next_deadline
        .map(|at| format!(" (the next times out {})", output::when(at)))
        .unwrap_or_default();
    println!("Pending pauses:  {}{deadline}", status.pauses_pending);
    for (name, queue) in [
        ("Deliveries:     ", &status.deliveries),
        ("Webhook events: ", &status.webhook_events),
    ] {
        let mut line = format!("{name} {} due, {} queued", queue.due, queue.queued);
        if queue.due > 0 {
            line.push_str(&format!(
                "; the oldest has waited {:.1} s",
                queue.oldest_due_seconds
            ));
        }
        if let Some(next) = queue.next_at {
            line.push_str(&format!("; next due {}", output::when(next)));
        }
        println!("{line}");
    }
    Ok(())
}

/// "12.3 MB, 1 project, 1204 pauses, 3911 audit events (newest …)".
fn describe(summary: &backup::Summary) -> String {
    let newest = summary
        .newest_event
        .as_ref()
        .map(|t| format!(" (newest {})", time::format(t)))
        .unwrap_or_default();
    format!(
        "{:.1} MB, {} project{}, {} pauses, {} audit events{newest}",
        summary.bytes as f64 / 1_000_000.0,
        summary.projects,
        if summary.projects == 1 { "" } else { "s" },
        summary.pauses,
        summary.events
    )
}

/// Signs a checkpoint over what this command added to the audit log (as a server would
/// within a minute), then closes the database. A failure is said, not fatal: the change
/// is made, and the next server to start signs it.
async fn close_signed(store: Store) {
    let signed = async {
        let keys = std::sync::Arc::new(proof::AuditKeys::load(&store, pauses::now()).await?);
        proof::Checkpoints::new(store.clone(), keys, None)
            .make_all(pauses::now())
            .await
    };
    if let Err(e) = signed.await {
        eprintln!("warning: could not sign a checkpoint of the audit log: {e}");
    }
    store.close().await;
}

/// `pp admin audit-key`: the public keys, made on first use; `--rotate` makes a new one.
async fn audit_key(rotate: bool, json: bool, database: &DatabaseArg) -> anyhow::Result<()> {
    let store = open(database).await?;
    let result = async {
        proof::AuditKeys::load(&store, pauses::now()).await?;
        if rotate {
            proof::rotate(&store, pauses::now()).await?;
        }
        proof::public_keys(&store).await
    }
    .await;
    store.close().await;
    let keys = result?;
    if json {
        return output::json(&keys);
    }
    println!("{}", serde_json::to_string(&keys)?);
    if let Some(current) = keys.keys.first() {
        eprintln!(
            "Key {} signs checkpoints and receipts{}. Give this JWK set (stdout) to whoever verifies:\n  pp audit verify --file EXPORT --public-key KEYS.json\n  pp receipt verify RECEIPT --public-key KEYS.json",
            current.kid,
            if rotate { " from now on; the older keys keep verifying what they signed" } else { "" }
        );
    }
    Ok(())
}

async fn open(arg: &DatabaseArg) -> anyhow::Result<Store> {
    let database = arg.resolve();
    Store::open(&database, arg.master_key_file.as_deref())
        .await
        .with_context(|| format!("cannot open the database {}", mask_password(&database)))
}

/// How the audit log names whoever runs `pp admin`: the operating-system user.
fn actor() -> Actor {
    Actor::Admin(std::env::var("USER").ok().filter(|user| !user.is_empty()))
}
