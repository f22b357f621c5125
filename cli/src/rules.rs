//! `pp rules list|revoke`: the approvals people asked to remember ("Allow for 1 hour").

use clap::{Args, Subcommand};
use pausepoint_api::rules::Rule;
use pausepoint_client::ClientError;
use uuid::Uuid;

use crate::connection::ConnectionArgs;
use crate::{output, Outcome};

#[derive(Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// List the project's rules, newest first: what each allows, who allowed it, until when
    List(ListArgs),
    /// End a rule now: the same call is asked about again
    Revoke(RevokeArgs),
}

#[derive(Args)]
struct ListArgs {
    /// How many, newest first (1 to 200)
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=200))]
    limit: u32,
    /// Print the rules as a JSON array
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: ConnectionArgs,
}

#[derive(Args)]
struct RevokeArgs {
    /// The rule to end (its id from `pp rules list`)
    id: Uuid,
    /// Print the rule as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: ConnectionArgs,
}

pub async fn run(args: RulesArgs) -> anyhow::Result<Outcome> {
    match args.command {
        RulesCommand::List(args) => list(args).await,
        RulesCommand::Revoke(args) => revoke(args).await,
    }
}

async fn list(args: ListArgs) -> anyhow::Result<Outcome> {
    let rules = args
        .connection
        .client()?
        .rules(Some(args.limit))
        .await?
        .data;
    if args.json {
        output::json(&rules)?;
    } else if rules.is_empty() {
        eprintln!("No rules: nobody has answered \"Allow for 1 hour\" yet.");
    } else {
        let mut table = output::table(&["RULE", "STATUS", "ALLOWS", "BY", "UNTIL"]);
        for rule in &rules {
            table.add_row(vec![
                rule.rule_id.to_string(),
                rule.status.as_str().to_owned(),
                output::cut(&rule.question, 70),
                rule.approved_by.clone(),
                output::when(rule.revoked_at.unwrap_or(rule.expires_at)),
            ]);
        }
        println!("{table}");
    }
    Ok(Outcome::Done)
}

async fn revoke(args: RevokeArgs) -> anyhow::Result<Outcome> {
    let rule: Rule = match args.connection.client()?.revoke_rule(args.id).await {
        Ok(rule) => rule,
        Err(ClientError::Conflict { message, .. }) => {
            anyhow::bail!("cannot revoke rule {}: {message}", args.id)
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        output::json(&rule)?;
    } else {
        println!(
            "Revoked rule {}: {} is asked about again.",
            rule.rule_id, rule.tool_name
        );
    }
    Ok(Outcome::Done)
}
